//! The rule manager: runs every loaded group on its own interval (aligned to a per-group offset so
//! groups spread out), counts missed and slow iterations, keeps the status `/api/v1/rules` shows,
//! hands alerts that need sending to an `AlertSink` with Prometheus's resend and `endsAt` rules,
//! restores `for` state after a restart, and applies reloads without losing alert state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tocsin_model::{Clock, Labels};
use tocsin_promql::Engine;
use tocsin_storage::{Appendable, Queryable};

use crate::eval::{Alert, AlertState, GroupEval};
use crate::file::{Rule, RuleGroup};
use crate::lifecycle::RestoreOptions;

/// Where alerts go: the built-in alert manager, external Alertmanagers, or both.
pub trait AlertSink: Send + Sync {
    fn send(&self, alerts: Vec<tocsin_model::Alert>);
}

#[derive(Clone)]
pub struct ManagerOptions {
    pub engine: Arc<Engine>,
    pub queryable: Arc<dyn Queryable>,
    pub appendable: Arc<dyn Appendable>,
    pub clock: Arc<dyn Clock>,
    pub sink: Arc<dyn AlertSink>,
    /// Least time between two sends of a still-firing alert (Prometheus's `resend-delay`, 1m).
    pub resend_delay_ms: i64,
    pub restore: RestoreOptions,
}

/// What groups are evaluated with that comes from the config rather than the rule file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalContext {
    pub external_labels: Labels,
    /// The base of alerts' `generatorURL`.
    pub external_url: String,
}

/// A group as loaded from a rule file, with its effective interval.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedGroup {
    pub file: String,
    pub group: RuleGroup,
    pub interval_ms: i64,
}

/// Health of one rule after its last evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleStatus {
    /// `unknown` before the first evaluation, then `ok` or `err`.
    pub health: &'static str,
    pub last_error: String,
    pub last_eval_ms: i64,
    pub eval_seconds: f64,
}

/// Counters of one group for `/metrics`.
#[derive(Debug, Default)]
pub struct GroupCounters {
    pub iterations: AtomicU64,
    pub missed: AtomicU64,
    pub evaluations: AtomicU64,
    pub failures: AtomicU64,
}

/// What `/api/v1/rules` and `/metrics` read about one group.
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub file: String,
    pub name: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub rules: Vec<Rule>,
    pub rule_status: Vec<RuleStatus>,
    /// Per rule: its alerts (pending, firing, recently resolved), sorted by labels.
    pub alerts: Vec<Vec<Alert>>,
    pub last_eval_ms: i64,
    pub eval_seconds: f64,
    pub iterations: u64,
    pub missed: u64,
    pub evaluations: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, Default)]
struct Status {
    last_eval_ms: i64,
    eval_seconds: f64,
    rules: Vec<RuleStatus>,
    alerts: Vec<Vec<Alert>>,
}

