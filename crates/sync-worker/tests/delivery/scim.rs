//! Outbound SCIM end to end: the application is a second, real scimgate
//! (its own store on its own database, its SCIM gateway on 127.0.0.1),
//! and the worker keeps it in line with the source tenant's directory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ::roles::{GroupMatch, Mapping, Mode, Policy, Role};
use actix_web::{App as ActixApp, HttpServer};
use gateway::{Gateway, GatewayConfig};
use scim::patch::{Member, MemberChange};
use serde_json::{Value, json};
use store::delivery::{DeliveryStatus, Target};
use store::{NewToken, Scope, Store, TenantStore};
use sync_worker::address::AddressPolicy;
use sync_worker::targets::{TargetError, TargetSpec, Targets};
use testkit::{TestDatabase, TestDb, backends};

use crate::support::*;
use crate::webhooks::wait_until;

/// The downstream application: a scimgate of its own.
struct Downstream {
    /// Its SCIM base URL.
    base: String,
    /// A `scim:write` token of its tenant.
    token: String,
    /// Its tenant's directory (to seed it directly).
    dir: TenantStore,
    /// Every request it answered: method and path.
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    client: reqwest::Client,
    server: actix_web::dev::ServerHandle,
    _store: Store,
    _db: TestDatabase,
}

impl Downstream {
    async fn start(which: TestDb) -> Downstream {
        let (db, store) = store(which).await;
        let dir = tenant(&store, "app").await;
        let token = store
            .admin()
            .issue_token(
                dir.tenant(),
                NewToken {
                    name: "scimgate".into(),
                    scopes: vec![Scope::ScimWrite],
                    expires_at: None,
                },
                "test",
            )
            .await
            .expect("token")
            .secret;
        let gw = Gateway::new(
            store.clone(),
            GatewayConfig::default(),
            &prometheus::Registry::new(),
        )
        .expect("gateway");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let server = HttpServer::new(move || {
            let gw = gw.clone();
            let log = log.clone();
            ActixApp::new()
                .wrap_fn(move |req, srv| {
                    log.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((req.method().to_string(), req.path().to_owned()));
                    actix_web::dev::Service::call(srv, req)
                })
                .configure(move |cfg| gw.configure(cfg))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        testkit::install_tls_provider();
        Downstream {
            base: format!("http://{addr}/scim/v2"),
            token,
            dir,
            seen,
            client: reqwest::Client::new(),
            server: handle,
            _store: store,
            _db: db,
        }
    }

    async fn stop(self) {
        self.server.stop(false).await;
    }

    /// Every resource of one endpoint, as the application serves them.
    async fn list(&self, endpoint: &str) -> Vec<Value> {
        let bytes = self
            .client
            .get(format!("{}/{endpoint}?count=1000", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("list")
            .bytes()
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("json");
        body["Resources"].as_array().cloned().unwrap_or_default()
    }

    /// What the application holds: users by userName (active, role
    /// names), groups by displayName (member userNames).
    async fn state(&self) -> Directory {
        let users = self.list("Users").await;
        let names: BTreeMap<String, String> = users
            .iter()
            .map(|u| (s(&u["id"]), s(&u["userName"])))
            .collect();
        let mut out = Directory::default();
        for u in &users {
            let roles: BTreeSet<String> = u["roles"]
                .as_array()
                .map(|a| a.iter().map(|r| s(&r["value"])).collect())
                .unwrap_or_default();
            let active = u["active"].as_bool().unwrap_or(true);
            out.users.insert(s(&u["userName"]), (active, roles));
        }
        for g in self.list("Groups").await {
            let members: BTreeSet<String> = g["members"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| {
                            let id = s(&m["value"]);
                            names.get(&id).cloned().unwrap_or(id)
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.groups.insert(s(&g["displayName"]), members);
        }
        out
    }
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Users (userName → active, roles) and groups (displayName → member
/// userNames), the way the comparison sees a directory.
#[derive(Debug, Default, PartialEq, Eq)]
struct Directory {
    users: BTreeMap<String, (bool, BTreeSet<String>)>,
    groups: BTreeMap<String, BTreeSet<String>>,
}

/// The source tenant's directory, with each user's effective roles.
async fn source_state(dir: &TenantStore) -> Directory {
    let query = store::ListQuery {
        filter: None,
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 1000,
        with_members: true,
        user_extras: Default::default(),
    };
    let users = dir.list_users(&query).await.expect("users").resources;
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let roles = dir.effective_roles(&ids).await.expect("roles");
    let mut names = BTreeMap::new();
    let mut out = Directory::default();
    for u in &users {
        let name = s(&u.document["userName"]);
        names.insert(u.id.clone(), name.clone());
        let effective: BTreeSet<String> = roles
            .get(&u.id)
            .map(|e| e.roles.iter().map(|r| r.role.clone()).collect())
            .unwrap_or_default();
        let active = u.document["active"].as_bool().unwrap_or(true);
        out.users.insert(name, (active, effective));
    }
    for g in dir.list_groups(&query).await.expect("groups").resources {
        let members = g
            .members
            .unwrap_or_default()
            .into_iter()
            .map(|m| names.get(&m.value).cloned().unwrap_or(m.value))
            .collect();
        out.groups.insert(s(&g.document["displayName"]), members);
    }
    out
}

/// A role policy: `viewer` by default, `admin` for members of Admins.
async fn set_policy(store: &Store, dir: &TenantStore) {
    let role = |name: &str| Role {
        name: name.into(),
        description: String::new(),
    };
    dir.set_role_policy(
        Policy {
            roles: vec![role("admin"), role("viewer")],
            default_role: Some("viewer".into()),
            mappings: vec![Mapping {
                group: GroupMatch::DisplayName("Admins".into()),
                role: "admin".into(),
                priority: 10,
            }],
            mode: Mode::Single,
        },
        None,
        "test",
    )
    .await
    .expect("policy");
    while store.run_next_role_job().await.expect("role job").is_some() {}
}

/// An outbound SCIM target of `dir` on `app`'s endpoint with `token`.
async fn scim_target(dir: &TenantStore, base: &str, token: &str) -> Target {
    let box_ = secrets();
    let created = Targets {
        store: dir,
        secrets: Some(&box_),
        policy: AddressPolicy {
            allow_private: true,
        },
    }
    .create(
        TargetSpec {
            name: "app".into(),
            kind: "scim".into(),
            url: base.into(),
            event_types: Vec::new(),
            token: Some(token.into()),
        },
        "test",
    )
    .await
    .expect("create target");
    assert!(created.secret.is_none(), "a SCIM token is never shown back");
    created.target
}

/// Waits until the application holds what the source holds; both states
/// when it does not.
async fn converge(source: &TenantStore, app: &Downstream) -> Result<(), String> {
    let done = wait_until(Duration::from_secs(30), || async {
        (source_state(source).await == app.state().await).then_some(())
    })
    .await;
    match done {
        Some(()) => Ok(()),
        None => Err(format!(
            "want {:#?}\ngot {:#?}",
            source_state(source).await,
            app.state().await
        )),
    }
}

fn user_with(name: &str, given: &str) -> Value {
    let mut u = user(name);
    u["name"] = json!({"givenName": given, "familyName": "Example"});
    u["emails"] =
        json!([{"value": format!("{name}@example.com"), "type": "work", "primary": true}]);
    u
}

/// Users, groups with members and derived roles, created, changed and
/// deleted in the source, end up the same in the application: userNames,
/// active flags, roles, group names and members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_mirrors_users_groups_members_and_roles() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        // Deletions final at once, so the application mirrors them (a soft
        // delete deactivates: `a_user_deleted_at_the_application_is_created_again`).
        let policy = store::safety::DeletionPolicy {
            grace_days: 0,
            ..store::safety::DeletionPolicy::default()
        };
        dir.set_deletion_policy(policy, None, "test")
            .await
            .expect("policy");
        set_policy(&store, &dir).await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, &app.token).await;
        let worker = start(&store, config());

        let mut ids = BTreeMap::new();
        for name in ["alice", "bob", "carol", "dave", "eve"] {
            let u = dir.create_user(user_with(name, name)).await.expect("user");
            ids.insert(name, u.id);
        }
        let member = |n: &str| Member::new(ids[n].clone());
        let admins = dir
            .create_group(group("Admins"), vec![member("alice")])
            .await
            .expect("Admins")
            .id;
        let staff = dir
            .create_group(
                group("Staff"),
                vec![member("bob"), member("carol"), member("dave")],
            )
            .await
            .expect("Staff")
            .id;
        let temp = dir
            .create_group(group("Temp"), vec![member("eve")])
            .await
            .expect("Temp")
            .id;
        converge(&dir, &app)
            .await
            .unwrap_or_else(|e| panic!("{which:?} after creation: {e}"));

        // Changes of every kind.
        dir.modify_user(&ids["bob"], None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Engineer");
            Ok(d)
        })
        .await
        .expect("title");
        dir.modify_user(&ids["carol"], None, |c| {
            let mut d = c.document.clone();
            d["active"] = json!(false);
            Ok(d)
        })
        .await
        .expect("deactivate");
        let (bob, alice) = (ids["bob"].clone(), ids["alice"].clone());
        dir.modify_group(&admins, None, move |c| {
            Ok((
                c.document.clone(),
                vec![
                    MemberChange::Add(vec![Member::new(bob.clone())]),
                    MemberChange::Remove(vec![alice.clone()]),
                ],
            ))
        })
        .await
        .expect("Admins members");
        dir.modify_group(&staff, None, |c| {
            let mut d = c.document.clone();
            d["displayName"] = json!("Team");
            Ok((d, Vec::new()))
        })
        .await
        .expect("rename");
        dir.delete_user(&ids["dave"], None)
            .await
            .expect("delete dave");
        dir.delete_group(&temp, None).await.expect("delete Temp");
        // A user who joins a group before anything else of theirs reaches
        // the application: pushed as a member first.
        let frank = dir
            .create_user(user_with("frank", "frank"))
            .await
            .expect("frank")
            .id;
        dir.modify_group(&admins, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Add(vec![Member::new(frank.clone())])],
            ))
        })
        .await
        .expect("frank joins");

        converge(&dir, &app)
            .await
            .unwrap_or_else(|e| panic!("{which:?} after changes: {e}"));
        let state = app.state().await;
        assert_eq!(
            state.users["bob"].1,
            BTreeSet::from(["admin".to_owned()]),
            "{which:?}: bob's role comes from Admins"
        );
        assert_eq!(
            state.users["alice"].1,
            BTreeSet::from(["viewer".to_owned()]),
            "{which:?}: alice is back to the default role"
        );
        assert!(!state.users.contains_key("dave"), "{which:?}");
        assert!(!state.groups.contains_key("Temp"), "{which:?}");
        assert!(!state.users["carol"].0, "{which:?}: carol is inactive");

        // Every event went through; none waits or died.
        worker.stop().await;
        for status in [DeliveryStatus::Pending, DeliveryStatus::Dead] {
            let left = dir
                .deliveries(target.id, status, 0, 100)
                .await
                .expect("deliveries");
            assert!(left.is_empty(), "{which:?}: {status:?}: {left:?}");
        }
        // The rest of each user came along, and the link is scimgate's id.
        let remote = app.list("Users").await;
        let bob = remote.iter().find(|u| u["userName"] == "bob").expect("bob");
        assert_eq!(bob["title"], "Engineer", "{which:?}");
        assert_eq!(bob["name"]["givenName"], "bob", "{which:?}");
        assert_eq!(bob["externalId"], json!(ids["bob"]), "{which:?}");
        app.stop().await;
    }
}

