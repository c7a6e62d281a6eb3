//! Counters of the engine, rendered by the server's `/metrics` as
//! `tocsin_actions_total{policy,outcome}`, `tocsin_action_duration_seconds{policy}` (histogram),
//! `tocsin_actions_suppressed_total{policy,guard}` and `tocsin_action_policy_tripped{policy}`.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the duration histogram.
pub const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// Outcomes every policy's counter exists for from the start, so `rate()` works at once.
pub const OUTCOMES: [&str; 7] = [
    "matched",
    "sent",
    "succeeded",
    "failed",
    "suppressed",
    "dry_run",
    "retried",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Counts per bucket (not cumulative), then above the last bound.
    pub buckets: Vec<u64>,
    pub sum_secs: f64,
    pub count: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: Mutex<BTreeMap<(String, String), u64>>,
    suppressed: Mutex<BTreeMap<(String, String), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
}

/// A copy of every counter.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub outcomes: BTreeMap<(String, String), u64>,
    pub suppressed: BTreeMap<(String, String), u64>,
    pub durations: BTreeMap<String, Histogram>,
}

impl Metrics {
    pub fn register(&self, policy: &str) {
        let mut o = self.outcomes.lock();
        for out in OUTCOMES {
            o.entry((policy.to_string(), out.to_string())).or_insert(0);
        }
        self.durations
            .lock()
            .entry(policy.to_string())
            .or_insert_with(|| Histogram {
                buckets: vec![0; DURATION_BUCKETS.len() + 1],
                ..Default::default()
            });
    }

    pub fn outcome(&self, policy: &str, outcome: &str) {
        *self
            .outcomes
            .lock()
            .entry((policy.to_string(), outcome.to_string()))
            .or_insert(0) += 1;
    }

    pub fn suppressed(&self, policy: &str, guard: &str) {
        *self
            .suppressed
            .lock()
            .entry((policy.to_string(), guard.to_string()))
            .or_insert(0) += 1;
    }

    pub fn observe(&self, policy: &str, took: Duration) {
        let secs = took.as_secs_f64();
        let mut d = self.durations.lock();
        let h = d.entry(policy.to_string()).or_insert_with(|| Histogram {
            buckets: vec![0; DURATION_BUCKETS.len() + 1],
            ..Default::default()
        });
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        h.buckets[i] += 1;
        h.sum_secs += secs;
        h.count += 1;
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            outcomes: self.outcomes.lock().clone(),
            suppressed: self.suppressed.lock().clone(),
            durations: self.durations.lock().clone(),
        }
    }

    /// How many executions of `policy` ended with `outcome` (for tests and the policies API).
    pub fn count(&self, policy: &str, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .get(&(policy.to_string(), outcome.to_string()))
            .copied()
            .unwrap_or(0)
    }
}
