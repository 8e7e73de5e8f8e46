//! The console without a browser, over real HTTP on both engines: sessions
//! (cookie flags, CSRF, logout, the shared login throttle), every page
//! rendering, tenant isolation, forms that refuse bad input and change
//! nothing, and the round trips a person makes (create a tenant and use
//! its token, preview and save a role change, lock a user).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, each_backend};

/// One console response.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn location(&self) -> &str {
        self.header("location").unwrap_or_default()
    }

    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }

    pub(crate) fn contains(&self, needle: &str) -> bool {
        self.body.contains(needle)
    }
}

/// A browser without a browser: cookies kept, redirects not followed, the
/// CSRF token of the last page put into every form.
pub(crate) struct Console<'a> {
    server: &'a Server,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    csrf: Option<String>,
}

fn csrf_in(body: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

impl<'a> Console<'a> {
    pub(crate) fn new(server: &'a Server) -> Console<'a> {
        Console {
            server,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            csrf: None,
        }
    }

    pub(crate) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("Cookie", self.cookie_header())
        };
        let res = request.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let removed = text.contains("Max-Age=0") || value.is_empty();
            if removed {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = res.text().await.unwrap();
        if let Some(csrf) = csrf_in(&body) {
            self.csrf = Some(csrf);
        }
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let url = format!("{}{path}", self.server.origin);
        let request = self.http.get(url);
        self.send(request).await
    }

    /// A form post with this session's CSRF token added.
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone().expect("a page with a form was loaded");
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post_exactly(path, &all).await
    }

    /// A form post of exactly `fields` (no token added).
    pub(crate) async fn post_exactly(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let url = format!("{}{path}", self.server.origin);
        let body = serde_html_form_encode(fields);
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    pub(crate) async fn login(&mut self, email: &str, password: &str, tenant: &str) -> Page {
        self.get("/console/login").await.expect(200);
        self.post(
            "/console/login",
            &[("email", email), ("password", password), ("tenant", tenant)],
        )
        .await
    }

    pub(crate) async fn operator(server: &'a Server) -> Console<'a> {
        let mut console = Console::new(server);
        let page = console
            .login(&server.operator_email, &server.operator_password, "")
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/console/tenants");
        console.get("/console/tenants").await.expect(200);
        console
    }
}

fn serde_html_form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_session_cookie_is_httponly_strict_and_every_page_renders() {
    each_backend(async |s| {
        let op = s.operator().await;
        let token = s.tenant(&op, "acme").await;
        let ada = s.scim_user("acme", &token, "ada@acme.test").await;
        s.scim_group("acme", &token, "Staff", &[&ada]).await;

        let mut c = Console::new(s);
        // Without a session every page leads to the login form.
        let page = c.get("/console/t/acme/users").await;
        assert_eq!(page.status, 303);
        assert_eq!(page.location(), "/console/login");
        let login = c.get("/console/login").await;
        login.expect(200);
        let csp = login.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(login.header("x-frame-options"), Some("DENY"));
        assert!(!login.body.contains("<script>"), "no inline script");

        // A wrong password: the form again, with the e-mail kept.
        let page = c
            .post(
                "/console/login",
                &[
                    ("email", &s.operator_email),
                    ("password", "nope"),
                    ("tenant", ""),
                ],
            )
            .await;
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.contains("invalid email, password or tenant"));
        assert!(page.contains(&format!("value=\"{}\"", s.operator_email)));
        assert!(!c.cookies.contains_key("scimgate_console"));

        let page = c
            .post(
                "/console/login",
                &[
                    ("email", &s.operator_email),
                    ("password", &s.operator_password),
                    ("tenant", ""),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let set = page
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("scimgate_console="))
            .expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(flag), "{flag} missing from {set}");
        }
        // Plain http on loopback: not Secure (the browser would drop it).
        assert!(!set.contains("Secure"), "{set}");

        let user_page = format!("/console/t/acme/users/{ada}");
        for (path, heading) in [
            ("/console/tenants", "<h1>Tenants</h1>"),
            ("/console/t/acme", "<h1>Tenant acme</h1>"),
            ("/console/t/acme/connection", "<h1>Connection</h1>"),
            ("/console/t/acme/users", "ada@acme.test"),
            (user_page.as_str(), "<h1>ada@acme.test</h1>"),
            ("/console/t/acme/groups", "Staff"),
            ("/console/t/acme/roles", "<h1>Roles</h1>"),
            ("/console/t/acme/locks", "<h1>Role-locks</h1>"),
            ("/console/t/acme/provisioning", "<h1>Provisioning log</h1>"),
            ("/console/t/acme/audit", "<h1>Audit log</h1>"),
            ("/console/t/acme/delete", "Delete Tenant acme?"),
        ] {
            let page = c.get(path).await;
            assert_eq!(page.status, 200, "{path}: {}", page.body);
            assert!(page.contains(heading), "{path} lacks {heading}");
            assert!(page.contains("name=\"csrf\""), "{path} has no CSRF field");
            assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
        }
        // The search narrows the list; htmx gets the results alone.
        let page = c.get("/console/t/acme/users?q=nobody").await;
        assert!(page.contains("No users match."));
        let url = format!("{}/console/t/acme/users?q=ada", s.origin);
        let request = c
            .http
            .get(url)
            .header("HX-Request", "true")
            .header("HX-Target", "results");
        let fragment = c.send(request).await;
        assert_eq!(fragment.status, 200);
        assert!(fragment.contains("ada@acme.test"));
        assert!(!fragment.contains("<html"), "a fragment, not a page");
        // The provisioning log shows the IdP's requests.
        let page = c.get("/console/t/acme/provisioning?outcome=success").await;
        assert!(page.contains("ada@acme.test"), "{}", page.body);

        // Assets: embedded, typed, revalidated by ETag.
        let js = c.get("/console/assets/htmx-2.0.11.min.js").await;
        assert_eq!(js.status, 200);
        assert!(
            js.header("content-type")
                .unwrap()
                .starts_with("text/javascript")
        );
        let etag = js.header("etag").unwrap().to_owned();
        let url = format!("{}/console/assets/htmx-2.0.11.min.js", s.origin);
        let again = c.send(c.http.get(url).header("If-None-Match", etag)).await;
        assert_eq!(again.status, 304);
        assert_eq!(c.get("/console/assets/nope.js").await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_form_without_this_sessions_csrf_token_is_refused_and_changes_nothing() {
    each_backend(async |s| {
        let op = s.operator().await;
        let mut c = Console::operator(s).await;
        let other = Console::operator(s).await;
        let stranger = other.csrf.clone().unwrap();
        for fields in [
            vec![("slug", "forged"), ("name", "Forged")],
            vec![("slug", "forged"), ("name", "Forged"), ("csrf", "")],
            vec![("slug", "forged"), ("name", "Forged"), ("csrf", "x")],
            // Another session's token does not fit this session.
            vec![("slug", "forged"), ("name", "Forged"), ("csrf", &stranger)],
        ] {
            let page = c.post_exactly("/console/tenants", &fields).await;
            assert_eq!(page.status, 403, "{fields:?}: {}", page.body);
            assert!(page.contains("security token"), "{}", page.body);
        }
        s.get("/tenants/forged", &op)
            .await
            .expect_error(404, "not_found", "forged");
        // The header form (htmx) works like the field.
        let url = format!("{}/console/tenants", s.origin);
        let csrf = c.csrf.clone().unwrap();
        let request = c
            .http
            .post(url)
            .header("X-CSRF-Token", csrf)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("slug=real&name=Real");
        let page = c.send(request).await;
        assert_eq!(page.status, 303, "{}", page.body);
        s.get("/tenants/real", &op).await.expect(200);

        // The login form has its own token (a cookie and the same value in
        // the form); a post from elsewhere has neither.
        let mut fresh = Console::new(s);
        let page = fresh
            .post_exactly(
                "/console/login",
                &[
                    ("email", &s.operator_email),
                    ("password", &s.operator_password),
                ],
            )
            .await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(!fresh.cookies.contains_key("scimgate_console"));
    })
    .await;
}

#[tokio::test]
async fn a_tenant_admin_sees_only_their_tenant() {
    each_backend(async |s| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let globex = s.tenant(&op, "globex").await;
        let gus = s.scim_user("globex", &globex, "gus@globex.test").await;
        s.tenant_admin(&op, "acme", "ann@acme.test").await;

        let mut c = Console::new(s);
        let page = c.login("ann@acme.test", PASSWORD, "acme").await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/console/t/acme");
        let home = c.get("/console/t/acme").await;
        home.expect(200);
        assert!(
            !home.contains("/console/tenants\""),
            "no operator navigation"
        );

        let gus_page = format!("/console/t/globex/users/{gus}");
        for path in [
            "/console/t/globex",
            "/console/t/globex/users",
            gus_page.as_str(),
            "/console/t/globex/connection",
            "/console/t/globex/roles",
            "/console/t/globex/audit",
            "/console/t/nonexistent",
        ] {
            let page = c.get(path).await;
            assert_eq!(page.status, 404, "{path}: {}", page.body);
            assert!(!page.contains("Tenant globex"), "{path} leaks the name");
            assert!(!page.contains("gus@globex.test"), "{path} leaks a user");
        }
        // By id instead of slug: the same.
        let globex_id = s.get("/tenants/globex", &op).await.expect(200)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(c.get(&format!("/console/t/{globex_id}")).await.status, 404);
        // Operator pages and actions.
        assert_eq!(c.get("/console/tenants").await.status, 403);
        assert_eq!(
            c.post("/console/tenants", &[("slug", "mine"), ("name", "Mine")])
                .await
                .status,
            403
        );
        assert_eq!(c.get("/console/t/acme/delete").await.status, 403);
        assert_eq!(
            c.post("/console/t/acme/status", &[("status", "suspended")])
                .await
                .status,
            403
        );
        // Writes into another tenant: 404 (with a valid token, so the
        // CSRF check is not what refuses them).
        let page = c
            .post(
                "/console/t/globex/tokens",
                &[("name", "stolen"), ("scope", "scim:write")],
            )
            .await;
        assert_eq!(page.status, 404, "{}", page.body);
        let tokens = s.get("/tenants/globex/tokens", &op).await.expect(200);
        assert!(!tokens.to_string().contains("stolen"), "{tokens}");
        let page = c
            .post(
                &format!("/console/t/globex/users/{gus}/lock"),
                &[("reason", "nope")],
            )
            .await;
        assert_eq!(page.status, 404);
        assert_eq!(
            s.get("/tenants/globex/locks", &op).await.expect(200),
            json!({"locks": []})
        );
    })
    .await;
}

#[tokio::test]
async fn logout_ends_the_session_even_for_a_copied_cookie() {
    each_backend(async |s| {
        let mut c = Console::operator(s).await;
        let copied = c.cookies.clone();
        let page = c.post("/console/logout", &[]).await;
        assert_eq!(page.status, 303);
        assert_eq!(page.location(), "/console/login");
        assert!(
            !c.cookies.contains_key("scimgate_console"),
            "cookie dropped"
        );
        // Someone who kept the cookie is logged out too.
        c.cookies = copied;
        let page = c.get("/console/tenants").await;
        assert_eq!(page.status, 303);
        assert_eq!(page.location(), "/console/login");
        // htmx is told to load the login page as a whole.
        let url = format!("{}/console/tenants", s.origin);
        let page = c.send(c.http.get(url).header("HX-Request", "true")).await;
        assert_eq!(page.header("hx-redirect"), Some("/console/login"));
    })
    .await;
}

#[tokio::test]
async fn the_login_form_shares_the_apis_throttle() {
    each_backend(async |s| {
        let mut c = Console::new(s);
        // Five wrong passwords through the form lock the account...
        for _ in 0..5 {
            let page = c.login(&s.operator_email, "wrong", "").await;
            assert_eq!(page.status, 401, "{}", page.body);
        }
        let page = c.login(&s.operator_email, &s.operator_password, "").await;
        assert_eq!(page.status, 429, "{}", page.body);
        assert!(page.contains("too many failed logins"), "{}", page.body);
        assert!(page.header("retry-after").is_some());
        // ...for the API too: one mechanism.
        s.login(&s.operator_email, &s.operator_password, None)
            .await
            .expect_error(429, "too_many_requests", "too many failed logins");
    })
    .await;
}

#[tokio::test]
async fn an_operator_creates_a_tenant_and_its_token_works() {
    each_backend(async |s| {
        let op = s.operator().await;
        let mut c = Console::operator(s).await;
        // Bad input: the form again, errors next to the field, input kept,
        // nothing created.
        let page = c
            .post(
                "/console/tenants",
                &[
                    ("slug", "Not A Slug!"),
                    ("name", "Globex"),
                    ("token", "yes"),
                ],
            )
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"slug-error\""), "{}", page.body);
        assert!(page.contains("value=\"Globex\""), "input kept");
        let page = c
            .post("/console/tenants", &[("slug", "globex"), ("name", "  ")])
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"name-error\""), "{}", page.body);
        s.get("/tenants/globex", &op)
            .await
            .expect_error(404, "not_found", "globex");

        let page = c
            .post(
                "/console/tenants",
                &[("slug", "globex"), ("name", "Globex"), ("token", "yes")],
            )
            .await;
        assert_eq!(page.status, 201, "{}", page.body);
        let start = page.body.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
        let secret = &page.body[start..start + page.body[start..].find('<').unwrap()];
        assert!(secret.starts_with("sgt_"), "{secret}");
        assert!(page.contains(&format!("{}/tenants/globex/scim/v2", s.origin)));
        let users = s
            .scim("GET", "globex", "/Users", secret, None)
            .await
            .expect(200);
        assert_eq!(users["totalResults"], 0);
        // Shown once: the connection page lists the token, not the secret.
        let page = c.get("/console/t/globex/connection").await;
        assert!(page.contains("initial"));
        assert!(!page.contains(secret));

        // Issue a second one, read-only, expiring; then revoke the first.
        let page = c
            .post(
                "/console/t/globex/tokens",
                &[
                    ("name", "reader"),
                    ("scope", "scim:read"),
                    ("expires_days", "0"),
                ],
            )
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"expires-error\""));
        let page = c
            .post(
                "/console/t/globex/tokens",
                &[
                    ("name", "reader"),
                    ("scope", "scim:read"),
                    ("expires_days", "30"),
                ],
            )
            .await;
        assert_eq!(page.status, 201, "{}", page.body);
        let tokens = s.get("/tenants/globex/tokens", &op).await.expect(200);
        let first = tokens["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "initial")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let confirm = c
            .get(&format!("/console/t/globex/tokens/{first}/revoke"))
            .await;
        assert!(confirm.contains("Revoke token"), "{}", confirm.body);
        let page = c
            .post(&format!("/console/t/globex/tokens/{first}/revoke"), &[])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        crate::support::eventually(|| async {
            let status = s.scim("GET", "globex", "/Users", secret, None).await.status;
            (status == 401).then_some(())
        })
        .await
        .expect("the revoked token stops working");

        // Suspend, then delete with confirmation.
        let page = c
            .post("/console/t/globex/status", &[("status", "suspended")])
            .await;
        assert_eq!(page.status, 303);
        assert_eq!(
            s.get("/tenants/globex", &op).await.expect(200)["status"],
            "suspended"
        );
        let page = c
            .post("/console/t/globex/delete", &[("confirm", "globe")])
            .await;
        assert_eq!(page.status, 422);
        assert!(page.contains("id=\"confirm-error\""));
        s.get("/tenants/globex", &op).await.expect(200);
        let page = c
            .post("/console/t/globex/delete", &[("confirm", "globex")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        s.get("/tenants/globex", &op)
            .await
            .expect_error(404, "not_found", "globex");
        let audit = s.get("/audit?action=tenant.delete", &op).await.expect(200);
        assert!(
            audit
                .to_string()
                .contains(&format!("operator:{}", s.operator_email)),
            "{audit}"
        );
    })
    .await;
}

