//! The console's delivery and deletion-safety pages without a browser,
//! over real HTTP on both engines: a dead letter replayed from its
//! target's page reaches the receiver, a reconciliation's job page
//! reaches done, held deletions released and discarded, protection,
//! restore and erasure (operators only, the userName typed again), tenant
//! isolation, and bad input answered with a page that changes nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::receiver::Receiver;

use crate::console::{Console, PASSWORD, Page};
use crate::support::{EVENTUALLY, Server, each_backend, eventually};

/// [`each_backend`] with the delivery worker running.
async fn each_backend_delivering(test: impl AsyncFn(&Server)) {
    for which in testkit::backends() {
        let server = Server::start_with(which, |c| c.delivery_enabled = true).await;
        test(&server).await;
        server.stop().await;
    }
}

/// Loads `path` until `done` holds for the page, at most [`EVENTUALLY`].
async fn until(c: &mut Console<'_>, path: &str, what: &str, done: impl Fn(&Page) -> bool) -> Page {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let page = c.get(path).await;
        if done(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {what}: {} {}",
            page.status,
            page.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed-in tenant admin of `slug`.
async fn tenant_admin<'a>(s: &'a Server, op: &str, slug: &str, email: &str) -> Console<'a> {
    s.tenant_admin(op, slug, email).await;
    let mut c = Console::new(s);
    let page = c.login(email, PASSWORD, slug).await;
    assert_eq!(page.status, 303, "{}", page.body);
    c.get(&format!("/console/t/{slug}")).await.expect(200);
    c
}

