//! Tenant isolation: another tenant's token sees nothing and changes
//! nothing, on every endpoint and method.

use serde_json::{Value, json};

use crate::common::{App, each_backend, enc};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A's data, as A sees it.
async fn snapshot(app: &App, token: &str, uid: &str, gid: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/Users/{uid}"),
        format!("/Groups/{gid}"),
        "/Users".to_owned(),
        "/Groups".to_owned(),
    ] {
        let r = app.call("GET", &path, token, None).await;
        assert_eq!(r.status, 200);
        out.push(r.body);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_tenants_see_and_change_nothing() {
    each_backend(|app: App| async move {
        let a = app.tenant("tenant-a").await;
        let b = app.tenant("tenant-b").await;
        let u = app
            .call("POST", "/Users", &a.token, Some(json!({"schemas": [USER], "userName": "alice", "externalId": "ea"})))
            .await;
        let uid = u.body["id"].as_str().unwrap().to_owned();
        let g = app
            .call(
                "POST",
                "/Groups",
                &a.token,
                Some(json!({"schemas": [GROUP], "displayName": "A team", "members": [{"value": uid}]})),
            )
            .await;
        let gid = g.body["id"].as_str().unwrap().to_owned();
        let bg = app
            .call("POST", "/Groups", &b.token, Some(json!({"schemas": [GROUP], "displayName": "B team"})))
            .await;
        let bgid = bg.body["id"].as_str().unwrap().to_owned();
        let before = snapshot(&app, &a.token, &uid, &gid).await;

        let user_body = json!({"schemas": [USER], "userName": "mallory"});
        let group_body = json!({"schemas": [GROUP], "displayName": "pwned", "members": []});
        let patch_user = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
        let patch_group = json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members"}]});
        let cases: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", format!("/Users/{uid}"), None),
            ("PUT", format!("/Users/{uid}"), Some(user_body.clone())),
            ("PATCH", format!("/Users/{uid}"), Some(patch_user)),
            ("DELETE", format!("/Users/{uid}"), None),
            ("GET", format!("/Groups/{gid}"), None),
            ("PUT", format!("/Groups/{gid}"), Some(group_body)),
            ("PATCH", format!("/Groups/{gid}"), Some(patch_group)),
            ("DELETE", format!("/Groups/{gid}"), None),
        ];
        // Token-resolved route: B's token resolves to B, which has no such ids.
        for (method, path, body) in &cases {
            let r = app.call(method, path, &b.token, body.clone()).await;
            assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
            assert!(r.body.get("userName").is_none() && r.body.get("displayName").is_none());
            let r = app.call(method, path, &b.read_token, body.clone()).await;
            assert!(r.status == 404 || r.status == 403, "{method} {path}: {}", r.status);
        }
        // Slug route of A with B's token: 401 for everything, lists included.
        let a_base = format!("{}/tenants/tenant-a/scim/v2", app.origin);
        let mut slug_cases = cases.clone();
        slug_cases.extend([
            ("GET", "/Users".to_owned(), None),
            ("POST", "/Users".to_owned(), Some(user_body.clone())),
            ("GET", "/Groups".to_owned(), None),
            ("POST", "/Groups/.search".to_owned(), Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))),
            ("GET", "/Schemas".to_owned(), None),
            ("GET", "/ServiceProviderConfig".to_owned(), None),
        ]);
        for (method, path, body) in &slug_cases {
            let r = app
                .raw(
                    method,
                    &format!("{a_base}{path}"),
                    Some(&b.token),
                    &[("Content-Type", "application/scim+json")],
                    body.as_ref().map(|b| b.to_string().into_bytes()),
                )
                .await;
            assert_eq!(r.status, 401, "{method} {path}: {}", r.body);
            assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"scimgate\""));
        }
        // B's lists and filters never show A's data.
        for path in [
            "/Users".to_owned(),
            "/Groups".to_owned(),
            format!("/Users?filter={}", enc("userName eq \"alice\"")),
            format!("/Users?filter={}", enc(&format!("id eq \"{uid}\""))),
        ] {
            let r = app.call("GET", &path, &b.token, None).await;
            assert_eq!(r.status, 200);
            let names: Vec<&str> = r.body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["displayName"].as_str().or(r["userName"].as_str()))
                .collect();
            assert!(names.iter().all(|n| *n == "B team"), "{path}: {names:?}");
        }
        // B cannot make A's user a member of B's group.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{bgid}"),
                &b.token,
                Some(json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]})),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        // B can create a user with A's userName: uniqueness is per tenant.
        let r = app
            .call("POST", "/Users", &b.token, Some(json!({"schemas": [USER], "userName": "alice"})))
            .await;
        assert_eq!(r.status, 201);
        // A's own slug route works with A's token.
        let r = app
            .raw("GET", &format!("{a_base}/Users/{uid}"), Some(&a.token), &[], None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body["meta"]["location"],
            format!("{a_base}/Users/{uid}").as_str()
        );

        let after = snapshot(&app, &a.token, &uid, &gid).await;
        assert_eq!(before, after, "tenant A's data changed");
    })
    .await;
}
