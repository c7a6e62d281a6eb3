//! Receivers and delivery. Each integration lives in `notify/<kind>.rs` and implements `Notifier`;
//! `ReceiverConfig` is one entry of Alertmanager's `receivers:` list. The pipeline calls
//! `deliver` (retry with exponential backoff, metrics, logs) for each notifier of a receiver.

mod common;
pub mod shared;

pub mod alerta;
pub mod discord;
pub mod email;
pub mod exec;
pub mod file;
pub mod heartbeat;
pub mod msteams;
pub mod opsgenie;
pub mod pagerduty;
pub mod pubsub;
pub mod slack;
pub mod telegram;
pub mod webhook;

#[cfg(test)]
mod exec_file_tests;
#[cfg(test)]
mod pubsub_alerta_tests;
#[cfg(test)]
mod pubsub_google_tests;
#[cfg(test)]
mod templated_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tocsin_model::{Alert, Labels};

pub use alerta::{Alerta, AlertaConfig};
pub use discord::{Discord, DiscordConfig};
pub use email::{Email, EmailConfig};
pub use exec::{Exec, ExecConfig};
pub use file::{FileConfig, FileNotifier};
pub use heartbeat::{Heartbeat, HeartbeatConfig, HeartbeatMethod};
pub use msteams::{Msteams, MsteamsConfig};
pub use opsgenie::{Opsgenie, OpsgenieConfig};
pub use pagerduty::{Pagerduty, PagerdutyConfig};
pub use pubsub::{Pubsub, PubsubConfig};
pub use shared::{NotifyGlobals, ReceiverCtx};
pub use slack::{Slack, SlackConfig};
pub use telegram::{Telegram, TelegramConfig};
pub use webhook::{webhook_message, Webhook, WebhookConfig, WebhookMessage};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a notifier knows about one flush besides the alerts themselves.
#[derive(Debug, Clone)]
pub struct NotifyCx {
    /// Receiver name as configured.
    pub receiver: String,
    /// Alertmanager's group key: route path and group labels, e.g.
    /// `{}/{severity="critical"}:{alertname="ProbeFailure"}`.
    pub group_key: String,
    pub group_labels: Labels,
    /// Evaluation time of the flush (ms); an alert is resolved when `ends_at <= now_ms`.
    pub now_ms: i64,
    /// The alert manager's external URL (backlink in payloads).
    pub external_url: String,
    /// The route's `group_interval` (ms): the group flushes again this long after `now_ms`
    /// while it has alerts; 0 when unknown.
    pub group_interval_ms: i64,
    /// Stable per notification across retries and replicas (see the pipeline); webhooks carry
    /// it as `Idempotency-Key`. Empty when none was made.
    pub notification_id: String,
}

/// Why a delivery failed, as the `reason` label of `notifications_failed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ClientError,
    ServerError,
    Other,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::ClientError => "clientError",
            Reason::ServerError => "serverError",
            Reason::Other => "other",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NotifyError {
    /// Whether trying again may help (5xx, timeouts, connection errors); 4xx are not retried.
    pub retryable: bool,
    pub reason: Reason,
    pub message: String,
}

