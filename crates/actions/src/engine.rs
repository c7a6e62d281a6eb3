//! The actions engine: takes the alerts a receiver's `action_configs` hand it, claims one
//! execution per (policy, alert fingerprint, alert start) in the journal, and decides each in
//! order: wait out the delay, check the guards, then run it, queue it for approval or record a
//! dry run. Timers (delays, approval expiry, verification) are driven by the `Clock` through
//! [`Engine::tick`], which the background loop calls and tests call directly.
//!
//! Running an execution (intent, attempts, outcome, verification) is in `execute.rs`, the
//! engine's own alerts in `builtin.rs`, the read and control side (API) in `control.rs`, picking
//! up after a restart in `resume.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use tocsin_alerts::state::StateDb;
use tocsin_model::{Alert, Clock, Labels};

use crate::builtin::Builtin;
use crate::config::{ActionsConfig, On, PolicyConfig};
use crate::error::{Error, Result};
use crate::guards::PolicyGuards;
use crate::journal::{state, Journal, NewExec, Update};
use crate::kinds::{self, Kind};
use crate::metrics::Metrics;
use crate::template::{ActionTemplate, RenderCx};

/// The alert manager as the engine sees it (implemented by the server).
pub trait AlertBridge: Send + Sync {
    /// The alert manager's current copy of the alert with this fingerprint, if it has one.
    fn get(&self, fingerprint: u64) -> Option<Alert>;
    /// Takes the engine's own alerts (`RemediationSuppressed`, ...).
    fn put(&self, alerts: Vec<Alert>);
    /// Why an alert with these labels is muted now (`silenced by ...`, `inhibited by ...`),
    /// or None. Asked when a delay ends, so a silence made during the delay stops the action.
    fn muted(&self, _labels: &Labels) -> Option<String> {
        None
    }
}

/// PromQL instant queries (fleet size, target age), implemented by the server.
pub trait Query: Send + Sync {
    fn instant(&self, expr: &str, at_ms: i64) -> std::result::Result<Vec<(Labels, f64)>, String>;
}

/// One policy ready to run: its configuration, kind and parsed templates.
pub struct Policy {
    pub cfg: PolicyConfig,
    pub kind: Arc<dyn Kind>,
    target: Option<ActionTemplate>,
    pub(crate) age: Option<ActionTemplate>,
}

/// Builds a policy's kind; [`kinds::build`] unless a test supplies its own.
pub type KindBuilder =
    Arc<dyn Fn(&PolicyConfig, &Path, &str) -> Result<Arc<dyn Kind>> + Send + Sync>;

impl Policy {
    fn build(cfg: &PolicyConfig, base_dir: &Path, what: &str, kb: &KindBuilder) -> Result<Policy> {
        let kind = kb(cfg, base_dir, what)?;
        let target = cfg
            .target
            .as_deref()
            .map(|t| ActionTemplate::parse(&format!("{what}.target"), t))
            .transpose()?;
        let age = cfg
            .guards
            .age
            .as_deref()
            .map(|t| ActionTemplate::parse(&format!("{what}.guards.age"), t))
            .transpose()?;
        Ok(Policy {
            cfg: cfg.clone(),
            kind,
            target,
            age,
        })
    }
}

/// An execution the engine is holding (waiting for a timer or approval, or running).
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub id: i64,
    pub policy: String,
    pub alert: Alert,
    pub target: String,
    pub request_id: String,
}

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    Delay,
    ApprovalExpiry,
    Verify,
}

pub struct EngineOptions {
    pub state: StateDb,
    pub clock: Arc<dyn Clock>,
    /// Relative paths in policies resolve against this (the config file's directory).
    pub base_dir: PathBuf,
    /// For links in the engine's own alerts.
    pub external_url: String,
}

