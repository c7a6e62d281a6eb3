//! The database: opens a data directory (lock, blocks, WAL replay into the head), serves appends and
//! queries through the storage seams, and runs maintenance: cutting head ranges into blocks,
//! compacting blocks, retention by time and size, and deletion with tombstones.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tocsin_model::{Labels, Matcher};
use tocsin_storage::{AppendOptions, Appendable, Appender, CommitStats, SeriesRef};

use crate::block::{self, Block, BlockWriter};
pub use crate::db_metrics::{DbMetrics, DbStats};
use crate::error::{Error, Result};
use crate::head::{Head, Reject};
use crate::lock::DirLock;
use crate::quarantine::{self, CorruptionKind, SetAside};
use crate::spill::ChunkSpill;
use crate::wal::{self, Record, RefSample, RefSeries, Tombstone, Wal, WalOptions};

pub const HOUR_MS: i64 = 3_600_000;

/// Storage settings; the `storage:` section of the config maps onto this.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Span of head data cut into one block (default 2 h).
    pub block_range_ms: i64,
    /// Blocks entirely older than this before the newest data are deleted (default 15 d).
    pub retention_ms: i64,
    /// Oldest blocks are deleted while blocks + WAL exceed this; 0 = no limit.
    pub retention_bytes: u64,
    /// How far behind a series' newest sample an older sample is still accepted; 0 = never.
    pub ooo_window_ms: i64,
    pub wal_segment_size: u64,
    /// Write closed head chunks to `chunks_head/` and drop them from memory.
    pub spill_head_chunks: bool,
    /// Series idle this long get their open chunk spilled too.
    pub idle_spill_ms: i64,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            block_range_ms: 2 * HOUR_MS,
            retention_ms: 15 * 24 * HOUR_MS,
            retention_bytes: 0,
            ooo_window_ms: 0,
            wal_segment_size: 128 << 20,
            spill_head_chunks: true,
            idle_spill_ms: 5 * 60_000,
        }
    }
}

struct Inner {
    dir: PathBuf,
    opts: DbOptions,
    head: Head,
    wal: Mutex<Option<Wal>>,
    blocks: RwLock<Vec<Arc<Block>>>,
    metrics: DbMetrics,
    maintenance: Mutex<()>,
    /// Bound of a WAL truncation that failed after its block was written (`i64::MIN`: none);
    /// every maintenance pass retries it until a checkpoint succeeds.
    wal_truncate_pending: AtomicI64,
    /// Blocks found damaged since open; queries over their range get a warning.
    set_aside: RwLock<Vec<SetAside>>,
    _lock: Option<DirLock>,
}

/// A handle to an open database; clones share it.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.inner.dir.display())
    }
}

fn blocks_dir(dir: &Path) -> PathBuf {
    dir.join("blocks")
}

