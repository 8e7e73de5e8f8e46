//! A super tenant's writes and their copies in its children.

use roles::{GroupMatch, Mapping, Mode, Policy, Role};
use scim::patch::{Member, MemberChange};
use serde_json::{Value, json};
use store::copies::CopyInfo;
use store::fanout::OnUnroute;
use store::routing::RuleSpec;
use store::{ListQuery, Store, TenantKind, TenantStore};
use testkit::backends;

use crate::common::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn person(name: &str, email: &str, org: Option<&str>) -> Value {
    let mut doc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": true,
        "emails": [{"value": email, "type": "work", "primary": true}],
    });
    if let Some(org) = org {
        doc["schemas"]
            .as_array_mut()
            .expect("array")
            .push(json!(ENTERPRISE));
        doc[ENTERPRISE] = json!({"organization": org});
    }
    doc
}

fn rule(id: &str, child: &str, group: Option<&str>, filter: Option<&str>) -> RuleSpec {
    RuleSpec {
        id: id.into(),
        child: child.into(),
        group: group.map(|g| GroupMatch::DisplayName(g.into())),
        filter: filter.map(str::to_owned),
    }
}

/// A super tenant `msp` feeding acme (deactivate), globex (delete) and
/// initech (deactivate), with rules by group and by attribute.
async fn setup(store: &Store) -> (TenantStore, TenantStore, TenantStore, TenantStore) {
    let admin = store.admin();
    let msp = tenant(store, "msp").await;
    let msp = admin
        .set_tenant_kind(msp.id(), TenantKind::Super, "op")
        .await
        .expect("super");
    let mut children = Vec::new();
    for (slug, how) in [
        ("acme", OnUnroute::Deactivate),
        ("globex", OnUnroute::Delete),
        ("initech", OnUnroute::Deactivate),
    ] {
        let t = tenant(store, slug).await;
        admin
            .link_child(msp.id(), t.id(), how, "op")
            .await
            .expect("link");
        children.push(store.tenant(&t));
    }
    admin
        .set_routing_policy(
            msp.id(),
            vec![
                rule("acme-staff", "acme", Some("Acme Staff"), None),
                rule(
                    "globex-mail",
                    "globex",
                    None,
                    Some("emails.value ew \"@globex.example\""),
                ),
                rule(
                    "initech-org",
                    "initech",
                    None,
                    Some(&format!("{ENTERPRISE}:organization eq \"Initech\"")),
                ),
            ],
            Some(0),
            "op",
        )
        .await
        .expect("rules");
    let initech = children.pop().expect("three");
    let globex = children.pop().expect("three");
    let acme = children.pop().expect("three");
    (store.tenant(&msp), acme, globex, initech)
}

/// acme's own roles: staff are admins, everyone else a viewer.
async fn acme_roles(acme: &TenantStore) {
    acme.set_role_policy(
        Policy {
            roles: vec![
                Role {
                    name: "viewer".into(),
                    description: String::new(),
                },
                Role {
                    name: "admin".into(),
                    description: String::new(),
                },
            ],
            default_role: Some("viewer".into()),
            mappings: vec![Mapping {
                group: GroupMatch::DisplayName("Acme Staff".into()),
                role: "admin".into(),
                priority: 10,
            }],
            mode: Mode::Single,
        },
        None,
        "op",
    )
    .await
    .expect("acme roles");
}

/// A user's effective role names in `dir`.
async fn role_names(dir: &TenantStore, id: &str) -> Vec<String> {
    let roles = dir.effective_roles(&[id.to_owned()]).await.expect("roles");
    roles
        .get(id)
        .map(|e| e.role_names().into_iter().map(str::to_owned).collect())
        .unwrap_or_default()
}

fn all() -> ListQuery {
    ListQuery {
        filter: None,
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 100,
        with_members: true,
        user_extras: Default::default(),
    }
}

