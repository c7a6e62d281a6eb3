//! Runs the alert-generator cases in `testdata/alert_generator/`: one alerting rule evaluated on a
//! grid of timestamps the test chooses (no scheduler, no sleeping), and every alert handed to the
//! sink compared, with its evaluation time, state, `startsAt` and `endsAt`, to the case's list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Deserialize;
use tocsin_model::{Clock, Labels};
use tocsin_promql::Engine;
use tocsin_storage::{Appendable, MemoryStore};

use super::{AlertSink, EvalContext, GroupHandle, LoadedGroup, ManagerOptions};
use crate::lifecycle::RestoreOptions;
use crate::parse_rule_file;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    description: String,
    interval: String,
    resend_delay: String,
    #[serde(rename = "for")]
    for_: String,
    until: String,
    values: String,
    sends: String,
}

/// The evaluation time is set by the runner; nothing here reads the clock.
struct FixedClock;

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        0
    }
}

#[derive(Default)]
struct Sent(Mutex<Vec<tocsin_model::Alert>>);

impl AlertSink for Sent {
    fn send(&self, alerts: Vec<tocsin_model::Alert>) {
        self.0.lock().extend(alerts);
    }
}

fn ms(s: &str) -> i64 {
    tocsin_model::duration::parse_duration_ms(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `2m15s`-style rendering so a mismatch reads like the case file.
fn show(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let (m, s, rest) = (ms / 60_000, (ms % 60_000) / 1000, ms % 1000);
    let mut out = String::new();
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

fn line(at: i64, state: &str, starts: i64, ends: i64) -> String {
    format!("{} {state} {} {}", show(at), show(starts), show(ends))
}

fn run(path: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let case: Case = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let interval = ms(&case.interval);
    let rules = format!(
        "groups:\n  - name: g\n    rules:\n      - alert: T\n        expr: metric > 0\n        for: {}\n",
        case.for_
    );
    let group = parse_rule_file(&rules, "t.yml").unwrap().groups.remove(0);
    let store = MemoryStore::new();
    let sent = Arc::new(Sent::default());
    let opts = ManagerOptions {
        engine: Arc::new(Engine::default()),
        queryable: Arc::new(store.clone()),
        appendable: Arc::new(store.clone()),
        clock: Arc::new(FixedClock),
        sink: sent.clone(),
        resend_delay_ms: ms(&case.resend_delay),
        restore: RestoreOptions::default(),
    };
    let handle = GroupHandle::new(
        LoadedGroup {
            file: "t.yml".into(),
            group,
            interval_ms: interval,
        },
        EvalContext::default(),
    );
    let values: Vec<f64> = case
        .values
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let series = Labels::from_pairs(&[("__name__", "metric")]);
    let mut got = Vec::new();
    let mut k = 0usize;
    loop {
        let t = k as i64 * interval;
        if t > ms(&case.until) {
            break;
        }
        let v = values.get(k).or(values.last()).copied().unwrap_or(0.0);
        let mut app = store.appender();
        app.append(&series, t, v, &Default::default()).unwrap();
        app.commit().unwrap();
        handle.evaluate(&opts, t, false);
        for a in sent.0.lock().drain(..) {
            let state = if a.ends_at <= t { "resolved" } else { "firing" };
            got.push(line(t, state, a.starts_at, a.ends_at));
        }
        k += 1;
    }
    let want = case
        .sends
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{path:?}: bad sends line {l:?}");
            line(ms(f[0]), f[1], ms(f[2]), ms(f[3]))
        })
        .collect();
    (got, want)
}

#[test]
fn alert_generator_cases_send_what_prometheus_sends() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/alert_generator");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 4, "{paths:?}");
    let mut failed = Vec::new();
    for p in &paths {
        let (got, want) = run(p);
        if got != want {
            failed.push(format!(
                "{}:\n  want:\n    {}\n  got:\n    {}",
                p.display(),
                want.join("\n    "),
                got.join("\n    ")
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
