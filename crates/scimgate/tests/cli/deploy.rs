//! The deployment artefacts against the binary they deploy: the
//! `Dockerfile`, `deploy/compose` (compose.yaml, haproxy.cfg), `deploy/k8s`,
//! and the Prometheus and Grafana files the compose stack mounts.
//!
//! Neither Docker nor Kubernetes runs here, so these tests read the files
//! and check what would break a real deployment: a setting the binary does
//! not know or refuses, a subcommand it does not have, a probe path it does
//! not answer, and ports, images, service names and paths that disagree
//! from one file to another. No network, no Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use scimgate::config::{self, Config, Sources};
use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::support::*;

const COMPOSE: &str = "deploy/compose/compose.yaml";
const HAPROXY: &str = "deploy/compose/haproxy.cfg";
const K8S: &str = "deploy/k8s";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
const GRAFANA_PROVISIONING: &str = "deploy/grafana/provisioning";
const DOCKERFILE: &str = "Dockerfile";
const DOCKERIGNORE: &str = ".dockerignore";
const DEPLOYMENT_DOC: &str = "docs/deployment.md";

/// The Prometheus job the compose stack's scrape configuration uses.
const SCRAPE_JOB: &str = "scimgate";
/// The one subcommand that runs once and exits.
const MIGRATE: &str = "migrate";

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// The repository root.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("repository root")
    })
}

/// A path for messages: relative to the repository root.
fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `path` with `.` and `..` resolved lexically (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", rel(path)))
}

/// Files under `dir` (recursively) whose names end with one of `suffixes`,
/// sorted.
fn files_under(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", rel(&dir)));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if suffixes.iter().any(|s| path.to_string_lossy().ends_with(s)) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, &[".yaml", ".yml"])
}

/// Every document of a YAML file as JSON (merge keys `<<` applied; empty
/// documents left out). Panics, naming the file, on invalid YAML.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let docs = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", rel(path)));
    docs.iter()
        .map(|d| to_json(d, path))
        .filter(|d| !d.is_null())
        .collect()
}

/// The one document of a YAML file.
fn yaml_doc(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold one YAML document", rel(path));
    docs.remove(0)
}

fn yaml_key(key: &Yaml, file: &Path) -> String {
    match key {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => panic!("{}: unsupported mapping key {other:?}", rel(file)),
    }
}

fn to_json(yaml: &Yaml, file: &Path) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(s.clone()), Value::Number),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(|i| to_json(i, file)).collect()),
        Yaml::Hash(hash) => {
            let mut out = Map::new();
            let mut merged = Vec::new();
            for (key, value) in hash {
                let key = yaml_key(key, file);
                if key == "<<" {
                    // A merge key: a mapping or a list of mappings whose keys
                    // fill in those the mapping does not set itself.
                    match value {
                        Yaml::Array(sources) => merged.extend(sources.iter()),
                        source => merged.push(source),
                    }
                } else {
                    out.insert(key, to_json(value, file));
                }
            }
            for source in merged {
                let Value::Object(source) = to_json(source, file) else {
                    panic!("{}: a merge key `<<` must name a mapping", rel(file));
                };
                for (key, value) in source {
                    out.entry(key).or_insert(value);
                }
            }
            Value::Object(out)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            panic!("{}: a value yaml-rust2 cannot resolve: {yaml:?}", rel(file))
        }
    }
}

/// A scalar as the string a process would see in its environment.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("expected a scalar, found {other}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Null => Vec::new(),
        other => panic!("expected a list of strings, found {other}"),
    }
}

/// `*` matches within one path component, `**/` any number of leading
/// components.
fn glob(pattern: &str, text: &str) -> bool {
    if let Some(rest) = pattern.strip_prefix("**/") {
        return glob(rest, text)
            || text
                .match_indices('/')
                .any(|(i, _)| glob(rest, &text[i + 1..]));
    }
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(text) = text.strip_prefix(head) else {
                return false;
            };
            (0..=text.len())
                .take_while(|&i| !text[..i].contains('/'))
                .filter(|&i| text.is_char_boundary(i))
                .any(|i| glob(tail, &text[i..]))
        }
    }
}

/// The port of a `host:port` or `[v6]:port` text.
fn port_of(addr: &str) -> u16 {
    let (_, port) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("`{addr}` names no port"));
    port.parse()
        .unwrap_or_else(|e| panic!("`{addr}`: bad port: {e}"))
}

/// `scheme://[user[:password]@]host[:port][/path]` split up.
struct Url {
    scheme: String,
    user: String,
    password: String,
    host: String,
    port: Option<u16>,
    path: String,
}

fn parse_url(url: &str) -> Url {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("`{url}` is not a URL"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, hostport) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port_of(&format!("x:{port}")))),
        None => (hostport, None),
    };
    Url {
        scheme: scheme.to_owned(),
        user: user.to_owned(),
        password: password.to_owned(),
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Compose
// ---------------------------------------------------------------------------

/// What compose does to `$VAR`, `${VAR}`, `${VAR:-default}`,
/// `${VAR-default}` and `$$` when no variable is set: the stack must start
/// without an `.env` file, so `${VAR:?message}` is refused.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .unwrap_or_else(|| panic!("unclosed `${{` in `{text}`"));
            let inner = &body[..end];
            assert!(
                !inner.contains('$'),
                "nested interpolation in `{text}` is not supported here"
            );
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, modifier) = inner.split_at(name_end);
            assert!(!name.is_empty(), "empty variable name in `{text}`");
            if let Some(default) = modifier
                .strip_prefix(":-")
                .or_else(|| modifier.strip_prefix('-'))
            {
                out.push_str(default);
            } else if modifier.starts_with(":?") || modifier.starts_with('?') {
                panic!(
                    "`{text}` requires {name} to be set: the compose stack must start \
                     without an .env file (give it a default)"
                );
            } else {
                // `${VAR}`, `${VAR:+x}`, `${VAR+x}` with VAR unset: empty.
            }
            rest = &body[end + 1..];
        } else if after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            rest = &after[name_end..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `deploy/compose/compose.yaml`, parsed, merge keys applied.
struct Compose {
    doc: Value,
}

fn compose() -> &'static Compose {
    static COMPOSE_DOC: OnceLock<Compose> = OnceLock::new();
    COMPOSE_DOC.get_or_init(|| Compose {
        doc: yaml_doc(&root().join(COMPOSE)),
    })
}

impl Compose {
    fn dir() -> PathBuf {
        root()
            .join(COMPOSE)
            .parent()
            .expect("compose dir")
            .to_path_buf()
    }

    fn services(&self) -> &Map<String, Value> {
        self.doc["services"]
            .as_object()
            .unwrap_or_else(|| panic!("{COMPOSE} has no `services`"))
    }

    fn service(&self, name: &str) -> &Value {
        self.services()
            .get(name)
            .unwrap_or_else(|| panic!("{COMPOSE} has no service `{name}`"))
    }

    /// The `x-scimgate` anchor every scimgate service merges.
    fn anchor(&self) -> &Value {
        let anchor = &self.doc["x-scimgate"];
        assert!(anchor.is_object(), "{COMPOSE} has no `x-scimgate` anchor");
        anchor
    }

    /// The scimgate image (the anchor's).
    fn image(&self) -> String {
        scalar(&self.anchor()["image"])
    }