struct GroupHandle {
    def: LoadedGroup,
    ctx: EvalContext,
    eval: Mutex<GroupEval>,
    status: RwLock<Status>,
    counters: GroupCounters,
    /// Last time each alert (by label hash) was handed to the sink, with the `active_at` of the
    /// alert instance it was sent for: an alert that resolves and fires again is a new instance,
    /// sent at once as Prometheus does, not held back by the resend delay of the old one.
    last_sent: Mutex<HashMap<u64, (i64, i64)>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl GroupHandle {
    fn new(def: LoadedGroup, ctx: EvalContext) -> GroupHandle {
        let n = def.group.rules.len();
        let eval = GroupEval::with_context(
            def.group.clone(),
            ctx.external_labels.clone(),
            ctx.external_url.clone(),
        );
        let (stop, _) = tokio::sync::watch::channel(false);
        GroupHandle {
            def,
            ctx,
            eval: Mutex::new(eval),
            status: RwLock::new(Status {
                rules: vec![
                    RuleStatus {
                        health: "unknown",
                        ..Default::default()
                    };
                    n
                ],
                alerts: vec![Vec::new(); n],
                ..Default::default()
            }),
            counters: GroupCounters::default(),
            last_sent: Mutex::new(HashMap::new()),
            stop,
            task: Mutex::new(None),
        }
    }

    /// Evaluates the group at `ts`, records status, and sends what needs sending.
    fn evaluate(&self, opts: &ManagerOptions, ts: i64, restore: bool) {
        let started = Instant::now();
        let mut ge = self.eval.lock();
        let out = ge.eval(&opts.engine, &*opts.queryable, &*opts.appendable, ts);
        if restore {
            let n = ge.restore_for_state(&*opts.queryable, ts, opts.restore);
            if n > 0 {
                tracing::info!(group = %self.def.group.name, file = %self.def.file, restored = n, "restored the for state of pending alerts");
            }
        }
        let alerts: Vec<Vec<Alert>> = (0..self.def.group.rules.len())
            .map(|i| ge.alerts_of(i).into_iter().cloned().collect())
            .collect();
        drop(ge);
        let took = started.elapsed().as_secs_f64();
        self.counters
            .evaluations
            .fetch_add(out.errors.len() as u64, Ordering::Relaxed);
        let mut rules = Vec::with_capacity(out.errors.len());
        for (i, e) in out.errors.iter().enumerate() {
            let rule = &self.def.group.rules[i];
            if let Some(msg) = e {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group = %self.def.group.name, rule = %rule.name(), error = %msg, "rule evaluation failed");
            }
            rules.push(RuleStatus {
                health: if e.is_some() { "err" } else { "ok" },
                last_error: e.clone().unwrap_or_default(),
                last_eval_ms: ts,
                eval_seconds: out.rule_seconds.get(i).copied().unwrap_or(0.0),
            });
        }
        let to_send = self.alerts_to_send(opts, &out.alerts, ts);
        *self.status.write() = Status {
            last_eval_ms: ts,
            eval_seconds: took,
            rules,
            alerts,
        };
        if !to_send.is_empty() {
            opts.sink.send(to_send);
        }
    }

    /// Prometheus's sending rule: a firing alert is re-sent once per resend delay, a resolved one
    /// at once and then once per resend delay while it is kept (15 minutes, so a lost resolve is
    /// retried), and `endsAt` of a firing
    /// alert is 4 intervals ahead, so receivers resolve it by themselves if we stop sending.
    fn alerts_to_send(
        &self,
        opts: &ManagerOptions,
        alerts: &[Alert],
        ts: i64,
    ) -> Vec<tocsin_model::Alert> {
        let mut last_sent = self.last_sent.lock();
        let delta = self.def.interval_ms.max(opts.resend_delay_ms);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for a in alerts {
            let h = a.labels.hash();
            seen.insert(h);
            if a.state == AlertState::Pending {
                continue;
            }
            let last = last_sent
                .get(&h)
                .filter(|(_, active_at)| *active_at == a.active_at)
                .map(|(l, _)| *l);
            // Prometheus's rule, strict comparison included: with a 1m interval and a 1m resend
            // delay a firing alert goes out every other evaluation.
            let needs = match last {
                None => true,
                Some(l) => {
                    (a.state == AlertState::Inactive && a.resolved_at > l)
                        || l + opts.resend_delay_ms < ts
                }
            };
            if !needs {
                continue;
            }
            last_sent.insert(h, (ts, a.active_at));
            let mut b = a.labels.builder();
            for l in self.ctx.external_labels.iter() {
                if b.get(&l.name).is_none() {
                    b.set(&l.name, &l.value);
                }
            }
            out.push(tocsin_model::Alert {
                labels: b.build(),
                annotations: a.annotations.clone(),
                starts_at: a.fired_at,
                ends_at: if a.state == AlertState::Inactive {
                    a.resolved_at
                } else {
                    ts + 4 * delta
                },
                generator_url: self.generator_url(a),
                updated_at: 0,
                timeout: false,
            });
        }
        last_sent.retain(|h, _| seen.contains(h));
        out
    }

    fn generator_url(&self, a: &Alert) -> String {
        let expr = self
            .def
            .group
            .rules
            .iter()
            .find_map(|r| match r {
                Rule::Alerting(r) if Some(r.alert.as_str()) == a.labels.get("alertname") => {
                    Some(r.expr.as_str())
                }
                _ => None,
            })
            .unwrap_or("");
        let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        format!(
            "{}/graph?g0.expr={q}&g0.tab=1",
            self.ctx.external_url.trim_end_matches('/')
        )
    }

