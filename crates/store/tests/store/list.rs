//! Listing: SQL filter translation agrees with the evaluator; sorting,
//! paging and the scan bound.

use std::collections::BTreeSet;

use scim::AttrPath;
use scim::meta::Meta;
use scim::patch::Member;
use scim::schemas::ResourceSchema;
use serde_json::{Value, json};
use store::{ListQuery, Resource, StoreError, StoreOptions, TenantStore};
use testkit::backends;

use crate::common::*;

fn query(filter: Option<&str>) -> ListQuery {
    ListQuery {
        filter: filter.map(|f| scim::filter::parse(f).unwrap()),
        sort_by: None,
        descending: false,
        start_index: 1,
        count: 10_000,
        with_members: true,
        user_extras: Default::default(),
    }
}

fn users_data() -> Vec<Value> {
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    vec![
        json!({"userName": "bjensen", "externalId": "E-1", "displayName": "Babs Jensen",
               "active": true, "title": "Tour Guide",
               "name": {"familyName": "Jensen", "givenName": "Barbara"},
               "emails": [{"value": "BJensen@Example.com", "type": "work", "primary": true},
                          {"value": "babs@home.example", "type": "home"}],
               ent: {"employeeNumber": "701984", "department": "Tours"}}),
        json!({"userName": "JSmith", "externalId": "e-1", "displayName": "John Smith",
               "active": false, "name": {"familyName": "Smith"},
               "emails": [{"value": "john@example.com", "type": "work"}]}),
        json!({"userName": "alice_w", "displayName": "Alice", "active": true,
               "emails": [{"type": "work"}], ent: {"department": "R&D"}}),
        json!({"userName": "Bob%Admin", "externalId": "E-2", "displayName": "",
               "emails": []}),
        json!({"userName": "carol*star", "externalId": "E*?[x", "active": true,
               "title": "CTO", "name": {"familyName": "Zed"}}),
        json!({"userName": "ÅSA.Öberg", "displayName": "Åsa Öberg", "active": false,
               "emails": [{"value": "ÅSA@EXAMPLE.SE"}]}),
        json!({"userName": "dave!bang", "displayName": "Dave_Bang", "externalId": "e-3"}),
        json!({"userName": "erin", "displayName": "erin", "active": true,
               "emails": [{"value": "erin@example.com", "primary": true}],
               "urn:acme:custom:2.0:User": {"badge": "B7"}}),
        json!({"userName": "frank", "displayName": "Frank ΣΑΣ", "title": "tour guide",
               "name": {"familyName": "Amber"}}),
        json!({"userName": "gus", "externalId": "", "active": true,
               "emails": [{"value": "Gus@Example.COM"}, {"value": "gus@example.com"}]}),
        json!({"userName": "Hal", "displayName": "Hal 9000", "active": false,
               ent: {"employeeNumber": "9000"}}),
        json!({"userName": "ivy", "displayName": "Ivy", "externalId": "ivy-ext"}),
    ]
}

/// The resource as the evaluator sees it (the store's list contract):
/// document + id + meta + related (groups of a user / members of a group).
fn render(kind: &str, r: &Resource, related: Option<Value>) -> Value {
    let mut d = r.document.clone();
    let o = d.as_object_mut().unwrap();
    o.insert("id".into(), json!(r.id));
    let meta = Meta {
        resource_type: kind.into(),
        created: r.created,
        last_modified: r.last_modified,
        location: String::new(),
        version: r.version,
    };
    o.insert("meta".into(), meta.to_json());
    if let Some(rel) = related {
        o.insert(
            if kind == "User" { "groups" } else { "members" }.into(),
            rel,
        );
    }
    d
}

struct World {
    users: Vec<Value>,
    groups: Vec<Value>,
    user_ids: Vec<String>,
    group_ids: Vec<String>,
    /// meta.created of a user in the middle of the data set.
    mid_created: String,
}

