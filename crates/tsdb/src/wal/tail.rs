//! Read-only tailing of a live WAL for remote write: follows segments as the owner appends and
//! rotates them, from a position (segment, byte offset) that a reader can persist and resume from.
//!
//! The owner never rewrites a byte once written, except for checkpointing, which deletes whole
//! segments. So a tailer reads records up to the last complete one, waits at an incomplete record
//! while its segment is the newest (the writer may be mid-write), and treats one as damage only
//! once a later segment exists (rotation flushes and syncs a segment before creating the next).
//! A segment deleted under the tailer is skipped to the next one that exists, and reported.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::codec::decode_record;
use super::segment::{
    checkpoint_name, list_dir, read_segment, record_crc, segment_name, FORMAT_VERSION,
    MAX_RECORD_PAYLOAD, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
use super::{Record, RefSeries};
use crate::error::{Error, Result};

/// A place in the WAL: a segment and a byte offset in it (0 = before its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct WalPosition {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for WalPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", segment_name(self.segment), self.offset)
    }
}

/// Something the tailer could not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailSkip {
    /// Where the skipped range starts and where reading resumed.
    pub from: WalPosition,
    pub to: WalPosition,
    pub reason: String,
}

/// What one `poll` produced.
#[derive(Debug, Default)]
pub struct TailBatch {
    /// Records in WAL order, each with the position just after it.
    pub records: Vec<(Record, WalPosition)>,
    pub skipped: Vec<TailSkip>,
    /// True when the reader reached the end of what the owner has written so far.
    pub caught_up: bool,
}

/// Follows a WAL directory from a position. Not `Sync`: one reader per remote.
#[derive(Debug)]
pub struct WalTailer {
    dir: PathBuf,
    pos: WalPosition,
}

/// The WAL's end at this moment: the newest segment and its size (0 for an empty directory).
/// A new reader started here sends only what is written from now on.
pub fn end_position(dir: &Path) -> Result<WalPosition> {
    let l = list_dir(dir)?;
    match l.segments.last() {
        Some(&n) => {
            let size = match std::fs::metadata(dir.join(segment_name(n))) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io(dir, e)),
            };
            Ok(WalPosition {
                segment: n,
                offset: size,
            })
        }
        None => Ok(WalPosition {
            segment: l.checkpoints.last().map_or(0, |c| c + 1),
            offset: 0,
        }),
    }
}

/// Series declared before `until`: those of the newest checkpoint and of every segment (and part
/// of a segment) before it, in order. A reader resuming at `until` needs them to name the samples
/// it reads. Returns the record boundary where reading stopped: `until` itself when it is one (a
/// saved position), else the end of the first record reaching past it, or the end of what is
/// written. Damage in a closed segment skips the rest of it.
pub fn series_before(
    dir: &Path,
    until: WalPosition,
    mut f: impl FnMut(Vec<RefSeries>),
) -> Result<WalPosition> {
    let l = list_dir(dir)?;
    let ckpt = l.checkpoints.last().copied();
    if let Some(c) = ckpt {
        checkpoint_series(dir, c, &mut f)?;
    }
    let first = l
        .segments
        .iter()
        .copied()
        .find(|&n| ckpt.is_none_or(|c| n > c));
    let start = match first {
        Some(n) if n <= until.segment => WalPosition {
            segment: n,
            offset: 0,
        },
        // Everything before `until` is gone or was never written.
        _ => return Ok(until),
    };
    let mut t = WalTailer::new(dir, start);
    loop {
        let b = t.read_segment_once(until, usize::MAX)?;
        for (rec, _) in b.records {
            if let Record::Series(s) = rec {
                f(s);
            }
        }
        if b.caught_up || t.pos >= until {
            return Ok(t.pos);
        }
    }
}

/// The newest checkpoint's number, if there is one.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<u64>> {
    Ok(list_dir(dir)?.checkpoints.last().copied())
}

