//! `heartbeat_configs`: the outbound dead-man's switch. The receiver is routed an always-firing
//! watchdog alert (conventionally `alertname="Watchdog"`, `expr: vector(1)`); while that alert
//! keeps arriving, a background task pings `url` every `interval`, and an external monitor
//! (healthchecks.io, Dead Man's Snitch, Alerta's `/heartbeat`, ...) pages when the pings stop.
//!
//! The pipeline hands this integration every flush of its groups, past the notification log's
//! deduplication (`every_flush`): the log would pass the watchdog on only once per
//! `repeat_interval`, and pings must not depend on how often a human wants to be reminded.
//! Each flush records until when the watchdog counts as alive: when the group next flushes plus
//! 2×`interval` of slack (the flush that proves it is still firing may come a little late), or the
//! latest `endsAt` of the firing alerts if that is later. A flush with nothing firing (the
//! watchdog resolved, silenced, inhibited, or its route muted) clears it. Pings are sent only
//! while the wall clock is before that instant, so when the rule engine (or the whole evaluation
//! path) stops re-sending the watchdog, its `endsAt` passes, the next flush sees it resolved, and
//! pings stop; if no flush comes at all (the manager is stuck), they stop at the recorded instant.
//!
//! The task runs on the Tokio runtime: it is started when the notifier is built inside a runtime,
//! else at the first notification, and it is aborted when the notifier is dropped (a reload
//! replaces it). Ping failures are logged and counted (`pings_failed`), never reported to the
//! notification pipeline: `notify` always succeeds. `send_resolved` defaults to false and does not
//! change the pinging.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Deserialize;
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::common::{self, de_duration, de_http_config, de_opt_duration};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum HeartbeatMethod {
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// One entry of `heartbeat_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    #[serde(default)]
    pub send_resolved: bool,
    /// The ping URL of the external monitor.
    pub url: String,
    #[serde(default = "default_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
    #[serde(default)]
    pub method: HeartbeatMethod,
    #[serde(default, deserialize_with = "de_http_config")]
    pub http_config: HttpClientConfig,
    /// Per-ping timeout (default 10s).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
}

struct Shared {
    what: String,
    url: reqwest::Url,
    method: HeartbeatMethod,
    interval: Duration,
    client: tocsin_httpclient::Client,
    /// Wall-clock ms until which pings are due; 0 = not alive.
    active_until_ms: AtomicI64,
    sent: AtomicU64,
    failed: AtomicU64,
    /// Wakes the task when the watchdog comes alive, so the first ping is not an interval late.
    wake: tokio::sync::Notify,
}

impl Shared {
    async fn ping(&self) {
        let req = match self.method {
            HeartbeatMethod::Get => self.client.get(self.url.clone()),
            HeartbeatMethod::Post => self.client.post(self.url.clone()).body(Vec::new()),
        };
        let res = match req.send().await {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                Ok(())
            }
            Ok(r) => {
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                Err(common::status_error(status, &body))
            }
            Err(e) => Err(common::transport_error(e)),
        };
        match res {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(heartbeat = %self.what, error = %e, "heartbeat ping failed");
            }
        }
    }
}

/// The ping loop. Holds only a weak reference between rounds so that it also ends on its own if
/// the notifier is gone without having aborted it.
async fn run(weak: Weak<Shared>) {
    loop {
        let Some(s) = weak.upgrade() else {
            return;
        };
        let next = tokio::time::Instant::now() + s.interval;
        if s.active_until_ms.load(Ordering::Relaxed) > common::wall_ms() {
            s.ping().await;
        }
        let woken = s.wake.notified();
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = woken => {}
        }
    }
}

/// A configured heartbeat.
pub struct Heartbeat {
    send_resolved: bool,
    shared: Arc<Shared>,
    task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Heartbeat {
    pub fn new(cfg: &HeartbeatConfig, base_dir: &Path, what: &str) -> crate::Result<Self> {
        if cfg.interval.is_zero() {
            return Err(crate::Error::Config(format!(
                "{what}: interval must be greater than 0"
            )));
        }
        let timeout = cfg.timeout.unwrap_or(DEFAULT_PING_TIMEOUT);
        let hb = Heartbeat {
            send_resolved: cfg.send_resolved,
            shared: Arc::new(Shared {
                what: what.to_string(),
                url: common::parse_url(&cfg.url, what)?,
                method: cfg.method,
                interval: cfg.interval,
                client: common::build_client(&cfg.http_config, base_dir, timeout, what)?,
                active_until_ms: AtomicI64::new(0),
                sent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                wake: tokio::sync::Notify::new(),
            }),
            task: parking_lot::Mutex::new(None),
        };
        hb.ensure_task();
        Ok(hb)
    }

    /// Starts the ping task if a runtime is available and it is not running.
    fn ensure_task(&self) {
        let mut t = self.task.lock();
        if t.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            *t = Some(rt.spawn(run(Arc::downgrade(&self.shared))));
        }
    }

    /// Successful pings so far.
    pub fn pings_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Failed pings so far.
    pub fn pings_failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Wall-clock ms until which pings are sent; 0 when the watchdog is not alive.
    pub fn active_until_ms(&self) -> i64 {
        self.shared.active_until_ms.load(Ordering::Relaxed)
    }

    fn record(&self, cx: &NotifyCx, alerts: &[Alert]) {
        let grace = i64::try_from(self.shared.interval.as_millis())
            .unwrap_or(i64::MAX / 4)
            .saturating_mul(2);
        // Until the next flush can say otherwise; a firing alert's `endsAt` (the pipeline hides
        // it, a direct caller may not) can only extend that.
        let horizon = cx
            .now_ms
            .saturating_add(cx.group_interval_ms.max(0))
            .saturating_add(grace);
        let until = alerts
            .iter()
            .filter(|a| !a.resolved_at(cx.now_ms))
            .map(|a| a.ends_at.max(horizon))
            .max()
            .unwrap_or(0);
        let before = self.shared.active_until_ms.swap(until, Ordering::Relaxed);
        let now = common::wall_ms();
        if until > now && before <= now {
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

impl Notifier for Heartbeat {
    fn integration(&self) -> &'static str {
        "heartbeat"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn every_flush(&self) -> bool {
        true
    }

    fn notify<'a>(
        &'a self,
        cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            self.ensure_task();
            self.record(cx, alerts);
            Ok(())
        })
    }
}
