//! Timer and pipeline behaviour of the manager, driven by a manual clock and `tick`, with
//! notifiers that record what they were given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::TimeZone;
use parking_lot::Mutex;
use tocsin_model::{Alert, Labels, ManualClock, MatchOp, Matcher};

use super::*;
use crate::notify::{BoxFuture, NotifyCx, NotifyError, Reason};
use crate::silence::Silence;

/// Records every notification; fails while `fail` is set.
struct Recorder {
    integration: &'static str,
    send_resolved: bool,
    /// Asks for every flush, as the heartbeat does.
    every_flush: bool,
    fail: AtomicBool,
    calls: Mutex<Vec<(NotifyCx, Vec<Alert>)>>,
    sent: tokio::sync::Notify,
}

impl Recorder {
    fn new(send_resolved: bool) -> Arc<Recorder> {
        Arc::new(Recorder {
            integration: "webhook",
            send_resolved,
            every_flush: false,
            fail: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
            sent: tokio::sync::Notify::new(),
        })
    }
    fn count(&self) -> usize {
        self.calls.lock().len()
    }
    fn last(&self) -> (NotifyCx, Vec<Alert>) {
        self.calls.lock().last().cloned().expect("no notification")
    }
    /// Alert names of the last notification, with `+` for firing and `-` for resolved.
    fn last_names(&self) -> Vec<String> {
        let (cx, alerts) = self.last();
        alerts
            .iter()
            .map(|a| {
                let sign = if a.resolved_at(cx.now_ms) { '-' } else { '+' };
                format!("{sign}{}", a.name())
            })
            .collect()
    }
}

impl Notifier for Recorder {
    fn integration(&self) -> &'static str {
        self.integration
    }
    fn send_resolved(&self) -> bool {
        self.send_resolved
    }
    fn every_flush(&self) -> bool {
        self.every_flush
    }
    fn notify<'a>(
        &'a self,
        cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, std::result::Result<(), NotifyError>> {
        Box::pin(async move {
            self.calls.lock().push((cx.clone(), alerts.to_vec()));
            self.sent.notify_one();
            if self.fail.load(Ordering::SeqCst) {
                return Err(NotifyError {
                    retryable: false,
                    reason: Reason::ClientError,
                    message: "told to fail".into(),
                });
            }
            Ok(())
        })
    }
}

/// Monday 2024-01-08 10:00:00 UTC.
fn t0() -> i64 {
    chrono::Utc
        .with_ymd_and_hms(2024, 1, 8, 10, 0, 0)
        .unwrap()
        .timestamp_millis()
}

const S: i64 = 1_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;

struct Harness {
    am: Arc<AlertManager>,
    clock: ManualClock,
    rec: HashMap<String, Arc<Recorder>>,
}

impl Harness {
    fn new(yaml: &str) -> Harness {
        Self::with(yaml, true)
    }

    /// Every receiver of the configuration gets one recording notifier.
    fn with(yaml: &str, send_resolved: bool) -> Harness {
        Self::on_state(yaml, send_resolved, None, ManualClock::new(t0()))
    }

    /// As `with`, on a given state db and clock (to start again after a "crash").
    fn on_state(
        yaml: &str,
        send_resolved: bool,
        state: Option<crate::state::StateDb>,
        clock: ManualClock,
    ) -> Harness {
        let cfg = AmConfig::parse(yaml, "test.yml").unwrap();
        let rec: HashMap<String, Arc<Recorder>> = cfg
            .receivers
            .iter()
            .map(|r| (r.name.clone(), Recorder::new(send_resolved)))
            .collect();
        let by_name = rec.clone();
        let build: ReceiverBuilder = Arc::new(move |c, _| {
            Ok(by_name
                .get(&c.name)
                .map(|r| vec![Arc::clone(r) as Arc<dyn Notifier>])
                .unwrap_or_default())
        });
        let am = AlertManager::with_receiver_builder(
            cfg,
            ManagerOptions {
                state,
                base_dir: PathBuf::from("."),
                external_url: "http://am.example/".into(),
                clock: Arc::new(clock.clone()),
            },
            build,
        )
        .unwrap();
        Harness { am, clock, rec }
    }

