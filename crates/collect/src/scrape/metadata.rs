//! Metric metadata (type, help, unit) as scraped targets expose it in `# TYPE`, `# HELP` and
//! `# UNIT` lines, for `/api/v1/metadata`. One entry per metric family name, from the latest scrape
//! of any target that changed it. In memory only, like Prometheus's scrape cache: after a restart
//! it fills again with the first scrapes.
//!
//! Scrape loops keep a per-target copy ([`TargetMetadata`]) and compare each parsed line with it,
//! so the shared store (and its lock) is touched only when a target's metadata text changes, not on
//! every scrape.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;

use crate::expfmt::{Entry, MetricType};

/// What is known about one metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMetadata {
    /// OpenMetrics spelling (`counter`, `gauge`, ..., `unknown` for text-format `untyped`).
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

impl Default for MetricMetadata {
    fn default() -> Self {
        Self {
            kind: MetricType::Unknown.as_str(),
            help: String::new(),
            unit: String::new(),
        }
    }
}

/// Read view for the HTTP API.
pub trait MetadataView: Send + Sync {
    /// Entries sorted by metric name; only `metric` when given.
    fn metadata(&self, metric: Option<&str>) -> Vec<(String, MetricMetadata)>;
}

/// The shared store the scrape loops feed.
#[derive(Debug, Default)]
pub struct MetadataStore {
    map: RwLock<BTreeMap<String, MetricMetadata>>,
}

impl MetadataStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the metadata of families whose text changed in one target's scrape.
    pub fn update(&self, changed: impl IntoIterator<Item = (String, MetricMetadata)>) {
        let mut m = self.map.write();
        for (name, md) in changed {
            m.insert(name, md);
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MetadataView for MetadataStore {
    fn metadata(&self, metric: Option<&str>) -> Vec<(String, MetricMetadata)> {
        let m = self.map.read();
        match metric {
            Some(name) => m
                .get(name)
                .map(|md| vec![(name.to_string(), md.clone())])
                .unwrap_or_default(),
            None => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

/// No metadata: for servers and tests without scraping.
pub struct NoMetadata;

impl MetadataView for NoMetadata {
    fn metadata(&self, _metric: Option<&str>) -> Vec<(String, MetricMetadata)> {
        Vec::new()
    }
}

/// One target's metadata as of its last successful scrape, plus the changes seen in the scrape
/// being parsed. Lookups borrow the parsed name, so an unchanged line allocates nothing.
#[derive(Debug, Default)]
pub struct TargetMetadata {
    known: HashMap<Box<str>, MetricMetadata>,
    /// Families changed by the current scrape, in the state they will have once it succeeds.
    pending: HashMap<Box<str>, MetricMetadata>,
}

impl TargetMetadata {
    /// Looks at one parsed entry; samples are ignored.
    pub fn observe(&mut self, e: &Entry<'_>) {
        let (name, apply): (&str, &dyn Fn(&mut MetricMetadata) -> bool) = match e {
            Entry::Sample(_) => return,
            Entry::Type { name, kind } => (name, &|m| set_kind(m, kind.as_str())),
            Entry::Help { name, text } => (name, &|m| set_str(&mut m.help, text)),
            Entry::Unit { name, unit } => (name, &|m| set_str(&mut m.unit, unit)),
        };
        if let Some(p) = self.pending.get_mut(name) {
            apply(p);
            return;
        }
        let mut md = self.known.get(name).cloned().unwrap_or_default();
        let existed = self.known.contains_key(name);
        if apply(&mut md) || !existed {
            self.pending.insert(name.into(), md);
        }
    }

    /// The scrape succeeded: keep its changes and return them for the shared store.
    pub fn commit(&mut self) -> Vec<(String, MetricMetadata)> {
        let mut out = Vec::with_capacity(self.pending.len());
        for (name, md) in self.pending.drain() {
            out.push((name.to_string(), md.clone()));
            self.known.insert(name, md);
        }
        out
    }

    /// The scrape failed: forget what it said.
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

fn set_kind(m: &mut MetricMetadata, kind: &'static str) -> bool {
    if m.kind == kind {
        return false;
    }
    m.kind = kind;
    true
}

fn set_str(field: &mut String, v: &str) -> bool {
    if field == v {
        return false;
    }
    field.clear();
    field.push_str(v);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_reach_the_store() {
        let store = MetadataStore::new();
        let mut t = TargetMetadata::default();
        let scrape = |t: &mut TargetMetadata, help: &str| {
            t.observe(&Entry::Help {
                name: "http_requests_total",
                text: help,
            });
            t.observe(&Entry::Type {
                name: "http_requests_total",
                kind: MetricType::Counter,
            });
            t.commit()
        };
        let first = scrape(&mut t, "Requests.");
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].1.kind, "counter");
        assert_eq!(first[0].1.help, "Requests.");
        store.update(first);
        assert!(scrape(&mut t, "Requests.").is_empty());
        let changed = scrape(&mut t, "All requests.");
        assert_eq!(changed[0].1.help, "All requests.");
        store.update(changed);
        let md = store.metadata(Some("http_requests_total"));
        assert_eq!(md[0].1.help, "All requests.");
        assert!(store.metadata(Some("nope")).is_empty());
    }

    #[test]
    fn a_failed_scrape_changes_nothing() {
        let mut t = TargetMetadata::default();
        t.observe(&Entry::Type {
            name: "g",
            kind: MetricType::Gauge,
        });
        t.discard();
        t.observe(&Entry::Unit {
            name: "g",
            unit: "seconds",
        });
        let c = t.commit();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1.kind, "unknown");
        assert_eq!(c[0].1.unit, "seconds");
    }
}
