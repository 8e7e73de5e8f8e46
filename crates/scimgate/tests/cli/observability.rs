//! Observability as deployed: the Prometheus configuration and alert rules
//! of `deploy/prometheus` and the Grafana dashboards of `deploy/grafana`.
//!
//! - `promtool` accepts the configuration and the rules, and the rules'
//!   unit tests pass (every alert fires in one case and stays quiet in
//!   another);
//! - the dashboards follow Grafana's dashboard-linter rules (data source
//!   variable, `$__rate_interval`, units, descriptions, job matcher) and
//!   the tenant dashboard filters every query by its `tenant` variable;
//! - every `scimgate_*` metric the dashboards and rules name is exported by
//!   a real `scimgate serve` after a workload that exercises it;
//! - a real Prometheus scraping that server evaluates every dashboard query
//!   and every rule without error, and finds data for each.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package
//! (`scripts/test` installs it); without them these tests fail, never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::receiver::Receiver;
use testkit::redis_server::RedisServer;

use crate::split::{Answer, Client, acme};
use crate::support::*;

/// The alerts the rules must define, exactly.
const ALERTS: [&str; 10] = [
    "ScimgateDown",
    "ScimgateHighErrorRate",
    "ScimgateHighLatency",
    "ScimgateOutboxLag",
    "ScimgateDeadLettersGrowing",
    "ScimgateTargetFailing",
    "ScimgateDatabaseDown",
    "ScimgateRedisDown",
    "ScimgateQuarantineRisk",
    "ScimgateDeletionsHeld",
];
/// The dashboards, relative to the repository.
const DASHBOARDS: [&str; 2] = [
    "deploy/grafana/dashboards/scimgate-fleet.json",
    "deploy/grafana/dashboards/scimgate-tenant.json",
];
const TENANT_DASHBOARD: &str = "deploy/grafana/dashboards/scimgate-tenant.json";
const RULES: &str = "deploy/prometheus/rules/scimgate.yml";
const RULE_TESTS: &str = "deploy/prometheus/tests/scimgate.test.yml";
const CONFIG: &str = "deploy/prometheus/prometheus.yml";
/// The data source every panel and target must use.
const DATASOURCE: &str = "${datasource}";
/// Units Grafana knows (a subset of the dashboard-linter's list: the ones a
/// scimgate panel may reasonably use).
const UNITS: [&str; 12] = [
    "none",
    "short",
    "percent",
    "percentunit",
    "s",
    "ms",
    "reqps",
    "ops",
    "bytes",
    "bool",
    "bool_yes_no",
    "dtdurations",
];
/// How long the workload's metrics, and Prometheus's answers, may take.
const SETTLE: Duration = Duration::from_secs(45);
/// The scrape job every rule and dashboard matches.
const JOB: &str = "scimgate";

// ---------------------------------------------------------------------------
// Files and tools

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A tool of Debian's `prometheus` package, found on `PATH`.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the observability tests need Debian's `prometheus` \
                 package (`apt-get install prometheus`; scripts/test installs it)"
            )
        })
}

/// Runs a tool to completion (bounded); (success, stdout + stderr).
fn run_tool(mut cmd: Command) -> (bool, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let described = format!("{cmd:?}");
    let mut proc = Proc::spawn(cmd);
    let status = proc.wait(COMMAND);
    (
        status.success(),
        format!("{described}: {status}\n{}", proc.output()),
    )
}

/// Copies the rules to `<dir>/rules/` and writes `<dir>/prometheus.yml`:
/// the deployed configuration with its rule path (a container path)
/// pointed at the copy.
fn config_in(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("scimgate.yml"), read(RULES)).expect("copy rules");
    let deployed = read(CONFIG);
    assert!(
        deployed.contains("  - /etc/prometheus/rules/*.yml"),
        "{CONFIG} must load /etc/prometheus/rules/*.yml"
    );
    let config = deployed.replace(
        "/etc/prometheus/rules/*.yml",
        &format!("{}/*.yml", rules.display()),
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).expect("write config");
    path
}

// ---------------------------------------------------------------------------
// The rules file, read line by line (its header states the format)

