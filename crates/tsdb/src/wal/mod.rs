//! Write-ahead log of the head: record types, the appending `Wal` with segment rotation, and
//! re-exports of replay and checkpointing. `docs/wal-format.md` describes the bytes on disk.
//!
//! Layout of a WAL directory: numbered segment files (`00000000`, `00000001`, ...), at most one
//! live checkpoint directory `checkpoint.NNNNNNNN` holding the compacted content of every segment
//! up to `NNNNNNNN`, and possibly a `checkpoint.NNNNNNNN.tmp` left by a crash mid-checkpoint.

mod checkpoint;
mod codec;
mod replay;
mod salvage;
mod segment;
mod tail;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tocsin_model::Labels;

use crate::error::{Error, Result};
use segment::{
    checkpoint_name, list_dir, segment_name, sync_dir, SegmentWriter, SEGMENT_HEADER_LEN,
};

pub use checkpoint::{CheckpointStats, PendingCheckpoint};
pub use replay::{read_only_records, replay};
pub use tail::{
    checkpoint_series, end_position, latest_checkpoint, series_before, TailBatch, TailSkip,
    WalPosition, WalTailer,
};

/// A series' labels, declared before any sample refers to `r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSeries {
    pub r: u64,
    pub labels: Labels,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub r: u64,
    pub t: i64,
    pub v: f64,
}

/// Deletion of the samples of series `r` in `[mint, maxt]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    pub r: u64,
    pub mint: i64,
    pub maxt: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<RefSeries>),
    Samples(Vec<RefSample>),
    Tombstones(Vec<Tombstone>),
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment is closed before a record would take it past this size (a single larger record
    /// gets a segment of its own).
    pub segment_size: u64,
}

pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// What `replay` / `read_only_records` read and, if the log was damaged, what was cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segment files read, those inside the checkpoint included.
    pub segments: usize,
    pub records: u64,
    pub series: u64,
    pub samples: u64,
    pub tombstones: u64,
    /// Bytes of valid data read (headers and framing included).
    pub bytes: u64,
    /// Bytes cut off (`replay`) or left unread (`read_only_records`) because of damage.
    pub dropped_bytes: u64,
    /// Human-readable account of the damage, `None` when the log was clean.
    pub corruption: Option<String>,
    /// Number of the checkpoint replay started from, if any.
    pub checkpoint: Option<u64>,
    /// Every damaged place found, in reading order (a torn tail of the last segment included).
    pub damage: Vec<WalDamage>,
}

/// One damaged place in the WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalDamage {
    /// The segment file (inside `checkpoint.N/` when `in_checkpoint`).
    pub path: PathBuf,
    pub in_checkpoint: bool,
    /// Byte range damaged and skipped or cut off.
    pub start: u64,
    pub end: u64,
    pub reason: String,
    /// Damage at the very end of the newest segment: what a crash mid-write leaves, or a record a
    /// live server is still writing; the log is intact up to it.
    pub torn_tail: bool,
}

// Batches are split so records stay a few MiB at most: the reader then never needs large buffers,
// and a segment's size limit is honoured closely.
const SERIES_PER_RECORD: usize = 8 * 1024;
const SAMPLES_PER_RECORD: usize = 128 * 1024;
const TOMBSTONES_PER_RECORD: usize = 64 * 1024;

/// The appending side of the WAL. Call `replay` first: `open` does not validate existing segments,
/// and replay of a damaged older segment would discard the segments written after it.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    seg: SegmentWriter,
    current: u64,
    /// Sizes of the segments before the current one, by number.
    closed: BTreeMap<u64, u64>,
    /// Number and total size of the live checkpoint.
    checkpoint: Option<(u64, u64)>,
    scratch: Vec<u8>,
}

