//! `AlertManager`, the facade the server, the rule engine and the HTTP API use: alerts in
//! (`put_alerts`), configuration reloads, the read views behind `/api/v2/alerts`,
//! `/api/v2/alerts/groups` and `/api/v2/status`, self-metrics, and the time-driven part — group
//! flushes and garbage collection — either stepped by a test (`tick`) or run by `spawn`, which
//! sleeps exactly until the next thing is due and wakes early when alerts arrive.
//! Acknowledgements, shelves, notes and the timeline are in `manager_marks.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use regex::Regex;
use tocsin_model::{Alert, Clock, Labels, Matcher};

use crate::config::AmConfig;
use crate::dispatch::{Dispatcher, FlushJob};
use crate::error::{Error, Result};
use crate::events::{AlertEvent, EventBus, EventKind, Subscription};
use crate::inhibit::Inhibitor;
use crate::marks::{AckEnd, Marks};
use crate::matchers::{cmp_alert_labels, labels_before, matches_all};
use crate::nflog::NotificationLog;
use crate::notify::{build_receiver, Notifier, NotifyMetrics, ReceiverConfig};
use crate::pipeline::{self, Stages};
use crate::route::RouteTree;
use crate::silence::{SilenceState, Silences};
use crate::state::StateDb;
use crate::store::AlertStore;
use crate::timeinterval::TimeIntervals;

/// How often the alert store, silences, notification log and inhibition caches are collected.
pub const GC_INTERVAL_MS: i64 = 15 * 60_000;

/// The longest the run loop sleeps at once, so that a wall clock stepping backwards cannot
/// stall it for long.
const MAX_SLEEP_MS: i64 = 60_000;

pub struct ManagerOptions {
    /// The state database; None keeps silences, notification log and history in memory.
    pub state: Option<StateDb>,
    /// Relative paths in receiver configurations resolve against this (the config's directory).
    pub base_dir: PathBuf,
    /// This alert manager's URL as users reach it, for links in notifications.
    pub external_url: String,
    pub clock: Arc<dyn Clock>,
}

/// Builds the notifiers of one receiver; `notify::build_receiver` unless a test supplies its own.
pub type ReceiverBuilder =
    Arc<dyn Fn(&ReceiverConfig, &Path) -> Result<Vec<Arc<dyn Notifier>>> + Send + Sync>;

/// Everything derived from one configuration.
pub(crate) struct Runtime {
    pub(crate) cfg: AmConfig,
    pub(crate) routes: Arc<RouteTree>,
    receivers: HashMap<String, Vec<Arc<dyn Notifier>>>,
    pub(crate) inhibitor: Inhibitor,
    intervals: TimeIntervals,
}

/// The alert's processing state as `/api/v2/alerts` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Unprocessed,
    Active,
    Suppressed,
}

impl AlertState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Unprocessed => "unprocessed",
            AlertState::Active => "active",
            AlertState::Suppressed => "suppressed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertStatus {
    pub state: AlertState,
    /// Ids of the silences muting it.
    pub silenced_by: Vec<String>,
    /// Fingerprints (16 hex digits) of the alerts inhibiting it.
    pub inhibited_by: Vec<String>,
}

/// One alert of `/api/v2/alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub alert: Alert,
    pub status: AlertStatus,
    /// Receivers of the routes its labels lead to.
    pub receivers: Vec<String>,
}

/// One group of `/api/v2/alerts/groups`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub labels: Labels,
    pub receiver: String,
    pub group_key: String,
    pub alerts: Vec<AlertView>,
}

/// The filter parameters of `GET /api/v2/alerts` (and `/alerts/groups`): an alert is listed when
/// it matches every matcher, its state is one the flags let through, and (when given) one of its
/// receivers matches `receiver`.
#[derive(Debug, Clone)]
pub struct AlertFilter {
    pub matchers: Vec<Matcher>,
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    pub unprocessed: bool,
    /// Anchored; build with `AlertFilter::receiver_regex`.
    pub receiver: Option<Regex>,
}

impl Default for AlertFilter {
    fn default() -> Self {
        AlertFilter {
            matchers: Vec::new(),
            active: true,
            silenced: true,
            inhibited: true,
            unprocessed: true,
            receiver: None,
        }
    }
}

impl AlertFilter {
    /// The `receiver` parameter as Alertmanager reads it: a regex matching whole names.
    pub fn receiver_regex(s: &str) -> Result<Regex> {
        Regex::new(&format!("^(?:{s})$"))
            .map_err(|e| Error::BadData(format!("invalid parameter \"receiver\": {e}")))
    }

