//! Counters and gauges of one remote-write queue, updated by its reader and shards and read at
//! scrape time by the server's `/metrics` (under Prometheus's `prometheus_remote_storage_*` names).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the `sent_batch_duration_seconds` buckets, as Prometheus has them.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct QueueMetrics {
    /// Samples read from the WAL and queued for sending.
    pub samples_in: AtomicU64,
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_retried: AtomicU64,
    pub samples_dropped: AtomicU64,
    pub samples_pending: AtomicI64,
    pub bytes_sent: AtomicU64,
    pub metadata_sent: AtomicU64,
    pub metadata_failed: AtomicU64,
    pub shards: AtomicU64,
    /// f64 bits.
    pub shards_desired: AtomicU64,
    pub highest_read_ms: AtomicI64,
    pub highest_sent_ms: AtomicI64,
    /// WAL ranges the reader could not read (removed before it got there, or damaged).
    pub wal_skips: AtomicU64,
    /// Per bucket (not cumulative), the last one for +Inf.
    batch_buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    batch_count: AtomicU64,
    /// Microseconds.
    batch_sum_us: AtomicU64,
}

/// A histogram read at one moment: per-bucket counts (the last bound is +Inf), sum and count.
#[derive(Debug, Clone, Default)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl QueueMetrics {
    pub fn new() -> Self {
        let m = Self::default();
        m.highest_read_ms.store(i64::MIN, Ordering::Relaxed);
        m.highest_sent_ms.store(i64::MIN, Ordering::Relaxed);
        m
    }

    pub fn observe_batch(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.batch_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.batch_count.fetch_add(1, Ordering::Relaxed);
        self.batch_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Total seconds spent sending batches (for the shard calculation).
    pub fn batch_seconds(&self) -> f64 {
        self.batch_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn batch_histogram(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: DURATION_BUCKETS
                .iter()
                .chain(std::iter::once(&f64::MAX))
                .zip(&self.batch_buckets)
                .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
                .collect(),
            sum: self.batch_seconds(),
            count: self.batch_count.load(Ordering::Relaxed),
        }
    }

    pub fn set_desired(&self, v: f64) {
        self.shards_desired.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn desired(&self) -> f64 {
        f64::from_bits(self.shards_desired.load(Ordering::Relaxed))
    }
}

pub(crate) fn raise(a: &AtomicI64, v: i64) {
    a.fetch_max(v, Ordering::Relaxed);
}