/// A target of `slug` made over the API; its id and the whole answer.
async fn target(s: &Server, op: &str, slug: &str, spec: Value) -> (String, Value) {
    let created = s
        .api(
            "POST",
            &format!("/tenants/{slug}/targets"),
            Some(op),
            Some(spec),
        )
        .await
        .expect(201);
    let id = created["target"]["id"].as_str().unwrap().to_owned();
    (id, created)
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_replays_a_dead_letter_and_shows_it_delivered() {
    each_backend_delivering(async |s| {
        let op = s.operator().await;
        let scim = s.tenant(&op, "acme").await;
        let receiver = Receiver::start().await;
        // The application refuses everything (4xx: no retry, a dead letter).
        receiver.answer(422);
        let (id, created) = target(
            s,
            &op,
            "acme",
            json!({"name": "crm", "kind": "webhook", "url": receiver.url()}),
        )
        .await;
        receiver.set_secret(created["secret"].as_str().unwrap());
        let ada = s.scim_user("acme", &scim, "ada@acme.test").await;
        let dead_path = format!("/tenants/acme/targets/{id}/deliveries?status=dead");
        let dead = eventually(|| async {
            let d = s.get(&dead_path, &op).await.expect(200);
            (!d["deliveries"].as_array()?.is_empty()).then_some(d)
        })
        .await
        .expect("a dead letter");
        assert_eq!(dead["deliveries"][0]["resourceId"], json!(ada));
        let letter = dead["deliveries"][0]["id"].as_i64().unwrap();

        let mut c = tenant_admin(s, &op, "acme", "ann@acme.test").await;
        // The overview: the target with its health, the event in the feed.
        let page = c.get("/console/t/acme/delivery").await;
        page.expect(200);
        assert!(page.contains("aria-current=\"page\">Delivery</a>"));
        assert!(
            page.contains(&format!("href=\"/console/t/acme/delivery/{id}\">crm</a>")),
            "{}",
            page.body
        );
        assert!(page.contains(&receiver.url()), "{}", page.body);
        assert!(page.contains("<span class=\"badge warn\">failing</span>"));
        assert!(page.contains("user.created"), "{}", page.body);
        assert!(
            page.contains(&format!("/console/t/acme/users/{ada}/timeline")),
            "{}",
            page.body
        );

        // The target page lists the dead letter with its replay button.
        let path = format!("/console/t/acme/delivery/{id}");
        let page = c.get(&path).await;
        page.expect(200);
        assert!(page.contains("<h2 id=\"deliveries\">Dead letters</h2>"));
        assert!(page.contains(&ada), "{}", page.body);
        assert!(page.contains("<td>422</td>"), "{}", page.body);
        let replay = format!("{path}/dead-letters/{letter}/replay");
        assert!(
            page.contains(&format!("action=\"{replay}\"")),
            "{}",
            page.body
        );
        assert!(page.contains("Replay all dead letters…"));
        assert!(
            page.contains(&format!("href=\"{path}/mapping\"")),
            "{}",
            page.body
        );
        // Replaying all goes through a confirmation that says how many.
        let confirm = c.get(&format!("{path}/dead-letters/replay")).await;
        confirm.expect(200);
        assert!(
            confirm.contains("1 dead letter goes back in line"),
            "{}",
            confirm.body
        );

        // Fixed: replay the one dead letter; the receiver gets it.
        receiver.answer_ok();
        let page = c.post(&replay, &[]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), format!("{path}?status=dead&replayed=1"));
        let notice = c.get(page.location()).await;
        assert!(notice.contains("1 dead letter put back in line."));
        eventually(|| async {
            receiver
                .deliveries()
                .iter()
                .any(|d| d.body["data"]["id"] == json!(ada) && d.answered == Some(204))
                .then_some(())
        })
        .await
        .expect("the replayed dead letter reaches the receiver");
        let page = until(&mut c, &path, "the page shows it delivered", |p| {
            p.contains("No dead letters.")
                && p.contains("<span class=\"badge good\">delivered</span>")
        })
        .await;
        assert!(page.contains(&ada));
        // Replaying it again: it is not a dead letter any more.
        assert_eq!(c.post(&replay, &[]).await.status, 404);

        // Disable and enable the target.
        let page = c
            .post(&format!("{path}/enabled"), &[("enabled", "false")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let t = s
            .get(&format!("/tenants/acme/targets/{id}"), &op)
            .await
            .expect(200);
        assert_eq!(t["enabled"], false, "{t}");
        let page = c.get(&path).await;
        assert!(page.contains("<span class=\"badge bad\">disabled</span>"));
        assert!(page.contains("Enable target"));
        let page = c
            .post(&format!("{path}/enabled"), &[("enabled", "true")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let t = s
            .get(&format!("/tenants/acme/targets/{id}"), &op)
            .await
            .expect(200);
        assert_eq!(t["enabled"], true, "{t}");

        // The user's timeline: newest first, the delivery before the
        // failed attempt before the request.
        let page = c
            .get(&format!("/console/t/acme/users/{ada}/timeline"))
            .await;
        page.expect(200);
        assert!(
            page.contains("<h1>Timeline of ada@acme.test</h1>"),
            "{}",
            page.body
        );
        let delivered = page
            .body
            .find("HTTP 204 (delivered)")
            .expect("the delivery");
        let failed = page.body.find("HTTP 422 (dead)").expect("the failure");
        let request = page.body.find("<td>request</td>").expect("the request");
        assert!(delivered < failed && failed < request, "{}", page.body);
        assert!(page.contains(&format!("href=\"/console/t/acme/delivery/{id}\"")));
    })
    .await;
}

#[tokio::test]
async fn console_reconcile_queues_a_job_whose_page_reaches_done() {
    each_backend(async |s| {
        let op = s.operator().await;
        let acme = s.tenant(&op, "acme").await;
        // The application: another tenant's SCIM endpoint on this server.
        let app = s.tenant(&op, "app").await;
        s.scim_user("acme", &acme, "ada@acme.test").await;
        let (id, _) = target(
            s,
            &op,
            "acme",
            json!({"name": "mirror", "kind": "scim",
                   "url": format!("{}/tenants/app/scim/v2", s.origin), "token": app}),
        )
        .await;
        let mut c = Console::operator(s).await;
        let path = format!("/console/t/acme/delivery/{id}");
        let page = c.get(&path).await;
        page.expect(200);
        assert!(page.contains("Reconcile now"), "{}", page.body);
        assert!(page.contains(&format!("href=\"{path}/repair\"")));

        let page = c.post(&format!("{path}/reconcile"), &[]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        let job_path = page.location().to_owned();
        let job = job_path
            .strip_prefix("/console/t/acme/jobs/")
            .unwrap_or_else(|| panic!("{job_path}"))
            .to_owned();
        let first = c.get(&job_path).await;
        first.expect(200);
        assert!(
            first.contains("Reconciliation (report only)"),
            "{}",
            first.body
        );
        if first.contains("<strong id=\"job-status\">queued</strong>")
            || first.contains("<strong id=\"job-status\">running</strong>")
        {
            assert!(first.contains("hx-trigger=\"every 1s\""), "{}", first.body);
        }
        let done = until(&mut c, &job_path, "the job is done", |p| {
            assert!(!p.contains("id=\"job-status\">failed<"), "{}", p.body);
            p.contains("<strong id=\"job-status\">done</strong>")
        })
        .await;
        assert!(!done.contains("hx-trigger"), "no polling once done");
        // What htmx polls: the progress alone.
        let request = reqwest::Client::new()
            .get(format!("{}{job_path}", s.origin))
            .header("HX-Request", "true")
            .header("HX-Target", "progress");
        let fragment = c.send(request).await;
        assert_eq!(fragment.status, 200, "{}", fragment.body);
        assert!(
            fragment.contains("<section id=\"progress\""),
            "{}",
            fragment.body
        );
        assert!(!fragment.contains("<html"), "a fragment, not a page");
        assert!(done.contains("missing"), "{}", done.body);
        assert!(
            done.contains("ada@acme.test"),
            "the report names ada: {}",
            done.body
        );
        let api = s
            .get(&format!("/tenants/acme/jobs/{job}"), &op)
            .await
            .expect(200);
        assert_eq!(
            (&api["status"], &api["payload"]["dryRun"]),
            (&json!("done"), &json!(true))
        );
        // The target's page lists the run, linked to its job page.
        let page = c.get(&path).await;
        assert!(page.contains("Reconciliation runs"), "{}", page.body);
        assert!(
            page.contains(&format!("href=\"/console/t/acme/jobs/{job}\"")),
            "{}",
            page.body
        );
        assert!(
            page.contains("<td>report</td><td>done</td>"),
            "{}",
            page.body
        );

        // Repairing goes through a confirmation, then queues a repair.
        let confirm = c.get(&format!("{path}/repair")).await;
        confirm.expect(200);
        assert!(
            confirm.contains("Repair the drift of “mirror”?"),
            "{}",
            confirm.body
        );
        let page = c
            .post(&format!("{path}/reconcile"), &[("repair", "yes")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let repair = page.location().rsplit('/').next().unwrap().to_owned();
        let api = s
            .get(&format!("/tenants/acme/jobs/{repair}"), &op)
            .await
            .expect(200);
        assert_eq!(api["payload"]["dryRun"], false, "{api}");
    })
    .await;
}

/// The held change ids of `slug`, oldest first, per the API.
async fn held_ids(s: &Server, op: &str, slug: &str) -> Vec<String> {
    let held = s
        .get(&format!("/tenants/{slug}/held-changes"), op)
        .await
        .expect(200);
    held["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_i64().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn console_releases_and_discards_held_deletions() {
    each_backend(async |s| {
        let op = s.operator().await;
        let scim = s.tenant(&op, "acme").await;
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(s.scim_user("acme", &scim, &format!("u{i}@acme.test")).await);
        }
        let mut c = tenant_admin(s, &op, "acme", "ann@acme.test").await;
        let page = c.get("/console/t/acme/safety").await;
        page.expect(200);
        assert!(page.contains("aria-current=\"page\">Deletion safety</a>"));
        assert!(page.contains("value=\"500\""), "the default: {}", page.body);
        assert!(page.contains("Nothing is held."));

        // A threshold of 2 per hour, no share limit.
        let page = c
            .post(
                "/console/t/acme/safety/policy",
                &[
                    ("maxDeletions", "2"),
                    ("maxPercent", ""),
                    ("windowMinutes", "60"),
                    ("graceDays", "30"),
                    ("version", "0"),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/console/t/acme/safety?saved=policy");
        let policy = s
            .get("/tenants/acme/deletion-safety", &op)
            .await
            .expect(200);
        assert_eq!(
            (
                &policy["maxDeletions"],
                &policy["maxPercent"],
                &policy["version"]
            ),
            (&json!(2), &Value::Null, &json!(1)),
            "{policy}"
        );

        // Five deletions: two pass, three are held.
        for id in &ids[..5] {
            s.scim("DELETE", "acme", &format!("/Users/{id}"), &scim, None)
                .await
                .expect(204);
        }
        let held = held_ids(s, &op, "acme").await;
        assert_eq!(held.len(), 3, "{held:?}");
        let page = c.get("/console/t/acme/safety").await;
        assert!(
            page.contains("<span class=\"badge bad\">tripped</span>"),
            "{}",
            page.body
        );
        for (h, user) in held
            .iter()
            .zip(["u2@acme.test", "u3@acme.test", "u4@acme.test"])
        {
            assert!(page.contains(&format!("id=\"held-{h}\"")), "{}", page.body);
            assert!(page.contains(user), "{user}: {}", page.body);
        }

        // Nothing selected: the page again, the error next to the list.
        let page = c.post("/console/t/acme/safety/held/release", &[]).await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"held-error\""), "{}", page.body);
        assert!(page.contains("select at least one held change"));

        // Release the first.
        let page = c
            .post("/console/t/acme/safety/held/release", &[("id", &held[0])])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/console/t/acme/safety?released=1");
        assert!(
            c.get(page.location())
                .await
                .contains("1 held change released")
        );
        assert_eq!(held_ids(s, &op, "acme").await, held[1..]);

        // Discard the rest: reviewing changes nothing, the confirmation
        // names them, its form discards them.
        let page = c
            .post(
                "/console/t/acme/safety/held/discard/review",
                &[("id", &held[1]), ("id", &held[2])],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let confirm_path = page.location().to_owned();
        assert_eq!(
            confirm_path,
            format!(
                "/console/t/acme/safety/held/discard?id={}&id={}",
                held[1], held[2]
            )
        );
        let confirm = c.get(&confirm_path).await;
        confirm.expect(200);
        assert!(
            confirm.contains("Discard 2 held changes?"),
            "{}",
            confirm.body
        );
        assert!(confirm.contains("u3@acme.test") && confirm.contains("u4@acme.test"));
        assert_eq!(held_ids(s, &op, "acme").await, held[1..]);
        let page = c
            .post(
                "/console/t/acme/safety/held/discard",
                &[("id", &held[1]), ("id", &held[2])],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/console/t/acme/safety?discarded=2");

        // Through the API: nothing held, the threshold no longer tripped,
        // both decisions audited as the tenant admin's.
        assert!(held_ids(s, &op, "acme").await.is_empty());
        let state = s
            .get("/tenants/acme/deletion-safety", &op)
            .await
            .expect(200);
        assert_eq!(
            (&state["held"], &state["tripped"]),
            (&json!(0), &json!(false)),
            "{state}"
        );
        let audit = s
            .get("/tenants/acme/audit?limit=1000", &op)
            .await
            .expect(200)
            .to_string();
        for action in ["deletion.policy", "deletion.release", "deletion.discard"] {
            assert!(audit.contains(action), "{action} audited: {audit}");
        }
        assert!(audit.contains("tenant-admin:ann@acme.test"));
        let page = c.get("/console/t/acme/safety").await;
        assert!(page.contains("Nothing is held."));
        let page = c.get("/console/t/acme/safety/held/discard").await;
        page.expect(200);
        assert!(page.contains("Nothing is held now."), "{}", page.body);
    })
    .await;
}

/// The protected users' ids of `slug`, per the API.
async fn protected_ids(s: &Server, op: &str, slug: &str) -> Vec<String> {
    let list = s
        .get(&format!("/tenants/{slug}/protected-users"), op)
        .await
        .expect(200);
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| str_of(&u["userId"]))
        .collect()
}

/// The soft-deleted users' ids of `slug`, per the API.
async fn deleted_ids(s: &Server, op: &str, slug: &str) -> Vec<String> {
    let list = s
        .get(&format!("/tenants/{slug}/deleted-users"), op)
        .await
        .expect(200);
    list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| str_of(&u["id"]))
        .collect()
}

#[tokio::test]
async fn console_protects_restores_and_only_an_operator_erases() {
    each_backend(async |s| {
        let op = s.operator().await;
        let scim = s.tenant(&op, "acme").await;
        let keeper = s.scim_user("acme", &scim, "keeper@acme.test").await;
        let grace = s.scim_user("acme", &scim, "grace@acme.test").await;
        let zelda = s.scim_user("acme", &scim, "zelda@acme.test").await;
        let mut c = tenant_admin(s, &op, "acme", "ann@acme.test").await;
        c.get("/console/t/acme/safety").await.expect(200);
        let protect = "/console/t/acme/safety/protected";

        // Refused protections: the field's error, the input kept.
        let page = c
            .post(protect, &[("user", "keeper@acme.test"), ("reason", " ")])
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"reason-error\""), "{}", page.body);
        assert!(page.contains("aria-describedby=\"reason-error\""));
        assert!(page.contains("value=\"keeper@acme.test\""), "input kept");
        let page = c
            .post(
                protect,
                &[("user", "nobody@acme.test"), ("reason", "on call")],
            )
            .await;
        assert_eq!(page.status, 404, "{}", page.body);
        assert!(page.contains("id=\"user-error\""), "{}", page.body);
        assert!(page.contains("value=\"on call\""), "input kept");
        assert!(protected_ids(s, &op, "acme").await.is_empty());

        // By userName, and by id.
        let page = c
            .post(
                protect,
                &[
                    ("user", "keeper@acme.test"),
                    ("reason", "break-glass admin"),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let page = c
            .post(protect, &[("user", &grace), ("reason", "auditor")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let mut both = protected_ids(s, &op, "acme").await;
        both.sort_unstable();
        let mut expected = vec![keeper.clone(), grace.clone()];
        expected.sort_unstable();
        assert_eq!(both, expected);
        let page = c.get("/console/t/acme/safety").await;
        assert!(page.contains("break-glass admin"), "{}", page.body);
        assert!(page.contains("tenant-admin:ann@acme.test"));
        assert!(page.contains(">keeper@acme.test</a>"));
        let unprotect = format!("/console/t/acme/safety/protected/{grace}/unprotect");
        assert_eq!(c.post(&unprotect, &[]).await.status, 303);
        assert_eq!(protected_ids(s, &op, "acme").await, [keeper.as_str()]);
        assert_eq!(c.post(&unprotect, &[]).await.status, 404);

        // A deleted user is listed and restored with its id.
        s.scim("DELETE", "acme", &format!("/Users/{grace}"), &scim, None)
            .await
            .expect(204);
        let restore = format!("/console/t/acme/safety/deleted/{grace}/restore");
        let page = c.get("/console/t/acme/safety").await;
        assert!(
            page.contains(&format!("action=\"{restore}\"")),
            "{}",
            page.body
        );
        let page = c.post(&restore, &[]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), format!("/console/t/acme/users/{grace}"));
        let user = s
            .scim("GET", "acme", &format!("/Users/{grace}"), &scim, None)
            .await
            .expect(200);
        assert_eq!(user["userName"], "grace@acme.test");
        assert_eq!(c.post(&restore, &[]).await.status, 404);

        // Erasure: not offered to a tenant admin, refused when tried.
        s.scim("DELETE", "acme", &format!("/Users/{zelda}"), &scim, None)
            .await
            .expect(204);
        let erase = format!("/console/t/acme/users/{zelda}/erase");
        let page = c.get("/console/t/acme/safety").await;
        assert!(page.contains("zelda@acme.test"));
        assert!(!page.contains(&erase), "{}", page.body);
        assert_eq!(c.get(&erase).await.status, 403);
        let page = c.post(&erase, &[("confirm", "zelda@acme.test")]).await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert_eq!(deleted_ids(s, &op, "acme").await, [zelda.as_str()]);

        // An operator must type the userName again.
        let mut o = Console::operator(s).await;
        let page = o.get("/console/t/acme/safety").await;
        assert!(page.contains(&format!("href=\"{erase}\"")), "{}", page.body);
        let page = o.get(&erase).await;
        page.expect(200);
        assert!(
            page.contains("<h1>Erase zelda@acme.test?</h1>"),
            "{}",
            page.body
        );
        let page = o.post(&erase, &[("confirm", "zelda")]).await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"confirm-error\""), "{}", page.body);
        assert!(page.contains("value=\"zelda\""), "input kept");
        assert_eq!(deleted_ids(s, &op, "acme").await, [zelda.as_str()]);
        let page = o.post(&erase, &[("confirm", "zelda@acme.test")]).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(
            page.location(),
            format!("/console/t/acme/safety?erased={zelda}")
        );
        assert!(deleted_ids(s, &op, "acme").await.is_empty());
        let audit = s
            .get("/tenants/acme/audit?action=user.erase", &op)
            .await
            .expect(200);
        assert!(audit.to_string().contains(&zelda), "{audit}");
        assert_eq!(o.get(&erase).await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn console_delivery_and_safety_are_the_tenants_own() {
    each_backend(async |s| {
        let op = s.operator().await;
        let acme = s.tenant(&op, "acme").await;
        let globex = s.tenant(&op, "globex").await;
        let gus = s.scim_user("globex", &globex, "gus@globex.test").await;
        let gone = s.scim_user("globex", &globex, "gone@globex.test").await;
        s.scim("DELETE", "globex", &format!("/Users/{gone}"), &globex, None)
            .await
            .expect(204);
        let (hook, _) = target(
            s,
            &op,
            "globex",
            json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
        )
        .await;
        let (mirror, _) = target(
            s,
            &op,
            "globex",
            json!({"name": "mirror", "kind": "scim",
                   "url": format!("{}/tenants/acme/scim/v2", s.origin), "token": acme}),
        )
        .await;
        let job = s
            .api(
                "POST",
                &format!("/tenants/globex/targets/{mirror}/reconcile"),
                Some(&op),
                None,
            )
            .await
            .expect(202);
        let job = str_of(&job["id"]);
        let ann_user = s.scim_user("acme", &acme, "ann.user@acme.test").await;
        s.scim("DELETE", "acme", &format!("/Users/{ann_user}"), &acme, None)
            .await
            .expect(204);

        let mut c = tenant_admin(s, &op, "acme", "ann@acme.test").await;
        let g = "/console/t/globex";
        let a = "/console/t/acme";
        for path in [
            format!("{g}/delivery"),
            format!("{g}/delivery/{hook}"),
            format!("{g}/delivery/{hook}/dead-letters/replay"),
            format!("{g}/delivery/{mirror}/repair"),
            format!("{g}/jobs/{job}"),
            format!("{g}/users/{gus}/timeline"),
            format!("{g}/safety"),
            format!("{g}/safety/held/discard"),
            format!("{g}/users/{gone}/erase"),
            // Another tenant's things named under one's own tenant.
            format!("{a}/delivery/{hook}"),
            format!("{a}/delivery/{mirror}/repair"),
            format!("{a}/jobs/{job}"),
            format!("{a}/users/{gus}/timeline"),
        ] {
            let page = c.get(&path).await;
            assert_eq!(page.status, 404, "{path}: {}", page.body);
            assert!(!page.contains("Tenant globex"), "{path} leaks the name");
            assert!(!page.contains("gus@globex.test"), "{path} leaks a user");
            assert!(!page.contains("127.0.0.1:9/hook"), "{path} leaks a target");
        }
        let policy = [
            ("maxDeletions", "1"),
            ("maxPercent", ""),
            ("windowMinutes", "60"),
            ("graceDays", "0"),
            ("version", "0"),
        ];
        let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
            (
                format!("{g}/delivery/{hook}/enabled"),
                vec![("enabled", "false")],
            ),
            (format!("{g}/delivery/{hook}/dead-letters/1/replay"), vec![]),
            (format!("{g}/delivery/{hook}/dead-letters/replay"), vec![]),
            (
                format!("{g}/delivery/{mirror}/reconcile"),
                vec![("repair", "yes")],
            ),
            (format!("{g}/safety/policy"), policy.to_vec()),
            (format!("{g}/safety/held/release"), vec![("all", "yes")]),
            (format!("{g}/safety/held/discard/review"), vec![("id", "1")]),
            (format!("{g}/safety/held/discard"), vec![("all", "yes")]),
            (
                format!("{g}/safety/protected"),
                vec![("user", gus.as_str()), ("reason", "evil")],
            ),
            (format!("{g}/safety/protected/{gus}/unprotect"), vec![]),
            (format!("{g}/safety/deleted/{gone}/restore"), vec![]),
            (
                format!("{g}/users/{gone}/erase"),
                vec![("confirm", "gone@globex.test")],
            ),
            (
                format!("{a}/delivery/{hook}/enabled"),
                vec![("enabled", "false")],
            ),
            (format!("{a}/delivery/{mirror}/reconcile"), vec![]),
            (
                format!("{a}/safety/protected"),
                vec![("user", gus.as_str()), ("reason", "evil")],
            ),
            (format!("{a}/safety/deleted/{gone}/restore"), vec![]),
        ];
        for (path, fields) in &posts {
            let page = c.post(path, fields).await;
            assert_eq!(page.status, 404, "{path}: {}", page.body);
            assert!(!page.contains("gus@globex.test"), "{path} leaks a user");
        }
        // Nothing changed in globex.
        let t = s
            .get(&format!("/tenants/globex/targets/{hook}"), &op)
            .await
            .expect(200);
        assert_eq!(t["enabled"], true);
        let state = s
            .get("/tenants/globex/deletion-safety", &op)
            .await
            .expect(200);
        assert_eq!(state["version"], 0);
        assert!(protected_ids(s, &op, "globex").await.is_empty());
        assert!(protected_ids(s, &op, "acme").await.is_empty());
        assert_eq!(deleted_ids(s, &op, "globex").await, [gone.as_str()]);

        // Erasing is an operator's: a tenant admin is refused in their own
        // tenant, and nothing is erased.
        let erase = format!("{a}/users/{ann_user}/erase");
        assert_eq!(c.get(&erase).await.status, 403);
        let page = c.post(&erase, &[("confirm", "ann.user@acme.test")]).await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert_eq!(deleted_ids(s, &op, "acme").await, [ann_user.as_str()]);
    })
    .await;
}

#[tokio::test]
async fn console_delivery_and_safety_answer_bad_input_with_a_page_and_change_nothing() {
    each_backend(async |s| {
        let op = s.operator().await;
        let scim = s.tenant(&op, "acme").await;
        let ada = s.scim_user("acme", &scim, "ada@acme.test").await;
        let (hook, _) = target(
            s,
            &op,
            "acme",
            json!({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
        )
        .await;
        let mut c = Console::operator(s).await;
        let a = "/console/t/acme";
        c.get(&format!("{a}/safety")).await.expect(200);

        // Policy fields that do not read, or that the store refuses: the
        // form again with the error next to the field and the input kept.
        let valid = [
            ("maxDeletions", "10"),
            ("maxPercent", ""),
            ("windowMinutes", "60"),
            ("graceDays", "30"),
            ("version", "0"),
        ];
        for (field, bad) in [
            ("maxDeletions", "ten"),
            ("maxPercent", "5%"),
            ("windowMinutes", ""),
            ("graceDays", "-1"),
            ("maxPercent", "0"),
            ("windowMinutes", "99999999"),
        ] {
            let fields: Vec<(&str, &str)> = valid
                .iter()
                .map(|(k, v)| if *k == field { (*k, bad) } else { (*k, *v) })
                .collect();
            let page = c.post(&format!("{a}/safety/policy"), &fields).await;
            assert_eq!(page.status, 422, "{field}={bad}: {}", page.body);
            assert!(
                page.contains(&format!("id=\"{field}-error\"")),
                "{field}={bad}: {}",
                page.body
            );
            assert!(page.contains(&format!("aria-describedby=\"{field}-error\"")));
            assert!(
                page.contains(&format!("value=\"{bad}\"")),
                "{field}: input kept"
            );
        }
        // A stale version: refused as a whole, nothing saved.
        let mut stale = valid.to_vec();
        stale[4] = ("version", "7");
        let page = c.post(&format!("{a}/safety/policy"), &stale).await;
        assert_eq!(page.status, 412, "{}", page.body);
        assert!(page.contains("id=\"policy-error\""), "{}", page.body);
        let state = s
            .get("/tenants/acme/deletion-safety", &op)
            .await
            .expect(200);
        assert_eq!(
            (&state["version"], &state["maxDeletions"]),
            (&json!(0), &json!(500))
        );

        // Unknown or malformed ids and queries: 4xx pages.
        let nil = "00000000-0000-0000-0000-000000000000";
        for (path, status) in [
            (format!("{a}/delivery/not-a-uuid"), 404),
            (format!("{a}/delivery/{nil}"), 404),
            (format!("{a}/delivery/{nil}/dead-letters/replay"), 404),
            (format!("{a}/delivery/{hook}?status=lost"), 400),
            (format!("{a}/delivery/{hook}?after=x"), 400),
            (format!("{a}/delivery/{hook}?before=0"), 400),
            (format!("{a}/delivery/{hook}/repair"), 400),
            (format!("{a}/jobs/nope"), 404),
            (format!("{a}/users/nobody/timeline"), 404),
            (format!("{a}/users/nobody/erase"), 404),
            (format!("{a}/safety?released=many"), 400),
            (format!("{a}/safety/held/discard?id=abc"), 400),
            (format!("{a}/safety/held/discard?id=999"), 409),
        ] {
            let page = c.get(&path).await;
            assert_eq!(page.status, status, "{path}: {}", page.body);
            assert!(
                page.header("content-type")
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
        }
        for (path, fields, status) in [
            (
                format!("{a}/delivery/{hook}/dead-letters/999/replay"),
                vec![],
                404,
            ),
            (
                format!("{a}/delivery/{hook}/dead-letters/abc/replay"),
                vec![],
                404,
            ),
            (
                format!("{a}/delivery/{nil}/dead-letters/replay"),
                vec![],
                404,
            ),
            (
                format!("{a}/delivery/{hook}/enabled"),
                vec![("enabled", "maybe")],
                400,
            ),
            (format!("{a}/delivery/{hook}/reconcile"), vec![], 400),
            (
                format!("{a}/delivery/{hook}/reconcile"),
                vec![("repair", "perhaps")],
                400,
            ),
            (format!("{a}/safety/protected/{ada}/unprotect"), vec![], 404),
            (format!("{a}/safety/deleted/{ada}/restore"), vec![], 404),
        ] {
            let page = c.post(&path, &fields).await;
            assert_eq!(page.status, status, "{path} {fields:?}: {}", page.body);
        }
        // Held changes named wrongly: the safety page, the error next to
        // the held changes.
        for (fields, status) in [
            (vec![("id", "999")], 409),
            (vec![("id", "abc")], 422),
            (vec![], 422),
        ] {
            for action in ["release", "discard", "discard/review"] {
                let path = format!("{a}/safety/held/{action}");
                let page = c.post(&path, &fields).await;
                let expected = if action == "discard/review" && status == 409 {
                    // Reviewing only leads to the confirmation, which
                    // answers 409 for it.
                    303
                } else {
                    status
                };
                assert_eq!(page.status, expected, "{path} {fields:?}: {}", page.body);
                if expected != 303 {
                    assert!(page.contains("id=\"held-error\""), "{path}: {}", page.body);
                }
            }
        }
        // Nothing changed.
        let t = s
            .get(&format!("/tenants/acme/targets/{hook}"), &op)
            .await
            .expect(200);
        assert_eq!(t["enabled"], true);
        assert!(protected_ids(s, &op, "acme").await.is_empty());
        let user = s
            .scim("GET", "acme", &format!("/Users/{ada}"), &scim, None)
            .await
            .expect(200);
        assert_eq!(user["userName"], "ada@acme.test");
    })
    .await;
}
