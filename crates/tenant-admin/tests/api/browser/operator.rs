//! Scenario: an operator logs in through the form, finds tenants, creates
//! one with a first SCIM token, copies the token with the copy button, and
//! that token works on the tenant's SCIM URL.

use super::harness::Browser;
use crate::support::Server;

pub async fn creates_a_tenant_and_uses_its_token(browser: &mut Browser, server: &Server) {
    browser.goto("/console/login").await;
    browser.wait_for_heading("scimgate console").await;
    browser.inspect_for_guide("login").await;

    browser
        .log_in(&server.operator_email, &server.operator_password, None)
        .await;
    browser.inspect_for_guide("tenants").await;

    // A new tenant, with its first token.
    browser.fill("slug", "globex").await;
    browser.fill("name", "Globex Corporation").await;
    browser.select("kind", "standard").await;
    browser.tick("#token").await;
    browser.click_button("Create tenant").await;
    browser.wait_for_heading("Connection").await;
    browser.wait_for_text("#issued-title", "issued").await;
    let secret = browser.text("#new-token").await.trim().to_owned();
    assert!(secret.len() >= 20, "a token secret: {secret:?}");
    assert!(!secret.contains(char::is_whitespace), "{secret:?}");

    // The copy button puts exactly the secret on the clipboard.
    browser.click("button[data-copy='new-token']").await;
    let label = browser
        .wait_for_text("button[data-copy='new-token']", "Copied")
        .await;
    assert_eq!(label.trim(), "Copied");
    assert_eq!(browser.clipboard().await, secret);
    browser.inspect_for_guide("connection-new-token").await;

    // The copied token is a working scim:write token of the new tenant.
    let users = server.scim("GET", "globex", "/Users", &secret, None).await;
    assert_eq!(users.status, 200, "{}", users.body);
    assert_eq!(users.body["totalResults"], 0, "{}", users.body);

    // The tenant list finds it (htmx search as one types).
    browser.navigate("Tenants", "Tenants").await;
    browser.fill("q", "glob").await;
    browser
        .wait_for_text("#results caption", "Tenants 1–1 of 1")
        .await;
    let rows = browser.all_texts("#results tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("Globex Corporation"), "{rows:?}");
    assert!(rows[0].contains("active"), "{rows:?}");
    browser
        .wait_until("the search in the address", "location.search === '?q=glob'")
        .await;
    browser.inspect("tenants-search").await;

    // Its overview and its connection page (the secret is not shown again).
    browser.click_link("Globex Corporation").await;
    browser.wait_for_heading("Globex Corporation").await;
    browser.wait_for_path("/console/t/globex").await;
    let overview = browser.text("#main").await;
    assert!(overview.contains("globex"), "{overview}");
    assert!(
        overview.contains("/tenants/globex/scim/v2"),
        "the SCIM URL: {overview}"
    );
    browser.inspect("tenant-overview").await;

    browser.navigate("Connection", "Connection").await;
    let tokens = browser.table_rows("Scopes").await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(tokens[0].contains("scim:write"), "{tokens:?}");
    assert!(tokens[0].contains("active"), "{tokens:?}");
    assert!(
        !browser.source().await.contains(&secret),
        "the secret is shown once"
    );
    browser.inspect("connection").await;
}
