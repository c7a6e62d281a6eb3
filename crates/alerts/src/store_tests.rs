//! Tests of the alert store: merging, resolve timeout, collection, and the history across
//! restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use std::collections::BTreeMap;

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;
const RT: i64 = 5 * MIN;

fn alert(name: &str, starts_at: i64, ends_at: i64) -> Alert {
    Alert {
        labels: Labels::from_pairs(&[("alertname", name), ("job", "api")]),
        annotations: BTreeMap::new(),
        starts_at,
        ends_at,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    }
}

fn with_summary(mut a: Alert, s: &str) -> Alert {
    a.annotations.insert("summary".into(), s.into());
    a
}

fn store() -> AlertStore {
    AlertStore::new(None, RT).unwrap()
}

fn bad(r: Result<Vec<Alert>>) -> String {
    match r {
        Err(Error::BadData(m)) => m,
        other => panic!("expected BadData, got {other:?}"),
    }
}

#[test]
fn resolve_timeout_applies_to_alerts_without_end() {
    let s = store();
    let out = s.put(vec![alert("A", T0, 0)], T0).unwrap();
    assert_eq!(out[0].ends_at, T0 + RT);
    assert!(out[0].timeout);
    assert_eq!(out[0].updated_at, T0);
    let explicit = s.put(vec![alert("B", T0, T0 + MIN)], T0).unwrap();
    assert!(!explicit[0].timeout);
    assert_eq!(explicit[0].ends_at, T0 + MIN);
    s.set_resolve_timeout(MIN);
    let out = s.put(vec![alert("C", T0, 0)], T0).unwrap();
    assert_eq!(out[0].ends_at, T0 + MIN);
    assert_eq!(s.len(), 3);
}

#[test]
fn a_timeout_end_filled_in_by_the_caller_stays_a_timeout_end() {
    let s = store();
    // An API layer that applied the resolve timeout itself, as Alertmanager's does.
    let mut a = alert("A", T0, T0 + RT);
    a.timeout = true;
    let out = s.put(vec![a], T0).unwrap();
    assert!(out[0].timeout);
    // So the sender's explicit, earlier resolve wins over the guessed end.
    let out = s
        .put(vec![alert("A", T0 + MIN, T0 + 2 * MIN)], T0 + MIN)
        .unwrap();
    assert_eq!(out[0].ends_at, T0 + 2 * MIN);
    assert!(!out[0].timeout);
}

#[test]
fn resend_extends_and_newer_annotations_win() {
    let s = store();
    s.put(vec![with_summary(alert("A", T0, 0), "one")], T0)
        .unwrap();
    let out = s
        .put(
            vec![with_summary(alert("A", T0 + 30_000, 0), "two")],
            T0 + MIN,
        )
        .unwrap();
    let a = &out[0];
    assert_eq!(a.starts_at, T0, "earliest start kept");
    assert_eq!(a.ends_at, T0 + MIN + RT);
    assert_eq!(a.annotations["summary"], "two");
    assert_eq!(a.updated_at, T0 + MIN);
    assert_eq!(s.get(a.fingerprint()).unwrap(), *a);
    assert_eq!(s.all().len(), 1);
}

#[test]
fn explicit_end_survives_a_timeout_resend() {
    let s = store();
    // Told explicitly it ends at T0+10m; a later re-send without an end only guesses.
    s.put(vec![alert("A", T0, T0 + 10 * MIN)], T0).unwrap();
    let out = s.put(vec![alert("A", T0 + MIN, 0)], T0 + MIN).unwrap();
    assert_eq!(out[0].starts_at, T0);
    assert_eq!(out[0].ends_at, T0 + 10 * MIN);
}

#[test]
fn timeout_end_does_not_override_an_explicit_earlier_resolve() {
    let s = store();
    s.put(vec![alert("A", T0, 0)], T0).unwrap();
    // The sender resolves it explicitly inside the timeout window.
    let out = s
        .put(vec![alert("A", T0, T0 + 2 * MIN)], T0 + 2 * MIN)
        .unwrap();
    assert_eq!(out[0].ends_at, T0 + 2 * MIN);
    assert!(!out[0].timeout);
    assert!(out[0].resolved_at(T0 + 2 * MIN));
}