/// One configured integration of a receiver (one entry of `webhook_configs`, ...).
pub trait Notifier: Send + Sync {
    /// Integration name for metrics and logs: `webhook`, `pubsub`, `alerta`, `exec`, `file`, `heartbeat`.
    fn integration(&self) -> &'static str;
    /// `send_resolved`: whether resolved alerts are delivered.
    fn send_resolved(&self) -> bool;
    /// Whether the integration hears every flush of its groups rather than only what the
    /// notification log lets through (new firing, new resolved, `repeat_interval` elapsed).
    /// Such an integration is told at each flush, with an empty `alerts` when nothing in the
    /// group is left to report (all resolved without `send_resolved`, silenced, inhibited or
    /// muted by time), and its sends are not recorded in the notification log.
    fn every_flush(&self) -> bool {
        false
    }
    /// Delivers one notification. `alerts` holds firing and (if `send_resolved`) resolved alerts.
    fn notify<'a>(
        &'a self,
        cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// One entry of `receivers:`. Alertmanager integrations we do not implement (`sns_configs`,
/// `victorops_configs`, ...) are kept in `unsupported` so validation can refuse them by name
/// (see [`ReceiverConfig::unsupported_integrations`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReceiverConfig {
    pub name: String,
    #[serde(default)]
    pub webhook_configs: Vec<WebhookConfig>,
    #[serde(default)]
    pub pubsub_configs: Vec<PubsubConfig>,
    #[serde(default)]
    pub alerta_configs: Vec<AlertaConfig>,
    #[serde(default)]
    pub exec_configs: Vec<ExecConfig>,
    #[serde(default)]
    pub file_configs: Vec<FileConfig>,
    #[serde(default)]
    pub heartbeat_configs: Vec<HeartbeatConfig>,
    #[serde(default)]
    pub email_configs: Vec<EmailConfig>,
    #[serde(default)]
    pub pagerduty_configs: Vec<PagerdutyConfig>,
    #[serde(default)]
    pub slack_configs: Vec<SlackConfig>,
    #[serde(default)]
    pub opsgenie_configs: Vec<OpsgenieConfig>,
    #[serde(default)]
    pub msteams_configs: Vec<MsteamsConfig>,
    #[serde(default)]
    pub msteamsv2_configs: Vec<MsteamsConfig>,
    #[serde(default)]
    pub telegram_configs: Vec<TelegramConfig>,
    #[serde(default)]
    pub discord_configs: Vec<DiscordConfig>,
    /// Remediation policies of the `actions:` section this receiver hands its alerts to. The
    /// alert manager cannot build these itself: the server's receiver builder does (see
    /// [`ActionRef`]).
    #[serde(default)]
    pub action_configs: Vec<ActionRef>,
    #[serde(flatten)]
    pub unsupported: BTreeMap<String, serde_norway::Value>,
    /// Templates and global defaults, set when the configuration is loaded; `None` (a receiver
    /// built by hand) uses the default templates and no global defaults.
    #[serde(skip)]
    pub ctx: Option<Arc<ReceiverCtx>>,
}

impl ReceiverConfig {
    /// Keys of this receiver that Tocsin does not implement (`sns_configs`, ...), sorted, for
    /// the config validation to refuse.
    pub fn unsupported_integrations(&self) -> Vec<String> {
        self.unsupported.keys().cloned().collect()
    }

    /// Number of configured integrations Tocsin implements.
    pub fn integration_count(&self) -> usize {
        self.webhook_configs.len()
            + self.pubsub_configs.len()
            + self.alerta_configs.len()
            + self.exec_configs.len()
            + self.file_configs.len()
            + self.heartbeat_configs.len()
            + self.email_configs.len()
            + self.pagerduty_configs.len()
            + self.slack_configs.len()
            + self.opsgenie_configs.len()
            + self.msteams_configs.len()
            + self.msteamsv2_configs.len()
            + self.telegram_configs.len()
            + self.discord_configs.len()
            + self.action_configs.len()
    }
}

/// One entry of a receiver's `action_configs`: every alert of a flushed group is handed to the
/// named policy of tocsin.yml's `actions:` section, once per alert.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ActionRef {
    pub policy: String,
}

/// Builds the notifiers of one receiver. `base_dir` resolves relative paths (credential files,
/// `file_configs` paths) against the config file's directory.
pub fn build_receiver(
    cfg: &ReceiverConfig,
    base_dir: &std::path::Path,
) -> crate::Result<Vec<std::sync::Arc<dyn Notifier>>> {
    let what = |kind: &str, i: usize| format!("receiver {:?}: {kind}[{i}]", cfg.name);
    if !cfg.action_configs.is_empty() {
        // Policies live in tocsin.yml's `actions:` section, which only the server reads; a
        // standalone alertmanager.yml cannot name one.
        return Err(crate::Error::Config(format!(
            "receiver {:?}: action_configs need the `actions:` section of tocsin.yml (the server's actions engine)",
            cfg.name
        )));
    }
    let mut out: Vec<Arc<dyn Notifier>> = Vec::with_capacity(cfg.integration_count());
    for (i, c) in cfg.webhook_configs.iter().enumerate() {
        out.push(Arc::new(Webhook::new(
            c,
            base_dir,
            &what("webhook_configs", i),
        )?));
    }
    for (i, c) in cfg.pubsub_configs.iter().enumerate() {
        out.push(Arc::new(Pubsub::new(
            c,
            base_dir,
            &what("pubsub_configs", i),
        )?));
    }
    for (i, c) in cfg.alerta_configs.iter().enumerate() {
        out.push(Arc::new(Alerta::new(
            c,
            base_dir,
            &what("alerta_configs", i),
        )?));
    }
    for (i, c) in cfg.exec_configs.iter().enumerate() {
        out.push(Arc::new(Exec::new(c, base_dir, &what("exec_configs", i))?));
    }
    for (i, c) in cfg.file_configs.iter().enumerate() {
        out.push(Arc::new(FileNotifier::new(
            c,
            base_dir,
            &what("file_configs", i),
        )?));
    }
    for (i, c) in cfg.heartbeat_configs.iter().enumerate() {
        out.push(Arc::new(Heartbeat::new(
            c,
            base_dir,
            &what("heartbeat_configs", i),
        )?));
    }
    let ctx = match &cfg.ctx {
        Some(c) => c.clone(),
        None => Arc::new(ReceiverCtx::defaults(base_dir)?),
    };
    out.extend(build_templated(cfg, ctx)?);
    Ok(out)
}

