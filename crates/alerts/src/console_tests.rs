//! The console list over a manager driven by a manual clock: filters, states, grouping, order,
//! paging, totals, recently resolved alerts from the history, and the events alert changes and
//! silences publish.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tocsin_model::{Alert, Clock, Labels, ManualClock, Matcher};

use super::*;
use crate::config::AmConfig;
use crate::events::Received;
use crate::manager::{ManagerOptions, ReceiverBuilder};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const M: i64 = 60_000;

const CFG: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  routes:
    - matchers: ['team="db"']
      receiver: db
      group_by: [alertname, cluster]
receivers:
  - name: default
  - name: db
"#;

fn manager(clock: &ManualClock) -> Arc<AlertManager> {
    let build: ReceiverBuilder = Arc::new(|_, _| Ok(Vec::new()));
    AlertManager::with_receiver_builder(
        AmConfig::parse(CFG, "t.yml").unwrap(),
        ManagerOptions {
            state: None,
            base_dir: PathBuf::from("."),
            external_url: "http://am.example/".into(),
            clock: Arc::new(clock.clone()),
        },
        build,
    )
    .unwrap()
}

fn alert(pairs: &[(&str, &str)], starts_at: i64, ends_at: i64) -> Alert {
    Alert {
        labels: Labels::from_pairs(pairs),
        annotations: BTreeMap::from([("summary".to_string(), "Disk Nearly FULL".to_string())]),
        starts_at,
        ends_at,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    }
}

fn names(p: &ConsolePage) -> Vec<String> {
    p.rows
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.alert.labels.get("alertname").unwrap_or(""),
                r.alert.labels.get("instance").unwrap_or("")
            )
        })
        .collect()
}

fn count(p: &ConsolePage, s: ConsoleState) -> usize {
    p.states[ConsoleState::ALL.iter().position(|x| *x == s).unwrap()]
}

fn seed(am: &AlertManager) {
    let far = T0 + 600 * M;
    am.put_alerts(vec![
        alert(
            &[
                ("alertname", "Disk"),
                ("instance", "a"),
                ("severity", "warning"),
            ],
            T0 - 5 * M,
            far,
        ),
        alert(
            &[
                ("alertname", "Disk"),
                ("instance", "b"),
                ("severity", "critical"),
            ],
            T0 - 9 * M,
            far,
        ),
        alert(&[("alertname", "Up"), ("instance", "c")], T0 - M, far),
        alert(
            &[
                ("alertname", "Lag"),
                ("instance", "d"),
                ("team", "db"),
                ("cluster", "eu"),
                ("severity", "error"),
            ],
            T0 - 2 * M,
            far,
        ),
        // Resolved 5 minutes ago.
        alert(
            &[
                ("alertname", "Old"),
                ("instance", "e"),
                ("severity", "critical"),
            ],
            T0 - 60 * M,
            T0 - 5 * M,
        ),
    ])
    .unwrap();
}

#[test]
fn sorted_by_severity_then_newest_with_state_totals() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    seed(&am);
    let p = am.console(&ConsoleQuery::default()).unwrap();
    assert_eq!(
        names(&p),
        ["Disk/b", "Old/e", "Lag/d", "Disk/a", "Up/c"],
        "critical (newest first), error, warning, none"
    );
    assert_eq!(p.total, 5);
    assert_eq!(count(&p, ConsoleState::Firing), 4);
    assert_eq!(count(&p, ConsoleState::Resolved), 1);
    assert_eq!(p.rows[1].severity, Severity::Critical);
    assert_eq!(p.rows[2].receivers, ["db"]);
    assert_eq!(p.rows[1].receivers, ["default"]);

    let q = ConsoleQuery {
        resolved_within_ms: 2 * M,
        ..ConsoleQuery::default()
    };
    assert_eq!(am.console(&q).unwrap().total, 4, "resolved too long ago");
    let q = ConsoleQuery {
        resolved_within_ms: 0,
        ..ConsoleQuery::default()
    };
    assert_eq!(am.console(&q).unwrap().total, 4, "no resolved alerts");
}

