//! Okta: the flows of Okta's "SCIM 2.0 Protocol Reference".

use serde_json::{Value, json};

use crate::common::{App, each_backend, enc, redacted};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn okta_user() -> Value {
    json!({
        "schemas": [USER],
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_replay() {
    each_backend(|app: App| async move { okta_sequence(&app).await }).await;
}

/// Okta's requests for one user and one group, each answer checked.
pub(crate) async fn okta_sequence(app: &App) {
    {
        let t = app.tenant("okta").await;
        let tok = t.token.as_str();

        // Okta's connection check and import paging.
        let r = app
            .call("GET", "/Users?startIndex=1&count=2", tok, None)
            .await;
        assert_eq!(r.status, 200);
        let r = app
            .call("GET", "/Groups?startIndex=1&count=100", tok, None)
            .await;
        assert_eq!(r.status, 200);

        // Determine if the user exists.
        let lookup = format!(
            "/Users?filter={}&startIndex=1&count=100",
            enc("userName eq \"test.user@okta.local\"")
        );
        let r = app.call("GET", &lookup, tok, None).await;
        assert_eq!(r.body["totalResults"], 0);

        // Create the user: the password is accepted and never returned.
        let r = app.call("POST", "/Users", tok, Some(okta_user())).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let location = format!("{}/Users/{id}", app.scim());
        assert_eq!(
            redacted(r.body.clone()),
            json!({
                "schemas": [USER],
                "id": id,
                "userName": "test.user@okta.local",
                "name": {"givenName": "Test", "familyName": "User"},
                "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "active": true,
                "groups": [],
                "meta": {
                    "resourceType": "User",
                    "created": "[ts]",
                    "lastModified": "[ts]",
                    "location": location,
                    "version": "W/\"1\""
                }
            }),
            "the password is accepted and never returned"
        );
        let dup = app.call("POST", "/Users", tok, Some(okta_user())).await;
        assert_eq!(dup.status, 409);
        assert_eq!(dup.body["scimType"], "uniqueness");

        let r = app.call("GET", &lookup, tok, None).await;
        assert_eq!(r.body["totalResults"], 1);
        assert_eq!(r.body["Resources"][0]["id"], id.as_str());

        // Update via GET then PUT of the whole user (as Okta sends it,
        // echoing id, groups and meta).
        let mut current = app
            .call("GET", &format!("/Users/{id}"), tok, None)
            .await
            .body;
        current["name"]["middleName"] = json!("Excited");
        let r = app
            .call("PUT", &format!("/Users/{id}"), tok, Some(current))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.body["name"],
            json!({"givenName": "Test", "familyName": "User", "middleName": "Excited"})
        );
        assert!(r.body.get("password").is_none());

        // Deactivate with a path-less replace.
        let r = app
            .call(
                "PATCH",
                &format!("/Users/{id}"),
                tok,
                Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["active"], false);
        assert_eq!(r.body["name"]["middleName"], "Excited");

        // Push groups: empty, then with members.
        let second = app
            .call(
                "POST",
                "/Users",
                tok,
                Some(json!({"schemas": [USER], "userName": "second@okta.local"})),
            )
            .await;
        let id2 = second.body["id"].as_str().unwrap().to_owned();
        let r = app
            .call(
                "POST",
                "/Groups",
                tok,
                Some(json!({"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["members"], json!([]));
        let gid = r.body["id"].as_str().unwrap().to_owned();
        let r = app
            .call(
                "POST",
                "/Groups",
                tok,
                Some(json!({
                    "schemas": [GROUP],
                    "displayName": "Pushed With Members",
                    "members": [{"value": id, "display": "test.user@okta.local"}]
                })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let user_ref = format!("{}/Users/{id}", app.scim());
        assert_eq!(
            r.body["members"],
            json!([{"value": id, "display": "test.user@okta.local", "type": "User", "$ref": user_ref}])
        );
        let pushed = r.body["id"].as_str().unwrap().to_owned();

        // Rename (Okta echoes the id in the value).
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                tok,
                Some(json!({"schemas": [PATCH], "Operations": [{
                    "op": "replace",
                    "value": {"id": gid, "displayName": "Test SCIMv20"}
                }]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["displayName"], "Test SCIMv20");
        assert_eq!(r.body["id"], gid.as_str());

        // Membership: remove by filter + add in one request.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                tok,
                Some(json!({"schemas": [PATCH], "Operations": [
                    {"op": "remove", "path": format!("members[value eq \"{id2}\"]")},
                    {"op": "add", "path": "members", "value": [{"value": id, "display": "test.user@okta.local"}]}
                ]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let g = app.call("GET", &format!("/Groups/{gid}"), tok, None).await;
        assert_eq!(
            g.body["members"],
            json!([{"value": id, "display": "test.user@okta.local", "type": "User", "$ref": user_ref}])
        );

        // Full push with replace.
        let r = app
            .call(
                "PATCH",
                &format!("/Groups/{gid}"),
                tok,
                Some(json!({"schemas": [PATCH], "Operations": [{
                    "op": "replace",
                    "path": "members",
                    "value": [
                        {"value": id, "display": "test.user@okta.local"},
                        {"value": id2, "display": "second@okta.local"}
                    ]
                }]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let g = app.call("GET", &format!("/Groups/{gid}"), tok, None).await;
        let mut want = vec![id.clone(), id2.clone()];
        want.sort();
        assert_eq!(ids(&g.body), want);

        // AIW apps update groups with PUT.
        let r = app
            .call(
                "PUT",
                &format!("/Groups/{gid}"),
                tok,
                Some(json!({"schemas": [GROUP], "id": gid, "displayName": "Test SCIMv20", "members": [{"value": id2}]})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(ids(&r.body), vec![id2.clone()]);

        // Import: both groups, paged by 100.
        let r = app
            .call("GET", "/Groups?startIndex=1&count=100", tok, None)
            .await;
        assert_eq!(r.body["totalResults"], 2);
        assert_eq!(r.body["itemsPerPage"], 2);

        // Unlink pushed group with delete.
        let r = app
            .call("DELETE", &format!("/Groups/{pushed}"), tok, None)
            .await;
        assert_eq!(r.status, 204);
        let u = app.call("GET", &format!("/Users/{id}"), tok, None).await;
        assert_eq!(u.body["groups"], json!([]));
    }
}