/// A user the application already has is linked, not created twice, and
/// later changes reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_remote_user_is_linked_not_duplicated() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        let existing = app
            .dir
            .create_user(user_with("Erin", "Erin"))
            .await
            .expect("remote erin")
            .id;
        let target = scim_target(&dir, &app.base, &app.token).await;
        let worker = start(&store, config());

        // Same person, userName in another case (userName is
        // case-insensitive).
        let erin = dir
            .create_user(user_with("erin", "Erin"))
            .await
            .expect("erin")
            .id;
        dir.modify_user(&erin, None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Manager");
            Ok(d)
        })
        .await
        .expect("title");

        let linked = wait_until(Duration::from_secs(30), || async {
            let users = app.list("Users").await;
            let erins: Vec<&Value> = users
                .iter()
                .filter(|u| s(&u["userName"]).eq_ignore_ascii_case("erin"))
                .collect();
            assert_eq!(erins.len(), 1, "{which:?}: one Erin: {users:?}");
            (erins[0]["title"] == "Manager").then(|| erins[0]["id"].clone())
        })
        .await;
        worker.stop().await;
        assert_eq!(linked, Some(json!(existing)), "{which:?}");
        assert_eq!(
            store
                .delivery()
                .remote_id(target.id, "User", &erin)
                .await
                .expect("link"),
            Some(existing),
            "{which:?}"
        );
        app.stop().await;
    }
}