    /// Services running the scimgate image, by name.
    fn scimgate_services(&self) -> BTreeMap<&str, &Value> {
        let image = self.image();
        let found: BTreeMap<&str, &Value> = self
            .services()
            .iter()
            .filter(|(_, s)| s["image"].as_str() == Some(image.as_str()))
            .map(|(n, s)| (n.as_str(), s))
            .collect();
        assert!(!found.is_empty(), "no service in {COMPOSE} runs {image}");
        found
    }

    /// The subcommand of a scimgate service (its `command`'s first word).
    fn subcommand(&self, name: &str) -> String {
        let command = strings(&self.service(name)["command"]);
        command
            .first()
            .unwrap_or_else(|| panic!("{COMPOSE}: service `{name}` names no command"))
            .clone()
    }

    /// The scimgate services that keep running (every one but `migrate`),
    /// with their subcommands.
    fn processes(&self) -> BTreeMap<String, String> {
        self.scimgate_services()
            .keys()
            .map(|name| (name.to_string(), self.subcommand(name)))
            .filter(|(_, command)| command != MIGRATE)
            .collect()
    }

    /// A service's environment, interpolated.
    fn env(&self, service: &Value) -> BTreeMap<String, String> {
        match &service["environment"] {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), interpolate(&scalar(v))))
                .collect(),
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let item = scalar(item);
                    let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
                    (k.to_owned(), interpolate(v))
                })
                .collect(),
            Value::Null => BTreeMap::new(),
            other => panic!("{COMPOSE}: unexpected `environment`: {other}"),
        }
    }

    /// The anchor's `SCIMGATE_LISTEN`: the port of every scimgate process.
    fn listen(&self) -> SocketAddr {
        let env = self.env(self.anchor());
        let listen = env
            .get("SCIMGATE_LISTEN")
            .unwrap_or_else(|| panic!("{COMPOSE}: the x-scimgate anchor sets no SCIMGATE_LISTEN"));
        listen
            .parse()
            .unwrap_or_else(|e| panic!("{COMPOSE}: SCIMGATE_LISTEN `{listen}`: {e}"))
    }

    /// `(source, target)` of a service's volumes; a bind mount's source is
    /// resolved against the compose file's directory, a named volume's is
    /// its name.
    fn mounts(&self, service: &Value) -> Vec<(String, String)> {
        service["volumes"]
            .as_array()
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|volume| match volume {
                Value::String(short) => {
                    let mut parts = short.split(':');
                    let source = parts.next().unwrap_or_default().to_owned();
                    let target = parts
                        .next()
                        .unwrap_or_else(|| panic!("{COMPOSE}: volume `{short}` has no target"))
                        .to_owned();
                    (source, target)
                }
                long => (scalar(&long["source"]), scalar(&long["target"])),
            })
            .collect()
    }

    /// The repository path a bind mount's source names.
    fn bind_source(source: &str) -> Option<PathBuf> {
        (source.starts_with('.') || source.starts_with('/'))
            .then(|| normalize(&Self::dir().join(source)))
    }

    /// The service running `image_prefix...`.
    fn service_by_image(&self, image_prefix: &str) -> (&str, &Value) {
        let found: Vec<_> = self
            .services()
            .iter()
            .filter(|(_, s)| {
                s["image"]
                    .as_str()
                    .is_some_and(|i| i.starts_with(image_prefix))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{COMPOSE} should have one service running {image_prefix}"
        );
        (found[0].0.as_str(), found[0].1)
    }

    /// Where a file inside a service's container comes from in the repository.
    fn repo_path_of(&self, service: &Value, container_path: &str) -> Option<PathBuf> {
        self.mounts(service)
            .into_iter()
            .find_map(|(source, target)| {
                let rest = container_path.strip_prefix(target.trim_end_matches('/'))?;
                if !(rest.is_empty() || rest.starts_with('/')) {
                    return None;
                }
                let source = Self::bind_source(&source)?;
                let rest = rest.trim_start_matches('/');
                Some(if rest.is_empty() {
                    source
                } else {
                    normalize(&source.join(rest))
                })
            })
    }
}

// ---------------------------------------------------------------------------
// HAProxy
// ---------------------------------------------------------------------------

/// `deploy/compose/haproxy.cfg`: sections and their tokenized lines.
struct Haproxy {
    sections: Vec<(String, String, Vec<Vec<String>>)>,
}

fn haproxy() -> Haproxy {
    let mut sections: Vec<(String, String, Vec<Vec<String>>)> = Vec::new();
    for line in read(&root().join(HAPROXY)).lines() {
        let content = line.split('#').next().unwrap_or_default();
        if content.trim().is_empty() {
            continue;
        }
        let words: Vec<String> = content.split_whitespace().map(str::to_owned).collect();
        if content.starts_with(char::is_whitespace) {
            sections
                .last_mut()
                .unwrap_or_else(|| panic!("{HAPROXY}: `{line}` outside any section"))
                .2
                .push(words);
        } else {
            let name = words.get(1).cloned().unwrap_or_default();
            sections.push((words[0].clone(), name, Vec::new()));
        }
    }
    Haproxy { sections }
}

impl Haproxy {
    fn section(&self, kind: &str, name: &str) -> &[Vec<String>] {
        self.sections
            .iter()
            .find(|(k, n, _)| k == kind && n == name)
            .map(|(_, _, lines)| lines.as_slice())
            .unwrap_or_else(|| panic!("{HAPROXY} has no `{kind} {name}`"))
    }

    fn frontends(&self) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|(k, _, _)| k == "frontend")
            .map(|(_, n, _)| n.as_str())
            .collect()
    }

    /// `server NAME ADDRESS` lines of a backend: the addresses.
    fn servers(&self, backend: &str) -> Vec<String> {
        self.section("backend", backend)
            .iter()
            .filter(|w| w[0] == "server")
            .map(|w| {
                w.get(2)
                    .cloned()
                    .unwrap_or_else(|| panic!("{HAPROXY}: `server` without an address"))
            })
            .collect()
    }

    /// The path a backend's health check asks for.
    fn check_uri(&self, backend: &str) -> String {
        let lines = self.section("backend", backend);
        assert!(
            lines.iter().any(|w| w[..] == ["option", "httpchk"]),
            "{HAPROXY}: backend {backend} does not check its servers over HTTP"
        );
        lines
            .iter()
            .filter(|w| w.starts_with(&["http-check".to_owned(), "send".to_owned()]))
            .find_map(|w| {
                let at = w.iter().position(|t| t == "uri")?;
                w.get(at + 1).cloned()
            })
            .unwrap_or_else(|| panic!("{HAPROXY}: backend {backend} sends no check `uri`"))
    }
}

// ---------------------------------------------------------------------------
// Kubernetes
// ---------------------------------------------------------------------------

/// Every object under `deploy/k8s`, and the kustomization.
struct K8s {
    objects: Vec<(PathBuf, Value)>,
    kustomization: Value,
}

