//! The real service on 127.0.0.1 over a fresh database, and a small client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App as ActixApp, HttpResponse, HttpServer, web};
use gateway::{Gateway, GatewayConfig};
use reqwest::Method;
use serde_json::Value;
use store::{NewTenant, NewToken, Scope, Store, StoreOptions, Tenant, TenantKind};

/// One running gateway.
pub struct App {
    /// `http://127.0.0.1:<port>`
    pub origin: String,
    pub store: Store,
    pub gateway: Gateway,
    pub registry: prometheus::Registry,
    client: reqwest::Client,
    server: actix_web::dev::ServerHandle,
    db: Option<testkit::TestDatabase>,
    which: testkit::TestDb,
    /// A second gateway over the same database (its own store handle,
    /// caches and limiter), as another instance behind a load balancer:
    /// [`App::call`] alternates between the two.
    peer: Option<Peer>,
    turn: AtomicUsize,
}

/// The second gateway of [`App::pair`].
struct Peer {
    origin: String,
    server: actix_web::dev::ServerHandle,
}

impl Drop for App {
    fn drop(&mut self) {
        // Stopping is asynchronous; the handles only ask.
        if let Some(peer) = &self.peer {
            let server = peer.server.clone();
            drop(tokio::spawn(async move { server.stop(false).await }));
        }
    }
}

/// A tenant with a write token and a read token.
pub struct TenantCtx {
    pub tenant: Tenant,
    pub token: String,
    pub read_token: String,
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
}

/// Runs `test` once per backend (SQLite and PostgreSQL) with default config.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(App) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    each_backend_with(GatewayConfig::default, test).await;
}

/// Runs `test` once per backend with a config made by `config`.
pub async fn each_backend_with<C, F, Fut>(config: C, test: F)
where
    C: Fn() -> GatewayConfig,
    F: Fn(App) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in testkit::backends() {
        let app = App::spawn(backend, config()).await;
        let handle = app.server.clone();
        test(app).await;
        handle.stop(false).await;
    }
}