/// Builds the integrations that render notification templates (email, slack, pagerduty, ...).
pub fn build_templated(
    cfg: &ReceiverConfig,
    ctx: Arc<ReceiverCtx>,
) -> crate::Result<Vec<std::sync::Arc<dyn Notifier>>> {
    let what = |kind: &str, i: usize| format!("receiver {:?}: {kind}[{i}]", cfg.name);
    let mut out: Vec<Arc<dyn Notifier>> = Vec::new();
    for (i, c) in cfg.email_configs.iter().enumerate() {
        out.push(Arc::new(Email::new(
            c,
            ctx.clone(),
            &what("email_configs", i),
        )?));
    }
    for (i, c) in cfg.pagerduty_configs.iter().enumerate() {
        out.push(Arc::new(Pagerduty::new(
            c,
            ctx.clone(),
            &what("pagerduty_configs", i),
        )?));
    }
    for (i, c) in cfg.slack_configs.iter().enumerate() {
        out.push(Arc::new(Slack::new(
            c,
            ctx.clone(),
            &what("slack_configs", i),
        )?));
    }
    for (i, c) in cfg.opsgenie_configs.iter().enumerate() {
        out.push(Arc::new(Opsgenie::new(
            c,
            ctx.clone(),
            &what("opsgenie_configs", i),
        )?));
    }
    for (i, c) in cfg.msteams_configs.iter().enumerate() {
        out.push(Arc::new(Msteams::new(
            c,
            false,
            ctx.clone(),
            &what("msteams_configs", i),
        )?));
    }
    for (i, c) in cfg.msteamsv2_configs.iter().enumerate() {
        out.push(Arc::new(Msteams::new(
            c,
            true,
            ctx.clone(),
            &what("msteamsv2_configs", i),
        )?));
    }
    for (i, c) in cfg.telegram_configs.iter().enumerate() {
        out.push(Arc::new(Telegram::new(
            c,
            ctx.clone(),
            &what("telegram_configs", i),
        )?));
    }
    for (i, c) in cfg.discord_configs.iter().enumerate() {
        out.push(Arc::new(Discord::new(
            c,
            ctx.clone(),
            &what("discord_configs", i),
        )?));
    }
    Ok(out)
}

const REASONS: [Reason; 3] = [Reason::ClientError, Reason::ServerError, Reason::Other];

/// Upper bounds (seconds) of the notification latency histogram, Alertmanager's buckets.
pub const LATENCY_BUCKETS: [f64; 5] = [1.0, 5.0, 10.0, 15.0, 20.0];

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    /// Indexed like `REASONS`.
    failed: [AtomicU64; 3],
    /// Attempts by the first `LATENCY_BUCKETS` bound they fit under (last: above all).
    latency: [AtomicU64; 6],
    latency_sum_micros: AtomicU64,
}

fn reason_index(r: Reason) -> usize {
    match r {
        Reason::ClientError => 0,
        Reason::ServerError => 1,
        Reason::Other => 2,
    }
}

/// Delivery counters by receiver and integration, rendered by the server's `/metrics` as
/// `tocsin_notifications_total` and `tocsin_notifications_failed_total{reason}`.
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    /// Counters are looked up under a read lock and bumped atomically; the write lock is only
    /// taken the first time a (receiver, integration) pair is seen.
    by_key: parking_lot::RwLock<HashMap<(String, String), Arc<Counters>>>,
}

/// One row of `NotifyMetrics::snapshot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyCounts {
    pub receiver: String,
    pub integration: String,
    pub sent: u64,
    /// Failed attempts by reason (`clientError`, `serverError`, `other`); every reason is present,
    /// zero when nothing failed that way, so the exported series exist from the start.
    pub failed: BTreeMap<String, u64>,
    /// Attempt durations: how many fell in each `LATENCY_BUCKETS` bucket (not cumulative), then
    /// how many took longer than the last bound.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_micros: u64,
}