fn k8s() -> &'static K8s {
    static K8S_DOCS: OnceLock<K8s> = OnceLock::new();
    K8S_DOCS.get_or_init(|| {
        let mut objects = Vec::new();
        let mut kustomization = None;
        for file in yaml_files(&root().join(K8S)) {
            for doc in yaml_docs(&file) {
                if doc["kind"] == "Kustomization" {
                    kustomization = Some(doc);
                } else {
                    objects.push((file.clone(), doc));
                }
            }
        }
        K8s {
            objects,
            kustomization: kustomization
                .unwrap_or_else(|| panic!("{K8S} has no kustomization.yaml")),
        }
    })
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object() else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl K8s {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(_, o)| o["kind"] == kind)
            .map(|(_, o)| o)
            .collect()
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{K8S} has no {kind} `{name}`"))
    }

    /// Deployments and Jobs.
    fn workloads(&self) -> Vec<&Value> {
        let mut found = self.of_kind("Deployment");
        found.extend(self.of_kind("Job"));
        found
    }

    /// The Deployment running `scimgate <subcommand>`.
    fn deployment(&self, subcommand: &str) -> &Value {
        let found: Vec<_> = self
            .of_kind("Deployment")
            .into_iter()
            .filter(|d| {
                containers(d)
                    .iter()
                    .any(|c| strings(&c["args"]).first().map(String::as_str) == Some(subcommand))
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{K8S} should have one Deployment running `scimgate {subcommand}`"
        );
        found[0]
    }

    /// A container's environment: its `envFrom` ConfigMaps and Secrets
    /// (`stringData`), then its `env` values.
    fn env(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let (kind, field, reference) = if source["configMapRef"].is_object() {
                ("ConfigMap", "data", &source["configMapRef"])
            } else if source["secretRef"].is_object() {
                ("Secret", "stringData", &source["secretRef"])
            } else {
                panic!("{K8S}: unsupported envFrom {source}")
            };
            let object = self.named(kind, &scalar(&reference["name"]));
            assert!(
                object.get("data").is_none() || kind == "ConfigMap",
                "{K8S}: the Secret should keep its placeholders readable in stringData"
            );
            for (k, v) in object[field].as_object().into_iter().flatten() {
                env.insert(k.clone(), scalar(v));
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            env.insert(scalar(&var["name"]), scalar(&var["value"]));
        }
        env
    }

    /// The image a container really runs once the kustomization's
    /// `images` overrides are applied.
    fn effective_image(&self, image: &str) -> String {
        let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        for over in self.kustomization["images"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if over["name"] == name {
                let new_name = over["newName"].as_str().unwrap_or(name);
                let new_tag = over["newTag"].as_str().unwrap_or(tag);
                return format!("{new_name}:{new_tag}");
            }
        }
        format!("{name}:{tag}")
    }

    /// The namespace of every object: the Namespace's name.
    fn namespace(&self) -> String {
        let namespaces = self.of_kind("Namespace");
        assert_eq!(namespaces.len(), 1, "{K8S} should define one Namespace");
        scalar(&namespaces[0]["metadata"]["name"])
    }
}

fn pod_spec(workload: &Value) -> &Value {
    let spec = &workload["spec"]["template"]["spec"];
    assert!(
        spec.is_object(),
        "{} has no pod template",
        workload["metadata"]["name"]
    );
    spec
}

fn containers(workload: &Value) -> Vec<&Value> {
    pod_spec(workload)["containers"]
        .as_array()
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

/// A named or numbered container port, as a number.
fn resolve_port(port: &Value, containers: &[&Value]) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    containers
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

// ---------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------

/// The Dockerfile's instructions: (upper-case keyword, arguments), with
/// continuation lines joined and comments left out.
fn dockerfile() -> Vec<(String, String)> {
    let text = read(&root().join(DOCKERFILE));
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        instructions.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    instructions
}

fn dockerfile_args(keyword: &str) -> Vec<String> {
    dockerfile()
        .into_iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a)
        .collect()
}

/// The exec form (`["a", "b"]`) of an instruction.
fn dockerfile_exec(keyword: &str) -> Vec<String> {
    let args = dockerfile_args(keyword);
    assert_eq!(args.len(), 1, "{DOCKERFILE} should have one {keyword}");
    serde_json::from_str(&args[0])
        .unwrap_or_else(|e| panic!("{DOCKERFILE}: {keyword} is not in exec form: {e}"))
}

/// `ENV` settings (`ENV A=1 B=2` or `ENV A 1`).
fn dockerfile_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for args in dockerfile_args("ENV") {
        if args.contains('=') {
            for pair in args.split_whitespace() {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{DOCKERFILE}: ENV `{pair}`"));
                env.insert(k.to_owned(), v.trim_matches('"').to_owned());
            }
        } else if let Some((k, v)) = args.split_once(char::is_whitespace) {
            env.insert(k.to_owned(), v.trim().to_owned());
        }
    }
    env
}

/// The final stage's `USER` uid.
fn dockerfile_uid() -> u32 {
    let users = dockerfile_args("USER");
    let user = users
        .last()
        .unwrap_or_else(|| panic!("{DOCKERFILE} sets no USER: the image would run as root"));
    let uid = user.split(':').next().unwrap_or_default();
    uid.parse().unwrap_or_else(|_| {
        panic!("{DOCKERFILE}: USER `{user}` should be numeric, so runAsNonRoot can verify it")
    })
}

// ---------------------------------------------------------------------------
// The settings every artefact gives the binary
// ---------------------------------------------------------------------------

fn known_variables() -> BTreeSet<String> {
    config::KEYS
        .iter()
        .map(|k| format!("{}{}", config::ENV_PREFIX, k.to_ascii_uppercase()))
        .chain([config::CONFIG_FILE_ENV.to_owned()])
        .collect()
}

/// Every `SCIMGATE_*` name written in a text (values, comments, examples).
fn variables_in(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(config::ENV_PREFIX) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + config::ENV_PREFIX.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('_');
        if !name.is_empty() {
            found.insert(format!("{}{name}", config::ENV_PREFIX));
        }
    }
    found
}

fn load(env: &BTreeMap<String, String>) -> Result<scimgate::config::Loaded, String> {
    Config::load(&Sources {
        env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..Sources::default()
    })
    .map_err(|e| e.to_string())
}

#[test]
fn every_manifest_is_valid_yaml() {
    for dir in ["deploy/compose", K8S] {
        let files = yaml_files(&root().join(dir));
        assert!(!files.is_empty(), "no YAML file under {dir}");
        for file in files {
            let docs = yaml_docs(&file);
            assert!(!docs.is_empty(), "{} holds no document", rel(&file));
            for doc in docs {
                assert!(
                    doc.is_object(),
                    "{}: a document is not a mapping",
                    rel(&file)
                );
            }
        }
    }
    // The parser really parses: a broken file is refused, merge keys apply.
    assert!(YamlLoader::load_from_str("a: [1, 2\nb: 3").is_err());
    let merged = to_json(
        &YamlLoader::load_from_str("x: &x {a: 1, b: 2}\ny:\n  <<: *x\n  b: 3\n").expect("yaml")[0],
        Path::new("inline"),
    );
    assert_eq!(merged["y"], serde_json::json!({"a": 1, "b": 3}));
}