/// userName -> active, of a tenant's users.
async fn users_of(dir: &TenantStore) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = dir
        .list_users(&all())
        .await
        .expect("list")
        .resources
        .into_iter()
        .map(|r| {
            (
                r.document["userName"].as_str().unwrap_or("").to_owned(),
                r.document["active"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    out.sort();
    out
}

/// displayName -> member userNames, of a tenant's groups.
async fn groups_of(dir: &TenantStore) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for g in dir.list_groups(&all()).await.expect("list").resources {
        let mut names = Vec::new();
        for m in g.members.unwrap_or_default() {
            let u = dir.get_user(&m.value).await.expect("member is a user");
            names.push(u.document["userName"].as_str().unwrap_or("").to_owned());
        }
        names.sort();
        out.push((
            g.document["displayName"].as_str().unwrap_or("").to_owned(),
            names,
        ));
    }
    out.sort();
    out
}

/// Per child: users entering, users leaving, groups entering, groups
/// leaving.
type Moves = Vec<(String, u64, u64, u64, u64)>;

/// The moves a dry run predicts.
fn predicted(preview: &store::copies::RoutingPreview) -> Moves {
    preview
        .children
        .iter()
        .map(|c| {
            (
                c.child.clone(),
                c.users_entering,
                c.users_leaving,
                c.groups_entering,
                c.groups_leaving,
            )
        })
        .collect()
}

/// Runs the next job (the re-route a rule change queued), checks that it
/// finished, and returns its id and the moves its summary reports.
async fn run_reroute(store: &Store) -> (String, Moves) {
    let job = store
        .job_worker(store::JobHandlers::builtin())
        .run_next()
        .await
        .expect("run")
        .expect("a job");
    assert_eq!(job.status, store::JobStatus::Done, "{job:?}");
    let summary = job.result.expect("summary");
    let moves = summary["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
            (
                c["child"].as_str().unwrap_or("").to_owned(),
                n("usersEntering"),
                n("usersLeaving"),
                n("groupsEntering"),
                n("groupsLeaving"),
            )
        })
        .collect();
    (job.id, moves)
}

fn copy_in<'a>(copies: &'a [CopyInfo], child: &str) -> Option<&'a CopyInfo> {
    copies.iter().find(|c| c.child == child)
}

fn pair(name: &str, active: bool) -> (String, bool) {
    (name.to_owned(), active)
}

fn add(id: &str) -> MemberChange {
    MemberChange::Add(vec![Member::new(id.to_owned())])
}

async fn change_members(dir: &TenantStore, group: &str, change: MemberChange) {
    dir.modify_group(group, None, move |cur| {
        Ok((cur.document.clone(), vec![change.clone()]))
    })
    .await
    .expect("member change");
}

