//! The provisioning log: one entry per SCIM write, success or failure,
//! written off the request path.
//!
//! Handlers put entries on a bounded queue and return at once; a background
//! task (see `Gateway::spawn_background`) writes them with
//! `TenantStore::record`. When the queue is full (the database is slower
//! than the write rate for a sustained stretch) new entries are dropped,
//! each drop logged as a warning with its request id and counted in
//! `scimgate_provisioning_log_dropped_total`: the log is an audit aid and
//! must never slow or fail the provisioning it describes. The resources
//! themselves are committed before the response either way.

use std::sync::Mutex;
use std::time::Instant;

use actix_web::{HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use store::copies::Routed;
use store::{ProvisioningEntry, TenantStore};
use tokio::sync::mpsc;

use crate::auth::Authorized;
use crate::error::ApiError;
use crate::observe::{self, Metrics};
use crate::render::Kind;

/// Entries waiting to be written, at most.
pub(crate) const QUEUE_CAPACITY: usize = 10_000;

type Item = (TenantStore, ProvisioningEntry);

/// The sending side, held by the gateway; the receiver is taken once by
/// the background writer.
pub(crate) struct Queue {
    tx: mpsc::Sender<Item>,
    rx: Mutex<Option<mpsc::Receiver<Item>>>,
}

impl Queue {
    pub(crate) fn new() -> Queue {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Queue {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Item>> {
        self.rx.lock().ok().and_then(|mut r| r.take())
    }

    fn push(&self, metrics: &Metrics, store: TenantStore, entry: ProvisioningEntry) {
        if let Err(e) = self.tx.try_send((store, entry)) {
            metrics.log_dropped.inc();
            let entry = match e {
                mpsc::error::TrySendError::Full((_, e))
                | mpsc::error::TrySendError::Closed((_, e)) => e,
            };
            tracing::warn!(
                request_id = %entry.request_id,
                method = %entry.method,
                resource_type = %entry.resource_type,
                "provisioning-log queue full; entry dropped"
            );
        }
    }
}

/// Writes queued entries until every sender is gone or `stop` is set; on
/// stop, closes the queue and writes what was already queued, so a graceful
/// shutdown loses no entry.
pub(crate) async fn run_writer(
    mut rx: mpsc::Receiver<Item>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => Some(n),
            () = crate::stopped(&mut stop) => None,
        };
        match received {
            Some(0) => return,
            Some(_) => write(&mut batch).await,
            None => break,
        }
    }
    rx.close();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        write(&mut batch).await;
    }
}

/// Entries written per transaction, at most: whatever is queued is taken
/// at once, so under load one insert carries many entries.
const BATCH: usize = 512;

async fn write(batch: &mut Vec<Item>) {
    let entries = std::mem::take(batch);
    let count = entries.len();
    let first = entries.first().map(|(_, e)| e.request_id.clone());
    if let Err(e) = TenantStore::record_many(entries).await {
        tracing::warn!(
            first_request_id = first.as_deref().unwrap_or(""),
            count,
            error = %e,
            "provisioning-log entries not written"
        );
    }
}

/// One write being audited: started when the handler starts, finished with
/// its result.
pub(crate) struct Audit {
    started: Instant,
    at: DateTime<Utc>,
    method: &'static str,
    kind: Kind,
    operation: &'static str,
    id: Option<String>,
    identifier: Option<String>,
    routed: Vec<Routed>,
}

impl Audit {
    /// Starts auditing `operation` ("create", "replace", "patch", "delete").
    pub(crate) fn start(
        method: &'static str,
        kind: Kind,
        operation: &'static str,
        id: Option<&str>,
    ) -> Audit {
        Audit {
            started: Instant::now(),
            at: Utc::now(),
            method,
            kind,
            operation,
            id: id.map(str::to_owned),
            identifier: None,
            routed: Vec::new(),
        }
    }

    /// Notes the copies a write on a super tenant changed in its children.
    pub(crate) fn routed(&mut self, routed: Vec<Routed>) {
        self.routed = routed;
    }

    /// Notes the resource id once it is known.
    pub(crate) fn id(&mut self, id: &str) {
        self.id = Some(id.to_owned());
    }

    /// Notes the best identifier in a document: userName (users) or
    /// displayName (groups), else externalId.
    pub(crate) fn identify(&mut self, doc: &Value) {
        let primary = match self.kind {
            Kind::User => "userName",
            Kind::Group => "displayName",
        };
        let pick = |name: &str| {
            doc.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
                    .map(|s| s.chars().take(256).collect::<String>())
            })
        };
        if let Some(found) = pick(primary).or_else(|| pick("externalId")) {
            self.identifier = Some(found);
        }
    }

    /// Records the outcome: the metric at once, the log entry via the queue.
    pub(crate) fn finish<R>(self, auth: &Authorized<R>, result: &Result<HttpResponse, ApiError>) {
        let (status, detail) = match result {
            Ok(res) => (res.status().as_u16(), None),
            Err(e) => (e.status_code().as_u16(), Some(e.client_detail())),
        };
        let outcome = if status < 400 { "success" } else { "failure" };
        let shared = &auth.shared;
        shared
            .metrics
            .operations
            .with_label_values(&[
                &shared.tenant_label(auth.tenant.slug()),
                self.kind.name(),
                self.operation,
                outcome,
            ])
            .inc();
        for r in &self.routed {
            shared
                .metrics
                .fanout
                .with_label_values(&[
                    &shared.tenant_label(auth.tenant.slug()),
                    &shared.tenant_label(r.child.as_str()),
                    r.resource_type,
                    r.action.as_str(),
                ])
                .inc();
        }
        let routed = (!self.routed.is_empty()).then(|| store::copies::routed_json(&self.routed));
        let entry = ProvisioningEntry {
            at: self.at,
            method: self.method.to_owned(),
            resource_type: self.kind.name().to_owned(),
            resource_id: self.id,
            identifier: self.identifier,
            outcome: outcome.to_owned(),
            status,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            request_id: observe::current_request_id(),
            detail,
            routed,
        };
        shared.log.push(&shared.metrics, auth.store.clone(), entry);
    }
}
