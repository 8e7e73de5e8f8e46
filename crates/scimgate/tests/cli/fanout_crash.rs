//! A super tenant across crashes: `scimgate serve` is killed with SIGKILL
//! in the middle of concurrent SCIM writes into a super tenant, and again
//! in the middle of a re-route job. After each restart, every write the
//! IdP saw acknowledged is there, and every child holds exactly the copies
//! its super tenant's committed state routes to it (a write and its copies
//! commit together or not at all), each with its own event; the killed
//! re-route job is taken over and finishes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use store::{EventType, JobStatus, ListQuery, NewToken, Scope, Tenant, TenantStore};
use testkit::backends;

use crate::seeded::Db;
use crate::support::*;

const CHILDREN: [&str; 3] = ["c0", "c1", "c2"];
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Users seeded (unrouted) before the re-route, so that its job runs in
/// several batches and the kill lands between two of them.
const SEEDED: usize = 2_500;

/// Rules routing domain `d{k}` to child `k` plus `shift`, domain `d0`
/// also to the child after it (one user in two children), domain `d9`
/// only when `shift` is not 0, and the members of group `staff` to the
/// last child.
fn rules(shift: usize) -> Value {
    let mut rules = Vec::new();
    for k in 0..3 {
        rules.push(json!({
            "id": format!("d{k}"),
            "child": CHILDREN[(k + shift) % 3],
            "filter": format!("userName ew \"@d{k}.example\""),
        }));
    }
    rules.push(json!({
        "id": "d0-too",
        "child": CHILDREN[(1 + shift) % 3],
        "filter": "userName ew \"@d0.example\"",
    }));
    if shift > 0 {
        rules.push(json!({
            "id": "d9",
            "child": CHILDREN[0],
            "filter": "userName ew \"@d9.example\"",
        }));
    }
    rules.push(json!({"id": "staff", "child": CHILDREN[2], "group": {"displayName": "staff"}}));
    json!({ "rules": rules })
}

/// The children user `name` (a member of staff or not) goes to, under
/// [`rules`]`(shift)`.
fn routes(name: &str, staff: bool, shift: usize) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for k in 0..3 {
        if name.ends_with(&format!("@d{k}.example")) {
            out.insert(CHILDREN[(k + shift) % 3]);
            if k == 0 {
                out.insert(CHILDREN[(1 + shift) % 3]);
            }
        }
    }
    if shift > 0 && name.ends_with("@d9.example") {
        out.insert(CHILDREN[0]);
    }
    if staff {
        out.insert(CHILDREN[2]);
    }
    out
}

fn all(start_index: u64) -> ListQuery {
    ListQuery {
        filter: None,
        sort_by: None,
        descending: false,
        start_index,
        count: 1_000,
        with_members: true,
        user_extras: Default::default(),
    }
}

/// userName -> (id, active) of every user of a tenant.
async fn users_of(dir: &TenantStore) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    let mut start = 1;
    loop {
        let page = dir.list_users(&all(start)).await.expect("list users");
        let n = page.resources.len() as u64;
        for r in page.resources {
            let name = r.document["userName"]
                .as_str()
                .expect("userName")
                .to_owned();
            let active = r.document["active"].as_bool().unwrap_or(true);
            assert!(out.insert(name, (r.id, active)).is_none(), "duplicate name");
        }
        if n == 0 || start + n > page.total {
            return out;
        }
        start += n;
    }
}

/// Ids of the members of group `staff` of a tenant, if it has one.
async fn staff_of(dir: &TenantStore) -> Option<BTreeSet<String>> {
    let page = dir.list_groups(&all(1)).await.expect("list groups");
    let group = page
        .resources
        .into_iter()
        .find(|g| g.document["displayName"] == "staff")?;
    Some(
        group
            .members
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.value)
            .collect(),
    )
}

