//! Browser tests of the console: headless Chromium, driven over WebDriver
//! (chromedriver), uses `/console` of the real application the way
//! operators and tenant admins do. Every page a scenario visits is also
//! checked for browser console errors and audited with axe-core (WCAG 2
//! A and AA) at 1280 and 390 px, with screenshots of both (see
//! [`harness`]).
//!
//! - Needs `chromium` and `chromedriver` on PATH (the tests fail without
//!   them; `scripts/test` installs them). nextest runs them one at a time
//!   (`.config/nextest.toml`): `cargo nextest run -p tenant-admin -E
//!   'test(/^browser::/)'`.
//! - Screenshots go to `$SCIMGATE_SCREENSHOT_DIR`, else
//!   `target/tmp/console-screenshots/`, as `<scenario>-<page>-<width>.png`.
//! - `SCIMGATE_BLESS=1` also writes the 1280 px screenshots of the pages
//!   the user guide shows to `docs/console/<page>.png`.

mod csrf;
mod dead_letter;
mod harness;
mod isolation;
mod keyboard;
mod operator;
mod setup_link;
mod tenant_admin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_creates_a_tenant_and_its_copied_token_works() {
    harness::scenario("operator", operator::creates_a_tenant_and_uses_its_token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_admin_sets_default_role_maps_a_group_and_locks_a_user() {
    harness::scenario("tenant-admin", tenant_admin::roles_mapping_and_lock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_cannot_reach_another_tenants_pages() {
    harness::scenario("isolation", isolation::other_tenant_is_not_found).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_form_without_the_csrf_token_is_refused() {
    harness::scenario("csrf", csrf::forged_forms_are_refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_keyboard_reachable_and_labelled() {
    harness::scenario("keyboard", keyboard::every_tenant_page).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_from_the_console() {
    harness::scenario_with(
        "dead-letter",
        |c| c.delivery_enabled = true,
        dead_letter::is_replayed_from_the_console,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_link_lets_the_it_admin_issue_and_rotate_the_token() {
    harness::scenario("setup-link", setup_link::issues_and_rotates_a_token).await;
}
