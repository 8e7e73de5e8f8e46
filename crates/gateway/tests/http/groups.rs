//! Groups: CRUD, members in every shape, projection, the User `groups`.

use serde_json::{Value, json};

use gateway::{GatewayConfig, GroupPatchResponse};

use crate::common::{App, each_backend, each_backend_with, enc, redacted};

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn make_user(app: &App, token: &str, name: &str) -> String {
    let r = app
        .call(
            "POST",
            "/Users",
            token,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": name
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

fn member_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["value"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn patch(ops: Value) -> Option<Value> {
    Some(json!({"schemas": [PATCH], "Operations": ops}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_crud_and_members() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let u1 = make_user(&app, &t.token, "u1").await;
        let u2 = make_user(&app, &t.token, "u2").await;
        let u3 = make_user(&app, &t.token, "u3").await;

        let created = app
            .call(
                "POST",
                "/Groups",
                &t.token,
                Some(json!({
                    "schemas": [GROUP],
                    "displayName": "Engineering",
                    "externalId": "eng",
                    "members": [{"value": u1, "display": "u1"}]
                })),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let gid = created.body["id"].as_str().unwrap().to_owned();
        let location = format!("{}/Groups/{gid}", app.scim());
        assert_eq!(created.header("location"), Some(location.as_str()));
        assert_eq!(
            redacted(created.body.clone()),
            json!({
                "schemas": [GROUP],
                "id": gid,
                "displayName": "Engineering",
                "externalId": "eng",
                "members": [{
                    "value": u1,
                    "display": "u1",
                    "type": "User",
                    "$ref": format!("{}/Users/{u1}", app.scim())
                }],
                "meta": {
                    "resourceType": "Group",
                    "created": "[ts]",
                    "lastModified": "[ts]",
                    "location": location,
                    "version": "W/\"1\""
                }
            })
        );

        // Duplicate displayName.
        let dup = app
            .call("POST", "/Groups", &t.token, Some(json!({"schemas": [GROUP], "displayName": "engineering"})))
            .await;
        assert_eq!(dup.status, 409, "{}", dup.body);
        assert_eq!(dup.body["scimType"], "uniqueness");

        // excludedAttributes=members never shows members.
        let g = app
            .call("GET", &format!("/Groups/{gid}?excludedAttributes=members"), &t.token, None)
            .await;
        assert_eq!(g.status, 200);
        assert!(g.body.get("members").is_none(), "{}", g.body);
        assert_eq!(g.body["displayName"], "Engineering");

        // PATCH add by array, remove by filter, remove by value array.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                &t.token,
                patch(json!([{"op": "add", "path": "members", "value": [{"value": u2}, {"value": u3}]}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["displayName"], "Engineering");
        let g = app.call("GET", &format!("/Groups/{gid}"), &t.token, None).await;
        let mut want = vec![u1.clone(), u2.clone(), u3.clone()];
        want.sort();
        assert_eq!(member_ids(&g.body), want);
        // RFC 7644 §3.5.2: a 200 PATCH response is the entire resource,
        // members included, unless the client excludes them.
        assert_eq!(member_ids(&r.body), want, "PATCH returns the members");
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}?excludedAttributes=members"),
                &t.token,
                patch(json!([{"op": "replace", "path": "displayName", "value": "Engineering"}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.get("members").is_none(), "excluded: {}", r.body);

        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}?attributes=members"),
                &t.token,
                patch(json!([{"op": "remove", "path": format!("members[value eq \"{u2}\"]")}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut want = vec![u1.clone(), u3.clone()];
        want.sort();
        assert_eq!(member_ids(&r.body), want, "attributes=members returns them");

        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                &t.token,
                patch(json!([{"op": "Remove", "path": "members", "value": [{"value": u1}]}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let g = app.call("GET", &format!("/Groups/{gid}"), &t.token, None).await;
        assert_eq!(member_ids(&g.body), vec![u3.clone()]);

        // The User's groups attribute.
        let u = app.call("GET", &format!("/Users/{u3}"), &t.token, None).await;
        assert_eq!(
            u.body["groups"],
            json!([{
                "value": gid,
                "$ref": location,
                "display": "Engineering",
                "type": "direct"
            }])
        );
        let u = app
            .call("GET", &format!("/Users/{u3}?excludedAttributes=groups"), &t.token, None)
            .await;
        assert!(u.body.get("groups").is_none());

        // Replace members, rename in one request.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                &t.token,
                patch(json!([
                    {"op": "replace", "path": "members", "value": [{"value": u1}, {"value": u2}]},
                    {"op": "replace", "path": "displayName", "value": "Eng"}
                ])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["displayName"], "Eng");
        let g = app.call("GET", &format!("/Groups/{gid}"), &t.token, None).await;
        let mut want = vec![u1.clone(), u2.clone()];
        want.sort();
        assert_eq!(member_ids(&g.body), want);

        // A member id that is not this tenant's.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                &t.token,
                patch(json!([{"op": "add", "path": "members", "value": [{"value": "no-such-id"}]}])),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue");

        // PUT replaces the whole member set.
        let r = app
            .call(
                "PUT",
                &format!("/Groups/{gid}"),
                &t.token,
                Some(json!({"schemas": [GROUP], "displayName": "Eng", "members": [{"value": u3}]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(member_ids(&r.body), vec![u3.clone()]);
        assert!(r.body.get("externalId").is_none(), "PUT replaces: {}", r.body);

        // Deleting a user removes them from the group.
        assert_eq!(app.call("DELETE", &format!("/Users/{u3}"), &t.token, None).await.status, 204);
        let g = app.call("GET", &format!("/Groups/{gid}"), &t.token, None).await;
        assert_eq!(member_ids(&g.body), Vec::<String>::new());

        // Lists.
        let l = app
            .call(
                "GET",
                &format!("/Groups?filter={}&excludedAttributes=members", enc("displayName eq \"eng\"")),
                &t.token,
                None,
            )
            .await;
        assert_eq!(l.body["totalResults"], 1);
        assert!(l.body["Resources"][0].get("members").is_none());
        let s = app
            .call(
                "POST",
                "/Groups/.search",
                &t.token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "displayName sw \"E\""
                })),
            )
            .await;
        assert_eq!(s.status, 200, "{}", s.body);
        assert_eq!(s.body["totalResults"], 1);

        assert_eq!(app.call("DELETE", &format!("/Groups/{gid}"), &t.token, None).await.status, 204);
        assert_eq!(app.call("GET", &format!("/Groups/{gid}"), &t.token, None).await.status, 404);
        let l = app.call("GET", "/Groups", &t.token, None).await;
        assert_eq!(l.body["totalResults"], 0);
        assert_eq!(l.body["Resources"], json!([]));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_can_answer_no_content() {
    let config = || GatewayConfig {
        group_patch_response: GroupPatchResponse::NoContent,
        ..GatewayConfig::default()
    };
    each_backend_with(config, |app: App| async move {
        let t = app.tenant("acme").await;
        let alice = make_user(&app, &t.token, "alice").await;
        let r = app
            .call(
                "POST",
                "/Groups",
                &t.token,
                Some(json!({"schemas": [GROUP], "displayName": "Admins"})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();

        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{id}"),
                &t.token,
                patch(json!([{"op": "add", "path": "members", "value": [{"value": alice}]}])),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(r.header("etag"), Some("W/\"2\""));
        assert_eq!(r.body, Value::Null, "no body with 204");

        // The change landed, and the ETag named its version.
        let g = app
            .call("GET", &format!("/Groups/{id}"), &t.token, None)
            .await;
        assert_eq!(member_ids(&g.body), vec![alice.clone()]);
        assert_eq!(g.header("etag"), Some("W/\"2\""));

        // Errors are unchanged: still a SCIM error body.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{id}"),
                &t.token,
                patch(json!([{"op": "add", "path": "members", "value": [{"value": "nobody"}]}])),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["scimType"], "invalidValue");
    })
    .await;
}

async fn make_group(app: &App, token: &str, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    let r = app
        .call(
            "POST",
            "/Groups",
            token,
            Some(json!({"schemas": [GROUP], "displayName": name, "members": members})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

fn add_members(ids: &[&str]) -> Option<Value> {
    let values: Vec<Value> = ids.iter().map(|m| json!({"value": m})).collect();
    patch(json!([{"op": "add", "path": "members", "value": values}]))
}

#[test]
fn large_group_member_patches_answer_no_content_by_default() {
    let config = GatewayConfig::default();
    assert_eq!(config.group_patch_response, GroupPatchResponse::Auto);
    assert_eq!(config.group_patch_no_content_above, 1_000);
}

/// By default a member-only PATCH answers 200 with the group while the
/// group is small, and 204 with the new ETag once it has more members than
/// the threshold (here lowered to 2); a request naming `attributes` or
/// `excludedAttributes`, or touching anything but `members`, still gets
/// the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_answers_no_content_above_the_size_threshold() {
    let config = || GatewayConfig {
        group_patch_no_content_above: 2,
        ..GatewayConfig::default()
    };
    each_backend_with(config, |app: App| async move {
        let t = app.tenant("acme").await;
        let mut users = Vec::new();
        for name in ["a", "b", "c", "d", "e"] {
            users.push(make_user(&app, &t.token, name).await);
        }
        let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|i| users[i].as_str());
        let id = make_group(&app, &t.token, "Everyone", &[a]).await;
        let path = format!("/Groups/{id}");

        // Two members after the write: not above the threshold.
        let r = app.call("PATCH", &path, &t.token, add_members(&[b])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(member_ids(&r.body), sorted(&[a, b]));
        assert_eq!(r.header("etag"), Some("W/\"2\""));

        // Three: above it.
        let r = app.call("PATCH", &path, &t.token, add_members(&[c])).await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(r.header("etag"), Some("W/\"3\""));
        assert_eq!(r.body, Value::Null, "no body with 204");
        assert_eq!(r.header("content-type"), None);

        // Entra's path-less form is a member-only PATCH too.
        let r = app
            .call(
                "PATCH",
                &path,
                &t.token,
                patch(json!([{"op": "Add", "value": {"members": [{"value": d}]}}])),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(r.header("etag"), Some("W/\"4\""));

        // Asking for attributes asks for a representation.
        let r = app
            .call("PATCH", &format!("{path}?attributes=members"), &t.token, add_members(&[e]))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(member_ids(&r.body), sorted(&[a, b, c, d, e]));
        assert_eq!(r.header("etag"), Some("W/\"5\""));
        let r = app
            .call(
                "PATCH",
                &format!("{path}?excludedAttributes=members"),
                &t.token,
                patch(json!([{"op": "remove", "path": format!("members[value eq \"{e}\"]")}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.get("members").is_none(), "{}", r.body);
        assert_eq!(r.body["displayName"], "Everyone");

        // Not only members: the group comes back, members and all.
        let r = app
            .call(
                "PATCH",
                &path,
                &t.token,
                patch(json!([
                    {"op": "replace", "path": "displayName", "value": "All"},
                    {"op": "add", "path": "members", "value": [{"value": e}]}
                ])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["displayName"], "All");
        assert_eq!(member_ids(&r.body), sorted(&[a, b, c, d, e]));

        // Back down to two members: the group comes back again.
        let r = app
            .call(
                "PATCH",
                &path,
                &t.token,
                patch(json!([{"op": "remove", "path": "members", "value": [{"value": c}, {"value": d}, {"value": e}]}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(member_ids(&r.body), sorted(&[a, b]));

        // Every 204 write landed.
        let g = app.call("GET", &path, &t.token, None).await;
        assert_eq!(member_ids(&g.body), sorted(&[a, b]));
        assert_eq!(g.header("etag"), Some("W/\"8\""));
    })
    .await;
}

/// `group_patch_response = resource` overrides the size rule: full
/// replies whatever the size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_patch_response_resource_always_answers_the_group() {
    let config = || GatewayConfig {
        group_patch_response: GroupPatchResponse::Resource,
        group_patch_no_content_above: 0,
        ..GatewayConfig::default()
    };
    each_backend_with(config, |app: App| async move {
        let t = app.tenant("acme").await;
        let a = make_user(&app, &t.token, "a").await;
        let b = make_user(&app, &t.token, "b").await;
        let id = make_group(&app, &t.token, "Everyone", &[&a]).await;
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{id}"),
                &t.token,
                add_members(&[&b]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(member_ids(&r.body), sorted(&[&a, &b]));
        assert_eq!(r.header("etag"), Some("W/\"2\""));
    })
    .await;
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

/// Under the default projection a group's members are spliced into the
/// reply as the database wrote them; under any other they are parsed and
/// projected. Both give the same array: same members, same keys, same
/// `$ref`s, same member-id order, for users and groups, with and without
/// a display, whatever characters the display holds. On GET and on the
/// PATCH reply alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spliced_and_projected_members_are_the_same() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let mut sent = Vec::new();
        let displays = [
            Some("Quote \" back\\slash"),
            Some("Zoë 山田 \u{1}"),
            None,
            Some("plain"),
        ];
        for (i, d) in displays.iter().enumerate() {
            let id = make_user(&app, &t.token, &format!("m{i}")).await;
            let mut m = json!({"value": id});
            if let Some(d) = d {
                m["display"] = json!(d);
            }
            sent.push(m);
        }
        let inner = app
            .call(
                "POST",
                "/Groups",
                &t.token,
                Some(json!({"schemas": [GROUP], "displayName": "Inner"})),
            )
            .await;
        assert_eq!(inner.status, 201, "{}", inner.body);
        let inner_id = inner.body["id"].as_str().unwrap().to_owned();
        sent.push(json!({"value": inner_id, "display": "Inner"}));
        let r = app
            .call(
                "POST",
                "/Groups",
                &t.token,
                Some(json!({"schemas": [GROUP], "displayName": "Outer", "members": sent})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();

        let spliced = app
            .call("GET", &format!("/Groups/{id}"), &t.token, None)
            .await;
        let projected = app
            .call(
                "GET",
                &format!("/Groups/{id}?excludedAttributes=externalId"),
                &t.token,
                None,
            )
            .await;
        assert_eq!(spliced.status, 200, "{}", spliced.body);
        assert_eq!(projected.status, 200, "{}", projected.body);
        let members = spliced.body["members"].clone();
        assert_eq!(members, projected.body["members"]);
        assert_eq!(members.as_array().map(Vec::len), Some(5), "{members}");
        let order: Vec<&str> = members
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "member-id order");
        for m in members.as_array().unwrap() {
            let value = m["value"].as_str().unwrap();
            let is_group = value == inner_id;
            let (kind, endpoint) = if is_group {
                ("Group", "Groups")
            } else {
                ("User", "Users")
            };
            assert_eq!(m["type"], kind, "{m}");
            assert_eq!(
                m["$ref"],
                format!("{}/{endpoint}/{value}", app.scim()),
                "{m}"
            );
            let at = sent.iter().find(|s| s["value"] == value).unwrap();
            assert_eq!(m.get("display"), at.get("display"), "{m}");
            let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
            let expected: Vec<&str> = if at.get("display").is_some() {
                vec!["value", "display", "type", "$ref"]
            } else {
                vec!["value", "type", "$ref"]
            };
            assert_eq!(keys, expected, "{m}");
        }
        // The rest of the document is the same too (externalId aside).
        assert_eq!(spliced.body["meta"], projected.body["meta"]);
        assert_eq!(spliced.body["displayName"], "Outer");

        // A PATCH reply splices the members as they are after the change.
        let gone = order[0].to_owned();
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{id}"),
                &t.token,
                patch(json!([{"op": "remove", "path": format!("members[value eq \"{gone}\"]")}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let after: Vec<Value> = members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["value"] != gone.as_str())
            .cloned()
            .collect();
        assert_eq!(r.body["members"], Value::Array(after));
        assert_eq!(r.body["meta"]["version"], r.header("etag").unwrap_or(""));

        // An empty group has an empty array either way.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{inner_id}"),
                &t.token,
                patch(json!([{"op": "replace", "path": "displayName", "value": "Inner 2"}])),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["members"], json!([]));
    })
    .await;
}
