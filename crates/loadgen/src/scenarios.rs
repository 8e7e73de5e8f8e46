//! The scenarios: Entra-shaped request bodies, workers and their loops.
//!
//! Every worker loop is bounded twice: by a count (the work items, or a cap
//! on iterations) and by the run's deadline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::client::{Conn, Endpoint, Request};
use crate::report::{InitialSummary, Report, Stats};
use crate::{LoadError, Options, Scenario, with_origin};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Member operations per group PATCH in the initial cycle (Entra: one member per op, several ops per request).
const MEMBER_OPS_PER_PATCH: usize = 10;
/// Upper bound on any worker's iterations, whatever the deadline.
const MAX_ITERATIONS_PER_WORKER: u64 = 50_000_000;
/// Users and groups sampled per tenant for the PATCHes of `steady`.
const SAMPLE: usize = 1000;

/// The userName of user `i`.
fn user_name(i: usize) -> String {
    format!("loadgen.user{i:07}@example.test")
}

/// The displayName of group `g`.
fn group_name(g: usize) -> String {
    format!("loadgen group {g:05}")
}

/// Percent-encodes a query component (everything but RFC 3986 unreserved characters).
fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len() * 2);
    for byte in component.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn user_body(t: usize, i: usize) -> Value {
    let name = user_name(i);
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": format!("{t:08x}-0000-4000-8000-{i:012x}"),
        "userName": name,
        "active": true,
        "displayName": format!("Load User{i}"),
        "emails": [{"primary": true, "type": "work", "value": name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": format!("Load User{i}"), "familyName": format!("User{i}"), "givenName": "Load"},
        ENTERPRISE: {"employeeNumber": i.to_string(), "department": format!("Dept {}", i % 20)}
    })
}

fn group_body(t: usize, g: usize) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "externalId": format!("{t:08x}-0000-4000-9000-{g:012x}"),
        "displayName": group_name(g),
        "members": []
    })
}

pub(crate) fn member_patch(op: &str, ids: &[&str]) -> Value {
    let ops: Vec<Value> = ids
        .iter()
        .map(|id| json!({"op": op, "path": "members", "value": [{"value": id}]}))
        .collect();
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

pub(crate) fn user_patch(display_name: &str, active: bool) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "Replace", "path": "displayName", "value": display_name},
        {"op": "Replace", "path": "active", "value": if active { "True" } else { "False" }}
    ]})
}

/// A `userName eq` lookup of user `i`.
pub(crate) fn filter_users(target: &Endpoint, i: usize) -> Request<'_> {
    let filter = format!("userName eq \"{}\"", user_name(i));
    target.get(&format!("/Users?filter={}", encode(&filter)))
}

/// A `displayName eq` lookup of group `g`, without its members.
fn filter_groups(target: &Endpoint, g: usize) -> Request<'_> {
    let filter = format!("displayName eq \"{}\"", group_name(g));
    target.get(&format!(
        "/Groups?filter={}&excludedAttributes=members",
        encode(&filter)
    ))
}

/// A request with `body` as its JSON.
pub(crate) fn send<'a>(
    target: &'a Endpoint,
    method: Method,
    path: &str,
    body: &Value,
) -> Request<'a> {
    target.send(method, path, body.to_string().into_bytes())
}

/// What one worker owns: its connection and its figures.
#[derive(Default)]
struct Worker {
    conn: Conn,
    stats: Stats,
}

/// Sends a request, records it under `op` and returns the parsed body of a
/// 2xx reply (`Null` when empty).
async fn call(worker: &mut Worker, op: &'static str, request: Request<'_>) -> Option<Value> {
    let body = exchange(worker, op, request).await?;
    Some(if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    })
}

/// Sends a request whose reply body is not needed, records it under `op`
/// and says whether it succeeded. Skipping the parse keeps the load tool's
/// own CPU (it shares the machine with the server) off large replies such
/// as a group with all its members.
async fn call_ok(worker: &mut Worker, op: &'static str, request: Request<'_>) -> bool {
    exchange(worker, op, request).await.is_some()
}