async fn populate(dir: &TenantStore) -> World {
    let mut user_ids = Vec::new();
    let mut mid_created = String::new();
    for (i, mut d) in users_data().into_iter().enumerate() {
        d["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
        let u = dir.create_user(d).await.unwrap();
        if i == 5 {
            mid_created = scim::meta::timestamp(u.created);
        }
        user_ids.push(u.id);
        // Spread the timestamps so range filters have something to split.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    // One modification so lastModified differs from created somewhere.
    dir.modify_user(&user_ids[1], None, move |c| {
        let mut d = c.document.clone();
        d["nickName"] = json!("Johnny");
        Ok(d)
    })
    .await
    .unwrap();
    let m = |i: usize| Member::new(user_ids[i].clone());
    let staff = dir
        .create_group(
            json!({"displayName": "Acme Staff", "externalId": "G-1"}),
            vec![m(0), m(1), m(2), m(7)],
        )
        .await
        .unwrap();
    let admins = dir
        .create_group(json!({"displayName": "Admins"}), vec![m(3), m(0)])
        .await
        .unwrap();
    let all = dir
        .create_group(
            json!({"displayName": "Everyone_%", "externalId": "g-1"}),
            vec![
                Member::new(staff.id.clone()),
                Member::new(admins.id.clone()),
                m(5),
            ],
        )
        .await
        .unwrap();
    let empty = dir
        .create_group(json!({"displayName": "Empty Group"}), vec![])
        .await
        .unwrap();
    let mut with_display = m(8);
    with_display.display = Some("Frank A.".into());
    let tours = dir
        .create_group(
            json!({"displayName": "tours ΣΑΣ"}),
            vec![with_display, m(9)],
        )
        .await
        .unwrap();
    let group_ids = vec![staff.id, admins.id, all.id, empty.id, tours.id];

    // Everything as stored, rendered for the evaluator.
    let users = dir.list_users(&query(None)).await.unwrap().resources;
    let ug = dir.user_groups(&user_ids).await.unwrap();
    let users = users
        .iter()
        .map(|r| {
            let refs: Vec<Value> = ug[&r.id]
                .iter()
                .map(|g| json!({"value": g.id, "display": g.display}))
                .collect();
            render("User", r, Some(Value::Array(refs)))
        })
        .collect();
    let groups = dir.list_groups(&query(None)).await.unwrap().resources;
    let groups = groups
        .iter()
        .map(|r| {
            let ms: Vec<Value> = r
                .members
                .as_ref()
                .unwrap()
                .iter()
                .map(Member::to_json)
                .collect();
            render("Group", r, Some(Value::Array(ms)))
        })
        .collect();
    World {
        users,
        groups,
        user_ids,
        group_ids,
        mid_created,
    }
}

fn expected(docs: &[Value], filter: &str, schema: ResourceSchema<'_>) -> BTreeSet<String> {
    let f = scim::filter::parse(filter).unwrap();
    docs.iter()
        .filter(|d| scim::filter::matches(&f, d, schema))
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

fn user_filters(w: &World) -> (Vec<String>, Vec<String>) {
    let u = &w.user_ids;
    let g = &w.group_ids;
    let ts = &w.mid_created;
    // Filters the store must answer in SQL alone (checked with a scan
    // limit of 0).
    let sql: Vec<String> = vec![
        "userName eq \"BJENSEN\"".into(),
        "userName eq \"åsa.öberg\"".into(),
        "USERNAME Eq \"jsmith\"".into(),
        "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"erin\"".into(),
        "userName ne \"bjensen\"".into(),
        "userName co \"%\"".into(),
        "userName co \"_\"".into(),
        "userName co \"!\"".into(),
        "userName co \"*\"".into(),
        "userName sw \"B\"".into(),
        "userName ew \"N\"".into(),
        "userName co \"\"".into(),
        "userName gt \"erin\"".into(),
        "userName ge \"erin\"".into(),
        "userName lt \"c\"".into(),
        "userName le \"bjensen\"".into(),
        "userName pr".into(),
        "userName eq null".into(),
        "externalId eq \"E-1\"".into(),
        "externalId eq \"e-1\"".into(),
        "externalId ne \"E-1\"".into(),
        "externalId sw \"E\"".into(),
        "externalId co \"*?[\"".into(),
        "externalId ew \"-1\"".into(),
        "externalId pr".into(),
        "not (externalId pr)".into(),
        "externalId eq null".into(),
        "externalId ne null".into(),
        "externalId gt \"E\"".into(),
        "displayName eq \"BABS JENSEN\"".into(),
        "displayName pr".into(),
        "displayName eq null".into(),
        "displayName co \"σασ\"".into(),
        "displayName co \"_\"".into(),
        "displayName sw \"\"".into(),
        "displayName lt \"d\"".into(),
        "active eq true".into(),
        "active eq false".into(),
        "active eq \"True\"".into(),
        "active eq \"nope\"".into(),
        "active ne true".into(),
        "active pr".into(),
        "active eq null".into(),
        "active gt true".into(),
        "active co \"t\"".into(),
        "emails.value eq \"bjensen@example.com\"".into(),
        "emails eq \"JOHN@example.com\"".into(),
        "emails co \"EXAMPLE\"".into(),
        "emails.value ew \".se\"".into(),
        "emails.value sw \"gus\"".into(),
        "emails.value pr".into(),
        "emails.value eq null".into(),
        "emails ne \"gus@example.com\"".into(),
        "emails[value eq \"erin@example.com\"]".into(),
        "emails[value co \"example\" and not (value sw \"b\")]".into(),
        "emails[not (value pr)]".into(),
        "emails[value eq null]".into(),
        format!("id eq \"{}\"", u[3]),
        format!("id ne \"{}\"", u[3]),
        format!("id sw \"{}\"", &u[4][..4]),
        format!("id gt \"{}\"", u[6]),
        "id pr".into(),
        "id eq \"ABC\"".into(),
        format!("meta.created gt \"{ts}\""),
        format!("meta.created ge \"{ts}\""),
        format!("meta.created lt \"{ts}\""),
        format!("meta.created le \"{ts}\""),
        format!("meta.created eq \"{ts}\""),
        format!("meta.created ne \"{ts}\""),
        format!("meta.lastModified gt \"{ts}\""),
        "meta.created gt \"2000-01-01T00:00:00\"".into(),
        "meta.created lt \"not a date\"".into(),
        "meta.created pr".into(),
        format!("groups.value eq \"{}\"", g[0]),
        format!("groups eq \"{}\"", g[1].to_uppercase()),
        format!("groups[value eq \"{}\"]", g[0]),
        "groups pr".into(),
        "not (groups pr)".into(),
        "userName sw \"b\" and active eq true".into(),
        "userName sw \"b\" or externalId eq \"e-1\"".into(),
        "not (userName sw \"b\" or active eq false)".into(),
        "(active eq true or active eq false) and not (emails pr or displayName pr)"
            .replace("emails pr", "emails.value pr"),
        format!("userName eq \"gus\" or (id eq \"{}\" and active pr)", u[0]),
    ];
    // Filters that need the evaluator for some or all of the work.
    let memory: Vec<String> = vec![
        "title eq \"tour guide\"".into(),
        "title co \"Tour\" and active eq true".into(),
        "title pr or userName eq \"ivy\"".into(),
        "name.familyName sw \"j\"".into(),
        "emails pr".into(),
        "not (emails pr)".into(),
        "emails[type eq \"work\"]".into(),
        "emails[type eq \"work\" and value co \"@\"]".into(),
        "emails.primary eq true".into(),
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq \"701984\""
            .into(),
        "employeeNumber eq 701984".into(),
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department pr".into(),
        "urn:acme:custom:2.0:User:badge eq \"b7\"".into(),
        "userName eq 5".into(),
        "userName eq true".into(),
        "meta.created co \"T\"".into(),
        "meta.resourceType eq \"User\"".into(),
        "groups.display eq \"acme staff\"".into(),
        "groups[display sw \"Ad\"] and userName pr".into(),
        "nickName pr".into(),
        "schemas eq \"urn:ietf:params:scim:schemas:core:2.0:user\"".into(),
        "userName sw \"b\" and (title pr or nickName pr)".into(),
        "not (title pr) and emails.value pr".into(),
    ];
    (sql, memory)
}

fn group_filters(w: &World) -> (Vec<String>, Vec<String>) {
    let u = &w.user_ids;
    let g = &w.group_ids;
    let sql: Vec<String> = vec![
        "displayName eq \"acme staff\"".into(),
        "displayName co \"_%\"".into(),
        "displayName sw \"TOURS σ\"".into(),
        "displayName pr".into(),
        "externalId eq \"G-1\"".into(),
        "externalId pr".into(),
        format!("members.value eq \"{}\"", u[0]),
        format!("members eq \"{}\"", u[0].to_uppercase()),
        format!("members[value eq \"{}\"]", g[0]),
        format!("members[value eq \"{}\" or value eq \"{}\"]", u[3], u[9]),
        "members[type eq \"group\"]".into(),
        "members[type eq \"User\" and not (value eq \"x\")]".into(),
        "members[type ne \"User\"]".into(),
        "members pr".into(),
        "not (members pr)".into(),
        "members eq null".into(),
        format!("id eq \"{}\"", g[2]),
        "meta.lastModified gt \"2000-01-01T00:00:00Z\"".into(),
    ];
    let memory: Vec<String> = vec![
        "members.display eq \"frank a.\"".into(),
        "members[display pr]".into(),
        "members.type eq \"Group\"".into(),
        "displayName pr and members[display co \"a\"]".into(),
        "userName pr".into(),
    ];
    (sql, memory)
}

#[tokio::test]
async fn sql_translation_agrees_with_the_evaluator() {
    for which in backends() {
        let (db, _store, dir) = directory(which).await;
        let w = populate(&dir).await;
        // The same database through a store that may scan nothing.
        let strict = store::Store::connect(
            &db.url,
            StoreOptions {
                scan_limit: 0,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        let sdir = strict.tenant(dir.tenant());

        let mut nontrivial = 0;
        for (kind, docs, (sql, memory)) in [
            ("User", &w.users, user_filters(&w)),
            ("Group", &w.groups, group_filters(&w)),
        ] {
            let schema = if kind == "User" {
                ResourceSchema::user()
            } else {
                ResourceSchema::group()
            };
            for (f, sql_only) in sql
                .iter()
                .map(|f| (f, true))
                .chain(memory.iter().map(|f| (f, false)))
            {
                let want = expected(docs, f, schema);
                if !want.is_empty() && want.len() < docs.len() {
                    nontrivial += 1;
                }
                let q = query(Some(f));
                let page = if kind == "User" {
                    dir.list_users(&q).await
                } else {
                    dir.list_groups(&q).await
                }
                .unwrap_or_else(|e| panic!("{which:?} {f}: {e:?}"));
                let got: BTreeSet<String> = page.resources.iter().map(|r| r.id.clone()).collect();
                assert_eq!(got, want, "{which:?} {kind} filter {f}");
                assert_eq!(page.total, want.len() as u64, "{which:?} {f}");

                let strict_page = if kind == "User" {
                    sdir.list_users(&q).await
                } else {
                    sdir.list_groups(&q).await
                };
                match strict_page {
                    Ok(p) => {
                        let got: BTreeSet<String> =
                            p.resources.iter().map(|r| r.id.clone()).collect();
                        assert_eq!(got, want, "{which:?} {kind} strict {f}");
                    }
                    Err(StoreError::TooMany(_)) if !sql_only => {}
                    Err(e) => panic!("{which:?} {kind} {f} should run in SQL alone: {e:?}"),
                }
            }
        }
        assert!(
            nontrivial > 60,
            "the data set must discriminate ({nontrivial})"
        );
    }
}

fn names(page: &[Resource]) -> Vec<String> {
    page.iter()
        .map(|r| r.document["userName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sorting_and_paging() {
    for which in backends() {
        let (_db, _store, dir) = directory(which).await;
        let w = populate(&dir).await;
        let total = w.user_ids.len() as u64;

        let mut all: Vec<String> = users_data()
            .iter()
            .map(|d| d["userName"].as_str().unwrap().to_owned())
            .collect();
        all.sort_by_key(|n| n.chars().flat_map(char::to_lowercase).collect::<String>());

        let mut q = query(None);
        q.sort_by = Some(AttrPath::new("userName"));
        let page = dir.list_users(&q).await.unwrap();
        assert_eq!(names(&page.resources), all, "{which:?}");
        q.descending = true;
        let page = dir.list_users(&q).await.unwrap();
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(names(&page.resources), rev, "{which:?}");

        // Pages.
        q.descending = false;
        q.start_index = 4;
        q.count = 3;
        let page = dir.list_users(&q).await.unwrap();
        assert_eq!(page.total, total);
        assert_eq!(names(&page.resources), all[3..6].to_vec());
        q.start_index = 0; // treated as 1
        let page = dir.list_users(&q).await.unwrap();
        assert_eq!(names(&page.resources), all[..3].to_vec());
        q.start_index = 100;
        let page = dir.list_users(&q).await.unwrap();
        assert!(page.resources.is_empty());
        assert_eq!(page.total, total);
        q.start_index = 1;
        q.count = 0;
        let page = dir.list_users(&q).await.unwrap();
        assert!(page.resources.is_empty());
        assert_eq!(page.total, total, "count=0 still counts");

        // displayName: missing (and empty) values; missing sorts last.
        let mut q = query(None);
        q.sort_by = Some(AttrPath::new("displayName"));
        let page = dir.list_users(&q).await.unwrap();
        let dn: Vec<Option<String>> = page
            .resources
            .iter()
            .map(|r| {
                r.document
                    .get("displayName")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect();
        let first_missing = dn.iter().position(Option::is_none).unwrap();
        assert!(
            dn[first_missing..].iter().all(Option::is_none),
            "{which:?} {dn:?}"
        );
        assert_eq!(dn[0].as_deref(), Some(""));
        q.descending = true;
        let page = dir.list_users(&q).await.unwrap();
        assert!(page.resources[0].document.get("displayName").is_none());

        // In memory: an unindexed attribute, same paging rules, and the
        // same order with or without a filter needing the evaluator.
        let mut q = query(None);
        q.sort_by = Some(AttrPath::with_sub("name", "familyName"));
        let page = dir.list_users(&q).await.unwrap();
        let fam: Vec<&str> = page.resources[..4]
            .iter()
            .map(|r| r.document["name"]["familyName"].as_str().unwrap())
            .collect();
        assert_eq!(fam, vec!["Amber", "Jensen", "Smith", "Zed"], "{which:?}");
        q.filter = Some(scim::filter::parse("name pr").unwrap());
        q.start_index = 2;
        q.count = 2;
        let page = dir.list_users(&q).await.unwrap();
        assert_eq!(page.total, 4);
        let fam: Vec<&str> = page
            .resources
            .iter()
            .map(|r| r.document["name"]["familyName"].as_str().unwrap())
            .collect();
        assert_eq!(fam, vec!["Jensen", "Smith"]);

        // A residual filter with an SQL sort key orders like SQL does.
        let mut a = query(Some("title pr or userName pr"));
        a.sort_by = Some(AttrPath::new("userName"));
        let mut b = query(Some("userName pr"));
        b.sort_by = Some(AttrPath::new("userName"));
        for desc in [false, true] {
            a.descending = desc;
            b.descending = desc;
            let pa = dir.list_users(&a).await.unwrap();
            let pb = dir.list_users(&b).await.unwrap();
            assert_eq!(names(&pa.resources), names(&pb.resources), "{which:?}");
        }

        // Groups: by displayName, members loaded per page or not at all.
        let mut q = query(None);
        q.sort_by = Some(AttrPath::new("displayName"));
        let page = dir.list_groups(&q).await.unwrap();
        let gn: Vec<&str> = page
            .resources
            .iter()
            .map(|r| r.document["displayName"].as_str().unwrap())
            .collect();
        assert_eq!(
            gn,
            vec![
                "Acme Staff",
                "Admins",
                "Empty Group",
                "Everyone_%",
                "tours ΣΑΣ"
            ]
        );
        assert_eq!(page.resources[0].members.as_ref().unwrap().len(), 4);
        assert_eq!(page.resources[2].members.as_ref().unwrap().len(), 0);
        q.with_members = false;
        let page = dir.list_groups(&q).await.unwrap();
        assert!(page.resources.iter().all(|r| r.members.is_none()));

        // Default order is by creation.
        let page = dir.list_users(&query(None)).await.unwrap();
        let ids: Vec<String> = page.resources.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, w.user_ids, "{which:?}");
    }
}

#[tokio::test]
async fn scans_beyond_the_limit_are_refused() {
    for which in backends() {
        let (db, _store, base) = directory(which).await;
        for i in 0..10 {
            let mut d = user(&format!("{}{i}", if i < 3 { "a" } else { "b" }));
            d["title"] = json!(if i % 2 == 0 { "x" } else { "y" });
            base.create_user(d).await.unwrap();
        }
        let store = store::Store::connect(
            &db.url,
            StoreOptions {
                scan_limit: 5,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        let dir = store.tenant(base.tenant());
        let too_many =
            |r: Result<store::Page, StoreError>| matches!(r, Err(StoreError::TooMany(_)));
        assert!(
            too_many(dir.list_users(&query(Some("title eq \"x\""))).await),
            "{which:?}"
        );
        assert!(too_many(
            dir.list_users(&query(Some("title eq \"x\" or userName sw \"a\"")))
                .await
        ));
        let mut q = query(None);
        q.sort_by = Some(AttrPath::new("title"));
        assert!(too_many(dir.list_users(&q).await));
        // The indexed conjunct narrows the scan to 3 rows: allowed.
        let page = dir
            .list_users(&query(Some("title eq \"x\" and userName sw \"a\"")))
            .await
            .unwrap();
        assert_eq!(page.total, 2, "{which:?}");
        // Indexed filters never scan.
        let page = dir
            .list_users(&query(Some("userName sw \"b\"")))
            .await
            .unwrap();
        assert_eq!(page.total, 7);
    }
}

/// A page of users read in SQL brings each user's groups and stored roles
/// along in the same statement; they are exactly what the separate reads
/// answer (groups in `groups` order), and a scanned page leaves them to
/// the caller.
#[tokio::test]
async fn a_page_brings_groups_and_roles_along_as_the_separate_reads_answer() {
    for which in backends() {
        let (_db, store, dir) = directory(which).await;
        // A second tenant with the same group names: none of its rows may
        // show up in the first tenant's page.
        let other = store.tenant(&tenant(&store, "other").await);
        dir.set_role_policy(crate::roles::policy(), Some(0), "test")
            .await
            .unwrap();
        let mut ids = Vec::new();
        for name in ["ann", "ben", "cat", "dan"] {
            ids.push(dir.create_user(user(name)).await.unwrap().id);
            other.create_user(user(name)).await.unwrap();
        }
        // ann in three groups (created out of name order), ben in one,
        // cat and dan in none; dan's roles are the default ones.
        for (name, members) in [("Zeta", vec![0]), ("Admins", vec![0, 1]), ("beta", vec![0])] {
            let members: Vec<Member> = members
                .iter()
                .map(|&i| Member::new(ids[i].clone()))
                .collect();
            dir.create_group(group(name), members.clone())
                .await
                .unwrap();
            other.create_group(group(name), Vec::new()).await.unwrap();
        }
        let both = store::UserExtras {
            groups: true,
            roles: true,
        };
        let separate_groups = dir.user_groups(&ids).await.unwrap();
        let separate_roles = dir.effective_roles(&ids).await.unwrap();
        assert_eq!(
            separate_groups[&ids[0]]
                .iter()
                .map(|g| g.display.as_str())
                .collect::<Vec<_>>(),
            ["Admins", "beta", "Zeta"],
            "{which:?}"
        );
        for filter in [None, Some("userName eq \"ann\""), Some("userName sw \"c\"")] {
            let mut q = query(filter);
            q.user_extras = both;
            let page = dir.list_users(&q).await.unwrap();
            let groups = page.groups.expect("groups read along");
            let roles = page.roles.expect("roles read along");
            assert!(!page.resources.is_empty(), "{which:?} {filter:?}");
            for r in &page.resources {
                assert_eq!(
                    groups.get(&r.id).cloned().unwrap_or_default(),
                    separate_groups[&r.id],
                    "{which:?} {filter:?} groups of {}",
                    r.document["userName"]
                );
                assert_eq!(
                    roles.get(&r.id),
                    separate_roles.get(&r.id),
                    "{which:?} {filter:?} roles of {}",
                    r.document["userName"]
                );
            }
        }
        // The same in one statement for given users (a user not found
        // gets no entry).
        let mut asked = ids.clone();
        asked.push("no-such-user".into());
        let (groups, roles) = dir.user_extras(&asked, both).await.unwrap();
        assert_eq!(groups.len(), ids.len(), "{which:?}");
        for id in &ids {
            assert_eq!(groups[id], separate_groups[id], "{which:?}");
            assert_eq!(roles.get(id), separate_roles.get(id), "{which:?}");
        }
        // Only what is asked comes along.
        let mut q = query(None);
        q.user_extras.roles = true;
        let page = dir.list_users(&q).await.unwrap();
        assert!(page.groups.is_none() && page.roles.is_some(), "{which:?}");
        // A filter finished in memory: the caller reads them itself.
        let mut q = query(Some("title eq \"CTO\" or userName eq \"ann\""));
        q.user_extras = both;
        let page = dir.list_users(&q).await.unwrap();
        assert_eq!(page.resources.len(), 1, "{which:?}");
        assert!(page.groups.is_none() && page.roles.is_none(), "{which:?}");
    }
}
