//! Target discovery: the target-group model every mechanism produces, the `Discoverer` seam the
//! scrape manager runs, and the helpers the mechanisms share (duration fields, the on-disk and
//! on-the-wire target-group format, stop signalling). One module per mechanism.

pub mod file;
pub mod http;
pub mod static_sd;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tocsin_model::labels::validate_label_name;
use tokio::sync::{mpsc, watch};

pub use file::{file_sd_target_counts, FileDiscoverer, FileSdConfig};
pub use http::{HttpDiscoverer, HttpSdConfig};
pub use static_sd::{StaticConfig, StaticDiscoverer};

/// The label that carries a target's `host:port`.
pub const ADDRESS_LABEL: &str = "__address__";

/// A set of targets that share labels, as Prometheus models it. `source` identifies the group
/// within its discoverer; a later group with the same source replaces the earlier one, and one
/// with no targets says the group is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetGroup {
    pub source: String,
    /// Each target's own labels; every one has `__address__`.
    pub targets: Vec<BTreeMap<String, String>>,
    /// Labels for every target of the group; a target's own label of the same name wins.
    pub labels: BTreeMap<String, String>,
}

impl TargetGroup {
    /// A group that removes whatever was last sent under `source`.
    pub fn empty(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }

    /// Each target's full label set: the group's labels overlaid with the target's own.
    pub fn merged_targets(&self) -> impl Iterator<Item = BTreeMap<String, String>> + '_ {
        self.targets.iter().map(|t| {
            let mut m = self.labels.clone();
            m.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
            m
        })
    }
}

/// A boxed future, so `Discoverer` stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One running service-discovery mechanism. `run` sends whole updates (every group that changed,
/// or all of them) on `tx` until `stop` turns true, its sender is dropped, or `tx` closes. A
/// discoverer that has nothing more to say (static) may return early; its groups stay valid.
pub trait Discoverer: Send + 'static {
    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Vec<TargetGroup>>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<()>;
}

/// Runs each discoverer on its own task and forwards its updates on `tx` tagged with `tag(i)`
/// (`i` its position in `ds`), so group sources only need to be unique within one discoverer.
pub fn spawn_tagged<K: Copy + Send + 'static>(
    ds: Vec<Box<dyn Discoverer>>,
    tx: &mpsc::Sender<(K, Vec<TargetGroup>)>,
    stop: &watch::Receiver<bool>,
    tag: impl Fn(usize) -> K,
) {
    for (i, d) in ds.into_iter().enumerate() {
        let (itx, mut irx) = mpsc::channel::<Vec<TargetGroup>>(4);
        tokio::spawn(d.run(itx, stop.clone()));
        let (tx, k) = (tx.clone(), tag(i));
        tokio::spawn(async move {
            while let Some(g) = irx.recv().await {
                if tx.send((k, g)).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Resolves when `stop` turns true or its sender goes away; either way the owner is done with us.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped, which we treat as a stop.
    let _ = stop.wait_for(|s| *s).await;
}

/// Reads a Prometheus duration string (`30s`, `1h30m`) into a `Duration`.
pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let ms = tocsin_model::duration::parse_duration_ms(&s).map_err(serde::de::Error::custom)?;
    Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// One target group as it appears in file_sd files and http_sd responses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Turns parsed groups into `TargetGroup`s with sources `"{prefix}:{i}"`, adding `extra` (the
/// `__meta_*` label naming where they came from) to each group's labels. Rejects illegal label
/// names, as Prometheus does when it reads these formats.
pub(crate) fn to_target_groups(
    raw: Vec<RawGroup>,
    prefix: &str,
    extra: (&str, &str),
) -> Result<Vec<TargetGroup>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, g)| {
            for name in g.labels.keys() {
                validate_label_name(name).map_err(|e| format!("group {i}: {e}"))?;
            }
            let mut labels = g.labels;
            labels.insert(extra.0.to_string(), extra.1.to_string());
            Ok(TargetGroup {
                source: format!("{prefix}:{i}"),
                targets: g
                    .targets
                    .into_iter()
                    .map(|t| BTreeMap::from([(ADDRESS_LABEL.to_string(), t)]))
                    .collect(),
                labels,
            })
        })
        .collect()
}

/// Empty groups for the sources `"{prefix}:{i}"`, `i` in `from..to`: what to send when a source
/// now has fewer groups than before, or none.
pub(crate) fn removed_groups(prefix: &str, from: usize, to: usize) -> Vec<TargetGroup> {
    (from..to)
        .map(|i| TargetGroup::empty(format!("{prefix}:{i}")))
        .collect()
}

/// Tokio's interval panics on zero; a zero interval is rejected by validation, this is the floor
/// for configs built in code.
pub(crate) fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn target_labels_win_over_group_labels() {
        let g = TargetGroup {
            source: "s".into(),
            targets: vec![BTreeMap::from([
                ("__address__".to_string(), "a:1".to_string()),
                ("env".to_string(), "own".to_string()),
            ])],
            labels: BTreeMap::from([
                ("env".to_string(), "group".to_string()),
                ("team".to_string(), "x".to_string()),
            ]),
        };
        let merged: Vec<_> = g.merged_targets().collect();
        assert_eq!(merged[0]["env"], "own");
        assert_eq!(merged[0]["team"], "x");
        assert_eq!(merged[0]["__address__"], "a:1");
    }

    #[test]
    fn durations_parse() {
        #[derive(Deserialize)]
        struct D {
            #[serde(deserialize_with = "de_duration")]
            d: Duration,
        }
        let d: D = serde_norway::from_str("d: 1h30m").unwrap();
        assert_eq!(d.d, Duration::from_secs(5400));
        assert!(serde_norway::from_str::<D>("d: 5 minutes").is_err());
    }
}
