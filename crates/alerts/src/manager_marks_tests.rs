//! Acknowledgements, shelves and notes through the manager, with its manual clock and recording
//! notifiers (`manager_tests.rs`'s harness): when an ack ends, how it stops repeats, and what the
//! timeline shows.

use super::*;

const REPEAT: &str = r#"
global:
  resolve_timeout: 1d
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 5m
  routes:
  - matchers: [team="loud"]
    notify_acked: true
receivers:
- name: team
"#;

fn disk(sev: &str) -> Alert {
    alert(&[("alertname", "Disk"), ("instance", "a"), ("severity", sev)])
}

fn fp(a: &Alert) -> u64 {
    a.fingerprint()
}

#[tokio::test]
async fn ack_stops_repeats_until_unacked_and_a_new_alert_still_notifies() {
    let h = Harness::new(REPEAT);
    h.put(vec![disk("warning")]);
    h.at(0).await;
    assert_eq!(h.r("team").count(), 1);
    h.at(6 * M).await;
    assert_eq!(h.r("team").count(), 2, "repeats without an ack");
    assert!(h
        .am
        .ack(fp(&disk("warning")), "ann", "on it", None)
        .unwrap());
    // The same acknowledgement again changes nothing.
    assert!(!h
        .am
        .ack(fp(&disk("warning")), "ann", "on it", None)
        .unwrap());
    h.at(12 * M).await;
    h.at(18 * M).await;
    assert_eq!(h.r("team").count(), 2, "no repeat while acknowledged");
    // A new alert in the group notifies, carrying the acknowledged one too.
    h.put(vec![alert(&[
        ("alertname", "Disk"),
        ("instance", "b"),
        ("severity", "warning"),
    ])]);
    h.at(19 * M).await;
    assert_eq!(h.r("team").count(), 3);
    assert_eq!(h.r("team").last().1.len(), 2);
    assert!(h.am.unack(fp(&disk("warning")), "bob", "not mine").unwrap());
    h.at(25 * M).await;
    assert_eq!(h.r("team").count(), 4, "repeats again once unacknowledged");
    let tl = h.am.timeline(fp(&disk("warning")), 100).unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "notification").count(),
        4,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"ack") && kinds.contains(&"unack"),
        "{kinds:?}"
    );
    assert_eq!(*kinds.last().unwrap(), "firing");
    let unack = tl.iter().find(|e| e.kind == "unack").unwrap();
    assert_eq!(
        (unack.by.as_str(), unack.text.as_str()),
        ("bob", "not mine")
    );
    let n = tl.iter().find(|e| e.kind == "notification").unwrap();
    assert_eq!(
        (n.receiver.as_str(), n.outcome.as_str(), n.status.as_str()),
        ("team", "sent", "firing")
    );
}

#[tokio::test]
async fn notify_acked_routes_keep_repeating() {
    let h = Harness::new(REPEAT);
    let a = alert(&[("alertname", "Loud"), ("team", "loud")]);
    h.put(vec![a.clone()]);
    h.at(0).await;
    h.am.ack(fp(&a), "ann", "", None).unwrap();
    h.at(6 * M).await;
    assert_eq!(h.r("team").count(), 2);
}

#[tokio::test]
async fn ack_ends_on_resolve_and_a_new_firing_is_not_acked() {
    let h = Harness::new(REPEAT);
    let a = disk("warning");
    h.put(vec![a.clone()]);
    h.at(0).await;
    h.am.ack(fp(&a), "ann", "", None).unwrap();
    assert!(h.am.alert_detail(fp(&a)).unwrap().ack.is_some());
    h.clock.set(t0() + M);
    h.put(vec![resolved(
        &[
            ("alertname", "Disk"),
            ("instance", "a"),
            ("severity", "warning"),
        ],
        t0() + M,
    )]);
    assert!(h.am.alert_detail(fp(&a)).unwrap().ack.is_none());
    // Acking a resolved alert is a conflict, an unknown one is not found.
    let e = h.am.ack(fp(&a), "ann", "", None).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    let e = h.am.ack(0x1234, "ann", "", None).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains("0000000000001234"), "{e}");
    h.at(2 * M).await;
    let mut again = a.clone();
    again.starts_at = t0() + 3 * M;
    h.clock.set(t0() + 3 * M);
    h.put(vec![again]);
    let d = h.am.alert_detail(fp(&a)).unwrap();
    assert!(d.firing && d.ack.is_none());
    let tl = h.am.timeline(fp(&a), 100).unwrap();
    let ended = tl.iter().find(|e| e.kind == "ack_ended").unwrap();
    assert_eq!(ended.text, "resolved");
    assert_eq!(ended.at_ms, t0() + M);
    assert_eq!(tl.iter().filter(|e| e.kind == "firing").count(), 2);
}

#[tokio::test]
async fn a_resolve_while_held_by_a_previous_episode_ends_the_ack_before_refiring() {
    // The alert resolved by its end passing (no sender resolve), then fires again with the
    // same start: the ack belonged to the first episode.
    let h = Harness::new(REPEAT);
    let mut a = disk("warning");
    a.starts_at = t0();
    a.ends_at = t0() + 2 * M;
    h.put(vec![a.clone()]);
    h.am.ack(fp(&a), "ann", "", None).unwrap();
    h.clock.set(t0() + 3 * M);
    let mut again = disk("warning");
    again.starts_at = t0();
    h.put(vec![again]);
    assert!(h.am.alert_detail(fp(&a)).unwrap().ack.is_none());
}

