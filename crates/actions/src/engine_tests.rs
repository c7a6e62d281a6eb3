#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The engine with a recording kind, a test clock, an in-memory (or file) state db and a fake
//! alert manager: exactly once, delay, modes, guards and trips, retries, verification,
//! resuming after a crash, reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tocsin_alerts::state::StateDb;
use tocsin_model::{Alert, Labels, ManualClock};

use super::*;
use crate::kinds::{Attempt, BoxFuture, ExecCx, Prepared};
use crate::template::RenderCx;

const T0: i64 = 1_800_000_000_000;
const M: i64 = 60_000;

/// A kind that records what it was asked to do and answers from a script.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    script: Mutex<Vec<Attempt>>,
    idempotent: bool,
    /// Attempts wait this long (to be caught running).
    hang: Mutex<Option<Duration>>,
}

impl Kind for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn idempotent(&self) -> bool {
        self.idempotent
    }
    fn prepare(&self, cx: &RenderCx<'_>) -> crate::Result<Prepared> {
        Ok(Prepared {
            request: serde_json::json!({"target": cx.target, "requestId": cx.request_id}),
            payload: Box::new(cx.target.to_string()),
        })
    }
    fn execute<'a>(&'a self, p: &'a Prepared, _cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            let hang = *self.hang.lock();
            if let Some(h) = hang {
                tokio::time::sleep(h).await;
            }
            let t = p
                .payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            self.calls.lock().push(t);
            let mut s = self.script.lock();
            if s.is_empty() {
                Attempt::Done {
                    status: Some(200),
                    detail: "ok".into(),
                    already_done: false,
                }
            } else {
                s.remove(0)
            }
        })
    }
}

#[derive(Default)]
struct FakeAm {
    alerts: Mutex<HashMap<u64, Alert>>,
    put: Mutex<Vec<Alert>>,
    /// Values of `vm`... labels whose alerts are silenced.
    silenced: Mutex<Vec<String>>,
}

impl AlertBridge for FakeAm {
    fn get(&self, fp: u64) -> Option<Alert> {
        self.alerts.lock().get(&fp).cloned()
    }
    fn put(&self, alerts: Vec<Alert>) {
        self.put.lock().extend(alerts);
    }
    fn muted(&self, labels: &Labels) -> Option<String> {
        let id = labels.get("instance_id").unwrap_or("").to_string();
        self.silenced
            .lock()
            .contains(&id)
            .then(|| "silenced by s1".to_string())
    }
}

impl FakeAm {
    fn fire(&self, a: &Alert) {
        self.alerts.lock().insert(a.fingerprint(), a.clone());
    }
    fn resolve(&self, a: &Alert, at: i64) {
        let mut r = a.clone();
        r.ends_at = at;
        self.alerts.lock().insert(a.fingerprint(), r);
    }
    fn named(&self, name: &str) -> Vec<Alert> {
        self.put
            .lock()
            .iter()
            .filter(|a| a.name() == name)
            .cloned()
            .collect()
    }
}

struct Fleet(f64, AtomicUsize);
impl Query for Fleet {
    fn instant(&self, _expr: &str, _at: i64) -> Result<Vec<(Labels, f64)>, String> {
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(vec![(Labels::default(), self.0)])
    }
}

struct Rig {
    engine: Arc<Engine>,
    clock: ManualClock,
    kind: Arc<Recorder>,
    am: Arc<FakeAm>,
    db: StateDb,
}

fn cfg(yaml: &str) -> ActionsConfig {
    serde_norway::from_str(yaml).unwrap()
}

fn rig_with(yaml: &str, db: StateDb, kind: Arc<Recorder>, clock: ManualClock) -> Rig {
    let k = kind.clone();
    let engine = Engine::with_kind_builder(
        &cfg(yaml),
        EngineOptions {
            state: db.clone(),
            clock: Arc::new(clock.clone()),
            base_dir: Path::new(".").to_path_buf(),
            external_url: "http://tocsin".into(),
        },
        Arc::new(move |_, _, _| Ok(k.clone() as Arc<dyn Kind>)),
    )
    .unwrap();
    let am = Arc::new(FakeAm::default());
    engine.attach(am.clone(), Arc::new(Fleet(100.0, AtomicUsize::new(0))));
    engine.resume().unwrap();
    Rig {
        engine,
        clock,
        kind,
        am,
        db,
    }
}

