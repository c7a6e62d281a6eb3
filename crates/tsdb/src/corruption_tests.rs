//! The corruption corpus: one case per kind of damage, each applied to a fresh data directory
//! with blocks, a WAL checkpoint and a WAL segment, and each with its expected outcome: the
//! database opens, what was quarantined, what was counted, and that nothing outside the damaged
//! part was lost and new writes are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tocsin_model::{Labels, MatchOp, Matcher};
use tocsin_storage::{AppendOptions, Appendable, Queryable, SelectHints};

use crate::block::{self, Block};
use crate::db::{Db, DbOptions, HOUR_MS};

const MIN: i64 = 60_000;

/// (series index, timestamp)
type Key = (usize, i64);
/// Which samples a damage may take.
type LostFn = Box<dyn Fn(&Key) -> bool>;

fn opts() -> DbOptions {
    DbOptions {
        block_range_ms: 2 * HOUR_MS,
        // A tenth of this caps compaction ranges below 6 h, so the fixture's blocks stay as cut.
        retention_ms: 20 * HOUR_MS,
        ..Default::default()
    }
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "up"), ("i", &i.to_string())])
}

fn value(i: usize, t: i64) -> f64 {
    (t / MIN) as f64 + i as f64 * 1000.0
}

/// A data directory: series 0..3 every minute over [base, base + 9 h) cut into three 2 h blocks,
/// series 3 from base + 7 h (so the checkpoint holds two series records), then 30 more minutes
/// of all four in a WAL segment after the checkpoint.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: i64,
    written: BTreeSet<Key>,
}

fn append(db: &Db, written: &mut BTreeSet<Key>, t: i64, series: &[usize]) {
    let mut a = db.appender();
    for &i in series {
        a.append(&labels(i), t, value(i, t), &AppendOptions::default())
            .unwrap();
        written.insert((i, t));
    }
    let st = a.commit().unwrap();
    assert_eq!(st.rejected(), 0, "{st:?}");
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let now = crate::quarantine::now_ms();
    // Aligned to 6 h so the three blocks share one compaction window.
    let base = (now - 12 * HOUR_MS).div_euclid(6 * HOUR_MS) * 6 * HOUR_MS;
    let mut written = BTreeSet::new();
    let db = Db::open(&dir, opts()).unwrap();
    let mut t = base;
    while t < base + 9 * HOUR_MS {
        let series: &[usize] = if t >= base + 7 * HOUR_MS {
            &[0, 1, 2, 3]
        } else {
            &[0, 1, 2]
        };
        append(&db, &mut written, t, series);
        t += MIN;
    }
    db.maintain().unwrap();
    assert_eq!(db.blocks().len(), 3);
    while t < base + 9 * HOUR_MS + 30 * MIN {
        append(&db, &mut written, t, &[0, 1, 2, 3]);
        t += MIN;
    }
    db.close().unwrap();
    drop(db);
    Fixture {
        _tmp: tmp,
        dir,
        base,
        written,
    }
}

impl Fixture {
    /// Block directories sorted by time.
    fn blocks(&self) -> Vec<PathBuf> {
        let mut v: Vec<(i64, PathBuf)> = std::fs::read_dir(self.dir.join("blocks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| (Block::open(&p).unwrap().meta().min_time, p))
            .collect();
        v.sort();
        v.into_iter().map(|x| x.1).collect()
    }

    fn ulid(&self, block: usize) -> String {
        self.blocks()[block]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    }

    fn in_block(&self, block: usize) -> LostFn {
        let lo = self.base + block as i64 * 2 * HOUR_MS;
        Box::new(move |&(_, t): &Key| t >= lo && t < lo + 2 * HOUR_MS)
    }

    fn wal(&self) -> PathBuf {
        self.dir.join("wal")
    }

    fn checkpoint_segment(&self) -> PathBuf {
        let c = std::fs::read_dir(self.wal())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("checkpoint.")
            })
            .unwrap();
        c.join("00000000")
    }

