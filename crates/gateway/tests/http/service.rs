//! Discovery, health, request ids, metrics, rate limits and the
//! provisioning log.

use std::time::Duration;

use gateway::GatewayConfig;
use serde_json::json;
use store::LogQuery;

use crate::common::{App, each_backend, each_backend_with};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_endpoints() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let base = app.scim();
        let spc = app
            .call(
                "GET",
                "/ServiceProviderConfig?aadOptscim062020",
                &t.read_token,
                None,
            )
            .await;
        assert_eq!(spc.status, 200);
        assert_eq!(spc.body["patch"], json!({"supported": true}));
        assert_eq!(
            spc.body["filter"],
            json!({"supported": true, "maxResults": 1000})
        );
        assert_eq!(spc.body["etag"], json!({"supported": true}));
        assert_eq!(
            spc.body["meta"]["location"],
            format!("{base}/ServiceProviderConfig").as_str()
        );

        let rts = app.call("GET", "/ResourceTypes", &t.token, None).await;
        assert_eq!(rts.body["schemas"], json!([LIST]));
        assert_eq!(rts.body["totalResults"], 2);
        let rt = app.call("GET", "/ResourceTypes/User", &t.token, None).await;
        assert_eq!(rt.status, 200);
        assert_eq!(rt.body["endpoint"], "/Users");
        assert_eq!(
            rt.body["meta"]["location"],
            format!("{base}/ResourceTypes/User").as_str()
        );

        let schemas = app.call("GET", "/Schemas", &t.token, None).await;
        assert_eq!(schemas.body["totalResults"], 4);
        let s = app
            .call("GET", &format!("/Schemas/{USER}"), &t.token, None)
            .await;
        assert_eq!(s.status, 200);
        assert_eq!(s.body["id"], USER);
        assert_eq!(s.body["name"], "User");

        // The slug route renders its own base URL.
        let slug_base = format!("{}/tenants/acme/scim/v2", app.origin);
        let r = app
            .raw(
                "GET",
                &format!("{slug_base}/ResourceTypes/Group"),
                Some(&t.token),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body["meta"]["location"],
            format!("{slug_base}/ResourceTypes/Group").as_str()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_request_ids_and_metrics() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let h = app.raw("GET", &format!("{}/healthz", app.origin), None, &[], None).await;
        assert_eq!((h.status, h.body.clone()), (200, json!({"status": "ok"})));
        let r = app.raw("GET", &format!("{}/readyz", app.origin), None, &[], None).await;
        assert_eq!(
            (r.status, r.body.clone()),
            (200, json!({"status": "ready", "checks": {"database": "ok"}}))
        );

        // A sane request id is echoed; an unsafe one is replaced.
        let users = format!("{}/Users", app.scim());
        let r = app.raw("GET", &users, Some(&t.token), &[("X-Request-Id", "abc-123")], None).await;
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        let r = app.raw("GET", &users, Some(&t.token), &[("X-Request-Id", "a b<c>")], None).await;
        let id = r.header("x-request-id").unwrap();
        assert!(id != "a b<c>" && !id.is_empty());
        let r = app.raw("GET", &users, None, &[("X-Request-Id", "err-1")], None).await;
        assert_eq!(r.header("x-request-id"), Some("err-1"));

        let u = app
            .call("POST", "/Users", &t.token, Some(json!({"schemas": [USER], "userName": "m"})))
            .await;
        let id = u.body["id"].as_str().unwrap().to_owned();
        app.call("GET", &format!("/Users/{id}"), &t.token, None).await;
        app.call("GET", "/Nope", &t.token, None).await;

        let text = prometheus::TextEncoder::new()
            .encode_to_string(&app.registry.gather())
            .unwrap();
        for needle in [
            "scimgate_http_requests_total{method=\"GET\",route=\"/scim/v2/Users/{id}\",status=\"200\"} 1",
            "scimgate_http_requests_total{method=\"POST\",route=\"/scim/v2/Users\",status=\"201\"} 1",
            "scimgate_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
            "scimgate_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
            "scimgate_http_request_duration_seconds_bucket{method=\"GET\",route=\"/scim/v2/Users/{id}\"",
            "scimgate_scim_operations_total{operation=\"create\",outcome=\"success\",resource=\"User\",tenant=\"acme\"} 1",
            "scimgate_scim_operations_total{operation=\"get\",outcome=\"success\",resource=\"User\",tenant=\"acme\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        assert!(!text.contains(&id), "a raw path leaked into a label");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database() {
    each_backend(|mut app: App| async move {
        let url = format!("{}/readyz", app.origin);
        let r = app.raw("GET", &url, None, &[], None).await;
        assert_eq!(
            (r.status, r.body),
            (
                200,
                json!({"status": "ready", "checks": {"database": "ok"}})
            )
        );
        // An SQLite file stays readable through open handles after it is
        // deleted, so only PostgreSQL can lose its database under us.
        if app.which() == testkit::TestDb::Postgres {
            app.drop_database();
            let r = app.raw("GET", &url, None, &[], None).await;
            assert_eq!(
                (r.status, r.body),
                (
                    503,
                    json!({"status": "unavailable", "checks": {"database": "unavailable"}})
                )
            );
            let h = app
                .raw("GET", &format!("{}/healthz", app.origin), None, &[], None)
                .await;
            assert_eq!(h.status, 200);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() {
    let config = || GatewayConfig {
        rate_limit_per_second: 1,
        rate_limit_burst: 3,
        ..GatewayConfig::default()
    };
    each_backend_with(config, |app: App| async move {
        let t = app.tenant("acme").await;
        let other = app.tenant("other").await;
        let mut statuses = Vec::new();
        for _ in 0..10 {
            let r = app.call("GET", "/Users", &t.token, None).await;
            if r.status == 429 {
                let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=5).contains(&secs), "{secs}");
                assert_eq!(r.body["status"], "429");
            }
            statuses.push(r.status);
        }
        assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
        assert!(statuses.contains(&429), "{statuses:?}");
        // Per tenant: another tenant is unaffected.
        assert_eq!(
            app.call("GET", "/Users", &other.token, None).await.status,
            200
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(app.call("GET", "/Users", &t.token, None).await.status, 200);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&app.registry.gather())
            .unwrap();
        assert!(
            text.contains("scimgate_rate_limited_total{tenant=\"acme\"}"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_recorded_in_the_provisioning_log() {
    each_backend(|app: App| async move {
        let background = app.gateway.spawn_background();
        let t = app.tenant("acme").await;
        let ok = app
            .raw(
                "POST",
                &format!("{}/Users", app.scim()),
                Some(&t.token),
                &[
                    ("Content-Type", "application/scim+json"),
                    ("X-Request-Id", "req-create"),
                ],
                Some(
                    json!({"schemas": [USER], "userName": "logged", "externalId": "e1"})
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        assert_eq!(ok.status, 201);
        let id = ok.body["id"].as_str().unwrap().to_owned();
        let dup = app
            .call(
                "POST",
                "/Users",
                &t.token,
                Some(json!({"schemas": [USER], "userName": "LOGGED"})),
            )
            .await;
        assert_eq!(dup.status, 409);
        let bad = app
            .call(
                "PATCH",
                &format!("/Users/{id}"),
                &t.token,
                Some(json!({"x": 1})),
            )
            .await;
        assert_eq!(bad.status, 400);
        assert_eq!(
            app.call("DELETE", &format!("/Users/{id}"), &t.token, None)
                .await
                .status,
            204
        );
        // Reads are not provisioning writes.
        app.call("GET", "/Users", &t.token, None).await;

        let dir = app.store.tenant(&t.tenant);
        let mut entries = Vec::new();
        for _ in 0..100 {
            entries = dir
                .provisioning_log(&LogQuery {
                    limit: 100,
                    ..LogQuery::default()
                })
                .await
                .unwrap();
            if entries.len() >= 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(entries.len(), 4, "{entries:?}");
        let mut seen: Vec<(String, u16, String)> = entries
            .iter()
            .map(|(_, e)| (e.method.clone(), e.status, e.outcome.clone()))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("DELETE".into(), 204, "success".into()),
                ("PATCH".into(), 400, "failure".into()),
                ("POST".into(), 201, "success".into()),
                ("POST".into(), 409, "failure".into()),
            ]
        );
        let created = entries
            .iter()
            .map(|(_, e)| e)
            .find(|e| e.status == 201)
            .unwrap();
        assert_eq!(created.request_id, "req-create");
        assert_eq!(created.resource_type, "User");
        assert_eq!(created.resource_id.as_deref(), Some(id.as_str()));
        assert_eq!(created.identifier.as_deref(), Some("logged"));
        assert!(created.detail.is_none());
        let conflict = entries
            .iter()
            .map(|(_, e)| e)
            .find(|e| e.status == 409)
            .unwrap();
        assert_eq!(conflict.identifier.as_deref(), Some("LOGGED"));
        assert!(conflict.detail.is_some());
        background.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_every_queued_provisioning_log_entry() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        // No writer runs yet, so every entry waits in the queue.
        for i in 0..20 {
            let r = app
                .call(
                    "POST",
                    "/Users",
                    &t.token,
                    Some(json!({"schemas": [USER], "userName": format!("queued-{i}")})),
                )
                .await;
            assert_eq!(r.status, 201);
        }
        let background = app.gateway.spawn_background();
        app.gateway.shutdown();
        tokio::time::timeout(Duration::from_secs(30), background)
            .await
            .expect("the background task ends after shutdown")
            .expect("the background task does not panic");
        let entries = app
            .store
            .tenant(&t.tenant)
            .provisioning_log(&LogQuery {
                limit: 100,
                ..LogQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(entries.len(), 20, "{entries:?}");
        assert!(entries.iter().all(|(_, e)| e.status == 201));
    })
    .await;
}