    fn snapshot(&self) -> GroupSnapshot {
        let st = self.status.read().clone();
        GroupSnapshot {
            file: self.def.file.clone(),
            name: self.def.group.name.clone(),
            interval_ms: self.def.interval_ms,
            limit: self.def.group.limit,
            rules: self.def.group.rules.clone(),
            rule_status: st.rules,
            alerts: st.alerts,
            last_eval_ms: st.last_eval_ms,
            eval_seconds: st.eval_seconds,
            iterations: self.counters.iterations.load(Ordering::Relaxed),
            missed: self.counters.missed.load(Ordering::Relaxed),
            evaluations: self.counters.evaluations.load(Ordering::Relaxed),
            failures: self.counters.failures.load(Ordering::Relaxed),
        }
    }
}

/// The first evaluation time at or after `now` on the group's grid: multiples of the interval
/// shifted by a per-group offset, so a thousand groups with the same interval do not all run at
/// the same instant, and every restart keeps a group on the same grid.
pub fn next_eval_ms(now: i64, interval: i64, offset: i64) -> i64 {
    let adj = now - offset;
    let base = adj - adj.rem_euclid(interval);
    let t = base + offset;
    if t < now {
        t + interval
    } else {
        t
    }
}

fn group_offset(file: &str, name: &str, interval: i64) -> i64 {
    let h = tocsin_model::hash_label_pairs([(file, name)].into_iter());
    (h % interval.max(1) as u64) as i64
}

impl std::fmt::Debug for RuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuleManager")
    }
}

pub struct RuleManager {
    opts: ManagerOptions,
    groups: Mutex<Vec<Arc<GroupHandle>>>,
    /// The first load restores `for` state; later loads (reloads) copy it from the old groups.
    loaded_once: AtomicBool,
}

impl RuleManager {
    pub fn new(opts: ManagerOptions) -> Arc<RuleManager> {
        Arc::new(RuleManager {
            opts,
            groups: Mutex::new(Vec::new()),
            loaded_once: AtomicBool::new(false),
        })
    }

    /// Applies a set of groups. Unchanged groups keep running untouched; a changed group is
    /// replaced and takes over the alert state of its unchanged rules; a removed group stops and
    /// marks its series stale. Must be called inside a tokio runtime.
    pub fn update(self: &Arc<Self>, groups: Vec<LoadedGroup>, ctx: EvalContext) {
        let first = !self.loaded_once.swap(true, Ordering::SeqCst);
        let mut cur = self.groups.lock();
        let mut old: HashMap<(String, String), Arc<GroupHandle>> = cur
            .drain(..)
            .map(|g| ((g.def.file.clone(), g.def.group.name.clone()), g))
            .collect();
        let mut next = Vec::with_capacity(groups.len());
        for def in groups {
            let key = (def.file.clone(), def.group.name.clone());
            if let Some(g) = old.remove(&key) {
                if g.def == def && g.ctx == ctx {
                    next.push(g);
                    continue;
                }
                g.halt();
                let h = Arc::new(GroupHandle::new(def, ctx.clone()));
                h.eval.lock().copy_state_from(&g.eval.lock());
                *h.last_sent.lock() = g.last_sent.lock().clone();
                self.start(&h, false);
                next.push(h);
            } else {
                let h = Arc::new(GroupHandle::new(def, ctx.clone()));
                self.start(&h, first);
                next.push(h);
            }
        }
        let now = self.opts.clock.now_ms();
        for (_, g) in old {
            g.halt();
            g.eval.lock().mark_stale(&*self.opts.appendable, now);
        }
        *cur = next;
    }

    fn start(&self, h: &Arc<GroupHandle>, restore: bool) {
        let task = tokio::spawn(run_group(h.clone(), self.opts.clone(), restore));
        *h.task.lock() = Some(task);
    }

    /// Every group's status, in load order.
    pub fn groups(&self) -> Vec<GroupSnapshot> {
        self.groups.lock().iter().map(|g| g.snapshot()).collect()
    }