    fn r(&self, name: &str) -> &Recorder {
        &self.rec[name]
    }

    fn put(&self, alerts: Vec<Alert>) {
        self.am.put_alerts(alerts).unwrap();
    }

    /// Moves the clock to `t0 + offset` and runs what is due.
    async fn at(&self, offset: i64) {
        self.clock.set(t0() + offset);
        self.am.tick().await;
    }
}

fn alert(pairs: &[(&str, &str)]) -> Alert {
    Alert {
        labels: Labels::from_pairs(pairs),
        annotations: Default::default(),
        starts_at: 0,
        ends_at: 0,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    }
}

fn resolved(pairs: &[(&str, &str)], at: i64) -> Alert {
    Alert {
        ends_at: at,
        ..alert(pairs)
    }
}

const BASIC: &str = r#"
global:
  resolve_timeout: 1d
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers:
- name: team
"#;

#[tokio::test]
async fn first_notification_after_group_wait() {
    let h = Harness::new(BASIC);
    h.put(vec![alert(&[("alertname", "Disk"), ("instance", "a")])]);
    h.at(29 * S).await;
    assert_eq!(h.r("team").count(), 0);
    h.at(30 * S).await;
    assert_eq!(h.r("team").count(), 1);
    let (cx, alerts) = h.r("team").last();
    assert_eq!(cx.group_key, r#"{}:{alertname="Disk"}"#);
    assert_eq!(cx.receiver, "team");
    assert_eq!(
        cx.group_labels,
        Labels::from_pairs(&[("alertname", "Disk")])
    );
    assert_eq!(cx.now_ms, t0() + 30 * S);
    assert_eq!(cx.external_url, "http://am.example/");
    assert_eq!(alerts.len(), 1);
    // Defaults applied on the way in; a firing alert goes out without an end.
    assert_eq!(alerts[0].starts_at, t0());
    assert_eq!(alerts[0].ends_at, 0);
}

#[tokio::test]
async fn later_alerts_wait_for_the_group_interval() {
    let h = Harness::new(BASIC);
    h.put(vec![alert(&[("alertname", "Disk"), ("instance", "a")])]);
    h.at(30 * S).await;
    h.clock.set(t0() + M);
    h.put(vec![alert(&[("alertname", "Disk"), ("instance", "b")])]);
    h.at(M).await;
    h.at(5 * M).await;
    assert_eq!(h.r("team").count(), 1);
    h.at(30 * S + 5 * M).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.r("team").last_names(), ["+Disk", "+Disk"]);
    // Another group has its own group_wait.
    h.clock.set(t0() + 6 * M);
    h.put(vec![alert(&[("alertname", "Cpu")])]);
    h.at(6 * M + 29 * S).await;
    assert_eq!(h.r("team").count(), 2);
    h.at(6 * M + 30 * S).await;
    assert_eq!(h.r("team").count(), 3);
    assert_eq!(h.r("team").last().0.group_key, r#"{}:{alertname="Cpu"}"#);
}

#[tokio::test]
async fn an_alert_older_than_group_wait_goes_out_at_once() {
    let h = Harness::new(BASIC);
    let mut a = alert(&[("alertname", "Old")]);
    a.starts_at = t0() - 10 * M;
    h.put(vec![a]);
    h.at(0).await;
    assert_eq!(h.r("team").count(), 1);
}

#[tokio::test]
async fn unchanged_groups_repeat_after_repeat_interval() {
    let h = Harness::new(BASIC);
    h.put(vec![alert(&[("alertname", "Disk")])]);
    h.at(30 * S).await;
    let mut t = 30 * S;
    // Flushes every 5m; the notification log holds back repeats until the last one is more than
    // an hour old, which is the first tick after 1h (equality is not enough).
    while t < 30 * S + H {
        t += 5 * M;
        h.at(t).await;
    }
    assert_eq!(t, 30 * S + H);
    assert_eq!(h.r("team").count(), 1);
    h.at(t + 5 * M).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.r("team").last_names(), ["+Disk"]);
}