#[test]
fn every_scimgate_variable_named_is_a_configuration_key() {
    let known = known_variables();
    let mut files = vec![root().join(DOCKERFILE), root().join(DEPLOYMENT_DOC)];
    files.extend(files_under(&root().join("deploy/compose"), &[""]));
    files.extend(files_under(&root().join(K8S), &[""]));
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        for name in variables_in(&read(file)) {
            if !known.contains(&name) {
                unknown.push(format!("{name} in {}", rel(file)));
            }
            seen.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "not a configuration key (scimgate::config::KEYS, upper-cased, after {}):\n  {}",
        config::ENV_PREFIX,
        unknown.join("\n  ")
    );
    // The scan finds what is there (and so could find a typo).
    for name in [
        "SCIMGATE_LISTEN",
        "SCIMGATE_DATABASE_URL",
        "SCIMGATE_DELIVERY_SECRETS_KEY",
    ] {
        assert!(seen.contains(name), "{name} not found in {files:?}");
    }
    assert_eq!(
        variables_in("x SCIMGATE_LISTEN=1, $SCIMGATE_LISTN; XSCIMGATE_A SCIMGATE_<KEY>"),
        BTreeSet::from(["SCIMGATE_LISTEN".to_owned(), "SCIMGATE_LISTN".to_owned()])
    );
}

#[test]
fn the_compose_settings_load_and_agree_with_postgres_and_redis() {
    let compose = compose();
    let services = compose.scimgate_services();
    let postgres = compose.env(compose.service_by_image("postgres:").1);
    for (name, service) in services {
        let env = compose.env(service);
        let loaded = load(&env).unwrap_or_else(|e| panic!("{COMPOSE} `{name}`: {e}"));
        assert!(
            loaded.warnings.is_empty(),
            "{COMPOSE} `{name}`: {:?}",
            loaded.warnings
        );
        let config = loaded.config;
        assert_eq!(
            config.listen,
            compose.listen(),
            "`{name}` listens elsewhere"
        );
        assert!(
            config.listen.ip().is_unspecified(),
            "`{name}` must listen on every interface in its container"
        );
        assert!(
            !config.admin_jwt_keys.is_empty(),
            "`{name}`: no admin_jwt_keys"
        );
        let secrets = scimgate::bootstrap::delivery_secrets(&config)
            .unwrap_or_else(|e| panic!("`{name}`: delivery_secrets_key refused: {e}"));
        assert!(secrets.is_some(), "`{name}`: no delivery_secrets_key");

        let database = config
            .database_url
            .as_ref()
            .unwrap_or_else(|| panic!("`{name}` has no database_url"));
        let db = parse_url(database.expose());
        assert_eq!(db.scheme, "postgres", "`{name}`");
        assert!(
            compose.service(&db.host)["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("postgres:")),
            "`{name}`'s database host `{}` is not the PostgreSQL service",
            db.host
        );
        assert_eq!(db.port, Some(5432), "`{name}`");
        assert_eq!(Some(&db.user), postgres.get("POSTGRES_USER"), "`{name}`");
        assert_eq!(
            Some(&db.password),
            postgres.get("POSTGRES_PASSWORD"),
            "`{name}`: the database password differs from the PostgreSQL service's"
        );
        assert_eq!(
            Some(&db.path),
            postgres
                .get("POSTGRES_DB")
                .map(|d| format!("/{d}"))
                .as_ref(),
            "`{name}`"
        );

        let redis = config
            .redis_url
            .as_ref()
            .unwrap_or_else(|| panic!("`{name}` has no redis_url"));
        let redis = parse_url(redis.expose());
        assert!(
            compose.service(&redis.host)["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("redis:")),
            "`{name}`'s Redis host `{}` is not the Redis service",
            redis.host
        );
    }
}

#[test]
fn the_k8s_settings_load_once_the_placeholders_are_replaced() {
    let k8s = k8s();
    let mut envs = Vec::new();
    for workload in k8s.workloads() {
        for container in containers(workload) {
            envs.push(k8s.env(container));
        }
    }
    assert!(!envs.is_empty());
    let valid_admin = "main:0123456789abcdef0123456789abcdef-real-secret";
    let valid_delivery = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for env in envs {
        // As shipped, the placeholders cannot run by accident.
        let refused = load(&env).err().unwrap_or_default();
        assert!(
            refused.contains("admin_jwt_keys"),
            "the placeholder admin key should be refused, got: {refused:?}"
        );
        let mut env = env;
        env.insert("SCIMGATE_ADMIN_JWT_KEYS".into(), valid_admin.into());
        let config = load(&env).unwrap_or_else(|e| panic!("{K8S}: {e}")).config;
        assert!(
            scimgate::bootstrap::delivery_secrets(&config).is_err(),
            "the placeholder delivery key should be refused"
        );
        // Replaced, everything loads, with nothing unknown.
        env.insert(
            "SCIMGATE_DELIVERY_SECRETS_KEY".into(),
            valid_delivery.into(),
        );
        let loaded = load(&env).unwrap_or_else(|e| panic!("{K8S}: {e}"));
        assert!(loaded.warnings.is_empty(), "{K8S}: {:?}", loaded.warnings);
        let config = loaded.config;
        assert!(matches!(
            scimgate::bootstrap::delivery_secrets(&config),
            Ok(Some(_))
        ));
        assert!(config.database_url.is_some(), "{K8S}: no database_url");
        assert!(config.listen.ip().is_unspecified(), "{K8S}: listen");
        assert_eq!(
            config.listen.port(),
            compose().listen().port(),
            "{K8S}: port"
        );
    }
}

/// Every subcommand the artefacts run, and where.
fn deployed_subcommands() -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let compose = compose();
    for name in compose.scimgate_services().keys() {
        found
            .entry(compose.subcommand(name))
            .or_default()
            .push(format!("{COMPOSE} `{name}`"));
    }
    let cmd = dockerfile_exec("CMD");
    let first = cmd
        .first()
        .unwrap_or_else(|| panic!("{DOCKERFILE}: empty CMD"));
    found
        .entry(first.clone())
        .or_default()
        .push(format!("{DOCKERFILE} CMD"));
    for workload in k8s().workloads() {
        for container in containers(workload) {
            assert!(
                container.get("command").is_none(),
                "{K8S}: {} overrides the image's ENTRYPOINT; use `args`",
                workload["metadata"]["name"]
            );
            let args = strings(&container["args"]);
            let first = args
                .first()
                .unwrap_or_else(|| panic!("{K8S}: {} has no args", workload["metadata"]["name"]));
            found
                .entry(first.clone())
                .or_default()
                .push(format!("{K8S} {}", workload["metadata"]["name"]));
        }
    }
    found
}

#[test]
fn every_command_deployed_is_a_subcommand_of_the_binary() {
    assert_eq!(
        dockerfile_exec("ENTRYPOINT"),
        ["scimgate"],
        "{DOCKERFILE}: the entrypoint is the binary"
    );
    let deployed = deployed_subcommands();
    let kinds: BTreeSet<&str> = deployed.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["admin", "gateway", MIGRATE, "serve", "worker"]),
        "every process kind is deployed somewhere: {deployed:?}"
    );
    for (command, wherever) in &deployed {
        let help = run(scimgate(&[command, "--help"]));
        assert!(
            help.status.success() && help.stdout.contains("Usage:"),
            "`scimgate {command}` (used by {wherever:?}) is not a subcommand:\n{}",
            help.describe()
        );
    }
    // The check tells a subcommand from anything else.
    let bogus = run(scimgate(&["gatway", "--help"]));
    assert!(!bogus.status.success(), "{}", bogus.describe());
}