#[tokio::test]
async fn a_severity_change_ends_the_ack() {
    let h = Harness::new(REPEAT);
    h.put(vec![disk("warning")]);
    h.am.ack(fp(&disk("warning")), "ann", "", None).unwrap();
    h.put(vec![disk("critical")]);
    assert!(h
        .am
        .alert_detail(fp(&disk("warning")))
        .unwrap()
        .ack
        .is_none());
    assert!(h
        .am
        .alert_detail(fp(&disk("critical")))
        .unwrap()
        .ack
        .is_none());
    let tl = h.am.timeline(fp(&disk("warning")), 10).unwrap();
    assert_eq!(tl[0].kind, "ack_ended");
    assert_eq!(
        tl[0].text,
        r#"severity changed from "warning" to "critical""#
    );
    // Another instance at another severity is another alert: it ends nothing.
    h.am.ack(fp(&disk("critical")), "ann", "", None).unwrap();
    h.put(vec![alert(&[
        ("alertname", "Disk"),
        ("instance", "b"),
        ("severity", "warning"),
    ])]);
    assert!(h
        .am
        .alert_detail(fp(&disk("critical")))
        .unwrap()
        .ack
        .is_some());
}

#[tokio::test]
async fn expiry_ends_acks_and_shelves() {
    let h = Harness::new(REPEAT);
    let a = disk("warning");
    h.put(vec![a.clone()]);
    h.at(0).await;
    h.am.ack(fp(&a), "ann", "", Some(t0() + 10 * M)).unwrap();
    h.am.shelve(fp(&a), "ann", "flapping", t0() + 20 * M)
        .unwrap();
    let d = h.am.alert_detail(fp(&a)).unwrap();
    assert_eq!(d.shelve.as_ref().unwrap().until_ms, t0() + 20 * M);
    assert_eq!(h.am.marks().counts(t0()), (1, 1));
    h.at(6 * M).await;
    assert_eq!(h.r("team").count(), 1, "acknowledged");
    h.at(11 * M).await;
    assert_eq!(h.r("team").count(), 2, "the ack lapsed at 10m");
    let d = h.am.alert_detail(fp(&a)).unwrap();
    assert!(d.ack.is_none() && d.shelve.is_some());
    h.at(21 * M).await;
    assert!(h.am.alert_detail(fp(&a)).unwrap().shelve.is_none());
    let tl = h.am.timeline(fp(&a), 100).unwrap();
    let ends: Vec<(&str, &str, i64)> = tl
        .iter()
        .filter(|e| e.kind.ends_with("_ended"))
        .map(|e| (e.kind.as_str(), e.text.as_str(), e.at_ms - t0()))
        .collect();
    assert_eq!(
        ends,
        [
            ("shelve_ended", "expired", 20 * M),
            ("ack_ended", "expired", 10 * M)
        ]
    );
    // Past expiries and durations are refused, naming the field.
    let e = h.am.ack(fp(&a), "ann", "", Some(t0())).unwrap_err();
    assert!(e.to_string().starts_with("expires:"), "{e}");
    let e = h.am.shelve(fp(&a), "ann", "", t0()).unwrap_err();
    assert!(e.to_string().starts_with("duration:"), "{e}");
}

#[tokio::test]
async fn notes_and_marks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let db = crate::state::StateDb::open(&path).unwrap();
    let clock = ManualClock::new(t0());
    let h = Harness::on_state(REPEAT, true, Some(db), clock.clone());
    let a = disk("warning");
    h.put(vec![a.clone()]);
    h.at(0).await;
    h.am.ack(fp(&a), "ann", "looking", None).unwrap();
    h.am.shelve(fp(&a), "ann", "", t0() + H).unwrap();
    h.am.note(fp(&a), "ann", "disk replaced").unwrap();
    assert!(h.am.note(0x99, "ann", "x").is_err());
    let e = h.am.note(fp(&a), "ann", "  ").unwrap_err();
    assert!(e.to_string().starts_with("text:"), "{e}");
    drop(h);
    let db = crate::state::StateDb::open(&path).unwrap();
    let h = Harness::on_state(REPEAT, true, Some(db), clock.clone());
    let d = h.am.alert_detail(fp(&a)).unwrap();
    let ack = d.ack.unwrap();
    assert_eq!((ack.by.as_str(), ack.comment.as_str()), ("ann", "looking"));
    assert!(d.shelve.is_some());
    assert_eq!(d.notes, 1);
    // The nflog survived too: acknowledged, so no repeat after the restart.
    h.at(10 * M).await;
    assert_eq!(h.r("team").count(), 0);
    let tl = h.am.timeline(fp(&a), 100).unwrap();
    let note = tl.iter().find(|e| e.kind == "note").unwrap();
    assert_eq!(
        (note.by.as_str(), note.text.as_str()),
        ("ann", "disk replaced")
    );
    // The limit keeps the newest.
    let two = h.am.timeline(fp(&a), 2).unwrap();
    assert_eq!(two.as_slice(), &tl[..2]);
}
