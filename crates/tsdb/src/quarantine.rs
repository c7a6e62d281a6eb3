//! Damage containment for blocks: the kinds of damage we count, screening the blocks of a data
//! directory at open (cheap checks against their index and their neighbours), and setting damaged
//! blocks aside into `DATA_DIR/quarantine/` so the rest of the data stays served and maintained.
//! Blocks that a crash left beside the compacted block holding their data are recognised here too.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::block::{self, Block, BlockMeta};
use crate::error::{Error, Result};

/// Name of the folder (in the data directory) damaged blocks are moved into.
pub const QUARANTINE_DIR: &str = "quarantine";

/// How far past the wall clock a block may end: samples slightly ahead of the clock are accepted,
/// but a block ending a day ahead came from a broken clock or a damaged `meta.json`, and trusting
/// it would refuse every write older than its end.
pub const FUTURE_MARGIN_MS: i64 = 24 * 3_600_000;

/// What kind of damage was found; the `kind` label of `tocsin_tsdb_corruptions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorruptionKind {
    /// Unreadable `meta.json`, or claims in it that its index or the clock contradict.
    BlockMeta,
    BlockIndex,
    BlockChunk,
    BlockTombstones,
    /// Two blocks holding the same source data where neither can be a compaction of the other.
    BlockOverlap,
    WalSegment,
    WalCheckpoint,
    /// WAL samples whose series definition was lost (counted once per replay that found any).
    UnknownSeries,
}

impl CorruptionKind {
    pub const ALL: [CorruptionKind; 8] = [
        CorruptionKind::BlockMeta,
        CorruptionKind::BlockIndex,
        CorruptionKind::BlockChunk,
        CorruptionKind::BlockTombstones,
        CorruptionKind::BlockOverlap,
        CorruptionKind::WalSegment,
        CorruptionKind::WalCheckpoint,
        CorruptionKind::UnknownSeries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CorruptionKind::BlockMeta => "block_meta",
            CorruptionKind::BlockIndex => "block_index",
            CorruptionKind::BlockChunk => "block_chunk",
            CorruptionKind::BlockTombstones => "block_tombstones",
            CorruptionKind::BlockOverlap => "block_overlap",
            CorruptionKind::WalSegment => "wal_segment",
            CorruptionKind::WalCheckpoint => "wal_checkpoint",
            CorruptionKind::UnknownSeries => "unknown_series",
        }
    }

    /// The kind of a block error, from the file it names.
    pub fn of_block_error(e: &Error) -> CorruptionKind {
        let path = match e {
            Error::Corrupt { path, .. } | Error::Io { path, .. } => path.as_str(),
            _ => "",
        };
        Self::of_block_file(path)
    }

    pub fn of_block_file(path: &str) -> CorruptionKind {
        let file = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        match file.as_str() {
            block::INDEX_FILE => CorruptionKind::BlockIndex,
            block::CHUNKS_FILE => CorruptionKind::BlockChunk,
            block::TOMBSTONES_FILE => CorruptionKind::BlockTombstones,
            _ => CorruptionKind::BlockMeta,
        }
    }
}

impl fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Per-kind damage counters.
#[derive(Debug, Default)]
pub struct CorruptionCounters {
    counts: [AtomicU64; 8],
}