#[tokio::test]
async fn writes_on_a_super_tenant_reach_exactly_the_children_routed_to() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let (msp, acme, globex, initech) = setup(&store).await;
        acme_roles(&acme).await;

        // By attribute at once; by group only once in the group.
        let ann = msp
            .create_user(person("ann", "ann@globex.example", None))
            .await
            .expect("ann");
        let bob = msp
            .create_user(person("bob", "bob@example.com", Some("Initech")))
            .await
            .expect("bob");
        let carol = msp
            .create_user(person("carol", "carol@example.com", None))
            .await
            .expect("carol");
        assert_eq!(users_of(&globex).await, [pair("ann", true)], "{which:?}");
        assert_eq!(users_of(&initech).await, [pair("bob", true)], "{which:?}");
        assert!(users_of(&acme).await.is_empty(), "{which:?}");

        // A group selected by a rule: copied with the members routed there;
        // ann is now in two children.
        let staff = msp
            .create_group(
                group("Acme Staff"),
                vec![Member::new(ann.id.clone()), Member::new(carol.id.clone())],
            )
            .await
            .expect("group");
        let others = msp
            .create_group(group("Others"), vec![Member::new(bob.id.clone())])
            .await
            .expect("group");
        assert_eq!(
            users_of(&acme).await,
            [pair("ann", true), pair("carol", true)],
            "{which:?}"
        );
        assert_eq!(
            groups_of(&acme).await,
            [("Acme Staff".to_owned(), vec!["ann".into(), "carol".into()])],
            "{which:?}: only routed groups, with their routed members"
        );
        assert!(groups_of(&initech).await.is_empty(), "{which:?}");
        let ann_copies = msp.copies(&ann.id).await.expect("copies");
        let in_acme = copy_in(&ann_copies, "acme").expect("ann in acme").clone();
        assert_eq!(in_acme.rules, ["acme-staff"], "{which:?}: why");
        assert!(in_acme.routed);
        assert_eq!(
            copy_in(&ann_copies, "globex").map(|c| c.rules.clone()),
            Some(vec!["globex-mail".to_owned()])
        );
        assert_ne!(in_acme.copy_id, ann.id, "a copy has its own id");
        // The child's own roles apply to the copies.
        let roles = acme
            .effective_roles(std::slice::from_ref(&in_acme.copy_id))
            .await
            .expect("roles");
        assert_eq!(
            roles.get(&in_acme.copy_id).map(|e| e.role_names()),
            Some(vec!["admin"]),
            "{which:?}"
        );

        // Leaving the group deactivates carol in acme (and drops her from
        // the copy); coming back reactivates the same copy.
        let carol_copy = copy_in(&msp.copies(&carol.id).await.expect("copies"), "acme")
            .expect("carol in acme")
            .copy_id
            .clone();
        change_members(
            &msp,
            &staff.id,
            MemberChange::Remove(vec![carol.id.clone()]),
        )
        .await;
        assert_eq!(
            users_of(&acme).await,
            [pair("ann", true), pair("carol", false)],
            "{which:?}"
        );
        assert_eq!(
            groups_of(&acme).await,
            [("Acme Staff".to_owned(), vec!["ann".into()])],
            "{which:?}"
        );
        let c = msp.copies(&carol.id).await.expect("copies");
        assert_eq!(
            copy_in(&c, "acme").map(|c| c.routed),
            Some(false),
            "{which:?}"
        );
        let carol_roles = acme
            .effective_roles(std::slice::from_ref(&carol_copy))
            .await
            .expect("roles");
        assert_ne!(
            carol_roles.get(&carol_copy).map(|e| e.role_names()),
            Some(vec!["admin"]),
            "{which:?}: not an admin once out of the group"
        );
        change_members(&msp, &staff.id, add(&carol.id)).await;
        assert_eq!(
            users_of(&acme).await,
            [pair("ann", true), pair("carol", true)],
            "{which:?}"
        );
        let c = msp.copies(&carol.id).await.expect("copies");
        assert_eq!(
            copy_in(&c, "acme").map(|c| (c.copy_id.clone(), c.routed)),
            Some((carol_copy.clone(), true)),
            "{which:?}: reactivated, not duplicated"
        );
        assert_eq!(
            groups_of(&acme).await,
            [("Acme Staff".to_owned(), vec!["ann".into(), "carol".into()])],
            "{which:?}"
        );

        // An attribute change moves ann out of globex, whose link deletes.
        let moved = person("ann", "ann@acme.example", None);
        msp.replace_user(&ann.id, moved, None)
            .await
            .expect("replace");
        assert!(users_of(&globex).await.is_empty(), "{which:?}");
        assert!(
            copy_in(&msp.copies(&ann.id).await.expect("copies"), "globex").is_none(),
            "{which:?}"
        );

        // Disabling in the IdP disables every copy; a rename follows.
        msp.modify_user(&bob.id, None, |cur| {
            let mut d = cur.document.clone();
            d["active"] = json!(false);
            d["userName"] = json!("robert");
            Ok(d)
        })
        .await
        .expect("disable");
        assert_eq!(
            users_of(&initech).await,
            [pair("robert", false)],
            "{which:?}"
        );

        // Moving bob into the staff group adds him to acme as well.
        change_members(&msp, &staff.id, add(&bob.id)).await;
        assert_eq!(
            users_of(&acme).await,
            [
                pair("ann", true),
                pair("carol", true),
                pair("robert", false)
            ],
            "{which:?}"
        );

        // A renamed group stops matching its rule: its copy goes, and its
        // members leave acme (deactivated: acme's link).
        msp.modify_group(&staff.id, None, |cur| {
            let mut d = cur.document.clone();
            d["displayName"] = json!("Former Staff");
            Ok((d, Vec::new()))
        })
        .await
        .expect("rename");
        assert!(groups_of(&acme).await.is_empty(), "{which:?}");
        assert_eq!(
            users_of(&acme).await,
            [
                pair("ann", false),
                pair("carol", false),
                pair("robert", false)
            ],
            "{which:?}"
        );

        // Deleting in the IdP deletes in every child.
        msp.delete_user(&bob.id, None).await.expect("delete");
        assert!(users_of(&initech).await.is_empty(), "{which:?}");
        assert_eq!(
            users_of(&acme).await,
            [pair("ann", false), pair("carol", false)],
            "{which:?}"
        );
        msp.delete_group(&others.id, None).await.expect("delete");

        // Each child's events name only its own resources.
        let msp_ids: Vec<String> = vec![ann.id.clone(), bob.id.clone(), carol.id.clone()];
        for child in [&acme, &globex, &initech] {
            let events = child.events_after(0, 1000).await.expect("events");
            assert!(!events.is_empty(), "{which:?}");
            for e in events {
                assert!(
                    !msp_ids.contains(&e.resource_id),
                    "{which:?}: a child's event names a super tenant id"
                );
            }
        }
    }
}