/// One rule of the rules file.
#[derive(Debug, Clone)]
struct Rule {
    alert: bool,
    name: String,
    expr: String,
    /// Its lines, for the checks of its other fields.
    block: String,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Every rule of `text`, in order.
fn parse_rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let head = trimmed
            .strip_prefix("- alert:")
            .map(|n| (true, n))
            .or_else(|| trimmed.strip_prefix("- record:").map(|n| (false, n)));
        let Some((alert, name)) = head else {
            i += 1;
            continue;
        };
        let depth = indent(line);
        let mut end = i + 1;
        while end < lines.len() && (lines[end].trim().is_empty() || indent(lines[end]) > depth) {
            end += 1;
        }
        let body = &lines[i + 1..end];
        let at = body
            .iter()
            .position(|l| l.trim_start().starts_with("expr:"))
            .unwrap_or_else(|| panic!("rule {name} has no expr"));
        let inline = body[at].trim_start()["expr:".len()..].trim();
        let expr = if inline == "|" || inline == "|-" {
            let expr_depth = indent(body[at]);
            body[at + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > expr_depth)
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        } else {
            assert!(
                !inline.starts_with(['"', '\'', '>']),
                "rule {name}: write expr as a `|` block or plain text"
            );
            inline.to_owned()
        };
        rules.push(Rule {
            alert,
            name: name.trim().to_owned(),
            expr,
            block: lines[i..end].join("\n"),
        });
        i = end;
    }
    rules
}

fn rules() -> Vec<Rule> {
    parse_rules(&read(RULES))
}

// ---------------------------------------------------------------------------
// PromQL, as far as these checks need it

/// Aggregations and keywords that are never metric names.
const KEYWORDS: [&str; 22] = [
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
];

/// The byte index just past the string literal opening at `start`.
fn skip_string(s: &[u8], start: usize) -> usize {
    let quote = s[start];
    let mut i = start + 1;
    while i < s.len() && s[i] != quote {
        if s[i] == b'\\' && quote != b'`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// The byte index of the bracket closing the one at `start`, skipping
/// string literals.
fn closing(s: &[u8], start: usize) -> usize {
    let (open, close) = match s[start] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        _ => (b'[', b']'),
    };
    let mut depth = 0;
    let mut i = start;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(s, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unbalanced {} in {:?}",
        open as char,
        String::from_utf8_lossy(s)
    );
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn next_non_space(s: &[u8], mut i: usize) -> Option<(usize, u8)> {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    s.get(i).map(|c| (i, *c))
}

/// One piece of a PromQL expression these checks look at.
#[derive(Debug)]
enum Token {
    /// A metric selector: the name and its matchers (`job="x",...`).
    Selector(String, String),
    /// A function call: its name and its arguments' text.
    Call(String, String),
}

/// The selectors and calls of `expr`, outermost first.
fn tokens(expr: &str) -> Vec<Token> {
    let s = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = skip_string(s, i);
        } else if c == b'$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if s.get(i) == Some(&b'{') {
                i = closing(s, i) + 1;
            }
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
        } else if c == b'[' {
            i = closing(s, i) + 1;
        } else if c.is_ascii_digit() || c == b'.' {
            // A number (with its exponent or duration unit).
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'.') {
                i += 1;
            }
        } else if c == b'{' {
            let end = closing(s, i);
            out.push(Token::Selector(String::new(), expr[i + 1..end].to_owned()));
            i = end + 1;
        } else if ident_start(c) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            let name = &expr[start..i];
            let next = next_non_space(s, i);
            if matches!(
                name,
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                // Its label list is no selector.
                if let Some((at, b'(')) = next {
                    i = closing(s, at) + 1;
                }
            } else if KEYWORDS.contains(&name) {
            } else if let Some((at, b'(')) = next {
                let end = closing(s, at);
                out.push(Token::Call(name.to_owned(), expr[at + 1..end].to_owned()));
                i = at + 1;
            } else if let Some((at, b'{')) = next {
                let end = closing(s, at);
                out.push(Token::Selector(
                    name.to_owned(),
                    expr[at + 1..end].to_owned(),
                ));
                i = end + 1;
            } else {
                out.push(Token::Selector(name.to_owned(), String::new()));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The `scimgate_*` metric names `expr` selects.
fn metric_names(expr: &str) -> BTreeSet<String> {
    tokens(expr)
        .into_iter()
        .filter_map(|t| match t {
            Token::Selector(name, _) if name.starts_with("scimgate_") => Some(name),
            _ => None,
        })
        .collect()
}

/// The expression without its outermost comparison: what an alert
/// compares with its threshold.
fn left_of_comparison(expr: &str) -> &str {
    let s = expr.as_bytes();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(s, i);
                continue;
            }
            b'(' | b'{' | b'[' => {
                i = closing(s, i) + 1;
                continue;
            }
            b'=' if s.get(i + 1) == Some(&b'=') => return expr[..i].trim(),
            b'!' if s.get(i + 1) == Some(&b'=') => return expr[..i].trim(),
            b'>' | b'<' => return expr[..i].trim(),
            _ => {}
        }
        i += 1;
    }
    expr.trim()
}