#[tokio::test]
async fn resolved_alerts_are_sent_once_then_dropped() {
    let h = Harness::new(BASIC);
    let l = [("alertname", "Disk"), ("instance", "a")];
    let l2 = [("alertname", "Disk"), ("instance", "b")];
    h.put(vec![alert(&l), alert(&l2)]);
    h.at(30 * S).await;
    h.clock.set(t0() + 2 * M);
    h.put(vec![resolved(&l, t0() + 2 * M)]);
    h.at(30 * S + 5 * M).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.r("team").last_names(), ["-Disk", "+Disk"]);
    // The resolved alert left the group after the successful flush.
    let g = h.am.groups(&AlertFilter::default());
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].alerts.len(), 1);
    h.at(30 * S + 10 * M).await;
    assert_eq!(h.r("team").count(), 2);
    // The last one resolves: one more notification, then the group is gone.
    h.put(vec![resolved(&l2, t0() + 11 * M)]);
    h.at(30 * S + 15 * M).await;
    assert_eq!(h.r("team").count(), 3);
    assert_eq!(h.r("team").last_names(), ["-Disk"]);
    assert_eq!(h.am.stats().groups, 0);
}

#[tokio::test]
async fn without_send_resolved_resolutions_are_not_sent() {
    let h = Harness::with(BASIC, false);
    let l = [("alertname", "Disk"), ("instance", "a")];
    let l2 = [("alertname", "Disk"), ("instance", "b")];
    h.put(vec![alert(&l), alert(&l2)]);
    h.at(30 * S).await;
    h.put(vec![resolved(&l, t0() + M)]);
    h.at(30 * S + 5 * M).await;
    assert_eq!(h.r("team").count(), 1, "one resolved, nothing new firing");
    h.put(vec![resolved(&l2, t0() + 6 * M)]);
    h.at(30 * S + 10 * M).await;
    assert_eq!(h.r("team").count(), 1, "all resolved: logged, not sent");
    assert_eq!(h.am.stats().groups, 0);
    // It fires again: a fresh notification.
    h.clock.set(t0() + 12 * M);
    h.put(vec![alert(&l)]);
    h.at(12 * M + 30 * S).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.r("team").last_names(), ["+Disk"]);
}

#[tokio::test]
async fn alerts_without_an_end_resolve_after_resolve_timeout() {
    let h = Harness::new(&BASIC.replace("resolve_timeout: 1d", "resolve_timeout: 2m"));
    h.put(vec![alert(&[("alertname", "Disk")])]);
    let v = h.am.alerts(&AlertFilter::default());
    assert_eq!(v[0].alert.ends_at, t0() + 2 * M);
    assert!(v[0].alert.timeout);
    h.at(30 * S).await;
    assert_eq!(h.r("team").last_names(), ["+Disk"]);
    h.at(2 * M).await;
    assert!(h.am.alerts(&AlertFilter::default()).is_empty());
    h.at(30 * S + 5 * M).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.r("team").last_names(), ["-Disk"]);
    assert_eq!(h.r("team").last().1[0].ends_at, t0() + 2 * M);
}

#[tokio::test]
async fn an_alert_resolved_before_group_wait_is_never_sent() {
    let h = Harness::new(BASIC);
    h.put(vec![resolved(&[("alertname", "Flap")], t0() + 10 * S)]);
    h.at(30 * S).await;
    assert_eq!(h.r("team").count(), 0);
    assert_eq!(h.am.stats().groups, 0);
}

