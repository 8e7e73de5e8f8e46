//! The OpenAPI document against the routes the application really serves.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::*;

/// (method, path) of every operation in the served document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_served_and_documented_and_nothing_else_is_documented() {
    let routes = tenant_admin::routes();
    let table: BTreeSet<(String, String)> = routes
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(table.len(), routes.len(), "a route is in the table twice");

    each_backend(async |s: &Server| {
        let doc = s.api("GET", "/openapi.json", None, None).await.expect(200);
        assert!(
            doc["openapi"].as_str().expect("version").starts_with("3."),
            "{}",
            doc["openapi"]
        );
        assert_eq!(doc["servers"][0]["url"], "/admin/v1");
        assert_eq!(
            documented(&doc),
            table,
            "documented operations differ from the route table"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
            "JWT"
        );

        let op = s.operator().await;
        for route in &routes {
            let operation = &doc["paths"][route.path][route.method];
            // Security as the table says: none for public routes (there
            // is no document-wide requirement to inherit).
            assert!(doc.get("security").is_none());
            if route.public {
                let security = operation.get("security").and_then(Value::as_array);
                assert!(security.is_none_or(Vec::is_empty), "{route:?}");
            } else {
                let security = operation["security"].as_array().expect("security");
                assert_eq!(security[0]["bearer"], serde_json::json!([]), "{route:?}");
                assert!(operation["responses"]["401"].is_object(), "{route:?}");
            }
            assert!(operation["operationId"].is_string(), "{route:?}");
            assert!(operation["tags"][0].is_string(), "{route:?}");
            let success = operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .any(|k| k.starts_with('2'));
            assert!(success, "{route:?} documents no success answer");

            // Served: a protected route without a session is a 401 from the
            // route (not the catch-all 404), a public one is not a 404.
            let method = route.method.to_ascii_uppercase();
            let path = route
                .path
                .replace("{tenant}", "default")
                .replace("{id}", "x")
                .replace("{name}", "x");
            let body = crate::isolation::body_for(route.method, route.path);
            let anonymous = s.api(&method, &path, None, body.clone()).await;
            if route.public {
                assert_ne!(anonymous.status, 404, "{route:?}: {}", anonymous.body);
                assert_ne!(anonymous.status, 405, "{route:?}: {}", anonymous.body);
            } else {
                anonymous.expect_error(401, "unauthorized", "");
            }
            // And with a session, the route answers, never the catch-all.
            let signed = s.api(&method, &path, Some(&op), body).await;
            let catch_all = signed.body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("admin API endpoint"));
            assert!(!catch_all, "{route:?} is not registered: {}", signed.body);
            assert_ne!(signed.status, 405, "{route:?}: {}", signed.body);
        }
        // The catch-all is what an unrouted path gets.
        s.api("GET", "/tenants/default/nothing", Some(&op), None)
            .await
            .expect_error(404, "not_found", "admin API endpoint");
    })
    .await;
}

/// The document is checked in (docs/reference/admin-openapi.json) so
/// reviews show API changes; regenerate with
/// `SCIMGATE_BLESS=1 cargo nextest run -p tenant-admin openapi`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checked_in_document_is_current() {
    let generated = tenant_admin::openapi().to_pretty_json().expect("serialize") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/reference/admin-openapi.json");
    if std::env::var("SCIMGATE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write the document");
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date; regenerate with \
         SCIMGATE_BLESS=1 cargo nextest run -p tenant-admin openapi and review the diff",
        path.display()
    );
    // Served as generated, on both backends.
    each_backend(async |s: &Server| {
        let served = s.api("GET", "/openapi.json", None, None).await.expect(200);
        let expected: Value = serde_json::from_str(&generated).expect("json");
        assert_eq!(served, expected);
    })
    .await;
}