/// Asserts that every child holds exactly what the super tenant's
/// committed state routes to it under [`rules`]`(shift)`: its routed
/// users active under the same userName, the others deactivated or
/// absent, its copy of staff with exactly the routed members, and a
/// `user.created` event for each copy. Returns the super tenant's users.
async fn assert_routed(
    db: &Db,
    msp: &Tenant,
    children: &[Tenant],
    shift: usize,
) -> BTreeMap<String, (String, bool)> {
    let source = db.dir(msp);
    let users = users_of(&source).await;
    let staff = staff_of(&source).await.expect("staff in the super tenant");
    for (slug, child) in CHILDREN.iter().zip(children) {
        let dir = db.dir(child);
        let copies = users_of(&dir).await;
        let expected: BTreeSet<&String> = users
            .iter()
            .filter(|(name, (id, _))| routes(name, staff.contains(id), shift).contains(slug))
            .map(|(name, _)| name)
            .collect();
        let active: BTreeSet<&String> = copies
            .iter()
            .filter(|(_, (_, active))| *active)
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            active.len(),
            expected.len(),
            "{slug} (shift {shift}): {} active copies, {} routed users",
            active.len(),
            expected.len()
        );
        assert_eq!(active, expected, "{slug} (shift {shift})");
        for (name, (copy_id, _)) in &copies {
            assert!(
                users.contains_key(name),
                "{slug} holds '{name}', which is no user of the super tenant"
            );
            let events = dir.resource_events(copy_id).await.expect("events");
            assert!(
                events
                    .iter()
                    .any(|e| e.event_type == EventType::UserCreated),
                "{slug}: no user.created for the copy of '{name}'"
            );
        }
        let routed_staff: BTreeSet<String> = staff
            .iter()
            .filter_map(|id| {
                let (name, _) = users.iter().find(|(_, (uid, _))| uid == id)?;
                copies.get(name).map(|(copy, _)| copy.clone())
            })
            .collect();
        match staff_of(&dir).await {
            Some(members) if *slug == CHILDREN[2] => {
                assert_eq!(members, routed_staff, "{slug}: members of its staff copy");
            }
            None if *slug != CHILDREN[2] => {}
            other => panic!("{slug}: staff copy {other:?}"),
        }
    }
    users
}

/// What the IdP saw acknowledged.
#[derive(Default)]
struct Acked {
    /// id -> the userName last acknowledged.
    names: BTreeMap<String, String>,
    /// id -> the userName of a PATCH sent and never answered (the kill
    /// may have landed before or after its commit).
    in_flight: BTreeMap<String, String>,
    /// Ids whose addition to staff was acknowledged.
    staff: BTreeSet<String>,
}

/// One IdP connection writing until the server goes away: per user a
/// POST, a PATCH moving it to the next domain, and for every third one
/// a member PATCH adding it to staff.
fn writer(scim: String, token: String, staff: String, n: usize, acked: Arc<Mutex<Acked>>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let send = |method: &str, url: String, body: Value| -> Option<(u16, Value)> {
        rt.block_on(async {
            let resp = client
                .request(method.parse().expect("method"), url)
                .bearer_auth(&token)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .ok()?;
            let status = resp.status().as_u16();
            let text = resp.text().await.ok()?;
            Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        })
    };
    for i in 0..400 {
        let name = format!("w{n}-{i}@d{}.example", i % 3);
        let Some((status, body)) = send("POST", format!("{scim}/Users"), user(&name)) else {
            return;
        };
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().expect("id").to_owned();
        acked.lock().expect("acked").names.insert(id.clone(), name);
        let moved = format!("w{n}-{i}@d{}.example", (i + 1) % 3);
        let sent = acked
            .lock()
            .expect("acked")
            .in_flight
            .insert(id.clone(), moved.clone());
        assert!(sent.is_none());
        let patch = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "path": "userName", "value": moved}]});
        let Some((status, body)) = send("PATCH", format!("{scim}/Users/{id}"), patch) else {
            return;
        };
        assert_eq!(status, 200, "{body}");
        let mut seen = acked.lock().expect("acked");
        seen.in_flight.remove(&id);
        seen.names.insert(id.clone(), moved);
        drop(seen);
        if i % 3 == 0 {
            let add = json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": id}]}]});
            let Some((status, body)) = send("PATCH", format!("{scim}/Groups/{staff}"), add) else {
                return;
            };
            assert!(status == 200 || status == 204, "{status} {body}");
            acked.lock().expect("acked").staff.insert(id);
        }
    }
}

fn serve(db: &Db) -> Server {
    let mut cmd = db.cmd(&["serve", "--listen", "127.0.0.1:0"]);
    cmd.env("SCIMGATE_JOB_LEASE_SECS", "5");
    Server::start(cmd)
}

fn kill(server: Server) {
    server.proc.signal("KILL");
    let mut proc = server.proc;
    proc.wait(STOP);
}