/// The series records of checkpoint `c`: the series the head still held when it was written. A
/// checkpoint replaced meanwhile (a newer one finished) yields what was read before it vanished.
pub fn checkpoint_series(dir: &Path, c: u64, f: &mut dyn FnMut(Vec<RefSeries>)) -> Result<()> {
    let cdir = dir.join(checkpoint_name(c));
    for n in list_dir(&cdir)?.segments {
        let res = read_segment(&cdir.join(segment_name(n)), &mut |typ, payload| {
            if let Ok(Record::Series(s)) = decode_record(typ, payload) {
                f(s);
            }
            Ok(())
        });
        match res {
            Ok(_) => {}
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl WalTailer {
    pub fn new(dir: &Path, pos: WalPosition) -> Self {
        Self {
            dir: dir.to_path_buf(),
            pos,
        }
    }

    /// Position after the last record returned so far.
    pub fn position(&self) -> WalPosition {
        self.pos
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads up to about `max_records` records from the current position on, moving to later
    /// segments as they appear; stops early at the end of what is written.
    pub fn poll(&mut self, max_records: usize) -> Result<TailBatch> {
        let mut out = TailBatch::default();
        while out.records.len() < max_records {
            let b = self.read_segment_once(
                WalPosition {
                    segment: u64::MAX,
                    offset: u64::MAX,
                },
                max_records - out.records.len(),
            )?;
            out.records.extend(b.records);
            out.skipped.extend(b.skipped);
            if b.caught_up {
                out.caught_up = true;
                break;
            }
        }
        Ok(out)
    }

    /// One step: reads records of the current segment from the current offset (not past
    /// `limit`), or moves to the next segment when this one is finished or gone.
    /// `limit`: no record starting at or after it is read.
    fn read_segment_once(&mut self, limit: WalPosition, max_records: usize) -> Result<TailBatch> {
        let mut out = TailBatch::default();
        // Listed before reading: a later segment seen now proves the current one was complete
        // (synced) before the read started.
        let l = list_dir(&self.dir)?;
        let next = l.segments.iter().copied().find(|&n| n > self.pos.segment);
        let path = self.dir.join(segment_name(self.pos.segment));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match next {
                    Some(n) => {
                        let to = WalPosition {
                            segment: n,
                            offset: 0,
                        };
                        // A gap nothing covers is a segment that never existed (a replay cut);
                        // one a checkpoint covers, or one we were part-way through, was removed
                        // before we read it: a loss.
                        let covered = l.checkpoints.last().is_some_and(|&c| c >= self.pos.segment);
                        if covered || self.pos.offset > 0 {
                            out.skipped.push(TailSkip {
                                from: self.pos,
                                to,
                                reason: format!(
                                    "segment {} was removed (checkpointed) before it was read to its end",
                                    segment_name(self.pos.segment)
                                ),
                            });
                        }
                        self.pos = to;
                    }
                    None => out.caught_up = true,
                }
                return Ok(out);
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let size = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let end = size;
        let limit = if limit.segment == self.pos.segment {
            limit.offset
        } else if limit.segment < self.pos.segment {
            0
        } else {
            u64::MAX
        };
        if self.pos.offset >= limit && self.pos.offset > 0 {
            out.caught_up = true;
            return Ok(out);
        }
        let mut r = BufReader::with_capacity(256 << 10, file);
        let mut at = self.pos.offset;
        let damage = |at: u64, reason: String, out: &mut TailBatch, pos: &mut WalPosition| {
            if let Some(n) = next {
                let to = WalPosition {
                    segment: n,
                    offset: 0,
                };
                out.skipped.push(TailSkip {
                    from: WalPosition {
                        segment: pos.segment,
                        offset: at,
                    },
                    to,
                    reason,
                });
                *pos = to;
            } else {
                out.caught_up = true;
            }
        };
        if at < SEGMENT_HEADER_LEN {
            if limit == 0 {
                out.caught_up = true;
                return Ok(out);
            }
            if end < SEGMENT_HEADER_LEN {
                damage(0, "torn segment header".into(), &mut out, &mut self.pos);
                return Ok(out);
            }
            let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
            r.read_exact(&mut head).map_err(|e| Error::io(&path, e))?;
            if head[..4] != SEGMENT_MAGIC || head[4] != FORMAT_VERSION {
                damage(
                    0,
                    format!("bad segment header {head:02x?}"),
                    &mut out,
                    &mut self.pos,
                );
                return Ok(out);
            }
            at = SEGMENT_HEADER_LEN;
            self.pos.offset = at;
        } else {
            r.seek(SeekFrom::Start(at))
                .map_err(|e| Error::io(&path, e))?;
        }
        let mut rh = [0u8; RECORD_HEADER_LEN];
        let mut payload = Vec::new();
        while out.records.len() < max_records {
            if at >= end || at >= limit {
                break;
            }
            let left = end - at;
            if left < RECORD_HEADER_LEN as u64 {
                damage(at, "torn record header".into(), &mut out, &mut self.pos);
                return Ok(out);
            }
            if let Err(e) = r.read_exact(&mut rh) {
                if e.kind() == ErrorKind::UnexpectedEof {
                    damage(at, "file shrank".into(), &mut out, &mut self.pos);
                    return Ok(out);
                }
                return Err(Error::io(&path, e));
            }
            let typ = rh[0];
            let len = u32::from_le_bytes([rh[1], rh[2], rh[3], rh[4]]);
            let crc = u32::from_le_bytes([rh[5], rh[6], rh[7], rh[8]]);
            if len > MAX_RECORD_PAYLOAD {
                damage(
                    at,
                    format!("record length {len} too large"),
                    &mut out,
                    &mut self.pos,
                );
                return Ok(out);
            }
            if u64::from(len) > left - RECORD_HEADER_LEN as u64 {
                damage(
                    at,
                    format!("torn record of length {len}"),
                    &mut out,
                    &mut self.pos,
                );
                return Ok(out);
            }
            payload.resize(len as usize, 0);
            if let Err(e) = r.read_exact(&mut payload) {
                if e.kind() == ErrorKind::UnexpectedEof {
                    damage(at, "file shrank".into(), &mut out, &mut self.pos);
                    return Ok(out);
                }
                return Err(Error::io(&path, e));
            }
            if record_crc(typ, len, &payload) != crc {
                damage(
                    at,
                    format!("checksum mismatch in record of type {typ}"),
                    &mut out,
                    &mut self.pos,
                );
                return Ok(out);
            }
            let rec = match decode_record(typ, &payload) {
                Ok(rec) => rec,
                Err(reason) => {
                    damage(at, reason, &mut out, &mut self.pos);
                    return Ok(out);
                }
            };
            at += RECORD_HEADER_LEN as u64 + u64::from(len);
            self.pos.offset = at;
            out.records.push((rec, self.pos));
        }
        if out.records.len() >= max_records || at >= limit {
            if at >= limit {
                out.caught_up = true;
            }
            return Ok(out);
        }
        // At the end of what was written: move on if the segment is closed.
        match next {
            Some(n) if at >= size => {
                self.pos = WalPosition {
                    segment: n,
                    offset: 0,
                };
            }
            _ => out.caught_up = true,
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::wal::{RefSample, Wal, WalOptions};
    use tocsin_model::Labels;

    fn series(r: u64) -> RefSeries {
        RefSeries {
            r,
            labels: Labels::from_pairs(&[("__name__", "m"), ("i", &r.to_string())]),
        }
    }

    fn samples(b: &TailBatch) -> Vec<(u64, i64)> {
        b.records
            .iter()
            .flat_map(|(r, _)| match r {
                Record::Samples(s) => s.iter().map(|x| (x.r, x.t)).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn follows_appends_and_rotation_and_resumes_from_a_saved_position() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Wal::open(d.path(), WalOptions::default()).unwrap();
        let start = end_position(d.path()).unwrap();
        let mut t = WalTailer::new(d.path(), start);
        assert!(t.poll(100).unwrap().caught_up);
        w.log_series(&[series(1)]).unwrap();
        w.log_samples(&[RefSample {
            r: 1,
            t: 10,
            v: 1.0,
        }])
        .unwrap();
        // Not flushed yet: nothing to see.
        assert!(t.poll(100).unwrap().records.is_empty());
        w.flush().unwrap();
        let b = t.poll(100).unwrap();
        assert_eq!(b.records.len(), 2);
        assert_eq!(samples(&b), vec![(1, 10)]);
        assert!(b.caught_up);
        let saved = t.position();
        w.cut_segment().unwrap();
        w.log_samples(&[RefSample {
            r: 1,
            t: 20,
            v: 2.0,
        }])
        .unwrap();
        w.flush().unwrap();
        let b = t.poll(100).unwrap();
        assert_eq!(samples(&b), vec![(1, 20)]);
        assert!(b.skipped.is_empty());
        assert_eq!(t.position().segment, saved.segment + 1);
        // A new reader at the saved position sees the same records again, and the series
        // declared before it.
        let mut names = Vec::new();
        let at = series_before(d.path(), saved, |s| {
            names.extend(s.into_iter().map(|x| x.r))
        })
        .unwrap();
        assert_eq!(at, saved);
        assert_eq!(names, vec![1]);
        let mut t2 = WalTailer::new(d.path(), saved);
        assert_eq!(samples(&t2.poll(100).unwrap()), vec![(1, 20)]);
    }

    #[test]
    fn a_record_being_written_is_waited_for_not_skipped() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Wal::open(d.path(), WalOptions::default()).unwrap();
        w.log_series(&[series(1)]).unwrap();
        w.flush().unwrap();
        let seg = d.path().join(segment_name(w.current_segment()));
        let full = std::fs::read(&seg).unwrap();
        // Simulate a partial write of a second record: a header promising more than is there.
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        use std::io::Write;
        f.write_all(&[2, 100, 0, 0, 0, 0, 0, 0, 0, 1, 2]).unwrap();
        let mut t = WalTailer::new(d.path(), WalPosition::default());
        let b = t.poll(100).unwrap();
        assert_eq!(b.records.len(), 1);
        assert!(b.caught_up && b.skipped.is_empty());
        assert_eq!(t.position().offset, full.len() as u64);
        // Once a later segment exists, the torn record is damage and is skipped.
        drop(w);
        let _w = Wal::open(d.path(), WalOptions::default()).unwrap();
        let b = t.poll(100).unwrap();
        assert_eq!(b.skipped.len(), 1, "{b:?}");
        assert_eq!(t.position().offset, 0);
    }

    #[test]
    fn a_checkpointed_segment_is_skipped_and_reported() {
        let d = tempfile::tempdir().unwrap();
        let mut w = Wal::open(d.path(), WalOptions::default()).unwrap();
        w.log_series(&[series(1), series(2)]).unwrap();
        w.log_samples(&[RefSample {
            r: 1,
            t: 10,
            v: 1.0,
        }])
        .unwrap();
        w.flush().unwrap();
        let mut t = WalTailer::new(d.path(), WalPosition::default());
        t.poll(1).unwrap();
        let cur = w.cut_segment().unwrap();
        w.log_samples(&[RefSample {
            r: 2,
            t: 30,
            v: 1.0,
        }])
        .unwrap();
        w.flush().unwrap();
        w.checkpoint(cur - 1, |r| r == 2, 0).unwrap();
        let b = t.poll(100).unwrap();
        assert_eq!(b.skipped.len(), 1, "{b:?}");
        assert_eq!(samples(&b), vec![(2, 30)]);
        // Series of the checkpoint are still found by a resuming reader.
        let mut names = Vec::new();
        series_before(d.path(), t.position(), |s| {
            names.extend(s.into_iter().map(|x| x.r))
        })
        .unwrap();
        assert_eq!(names, vec![2]);
    }
}