#[test]
fn both_resolved_keeps_the_later_end() {
    let s = store();
    s.put(vec![alert("A", T0, T0 + 3 * MIN)], T0 + 4 * MIN)
        .unwrap();
    // An older copy arrives later claiming an earlier end: overlapping, both resolved.
    let out = s
        .put(vec![alert("A", T0 + MIN, T0 + 2 * MIN)], T0 + 5 * MIN)
        .unwrap();
    assert_eq!(out[0].starts_at, T0);
    assert_eq!(out[0].ends_at, T0 + 3 * MIN);
}

#[test]
fn refire_after_resolve_starts_a_new_alert() {
    let s = store();
    s.put(vec![alert("A", T0, T0 + MIN)], T0 + MIN).unwrap();
    let out = s
        .put(vec![alert("A", T0 + 10 * MIN, 0)], T0 + 10 * MIN)
        .unwrap();
    assert_eq!(
        out[0].starts_at,
        T0 + 10 * MIN,
        "no merge with the resolved one"
    );
    assert_eq!(out[0].ends_at, T0 + 10 * MIN + RT);
}

#[test]
fn validation_names_field_and_index() {
    let s = store();
    let mut no_labels = alert("A", T0, 0);
    no_labels.labels = Labels::empty();
    assert_eq!(
        bad(s.put(vec![alert("ok", T0, 0), no_labels], T0)),
        "alerts[1].labels: at least one label pair required"
    );
    assert!(s.is_empty(), "nothing stored when any alert is invalid");
    let mut bad_name = alert("A", T0, 0);
    bad_name.labels = Labels::from_pairs(&[("bad-name", "x")]);
    assert!(bad(s.put(vec![bad_name], T0)).starts_with("alerts[0].labels: invalid label name"));
    assert_eq!(
        bad(s.put(vec![alert("A", 0, 0)], T0)),
        "alerts[0].startsAt: start time missing"
    );
    assert_eq!(
        bad(s.put(vec![alert("A", T0, T0 - 1)], T0)),
        "alerts[0].endsAt: end time must not be before start time"
    );
    assert!(bad(s.put(vec![alert("A", T0 + 10 * MIN, 0)], T0)).starts_with("alerts[0].endsAt:"));
    let mut ann = alert("A", T0, 0);
    ann.annotations.insert(String::new(), "x".into());
    assert!(bad(s.put(vec![ann], T0)).starts_with("alerts[0].annotations:"));

    let (stored, err) = s.put_partial(vec![alert("A", 0, 0), alert("B", T0, 0)], T0);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name(), "B");
    assert!(err.unwrap().to_string().starts_with("alerts[0].startsAt"));
}

#[test]
fn gc_removes_resolved_alerts() {
    let s = store();
    s.put(
        vec![
            alert("A", T0, T0 + MIN),
            alert("B", T0, 0),
            alert("C", T0, T0 + 2 * MIN),
        ],
        T0,
    )
    .unwrap();
    assert!(s.gc(T0 + MIN - 1).is_empty());
    let gone = s.gc(T0 + MIN);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].name(), "A");
    let gone = s.gc(T0 + RT);
    let names: Vec<&str> = gone.iter().map(|a| a.name()).collect();
    assert_eq!(names, vec!["B", "C"]);
    assert!(s.is_empty());
}

fn hist(s: &AlertStore) -> Vec<(String, i64, i64)> {
    s.history(100)
        .unwrap()
        .into_iter()
        .map(|h| {
            (
                h.labels.get("alertname").unwrap_or("").to_string(),
                h.starts_at,
                h.ends_at,
            )
        })
        .collect()
}

