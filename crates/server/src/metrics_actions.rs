//! The actions engine's metrics at `/metrics`: `tocsin_actions_total{policy,outcome}`,
//! `tocsin_action_duration_seconds{policy}`, `tocsin_actions_suppressed_total{policy,guard}` and
//! `tocsin_action_policy_tripped{policy}`.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge, Histogram};

use crate::metrics::family;

fn lbl(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn encode(
    engine: &tocsin_actions::Engine,
    e: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let snap = engine.metrics().snapshot();
    let outcomes: Vec<(Vec<(String, String)>, f64)> = snap
        .outcomes
        .iter()
        .map(|((p, o), n)| (lbl(&[("policy", p), ("outcome", o)]), *n as f64))
        .collect();
    family(
        e,
        "tocsin_actions",
        "Remediation actions by policy and outcome (matched, sent, succeeded, failed, suppressed, dry_run, retried, pending_approval, approved, denied, expired, skipped, verified, ineffective, unknown).",
        Counter,
        &outcomes,
    )?;
    let suppressed: Vec<(Vec<(String, String)>, f64)> = snap
        .suppressed
        .iter()
        .map(|((p, g), n)| (lbl(&[("policy", p), ("guard", g)]), *n as f64))
        .collect();
    family(
        e,
        "tocsin_actions_suppressed",
        "Remediation actions a guard stopped, by policy and guard.",
        Counter,
        &suppressed,
    )?;
    let tripped: Vec<(Vec<(String, String)>, f64)> = engine
        .tripped()
        .into_iter()
        .map(|(p, t)| (lbl(&[("policy", &p)]), if t { 1.0 } else { 0.0 }))
        .collect();
    family(
        e,
        "tocsin_action_policy_tripped",
        "1 while the remediation policy is tripped by a guard (its actions are suppressed until reset).",
        Gauge,
        &tripped,
    )?;
    if !snap.durations.is_empty() {
        let mut me = e.encode_descriptor(
            "tocsin_action_duration_seconds",
            "Time from the first attempt of a remediation action to its outcome, retries included.",
            None,
            Histogram,
        )?;
        for (policy, h) in &snap.durations {
            let bounds = tocsin_actions::metrics::DURATION_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX));
            let pairs: Vec<(f64, u64)> = bounds.zip(h.buckets.iter().copied()).collect();
            let labels = lbl(&[("policy", policy)]);
            let mut fe = me.encode_family(&labels)?;
            fe.encode_histogram::<Vec<(String, String)>>(h.sum_secs, h.count, &pairs, None)?;
        }
    }
    Ok(())
}
