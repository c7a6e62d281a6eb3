//! Wiring of the built-in alert manager: its state db under the data dir, the sink the rule
//! engine sends to, the `AlertmanagerApi` the HTTP API reads, and inbound heartbeats (last-seen
//! times written to the TSDB as `tocsin_heartbeat_last_seen_timestamp_seconds`, read back at
//! start, and `HeartbeatMissing` alerts when late). Pub/Sub pushes reach `pubsub_push.rs`.

use std::sync::Arc;
use std::time::Duration;

use tocsin_alerts::heartbeat::{HeartbeatStatus, Heartbeats};
use tocsin_alerts::silence::{Silence, SilenceState};
use tocsin_alerts::{AlertFilter, AlertManager, AlertView, GroupView};
use tocsin_model::{Alert, Clock, Labels, Matcher};
use tocsin_storage::{Appendable, Queryable, SelectHints};

pub const HEARTBEAT_METRIC: &str = "tocsin_heartbeat_last_seen_timestamp_seconds";
/// The timeout a heartbeat's pings gave it (Alerta's `POST /api/heartbeat`), with the labels
/// of its missing alert as series labels, so a restart keeps a heartbeat that is not configured
/// alerting even if its sender never comes back.
pub const HEARTBEAT_TIMEOUT_METRIC: &str = "tocsin_heartbeat_ping_timeout_seconds";
/// How often late heartbeats are checked; a late alert resolves within this of the next ping.
pub const HEARTBEAT_CHECK: Duration = Duration::from_secs(1);
/// Last-seen times are re-written every this many checks, so the series stays fresh for rules
/// (well inside the 5-minute lookback) without a sample per second.
const REWRITE_EVERY: u64 = 15;

impl std::fmt::Debug for AmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AmRuntime")
    }
}

pub struct AmRuntime {
    pub am: Arc<AlertManager>,
    pub heartbeats: Arc<Heartbeats>,
    pub appendable: Arc<dyn Appendable>,
    pub clock: Arc<dyn Clock>,
    pub silence_limits: tocsin_api::am::SilenceLimits,
    /// The Cloud Monitoring intake (`POST /api/v1/pubsub/push`).
    pub pubsub: Arc<crate::pubsub_push::PubsubIntake>,
}

/// The rule engine's sink into the built-in alert manager.
pub struct BuiltinSink(pub Arc<AlertManager>);

impl tocsin_rules::AlertSink for BuiltinSink {
    fn send(&self, alerts: Vec<Alert>) {
        if let Err(e) = self.0.put_alerts(alerts) {
            tracing::warn!(error = %e, "built-in alert manager refused alerts from the rules");
        }
    }
}

impl AmRuntime {
    /// Applies heartbeat pings other replicas received, and their action guards' events (see
    /// `tocsin_alerts::ha`).
    pub fn take_shared_ops(self: &Arc<Self>, actions: Arc<tocsin_actions::Engine>) {
        let me = Arc::downgrade(self);
        // Operations are applied on the HA sync thread; an approval starts the action as a
        // task, which needs the runtime.
        let rt = tokio::runtime::Handle::current();
        self.am.on_shared_op(Box::new(move |op| {
            let _in_runtime = rt.enter();
            if actions.apply_shared(op) || crate::actions::apply_decision(&actions, op) {
                return true;
            }
            let (Some(rt), tocsin_alerts::ha::Op::Heartbeat { name, at, details }) =
                (me.upgrade(), op)
            else {
                return false;
            };
            let r = match details {
                Some(d) => rt.heartbeats.ping_with(name, *at, d.clone()),
                None => rt.heartbeats.ping(name, *at),
            };
            match r {
                Ok(()) => {
                    rt.write_heartbeats(Some(name));
                    true
                }
                Err(e) => {
                    tracing::warn!(heartbeat = %name, error = %e, "another replica's ping not applied");
                    false
                }
            }
        }));
    }

