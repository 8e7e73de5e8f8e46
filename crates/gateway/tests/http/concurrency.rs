//! Concurrent writes: member additions all land, duplicate creates
//! conflict exactly once.

use std::sync::Arc;

use serde_json::json;

use crate::common::{App, each_backend};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_member_adds_all_land() {
    each_backend(|app: App| async move {
        let app = Arc::new(app);
        let t = app.tenant("acme").await;
        let mut users = Vec::new();
        for i in 0..32 {
            let r = app
                .call(
                    "POST",
                    "/Users",
                    &t.token,
                    Some(json!({"schemas": [USER], "userName": format!("u{i}")})),
                )
                .await;
            users.push(r.body["id"].as_str().unwrap().to_owned());
        }
        let g = app
            .call(
                "POST",
                "/Groups",
                &t.token,
                Some(json!({"schemas": [GROUP], "displayName": "all"})),
            )
            .await;
        let gid = g.body["id"].as_str().unwrap().to_owned();
        let mut tasks = Vec::new();
        for uid in &users {
            let (app, token, gid, uid) = (app.clone(), t.token.clone(), gid.clone(), uid.clone());
            tasks.push(tokio::spawn(async move {
                app.call(
                    "PATCH",
                    &format!("/Groups/{gid}"),
                    &token,
                    Some(json!({"schemas": [PATCH], "Operations": [
                        {"op": "add", "path": "members", "value": [{"value": uid}]}
                    ]})),
                )
                .await
                .status
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 200);
        }
        let g = app
            .call("GET", &format!("/Groups/{gid}"), &t.token, None)
            .await;
        let mut got: Vec<String> = g.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        users.sort();
        assert_eq!(got, users);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicate_creates_conflict() {
    each_backend(|app: App| async move {
        let app = Arc::new(app);
        let t = app.tenant("acme").await;
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (app, token) = (app.clone(), t.token.clone());
            // Same userName, different case and externalId.
            let name = if i % 2 == 0 { "Same.User" } else { "same.user" };
            tasks.push(tokio::spawn(async move {
                let r = app
                    .call(
                        "POST",
                        "/Users",
                        &token,
                        Some(json!({"schemas": [USER], "userName": name, "externalId": format!("e{i}")})),
                    )
                    .await;
                (r.status, r.body["scimType"].as_str().map(str::to_owned))
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                (201, _) => created += 1,
                (409, Some(t)) if t == "uniqueness" => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(created, 1);
        let l = app.call("GET", "/Users", &t.token, None).await;
        assert_eq!(l.body["totalResults"], 1);
    })
    .await;
}