pub struct Engine {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) journal: Journal,
    base_dir: RwLock<PathBuf>,
    pub(crate) external_url: String,
    pub(crate) bridge: OnceLock<Arc<dyn AlertBridge>>,
    pub(crate) query: OnceLock<Arc<dyn Query>>,
    pub(crate) policies: RwLock<HashMap<String, Arc<Policy>>>,
    kind_builder: KindBuilder,
    /// Guard state by policy name; kept across reloads.
    pub(crate) guards: Mutex<HashMap<String, PolicyGuards>>,
    /// Execution keys already claimed (a cache in front of the journal's unique key), with
    /// the alert start, so old ones can be forgotten.
    pub(crate) seen: Mutex<HashMap<String, i64>>,
    /// Held executions by id, with what they wait for and until when.
    pub(crate) waiting: Mutex<BTreeMap<i64, (Job, Due, i64)>>,
    /// Fleet sizes by policy: (when asked, answer), reused for a few seconds in a storm.
    pub(crate) fleet_cache: Mutex<HashMap<String, (i64, Answer)>>,
    pub(crate) metrics: Metrics,
    /// Set on a replica: each execution key is claimed in the shared database first, so two
    /// replicas never both run one.
    pub(crate) ha: OnceLock<Arc<tocsin_alerts::ha::Ha>>,
    pub(crate) builtin: Builtin,
    pub(crate) running: AtomicUsize,
    pub(crate) idle: tokio::sync::Notify,
    wake: tokio::sync::Notify,
    /// Serialises decisions, so guards see actions in the order they were decided.
    decide_lock: tokio::sync::Mutex<()>,
    /// Final decisions of the current tick, written together at its end.
    batch: Mutex<Vec<(i64, Update)>>,
    /// Policies already warned about being routed the engine's own alerts.
    warned_own: Mutex<std::collections::HashSet<String>>,
}

/// A query's one number, or why there is none.
type Answer = std::result::Result<f64, String>;

/// How long a fleet-size answer is reused.
pub(crate) const FLEET_CACHE_MS: i64 = 5_000;
/// Claimed keys are remembered in memory while their alert is younger than this; older ones
/// are still refused by the journal.
const SEEN_FOR_MS: i64 = 7 * 86_400_000;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.policy_names())
            .finish_non_exhaustive()
    }
}

/// The execution key: policy, alert fingerprint and alert start.
pub fn execution_key(policy: &str, fingerprint: u64, starts_at: i64) -> String {
    format!("{policy}/{fingerprint:016x}/{starts_at}")
}

