//! The browser harness: chromedriver as a child process, one headless
//! Chromium session per scenario (fantoccini over plain HTTP), small
//! helpers that act like a user (go to a page, fill a field, click a
//! button, wait for text), and the checks made on every page a scenario
//! visits: no error in the browser console, no axe-core (WCAG 2 A/AA)
//! violation at desktop and phone widths, and screenshots of both.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, TimeoutConfiguration, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};
use testkit::TestDb;

use crate::support::Server;

/// How long any wait for the page may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a recompute job may take to show `done`.
pub const JOB_WAIT: Duration = Duration::from_secs(30);

/// How long one scenario may take, browser start to finish (nextest's
/// `slow-timeout` in `.config/nextest.toml` is the backstop).
pub const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

/// How long chromedriver may take to answer `/status`, and a browser
/// session to open.
const STARTUP: Duration = Duration::from_secs(30);

/// axe-core, injected into pages to audit them (MPL-2.0, see its header).
const AXE: &str = include_str!("axe-4.14.1.min.js");

/// The pages docs/console.md shows: only these are blessed into
/// `docs/console/`, so the repository keeps no image the guide does not use.
const GUIDE_PAGES: &[&str] = &[
    "login",
    "tenants",
    "connection",
    "connection-new-token",
    "setup",
    "user",
    "roles-preview",
    "job",
    "audit",
    "target-dead-letter",
    "safety",
    "routing",
];

/// The rule tags every page is audited against.
const AXE_TAGS: &[&str] = &["wcag2a", "wcag2aa"];

/// The two window widths every page is checked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 1280 x 900.
    Desktop,
    /// 390 x 844 (a phone).
    Phone,
}

impl Width {
    fn size(self) -> (u32, u32) {
        match self {
            Width::Desktop => (1280, 900),
            Width::Phone => (390, 844),
        }
    }

    fn px(self) -> u32 {
        self.size().0
    }
}

/// Runs one scenario: a fresh application on SQLite and a fresh browser,
/// bounded by [`SCENARIO_LIMIT`]. The browser is closed whatever happens;
/// findings collected along the way (accessibility violations, known
/// console bugs) fail the test at the end, all of them at once.
pub async fn scenario(name: &'static str, body: impl AsyncFnOnce(&mut Browser, &Server)) {
    scenario_with(name, |_| {}, body).await;
}

/// [`scenario`] on an application whose settings `adjust` changes (the
/// delivery worker on, for instance).
pub async fn scenario_with(
    name: &'static str,
    adjust: impl FnOnce(&mut scimgate::Config),
    body: impl AsyncFnOnce(&mut Browser, &Server),
) {
    let server = Server::start_with(TestDb::Sqlite, adjust).await;
    let mut browser = Browser::start(&server.origin, name).await;
    let outcome = tokio::time::timeout(
        SCENARIO_LIMIT,
        AssertUnwindSafe(body(&mut browser, &server)).catch_unwind(),
    )
    .await;
    let leftovers = browser.finish().await;
    match outcome {
        Err(_) => {
            panic!("scenario {name:?} did not finish within {SCENARIO_LIMIT:?}{leftovers}");
        }
        Ok(Err(panic)) => {
            if !leftovers.is_empty() {
                eprintln!("scenario {name:?} also found:{leftovers}");
            }
            std::panic::resume_unwind(panic);
        }
        Ok(Ok(())) => {
            assert!(leftovers.is_empty(), "scenario {name:?}:{leftovers}");
            server.stop().await;
        }
    }
}