/// Sends a request, records it under `op` and returns the raw body of a
/// 2xx reply.
async fn exchange(
    worker: &mut Worker,
    op: &'static str,
    request: Request<'_>,
) -> Option<bytes::Bytes> {
    let start = Instant::now();
    let result = worker.conn.exchange(request).await;
    let latency = start.elapsed();
    let stats = &mut worker.stats;
    match result {
        Ok((status, body)) if (200..300).contains(&status) => {
            stats.record(op, latency, None);
            stats.reply_bytes(op, body.len() as u64);
            Some(body)
        }
        Ok((status, _)) => {
            stats.record(op, latency, Some(status.to_string()));
            None
        }
        Err(_) => {
            stats.record(op, latency, Some("transport".into()));
            None
        }
    }
}

/// The id of the first resource of a list response, and the total.
pub(crate) fn first_of_list(list: &Value) -> (u64, Option<String>) {
    let total = list["totalResults"].as_u64().unwrap_or(0);
    let id = list["Resources"][0]["id"].as_str().map(str::to_string);
    (total, id)
}

/// The targets' endpoints once per gateway (`[gateway][target]`); one set,
/// the URLs as given, without gateways.
fn endpoint_sets(options: &Options) -> Result<Vec<Vec<Endpoint>>, LoadError> {
    let endpoints = |origin: Option<&str>| {
        options
            .targets
            .iter()
            .map(|t| match origin {
                Some(o) => Endpoint::new(&with_origin(&t.scim_url, o)?, &t.token),
                None => Endpoint::new(&t.scim_url, &t.token),
            })
            .collect::<Result<Vec<_>, _>>()
    };
    if options.gateways.is_empty() {
        Ok(vec![endpoints(None)?])
    } else {
        options
            .gateways
            .iter()
            .map(|g| endpoints(Some(g)))
            .collect()
    }
}

pub(crate) async fn run(options: Options) -> Result<Report, LoadError> {
    let sets = endpoint_sets(&options)?;
    let gateways = sets.len();
    let mut report = match options.scenario {
        Scenario::Initial => initial(sets, options).await?,
        // The initial cycle with one group: it gets every user, and one
        // worker PATCHes it, as Entra changes one group at a time.
        Scenario::LargeGroup => {
            let options = Options {
                groups: 1,
                ..options
            };
            initial(sets, options).await?
        }
        Scenario::Steady | Scenario::Lookup => mixed(sets, options).await?,
    };
    report.gateways = gateways;
    Ok(report)
}

/// State the initial cycle's workers share.
struct Initial {
    /// The targets once per gateway: worker `w` uses set `w % sets.len()`.
    sets: Vec<Vec<Endpoint>>,
    /// Targets (tenants) per set.
    targets: usize,
    users: usize,
    groups: usize,
    deadline: Instant,
    next: AtomicUsize,
    /// User ids per target, filled by the user phase, read by the group phase.
    ids: Vec<Vec<OnceLock<String>>>,
    created: AtomicU64,
    existing: AtomicU64,
    groups_created: AtomicU64,
    members_added: AtomicU64,
}

