//! Wiring of `remote_read:`: the read fan-out the query API, series/labels endpoints and
//! `/federate` read through (rules and actions keep reading local data only, as in
//! Prometheus), rebuilt from the config at start and on reload, and its metrics under
//! Prometheus's names (`prometheus_remote_storage_*`, labels `remote_name` and `url`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge, Histogram};
use tocsin_collect::remote_read::{
    fanout::ReadSource, ReadFanout, ReadMetrics, Remote, RemoteSet, DURATION_BUCKETS,
};
use tocsin_tsdb::Db;

use crate::config::Config;
use crate::lazy_db::LazyDb;

/// The fan-out over the local database, with no remote until [`build`] gives some.
pub(crate) fn fanout(db: Arc<OnceLock<Db>>) -> Arc<ReadFanout> {
    let start_db = db.clone();
    Arc::new(ReadFanout::new(
        Arc::new(LazyDb(db)),
        Arc::new(move || local_start(&start_db)),
    ))
}

/// The oldest local sample's timestamp: the oldest block's start, else the head's
/// (`i64::MAX` with no data), as Prometheus's storage start time.
fn local_start(db: &OnceLock<Db>) -> i64 {
    let Some(db) = db.get() else {
        return i64::MAX;
    };
    db.blocks()
        .iter()
        .map(|b| b.meta().min_time)
        .chain(std::iter::once(db.head().min_time()))
        .min()
        .unwrap_or(i64::MAX)
}

/// The remotes of `cfg`, clients built (credential files read); fails with the first entry
/// that cannot be built, so a reload changes nothing then.
pub(crate) fn build(
    cfg: &Config,
    base: &Path,
    metrics: &ReadMetrics,
    rt: &tokio::runtime::Handle,
) -> Result<RemoteSet, String> {
    let mut sources: Vec<Arc<dyn ReadSource>> = Vec::new();
    for (i, r) in cfg.remote_read.iter().enumerate() {
        let remote = Remote::new(r, base, metrics, rt.clone())
            .map_err(|e| format!("remote_read[{i}]: {e}"))?;
        sources.push(Arc::new(Arc::new(remote)));
    }
    // Replicas read each other: the replica label is neither asked for (a peer has its own
    // value) nor kept in answers, so a peer's series meet this replica's own and fill its gaps.
    let replica_label = cfg.ha.as_ref().map(|h| h.replica_label.clone());
    Ok(RemoteSet {
        sources,
        external_labels: cfg
            .global
            .external_labels
            .iter()
            .filter(|(k, _)| Some(*k) != replica_label.as_ref())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        strip: replica_label.into_iter().collect(),
    })
}

/// `/metrics` families of the remotes.
#[derive(Debug)]
pub(crate) struct Metrics(pub Arc<ReadMetrics>);

fn lbl(name: &str, url: &str) -> Vec<(String, String)> {
    vec![
        ("remote_name".to_string(), name.to_string()),
        ("url".to_string(), url.to_string()),
    ]
}

impl Collector for Metrics {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.0.snapshot();
        if snap.is_empty() {
            return Ok(());
        }
        let mut queries = Vec::new();
        let mut in_flight = Vec::new();
        for (n, u, m) in &snap {
            for (code, c) in m.queries.lock().iter() {
                let mut l = lbl(n, u);
                l.push(("code".into(), code.clone()));
                queries.push((l, *c as f64));
            }
            in_flight.push((lbl(n, u), m.in_flight.load(Ordering::Relaxed) as f64));
        }
        crate::metrics::family(
            &mut e,
            "prometheus_remote_storage_read_queries",
            "Remote read queries finished, by HTTP status code (\"error\": no answer).",
            Counter,
            &queries,
        )?;
        crate::metrics::family(
            &mut e,
            "prometheus_remote_storage_remote_read_queries",
            "Remote read queries in flight.",
            Gauge,
            &in_flight,
        )?;
        let mut me = e.encode_descriptor(
            "prometheus_remote_storage_read_request_duration_seconds",
            "Time a remote read request took, answer decoding included.",
            None,
            Histogram,
        )?;
        for (n, u, m) in &snap {
            let bounds = DURATION_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX));
            let pairs: Vec<(f64, u64)> = bounds
                .zip(m.duration_buckets.iter().map(|b| b.load(Ordering::Relaxed)))
                .collect();
            let labels = lbl(n, u);
            let mut fe = me.encode_family(&labels)?;
            fe.encode_histogram::<Vec<(String, String)>>(
                m.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6,
                m.duration_count.load(Ordering::Relaxed),
                &pairs,
                None,
            )?;
        }
        Ok(())
    }
}