#[test]
fn matchers_text_and_state_filter() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    seed(&am);
    let q = ConsoleQuery {
        matchers: vec![Matcher::equal("alertname", "Disk")],
        ..ConsoleQuery::default()
    };
    assert_eq!(names(&am.console(&q).unwrap()), ["Disk/b", "Disk/a"]);
    // Label values and annotations, any case.
    let q = ConsoleQuery {
        text: "EU".into(),
        ..ConsoleQuery::default()
    };
    assert_eq!(names(&am.console(&q).unwrap()), ["Lag/d"]);
    let q = ConsoleQuery {
        text: "nearly full".into(),
        ..ConsoleQuery::default()
    };
    assert_eq!(am.console(&q).unwrap().total, 5);
    let q = ConsoleQuery {
        states: vec![ConsoleState::Resolved],
        ..ConsoleQuery::default()
    };
    let p = am.console(&q).unwrap();
    assert_eq!(names(&p), ["Old/e"]);
    assert_eq!(
        count(&p, ConsoleState::Firing),
        4,
        "state totals ignore the state filter"
    );
}

#[test]
fn silenced_inhibited_and_marked_states() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    seed(&am);
    am.upsert_silence(crate::silence::Silence {
        id: String::new(),
        matchers: vec![Matcher::equal("instance", "a")],
        starts_at: T0 - M,
        ends_at: T0 + 60 * M,
        updated_at: 0,
        created_by: "me".into(),
        comment: "x".into(),
    })
    .unwrap();
    struct Acked;
    impl MarkSource for Acked {
        fn mark(&self, fp: u64, _: i64) -> Option<ConsoleState> {
            let b = Labels::from_pairs(&[
                ("alertname", "Disk"),
                ("instance", "b"),
                ("severity", "critical"),
            ]);
            (fp == tocsin_model::alert::fingerprint(&b)).then_some(ConsoleState::Acknowledged)
        }
    }
    let p = am.console_with(&ConsoleQuery::default(), &Acked).unwrap();
    let state = |name: &str| p.rows.iter().find(|r| names_of(r) == name).unwrap().state;
    assert_eq!(state("Disk/a"), ConsoleState::Silenced);
    assert_eq!(state("Disk/b"), ConsoleState::Acknowledged);
    assert_eq!(state("Up/c"), ConsoleState::Firing);
    let row = p.rows.iter().find(|r| names_of(r) == "Disk/a").unwrap();
    assert_eq!(row.silenced_by.len(), 1);
}

fn names_of(r: &ConsoleRow) -> String {
    format!(
        "{}/{}",
        r.alert.labels.get("alertname").unwrap_or(""),
        r.alert.labels.get("instance").unwrap_or("")
    )
}

#[test]
fn grouped_by_route_and_by_label_with_group_totals_and_group_filter() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    seed(&am);
    let q = ConsoleQuery {
        group_by: Some(GroupBy::Route),
        ..ConsoleQuery::default()
    };
    let p = am.console(&q).unwrap();
    // Disk (critical) and Old (critical, 1 row) first: Disk has 2 rows, so it leads.
    let keys: Vec<(&str, usize)> = p.groups.iter().map(|g| (g.key.as_str(), g.count)).collect();
    assert_eq!(p.groups_total, 4);
    assert_eq!(keys[0], ("{}:{alertname=\"Disk\"}", 2));
    assert_eq!(keys[1], ("{}:{alertname=\"Old\"}", 1));
    assert_eq!(p.groups[2].receiver.as_deref(), Some("db"));
    assert_eq!(
        p.groups[2].labels,
        Labels::from_pairs(&[("alertname", "Lag"), ("cluster", "eu")])
    );
    assert_eq!(names(&p), ["Disk/b", "Disk/a", "Old/e", "Lag/d", "Up/c"]);
    assert_eq!(p.rows[0].group.as_deref(), Some(keys[0].0));

    let q = ConsoleQuery {
        group_by: Some(GroupBy::Route),
        group: Some(p.groups[2].key.clone()),
        ..ConsoleQuery::default()
    };
    let p2 = am.console(&q).unwrap();
    assert_eq!(names(&p2), ["Lag/d"]);
    assert_eq!(
        p2.groups_total, 4,
        "groups are counted before the group filter"
    );

    let q = ConsoleQuery {
        group_by: Some(GroupBy::Label("severity".into())),
        group_limit: 2,
        ..ConsoleQuery::default()
    };
    let p = am.console(&q).unwrap();
    let keys: Vec<(&str, usize)> = p.groups.iter().map(|g| (g.key.as_str(), g.count)).collect();
    assert_eq!(keys, [("critical", 2), ("error", 1)]);
    assert_eq!(p.groups_total, 4);
}