    /// The WAL segment holding the records written after the checkpoint.
    fn last_segment(&self) -> PathBuf {
        let mut segs: Vec<PathBuf> = std::fs::read_dir(self.wal())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && std::fs::metadata(p).unwrap().len() > 8)
            .collect();
        segs.sort();
        segs.pop().unwrap()
    }
}

/// Offsets and types of the records of a WAL segment file.
fn records(path: &Path) -> Vec<(usize, u8, usize)> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut p = 8;
    while p + 9 <= b.len() {
        let len = u32::from_le_bytes([b[p + 1], b[p + 2], b[p + 3], b[p + 4]]) as usize;
        out.push((p, b[p], len));
        p += 9 + len;
    }
    out
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn read_keys(db: &Db) -> (BTreeSet<Key>, Vec<String>) {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let ms = [Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()];
    let mut got = BTreeSet::new();
    for s in q.select(&SelectHints::default(), &ms).unwrap() {
        let (l, samples) = s.unwrap().collect_samples();
        let i: usize = l.get("i").unwrap().parse().unwrap();
        for x in samples {
            assert_eq!(x.v, value(i, x.t), "wrong value for series {i} at {}", x.t);
            got.insert((i, x.t));
        }
    }
    (got, q.warnings())
}

fn quarantined(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir.join("quarantine")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn counts(db: &Db) -> Vec<(&'static str, u64)> {
    db.metrics()
        .corruptions()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// When the damage shows.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Found {
    AtOpen,
    /// Only once read: the first query sets it aside (with a warning).
    AtQuery,
}

struct Case {
    name: &'static str,
    /// Damages the fixture; returns the samples it may take with it.
    damage: fn(&Fixture) -> LostFn,
    /// Block (by time order) expected in quarantine, with the reason suffix.
    quarantined: Option<(usize, &'static str)>,
    counted: &'static [(&'static str, u64)],
    found: Found,
    /// The samples the damage takes must all be gone (not merely may be).
    lost_exactly: bool,
    /// Blocks left after open.
    blocks_after: usize,
}