/// The test client: plain HTTP to 127.0.0.1, every request bounded.
fn client() -> reqwest::Client {
    testkit::install_tls_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

impl App {
    async fn spawn(backend: testkit::TestDb, config: GatewayConfig) -> App {
        let db = testkit::fresh_database(backend).await;
        let store = Store::connect(&db.url, StoreOptions::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let registry = prometheus::Registry::new();
        let gateway = Gateway::new(store.clone(), config, &registry).expect("gateway");
        let gw = gateway.clone();
        let server = HttpServer::new(move || {
            let gw = gw.clone();
            ActixApp::new()
                .configure(move |c| gw.configure(c))
                .route("/metrics", web::get().to(HttpResponse::Ok))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .expect("bind");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        App {
            origin: format!("http://{addr}"),
            store,
            gateway,
            registry,
            client: client(),
            server: handle,
            which: db.which,
            db: Some(db),
            peer: None,
            turn: AtomicUsize::new(0),
        }
    }

    /// Two gateways behind one public URL (the first's origin) over one
    /// fresh PostgreSQL database, each with its own store handle, sharing
    /// `redis`: SCIM calls alternate between them.
    pub async fn pair(redis: &str) -> App {
        let db = testkit::fresh_database(testkit::TestDb::Postgres).await;
        let listeners: Vec<std::net::TcpListener> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let origins: Vec<String> = listeners
            .iter()
            .map(|l| format!("http://{}", l.local_addr().expect("addr")))
            .collect();
        let config = GatewayConfig {
            public_url: Some(origins[0].clone()),
            ..GatewayConfig::default()
        };
        let mut instances = Vec::new();
        for listener in listeners {
            let store = Store::connect(&db.url, StoreOptions::default())
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            let registry = prometheus::Registry::new();
            let redis = cluster::Redis::open(redis).expect("redis url");
            let gateway =
                Gateway::with_redis(store.clone(), config.clone(), &registry, Some(redis))
                    .expect("gateway");
            drop(gateway.spawn_background());
            let gw = gateway.clone();
            let server = HttpServer::new(move || {
                let gw = gw.clone();
                ActixApp::new().configure(move |c| gw.configure(c))
            })
            .workers(2)
            .listen(listener)
            .expect("listen")
            .run();
            let handle = server.handle();
            tokio::spawn(server);
            instances.push((store, gateway, registry, handle));
        }
        let (peer_store, _, _, peer_server) = instances.pop().expect("two instances");
        drop(peer_store);
        let (store, gateway, registry, server) = instances.pop().expect("two instances");
        App {
            origin: origins[0].clone(),
            store,
            gateway,
            registry,
            client: client(),
            server,
            which: db.which,
            db: Some(db),
            peer: Some(Peer {
                origin: origins[1].clone(),
                server: peer_server,
            }),
            turn: AtomicUsize::new(0),
        }
    }

    /// How many SCIM calls the second gateway of [`App::pair`] answered.
    pub fn peer_calls(&self) -> usize {
        self.turn.load(Ordering::Relaxed) / 2
    }

    /// The engine this app runs on.
    pub fn which(&self) -> testkit::TestDb {
        self.which
    }

    /// Drops the database under the running gateway (PostgreSQL: the
    /// database is dropped with its connections).
    pub fn drop_database(&mut self) {
        self.db = None;
    }

    /// A new tenant with a `scim:write` and a `scim:read` token.
    pub async fn tenant(&self, slug: &str) -> TenantCtx {
        let admin = self.store.admin();
        let tenant = admin
            .create_tenant(
                NewTenant {
                    slug: slug.into(),
                    name: format!("Tenant {slug}"),
                    kind: TenantKind::Standard,
                },
                "test",
            )
            .await
            .expect("tenant");
        let token = self.token(&tenant, vec![Scope::ScimWrite], None).await;
        let read_token = self.token(&tenant, vec![Scope::ScimRead], None).await;
        TenantCtx {
            tenant,
            token,
            read_token,
        }
    }

    /// Issues a token; returns its secret.
    pub async fn token(
        &self,
        tenant: &Tenant,
        scopes: Vec<Scope>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> String {
        self.issue(tenant, scopes, expires_at).await.secret
    }

    /// Issues a token.
    pub async fn issue(
        &self,
        tenant: &Tenant,
        scopes: Vec<Scope>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> store::IssuedToken {
        self.store
            .admin()
            .issue_token(
                tenant,
                NewToken {
                    name: "test".into(),
                    scopes,
                    expires_at,
                },
                "test",
            )
            .await
            .expect("token")
    }

    /// The SCIM base URL of the token-resolved route.
    pub fn scim(&self) -> String {
        format!("{}/scim/v2", self.origin)
    }

    /// A request with full control over headers and body bytes.
    pub async fn raw(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, url);
        if let Some(t) = token {
            rb = rb.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let res = rb.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status >= 400 && url.contains("/scim/v2") {
            // Every SCIM error is an RFC 7644 §3.12 body.
            assert_eq!(
                body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
                "{status} {body}"
            );
        }
        assert_ne!(status, 500, "500 for {url}: {body}");
        Resp {
            status,
            headers,
            body,
        }
    }

    /// A SCIM call on the token-resolved route: `path` is relative to
    /// `/scim/v2` and may carry a query string.
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let origin = match &self.peer {
            Some(peer) if self.turn.fetch_add(1, Ordering::Relaxed) % 2 == 1 => &peer.origin,
            _ => &self.origin,
        };
        let url = format!("{origin}/scim/v2{path}");
        self.raw(
            method,
            &url,
            Some(token),
            &[("Content-Type", "application/scim+json")],
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }
}

/// Replaces timestamps with placeholders, so whole bodies can be compared.
pub fn redact_times(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter_mut() {
                if (k == "created" || k == "lastModified") && val.is_string() {
                    *val = Value::String("[ts]".into());
                } else {
                    redact_times(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_times),
        _ => {}
    }
}

/// The body with timestamps redacted.
pub fn redacted(mut v: Value) -> Value {
    redact_times(&mut v);
    v
}

/// A query string value, percent-encoded.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