/// A chromedriver child process on a free 127.0.0.1 port. Dropping it
/// asks chromedriver to shut down (which quits every browser it started:
/// killing chromedriver alone leaves Chromium running) and kills it if it
/// does not exit.
struct Driver {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
    /// chromedriver's and Chromium's `TMPDIR` (the browser profile and
    /// Chromium's socket directories), removed after they exit.
    _tmp: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port on 127.0.0.1")
            .port();
        let tmp = tempfile::Builder::new()
            .prefix("scimgate-browser-")
            .tempdir()
            .expect("a temporary directory for the browser");
        let log = tempfile::NamedTempFile::new_in(tmp.path()).expect("a log file for chromedriver");
        let output = || Stdio::from(log.reopen().expect("chromedriver log"));
        let child = match Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot start `chromedriver` ({e}): the console's browser tests need Chromium \
                 and its WebDriver on PATH; on Debian `apt-get install chromium chromium-driver` \
                 (scripts/test installs them)"
            ),
        };
        let mut driver = Driver {
            child,
            port,
            log,
            _tmp: tmp,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}):\n{}",
                    driver.log_text()
                );
            }
            if let Some(body) = http_get(port, "/status", Duration::from_secs(2))
                && body.contains("\"ready\":true")
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer GET /status on port {port} within {STARTUP:?}:\n{}",
                driver.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = http_get(self.port, "/shutdown", Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking `GET` to chromedriver (at start, and in `Drop`, where
/// nothing async can run): the body, or `None` when it does not answer.
fn http_get(port: u16, path: &str, limit: Duration) -> Option<String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, limit).ok()?;
    stream.set_read_timeout(Some(limit)).ok()?;
    stream.set_write_timeout(Some(limit)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    // chromedriver keeps the connection open despite `Connection: close`:
    // read until the body has its `Content-Length`.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|l| body.len() >= l) {
                return Some(body.to_owned());
            }
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// A chromedriver endpoint of the current session that fantoccini has no
/// method for: `POST /session/{id}/{path}` with a JSON body.
#[derive(Debug)]
struct SessionPost {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionPost {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// Something wrong that fails the scenario at its end (an axe violation),
/// as the failure message shows it.
#[derive(Debug)]
struct Finding {
    /// What found it.
    kind: &'static str,
    /// Where (page, width, address), if it matters.
    place: String,
    text: String,
}

/// A headless Chromium session on one application.
pub struct Browser {
    client: Client,
    origin: String,
    scenario: &'static str,
    width: Width,
    /// Shared with `&self` steps (the console check records known bugs).
    findings: std::sync::Mutex<Vec<Finding>>,
    // Last: dropped (and shut down) after the client.
    _driver: Driver,
}

impl Browser {
    /// Starts chromedriver and a browser session for the application at
    /// `origin`; `scenario` prefixes screenshot names.
    pub async fn start(origin: &str, scenario: &'static str) -> Browser {
        let driver = Driver::start().await;
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
            ]}),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let url = driver.url();
        let connect = builder.connect(&url);
        let client = match tokio::time::timeout(STARTUP, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "cannot open a Chromium session through chromedriver: {e}\n{}",
                driver.log_text()
            ),
            Err(_) => panic!(
                "no Chromium session within {STARTUP:?}:\n{}",
                driver.log_text()
            ),
        };
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set timeouts");
        let mut browser = Browser {
            client,
            origin: origin.to_owned(),
            scenario,
            width: Width::Desktop,
            findings: std::sync::Mutex::new(Vec::new()),
            _driver: driver,
        };
        browser.set_width(Width::Desktop).await;
        browser
    }

    /// Closes the session and stops chromedriver; returns what is left to
    /// report (console errors since the last check, findings), empty when
    /// all is well. Never panics.
    async fn finish(self) -> String {
        let mut report = String::new();
        match tokio::time::timeout(WAIT, self.console_errors(&[])).await {
            Ok(Ok(errors)) if !errors.is_empty() => {
                report.push_str(&format!(
                    "\n\nbrowser console errors at the end:\n{}",
                    errors.join("\n")
                ));
            }
            _ => {}
        }
        let findings =
            std::mem::take(&mut *self.findings.lock().unwrap_or_else(|e| e.into_inner()));
        if !findings.is_empty() {
            report.push_str(&format!("\n\n{} findings:\n", findings.len()));
            for f in &findings {
                let place = if f.place.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", f.place)
                };
                report.push_str(&format!("\n{}{place}:\n{}", f.kind, f.text));
            }
        }
        let _ = tokio::time::timeout(WAIT, self.client.clone().close()).await;
        report
    }

    // ---- waiting -------------------------------------------------------

    /// Polls `probe` every 100 ms until it answers `Some`, at most `limit`;
    /// panics naming `what` (and where the browser is) otherwise.
    async fn poll<T, F, Fut>(&self, what: &str, limit: Duration, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = probe().await {
                return found;
            }
            if Instant::now() >= deadline {
                let place = self.whereabouts().await;
                panic!("timed out after {limit:?} waiting for {what}\n{place}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where the browser is, for failure messages: the address and the
    /// start of the page's text.
    async fn whereabouts(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(no URL: {e})"));
        let text = self
            .client
            .execute(
                "return document.body ? document.body.innerText : ''",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let text: String = text.chars().take(1500).collect();
        format!("at {url}; the page reads:\n{text}")
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns
    /// its value. Scripts from WebDriver are not subject to the page's
    /// content security policy.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| {
            let start: String = script.chars().take(300).collect();
            panic!("script failed: {e}\n{start}")
        })
    }

    /// Waits until the page is loaded and htmx is done swapping.
    pub async fn settle(&self) {
        let script = "return document.readyState === 'complete' && \
             !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')";
        self.poll(
            "the page to settle (loaded, no htmx request or swap)",
            WAIT,
            || async move {
                let done = self.client.execute(script, vec![]).await.ok()?;
                (done == Value::Bool(true)).then_some(())
            },
        )
        .await;
        // Two frames, so layout and paint are done before a screenshot.
        let _ = self
            .client
            .execute_async(
                "const done = arguments[0]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                vec![],
            )
            .await;
    }

    /// The visible text of each element matching `css`.
    async fn texts(&self, css: &str) -> Option<Vec<String>> {
        let found = self
            .client
            .execute(
                "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText);",
                vec![json!(css)],
            )
            .await
            .ok()?;
        serde_json::from_value(found).ok()
    }

    /// The visible text of every element matching `css`, now.
    pub async fn all_texts(&self, css: &str) -> Vec<String> {
        self.texts(css)
            .await
            .unwrap_or_else(|| panic!("cannot read the texts of {css:?}"))
    }

    /// The text of each body row of the table in the main content that
    /// has a column headed `header`.
    pub async fn table_rows(&self, header: &str) -> Vec<String> {
        let rows = self
            .js(
                "const tables = Array.from(document.querySelectorAll('#main table')).filter(t => \
                   Array.from(t.querySelectorAll('thead th')).some(th => th.innerText.trim() === arguments[0])); \
                 if (tables.length !== 1) return {tables: tables.length}; \
                 return Array.from(tables[0].querySelectorAll('tbody tr')).map(r => r.innerText);",
                vec![json!(header)],
            )
            .await;
        serde_json::from_value(rows.clone())
            .unwrap_or_else(|_| panic!("no single table with a column {header:?}: {rows}"))
    }

    /// Waits until the JavaScript expression `condition` is true.
    pub async fn wait_until(&self, what: &str, condition: &str) {
        let script = format!("return Boolean({condition});");
        let script = script.as_str();
        self.poll(what, WAIT, || async move {
            let value = self.client.execute(script, vec![]).await.ok()?;
            (value == Value::Bool(true)).then_some(())
        })
        .await;
    }

    /// Grants the page permission to read the clipboard, and reads it.
    pub async fn clipboard(&self) -> String {
        self.client
            .issue_cmd(SessionPost {
                path: "permissions",
                body: json!({"descriptor": {"name": "clipboard-read"}, "state": "granted"}),
            })
            .await
            .expect("grant clipboard-read");
        let text = self
            .client
            .execute_async(
                "const done = arguments[0]; \
                 navigator.clipboard.readText().then(done, e => done({error: String(e)}));",
                vec![],
            )
            .await
            .expect("read the clipboard");
        match text {
            Value::String(text) => text,
            other => panic!("cannot read the clipboard: {other}"),
        }
    }

    /// Waits until an element matching `css` is on the page; returns it.
    pub async fn wait_for(&self, css: &str) -> Element {
        self.poll(&format!("an element {css:?}"), WAIT, || async move {
            for element in self.client.find_all(Locator::Css(css)).await.ok()? {
                if element.is_displayed().await.unwrap_or(false) {
                    return Some(element);
                }
            }
            None
        })
        .await
    }

    /// Waits until an element matching `css` contains `needle` in its
    /// visible text; returns that text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.wait_for_text_within(css, needle, WAIT).await
    }

    /// [`Browser::wait_for_text`] with its own bound.
    pub async fn wait_for_text_within(&self, css: &str, needle: &str, limit: Duration) -> String {
        let what = format!("{css:?} to contain {needle:?}");
        self.poll(&what, limit, || async move {
            self.texts(css)
                .await?
                .into_iter()
                .find(|t| t.contains(needle))
        })
        .await
    }

    /// Waits for the page whose `<h1>` reads `heading`, settled.
    pub async fn wait_for_heading(&self, heading: &str) {
        let what = format!("the page headed {heading:?}");
        self.poll(&what, WAIT, || async move {
            let texts = self.texts("h1").await?;
            texts.iter().any(|t| t.trim() == heading).then_some(())
        })
        .await;
        self.settle().await;
    }

    /// Waits until the address bar shows `path` (whatever the query).
    pub async fn wait_for_path(&self, path: &str) {
        let what = format!("the address {path:?}");
        self.poll(&what, WAIT, || async move {
            let url = self.client.current_url().await.ok()?;
            (url.path() == path).then_some(())
        })
        .await;
    }

    /// The path and query in the address bar.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.texts(css)
            .await
            .and_then(|t| t.into_iter().next())
            .unwrap_or_else(|| panic!("no element {css:?} on the page"))
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    // ---- acting ----------------------------------------------------------
    // Every action first checks that the previous steps left no error in
    // the browser console (see `expect_console_clean`).

    /// Loads `path` (on the application's origin) as a full page load.
    pub async fn goto(&self, path: &str) {
        self.expect_console_clean(&[]).await;
        let url = format!("{}{path}", self.origin);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot load {url}: {e}"));
        self.settle().await;
    }

    /// Types `text` into the field with id `id`, replacing its value.
    pub async fn fill(&self, id: &str, text: &str) {
        self.expect_console_clean(&[]).await;
        let field = self.wait_for(&format!("#{id}")).await;
        field.clear().await.expect("clear the field");
        if !text.is_empty() {
            field.send_keys(text).await.expect("type into the field");
        }
    }

    /// Chooses the option with `value` in the select with id `id`.
    pub async fn select(&self, id: &str, value: &str) {
        self.expect_console_clean(&[]).await;
        let select = self.wait_for(&format!("#{id}")).await;
        select
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("no option {value:?} in #{id}: {e}"));
    }

    /// Ticks the checkbox matching `css` (clicking it, as a user would).
    pub async fn tick(&self, css: &str) {
        self.expect_console_clean(&[]).await;
        let checkbox = self.wait_for(css).await;
        if !checkbox.is_selected().await.expect("checkbox state") {
            checkbox.click().await.expect("tick the checkbox");
        }
        assert!(
            checkbox.is_selected().await.expect("checkbox state"),
            "{css:?} did not get ticked"
        );
    }

    /// Clicks the one visible element that `locator` (described as
    /// `what`) finds; retries while the page is being swapped.
    async fn click_one(&self, what: &str, locator: Locator<'_>) {
        self.expect_console_clean(&[]).await;
        let found = self
            .poll(
                &format!("exactly one visible {what}"),
                WAIT,
                || async move {
                    let mut visible = Vec::new();
                    for element in self.client.find_all(locator).await.ok()? {
                        if element.is_displayed().await.ok()? {
                            visible.push(element);
                        }
                    }
                    assert!(
                        visible.len() < 2,
                        "{} visible elements are {what}",
                        visible.len()
                    );
                    visible.pop()
                },
            )
            .await;
        match found.click().await {
            Ok(()) => {}
            // Swapped away between finding and clicking: once more.
            Err(e) if e.to_string().contains("stale") => {
                let again = self.client.find(locator).await.expect("find again");
                again
                    .click()
                    .await
                    .unwrap_or_else(|e| panic!("click {what}: {e}"));
            }
            Err(e) => panic!("click {what}: {e}"),
        }
    }

    /// Clicks the button whose text is `text`.
    pub async fn click_button(&self, text: &str) {
        let xpath = format!("//button[normalize-space(.)={}]", xpath_literal(text));
        self.click_one(&format!("button {text:?}"), Locator::XPath(&xpath))
            .await;
    }

    /// Clicks the link whose text is `text`.
    pub async fn click_link(&self, text: &str) {
        let xpath = format!("//a[normalize-space(.)={}]", xpath_literal(text));
        self.click_one(&format!("link {text:?}"), Locator::XPath(&xpath))
            .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.click_one(&format!("element {css:?}"), Locator::Css(css))
            .await;
    }

    /// Follows a link of the side navigation (htmx swaps the page) and
    /// waits for the new page, headed `heading`.
    pub async fn navigate(&self, entry: &str, heading: &str) {
        let shown = self.navigate_to(entry).await;
        assert_eq!(shown, heading, "the page {entry:?} leads to");
    }

    /// Follows a link of the side navigation; waits until the address is
    /// the link's, the navigation marks it current and the page settled;
    /// returns the new page's heading.
    pub async fn navigate_to(&self, entry: &str) -> String {
        let css = "nav.side a";
        let links = self
            .js(
                "return Array.from(document.querySelectorAll(arguments[0])) \
                   .filter(a => a.innerText.trim() === arguments[1]).map(a => a.pathname);",
                vec![json!(css), json!(entry)],
            )
            .await;
        let href = match links.as_array().map(Vec::as_slice) {
            Some([Value::String(href)]) => href.clone(),
            _ => panic!("no single navigation entry {entry:?}: {links}"),
        };
        let xpath = format!(
            "//nav[@aria-label='Sections']//a[normalize-space(.)={}]",
            xpath_literal(entry)
        );
        self.click_one(
            &format!("navigation entry {entry:?}"),
            Locator::XPath(&xpath),
        )
        .await;
        self.wait_for_path(&href).await;
        let condition = format!(
            "(() => {{ const a = document.querySelector(\"nav.side a[aria-current='page']\"); \
               return a && a.innerText.trim() === {}; }})()",
            json!(entry)
        );
        self.wait_until(&format!("{entry:?} marked as the current page"), &condition)
            .await;
        self.settle().await;
        self.text("h1").await.trim().to_owned()
    }

    /// The entries of the side navigation: (text, path).
    pub async fn navigation(&self) -> Vec<(String, String)> {
        let entries = self
            .js(
                "return Array.from(document.querySelectorAll('nav.side a')) \
                   .map(a => [a.innerText.trim(), a.pathname]);",
                vec![],
            )
            .await;
        serde_json::from_value(entries).expect("navigation entries")
    }

    /// Presses keys on whatever has the focus, each one down and up.
    pub async fn press(&self, keys: &[Key]) {
        self.expect_console_clean(&[]).await;
        let mut actions = KeyActions::new("keyboard".to_owned());
        for key in keys {
            actions = actions
                .then(KeyAction::Down {
                    value: (*key).into(),
                })
                .then(KeyAction::Up {
                    value: (*key).into(),
                });
        }
        self.client
            .perform_actions(actions)
            .await
            .expect("press keys");
        self.client.release_actions().await.expect("release keys");
    }

    /// Logs in through the form at `/console/login` and waits for the
    /// start page (`/console/tenants` for operators, the tenant's overview
    /// for its admins).
    pub async fn log_in(&self, email: &str, password: &str, tenant: Option<&str>) {
        self.goto("/console/login").await;
        self.wait_for_heading("scimgate console").await;
        self.fill("email", email).await;
        self.fill("password", password).await;
        self.fill("tenant", tenant.unwrap_or_default()).await;
        self.click_button("Log in").await;
        match tenant {
            None => {
                self.wait_for_path("/console/tenants").await;
                self.wait_for_heading("Tenants").await;
            }
            Some(slug) => {
                self.wait_for_path(&format!("/console/t/{slug}")).await;
                self.wait_for("nav.side a[aria-current='page']").await;
                self.settle().await;
            }
        }
    }

    // ---- checking --------------------------------------------------------

    /// The browser console's errors (level SEVERE) since the last read,
    /// less those containing one of `expected`.
    async fn console_errors(&self, expected: &[&str]) -> Result<Vec<String>, CmdError> {
        let entries = self
            .client
            .issue_cmd(SessionPost {
                path: "se/log",
                body: json!({"type": "browser"}),
            })
            .await?;
        let entries = entries.as_array().cloned().unwrap_or_default();
        let mut errors = Vec::new();
        for entry in entries.iter().filter(|e| e["level"] == "SEVERE") {
            let message = format!(
                "[{}] {}",
                entry["source"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or_default()
            );
            if expected.iter().any(|x| message.contains(x)) {
                continue;
            }
            errors.push(message);
        }
        Ok(errors)
    }

    /// Fails on any error in the browser console since the last check,
    /// except those containing one of `expected` (a step that loads a 404
    /// page on purpose declares `&["status of 404"]`).
    pub async fn expect_console_clean(&self, expected: &[&str]) {
        let errors = self
            .console_errors(expected)
            .await
            .expect("read the browser log");
        if !errors.is_empty() {
            let place = self.whereabouts().await;
            panic!(
                "the browser console shows errors:\n{}\n{place}",
                errors.join("\n")
            );
        }
    }

    /// Resizes the window so the page is `width` wide.
    pub async fn set_width(&mut self, width: Width) {
        let (w, h) = width.size();
        self.client
            .set_window_size(w, h)
            .await
            .expect("resize the window");
        let this = &*self;
        this.poll(
            &format!("the page to be {w} px wide"),
            WAIT,
            || async move {
                let inner = this
                    .client
                    .execute("return window.innerWidth", vec![])
                    .await
                    .ok()?;
                (inner == json!(w)).then_some(())
            },
        )
        .await;
        self.width = width;
        self.settle().await;
    }

    /// Saves a screenshot of the whole page as
    /// `<scenario>-<page>-<width>.png` (see [`screenshot_dir`]); with
    /// `guide`, a desktop one also goes to `docs/console/<page>.png` when
    /// `SCIMGATE_BLESS=1`.
    async fn screenshot(&self, page: &str, guide: bool) {
        let size = self
            .js(
                "const d = document.documentElement; \
                 return [Math.max(d.scrollWidth, window.innerWidth), Math.max(d.scrollHeight, window.innerHeight)];",
                vec![],
            )
            .await;
        let width = size[0].as_u64().unwrap_or(1280);
        let height = size[1].as_u64().unwrap_or(900).min(16_000);
        let shot = self
            .client
            .issue_cmd(SessionPost {
                path: "goog/cdp/execute",
                body: json!({"cmd": "Page.captureScreenshot", "params": {
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }}),
            })
            .await
            .expect("capture a screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot directory");
        let name = format!("{}-{page}-{}.png", self.scenario, self.width.px());
        std::fs::write(dir.join(&name), &png).expect("write the screenshot");
        if guide
            && GUIDE_PAGES.contains(&page)
            && self.width == Width::Desktop
            && std::env::var("SCIMGATE_BLESS").as_deref() == Ok("1")
        {
            let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
            std::fs::create_dir_all(&docs).expect("create docs/console");
            std::fs::write(docs.join(format!("{page}.png")), &png).expect("write the guide image");
        }
    }

    /// Runs axe-core on the page as it is now; violations are collected
    /// and fail the scenario at its end.
    async fn audit(&mut self, page: &str) {
        let loaded = self.js("return typeof window.axe", vec![]).await;
        if loaded != json!("object") {
            self.js(AXE, vec![]).await;
        }
        let script = "const [tags, done] = arguments; \
             axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']}) \
               .then(r => done({violations: r.violations.map(v => ({ \
                   id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl, \
                   nodes: v.nodes.map(n => ({target: n.target, html: n.html, summary: n.failureSummary})) \
               }))})) \
               .catch(e => done({error: String(e)}));";
        let result = self
            .client
            .execute_async(script, vec![json!(AXE_TAGS)])
            .await
            .expect("run axe");
        if let Some(error) = result.get("error") {
            panic!("axe failed on {page}: {error}");
        }
        let url = self.path().await;
        for v in result["violations"].as_array().cloned().unwrap_or_default() {
            let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
            let mut text = format!(
                "  {} ({}): {} <{}>\n  {} element(s), first:\n",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or("?"),
                v["helpUrl"].as_str().unwrap_or("?"),
                nodes.len(),
            );
            for n in nodes.iter().take(3) {
                let html: String = n["html"].as_str().unwrap_or("").chars().take(200).collect();
                let summary = n["summary"]
                    .as_str()
                    .unwrap_or("")
                    .replace('\n', "\n        ");
                text.push_str(&format!(
                    "    {}\n      {html}\n        {summary}\n",
                    n["target"]
                ));
            }
            self.findings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Finding {
                    kind: "accessibility (axe-core: wcag2a, wcag2aa)",
                    place: format!("{page} at {} px, {url}", self.width.px()),
                    text,
                });
        }
    }

    /// The checks for a page a scenario visits: no console error, then at
    /// 1280 px and at 390 px a screenshot and an axe audit; back to 1280.
    pub async fn inspect(&mut self, page: &str) {
        self.inspect_page(page, false).await;
    }

    /// [`Browser::inspect`] for a page the user guide shows (its desktop
    /// screenshot is blessed into `docs/console/` with `SCIMGATE_BLESS=1`).
    pub async fn inspect_for_guide(&mut self, page: &str) {
        self.inspect_page(page, true).await;
    }

    async fn inspect_page(&mut self, page: &str, guide: bool) {
        self.settle().await;
        self.expect_console_clean(&[]).await;
        for width in [Width::Desktop, Width::Phone] {
            self.set_width(width).await;
            self.screenshot(page, guide).await;
            self.audit(page).await;
        }
        self.set_width(Width::Desktop).await;
        self.expect_console_clean(&[]).await;
    }

    /// Loads the current address afresh (so the focus starts at the top)
    /// and presses Tab through the page: every visible link, button and
    /// form field (one per radio group) must get the focus, in page order.
    pub async fn expect_tab_reaches_everything(&self, page: &str) {
        let path = self.path().await;
        self.goto(&path).await;
        let candidates = self
            .js(
                "const visible = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; \
                 const all = []; const radios = new Map(); \
                 for (const e of document.querySelectorAll( \
                   'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), \
                    select:not([disabled]), textarea:not([disabled]), summary, \
                    [tabindex]:not([tabindex=\"-1\"])')) { \
                   if (!visible(e)) continue; \
                   if (e.type === 'radio' && e.name) { \
                     const group = (e.form ? e.form.action : '') + ' ' + e.name; \
                     if (radios.has(group)) { e.setAttribute('data-tab-probe', radios.get(group)); continue; } \
                     radios.set(group, String(all.length)); \
                   } \
                   e.setAttribute('data-tab-probe', String(all.length)); \
                   all.push(e); \
                 } \
                 window.__tabbed = []; \
                 document.addEventListener('focusin', ev => window.__tabbed.push( \
                   ev.target.getAttribute('data-tab-probe') ?? ('unexpected ' + ev.target.outerHTML.slice(0, 80))), true); \
                 return all.map(e => e.outerHTML.slice(0, 120));",
                vec![],
            )
            .await;
        let candidates: Vec<String> =
            serde_json::from_value(candidates).expect("focusable elements");
        let tabs = vec![Key::Tab; candidates.len()];
        self.press(&tabs).await;
        let tabbed: Vec<String> =
            serde_json::from_value(self.js("return window.__tabbed", vec![]).await)
                .expect("focus record");
        let expected: Vec<String> = (0..candidates.len()).map(|i| i.to_string()).collect();
        if tabbed != expected {
            let missed: Vec<&String> = candidates
                .iter()
                .enumerate()
                .filter(|(i, _)| !tabbed.contains(&i.to_string()))
                .map(|(_, c)| c)
                .collect();
            panic!(
                "on {page} ({path}), Tab does not visit every control in page order\n\
                 visited (indexes into the controls): {tabbed:?}\n\
                 never focused: {missed:#?}\ncontrols: {candidates:#?}"
            );
        }
    }
}

/// Where screenshots go: `$SCIMGATE_SCREENSHOT_DIR`, else
/// `console-screenshots/` in Cargo's temporary directory for tests.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("SCIMGATE_SCREENSHOT_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"),
    }
}

/// `text` as an XPath string literal.
fn xpath_literal(text: &str) -> String {
    if !text.contains('"') {
        format!("\"{text}\"")
    } else if !text.contains('\'') {
        format!("'{text}'")
    } else {
        panic!("cannot quote {text:?} in XPath 1.0")
    }
}