/// A user deleted at the application behind scimgate's back is created
/// again on its next change (the PUT's 404 forgets the old id). Its
/// (soft) deletion in the source deactivates it there, a restore
/// reactivates the same user, and the purge deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_at_the_application_is_created_again() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, &app.token).await;
        let worker = start(&store, config());
        let gail = dir.create_user(user("gail")).await.expect("gail").id;
        let link = || async {
            store
                .delivery()
                .remote_id(target.id, "User", &gail)
                .await
                .expect("link")
        };
        let first = wait_until(Duration::from_secs(30), link)
            .await
            .unwrap_or_else(|| panic!("{which:?}: gail pushed"));
        app.dir
            .delete_user(&first, None)
            .await
            .expect("remote delete");

        dir.modify_user(&gail, None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Back");
            Ok(d)
        })
        .await
        .expect("title");
        let second = wait_until(Duration::from_secs(30), || async {
            link().await.filter(|id| *id != first)
        })
        .await
        .unwrap_or_else(|| panic!("{which:?}: gail created again"));
        let users = app.list("Users").await;
        assert_eq!(users.len(), 1, "{which:?}: {users:?}");
        assert_eq!(users[0]["id"], json!(second), "{which:?}");
        assert_eq!(users[0]["title"], "Back", "{which:?}");

        // A soft delete deactivates her there and keeps the link; the
        // restore reactivates the same user; the purge deletes her.
        dir.delete_user(&gail, None).await.expect("delete");
        let state = || async {
            let users = app.list("Users").await;
            users
                .first()
                .map(|u| (users.len(), u["id"].clone(), u["active"].clone()))
        };
        let off = wait_until(Duration::from_secs(30), || async {
            state().await.filter(|s| s.2 == json!(false))
        })
        .await;
        assert_eq!(
            off,
            Some((1, json!(second), json!(false))),
            "{which:?}: deactivated"
        );
        assert_eq!(
            link().await.as_deref(),
            Some(second.as_str()),
            "{which:?}: still linked"
        );
        dir.restore_user(&gail, "admin").await.expect("restore");
        let on = wait_until(Duration::from_secs(30), || async {
            state().await.filter(|s| s.2 == json!(true))
        })
        .await;
        assert_eq!(
            on,
            Some((1, json!(second), json!(true))),
            "{which:?}: the same user, active"
        );
        dir.delete_user(&gail, None).await.expect("delete again");
        let purged = store
            .purge_deleted(chrono::Utc::now() + chrono::Duration::days(31), 10)
            .await
            .expect("purge");
        assert_eq!(purged, 1);
        let gone = wait_until(Duration::from_secs(30), || async {
            link().await.is_none().then_some(())
        })
        .await;
        worker.stop().await;
        assert!(gone.is_some(), "{which:?}: the link is forgotten");
        assert!(app.list("Users").await.is_empty(), "{which:?}");
        let dead = dir
            .deliveries(target.id, DeliveryStatus::Dead, 0, 100)
            .await
            .expect("dead");
        assert!(dead.is_empty(), "{which:?}: {dead:?}");
        app.stop().await;
    }
}

