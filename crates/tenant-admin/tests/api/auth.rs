//! Logging in, and every way a session token can be wrong.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::*;

/// Signs `claims` with HS256-family `alg`, naming `kid`.
fn sign(alg: Algorithm, kid: Option<&str>, secret: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// The claims of a token (its payload, unverified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&b64url_decode(payload)).expect("claims")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[track_caller]
fn assert_unauthorized(resp: &Resp, what: &str) {
    assert_eq!(resp.status, 401, "{what}: {}", resp.body);
    assert_eq!(resp.body["error"], "unauthorized", "{what}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_and_tenant_admins_log_in_and_wrong_credentials_all_look_alike() {
    each_backend(async |s: &Server| {
        let body = s
            .login(&s.operator_email, &s.operator_password, None)
            .await
            .expect(200);
        assert_eq!(body["principal"]["kind"], "operator");
        assert_eq!(body["principal"]["email"], s.operator_email);
        assert!(body["principal"].get("tenant").is_none(), "{body}");
        let expires: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(body["expiresAt"].clone()).expect("expiresAt");
        let ttl = expires.timestamp() - now();
        assert!((3500..=3600).contains(&ttl), "default lifetime: {ttl}");
        let op = body["token"].as_str().expect("token").to_owned();

        // The token: HS256, kid of the first configured key, the claims
        // the brief names.
        let header: Value =
            serde_json::from_slice(&b64url_decode(op.split('.').next().expect("header")))
                .expect("header json");
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], KID);
        let claims = claims_of(&op);
        assert_eq!(claims["iss"], "scimgate");
        assert_eq!(claims["kind"], "operator");
        assert!(claims["exp"].is_i64() && claims["iat"].is_i64(), "{claims}");

        let me = s.get("/me", &op).await.expect(200);
        assert_eq!(me["principal"]["kind"], "operator");
        assert!(me.get("tenant").is_none(), "{me}");

        s.tenant(&op, "acme").await;
        let ta = s.tenant_admin(&op, "acme", "alice@acme.test").await;
        let claims = claims_of(&ta);
        assert_eq!(claims["kind"], "tenant_admin");
        assert_eq!(claims["email"], "alice@acme.test");
        assert!(claims["tid"].is_string(), "{claims}");
        let me = s.get("/me", &ta).await.expect(200);
        assert_eq!(me["principal"]["kind"], "tenant_admin");
        assert_eq!(me["principal"]["tenant"], "acme");
        assert_eq!(me["tenant"]["slug"], "acme");

        // Wrong password, unknown e-mail, unknown tenant, a tenant admin
        // logging in as operator or to another tenant: one answer.
        let wrong = [
            s.login(&s.operator_email, "not the password", None).await,
            s.login("nobody@example.test", &s.operator_password, None)
                .await,
            s.login("alice@acme.test", "correct horse battery staple", None)
                .await,
            s.login(
                "alice@acme.test",
                "wrong horse battery staple",
                Some("acme"),
            )
            .await,
            s.login(
                "alice@acme.test",
                "correct horse battery staple",
                Some("default"),
            )
            .await,
            s.login(
                "alice@acme.test",
                "correct horse battery staple",
                Some("no-such"),
            )
            .await,
            s.login(&s.operator_email, &s.operator_password, Some("acme"))
                .await,
            s.login("", "", None).await,
        ];
        let first = wrong[0].body.clone();
        for (i, resp) in wrong.iter().enumerate() {
            assert_unauthorized(resp, &format!("wrong login {i}"));
            assert_eq!(resp.body, first, "login {i} answers differently");
        }
        assert_eq!(first["message"], "invalid email, password or tenant");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_forged_and_expired_tokens_are_refused() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.get("/me", &op).await.expect(200);
        let good = claims_of(&op);
        let claims = |f: &dyn Fn(&mut Value)| {
            let mut c = good.clone();
            f(&mut c);
            c
        };

        // Rotation: a token signed by the second (verify-only) key works.
        let by_old_key = sign(Algorithm::HS256, Some(OLD_KID), OLD_SECRET, &good);
        s.get("/me", &by_old_key).await.expect(200);

        let mut parts: Vec<&str> = op.split('.').collect();
        let forged_payload = b64url(
            json!({"iss": "scimgate", "sub": good["sub"], "iat": now(), "exp": now() + 60,
                   "kind": "operator", "email": "mallory@evil.test"})
            .to_string()
            .as_bytes(),
        );
        parts[1] = &forged_payload;
        let changed_payload = parts.join(".");

        let none_header = b64url(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let payload = op.split('.').nth(1).expect("payload");
        let alg_none = format!("{none_header}.{payload}.");
        let signature = op.split('.').nth(2).expect("signature");
        let rs256_header = b64url(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
        let rs256 = format!("{rs256_header}.{payload}.{signature}");
        let hs256_header_no_kid = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);

        let cases: Vec<(&str, String)> = vec![
            ("changed payload", changed_payload),
            (
                "wrong key",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    "another-secret-of-enough-length-0123456789",
                    &good,
                ),
            ),
            ("alg none", alg_none),
            (
                "alg none, no signature dot",
                format!("{none_header}.{payload}"),
            ),
            (
                "HS512 with the right secret",
                sign(Algorithm::HS512, Some(KID), SECRET, &good),
            ),
            (
                "HS384 with the right secret",
                sign(Algorithm::HS384, Some(KID), SECRET, &good),
            ),
            ("RS256 header", rs256),
            (
                "no kid",
                format!("{hs256_header_no_kid}.{payload}.{signature}"),
            ),
            (
                "unknown kid",
                sign(Algorithm::HS256, Some("k9"), SECRET, &good),
            ),
            (
                "expired",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    SECRET,
                    &claims(&|c| {
                        c["iat"] = json!(now() - 7200);
                        c["exp"] = json!(now() - 3600);
                    }),
                ),
            ),
            (
                "missing exp",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    SECRET,
                    &claims(&|c| {
                        c.as_object_mut().expect("object").remove("exp");
                    }),
                ),
            ),
            (
                "missing iat",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    SECRET,
                    &claims(&|c| {
                        c.as_object_mut().expect("object").remove("iat");
                    }),
                ),
            ),
            (
                "issued in the future",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    SECRET,
                    &claims(&|c| {
                        c["iat"] = json!(now() + 3600);
                    }),
                ),
            ),
            (
                "wrong issuer",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    SECRET,
                    &claims(&|c| {
                        c["iss"] = json!("someone-else");
                    }),
                ),
            ),
            (
                "operator claiming a tenant",
                sign(
                    Algorithm::HS256,
                    Some(KID),
                    SECRET,
                    &claims(&|c| {
                        c["tid"] = json!(uuid::Uuid::new_v4());
                    }),
                ),
            ),
            ("garbage", "not-a-jwt".to_owned()),
            ("empty segments", "..".to_owned()),
        ];
        for (what, token) in &cases {
            let resp = s.get("/me", token).await;
            assert_unauthorized(&resp, what);
        }
        let expired = &cases
            .iter()
            .find(|(w, _)| *w == "expired")
            .expect("expired case")
            .1;
        let resp = s.get("/me", expired).await;
        assert!(
            resp.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("expired"),
            "{}",
            resp.body
        );

        // No token, another scheme, an empty bearer.
        let url = format!("{}/admin/v1/me", s.origin);
        for headers in [
            vec![],
            vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
            vec![("Authorization", "Bearer ")],
            vec![("Authorization", "Bearer")],
        ] {
            let resp = s.raw("GET", &url, None, &headers, None).await;
            assert_unauthorized(&resp, &format!("{headers:?}"));
        }
        // A forged token changes nothing either.
        let forged = &cases[0].1;
        let resp = s
            .api(
                "POST",
                "/tenants",
                Some(forged),
                Some(json!({"slug": "forged", "name": "Forged"})),
            )
            .await;
        assert_unauthorized(&resp, "write with a forged token");
        let list = s.get("/tenants", &op).await.expect(200);
        assert_eq!(list["total"], 1, "{list}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_login_or_tenant_ends_the_session() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let ta = s.tenant_admin(&op, "acme", "alice@acme.test").await;
        let bob = s.tenant_admin(&op, "acme", "bob@acme.test").await;
        s.get("/tenants/acme", &ta).await.expect(200);

        let admins = s.get("/tenants/acme/admins", &ta).await.expect(200);
        let bob_id = admins["admins"]
            .as_array()
            .expect("admins")
            .iter()
            .find(|a| a["email"] == "bob@acme.test")
            .expect("bob")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        s.api(
            "DELETE",
            &format!("/tenants/acme/admins/{bob_id}"),
            Some(&ta),
            None,
        )
        .await
        .expect(204);
        assert_unauthorized(&s.get("/me", &bob).await, "deleted login");

        s.api("DELETE", "/tenants/acme?confirm=acme", Some(&op), None)
            .await
            .expect(204);
        assert_unauthorized(&s.get("/me", &ta).await, "deleted tenant");
    })
    .await;
}