async fn roles_of(s: &Server, op: &str, user: &str) -> Vec<String> {
    s.role_names(op, "acme", user).await
}

#[tokio::test]
async fn a_role_change_is_previewed_then_saved_and_a_lock_needs_a_reason() {
    each_backend(async |s| {
        let op = s.operator().await;
        let token = s.tenant(&op, "acme").await;
        s.api(
            "PUT",
            "/tenants/acme/roles",
            Some(&op),
            Some(json!({"mode": "single", "roles": [{"name": "admin"}, {"name": "viewer"}]})),
        )
        .await
        .expect(200);
        let ada = s.scim_user("acme", &token, "ada@acme.test").await;
        let bob = s.scim_user("acme", &token, "bob@acme.test").await;
        s.scim_group("acme", &token, "Admins", &[&ada]).await;
        s.tenant_admin(&op, "acme", "ann@acme.test").await;
        let mut c = Console::new(s);
        assert_eq!(c.login("ann@acme.test", PASSWORD, "acme").await.status, 303);
        c.get("/console/t/acme/roles").await.expect(200);

        // The dry run names who changes, from what to what; nothing saved.
        let page = c
            .post(
                "/console/t/acme/roles/preview",
                &[("op", "set_default"), ("role", "viewer")],
            )
            .await;
        page.expect(200);
        assert!(
            page.contains("<strong>2</strong> of 2 users"),
            "{}",
            page.body
        );
        assert!(page.contains("viewer (default)"), "{}", page.body);
        let version = s.get("/tenants/acme/roles", &op).await.expect(200)["version"].clone();
        assert_eq!(
            s.get("/tenants/acme/roles", &op).await.expect(200)["defaultRole"],
            Value::Null
        );

        // Saving sends the version previewed; a stale one saves nothing.
        let stale = (version.as_u64().unwrap() + 7).to_string();
        let page = c
            .post(
                "/console/t/acme/roles/apply",
                &[
                    ("op", "set_default"),
                    ("role", "viewer"),
                    ("version", &stale),
                ],
            )
            .await;
        assert_eq!(page.status, 412, "{}", page.body);
        assert!(page.contains("Preview the change again"), "{}", page.body);
        let current = version.as_u64().unwrap().to_string();
        let page = c
            .post(
                "/console/t/acme/roles/apply",
                &[
                    ("op", "set_default"),
                    ("role", "viewer"),
                    ("version", &current),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let job_path = page.location().to_owned();
        assert!(
            job_path.starts_with("/console/t/acme/roles/jobs/"),
            "{job_path}"
        );
        let done = crate::support::eventually(|| {
            let path = job_path.clone();
            let mut probe = Console::new(s);
            probe.cookies = c.cookies.clone();
            async move {
                let page = probe.get(&path).await;
                page.contains("<strong id=\"job-status\">done</strong>")
                    .then_some(page.body)
            }
        })
        .await
        .expect("the recompute job finishes");
        assert!(done.contains("2 of 2 users processed"), "{done}");
        assert_eq!(roles_of(s, &op, &bob).await, ["viewer"]);

        // A mapping: invalid input stays in the form, a valid one previews.
        c.get("/console/t/acme/roles").await.expect(200);
        let page = c
            .post(
                "/console/t/acme/roles/preview",
                &[
                    ("op", "add_mapping"),
                    ("group", "Admins"),
                    ("role", "admin"),
                    ("priority", "high"),
                ],
            )
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(
            page.contains("the priority is a whole number"),
            "{}",
            page.body
        );
        assert!(page.contains("value=\"Admins\""), "input kept");
        let page = c
            .post(
                "/console/t/acme/roles/preview",
                &[
                    ("op", "add_mapping"),
                    ("match_by", "displayName"),
                    ("group", "Admins"),
                    ("role", "admin"),
                    ("priority", "10"),
                ],
            )
            .await;
        assert!(
            page.contains("<strong>1</strong> of 2 users"),
            "{}",
            page.body
        );
        let version = s.get("/tenants/acme/roles", &op).await.expect(200)["version"]
            .as_u64()
            .unwrap()
            .to_string();
        let page = c
            .post(
                "/console/t/acme/roles/apply",
                &[
                    ("op", "add_mapping"),
                    ("match_by", "displayName"),
                    ("group", "Admins"),
                    ("role", "admin"),
                    ("priority", "10"),
                    ("version", &version),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        crate::support::eventually(|| async {
            (roles_of(s, &op, &ada).await == ["admin"]).then_some(())
        })
        .await
        .expect("ada becomes admin");

        // A lock without a reason: refused next to the field, nothing locked.
        c.get(&format!("/console/t/acme/users/{bob}"))
            .await
            .expect(200);
        let page = c
            .post(
                &format!("/console/t/acme/users/{bob}/lock"),
                &[("role", "admin"), ("reason", "  ")],
            )
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"reason-error\""), "{}", page.body);
        assert_eq!(
            s.get("/tenants/acme/locks", &op).await.expect(200),
            json!({"locks": []})
        );
        let page = c
            .post(
                &format!("/console/t/acme/users/{bob}/lock"),
                &[("role", "admin"), ("reason", "Contractor until March")],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let page = c.get(&format!("/console/t/acme/users/{bob}")).await;
        assert!(page.contains("Contractor until March"), "{}", page.body);
        assert_eq!(roles_of(s, &op, &bob).await, ["admin"]);
        let audit = c.get("/console/t/acme/audit?action=roles.lock").await;
        assert!(
            audit.contains("tenant-admin:ann@acme.test"),
            "{}",
            audit.body
        );
        assert!(audit.contains("Contractor until March"), "{}", audit.body);
        let locks = c.get("/console/t/acme/locks").await;
        assert!(locks.contains(&bob));
        let page = c
            .post(&format!("/console/t/acme/users/{bob}/unlock"), &[])
            .await;
        assert_eq!(page.status, 303);
        assert_eq!(
            s.get("/tenants/acme/locks", &op).await.expect(200),
            json!({"locks": []})
        );
    })
    .await;
}

#[tokio::test]
async fn bad_input_gets_a_page_never_a_server_error() {
    each_backend(async |s| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        let mut c = Console::operator(s).await;
        for (path, status) in [
            ("/console/tenants?page=abc", 400),
            ("/console/tenants?page=-1", 400),
            ("/console/t/acme/users?page=0", 200),
            ("/console/t/acme/users/no-such-user", 404),
            ("/console/t/acme/roles/jobs/nope", 404),
            ("/console/t/acme/provisioning?before_id=x", 400),
            ("/console/t/acme/users?q=%22%5C%22", 200),
            ("/console/t/acme/tokens/not-a-uuid/revoke", 404),
        ] {
            let page = c.get(path).await;
            assert_eq!(page.status, status, "{path}: {}", page.body);
            assert!(
                page.header("content-type")
                    .unwrap()
                    .starts_with("text/html"),
                "{path}"
            );
        }
        let long = "x".repeat(70 * 1024);
        let page = c
            .post("/console/tenants", &[("slug", "big"), ("name", &long)])
            .await;
        assert_eq!(page.status, 413, "{}", page.body);
        for fields in [
            vec![("op", "nonsense")],
            vec![("op", "set_mode"), ("mode", "both")],
            vec![("op", "remove_mapping"), ("mapping", "nope")],
        ] {
            let page = c.post("/console/t/acme/roles/preview", &fields).await;
            assert!(
                matches!(page.status, 404 | 422),
                "{fields:?}: {} {}",
                page.status,
                page.body
            );
        }
        let page = c
            .post("/console/t/acme/status", &[("status", "paused")])
            .await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert_eq!(
            s.get("/tenants/acme", &op).await.expect(200)["status"],
            "active"
        );
    })
    .await;
}

#[tokio::test]
async fn a_setup_link_lets_its_holder_issue_and_rotate_the_token_and_nothing_else() {
    each_backend(async |s| {
        let op = s.operator().await;
        s.tenant(&op, "acme").await;
        s.tenant(&op, "globex").await;
        s.tenant_admin(&op, "acme", "ann@acme.test").await;
        let mut admin = Console::new(s);
        assert_eq!(
            admin.login("ann@acme.test", PASSWORD, "acme").await.status,
            303
        );
        admin.get("/console/t/acme/connection").await.expect(200);
        // Bad input: the form again with the error, no link made.
        let page = admin
            .post(
                "/console/t/acme/setup-links",
                &[("link_name", "Acme IT"), ("link_days", "90")],
            )
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"link-days-error\""), "{}", page.body);
        let links = s.get("/tenants/acme/setup-links", &op).await.expect(200);
        assert_eq!(links["setupLinks"], json!([]));
        // The API: 1 to 30 days, both ends included.
        for (days, status) in [(0, 400), (1, 201), (30, 201), (31, 400)] {
            let answer = s
                .api(
                    "POST",
                    "/tenants/globex/setup-links",
                    Some(&op),
                    Some(json!({"name": "IT", "expiresInDays": days})),
                )
                .await;
            assert_eq!(answer.status, status, "{days} days: {}", answer.body);
        }
        let page = admin
            .post(
                "/console/t/acme/setup-links",
                &[("link_name", "Acme IT"), ("link_days", "3")],
            )
            .await;
        assert_eq!(page.status, 201, "{}", page.body);
        let start = page.body.find("id=\"new-link\">").unwrap() + "id=\"new-link\">".len();
        let url = page.body[start..start + page.body[start..].find('<').unwrap()].to_owned();
        let path = url
            .strip_prefix(&s.origin)
            .expect("an absolute link")
            .to_owned();
        assert!(path.starts_with("/console/setup/sgl_"), "{path}");
        // Shown once.
        assert!(
            !admin
                .get("/console/t/acme/connection")
                .await
                .contains(&path)
        );

        // The holder: no account, no session.
        let mut it = Console::new(s);
        let page = it.get(&path).await;
        page.expect(200);
        assert!(page.contains("Connect Tenant acme"), "{}", page.body);
        assert!(page.contains(&format!("{}/tenants/acme/scim/v2", s.origin)));
        assert!(page.contains("Issue the SCIM token"));
        assert!(!page.contains("globex"));
        // A post from elsewhere (no form token) issues nothing.
        let refused = it.post_exactly(&format!("{path}/token"), &[]).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        let tokens = s.get("/tenants/acme/tokens", &op).await.expect(200);
        assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1, "{tokens}");

        let secret_of = |page: &Page| {
            let start = page.body.find("id=\"new-token\">").unwrap() + "id=\"new-token\">".len();
            page.body[start..start + page.body[start..].find('<').unwrap()].to_owned()
        };
        let page = it.post(&format!("{path}/token"), &[]).await;
        assert_eq!(page.status, 201, "{}", page.body);
        let first = secret_of(&page);
        assert!(page.contains("Rotate the SCIM token"));
        s.scim("GET", "acme", "/Users", &first, None)
            .await
            .expect(200);
        s.scim("GET", "globex", "/Users", &first, None)
            .await
            .expect(401);

        // Rotating: a new token works, the previous one stops.
        let page = it.post(&format!("{path}/token"), &[]).await;
        assert_eq!(page.status, 201, "{}", page.body);
        let second = secret_of(&page);
        assert_ne!(first, second);
        s.scim("GET", "acme", "/Users", &second, None)
            .await
            .expect(200);
        crate::support::eventually(|| async {
            (s.scim("GET", "acme", "/Users", &first, None).await.status == 401).then_some(())
        })
        .await
        .expect("the rotated token stops working");
        let audit = s
            .get("/tenants/acme/audit?actor=setup-link:Acme IT", &op)
            .await
            .expect(200);
        let actions: Vec<&str> = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["token.revoke", "token.issue", "token.issue"],
            "{audit}"
        );

        // The link opens nothing else: the holder has no console session.
        let page = it.get("/console/t/acme").await;
        assert_eq!(page.status, 303);
        assert_eq!(page.location(), "/console/login");
        // Unknown and malformed secrets.
        assert_eq!(it.get("/console/setup/sgl_0000").await.status, 404);
        assert_eq!(it.get("/console/setup/nothing").await.status, 404);

        // A suspended tenant's link issues nothing.
        s.api(
            "PATCH",
            "/tenants/acme",
            Some(&op),
            Some(json!({"status": "suspended"})),
        )
        .await
        .expect(200);
        let page = it.get(&path).await;
        assert_eq!(page.status, 403, "{}", page.body);
        s.api(
            "PATCH",
            "/tenants/acme",
            Some(&op),
            Some(json!({"status": "active"})),
        )
        .await
        .expect(200);

        // Revoked from the console: the page stops opening, with the reason.
        let links = s.get("/tenants/acme/setup-links", &op).await.expect(200);
        let id = links["setupLinks"][0]["id"].as_str().unwrap().to_owned();
        assert!(links["setupLinks"][0]["tokenId"].as_str().is_some());
        admin
            .get(&format!("/console/t/acme/setup-links/{id}/revoke"))
            .await
            .expect(200);
        let page = admin
            .post(&format!("/console/t/acme/setup-links/{id}/revoke"), &[])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let page = it.get(&path).await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(page.contains("revoked"), "{}", page.body);
        let refused = it.post(&format!("{path}/token"), &[]).await;
        assert_eq!(refused.status, 403);
        // The token it issued keeps working until revoked on its own.
        s.scim("GET", "acme", "/Users", &second, None)
            .await
            .expect(200);
    })
    .await;
}