impl Db {
    /// Opens (creating if needed) a data directory for reading and writing.
    pub fn open(dir: &Path, opts: DbOptions) -> Result<Db> {
        if opts.block_range_ms <= 0 {
            return Err(Error::InvalidOption("block range must be positive".into()));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = DirLock::acquire(dir)?;
        let bdir = blocks_dir(dir);
        fs::create_dir_all(&bdir).map_err(|e| Error::io(&bdir, e))?;
        block::cleanup_tmp(&bdir)?;
        let metrics = DbMetrics::default();
        let opened = quarantine::open_blocks(dir, false, &metrics.corruption)?;
        let blocks = opened.blocks;
        let moved = opened.set_aside.iter().filter(|s| s.moved_to.is_some());
        metrics
            .blocks_quarantined
            .store(moved.count() as u64, Ordering::Relaxed);
        let spill = if opts.spill_head_chunks {
            Some(ChunkSpill::open(&dir.join("chunks_head"))?)
        } else {
            None
        };
        let head = Head::new(opts.ooo_window_ms, opts.block_range_ms, spill);
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(maxt);
        }
        let start = Instant::now();
        let wal_dir = dir.join("wal");
        let (stats, unknown) = replay_into(&head, &wal_dir, false)?;
        metrics
            .wal_replay_micros
            .store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
        count_wal_damage(&metrics, &stats, unknown);
        tracing::info!(
            series = head.num_series(),
            samples = stats.samples,
            segments = stats.segments,
            seconds = start.elapsed().as_secs_f64(),
            "WAL replay done"
        );
        let wal = Wal::open(
            &wal_dir,
            WalOptions {
                segment_size: opts.wal_segment_size,
            },
        )?;
        Ok(Db {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                opts,
                head,
                wal: Mutex::new(Some(wal)),
                blocks: RwLock::new(blocks),
                metrics,
                maintenance: Mutex::new(()),
                wal_truncate_pending: AtomicI64::new(i64::MIN),
                set_aside: RwLock::new(opened.set_aside),
                _lock: Some(lock),
            }),
        })
    }

    /// Opens a data directory read-only, without taking its lock, so a CLI can read a directory that
    /// a running server owns: blocks as they are, and the WAL replayed into a private head without
    /// touching any file.
    pub fn open_read_only(dir: &Path) -> Result<Db> {
        if !dir.exists() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such data directory"),
            ));
        }
        let metrics = DbMetrics::default();
        let opened = quarantine::open_blocks(dir, true, &metrics.corruption)?;
        let blocks = opened.blocks;
        let head = Head::new(i64::MAX / 4, DbOptions::default().block_range_ms, None);
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(maxt);
        }
        let wal_dir = dir.join("wal");
        if wal_dir.exists() {
            let (stats, unknown) = replay_into(&head, &wal_dir, true)?;
            if let Some(c) = stats.corruption {
                tracing::info!(detail = %c, unknown_series_samples = unknown, "WAL read skipped damage or stopped at an incomplete record (normal while a server writes)");
            }
        }
        Ok(Db {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                opts: DbOptions::default(),
                head,
                wal: Mutex::new(None),
                blocks: RwLock::new(blocks),
                metrics,
                maintenance: Mutex::new(()),
                wal_truncate_pending: AtomicI64::new(i64::MIN),
                set_aside: RwLock::new(opened.set_aside),
                _lock: None,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
    pub fn options(&self) -> &DbOptions {
        &self.inner.opts
    }
    pub fn head(&self) -> &Head {
        &self.inner.head
    }
    pub fn metrics(&self) -> &DbMetrics {
        &self.inner.metrics
    }
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.inner.blocks.read().clone()
    }

    pub fn stats(&self) -> DbStats {
        let h = &self.inner.head;
        let blocks = self.blocks();
        let (wal_bytes, wal_segments) = self
            .inner
            .wal
            .lock()
            .as_ref()
            .map_or((0, 0), |w| (w.size_bytes(), w.num_segments() as u64));
        DbStats {
            head_series: h.num_series(),
            head_min_time: h.min_time(),
            head_max_time: h.max_time(),
            series_created: h.series_created.load(Ordering::Relaxed),
            series_removed: h.series_removed.load(Ordering::Relaxed),
            wal_bytes,
            wal_segments,
            blocks: blocks.len() as u64,
            block_bytes: blocks.iter().map(|b| b.size_bytes()).sum(),
            block_samples: blocks.iter().map(|b| b.meta().stats.num_samples).sum(),
            block_series: blocks.iter().map(|b| b.meta().stats.num_series).sum(),
            head_chunks_spilled_bytes: 0,
            head_chunk_spill_failures: h.spill_failures(),
        }
    }

    /// Runs every maintenance step once: cut head ranges into blocks, compact, apply retention,
    /// spill idle series' chunks. Safe to call from a timer; steps never overlap.
    ///
    /// A failed step (a full disk, say) leaves nothing half-done and is retried on the next pass;
    /// the steps after it still run, since retention may be what frees the space. Returns the
    /// first error; later ones are logged here.
    pub fn maintain(&self) -> Result<()> {
        let _g = self.inner.maintenance.lock();
        let mut first: Option<Error> = None;
        let mut note = |step: &str, r: Result<()>| {
            if let Err(e) = r {
                if first.is_none() {
                    first = Some(e);
                } else {
                    tracing::error!(step, error = %e, "storage maintenance step failed; will retry");
                }
            }
        };
        note("WAL checkpoint", self.retry_wal_truncation());
        note("head cut", self.cut_head());
        let compacted = self.compact_once();
        if let Err(Error::Corrupt { path, reason }) = &compacted {
            let damaged = self
                .blocks()
                .into_iter()
                .find(|b| Path::new(path).starts_with(b.dir()));
            if let Some(b) = damaged {
                self.set_aside(&b, CorruptionKind::of_block_file(path), reason);
            }
        }
        note("compaction", compacted);
        note("retention", self.apply_retention());
        let h = &self.inner.head;
        if h.max_time() > i64::MIN {
            h.spill_idle(h.max_time() - self.inner.opts.idle_spill_ms);
        }
        first.map_or(Ok(()), Err)
    }

    fn cut_head(&self) -> Result<()> {
        while self.cut_head_once()? {}
        Ok(())
    }

    /// Finishes a WAL truncation that failed after its head range was persisted.
    fn retry_wal_truncation(&self) -> Result<()> {
        let mint = self.inner.wal_truncate_pending.load(Ordering::SeqCst);
        if mint == i64::MIN {
            return Ok(());
        }
        self.truncate_wal_or_defer(mint)?;
        tracing::info!(mint, "deferred WAL checkpoint done");
        Ok(())
    }

    /// `truncate_wal`, remembering a failure for the next pass to retry. Until then the WAL keeps
    /// samples the blocks hold too, which replay skips: only disk space is lost meanwhile.
    fn truncate_wal_or_defer(&self, mint: i64) -> Result<()> {
        match self.truncate_wal(mint) {
            Ok(()) => {
                // This checkpoint covers any earlier one that failed.
                let _ = self.inner.wal_truncate_pending.fetch_update(
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                    |p| (p != i64::MIN && p <= mint).then_some(i64::MIN),
                );
                Ok(())
            }
            Err(e) => {
                self.inner
                    .wal_truncate_pending
                    .fetch_max(mint, Ordering::SeqCst);
                self.inner
                    .metrics
                    .checkpoints_failed
                    .fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Cuts the oldest full block range out of the head when the head spans 1.5 ranges.
    fn cut_head_once(&self) -> Result<bool> {
        let h = &self.inner.head;
        let range = self.inner.opts.block_range_ms;
        let (mint, maxt) = (h.min_time(), h.max_time());
        if mint == i64::MAX || maxt == i64::MIN || maxt - mint <= range * 3 / 2 {
            return Ok(false);
        }
        let start = mint.div_euclid(range) * range;
        let end = start + range;
        self.persist_head_range(start, end)?;
        Ok(true)
    }

    /// Writes head data in [start, end) to a block and drops it from the head (and the WAL).
    ///
    /// If the block cannot be written (a full disk), nothing changes: no directory is left, the
    /// range stays in the head and the WAL, and the next call cuts it again. Once the block is
    /// in place a failed WAL checkpoint is retried by every maintenance pass.
    pub fn persist_head_range(&self, start: i64, end: i64) -> Result<Option<block::BlockMeta>> {
        let t0 = Instant::now();
        let h = &self.inner.head;
        // Raised before the range is read: appends check the bound under their series' stripe
        // lock and the range is read under the same locks, so a sample below `end` is either in
        // what the block gets or refused. Raising it only after the write would let a sample land
        // behind the reader and be truncated with the range.
        let prev = h.min_valid_time();
        h.set_min_valid_time(end);
        let written = self.write_head_block(start, end);
        let (meta, series, t_sorted) = match written {
            Ok(x) => x,
            Err(e) => {
                // Samples refused meanwhile were answered as too old, never acknowledged.
                h.lower_min_valid_time(end, prev);
                self.inner
                    .metrics
                    .head_cuts_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(mint = start, maxt = end, error = %e, "persisting a head range failed; it stays in the head and is retried");
                return Err(e);
            }
        };
        let t_written = t0.elapsed();
        let removed = h.truncate(end);
        let t_truncated = t0.elapsed();
        self.inner.metrics.head_cuts.fetch_add(1, Ordering::Relaxed);
        // Cumulative phase times, so a slow cut shows where it spent them.
        tracing::info!(
            mint = start,
            maxt = end,
            series,
            series_removed = removed,
            sorted_s = t_sorted.as_secs_f64(),
            written_s = t_written.as_secs_f64(),
            head_truncated_s = t_truncated.as_secs_f64(),
            seconds = t0.elapsed().as_secs_f64(),
            "head range persisted to a block"
        );
        self.truncate_wal_or_defer(end)?;
        Ok(meta)
    }

    /// The block-writing part of `persist_head_range`: on an error no block directory is left and
    /// the block list is unchanged. Returns the block's meta, the series count and the time
    /// taken to gather the range.
    #[allow(clippy::type_complexity)]
    fn write_head_block(
        &self,
        start: i64,
        end: i64,
    ) -> Result<(Option<block::BlockMeta>, usize, Duration)> {
        let t0 = Instant::now();
        let h = &self.inner.head;
        let bdir = blocks_dir(&self.inner.dir);
        let read_failures = h.spill_read_failures();
        let mut range = h.series_in_range(start, end);
        let t_sorted = t0.elapsed();
        let symbols = std::mem::take(&mut range.symbols);
        let mut w = BlockWriter::with_sorted_symbols(&bdir, start, end, 1, Vec::new(), symbols)?;
        let mut ids = Vec::new();
        let mut samples = Vec::new();
        for i in 0..range.len() {
            let Some(slot) = range.get(i, &mut ids) else {
                break;
            };
            h.samples_into(slot, start, end, &mut samples);
            w.add_series_ids(&ids, &samples)?;
        }
        let series = range.len();
        drop(range);
        // A spilled chunk that could not be read would leave a gap in the block that truncating
        // the head and the WAL made permanent. (A query failing meanwhile also trips this; the
        // cut is then merely retried.)
        if h.spill_read_failures() != read_failures {
            return Err(Error::io(
                self.inner.dir.join("chunks_head"),
                std::io::Error::other("a spilled head chunk could not be read back while cutting a block; the range stays in the head and the WAL"),
            ));
        }
        // The writer removes its temporary directory on any error before this returns.
        let meta = w.finish()?;
        if let Some(m) = &meta {
            let b = open_new_block(&bdir, &m.ulid)?;
            let mut bl = self.inner.blocks.write();
            bl.push(b);
            bl.sort_by_key(|b| b.meta().min_time);
        }
        Ok((meta, series, t_sorted))
    }

    /// Checkpoints every WAL segment before a fresh one. The WAL lock is held only to cut the
    /// segment and to publish the checkpoint: appenders need it to commit, and building the
    /// checkpoint rewrites the last hour or so of samples, which stalled ingest for many seconds.
    fn truncate_wal(&self, mint: i64) -> Result<()> {
        let pending = {
            let mut g = self.inner.wal.lock();
            let Some(w) = g.as_mut() else { return Ok(()) };
            let cur = w.cut_segment()?;
            if cur <= w.first_segment() {
                return Ok(());
            }
            w.begin_checkpoint(cur - 1)?
        };
        let Some(mut p) = pending else { return Ok(()) };
        // Taken after the cut: a series created since is logged in a segment the checkpoint does
        // not cover, and every series logged before it is in the head by now.
        let live = self.inner.head.live_ids();
        p.write(&|r| live.contains(r), mint)?;
        drop(live);
        let mut g = self.inner.wal.lock();
        match g.as_mut() {
            Some(w) => w.finish_checkpoint(p).map(|_| ()),
            // Closed meanwhile: the unfinished checkpoint removes itself.
            None => Ok(()),
        }
    }

    /// Compaction ranges: 3x, 9x and 27x the block range (6 h, 18 h, 54 h by default), capped at a
    /// tenth of the retention so retention can still drop whole blocks.
    fn compaction_ranges(&self) -> Vec<i64> {
        let r = self.inner.opts.block_range_ms;
        let cap = (self.inner.opts.retention_ms / 10).max(r);
        [r * 3, r * 9, r * 27]
            .into_iter()
            .filter(|x| *x <= cap)
            .collect()
    }

    fn compact_once(&self) -> Result<()> {
        let head_min = self.inner.head.min_valid_time();
        for range in self.compaction_ranges() {
            loop {
                let blocks = self.blocks();
                let mut groups: HashMap<i64, Vec<Arc<Block>>> = HashMap::new();
                for b in &blocks {
                    let m = b.meta();
                    let w = m.min_time.div_euclid(range);
                    if (m.max_time - 1).div_euclid(range) == w && m.max_time - m.min_time < range {
                        groups.entry(w).or_default().push(b.clone());
                    }
                }
                // Only windows the head has moved past: no further block will land in them.
                let Some((w, group)) = groups
                    .into_iter()
                    .filter(|(w, g)| g.len() > 1 && (w + 1) * range <= head_min)
                    .min_by_key(|(w, _)| *w)
                else {
                    break;
                };
                self.compact_group(&group, w * range, (w + 1) * range)?;
            }
        }
        // Blocks with tombstones are rewritten so deleted data leaves the disk.
        for b in self.blocks() {
            if b.has_tombstones() {
                let m = b.meta().clone();
                self.compact_group(&[b], m.min_time, m.max_time)?;
            }
        }
        Ok(())
    }

    fn compact_group(&self, group: &[Arc<Block>], mint: i64, maxt: i64) -> Result<()> {
        let t0 = Instant::now();
        let bdir = blocks_dir(&self.inner.dir);
        // Writing the block and opening it fail the same way: nothing replaced, retried next pass.
        let new_block = block::compact(&bdir, group, mint, maxt)
            .and_then(|meta| meta.map(|m| open_new_block(&bdir, &m.ulid)).transpose())
            .inspect_err(|_| {
                self.inner
                    .metrics
                    .compactions_failed
                    .fetch_add(1, Ordering::Relaxed);
            })?;
        {
            let mut bl = self.inner.blocks.write();
            bl.retain(|b| !group.iter().any(|g| Arc::ptr_eq(g, b)));
            if let Some(nb) = new_block {
                bl.push(nb);
            }
            bl.sort_by_key(|b| b.meta().min_time);
        }
        for g in group {
            if let Err(e) = fs::remove_dir_all(g.dir()) {
                tracing::warn!(block = %g.dir().display(), error = %e, "removing a compacted block failed");
            }
        }
        sync_dir(&bdir);
        let el = t0.elapsed();
        self.inner
            .metrics
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        self.inner
            .metrics
            .compaction_micros
            .fetch_add(el.as_micros() as u64, Ordering::Relaxed);
        tracing::info!(
            inputs = group.len(),
            mint,
            maxt,
            seconds = el.as_secs_f64(),
            "compacted blocks"
        );
        Ok(())
    }

    fn apply_retention(&self) -> Result<()> {
        let opts = &self.inner.opts;
        let blocks = self.blocks();
        let newest = blocks
            .iter()
            .map(|b| b.meta().max_time)
            .max()
            .unwrap_or(i64::MIN)
            .max(self.inner.head.max_time());
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        if opts.retention_ms > 0 && newest > i64::MIN {
            doomed.extend(
                blocks
                    .iter()
                    .filter(|b| b.meta().max_time <= newest - opts.retention_ms)
                    .cloned(),
            );
        }
        if opts.retention_bytes > 0 {
            let wal = self.inner.wal.lock().as_ref().map_or(0, |w| w.size_bytes());
            let mut total: u64 = wal + blocks.iter().map(|b| b.size_bytes()).sum::<u64>();
            for b in &blocks {
                if total <= opts.retention_bytes {
                    break;
                }
                if !doomed.iter().any(|d| Arc::ptr_eq(d, b)) {
                    doomed.push(b.clone());
                }
                total = total.saturating_sub(b.size_bytes());
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        {
            let mut bl = self.inner.blocks.write();
            bl.retain(|b| !doomed.iter().any(|d| Arc::ptr_eq(d, b)));
        }
        for d in &doomed {
            tracing::info!(block = %d.dir().display(), "deleting block past retention");
            if let Err(e) = fs::remove_dir_all(d.dir()) {
                tracing::warn!(block = %d.dir().display(), error = %e, "removing a block failed");
            }
            self.inner
                .metrics
                .blocks_deleted_retention
                .fetch_add(1, Ordering::Relaxed);
        }
        sync_dir(&blocks_dir(&self.inner.dir));
        Ok(())
    }

    /// Deletes samples of matching series in [mint, maxt]: tombstones in blocks (removed from disk at
    /// the next compaction) and rewritten chunks in the head, recorded in the WAL.
    pub fn delete(&self, mint: i64, maxt: i64, ms: &[Matcher]) -> Result<u64> {
        let mut n = 0;
        for b in self.blocks() {
            if b.meta().max_time > mint && b.meta().min_time <= maxt {
                n += b.delete(mint, maxt, ms)?;
            }
        }
        let mut g = self.inner.wal.lock();
        let ids = self.inner.head.delete(mint, maxt, ms);
        n += ids.len() as u64;
        if let Some(w) = g.as_mut() {
            let ts: Vec<Tombstone> = ids
                .iter()
                .map(|r| Tombstone { r: *r, mint, maxt })
                .collect();
            if !ts.is_empty() {
                w.log_tombstones(&ts)?;
                w.flush()?;
            }
        }
        Ok(n)
    }

    /// Flushes and closes the WAL; the database refuses writes afterwards.
    pub fn close(&self) -> Result<()> {
        let mut g = self.inner.wal.lock();
        if let Some(w) = g.take() {
            w.close()?;
        }
        Ok(())
    }

    /// Starts a thread running `maintain` every `every` until the returned guard is dropped.
    pub fn start_maintenance(&self, every: Duration) -> MaintenanceGuard {
        let db = self.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("tsdb-maintenance".into())
            .spawn(move || loop {
                match rx.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        // A panic must not end maintenance for good: without cuts the head and
                        // the WAL grow until memory or the disk runs out.
                        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            db.maintain()
                        }));
                        match run {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "storage maintenance failed; will retry")
                            }
                            Err(_) => tracing::error!("storage maintenance panicked; will retry"),
                        }
                    }
                    _ => return,
                }
            })
            .ok();
        MaintenanceGuard {
            tx: Some(tx),
            handle,
        }
    }
}

