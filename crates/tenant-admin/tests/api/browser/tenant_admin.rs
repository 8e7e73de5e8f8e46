//! Scenario: a tenant admin sets the default role and maps a group to a
//! role, each previewed first and saved as a recompute job followed to
//! `done`; then locks a user (a blank reason is refused next to its
//! field) and finds the lock in the audit log.

use serde_json::json;

use super::harness::{Browser, JOB_WAIT};
use crate::support::Server;

const PASSWORD: &str = "correct horse battery staple";

/// Saves the previewed change and follows its job to `done`.
async fn save_and_wait(browser: &Browser) {
    browser.click_button("Save this change").await;
    browser.wait_for_heading("Recompute job").await;
    let path = browser.path().await;
    assert!(
        path.starts_with("/console/t/acme/roles/jobs/"),
        "the job's page: {path}"
    );
    browser
        .wait_for_text_within("#job-status", "done", JOB_WAIT)
        .await;
    browser.settle().await;
}

pub async fn roles_mapping_and_lock(browser: &mut Browser, server: &Server) {
    let op = server.operator().await;
    let token = server.tenant(&op, "acme").await;
    let policy = server
        .api(
            "PUT",
            "/tenants/acme/roles",
            Some(&op),
            Some(json!({
                "mode": "single",
                "defaultRole": null,
                "roles": [{"name": "viewer"}, {"name": "admin"}],
                "mappings": [],
            })),
        )
        .await
        .expect(200);
    server.job_done(&op, "acme", &policy["job"]).await;
    let ada = server.scim_user("acme", &token, "ada@acme.test").await;
    let bob = server.scim_user("acme", &token, "bob@acme.test").await;
    server.scim_group("acme", &token, "Admins", &[&ada]).await;
    server.tenant_admin(&op, "acme", "ann@acme.test").await;

    browser
        .log_in("ann@acme.test", PASSWORD, Some("acme"))
        .await;
    browser.wait_for_heading("Tenant acme").await;
    let nav = browser.text("nav.side").await;
    assert!(
        !nav.contains("Tenants"),
        "no operator pages for a tenant admin: {nav}"
    );
    browser.inspect("tenant-overview").await;

    // The default role: previewed (as the API's dry run says), saved.
    browser.navigate("Roles", "Roles").await;
    browser.inspect("roles").await;
    let dry = server
        .api(
            "PUT",
            "/tenants/acme/roles/default?dryRun=true",
            Some(&op),
            Some(json!({"role": "viewer"})),
        )
        .await
        .expect(200);
    let would = format!(
        "{} of {} users would change roles",
        dry["changed"], dry["users"]
    );
    assert_eq!(would, "2 of 2 users would change roles");
    browser.select("default-role", "viewer").await;
    browser.click_button("Preview default role").await;
    let preview = browser
        .wait_for_text("#preview", "would change roles")
        .await;
    assert!(preview.contains(&would), "{preview}");
    assert!(
        preview.contains("Make “viewer” the default role"),
        "{preview}"
    );
    let rows = browser.all_texts("#preview tbody tr").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert!(row.contains("no role"), "before: {row}");
        assert!(row.contains("viewer (default)"), "after: {row}");
    }
    browser.inspect_for_guide("roles-preview").await;
    save_and_wait(browser).await;
    browser.inspect_for_guide("job").await;

    // A mapping: group Admins grants admin.
    browser.click_link("Back to roles").await;
    browser.wait_for_heading("Roles").await;
    browser.select("match-by", "displayName").await;
    browser.fill("map-group", "Admins").await;
    browser.select("map-role", "admin").await;
    browser.fill("map-priority", "10").await;
    browser.click_button("Preview mapping").await;
    let preview = browser
        .wait_for_text("#preview", "would change roles")
        .await;
    assert!(
        preview.contains("1 of 2 users would change roles"),
        "{preview}"
    );
    let rows = browser.all_texts("#preview tbody tr").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].contains("ada@acme.test"), "{rows:?}");
    assert!(rows[0].contains("viewer (default)"), "{rows:?}");
    assert!(rows[0].contains("admin (mapping"), "{rows:?}");
    save_and_wait(browser).await;
    assert_eq!(server.role_names(&op, "acme", &ada).await, ["admin"]);
    assert_eq!(server.role_names(&op, "acme", &bob).await, ["viewer"]);

    // Lock bob to admin: first without a reason.
    browser.navigate("Users", "Users").await;
    browser.wait_for_text("#results", "bob@acme.test").await;
    browser.inspect("users").await;
    browser.click_link("bob@acme.test").await;
    browser.wait_for_heading("bob@acme.test").await;
    browser.inspect("user").await;
    browser.tick("input[name='role'][value='admin']").await;
    browser.click_button("Lock").await;
    let error = browser.wait_for_text("#reason-error", "say why").await;
    browser.expect_console_clean(&["status of 422"]).await;
    assert!(error.contains("audit log"), "{error}");
    browser
        .wait_until(
            "the error to be tied to the reason field",
            "(() => { const f = document.getElementById('reason'); \
               return f.getAttribute('aria-invalid') === 'true' \
                 && f.getAttribute('aria-describedby') === 'reason-error' \
                 && f.nextElementSibling && f.nextElementSibling.id === 'reason-error'; })()",
        )
        .await;
    browser
        .wait_until(
            "the ticked role to be kept",
            "document.querySelector(\"input[name='role'][value='admin']\").checked",
        )
        .await;
    let user = server
        .get(&format!("/tenants/acme/users/{bob}"), &op)
        .await
        .expect(200);
    assert!(user["roles"]["locked"].is_null(), "nothing locked: {user}");
    browser.inspect("user-lock-refused").await;

    // Now with a reason.
    browser.fill("reason", "Contractor until March").await;
    browser.click_button("Lock").await;
    browser.wait_for_text("#main .badge.warn", "locked").await;
    let lock = browser
        .wait_for_text("#main", "Contractor until March")
        .await;
    assert!(lock.contains("Unlock"), "{lock}");
    let user = server
        .get(&format!("/tenants/acme/users/{bob}"), &op)
        .await
        .expect(200);
    let locked = &user["roles"]["locked"];
    assert_eq!(locked["roles"], json!(["admin"]), "{user}");
    assert_eq!(locked["reason"], "Contractor until March", "{user}");
    browser.inspect("user-locked").await;

    // The audit log has it.
    browser.navigate("Audit log", "Audit log").await;
    browser.fill("action", "roles.lock").await;
    browser.click_button("Filter").await;
    browser
        .wait_until(
            "the audit log filtered to roles.lock",
            "new URLSearchParams(location.search).get('action') === 'roles.lock' \
             && Array.from(document.querySelectorAll('#main tbody tr')) \
                  .every(r => r.innerText.includes('roles.lock'))",
        )
        .await;
    browser.settle().await;
    let rows = browser.table_rows("Action").await;
    assert_eq!(rows.len(), 1, "one lock: {rows:?}");
    assert!(rows[0].contains("roles.lock"), "{rows:?}");
    assert!(rows[0].contains("ann@acme.test"), "{rows:?}");
    assert!(rows[0].contains("Contractor until March"), "{rows:?}");
    assert!(rows[0].contains(&bob), "{rows:?}");
    browser.inspect("audit").await;
}