// ---------------------------------------------------------------------------
// Dashboards

fn dashboard(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}

/// Every panel, also those inside (collapsed) rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// One query of a dashboard.
struct Query {
    dashboard: &'static str,
    panel: String,
    description: String,
    expr: String,
}

fn dashboard_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for file in DASHBOARDS {
        let d = dashboard(file);
        for panel in panels(&d) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push(Query {
                    dashboard: file,
                    panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                    description: panel["description"].as_str().unwrap_or_default().to_owned(),
                    expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                });
            }
        }
    }
    out
}

/// A dashboard query as Grafana would send it for `tenant`.
fn substitute(expr: &str, tenant: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("${tenant}", tenant)
        .replace("$tenant", tenant)
        .replace("${job}", JOB)
        .replace("$job", JOB);
    assert!(!out.contains('$'), "a variable is left in {out:?}");
    out
}

fn variable<'a>(dashboard: &'a Value, name: &str) -> Option<&'a Value> {
    dashboard["templating"]["list"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// The problems of one dashboard under the linter's rules.
fn lint(file: &str, d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut problem = |p: String| problems.push(format!("{file}: {p}"));
    for key in ["uid", "title", "description"] {
        if d[key].as_str().is_none_or(str::is_empty) {
            problem(format!("no {key}"));
        }
    }
    if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problem(format!(
            "schemaVersion {} is not recent",
            d["schemaVersion"]
        ));
    }
    if d["editable"] != false {
        problem("editable: provisioned dashboards are changed in the repository".into());
    }
    let datasource_var = variable(d, "datasource");
    match datasource_var {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {
            if v["label"] != "Data source" {
                problem(format!(
                    "the datasource variable is labelled {}",
                    v["label"]
                ));
            }
        }
        other => problem(format!(
            "no `datasource` variable of type datasource querying prometheus: {other:?}"
        )),
    }
    match variable(d, "job") {
        Some(v) => {
            if v["type"] != "query"
                || v["datasource"]["uid"] != DATASOURCE
                || v["multi"] != true
                || v["includeAll"] != true
                || v["allValue"] != ".+"
                || v["refresh"] != 2
                || v["label"] != "Job"
            {
                problem(format!(
                    "the job variable breaks the linter's template-job-rule: {v}"
                ));
            }
        }
        None => problem("no `job` variable".into()),
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" && v["datasource"]["uid"] != DATASOURCE {
            problem(format!("variable {} does not use {DATASOURCE}", v["name"]));
        }
    }
    let mut ids = BTreeSet::new();
    for panel in panels(d) {
        let title = panel["title"].as_str().unwrap_or_default();
        let at = format!("panel {title:?}");
        if title.is_empty() {
            problem("a panel has no title".into());
        }
        if !ids.insert(panel["id"].to_string()) {
            problem(format!("{at}: id {} is not unique", panel["id"]));
        }
        let kind = panel["type"].as_str().unwrap_or_default();
        if !["timeseries", "stat", "table"].contains(&kind) {
            problem(format!(
                "{at}: type {kind:?} (use timeseries, stat or table)"
            ));
        }
        if panel["description"]
            .as_str()
            .is_none_or(|s| s.trim().is_empty())
        {
            problem(format!("{at}: no description"));
        }
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default();
        if !UNITS.contains(&unit) {
            problem(format!(
                "{at}: unit {unit:?} is missing or not one of {UNITS:?}"
            ));
        }
        if panel["datasource"] != json!({"type": "prometheus", "uid": DATASOURCE}) {
            problem(format!(
                "{at}: datasource {} is not the variable",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if targets.is_empty() {
            problem(format!("{at}: no targets"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            if target["datasource"] != json!({"type": "prometheus", "uid": DATASOURCE}) {
                problem(format!(
                    "{at}: target {expr:?} has datasource {}",
                    target["datasource"]
                ));
            }
            if !ref_ids.insert(target["refId"].to_string()) {
                problem(format!("{at}: refId {} twice", target["refId"]));
            }
            if expr.trim().is_empty() {
                problem(format!("{at}: a target has no expr"));
                continue;
            }
            for token in tokens(expr) {
                match token {
                    Token::Call(name, args)
                        if ["rate", "irate", "increase"].contains(&name.as_str()) =>
                    {
                        if !args.contains("[$__rate_interval]") {
                            problem(format!(
                                "{at}: {name}() without $__rate_interval in {expr:?}"
                            ));
                        }
                    }
                    Token::Selector(name, matchers) => {
                        if !matchers.contains("job=~\"$job\"") {
                            problem(format!(
                                "{at}: {name} has no job=~\"$job\" matcher in {expr:?}"
                            ));
                        }
                    }
                    Token::Call(..) => {}
                }
            }
            if expr.contains("$__interval") || expr.contains("$__range") {
                problem(format!("{at}: use $__rate_interval in {expr:?}"));
            }
            for range in expr.split('[').skip(1) {
                if !range.starts_with("$__rate_interval]") {
                    problem(format!(
                        "{at}: a range other than [$__rate_interval] in {expr:?}"
                    ));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// The workload

/// `scimgate serve` with Redis and a webhook receiver, after a workload
/// that makes every metric appear.
struct Deployment {
    server: Server,
    receiver: Receiver,
    client: Client,
    /// The `tenant` label value of the tenant the workload used.
    tenant: String,
    _redis: RedisServer,
    _sandbox: Sandbox,
}

/// The metrics text a server exports.
struct Exposition {
    /// Family name -> type, from the `# TYPE` lines.
    families: BTreeMap<String, String>,
    /// Names of the samples present.
    samples: BTreeSet<String>,
    text: String,
}

impl Exposition {
    fn parse(text: String) -> Exposition {
        let mut families = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    families.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                samples.insert(line[..end].to_owned());
            }
        }
        Exposition {
            families,
            samples,
            text,
        }
    }

    /// Whether a name a query selects has samples (a histogram's
    /// `_bucket`, `_sum` and `_count` belong to its family).
    fn exports(&self, name: &str) -> bool {
        if self.samples.contains(name) {
            return true;
        }
        let histogram = |family: &str| {
            self.families
                .get(family)
                .is_some_and(|t| t == "histogram" || t == "summary")
                && self.samples.contains(&format!("{family}_count"))
        };
        histogram(name)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix).is_some_and(histogram))
    }
}

fn expect_status(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
}

impl Deployment {
    fn start() -> Deployment {
        let redis = RedisServer::start();
        let sandbox = Sandbox::new();
        let client = Client::new();
        let receiver = client.rt.block_on(Receiver::start());
        let mut cmd = sandbox.cmd(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.env("SCIMGATE_REDIS_URL", redis.url())
            .env("SCIMGATE_DELIVERY_ALLOW_PRIVATE_TARGETS", "true")
            .env("SCIMGATE_DELIVERY_RETRY_SCHEDULE", "1s,1s,1s")
            .env("SCIMGATE_AUTH_POLL_INTERVAL_SECS", "1");
        let server = Server::start(cmd);
        Deployment {
            server,
            receiver,
            client,
            tenant: "acme".to_owned(),
            _redis: redis,
            _sandbox: sandbox,
        }
    }

    fn base(&self) -> &str {
        &self.server.listen_url
    }

    /// Deliveries, role changes of every kind, a job, SCIM requests of
    /// every resource, failures of several causes.
    fn workload(&self) {
        let banner = self
            .server
            .banner()
            .unwrap_or_else(|| panic!("no first-start banner\n{}", self.server.proc.output()));
        let base = self.base().to_owned();
        let c = &self.client;
        let (jwt, token, _) = acme(c, &base, &banner);
        let admin = format!("{base}/admin/v1/tenants/acme");
        let scim = format!("{base}/tenants/acme/scim/v2");

        // A webhook target whose first two deliveries fail: retries, then
        // deliveries.
        let target = c.call(
            "POST",
            &format!("{admin}/targets"),
            Some(&jwt),
            Some(&json!({"name": "app", "kind": "webhook", "url": self.receiver.url()})),
        );
        expect_status(&target, 201, "create a target");
        self.receiver
            .set_secret(target.body["secret"].as_str().expect("target secret"));
        self.receiver.fail_next(2, 503);

        let mut ids = Vec::new();
        for name in ["grace@example.test", "linus@example.test"] {
            let created = c.call(
                "POST",
                &format!("{scim}/Users"),
                Some(&token),
                Some(&user(name)),
            );
            expect_status(&created, 201, "create a user");
            ids.push(created.body["id"].as_str().expect("id").to_owned());
        }
        // A policy change (every user gets the default role), then a
        // membership that maps to another role (a sync).
        let policy = c.call(
            "PUT",
            &format!("{admin}/roles"),
            Some(&jwt),
            Some(&json!({
                "roles": [{"name": "viewer"}, {"name": "admin"}],
                "defaultRole": "viewer",
                "mappings": [{"group": {"displayName": "Admins"}, "role": "admin", "priority": 10}],
            })),
        );
        expect_status(&policy, 200, "set the role policy");
        let group = c.call(
            "POST",
            &format!("{scim}/Groups"),
            Some(&token),
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Admins",
                "members": [{"value": ids[0]}],
            })),
        );
        expect_status(&group, 201, "create a group");
        // A lock and an unlock.
        let lock = format!("{admin}/users/{}/lock", ids[1]);
        let locked = c.call(
            "PUT",
            &lock,
            Some(&jwt),
            Some(&json!({"roles": ["admin"], "reason": "observability test"})),
        );
        expect_status(&locked, 200, "lock a user");
        let unlocked = c.call("DELETE", &lock, Some(&jwt), None);
        assert!(
            unlocked.status < 300,
            "unlock: {} {}",
            unlocked.status,
            unlocked.body
        );

        // Reads of every kind, and failures: a bad filter, a duplicate, a
        // bad token.
        for path in [
            "Users?count=5",
            "Groups",
            "ServiceProviderConfig",
            "Schemas",
            "ResourceTypes",
        ] {
            let read = c.get(&format!("{scim}/{path}"), Some(&token));
            expect_status(&read, 200, path);
        }
        let bad_filter = c.get(&format!("{scim}/Users?filter=userName%20eq"), Some(&token));
        expect_status(&bad_filter, 400, "a bad filter");
        let duplicate = c.call(
            "POST",
            &format!("{scim}/Users"),
            Some(&token),
            Some(&user("grace@example.test")),
        );
        expect_status(&duplicate, 409, "a duplicate userName");
        let bad_token = c.get(&format!("{scim}/Users"), Some("not-a-token"));
        expect_status(&bad_token, 401, "a bad token");
        // /Me and /Bulk, whatever this server answers them.
        c.get(&format!("{scim}/Me"), Some(&token));
        c.call(
            "POST",
            &format!("{scim}/Bulk"),
            Some(&token),
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b1",
                                "data": user("ada@example.test")}],
            })),
        );

        let delivered = eventually(SETTLE, || self.receiver.count() >= 3);
        assert!(
            delivered,
            "the receiver got {} requests\n{}",
            self.receiver.count(),
            self.server.proc.output()
        );
    }

    fn scrape(&self) -> Exposition {
        let answer = self.client.get(&format!("{}/metrics", self.base()), None);
        assert_eq!(answer.status, 200, "/metrics: {}", answer.body);
        Exposition::parse(answer.body.as_str().unwrap_or_default().to_owned())
    }

    /// Waits (bounded) until every name is exported; the last scrape and
    /// the names still missing.
    fn wait_for_metrics(&self, names: &BTreeSet<String>) -> (Exposition, Vec<String>) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let exposition = self.scrape();
            let missing: Vec<String> = names
                .iter()
                .filter(|n| !exposition.exports(n))
                .cloned()
                .collect();
            if missing.is_empty() || Instant::now() >= deadline {
                return (exposition, missing);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Every `scimgate_*` name the dashboards and rules select, with where.
fn referenced_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for q in dashboard_queries() {
        for name in metric_names(&q.expr) {
            names
                .entry(name)
                .or_default()
                .insert(format!("{} ({})", q.dashboard, q.panel));
        }
    }
    for rule in rules() {
        for name in metric_names(&rule.expr) {
            names
                .entry(name)
                .or_default()
                .insert(format!("{RULES} ({})", rule.name));
        }
    }
    names
}