fn rig(yaml: &str) -> Rig {
    rig_with(
        yaml,
        StateDb::in_memory().unwrap(),
        Arc::new(Recorder::default()),
        ManualClock::new(T0),
    )
}

fn vm(i: usize) -> Alert {
    Alert {
        labels: Labels::from_pairs(&[("alertname", "Stuck"), ("instance_id", &format!("vm-{i}"))]),
        annotations: Default::default(),
        starts_at: T0 - M,
        ends_at: 0,
        generator_url: String::new(),
        updated_at: T0,
        timeout: false,
    }
}

impl Rig {
    async fn settle(&self) {
        self.engine.tick().await;
        self.engine.wait_idle().await;
    }
    fn outcome(&self, policy: &str) -> Vec<String> {
        self.engine
            .journal
            .list(&crate::journal::ListQuery {
                policy: Some(policy.into()),
                limit: 1000,
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .rev()
            .map(|r| r.state)
            .collect()
    }
}

const AUTO: &str = "policies:
  - name: p
    target: '{{ $labels.instance_id }}'
    retry: {attempts: 3, backoff: 10ms, max_backoff: 20ms}
";

#[tokio::test]
async fn each_alert_runs_once_across_repeats_and_restarts() {
    let r = rig(AUTO);
    let alerts = vec![vm(1), vm(2)];
    assert_eq!(r.engine.submit("p", &alerts).unwrap(), 2);
    // The same alerts in the next flush, and a redelivery: nothing new.
    assert_eq!(r.engine.submit("p", &alerts).unwrap(), 0);
    r.settle().await;
    assert_eq!(r.engine.submit("p", &alerts).unwrap(), 0);
    r.settle().await;
    let mut calls = r.kind.calls.lock().clone();
    calls.sort();
    assert_eq!(calls, ["vm-1", "vm-2"]);
    assert_eq!(r.outcome("p"), ["succeeded", "succeeded"]);

    // A new process on the same state: still nothing new.
    let r2 = rig_with(
        AUTO,
        r.db.clone(),
        Arc::new(Recorder::default()),
        r.clock.clone(),
    );
    assert_eq!(r2.engine.submit("p", &alerts).unwrap(), 0);
    r2.settle().await;
    assert!(r2.kind.calls.lock().is_empty());

    // The same alert firing again (a new start) is a new execution.
    let mut again = vm(1);
    again.starts_at = T0 + M;
    assert_eq!(r2.engine.submit("p", &[again]).unwrap(), 1);
    r2.settle().await;
    assert_eq!(*r2.kind.calls.lock(), ["vm-1"]);

    // The audit names the steps (of vm-2, the second claimed).
    let id = r.engine.journal.list(&Default::default()).unwrap()[1].id;
    let v = r.engine.get(id).unwrap();
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["matched", "sent", "succeeded"]);
    assert_eq!(v["request"]["target"], "vm-2");
}

#[tokio::test]
async fn resolved_alerts_do_not_trigger_a_firing_policy_and_vice_versa() {
    let r = rig("policies:\n  - name: up\n    on: resolved\n  - name: down\n");
    let mut res = vm(1);
    res.ends_at = T0 - 1;
    assert_eq!(r.engine.submit("down", &[res.clone()]).unwrap(), 0);
    assert_eq!(r.engine.submit("up", &[vm(2)]).unwrap(), 0);
    assert_eq!(r.engine.submit("up", &[res]).unwrap(), 1);
    r.settle().await;
    assert_eq!(r.outcome("up"), ["succeeded"]);
}

#[tokio::test]
async fn delay_acts_only_if_the_alert_still_fires() {
    let r = rig("policies:\n  - name: p\n    delay: 2m\n    target: '{{ $labels.instance_id }}'\n");
    let (a, b) = (vm(1), vm(2));
    r.am.fire(&a);
    r.am.fire(&b);
    r.engine.submit("p", &[a.clone(), b.clone()]).unwrap();
    r.settle().await;
    assert!(r.kind.calls.lock().is_empty());
    assert_eq!(r.outcome("p"), ["delayed", "delayed"]);
    r.am.resolve(&b, T0 + M);
    r.clock.advance(2 * M);
    r.settle().await;
    assert_eq!(*r.kind.calls.lock(), ["vm-1"]);
    assert_eq!(r.outcome("p"), ["succeeded", "skipped"]);

    // A silence made during the delay stops the action.
    let c = vm(3);
    r.am.fire(&c);
    r.engine.submit("p", &[c]).unwrap();
    r.settle().await;
    r.am.silenced.lock().push("vm-3".into());
    r.clock.advance(2 * M);
    r.settle().await;
    assert_eq!(r.kind.calls.lock().len(), 1);
    let row = &r.engine.journal.list(&Default::default()).unwrap()[0];
    assert_eq!(row.state, "skipped");
    assert_eq!(row.detail, "silenced by s1 during the delay");
}

#[tokio::test]
async fn dry_run_records_the_request_and_sends_nothing() {
    let r =
        rig("policies:\n  - name: p\n    mode: dry_run\n    target: '{{ $labels.instance_id }}'\n");
    r.engine.submit("p", &[vm(7)]).unwrap();
    r.settle().await;
    assert!(r.kind.calls.lock().is_empty());
    let rows = r.engine.journal.list(&Default::default()).unwrap();
    assert_eq!(rows[0].state, "dry_run");
    assert_eq!(rows[0].request["target"], "vm-7");
    assert_eq!(r.engine.metrics().count("p", "dry_run"), 1);
}

#[tokio::test]
async fn approval_runs_denies_and_expires() {
    let r = rig("policies:\n  - name: p\n    mode: approve\n    approval_ttl: 10m\n    target: '{{ $labels.instance_id }}'\n");
    r.engine.submit("p", &[vm(1), vm(2), vm(3)]).unwrap();
    r.settle().await;
    assert!(r.kind.calls.lock().is_empty());
    let ids: Vec<i64> = {
        let mut v: Vec<i64> = r
            .engine
            .journal
            .list(&Default::default())
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(r.outcome("p"), ["pending_approval"; 3]);
    let v = r.engine.approve(ids[0], "alice", "go").unwrap();
    assert_eq!(v["decided_by"], "alice");
    r.engine.wait_idle().await;
    assert_eq!(*r.kind.calls.lock(), ["vm-1"]);
    r.engine.deny(ids[1], "bob", "not this one").unwrap();
    // Approving twice, or a denied one, is refused.
    assert!(matches!(
        r.engine.approve(ids[0], "alice", ""),
        Err(Error::BadData(_))
    ));
    assert!(matches!(
        r.engine.approve(ids[1], "a", ""),
        Err(Error::BadData(_))
    ));
    assert!(matches!(
        r.engine.approve(999, "a", ""),
        Err(Error::NotFound(_))
    ));
    r.clock.advance(10 * M);
    r.settle().await;
    assert_eq!(r.outcome("p"), ["succeeded", "denied", "expired"]);
    assert_eq!(*r.kind.calls.lock(), ["vm-1"]);
}

#[tokio::test]
async fn a_storm_trips_the_policy_and_raises_remediation_suppressed_until_reset() {
    let r = rig("policies:
  - name: p
    target: '{{ $labels.instance_id }}'
    guards: {max_fraction: 0.05, fleet_size: 'count(up)'}
");
    let storm: Vec<Alert> = (0..50).map(vm).collect();
    assert_eq!(r.engine.submit("p", &storm).unwrap(), 50);
    r.settle().await;
    // 5% of a fleet of 100.
    assert_eq!(r.kind.calls.lock().len(), 5);
    let out = r.outcome("p");
    assert_eq!(out.iter().filter(|s| *s == "suppressed").count(), 45);
    let s = r.am.named("RemediationSuppressed");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].labels.get("guard"), Some("max_fraction"));
    assert_eq!(s[0].labels.get("policy"), Some("p"));
    assert!(s[0].ends_at > T0);
    let snap = r.engine.metrics().snapshot();
    assert_eq!(
        snap.suppressed
            .get(&("p".to_string(), "max_fraction".to_string())),
        Some(&45)
    );
    assert_eq!(r.engine.tripped(), [("p".to_string(), true)]);

    // Still tripped after a reload; reset by hand clears it and resolves the alert.
    r.engine
        .reload(
            &cfg("policies:\n  - name: p\n    guards: {max_fraction: 0.05, fleet_size: 'count(up)'}\n"),
            Path::new("."),
        )
        .unwrap();
    assert_eq!(r.engine.tripped(), [("p".to_string(), true)]);
    r.engine.reset("p", "carol").unwrap();
    assert!(matches!(
        r.engine.reset("p", "carol"),
        Err(Error::BadData(_))
    ));
    let s = r.am.named("RemediationSuppressed");
    assert_eq!(s.last().unwrap().ends_at, T0);
    assert_eq!(r.engine.tripped(), [("p".to_string(), false)]);
    let ev = r.engine.journal.policy_events(10).unwrap();
    assert_eq!(ev[0].event, "reset");
    assert_eq!(ev[0].actor, "carol");
    assert_eq!(ev[1].event, "tripped");
}

#[tokio::test]
async fn the_trip_survives_a_restart() {
    let yaml = "policies:\n  - name: p\n    guards: {rate: {limit: 1, window: 1h}}\n";
    let r = rig(yaml);
    r.engine.submit("p", &[vm(1), vm(2)]).unwrap();
    r.settle().await;
    assert_eq!(r.outcome("p"), ["succeeded", "suppressed"]);
    let r2 = rig_with(
        yaml,
        r.db.clone(),
        Arc::new(Recorder::default()),
        r.clock.clone(),
    );
    assert_eq!(r2.engine.tripped(), [("p".to_string(), true)]);
    // The alert is raised again by the new process.
    assert_eq!(r2.am.named("RemediationSuppressed").len(), 1);
    r2.engine.submit("p", &[vm(3)]).unwrap();
    r2.settle().await;
    assert!(r2.kind.calls.lock().is_empty());
}

#[tokio::test]
async fn retryable_failures_are_retried_and_others_are_not() {
    let r = rig(AUTO);
    let fail = |retryable| Attempt::Failed {
        retryable,
        status: Some(503),
        message: "unavailable".into(),
        retry_after: None,
    };
    *r.kind.script.lock() = vec![fail(true), fail(true)];
    r.engine.submit("p", &[vm(1)]).unwrap();
    r.settle().await;
    let row = &r.engine.journal.list(&Default::default()).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("succeeded", 3));
    *r.kind.script.lock() = vec![fail(false)];
    r.engine.submit("p", &[vm(2)]).unwrap();
    r.settle().await;
    let row = &r.engine.journal.list(&Default::default()).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 1));
    assert_eq!(row.status, 503);
    *r.kind.script.lock() = vec![fail(true), fail(true), fail(true)];
    r.engine.submit("p", &[vm(3)]).unwrap();
    r.settle().await;
    let row = &r.engine.journal.list(&Default::default()).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("failed", 3));
    assert_eq!(r.engine.metrics().count("p", "retried"), 4);
}