#[test]
fn every_process_deployed_answers_its_probes() {
    let k8s = k8s();
    // Probe paths the manifests use, checked against the binary below.
    let mut paths = BTreeSet::from(["/healthz".to_owned(), "/readyz".to_owned()]);
    for deployment in k8s.of_kind("Deployment") {
        let name = &deployment["metadata"]["name"];
        for container in containers(deployment) {
            let path = |probe: &str| scalar(&container[probe]["httpGet"]["path"]);
            assert_eq!(path("livenessProbe"), "/healthz", "{K8S}: {name} liveness");
            assert_eq!(path("readinessProbe"), "/readyz", "{K8S}: {name} readiness");
            if container.get("startupProbe").is_some() {
                paths.insert(path("startupProbe"));
            }
        }
    }
    let proxy = haproxy();
    for backend in ["gateways", "admin"] {
        paths.insert(proxy.check_uri(backend));
    }
    if let Some(prometheus) = prometheus_config() {
        for job in prometheus["scrape_configs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            paths.insert(
                job["metrics_path"]
                    .as_str()
                    .unwrap_or("/metrics")
                    .to_owned(),
            );
        }
    } else {
        paths.insert("/metrics".to_owned());
    }

    // Each long-running process kind, started as deployed (the compose
    // stack's settings, less the addresses of its database, Redis and
    // listener), all at once.
    let compose = compose();
    let mut env = compose.env(compose.anchor());
    for local in [
        "SCIMGATE_LISTEN",
        "SCIMGATE_DATABASE_URL",
        "SCIMGATE_REDIS_URL",
    ] {
        env.remove(local);
    }
    let kinds: BTreeSet<String> = deployed_subcommands()
        .into_keys()
        .filter(|c| c != MIGRATE)
        .collect();
    let started: Vec<(String, Sandbox, Proc)> = kinds
        .into_iter()
        .map(|kind| {
            let sandbox = Sandbox::new();
            let mut cmd = sandbox.cmd(&[&kind, "--listen", "127.0.0.1:0"]);
            cmd.envs(&env);
            let proc = Proc::spawn(cmd);
            (kind, sandbox, proc)
        })
        .collect();
    let h = http();
    for (kind, _sandbox, mut proc) in started {
        let listen_url = proc.wait_for_line(STARTUP, |l| {
            let rest = l.split_once(" listening on ")?.1;
            rest.split_whitespace().next().map(str::to_owned)
        });
        let server = Server { proc, listen_url };
        for path in &paths {
            let reply = h.get(&format!("{}{path}", server.listen_url), None);
            assert_eq!(
                reply.status,
                200,
                "`scimgate {kind}` GET {path}: {}\n{}",
                reply.text,
                server.proc.output()
            );
            if path == "/readyz" {
                assert_eq!(reply.json()["status"], "ready", "`scimgate {kind}`");
            }
        }
        let missing = h.get(&format!("{}/no-such-probe", server.listen_url), None);
        assert_eq!(missing.status, 404, "`scimgate {kind}` answers anything");
        let (status, output) = server.terminate();
        assert_eq!(status.code(), Some(0), "`scimgate {kind}`: {output}");
    }
}

