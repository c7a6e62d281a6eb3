//! Unit tests of `marks.rs`: idempotent acks, withdrawals, severity siblings, the sweep of lapsed
//! and resolved marks, reload from the state db, retention and text limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn alert(sev: &str) -> Alert {
    Alert {
        labels: Labels::from_pairs(&[("alertname", "Disk"), ("severity", sev)]),
        annotations: Default::default(),
        starts_at: 1,
        ends_at: 0,
        generator_url: String::new(),
        updated_at: 1,
        timeout: false,
    }
}

fn events(m: &Marks) -> Vec<(String, String, String)> {
    m.db.with_conn(|c| {
        let mut st = c.prepare("SELECT kind, actor, text FROM alert_events ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    })
    .unwrap()
}

#[test]
fn ack_is_idempotent_and_replaced_by_a_different_one() {
    let m = Marks::new(None).unwrap();
    let a = alert("warning");
    let fp = a.fingerprint();
    assert!(m.ack(&a, "ann", "x", None, 10).unwrap());
    assert!(!m.ack(&a, "ann", "x", None, 20).unwrap());
    assert!(m.ack(&a, "bob", "mine now", Some(100), 30).unwrap());
    let ack = m.ack_of(fp, 40).unwrap();
    assert_eq!(
        (ack.by.as_str(), ack.at_ms, ack.expires_ms),
        ("bob", 30, Some(100))
    );
    assert!(m.ack_of(fp, 100).is_none(), "lapsed at its expiry");
    assert_eq!(m.acked_among(&[1, fp], 40), [fp]);
    assert!(m.acked_among(&[fp], 100).is_empty());
    assert_eq!(events(&m).len(), 2);
}

#[test]
fn unack_and_unshelve_say_whether_anything_changed() {
    let m = Marks::new(None).unwrap();
    let a = alert("warning");
    let fp = a.fingerprint();
    assert!(!m.unack(fp, "ann", "", 1).unwrap());
    assert!(!m.unshelve(fp, "ann", 1).unwrap());
    m.ack(&a, "ann", "", None, 1).unwrap();
    m.shelve(fp, "ann", "", 50, 1).unwrap();
    assert!(m.unack(fp, "bob", "why", 2).unwrap());
    assert!(m.unshelve(fp, "bob", 3).unwrap());
    assert!(m.ack_of(fp, 4).is_none() && m.shelve_of(fp, 4).is_none());
    let kinds: Vec<String> = events(&m).into_iter().map(|e| e.0).collect();
    assert_eq!(kinds, ["ack", "shelve", "unack", "unshelve"]);
}

#[test]
fn severity_sibling_finds_the_same_alert_at_another_severity_only() {
    let m = Marks::new(None).unwrap();
    let w = alert("warning");
    m.ack(&w, "ann", "", None, 1).unwrap();
    assert_eq!(m.severity_sibling(&w), None, "itself");
    assert_eq!(
        m.severity_sibling(&alert("critical")),
        Some((w.fingerprint(), "warning".to_string()))
    );
    let mut other = alert("critical");
    other.labels = Labels::from_pairs(&[("alertname", "Cpu"), ("severity", "critical")]);
    assert_eq!(m.severity_sibling(&other), None);
}

#[test]
fn sweep_ends_lapsed_marks_and_acks_of_alerts_gone_or_resolved() {
    let m = Marks::new(None).unwrap();
    let (w, c) = (alert("warning"), alert("critical"));
    let mut x = alert("x");
    x.labels = Labels::from_pairs(&[("alertname", "X")]);
    m.ack(&w, "ann", "", Some(50), 1).unwrap();
    m.ack(&c, "ann", "", None, 1).unwrap();
    m.ack(&x, "ann", "", None, 1).unwrap();
    m.shelve(w.fingerprint(), "ann", "", 70, 1).unwrap();
    assert_eq!(m.next_deadline(), Some(50));
    let (wf, cf, xf) = (w.fingerprint(), c.fingerprint(), x.fingerprint());
    // At 60: w's ack lapsed; c resolved at 55; x still fires.
    m.sweep(60, |fp| if fp == cf { Some(Some(55)) } else { Some(None) });
    assert!(m.holds_ack(xf) && !m.holds_ack(wf) && !m.holds_ack(cf));
    assert!(m.holds_shelve(wf));
    // x is no longer held by the manager at all.
    m.sweep(80, |_| None);
    assert!(!m.holds_ack(xf) && !m.holds_shelve(wf));
    let mut ends: Vec<(String, String)> = events(&m)
        .into_iter()
        .filter(|e| e.0.ends_with("_ended"))
        .map(|e| (e.0, e.2))
        .collect();
    ends.sort();
    assert_eq!(
        ends,
        [
            ("ack_ended".to_string(), "expired".to_string()),
            ("ack_ended".to_string(), "resolved".to_string()),
            ("ack_ended".to_string(), "resolved".to_string()),
            ("shelve_ended".to_string(), "expired".to_string()),
        ]
    );
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn marks_reload_from_the_state_db_and_gc_drops_old_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = alert("warning");
    let fp = a.fingerprint();
    {
        let m = Marks::new(Some(StateDb::open(&path).unwrap())).unwrap();
        m.ack(&a, "ann", "c", Some(1_000), 10).unwrap();
        m.shelve(fp, "ann", "s", 2_000, 10).unwrap();
        m.note(fp, "ann", "n", 10).unwrap();
    }
    let m = Marks::new(Some(StateDb::open(&path).unwrap())).unwrap();
    assert_eq!(
        m.ack_of(fp, 20),
        Some(Ack {
            by: "ann".into(),
            at_ms: 10,
            comment: "c".into(),
            expires_ms: Some(1_000)
        })
    );
    assert_eq!(m.shelve_of(fp, 20).unwrap().until_ms, 2_000);
    assert_eq!(m.notes_count(fp).unwrap(), 1);
    // The severity of the reloaded ack is known again.
    assert!(m.severity_sibling(&alert("critical")).is_some());
    assert_eq!(m.all(20).0.len(), 1);
    assert_eq!(m.gc(100, 50).unwrap(), 3);
    assert_eq!(m.notes_count(fp).unwrap(), 0);
}

#[test]
fn text_limits_name_the_field() {
    let m = Marks::new(None).unwrap();
    let a = alert("warning");
    let long = "x".repeat(MAX_TEXT_BYTES + 1);
    let e = m.ack(&a, "ann", &long, None, 1).unwrap_err();
    assert!(e.to_string().starts_with("comment:"), "{e}");
    let e = m.note(a.fingerprint(), "ann", &long, 1).unwrap_err();
    assert!(e.to_string().starts_with("text:"), "{e}");
}

#[test]
fn notification_outcomes_are_kept_a_week_at_most() {
    let m = Marks::new(None).unwrap();
    let day = 24 * 3600 * 1000;
    let rec = |at| crate::timeline::NotificationRecord {
        fingerprint: 1,
        receiver: "r".into(),
        integration: "r/webhook/0".into(),
        group_key: "{}:{}".into(),
        firing: true,
        error: None,
        at_ms: at,
    };
    crate::timeline::record_notifications(&m.db, &[rec(day), rec(9 * day)]).unwrap();
    m.note(1, "ann", "kept", day).unwrap();
    assert_eq!(m.gc(10 * day, 30 * day).unwrap(), 1);
    let tl = crate::timeline::timeline(&m.db, 1, 10).unwrap();
    let kinds: Vec<&str> = tl.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["notification", "note"]);
}