impl Initial {
    /// The next work item below `total`, unless the deadline has passed.
    fn take(&self, total: usize) -> Option<usize> {
        if Instant::now() >= self.deadline {
            return None;
        }
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k < total).then_some(k)
    }

    async fn user(&self, worker: &mut Worker, set: usize, k: usize) {
        let t = k % self.targets;
        let i = k / self.targets;
        let target = &self.sets[set][t];
        let Some(list) = call(worker, "get_user_by_userName", filter_users(target, i)).await else {
            return;
        };
        let (total, id) = first_of_list(&list);
        let id = if total > 0 {
            self.existing.fetch_add(1, Ordering::Relaxed);
            id
        } else {
            let created = call(
                worker,
                "post_user",
                send(target, Method::POST, "/Users", &user_body(t, i)),
            )
            .await;
            let id = created.and_then(|c| c["id"].as_str().map(str::to_string));
            if id.is_some() {
                self.created.fetch_add(1, Ordering::Relaxed);
            }
            id
        };
        if let Some(id) = id {
            let _ = self.ids[t][i].set(id);
        }
    }

    async fn group(&self, worker: &mut Worker, set: usize, k: usize) {
        let t = k % self.targets;
        let g = k / self.targets;
        let target = &self.sets[set][t];
        let Some(list) = call(worker, "get_group_by_displayName", filter_groups(target, g)).await
        else {
            return;
        };
        let (total, id) = first_of_list(&list);
        let id = if total > 0 {
            id
        } else {
            let created = call(
                worker,
                "post_group",
                send(target, Method::POST, "/Groups", &group_body(t, g)),
            )
            .await;
            let id = created.and_then(|c| c["id"].as_str().map(str::to_string));
            if id.is_some() {
                self.groups_created.fetch_add(1, Ordering::Relaxed);
            }
            id
        };
        let Some(group_id) = id else { return };
        // Group g gets the users i with i % groups == g.
        let members: Vec<&str> = (g..self.users)
            .step_by(self.groups)
            .filter_map(|i| self.ids[t][i].get().map(String::as_str))
            .collect();
        for batch in members.chunks(MEMBER_OPS_PER_PATCH) {
            if Instant::now() >= self.deadline {
                return;
            }
            let path = format!("/Groups/{group_id}");
            let body = member_patch("Add", batch);
            if call_ok(
                worker,
                "patch_group_add_members",
                send(target, Method::PATCH, &path, &body),
            )
            .await
            {
                self.members_added
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn initial(sets: Vec<Vec<Endpoint>>, options: Options) -> Result<Report, LoadError> {
    let start = Instant::now();
    let targets = options.targets.len();
    let shared = Arc::new(Initial {
        ids: (0..targets)
            .map(|_| (0..options.users).map(|_| OnceLock::new()).collect())
            .collect(),
        sets,
        targets,
        users: options.users,
        groups: options.groups,
        deadline: start + options.duration,
        next: AtomicUsize::new(0),
        created: AtomicU64::new(0),
        existing: AtomicU64::new(0),
        groups_created: AtomicU64::new(0),
        members_added: AtomicU64::new(0),
    });

    let mut stats = Stats::default();
    let user_items = options.users * targets;
    let workers: Vec<_> = (0..options.concurrency)
        .map(|w| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut worker = Worker::default();
                let set = w % shared.sets.len();
                while let Some(k) = shared.take(user_items) {
                    shared.user(&mut worker, set, k).await;
                }
                worker.stats
            })
        })
        .collect();
    for worker in workers {
        stats.merge(
            &worker
                .await
                .map_err(|e| LoadError(format!("worker failed: {e}")))?,
        );
    }
    let users_phase = start.elapsed();

    shared.next.store(0, Ordering::Relaxed);
    let group_items = options.groups * targets;
    let workers: Vec<_> = (0..options.concurrency.min(group_items.max(1)))
        .map(|w| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut worker = Worker::default();
                let set = w % shared.sets.len();
                while let Some(k) = shared.take(group_items) {
                    shared.group(&mut worker, set, k).await;
                }
                worker.stats
            })
        })
        .collect();
    for worker in workers {
        stats.merge(
            &worker
                .await
                .map_err(|e| LoadError(format!("worker failed: {e}")))?,
        );
    }
    let elapsed = start.elapsed();
    let completed = Instant::now() < shared.deadline;
    let group_requests: u64 = [
        "get_group_by_displayName",
        "post_group",
        "patch_group_add_members",
    ]
    .iter()
    .filter_map(|op| stats.op(op).map(|s| s.count()))
    .sum();
    let groups_phase = elapsed - users_phase;

    let users_done =
        shared.created.load(Ordering::Relaxed) + shared.existing.load(Ordering::Relaxed);
    let mut report = Report::new(
        options.scenario.name(),
        targets,
        options.concurrency,
        elapsed,
        completed,
        &stats,
    );
    report.initial = Some(InitialSummary {
        users_created: shared.created.load(Ordering::Relaxed),
        users_existing: shared.existing.load(Ordering::Relaxed),
        groups_created: shared.groups_created.load(Ordering::Relaxed),
        members_added: shared.members_added.load(Ordering::Relaxed),
        users_phase_secs: users_phase.as_secs_f64(),
        groups_phase_secs: groups_phase.as_secs_f64(),
        users_per_sec: users_done as f64 / elapsed.as_secs_f64().max(1e-9),
        groups_phase_requests_per_sec: group_requests as f64 / groups_phase.as_secs_f64().max(1e-9),
    });
    Ok(report)
}

/// Ids sampled from one tenant for the PATCHes of `steady`.
pub(crate) struct Sample {
    pub(crate) users: Vec<String>,
    pub(crate) groups: Vec<String>,
}

