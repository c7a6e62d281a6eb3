//! Remote-write queue metrics under Prometheus's names (`prometheus_remote_storage_*`, labelled
//! `remote_name` and `url`), so the prometheus-mixin remote-write dashboard and alerts work
//! unchanged against Tocsin.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge, Histogram};
use tocsin_remote::{QueueMetrics, RemoteWrite};

use crate::metrics::{family, gauge};

type Rows = Vec<(Vec<(String, String)>, f64)>;

pub fn encode(rw: &RemoteWrite, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let queues = rw.snapshot();
    if let Some(t) = rw.highest_read_ms() {
        gauge(
            e,
            "prometheus_remote_storage_highest_timestamp_in_seconds",
            "Highest sample timestamp read from the WAL by the remote-write queues.",
            t as f64 / 1000.0,
        )?;
    }
    if queues.is_empty() {
        return Ok(());
    }
    let labels = |q: &tocsin_remote::QueueSnapshot| {
        vec![
            ("remote_name".to_string(), q.name.clone()),
            ("url".to_string(), q.url.clone()),
        ]
    };
    let per = |f: &dyn Fn(&QueueMetrics) -> f64| -> Rows {
        queues.iter().map(|q| (labels(q), f(&q.metrics))).collect()
    };
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let rows: [(&str, &str, _, Rows); 12] = [
        ("prometheus_remote_storage_samples", "Samples sent to the remote (acknowledged).", Counter, per(&|m| ld(&m.samples_sent))),
        ("prometheus_remote_storage_failed_samples", "Samples the remote refused for good (4xx other than a retried 429); they are dropped.", Counter, per(&|m| ld(&m.samples_failed))),
        ("prometheus_remote_storage_retried_samples", "Samples sent again after a retryable failure (5xx, 429, network).", Counter, per(&|m| ld(&m.samples_retried))),
        ("prometheus_remote_storage_dropped_samples", "Samples not sent: dropped by write_relabel_configs, of a series the reader could not name, or older than sample_age_limit.", Counter, per(&|m| ld(&m.samples_dropped))),
        ("prometheus_remote_storage_samples_in", "Samples read from the WAL and queued for the remote.", Counter, per(&|m| ld(&m.samples_in))),
        ("prometheus_remote_storage_bytes", "Compressed bytes of samples and metadata sent.", Counter, per(&|m| ld(&m.bytes_sent))),
        ("prometheus_remote_storage_metadata", "Metadata entries sent.", Counter, per(&|m| ld(&m.metadata_sent))),
        ("prometheus_remote_storage_samples_pending", "Samples queued in the shards, not yet acknowledged.", Gauge, per(&|m| m.samples_pending.load(Ordering::Relaxed) as f64)),
        ("prometheus_remote_storage_shards", "Shards sending in parallel.", Gauge, per(&|m| ld(&m.shards))),
        ("prometheus_remote_storage_shards_desired", "Shards the backlog calls for.", Gauge, per(&|m| m.desired())),
        ("prometheus_remote_storage_queue_highest_sent_timestamp_seconds", "Highest sample timestamp the remote acknowledged.", Gauge, per(&|m| {
            let t = m.highest_sent_ms.load(Ordering::Relaxed);
            if t == i64::MIN { 0.0 } else { t as f64 / 1000.0 }
        })),
        ("tocsin_remote_storage_wal_skips", "WAL ranges a remote-write reader could not read (removed by a checkpoint before it got there, or damaged); their samples were not sent.", Counter, per(&|m| ld(&m.wal_skips))),
    ];
    for (name, help, kind, rows) in rows {
        family(e, name, help, kind, &rows)?;
    }
    let mut me = e.encode_descriptor(
        "prometheus_remote_storage_sent_batch_duration_seconds",
        "Duration of remote-write requests, retries included one by one.",
        None,
        Histogram,
    )?;
    for q in &queues {
        let h = q.metrics.batch_histogram();
        let l = labels(q);
        let mut fe = me.encode_family(&l)?;
        fe.encode_histogram::<Vec<(String, String)>>(h.sum, h.count, &h.buckets, None)?;
    }
    Ok(())
}