    /// Stops every group (at shutdown).
    pub fn stop(&self) {
        for g in self.groups.lock().drain(..) {
            g.halt();
        }
    }

    /// Evaluates one group at `ts` right now, outside its schedule (tests, `tocsin` tooling).
    pub fn eval_now(&self, file: &str, name: &str, ts: i64, restore: bool) -> bool {
        let g = self
            .groups
            .lock()
            .iter()
            .find(|g| g.def.file == file && g.def.group.name == name)
            .cloned();
        match g {
            Some(g) => {
                g.evaluate(&self.opts, ts, restore);
                true
            }
            None => false,
        }
    }
}

impl GroupHandle {
    fn halt(&self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

async fn run_group(g: Arc<GroupHandle>, opts: ManagerOptions, mut restore: bool) {
    let mut stop = g.stop.subscribe();
    let interval = g.def.interval_ms.max(1);
    let offset = group_offset(&g.def.file, &g.def.group.name, interval);
    let mut next = next_eval_ms(opts.clock.now_ms(), interval, offset);
    loop {
        let wait = next - opts.clock.now_ms();
        if wait > 0 {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(wait as u64)) => {}
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        let ts = next;
        let h = g.clone();
        let o = opts.clone();
        let r = restore;
        if tokio::task::spawn_blocking(move || h.evaluate(&o, ts, r))
            .await
            .is_err()
        {
            tracing::error!(group = %g.def.group.name, "rule group evaluation panicked");
        }
        restore = false;
        g.counters.iterations.fetch_add(1, Ordering::Relaxed);
        let after = opts.clock.now_ms();
        let missed = (after - ts) / interval - 1;
        if missed > 0 {
            g.counters
                .missed
                .fetch_add(missed as u64, Ordering::Relaxed);
            tracing::warn!(group = %g.def.group.name, missed, "rule group evaluation took longer than its interval; iterations missed");
        }
        next = ts + interval * (missed.max(0) + 1);
    }
}

#[cfg(test)]
#[path = "manager_compliance_tests.rs"]
mod compliance_tests;

#[cfg(test)]
mod tests {
    //! The scheduler under a test clock: tokio's paused time drives the sleeps, and the clock the
    //! manager reads is that same time plus an offset a "slow" querier can push forward.
    use super::*;
    use crate::parse_rule_file;
    use std::sync::atomic::AtomicI64;
    use tocsin_storage::{MemoryStore, Querier};

    const START_MS: i64 = 1_800_000_000_000;

    struct TestClock {
        base: tokio::time::Instant,
        /// Extra time that passed "inside" an evaluation.
        extra_ms: AtomicI64,
    }

    impl Clock for TestClock {
        fn now_ms(&self) -> i64 {
            START_MS + self.base.elapsed().as_millis() as i64 + self.extra_ms.load(Ordering::SeqCst)
        }
    }

    /// A store whose first `slow` queries each take `cost_ms` of clock time.
    struct SlowStore {
        inner: MemoryStore,
        clock: Arc<TestClock>,
        slow: AtomicU64,
        cost_ms: i64,
    }

    impl Queryable for SlowStore {
        fn querier(&self, mint: i64, maxt: i64) -> tocsin_storage::Result<Box<dyn Querier>> {
            if self
                .slow
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                self.clock
                    .extra_ms
                    .fetch_add(self.cost_ms, Ordering::SeqCst);
            }
            self.inner.querier(mint, maxt)
        }
    }

    #[derive(Default)]
    struct Collect(
        Mutex<Vec<(i64, tocsin_model::Alert)>>,
        Option<Arc<TestClock>>,
    );

    impl AlertSink for Collect {
        fn send(&self, alerts: Vec<tocsin_model::Alert>) {
            let now = self.1.as_ref().map_or(0, |c| c.now_ms());
            self.0.lock().extend(alerts.into_iter().map(|a| (now, a)));
        }
    }

    struct Setup {
        clock: Arc<TestClock>,
        store: Arc<SlowStore>,
        sink: Arc<Collect>,
        mgr: Arc<RuleManager>,
    }

    fn setup(rules: &str, interval_ms: i64, slow: u64, cost_ms: i64) -> Setup {
        let clock = Arc::new(TestClock {
            base: tokio::time::Instant::now(),
            extra_ms: AtomicI64::new(0),
        });
        let store = Arc::new(SlowStore {
            inner: MemoryStore::new(),
            clock: clock.clone(),
            slow: AtomicU64::new(slow),
            cost_ms,
        });
        let sink = Arc::new(Collect(Mutex::new(Vec::new()), Some(clock.clone())));
        let appendable: Arc<dyn Appendable> = Arc::new(store.inner.clone());
        let mgr = RuleManager::new(ManagerOptions {
            engine: Arc::new(Engine::default()),
            queryable: store.clone(),
            appendable,
            clock: clock.clone(),
            sink: sink.clone(),
            resend_delay_ms: 30_000,
            restore: RestoreOptions::default(),
        });
        let group = parse_rule_file(rules, "t.yml")
            .expect("test rules parse")
            .groups
            .remove(0);
        mgr.update(
            vec![LoadedGroup {
                file: "t.yml".into(),
                group,
                interval_ms,
            }],
            EvalContext::default(),
        );
        Setup {
            clock,
            store,
            sink,
            mgr,
        }
    }

    /// Lets the scheduler run for `ms` of test time.
    async fn run_for(ms: u64) {
        // Small steps, so a blocking evaluation in flight completes before time moves on.
        for _ in 0..ms / 100 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            tokio::task::yield_now().await;
        }
    }