#[tokio::test]
async fn verify_raises_remediation_ineffective_when_the_alert_keeps_firing() {
    let r = rig("policies:\n  - name: p\n    verify: {within: 5m}\n    target: '{{ $labels.instance_id }}'\n");
    let (a, b) = (vm(1), vm(2));
    r.am.fire(&a);
    r.am.fire(&b);
    r.engine.submit("p", &[a.clone(), b.clone()]).unwrap();
    r.settle().await;
    assert_eq!(r.outcome("p"), ["verifying", "verifying"]);
    r.am.resolve(&b, T0 + M);
    r.clock.advance(5 * M);
    r.settle().await;
    assert_eq!(r.outcome("p"), ["ineffective", "verified"]);
    let i = r.am.named("RemediationIneffective");
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].labels.get("target"), Some("vm-1"));
    // It resolves once the remediated alert does.
    r.am.resolve(&a, T0 + 6 * M);
    r.clock.advance(M);
    r.settle().await;
    let i = r.am.named("RemediationIneffective");
    assert!(i.last().unwrap().resolved_at(r.clock.now_ms()));
}

async fn crash_mid_call(idempotent: bool) -> (Rig, Rig) {
    let kind = Arc::new(Recorder {
        idempotent,
        ..Default::default()
    });
    *kind.hang.lock() = Some(Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let r = rig_with(
        AUTO,
        StateDb::open(&path).unwrap(),
        kind,
        ManualClock::new(T0),
    );
    r.engine.submit("p", &[vm(1)]).unwrap();
    r.engine.tick().await;
    assert_eq!(r.outcome("p"), ["running"]);
    // The process dies between intent and outcome: a new one opens the same file.
    let kind2 = Arc::new(Recorder {
        idempotent,
        ..Default::default()
    });
    let r2 = rig_with(AUTO, StateDb::open(&path).unwrap(), kind2, r.clock.clone());
    r2.engine.wait_idle().await;
    std::mem::forget(dir);
    (r, r2)
}

#[tokio::test]
async fn an_interrupted_idempotent_action_is_sent_again_with_the_same_request_id() {
    let (_r, r2) = crash_mid_call(true).await;
    assert_eq!(*r2.kind.calls.lock(), ["vm-1"]);
    assert_eq!(r2.outcome("p"), ["succeeded"]);
    let row = &r2.engine.journal.list(&Default::default()).unwrap()[0];
    assert_eq!(row.request["requestId"], request_id(&row.key));
    let ev = r2.engine.journal.events(row.id).unwrap();
    assert!(ev.iter().any(|e| e.event == "resumed"));
}

#[tokio::test]
async fn an_interrupted_action_that_is_not_idempotent_is_unknown_and_alerts() {
    let (_r, r2) = crash_mid_call(false).await;
    assert!(r2.kind.calls.lock().is_empty());
    assert_eq!(r2.outcome("p"), ["unknown"]);
    let u = r2.am.named("RemediationOutcomeUnknown");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].labels.get("policy"), Some("p"));
}