/// A customer moved in with its own users: the copy adopts the user with
/// the same userName instead of failing, and a direct user stays apart.
#[tokio::test]
async fn a_copy_adopts_the_childs_own_user_of_the_same_name() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let (msp, _acme, globex, _initech) = setup(&store).await;
        let own = globex
            .create_user(person("dana", "dana@old.example", None))
            .await
            .expect("own user");
        let dana = msp
            .create_user(person("DANA", "dana@globex.example", None))
            .await
            .expect("dana");
        let copies = msp.copies(&dana.id).await.expect("copies");
        assert_eq!(
            copy_in(&copies, "globex").map(|c| c.copy_id.clone()),
            Some(own.id.clone()),
            "{which:?}: adopted"
        );
        let read = globex.get_user(&own.id).await.expect("read");
        assert_eq!(read.document["emails"][0]["value"], "dana@globex.example");
        assert_eq!(users_of(&globex).await, [pair("DANA", true)], "{which:?}");
    }
}

/// New rules: the dry run says who would enter and leave each child, and
/// the re-route job then does exactly that.
#[tokio::test]
async fn a_rule_change_reroutes_as_its_dry_run_predicted() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let (msp, acme, globex, initech) = setup(&store).await;
        let admin = store.admin();
        let mut ids = Vec::new();
        for i in 0..12 {
            let mail = if i % 3 == 0 {
                format!("u{i}@globex.example")
            } else {
                format!("u{i}@example.com")
            };
            let org = (i % 4 == 0).then_some("Initech");
            let u = msp
                .create_user(person(&format!("u{i}"), &mail, org))
                .await
                .expect("user");
            ids.push(u.id);
        }
        let staff: Vec<Member> = ids[..6].iter().map(|id| Member::new(id.clone())).collect();
        let staff = msp
            .create_group(group("Acme Staff"), staff)
            .await
            .expect("group");
        let sales: Vec<Member> = ids[4..9].iter().map(|id| Member::new(id.clone())).collect();
        msp.create_group(group("Sales"), sales)
            .await
            .expect("group");
        let before = (
            users_of(&acme).await.len(),
            users_of(&globex).await.len(),
            users_of(&initech).await.len(),
        );
        assert_eq!(before, (6, 4, 3), "{which:?}");

        // acme now takes Sales (not Staff), globex nobody, initech Staff.
        let next = vec![
            rule("acme-sales", "acme", Some("Sales"), None),
            rule("initech-staff", "initech", Some("Acme Staff"), None),
        ];
        let msp_tenant = msp.tenant().clone();
        let preview = admin
            .preview_routing(&msp_tenant, &next)
            .await
            .expect("preview");
        assert_eq!((preview.users, preview.groups), (12, 2), "{which:?}");
        let moves = predicted(&preview);
        // acme: 6,7,8 enter; 0..4 leave (4,5 stay). globex: all 4 leave.
        // initech: staff 0..6 minus those already there (0, 4) enter... by
        // routing: initech-org is gone, so 8 leaves; 0 and 4 stay (Staff).
        assert_eq!(
            moves,
            [
                ("acme".to_owned(), 3, 4, 1, 1),
                ("globex".to_owned(), 0, 4, 0, 0),
                ("initech".to_owned(), 4, 1, 1, 0),
            ],
            "{which:?}: {preview:?}"
        );
        let acme_in = &preview.children[0].sample_entering;
        let mut names: Vec<&str> = acme_in.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["u6", "u7", "u8"], "{which:?}: who");
        // A dry run changes nothing.
        assert_eq!(users_of(&acme).await.len(), 6, "{which:?}");

        let change = admin
            .set_routing_policy(msp_tenant.id(), next, Some(1), "op")
            .await
            .expect("stored");
        let (job, done) = run_reroute(&store).await;
        assert_eq!(job, change.job, "{which:?}");
        assert_eq!(done, moves, "{which:?}: the job did what the dry run said");

        // And the children show it.
        let active = |list: Vec<(String, bool)>| -> Vec<String> {
            list.into_iter()
                .filter(|(_, a)| *a)
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(
            active(users_of(&acme).await),
            ["u4", "u5", "u6", "u7", "u8"],
            "{which:?}"
        );
        assert!(users_of(&globex).await.is_empty(), "{which:?}: deleted");
        assert_eq!(
            active(users_of(&initech).await),
            ["u0", "u1", "u2", "u3", "u4", "u5"],
            "{which:?}"
        );
        assert_eq!(
            groups_of(&acme).await,
            [(
                "Sales".to_owned(),
                vec![
                    "u4".into(),
                    "u5".into(),
                    "u6".into(),
                    "u7".into(),
                    "u8".into()
                ]
            )],
            "{which:?}"
        );
        assert_eq!(
            groups_of(&initech).await.first().map(|g| g.1.len()),
            Some(6),
            "{which:?}"
        );
        // A second run changes nothing: the dry run of the same rules
        // predicts no move.
        let again = admin
            .preview_routing(
                &msp_tenant,
                &admin
                    .routing_policy(msp_tenant.id())
                    .await
                    .expect("read")
                    .rules,
            )
            .await
            .expect("preview");
        assert!(again.children.is_empty(), "{which:?}: {again:?}");
        let _ = staff;
    }
}