#[test]
fn history_records_firing_and_resolve() {
    let s = store();
    s.put(vec![alert("A", T0, 0)], T0).unwrap();
    s.put(vec![alert("A", T0, 0)], T0 + MIN).unwrap();
    assert_eq!(
        hist(&s),
        vec![("A".into(), T0, 0)],
        "a re-send is no new row"
    );
    // Explicit resolve detected at put.
    s.put(vec![alert("A", T0, T0 + 2 * MIN)], T0 + 2 * MIN)
        .unwrap();
    assert_eq!(hist(&s), vec![("A".into(), T0, T0 + 2 * MIN)]);
    // Re-fire: a new row, newest first.
    s.put(vec![alert("A", T0 + 5 * MIN, 0)], T0 + 5 * MIN)
        .unwrap();
    assert_eq!(
        hist(&s),
        vec![
            ("A".into(), T0 + 5 * MIN, 0),
            ("A".into(), T0, T0 + 2 * MIN)
        ]
    );
    // Resolve by timeout, detected at gc, recorded at the alert's end.
    s.gc(T0 + 20 * MIN);
    assert_eq!(
        hist(&s),
        vec![
            ("A".into(), T0 + 5 * MIN, T0 + 10 * MIN),
            ("A".into(), T0, T0 + 2 * MIN)
        ]
    );
    let h = s.history(1).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].fingerprint, alert("A", 0, 0).fingerprint());
    assert_eq!(h[0].labels, alert("A", 0, 0).labels);
}

#[test]
fn resolved_alert_never_seen_firing_leaves_no_row() {
    let s = store();
    s.put(vec![alert("A", T0, T0 + MIN)], T0 + 2 * MIN).unwrap();
    assert!(hist(&s).is_empty());
}

#[test]
fn refire_detected_at_put_before_gc_closes_the_old_row() {
    let s = store();
    s.put(vec![alert("A", T0, 0)], T0).unwrap();
    // Timed out at T0+5m, no gc ran; it fires again with a new start.
    s.put(vec![alert("A", T0 + 8 * MIN, 0)], T0 + 8 * MIN)
        .unwrap();
    assert_eq!(
        hist(&s),
        vec![("A".into(), T0 + 8 * MIN, 0), ("A".into(), T0, T0 + RT)]
    );
}

#[test]
fn resend_with_original_start_after_timeout_reopens_the_row() {
    let s = store();
    s.put(vec![alert("A", T0, 0)], T0).unwrap();
    s.gc(T0 + 6 * MIN);
    assert_eq!(hist(&s), vec![("A".into(), T0, T0 + RT)]);
    // The sender was merely late: same episode, same start.
    s.put(vec![alert("A", T0, 0)], T0 + 7 * MIN).unwrap();
    assert_eq!(hist(&s), vec![("A".into(), T0, 0)]);
}

#[test]
fn history_survives_restart_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
        s.put(
            vec![alert("A", T0, 0), alert("B", T0, 0), alert("C", T0, 0)],
            T0,
        )
        .unwrap();
        s.put(vec![alert("C", T0, T0 + MIN)], T0 + MIN).unwrap();
    }
    let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
    assert!(s.is_empty(), "live alerts are not persisted");
    let mut h = hist(&s);
    h.sort();
    assert_eq!(
        h,
        vec![
            ("A".into(), T0, 0),
            ("B".into(), T0, 0),
            ("C".into(), T0, T0 + MIN)
        ]
    );
    // A is re-sent after the restart: its row continues. B never comes back.
    s.put(vec![alert("A", T0, 0)], T0 + 10 * MIN).unwrap();
    s.gc(T0 + 10 * MIN + RT - 1);
    s.put(vec![alert("A", T0, 0)], T0 + 14 * MIN).unwrap();
    assert_eq!(
        hist(&s).iter().filter(|r| r.2 == 0).count(),
        2,
        "B not yet given up"
    );
    s.gc(T0 + 10 * MIN + RT);
    let mut h = hist(&s);
    h.sort();
    assert_eq!(
        h,
        vec![
            ("A".into(), T0, 0),
            ("B".into(), T0, T0 + 10 * MIN),
            ("C".into(), T0, T0 + MIN)
        ]
    );
    drop(s);
    let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
    assert_eq!(s.history(10).unwrap().len(), 3);
}

