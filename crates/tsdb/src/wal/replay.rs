//! Reading the WAL back: the owning process's `replay`, which repairs damage by cutting the log
//! at the last good record, and `read_only_records`, which reads the same way but never touches a
//! file (for tools inspecting a directory a live server owns).

use std::fs::OpenOptions;
use std::path::Path;

use super::codec::decode_record;
use super::salvage;
use super::segment::{
    checkpoint_name, file_size, list_dir, read_segment, segment_name, sync_dir, Listing,
    SEGMENT_HEADER_LEN,
};
use super::{Record, ReplayStats, WalDamage};
use crate::error::{Error, Result};

/// Reads the latest checkpoint (if any) and then every segment after it, in order, calling `f`
/// per record.
///
/// A damaged record (bad length, checksum mismatch, undecodable payload) costs only itself: the
/// rest of its segment is searched for the next intact record and reading resumes there, and the
/// segment is rewritten without the damage (see `read_sequence`). Damage at the end of the newest
/// segment is a torn write and is cut off. Only a missing segment still ends replay, removing the
/// segments after the gap. Everything damaged is listed in `damage` and summed up in `corruption`.
/// The checkpoint is read the same way, so records after damage in it (the series definitions
/// later segments' samples refer to) survive and the checkpoint is rebuilt from them.
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
        read_sequence(&cdir, &segs, true, repair, &mut stats, &mut f)?;
    }
    let segs: Vec<u64> = listing
        .segments
        .iter()
        .copied()
        .filter(|&n| ckpt.is_none_or(|c| n > c))
        .collect();
    read_sequence(dir, &segs, false, repair, &mut stats, &mut f)?;
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

/// Reads the numbered segments `segs` of `dir` in order. Damage with intact records after it (in
/// the same segment or in later ones) is skipped: only the damaged bytes are lost, and with
/// `repair` the segment is rewritten without them. Damage at the end of the last segment is a torn
/// write and is cut off (with `repair`); a missing segment cuts the log there.
fn read_sequence(
    dir: &Path,
    segs: &[u64],
    in_checkpoint: bool,
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
        let read = read_segment(&path, &mut |typ, payload| on_record(stats, f, typ, payload))?;
        stats.segments += 1;
        stats.bytes += read.good;
        let Some(reason) = read.damage else { continue };
        let last = i + 1 == segs.len();
        let sal = salvage::salvage(&path, read.size, read.good, &reason, &mut |typ, payload| {
            on_record(stats, f, typ, payload)
        })?;
        let pure_tail = sal.records == 0 && sal.holes.len() <= 1;
        if last && pure_tail {
            stats.damage.push(WalDamage {
                path: path.clone(),
                in_checkpoint,
                start: read.good,
                end: read.size,
                reason: reason.clone(),
                torn_tail: !in_checkpoint,
            });
            let damaged = Damaged {
                path: &path,
                good: read.good,
                size: read.size,
            };
            return cut(dir, Some(damaged), &[], &reason, repair, stats);
        }
        let skipped = sal.skipped_bytes();
        stats.bytes += (sal.rebuilt.len() as u64).saturating_sub(read.good.max(SEGMENT_HEADER_LEN));
        stats.dropped_bytes += skipped;
        let mut msg = Vec::new();
        for ((a, b), r) in sal.holes.iter().zip(&sal.reasons) {
            msg.push(format!("[{a}, {b}): {r}"));
            stats.damage.push(WalDamage {
                path: path.clone(),
                in_checkpoint,
                start: *a,
                end: *b,
                reason: r.clone(),
                torn_tail: false,
            });
        }
        let what = if repair { "skipped" } else { "not read" };
        let msg = format!(
            "{}: damaged bytes {what} ({skipped} bytes): {}; {} intact record(s) after the damage kept",
            path.display(),
            msg.join("; "),
            sal.records
        );
        if repair {
            rewrite(&path, &sal.rebuilt)?;
            tracing::warn!(segment = %path.display(), skipped_bytes = skipped, records_kept = sal.records, "WAL damaged; damaged records skipped, the rest kept: {msg}");
        }
        stats.corruption = Some(match stats.corruption.take() {
            Some(prev) => format!("{prev}; {msg}"),
            None => msg,
        });
    }
    Ok(())
}

fn on_record(
    stats: &mut ReplayStats,
    f: &mut impl FnMut(Record),
    typ: u8,
    payload: &[u8],
) -> std::result::Result<(), String> {
    let rec = decode_record(typ, payload)?;
    stats.records += 1;
    match &rec {
        Record::Series(s) => stats.series += s.len() as u64,
        Record::Samples(s) => stats.samples += s.len() as u64,
        Record::Tombstones(s) => stats.tombstones += s.len() as u64,
    }
    f(rec);
    Ok(())
}

/// Replaces a segment with its salvaged content: temporary file, fsync, rename, directory fsync.
fn rewrite(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".repair");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
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
    let in_checkpoint = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("checkpoint."));
    let msg = if in_checkpoint && later.is_empty() {
        format!("{where_}; {what}: the last {tail} bytes of the checkpoint (the WAL segments after it are read as usual)")
    } else {
        format!(
            "{where_}; {what}: {tail} bytes of that segment and {} later segment(s) {later_names:?} ({later_bytes} bytes)",
            later.len()
        )
    };
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