fn none() -> LostFn {
    Box::new(|_: &Key| false)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "truncated_chunks_file",
            damage: |f| {
                let p = f.blocks()[0].join(block::CHUNKS_FILE);
                let len = std::fs::metadata(&p).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
                f.in_block(0)
            },
            quarantined: Some((0, "block_chunk")),
            counted: &[("block_chunk", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "flipped_bytes_in_a_chunk",
            damage: |f| {
                let p = f.blocks()[1].join(block::CHUNKS_FILE);
                let len = std::fs::metadata(&p).unwrap().len() as usize;
                flip(&p, len - 10);
                f.in_block(1)
            },
            quarantined: Some((1, "block_chunk")),
            counted: &[("block_chunk", 1)],
            found: Found::AtQuery,
            lost_exactly: false,
            blocks_after: 2,
        },
        Case {
            name: "flipped_bytes_in_the_index",
            damage: |f| {
                let p = f.blocks()[2].join(block::INDEX_FILE);
                flip(&p, 20);
                f.in_block(2)
            },
            quarantined: Some((2, "block_index")),
            counted: &[("block_index", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "deleted_index",
            damage: |f| {
                std::fs::remove_file(f.blocks()[0].join(block::INDEX_FILE)).unwrap();
                f.in_block(0)
            },
            quarantined: Some((0, "block_index")),
            counted: &[("block_index", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "garbled_meta_json",
            damage: |f| {
                let p = f.blocks()[1].join(block::META_FILE);
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, &s[..s.len() / 2]).unwrap();
                f.in_block(1)
            },
            quarantined: Some((1, "block_meta")),
            counted: &[("block_meta", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "meta_max_time_30_days_ahead",
            damage: |f| {
                let p = f.blocks()[2].join(block::META_FILE);
                let mut m: block::BlockMeta =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                m.max_time += 30 * 24 * HOUR_MS;
                std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
                f.in_block(2)
            },
            quarantined: Some((2, "block_meta")),
            counted: &[("block_meta", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "meta_sample_count_disagrees_with_index",
            damage: |f| {
                let p = f.blocks()[0].join(block::META_FILE);
                let mut m: block::BlockMeta =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                m.stats.num_samples += 7;
                std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
                f.in_block(0)
            },
            quarantined: Some((0, "block_meta")),
            counted: &[("block_meta", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "garbage_tombstones_file",
            damage: |f| {
                std::fs::write(f.blocks()[1].join(block::TOMBSTONES_FILE), b"garbage!").unwrap();
                f.in_block(1)
            },
            quarantined: Some((1, "block_tombstones")),
            counted: &[("block_tombstones", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "compaction_sources_left_beside_their_result",
            damage: |f| {
                let bl: Vec<Arc<Block>> = f.blocks()[..2]
                    .iter()
                    .map(|p| Arc::new(Block::open(p).unwrap()))
                    .collect();
                let (lo, hi) = (bl[0].meta().min_time, bl[1].meta().max_time);
                block::compact(&f.dir.join("blocks"), &bl, lo, hi)
                    .unwrap()
                    .unwrap();
                none()
            },
            quarantined: None,
            counted: &[],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 2,
        },
        Case {
            name: "wal_segment_damaged_mid_file",
            damage: |f| {
                let seg = f.last_segment();
                let recs = records(&seg);
                let (off, typ, len) = recs[recs.len() / 2];
                assert_eq!(typ, 2, "a samples record");
                flip(&seg, off + 9 + len / 2);
                // Records after the checkpoint are one commit (one minute, four series) each.
                let t = f.base + 9 * HOUR_MS + (recs.len() / 2) as i64 * MIN;
                Box::new(move |&(_, x): &Key| x == t)
            },
            quarantined: None,
            counted: &[("wal_segment", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 3,
        },
        Case {
            name: "wal_checkpoint_samples_record_damaged",
            damage: |f| {
                let cp = f.checkpoint_segment();
                let recs = records(&cp);
                let types: Vec<u8> = recs.iter().map(|r| r.1).collect();
                assert_eq!(
                    types,
                    vec![1, 2, 1, 2],
                    "series, samples, series (of series 3), samples"
                );
                let (off, _, len) = recs[1];
                flip(&cp, off + 9 + len / 2);
                // Only that record; series 3, defined after it, keeps its samples.
                let (lo, hi) = (f.base + 6 * HOUR_MS, f.base + 7 * HOUR_MS);
                Box::new(move |&(i, t): &Key| i < 3 && t >= lo && t < hi)
            },
            quarantined: None,
            counted: &[("wal_checkpoint", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 3,
        },
        Case {
            name: "wal_checkpoint_series_record_damaged",
            damage: |f| {
                let cp = f.checkpoint_segment();
                let (off, typ, len) = records(&cp)[0];
                assert_eq!(typ, 1);
                flip(&cp, off + 9 + len / 2);
                // Series 0-2 are defined only there: their head samples are lost (and counted).
                let lo = f.base + 6 * HOUR_MS;
                Box::new(move |&(i, t): &Key| i < 3 && t >= lo)
            },
            quarantined: None,
            counted: &[("wal_checkpoint", 1), ("unknown_series", 1)],
            found: Found::AtOpen,
            lost_exactly: true,
            blocks_after: 3,
        },
    ]
}

#[test]
fn corruption_corpus() {
    for c in cases() {
        let f = fixture();
        let ulid = c.quarantined.map(|(b, _)| f.ulid(b));
        let lost = (c.damage)(&f);
        let db =
            Db::open(&f.dir, opts()).unwrap_or_else(|e| panic!("{}: open failed: {e}", c.name));
        let (mut got, warnings) = read_keys(&db);
        let expect_q: Vec<String> = match (c.quarantined, &ulid) {
            (Some((_, kind)), Some(u)) => vec![format!("{u}-{kind}")],
            _ => Vec::new(),
        };
        assert_eq!(quarantined(&f.dir), expect_q, "{}: quarantined", c.name);
        assert_eq!(counts(&db), c.counted.to_vec(), "{}: counted", c.name);
        if let Some(u) = &ulid {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains(u.as_str()) && w.contains("missing")),
                "{}: warning naming the block and its range: {warnings:?}",
                c.name
            );
        } else {
            assert!(warnings.is_empty(), "{}: {warnings:?}", c.name);
        }
        if c.found == Found::AtQuery {
            // The next read already goes without it, and says so.
            // (The first may have returned some of its series before reaching the damage.)
            let (again, w2) = read_keys(&db);
            assert!(again.is_subset(&got), "{}", c.name);
            assert!(!w2.is_empty(), "{}", c.name);
            got = again;
        }
        // Nothing outside the damaged part is lost.
        let missing: Vec<&Key> = f.written.iter().filter(|k| !got.contains(k)).collect();
        let unexpected: Vec<&&Key> = missing.iter().filter(|k| !lost(k)).collect();
        assert!(
            unexpected.is_empty(),
            "{}: lost outside the damage: {:?}",
            c.name,
            &unexpected[..unexpected.len().min(5)]
        );
        if c.lost_exactly {
            let n_lost = f.written.iter().filter(|k| lost(k)).count();
            assert_eq!(
                missing.len(),
                n_lost,
                "{}: lost exactly the damaged part",
                c.name
            );
        }
        assert!(
            got.iter().all(|k| f.written.contains(k)),
            "{}: no invented samples",
            c.name
        );
        assert_eq!(db.blocks().len(), c.blocks_after, "{}: blocks", c.name);
        // New writes are accepted, at the wall clock's time too, and maintenance runs.
        let now = crate::quarantine::now_ms();
        let mut w = BTreeSet::new();
        append(&db, &mut w, now, &[0, 7]);
        db.maintain()
            .unwrap_or_else(|e| panic!("{}: maintenance: {e}", c.name));
        db.close().unwrap();
        drop(db);
        // The damage was dealt with once: a second open finds nothing and loses nothing more.
        let db = Db::open(&f.dir, opts()).unwrap();
        assert_eq!(counts(&db), vec![], "{}: second open", c.name);
        let (got2, _) = read_keys(&db);
        let mut want = got.clone();
        want.extend(w);
        assert_eq!(got2, want, "{}: after reopen", c.name);
    }
}

#[test]
fn corrupt_chunk_found_by_compaction_is_quarantined_and_retention_goes_on() {
    let f = fixture();
    let p = f.blocks()[0].join(block::CHUNKS_FILE);
    let len = std::fs::metadata(&p).unwrap().len() as usize;
    flip(&p, len - 10);
    let u = f.ulid(0);
    // Compaction ranges of 6 h (the three blocks make one group), and a size retention that
    // wants every block gone.
    let o = DbOptions {
        retention_ms: 60 * HOUR_MS,
        retention_bytes: 1,
        ..opts()
    };
    let db = Db::open(&f.dir, o).unwrap();
    assert_eq!(db.blocks().len(), 3);
    // The pass hits the damaged block while compacting, sets it aside, and still applies
    // retention (it used to stop at the compaction error, every pass, forever).
    let _ = db.maintain();
    assert_eq!(quarantined(&f.dir), vec![format!("{u}-block_chunk")]);
    assert_eq!(counts(&db), vec![("block_chunk", 1)]);
    let m = db.metrics();
    assert!(
        m.blocks_deleted_retention
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    assert_eq!(db.blocks().len(), 0);
    db.maintain().unwrap();
    let (_, warnings) = read_keys(&db);
    assert!(warnings.iter().any(|w| w.contains(&u)), "{warnings:?}");
}