#[tokio::test]
async fn failed_deliveries_are_retried_at_the_next_flush() {
    let h = Harness::new(BASIC);
    h.r("team").fail.store(true, Ordering::SeqCst);
    let l = [("alertname", "Disk")];
    h.put(vec![alert(&l)]);
    h.at(30 * S).await;
    assert_eq!(h.r("team").count(), 1);
    h.r("team").fail.store(false, Ordering::SeqCst);
    h.put(vec![resolved(&l, t0() + M)]);
    h.at(30 * S + 5 * M).await;
    // Nothing was logged, so the group counts as never notified: only firing alerts would go.
    assert_eq!(h.r("team").count(), 1);
    // The resolved alert left after that successful (empty) flush.
    assert_eq!(h.am.stats().groups, 0);

    let h = Harness::new(BASIC);
    h.put(vec![alert(&l)]);
    h.at(30 * S).await;
    h.r("team").fail.store(true, Ordering::SeqCst);
    h.put(vec![resolved(&l, t0() + M)]);
    h.at(30 * S + 5 * M).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.am.stats().groups, 1, "kept after a failure");
    h.r("team").fail.store(false, Ordering::SeqCst);
    h.at(30 * S + 10 * M).await;
    assert_eq!(h.r("team").count(), 3);
    assert_eq!(h.r("team").last_names(), ["-Disk"]);
    assert_eq!(h.am.stats().groups, 0);
}

const ROUTED: &str = r#"
global:
  resolve_timeout: 1w
route:
  receiver: default
  group_by: [alertname]
  routes:
  - receiver: audit
    continue: true
  - receiver: db
    matchers: ['service=~"mysql|postgres"']
    group_by: [alertname, cluster]
    group_wait: 10s
  - receiver: weekday-only
    matchers: [team=ops]
    active_time_intervals: [weekdays]
  - receiver: quiet-weekends
    matchers: [team=dev]
    mute_time_intervals: [weekends]
receivers:
- name: default
- name: audit
- name: db
- name: weekday-only
- name: quiet-weekends
time_intervals:
- name: weekends
  time_intervals:
  - weekdays: [saturday, sunday]
- name: weekdays
  time_intervals:
  - weekdays: ['monday:friday']
"#;

#[tokio::test]
async fn continue_delivers_to_two_receivers() {
    let h = Harness::new(ROUTED);
    h.put(vec![alert(&[
        ("alertname", "Slow"),
        ("service", "mysql"),
        ("cluster", "eu"),
    ])]);
    h.at(10 * S).await;
    assert_eq!(h.r("db").count(), 1);
    assert_eq!(h.r("audit").count(), 0);
    assert_eq!(
        h.r("db").last().0.group_key,
        r#"{}/{service=~"mysql|postgres"}:{alertname="Slow", cluster="eu"}"#
    );
    h.at(30 * S).await;
    assert_eq!(h.r("audit").count(), 1);
    assert_eq!(
        h.r("audit").last().0.group_key,
        r#"{}/{}:{alertname="Slow"}"#
    );
    assert_eq!(h.r("default").count(), 0);
    let v = h.am.alerts(&AlertFilter::default());
    assert_eq!(v[0].receivers, ["audit", "db"]);
}

#[tokio::test]
async fn time_intervals_mute_routes() {
    let h = Harness::new(ROUTED);
    h.put(vec![
        alert(&[("alertname", "A"), ("team", "ops")]),
        alert(&[("alertname", "B"), ("team", "dev")]),
    ]);
    // Monday: ops is active, dev is not muted.
    h.at(30 * S).await;
    assert_eq!(h.r("weekday-only").count(), 1);
    assert_eq!(h.r("quiet-weekends").count(), 1);

    let h = Harness::new(ROUTED);
    // Saturday 2024-01-13 10:00 UTC.
    let sat = 5 * 24 * H;
    h.clock.set(t0() + sat);
    h.put(vec![
        alert(&[("alertname", "A"), ("team", "ops")]),
        alert(&[("alertname", "B"), ("team", "dev")]),
    ]);
    h.at(sat + 30 * S).await;
    h.at(sat + 30 * S + 5 * M).await;
    assert_eq!(h.r("weekday-only").count(), 0);
    assert_eq!(h.r("quiet-weekends").count(), 0);
    // Monday again: both groups flush at their next tick and notify.
    let mon = 7 * 24 * H;
    h.at(mon).await;
    assert_eq!(h.r("weekday-only").count(), 1);
    assert_eq!(h.r("quiet-weekends").count(), 1);
}

const INHIBIT: &str = r#"
global:
  resolve_timeout: 1d
route:
  receiver: team
  group_by: [alertname, severity]
receivers:
- name: team
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
"#;

