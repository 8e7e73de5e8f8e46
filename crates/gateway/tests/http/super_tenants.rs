//! A super tenant over HTTP: Entra's sequence into it, answered as by a
//! standard tenant, fanned out to three children by attribute and by
//! group; children read their copies and refuse direct writes.

use std::collections::BTreeSet;
use std::time::Duration;

use roles::GroupMatch;
use serde_json::{Value, json};
use store::fanout::OnUnroute;
use store::routing::RuleSpec;
use store::{EventType, LogQuery, TenantKind, TenantStore};

use crate::common::{App, TenantCtx, each_backend, enc};
use crate::entra::replay_into;

const RENAMED_GROUP: &str = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName";

struct Msp {
    root: TenantCtx,
    acme: TenantCtx,
    globex: TenantCtx,
    initech: TenantCtx,
}

/// A super tenant feeding acme (users mailed at testuser.com; deactivate),
/// globex (users mailed at microsoft.com; delete) and initech (the members
/// of Entra's renamed group; deactivate).
async fn msp(app: &App, prefix: &str) -> Msp {
    let admin = app.store.admin();
    let root = app.tenant(&format!("{prefix}msp")).await;
    admin
        .set_tenant_kind(root.tenant.id(), TenantKind::Super, "op")
        .await
        .expect("super");
    let mut kids = Vec::new();
    for (name, how) in [
        ("acme", OnUnroute::Deactivate),
        ("globex", OnUnroute::Delete),
        ("initech", OnUnroute::Deactivate),
    ] {
        let kid = app.tenant(&format!("{prefix}{name}")).await;
        admin
            .link_child(root.tenant.id(), kid.tenant.id(), how, "op")
            .await
            .expect("link");
        kids.push(kid);
    }
    let rule = |id: &str, child: &str, group: Option<&str>, filter: Option<&str>| RuleSpec {
        id: id.into(),
        child: format!("{prefix}{child}"),
        group: group.map(|g| GroupMatch::DisplayName(g.into())),
        filter: filter.map(str::to_owned),
    };
    admin
        .set_routing_policy(
            root.tenant.id(),
            vec![
                rule(
                    "testuser-mail",
                    "acme",
                    None,
                    Some("emails.value ew \"@testuser.com\""),
                ),
                rule(
                    "microsoft-mail",
                    "globex",
                    None,
                    Some("emails.value ew \"@microsoft.com\""),
                ),
                rule("renamed-group", "initech", Some(RENAMED_GROUP), None),
            ],
            None,
            "op",
        )
        .await
        .expect("rules");
    let initech = kids.pop().expect("three");
    let globex = kids.pop().expect("three");
    let acme = kids.pop().expect("three");
    Msp {
        root,
        acme,
        globex,
        initech,
    }
}

/// A child's events: their types, and the ids they name.
async fn history(app: &App, t: &TenantCtx) -> (Vec<EventType>, BTreeSet<String>) {
    let dir: TenantStore = app.store.tenant(&t.tenant);
    let events = dir.events_after(0, 10_000).await.expect("events");
    let types = events.iter().map(|e| e.event_type).collect();
    let ids = events.iter().map(|e| e.resource_id.clone()).collect();
    (types, ids)
}

fn has_in_order(types: &[EventType], wanted: &[EventType]) -> bool {
    let mut it = types.iter();
    wanted.iter().all(|w| it.any(|t| t == w))
}