/// Ending a link: `Keep` leaves the copies as the child's own (the super
/// tenant's writes no longer reach them), `Remove` deletes them with an
/// event each; both audited with what they did.
#[tokio::test]
async fn unlinking_keeps_or_removes_the_copies_as_asked() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let (msp, acme, globex, _initech) = setup(&store).await;
        let admin = store.admin();
        let ann = msp
            .create_user(person("ann", "ann@globex.example", None))
            .await
            .expect("ann");
        msp.create_group(group("Acme Staff"), vec![Member::new(ann.id.clone())])
            .await
            .expect("group");
        assert_eq!(users_of(&acme).await, [pair("ann", true)], "{which:?}");
        assert_eq!(users_of(&globex).await, [pair("ann", true)], "{which:?}");

        let removed = admin
            .unlink_child(
                acme.tenant().id(),
                store::fanout::CopiesOnUnlink::Remove,
                "op",
            )
            .await
            .expect("unlinked");
        assert_eq!(
            (removed.kept, removed.users_removed, removed.groups_removed),
            (0, 1, 1),
            "{which:?}"
        );
        assert!(users_of(&acme).await.is_empty(), "{which:?}");
        assert!(groups_of(&acme).await.is_empty(), "{which:?}");
        let types: Vec<_> = acme
            .events_after(0, 100)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert!(types.contains(&store::EventType::UserDeleted), "{types:?}");
        assert!(types.contains(&store::EventType::GroupDeleted), "{types:?}");

        let kept = admin
            .unlink_child(
                globex.tenant().id(),
                store::fanout::CopiesOnUnlink::Keep,
                "op",
            )
            .await
            .expect("unlinked");
        assert_eq!((kept.kept, kept.users_removed), (1, 0), "{which:?}");
        // The super tenant's writes no longer reach the former child.
        msp.modify_user(&ann.id, None, |cur| {
            let mut d = cur.document.clone();
            d["active"] = json!(false);
            Ok(d)
        })
        .await
        .expect("disable");
        assert_eq!(users_of(&globex).await, [pair("ann", true)], "{which:?}");
        assert!(msp.copies(&ann.id).await.expect("copies").is_empty());
        let audit = admin
            .audit_log(&store::AuditQuery {
                tenant: Some(globex.tenant().id()),
                action: Some("tenant.unlink".into()),
                limit: 10,
                ..store::AuditQuery::default()
            })
            .await
            .expect("audit");
        assert_eq!(audit.len(), 1, "{which:?}");
        assert_eq!(audit[0].detail["copies"], "keep");
        assert_eq!(audit[0].detail["kept"], 1);
    }
}