#[test]
fn one_port_everywhere() {
    let compose = compose();
    let port = compose.listen().port();
    assert!(
        compose.listen().ip().is_unspecified(),
        "{COMPOSE}: listen on 0.0.0.0"
    );

    // Compose: the number is written once, in the anchor.
    let text = read(&root().join(COMPOSE));
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default())
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| {
            l.match_indices(&port.to_string()).any(|(i, m)| {
                let before = l[..i].chars().next_back();
                let after = l[i + m.len()..].chars().next();
                !before.is_some_and(|c| c.is_ascii_digit())
                    && !after.is_some_and(|c| c.is_ascii_digit())
            })
        })
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{COMPOSE} writes port {port} more than once: {lines:?}"
    );
    for (name, service) in compose.scimgate_services() {
        assert_eq!(
            compose.env(service).get("SCIMGATE_LISTEN"),
            Some(&compose.listen().to_string()),
            "`{name}`"
        );
    }

    // The proxy forwards to that port.
    let proxy = haproxy();
    for backend in ["gateways", "admin"] {
        for server in proxy.servers(backend) {
            assert_eq!(port_of(&server), port, "{HAPROXY}: {server}");
        }
    }

    // The image.
    let exposed = dockerfile_args("EXPOSE");
    assert_eq!(exposed, [port.to_string()], "{DOCKERFILE}: EXPOSE");
    let env = dockerfile_env();
    let listen: SocketAddr = env
        .get("SCIMGATE_LISTEN")
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no ENV SCIMGATE_LISTEN"))
        .parse()
        .expect("Dockerfile listen address");
    assert_eq!(listen.port(), port, "{DOCKERFILE}: SCIMGATE_LISTEN");
    assert!(
        listen.ip().is_unspecified(),
        "{DOCKERFILE}: SCIMGATE_LISTEN"
    );

    // Kubernetes: container ports, probes, annotations, Services.
    let k8s = k8s();
    for deployment in k8s.of_kind("Deployment") {
        let name = &deployment["metadata"]["name"];
        let cs = containers(deployment);
        for container in &cs {
            let listen: SocketAddr = k8s.env(container)["SCIMGATE_LISTEN"]
                .parse()
                .expect("k8s listen address");
            assert_eq!(listen.port(), port, "{K8S}: {name} SCIMGATE_LISTEN");
            let ports: Vec<u64> = container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["containerPort"].as_u64())
                .collect();
            assert_eq!(ports, [u64::from(port)], "{K8S}: {name} containerPort");
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if container.get(probe).is_none() {
                    continue;
                }
                assert_eq!(
                    resolve_port(&container[probe]["httpGet"]["port"], &cs),
                    Some(port),
                    "{K8S}: {name} {probe} port"
                );
            }
        }
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{K8S}: {name}");
        assert_eq!(
            annotations["prometheus.io/port"],
            port.to_string(),
            "{K8S}: {name} prometheus.io/port"
        );
    }
    let services = k8s.of_kind("Service");
    assert!(!services.is_empty(), "{K8S} has no Service");
    for service in services {
        let name = &service["metadata"]["name"];
        let selected: Vec<&Value> = k8s
            .of_kind("Deployment")
            .into_iter()
            .filter(|d| {
                selects(
                    &service["spec"]["selector"],
                    &d["spec"]["template"]["metadata"]["labels"],
                )
            })
            .collect();
        assert!(
            !selected.is_empty(),
            "{K8S}: Service {name} selects no Deployment"
        );
        for p in service["spec"]["ports"].as_array().into_iter().flatten() {
            for deployment in &selected {
                assert_eq!(
                    resolve_port(&p["targetPort"], &containers(deployment)),
                    Some(port),
                    "{K8S}: Service {name} targetPort for {}",
                    deployment["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn compose_and_kubernetes_run_the_image_the_dockerfile_builds() {
    let compose = compose();
    let image = compose.image();
    let build = &compose.anchor()["build"];
    let context = Compose::dir().join(scalar(&build["context"]));
    assert_eq!(
        context.canonicalize().expect("build context"),
        root(),
        "{COMPOSE}: the build context is the repository"
    );
    let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
    assert!(
        context.join(dockerfile).is_file(),
        "{COMPOSE}: no {dockerfile} in the build context"
    );
    for (name, service) in compose.services() {
        if service.get("build").is_some() {
            assert_eq!(
                scalar(&service["image"]),
                image,
                "{COMPOSE}: `{name}` image"
            );
        }
    }
    let k8s = k8s();
    let mut seen = BTreeSet::new();
    for workload in k8s.workloads() {
        for container in containers(workload) {
            let raw = scalar(&container["image"]);
            seen.insert(
                raw.rsplit_once(':')
                    .map_or(raw.clone(), |(n, _)| n.to_owned()),
            );
            assert_eq!(
                k8s.effective_image(&raw),
                image,
                "{K8S}: {} runs another image than {COMPOSE}",
                workload["metadata"]["name"]
            );
        }
    }
    // The kustomization's image override applies to the manifests' image.
    for over in k8s.kustomization["images"].as_array().into_iter().flatten() {
        assert!(
            seen.contains(&scalar(&over["name"])),
            "{K8S}/kustomization.yaml overrides an image no container uses: {over}"
        );
    }
}

#[test]
fn the_compose_stack_is_wired_together() {
    let compose = compose();
    let services = compose.services();
    let declared: BTreeSet<&str> = compose.doc["volumes"]
        .as_object()
        .map(|v| v.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for (name, service) in services {
        for dependency in service["depends_on"]
            .as_object()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_else(|| strings(&service["depends_on"]))
        {
            assert!(
                services.contains_key(&dependency),
                "{COMPOSE}: `{name}` depends on unknown `{dependency}`"
            );
        }
        for (source, target) in compose.mounts(service) {
            match Compose::bind_source(&source) {
                Some(path) => assert!(
                    path.exists(),
                    "{COMPOSE}: `{name}` mounts {source} (at {target}), \
                     which is not in the repository ({})",
                    rel(&path)
                ),
                None => assert!(
                    declared.contains(source.as_str()),
                    "{COMPOSE}: `{name}` uses volume `{source}`, not declared under `volumes`"
                ),
            }
        }
    }

    // PostgreSQL 15 and Redis 7, checked for health, on volumes.
    let (postgres, pg) = compose.service_by_image("postgres:15");
    let (redis, rd) = compose.service_by_image("redis:7");
    for (name, service) in [(postgres, pg), (redis, rd)] {
        assert!(
            !strings(&service["healthcheck"]["test"]).is_empty(),
            "{COMPOSE}: `{name}` has no healthcheck"
        );
        assert!(
            compose
                .mounts(service)
                .iter()
                .any(|(s, _)| declared.contains(s.as_str())),
            "{COMPOSE}: `{name}` keeps its data on no volume"
        );
    }

    // The migration runs once, first; everything else waits for it.
    let migrations: Vec<&str> = compose
        .scimgate_services()
        .into_keys()
        .filter(|n| compose.subcommand(n) == MIGRATE)
        .collect();
    assert_eq!(migrations.len(), 1, "{COMPOSE}: one `migrate` service");
    let migrate = migrations[0];
    assert_eq!(
        compose.service(migrate)["restart"],
        "no",
        "{COMPOSE}: `{migrate}`"
    );
    assert_eq!(
        compose.service(migrate)["depends_on"][postgres]["condition"],
        "service_healthy"
    );
    for name in compose.processes().keys() {
        let depends = &compose.service(name)["depends_on"];
        for (on, condition) in [
            (migrate, "service_completed_successfully"),
            (postgres, "service_healthy"),
            (redis, "service_healthy"),
        ] {
            assert_eq!(
                depends[on]["condition"], condition,
                "{COMPOSE}: `{name}` should wait for `{on}` ({condition})"
            );
        }
    }

    // One published entry point: HAProxy, SCIM to the gateways, the
    // admin API and console to the admin process.
    let (proxy_name, proxy_service) = compose.service_by_image("haproxy:");
    assert_eq!(
        compose.repo_path_of(proxy_service, "/usr/local/etc/haproxy/haproxy.cfg"),
        Some(root().join(HAPROXY)),
        "{COMPOSE}: `{proxy_name}` does not mount {HAPROXY}"
    );
    let proxy = haproxy();
    let by_command = |command: &str| -> BTreeSet<String> {
        compose
            .processes()
            .into_iter()
            .filter(|(_, c)| c == command)
            .map(|(n, _)| n)
            .collect()
    };
    let hosts = |backend: &str| -> BTreeSet<String> {
        proxy
            .servers(backend)
            .iter()
            .map(|s| s.rsplit_once(':').map_or(s.clone(), |(h, _)| h.to_owned()))
            .collect()
    };
    assert_eq!(proxy.frontends().len(), 1, "{HAPROXY}: one frontend");
    let frontend = proxy.section("frontend", proxy.frontends()[0]);
    let default_backend = frontend
        .iter()
        .find(|w| w[0] == "default_backend")
        .map(|w| w[1].clone())
        .unwrap_or_else(|| panic!("{HAPROXY}: no default_backend"));
    assert_eq!(default_backend, "gateways");
    assert_eq!(
        hosts("gateways"),
        by_command("gateway"),
        "{HAPROXY}: gateways"
    );
    let admin_rule = frontend
        .iter()
        .find(|w| w[0] == "use_backend" && w.iter().any(|t| t == "/admin/"))
        .unwrap_or_else(|| panic!("{HAPROXY}: /admin/ is not routed"));
    assert_eq!(admin_rule[1], "admin");
    assert!(
        admin_rule.iter().any(|t| t == "/console"),
        "{HAPROXY}: /console is not routed to the admin process"
    );
    assert_eq!(hosts("admin"), by_command("admin"), "{HAPROXY}: admin");
    let bind = frontend
        .iter()
        .find(|w| w[0] == "bind")
        .map(|w| port_of(&w[1]))
        .unwrap_or_else(|| panic!("{HAPROXY}: no bind"));
    let published = strings(&proxy_service["ports"]);
    assert_eq!(
        published.len(),
        1,
        "{COMPOSE}: `{proxy_name}` publishes one port"
    );
    let published = interpolate(&published[0]);
    assert_eq!(
        port_of(&published),
        bind,
        "{COMPOSE}: `{proxy_name}` publishes another port"
    );
    let host_port = published
        .rsplit(':')
        .nth(1)
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("{COMPOSE}: `{published}` names no host port"));
    let public_url = compose.env(compose.anchor())["SCIMGATE_PUBLIC_URL"].clone();
    assert_eq!(
        parse_url(&public_url).port,
        Some(host_port),
        "{COMPOSE}: SCIMGATE_PUBLIC_URL is not the proxy's published address"
    );
    // Only the proxy takes traffic from outside.
    for name in compose.scimgate_services().into_keys() {
        assert!(
            compose.service(name).get("ports").is_none(),
            "{COMPOSE}: `{name}` publishes a port; traffic goes through `{proxy_name}`"
        );
    }
}

/// `deploy/prometheus/prometheus.yml`, if present.
fn prometheus_config() -> Option<Value> {
    let path = root().join(PROMETHEUS);
    path.is_file().then(|| yaml_doc(&path))
}

#[test]
fn prometheus_scrapes_every_process_of_the_compose_stack() {
    let config = prometheus_config().unwrap_or_else(|| {
        panic!(
            "{PROMETHEUS} is missing: the compose stack's Prometheus mounts it at \
             /etc/prometheus/prometheus.yml"
        )
    });
    let compose = compose();
    let (_, prometheus) = compose.service_by_image("prom/prometheus");
    assert_eq!(
        compose.repo_path_of(prometheus, "/etc/prometheus/prometheus.yml"),
        Some(root().join(PROMETHEUS)),
        "{COMPOSE}: Prometheus does not mount {PROMETHEUS}"
    );
    let job = config["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|j| j["job_name"] == SCRAPE_JOB)
        .unwrap_or_else(|| panic!("{PROMETHEUS}: no scrape job `{SCRAPE_JOB}`"));
    let targets: Vec<String> = job["static_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| strings(&s["targets"]))
        .collect();
    let port = compose.listen().port();
    let mut hosts = BTreeSet::new();
    for target in &targets {
        let (host, _) = target
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{PROMETHEUS}: target `{target}` names no port"));
        assert_eq!(port_of(target), port, "{PROMETHEUS}: `{target}`");
        assert!(
            compose.services().contains_key(host),
            "{PROMETHEUS}: `{target}` is not a service of {COMPOSE}"
        );
        hosts.insert(host.to_owned());
    }
    let processes: BTreeSet<String> = compose.processes().into_keys().collect();
    assert_eq!(
        hosts, processes,
        "{PROMETHEUS} should scrape every long-running scimgate service of {COMPOSE}"
    );

    // The rule files it loads are the ones mounted from the repository.
    let rule_files = strings(&config["rule_files"]);
    assert!(!rule_files.is_empty(), "{PROMETHEUS} loads no rule files");
    let rules_dir = compose
        .repo_path_of(prometheus, "/etc/prometheus/rules")
        .unwrap_or_else(|| panic!("{COMPOSE}: Prometheus does not mount /etc/prometheus/rules"));
    assert_eq!(
        rules_dir,
        root().join("deploy/prometheus/rules"),
        "{COMPOSE}: Prometheus' rules should come from deploy/prometheus/rules"
    );
    for pattern in rule_files {
        let repo_pattern = compose
            .repo_path_of(prometheus, &pattern)
            .unwrap_or_else(|| panic!("{PROMETHEUS}: rule file {pattern} is not mounted"));
        let repo_pattern = repo_pattern.to_string_lossy().into_owned();
        let dir = Path::new(&repo_pattern).parent().expect("rule dir");
        let matched: Vec<PathBuf> = files_under(dir, &[""])
            .into_iter()
            .filter(|f| glob(&repo_pattern, &f.to_string_lossy()))
            .collect();
        assert!(
            !matched.is_empty(),
            "{PROMETHEUS}: {pattern} matches no file"
        );
        for file in matched {
            let doc = yaml_doc(&file);
            assert!(
                doc["groups"].as_array().is_some_and(|g| !g.is_empty()),
                "{}: no rule groups",
                rel(&file)
            );
        }
    }
}

#[test]
fn grafana_is_provisioned_from_what_compose_mounts() {
    let compose = compose();
    let (_, grafana) = compose.service_by_image("grafana/grafana");
    let provisioning = compose
        .repo_path_of(grafana, "/etc/grafana/provisioning")
        .unwrap_or_else(|| panic!("{COMPOSE}: Grafana does not mount /etc/grafana/provisioning"));
    assert_eq!(
        provisioning,
        root().join(GRAFANA_PROVISIONING),
        "{COMPOSE}: Grafana's provisioning should come from {GRAFANA_PROVISIONING}"
    );
    assert!(provisioning.is_dir(), "{GRAFANA_PROVISIONING} is missing");
    let dashboards_target = "/var/lib/grafana/dashboards";
    let dashboards = compose
        .repo_path_of(grafana, dashboards_target)
        .unwrap_or_else(|| panic!("{COMPOSE}: Grafana does not mount {dashboards_target}"));
    assert_eq!(
        dashboards,
        root().join("deploy/grafana/dashboards"),
        "{COMPOSE}: Grafana's dashboards should come from deploy/grafana/dashboards"
    );
    assert!(
        dashboards.is_dir(),
        "{COMPOSE}: Grafana's dashboards directory {} is missing",
        rel(&dashboards)
    );
    assert!(
        !files_under(&dashboards, &[".json"]).is_empty(),
        "{}: no dashboard",
        rel(&dashboards)
    );

    let (prometheus_name, _) = compose.service_by_image("prom/prometheus");
    let mut datasources = 0;
    let mut providers = 0;
    for file in yaml_files(&provisioning) {
        for doc in yaml_docs(&file) {
            for source in doc["datasources"].as_array().into_iter().flatten() {
                if source["type"] != "prometheus" {
                    continue;
                }
                let url = parse_url(&scalar(&source["url"]));
                assert_eq!(
                    url.host,
                    prometheus_name,
                    "{}: the Prometheus data source is not the compose service",
                    rel(&file)
                );
                datasources += 1;
            }
            for provider in doc["providers"].as_array().into_iter().flatten() {
                let path = scalar(&provider["options"]["path"]);
                assert!(
                    path.starts_with(dashboards_target),
                    "{}: dashboards provider reads {path}, not the mounted {dashboards_target}",
                    rel(&file)
                );
                providers += 1;
            }
        }
    }
    assert!(
        datasources > 0,
        "{GRAFANA_PROVISIONING}: no Prometheus data source"
    );
    assert!(
        providers > 0,
        "{GRAFANA_PROVISIONING}: no dashboards provider"
    );
}

#[test]
fn the_kubernetes_manifests_are_complete_and_consistent() {
    let k8s = k8s();
    let dir = root().join(K8S);

    // kustomization.yaml lists every manifest, and only those.
    let listed: BTreeSet<PathBuf> = strings(&k8s.kustomization["resources"])
        .iter()
        .map(|r| dir.join(r))
        .collect();
    let present: BTreeSet<PathBuf> = yaml_files(&dir)
        .into_iter()
        .filter(|f| !f.ends_with("kustomization.yaml"))
        .collect();
    assert_eq!(listed, present, "{K8S}/kustomization.yaml resources");

    let namespace = k8s.namespace();
    assert_eq!(k8s.kustomization["namespace"], namespace.as_str());
    for (file, object) in &k8s.objects {
        let name = &object["metadata"]["name"];
        assert!(
            object["apiVersion"].is_string() && object["kind"].is_string() && name.is_string(),
            "{}: an object without apiVersion, kind or name",
            rel(file)
        );
        if object["kind"] != "Namespace" {
            assert_eq!(
                object["metadata"]["namespace"],
                namespace.as_str(),
                "{}: {name}",
                rel(file)
            );
        }
    }

    // The processes, as many as the topology needs.
    for (subcommand, at_least) in [("gateway", 2), ("admin", 1), ("worker", 2)] {
        let deployment = k8s.deployment(subcommand);
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        assert!(
            replicas >= at_least,
            "{K8S}: {subcommand} replicas {replicas}"
        );
        assert!(
            selects(
                &deployment["spec"]["selector"]["matchLabels"],
                &deployment["spec"]["template"]["metadata"]["labels"]
            ),
            "{K8S}: the {subcommand} Deployment's selector misses its pods"
        );
    }
    let jobs = k8s.of_kind("Job");
    assert_eq!(jobs.len(), 1, "{K8S}: one migration Job");
    assert_eq!(strings(&containers(jobs[0])[0]["args"]), [MIGRATE]);

    // Secure and bounded pods.
    let uid = dockerfile_uid();
    for workload in k8s.workloads() {
        let name = &workload["metadata"]["name"];
        let pod = pod_spec(workload);
        assert_eq!(pod["automountServiceAccountToken"], false, "{K8S}: {name}");
        for container in containers(workload) {
            let security = |key: &str| {
                let own = &container["securityContext"][key];
                if own.is_null() {
                    pod["securityContext"][key].clone()
                } else {
                    own.clone()
                }
            };
            assert_eq!(security("runAsNonRoot"), true, "{K8S}: {name} runAsNonRoot");
            assert_eq!(
                security("runAsUser"),
                u64::from(uid),
                "{K8S}: {name} runAsUser is not the image's USER"
            );
            assert_eq!(
                container["securityContext"]["readOnlyRootFilesystem"], true,
                "{K8S}: {name}"
            );
            assert_eq!(
                container["securityContext"]["allowPrivilegeEscalation"], false,
                "{K8S}: {name}"
            );
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        !container["resources"][bound][resource].is_null(),
                        "{K8S}: {name} has no {bound}.{resource}"
                    );
                }
            }
            for source in container["envFrom"].as_array().into_iter().flatten() {
                // k8s.env panics on a reference to nothing.
                assert!(source.is_object());
            }
            assert!(
                k8s.env(container).contains_key("SCIMGATE_DATABASE_URL"),
                "{K8S}: {name} gets no database URL"
            );
        }
    }
    for deployment in k8s.of_kind("Deployment") {
        // A graceful stop takes up to 30 s (docs/configuration.md).
        let grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace > 30,
            "{K8S}: {} is killed before a graceful stop ends",
            deployment["metadata"]["name"]
        );
    }

    // Services for the gateways and the admin process, and one for metrics.
    let services = k8s.of_kind("Service");
    let pod_labels = |subcommand: &str| {
        k8s.deployment(subcommand)["spec"]["template"]["metadata"]["labels"].clone()
    };
    for subcommand in ["gateway", "admin"] {
        assert!(
            services
                .iter()
                .any(|s| selects(&s["spec"]["selector"], &pod_labels(subcommand))),
            "{K8S}: no Service for the {subcommand} pods"
        );
    }
    assert!(
        services.iter().any(|s| {
            s["spec"]["clusterIP"] == "None"
                && ["gateway", "admin", "worker"]
                    .iter()
                    .all(|c| selects(&s["spec"]["selector"], &pod_labels(c)))
        }),
        "{K8S}: no headless Service over every scimgate process for metrics"
    );

    // The gateway scales on CPU; gateways and workers survive disruptions.
    let hpas = k8s.of_kind("HorizontalPodAutoscaler");
    assert_eq!(hpas.len(), 1, "{K8S}: one HorizontalPodAutoscaler");
    let hpa = hpas[0];
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        k8s.deployment("gateway")["metadata"]["name"]
    );
    assert!(
        hpa["spec"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["resource"]["name"] == "cpu"),
        "{K8S}: the HPA does not scale on CPU"
    );
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap_or(1);
    let max = hpa["spec"]["maxReplicas"].as_u64().unwrap_or(0);
    assert!(min >= 2 && min <= max, "{K8S}: HPA {min}..{max}");
    let pdbs = k8s.of_kind("PodDisruptionBudget");
    for subcommand in ["gateway", "worker"] {
        assert!(
            pdbs.iter().any(|p| {
                p["apiVersion"] == "policy/v1"
                    && selects(
                        &p["spec"]["selector"]["matchLabels"],
                        &pod_labels(subcommand),
                    )
            }),
            "{K8S}: no PodDisruptionBudget for the {subcommand} pods"
        );
    }
}

#[test]
fn the_dockerfile_builds_the_binary_on_a_matching_base() {
    let from = dockerfile_args("FROM");
    assert_eq!(from.len(), 2, "{DOCKERFILE}: a builder and a runtime stage");
    let builder = from[0].split_whitespace().next().unwrap_or_default();
    let runtime = from[1].split_whitespace().next().unwrap_or_default();
    let tag = builder
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("{DOCKERFILE}: the builder is `{builder}`, not rust:"));
    let (version, debian) = tag
        .split_once('-')
        .unwrap_or_else(|| panic!("{DOCKERFILE}: `{builder}` names no Debian release"));
    // The runtime's glibc is the builder's.
    assert_eq!(
        runtime,
        format!("debian:{debian}-slim"),
        "{DOCKERFILE}: build and run on the same Debian release"
    );
    // The toolchain is at least the workspace's rust-version.
    let manifest = read(&root().join("Cargo.toml"));
    let required = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("rust-version in Cargo.toml");
    let numbers = |v: &str| -> Vec<u32> {
        v.split('.')
            .map(|n| n.parse().unwrap_or_else(|_| panic!("version `{v}`")))
            .collect()
    };
    assert!(
        numbers(version) >= numbers(&required),
        "{DOCKERFILE}: Rust {version} is older than the workspace's rust-version {required}"
    );

    let build = dockerfile_args("RUN")
        .into_iter()
        .find(|r| r.contains("cargo build"))
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no cargo build"));
    for flag in [
        "--release",
        "--locked",
        "-p scimgate",
        "target/release/scimgate",
    ] {
        assert!(
            build.contains(flag),
            "{DOCKERFILE}: cargo build without `{flag}`"
        );
    }
    let uid = dockerfile_uid();
    assert_ne!(uid, 0, "{DOCKERFILE}: runs as root");
    let env = dockerfile_env();
    let data_dir = env
        .get("SCIMGATE_DATA_DIR")
        .unwrap_or_else(|| panic!("{DOCKERFILE}: no ENV SCIMGATE_DATA_DIR"));
    let volumes = dockerfile_args("VOLUME").join(" ");
    assert!(
        volumes.contains(&format!("\"{data_dir}\"")),
        "{DOCKERFILE}: the data directory {data_dir} is not a VOLUME"
    );
    let loaded = load(&env).unwrap_or_else(|e| panic!("{DOCKERFILE} ENV: {e}"));
    assert!(
        loaded.warnings.is_empty(),
        "{DOCKERFILE}: {:?}",
        loaded.warnings
    );
    assert_eq!(loaded.config.data_dir, PathBuf::from(data_dir));

    // .dockerignore keeps build output and history out of the context, and
    // nothing the build needs.
    let patterns: Vec<String> = read(&root().join(DOCKERIGNORE))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_owned())
        .collect();
    assert!(
        patterns.iter().all(|p| !p.starts_with('!')),
        "{DOCKERIGNORE}: exceptions (`!`) are not understood by this test"
    );
    let ignored = |path: &str| {
        let mut prefix = String::new();
        path.split('/').any(|part| {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            patterns.iter().any(|p| glob(p, &prefix))
        })
    };
    for excluded in [
        "target/release/scimgate",
        ".git/HEAD",
        "crates/scim/target/x",
    ] {
        assert!(
            ignored(excluded),
            "{DOCKERIGNORE} lets {excluded} into the context"
        );
    }
    let mut needed = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".to_owned(),
        ".cargo/config.toml".to_owned(),
    ];
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = "))
        .expect("workspace members");
    for member in members.trim_matches(|c| c == '[' || c == ']').split(',') {
        let member = member.trim().trim_matches('"');
        needed.push(format!("{member}/Cargo.toml"));
        needed.push(format!("{member}/src/lib.rs"));
    }
    needed.push("crates/tenant-admin/assets/console.css".to_owned());
    for path in needed {
        if root().join(&path).exists() {
            assert!(
                !ignored(&path),
                "{DOCKERIGNORE} leaves out {path}, which the build needs"
            );
        }
    }
}
