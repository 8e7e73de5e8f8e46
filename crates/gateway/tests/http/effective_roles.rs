//! The read-only scimgate User extension: effective roles in responses,
//! projection, discovery, and refusal of client writes.

use ::roles::{GroupMatch, Mapping, Mode, Policy, Role};
use serde_json::{Value, json};

use crate::common::{App, TenantCtx, each_backend, enc};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const EXT: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Roles `admin` and `viewer`; members of the group "Admins" get `admin`.
fn policy(default_role: Option<&str>) -> Policy {
    let role = |name: &str| Role {
        name: name.into(),
        description: String::new(),
    };
    Policy {
        roles: vec![role("admin"), role("viewer")],
        default_role: default_role.map(str::to_owned),
        mappings: vec![Mapping {
            group: GroupMatch::DisplayName("Admins".into()),
            role: "admin".into(),
            priority: 10,
        }],
        mode: Mode::Single,
    }
}

async fn set_policy(app: &App, t: &TenantCtx, policy: Policy) {
    app.store
        .tenant(&t.tenant)
        .set_role_policy(policy, None, "test")
        .await
        .unwrap();
}

async fn make_user(app: &App, t: &TenantCtx, name: &str) -> (String, Value) {
    let r = app
        .call(
            "POST",
            "/Users",
            &t.token,
            Some(json!({"schemas": [USER], "userName": name})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (r.body["id"].as_str().unwrap().to_owned(), r.body)
}

async fn make_group(app: &App, t: &TenantCtx, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let r = app
        .call(
            "POST",
            "/Groups",
            &t.token,
            Some(json!({"schemas": [GROUP], "displayName": name, "members": members})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn get(app: &App, t: &TenantCtx, path: &str) -> Value {
    let r = app.call("GET", path, &t.token, None).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

/// The one resource of a ListResponse with that id.
fn listed<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["Resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["id"] == id))
        .unwrap_or_else(|| panic!("{id} not listed in {list}"))
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({"schemas": [PATCH], "Operations": ops}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_roles_show_in_reads_lists_and_writes() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        set_policy(&app, &t, policy(None)).await;

        // No mapped group and no default role: a row with no roles.
        let (id, created) = make_user(&app, &t, "bjensen").await;
        assert_eq!(created["schemas"], json!([USER, EXT]));
        assert_eq!(created[EXT], json!({"disabled": false, "locked": false}));

        let gid = make_group(&app, &t, "Admins", &[&id]).await;
        let expected = json!({
            "effectiveRoles": [{
                "value": "admin",
                "reason": "mapping",
                "groupId": gid,
                "groupDisplay": "Admins"
            }],
            "disabled": false,
            "locked": false
        });

        let user = get(&app, &t, &format!("/Users/{id}")).await;
        assert_eq!(user["schemas"], json!([USER, EXT]));
        assert_eq!(user[EXT], expected);
        // The extension sits after the core attributes, before `meta`.
        let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
        assert_eq!(keys[keys.len() - 2], EXT);

        let list = get(&app, &t, "/Users").await;
        assert_eq!(listed(&list, &id)[EXT], expected);
        assert_eq!(listed(&list, &id)["schemas"], json!([USER, EXT]));
        let search = app
            .call(
                "POST",
                "/Users/.search",
                &t.token,
                Some(json!({"schemas": [SEARCH], "filter": "userName eq \"bjensen\""})),
            )
            .await;
        assert_eq!(search.status, 200, "{}", search.body);
        assert_eq!(listed(&search.body, &id)[EXT], expected);

        // Only the asked-for part of the extension.
        let sub = enc(&format!("{EXT}:effectiveRoles.value"));
        let narrowed = get(&app, &t, &format!("/Users/{id}?attributes={sub}")).await;
        assert_eq!(
            narrowed,
            json!({
                "schemas": [USER, EXT],
                "id": id,
                EXT: {"effectiveRoles": [{"value": "admin"}]}
            })
        );

        // Write responses carry the roles the write just derived.
        let deactivated = app
            .call(
                "PATCH",
                &format!("/Users/{id}"),
                &t.token,
                patch(json!([{"op": "replace", "path": "active", "value": false}])),
            )
            .await;
        assert_eq!(deactivated.status, 200, "{}", deactivated.body);
        let mut disabled = expected.clone();
        disabled["disabled"] = json!(true);
        assert_eq!(deactivated.body[EXT], disabled);
        let replaced = app
            .call(
                "PUT",
                &format!("/Users/{id}"),
                &t.token,
                Some(json!({"schemas": [USER], "userName": "bjensen", "active": true})),
            )
            .await;
        assert_eq!(replaced.status, 200, "{}", replaced.body);
        assert_eq!(replaced.body[EXT], expected);

        // A role-lock: the lock's roles, reason locked.
        app.store
            .tenant(&t.tenant)
            .lock_user(&id, vec!["viewer".into()], "audit", "tester")
            .await
            .unwrap();
        let locked = get(&app, &t, &format!("/Users/{id}")).await;
        assert_eq!(
            locked[EXT],
            json!({
                "effectiveRoles": [{"value": "viewer", "reason": "locked"}],
                "disabled": false,
                "locked": true
            })
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_roles_and_users_without_stored_roles() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        // Created while the tenant defines no roles: no stored row, so no
        // extension and no URN in `schemas`.
        let (early, created) = make_user(&app, &t, "early").await;
        assert_eq!(created["schemas"], json!([USER]));
        assert!(created.get(EXT).is_none(), "{created}");

        set_policy(&app, &t, policy(Some("viewer"))).await;
        let (id, created) = make_user(&app, &t, "later").await;
        let expected = json!({
            "effectiveRoles": [{"value": "viewer", "reason": "default"}],
            "disabled": false,
            "locked": false
        });
        assert_eq!(created[EXT], expected);
        // A group no mapping names changes nothing.
        make_group(&app, &t, "Sales", &[&id]).await;
        let user = get(&app, &t, &format!("/Users/{id}")).await;
        assert_eq!(user[EXT], expected);

        let list = get(&app, &t, "/Users?sortBy=userName").await;
        assert_eq!(listed(&list, &id)[EXT], expected);
        let without = listed(&list, &early);
        assert!(without.get(EXT).is_none(), "{without}");
        assert_eq!(without["schemas"], json!([USER]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_leaves_the_extension_out() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        set_policy(&app, &t, policy(Some("viewer"))).await;
        let (id, _) = make_user(&app, &t, "bjensen").await;

        let only_name = get(&app, &t, &format!("/Users/{id}?attributes=userName")).await;
        assert_eq!(
            only_name,
            json!({"schemas": [USER], "id": id, "userName": "bjensen"})
        );
        let list = get(&app, &t, "/Users?attributes=userName").await;
        assert_eq!(
            listed(&list, &id),
            &json!({"schemas": [USER], "id": id, "userName": "bjensen"})
        );

        for urn in [EXT.to_owned(), EXT.to_lowercase()] {
            let q = format!("excludedAttributes={}", enc(&urn));
            let user = get(&app, &t, &format!("/Users/{id}?{q}")).await;
            assert!(user.get(EXT).is_none(), "{user}");
            assert_eq!(user["schemas"], json!([USER]));
            assert_eq!(user["userName"], "bjensen");
            assert!(user.get("meta").is_some());
            let list = get(&app, &t, &format!("/Users?{q}")).await;
            assert!(listed(&list, &id).get(EXT).is_none());
        }
        let search = app
            .call(
                "POST",
                "/Users/.search",
                &t.token,
                Some(json!({"schemas": [SEARCH], "excludedAttributes": [EXT]})),
            )
            .await;
        assert!(listed(&search.body, &id).get(EXT).is_none());

        // The write responses honour the projection too.
        let r = app
            .call(
                "PATCH",
                &format!("/Users/{id}?attributes=userName"),
                &t.token,
                patch(json!([{"op": "replace", "path": "nickName", "value": "B"}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.get(EXT).is_none(), "{}", r.body);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_the_extension() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let schemas = get(&app, &t, "/Schemas").await;
        let ids: Vec<&str> = schemas["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert!(ids.contains(&EXT), "{ids:?}");

        let schema = get(&app, &t, &format!("/Schemas/{EXT}")).await;
        let attributes = schema["attributes"].as_array().unwrap();
        let names: Vec<&str> = attributes
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["effectiveRoles", "disabled", "locked"]);
        assert!(attributes.iter().all(|a| a["mutability"] == "readOnly"));

        let rt = get(&app, &t, "/ResourceTypes/User").await;
        assert_eq!(
            rt["schemaExtensions"],
            json!([
                {"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": false},
                {"schema": EXT, "required": false}
            ])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_write_the_extension() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        set_policy(&app, &t, policy(Some("viewer"))).await;
        let real = json!({
            "effectiveRoles": [{"value": "viewer", "reason": "default"}],
            "disabled": false,
            "locked": false
        });
        let forged = json!({
            "effectiveRoles": [{"value": "admin", "reason": "locked"}],
            "disabled": true,
            "locked": true
        });

        // POST: ignored, nested, flat, and listed in `schemas`.
        let r = app
            .call(
                "POST",
                "/Users",
                &t.token,
                Some(json!({
                    "schemas": [USER, EXT],
                    "userName": "bjensen",
                    EXT: {
                        "effectiveRoles": forged["effectiveRoles"].clone(),
                        "disabled": true
                    },
                    format!("{EXT}:locked"): true
                })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body[EXT], real);
        let id = r.body["id"].as_str().unwrap().to_owned();

        // PUT: ignored too, the rest of the body applies.
        let r = app
            .call(
                "PUT",
                &format!("/Users/{id}"),
                &t.token,
                Some(json!({
                    "schemas": [USER, EXT],
                    "userName": "bjensen",
                    "nickName": "Babs",
                    EXT: forged.clone()
                })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["nickName"], "Babs");
        assert_eq!(r.body[EXT], real);
        assert_eq!(get(&app, &t, &format!("/Users/{id}")).await[EXT], real);

        // Never stored in the user's document.
        let stored = app
            .store
            .tenant(&t.tenant)
            .get_user(&id)
            .await
            .unwrap()
            .document;
        assert!(stored.get(EXT).is_none(), "{stored}");
        assert_eq!(stored["schemas"], json!([USER]));

        // PATCH: any operation on the extension or its attributes.
        let flat = format!("{EXT}:locked");
        for ops in [
            json!([{"op": "replace", "path": format!("{EXT}:disabled"), "value": true}]),
            json!([{"op": "add", "path": format!("{EXT}:effectiveRoles"),
                    "value": [{"value": "admin"}]}]),
            json!([{"op": "remove", "path": format!("{EXT}:effectiveRoles[value eq \"viewer\"]")}]),
            json!([{"op": "replace", "path": EXT, "value": forged.clone()}]),
            json!([{"op": "remove", "path": EXT}]),
            json!([{"op": "replace", "value": {EXT: forged.clone()}}]),
            json!([{"op": "replace", "value": {flat.as_str(): true}}]),
            json!([
                {"op": "replace", "path": "nickName", "value": "B"},
                {"op": "add", "value": {EXT: {"disabled": true}}}
            ]),
        ] {
            let r = app
                .call(
                    "PATCH",
                    &format!("/Users/{id}"),
                    &t.token,
                    patch(ops.clone()),
                )
                .await;
            assert_eq!(r.status, 400, "{ops}: {}", r.body);
            assert_eq!(r.body["scimType"], "mutability", "{ops}: {}", r.body);
        }
        // Refused PATCHes changed nothing (not even the nickName).
        let user = get(&app, &t, &format!("/Users/{id}")).await;
        assert_eq!(user[EXT], real);
        assert_eq!(user["nickName"], "Babs");
        assert_eq!(user["meta"]["version"], "W/\"2\"");

        // Filters and sorting on it are refused, not silently empty.
        for q in [
            format!("filter={}", enc(&format!("{EXT}:disabled eq false"))),
            format!(
                "filter={}",
                enc(&format!("{EXT}:effectiveRoles[value eq \"viewer\"]"))
            ),
        ] {
            let r = app
                .call("GET", &format!("/Users?{q}"), &t.token, None)
                .await;
            assert_eq!(r.status, 400, "{q}: {}", r.body);
            assert_eq!(r.body["scimType"], "invalidFilter");
        }
        let q = format!("sortBy={}", enc(&format!("{EXT}:disabled")));
        let r = app
            .call("GET", &format!("/Users?{q}"), &t.token, None)
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue");
    })
    .await;
}