// ---------------------------------------------------------------------------
// A Prometheus on loopback

struct Prometheus {
    proc: Proc,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` (host:port) every second, with the rules loaded.
    fn start(target: &str) -> Prometheus {
        let binary = tool("prometheus");
        let dir = tempfile::tempdir().expect("temp dir");
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).expect("rules dir");
        std::fs::write(rules.join("scimgate.yml"), read(RULES)).expect("copy rules");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}/*.yml\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let prometheus = Prometheus {
            proc: Proc::spawn(cmd),
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = eventually(SETTLE, || {
            let client = http();
            client
                .block_on(async { reqwest::get(format!("{}/-/ready", prometheus.url)).await })
                .is_ok_and(|r| r.status().is_success())
        });
        assert!(
            ready,
            "prometheus is not ready\n{}",
            prometheus.proc.output()
        );
        prometheus
    }

    /// An instant query: its result, or why it failed.
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let reply = http().get(
            &format!("{}/api/v1/query?query={}", self.url, percent_encode(promql)),
            None,
        );
        let body: Value = serde_json::from_str(&reply.text)
            .map_err(|e| format!("HTTP {}: not JSON ({e}): {}", reply.status, reply.text))?;
        if reply.status != 200 || body["status"] != "success" {
            return Err(format!("HTTP {}: {body}", reply.status));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The rules as Prometheus loaded them.
    fn rules(&self) -> Vec<Value> {
        let reply = http().get(&format!("{}/api/v1/rules", self.url), None);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.json()["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The tests

#[test]
fn promtool_accepts_the_config_and_rules_and_their_unit_tests_pass() {
    let promtool = tool("promtool");
    let config = read(CONFIG);
    for expected in [
        "job_name: scimgate",
        "scrape_interval: 15s",
        "- gateway-1:8080",
        "- gateway-2:8080",
        "- admin:8080",
        "- worker-1:8080",
        "- worker-2:8080",
    ] {
        assert!(config.contains(expected), "{CONFIG} lacks {expected:?}");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = config_in(dir.path());
    for (args, what) in [
        (
            vec![
                "check".into(),
                "config".into(),
                config_path.display().to_string(),
            ],
            "check config",
        ),
        (
            vec![
                "check".into(),
                "rules".into(),
                repo().join(RULES).display().to_string(),
            ],
            "check rules",
        ),
        (
            vec![
                "test".into(),
                "rules".into(),
                repo().join(RULE_TESTS).display().to_string(),
            ],
            "test rules",
        ),
    ] {
        let mut cmd = Command::new(&promtool);
        cmd.args(&args);
        let (ok, output) = run_tool(cmd);
        assert!(ok, "promtool {what} failed:\n{output}");
        assert!(output.contains("SUCCESS"), "promtool {what}:\n{output}");
    }
    // check config read the rules through the rewritten path.
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "config"]).arg(&config_path);
    let (_, output) = run_tool(cmd);
    assert!(
        output.contains("rules found"),
        "the config loaded no rules:\n{output}"
    );

    // Exactly the alerts asked for, each with a `for`, a severity, a
    // summary, a description and its runbook section.
    let rules = rules();
    let alerts: BTreeSet<&str> = rules
        .iter()
        .filter(|r| r.alert)
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        alerts,
        ALERTS.into_iter().collect(),
        "the alerts of {RULES}"
    );
    for rule in rules.iter().filter(|r| r.alert) {
        let runbook = format!(
            "runbook_url: \"docs/operations.md#{}\"",
            rule.name.to_lowercase()
        );
        for field in [
            "for: ",
            "severity: ",
            "summary: ",
            "description: ",
            runbook.as_str(),
        ] {
            assert!(
                rule.block.contains(field),
                "alert {} lacks {field:?}:\n{}",
                rule.name,
                rule.block
            );
        }
    }
    for rule in rules.iter().filter(|r| !r.alert) {
        assert!(
            rule.name.contains(':'),
            "recording rule {} is not named level:metric:operations",
            rule.name
        );
    }

    // Every alert fires in one case of the unit tests and stays quiet in
    // another.
    let tests = read(RULE_TESTS);
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("alertname:") else {
            continue;
        };
        let name = name.trim().to_owned();
        let Some(expected) = lines[i + 1..].iter().find(|l| !l.is_empty()) else {
            continue;
        };
        if *expected == "exp_alerts: []" {
            quiet.insert(name);
        } else if *expected == "exp_alerts:" {
            let case: Vec<&str> = lines[i + 2..]
                .iter()
                .take_while(|l| !l.starts_with("- eval_time:") && !l.starts_with("- name:"))
                .map(|l| l.trim_start_matches("- "))
                .collect();
            assert!(
                [
                    "exp_labels:",
                    "severity:",
                    "exp_annotations:",
                    "summary:",
                    "description:",
                    "runbook_url:"
                ]
                .iter()
                .all(|field| case.iter().any(|l| l.starts_with(field))),
                "the firing case of {name} must give its labels and annotations"
            );
            fires.insert(name);
        }
    }
    for alert in ALERTS {
        assert!(fires.contains(alert), "no unit test where {alert} fires");
        assert!(
            quiet.contains(alert),
            "no unit test where {alert} stays quiet"
        );
    }
}

#[test]
fn dashboards_follow_the_linter_rules_and_are_provisioned() {
    let mut problems = Vec::new();
    for file in DASHBOARDS {
        problems.extend(lint(file, &dashboard(file)));
    }
    let uids: BTreeSet<String> = DASHBOARDS
        .iter()
        .map(|f| dashboard(f)["uid"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(uids.len(), DASHBOARDS.len(), "dashboard uids must differ");

    // The tenant dashboard: a tenant variable from the SCIM request
    // metric, and every query filtered by it unless its panel says it is
    // fleet-wide.
    let tenant = dashboard(TENANT_DASHBOARD);
    match variable(&tenant, "tenant") {
        Some(v) => {
            let query = v["query"]
                .as_str()
                .or(v["query"]["query"].as_str())
                .unwrap_or_default();
            if v["type"] != "query"
                || v["datasource"]["uid"] != DATASOURCE
                || !query.starts_with("label_values(scimgate_scim_requests_total")
                || !query.ends_with(", tenant)")
            {
                problems.push(format!("{TENANT_DASHBOARD}: the tenant variable: {v}"));
            }
        }
        None => problems.push(format!("{TENANT_DASHBOARD}: no `tenant` variable")),
    }
    for q in dashboard_queries()
        .iter()
        .filter(|q| q.dashboard == TENANT_DASHBOARD)
    {
        let fleet_wide = q.description.to_lowercase().contains("fleet-wide");
        for token in tokens(&q.expr) {
            if let Token::Selector(name, matchers) = token
                && name.starts_with("scimgate_")
                && !fleet_wide
                && !matchers.contains("tenant=~\"$tenant\"")
            {
                problems.push(format!(
                    "{TENANT_DASHBOARD} ({}): {name} is not filtered by tenant=~\"$tenant\" and the panel is not described as fleet-wide",
                    q.panel
                ));
            }
        }
    }

    // The fleet dashboard shows the busiest tenants and those at risk.
    let fleet: Vec<String> = dashboard_queries()
        .into_iter()
        .filter(|q| q.dashboard != TENANT_DASHBOARD)
        .map(|q| q.expr)
        .collect();
    for needle in [
        "topk(",
        "scimgate_quarantine_at_risk",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.99,",
        "scimgate_delivery_oldest_undelivered_age_seconds",
    ] {
        if !fleet.iter().any(|e| e.contains(needle)) {
            problems.push(format!("the fleet dashboard has no query with {needle:?}"));
        }
    }

    // Provisioning: the data source the variable defaults to, and the
    // provider that loads the dashboards.
    let datasources = read("deploy/grafana/provisioning/datasources/prometheus.yml");
    for needle in [
        "uid: prometheus",
        "type: prometheus",
        "url: http://prometheus:9090",
    ] {
        if !datasources.contains(needle) {
            problems.push(format!("the data source provisioning lacks {needle:?}"));
        }
    }
    let providers = read("deploy/grafana/provisioning/dashboards/scimgate.yml");
    for needle in ["type: file", "path: /var/lib/grafana/dashboards"] {
        if !providers.contains(needle) {
            problems.push(format!("the dashboard provisioning lacks {needle:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_metric_the_dashboards_and_rules_use_is_exported() {
    let referenced = referenced_metrics();
    assert!(
        referenced.len() >= 20,
        "the extraction found too few names: {referenced:?}"
    );
    let deployment = Deployment::start();
    deployment.workload();
    let names: BTreeSet<String> = referenced.keys().cloned().collect();
    let (exposition, missing) = deployment.wait_for_metrics(&names);
    let report: Vec<String> = missing
        .iter()
        .map(|name| format!("{name}, used by {:?}", referenced[name]))
        .collect();
    assert!(
        report.is_empty(),
        "not exported by `scimgate serve` after the workload:\n{}\n--- /metrics ---\n{}",
        report.join("\n"),
        exposition.text
    );
    // The tenant dashboard's variable finds the workload's tenant.
    assert!(
        exposition
            .text
            .lines()
            .any(|l| l.starts_with("scimgate_scim_requests_total{")
                && l.contains(&format!("tenant=\"{}\"", deployment.tenant))),
        "no scimgate_scim_requests_total for tenant {}:\n{}",
        deployment.tenant,
        exposition.text
    );
}

#[test]
fn a_real_prometheus_evaluates_every_dashboard_query_and_rule() {
    let deployment = Deployment::start();
    let target = deployment.base().trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&target);
    let scraped = eventually(SETTLE, || {
        prometheus
            .query(&format!("up{{job=\"{JOB}\"}} == 1"))
            .is_ok_and(|r| !r.is_empty())
    });
    assert!(
        scraped,
        "prometheus never scraped scimgate\n{}",
        prometheus.proc.output()
    );
    deployment.workload();

    // Prometheus loaded the same rules this test reads, and evaluates
    // each without error.
    let ours = rules();
    let deadline = Instant::now() + SETTLE;
    loop {
        let loaded = prometheus.rules();
        let names: BTreeSet<String> = loaded
            .iter()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            names,
            ours.iter().map(|r| r.name.clone()).collect(),
            "the rules Prometheus loaded"
        );
        let unhealthy: Vec<String> = loaded
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if unhealthy.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rules not evaluated cleanly:\n{}",
            unhealthy.join("\n")
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // Every dashboard query and recording rule returns data; every alert
    // expression evaluates, and what it compares with its threshold has
    // data.
    let mut checks: Vec<(String, String, bool)> = Vec::new();
    for q in dashboard_queries() {
        checks.push((
            format!("{} ({})", q.dashboard, q.panel),
            substitute(&q.expr, &deployment.tenant),
            true,
        ));
    }
    for rule in &ours {
        if rule.alert {
            checks.push((format!("alert {}", rule.name), rule.expr.clone(), false));
            checks.push((
                format!("alert {} (left of its threshold)", rule.name),
                left_of_comparison(&rule.expr).to_owned(),
                true,
            ));
        } else {
            checks.push((
                format!("recording rule {}", rule.name),
                rule.expr.clone(),
                true,
            ));
        }
    }
    let deadline = Instant::now() + SETTLE;
    loop {
        let failures: Vec<String> = checks
            .iter()
            .filter_map(|(what, expr, needs_data)| match prometheus.query(expr) {
                Err(e) => Some(format!("{what}: {expr}\n    error: {e}")),
                Ok(result) if *needs_data && result.is_empty() => {
                    Some(format!("{what}: {expr}\n    no data"))
                }
                Ok(_) => None,
            })
            .collect();
        if failures.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let exposition = deployment.scrape();
            panic!(
                "{} of {} queries failed:\n{}\n--- /metrics ---\n{}",
                failures.len(),
                checks.len(),
                failures.join("\n"),
                exposition.text
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------------------
// The parsers' own checks (so a broken parser cannot pass the tests above
// by finding nothing)

#[test]
fn the_promql_and_rule_readers_find_what_is_there() {
    let expr = r#"(sum by (job) (rate(scimgate_a_total{job="x",status=~"5.."}[5m])) or vector(0))
        / on (job) max(job:scimgate_b:rate5m) > 0.05 and histogram_quantile(0.99, sum by (le) (rate(scimgate_c_bucket{job=~"$job"}[$__rate_interval]))) > 1"#;
    assert_eq!(
        metric_names(expr),
        ["scimgate_a_total", "scimgate_c_bucket"]
            .into_iter()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(
        left_of_comparison(expr),
        r#"(sum by (job) (rate(scimgate_a_total{job="x",status=~"5.."}[5m])) or vector(0))
        / on (job) max(job:scimgate_b:rate5m)"#
    );
    assert_eq!(
        left_of_comparison(r#"up{job="scimgate"} == 0"#),
        r#"up{job="scimgate"}"#
    );
    assert_eq!(left_of_comparison("x"), "x");
    let calls: Vec<String> = tokens(expr)
        .into_iter()
        .filter_map(|t| match t {
            Token::Call(name, args) if name == "rate" => Some(args),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            r#"scimgate_a_total{job="x",status=~"5.."}[5m]"#,
            r#"scimgate_c_bucket{job=~"$job"}[$__rate_interval]"#
        ]
    );
    let parsed = parse_rules(
        "groups:\n  - name: g\n    rules:\n      - record: a:b:c\n        expr: |\n          sum(x)\n            + y\n      - alert: A\n        expr: up == 0\n        for: 1m\n",
    );
    assert_eq!(parsed.len(), 2);
    assert_eq!(
        (parsed[0].name.as_str(), parsed[0].expr.as_str()),
        ("a:b:c", "sum(x)\n+ y")
    );
    assert!(parsed[1].alert && parsed[1].expr == "up == 0" && parsed[1].block.contains("for: 1m"));
    // Every rule of the file, and every expression in it, was read.
    let text = read(RULES);
    let starting = |prefix: &str| {
        text.lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .count()
    };
    let all = rules();
    assert_eq!(all.len(), starting("- alert:") + starting("- record:"));
    assert_eq!(all.len(), starting("expr:"));
    assert!(all.iter().all(|r| !r.expr.is_empty()));
}