/// An application that cannot be reached is retried, not given up on:
/// once the target points at it, every waiting event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_application_is_retried() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr");
        let target = scim_target(&dir, &format!("http://{closed}/scim/v2"), &app.token).await;
        let worker = start(&store, config());
        for name in ["hana", "ivan"] {
            dir.create_user(user(name)).await.expect("user");
        }
        let retried = wait_until(Duration::from_secs(30), || async {
            let pending = dir
                .deliveries(target.id, DeliveryStatus::Pending, 0, 100)
                .await
                .expect("pending");
            (pending.len() == 2
                && pending
                    .iter()
                    .all(|d| d.attempts >= 2 && d.last_status.is_none()))
            .then_some(())
        })
        .await;
        assert!(retried.is_some(), "{which:?}: both events retried");
        let box_ = secrets();
        Targets {
            store: &dir,
            secrets: Some(&box_),
            policy: AddressPolicy {
                allow_private: true,
            },
        }
        .update(target.id, None, Some(app.base.clone()), None, None, "test")
        .await
        .expect("new url");
        converge(&dir, &app)
            .await
            .unwrap_or_else(|e| panic!("{which:?}: {e}"));
        worker.stop().await;
        let dead = dir
            .deliveries(target.id, DeliveryStatus::Dead, 0, 100)
            .await
            .expect("dead");
        assert!(dead.is_empty(), "{which:?}: {dead:?}");
        app.stop().await;
    }
}

/// An application that refuses the token: each event is a dead letter
/// after one attempt, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_makes_dead_letters_not_retries() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, "not-the-token").await;
        let worker = start(&store, config());
        for name in ["ann", "ben", "cat"] {
            dir.create_user(user(name)).await.expect("user");
        }
        let dead = wait_until(Duration::from_secs(30), || async {
            let dead = dir
                .deliveries(target.id, DeliveryStatus::Dead, 0, 100)
                .await
                .expect("dead");
            (dead.len() == 3).then_some(dead)
        })
        .await
        .unwrap_or_else(|| panic!("{which:?}: three dead letters"));
        // Retries would have come within the test schedule's 200 ms.
        tokio::time::sleep(Duration::from_millis(600)).await;
        worker.stop().await;
        for d in &dead {
            assert_eq!(d.last_status, Some(401), "{which:?}: {d:?}");
            assert_eq!(d.attempts, 1, "{which:?}: {d:?}");
        }
        let attempts = dir
            .attempts(target.id, None, None, 100)
            .await
            .expect("attempts");
        assert_eq!(attempts.len(), 3, "{which:?}: {attempts:?}");
        assert!(
            attempts.iter().all(|a| a.outcome == "dead"
                && a.status_code == Some(401)
                && a.error.as_deref().is_some_and(|e| e.contains("/Users"))),
            "{which:?}: {attempts:?}"
        );
        assert!(app.list("Users").await.is_empty(), "{which:?}");
        app.stop().await;
    }
}