#[test]
fn paging_is_stable_and_counts_everything() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    let far = T0 + 600 * M;
    let batch: Vec<Alert> = (0..250)
        .map(|i| {
            alert(
                &[("alertname", "Same"), ("instance", &format!("i{i}"))],
                T0 - M,
                far,
            )
        })
        .collect();
    am.put_alerts(batch).unwrap();
    let mut seen = std::collections::HashSet::new();
    for offset in [0, 100, 200] {
        let q = ConsoleQuery {
            offset,
            limit: 100,
            ..ConsoleQuery::default()
        };
        let p = am.console(&q).unwrap();
        assert_eq!(p.total, 250);
        for r in &p.rows {
            assert!(seen.insert(r.fingerprint), "row listed twice");
        }
    }
    assert_eq!(seen.len(), 250);
}

#[tokio::test]
async fn resolved_alerts_come_back_from_the_history_after_gc() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    // Recorded firing, then resolved (an alert first seen resolved has no history).
    let labels = [
        ("alertname", "Old"),
        ("instance", "e"),
        ("severity", "critical"),
    ];
    am.put_alerts(vec![alert(&labels, T0 - 60 * M, T0 + 60 * M)])
        .unwrap();
    am.put_alerts(vec![alert(&labels, T0 - 60 * M, T0 - 5 * M)])
        .unwrap();
    // The resolve is flushed (the group lets it go), then gc drops it from the store.
    clock.set(T0 + M);
    am.tick().await;
    clock.set(T0 + crate::manager::GC_INTERVAL_MS + M);
    am.tick().await;
    let now = clock.now_ms();
    assert!(am.store().get(fp(&["Old", "e"])).is_none());
    let q = ConsoleQuery {
        resolved_within_ms: now - (T0 - 5 * M),
        states: vec![ConsoleState::Resolved],
        ..ConsoleQuery::default()
    };
    let p = am.console(&q).unwrap();
    assert_eq!(names(&p), ["Old/e"]);
    assert!(p.rows[0].from_history);
    assert_eq!(p.rows[0].alert.ends_at, T0 - 5 * M);
}

fn fp(name_instance: &[&str; 2]) -> u64 {
    tocsin_model::alert::fingerprint(&Labels::from_pairs(&[
        ("alertname", name_instance[0]),
        ("instance", name_instance[1]),
        ("severity", "critical"),
    ]))
}

#[tokio::test]
async fn changes_are_published_and_refreshes_are_not() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    let mut sub = am.subscribe();
    let a = alert(&[("alertname", "X")], T0 - M, T0 + 60 * M);
    am.put_alerts(vec![a.clone()]).unwrap();
    let Received::Event(e) = sub.recv().await else {
        panic!("no event")
    };
    assert_eq!(e.kind, EventKind::Firing);
    assert_eq!(e.fingerprint, a.fingerprint());
    // The same alert again: no event; a silence on it: one.
    am.put_alerts(vec![a.clone()]).unwrap();
    am.upsert_silence(crate::silence::Silence {
        id: String::new(),
        matchers: vec![Matcher::equal("alertname", "X")],
        starts_at: T0,
        ends_at: T0 + M,
        updated_at: 0,
        created_by: "me".into(),
        comment: "c".into(),
    })
    .unwrap();
    let Received::Event(e) = sub.recv().await else {
        panic!("no event")
    };
    assert_eq!(e.kind, EventKind::Silenced);
    let mut resolved = a.clone();
    resolved.ends_at = T0;
    am.put_alerts(vec![resolved]).unwrap();
    let Received::Event(e) = sub.recv().await else {
        panic!("no event")
    };
    assert_eq!(e.kind, EventKind::Resolved);
    am.shutdown();
    assert_eq!(sub.recv().await, Received::Closed);
}