pub(crate) async fn sample(target: &Endpoint, with_groups: bool) -> Result<Sample, LoadError> {
    let ids = |list: Option<Value>| -> Vec<String> {
        list.and_then(|l| l["Resources"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect()
    };
    let mut scratch = Worker::default();
    let users = ids(call(
        &mut scratch,
        "sample",
        target.get(&format!(
            "/Users?startIndex=1&count={SAMPLE}&attributes=userName"
        )),
    )
    .await);
    let groups = if with_groups {
        ids(call(
            &mut scratch,
            "sample",
            target.get(&format!(
                "/Groups?startIndex=1&count={SAMPLE}&attributes=displayName"
            )),
        )
        .await)
    } else {
        Vec::new()
    };
    if users.is_empty() {
        return Err(LoadError(format!(
            "{}: no users found; run the initial scenario first",
            target.url
        )));
    }
    Ok(Sample { users, groups })
}

async fn mixed(sets: Vec<Vec<Endpoint>>, options: Options) -> Result<Report, LoadError> {
    let steady = options.scenario == Scenario::Steady;
    let tenants = options.targets.len();
    let mut samples = Vec::with_capacity(tenants);
    if steady {
        // Every set holds the same tenants: sample them through the first.
        for target in sets.first().into_iter().flatten() {
            samples.push(sample(target, true).await?);
        }
    }
    let samples = Arc::new(samples);
    let sets = Arc::new(sets);
    let start = Instant::now();
    let deadline = start + options.duration;
    let workers: Vec<_> = (0..options.concurrency)
        .map(|w| {
            let samples = Arc::clone(&samples);
            let sets = Arc::clone(&sets);
            let users = options.users;
            tokio::spawn(async move {
                let mut worker = Worker::default();
                // One gateway per worker (its connection), round-robin.
                let targets = &sets[w % sets.len()];
                let mut rng = StdRng::seed_from_u64(0x5c17 + w as u64);
                for _ in 0..MAX_ITERATIONS_PER_WORKER {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let t = rng.random_range(0..targets.len());
                    let target = &targets[t];
                    let roll = if steady { rng.random_range(0..100) } else { 0 };
                    if roll < 60 {
                        // Entra's lookup before every change: expect exactly one user.
                        let i = rng.random_range(0..users);
                        let op = "get_user_by_userName";
                        if let Some(list) = call(&mut worker, op, filter_users(target, i)).await
                            && first_of_list(&list).0 != 1
                        {
                            worker.stats.mark_error(op, "unexpected");
                        }
                    } else if roll < 85 || samples[t].groups.is_empty() {
                        let users = &samples[t].users;
                        let id = &users[rng.random_range(0..users.len())];
                        let body =
                            user_patch(&format!("Load User {}", rng.random::<u32>()), rng.random());
                        let path = format!("/Users/{id}");
                        call_ok(
                            &mut worker,
                            "patch_user",
                            send(target, Method::PATCH, &path, &body),
                        )
                        .await;
                    } else {
                        let sample = &samples[t];
                        let group = &sample.groups[rng.random_range(0..sample.groups.len())];
                        let user = sample.users[rng.random_range(0..sample.users.len())].as_str();
                        let path = format!("/Groups/{group}");
                        let add = member_patch("Add", &[user]);
                        call_ok(
                            &mut worker,
                            "patch_group_members",
                            send(target, Method::PATCH, &path, &add),
                        )
                        .await;
                        let remove = member_patch("Remove", &[user]);
                        call_ok(
                            &mut worker,
                            "patch_group_members",
                            send(target, Method::PATCH, &path, &remove),
                        )
                        .await;
                    }
                }
                worker.stats
            })
        })
        .collect();
    let mut stats = Stats::default();
    for worker in workers {
        stats.merge(
            &worker
                .await
                .map_err(|e| LoadError(format!("worker failed: {e}")))?,
        );
    }
    Ok(Report::new(
        options.scenario.name(),
        tenants,
        options.concurrency,
        start.elapsed(),
        true,
        &stats,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(
            encode("userName eq \"a.b@c\""),
            "userName%20eq%20%22a.b%40c%22"
        );
    }

    #[test]
    fn bodies_have_entra_shape() {
        let user = user_body(0, 7);
        assert_eq!(user["userName"], "loadgen.user0000007@example.test");
        assert_eq!(user[ENTERPRISE]["employeeNumber"], "7");
        assert_eq!(user["emails"][0]["type"], "work");
        let patch = member_patch("Add", &["a", "b"]);
        assert_eq!(patch["Operations"].as_array().map(Vec::len), Some(2));
        assert_eq!(user_patch("x", false)["Operations"][1]["value"], "False");
    }
}