/// A re-route batch of more users than `copies` plans on one thread: each
/// user is moved exactly once, as the dry run said, on both threads'
/// halves of the batch.
#[tokio::test]
async fn a_reroute_of_a_large_batch_moves_every_user_once() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let (msp, acme, globex, initech) = setup(&store).await;
        let admin = store.admin();
        const USERS: usize = 150;
        let mut ids = Vec::new();
        for i in 0..USERS {
            let domain = if i % 2 == 0 {
                "globex.example"
            } else {
                "example.com"
            };
            let org = (i % 3 == 0).then_some("Initech");
            let user = msp
                .create_user(person(&format!("u{i:03}"), &format!("u{i}@{domain}"), org))
                .await
                .expect("user");
            ids.push(user.id);
        }
        let names = |pick: fn(usize) -> bool| -> Vec<(String, bool)> {
            (0..USERS)
                .filter(|i| pick(*i))
                .map(|i| (format!("u{i:03}"), true))
                .collect()
        };
        assert_eq!(users_of(&globex).await, names(|i| i % 2 == 0), "{which:?}");
        assert_eq!(users_of(&initech).await, names(|i| i % 3 == 0), "{which:?}");
        let initech_before = initech.list_users(&all()).await.expect("list").resources;

        // acme takes the other domain, globex (which deletes) nobody,
        // initech keeps its rule.
        let next = vec![
            rule(
                "acme-mail",
                "acme",
                None,
                Some("emails.value ew \"@example.com\""),
            ),
            rule(
                "initech-org",
                "initech",
                None,
                Some(&format!("{ENTERPRISE}:organization eq \"Initech\"")),
            ),
        ];
        let msp_tenant = msp.tenant().clone();
        let preview = admin
            .preview_routing(&msp_tenant, &next)
            .await
            .expect("preview");
        let moves = predicted(&preview);
        assert_eq!(
            moves,
            [
                ("acme".to_owned(), 75, 0, 0, 0),
                ("globex".to_owned(), 0, 75, 0, 0)
            ],
            "{which:?}"
        );
        admin
            .set_routing_policy(msp_tenant.id(), next, Some(1), "op")
            .await
            .expect("stored");
        let (_, done) = run_reroute(&store).await;
        assert_eq!(done, moves, "{which:?}: the job did what the dry run said");

        assert_eq!(users_of(&acme).await, names(|i| i % 2 == 1), "{which:?}");
        assert!(users_of(&globex).await.is_empty(), "{which:?}: deleted");
        // Copies that stay routed by the same rule are not written again.
        let initech_after = initech.list_users(&all()).await.expect("list").resources;
        let versions = |list: &[store::Resource]| -> Vec<(String, u64)> {
            list.iter().map(|r| (r.id.clone(), r.version)).collect()
        };
        assert_eq!(
            versions(&initech_after),
            versions(&initech_before),
            "{which:?}"
        );
        // Each source has the copies its rules give it, each linked once.
        for (i, id) in ids.iter().enumerate() {
            let copies = msp.copies(id).await.expect("copies");
            let mut found: Vec<(&str, bool, Vec<String>)> = copies
                .iter()
                .map(|c| (c.child.as_str(), c.routed, c.rules.clone()))
                .collect();
            found.sort();
            let mut want = Vec::new();
            if i % 2 == 1 {
                want.push(("acme", true, vec!["acme-mail".to_owned()]));
            }
            if i % 3 == 0 {
                want.push(("initech", true, vec!["initech-org".to_owned()]));
            }
            assert_eq!(found, want, "{which:?}: u{i:03}");
        }
    }
}