pub struct MaintenanceGuard {
    tx: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for MaintenanceGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Opens a block just written; if it cannot be opened it is removed again, so a failed cut or
/// compaction leaves no directory that a restart would load next to the data it duplicates.
fn open_new_block(bdir: &Path, ulid: &str) -> Result<Arc<Block>> {
    let dir = bdir.join(ulid);
    match Block::open(&dir) {
        Ok(b) => Ok(Arc::new(b)),
        Err(e) => {
            if let Err(re) = fs::remove_dir_all(&dir) {
                tracing::error!(block = %dir.display(), error = %re, "removing a block that could not be opened failed");
            }
            sync_dir(bdir);
            Err(e)
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Replays the WAL into the head; also returns how many samples named a series never defined.
fn replay_into(head: &Head, wal_dir: &Path, read_only: bool) -> Result<(wal::ReplayStats, u64)> {
    let mut slots: HashMap<u64, u32> = HashMap::new();
    let mut unknown = 0u64;
    let f = |rec: Record| match rec {
        Record::Series(v) => {
            for s in v {
                let slot = head.replay_series(s.r, &s.labels);
                slots.insert(s.r, slot);
            }
        }
        Record::Samples(v) => {
            for s in v {
                match slots.get(&s.r) {
                    Some(slot) => {
                        let _ = head.apply(*slot, s.t, s.v, true);
                    }
                    None => unknown += 1,
                }
            }
        }
        Record::Tombstones(v) => {
            for t in v {
                if let Some(slot) = slots.get(&t.r) {
                    head.delete_slot(*slot, t.mint, t.maxt);
                }
            }
        }
    };
    let stats = if read_only {
        wal::read_only_records(wal_dir, f)?
    } else {
        if !wal_dir.exists() {
            return Ok((wal::ReplayStats::default(), 0));
        }
        wal::replay(wal_dir, f)?
    };
    Ok((stats, unknown))
}

impl tocsin_storage::Deletable for Db {
    fn delete(&self, mint: i64, maxt: i64, matchers: &[Matcher]) -> tocsin_storage::Result<u64> {
        Db::delete(self, mint, maxt, matchers).map_err(tocsin_storage::Error::from)
    }
}

#[path = "db_append.rs"]
mod append;

#[path = "db_admin.rs"]
mod admin;
pub use admin::SNAPSHOTS_DIR;

#[path = "db_damage.rs"]
mod damage;
use damage::count_wal_damage;

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "db_fault_tests.rs"]
mod fault_tests;
