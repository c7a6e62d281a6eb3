//! Metric types (`counter`, `gauge`, `histogram`, `summary`...) by metric name, the way a
//! Prometheus-compatible server's `/api/v1/metadata` reports them. Offline there is no source, so
//! every lookup answers None and rules fall back to naming conventions; a live source can fill
//! the table so the same rules use what the exporters declared.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Metadata {
    types: BTreeMap<String, String>,
}

impl Metadata {
    /// No metadata: what lint knows offline.
    pub fn offline() -> Metadata {
        Metadata::default()
    }

    /// Metadata from `(metric name, type)` pairs.
    pub fn from_types(types: impl IntoIterator<Item = (String, String)>) -> Metadata {
        Metadata {
            types: types.into_iter().collect(),
        }
    }

    /// The declared type of metric `name`, when known.
    pub fn metric_type(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }
}