impl NotifyMetrics {
    fn counters(&self, receiver: &str, integration: &str) -> Arc<Counters> {
        let key = (receiver.to_string(), integration.to_string());
        if let Some(c) = self.by_key.read().get(&key) {
            return c.clone();
        }
        self.by_key.write().entry(key).or_default().clone()
    }

    /// Makes the pair appear in `snapshot` with zero counts before anything was sent, as
    /// Alertmanager initialises its counters for every configured integration.
    pub fn register(&self, receiver: &str, integration: &str) {
        self.counters(receiver, integration);
    }

    /// Counts one successful delivery.
    pub fn inc_sent(&self, receiver: &str, integration: &str) {
        self.counters(receiver, integration)
            .sent
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed attempt.
    pub fn inc_failed(&self, receiver: &str, integration: &str, reason: Reason) {
        self.counters(receiver, integration).failed[reason_index(reason)]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one attempt (successful or not) took.
    pub fn observe_latency(&self, receiver: &str, integration: &str, took: Duration) {
        let c = self.counters(receiver, integration);
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        c.latency[i].fetch_add(1, Ordering::Relaxed);
        c.latency_sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// All pairs, sorted by receiver then integration.
    pub fn snapshot(&self) -> Vec<NotifyCounts> {
        let mut out: Vec<NotifyCounts> = self
            .by_key
            .read()
            .iter()
            .map(|((receiver, integration), c)| NotifyCounts {
                receiver: receiver.clone(),
                integration: integration.clone(),
                sent: c.sent.load(Ordering::Relaxed),
                failed: REASONS
                    .iter()
                    .map(|r| {
                        (
                            r.as_str().to_string(),
                            c.failed[reason_index(*r)].load(Ordering::Relaxed),
                        )
                    })
                    .collect(),
                latency_buckets: c
                    .latency
                    .iter()
                    .map(|n| n.load(Ordering::Relaxed))
                    .collect(),
                latency_sum_micros: c.latency_sum_micros.load(Ordering::Relaxed),
            })
            .collect();
        out.sort_by(|a, b| {
            (a.receiver.as_str(), a.integration.as_str())
                .cmp(&(b.receiver.as_str(), b.integration.as_str()))
        });
        out
    }
}

/// Backoff between attempts: starts here, doubles, and is capped at `BACKOFF_MAX`; each wait is
/// jittered down by up to half so receivers that failed together do not retry in lockstep.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A value in `[d/2, d]`.
fn jittered(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is randomly keyed per instance: enough randomness for jitter without a
    // random number generator dependency.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    let extra = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(if extra == 0 { 0 } else { r % (extra + 1) })
}

/// Sends with retries: exponential backoff while the error is retryable and `deadline` (the time
/// budget for this flush, normally the group interval) has not passed; counts and logs each attempt.
///
/// Every attempt, including the first, is cut off when the deadline passes (a timed-out attempt
/// is a retryable `other` failure); a zero `deadline` means one attempt bounded only by the
/// integration's own timeout. The error of the last attempt is returned.
pub async fn deliver(
    n: &dyn Notifier,
    cx: &NotifyCx,
    alerts: &[Alert],
    metrics: &NotifyMetrics,
    deadline: std::time::Duration,
) -> Result<(), NotifyError> {
    let integration = n.integration();
    let start = tokio::time::Instant::now();
    let mut backoff = BACKOFF_INITIAL;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let began = tokio::time::Instant::now();
        let res = if deadline.is_zero() {
            n.notify(cx, alerts).await
        } else {
            let left = deadline.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, n.notify(cx, alerts)).await {
                Ok(r) => r,
                Err(_) => Err(NotifyError {
                    retryable: true,
                    reason: Reason::Other,
                    message: format!("notification timed out (deadline {deadline:?})"),
                }),
            }
        };
        metrics.observe_latency(&cx.receiver, integration, began.elapsed());
        let err = match res {
            Ok(()) => {
                metrics.inc_sent(&cx.receiver, integration);
                if attempt > 1 {
                    tracing::info!(
                        receiver = %cx.receiver,
                        integration,
                        attempt,
                        "notification succeeded after retrying"
                    );
                }
                return Ok(());
            }
            Err(e) => e,
        };
        metrics.inc_failed(&cx.receiver, integration, err.reason);
        let wait = jittered(backoff);
        let give_up = !err.retryable || start.elapsed() + wait >= deadline;
        tracing::warn!(
            receiver = %cx.receiver,
            integration,
            attempt,
            reason = err.reason.as_str(),
            retryable = err.retryable,
            will_retry = !give_up,
            error = %err.message,
            "notification attempt failed"
        );
        if give_up {
            return Err(err);
        }
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
