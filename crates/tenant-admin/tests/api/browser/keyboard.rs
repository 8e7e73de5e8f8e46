//! Scenario: every page of a tenant with some data, reached through the
//! navigation, is titled, keyboard-operable (the first Tab lands on "Skip
//! to content", and Tab visits every control) and passes axe-core at
//! desktop and phone widths. Most of the accessibility coverage is here.

use fantoccini::key::Key;
use serde_json::json;

use super::harness::Browser;
use crate::support::Server;

/// Builds a tenant with something on every page: users, groups, a
/// mapping, a lock, a failed SCIM request, audit entries.
async fn populate(server: &Server) {
    let op = server.operator().await;
    let token = server.tenant(&op, "acme").await;
    let policy = server
        .api(
            "PUT",
            "/tenants/acme/roles",
            Some(&op),
            Some(json!({
                "mode": "single",
                "defaultRole": "viewer",
                "roles": [{"name": "viewer", "description": "Reads"}, {"name": "admin", "description": "Full access"}],
                "mappings": [{"group": {"displayName": "Admins"}, "role": "admin", "priority": 10}],
            })),
        )
        .await
        .expect(200);
    server.job_done(&op, "acme", &policy["job"]).await;
    let ada = server.scim_user("acme", &token, "ada@acme.test").await;
    let bob = server.scim_user("acme", &token, "bob@acme.test").await;
    let cy = server.scim_user("acme", &token, "cy@acme.test").await;
    server.scim_group("acme", &token, "Admins", &[&ada]).await;
    server
        .scim_group("acme", &token, "Everyone", &[&ada, &bob, &cy])
        .await;
    server
        .api(
            "PUT",
            &format!("/tenants/acme/users/{bob}/lock"),
            Some(&op),
            Some(json!({"roles": ["admin"], "reason": "On call this week"})),
        )
        .await
        .expect(200);
    // A failure in the provisioning log: the same userName again.
    let again = server
        .scim(
            "POST",
            "acme",
            "/Users",
            &token,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@acme.test",
            })),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
}

/// The element that has the focus: tag, text, id.
async fn focused(browser: &Browser) -> serde_json::Value {
    browser
        .js(
            "const e = document.activeElement; \
             return e ? [e.tagName, e.innerText.trim(), e.id] : null;",
            vec![],
        )
        .await
}

pub async fn every_tenant_page(browser: &mut Browser, server: &Server) {
    populate(server).await;
    browser
        .log_in(&server.operator_email, &server.operator_password, None)
        .await;

    // A fresh load: the first Tab lands on the skip link, which shows
    // and moves the focus to the main content.
    browser.goto("/console/tenants").await;
    browser.press(&[Key::Tab]).await;
    assert_eq!(focused(browser).await, json!(["A", "Skip to content", ""]));
    browser
        .wait_until(
            "the focused skip link to be on screen",
            "document.activeElement.getBoundingClientRect().left >= 0",
        )
        .await;
    browser.press(&[Key::Enter]).await;
    browser
        .wait_until(
            "the focus on the main content",
            "document.activeElement.id === 'main'",
        )
        .await;
    browser.inspect("tenants").await;
    browser.expect_tab_reaches_everything("tenants").await;

    browser.click_link("Tenant acme").await;
    browser.wait_for_heading("Tenant acme").await;
    // Every page of the tenant's navigation, the ones below at least.
    let entries = browser.navigation().await;
    let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
    for required in [
        "Overview",
        "Connection",
        "Users",
        "Groups",
        "Roles",
        "Role-locks",
        "Provisioning log",
        "Audit log",
    ] {
        assert!(names.contains(&required), "no {required:?} in {names:?}");
    }
    for (entry, path) in &entries {
        let page = match path.strip_prefix("/console/t/acme") {
            Some("") => "tenant-overview",
            Some(rest) => rest.trim_start_matches('/'),
            None => continue, // the operator's tenant list, checked above
        };
        let heading = browser.navigate_to(entry).await;
        if entry == "Overview" {
            assert_eq!(heading, "Tenant acme");
        }
        // After an htmx page swap the focus is on the main content.
        browser
            .wait_until(
                "the focus on the main content after navigating",
                "document.activeElement && document.activeElement.id === 'main'",
            )
            .await;
        check_titled(browser, &heading).await;
        browser.inspect_for_guide(page).await;
        browser.expect_tab_reaches_everything(page).await;
    }

    // One user's page.
    browser.navigate("Users", "Users").await;
    browser.click_link("bob@acme.test").await;
    browser.wait_for_heading("bob@acme.test").await;
    check_titled(browser, "bob@acme.test").await;
    browser.inspect_for_guide("user").await;
    browser.expect_tab_reaches_everything("user").await;
}

/// The document title names the page (htmx swaps it too).
async fn check_titled(browser: &Browser, heading: &str) {
    let title = browser.js("return document.title", vec![]).await;
    assert_eq!(
        title,
        json!(format!("{heading} · scimgate")),
        "the title of the page headed {heading:?}"
    );
}
