//! Offline verification and repair of a data directory (`tocsin tsdb check` / `repair`). Check
//! reads everything without changing a byte: every block's files (and every chunk decoded), the
//! WAL's segments and checkpoint. Repair takes the directory lock, so never runs beside a server,
//! and does what the server would do at start, up front: quarantines what check found damaged,
//! deletes compaction leftovers, and rewrites damaged WAL segments and checkpoint from their
//! intact records.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::lock::DirLock;
use crate::quarantine::{self, CorruptionKind};
use crate::wal::{self, Record, WalDamage};

/// Damaged chunks reported per block before check moves on (the block is damaged either way).
const MAX_BAD_CHUNKS: usize = 20;

/// One damaged thing.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: CorruptionKind,
    /// The damaged file (or the block / WAL directory when no single file is to blame).
    pub path: PathBuf,
    /// What is wrong, with offsets and series where known.
    pub detail: String,
    /// The block it belongs to, if any.
    pub block: Option<String>,
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub blocks: usize,
    pub chunks: u64,
    pub wal_segments: usize,
    pub wal_records: u64,
    pub unknown_series_samples: u64,
    pub problems: Vec<Problem>,
    /// Not damage: blocks whose data a compacted block holds (deleted at the next start), a torn
    /// record at the end of the newest WAL segment (what a crash or a live writer leaves).
    pub notes: Vec<String>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn missing(dir: &Path) -> Error {
    Error::io(
        dir,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such data directory"),
    )
}

/// Verifies a data directory read-only (it may belong to a running server).
pub fn check(dir: &Path) -> Result<CheckReport> {
    if !dir.is_dir() {
        return Err(missing(dir));
    }
    let mut r = CheckReport::default();
    check_blocks(dir, &mut r)?;
    check_wal(dir, &mut r)?;
    Ok(r)
}

fn check_blocks(dir: &Path, r: &mut CheckReport) -> Result<()> {
    let s = quarantine::screen_blocks(dir, quarantine::now_ms())?;
    r.blocks = s.good.len() + s.bad.len() + s.leftovers.len();
    for f in &s.bad {
        let file = match f.kind {
            CorruptionKind::BlockIndex => f.dir.join(crate::block::INDEX_FILE),
            CorruptionKind::BlockChunk => f.dir.join(crate::block::CHUNKS_FILE),
            CorruptionKind::BlockTombstones => f.dir.join(crate::block::TOMBSTONES_FILE),
            CorruptionKind::BlockMeta => f.dir.join(crate::block::META_FILE),
            _ => f.dir.clone(),
        };
        r.problems.push(Problem {
            kind: f.kind,
            path: file,
            detail: f.reason.clone(),
            block: Some(f.ulid.clone()),
        });
    }
    for l in &s.leftovers {
        r.notes.push(format!(
            "block {} holds only data that block {} also holds (left by an interrupted compaction); it is deleted at the next start or by repair",
            l.block.dir().display(),
            l.covered_by
        ));
    }
    for b in &s.good {
        let ulid = b.meta().ulid.clone();
        let chunks_path = b.dir().join(crate::block::CHUNKS_FILE);
        let mut bad = Vec::new();
        let res = b.verify_chunks(MAX_BAD_CHUNKS, &mut |e| bad.push(e));
        match res {
            Ok(n) => r.chunks += n,
            Err(e) => bad.push(e),
        }
        for e in bad {
            let kind = CorruptionKind::of_block_error(&e);
            let (path, detail) = match &e {
                Error::Corrupt { path, reason } => (PathBuf::from(path), reason.clone()),
                Error::Io { path, source } => (PathBuf::from(path), source.to_string()),
                _ => (chunks_path.clone(), e.to_string()),
            };
            r.problems.push(Problem {
                kind,
                path,
                detail,
                block: Some(ulid.clone()),
            });
        }
    }
    Ok(())
}