    fn admits(&self, labels: &Labels, status: &AlertStatus) -> bool {
        if !matches_all(&self.matchers, labels) {
            return false;
        }
        match status.state {
            AlertState::Active if !self.active => return false,
            AlertState::Unprocessed if !self.unprocessed => return false,
            _ => {}
        }
        if !self.silenced && !status.silenced_by.is_empty() {
            return false;
        }
        if !self.inhibited && !status.inhibited_by.is_empty() {
            return false;
        }
        true
    }
}

/// Numbers for the server's self-metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagerStats {
    pub alerts_active: usize,
    pub alerts_suppressed: usize,
    pub alerts_unprocessed: usize,
    pub groups: usize,
    pub silences_active: usize,
    pub silences_pending: usize,
    pub silences_expired: usize,
    /// Alerts acknowledged (and not lapsed).
    pub alerts_acknowledged: usize,
    pub alerts_shelved: usize,
}

pub struct AlertManager {
    pub(crate) clock: Arc<dyn Clock>,
    external_url: String,
    base_dir: PathBuf,
    started_at_ms: i64,
    build_receiver: ReceiverBuilder,
    pub(crate) store: AlertStore,
    pub(crate) silences: Silences,
    nflog: NotificationLog,
    marks: Marks,
    metrics: NotifyMetrics,
    /// Per receiver and group key, held while that group flushes.
    flush_locks: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Replaced whole on reload, always while holding `dispatcher`, so that an alert is routed
    /// and observed by the inhibitor of one and the same configuration.
    pub(crate) runtime: RwLock<Arc<Runtime>>,
    pub(crate) dispatcher: Mutex<Dispatcher>,
    generation: AtomicI64,
    next_gc_ms: AtomicI64,
    wake: tokio::sync::Notify,
    stopped: AtomicBool,
    /// Set when this server is one of several replicas (`attach_ha`).
    ha: std::sync::OnceLock<Arc<crate::ha::Ha>>,
    /// Applies shared operations of parts the manager does not own (see `on_shared_op`).
    foreign_ops: std::sync::OnceLock<crate::ha::ApplyOp>,
}

impl AlertManager {
    pub fn new(cfg: AmConfig, opts: ManagerOptions) -> Result<Arc<AlertManager>> {
        Self::with_receiver_builder(cfg, opts, Arc::new(build_receiver))
    }

    /// As `new`, with receivers built by `build` (tests use notifiers of their own).
    pub fn with_receiver_builder(
        cfg: AmConfig,
        opts: ManagerOptions,
        build: ReceiverBuilder,
    ) -> Result<Arc<AlertManager>> {
        let now = opts.clock.now_ms();
        let runtime = Arc::new(build_runtime(cfg, &opts.base_dir, &build)?);
        // One database for all the parts, also in memory: the timeline joins their tables.
        let state = match opts.state {
            Some(db) => Some(db),
            None => Some(StateDb::in_memory()?),
        };
        let opts = ManagerOptions { state, ..opts };
        let store = AlertStore::new(opts.state.clone(), runtime.cfg.resolve_timeout_ms())?;
        let silences = Silences::new(opts.state.clone(), Arc::clone(&opts.clock))?;
        let nflog = NotificationLog::new(opts.state.clone())?;
        let marks = Marks::new(opts.state)?;
        let dispatcher = Dispatcher::new(Arc::clone(&runtime.routes), 1);
        let am = AlertManager {
            clock: opts.clock,
            external_url: opts.external_url,
            base_dir: opts.base_dir,
            started_at_ms: now,
            build_receiver: build,
            store,
            silences,
            nflog,
            marks,
            metrics: NotifyMetrics::default(),
            flush_locks: parking_lot::Mutex::new(HashMap::new()),
            runtime: RwLock::new(runtime),
            dispatcher: Mutex::new(dispatcher),
            generation: AtomicI64::new(1),
            next_gc_ms: AtomicI64::new(now.saturating_add(GC_INTERVAL_MS)),
            wake: tokio::sync::Notify::new(),
            stopped: AtomicBool::new(false),
            ha: std::sync::OnceLock::new(),
            foreign_ops: std::sync::OnceLock::new(),
        };
        // Alerts still firing in the history when the previous process died, and resolved ones
        // notified firing but maybe not resolved, come back, so their resolve is notified even
        // though no sender will re-send them (the rule engine dies with us); they are routed
        // again, as a reload does, and the notification log decides what is still due.
        match am.store.revive_orphans(now, &am.nflog.notified_firing()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(alerts = n, "alerts firing before the restart put back"),
            Err(e) => tracing::warn!(error = %e, "alerts firing before the restart not put back"),
        }
        let rt = am.runtime.read().clone();
        am.register_integrations(&rt);
        am.regroup(&rt, now);
        Ok(Arc::new(am))
    }