    fn write_heartbeats(&self, only: Option<&str>) {
        let now = self.clock.now_ms();
        let mut app = self.appendable.appender();
        let opts = Default::default();
        for h in self.heartbeats.status() {
            if h.last_ms == 0 || only.is_some_and(|n| n != h.name) {
                continue;
            }
            let l = Labels::from_pairs(&[("__name__", HEARTBEAT_METRIC), ("heartbeat", &h.name)]);
            if app
                .append(&l, now, h.last_ms as f64 / 1000.0, &opts)
                .is_err()
            {
                app.rollback();
                return;
            }
            if let (true, Some(t)) = (h.timeout_from_ping, h.timeout_ms) {
                let mut b = Labels::empty().builder();
                for (k, v) in &h.labels {
                    if tocsin_model::labels::validate_label_name(k).is_ok()
                        && !k.starts_with("__")
                        && k != "heartbeat"
                    {
                        b.set(k, v);
                    }
                }
                b.set("__name__", HEARTBEAT_TIMEOUT_METRIC);
                b.set("heartbeat", &h.name);
                if app
                    .append(&b.build(), now, t as f64 / 1000.0, &opts)
                    .is_err()
                {
                    app.rollback();
                    return;
                }
            }
        }
        let _ = app.commit();
    }

    /// Reads last-seen times back from the TSDB so a restart keeps them.
    pub fn restore_heartbeats(&self, q: &dyn Queryable) {
        let now = self.clock.now_ms();
        let mint = now - 7 * 24 * 3_600_000;
        let Ok(querier) = q.querier(mint, now) else {
            return;
        };
        let hints = SelectHints {
            start: mint,
            end: now,
            ..Default::default()
        };
        let Ok(set) = querier.select(&hints, &[Matcher::equal("__name__", HEARTBEAT_METRIC)])
        else {
            return;
        };
        for s in set.flatten() {
            let Some(name) = s.labels.get("heartbeat").map(str::to_string) else {
                continue;
            };
            let (_, samples) = s.collect_samples();
            if let Some(last) = samples
                .iter()
                .rev()
                .find(|x| !tocsin_model::is_stale_nan(x.v))
            {
                self.heartbeats.restore(&name, (last.v * 1000.0) as i64);
            }
        }
        // Pinged timeouts: per heartbeat, the series written last (its labels may have changed).
        let Ok(set) = querier.select(
            &hints,
            &[Matcher::equal("__name__", HEARTBEAT_TIMEOUT_METRIC)],
        ) else {
            return;
        };
        let mut latest: std::collections::HashMap<String, (i64, f64, Labels)> =
            std::collections::HashMap::new();
        for s in set.flatten() {
            let Some(name) = s.labels.get("heartbeat").map(str::to_string) else {
                continue;
            };
            let (labels, samples) = s.collect_samples();
            let Some(last) = samples
                .iter()
                .rev()
                .find(|x| !tocsin_model::is_stale_nan(x.v))
            else {
                continue;
            };
            if latest.get(&name).is_none_or(|(t, _, _)| *t < last.t) {
                latest.insert(name, (last.t, last.v, labels));
            }
        }
        for (name, (_, v, labels)) in latest {
            let kept = labels
                .iter()
                .filter(|l| l.name != "__name__" && l.name != "heartbeat")
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect();
            self.heartbeats
                .restore_ping(&name, (v * 1000.0) as i64, kept);
        }
    }

    /// Checks heartbeats and keeps their series fresh, until aborted.
    pub async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT_CHECK);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            n += 1;
            let now = self.clock.now_ms();
            let alerts = self.heartbeats.check(now, 60_000);
            if !alerts.is_empty() {
                if let Err(e) = self.am.put_alerts(alerts) {
                    tracing::warn!(error = %e, "heartbeat alerts refused");
                }
            }
            if n % REWRITE_EVERY == 1 {
                self.write_heartbeats(None);
            }
        }
    }
}

