//! Malformed and invalid input: always the one error shape, the right
//! status and a message that names the problem; never a 500.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_gets_400_with_a_clear_message() {
    each_backend(async |s: &Server| {
        let op = s.operator().await;
        let token = s.tenant(&op, "acme").await;
        let op = op.as_str();
        let user = s.scim_user("acme", &token, "ada@acme.test").await;
        s.api(
            "PUT",
            "/tenants/acme/roles",
            Some(op),
            Some(json!({"roles": [{"name": "admin"}]})),
        )
        .await
        .expect(200);
        let url = |path: &str| format!("{}/admin/v1{path}", s.origin);
        let json_type = [("Content-Type", "application/json")];

        // Bodies that are not JSON, not objects, or not the right ones.
        for (body, needle) in [
            ("{\"slug\": \"x\",", "invalid JSON body"),
            ("", "invalid JSON body"),
            ("[1, 2]", "invalid JSON body"),
            ("{\"slug\": \"x\", \"name\": \"X\", \"bogus\": 1}", "unknown field `bogus`"),
            ("{\"slug\": 5, \"name\": \"X\"}", "invalid type: integer `5`"),
            ("{\"name\": \"X\"}", "missing field `slug`"),
            ("{\"slug\": \"x\", \"name\": \"X\", \"kind\": \"huge\"}", "unknown variant `huge`"),
        ] {
            s.raw("POST", &url("/tenants"), Some(op), &json_type, Some(body.into()))
                .await
                .expect_error(400, "invalid_request", needle);
        }
        let api = |method: &'static str, path: String, body: serde_json::Value| async move {
            s.api(method, &path, Some(op), Some(body)).await
        };
        api("POST", "/tenants".into(), json!({"slug": "x", "name": "  "}))
            .await
            .expect_error(400, "invalid_request", "name must not be empty");
        api("POST", "/tenants".into(), json!({"slug": "Not A Slug", "name": "X"}))
            .await
            .expect_error(400, "invalid_request", "slug");
        api(
            "POST",
            "/tenants/acme/tokens".into(),
            json!({"name": "t", "scopes": ["scim:admin"]}),
        )
        .await
        .expect_error(400, "invalid_request", "unknown variant `scim:admin`");
        api("POST", "/tenants/acme/tokens".into(), json!({"name": "t", "scopes": []}))
            .await
            .expect_error(400, "invalid_request", "at least one");
        api(
            "POST",
            "/tenants/acme/tokens".into(),
            json!({"name": "t", "scopes": ["scim:read"], "expiresAt": "2001-01-01T00:00:00Z"}),
        )
        .await
        .expect_error(400, "invalid_request", "expiresAt must be in the future");
        api(
            "POST",
            "/tenants/acme/tokens".into(),
            json!({"name": "t", "scopes": ["scim:read"], "expiresAt": "next tuesday"}),
        )
        .await
        .expect_error(400, "invalid_request", "invalid JSON body");
        api(
            "POST",
            "/tenants/acme/admins".into(),
            json!({"email": "bob@acme.test", "password": "short"}),
        )
        .await
        .expect_error(400, "invalid_request", "at least 12 characters");
        let lock = format!("/tenants/acme/users/{user}/lock");
        api("PUT", lock.clone(), json!({"roles": ["admin"], "reason": "  "}))
            .await
            .expect_error(400, "invalid_request", "reason");
        api("PUT", lock.clone(), json!({"roles": ["admin"]}))
            .await
            .expect_error(400, "invalid_request", "missing field `reason`");
        api("PUT", lock.clone(), json!({"roles": ["root"], "reason": "x"}))
            .await
            .expect_error(400, "invalid_request", "\"root\" is not one of the defined roles");
        api(
            "PUT",
            "/tenants/acme/users/no-such-user/lock".into(),
            json!({"roles": [], "reason": "x"}),
        )
        .await
        .expect_error(404, "not_found", "no-such-user");
        api(
            "POST",
            "/tenants/acme/roles/mappings".into(),
            json!({"group": {"displayName": "Admins"}, "role": "nope"}),
        )
        .await
        .expect_error(400, "invalid_request", "role \"nope\" is not defined");
        api(
            "POST",
            "/tenants/acme/roles/mappings".into(),
            json!({"group": {"displayName": "  "}, "role": "admin"}),
        )
        .await
        .expect_error(400, "invalid_request", "is empty");
        api(
            "POST",
            "/tenants/acme/roles/mappings".into(),
            json!({"group": {"cn": "Admins"}, "role": "admin"}),
        )
        .await
        .expect_error(400, "invalid_request", "unknown variant `cn`");
        api(
            "PUT",
            "/tenants/acme/roles".into(),
            json!({"roles": [{"name": "a"}, {"name": "a"}]}),
        )
        .await
        .expect_error(400, "invalid_request", "roles[1]: role \"a\" is defined more than once");
        api(
            "PUT",
            "/tenants/acme/roles".into(),
            json!({"roles": [{"name": "a"}], "defaultRole": "b"}),
        )
        .await
        .expect_error(400, "invalid_request", "defaultRole: \"b\" is not one of the defined roles");
        api("PUT", "/tenants/acme/roles/mode".into(), json!({"mode": "both"}))
            .await
            .expect_error(400, "invalid_request", "unknown variant `both`");

        // Query strings.
        for (path, needle) in [
            ("/tenants/acme/users?filter=userName%20eq", "invalid filter"),
            (
                "/tenants/acme/users?filter=urn%3Aietf%3Aparams%3Ascim%3Aschemas%3Aextension%3Ascimgate%3A2.0%3AUser%3Adisabled%20eq%20true",
                "computed",
            ),
            ("/tenants/acme/users?count=ten", "invalid query string"),
            ("/tenants/acme/users?bogus=1", "unknown field `bogus`"),
            ("/tenants/acme/provisioning-log?since=yesterday", "since must be an RFC 3339"),
            ("/tenants/acme/audit?until=2026-13-01", "until must be an RFC 3339"),
            ("/tenants/acme/roles/jobs?limit=-1", "invalid query string"),
            ("/tenants?offset=x", "invalid query string"),
        ] {
            s.get(path, op)
                .await
                .expect_error(400, "invalid_request", needle);
        }
        s.api("POST", "/tenants/acme/roles/roles?dryRun=maybe", Some(op), Some(json!({"name": "x"})))
            .await
            .expect_error(400, "invalid_request", "invalid query string");
        s.get("/audit?tenant=no-such", op)
            .await
            .expect_error(404, "not_found", "tenant 'no-such'");

        // Size, media type, method, path.
        let big = format!(
            "{{\"slug\": \"x\", \"name\": \"{}\"}}",
            "x".repeat(tenant_admin::MAX_BODY_BYTES)
        );
        s.raw("POST", &url("/tenants"), Some(op), &json_type, Some(big.into()))
            .await
            .expect_error(413, "payload_too_large", "65536");
        s.raw(
            "POST",
            &url("/tenants"),
            Some(op),
            &[("Content-Type", "text/plain")],
            Some(b"{}".to_vec()),
        )
        .await
        .expect_error(415, "unsupported_media_type", "JSON");
        let resp = s.raw("PUT", &url("/tenants"), Some(op), &[], None).await;
        resp.expect_error(405, "method_not_allowed", "PUT");
        assert_eq!(resp.header("allow"), Some("GET, POST"));
        let resp = s.raw("DELETE", &url("/login"), None, &[], None).await;
        resp.expect_error(405, "method_not_allowed", "allowed: POST");
        s.raw("GET", &url("/no/such/route"), Some(op), &[], None)
            .await
            .expect_error(404, "not_found", "/admin/v1/no/such/route");
        s.raw("GET", &url("/tenants/acme/users/no-such-user"), Some(op), &[], None)
            .await
            .expect_error(404, "not_found", "no-such-user");
        s.raw("GET", &url("/tenants/acme/groups/no-such-group"), Some(op), &[], None)
            .await
            .expect_error(404, "not_found", "no-such-group");
        s.raw("GET", &url("/tenants/acme/roles/jobs/no-such-job"), Some(op), &[], None)
            .await
            .expect_error(404, "not_found", "no-such-job");
        s.api("DELETE", "/tenants/acme/admins/not-a-uuid", Some(op), None)
            .await
            .expect_error(404, "not_found", "tenant admin not-a-uuid");

        // Login input errors are 400 (malformed) or 401 (anything else).
        s.raw("POST", &url("/login"), None, &json_type, Some(b"{\"email\": 1}".to_vec()))
            .await
            .expect_error(400, "invalid_request", "invalid type");
        s.raw(
            "POST",
            &url("/login"),
            None,
            &json_type,
            Some(b"{\"email\": \"a\", \"password\": \"b\", \"otp\": 1}".to_vec()),
        )
        .await
        .expect_error(400, "invalid_request", "unknown field `otp`");
    })
    .await;
}