#[tokio::test]
async fn critical_inhibits_warning_in_the_same_cluster() {
    let h = Harness::new(INHIBIT);
    let crit = alert(&[
        ("alertname", "Down"),
        ("severity", "critical"),
        ("cluster", "a"),
    ]);
    let warn_a = alert(&[
        ("alertname", "Down"),
        ("severity", "warning"),
        ("cluster", "a"),
    ]);
    let warn_b = alert(&[
        ("alertname", "Down"),
        ("severity", "warning"),
        ("cluster", "b"),
    ]);
    h.put(vec![crit.clone(), warn_a.clone(), warn_b.clone()]);
    h.at(30 * S).await;
    let calls = h.r("team").calls.lock().clone();
    assert_eq!(calls.len(), 2);
    let sent: Vec<String> = calls
        .iter()
        .flat_map(|(_, a)| a.iter().map(|a| a.labels.to_string()))
        .collect();
    assert!(sent.contains(&crit.labels.to_string()));
    assert!(sent.contains(&warn_b.labels.to_string()));
    assert!(!sent.contains(&warn_a.labels.to_string()));

    let views = h.am.alerts(&AlertFilter::default());
    let va = views
        .iter()
        .find(|v| v.alert.labels == warn_a.labels)
        .unwrap();
    assert_eq!(va.status.state, AlertState::Suppressed);
    assert_eq!(va.status.inhibited_by, [crit.fingerprint_hex()]);
    let vc = views
        .iter()
        .find(|v| v.alert.labels == crit.labels)
        .unwrap();
    assert_eq!(vc.status.state, AlertState::Active);
    let f = AlertFilter {
        inhibited: false,
        ..AlertFilter::default()
    };
    assert_eq!(h.am.alerts(&f).len(), 2);

    // The critical alert resolves: the warning goes out at its group's next tick.
    h.clock.set(t0() + M);
    let mut c = crit.clone();
    c.ends_at = t0() + M;
    h.put(vec![c]);
    h.at(30 * S + 5 * M).await;
    let last = h.r("team").calls.lock().clone();
    assert!(last
        .iter()
        .skip(2)
        .any(|(_, a)| a.iter().any(|a| a.labels == warn_a.labels)));
}

#[tokio::test]
async fn silences_mute_matching_alerts() {
    let h = Harness::new(BASIC);
    let id =
        h.am.silences()
            .upsert(Silence {
                id: String::new(),
                matchers: vec![Matcher::equal("instance", "a")],
                starts_at: t0() - M,
                ends_at: t0() + H,
                updated_at: 0,
                created_by: "test".into(),
                comment: "maintenance".into(),
            })
            .unwrap();
    h.put(vec![
        alert(&[("alertname", "Disk"), ("instance", "a")]),
        alert(&[("alertname", "Disk"), ("instance", "b")]),
    ]);
    h.at(30 * S).await;
    assert_eq!(h.r("team").count(), 1);
    let (_, alerts) = h.r("team").last();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].labels.get("instance"), Some("b"));
    let views = h.am.alerts(&AlertFilter::default());
    let a = views
        .iter()
        .find(|v| v.alert.labels.get("instance") == Some("a"))
        .unwrap();
    assert_eq!(a.status.state, AlertState::Suppressed);
    assert_eq!(a.status.silenced_by, std::slice::from_ref(&id));
    assert_eq!(h.am.stats().silences_active, 1);
    // Expired: the silenced alert is new to the receiver and goes out.
    h.am.silences().expire(&id).unwrap();
    h.at(30 * S + 5 * M).await;
    assert_eq!(h.r("team").count(), 2);
    assert_eq!(h.r("team").last().1.len(), 2);
}

