//! Scenario: a tenant admin makes a setup link for the customer's IT
//! admin; the IT admin, without an account, opens it, issues the SCIM token
//! (copy button included), rotates it, and can reach nothing else.

use super::harness::Browser;
use crate::support::{Server, eventually};

pub async fn issues_and_rotates_a_token(browser: &mut Browser, server: &Server) {
    let op = server.operator().await;
    server.tenant(&op, "acme").await;
    server.tenant_admin(&op, "acme", "ann@acme.test").await;
    browser
        .log_in(
            "ann@acme.test",
            "correct horse battery staple",
            Some("acme"),
        )
        .await;
    browser.navigate("Connection", "Connection").await;
    browser.fill("link-name", "Acme IT").await;
    browser.fill("link-days", "3").await;
    browser.click_button("Create setup link").await;
    browser
        .wait_for_text("#link-title", "Setup link created")
        .await;
    let link = browser.text("#new-link").await.trim().to_owned();
    let path = link
        .strip_prefix(&server.origin)
        .expect("an absolute link on this server")
        .to_owned();
    assert!(path.starts_with("/console/setup/sgl_"), "{path}");
    browser.inspect_for_guide("connection-setup-link").await;

    // The IT admin has no session: log out first, then open the link.
    browser.click_button("Log out").await;
    browser.wait_for_heading("scimgate console").await;
    browser.goto(&path).await;
    browser
        .wait_for_heading("Connect Tenant acme to your identity provider")
        .await;
    browser.inspect_for_guide("setup").await;
    browser.click_button("Issue the SCIM token").await;
    browser
        .wait_for_text("#issued-title", "Your SCIM token")
        .await;
    let first = browser.text("#new-token").await.trim().to_owned();
    browser.click("button[data-copy='new-token']").await;
    browser
        .wait_for_text("button[data-copy='new-token']", "Copied")
        .await;
    assert_eq!(browser.clipboard().await, first);
    let users = server.scim("GET", "acme", "/Users", &first, None).await;
    assert_eq!(users.status, 200, "{}", users.body);
    browser.inspect("setup-issued").await;

    // Rotating: a new token; the first one stops working.
    browser.click_button("Rotate the SCIM token").await;
    browser
        .wait_for_text("#issued-title", "Your SCIM token")
        .await;
    let second = browser.text("#new-token").await.trim().to_owned();
    assert_ne!(first, second);
    assert_eq!(
        server
            .scim("GET", "acme", "/Users", &second, None)
            .await
            .status,
        200
    );
    eventually(|| async {
        (server
            .scim("GET", "acme", "/Users", &first, None)
            .await
            .status
            == 401)
            .then_some(())
    })
    .await
    .expect("the rotated token stops working");

    // Nothing else is reachable: the console wants a login.
    browser.goto("/console/t/acme/users").await;
    browser.wait_for_heading("scimgate console").await;
}
