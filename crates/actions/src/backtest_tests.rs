#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use tocsin_model::Labels;

const M: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;

fn am() -> AmConfig {
    AmConfig::parse(
        "route:
  receiver: people
  group_wait: 30s
  routes:
    - matchers: ['alertname=\"Stuck\"']
      receiver: fix
receivers:
  - name: people
  - name: fix
    action_configs: [{policy: delete}]
",
        "am.yml",
    )
    .unwrap()
}

fn actions(extra: &str) -> ActionsConfig {
    serde_norway::from_str(&format!(
        "policies:
  - name: delete
    target: '{{{{ $labels.vm }}}}'
    delay: 1m
{extra}"
    ))
    .unwrap()
}

fn h(vm: usize, start: i64, end: i64) -> HistoryEntry {
    let labels = Labels::from_pairs(&[("alertname", "Stuck"), ("vm", &format!("vm{vm}"))]);
    HistoryEntry {
        fingerprint: tocsin_model::alert::fingerprint(&labels),
        labels,
        starts_at: start,
        ends_at: end,
    }
}

#[test]
fn replays_routing_delay_and_guards_in_time_order() {
    let am = am();
    let act = actions("    guards: {rate: {limit: 2, window: 1h}}\n");
    let bt = Backtest {
        am: &am,
        actions: &act,
        silences: None,
        query: None,
        from_ms: T0,
        to_ms: T0 + 60 * M,
    };
    let other = {
        let labels = Labels::from_pairs(&[("alertname", "Other")]);
        HistoryEntry {
            fingerprint: tocsin_model::alert::fingerprint(&labels),
            labels,
            starts_at: T0,
            ends_at: 0,
        }
    };
    let hist = vec![
        h(1, T0, 0),
        // Resolves during the delay: skipped.
        h(2, T0 + M, T0 + M + 70_000),
        h(3, T0 + 2 * M, 0),
        h(4, T0 + 3 * M, 0),
        h(5, T0 + 4 * M, 0),
        other,
    ];
    let ds = bt.run(&hist).unwrap();
    let got: Vec<(String, String, String)> = ds
        .iter()
        .map(|d| (d.target.clone(), d.outcome.clone(), d.guard.clone()))
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        got,
        [
            s("vm1", "run", ""),
            s("vm2", "skipped", ""),
            s("vm3", "run", ""),
            s("vm4", "suppressed", "rate"),
            s("vm5", "suppressed", "tripped"),
        ]
    );
    // Decided after group_wait and the delay.
    assert_eq!(ds[0].at_ms, T0 + 30_000 + M);
    let sum = summary(&ds);
    assert_eq!(sum[0].0, "delete");
}

#[test]
fn guards_that_need_queries_count_an_absent_source_as_unknown() {
    let am = am();
    let act = actions("    guards: {max_fraction: 0.1, fleet_size: 'count(up)'}\n");
    let bt = Backtest {
        am: &am,
        actions: &act,
        silences: None,
        query: None,
        from_ms: T0,
        to_ms: T0 + 60 * M,
    };
    let ds = bt.run(&[h(1, T0, 0)]).unwrap();
    assert_eq!(ds[0].outcome, "suppressed");
    assert!(ds[0].reason.contains("--server"), "{}", ds[0].reason);
}