#[test]
fn restart_gave_a_still_firing_alert_a_new_start_and_a_second_history_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
        s.put(vec![alert("A", T0, 0)], T0).unwrap();
    }
    let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
    // A rule engine restarted with us re-sends the alert with the time it fired again.
    let got = s
        .put(vec![alert("A", T0 + 3 * MIN, 0)], T0 + 3 * MIN)
        .unwrap();
    assert_eq!(got[0].starts_at, T0, "the stored alert keeps its start");
    assert_eq!(hist(&s), vec![("A".into(), T0, 0)]);
    // Later re-sends merge into it as usual.
    let got = s
        .put(vec![alert("A", T0 + 3 * MIN, 0)], T0 + 4 * MIN)
        .unwrap();
    assert_eq!(got[0].starts_at, T0);
    assert_eq!(hist(&s), vec![("A".into(), T0, 0)]);
    // A resolve re-sent after the restart closes the row at its end.
    let s2 = {
        drop(s);
        AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap()
    };
    s2.put(vec![alert("A", T0 + 3 * MIN, T0 + 5 * MIN)], T0 + 6 * MIN)
        .unwrap();
    assert_eq!(hist(&s2), vec![("A".into(), T0, T0 + 5 * MIN)]);
}

#[test]
fn history_query_selects_by_time_overlap_and_labels() {
    let s = store();
    // A fired and resolved early, B fired later and still fires, C resolved in between.
    s.put(vec![alert("A", T0, T0 + MIN)], T0).unwrap();
    s.put(vec![alert("C", T0 + 2 * MIN, T0 + 3 * MIN)], T0 + 2 * MIN)
        .unwrap();
    s.put(vec![alert("B", T0 + 5 * MIN, 0)], T0 + 5 * MIN)
        .unwrap();
    // Collection closes the rows of alerts whose end has passed.
    s.gc(T0 + 5 * MIN);
    let names = |q: HistoryQuery| -> Vec<String> {
        s.history_query(&q)
            .unwrap()
            .iter()
            .map(|r| r.labels.get("alertname").unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(names(HistoryQuery::default()), ["B", "C", "A"]);
    let window = |start_ms, end_ms| HistoryQuery {
        start_ms,
        end_ms,
        ..HistoryQuery::default()
    };
    assert_eq!(names(window(T0 + 90_000, T0 + 4 * MIN)), ["C"]);
    assert_eq!(
        names(window(T0 + MIN, T0 + MIN)),
        ["A"],
        "an end at start overlaps"
    );
    assert_eq!(
        names(window(T0 + 10 * MIN, i64::MAX)),
        ["B"],
        "still firing"
    );
    let m = crate::matchers::parse_matchers("alertname=~\"A|B\"").unwrap();
    assert_eq!(
        names(HistoryQuery {
            matchers: m.clone(),
            ..HistoryQuery::default()
        }),
        ["B", "A"]
    );
    assert_eq!(
        names(HistoryQuery {
            matchers: m,
            limit: 1,
            ..HistoryQuery::default()
        }),
        ["B"]
    );
}

#[test]
fn history_retention_deletes_old_closed_rows() {
    let s = store();
    s.set_history_retention(60 * MIN);
    s.put(vec![alert("A", T0, T0 + MIN), alert("B", T0, 0)], T0)
        .unwrap();
    s.gc(T0 + 61 * MIN - 1);
    assert_eq!(hist(&s).len(), 2);
    s.gc(T0 + 61 * MIN);
    assert_eq!(hist(&s), vec![("B".into(), T0, T0 + RT)]);
    s.gc(T0 + RT + 60 * MIN);
    assert!(hist(&s).is_empty());
    assert_eq!(DEFAULT_HISTORY_RETENTION_MS, 30 * 24 * 60 * MIN);
}

#[test]
fn duplicate_alerts_in_one_batch_merge_in_order() {
    let s = store();
    let out = s
        .put(
            vec![
                with_summary(alert("A", T0, 0), "x"),
                alert("A", T0, T0 + MIN),
            ],
            T0 + MIN,
        )
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(s.len(), 1);
    assert!(s.get(out[1].fingerprint()).unwrap().resolved_at(T0 + MIN));
    assert_eq!(hist(&s), vec![("A".into(), T0, T0 + MIN)]);
}