/// A SCIM target needs a token, a webhook may not have one; the token is
/// sealed like a webhook secret.
#[tokio::test]
async fn scim_targets_need_a_token_and_a_plain_base_url() {
    let (_db, store) = store(TestDb::Sqlite).await;
    let dir = tenant(&store, "acme").await;
    let box_ = secrets();
    let targets = Targets {
        store: &dir,
        secrets: Some(&box_),
        policy: AddressPolicy {
            allow_private: true,
        },
    };
    let spec = |kind: &str, url: &str, token: Option<&str>| TargetSpec {
        name: format!("t-{kind}-{}", token.is_some()),
        kind: kind.into(),
        url: url.into(),
        event_types: Vec::new(),
        token: token.map(str::to_owned),
    };
    for bad in [
        spec("scim", "https://app.example.com/scim/v2", None),
        spec("scim", "https://app.example.com/scim/v2", Some("")),
        spec("scim", "https://app.example.com/scim/v2", Some("two words")),
        spec("scim", "https://app.example.com/scim/v2?x=1", Some("t")),
        spec("webhook", "https://app.example.com/hook", Some("t")),
    ] {
        let err = targets
            .create(bad.clone(), "test")
            .await
            .expect_err("refused");
        assert!(matches!(err, TargetError::Invalid(_)), "{bad:?}: {err:?}");
    }
    let created = targets
        .create(
            spec(
                "scim",
                "https://app.example.com/scim/v2",
                Some("s3cret-token"),
            ),
            "test",
        )
        .await
        .expect("created");
    assert!(created.secret.is_none());
    let leased = store
        .delivery()
        .target(created.target.id)
        .await
        .expect("read")
        .expect("there");
    assert!(!leased.secrets.current.contains("s3cret-token"));
    assert_eq!(
        box_.open(&leased.secrets.current).expect("open"),
        "s3cret-token"
    );
    targets
        .set_token(created.target.id, "n3w-token", "test")
        .await
        .expect("new token");
    let leased = store
        .delivery()
        .target(created.target.id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        box_.open(&leased.secrets.current).expect("open"),
        "n3w-token"
    );
}

/// A count in a reconciliation report.
fn count(report: &Value, path: &str) -> u64 {
    report
        .pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX)
}

/// Runs the next queued reconciliation to its end.
async fn reconcile(store: &Store, dir: &TenantStore, target: &Target, dry_run: bool) -> Value {
    let id = dir
        .enqueue_job(sync_worker::reconcile::job(target.id, dry_run))
        .await
        .expect("queue");
    let handler = sync_worker::reconcile::Reconcile::new(store.clone(), &config(), Some(secrets()))
        .expect("handler");
    let job = store
        .job_worker(store::JobHandlers::new().with(handler))
        .run_next()
        .await
        .expect("run")
        .expect("a job ran");
    assert_eq!(job.id, id);
    assert_eq!(job.status, store::JobStatus::Done, "{job:?}");
    job.result.expect("a result")
}

