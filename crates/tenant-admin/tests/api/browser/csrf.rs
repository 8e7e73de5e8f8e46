//! Scenario: a form posted without the session's CSRF token (or with a
//! wrong one) is refused with the 403 page and changes nothing; the
//! console's own form, which carries it, works.

use serde_json::json;

use super::harness::Browser;
use crate::support::Server;

/// Adds a form to the page that posts `fields` to `action`, bypassing
/// htmx, and submits it (a script run over WebDriver is not subject to
/// the page's content security policy).
async fn forge(browser: &Browser, action: &str, fields: &[(&str, &str)]) {
    browser.expect_console_clean(&[]).await;
    let fields: Vec<serde_json::Value> = fields.iter().map(|(k, v)| json!([k, v])).collect();
    browser
        .js(
            "const [action, fields] = arguments; \
             const form = document.createElement('form'); \
             form.method = 'post'; form.action = action; \
             for (const [name, value] of fields) { \
               const input = document.createElement('input'); \
               input.type = 'hidden'; input.name = name; input.value = value; \
               form.appendChild(input); \
             } \
             document.body.appendChild(form); \
             form.submit();",
            vec![json!(action), json!(fields)],
        )
        .await;
}

pub async fn forged_forms_are_refused(browser: &mut Browser, server: &Server) {
    let op = server.operator().await;
    browser
        .log_in(&server.operator_email, &server.operator_password, None)
        .await;

    // No token at all.
    forge(
        browser,
        "/console/tenants",
        &[("slug", "forged"), ("name", "Forged"), ("kind", "standard")],
    )
    .await;
    browser.wait_for_heading("Forbidden").await;
    let message = browser
        .wait_for_text("#main", "is missing its security token")
        .await;
    assert!(message.contains("reload the page"), "{message}");
    browser.expect_console_clean(&["status of 403"]).await;
    browser.inspect("refused").await;
    server
        .api("GET", "/tenants/forged", Some(&op), None)
        .await
        .expect(404);

    // A made-up token.
    browser.goto("/console/tenants").await;
    forge(
        browser,
        "/console/tenants",
        &[
            ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ("slug", "forged"),
            ("name", "Forged"),
        ],
    )
    .await;
    browser.wait_for_heading("Forbidden").await;
    browser
        .wait_for_text("#main", "is missing its security token")
        .await;
    browser.expect_console_clean(&["status of 403"]).await;
    server
        .api("GET", "/tenants/forged", Some(&op), None)
        .await
        .expect(404);

    // A forged logout does not end the session either.
    browser.goto("/console/tenants").await;
    forge(browser, "/console/logout", &[]).await;
    browser.wait_for_heading("Forbidden").await;
    browser.expect_console_clean(&["status of 403"]).await;
    browser.goto("/console/tenants").await;
    browser.wait_for_heading("Tenants").await;

    // The console's own form carries the token and works.
    browser.fill("slug", "genuine").await;
    browser.fill("name", "Genuine Ltd").await;
    browser.click_button("Create tenant").await;
    browser.wait_for_heading("Genuine Ltd").await;
    server
        .api("GET", "/tenants/genuine", Some(&op), None)
        .await
        .expect(200);
    server
        .api("GET", "/tenants/forged", Some(&op), None)
        .await
        .expect(404);
}