    const RECORD: &str =
        "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(1)\n";

    #[tokio::test(start_paused = true)]
    async fn groups_evaluate_on_their_interval_grid() {
        let s = setup(RECORD, 10_000, 0, 0);
        run_for(60_000).await;
        let g = &s.mgr.groups()[0];
        assert!(
            (5..=6).contains(&g.iterations),
            "iterations {}",
            g.iterations
        );
        assert_eq!(g.missed, 0);
        assert_eq!(g.failures, 0);
        let offset = group_offset("t.yml", "g", 10_000);
        assert_eq!((g.last_eval_ms - offset).rem_euclid(10_000), 0);
        assert!(g.last_eval_ms <= s.clock.now_ms());
        s.mgr.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_evaluation_counts_missed_iterations_and_keeps_the_grid() {
        // The first evaluation (at t) takes 25 s of a 10 s interval. As in Prometheus, the slot
        // at t+10 s counts as missed, and the one at t+20 s, already due, runs late right away.
        let s = setup(RECORD, 10_000, 1, 25_000);
        run_for(60_000).await;
        let g = &s.mgr.groups()[0];
        assert_eq!(g.missed, 1, "missed iterations");
        let offset = group_offset("t.yml", "g", 10_000);
        assert_eq!((g.last_eval_ms - offset).rem_euclid(10_000), 0);
        // 85 s of clock time on a 10 s grid, minus the missed slot.
        assert!(
            (7..=8).contains(&g.iterations),
            "iterations {}",
            g.iterations
        );
        assert_eq!(s.store.slow.load(Ordering::SeqCst), 0);
        s.mgr.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn firing_alert_is_resent_after_the_resend_delay_with_ends_at_ahead() {
        let rules =
            "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n";
        let s = setup(rules, 10_000, 0, 0);
        run_for(100_000).await;
        let sent = s.sink.0.lock().clone();
        assert!(!sent.is_empty());
        // Sent at the first evaluation, then each time more than 30 s have passed: every 40 s.
        let times: Vec<i64> = sent.iter().map(|(_, a)| a.ends_at).collect();
        for w in times.windows(2) {
            assert_eq!(w[1] - w[0], 40_000, "resend spacing, ends_at {times:?}");
        }
        let (_, first) = &sent[0];
        assert_eq!(first.labels.get("alertname"), Some("Always"));
        // endsAt is 4 × max(interval, resend delay) after the evaluation that sent it.
        assert_eq!(first.ends_at - first.starts_at, 4 * 30_000);
        assert!((2..=3).contains(&sent.len()), "sent {}", sent.len());
        s.mgr.stop();
    }
}