impl CorruptionCounters {
    pub fn add(&self, kind: CorruptionKind, n: u64) {
        if let Some(i) = CorruptionKind::ALL.iter().position(|k| *k == kind) {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self, kind: CorruptionKind) -> u64 {
        CorruptionKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Every kind with its count (zeros included, so the metric family is complete).
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        CorruptionKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.get(*k)))
            .collect()
    }

    pub fn total(&self) -> u64 {
        CorruptionKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// A block found damaged.
#[derive(Debug, Clone)]
pub struct BlockFinding {
    pub dir: PathBuf,
    pub ulid: String,
    pub kind: CorruptionKind,
    pub reason: String,
    /// `[min_time, max_time)` if its `meta.json` could still be read.
    pub range: Option<(i64, i64)>,
}

/// A block whose data another block holds: what a crash between a compaction's rename and the
/// removal of its inputs leaves.
#[derive(Debug, Clone)]
pub struct Leftover {
    pub block: Arc<Block>,
    pub covered_by: String,
}

/// The blocks of a data directory, sorted out; nothing on disk is changed.
#[derive(Debug, Default)]
pub struct Screened {
    /// Sorted by `min_time`.
    pub good: Vec<Arc<Block>>,
    pub bad: Vec<BlockFinding>,
    pub leftovers: Vec<Leftover>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Opens and checks every block of `data_dir/blocks`: each must open (magics, checksums), and its
/// `meta.json` must agree with its index (time range, sample and chunk counts), end no later than
/// `now_ms` plus `FUTURE_MARGIN_MS`, and share source blocks with no other block except as a
/// compaction of it (then the smaller one is a leftover).
pub fn screen_blocks(data_dir: &Path, now_ms: i64) -> Result<Screened> {
    let bdir = data_dir.join("blocks");
    let mut out = Screened::default();
    let rd = match std::fs::read_dir(&bdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&bdir, e)),
    };
    let mut opened = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(&bdir, e))?;
        let p = ent.path();
        let name = ent.file_name().to_string_lossy().to_string();
        if !p.is_dir() || name.contains('.') {
            continue;
        }
        let finding = |kind, reason: String, range| BlockFinding {
            dir: p.clone(),
            ulid: name.clone(),
            kind,
            reason,
            range,
        };
        match Block::open(&p) {
            Ok(b) => match validate(&b, now_ms) {
                Ok(()) => opened.push(Arc::new(b)),
                Err((kind, reason)) => out.bad.push(finding(kind, reason, Some(range(b.meta())))),
            },
            Err(e) => {
                let kind = CorruptionKind::of_block_error(&e);
                out.bad.push(finding(kind, e.to_string(), meta_range(&p)));
            }
        }
    }
    opened.sort_by(|a, b| {
        (a.meta().min_time, &a.meta().ulid).cmp(&(b.meta().min_time, &b.meta().ulid))
    });
    let sources: Vec<HashSet<&str>> = opened
        .iter()
        .map(|b| {
            b.meta()
                .compaction
                .sources
                .iter()
                .map(String::as_str)
                .collect()
        })
        .collect();
    let mut drop = vec![false; opened.len()];
    for (i, a) in opened.iter().enumerate() {
        let am = a.meta();
        for (j, b) in opened.iter().enumerate() {
            let bm = b.meta();
            if i == j || drop[j] || sources[i].is_disjoint(&sources[j]) {
                continue;
            }
            let covered = bm.compaction.level > am.compaction.level
                && sources[i].is_subset(&sources[j])
                && bm.min_time <= am.min_time
                && am.max_time <= bm.max_time;
            if covered {
                out.leftovers.push(Leftover {
                    block: a.clone(),
                    covered_by: bm.ulid.clone(),
                });
                drop[i] = true;
                break;
            }
        }
    }
    // What still shares sources cannot have come from our compaction: keep the higher level (or
    // earlier) block and set the other aside.
    for i in 0..opened.len() {
        for j in 0..opened.len() {
            if i == j || drop[i] || drop[j] || sources[i].is_disjoint(&sources[j]) {
                continue;
            }
            let (am, bm) = (opened[i].meta(), opened[j].meta());
            let a_loses = (am.compaction.level, &bm.ulid) < (bm.compaction.level, &am.ulid);
            if a_loses {
                drop[i] = true;
                out.bad.push(BlockFinding {
                    dir: opened[i].dir().to_path_buf(),
                    ulid: am.ulid.clone(),
                    kind: CorruptionKind::BlockOverlap,
                    reason: format!(
                        "shares source blocks with {} without being a compaction of it or it of this one",
                        bm.ulid
                    ),
                    range: Some(range(am)),
                });
            }
        }
    }
    out.good = opened
        .into_iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(b, _)| b)
        .collect();
    Ok(out)
}

fn range(m: &BlockMeta) -> (i64, i64) {
    (m.min_time, m.max_time)
}

fn meta_range(dir: &Path) -> Option<(i64, i64)> {
    let raw = std::fs::read(dir.join(block::META_FILE)).ok()?;
    let m: BlockMeta = serde_json::from_slice(&raw).ok()?;
    Some(range(&m))
}

/// The cheap checks of an opened block.
fn validate(b: &Block, now_ms: i64) -> std::result::Result<(), (CorruptionKind, String)> {
    let m = b.meta();
    let meta = CorruptionKind::BlockMeta;
    if m.min_time >= m.max_time {
        return Err((
            meta,
            format!(
                "meta.json: min_time {} is not before max_time {}",
                m.min_time, m.max_time
            ),
        ));
    }
    if m.max_time > now_ms.saturating_add(FUTURE_MARGIN_MS) {
        return Err((
            meta,
            format!(
                "meta.json: max_time {} is {:.1} h in the future",
                m.max_time,
                (m.max_time - now_ms) as f64 / 3.6e6
            ),
        ));
    }
    if m.ulid
        != b.dir()
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default()
    {
        return Err((
            meta,
            format!("meta.json: ulid {} is not the directory's name", m.ulid),
        ));
    }
    let sum = b
        .index_summary()
        .map_err(|e| (CorruptionKind::of_block_error(&e), e.to_string()))?;
    if sum.samples != m.stats.num_samples || sum.chunks != m.stats.num_chunks {
        return Err((
            meta,
            format!(
                "meta.json says {} samples in {} chunks, the index {} in {}",
                m.stats.num_samples, m.stats.num_chunks, sum.samples, sum.chunks
            ),
        ));
    }
    if let Some((a, z)) = sum.time_range {
        if a < m.min_time || z >= m.max_time {
            return Err((
                meta,
                format!(
                    "the index holds samples in [{a}, {z}], outside meta.json's [{}, {})",
                    m.min_time, m.max_time
                ),
            ));
        }
    }
    Ok(())
}