/// Drift made behind scimgate's back (a user deleted at the application,
/// another deactivated there, roles and members changed there) and a
/// deletion that never reached the application are reported by a dry
/// run, which changes nothing, and repaired by a real run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reports_drift_and_repairs_it() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        set_policy(&store, &dir).await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, &app.token).await;
        let worker = start(&store, config());
        let mut ids = BTreeMap::new();
        for name in ["alice", "bob", "carol", "dave"] {
            ids.insert(name, dir.create_user(user(name)).await.expect("user").id);
        }
        let admins = dir
            .create_group(
                group("Admins"),
                vec![
                    Member::new(ids["alice"].clone()),
                    Member::new(ids["bob"].clone()),
                ],
            )
            .await
            .expect("Admins")
            .id;
        converge(&dir, &app)
            .await
            .unwrap_or_else(|e| panic!("{which:?}: {e}"));
        worker.stop().await;

        // Drift.
        let remote = |local: &str| {
            let store = store.clone();
            let local = local.to_owned();
            let target = target.id;
            async move {
                store
                    .delivery()
                    .remote_id(target, "User", &local)
                    .await
                    .expect("link")
                    .expect("linked")
            }
        };
        let carol = remote(&ids["carol"]).await;
        app.dir
            .delete_user(&carol, None)
            .await
            .expect("delete carol there");
        let bob = remote(&ids["bob"]).await;
        app.dir
            .modify_user(&bob, None, |c| {
                let mut d = c.document.clone();
                d["active"] = json!(false);
                Ok(d)
            })
            .await
            .expect("deactivate bob there");
        let alice = remote(&ids["alice"]).await;
        app.dir
            .modify_user(&alice, None, |c| {
                let mut d = c.document.clone();
                d["roles"] = json!([{"value": "viewer"}]);
                Ok(d)
            })
            .await
            .expect("alice's roles there");
        let remote_admins = store
            .delivery()
            .remote_id(target.id, "Group", &admins)
            .await
            .expect("link")
            .expect("linked");
        let gone = alice.clone();
        app.dir
            .modify_group(&remote_admins, None, move |c| {
                Ok((
                    c.document.clone(),
                    vec![MemberChange::Remove(vec![gone.clone()])],
                ))
            })
            .await
            .expect("alice out of Admins there");
        // Deleted here while no worker runs: the application still has it.
        dir.delete_user(&ids["dave"], None)
            .await
            .expect("delete dave");

        let before = app.state().await;
        let report = reconcile(&store, &dir, &target, true).await;
        assert_eq!(
            count(&report, "/users/missing/count"),
            1,
            "{which:?}: {report:#}"
        );
        assert_eq!(report["users"]["missing"]["items"][0]["userName"], "carol");
        assert_eq!(
            count(&report, "/users/extra/count"),
            1,
            "{which:?}: {report:#}"
        );
        assert_eq!(report["users"]["extra"]["items"][0]["userName"], "dave");
        assert_eq!(
            count(&report, "/users/different/count"),
            2,
            "{which:?}: {report:#}"
        );
        let different: BTreeMap<String, Value> = report["users"]["different"]["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|d| (s(&d["userName"]), d["attributes"].clone()))
            .collect();
        assert_eq!(different["bob"], json!(["active"]), "{which:?}: {report:#}");
        assert_eq!(
            different["alice"],
            json!(["roles"]),
            "{which:?}: {report:#}"
        );
        assert_eq!(
            count(&report, "/groups/different/count"),
            1,
            "{which:?}: {report:#}"
        );
        assert_eq!(
            report["groups"]["different"]["items"][0]["attributes"],
            json!(["members"])
        );
        assert_eq!(
            count(&report, "/groups/missing/count"),
            0,
            "{which:?}: {report:#}"
        );
        assert_eq!(
            app.state().await,
            before,
            "{which:?}: a dry run changes nothing"
        );

        let report = reconcile(&store, &dir, &target, false).await;
        assert_eq!(
            count(&report, "/users/missing/count"),
            1,
            "{which:?}: {report:#}"
        );
        assert_eq!(report["repaired"], json!(5), "{which:?}: {report:#}");
        assert_eq!(
            app.state().await,
            source_state(&dir).await,
            "{which:?}: repaired"
        );
        let again = reconcile(&store, &dir, &target, true).await;
        for path in [
            "/users/missing/count",
            "/users/extra/count",
            "/users/different/count",
            "/groups/missing/count",
            "/groups/extra/count",
            "/groups/different/count",
        ] {
            assert_eq!(again.pointer(path), Some(&json!(0)), "{which:?}: {again:#}");
        }
        app.stop().await;
    }
}

