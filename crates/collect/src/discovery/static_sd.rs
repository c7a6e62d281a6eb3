//! `static_configs`: targets written in the configuration itself. They are sent once; the
//! sources are the configs' indexes ("0", "1", ...) as in Prometheus.

use std::collections::BTreeMap;

use serde::Deserialize;
use tocsin_model::labels::validate_label_name;
use tokio::sync::{mpsc, watch};

use super::{BoxFuture, Discoverer, TargetGroup, ADDRESS_LABEL};

/// One `static_configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl StaticConfig {
    /// Rejects label names outside the legacy charset.
    pub fn validate(&self) -> Result<(), String> {
        for name in self.labels.keys() {
            validate_label_name(name).map_err(|e| format!("static_configs labels: {e}"))?;
        }
        Ok(())
    }

    /// The group this config describes, under `source`.
    pub fn to_group(&self, source: impl Into<String>) -> TargetGroup {
        TargetGroup {
            source: source.into(),
            targets: self
                .targets
                .iter()
                .map(|t| BTreeMap::from([(ADDRESS_LABEL.to_string(), t.clone())]))
                .collect(),
            labels: self.labels.clone(),
        }
    }
}

/// Sends the groups of a job's `static_configs`, once.
#[derive(Debug, Clone)]
pub struct StaticDiscoverer {
    groups: Vec<TargetGroup>,
}

impl StaticDiscoverer {
    pub fn new(configs: &[StaticConfig]) -> Self {
        Self {
            groups: configs
                .iter()
                .enumerate()
                .map(|(i, c)| c.to_group(i.to_string()))
                .collect(),
        }
    }
}

impl Discoverer for StaticDiscoverer {
    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Vec<TargetGroup>>,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture<()> {
        Box::pin(async move {
            tokio::select! {
                // A closed channel only means nobody listens any more; nothing to report.
                _ = tx.send(self.groups) => {}
                _ = super::stopped(&mut stop) => {}
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_groups_once() {
        let cfgs: Vec<StaticConfig> = serde_norway::from_str(
            "- targets: ['a:1', 'b:2']\n  labels: {env: prod}\n- targets: ['c:3']\n",
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop_tx, stop) = watch::channel(false);
        Box::new(StaticDiscoverer::new(&cfgs)).run(tx, stop).await;
        let groups = rx.recv().await.unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].source, "0");
        assert_eq!(groups[0].targets[1]["__address__"], "b:2");
        assert_eq!(groups[0].labels["env"], "prod");
        assert_eq!(groups[1].source, "1");
        assert!(rx.recv().await.is_none(), "sent more than once");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_labels() {
        assert!(serde_norway::from_str::<StaticConfig>("targets: []\nlabel: {}").is_err());
        let c: StaticConfig = serde_norway::from_str("labels: {'a-b': x}").unwrap();
        assert!(c.validate().is_err());
    }
}