#[tokio::test]
async fn super_tenant_rules_and_a_mapping_are_previewed_before_they_are_saved() {
    each_backend(async |s| {
        let op = s.operator().await;
        let msp = s.tenant(&op, "msp").await;
        s.tenant(&op, "acme").await;
        let ada = s.scim_user("msp", &msp, "ada@acme.example").await;
        s.scim_user("msp", &msp, "bob@other.example").await;
        s.scim_group("msp", &msp, "Acme Staff", &[&ada]).await;
        let mut c = Console::operator(s).await;

        // A standard tenant is made super, then gets a child.
        let page = c.get("/console/t/msp/routing").await;
        assert!(page.contains("Make this a super tenant"), "{}", page.body);
        assert_eq!(c.post("/console/t/msp/kind", &[("kind", "super")]).await.status, 303);
        let page = c
            .post("/console/t/msp/children", &[("child", "nobody"), ("on_unroute", "deactivate")])
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"child-error\""), "{}", page.body);
        let page = c
            .post("/console/t/msp/children", &[("child", "acme"), ("on_unroute", "deactivate")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);

        // Rules: invalid JSON stays in the form; a preview stores nothing.
        let page = c
            .post("/console/t/msp/routing", &[("rules", "[{"), ("action", "preview")])
            .await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"rules-error\""));
        let rules = r#"[{"id": "acme-staff", "child": "acme", "group": {"displayName": "Acme Staff"}}]"#;
        let page = c
            .post("/console/t/msp/routing", &[("rules", rules), ("action", "preview")])
            .await;
        page.expect(200);
        assert!(page.contains("Preview over 2 users"), "{}", page.body);
        assert!(page.contains("ada@acme.example"), "{}", page.body);
        assert!(!page.contains("bob@other.example"), "{}", page.body);
        let stored = s.get("/tenants/msp/routing", &op).await.expect(200);
        assert_eq!(stored["rules"], json!([]), "{stored}");
        let page = c
            .post(
                "/console/t/msp/routing",
                &[("rules", rules), ("action", "save"), ("version", "0")],
            )
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert!(page.location().starts_with("/console/t/msp/jobs/"), "{}", page.location());
        crate::support::eventually(|| async {
            let users = s.get("/tenants/acme/users", &op).await.expect(200);
            (users.to_string().contains("ada@acme.example")).then_some(())
        })
        .await
        .expect("ada is routed to acme");
        // Her page says where she was copied, and by which rule.
        let page = c.get(&format!("/console/t/msp/users/{ada}")).await;
        assert!(page.contains("Copies in child tenants"), "{}", page.body);
        assert!(page.contains("acme-staff"), "{}", page.body);
        // The operator-only page is not a tenant admin's.
        s.tenant_admin(&op, "msp", "mo@msp.test").await;
        let mut ta = Console::new(s);
        assert_eq!(ta.login("mo@msp.test", PASSWORD, "msp").await.status, 303);
        assert_eq!(ta.get("/console/t/msp/routing").await.status, 403);

        // A target's mapping: previewed on real users, then saved.
        let target = s
            .api(
                "POST",
                "/tenants/acme/targets",
                Some(&op),
                Some(json!({"name": "app", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
            )
            .await
            .expect(201)["target"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/console/t/acme/delivery/{target}/mapping");
        c.get(&path).await.expect(200);
        let bad = r#"{"users": {"attributes": [{"target": "active", "value": "maybe"}]}}"#;
        let page = c.post(&path, &[("mapping", bad), ("action", "preview")]).await;
        assert_eq!(page.status, 422, "{}", page.body);
        assert!(page.contains("id=\"mapping-error\""), "{}", page.body);
        let mapping = r#"{"users": {"attributes": [{"target": "login", "source": "userName", "transform": "upper"}]}}"#;
        let page = c.post(&path, &[("mapping", mapping), ("action", "preview")]).await;
        page.expect(200);
        assert!(page.contains("ADA@ACME.EXAMPLE"), "{}", page.body);
        assert_eq!(
            s.get(&format!("/tenants/acme/targets/{target}/mapping"), &op)
                .await
                .expect(200)["mapping"],
            Value::Null
        );
        let page = c
            .post(&path, &[("mapping", mapping), ("action", "save"), ("version", "0")])
            .await;
        assert_eq!(page.status, 303, "{}", page.body);
        let stored = s
            .get(&format!("/tenants/acme/targets/{target}/mapping"), &op)
            .await
            .expect(200);
        assert_eq!(stored["version"], 1, "{stored}");
        // A stale version saves nothing.
        let page = c
            .post(&path, &[("mapping", "null"), ("action", "save"), ("version", "0")])
            .await;
        assert_eq!(page.status, 412, "{}", page.body);
        assert_eq!(
            s.get(&format!("/tenants/acme/targets/{target}/mapping"), &op)
                .await
                .expect(200)["version"],
            1
        );
    })
    .await;
}

#[tokio::test]
async fn the_tenant_list_pages_searches_and_shows_each_tenants_activity() {
    each_backend(async |s| {
        let op = s.operator().await;
        let acme = s.tenant(&op, "acme").await;
        s.scim_user("acme", &acme, "ada@acme.test").await;
        s.scim_user("acme", &acme, "bob@acme.test").await;
        s.api(
            "POST",
            "/tenants/acme/targets",
            Some(&op),
            Some(json!({"name": "app", "kind": "webhook", "url": "http://127.0.0.1:9/hook"})),
        )
        .await
        .expect(201);
        s.tenant(&op, "msp").await;
        s.api(
            "PUT",
            "/tenants/msp/kind",
            Some(&op),
            Some(json!({"kind": "super"})),
        )
        .await
        .expect(200);
        s.api(
            "PUT",
            "/tenants/msp/children/acme",
            Some(&op),
            Some(json!({})),
        )
        .await
        .expect(200);
        for i in 0..27 {
            s.api(
                "POST",
                "/tenants",
                Some(&op),
                Some(json!({"slug": format!("t{i:02}"), "name": format!("Customer {i:02}")})),
            )
            .await
            .expect(201);
        }
        let mut c = Console::operator(s).await;
        // 27 + acme + msp + the first start's "default": 30, 25 a page.
        let page = c.get("/console/tenants").await;
        assert!(page.contains("Tenants 1–25 of 30"), "{}", page.body);
        assert!(
            page.contains("href=\"/console/tenants?page=2\""),
            "{}",
            page.body
        );
        let second = c.get("/console/tenants?page=2").await;
        assert!(second.contains("Tenants 26–30 of 30"), "{}", second.body);
        assert!(second.contains("href=\"/console/tenants?page=1\""));

        // Search by slug or name, any case; acme's row tells its story.
        let page = c.get("/console/tenants?q=ACM").await;
        assert!(page.contains("Tenants 1–1 of 1"), "{}", page.body);
        let row = &page.body[page.body.find("<tbody>").unwrap()..];
        assert!(row.contains("<td>2</td>"), "two users: {row}");
        assert!(
            row.contains("child<br><span class=\"muted\">of msp</span>"),
            "{row}"
        );
        assert!(row.contains(">healthy<"), "{row}");
        assert!(!row.contains("<td>—</td>"), "a last SCIM request: {row}");
        let page = c.get("/console/tenants?q=customer%2007").await;
        assert!(page.contains("Tenants 1–1 of 1"), "{}", page.body);
        assert!(page.contains("/console/t/t07"));
        // LIKE wildcards are literal.
        let page = c.get("/console/tenants?q=%25").await;
        assert!(page.contains("No tenants match."), "{}", page.body);
        let page = c.get("/console/tenants?q=msp").await;
        assert!(
            page.contains(">super<") || page.contains("<td>super"),
            "{}",
            page.body
        );
    })
    .await;
}