/// A target's attribute mapping reaches the application: enterprise and
/// custom extension attributes renamed, transformed and mapped, exactly
/// as the preview (`Renderer::now`) shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_user_reaches_the_application_as_previewed() {
    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, &app.token).await;
        let spec = mapping::MappingSpec::from_json(&json!({"users": {"attributes": [
            {"target": "title", "source": format!("{ENT}:department"),
             "map": {"sales": "Sales Department"}},
            {"target": format!("{ENT}:costCenter"), "source": format!("{ENT}:department"),
             "map": {"Sales": "CC-100"}, "default": "CC-000"},
            {"target": format!("{ENT}:department"), "remove": true},
            {"target": "nickName", "source": format!("{CUSTOM}:badgeNumber"), "transform": "upper"},
            {"target": format!("{CUSTOM}:badgeNumber"), "remove": true},
            {"target": "displayName", "concat": [
                {"source": "name.givenName"}, {"text": " "}, {"source": "name.familyName"}]}
        ]}}))
        .expect("spec");
        let (stored, _) = dir
            .set_target_mapping(target.id, Some(spec.clone()), Some(0), false, "test")
            .await
            .expect("mapping");
        assert_eq!(stored.mapping_version, 1);
        let worker = start(&store, config());

        let mut doc = user_with("grace", "Grace");
        doc["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENT, CUSTOM]);
        doc[ENT] = json!({"department": "Sales", "employeeNumber": "1906"});
        doc[CUSTOM] = json!({"badgeNumber": "cobol-1"});
        let grace = dir.create_user(doc).await.expect("grace").id;

        let remote = wait_until(Duration::from_secs(30), || async {
            app.list("Users")
                .await
                .into_iter()
                .find(|u| u["userName"] == "grace")
        })
        .await;
        worker.stop().await;
        let remote = remote.expect("delivered");
        let checked = mapping::Mapping::parse(&spec).expect("valid");
        let renderer = sync_worker::envelope::Renderer {
            tenant: Some(&dir),
            mapping: Some(&checked),
        };
        let preview = renderer
            .now(store::ResourceKind::User, &[grace])
            .await
            .expect("preview");
        let after = &preview[0].1;
        assert_eq!(after["title"], "Sales Department", "{which:?}: {after}");
        assert_eq!(after["nickName"], "COBOL-1");
        assert_eq!(after["displayName"], "Grace Example");
        assert_eq!(
            after[ENT],
            json!({"employeeNumber": "1906", "costCenter": "CC-100"})
        );
        assert!(after.get(CUSTOM).is_none(), "{after}");
        for attr in ["title", "nickName", "displayName", ENT] {
            assert_eq!(
                remote[attr], after[attr],
                "{which:?}: {attr} as previewed: {remote}"
            );
        }
        assert!(remote.get(CUSTOM).is_none(), "{which:?}: {remote}");
        app.stop().await;
    }
}

/// An outbound target's profile: a 1,000-member group goes out in 10
/// PATCHes of 100 members (the default), in 4 with a limit of 300, and a
/// changed user by PATCH when the profile says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_splits_member_patches_and_chooses_the_update_method() {
    use store::EventType;
    use store::delivery::{OutboundProfile, TargetUpdate, UpdateMethod};
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, &app.token).await;
        // Only group events and user updates: the users are already at
        // the application, linked, as after an earlier sync.
        dir.update_target(
            target.id,
            TargetUpdate {
                event_types: Some(vec![
                    EventType::GroupCreated,
                    EventType::GroupMembersAdded,
                    EventType::UserUpdated,
                ]),
                ..TargetUpdate::default()
            },
            "test",
        )
        .await
        .expect("event types");
        let links = store.delivery();
        let mut members = Vec::new();
        for i in 0..1000 {
            let name = format!("u{i:04}");
            let local = dir.create_user(user(&name)).await.expect("user").id;
            let remote = app.dir.create_user(user(&name)).await.expect("remote").id;
            links
                .set_remote_id(target.id, "User", &local, Some(&remote))
                .await
                .expect("link");
            members.push(Member::new(local));
        }
        let patches = |name: &str| {
            app.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|(m, p)| m == "PATCH" && p.starts_with(name))
                .count()
        };
        let worker = start(&store, config());

        for (limit, group_name, wanted) in [(None, "All", 10), (Some(300), "Everyone", 4)] {
            if let Some(limit) = limit {
                let profile = OutboundProfile {
                    members_per_patch: limit,
                    ..OutboundProfile::default()
                };
                dir.set_target_profile(target.id, profile, "test")
                    .await
                    .expect("profile");
            }
            let before = patches("/scim/v2/Groups/");
            dir.create_group(group(group_name), members.clone())
                .await
                .expect("group");
            let held = wait_until(Duration::from_secs(60), || async {
                app.list("Groups")
                    .await
                    .into_iter()
                    .find(|g| g["displayName"] == group_name)
                    .and_then(|g| g["members"].as_array().map(Vec::len))
                    .filter(|n| *n == 1000)
            })
            .await;
            assert_eq!(held, Some(1000), "{which:?}: {group_name} complete");
            assert_eq!(
                patches("/scim/v2/Groups/") - before,
                wanted,
                "{which:?}: {group_name} in {wanted} PATCHes"
            );
        }

        // PATCH instead of PUT for a changed user.
        let profile = OutboundProfile {
            update_method: UpdateMethod::Patch,
            ..OutboundProfile::default()
        };
        let stored = dir
            .set_target_profile(target.id, profile, "test")
            .await
            .expect("profile");
        assert_eq!(stored.profile, profile);
        let puts = || {
            app.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|(m, p)| m == "PUT" && p.starts_with("/scim/v2/Users/"))
                .count()
        };
        let users_patched = patches("/scim/v2/Users/");
        let first = members[0].value.clone();
        dir.modify_user(&first, None, |c| {
            let mut d = c.document.clone();
            d["title"] = json!("Engineer");
            Ok(d)
        })
        .await
        .expect("title");
        let titled = wait_until(Duration::from_secs(30), || async {
            app.list("Users")
                .await
                .into_iter()
                .find(|u| u["userName"] == "u0000" && u["title"] == "Engineer")
        })
        .await;
        worker.stop().await;
        assert!(titled.is_some(), "{which:?}: the change arrived");
        assert_eq!(patches("/scim/v2/Users/") - users_patched, 1, "{which:?}");
        assert_eq!(puts(), 0, "{which:?}: no PUT");
        app.stop().await;
    }
}