/// A UUID (version 4 layout, not all zeros) derived from the execution key, so every retry
/// of one execution, also after a crash, carries the same id and an idempotent far side
/// (Compute Engine's `requestId`) acts once.
pub fn request_id(key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

fn label_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

impl Engine {
    /// Builds the engine with the policies of `cfg` and resumes what the journal left open.
    /// Call [`attach`](Self::attach) before alerts arrive and [`spawn`](Self::spawn) to run
    /// its timers.
    pub fn new(cfg: &ActionsConfig, opts: EngineOptions) -> Result<Arc<Engine>> {
        Self::with_kind_builder(cfg, opts, Arc::new(kinds::build))
    }

    /// As `new`, with kinds built by `kb` (tests use kinds of their own).
    pub fn with_kind_builder(
        cfg: &ActionsConfig,
        opts: EngineOptions,
        kb: KindBuilder,
    ) -> Result<Arc<Engine>> {
        let policies = build_policies(cfg, &opts.base_dir, &kb)?;
        let journal = Journal::new(opts.state);
        let e = Arc::new(Engine {
            clock: opts.clock,
            journal,
            base_dir: RwLock::new(opts.base_dir),
            external_url: opts.external_url,
            bridge: OnceLock::new(),
            query: OnceLock::new(),
            policies: RwLock::new(policies),
            kind_builder: kb,
            guards: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            waiting: Mutex::new(BTreeMap::new()),
            fleet_cache: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            ha: OnceLock::new(),
            builtin: Builtin::default(),
            running: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            wake: tokio::sync::Notify::new(),
            decide_lock: tokio::sync::Mutex::new(()),
            batch: Mutex::new(Vec::new()),
            warned_own: Mutex::new(Default::default()),
        });
        e.restore_guards()?;
        for p in e.policies.read().keys() {
            e.metrics.register(p);
        }
        Ok(e)
    }

    /// Connects the alert manager and the query engine (they are built after the engine,
    /// since the alert manager's receivers hold it).
    pub fn attach(&self, bridge: Arc<dyn AlertBridge>, query: Arc<dyn Query>) {
        let _ = self.bridge.set(bridge);
        let _ = self.query.set(query);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Makes this engine one of several replicas' (see `tocsin_alerts::ha`).
    pub fn attach_ha(&self, ha: Arc<tocsin_alerts::ha::Ha>) {
        let _ = self.ha.set(ha);
    }

    pub fn policy_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.policies.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Replaces the policies. Guard counters, trips, held executions and approvals stay: they
    /// belong to policy names, and a policy that keeps its name keeps them.
    pub fn reload(&self, cfg: &ActionsConfig, base_dir: &Path) -> Result<()> {
        let policies = build_policies(cfg, base_dir, &self.kind_builder)?;
        for p in policies.keys() {
            self.metrics.register(p);
        }
        *self.policies.write() = policies;
        *self.base_dir.write() = base_dir.to_path_buf();
        self.wake.notify_one();
        Ok(())
    }

    pub(crate) fn policy(&self, name: &str) -> Option<Arc<Policy>> {
        self.policies.read().get(name).cloned()
    }

    /// Takes the alerts of one flush for `policy`. Each alert that matches the policy's `on`
    /// and has not been seen is claimed in the journal (one transaction) before this returns,
    /// so a flush that succeeded has recorded its intents; deciding happens in the background.
    pub fn submit(self: &Arc<Self>, policy: &str, alerts: &[Alert]) -> Result<usize> {
        let p = self
            .policy(policy)
            .ok_or_else(|| Error::Config(format!("no action policy named {policy:?}")))?;
        let now = self.clock.now_ms();
        let mut fresh: Vec<(NewExec, Job)> = Vec::new();
        {
            let seen = self.seen.lock();
            for a in alerts {
                if crate::builtin::is_own(a) {
                    // Remediating the alerts about remediation would feed a storm back into
                    // itself; they are for people.
                    if self.warned_own.lock().insert(policy.to_string()) {
                        tracing::warn!(
                            policy,
                            alertname = a.name(),
                            "the actions engine's own alerts are routed to an action policy; they are not acted on (route them to people)"
                        );
                    }
                    continue;
                }
                let resolved = a.resolved_at(now);
                if resolved != (p.cfg.on == On::Resolved) {
                    continue;
                }
                let fp = a.fingerprint();
                let key = execution_key(policy, fp, a.starts_at);
                if seen.contains_key(&key) {
                    continue;
                }
                let rid = request_id(&key);
                let (target, detail) = match &p.target {
                    None => (a.fingerprint_hex(), String::new()),
                    Some(t) => match t.render(&RenderCx {
                        alert: a,
                        policy,
                        target: "",
                        request_id: &rid,
                        now_ms: now,
                    }) {
                        Ok(s) if !s.is_empty() => (s, String::new()),
                        Ok(_) => (
                            a.fingerprint_hex(),
                            "target rendered empty; the alert fingerprint stands in".into(),
                        ),
                        Err(e) => (a.fingerprint_hex(), e.to_string()),
                    },
                };
                let delayed = p.cfg.delay.ms() > 0;
                fresh.push((
                    NewExec {
                        key,
                        policy: policy.to_string(),
                        fingerprint: fp,
                        alert_starts_at: a.starts_at,
                        labels: label_map(&a.labels),
                        annotations: a.annotations.clone(),
                        target: target.clone(),
                        kind: p.kind.kind().to_string(),
                        mode: p.cfg.mode.as_str().to_string(),
                        state: if delayed {
                            state::DELAYED
                        } else {
                            state::MATCHED
                        },
                        due_at: if delayed { now + p.cfg.delay.ms() } else { 0 },
                        detail,
                    },
                    Job {
                        id: 0,
                        policy: policy.to_string(),
                        alert: a.clone(),
                        target,
                        request_id: rid,
                    },
                ));
            }
        }
        if let Some(ha) = self.ha.get() {
            fresh.retain(|(n, _)| match ha.claim_action(&n.key) {
                Ok(true) => true,
                Ok(false) => {
                    tracing::info!(key = %n.key, "action execution claimed by another replica");
                    self.seen.lock().insert(n.key.clone(), n.alert_starts_at);
                    false
                }
                Err(e) => {
                    // Not run, not remembered: the alert's next notification tries again.
                    tracing::warn!(key = %n.key, error = %e, "action execution not claimed");
                    false
                }
            });
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        let news: Vec<NewExec> = fresh.iter().map(|(n, _)| n.clone()).collect();
        let ids = self.journal.claim(&news, now)?;
        let mut taken = 0;
        {
            let mut seen = self.seen.lock();
            if seen.len() > 500_000 {
                seen.retain(|_, s| *s > now - SEEN_FOR_MS);
            }
            let mut waiting = self.waiting.lock();
            for ((n, mut job), id) in fresh.into_iter().zip(ids) {
                seen.insert(n.key.clone(), n.alert_starts_at);
                let Some(id) = id else { continue };
                taken += 1;
                job.id = id;
                self.metrics.outcome(policy, "matched");
                let due = if n.state == state::DELAYED {
                    n.due_at
                } else {
                    now
                };
                waiting.insert(id, (job, Due::Delay, due));
            }
        }
        self.wake.notify_one();
        Ok(taken)
    }

    /// Processes everything due at the clock's now: delays that passed (decide), approvals
    /// that expired, verifications that are due; trips that reset themselves; the engine's
    /// own alerts. Returns when the decisions are made (executions run in the background).
    pub async fn tick(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        let due: Vec<(Job, Due)> = {
            let mut w = self.waiting.lock();
            let ids: Vec<i64> = w
                .iter()
                .filter(|(_, (_, _, at))| *at <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| w.remove(&id).map(|(j, d, _)| (j, d)))
                .collect()
        };
        let _serial = self.decide_lock.lock().await;
        for (job, what) in due {
            match what {
                Due::Delay => self.decide(job, now),
                Due::ApprovalExpiry => self.expire(job, now),
                Due::Verify => self.verify(job, now),
            }
        }
        self.flush_batch(now);
        self.auto_resets(now);
        self.builtin.refresh(self, now);
    }

    /// When the next timer is due, if any.
    fn next_due(&self) -> Option<i64> {
        self.waiting.lock().values().map(|(_, _, at)| *at).min()
    }

    /// Runs the timers until the task is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let e = self.clone();
        tokio::spawn(async move {
            loop {
                e.tick().await;
                let now = e.clock.now_ms();
                // Built-in alerts are refreshed at least every few seconds.
                let wait = e.next_due().map_or(5_000, |at| (at - now).clamp(0, 5_000));
                if wait > 0 {
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(wait as u64),
                        e.wake.notified(),
                    )
                    .await;
                }
            }
        })
    }

    /// Waits until nothing is being decided or run (for tests and shutdown).
    pub async fn wait_idle(&self) {
        loop {
            let n = self.idle.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            n.await;
        }
    }

    pub(crate) fn hold(&self, job: Job, what: Due, at: i64) {
        self.waiting.lock().insert(job.id, (job, what, at));
        self.wake.notify_one();
    }

    /// Records a final decision (suppressed, skipped, dry run) to be written with the others
    /// of this tick in one transaction: a storm of thousands of suppressions is one commit,
    /// not thousands. Only for rows nothing else writes afterwards.
    pub(crate) fn record_final(&self, id: i64, u: Update) {
        self.batch.lock().push((id, u));
    }

    fn flush_batch(&self, now: i64) {
        let b = std::mem::take(&mut *self.batch.lock());
        if let Err(e) = self.journal.update_many(&b, now) {
            tracing::error!(decisions = b.len(), error = %e, "action journal write failed");
        }
    }

    pub(crate) fn record(&self, id: i64, u: Update, now: i64) {
        if let Err(e) = self.journal.update(id, &u, now, false) {
            tracing::error!(execution = id, error = %e, "action journal write failed");
        }
    }

    /// Whether the alert is still as it was when the execution was claimed: firing with the
    /// same start (for `on: firing`), or not firing again (for `on: resolved`).
    pub(crate) fn alert_unchanged(&self, job: &Job, on: On, now: i64) -> bool {
        let current = self
            .bridge
            .get()
            .and_then(|b| b.get(job.alert.fingerprint()));
        let firing_same = current
            .as_ref()
            .is_some_and(|a| a.starts_at == job.alert.starts_at && !a.resolved_at(now));
        match on {
            On::Firing => firing_same,
            On::Resolved => current.is_none_or(|a| a.resolved_at(now)),
        }
    }
}

/// The one number a query must give (fleet size, age).
pub(crate) fn single(
    r: std::result::Result<Vec<(Labels, f64)>, String>,
    expr: &str,
) -> std::result::Result<f64, String> {
    match r {
        Err(e) => Err(format!("query {expr:?} failed: {e}")),
        Ok(v) if v.is_empty() => Err(format!("query {expr:?} returned nothing")),
        Ok(v) if v.len() > 1 => Err(format!(
            "query {expr:?} returned {} series; it must return one",
            v.len()
        )),
        Ok(v) => Ok(v[0].1),
    }
}

fn build_policies(
    cfg: &ActionsConfig,
    base_dir: &Path,
    kb: &KindBuilder,
) -> Result<HashMap<String, Arc<Policy>>> {
    let mut out = HashMap::new();
    for (i, p) in cfg.policies.iter().enumerate() {
        let what = format!("actions.policies[{i}]");
        out.insert(
            p.name.clone(),
            Arc::new(Policy::build(p, base_dir, &what, kb)?),
        );
    }
    Ok(out)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
