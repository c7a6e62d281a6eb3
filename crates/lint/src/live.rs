//! The seam for live rules (next slice): what a rule may ask a running server or a data
//! directory. Query modules call it and cache the answers; rules never do.

use std::collections::BTreeMap;

/// A series as labels.
pub type SeriesLabels = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LiveError(pub String);

/// The state of one alerting rule as the server holds it.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub group: String,
    pub name: String,
    pub health: String,
    pub last_error: Option<String>,
    /// Seconds the last evaluation of the group took.
    pub group_eval_seconds: f64,
}

/// A running Tocsin (`--server URL`) or a data directory opened in-process (`--data-dir`).
pub trait LiveSource: Send + Sync {
    /// Where the data comes from, for the report header.
    fn describe(&self) -> String;
    /// Values of `label` on series matching `selector` in `[start_ms, end_ms]`.
    fn label_values(
        &self,
        label: &str,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, LiveError>;
    /// Series matching `selector` in `[start_ms, end_ms]`.
    fn series(
        &self,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesLabels>, LiveError>;
    /// Rule groups' health and evaluation times.
    fn rule_states(&self) -> Result<Vec<RuleState>, LiveError>;
}