async fn replay_fans_out(app: &App, legacy: bool) {
    let prefix = if legacy { "l-" } else { "c-" };
    let background = app.gateway.spawn_background();
    let m = msp(app, prefix).await;
    // Every answer Entra gets is checked inside: the super tenant answers
    // exactly as a standard tenant does.
    replay_into(app, &m.root, legacy).await;

    let (acme, acme_ids) = history(app, &m.acme).await;
    assert_eq!(acme_ids.len(), 1, "{acme:?}: one copy of the one user");
    assert!(
        has_in_order(
            &acme,
            &[
                EventType::UserCreated,
                EventType::UserDeactivated,
                EventType::UserDeleted
            ]
        ),
        "acme: routed by mail, left when the mail changed (deactivated), deleted with the source: {acme:?}"
    );
    assert!(!acme.contains(&EventType::GroupCreated), "{acme:?}");

    let (globex, globex_ids) = history(app, &m.globex).await;
    assert_eq!(globex_ids.len(), 1, "{globex:?}");
    assert_eq!(globex.first(), Some(&EventType::UserCreated), "{globex:?}");
    assert_eq!(globex.last(), Some(&EventType::UserDeleted), "{globex:?}");

    let (initech, initech_ids) = history(app, &m.initech).await;
    assert_eq!(initech_ids.len(), 2, "a group and a user: {initech:?}");
    assert!(
        has_in_order(
            &initech,
            &[
                EventType::GroupCreated,
                EventType::UserCreated,
                EventType::GroupMembersAdded,
                EventType::GroupMembersRemoved,
                EventType::UserDeleted,
                EventType::GroupDeleted,
            ]
        ),
        "initech: the group once renamed to match, its member while a member: {initech:?}"
    );
    // Entra disabled the user before it joined the group: its copy was
    // made disabled, so leaving changed nothing more.
    assert!(
        !initech.contains(&EventType::UserDeactivated),
        "{initech:?}"
    );
    assert!(
        !initech.contains(&EventType::UserReactivated),
        "{initech:?}"
    );
    assert!(
        acme_ids.is_disjoint(&globex_ids)
            && acme_ids.is_disjoint(&initech_ids)
            && globex_ids.is_disjoint(&initech_ids),
        "each child's copies have ids of their own"
    );

    // After the replay: a user routed to two children at once.
    let tok = m.root.token.as_str();
    let r = app
        .call(
            "POST",
            "/Users",
            tok,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "both@testuser.com",
                "emails": [
                    {"value": "both@testuser.com", "type": "work", "primary": true},
                    {"value": "both@microsoft.com", "type": "other"}
                ],
                "active": true
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let source = r.body["id"].as_str().expect("id").to_owned();

    // The super tenant's provisioning log says where it went and why.
    let dir = app.store.tenant(&m.root.tenant);
    let mut routed = Vec::new();
    for _ in 0..100 {
        let entries = dir
            .provisioning_log(&LogQuery {
                resource_id: Some(source.clone()),
                limit: 10,
                ..LogQuery::default()
            })
            .await
            .expect("log");
        if let Some((_, e)) = entries.into_iter().find(|(_, e)| e.method == "POST") {
            routed = e
                .routed
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut why: Vec<(String, String, Value)> = routed
        .iter()
        .map(|c| {
            (
                c["child"].as_str().unwrap_or("").to_owned(),
                c["action"].as_str().unwrap_or("").to_owned(),
                c["rules"].clone(),
            )
        })
        .collect();
    why.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        why,
        [
            (
                format!("{prefix}acme"),
                "created".to_owned(),
                json!(["testuser-mail"])
            ),
            (
                format!("{prefix}globex"),
                "created".to_owned(),
                json!(["microsoft-mail"])
            ),
        ],
        "{routed:?}"
    );
    // ... and the metrics count the copies per child.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&app.registry.gather())
        .expect("metrics");
    for child in ["acme", "globex"] {
        let line = format!(
            "scimgate_fanout_copies_total{{action=\"created\",child=\"{prefix}{child}\",resource=\"User\",tenant=\"{prefix}msp\"}} 2"
        );
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
    let filter = enc("userName eq \"both@testuser.com\"");
    let mut copies = BTreeSet::new();
    for child in [&m.acme, &m.globex] {
        // A child's read token sees its copy, under the copy's own id.
        let r = app
            .call(
                "GET",
                &format!("/Users?filter={filter}"),
                &child.read_token,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["totalResults"], 1, "{}", r.body);
        let copy = r.body["Resources"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        assert_ne!(copy, source);
        copies.insert(copy.clone());
        // ... and nothing of the super tenant's, nor of another child's.
        let r = app
            .call("GET", &format!("/Users/{source}"), &child.read_token, None)
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
        // Writes go through the super tenant only: 403, naming it.
        let r = app
            .call(
                "PATCH",
                &format!("/Users/{copy}"),
                &child.token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]
                })),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        let detail = r.body["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(&format!("super tenant '{prefix}msp'")),
            "{detail}"
        );
        let r = app
            .call(
                "POST",
                "/Users",
                &child.token,
                Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "direct"})),
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    assert_eq!(copies.len(), 2, "each child has its own copy");
    let r = app
        .call(
            "GET",
            &format!("/Users?filter={filter}"),
            &m.initech.read_token,
            None,
        )
        .await;
    assert_eq!(r.body["totalResults"], 0, "not routed to initech");
    // A child's copy keeps the IdP's view: disabling in the IdP disables it.
    let r = app
        .call(
            "PATCH",
            &format!("/Users/{source}"),
            tok,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for child in [&m.acme, &m.globex] {
        let r = app
            .call(
                "GET",
                &format!("/Users?filter={filter}"),
                &child.read_token,
                None,
            )
            .await;
        assert_eq!(r.body["Resources"][0]["active"], false, "{}", r.body);
    }
    background.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_replay_into_a_super_tenant_compliant() {
    each_backend(|app: App| async move { replay_fans_out(&app, false).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_replay_into_a_super_tenant_legacy() {
    each_backend(|app: App| async move { replay_fans_out(&app, true).await }).await;
}