impl Wal {
    /// Opens for appending: always starts a new segment numbered after every existing segment and
    /// checkpoint. Creates `dir`, and removes leftovers of an interrupted checkpoint.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal> {
        if opts.segment_size <= SEGMENT_HEADER_LEN {
            return Err(Error::InvalidOption(format!(
                "WAL segment size {} must exceed the {SEGMENT_HEADER_LEN}-byte segment header",
                opts.segment_size
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let listing = list_dir(dir)?;
        let ckpt = listing.checkpoints.last().copied();
        replay::remove_stale(dir, &listing)?;
        let mut closed = BTreeMap::new();
        for &n in listing
            .segments
            .iter()
            .filter(|&&n| ckpt.is_none_or(|c| n > c))
        {
            closed.insert(n, segment::file_size(&dir.join(segment_name(n)))?);
        }
        let checkpoint = match ckpt {
            Some(c) => Some((
                c,
                segment::dir_segments_size(&dir.join(checkpoint_name(c)))?,
            )),
            None => None,
        };
        let last = closed
            .keys()
            .next_back()
            .copied()
            .into_iter()
            .chain(ckpt)
            .max();
        let current = last.map_or(0, |n| n + 1);
        let seg = SegmentWriter::create(dir.join(segment_name(current)))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            opts,
            seg,
            current,
            closed,
            checkpoint,
            scratch: Vec::new(),
        })
    }

    pub fn log_series(&mut self, s: &[RefSeries]) -> Result<()> {
        for chunk in s.chunks(SERIES_PER_RECORD) {
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            codec::encode_series(&mut buf, chunk);
            let res = self.append(codec::TYPE_SERIES, &buf);
            self.scratch = buf;
            res?;
        }
        Ok(())
    }

    pub fn log_samples(&mut self, s: &[RefSample]) -> Result<()> {
        for chunk in s.chunks(SAMPLES_PER_RECORD) {
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            codec::encode_samples(&mut buf, chunk);
            let res = self.append(codec::TYPE_SAMPLES, &buf);
            self.scratch = buf;
            res?;
        }
        Ok(())
    }

    pub fn log_tombstones(&mut self, s: &[Tombstone]) -> Result<()> {
        for chunk in s.chunks(TOMBSTONES_PER_RECORD) {
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            codec::encode_tombstones(&mut buf, chunk);
            let res = self.append(codec::TYPE_TOMBSTONES, &buf);
            self.scratch = buf;
            res?;
        }
        Ok(())
    }

    fn append(&mut self, typ: u8, payload: &[u8]) -> Result<()> {
        let rec_len = (segment::RECORD_HEADER_LEN + payload.len()) as u64;
        if self.seg.has_records() && self.seg.size() + rec_len > self.opts.segment_size {
            self.rotate()?;
        }
        self.seg.append(typ, payload)
    }

    /// Hands buffered bytes to the OS (write(2)); afterwards the records survive the process
    /// being killed, though not a machine crash (see `sync`).
    pub fn flush(&mut self) -> Result<()> {
        self.seg.flush()
    }

    /// Flushes and fsyncs the current segment.
    pub fn sync(&mut self) -> Result<()> {
        self.seg.sync()
    }

    fn rotate(&mut self) -> Result<()> {
        self.seg.sync()?;
        let next = self.current + 1;
        let new = SegmentWriter::create(self.dir.join(segment_name(next)))?;
        let old = std::mem::replace(&mut self.seg, new);
        self.closed.insert(self.current, old.size());
        self.current = next;
        Ok(())
    }

    /// Closes the current segment (fsynced) and starts the next; returns its number.
    pub fn cut_segment(&mut self) -> Result<u64> {
        self.rotate()?;
        Ok(self.current)
    }

    pub fn current_segment(&self) -> u64 {
        self.current
    }

    /// Lowest segment number still on disk (the checkpoint not counted).
    pub fn first_segment(&self) -> u64 {
        self.closed.keys().next().copied().unwrap_or(self.current)
    }

    /// Bytes of all segments (buffered bytes of the current one included) and the checkpoint.
    pub fn size_bytes(&self) -> u64 {
        self.closed.values().sum::<u64>() + self.seg.size() + self.checkpoint.map_or(0, |c| c.1)
    }

    pub fn num_segments(&self) -> usize {
        self.closed.len() + 1
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes and fsyncs.
    pub fn close(mut self) -> Result<()> {
        self.seg.sync()
    }

    fn sync_dir(&self) -> Result<()> {
        sync_dir(&self.dir)
    }
}

impl Drop for Wal {
    /// Best effort so records logged without a final `flush` are not silently lost; `close`
    /// is the way to learn about errors.
    fn drop(&mut self) {
        if let Err(e) = self.seg.flush() {
            tracing::warn!(segment = %self.seg.path().display(), error = %e, "flushing WAL on drop failed");
        }
    }
}
