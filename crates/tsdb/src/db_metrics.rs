//! The database's counters for `/metrics` and its point-in-time statistics.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::quarantine::{CorruptionCounters, CorruptionKind};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DbMetrics {
    pub samples_appended: AtomicU64,
    pub rejected_out_of_order: AtomicU64,
    pub rejected_too_old: AtomicU64,
    pub rejected_duplicate: AtomicU64,
    pub compactions: AtomicU64,
    pub compactions_failed: AtomicU64,
    pub compaction_micros: AtomicU64,
    pub head_cuts: AtomicU64,
    /// Head ranges whose block could not be written (e.g. a full disk); the range stays in the
    /// head and the cut is retried.
    pub head_cuts_failed: AtomicU64,
    /// WAL checkpoints that failed; the old checkpoint and the segments stay and it is retried.
    pub checkpoints_failed: AtomicU64,
    pub blocks_deleted_retention: AtomicU64,
    pub wal_replay_micros: AtomicU64,
    pub wal_corruptions: AtomicU64,
    /// Damage found in blocks and the WAL, by kind (`tocsin_tsdb_corruptions_total{kind}`).
    pub corruption: CorruptionCounters,
    /// WAL samples dropped at replay because the record defining their series was lost.
    pub wal_unknown_series_samples: AtomicU64,
    /// Blocks set aside into `quarantine/` since start.
    pub blocks_quarantined: AtomicU64,
}

impl DbMetrics {
    /// Damage counts per kind (every kind listed, zeros included).
    pub fn corruptions(&self) -> Vec<(&'static str, u64)> {
        self.corruption.snapshot()
    }

    /// All damage found since start, every kind together.
    pub fn corruptions_total(&self) -> u64 {
        self.corruption.total()
    }

    pub(crate) fn count_corruption(&self, kind: CorruptionKind, n: u64) {
        self.corruption.add(kind, n);
    }

    pub fn unknown_series_samples(&self) -> u64 {
        self.wal_unknown_series_samples.load(Ordering::Relaxed)
    }
}

/// A point-in-time view for metrics and `tsdb analyze`.
#[derive(Debug, Clone, Default)]
pub struct DbStats {
    pub head_series: u64,
    pub head_min_time: i64,
    pub head_max_time: i64,
    pub series_created: u64,
    pub series_removed: u64,
    pub wal_bytes: u64,
    pub wal_segments: u64,
    pub blocks: u64,
    pub block_bytes: u64,
    pub block_samples: u64,
    pub block_series: u64,
    pub head_chunks_spilled_bytes: u64,
    /// Closed head chunks that could not be spilled (kept in memory instead).
    pub head_chunk_spill_failures: u64,
}
