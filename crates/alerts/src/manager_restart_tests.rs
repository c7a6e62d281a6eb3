//! The manager across a kill and a start on the same state db: alerts firing before the kill
//! are put back, notified as resolved when nobody re-sends them, and never notified twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// The soak (bench/soak) found it: an alert notified as firing whose condition cleared while the
/// process was down (or just before it was killed) was never notified as resolved, because the
/// rule engine that would have sent the resolve died with the manager and live alerts are not
/// persisted.
#[tokio::test]
async fn resolve_was_lost_when_the_alert_cleared_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let cfg = r#"
global:
  resolve_timeout: 10s
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 24h
receivers:
- name: team
"#;
    let clock = ManualClock::new(t0());
    let h = Harness::on_state(
        cfg,
        true,
        Some(crate::state::StateDb::open(&db).unwrap()),
        clock.clone(),
    );
    // A rule engine's alert: explicit end a few evaluations ahead.
    let fire = || Alert {
        starts_at: t0(),
        ends_at: clock.now_ms() + 4 * S,
        ..alert(&[("alertname", "Hot"), ("lane", "0")])
    };
    h.put(vec![fire()]);
    h.at(S).await;
    assert_eq!(h.r("team").last_names(), ["+Hot"]);
    // Killed: no resolve was ever put.
    drop(h);

    // Started again; the rule engine does not send the alert any more.
    clock.set(t0() + 3 * S);
    let h = Harness::on_state(
        cfg,
        true,
        Some(crate::state::StateDb::open(&db).unwrap()),
        clock.clone(),
    );
    assert_eq!(
        h.am.store().len(),
        1,
        "the alert firing before the kill is back"
    );
    // Within group_wait: the notification log knows it was notified firing, so no repeat.
    h.at(5 * S).await;
    assert_eq!(h.r("team").count(), 0);
    // resolve_timeout after the restart it resolves, and the resolve is notified once.
    for t in (6..=20).map(|i| 3 * S + i * S) {
        h.at(t).await;
    }
    assert_eq!(h.r("team").count(), 1);
    assert_eq!(h.r("team").last_names(), ["-Hot"]);
    let (_, alerts) = h.r("team").last();
    assert_eq!(
        alerts[0].starts_at,
        t0(),
        "the start of the episode is kept"
    );
    drop(h);

    // A later start finds nothing open: no third notification.
    clock.set(t0() + 40 * S);
    let h = Harness::on_state(
        cfg,
        true,
        Some(crate::state::StateDb::open(&db).unwrap()),
        clock.clone(),
    );
    for t in 41..60 {
        h.at(t * S).await;
    }
    assert_eq!(h.r("team").count(), 0);
}

/// The other half of the same fix: an alert re-sent still firing after the restart merges with
/// the one put back, and nothing is notified twice.
#[tokio::test]
async fn alert_put_back_after_a_kill_and_re_sent_firing_is_not_notified_again() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let cfg = r#"
global:
  resolve_timeout: 10s
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 24h
receivers:
- name: team
"#;
    let clock = ManualClock::new(t0());
    let h = Harness::on_state(
        cfg,
        true,
        Some(crate::state::StateDb::open(&db).unwrap()),
        clock.clone(),
    );
    let fire = |c: &ManualClock, start: i64| Alert {
        starts_at: start,
        ends_at: c.now_ms() + 4 * S,
        ..alert(&[("alertname", "Hot")])
    };
    h.put(vec![fire(&clock, t0())]);
    h.at(S).await;
    assert_eq!(h.r("team").count(), 1);
    drop(h);
    clock.set(t0() + 3 * S);
    let h = Harness::on_state(
        cfg,
        true,
        Some(crate::state::StateDb::open(&db).unwrap()),
        clock.clone(),
    );
    for t in 3..40 {
        clock.set(t0() + t * S);
        // The restarted rule engine fired again at the restart.
        h.put(vec![fire(&clock, t0() + 3 * S)]);
        h.at(t * S).await;
    }
    assert_eq!(h.r("team").count(), 0, "{:?}", h.r("team").calls.lock());
    let stored = h.am.store().all();
    assert_eq!(stored[0].starts_at, t0(), "merged with the first start");
}