#[tokio::test]
async fn pending_approvals_survive_a_restart() {
    let yaml = "policies:\n  - name: p\n    mode: approve\n";
    let r = rig(yaml);
    r.engine.submit("p", &[vm(1)]).unwrap();
    r.settle().await;
    let id = r.engine.journal.list(&Default::default()).unwrap()[0].id;
    let r2 = rig_with(
        yaml,
        r.db.clone(),
        Arc::new(Recorder::default()),
        r.clock.clone(),
    );
    r2.engine.approve(id, "dave", "").unwrap();
    r2.engine.wait_idle().await;
    assert_eq!(r2.kind.calls.lock().len(), 1);
}

#[test]
fn request_ids_are_uuids_fixed_by_the_key() {
    let a = request_id("p/00000000000000ff/1");
    assert_eq!(a, request_id("p/00000000000000ff/1"));
    assert_ne!(a, request_id("p/00000000000000ff/2"));
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "4");
    assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
}

#[tokio::test]
async fn a_storm_of_ten_thousand_alerts_is_decided_once_each() {
    let kind = Arc::new(Recorder::default());
    let k = kind.clone();
    let clock = ManualClock::new(T0);
    let engine = Engine::with_kind_builder(
        &cfg("policies:
  - name: p
    target: '{{ $labels.instance_id }}'
    guards: {max_fraction: 0.01, fleet_size: 'count(up)'}
"),
        EngineOptions {
            state: StateDb::in_memory().unwrap(),
            clock: Arc::new(clock.clone()),
            base_dir: Path::new(".").to_path_buf(),
            external_url: String::new(),
        },
        Arc::new(move |_, _, _| Ok(k.clone() as Arc<dyn Kind>)),
    )
    .unwrap();
    let am = Arc::new(FakeAm::default());
    let fleet = Arc::new(Fleet(10_000.0, AtomicUsize::new(0)));
    engine.attach(am.clone(), fleet.clone());
    let storm: Vec<Alert> = (0..10_000).map(vm).collect();
    assert_eq!(engine.submit("p", &storm).unwrap(), 10_000);
    // The next flushes repeat the group: nothing new.
    assert_eq!(engine.submit("p", &storm).unwrap(), 0);
    engine.tick().await;
    engine.wait_idle().await;
    let calls = kind.calls.lock().clone();
    assert_eq!(calls.len(), 100);
    let distinct: std::collections::HashSet<&String> = calls.iter().collect();
    assert_eq!(distinct.len(), 100);
    let m = engine.metrics();
    assert_eq!(m.count("p", "succeeded"), 100);
    assert_eq!(m.count("p", "suppressed"), 9_900);
    // The fleet size is asked once for the storm, not once per alert.
    assert!(fleet.1.load(Ordering::SeqCst) <= 2);
    let rows = engine
        .journal
        .list(&crate::journal::ListQuery {
            outcome: Some("suppressed".into()),
            limit: 100_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 9_900);
}