impl tocsin_api::am::AlertmanagerApi for AmRuntime {
    fn put_alerts(&self, alerts: Vec<Alert>) -> tocsin_alerts::Result<()> {
        self.am.put_client_alerts(alerts)
    }
    fn alerts(&self, f: &AlertFilter) -> Vec<AlertView> {
        self.am.alerts(f)
    }
    fn groups(&self, f: &AlertFilter) -> Vec<GroupView> {
        self.am.groups(f)
    }
    fn silences(&self) -> Vec<(Silence, SilenceState)> {
        self.am.silences().list()
    }
    fn silence(&self, id: &str) -> Option<(Silence, SilenceState)> {
        self.am.silences().get(id)
    }
    fn upsert_silence(&self, s: Silence) -> tocsin_alerts::Result<String> {
        self.am.upsert_silence(s)
    }
    fn expire_silence(&self, id: &str) -> tocsin_alerts::Result<()> {
        self.am.expire_silence(id)
    }
    fn console(
        &self,
        q: &tocsin_alerts::console::ConsoleQuery,
    ) -> tocsin_alerts::Result<tocsin_alerts::console::ConsolePage> {
        self.am.console(q)
    }
    fn subscribe(&self) -> Option<tocsin_alerts::events::Subscription> {
        Some(self.am.subscribe())
    }
    fn receivers(&self) -> Vec<String> {
        self.am.receivers()
    }
    fn config_yaml(&self) -> String {
        crate::redact::redact_yaml(&self.am.config().source)
    }
    fn silence_limits(&self) -> tocsin_api::am::SilenceLimits {
        self.silence_limits
    }
    fn started_at_ms(&self) -> i64 {
        self.am.started_at_ms()
    }
    fn heartbeat(&self, name: &str) -> tocsin_alerts::Result<()> {
        let now = self.clock.now_ms();
        self.heartbeats.ping(name, now)?;
        self.write_heartbeats(Some(name));
        self.am.share(tocsin_alerts::ha::Op::Heartbeat {
            name: name.to_string(),
            at: now,
            details: None,
        });
        Ok(())
    }
    fn heartbeats(&self) -> Vec<HeartbeatStatus> {
        self.heartbeats.status()
    }
    fn heartbeat_with(
        &self,
        name: &str,
        details: tocsin_alerts::heartbeat::PingDetails,
    ) -> tocsin_alerts::Result<()> {
        let now = self.clock.now_ms();
        self.heartbeats.ping_with(name, now, details.clone())?;
        self.write_heartbeats(Some(name));
        self.am.share(tocsin_alerts::ha::Op::Heartbeat {
            name: name.to_string(),
            at: now,
            details: Some(details),
        });
        Ok(())
    }
    fn recent_alerts(&self, matchers: &[Matcher]) -> Vec<Alert> {
        self.am.recent_alerts(matchers)
    }

    fn history(
        &self,
        q: &tocsin_alerts::store::HistoryQuery,
    ) -> tocsin_alerts::Result<Vec<tocsin_alerts::store::HistoryEntry>> {
        self.am.history(q)
    }

    fn now_ms(&self) -> i64 {
        self.am.now_ms()
    }
    fn ack(
        &self,
        fp: u64,
        by: &str,
        comment: &str,
        expires_ms: Option<i64>,
    ) -> tocsin_alerts::Result<bool> {
        self.am.ack(fp, by, comment, expires_ms)
    }
    fn unack(&self, fp: u64, by: &str, comment: &str) -> tocsin_alerts::Result<bool> {
        self.am.unack(fp, by, comment)
    }
    fn shelve(&self, fp: u64, by: &str, comment: &str, until_ms: i64) -> tocsin_alerts::Result<()> {
        self.am.shelve(fp, by, comment, until_ms)
    }
    fn unshelve(&self, fp: u64, by: &str) -> tocsin_alerts::Result<bool> {
        self.am.unshelve(fp, by)
    }
    fn note(&self, fp: u64, by: &str, text: &str) -> tocsin_alerts::Result<i64> {
        self.am.note(fp, by, text)
    }
    fn alert_detail(&self, fp: u64) -> tocsin_alerts::Result<tocsin_alerts::AlertDetail> {
        self.am.alert_detail(fp)
    }
    fn timeline(
        &self,
        fp: u64,
        limit: usize,
    ) -> tocsin_alerts::Result<Vec<tocsin_alerts::TimelineEvent>> {
        self.am.timeline(fp, limit)
    }
    fn marks(&self) -> tocsin_alerts::marks::MarkList {
        self.am.marks().all(self.am.now_ms())
    }

    fn pubsub_authorize(
        &self,
        authorization: Option<&str>,
    ) -> Result<(), tocsin_api::pubsub::AuthError> {
        self.pubsub.authorize(authorization)
    }

    fn pubsub_push(
        &self,
        msg: &tocsin_api::pubsub::PushMessage,
    ) -> tocsin_alerts::Result<tocsin_api::pubsub::PushOutcome> {
        self.pubsub.push(&self.am, msg, self.clock.now_ms())
    }
}