/// A child's role-lock on a copy holds through the source's updates (the
/// child's own mappings apply again once unlocked), and two super tenants
/// never reach each other's children.
#[tokio::test]
async fn a_childs_locks_hold_and_super_tenants_stay_apart() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let (msp, acme, globex, initech) = setup(&store).await;
        acme_roles(&acme).await;
        let carol = msp
            .create_user(person("carol", "carol@example.com", None))
            .await
            .expect("carol");
        msp.create_group(group("Acme Staff"), vec![Member::new(carol.id.clone())])
            .await
            .expect("group");
        let copies = msp.copies(&carol.id).await.expect("copies");
        let copy = copy_in(&copies, "acme")
            .expect("carol in acme")
            .copy_id
            .clone();
        assert_eq!(
            role_names(&acme, &copy).await,
            ["admin"],
            "{which:?}: mapped"
        );

        acme.lock_user(&copy, vec!["viewer".into()], "contractor", "admin@acme")
            .await
            .expect("lock the copy");
        assert_eq!(role_names(&acme, &copy).await, ["viewer"], "{which:?}");
        let mut doc = carol.document.clone();
        doc["title"] = json!("Lead");
        msp.replace_user(&carol.id, doc, None)
            .await
            .expect("update");
        let read = acme.get_user(&copy).await.expect("copy");
        assert_eq!(
            read.document["title"], "Lead",
            "{which:?}: the copy follows"
        );
        assert_eq!(
            role_names(&acme, &copy).await,
            ["viewer"],
            "{which:?}: the lock holds through the source's update"
        );
        acme.unlock_user(&copy, "admin@acme").await.expect("unlock");
        assert_eq!(role_names(&acme, &copy).await, ["admin"], "{which:?}");

        // A second MSP with its own child, routing everyone there.
        let admin = store.admin();
        let other = tenant(&store, "other-msp").await;
        let other = admin
            .set_tenant_kind(other.id(), TenantKind::Super, "op")
            .await
            .expect("super");
        let umbrella = tenant(&store, "umbrella").await;
        admin
            .link_child(other.id(), umbrella.id(), OnUnroute::Deactivate, "op")
            .await
            .expect("link");
        admin
            .set_routing_policy(
                other.id(),
                vec![rule("all", "umbrella", None, Some("userName pr"))],
                Some(0),
                "op",
            )
            .await
            .expect("rules");
        let refused = admin
            .set_routing_policy(
                other.id(),
                vec![rule("steal", "acme", None, Some("userName pr"))],
                Some(1),
                "op",
            )
            .await;
        assert!(
            matches!(refused, Err(store::StoreError::InvalidValue(_))),
            "{which:?}: another MSP's child cannot be routed to: {refused:?}"
        );
        let other = store.tenant(&other);
        let umbrella = store.tenant(&umbrella);
        let erin = other
            .create_user(person("erin", "erin@globex.example", Some("Initech")))
            .await
            .expect("erin");
        assert_eq!(users_of(&umbrella).await, [pair("erin", true)], "{which:?}");
        assert_eq!(users_of(&acme).await, [pair("carol", true)], "{which:?}");
        assert!(
            users_of(&globex).await.is_empty(),
            "{which:?}: erin's mail matches msp's rule, not hers"
        );
        assert!(users_of(&initech).await.is_empty(), "{which:?}");
        assert!(msp.copies(&erin.id).await.expect("copies").is_empty());
        assert!(other.copies(&carol.id).await.expect("copies").is_empty());
        assert!(
            umbrella.get_user(&copy).await.is_err(),
            "{which:?}: a child reads only its own copies"
        );
    }
}