#[test]
fn a_killed_server_keeps_every_acknowledged_write_with_its_copies() {
    for which in backends() {
        let db = Db::new(which);
        let msp = db.tenant("msp");
        let children: Vec<Tenant> = CHILDREN.iter().map(|c| db.tenant(c)).collect();
        db.json(&["tenant", "kind", "msp", "super"]);
        for c in CHILDREN {
            db.json(&["tenant", "link", "msp", c]);
        }
        let set = db.run_with_stdin(
            &["routing", "set", "msp", "--file", "-", "--json"],
            &rules(0).to_string(),
        );
        assert!(set.status.success(), "{}", set.describe());
        let token = db
            .block_on(db.store.admin().issue_token(
                &msp,
                NewToken {
                    name: "idp".into(),
                    scopes: vec![Scope::ScimWrite, Scope::ScimRead],
                    expires_at: None,
                },
                "test",
            ))
            .expect("token")
            .secret;

        // SCIM writes from eight connections; the kill lands among them.
        let server = serve(&db);
        let scim = format!("{}/tenants/msp/scim/v2", server.listen_url);
        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "staff"});
        let reply = http().post(&format!("{scim}/Groups"), &token, &group);
        assert_eq!(reply.status, 201, "{}", reply.text);
        let staff = reply.json()["id"].as_str().expect("id").to_owned();
        let acked = Arc::new(Mutex::new(Acked::default()));
        let writers: Vec<_> = (0..8)
            .map(|n| {
                let (scim, token, staff, acked) =
                    (scim.clone(), token.clone(), staff.clone(), acked.clone());
                std::thread::spawn(move || writer(scim, token, staff, n, acked))
            })
            .collect();
        assert!(
            eventually(Duration::from_secs(60), || acked
                .lock()
                .expect("acked")
                .names
                .len()
                >= 120),
            "{which:?}: too few writes acknowledged"
        );
        kill(server);
        for w in writers {
            w.join().expect("writer");
        }
        let acked = std::mem::take(&mut *acked.lock().expect("acked"));

        let users = db.block_on(assert_routed(&db, &msp, &children, 0));
        let by_id: BTreeMap<&String, &String> =
            users.iter().map(|(name, (id, _))| (id, name)).collect();
        for (id, name) in &acked.names {
            let now = by_id.get(id).copied();
            assert!(
                now == Some(name) || now.is_some() && now == acked.in_flight.get(id),
                "{which:?}: acknowledged write lost: {id} is {now:?}, acknowledged as {name}"
            );
        }
        let staff_now = db.block_on(staff_of(&db.dir(&msp))).expect("staff");
        assert!(
            acked.staff.is_subset(&staff_now),
            "{which:?}: acknowledged member additions lost"
        );

        // Users no rule routes yet, for the re-route to carry.
        let source = db.dir(&msp);
        db.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..16 {
                let (source, next) = (source.clone(), next.clone());
                tasks.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= SEEDED {
                            return;
                        }
                        source
                            .create_user(user(&format!("s{i}@d9.example")))
                            .await
                            .expect("seed");
                    }
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.expect("seeding task");
            }
        });

        // The re-route job, killed between two of its batches.
        let server = serve(&db);
        let change = db.run_with_stdin(
            &[
                "routing",
                "set",
                "msp",
                "--file",
                "-",
                "--no-wait",
                "--json",
            ],
            &rules(1).to_string(),
        );
        assert!(change.status.success(), "{}", change.describe());
        let job_id = change.json()["job"]["id"]
            .as_str()
            .expect("job id")
            .to_owned();
        let job = || db.block_on(source.job(&job_id)).expect("job");
        assert!(
            eventually(Duration::from_secs(120), || {
                let j = job();
                assert_ne!(
                    j.status,
                    JobStatus::Done,
                    "{which:?}: finished before the kill"
                );
                j.progress.processed > 0
            }),
            "{which:?}: the re-route job made no progress"
        );
        kill(server);
        let j = job();
        assert!(
            j.status == JobStatus::Running && j.progress.processed < j.progress.total,
            "{which:?}: not killed mid-job: {:?} {:?}",
            j.status,
            j.progress
        );

        // Restarted, the server takes the job over once its lease runs out.
        let server = serve(&db);
        assert!(
            eventually(Duration::from_secs(120), || job().status == JobStatus::Done),
            "{which:?}: the re-route job was not taken over: {:?}",
            job()
        );
        assert!(job().attempts >= 2, "{which:?}: {:?}", job());
        let users = db.block_on(assert_routed(&db, &msp, &children, 1));
        assert!(users.len() > SEEDED, "{which:?}");
        // And SCIM writes fan out as before.
        let scim = format!("{}/tenants/msp/scim/v2", server.listen_url);
        let reply = http().post(&format!("{scim}/Users"), &token, &user("late@d2.example"));
        assert_eq!(reply.status, 201, "{}", reply.text);
        db.block_on(assert_routed(&db, &msp, &children, 1));
        let (status, output) = server.terminate();
        assert_eq!(status.code(), Some(0), "{output}");
    }
}
