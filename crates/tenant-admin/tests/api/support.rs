//! The real application (`scimgate::spawn`: SCIM gateway and admin API on
//! one listener, role worker running) on 127.0.0.1 over a fresh database,
//! and a small client for both APIs.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::Method;
use scimgate::Secret;
use scimgate::config::AdminJwtKey;
use serde_json::{Value, json};
use testkit::{TestDatabase, TestDb};

/// The signing key (first) and a verify-only key (second, for rotation).
pub const KID: &str = "k1";
pub const SECRET: &str = "test-secret-one-0123456789abcdefghijklmnop";
pub const OLD_KID: &str = "k0";
pub const OLD_SECRET: &str = "test-secret-zero-0123456789abcdefghijklmno";

/// How long anything eventual (revocations, suspensions, jobs) may take.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// One running application.
pub struct Server {
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    pub operator_email: String,
    pub operator_password: String,
    client: reqwest::Client,
    app: Option<scimgate::App>,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        self.body
    }

    /// Asserts an error answer: status, code, and a message containing
    /// `needle`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str, needle: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], code, "{}", self.body);
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

/// Runs `test` once on each backend (SQLite, PostgreSQL) against a fresh
/// application, and stops it afterwards.
pub async fn each_backend(test: impl AsyncFn(&Server)) {
    for which in testkit::backends() {
        let server = Server::start(which).await;
        test(&server).await;
        server.stop().await;
    }
}

/// The key target secrets are sealed with in tests (base64 of 32 bytes).
pub const DELIVERY_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

impl Server {
    pub async fn start(which: TestDb) -> Server {
        Server::start_with(which, |_| {}).await
    }

