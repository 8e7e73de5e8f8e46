//! Authentication and authorization: missing, wrong, revoked, expired
//! tokens; scopes; suspended tenants; the revision poller.

use std::time::Duration;

use gateway::GatewayConfig;
use serde_json::json;
use store::{Scope, TenantStatus, TenantUpdate};

use crate::common::{App, each_backend, each_backend_with};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

fn unauthorized(r: &crate::common::Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"scimgate\"")
    );
    assert_eq!(r.body["status"], "401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_and_suspension() {
    each_backend(|app: App| async move {
        let t = app.tenant("acme").await;
        let users = format!("{}/Users", app.scim());

        unauthorized(&app.raw("GET", &users, None, &[], None).await);
        unauthorized(
            &app.raw(
                "GET",
                &users,
                None,
                &[("Authorization", "Basic dTpw")],
                None,
            )
            .await,
        );
        unauthorized(&app.raw("GET", &users, Some("not-a-token"), &[], None).await);
        let almost = format!("{}x", t.token);
        unauthorized(&app.raw("GET", &users, Some(&almost), &[], None).await);
        // Repeated bad tokens are answered from the negative cache.
        for _ in 0..5 {
            unauthorized(&app.raw("GET", &users, Some("not-a-token"), &[], None).await);
        }
        // Discovery needs a token too.
        unauthorized(
            &app.raw("GET", &format!("{}/Schemas", app.scim()), None, &[], None)
                .await,
        );

        // A read token reads, cannot write.
        assert_eq!(
            app.call("GET", "/Users", &t.read_token, None).await.status,
            200
        );
        assert_eq!(
            app.call("GET", "/ServiceProviderConfig", &t.read_token, None)
                .await
                .status,
            200
        );
        let body = json!({"schemas": [USER], "userName": "x"});
        let r = app
            .call("POST", "/Users", &t.read_token, Some(body.clone()))
            .await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.body["status"], "403");
        assert_eq!(
            app.call("GET", "/Users", &t.token, None).await.body["totalResults"],
            0
        );

        // Revocation takes effect once the cache is invalidated.
        let issued = app.issue(&t.tenant, vec![Scope::ScimWrite], None).await;
        let extra = issued.secret.clone();
        assert_eq!(app.call("GET", "/Users", &extra, None).await.status, 200);
        app.store
            .admin()
            .revoke_token(&t.tenant, issued.info.id, "test")
            .await
            .unwrap();
        // Until the cache is invalidated the verification is still cached.
        assert_eq!(app.call("GET", "/Users", &extra, None).await.status, 200);
        app.gateway.invalidate_tokens();
        unauthorized(&app.call("GET", "/Users", &extra, None).await);
        assert_eq!(app.call("GET", "/Users", &t.token, None).await.status, 200);

        // Expired tokens stop working at their expiry, cache or not.
        // (Generous: argon2 on a loaded 2-core machine takes a while.)
        let soon = chrono::Utc::now() + chrono::Duration::seconds(5);
        let expiring = app
            .token(&t.tenant, vec![Scope::ScimWrite], Some(soon))
            .await;
        assert_eq!(app.call("GET", "/Users", &expiring, None).await.status, 200);
        let left = (soon - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left + Duration::from_millis(300)).await;
        unauthorized(&app.call("GET", "/Users", &expiring, None).await);

        // A suspended tenant gets 403 with a clear detail.
        app.store
            .admin()
            .update_tenant(
                t.tenant.id(),
                TenantUpdate {
                    status: Some(TenantStatus::Suspended),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
        app.gateway.invalidate_tokens();
        let r = app.call("GET", "/Users", &t.token, None).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body["detail"].as_str().unwrap().contains("suspended"));
        let r = app.call("POST", "/Users", &t.token, Some(body)).await;
        assert_eq!(r.status, 403);
        app.store
            .admin()
            .update_tenant(
                t.tenant.id(),
                TenantUpdate {
                    status: Some(TenantStatus::Active),
                    ..Default::default()
                },
                "test",
            )
            .await
            .unwrap();
        app.gateway.invalidate_tokens();
        assert_eq!(app.call("GET", "/Users", &t.token, None).await.status, 200);

        // Failures are counted by reason.
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&app.registry.gather())
            .unwrap();
        assert!(
            text.contains("scimgate_auth_failures_total{reason=\"missing\"}"),
            "{text}"
        );
        assert!(
            text.contains("scimgate_auth_failures_total{reason=\"scope\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("scimgate_token_cache_total{result=\"negative_hit\"}"),
            "{text}"
        );
        assert!(
            text.contains("scimgate_token_cache_total{result=\"hit\"}"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_cache_through_the_poller() {
    let config = || GatewayConfig {
        auth_poll_interval: Duration::from_millis(100),
        ..GatewayConfig::default()
    };
    each_backend_with(config, |app: App| async move {
        let background = app.gateway.spawn_background();
        let t = app.tenant("acme").await;
        assert_eq!(app.call("GET", "/Users", &t.token, None).await.status, 200);
        let tokens = app.store.admin().list_tokens(&t.tenant).await.unwrap();
        let write = tokens
            .iter()
            .find(|i| i.scopes.contains(&Scope::ScimWrite))
            .unwrap()
            .id;
        app.store
            .admin()
            .revoke_token(&t.tenant, write, "test")
            .await
            .unwrap();
        let mut refused = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if app.call("GET", "/Users", &t.token, None).await.status == 401 {
                refused = true;
                break;
            }
        }
        assert!(refused, "revoked token still accepted after 5 s of polling");
        assert_eq!(
            app.call("GET", "/Users", &t.read_token, None).await.status,
            200
        );
        background.abort();
    })
    .await;
}