#[tokio::test]
async fn views_filter_by_matchers_state_and_receiver() {
    let h = Harness::new(ROUTED);
    h.put(vec![
        alert(&[("alertname", "A"), ("service", "mysql")]),
        alert(&[("alertname", "B"), ("team", "ops")]),
        alert(&[("alertname", "C")]),
    ]);
    let all = h.am.alerts(&AlertFilter::default());
    assert_eq!(all.len(), 3);
    let fps: Vec<u64> = all.iter().map(|v| v.alert.fingerprint()).collect();
    let mut sorted = fps.clone();
    sorted.sort_unstable();
    assert_eq!(fps, sorted, "by fingerprint");
    let f = AlertFilter {
        matchers: vec![Matcher::new(MatchOp::Regex, "alertname", "A|B").unwrap()],
        ..AlertFilter::default()
    };
    assert_eq!(h.am.alerts(&f).len(), 2);
    let f = AlertFilter {
        receiver: Some(AlertFilter::receiver_regex("db|weekday-.*").unwrap()),
        ..AlertFilter::default()
    };
    let names: Vec<String> =
        h.am.alerts(&f)
            .iter()
            .map(|v| v.alert.name().to_string())
            .collect();
    assert_eq!(names.len(), 2);
    assert!(AlertFilter::receiver_regex("(").is_err());
    let f = AlertFilter {
        active: false,
        ..AlertFilter::default()
    };
    assert!(h.am.alerts(&f).is_empty());

    // Groups: every alert is in the audit group of its name and in one more.
    let groups = h.am.groups(&AlertFilter::default());
    let summary: Vec<(String, String)> = groups
        .iter()
        .map(|g| (g.receiver.clone(), g.labels.to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            ("audit".to_string(), r#"{alertname="A"}"#.to_string()),
            ("db".to_string(), r#"{alertname="A"}"#.to_string()),
            ("audit".to_string(), r#"{alertname="B"}"#.to_string()),
            ("weekday-only".to_string(), r#"{alertname="B"}"#.to_string()),
            ("audit".to_string(), r#"{alertname="C"}"#.to_string()),
        ]
    );
    let f = AlertFilter {
        receiver: Some(AlertFilter::receiver_regex("db").unwrap()),
        ..AlertFilter::default()
    };
    let g = h.am.groups(&f);
    assert_eq!(g.len(), 1);
    assert_eq!(
        g[0].group_key,
        r#"{}/{service=~"mysql|postgres"}:{alertname="A"}"#
    );
    assert_eq!(g[0].alerts[0].receivers, ["audit", "db"]);
    let s = h.am.stats();
    assert_eq!((s.alerts_active, s.groups), (3, 5));
    assert_eq!(
        h.am.receivers(),
        ["default", "audit", "db", "weekday-only", "quiet-weekends"]
    );
    assert_eq!(h.am.config().source, ROUTED);
    assert_eq!(h.am.started_at_ms(), t0());
}

#[tokio::test]
async fn reload_regroups_alerts_on_the_new_tree() {
    let h = Harness::new(BASIC);
    h.put(vec![alert(&[("alertname", "Disk"), ("team", "x")])]);
    h.at(30 * S).await;
    assert_eq!(h.r("team").count(), 1);
    // Same tree: the regrouped alert flushes at once but the log holds the repeat back.
    h.am.reload(AmConfig::parse(BASIC, "test.yml").unwrap())
        .unwrap();
    h.at(M).await;
    assert_eq!(h.r("team").count(), 1);
    // The group is still there and flushes on its new schedule.
    assert_eq!(h.am.stats().groups, 1);
    h.at(M + 5 * M).await;
    assert_eq!(h.r("team").count(), 1);
}

#[tokio::test]
async fn reload_to_a_new_receiver_notifies_it() {
    let rec_team = Recorder::new(true);
    let rec_x = Recorder::new(true);
    let (a, b) = (Arc::clone(&rec_team), Arc::clone(&rec_x));
    let build: ReceiverBuilder = Arc::new(move |c, _| {
        Ok(match c.name.as_str() {
            "team" => vec![Arc::clone(&a) as Arc<dyn Notifier>],
            "team-x" => vec![Arc::clone(&b) as Arc<dyn Notifier>],
            _ => Vec::new(),
        })
    });
    let clock = ManualClock::new(t0());
    let am = AlertManager::with_receiver_builder(
        AmConfig::parse(BASIC, "t.yml").unwrap(),
        ManagerOptions {
            state: None,
            base_dir: PathBuf::from("."),
            external_url: String::new(),
            clock: Arc::new(clock.clone()),
        },
        build,
    )
    .unwrap();
    am.put_alerts(vec![alert(&[("alertname", "Disk"), ("team", "x")])])
        .unwrap();
    clock.set(t0() + 30 * S);
    am.tick().await;
    assert_eq!(rec_team.count(), 1);
    let next = format!("{BASIC}- name: team-x\n").replace(
        "  repeat_interval: 1h\n",
        "  repeat_interval: 1h\n  routes:\n  - receiver: team-x\n    matchers: [team=x]\n",
    );
    am.reload(AmConfig::parse(&next, "t.yml").unwrap()).unwrap();
    clock.set(t0() + M);
    am.tick().await;
    assert_eq!(rec_x.count(), 1);
    assert_eq!(
        rec_x.last().0.group_key,
        r#"{}/{team="x"}:{alertname="Disk"}"#
    );
    assert_eq!(rec_team.count(), 1);
    assert_eq!(am.receivers(), ["team", "team-x"]);
    // A configuration whose receiver cannot be built is refused and the old one stays.
    let bad = AmConfig {
        route: Some(crate::config::RouteConfig {
            receiver: "ghost".into(),
            ..Default::default()
        }),
        ..AmConfig::default()
    };
    assert!(am.reload(bad).is_err());
    assert_eq!(am.receivers(), ["team", "team-x"]);
}

#[tokio::test]
async fn the_run_loop_sends_as_soon_as_an_alert_is_due() {
    let h = Harness::new(&BASIC.replace("group_wait: 30s", "group_wait: 0s"));
    let handle = h.am.spawn();
    let sent = h.r("team").sent.notified();
    h.put(vec![alert(&[("alertname", "Now")])]);
    tokio::time::timeout(std::time::Duration::from_secs(10), sent)
        .await
        .expect("no notification from the run loop");
    assert_eq!(h.r("team").count(), 1);
    assert_eq!(h.r("team").last().0.now_ms, t0());
    h.am.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(10), handle)
        .await
        .expect("loop did not stop")
        .unwrap();
}

#[tokio::test]
async fn invalid_alerts_do_not_keep_the_valid_ones_of_a_batch_out() {
    let h = Harness::new(BASIC);
    let mut bad = alert(&[("alertname", "Bad")]);
    bad.starts_at = t0() + 2 * M;
    bad.ends_at = t0() + M;
    let err =
        h.am.put_alerts(vec![alert(&[("alertname", "Good")]), bad])
            .unwrap_err();
    assert!(matches!(err, Error::BadData(_)), "{err:?}");
    assert!(err.to_string().starts_with("alerts[1].endsAt:"), "{err}");
    let names: Vec<String> =
        h.am.alerts(&AlertFilter::default())
            .iter()
            .map(|v| v.alert.name().to_string())
            .collect();
    assert_eq!(names, ["Good"]);
    h.at(30 * S).await;
    assert_eq!(h.r("team").last_names(), ["+Good"]);
}

const WATCHDOG: &str = r#"
route:
  receiver: deadman
  group_by: [alertname]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
receivers:
- name: deadman
"#;

/// A receiver with a plain webhook-like notifier and a heartbeat-like one that asks for every
/// flush.
fn watchdog_manager() -> (Arc<AlertManager>, ManualClock, Arc<Recorder>, Arc<Recorder>) {
    let hook = Recorder::new(true);
    let beat = Arc::new(Recorder {
        integration: "heartbeat",
        send_resolved: false,
        every_flush: true,
        fail: AtomicBool::new(false),
        calls: Mutex::new(Vec::new()),
        sent: tokio::sync::Notify::new(),
    });
    let (a, b) = (Arc::clone(&hook), Arc::clone(&beat));
    let build: ReceiverBuilder = Arc::new(move |_, _| {
        Ok(vec![
            Arc::clone(&a) as Arc<dyn Notifier>,
            Arc::clone(&b) as Arc<dyn Notifier>,
        ])
    });
    let clock = ManualClock::new(t0());
    let am = AlertManager::with_receiver_builder(
        AmConfig::parse(WATCHDOG, "t.yml").unwrap(),
        ManagerOptions {
            state: None,
            base_dir: PathBuf::from("."),
            external_url: String::new(),
            clock: Arc::new(clock.clone()),
        },
        build,
    )
    .unwrap();
    (am, clock, hook, beat)
}

/// The watchdog as Prometheus sends it: same start, an end four evaluation intervals ahead.
fn watchdog_at(now: i64) -> Alert {
    Alert {
        starts_at: t0(),
        ends_at: now + 4 * M,
        ..alert(&[("alertname", "Watchdog")])
    }
}

#[tokio::test]
async fn heartbeat_integrations_hear_every_flush_past_the_dedup() {
    let (am, clock, hook, beat) = watchdog_manager();
    let group = r#"{}:{alertname="Watchdog"}"#;
    // The sender re-sends every minute; the group flushes every minute from 10s on.
    let mut flushes = 0;
    for minute in 0..=30 {
        clock.set(t0() + minute * M);
        am.put_alerts(vec![watchdog_at(clock.now_ms())]).unwrap();
        clock.set(t0() + minute * M + 10 * S);
        am.tick().await;
        flushes += 1;
        assert_eq!(beat.count(), flushes, "at minute {minute}");
        let (cx, alerts) = beat.last();
        assert_eq!(cx.now_ms, t0() + minute * M + 10 * S);
        assert_eq!(cx.group_key, group);
        assert_eq!(cx.group_interval_ms, M);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].name(), "Watchdog");
        assert!(!alerts[0].resolved_at(cx.now_ms));
    }
    // The ordinary integration was told once: the log holds it back for the repeat interval.
    assert_eq!(hook.count(), 1);
    let log = am.notification_log();
    assert_eq!(
        log.get("deadman/webhook/0", group).unwrap().sent_at,
        t0() + 10 * S
    );
    assert!(
        log.get("deadman/heartbeat/0", group).is_none(),
        "every-flush sends are not logged"
    );

    // The sender stops (last end: 30m + 4m). Until then the heartbeat keeps hearing it firing.
    for minute in 31..=33 {
        clock.set(t0() + minute * M + 10 * S);
        am.tick().await;
        assert_eq!(beat.last_names(), ["+Watchdog"]);
    }
    assert_eq!(beat.count(), 34);
    // The first flush past its end: the heartbeat hears that nothing fires (no send_resolved,
    // so no alert at all) and the webhook gets the resolve, once.
    clock.set(t0() + 34 * M + 10 * S);
    am.tick().await;
    assert_eq!(beat.count(), 35);
    assert!(beat.last().1.is_empty());
    assert_eq!(hook.count(), 2);
    assert_eq!(hook.last_names(), ["-Watchdog"]);
    // The group is gone; nothing more for either.
    clock.set(t0() + 40 * M);
    am.tick().await;
    assert_eq!((beat.count(), hook.count()), (35, 2));
    assert_eq!(am.stats().groups, 0);
}

#[tokio::test]
async fn a_silenced_watchdog_reaches_the_heartbeat_as_nothing_firing() {
    let (am, clock, hook, beat) = watchdog_manager();
    am.put_alerts(vec![watchdog_at(t0())]).unwrap();
    clock.set(t0() + 10 * S);
    am.tick().await;
    assert_eq!(beat.last_names(), ["+Watchdog"]);
    am.silences()
        .upsert(Silence {
            id: String::new(),
            matchers: vec![Matcher::equal("alertname", "Watchdog")],
            starts_at: t0() + 20 * S,
            ends_at: t0() + H,
            updated_at: 0,
            created_by: "test".into(),
            comment: "stop the pings".into(),
        })
        .unwrap();
    clock.set(t0() + M + 10 * S);
    am.tick().await;
    assert_eq!(beat.count(), 2);
    assert!(beat.last().1.is_empty(), "silenced: nothing firing");
    assert_eq!(
        hook.count(),
        1,
        "the webhook hears nothing of a silenced group"
    );
}

#[path = "manager_restart_tests.rs"]
mod restart;

#[path = "manager_marks_tests.rs"]
mod marks;