    /// [`Server::start`] with settings changed by `adjust`. By default no
    /// delivery worker runs (the API is tested on its own, and nothing
    /// changes behind a test's back); targets may be on loopback.
    pub async fn start_with(which: TestDb, adjust: impl FnOnce(&mut scimgate::Config)) -> Server {
        let db = testkit::fresh_database(which).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = scimgate::Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("data"),
            database_url: Some(Secret::new(db.url.clone())),
            rate_limit_per_second: 0,
            provisioning_log_retention_days: 0,
            admin_jwt_keys: vec![
                AdminJwtKey {
                    kid: KID.into(),
                    secret: Secret::new(SECRET),
                },
                AdminJwtKey {
                    kid: OLD_KID.into(),
                    secret: Secret::new(OLD_SECRET),
                },
            ],
            delivery_enabled: false,
            delivery_allow_private_targets: true,
            delivery_secrets_key: Some(Secret::new(DELIVERY_KEY)),
            ..scimgate::Config::default()
        };
        let mut config = config;
        adjust(&mut config);
        let app = scimgate::spawn(config)
            .await
            .expect("the application starts");
        let first = app.first_start();
        let operator = first.operator.as_ref().expect("operator created");
        assert!(first.tenant.is_some(), "default tenant created");
        Server {
            origin: app.public_url().to_owned(),
            operator_email: operator.email.clone(),
            operator_password: operator.password.expose().to_owned(),
            client: {
                testkit::install_tls_provider();
                reqwest::Client::builder()
            }
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client"),
            app: Some(app),
            _db: db,
            _dir: dir,
        }
    }

    /// The server's database (to scan it).
    pub fn database(&self) -> &TestDatabase {
        &self._db
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop(false).await.expect("clean stop");
        }
    }

    /// A request with full control over headers and body bytes; `url` is
    /// absolute.
    pub async fn raw(
        &self,
        method: &str,
        url: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, url);
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        assert_ne!(status, 500, "500 from {url}: {body}");
        if status >= 400 && url.contains("/admin/v1") {
            // Every admin API error has the one shape.
            assert!(body["error"].is_string(), "{status} {url}: {body}");
            assert!(body["message"].is_string(), "{status} {url}: {body}");
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    /// An admin API call: `path` is relative to `/admin/v1`.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        jwt: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}/admin/v1{path}", self.origin);
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("Content-Type", "application/json")]
        } else {
            &[]
        };
        self.raw(
            method,
            &url,
            jwt,
            headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// [`Server::api`] with extra headers (a JSON body).
    pub async fn api_with(
        &self,
        method: &str,
        path: &str,
        jwt: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}/admin/v1{path}", self.origin);
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        self.raw(
            method,
            &url,
            jwt,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    pub async fn get(&self, path: &str, jwt: &str) -> Resp {
        self.api("GET", path, Some(jwt), None).await
    }

    /// A SCIM call on a tenant's URL.
    pub async fn scim(
        &self,
        method: &str,
        slug: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}/tenants/{slug}/scim/v2{path}", self.origin);
        self.raw(
            method,
            &url,
            Some(token),
            &[("Content-Type", "application/scim+json")],
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str, tenant: Option<&str>) -> Resp {
        let mut body = json!({"email": email, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        self.api("POST", "/login", None, Some(body)).await
    }

    /// An operator session token.
    pub async fn operator(&self) -> String {
        let body = self
            .login(&self.operator_email, &self.operator_password, None)
            .await
            .expect(200);
        body["token"].as_str().expect("token").to_owned()
    }

    /// A new tenant (made by `op`) and its first `scim:write` token.
    pub async fn tenant(&self, op: &str, slug: &str) -> String {
        let body = self
            .api(
                "POST",
                "/tenants",
                Some(op),
                Some(json!({"slug": slug, "name": format!("Tenant {slug}"), "issueToken": true})),
            )
            .await
            .expect(201);
        body["token"]["secret"].as_str().expect("secret").to_owned()
    }

    /// A new tenant admin login of `slug` (made by `op`), logged in.
    pub async fn tenant_admin(&self, op: &str, slug: &str, email: &str) -> String {
        let password = "correct horse battery staple";
        self.api(
            "POST",
            &format!("/tenants/{slug}/admins"),
            Some(op),
            Some(json!({"email": email, "password": password})),
        )
        .await
        .expect(201);
        let body = self.login(email, password, Some(slug)).await.expect(200);
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a SCIM user; returns its id.
    pub async fn scim_user(&self, slug: &str, token: &str, user_name: &str) -> String {
        let body = self
            .scim(
                "POST",
                slug,
                "/Users",
                token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "displayName": format!("User {user_name}"),
                    "active": true,
                })),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("id").to_owned()
    }

    /// Creates a SCIM group with members; returns its id.
    pub async fn scim_group(
        &self,
        slug: &str,
        token: &str,
        name: &str,
        members: &[&str],
    ) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let body = self
            .scim(
                "POST",
                slug,
                "/Groups",
                token,
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": members,
                })),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("id").to_owned()
    }

    /// A SCIM PatchOp with the given operations.
    pub async fn scim_patch(&self, slug: &str, token: &str, path: &str, ops: Value) {
        self.scim(
            "PATCH",
            slug,
            path,
            token,
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": ops,
            })),
        )
        .await
        .expect(200);
    }

    /// Polls a job until it is `done`, at most [`EVENTUALLY`].
    pub async fn job_done(&self, jwt: &str, slug: &str, job: &Value) -> Value {
        let id = job["id"].as_str().expect("job id");
        let url = job["url"].as_str().expect("job url");
        assert_eq!(url, format!("/admin/v1/tenants/{slug}/roles/jobs/{id}"));
        let path = format!("/tenants/{slug}/roles/jobs/{id}");
        let path = path.as_str();
        eventually(|| async move {
            let job = self.get(path, jwt).await.expect(200);
            assert_ne!(job["status"], "failed", "{job}");
            (job["status"] == "done").then_some(job)
        })
        .await
        .unwrap_or_else(|| panic!("job {id} not done within {EVENTUALLY:?}"))
    }

    /// The role names a user has, per the admin API.
    pub async fn role_names(&self, jwt: &str, slug: &str, user: &str) -> Vec<String> {
        let body = self
            .get(&format!("/tenants/{slug}/users/{user}"), jwt)
            .await
            .expect(200);
        body["roles"]["effective"]
            .as_array()
            .expect("effective")
            .iter()
            .map(|r| r["role"].as_str().expect("role").to_owned())
            .collect()
    }
}

/// Polls `check` every 100 ms until it answers `Some`, at most
/// [`EVENTUALLY`].
pub async fn eventually<T, F, Fut>(mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        if let Some(found) = check().await {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Base64url without padding (JWT segments).
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes a base64url segment (for reading a token's payload).
pub fn b64url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'-' => 62,
            b'_' => 63,
            _ => panic!("not base64url: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (value(*c) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
