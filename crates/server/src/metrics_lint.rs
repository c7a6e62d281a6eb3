//! The server's own lint at `/metrics`: `tocsin_lint_failed{rule,resource}` (1 per failure of
//! the last run, so an alert on it fires and resolves with the finding),
//! `tocsin_lint_runs_total`, `tocsin_lint_errors_total` and the last run's time and duration.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::Gauge;

use crate::lint_run::LintState;
use crate::metrics::{counter, family, gauge};

pub fn encode(state: &LintState, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let s = state.snapshot();
    if s.runs == 0 && s.errors == 0 {
        return Ok(());
    }
    let failed: Vec<(Vec<(String, String)>, f64)> = s
        .failed
        .iter()
        .map(|(rule, res)| {
            (
                vec![
                    ("rule".to_string(), rule.clone()),
                    ("resource".to_string(), res.clone()),
                ],
                1.0,
            )
        })
        .collect();
    family(
        e,
        "tocsin_lint_failed",
        "1 for each lint rule failure (rule id, resource) of the server's last lint run.",
        Gauge,
        &failed,
    )?;
    counter(
        e,
        "tocsin_lint_runs",
        "Lint runs the server finished (`lint:`).",
        s.runs as f64,
    )?;
    counter(
        e,
        "tocsin_lint_errors",
        "Lint runs that could not run (e.g. a rule file gone since the last reload).",
        s.errors as f64,
    )?;
    gauge(
        e,
        "tocsin_lint_last_run_timestamp_seconds",
        "When the last lint run finished (Unix seconds).",
        s.last_run_unix,
    )?;
    gauge(
        e,
        "tocsin_lint_last_run_duration_seconds",
        "How long the last lint run took.",
        s.last_duration_s,
    )
}
