//! Scenario: a tenant admin of acme reaches none of globex's pages, by
//! typed URL or by an edited link: the same "Not Found" page a tenant
//! that does not exist gets, with nothing of globex on it; operator pages
//! are "Forbidden".

use super::harness::Browser;
use crate::support::Server;

const PASSWORD: &str = "correct horse battery staple";

/// What must never appear on a page acme's admin sees.
const GLOBEX: &[&str] = &["Tenant globex", "gus@globex.test", "User gus@globex.test"];

/// Loads `path`, expects the error page headed `heading` (`status` in the
/// browser console), free of globex data; returns its message.
async fn refused(browser: &Browser, path: &str, heading: &str, status: u16) -> String {
    browser.goto(path).await;
    browser.wait_for_heading(heading).await;
    browser
        .expect_console_clean(&[&format!("status of {status}")])
        .await;
    let source = browser.source().await;
    for needle in GLOBEX {
        assert!(
            !source.contains(needle),
            "{needle:?} shown at {path}:\n{source}"
        );
    }
    browser.text("#main [role=alert]").await
}

pub async fn other_tenant_is_not_found(browser: &mut Browser, server: &Server) {
    let op = server.operator().await;
    let acme = server.tenant(&op, "acme").await;
    let globex = server.tenant(&op, "globex").await;
    server.scim_user("acme", &acme, "ada@acme.test").await;
    let gus = server.scim_user("globex", &globex, "gus@globex.test").await;
    server.tenant_admin(&op, "acme", "ann@acme.test").await;

    browser
        .log_in("ann@acme.test", PASSWORD, Some("acme"))
        .await;
    browser.wait_for_heading("Tenant acme").await;

    // What a tenant that does not exist at all looks like.
    let nothing = refused(browser, "/console/t/no-such-tenant", "Not Found", 404).await;
    browser.inspect("not-found").await;

    for path in [
        "/console/t/globex".to_owned(),
        "/console/t/globex/users".to_owned(),
        "/console/t/globex/connection".to_owned(),
        "/console/t/globex/groups".to_owned(),
        "/console/t/globex/roles".to_owned(),
        "/console/t/globex/audit".to_owned(),
        format!("/console/t/globex/users/{gus}"),
    ] {
        let message = refused(browser, &path, "Not Found", 404).await;
        assert_eq!(
            message.replace("globex", "no-such-tenant"),
            nothing,
            "{path} answers as if globex did not exist"
        );
    }

    // Globex's user under acme's name is not found either.
    let message = refused(
        browser,
        &format!("/console/t/acme/users/{gus}"),
        "Not Found",
        404,
    )
    .await;
    assert!(!message.contains("globex"), "{message}");

    // Operator pages.
    refused(browser, "/console/tenants", "Forbidden", 403).await;
    browser.inspect("forbidden").await;

    // Edited links: acme's own pages, with the slug changed.
    browser.goto("/console/t/acme/users").await;
    browser.wait_for_heading("Users").await;
    browser.click_link("ada@acme.test").await;
    browser.wait_for_heading("ada@acme.test").await;
    for own in [
        browser.path().await,
        "/console/t/acme/users?q=ada".to_owned(),
    ] {
        let edited = own.replacen("/t/acme", "/t/globex", 1);
        assert_ne!(edited, own);
        refused(browser, &edited, "Not Found", 404).await;
    }

    // Acme's own pages still work, and name no other tenant.
    browser.goto("/console/t/acme").await;
    browser.wait_for_heading("Tenant acme").await;
    let source = browser.source().await;
    assert!(!source.contains("globex"), "{source}");
}
