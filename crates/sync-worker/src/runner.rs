//! The worker: leases targets and runs one loop per leased target.
//!
//! Each target's loop works in rounds. A round takes the target's due
//! retries (each the first in line for its resource) and the next events
//! of its tenant after its cursor; sends them, up to
//! `per_target_concurrency` requests at a time, one resource's events one
//! after the other in commit order; and commits everything it learnt in
//! one transaction: the attempts, the deliveries that must wait, the
//! target's health and its new cursor. A crash before that commit loses
//! nothing: the next round (here or in another worker, once the lease
//! runs out) sends the same events again, under the same `webhook-id`.
//!
//! A target that hangs holds up only its own loop: every other target has
//! its own. A retry waits as a row with its due time, never as a sleeping
//! task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use store::delivery::{
    Commit, Delivery, DeliveryChange, DeliveryStatus, Health, LeasedTarget, NewAttempt,
    NewDelivery, TargetKind,
};
use store::{Store, StoreError, StoredEvent, TenantStore};
use tokio::sync::watch;
use uuid::Uuid;

use crate::address::AddressPolicy;
use crate::config::DeliveryConfig;
use crate::envelope::Renderer;
use crate::metrics::Metrics;
use crate::outbound::ScimApp;
use crate::policy::{self, Next, Outcome};
use crate::queue::{Queue, SqlQueue};
use crate::secrets::SecretBox;
use crate::signing::WebhookSecret;
use crate::webhook::{Sent, Webhook};

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The outbound HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
}

struct Shared<Q> {
    store: Store,
    queue: Q,
    config: DeliveryConfig,
    secrets: Option<SecretBox>,
    client: reqwest::Client,
    policy: AddressPolicy,
    owner: String,
    metrics: Metrics,
}

/// The delivery worker of one process, fed by a [`Queue`] (by default
/// the database's, [`SqlQueue`]).
pub struct Worker<Q: Queue = SqlQueue> {
    shared: Arc<Shared<Q>>,
}

impl<Q: Queue> Clone for Worker<Q> {
    fn clone(&self) -> Self {
        Worker {
            shared: self.shared.clone(),
        }
    }
}

/// The target loops of a running worker: awaited on a graceful stop,
/// aborted when `run` is dropped (a crash must not leave loops behind
/// that go on delivering without a lease renewal).
struct Loops(HashMap<Uuid, tokio::task::JoinHandle<()>>);

impl Drop for Loops {
    fn drop(&mut self) {
        for handle in self.0.values() {
            handle.abort();
        }
    }
}

/// What a target's round came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Nothing to do.
    Idle,
    /// Work was done and committed; `full` when the round read a whole
    /// batch of new events (more are probably waiting).
    Worked { full: bool },
    /// Another worker holds the target now, or it was disabled.
    Stop,
}

impl Worker<SqlQueue> {
    /// A worker delivering from `store`'s event log, with target secrets
    /// opened by `secrets` (without a key, every target waits with an
    /// error saying so).
    pub fn new(
        store: Store,
        config: DeliveryConfig,
        secrets: Option<SecretBox>,
        metrics: Metrics,
    ) -> Result<Worker, WorkerError> {
        let queue = SqlQueue::new(store.clone());
        Worker::with_queue(store, queue, config, secrets, metrics)
    }
}

impl<Q: Queue> Worker<Q> {
    /// A worker fed by `queue`, reading tenants and resources from `store`.
    pub fn with_queue(
        store: Store,
        queue: Q,
        mut config: DeliveryConfig,
        secrets: Option<SecretBox>,
        metrics: Metrics,
    ) -> Result<Worker<Q>, WorkerError> {
        config.lease = config.effective_lease();
        let policy = AddressPolicy {
            allow_private: config.allow_private_targets,
        };
        let client = crate::http::client(&policy, config.timeout)?;
        Ok(Worker {
            shared: Arc::new(Shared {
                store,
                queue,
                config,
                secrets,
                client,
                policy,
                owner: format!("worker-{}", Uuid::new_v4()),
                metrics,
            }),
        })
    }

