//! Checkpointing: compacting the oldest segments (and the previous checkpoint) into a new
//! `checkpoint.NNNNNNNN` directory that keeps only what the head still needs, then deleting what it
//! replaces. Crash safety comes from building the checkpoint under a `.tmp` name that replay
//! ignores and removes, and making it visible with a single rename after everything is fsynced.

use std::path::{Path, PathBuf};

use super::codec::{self, decode_record};
use super::segment::{
    checkpoint_name, checkpoint_tmp_name, dir_segments_size, read_segment, segment_name, sync_dir,
    SegmentWriter, RECORD_HEADER_LEN,
};
use super::{
    Record, RefSample, RefSeries, Tombstone, Wal, SAMPLES_PER_RECORD, SERIES_PER_RECORD,
    TOMBSTONES_PER_RECORD,
};
use crate::error::{Error, Result};

/// What a checkpoint kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint now covering the log up to and including this segment.
    pub upto: u64,
    pub series_kept: u64,
    pub series_dropped: u64,
    pub samples_kept: u64,
    pub samples_dropped: u64,
    pub tombstones_kept: u64,
    pub tombstones_dropped: u64,
    /// Segment files deleted because the checkpoint covers them.
    pub segments_removed: usize,
    /// Size of the new checkpoint on disk.
    pub bytes: u64,
}

/// A checkpoint being built while the WAL keeps accepting records: it reads only segments that
/// are closed (they never change again) and the previous checkpoint, so `write` needs no access
/// to the `Wal`; `Wal::finish_checkpoint` then publishes it. Dropped unfinished, it removes its
/// temporary directory.
pub struct PendingCheckpoint {
    upto: u64,
    tmp: PathBuf,
    segment_size: u64,
    sources: Vec<PathBuf>,
    covered: Vec<u64>,
    /// The checkpoint this one replaces.
    prev: Option<u64>,
    stats: CheckpointStats,
    written: bool,
    done: bool,
}

impl PendingCheckpoint {
    /// Builds the checkpoint's content (see `Wal::checkpoint` for what is kept).
    pub fn write(&mut self, keep_series: &dyn Fn(u64) -> bool, mint: i64) -> Result<()> {
        let written = write_checkpoint(
            &self.tmp,
            self.segment_size,
            &self.sources,
            keep_series,
            mint,
            &mut self.stats,
        );
        written?;
        sync_dir(&self.tmp)?;
        self.written = true;
        Ok(())
    }
}

impl Drop for PendingCheckpoint {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: replay would remove it anyway.
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

impl Wal {
    /// Compacts segments `<= upto` (and the previous checkpoint) into `checkpoint.<upto>`, keeping
    /// series records whose ref satisfies `keep_series`, samples of kept series with `t >= mint`
    /// and tombstones of kept series, in their original order. Then deletes the covered segments
    /// and older checkpoints.
    ///
    /// `upto` may be the current segment, which is then cut first. A checkpoint that already covers
    /// `upto` makes this a no-op. Damage in a segment being compacted is an error and leaves the
    /// log untouched: it was written after replay, so nothing may be silently dropped.
    pub fn checkpoint(
        &mut self,
        upto: u64,
        keep_series: impl Fn(u64) -> bool,
        mint: i64,
    ) -> Result<CheckpointStats> {
        match self.begin_checkpoint(upto)? {
            None => Ok(CheckpointStats {
                upto: self.checkpoint.map_or(upto, |c| c.0),
                bytes: self.checkpoint.map_or(0, |c| c.1),
                ..Default::default()
            }),
            Some(mut p) => {
                p.write(&keep_series, mint)?;
                self.finish_checkpoint(p)
            }
        }
    }

    /// First step of `checkpoint`, for callers that build it without holding the WAL (e.g. behind
    /// a lock that appenders need): closes `upto` if it is current and lists the files to compact.
    /// None when a checkpoint already covers `upto`.
    pub fn begin_checkpoint(&mut self, upto: u64) -> Result<Option<PendingCheckpoint>> {
        if upto > self.current {
            return Err(Error::InvalidOption(format!(
                "cannot checkpoint up to segment {upto}: the current segment is {}",
                self.current
            )));
        }
        if let Some((c, _)) = self.checkpoint {
            if upto <= c {
                return Ok(None);
            }
        }
        if upto == self.current {
            self.rotate()?;
        }
        let tmp = self.dir.join(checkpoint_tmp_name(upto));
        match std::fs::remove_dir_all(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&tmp, e)),
        }
        std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;