/// Moves a block directory into `data_dir/quarantine/<ulid>-<kind>` (a millisecond suffix if that
/// exists already) and returns where it went.
pub fn move_to_quarantine(
    data_dir: &Path,
    block_dir: &Path,
    ulid: &str,
    kind: CorruptionKind,
) -> Result<PathBuf> {
    let q = data_dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&q).map_err(|e| Error::io(&q, e))?;
    let mut dest = q.join(format!("{ulid}-{kind}"));
    if dest.exists() {
        dest = q.join(format!("{ulid}-{kind}-{}", now_ms()));
    }
    std::fs::rename(block_dir, &dest).map_err(|e| Error::io(block_dir, e))?;
    if let Some(parent) = block_dir.parent() {
        block::fsync_dir(parent)?;
    }
    block::fsync_dir(&q)?;
    Ok(dest)
}

/// A block set aside; queries over its range get a warning naming it.
#[derive(Debug, Clone)]
pub struct SetAside {
    pub ulid: String,
    pub kind: CorruptionKind,
    pub range: Option<(i64, i64)>,
    /// Where it went; None when it stayed in place (read-only opens never move anything).
    pub moved_to: Option<PathBuf>,
}

impl SetAside {
    pub fn warning(&self) -> String {
        let range = match self.range {
            Some((a, b)) => format!("data in [{a}, {b}) ms is missing"),
            None => "its time range is unknown, so data of any range may be missing".to_string(),
        };
        let place = match &self.moved_to {
            Some(p) => format!("moved to {}", p.display()),
            None => "skipped".to_string(),
        };
        format!(
            "block {} is damaged ({}) and was {place}: {range}",
            self.ulid, self.kind
        )
    }

    pub fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.range.is_none_or(|(a, b)| a <= maxt && b > mint)
    }
}

/// What opening did to the blocks: the ones to serve, and what it set aside.
pub(crate) struct OpenedBlocks {
    pub blocks: Vec<Arc<Block>>,
    pub set_aside: Vec<SetAside>,
}

/// Screens the blocks and, unless `read_only`, quarantines the damaged ones and deletes leftovers
/// of interrupted compactions; damage is counted in `counters` and logged once.
pub(crate) fn open_blocks(
    data_dir: &Path,
    read_only: bool,
    counters: &CorruptionCounters,
) -> Result<OpenedBlocks> {
    let s = screen_blocks(data_dir, now_ms())?;
    let mut set_aside = Vec::new();
    for f in s.bad {
        counters.add(f.kind, 1);
        let moved_to = if read_only {
            tracing::warn!(block = %f.dir.display(), kind = %f.kind, reason = %f.reason, "skipping damaged block");
            None
        } else {
            match move_to_quarantine(data_dir, &f.dir, &f.ulid, f.kind) {
                Ok(p) => {
                    tracing::error!(block = %f.dir.display(), kind = %f.kind, reason = %f.reason, quarantined_to = %p.display(), "damaged block set aside; the rest of the data is served");
                    Some(p)
                }
                Err(e) => {
                    tracing::error!(block = %f.dir.display(), kind = %f.kind, reason = %f.reason, error = %e, "damaged block could not be moved to quarantine; it is skipped");
                    None
                }
            }
        };
        set_aside.push(SetAside {
            ulid: f.ulid,
            kind: f.kind,
            range: f.range,
            moved_to,
        });
    }
    for l in s.leftovers {
        if read_only {
            continue;
        }
        tracing::warn!(block = %l.block.dir().display(), covered_by = %l.covered_by, "deleting a block whose data a compacted block holds (left by an interrupted compaction)");
        std::fs::remove_dir_all(l.block.dir()).map_err(|e| Error::io(l.block.dir(), e))?;
    }
    Ok(OpenedBlocks {
        blocks: s.good,
        set_aside,
    })
}
