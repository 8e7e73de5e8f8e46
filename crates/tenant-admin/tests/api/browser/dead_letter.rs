//! Scenario: an application refuses a webhook, the delivery becomes a dead
//! letter; a tenant admin finds it on the target's page, the application is
//! fixed, and the dead letter is replayed from the console and delivered.

use serde_json::json;
use testkit::receiver::Receiver;

use super::harness::Browser;
use crate::support::{Server, eventually};

pub async fn is_replayed_from_the_console(browser: &mut Browser, server: &Server) {
    let op = server.operator().await;
    let scim = server.tenant(&op, "acme").await;
    server.tenant_admin(&op, "acme", "ann@acme.test").await;
    let receiver = Receiver::start().await;
    // 4xx: not retried, a dead letter at once.
    receiver.answer(422);
    let created = server
        .api(
            "POST",
            "/tenants/acme/targets",
            Some(&op),
            Some(json!({"name": "crm", "kind": "webhook", "url": receiver.url()})),
        )
        .await
        .expect(201);
    receiver.set_secret(created["secret"].as_str().unwrap());
    let target = created["target"]["id"].as_str().unwrap().to_owned();
    let ada = server.scim_user("acme", &scim, "ada@acme.test").await;
    let dead = format!("/tenants/acme/targets/{target}/deliveries?status=dead");
    eventually(|| async {
        let d = server.get(&dead, &op).await.expect(200);
        (!d["deliveries"].as_array()?.is_empty()).then_some(())
    })
    .await
    .expect("a dead letter");

    browser
        .log_in(
            "ann@acme.test",
            "correct horse battery staple",
            Some("acme"),
        )
        .await;
    browser.navigate("Delivery", "Delivery").await;
    browser.inspect_for_guide("delivery-failing").await;
    browser.click_link("crm").await;
    browser.wait_for_text("#deliveries", "Dead letters").await;
    let letters = browser.all_texts("#main table tbody tr").await;
    assert!(
        letters
            .iter()
            .any(|r| r.contains(&ada) || r.contains("user.created")),
        "the dead letter is listed: {letters:?}"
    );
    browser.inspect_for_guide("target-dead-letter").await;

    // The application is fixed; replay the dead letter.
    receiver.answer_ok();
    browser.click("form[action*='/dead-letters/'] button").await;
    browser
        .wait_for_text("#main", "1 dead letter put back in line.")
        .await;
    eventually(|| async {
        receiver
            .deliveries()
            .iter()
            .any(|d| d.body["data"]["id"] == json!(ada) && d.answered == Some(204))
            .then_some(())
    })
    .await
    .expect("the replayed dead letter reaches the application");
    // The page shows it delivered: no dead letters left.
    let path = format!("/console/t/acme/delivery/{target}");
    eventually(|| async {
        browser.goto(&path).await;
        browser
            .source()
            .await
            .contains("No dead letters.")
            .then_some(())
    })
    .await
    .expect("the target page shows no dead letters");
    browser.inspect("target-replayed").await;
}