        let mut sources: Vec<PathBuf> = Vec::new();
        if let Some((c, _)) = self.checkpoint {
            let cdir = self.dir.join(checkpoint_name(c));
            for n in super::segment::list_dir(&cdir)?.segments {
                sources.push(cdir.join(segment_name(n)));
            }
        }
        let covered: Vec<u64> = self.closed.range(..=upto).map(|(&n, _)| n).collect();
        sources.extend(covered.iter().map(|&n| self.dir.join(segment_name(n))));
        Ok(Some(PendingCheckpoint {
            upto,
            tmp,
            segment_size: self.opts.segment_size,
            sources,
            covered,
            prev: self.checkpoint.map(|c| c.0),
            stats: CheckpointStats {
                upto,
                ..Default::default()
            },
            written: false,
            done: false,
        }))
    }

    /// Publishes a checkpoint built by `PendingCheckpoint::write` and deletes what it replaces.
    pub fn finish_checkpoint(&mut self, mut p: PendingCheckpoint) -> Result<CheckpointStats> {
        if !p.written || self.checkpoint.map(|c| c.0) != p.prev {
            return Err(Error::InvalidOption(format!(
                "checkpoint {} was not written or the log changed under it",
                p.upto
            )));
        }
        let fin = self.dir.join(checkpoint_name(p.upto));
        std::fs::rename(&p.tmp, &fin).map_err(|e| Error::io(&fin, e))?;
        p.done = true;

        // From the rename on, the new checkpoint is what the log starts with, so the bookkeeping
        // follows it whatever fails next: a file that could not be removed is garbage the next
        // open removes (replay ignores segments and checkpoints older than the newest one).
        let mut failed: Option<Error> = self.sync_dir().err();
        let mut stats = std::mem::take(&mut p.stats);
        for &n in &p.covered {
            let path = self.dir.join(segment_name(n));
            match std::fs::remove_file(&path) {
                Ok(()) => stats.segments_removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    failed.get_or_insert(Error::io(&path, e));
                }
            }
            self.closed.remove(&n);
        }
        if let Some((c, _)) = self.checkpoint.take() {
            let path = self.dir.join(checkpoint_name(c));
            if let Err(e) = std::fs::remove_dir_all(&path) {
                failed.get_or_insert(Error::io(&path, e));
            }
        }
        if let Err(e) = self.sync_dir() {
            failed.get_or_insert(e);
        }
        stats.bytes = dir_segments_size(&fin).unwrap_or(0);
        self.checkpoint = Some((p.upto, stats.bytes));
        match failed {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}