/// With `flattenGroups`, an application without nested groups gets a
/// nested group's users as members of every group above it, and only
/// users: joining or leaving the inner group changes the outer one too,
/// unless the user is still under it by another path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flattening_profile_sends_nested_groups_users_as_members() {
    use store::delivery::OutboundProfile;
    for which in backends() {
        let (_db, store) = store(which).await;
        let dir = tenant(&store, "acme").await;
        let app = Downstream::start(which).await;
        let target = scim_target(&dir, &app.base, &app.token).await;
        let profile = OutboundProfile {
            flatten_groups: true,
            ..OutboundProfile::default()
        };
        dir.set_target_profile(target.id, profile, "test")
            .await
            .expect("profile");
        let worker = start(&store, config());
        let mut ids = BTreeMap::new();
        for name in ["ann", "ben", "cat", "dan"] {
            let u = dir.create_user(user_with(name, name)).await.expect("user");
            ids.insert(name, u.id);
        }
        let member = |n: &str| Member::new(ids[n].clone());
        let eng = dir
            .create_group(group("Eng"), vec![member("ann"), member("ben")])
            .await
            .expect("Eng")
            .id;
        let all = dir
            .create_group(group("All"), vec![Member::new(eng.clone()), member("cat")])
            .await
            .expect("All")
            .id;
        let names = |list: &[&str]| {
            list.iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>()
        };
        let expect = |eng_members: &[&str], all_members: &[&str]| {
            BTreeMap::from([
                ("Eng".to_owned(), names(eng_members)),
                ("All".to_owned(), names(all_members)),
            ])
        };
        let settled = |want: BTreeMap<String, BTreeSet<String>>| {
            let app = &app;
            async move {
                let got = wait_until(Duration::from_secs(30), || {
                    let want = want.clone();
                    async move {
                        let groups = app.state().await.groups;
                        (groups == want).then_some(())
                    }
                })
                .await;
                match got {
                    Some(()) => Ok(()),
                    None => Err(format!("want {want:?}, got {:?}", app.state().await.groups)),
                }
            }
        };
        settled(expect(&["ann", "ben"], &["ann", "ben", "cat"]))
            .await
            .unwrap_or_else(|e| panic!("{which:?}: nested at first: {e}"));

        // Dan joins Eng: All gains him. Ben leaves Eng: All loses him.
        let (dan, ben) = (ids["dan"].clone(), ids["ben"].clone());
        dir.modify_group(&eng, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Add(vec![Member::new(dan.clone())])],
            ))
        })
        .await
        .expect("dan joins");
        dir.modify_group(&eng, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(vec![ben.clone()])],
            ))
        })
        .await
        .expect("ben leaves");
        settled(expect(&["ann", "dan"], &["ann", "cat", "dan"]))
            .await
            .unwrap_or_else(|e| panic!("{which:?}: after joins and leaves: {e}"));

        // Cat joins Eng too, then leaves it: still in All directly.
        for change in [
            MemberChange::Add(vec![member("cat")]),
            MemberChange::Remove(vec![ids["cat"].clone()]),
        ] {
            dir.modify_group(&eng, None, move |c| {
                Ok((c.document.clone(), vec![change.clone()]))
            })
            .await
            .expect("cat");
        }
        // Eng leaves All: its users go, cat stays.
        let eng_id = eng.clone();
        dir.modify_group(&all, None, move |c| {
            Ok((
                c.document.clone(),
                vec![MemberChange::Remove(vec![eng_id.clone()])],
            ))
        })
        .await
        .expect("Eng leaves All");
        settled(expect(&["ann", "dan"], &["cat"]))
            .await
            .unwrap_or_else(|e| panic!("{which:?}: after Eng left All: {e}"));
        worker.stop().await;
        app.stop().await;
    }
}