    /// Takes alerts from the rule engine or `POST /api/v2/alerts`. As Alertmanager's API does, a
    /// missing start becomes the end (or now); the store then turns a missing end into now +
    /// `resolve_timeout` (marked `timeout`) so the alert resolves unless it is sent again.
    ///
    /// Also as there, the valid alerts of a batch are taken even when some are invalid; those
    /// are reported as one `Error::BadData` naming each by index and field.
    pub fn put_alerts(&self, mut alerts: Vec<Alert>) -> Result<()> {
        let now = self.clock.now_ms();
        if let Some(ha) = self.ha.get() {
            // The replicas' copies of an alert are one alert.
            let label = &ha.config().replica_label;
            for a in &mut alerts {
                if a.labels.get(label).is_some() {
                    let mut b = a.labels.builder();
                    b.del(label);
                    a.labels = b.build();
                }
            }
        }
        for a in &mut alerts {
            if a.starts_at == 0 {
                a.starts_at = if a.ends_at != 0 { a.ends_at } else { now };
            }
        }
        // The end is left to the store, the one place that fills it in: it checks the filled-in
        // end against the start and says so when the start lies beyond the resolve timeout.
        // An acknowledged alert coming back after it resolved is a new episode: its
        // acknowledgement ended with the resolve, before the alert fires again.
        if self.marks.any_acks() {
            for a in &alerts {
                let fp = a.fingerprint();
                if !self.marks.holds_ack(fp) {
                    continue;
                }
                let ended = match self.store.get(fp) {
                    None => Some(now),
                    Some(old) if old.resolved_at(now) => Some(old.ends_at),
                    Some(_) => None,
                };
                if let Some(at) = ended {
                    self.end_ack(fp, at, &AckEnd::Resolved);
                }
            }
        }
        let (stored, invalid) = self.store.put_partial(alerts, now);
        if self.marks.any_acks() {
            for a in &stored {
                let fp = a.fingerprint();
                if a.resolved_at(now) {
                    if self.marks.holds_ack(fp) {
                        self.end_ack(fp, a.ends_at, &AckEnd::Resolved);
                    }
                } else if let Some((old_fp, old)) = self.marks.severity_sibling(a) {
                    let new = a.labels.get(crate::marks::SEVERITY_LABEL).unwrap_or("");
                    self.end_ack(old_fp, now, &AckEnd::SeverityChanged(old, new.into()));
                }
            }
        }
        {
            let mut d = self.dispatcher.lock();
            let rt = self.runtime.read().clone();
            for a in &stored {
                rt.inhibitor.observe(a);
                d.insert(a, now);
            }
        }
        self.wake.notify_one();
        invalid.map_or(Ok(()), Err)
    }

    /// Every configured integration's counters exist from the start at zero, as Alertmanager
    /// has them, so `rate()` and the mixins' failure ratios work before the first send.
    fn register_integrations(&self, rt: &Runtime) {
        for (name, notifiers) in &rt.receivers {
            for n in notifiers {
                self.metrics.register(name, n.integration());
            }
        }
    }

    /// Applies a new configuration: routes, receivers, inhibition rules and time intervals are
    /// rebuilt; alerts, silences and the notification log stay. Groups are made anew on the new
    /// tree, as Alertmanager does; the notification log keeps them from notifying twice.
    pub fn reload(&self, cfg: AmConfig) -> Result<()> {
        let rt = Arc::new(build_runtime(cfg, &self.base_dir, &self.build_receiver)?);
        self.register_integrations(&rt);
        self.store.set_resolve_timeout(rt.cfg.resolve_timeout_ms());
        let now = self.clock.now_ms();
        self.regroup(&rt, now);
        self.wake.notify_one();
        Ok(())
    }

