//! Bad input: every case gets its SCIM error, never a 500, and nothing
//! changes.

use serde_json::{Value, json};

use crate::common::{App, each_backend, enc};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    scim_type: Option<&'static str>,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    body: Option<Vec<u8>>,
    status: u16,
    scim_type: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        content_type: Some("application/scim+json"),
        body,
        status,
        scim_type,
    }
}

fn j(v: Value) -> Option<Vec<u8>> {
    Some(v.to_string().into_bytes())
}

async fn state(app: &App, token: &str) -> (Value, Value) {
    let u = app.call("GET", "/Users", token, None).await.body;
    let g = app.call("GET", "/Groups", token, None).await.body;
    (u, g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_scim_errors_and_changes_nothing() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let u = app
            .call("POST", "/Users", &t.token, Some(json!({"schemas": [USER], "userName": "alice"})))
            .await;
        let uid = u.body["id"].as_str().unwrap().to_owned();
        let g = app
            .call("POST", "/Groups", &t.token, Some(json!({"schemas": [GROUP], "displayName": "g"})))
            .await;
        let gid = g.body["id"].as_str().unwrap().to_owned();
        let before = state(&app, &t.token).await;
        let user = format!("/Users/{uid}");
        let group = format!("/Groups/{gid}");
        let huge = format!("{{\"schemas\":[\"{USER}\"],\"userName\":\"{}\"}}", "x".repeat(2 << 20));

        let mut cases = vec![
            // Malformed JSON, invalid UTF-8, empty and wrong-shaped bodies.
            case("POST", "/Users", Some(b"{\"userName\":".to_vec()), 400, Some("invalidSyntax")),
            case("POST", "/Users", Some(b"\xff\xfe\x00{}".to_vec()), 400, Some("invalidSyntax")),
            case(
                "POST",
                "/Users",
                Some(
                    [
                        format!("{{\"schemas\":[\"{USER}\"],\"userName\":\"a").as_bytes(),
                        b"\xc3\x28\"}",
                    ]
                    .concat(),
                ),
                400,
                Some("invalidSyntax"),
            ),
            case("POST", "/Users", Some(Vec::new()), 400, Some("invalidSyntax")),
            case("POST", "/Users", j(json!([1, 2])), 400, Some("invalidSyntax")),
            case("POST", "/Users", Some("[".repeat(100_000).into_bytes()), 400, Some("invalidSyntax")),
            // Missing or unknown schemas.
            case("POST", "/Users", j(json!({"userName": "bob"})), 400, Some("invalidSyntax")),
            case("POST", "/Users", j(json!({"schemas": ["urn:example:unknown"], "userName": "bob"})), 400, Some("invalidSyntax")),
            case("POST", "/Users", j(json!({"schemas": [GROUP], "displayName": "x"})), 400, Some("invalidSyntax")),
            // Wrong types and missing required attributes.
            case("POST", "/Users", j(json!({"schemas": [USER], "userName": 42})), 400, Some("invalidValue")),
            case("POST", "/Users", j(json!({"schemas": [USER]})), 400, Some("invalidValue")),
            case("POST", "/Users", j(json!({"schemas": [USER], "userName": "bob", "active": "maybe"})), 400, Some("invalidValue")),
            case("POST", "/Users", j(json!({"schemas": [USER], "userName": "bob", "emails": [{"value": 5}]})), 400, Some("invalidValue")),
            case("POST", "/Groups", j(json!({"schemas": [GROUP], "displayName": "h", "members": [{"value": 5}]})), 400, Some("invalidValue")),
            case("POST", "/Groups", j(json!({"schemas": [GROUP], "displayName": "h", "members": [{"value": "nobody"}]})), 400, Some("invalidValue")),
            case("PUT", &user, j(json!({"schemas": [USER], "userName": ""})), 400, Some("invalidValue")),
            // PATCH: malformed messages, bad paths, no targets.
            case("PATCH", &user, j(json!({"Operations": []})), 400, Some("invalidSyntax")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "frobnicate", "path": "active"}]})), 400, Some("invalidSyntax")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "emails[type eq", "value": "x"}]})), 400, Some("invalidPath")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "noSuchAttribute", "value": "x"}]})), 400, Some("invalidPath")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "remove"}]})), 400, Some("noTarget")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "userName"}]})), 400, Some("mutability")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "id", "value": "x"}]})), 400, Some("mutability")),
            case("PATCH", &user, j(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": "perhaps"}]})), 400, Some("invalidValue")),
            case("PATCH", &group, j(json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members[value eq \"x\"]", "value": [{"value": "y"}]}]})), 400, Some("invalidPath")),
            case("PATCH", &group, j(json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "no-such"}]}]})), 400, Some("invalidValue")),
            // Filters, sorting, paging, projection.
            case("GET", format!("/Users?filter={}", enc("userName eq")), None, 400, Some("invalidFilter")),
            case("GET", format!("/Users?filter={}", enc("userName xx \"a\"")), None, 400, Some("invalidFilter")),
            case("GET", format!("/Users?filter={}", enc("active gt true")), None, 400, Some("invalidFilter")),
            case("GET", format!("/Users?filter={}", enc(&"(".repeat(5000))), None, 400, Some("invalidFilter")),
            case("GET", format!("/Users?filter={}", enc(&vec!["userName eq \"a\""; 200].join(" or "))), None, 400, Some("invalidFilter")),
            case("GET", "/Users?count=ten", None, 400, Some("invalidValue")),
            case("GET", "/Users?startIndex=1e3", None, 400, Some("invalidValue")),
            case("GET", "/Users?sortBy=userName&sortOrder=sideways", None, 400, Some("invalidValue")),
            case("GET", "/Users?attributes=a..b", None, 400, Some("invalidPath")),
            case("POST", "/Users/.search", j(json!({"filter": "userName pr"})), 400, Some("invalidSyntax")),
            case("POST", "/Groups/.search", j(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName eq"})), 400, Some("invalidFilter")),
            // Size limit.
            case("POST", "/Users", Some(huge.into_bytes()), 413, None),
            // Unknown routes and wrong methods.
            case("GET", "/Nope", None, 404, None),
            case("GET", "/Users/a/b", None, 404, None),
            case("DELETE", "/Users", None, 405, None),
            case("POST", &user, j(json!({})), 405, None),
            case("GET", "/Users/.search", None, 405, None),
            case("PUT", "/Schemas", None, 405, None),
            // RFC 7644 §3.4.3 defines POST /.search at the root; scimgate
            // does not search across resource types: 501, not 404.
            case("POST", "/.search", j(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})), 501, None),
            case("GET", "/.search", None, 405, None),
            case("GET", "/ResourceTypes/Printer", None, 404, None),
            case("GET", "/Schemas/urn:example:nope", None, 404, None),
            case("GET", "/Users/does-not-exist", None, 404, None),
        ];
        cases.push(Case {
            content_type: Some("text/plain"),
            ..case("POST", "/Users", j(json!({"schemas": [USER], "userName": "carol"})), 400, Some("invalidSyntax"))
        });

        for c in cases {
            let mut headers = Vec::new();
            if let Some(ct) = c.content_type {
                headers.push(("Content-Type", ct));
            }
            let url = format!("{}{}", app.scim(), c.path);
            let r = app.raw(c.method, &url, Some(&t.token), &headers, c.body).await;
            assert_eq!(r.status, c.status, "{} {}: {}", c.method, c.path, r.body);
            assert_eq!(
                r.body["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"]),
                "{} {}",
                c.method,
                c.path
            );
            assert_eq!(r.body["status"], c.status.to_string());
            assert_eq!(r.body["scimType"].as_str(), c.scim_type, "{} {}: {}", c.method, c.path, r.body);
            assert_eq!(
                r.header("content-type"),
                Some("application/scim+json; charset=utf-8")
            );
        }
        assert_eq!(state(&app, &t.token).await, before, "bad input changed data");

        // Accepted content types: application/json and none at all.
        for ct in [Some("application/json"), None] {
            let name = format!("ct-{}", ct.is_some());
            let headers: Vec<(&str, &str)> = ct.map(|c| ("Content-Type", c)).into_iter().collect();
            let r = app
                .raw(
                    "POST",
                    &format!("{}/Users", app.scim()),
                    Some(&t.token),
                    &headers,
                    j(json!({"schemas": [USER], "userName": name})),
                )
                .await;
            assert_eq!(r.status, 201, "{ct:?}: {}", r.body);
        }
    })
    .await;
}
