//! Reading the WAL back: the owning process's `replay`, which repairs damage by cutting the log
//! at the last good record, and `read_only_records`, which reads the same way but never touches a
//! file (for tools inspecting a directory a live server owns).

use std::fs::OpenOptions;
use std::path::Path;

use super::codec::decode_record;
use super::segment::{
    checkpoint_name, file_size, list_dir, read_segment, segment_name, sync_dir, Listing,
};
use super::{Record, ReplayStats};
use crate::error::{Error, Result};

/// Reads the latest checkpoint (if any) and then every segment after it, in order, calling `f`
/// per record.
///
/// A torn or corrupt record (bad length, checksum mismatch, undecodable payload) or a missing
/// segment ends replay there: the segment is truncated at the last good record, later segments are
/// removed, a warning says what was dropped, and `Ok` is returned with `corruption` set. Damage
/// inside the checkpoint cuts the checkpoint the same way but replay continues with the segments:
/// the checkpoint is a snapshot, not a prefix the segments depend on byte for byte, and dropping
/// every segment over one bad checkpoint byte would lose far more than it protects.
///
/// Also removes leftovers of an interrupted checkpoint (temporary directories, older checkpoints,
/// segments the latest checkpoint covers).
pub fn replay(dir: &Path, f: impl FnMut(Record)) -> Result<ReplayStats> {
    run(dir, true, f)
}

/// Reads like `replay` but never modifies, creates or removes anything: damage is reported in
/// `corruption` (for a live WAL, usually a record still being written) and reading stops there.
/// Temporary checkpoint directories and segments covered by the latest checkpoint are skipped.
/// If the owner deletes files mid-read (a checkpoint finishing), this fails with an I/O error and
/// can simply be retried.
pub fn read_only_records(dir: &Path, f: impl FnMut(Record)) -> Result<ReplayStats> {
    run(dir, false, f)
}

fn run(dir: &Path, repair: bool, mut f: impl FnMut(Record)) -> Result<ReplayStats> {
    let listing = list_dir(dir)?;
    let mut stats = ReplayStats::default();
    if repair {
        remove_stale(dir, &listing)?;
    }
    let ckpt = listing.checkpoints.last().copied();
    if let Some(c) = ckpt {
        stats.checkpoint = Some(c);
        let cdir = dir.join(checkpoint_name(c));
        let segs = list_dir(&cdir)?.segments;
        read_sequence(&cdir, &segs, repair, &mut stats, &mut f)?;
    }
    let segs: Vec<u64> = listing
        .segments
        .iter()
        .copied()
        .filter(|&n| ckpt.is_none_or(|c| n > c))
        .collect();
    read_sequence(dir, &segs, repair, &mut stats, &mut f)?;
    Ok(stats)
}

/// Removes what a crash in the middle of a checkpoint can leave behind: its temporary directory,
/// or, after the rename, the older checkpoints and the segments the new one covers.
pub(crate) fn remove_stale(dir: &Path, l: &Listing) -> Result<()> {
    let mut removed = false;
    for t in &l.temps {
        tracing::info!(path = %t.display(), "removing leftover temporary WAL checkpoint");
        std::fs::remove_dir_all(t).map_err(|e| Error::io(t, e))?;
        removed = true;
    }
    if let Some(&c) = l.checkpoints.last() {
        for &old in l.checkpoints.iter().filter(|&&n| n < c) {
            let p = dir.join(checkpoint_name(old));
            std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            removed = true;
        }
        for &n in l.segments.iter().filter(|&&n| n <= c) {
            let p = dir.join(segment_name(n));
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads the numbered segments `segs` of `dir` in order; on damage cuts (if `repair`) and stops.
fn read_sequence(
    dir: &Path,
    segs: &[u64],
    repair: bool,
    stats: &mut ReplayStats,
    f: &mut impl FnMut(Record),
) -> Result<()> {
    for (i, &n) in segs.iter().enumerate() {
        if i > 0 && n != segs[i - 1] + 1 {
            let reason = format!("segment {} is missing", segment_name(segs[i - 1] + 1));
            return cut(dir, None, &segs[i..], &reason, repair, stats);
        }
        let path = dir.join(segment_name(n));
        let read = read_segment(&path, &mut |typ, payload| {
            let rec = decode_record(typ, payload)?;
            stats.records += 1;
            match &rec {
                Record::Series(s) => stats.series += s.len() as u64,
                Record::Samples(s) => stats.samples += s.len() as u64,
                Record::Tombstones(s) => stats.tombstones += s.len() as u64,
            }
            f(rec);
            Ok(())
        })?;
        stats.segments += 1;
        stats.bytes += read.good;
        if let Some(reason) = read.damage {
            let damaged = Damaged {
                path: &path,
                good: read.good,
                size: read.size,
            };
            return cut(dir, Some(damaged), &segs[i + 1..], &reason, repair, stats);
        }
    }
    Ok(())
}

struct Damaged<'a> {
    path: &'a Path,
    good: u64,
    size: u64,
}

/// Drops everything from the damage on: the tail of the damaged segment and all later segments.
fn cut(
    dir: &Path,
    damaged: Option<Damaged<'_>>,
    later: &[u64],
    reason: &str,
    repair: bool,
    stats: &mut ReplayStats,
) -> Result<()> {
    let mut later_bytes = 0;
    for &n in later {
        later_bytes += file_size(&dir.join(segment_name(n)))?;
    }
    let tail = damaged.as_ref().map_or(0, |d| d.size - d.good);
    let where_ = match &damaged {
        Some(d) => format!("{} at offset {}: {reason}", d.path.display(), d.good),
        None => format!("{}: {reason}", dir.display()),
    };
    let later_names: Vec<String> = later.iter().map(|&n| segment_name(n)).collect();
    let what = if repair { "dropped" } else { "not read" };
    let msg = format!(
        "{where_}; {what}: {tail} bytes of that segment and {} later segment(s) {later_names:?} ({later_bytes} bytes)",
        later.len()
    );
    if repair {
        if let Some(d) = &damaged {
            let file = OpenOptions::new()
                .write(true)
                .open(d.path)
                .map_err(|e| Error::io(d.path, e))?;
            file.set_len(d.good).map_err(|e| Error::io(d.path, e))?;
            file.sync_all().map_err(|e| Error::io(d.path, e))?;
        }
        for &n in later {
            let p = dir.join(segment_name(n));
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
        if !later.is_empty() {
            sync_dir(dir)?;
        }
        tracing::warn!(
            segment = damaged.as_ref().map(|d| d.path.display().to_string()),
            offset = damaged.as_ref().map(|d| d.good),
            dropped_bytes = tail + later_bytes,
            removed_segments = ?later_names,
            "WAL damaged, cut at the last good record: {msg}"
        );
    }
    stats.dropped_bytes += tail + later_bytes;
    stats.corruption = Some(match stats.corruption.take() {
        Some(prev) => format!("{prev}; {msg}"),
        None => msg,
    });
    Ok(())
}