/// Not a tight bound: prints the time of one list over 20,000 alerts (a debug build is several
/// times slower than a release one).
#[test]
fn twenty_thousand_alerts_list_time() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    let far = T0 + 600 * M;
    let sev = ["critical", "error", "warning", "info", "none"];
    let batch: Vec<Alert> = (0..20_000)
        .map(|i| {
            let mut a = alert(
                &[
                    ("alertname", &format!("A{}", i % 50)),
                    ("instance", &format!("host-{i}.example.com:9100")),
                    ("job", "node"),
                    ("severity", sev[i % 5]),
                ],
                T0 - (i as i64) * 1000,
                far,
            );
            a.annotations
                .insert("description".into(), format!("host {i} is on fire"));
            a
        })
        .collect();
    am.put_alerts(batch).unwrap();
    for (what, q) in [
        ("plain", ConsoleQuery::default()),
        (
            "text",
            ConsoleQuery {
                text: "host-1999".into(),
                ..ConsoleQuery::default()
            },
        ),
        (
            "by route",
            ConsoleQuery {
                group_by: Some(GroupBy::Route),
                ..ConsoleQuery::default()
            },
        ),
    ] {
        let t = std::time::Instant::now();
        let p = am.console(&q).unwrap();
        eprintln!(
            "console list over 20000 alerts ({what}): {:?}, {} matched",
            t.elapsed(),
            p.total
        );
        assert!(p.total > 0);
    }
}

#[tokio::test]
async fn acknowledged_and_shelved_come_from_the_managers_marks_and_are_published() {
    let clock = ManualClock::new(T0);
    let am = manager(&clock);
    seed(&am);
    let mut sub = am.subscribe();
    let disk_a = tocsin_model::alert::fingerprint(&Labels::from_pairs(&[
        ("alertname", "Disk"),
        ("instance", "a"),
        ("severity", "warning"),
    ]));
    let up_c = tocsin_model::alert::fingerprint(&Labels::from_pairs(&[
        ("alertname", "Up"),
        ("instance", "c"),
    ]));
    assert!(am.ack(disk_a, "ann", "looking", None).unwrap());
    am.shelve(up_c, "bob", "noisy", T0 + 60 * M).unwrap();
    let kinds: Vec<EventKind> = [sub.recv().await, sub.recv().await]
        .into_iter()
        .map(|r| match r {
            Received::Event(e) => e.kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, [EventKind::Acknowledged, EventKind::Shelved]);
    let p = am.console(&ConsoleQuery::default()).unwrap();
    let row = |name: &str| p.rows.iter().find(|r| names_of(r) == name).unwrap();
    assert_eq!(row("Disk/a").state, ConsoleState::Acknowledged);
    assert_eq!(row("Disk/a").ack.as_ref().unwrap().by, "ann");
    assert_eq!(row("Up/c").state, ConsoleState::Shelved);
    assert_eq!(row("Up/c").shelve.as_ref().unwrap().until_ms, T0 + 60 * M);
    assert_eq!(count(&p, ConsoleState::Acknowledged), 1);
    assert_eq!(count(&p, ConsoleState::Shelved), 1);
    let q = ConsoleQuery {
        states: vec![ConsoleState::Firing],
        ..ConsoleQuery::default()
    };
    assert_eq!(names(&am.console(&q).unwrap()), ["Disk/b", "Lag/d"]);
}