    /// Makes a new dispatcher for `rt` holding every known alert (the store's, plus those the
    /// current groups hold that the store no longer has, such as resolved alerts not yet
    /// notified), and installs `rt`. All under the dispatcher lock, so no alert put meanwhile is
    /// lost between the two dispatchers.
    fn regroup(&self, rt: &Arc<Runtime>, now: i64) {
        let mut d = self.dispatcher.lock();
        let mut all: BTreeMap<u64, Alert> =
            d.alerts().map(|a| (a.fingerprint(), a.clone())).collect();
        for a in self.store.all() {
            all.insert(a.fingerprint(), a);
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let mut nd = Dispatcher::new(Arc::clone(&rt.routes), generation as u64);
        for a in all.values() {
            rt.inhibitor.observe(a);
            nd.insert(a, now);
        }
        *d = nd;
        *self.runtime.write() = Arc::clone(rt);
    }

    /// Does everything due at the clock's now: flushes due groups (awaiting their deliveries)
    /// and collects garbage when its time has come. Tests drive the manager with this.
    pub async fn tick(&self) {
        let now = self.clock.now_ms();
        self.sweep_marks(now);
        let jobs = self.take_due(now);
        for (rt, job) in jobs {
            self.flush(&rt, job).await;
        }
        self.maybe_gc(now);
    }

    fn take_due(&self, now: i64) -> Vec<(Arc<Runtime>, FlushJob)> {
        let mut d = self.dispatcher.lock();
        let rt = self.runtime.read().clone();
        d.take_due(now)
            .into_iter()
            .map(|j| (Arc::clone(&rt), j))
            .collect()
    }

    async fn flush(&self, rt: &Runtime, job: FlushJob) {
        let ok = match rt.routes.get(job.route) {
            Some(route) => {
                // One flush of a group at a time, also across a reload (which makes a new
                // dispatcher that knows nothing of flushes still running): the second waits,
                // then finds the first's sends in the notification log instead of repeating them.
                let key = format!("{}\u{0}{}", route.receiver, job.group_key);
                let lock = Arc::clone(self.flush_locks.lock().entry(key.clone()).or_default());
                let _held = lock.lock().await;
                let notifiers = rt
                    .receivers
                    .get(&route.receiver)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let st = Stages {
                    inhibitor: &rt.inhibitor,
                    silences: &self.silences,
                    intervals: &rt.intervals,
                    nflog: &self.nflog,
                    marks: &self.marks,
                    metrics: &self.metrics,
                    notifiers,
                    clock: self.clock.as_ref(),
                    external_url: &self.external_url,
                    ha: self.ha.get().map(Arc::as_ref),
                };
                let ok = pipeline::run(&st, route, &job).await;
                drop(_held);
                let mut locks = self.flush_locks.lock();
                // Only the map and this flush hold it: nobody waits, so it can go.
                if Arc::strong_count(&lock) == 2 {
                    locks.remove(&key);
                }
                ok
            }
            None => true,
        };
        let done: Vec<Alert> = {
            let mut d = self.dispatcher.lock();
            d.finish(&job, ok);
            // Usually empty: a sender's resolve closes the history row when it is put.
            let open = if ok {
                self.store.with_open_rows(&job.resolved)
            } else {
                Vec::new()
            };
            if open.is_empty() {
                open
            } else {
                // Resolves notified by every group that held them are over.
                let held: HashSet<u64> = d.alerts().map(Alert::fingerprint).collect();
                open.into_iter()
                    .filter(|a| !held.contains(&a.fingerprint()))
                    .collect()
            }
        };
        if !done.is_empty() {
            self.store.close_notified(&done, job.now_ms);
        }
        // Alerts resolved by their end passing (no sender said so) are seen here first.
        if ok && !job.resolved.is_empty() {
            let at_ms = self.clock.now_ms();
            self.store
                .events()
                .publish(job.resolved.iter().map(|a| AlertEvent {
                    fingerprint: a.fingerprint(),
                    kind: EventKind::Resolved,
                    at_ms,
                }));
        }
    }

    fn maybe_gc(&self, now: i64) {
        let due = self.next_gc_ms.load(Ordering::SeqCst);
        if now < due {
            return;
        }
        self.next_gc_ms
            .store(now.saturating_add(GC_INTERVAL_MS), Ordering::SeqCst);
        let dropped = self.store.gc(now).len();
        let silences = self.silences.gc(now).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "silence gc");
            0
        });
        let nflog = self.nflog.gc(now).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "notification log gc");
            0
        });
        if let Some(ha) = self.ha.get().filter(|h| h.is_sender()) {
            if let Err(e) = ha.gc(now) {
                tracing::warn!(error = %e, "shared notification log gc");
            }
        }
        let sources = self.runtime.read().inhibitor.gc(now);
        let timeline = self
            .marks
            .gc(now, self.store.history_retention())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "alert timeline gc");
                0
            });
        tracing::debug!(
            alerts = dropped,
            silences,
            nflog,
            sources,
            timeline,
            "alert manager gc"
        );
    }

    /// Runs the manager on the Tokio runtime until `shutdown`: each flush runs in its own task
    /// so a slow receiver delays no other group.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run().await })
    }

    async fn run(self: Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            let now = self.clock.now_ms();
            self.sweep_marks(now);
            for (rt, job) in self.take_due(now) {
                let me = Arc::clone(&self);
                tokio::spawn(async move {
                    me.flush(&rt, job).await;
                    // The group may have come due while it was flushing.
                    me.wake.notify_one();
                });
            }
            self.maybe_gc(now);
            let next_gc = self.next_gc_ms.load(Ordering::SeqCst);
            let next = self
                .dispatcher
                .lock()
                .next_deadline()
                .map_or(next_gc, |t| t.min(next_gc));
            // A lapsing acknowledgement or shelf is recorded on the timeline when it lapses.
            let next = self
                .marks
                .next_deadline()
                .map_or(next, |t| t.max(now.saturating_add(1)).min(next));
            let wait = next
                .saturating_sub(self.clock.now_ms())
                .clamp(0, MAX_SLEEP_MS);
            if wait > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                    _ = self.wake.notified() => {}
                }
            } else {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Stops the loop started by `spawn`; flushes already running finish on their own.
    /// Also ends every event subscription, so that open event streams do not hold up the HTTP
    /// server's graceful stop.
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.store.events().close();
        self.wake.notify_one();
    }

    /// Alert changes as they happen (see `events`).
    pub fn subscribe(&self) -> Subscription {
        self.store.events().subscribe()
    }

    /// Where alert changes are published; other state owners (acknowledgements) publish theirs
    /// here too.
    pub fn events(&self) -> &EventBus {
        self.store.events()
    }

    /// Every alert known, newest version, by fingerprint.
    fn known_alerts(&self) -> BTreeMap<u64, Alert> {
        let mut all: BTreeMap<u64, Alert> = self
            .dispatcher
            .lock()
            .alerts()
            .map(|a| (a.fingerprint(), a.clone()))
            .collect();
        for a in self.store.all() {
            all.insert(a.fingerprint(), a);
        }
        all
    }

    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    pub fn store(&self) -> &AlertStore {
        &self.store
    }

    pub fn notification_log(&self) -> &NotificationLog {
        &self.nflog
    }

    /// Receiver names in configuration order.
    pub fn receivers(&self) -> Vec<String> {
        self.runtime
            .read()
            .cfg
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// The configuration in force (its `source` is the text it was read from).
    pub fn config(&self) -> AmConfig {
        self.runtime.read().cfg.clone()
    }

    /// When this manager started (ms), for the uptime of `/api/v2/status`.
    pub fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }

    pub fn external_url(&self) -> &str {
        &self.external_url
    }

    pub fn notify_metrics(&self) -> &NotifyMetrics {
        &self.metrics
    }

    /// Alerts by state, aggregation groups, silences by state.
    pub fn stats(&self) -> ManagerStats {
        let mut s = ManagerStats::default();
        for v in self.alerts(&AlertFilter::default()) {
            match v.status.state {
                AlertState::Active => s.alerts_active += 1,
                AlertState::Suppressed => s.alerts_suppressed += 1,
                AlertState::Unprocessed => s.alerts_unprocessed += 1,
            }
        }
        s.groups = self.dispatcher.lock().len();
        (s.alerts_acknowledged, s.alerts_shelved) = self.marks.counts(self.clock.now_ms());
        for (_, state) in self.silences.list() {
            match state {
                SilenceState::Active => s.silences_active += 1,
                SilenceState::Pending => s.silences_pending += 1,
                SilenceState::Expired => s.silences_expired += 1,
            }
        }
        s
    }
}

fn build_runtime(cfg: AmConfig, base_dir: &Path, build: &ReceiverBuilder) -> Result<Runtime> {
    let routes = Arc::new(RouteTree::from_config(&cfg)?);
    let inhibitor = Inhibitor::new(&cfg.inhibit_rules)?;
    let intervals = cfg.time_intervals()?;
    let mut receivers = HashMap::new();
    let base_dir = cfg.base_dir.as_deref().unwrap_or(base_dir);
    for r in &cfg.receivers {
        let n = build(r, base_dir).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("receiver {:?}: {m}", r.name)),
            e => e,
        })?;
        receivers.insert(r.name.clone(), n);
    }
    for route in routes.iter() {
        if !receivers.contains_key(&route.receiver) {
            return Err(Error::Config(format!(
                "undefined receiver {:?} used in route",
                route.receiver
            )));
        }
    }
    Ok(Runtime {
        cfg,
        routes,
        receivers,
        inhibitor,
        intervals,
    })
}

#[path = "manager_ha.rs"]
mod ha_api;
#[path = "manager_marks.rs"]
mod marks_api;
#[path = "manager_views.rs"]
mod views;
pub use marks_api::{parse_fingerprint, AlertDetail};

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