fn write_checkpoint(
    tmp: &Path,
    segment_size: u64,
    sources: &[PathBuf],
    keep: &dyn Fn(u64) -> bool,
    mint: i64,
    stats: &mut CheckpointStats,
) -> Result<()> {
    let mut w = CheckpointWriter::new(tmp, segment_size)?;
    for src in sources {
        let mut failed: Option<Error> = None;
        let read = read_segment(src, &mut |typ, payload| {
            let rec = decode_record(typ, payload)?;
            let res = match rec {
                Record::Series(s) => {
                    let before = s.len() as u64;
                    let kept: Vec<RefSeries> = s.into_iter().filter(|x| keep(x.r)).collect();
                    stats.series_kept += kept.len() as u64;
                    stats.series_dropped += before - kept.len() as u64;
                    w.add_series(kept)
                }
                Record::Samples(s) => {
                    let before = s.len() as u64;
                    let kept: Vec<RefSample> =
                        s.into_iter().filter(|x| x.t >= mint && keep(x.r)).collect();
                    stats.samples_kept += kept.len() as u64;
                    stats.samples_dropped += before - kept.len() as u64;
                    w.add_samples(kept)
                }
                Record::Tombstones(s) => {
                    let before = s.len() as u64;
                    let kept: Vec<Tombstone> = s.into_iter().filter(|x| keep(x.r)).collect();
                    stats.tombstones_kept += kept.len() as u64;
                    stats.tombstones_dropped += before - kept.len() as u64;
                    w.add_tombstones(kept)
                }
            };
            res.map_err(|e| {
                let msg = e.to_string();
                failed = Some(e);
                msg
            })
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(reason) = read.damage {
            return Err(Error::corrupt(
                src,
                format!("at offset {}: {reason}; checkpoint aborted", read.good),
            ));
        }
    }
    w.finish()
}

/// Writes filtered records into checkpoint segments, merging consecutive records of one type into
/// full-sized batches while keeping the relative order of types (a tombstone must still follow the
/// samples it deletes, and a series record the samples that need it).
struct CheckpointWriter {
    dir: PathBuf,
    segment_size: u64,
    seg: SegmentWriter,
    next: u64,
    series: Vec<RefSeries>,
    samples: Vec<RefSample>,
    tombstones: Vec<Tombstone>,
    scratch: Vec<u8>,
}

impl CheckpointWriter {
    fn new(dir: &Path, segment_size: u64) -> Result<Self> {
        let seg = SegmentWriter::create(dir.join(segment_name(0)))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            segment_size,
            seg,
            next: 1,
            series: Vec::new(),
            samples: Vec::new(),
            tombstones: Vec::new(),
            scratch: Vec::new(),
        })
    }

    fn add_series(&mut self, s: Vec<RefSeries>) -> Result<()> {
        if s.is_empty() {
            return Ok(());
        }
        self.flush_samples()?;
        self.flush_tombstones()?;
        self.series.extend(s);
        if self.series.len() >= SERIES_PER_RECORD {
            self.flush_series()?;
        }
        Ok(())
    }

    fn add_samples(&mut self, s: Vec<RefSample>) -> Result<()> {
        if s.is_empty() {
            return Ok(());
        }
        self.flush_series()?;
        self.flush_tombstones()?;
        self.samples.extend(s);
        if self.samples.len() >= SAMPLES_PER_RECORD {
            self.flush_samples()?;
        }
        Ok(())
    }

    fn add_tombstones(&mut self, s: Vec<Tombstone>) -> Result<()> {
        if s.is_empty() {
            return Ok(());
        }
        self.flush_series()?;
        self.flush_samples()?;
        self.tombstones.extend(s);
        if self.tombstones.len() >= TOMBSTONES_PER_RECORD {
            self.flush_tombstones()?;
        }
        Ok(())
    }

    fn flush_series(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.series);
        for chunk in batch.chunks(SERIES_PER_RECORD) {
            self.scratch.clear();
            codec::encode_series(&mut self.scratch, chunk);
            self.write(codec::TYPE_SERIES)?;
        }
        Ok(())
    }

    fn flush_samples(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.samples);
        for chunk in batch.chunks(SAMPLES_PER_RECORD) {
            self.scratch.clear();
            codec::encode_samples(&mut self.scratch, chunk);
            self.write(codec::TYPE_SAMPLES)?;
        }
        Ok(())
    }

    fn flush_tombstones(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.tombstones);
        for chunk in batch.chunks(TOMBSTONES_PER_RECORD) {
            self.scratch.clear();
            codec::encode_tombstones(&mut self.scratch, chunk);
            self.write(codec::TYPE_TOMBSTONES)?;
        }
        Ok(())
    }

    fn write(&mut self, typ: u8) -> Result<()> {
        let rec_len = (RECORD_HEADER_LEN + self.scratch.len()) as u64;
        if self.seg.has_records() && self.seg.size() + rec_len > self.segment_size {
            self.seg.sync()?;
            self.seg = SegmentWriter::create(self.dir.join(segment_name(self.next)))?;
            self.next += 1;
        }
        self.seg.append(typ, &self.scratch)
    }

    fn finish(mut self) -> Result<()> {
        self.flush_series()?;
        self.flush_samples()?;
        self.flush_tombstones()?;
        self.seg.sync()
    }
}
