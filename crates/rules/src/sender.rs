//! Sending alerts to external Alertmanagers, as Prometheus's notifier does: a bounded queue
//! (oldest alerts dropped when full), batches posted to every configured Alertmanager's
//! `/api/v2/alerts` at once, and per-Alertmanager counters of sent, failed and dropped alerts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tocsin_model::time::format_rfc3339_ms;

use crate::manager::AlertSink;

/// One Alertmanager to send to.
#[derive(Clone)]
pub struct AmTarget {
    /// Full URL of the alerts endpoint, e.g. `http://am:9093/prefix/api/v2/alerts`.
    pub url: String,
    pub client: tocsin_httpclient::Client,
    pub timeout: Duration,
}

/// Per-Alertmanager counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TargetCounters {
    pub sent: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Debug, Default)]
pub struct SenderMetrics {
    pub dropped: AtomicU64,
    pub by_target: Mutex<std::collections::BTreeMap<String, Arc<TargetCounters>>>,
}

impl SenderMetrics {
    fn target(&self, url: &str) -> Arc<TargetCounters> {
        self.by_target
            .lock()
            .entry(url.to_string())
            .or_default()
            .clone()
    }
}

impl std::fmt::Debug for AlertmanagerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertmanagerSender")
    }
}

pub struct AlertmanagerSender {
    queue: Mutex<VecDeque<tocsin_model::Alert>>,
    wake: tokio::sync::Notify,
    targets: RwLock<Vec<AmTarget>>,
    capacity: usize,
    max_batch: usize,
    pub metrics: SenderMetrics,
}

impl AlertmanagerSender {
    /// Prometheus's defaults: a queue of 10,000 alerts, batches of at most 256.
    pub fn new() -> Arc<AlertmanagerSender> {
        Arc::new(AlertmanagerSender {
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            targets: RwLock::new(Vec::new()),
            capacity: 10_000,
            max_batch: 256,
            metrics: SenderMetrics::default(),
        })
    }

    /// Replaces the set of Alertmanagers (config load and reload).
    pub fn set_targets(&self, targets: Vec<AmTarget>) {
        *self.targets.write() = targets;
    }

    pub fn has_targets(&self) -> bool {
        !self.targets.read().is_empty()
    }

    /// Most alerts the queue holds; older ones are dropped beyond it.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn queue_len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Runs until the task is aborted: posts batches as soon as alerts are queued.
    pub async fn run(self: Arc<Self>) {
        loop {
            let batch: Vec<tocsin_model::Alert> = {
                let mut q = self.queue.lock();
                let n = q.len().min(self.max_batch);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let body = Arc::new(payload(&batch));
            let targets = self.targets.read().clone();
            let sends = targets.into_iter().map(|t| {
                let body = body.clone();
                let counters = self.metrics.target(&t.url);
                let n = batch.len() as u64;
                async move {
                    let res = t
                        .client
                        .post(&t.url)
                        .timeout(t.timeout)
                        .header("Content-Type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            counters.sent.fetch_add(n, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            counters.errors.fetch_add(n, Ordering::Relaxed);
                            tracing::warn!(alertmanager = %t.url, status = %r.status(), "Alertmanager refused alerts");
                        }
                        Err(e) => {
                            counters.errors.fetch_add(n, Ordering::Relaxed);
                            let error = tocsin_httpclient::error_chain(&e);
                            tracing::warn!(alertmanager = %t.url, %error, "sending alerts to Alertmanager failed");
                        }
                    }
                }
            });
            futures_join_all(sends).await;
        }
    }
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    fs: impl Iterator<Item = F>,
) {
    let mut set = tokio::task::JoinSet::new();
    for f in fs {
        set.spawn(f);
    }
    while set.join_next().await.is_some() {}
}

impl AlertSink for AlertmanagerSender {
    fn send(&self, alerts: Vec<tocsin_model::Alert>) {
        if !self.has_targets() {
            return;
        }
        let mut q = self.queue.lock();
        q.extend(alerts);
        let over = q.len().saturating_sub(self.capacity);
        if over > 0 {
            q.drain(..over);
            self.metrics
                .dropped
                .fetch_add(over as u64, Ordering::Relaxed);
        }
        drop(q);
        self.wake.notify_one();
    }
}

/// Alertmanager API v2 `postableAlerts`.
pub fn payload(alerts: &[tocsin_model::Alert]) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                let labels: serde_json::Map<String, Value> = a
                    .labels
                    .iter()
                    .map(|l| (l.name.clone(), Value::String(l.value.clone())))
                    .collect();
                let mut o = json!({
                    "labels": labels,
                    "annotations": a.annotations,
                    "startsAt": format_rfc3339_ms(a.starts_at),
                    "generatorURL": a.generator_url,
                });
                if a.ends_at != 0 {
                    o["endsAt"] = Value::String(format_rfc3339_ms(a.ends_at));
                }
                o
            })
            .collect(),
    )
}

/// Sends to several sinks (the built-in alert manager and external Alertmanagers).
pub struct FanOut(pub Vec<Arc<dyn AlertSink>>);

impl AlertSink for FanOut {
    fn send(&self, alerts: Vec<tocsin_model::Alert>) {
        if let Some((last, rest)) = self.0.split_last() {
            for s in rest {
                s.send(alerts.clone());
            }
            last.send(alerts);
        }
    }
}