    /// This worker's lease owner name.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// Delivers until `stop` turns true; then lets every target finish
    /// its round (requests in flight end or time out), and gives up its
    /// leases so another worker can continue at once. Dropped instead
    /// (its task aborted), it stops every target's loop at once and gives
    /// nothing back, as a crash would.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let s = &self.shared;
        let mut loops = Loops(HashMap::new());
        let renew = s.config.lease / 3;
        let background = s.queue.background(&s.owner, stop.clone());
        let leasing = async {
            let mut last_housekeeping: Option<tokio::time::Instant> = None;
            let mut stop_main = stop.clone();
            loop {
                if *stop_main.borrow() {
                    break;
                }
                let now = Utc::now();
                let until = now + chrono::Duration::from_std(s.config.lease).unwrap_or_default();
                match s
                    .queue
                    .lease_targets(&s.owner, now, until, s.config.max_targets)
                    .await
                {
                    Ok(leased) => {
                        loops.0.retain(|_, h| !h.is_finished());
                        for lt in leased {
                            let id = lt.target.id;
                            if loops.0.contains_key(&id) {
                                continue;
                            }
                            tracing::debug!(target_id = %id, owner = %s.owner, "delivery: target leased");
                            let worker = self.clone();
                            let stop = stop.clone();
                            loops.0.insert(
                                id,
                                tokio::spawn(async move { worker.target_loop(id, stop).await }),
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "delivery: cannot lease targets"),
                }
                let due = last_housekeeping.is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
                if due {
                    last_housekeeping = Some(tokio::time::Instant::now());
                    self.housekeeping().await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(renew) => {}
                    () = s.queue.relet() => {}
                    changed = stop_main.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        tokio::join!(background, leasing);
        for (_, handle) in loops.0.drain() {
            let _ = handle.await;
        }
        if let Err(e) = s.queue.release(&s.owner).await {
            tracing::warn!(error = %e, "delivery: cannot release leases");
        }
    }

    /// Retention and the gauges that need a query.
    async fn housekeeping(&self) {
        let s = &self.shared;
        let now = Utc::now();
        let delivery = s.store.delivery();
        let age = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        if let Err(e) = delivery
            .prune_attempts(age(s.config.attempt_retention))
            .await
        {
            tracing::warn!(error = %e, "delivery: cannot prune attempts");
        }
        match delivery.prune_horizon().await {
            Ok(horizon) => {
                if let Err(e) = s
                    .store
                    .event_log()
                    .prune(age(s.config.event_retention), horizon)
                    .await
                {
                    tracing::warn!(error = %e, "delivery: cannot prune events");
                }
            }
            Err(e) => tracing::warn!(error = %e, "delivery: cannot compute the prune horizon"),
        }
        if let Err(e) = delivery.drop_orphans().await {
            tracing::warn!(error = %e, "delivery: cannot drop deleted tenants' targets");
        }
        s.metrics.observe_store(&s.store, now).await;
    }

    /// Rounds on one target until it is lost, disabled or `stop` is set.
    async fn target_loop(self, id: Uuid, mut stop: watch::Receiver<bool>) {
        let s = &self.shared;
        let mut tenant: Option<(Uuid, Option<TenantStore>, tokio::time::Instant)> = None;
        // When the next round may start (see `DeliveryConfig::linger`).
        let mut not_before: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            if let Some(at) = not_before.take() {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = stop.changed() => continue,
                }
            }
            // A round starts only with a lease that outlasts it (a request
            // may take the whole timeout): a worker that stalled past its
            // lease stops before sending what another worker now sends.
            let margin = chrono::Duration::from_std(s.config.timeout).unwrap_or_default();
            let lt = match s.queue.target(id).await {
                Ok(Some(lt)) if lt.target.enabled && lt.held_by(&s.owner, Utc::now() + margin) => {
                    lt
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(target_id = %id, error = %e, "delivery: cannot read target");
                    tokio::time::sleep(s.config.poll).await;
                    continue;
                }
            };
            // The tenant's directory, looked up again now and then (it may
            // have been deleted: its last events still go out).
            let fresh = tenant.as_ref().is_some_and(|(t, _, at)| {
                *t == lt.target.tenant_id && at.elapsed() < Duration::from_secs(30)
            });
            if !fresh {
                let found = match s.store.admin().tenant_by_id(lt.target.tenant_id).await {
                    Ok(t) => t.map(|t| s.store.tenant(&t)),
                    Err(e) => {
                        tracing::warn!(error = %e, "delivery: cannot read tenant");
                        tokio::time::sleep(s.config.poll).await;
                        continue;
                    }
                };
                tenant = Some((lt.target.tenant_id, found, tokio::time::Instant::now()));
            }
            let dir = tenant.as_ref().and_then(|(_, d, _)| d.as_ref());
            let started = tokio::time::Instant::now();
            let round = match self.round(&lt, dir, Utc::now()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(target_id = %id, error = %e, "delivery: round failed");
                    Round::Idle
                }
            };
            match round {
                Round::Stop => return,
                Round::Worked { full: true } => continue,
                Round::Worked { full: false } => not_before = Some(started + s.config.linger),
                Round::Idle => {
                    not_before = Some(started + s.config.linger);
                    tokio::select! {
                        _ = s.queue.changed_for(id) => {}
                        _ = tokio::time::sleep(s.config.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// One round on one target (module documentation).
    async fn round(
        &self,
        lt: &LeasedTarget,
        dir: Option<&TenantStore>,
        now: DateTime<Utc>,
    ) -> Result<Round, StoreError> {
        let s = &self.shared;
        let target = &lt.target;
        let due = s.queue.due(target.id, now, 100).await?;
        let fresh = s.queue.next_events(target, s.config.batch).await?;
        if due.is_empty() && fresh.is_empty() {
            return Ok(Round::Idle);
        }
        let full = fresh.len() as u64 >= s.config.batch;
        let cursor = fresh.last().map(|e| e.position);
        let mut retry_events: HashMap<i64, StoredEvent> = s
            .queue
            .events(&due.iter().map(|d| d.event_id).collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let wanted: Vec<StoredEvent> = fresh.into_iter().filter(|e| target.receives(e)).collect();
        let resources: Vec<String> = wanted.iter().map(|e| e.resource_id.clone()).collect();
        let held = s.queue.held(target.id, &resources).await?;

        // Render every body once, shaped by the target's mapping (checked
        // when it was saved; one that no longer checks out stops the
        // round rather than send what it was meant to withhold).
        let mapping = target
            .mapping
            .as_ref()
            .map(mapping::Mapping::parse)
            .transpose()
            .map_err(|e| StoreError::Internal(format!("target {}'s mapping: {e}", target.id)))?
            .map(Arc::new);
        let renderer = Renderer {
            tenant: dir,
            mapping: mapping.as_deref(),
        };
        let to_render: Vec<&StoredEvent> = due
            .iter()
            .filter_map(|d| retry_events.get(&d.event_id))
            .chain(wanted.iter())
            .collect();
        let rendered = renderer.bodies(&to_render).await?;
        let bodies: HashMap<i64, Vec<u8>> = to_render
            .iter()
            .zip(rendered)
            .filter_map(|(e, body)| Some((e.id, body?)))
            .collect();

        let sender = Arc::new(self.sender(lt, dir, mapping, now));
        let mut jobs: Vec<Job> = Vec::new();
        let mut changes: Vec<DeliveryChange> = Vec::new();
        for d in due {
            match retry_events.remove(&d.event_id) {
                Some(e) => jobs.push(Job::Retry(Box::new((d, e)))),
                // Pruned meanwhile: nothing left to send.
                None => changes.push(DeliveryChange::Update {
                    id: d.id,
                    status: DeliveryStatus::Dead,
                    attempts: d.attempts,
                    next_attempt_at: now,
                    last_status: None,
                    last_error: Some("the event is no longer in the log".into()),
                }),
            }
        }
        let mut groups: Vec<(String, Vec<StoredEvent>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for e in wanted {
            if held.contains(&e.resource_id) {
                changes.push(DeliveryChange::Insert(waiting(&e, 0, now, None, None)));
                continue;
            }
            let i = *index.entry(e.resource_id.clone()).or_insert_with(|| {
                groups.push((e.resource_id.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(e);
        }
        jobs.extend(groups.into_iter().map(|(_, events)| Job::Fresh(events)));

        let bodies = Arc::new(bodies);
        let results: Vec<Effects> = futures_util::stream::iter(jobs)
            .map(|job| {
                let worker = self.clone();
                let sender = sender.clone();
                let bodies = bodies.clone();
                async move { worker.run_job(job, &sender, &bodies, now).await }
            })
            .buffer_unordered(s.config.per_target_concurrency.max(1))
            .collect()
            .await;

        let mut commit = Commit {
            now: Utc::now(),
            cursor,
            changes,
            ..Commit::default()
        };
        let mut any_ok = false;
        let mut last_error = None;
        let mut disable = None;
        for r in results {
            commit.attempts.extend(r.attempts);
            commit.changes.extend(r.changes);
            any_ok |= r.any_ok;
            if r.last_error.is_some() {
                last_error = r.last_error;
            }
            if r.gone {
                disable = Some("the endpoint answered 410 Gone".to_owned());
            }
        }
        if !commit.attempts.is_empty() {
            commit.health = Some(match (any_ok, last_error) {
                (true, _) | (false, None) => Health::Ok,
                (false, Some(why)) => Health::Failing(why),
            });
        }
        if disable.is_none() && matches!(commit.health, Some(Health::Failing(_))) {
            let since = target.failing_since.unwrap_or(now);
            if policy::exhausted(Some(since), now, &s.config) {
                disable = Some(format!(
                    "every attempt has failed since {}",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ));
            }
        }
        commit.disable = disable.clone();
        for a in &commit.attempts {
            s.metrics
                .attempt(target.kind.as_str(), &a.outcome, a.latency_ms);
        }
        if !s.queue.commit(target.id, &s.owner, commit).await? {
            tracing::info!(target_id = %target.id, owner = %s.owner, "delivery: lease lost; another worker has the target");
            return Ok(Round::Stop);
        }
        if let Some(reason) = disable {
            s.metrics.disabled(target.kind.as_str());
            tracing::warn!(target_id = %target.id, tenant = %target.tenant_id, %reason, "delivery: target disabled");
            return Ok(Round::Stop);
        }
        Ok(Round::Worked { full })
    }

    /// How to send to this target now (secrets opened), by its kind.
    fn sender(
        &self,
        lt: &LeasedTarget,
        dir: Option<&TenantStore>,
        mapping: Option<Arc<mapping::Mapping>>,
        now: DateTime<Utc>,
    ) -> Result<Sender, SenderError> {
        let s = &self.shared;
        let url = s
            .policy
            .check_url(&lt.target.url)
            .map_err(|e| SenderError::Address(e.to_string()))?;
        let Some(key) = &s.secrets else {
            return Err(SenderError::Secret(
                "cannot open the target's secret: no delivery_secrets_key is configured".into(),
            ));
        };
        if lt.target.kind == TargetKind::Scim {
            let token = key.open(&lt.secrets.current).map_err(|e| {
                SenderError::Secret(format!(
                    "cannot open the target's secret (its SCIM token): {e}"
                ))
            })?;
            return Ok(Sender::Scim(ScimApp {
                base: url,
                token,
                target: lt.target.id,
                links: s.store.delivery(),
                tenant: dir.cloned(),
                profile: lt.target.profile,
                pacer: crate::outbound::Pacer::of(lt.target.id),
                mapping,
            }));
        }
        let open = |sealed: &str| -> Result<WebhookSecret, SenderError> {
            let text = key.open(sealed).map_err(|e| {
                SenderError::Secret(format!("cannot open the target's secret: {e}"))
            })?;
            WebhookSecret::parse(&text)
                .map_err(|e| SenderError::Secret(format!("the target's secret: {e}")))
        };
        let mut secrets = vec![open(&lt.secrets.current)?];
        if let Some((previous, until)) = &lt.secrets.previous
            && *until > now
        {
            // A previous secret sealed under a key this process no longer
            // has (the delivery secrets key was replaced, then the secret
            // rotated) only adds a second signature: the current one
            // signs alone rather than failing every attempt.
            match open(previous) {
                Ok(secret) => secrets.push(secret),
                Err(e) => tracing::warn!(
                    target_id = %lt.target.id,
                    error = %e,
                    "the target's previous secret cannot be opened; signing with the current one only"
                ),
            }
        }
        Ok(Sender::Webhook(Webhook { url, secrets }))
    }

    async fn send(
        &self,
        sender: &Result<Sender, SenderError>,
        event: &StoredEvent,
        body: Option<&Vec<u8>>,
    ) -> Sent {
        let s = &self.shared;
        let sender = match sender {
            Ok(w) => w,
            // A secret that cannot be opened is the operator's to fix:
            // retried, not given up on.
            Err(SenderError::Secret(why)) => {
                return Sent {
                    outcome: Outcome::Network(why.clone()),
                    status: None,
                    latency: Duration::ZERO,
                    response: None,
                    error: Some(why.clone()),
                };
            }
            Err(SenderError::Address(why)) => return Sent::refused(why.clone()),
        };
        let Some(body) = body else {
            return Sent::refused("the event could not be rendered".into());
        };
        let webhook = match sender {
            Sender::Webhook(w) => w,
            Sender::Scim(app) => {
                // The envelope again as JSON: outbound SCIM sends its
                // `data` reshaped, not the body.
                let Ok(envelope) = serde_json::from_slice::<serde_json::Value>(body) else {
                    return Sent::refused("the event could not be rendered".into());
                };
                return app
                    .deliver(
                        &s.client,
                        &s.policy,
                        event,
                        &envelope,
                        s.config.response_excerpt,
                    )
                    .await;
            }
        };
        webhook
            .send(
                &s.client,
                &s.policy,
                &event.public_id(),
                body.clone(),
                Utc::now(),
                s.config.response_excerpt,
            )
            .await
    }

    async fn run_job(
        &self,
        job: Job,
        sender: &Result<Sender, SenderError>,
        bodies: &HashMap<i64, Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Effects {
        let s = &self.shared;
        let mut fx = Effects::default();
        match job {
            Job::Retry(retry) => {
                let (d, event) = *retry;
                let sent = self.send(sender, &event, bodies.get(&event.id)).await;
                let attempts = d.attempts + 1;
                let next = policy::next(
                    attempts,
                    &sent.outcome,
                    now,
                    &s.config,
                    policy::draw_jitter(s.config.jitter),
                );
                fx.record(&event, attempts, &sent, &next);
                fx.changes.push(match next {
                    Next::Delivered => DeliveryChange::Delete(d.id),
                    Next::RetryAt(at) => update(&d, DeliveryStatus::Pending, attempts, at, &sent),
                    Next::Dead => update(&d, DeliveryStatus::Dead, attempts, now, &sent),
                    Next::DisableTarget => {
                        update(&d, DeliveryStatus::Pending, attempts, now, &sent)
                    }
                });
            }
            Job::Fresh(events) => {
                let mut rest = events.into_iter();
                while let Some(event) = rest.next() {
                    let sent = self.send(sender, &event, bodies.get(&event.id)).await;
                    let next = policy::next(
                        1,
                        &sent.outcome,
                        now,
                        &s.config,
                        policy::draw_jitter(s.config.jitter),
                    );
                    fx.record(&event, 1, &sent, &next);
                    let hold_at = match next {
                        Next::Delivered => continue,
                        Next::Dead => {
                            fx.changes.push(DeliveryChange::Insert(waiting(
                                &event,
                                1,
                                now,
                                sent.status,
                                sent.error.clone(),
                            )));
                            if let Some(DeliveryChange::Insert(d)) = fx.changes.last_mut() {
                                d.status = DeliveryStatus::Dead;
                            }
                            continue;
                        }
                        Next::RetryAt(at) => at,
                        Next::DisableTarget => now,
                    };
                    let mut first = waiting(&event, 1, hold_at, sent.status, sent.error.clone());
                    first.next_attempt_at = hold_at;
                    fx.changes.push(DeliveryChange::Insert(first));
                    // The rest of this resource's events wait behind it.
                    for later in rest.by_ref() {
                        fx.changes
                            .push(DeliveryChange::Insert(waiting(&later, 0, now, None, None)));
                    }
                }
            }
        }
        fx
    }
}

/// Why a round cannot send to its target at all.
#[derive(Debug, thiserror::Error)]
enum SenderError {
    /// The target's secret cannot be opened (no key configured, or not
    /// the key it was sealed with): the operator's to fix, so its events
    /// are retried, not given up on.
    #[error("{0}")]
    Secret(String),
    /// The target's address is refused (private ranges, bad scheme): its
    /// events fail permanently.
    #[error("{0}")]
    Address(String),
}

/// How a round sends, by the target's kind.
enum Sender {
    /// Signed POSTs of the envelope.
    Webhook(Webhook),
    /// Requests to the application's SCIM endpoint.
    Scim(ScimApp),
}

/// Work for one slot of the target's concurrency.
enum Job {
    /// A due retry (first in line for its resource).
    Retry(Box<(Delivery, StoredEvent)>),
    /// New events of one resource, in commit order.
    Fresh(Vec<StoredEvent>),
}

/// What one job learnt.
#[derive(Default)]
struct Effects {
    attempts: Vec<NewAttempt>,
    changes: Vec<DeliveryChange>,
    any_ok: bool,
    last_error: Option<String>,
    gone: bool,
}

impl Effects {
    fn record(&mut self, event: &StoredEvent, attempt: u32, sent: &Sent, next: &Next) {
        let outcome = match next {
            Next::Delivered => "delivered",
            Next::RetryAt(_) => "retry",
            Next::Dead => "dead",
            Next::DisableTarget => "disabled",
        };
        if matches!(next, Next::Delivered) {
            self.any_ok = true;
        } else {
            self.last_error = sent.error.clone().or_else(|| Some(outcome.to_owned()));
        }
        self.gone |= matches!(next, Next::DisableTarget);
        self.attempts.push(NewAttempt {
            event_id: event.id,
            resource_id: event.resource_id.clone(),
            attempt,
            at: Utc::now(),
            status_code: sent.status,
            outcome: outcome.to_owned(),
            latency_ms: u64::try_from(sent.latency.as_millis()).unwrap_or(u64::MAX),
            response: sent.response.clone(),
            error: sent.error.clone(),
        });
    }
}

/// A pending row for `event`.
fn waiting(
    event: &StoredEvent,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    last_status: Option<u16>,
    last_error: Option<String>,
) -> NewDelivery {
    NewDelivery {
        event_id: event.id,
        position: event.position,
        resource_id: event.resource_id.clone(),
        status: DeliveryStatus::Pending,
        attempts,
        next_attempt_at,
        last_status,
        last_error,
    }
}

fn update(
    d: &Delivery,
    status: DeliveryStatus,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
    sent: &Sent,
) -> DeliveryChange {
    DeliveryChange::Update {
        id: d.id,
        status,
        attempts,
        next_attempt_at,
        last_status: sent.status,
        last_error: sent.error.clone(),
    }
}