/// Reads the WAL like replay does, tracking which series each sample names.
fn read_wal(wal_dir: &Path, repair: bool) -> Result<(wal::ReplayStats, u64)> {
    let mut known: HashSet<u64> = HashSet::new();
    let mut unknown = 0u64;
    let f = |rec: Record| match rec {
        Record::Series(v) => known.extend(v.iter().map(|s| s.r)),
        Record::Samples(v) => unknown += v.iter().filter(|s| !known.contains(&s.r)).count() as u64,
        Record::Tombstones(_) => {}
    };
    let stats = if repair {
        wal::replay(wal_dir, f)?
    } else {
        wal::read_only_records(wal_dir, f)?
    };
    Ok((stats, unknown))
}

fn wal_kind(d: &WalDamage) -> CorruptionKind {
    if d.in_checkpoint {
        CorruptionKind::WalCheckpoint
    } else {
        CorruptionKind::WalSegment
    }
}

fn describe(d: &WalDamage) -> String {
    format!("bytes [{}, {}): {}", d.start, d.end, d.reason)
}

fn check_wal(dir: &Path, r: &mut CheckReport) -> Result<()> {
    let wal_dir = dir.join("wal");
    if !wal_dir.exists() {
        return Ok(());
    }
    let (stats, unknown) = read_wal(&wal_dir, false)?;
    r.wal_segments = stats.segments;
    r.wal_records = stats.records;
    r.unknown_series_samples = unknown;
    for d in &stats.damage {
        if d.torn_tail {
            r.notes.push(format!(
                "{}: incomplete last record at offset {} (normal after a crash or while a server writes; cut off at the next start)",
                d.path.display(),
                d.start
            ));
            continue;
        }
        r.problems.push(Problem {
            kind: wal_kind(d),
            path: d.path.clone(),
            detail: describe(d),
            block: None,
        });
    }
    if unknown > 0 {
        r.problems.push(Problem {
            kind: CorruptionKind::UnknownSeries,
            path: wal_dir,
            detail: format!(
                "{unknown} sample(s) refer to series whose definition is not in the readable WAL"
            ),
            block: None,
        });
    }
    Ok(())
}

/// What repair did.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// (block ULID, kind, reason, where it went).
    pub quarantined: Vec<(String, CorruptionKind, String, PathBuf)>,
    pub leftovers_removed: Vec<PathBuf>,
    /// WAL damage found and skipped (segments rewritten without it) or cut off.
    pub wal_damage: Vec<WalDamage>,
    pub unknown_series_samples: u64,
}

/// Repairs a data directory no server is using: refuses with `Error::Locked` otherwise.
pub fn repair(dir: &Path) -> Result<RepairReport> {
    if !dir.is_dir() {
        return Err(missing(dir));
    }
    let _lock = DirLock::acquire(dir)?;
    let mut out = RepairReport::default();
    let mut found = CheckReport::default();
    check_blocks(dir, &mut found)?;
    // One entry per damaged block: its first problem names why it was set aside.
    let mut per_block: HashMap<String, &Problem> = HashMap::new();
    for p in &found.problems {
        if let Some(u) = &p.block {
            per_block.entry(u.clone()).or_insert(p);
        }
    }
    let bdir = dir.join("blocks");
    let mut ulids: Vec<&String> = per_block.keys().collect();
    ulids.sort();
    for u in ulids {
        let p = per_block[u];
        let to = quarantine::move_to_quarantine(dir, &bdir.join(u), u, p.kind)?;
        out.quarantined
            .push((u.clone(), p.kind, p.detail.clone(), to));
    }
    for l in quarantine::screen_blocks(dir, quarantine::now_ms())?.leftovers {
        let d = l.block.dir().to_path_buf();
        std::fs::remove_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        out.leftovers_removed.push(d);
    }
    let wal_dir = dir.join("wal");
    if wal_dir.exists() {
        let (stats, unknown) = read_wal(&wal_dir, true)?;
        out.wal_damage = stats.damage;
        out.unknown_series_samples = unknown;
    }
    Ok(out)
}
