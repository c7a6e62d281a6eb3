//! The database's side of damage containment: setting aside blocks found damaged while it runs
//! (see `crate::quarantine` for the checks at open), and counting what WAL replay found damaged.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Db, DbMetrics};
use crate::block::Block;
use crate::quarantine::{self, CorruptionKind, SetAside};
use crate::wal;

impl Db {
    /// Blocks found damaged since open (at open or while read), and where they went.
    pub fn set_aside_blocks(&self) -> Vec<SetAside> {
        self.inner.set_aside.read().clone()
    }

    /// Takes a block found damaged out of service: no longer queried or compacted, moved into
    /// `quarantine/` (unless opened read-only), counted and logged once. Returns its record.
    pub(crate) fn set_aside(&self, b: &Arc<Block>, kind: CorruptionKind, reason: &str) -> SetAside {
        let ulid = b.meta().ulid.clone();
        {
            let mut bl = self.inner.blocks.write();
            let before = bl.len();
            bl.retain(|x| !Arc::ptr_eq(x, b));
            if bl.len() == before {
                // Someone else found it first (or it was compacted or deleted meanwhile).
                drop(bl);
                let known = self.inner.set_aside.read();
                if let Some(s) = known.iter().find(|s| s.ulid == ulid) {
                    return s.clone();
                }
            }
        }
        self.inner.metrics.count_corruption(kind, 1);
        let moved_to = if self.inner._lock.is_none() {
            tracing::warn!(block = %b.dir().display(), %kind, reason, "damaged block skipped");
            None
        } else {
            match quarantine::move_to_quarantine(&self.inner.dir, b.dir(), &ulid, kind) {
                Ok(p) => {
                    self.inner
                        .metrics
                        .blocks_quarantined
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(block = %b.dir().display(), %kind, reason, quarantined_to = %p.display(), "damaged block set aside; the rest of the data is served");
                    Some(p)
                }
                Err(e) => {
                    tracing::error!(block = %b.dir().display(), %kind, reason, error = %e, "damaged block could not be moved to quarantine; it is no longer read");
                    None
                }
            }
        };
        let m = b.meta();
        let sa = SetAside {
            ulid,
            kind,
            range: Some((m.min_time, m.max_time)),
            moved_to,
        };
        self.inner.set_aside.write().push(sa.clone());
        sa
    }
}

/// Counts and logs what replay found damaged: each damaged place by kind, and samples lost because
/// their series' definition was.
pub(super) fn count_wal_damage(metrics: &DbMetrics, stats: &wal::ReplayStats, unknown: u64) {
    if let Some(c) = &stats.corruption {
        metrics.wal_corruptions.fetch_add(1, Ordering::Relaxed);
        if stats.damage.iter().all(|d| d.torn_tail) {
            tracing::warn!(corruption = %c, "WAL tail was damaged and cut off; every complete record before it was kept");
        } else {
            tracing::error!(corruption = %c, "WAL was damaged; the damaged records were dropped and every intact record kept");
        }
    }
    // A torn tail is what every crash mid-write leaves, not damage worth an alert.
    for d in stats.damage.iter().filter(|d| !d.torn_tail) {
        let kind = if d.in_checkpoint {
            CorruptionKind::WalCheckpoint
        } else {
            CorruptionKind::WalSegment
        };
        metrics.count_corruption(kind, 1);
    }
    if unknown > 0 {
        metrics.count_corruption(CorruptionKind::UnknownSeries, 1);
        metrics
            .wal_unknown_series_samples
            .fetch_add(unknown, Ordering::Relaxed);
        tracing::error!(
            samples = unknown,
            "WAL samples refer to series whose definition was lost to damage; they were dropped"
        );
    }
}
