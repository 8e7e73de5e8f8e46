//! Delivery benchmarks (docs/benchmarks.md, `scripts/bench-delivery`):
//! - [`throughput`]: events per second one worker delivers from a
//!   backlog to a loopback receiver;
//! - [`mix`]: the steady SCIM mix against a running `scimgate serve`,
//!   optionally with a webhook target on a loopback receiver, and each
//!   event's lag (arrival minus its envelope's `occurred_at`);
//! - [`workers`]: events per second `scimgate worker` processes deliver
//!   from a backlog of several tenants when they share it through Redis.
//!
//! Both run the receiver on a thread of its own (`bench-receiver`) so its
//! CPU can be read apart from the rest.

pub mod cpu;
pub mod mix;
pub mod receiver;
pub mod throughput;
pub mod workers;

use std::collections::BTreeMap;
use std::time::Duration;

use store::TenantStore;

use crate::LoadError;
use receiver::Receiver;

/// Runs `measure` on a two-thread runtime (threads named `name`) beside a
/// receiver on its own thread (see [`ReceiverThread::start`]), and stops
/// both once it is done; blocks the calling thread.
pub fn with_receiver<T, F>(
    sample: u64,
    name: &str,
    measure: impl FnOnce(Receiver) -> F,
) -> Result<T, LoadError>
where
    F: std::future::Future<Output = Result<T, LoadError>>,
{
    let receiver = ReceiverThread::start(sample, false)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| LoadError(format!("cannot start a runtime: {e}")))?;
    let result = runtime.block_on(measure(receiver.receiver.clone()));
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(receiver);
    result
}

/// Appends a report's CPU lines: per group (e.g. "server", "bench"), the
/// cores each thread or process used, leaving out those near zero.
pub fn push_cpu_lines(out: &mut String, groups: &[(&str, &BTreeMap<String, f64>)]) {
    for (what, cpu) in groups {
        if cpu.is_empty() {
            continue;
        }
        out.push_str(&format!("  {what} CPU (cores):"));
        for (name, cores) in cpu.iter() {
            if *cores >= 0.005 {
                out.push_str(&format!(" {name} {cores:.2};"));
            }
        }
        out.push('\n');
    }
}

/// The receiver on its own thread and runtime; dropping it stops both.
pub struct ReceiverThread {
    /// The receiver (clones share its records).
    pub receiver: Receiver,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReceiverThread {
    /// Starts a receiver (see [`Receiver::start`]) on a new thread.
    pub fn start(sample: u64, lag: bool) -> Result<ReceiverThread, LoadError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(LoadError(format!(
                            "cannot start the receiver's runtime: {e}"
                        ))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let started = Receiver::start(sample, lag).await;
                    let ok = started.is_ok();
                    let _ = ready_tx.send(started);
                    if ok {
                        let _ = stopped.await;
                    }
                });
            })
            .map_err(|e| LoadError(format!("cannot start the receiver's thread: {e}")))?;
        let receiver = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| LoadError("the receiver did not start".into()))??;
        Ok(ReceiverThread {
            receiver,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ReceiverThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The tenant's events after position `after`: their ids, and the last
/// position (`after` when there are none).
pub async fn all_events(dir: &TenantStore, after: i64) -> Result<(Vec<i64>, i64), LoadError> {
    let mut ids = Vec::new();
    let mut last = after;
    loop {
        let page = dir
            .events_after(last, 1000)
            .await
            .map_err(|e| LoadError(format!("cannot read the event log: {e}")))?;
        let Some(end) = page.last() else {
            return Ok((ids, last));
        };
        last = end.position;
        ids.extend(page.iter().map(|e| e.id));
    }
}

/// CPU seconds per thread name, and the same as cores over `elapsed`,
/// with a `total`.
pub fn per_thread(
    cpu: BTreeMap<String, f64>,
    elapsed: Duration,
) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut secs = cpu;
    let total: f64 = secs.values().sum();
    secs.insert("total".into(), total);
    let wall = elapsed.as_secs_f64().max(1e-9);
    let cores = secs.iter().map(|(k, v)| (k.clone(), v / wall)).collect();
    (secs, cores)
}

/// The value at `q` (0..=1) of sorted `values` (nearest rank); 0 if empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
