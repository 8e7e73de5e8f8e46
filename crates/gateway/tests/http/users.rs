//! Users: CRUD, lists, filters, paging, sorting, projection, ETags.

use serde_json::{Value, json};

use crate::common::{App, each_backend, enc, redacted};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn bjensen() -> Value {
    json!({
        "schemas": [USER],
        "userName": "bjensen@example.com",
        "externalId": "ext-bjensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "active": true
    })
}

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "externalId": format!("x-{name}")})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_crud_round_trip() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let base = app.scim();

        let created = app.call("POST", "/Users", &t.token, Some(bjensen())).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        let location = format!("{base}/Users/{id}");
        assert_eq!(created.header("location"), Some(location.as_str()));
        assert_eq!(created.header("etag"), Some("W/\"1\""));
        assert_eq!(
            created.header("content-type"),
            Some("application/scim+json; charset=utf-8")
        );
        assert!(created.header("x-request-id").is_some());
        let expected = json!({
            "schemas": [USER],
            "id": id,
            "userName": "bjensen@example.com",
            "externalId": "ext-bjensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
            "active": true,
            "groups": [],
            "meta": {
                "resourceType": "User",
                "created": "[ts]",
                "lastModified": "[ts]",
                "location": location,
                "version": "W/\"1\""
            }
        });
        assert_eq!(redacted(created.body.clone()), expected);

        let got = app
            .call("GET", &format!("/Users/{id}"), &t.token, None)
            .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("etag"), Some("W/\"1\""));
        assert_eq!(got.body, created.body);

        // PUT replaces; active false is kept and returned.
        let mut put = bjensen();
        put["name"]["givenName"] = json!("Babs");
        put["active"] = json!(false);
        let replaced = app
            .call("PUT", &format!("/Users/{id}"), &t.token, Some(put))
            .await;
        assert_eq!(replaced.status, 200, "{}", replaced.body);
        assert_eq!(replaced.body["name"]["givenName"], "Babs");
        assert_eq!(replaced.body["active"], false);
        assert_eq!(replaced.body["meta"]["version"], "W/\"2\"");
        assert_eq!(replaced.header("etag"), Some("W/\"2\""));

        let patched = app
            .call(
                "PATCH",
                &format!("/Users/{id}"),
                &t.token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "displayName", "value": "Babs Jensen"}]
                })),
            )
            .await;
        assert_eq!(patched.status, 200, "{}", patched.body);
        assert_eq!(patched.body["displayName"], "Babs Jensen");
        assert_eq!(patched.body["active"], false);
        assert_eq!(patched.body["meta"]["version"], "W/\"3\"");

        let deleted = app
            .call("DELETE", &format!("/Users/{id}"), &t.token, None)
            .await;
        assert_eq!(deleted.status, 204);
        assert_eq!(deleted.body, Value::Null);
        let gone = app
            .call("GET", &format!("/Users/{id}"), &t.token, None)
            .await;
        assert_eq!(gone.status, 404);
        assert_eq!(gone.body["status"], "404");
        assert_eq!(
            gone.body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
        let again = app
            .call("DELETE", &format!("/Users/{id}"), &t.token, None)
            .await;
        assert_eq!(again.status, 404);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_usernames_conflict_case_insensitively() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        assert_eq!(
            app.call("POST", "/Users", &t.token, Some(user("Alice")))
                .await
                .status,
            201
        );
        let dup = app
            .call("POST", "/Users", &t.token, Some(user("ALICE")))
            .await;
        assert_eq!(dup.status, 409, "{}", dup.body);
        assert_eq!(dup.body["scimType"], "uniqueness");
        assert_eq!(dup.body["status"], "409");
        let list = app.call("GET", "/Users", &t.token, None).await;
        assert_eq!(list.body["totalResults"], 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_page_sort_and_project() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        for name in ["carol", "alice", "erin", "bob", "dave"] {
            let r = app.call("POST", "/Users", &t.token, Some(user(name))).await;
            assert_eq!(r.status, 201);
        }
        // Everything, sorted.
        let all = app
            .call("GET", "/Users?sortBy=userName", &t.token, None)
            .await;
        assert_eq!(all.status, 200);
        assert_eq!(all.body["schemas"], json!([LIST]));
        assert_eq!(all.body["totalResults"], 5);
        assert_eq!(all.body["itemsPerPage"], 5);
        assert_eq!(all.body["startIndex"], 1);
        let names = |v: &Value| -> Vec<String> {
            v["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["userName"].as_str().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(names(&all.body), ["alice", "bob", "carol", "dave", "erin"]);
        let desc = app
            .call(
                "GET",
                "/Users?sortBy=userName&sortOrder=Descending",
                &t.token,
                None,
            )
            .await;
        assert_eq!(names(&desc.body), ["erin", "dave", "carol", "bob", "alice"]);

        // Paging: totalResults counts all matches; the page is the slice.
        let page = app
            .call(
                "GET",
                "/Users?sortBy=userName&startIndex=2&count=2",
                &t.token,
                None,
            )
            .await;
        assert_eq!(page.body["totalResults"], 5);
        assert_eq!(page.body["itemsPerPage"], 2);
        assert_eq!(page.body["startIndex"], 2);
        assert_eq!(names(&page.body), ["bob", "carol"]);
        let past = app
            .call("GET", "/Users?startIndex=50", &t.token, None)
            .await;
        assert_eq!(past.body["totalResults"], 5);
        assert_eq!(past.body["itemsPerPage"], 0);
        assert_eq!(past.body["Resources"], json!([]));
        let count0 = app.call("GET", "/Users?count=0", &t.token, None).await;
        assert_eq!(count0.body["totalResults"], 5);
        assert_eq!(count0.body["itemsPerPage"], 0);
        let neg = app
            .call("GET", "/Users?count=-3&startIndex=-9", &t.token, None)
            .await;
        assert_eq!(neg.status, 200);
        assert_eq!(neg.body["itemsPerPage"], 0);
        assert_eq!(neg.body["startIndex"], 1);

        // Filters: userName case-insensitive, externalId, compound.
        let f = enc("userName eq \"ALICE\"");
        let one = app
            .call("GET", &format!("/Users?filter={f}"), &t.token, None)
            .await;
        assert_eq!(one.body["totalResults"], 1);
        assert_eq!(names(&one.body), ["alice"]);
        let f = enc("externalId eq \"x-bob\"");
        let one = app
            .call("GET", &format!("/Users?filter={f}"), &t.token, None)
            .await;
        assert_eq!(names(&one.body), ["bob"]);
        let f = enc("userName sw \"d\" or userName eq \"erin\"");
        let two = app
            .call(
                "GET",
                &format!("/Users?filter={f}&sortBy=userName"),
                &t.token,
                None,
            )
            .await;
        assert_eq!(names(&two.body), ["dave", "erin"]);

        // Projection: always-returned id and schemas survive.
        let p = app
            .call(
                "GET",
                "/Users?attributes=userName&sortBy=userName&count=1",
                &t.token,
                None,
            )
            .await;
        let r = &p.body["Resources"][0];
        assert_eq!(r["userName"], "alice");
        assert!(r["id"].is_string());
        assert!(r.get("externalId").is_none());
        assert!(r.get("groups").is_none());
        let p = app
            .call(
                "GET",
                "/Users?excludedAttributes=externalId,meta&sortBy=userName&count=1",
                &t.token,
                None,
            )
            .await;
        let r = &p.body["Resources"][0];
        assert!(r.get("externalId").is_none());
        assert!(r.get("meta").is_none());
        assert_eq!(r["userName"], "alice");

        // A huge count is capped, not refused.
        let big = app
            .call("GET", "/Users?count=100000000000", &t.token, None)
            .await;
        assert_eq!(big.status, 200);
        assert_eq!(big.body["itemsPerPage"], 5);

        // POST /.search
        let s = app
            .call(
                "POST",
                "/Users/.search",
                &t.token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "attributes": ["userName"],
                    "filter": "userName ew \"e\"",
                    "sortBy": "userName",
                    "startIndex": 1,
                    "count": 10
                })),
            )
            .await;
        assert_eq!(s.status, 200, "{}", s.body);
        assert_eq!(names(&s.body), ["alice", "dave"]);
        assert_eq!(s.body["totalResults"], 2);
        assert!(s.body["Resources"][0].get("externalId").is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_guard_writes_and_reads() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let created = app
            .call("POST", "/Users", &t.token, Some(user("erin")))
            .await;
        let id = created.body["id"].as_str().unwrap().to_owned();
        let url = format!("{}/Users/{id}", app.scim());
        let json_ct = ("Content-Type", "application/scim+json");

        let not_modified = app
            .raw(
                "GET",
                &url,
                Some(&t.token),
                &[("If-None-Match", "W/\"1\"")],
                None,
            )
            .await;
        assert_eq!(not_modified.status, 304);
        assert_eq!(not_modified.header("etag"), Some("W/\"1\""));
        let modified = app
            .raw(
                "GET",
                &url,
                Some(&t.token),
                &[("If-None-Match", "W/\"0\"")],
                None,
            )
            .await;
        assert_eq!(modified.status, 200);

        let mut renamed = user("erin");
        renamed["nickName"] = json!("E");
        let body = renamed.to_string().into_bytes();
        let stale = app
            .raw(
                "PUT",
                &url,
                Some(&t.token),
                &[json_ct, ("If-Match", "W/\"7\"")],
                Some(body.clone()),
            )
            .await;
        assert_eq!(stale.status, 412, "{}", stale.body);
        assert_eq!(stale.body["status"], "412");
        let garbage = app
            .raw(
                "PUT",
                &url,
                Some(&t.token),
                &[json_ct, ("If-Match", "not-an-etag")],
                Some(body.clone()),
            )
            .await;
        assert_eq!(garbage.status, 412);
        let ok = app
            .raw(
                "PUT",
                &url,
                Some(&t.token),
                &[json_ct, ("If-Match", "W/\"1\"")],
                Some(body.clone()),
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert_eq!(ok.header("etag"), Some("W/\"2\""));
        let mut changed = renamed.clone();
        changed["displayName"] = json!("Erin");
        let list = app
            .raw(
                "PUT",
                &url,
                Some(&t.token),
                &[json_ct, ("If-Match", "W/\"9\", W/\"2\"")],
                Some(changed.to_string().into_bytes()),
            )
            .await;
        assert_eq!(list.status, 200, "{}", list.body);

        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}]
        })
        .to_string()
        .into_bytes();
        let stale = app
            .raw(
                "PATCH",
                &url,
                Some(&t.token),
                &[json_ct, ("If-Match", "W/\"1\"")],
                Some(patch),
            )
            .await;
        assert_eq!(stale.status, 412);
        let stale = app
            .raw(
                "DELETE",
                &url,
                Some(&t.token),
                &[("If-Match", "W/\"1\"")],
                None,
            )
            .await;
        assert_eq!(stale.status, 412);
        // Nothing changed by the refused requests.
        let now = app
            .call("GET", &format!("/Users/{id}"), &t.token, None)
            .await;
        assert_eq!(now.body["meta"]["version"], "W/\"3\"");
        assert!(now.body.get("active").is_none() || now.body["active"] == true);
        let del = app
            .raw("DELETE", &url, Some(&t.token), &[("If-Match", "*")], None)
            .await;
        assert_eq!(del.status, 204);
    })
    .await;
}