/// Found by the soak after the first fix: the rule engine had put the resolve (which closed the
/// history row) but the kill came before the group's next flush, so nothing was left to say the
/// resolve was still owed.
#[tokio::test]
async fn resolve_put_but_not_yet_notified_was_lost_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let cfg = r#"
global:
  resolve_timeout: 10s
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 24h
receivers:
- name: team
"#;
    let clock = ManualClock::new(t0());
    let start = |c: &ManualClock| {
        Harness::on_state(
            cfg,
            true,
            Some(crate::state::StateDb::open(&db).unwrap()),
            c.clone(),
        )
    };
    let h = start(&clock);
    h.put(vec![Alert {
        starts_at: t0(),
        ends_at: t0() + 4 * S,
        ..alert(&[("alertname", "Hot")])
    }]);
    h.at(S).await;
    assert_eq!(h.r("team").last_names(), ["+Hot"]);
    // The rule engine resolves it; the kill comes before the next group_interval flush.
    clock.set(t0() + 2 * S);
    h.put(vec![resolved(&[("alertname", "Hot")], t0() + 2 * S)]);
    drop(h);

    clock.set(t0() + 4 * S);
    let h = start(&clock);
    for t in 4..30 {
        h.at(t * S).await;
    }
    assert_eq!(h.r("team").count(), 1);
    assert_eq!(h.r("team").last_names(), ["-Hot"]);
    let (_, alerts) = h.r("team").last();
    assert_eq!(
        alerts[0].ends_at,
        t0() + 2 * S,
        "the end the rule engine gave"
    );
    drop(h);

    // Once notified, a further start owes nothing.
    clock.set(t0() + 40 * S);
    let h = start(&clock);
    for t in 40..60 {
        h.at(t * S).await;
    }
    assert_eq!(h.r("team").count(), 0);
}

/// Found by the 100-cycle soak: an alert put back at start-up got `now + resolve_timeout` at
/// each start, so with restarts coming faster than `resolve_timeout` it never resolved (the
/// resolve came only after an uptime long enough, two minutes late in the soak).
#[tokio::test]
async fn restarts_faster_than_resolve_timeout_kept_a_put_back_alert_firing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let cfg = r#"
global:
  resolve_timeout: 10s
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 24h
receivers:
- name: team
"#;
    let clock = ManualClock::new(t0());
    let start = |c: &ManualClock| {
        Harness::on_state(
            cfg,
            true,
            Some(crate::state::StateDb::open(&db).unwrap()),
            c.clone(),
        )
    };
    let h = start(&clock);
    h.put(vec![Alert {
        starts_at: t0(),
        ends_at: t0() + 4 * S,
        ..alert(&[("alertname", "Hot")])
    }]);
    h.at(S).await;
    assert_eq!(h.r("team").last_names(), ["+Hot"]);
    drop(h);
    // Started at 3 s (put back until 13 s), killed at 8 s, started again at 9 s.
    clock.set(t0() + 3 * S);
    let h = start(&clock);
    for t in 3..=8 {
        h.at(t * S).await;
    }
    assert_eq!(h.r("team").count(), 0);
    drop(h);
    clock.set(t0() + 9 * S);
    let h = start(&clock);
    for t in 9..=16 {
        h.at(t * S).await;
    }
    assert_eq!(
        h.r("team").count(),
        1,
        "resolved by the first deadline (13 s) plus a group_interval"
    );
    assert_eq!(h.r("team").last_names(), ["-Hot"]);
    drop(h);

    // Re-sent by a sender after being put back: the old deadline no longer holds.
    clock.set(t0() + 20 * S);
    let h = start(&clock);
    h.put(vec![Alert {
        starts_at: t0() + 20 * S,
        ends_at: t0() + 60 * S,
        ..alert(&[("alertname", "Cold")])
    }]);
    h.at(21 * S).await;
    assert_eq!(h.r("team").last_names(), ["+Cold"]);
    drop(h);
    clock.set(t0() + 22 * S);
    let h = start(&clock);
    for t in 22..=25 {
        clock.set(t0() + t * S);
        h.put(vec![Alert {
            starts_at: t0() + 22 * S,
            ends_at: clock.now_ms() + 4 * S,
            ..alert(&[("alertname", "Cold")])
        }]);
        h.at(t * S).await;
    }
    drop(h);
    // Killed again long after the first deadline (32 s): still firing when put back.
    clock.set(t0() + 40 * S);
    let h = start(&clock);
    h.at(41 * S).await;
    let cold =
        h.am.store()
            .all()
            .into_iter()
            .find(|a| a.name() == "Cold")
            .unwrap();
    assert_eq!(
        cold.ends_at,
        t0() + 50 * S,
        "a new deadline from this start"
    );
    assert_eq!(h.r("team").count(), 0, "{:?}", h.r("team").calls.lock());
}
