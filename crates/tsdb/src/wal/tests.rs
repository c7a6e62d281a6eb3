//! Tests of the WAL: round trips, rotation, damage at every byte, checkpoints, read-only reading.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tocsin_model::{Labels, STALE_NAN};

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Series(u64, Labels),
    Sample(u64, i64, u64),
    Tomb(u64, i64, i64),
}

/// Records flattened to items with values as bits, so NaNs compare bit-exactly.
fn flatten(recs: &[Record]) -> Vec<Item> {
    let mut out = Vec::new();
    for r in recs {
        match r {
            Record::Series(s) => out.extend(s.iter().map(|x| Item::Series(x.r, x.labels.clone()))),
            Record::Samples(s) => {
                out.extend(s.iter().map(|x| Item::Sample(x.r, x.t, x.v.to_bits())))
            }
            Record::Tombstones(s) => out.extend(s.iter().map(|x| Item::Tomb(x.r, x.mint, x.maxt))),
        }
    }
    out
}

fn replay_all(dir: &Path) -> (Vec<Record>, ReplayStats) {
    let mut recs = Vec::new();
    let stats = replay(dir, |r| recs.push(r)).unwrap();
    (recs, stats)
}

fn read_only_all(dir: &Path) -> (Vec<Record>, ReplayStats) {
    let mut recs = Vec::new();
    let stats = read_only_records(dir, |r| recs.push(r)).unwrap();
    (recs, stats)
}

fn series(r: u64) -> RefSeries {
    RefSeries {
        r,
        labels: Labels::from_pairs(&[("__name__", "up"), ("instance", &format!("host-{r}:9100"))]),
    }
}

fn opts(segment_size: u64) -> WalOptions {
    WalOptions { segment_size }
}

fn log(w: &mut Wal, rec: &Record) {
    match rec {
        Record::Series(s) => w.log_series(s).unwrap(),
        Record::Samples(s) => w.log_samples(s).unwrap(),
        Record::Tombstones(s) => w.log_tombstones(s).unwrap(),
    }
}

/// Assorted records: every type, awkward values and refs.
fn sample_records(seed: u64) -> Vec<Record> {
    let b = seed * 10;
    vec![
        Record::Series(vec![series(b), series(b + 1), series(b + 2)]),
        Record::Samples(vec![
            RefSample {
                r: b,
                t: 1_700_000_000_000 + seed as i64,
                v: 1.5,
            },
            RefSample {
                r: b + 1,
                t: 1_700_000_000_000,
                v: f64::NAN,
            },
            RefSample {
                r: b + 2,
                t: 1_700_000_000_015,
                v: STALE_NAN,
            },
            RefSample {
                r: b,
                t: 1_699_000_000_000,
                v: -0.0,
            },
        ]),
        Record::Tombstones(vec![Tombstone {
            r: b + 1,
            mint: 10,
            maxt: 20,
        }]),
        Record::Samples(vec![RefSample {
            r: b + 2,
            t: 5,
            v: f64::INFINITY,
        }]),
    ]
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Recursive listing: relative path -> file content (None for directories).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                walk(root, &e.path(), out);
            } else {
                out.insert(rel, Some(std::fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn segment_numbers(dir: &Path) -> Vec<u64> {
    segment::list_dir(dir).unwrap().segments
}

#[test]
fn round_trip_all_record_types_bit_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut recs = sample_records(1);
    recs.push(Record::Series(vec![
        RefSeries {
            r: u64::MAX,
            labels: Labels::empty(),
        },
        RefSeries {
            r: 0,
            labels: Labels::from_pairs(&[("__name__", "ünïcødé_λ"), ("a", "x\0y\u{1F600}")]),
        },
    ]));
    recs.push(Record::Samples(vec![
        RefSample {
            r: u64::MAX,
            t: i64::MIN,
            v: f64::from_bits(1),
        },
        RefSample {
            r: 0,
            t: i64::MAX,
            v: f64::from_bits(0xfff8_0000_0000_0001),
        },
        RefSample {
            r: 7,
            t: 0,
            v: f64::NEG_INFINITY,
        },
        RefSample {
            r: 7,
            t: 0,
            v: f64::MIN_POSITIVE,
        },
        RefSample {
            r: 7,
            t: -1,
            v: f64::MAX,
        },
    ]));
    recs.push(Record::Tombstones(vec![
        Tombstone {
            r: 3,
            mint: i64::MIN,
            maxt: i64::MAX,
        },
        Tombstone {
            r: 1,
            mint: i64::MAX,
            maxt: i64::MIN,
        },
    ]));
    let mut w = Wal::open(&dir, WalOptions::default()).unwrap();
    for r in &recs {
        log(&mut w, r);
    }
    w.log_samples(&[]).unwrap();
    w.close().unwrap();

    let (got, stats) = replay_all(&dir);
    assert_eq!(flatten(&got), flatten(&recs));
    assert_eq!(got.len(), recs.len(), "one record per call");
    assert_eq!(stats.records, recs.len() as u64);
    assert_eq!(stats.series, 5);
    assert_eq!(stats.samples, 10);
    assert_eq!(stats.tombstones, 3);
    assert_eq!(stats.corruption, None);
    assert_eq!(stats.dropped_bytes, 0);
    assert_eq!(
        stats.bytes,
        std::fs::metadata(seg_path(&dir, 0)).unwrap().len()
    );
}

#[test]
fn many_segments_with_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Wal::open(dir, opts(512)).unwrap();
    let mut all = Vec::new();
    for i in 0..300 {
        for r in sample_records(i) {
            log(&mut w, &r);
            all.push(r);
        }
        if i % 7 == 0 {
            w.flush().unwrap();
        }
    }
    // A record larger than the segment size gets a segment of its own.
    let big: Vec<RefSample> = (0..200)
        .map(|i| RefSample {
            r: i,
            t: i as i64 * 1000,
            v: i as f64 * 0.1,
        })
        .collect();
    w.log_samples(&big).unwrap();
    all.push(Record::Samples(big));
    w.log_series(&[series(1)]).unwrap();
    all.push(Record::Series(vec![series(1)]));
    let n = w.num_segments();
    assert!(n > 50, "only {n} segments");
    assert_eq!(w.first_segment(), 0);
    assert_eq!(w.current_segment() as usize, n - 1);
    w.sync().unwrap();
    let on_disk: u64 = segment_numbers(dir)
        .iter()
        .map(|&s| std::fs::metadata(seg_path(dir, s)).unwrap().len())
        .sum();
    assert_eq!(w.size_bytes(), on_disk);
    w.close().unwrap();

    let nums = segment_numbers(dir);
    assert_eq!(nums, (0..n as u64).collect::<Vec<_>>());
    let oversize = nums
        .iter()
        .filter(|&&s| std::fs::metadata(seg_path(dir, s)).unwrap().len() > 512)
        .count();
    assert_eq!(oversize, 1);

    let (got, stats) = replay_all(dir);
    assert_eq!(flatten(&got), flatten(&all));
    assert_eq!(stats.segments, n);
    assert_eq!(stats.corruption, None);

    // Reopening always starts a fresh segment after the last one.
    let mut w = Wal::open(dir, opts(512)).unwrap();
    assert_eq!(w.current_segment(), n as u64);
    assert_eq!(w.first_segment(), 0);
    w.log_series(&[series(99)]).unwrap();
    w.close().unwrap();
    let (got, _) = replay_all(dir);
    assert_eq!(
        flatten(&got).last(),
        Some(&Item::Series(99, series(99).labels))
    );
}

#[test]
fn cut_segment_and_flush_without_close() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Wal::open(tmp.path(), WalOptions::default()).unwrap();
    w.log_series(&[series(1)]).unwrap();
    assert_eq!(w.cut_segment().unwrap(), 1);
    w.log_series(&[series(2)]).unwrap();
    w.flush().unwrap();
    // Flushed records are visible to another reader without close (what kill -9 leaves).
    let (got, stats) = read_only_all(tmp.path());
    assert_eq!(
        flatten(&got),
        vec![
            Item::Series(1, series(1).labels),
            Item::Series(2, series(2).labels)
        ]
    );
    assert_eq!(stats.corruption, None);
    std::mem::forget(w);
}

#[test]
fn drop_flushes_buffered_records() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut w = Wal::open(tmp.path(), WalOptions::default()).unwrap();
        w.log_series(&[series(1)]).unwrap();
    }
    let (got, _) = replay_all(tmp.path());
    assert_eq!(got.len(), 1);
}

#[test]
fn invalid_segment_size_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        Wal::open(tmp.path(), opts(8)),
        Err(Error::InvalidOption(_))
    ));
}

/// A one-segment WAL plus the end offset of every record and the records themselves.
struct Base {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    recs: Vec<Record>,
    ends: Vec<u64>,
}

fn build_base() -> Base {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let mut w = Wal::open(&dir, WalOptions::default()).unwrap();
    let mut recs = Vec::new();
    let mut ends = Vec::new();
    for i in 0..2 {
        for r in sample_records(i) {
            log(&mut w, &r);
            w.flush().unwrap();
            ends.push(std::fs::metadata(seg_path(&dir, 0)).unwrap().len());
            recs.push(r);
        }
    }
    w.close().unwrap();
    Base {
        _tmp: tmp,
        dir,
        recs,
        ends,
    }
}

/// After damage: replay yields exactly `want` and reports corruption if `damaged`; a second replay
/// is clean; appending after reopen works and replays.
fn check_recovery(dir: &Path, want: &[Record], damaged: bool, what: &str) {
    let (got, stats) = replay_all(dir);
    assert_eq!(flatten(&got), flatten(want), "{what}");
    assert_eq!(
        stats.corruption.is_some(),
        damaged,
        "{what}: {:?}",
        stats.corruption
    );
    if damaged {
        assert!(stats.dropped_bytes > 0, "{what}");
    }
    let (got2, stats2) = replay_all(dir);
    assert_eq!(flatten(&got2), flatten(want), "{what}: second replay");
    assert_eq!(stats2.corruption, None, "{what}: second replay");
    assert_eq!(stats2.dropped_bytes, 0, "{what}");

    let mut w = Wal::open(dir, WalOptions::default()).unwrap();
    let extra = Record::Series(vec![series(12345)]);
    log(&mut w, &extra);
    w.close().unwrap();
    let (got3, stats3) = replay_all(dir);
    let mut expect = flatten(want);
    expect.extend(flatten(std::slice::from_ref(&extra)));
    assert_eq!(flatten(&got3), expect, "{what}: after append");
    assert_eq!(stats3.corruption, None, "{what}: after append");
}

#[test]
fn truncation_at_every_offset_of_the_tail() {
    let base = build_base();
    let n = base.recs.len();
    let from = base.ends[n - 4];
    let len = base.ends[n - 1];
    let work = tempfile::tempdir().unwrap();
    for cut in from..len {
        let dir = work.path().join(format!("cut{cut}"));
        copy_dir(&base.dir, &dir);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(seg_path(&dir, 0))
            .unwrap();
        f.set_len(cut).unwrap();
        let complete = base.ends.iter().filter(|&&e| e <= cut).count();
        let at_boundary = base.ends.contains(&cut);
        check_recovery(
            &dir,
            &base.recs[..complete],
            !at_boundary,
            &format!("cut at {cut}"),
        );
        // The damaged segment was cut back to the last complete record.
        assert_eq!(
            std::fs::metadata(seg_path(&dir, 0)).unwrap().len(),
            base.ends[complete - 1]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn flipped_byte_at_every_offset_of_the_tail_costs_only_that_record() {
    let base = build_base();
    let n = base.recs.len();
    let from = base.ends[n - 4];
    let len = base.ends[n - 1];
    let work = tempfile::tempdir().unwrap();
    for off in from..len {
        for mask in [0x01u8, 0xff] {
            let dir = work.path().join(format!("flip{off}-{mask}"));
            copy_dir(&base.dir, &dir);
            let p = seg_path(&dir, 0);
            let mut bytes = std::fs::read(&p).unwrap();
            bytes[off as usize] ^= mask;
            std::fs::write(&p, &bytes).unwrap();
            // Only the record hit is lost: reading resumes at the next intact one.
            let hit = base.ends.iter().filter(|&&e| e <= off).count();
            let mut want = base.recs[..hit].to_vec();
            want.extend_from_slice(&base.recs[hit + 1..]);
            check_recovery(&dir, &want, true, &format!("flip {mask:#x} at {off}"));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn damaged_segment_header_and_zero_filled_tail() {
    let base = build_base();
    let work = tempfile::tempdir().unwrap();
    for off in 0..8 {
        let dir = work.path().join(format!("hdr{off}"));
        copy_dir(&base.dir, &dir);
        let p = seg_path(&dir, 0);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[off] ^= 0x10;
        std::fs::write(&p, &bytes).unwrap();
        // The records behind a damaged header are intact and found.
        check_recovery(&dir, &base.recs, true, &format!("header flip at {off}"));
    }
    // File systems may extend a file with zeros on crash.
    let dir = work.path().join("zeros");
    copy_dir(&base.dir, &dir);
    let p = seg_path(&dir, 0);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&p, &bytes).unwrap();
    check_recovery(&dir, &base.recs, true, "zero tail");
    // An empty segment (created, never flushed) is not damage.
    let dir = work.path().join("empty");
    copy_dir(&base.dir, &dir);
    std::fs::write(seg_path(&dir, 1), b"").unwrap();
    check_recovery(&dir, &base.recs, false, "empty segment");
}

/// Five segments of `sample_records` each; returns the records per segment.
fn build_segments(dir: &Path, count: u64) -> Vec<Vec<Record>> {
    let mut w = Wal::open(dir, WalOptions::default()).unwrap();
    let mut per = Vec::new();
    for i in 0..count {
        let recs = sample_records(i);
        for r in &recs {
            log(&mut w, r);
        }
        per.push(recs);
        if i + 1 < count {
            w.cut_segment().unwrap();
        }
    }
    w.close().unwrap();
    per
}

#[test]
fn damage_in_a_middle_segment_no_longer_removes_later_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let per = build_segments(dir, 5);
    let seg2 = seg_path(dir, 2);
    let size2 = std::fs::metadata(&seg2).unwrap().len();
    let mut bytes = std::fs::read(&seg2).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&seg2, &bytes).unwrap();

    let (got, stats) = replay_all(dir);
    let mut want: Vec<Record> = per[..2].concat();
    want.extend(per[2][..per[2].len() - 1].iter().cloned());
    want.extend(per[3..].concat());
    assert_eq!(flatten(&got), flatten(&want));
    let c = stats.corruption.unwrap();
    assert!(c.contains("00000002") && c.contains("checksum"), "{c}");
    assert_eq!(stats.damage.len(), 1);
    assert!(!stats.damage[0].torn_tail && !stats.damage[0].in_checkpoint);
    assert_eq!(segment_numbers(dir), vec![0, 1, 2, 3, 4]);
    let cut = std::fs::metadata(&seg2).unwrap().len();
    assert_eq!(stats.dropped_bytes, size2 - cut);

    let w = Wal::open(dir, WalOptions::default()).unwrap();
    assert_eq!(w.current_segment(), 5);
    w.close().unwrap();
    let (got, stats) = replay_all(dir);
    assert_eq!(flatten(&got), flatten(&want));
    assert_eq!(stats.corruption, None);
}

#[test]
fn garbage_in_the_middle_of_a_segment_is_skipped_with_the_records_around_it_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let per = build_segments(dir, 2);
    let seg0 = seg_path(dir, 0);
    let mut bytes = std::fs::read(&seg0).unwrap();
    // Overwrite a stretch spanning record boundaries, as a bad sector would.
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 40] {
        *b = 0xee;
    }
    std::fs::write(&seg0, &bytes).unwrap();
    let (got, stats) = replay_all(dir);
    let got = flatten(&got);
    let all = flatten(&per.concat());
    assert!(
        got.len() < all.len() && got.len() > all.len() / 2,
        "{} of {}",
        got.len(),
        all.len()
    );
    assert!(
        got.ends_with(&flatten(&per[1])),
        "the later segment is whole"
    );
    assert!(got.iter().all(|x| all.contains(x)));
    assert!(stats.dropped_bytes >= 40);
    assert_eq!(replay_all(dir).1.corruption, None);
}

#[test]
fn missing_segment_cuts_the_log_there() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let per = build_segments(dir, 5);
    std::fs::remove_file(seg_path(dir, 2)).unwrap();
    let (got, stats) = replay_all(dir);
    assert_eq!(flatten(&got), flatten(&per[..2].concat()));
    assert!(stats.corruption.unwrap().contains("00000002 is missing"));
    assert_eq!(segment_numbers(dir), vec![0, 1]);
}

fn keep_even(r: u64) -> bool {
    r & 1 == 0
}

fn filtered(items: Vec<Item>, mint: i64) -> Vec<Item> {
    items
        .into_iter()
        .filter(|i| match i {
            Item::Series(r, _) | Item::Tomb(r, _, _) => keep_even(*r),
            Item::Sample(r, t, _) => keep_even(*r) && *t >= mint,
        })
        .collect()
}

#[test]
fn checkpoint_filters_and_replaces_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Wal::open(dir, opts(400)).unwrap();
    let mut all = Vec::new();
    for i in 0..40 {
        for r in sample_records(i) {
            log(&mut w, &r);
            all.push(r);
        }
    }
    let segs_before = w.num_segments();
    assert!(segs_before > 10);
    let upto = 6;
    let before_upto: Vec<Record> = {
        // Records in segments <= upto, read straight from those files.
        let mut v = Vec::new();
        w.flush().unwrap();
        for s in 0..=upto {
            segment::read_segment(&seg_path(dir, s), &mut |t, p| {
                v.push(codec::decode_record(t, p)?);
                Ok(())
            })
            .unwrap();
        }
        v
    };
    let mint = 1_700_000_000_000;
    let stats = w.checkpoint(upto, keep_even, mint).unwrap();
    assert_eq!(stats.upto, upto);
    assert_eq!(stats.segments_removed, upto as usize + 1);
    assert!(stats.samples_dropped > 0 && stats.series_dropped > 0 && stats.series_kept > 0);
    assert_eq!(w.first_segment(), upto + 1);
    assert_eq!(w.num_segments(), segs_before - upto as usize - 1);
    assert!(dir.join("checkpoint.00000006").is_dir());
    assert!(segment_numbers(dir).iter().all(|&s| s > upto));

    let more = sample_records(1000);
    for r in &more {
        log(&mut w, r);
    }
    w.flush().unwrap();
    let on_disk: u64 = segment_numbers(dir)
        .iter()
        .map(|&s| std::fs::metadata(seg_path(dir, s)).unwrap().len())
        .sum::<u64>()
        + segment::dir_segments_size(&dir.join("checkpoint.00000006")).unwrap();
    assert_eq!(w.size_bytes(), on_disk);

    let n_before = flatten(&before_upto).len();
    let mut want = filtered(flatten(&before_upto), mint);
    want.extend(flatten(&all)[n_before..].iter().cloned());
    want.extend(flatten(&more));
    let (got, rs) = replay_all(dir);
    assert_eq!(flatten(&got), want);
    assert_eq!(rs.checkpoint, Some(upto));
    assert_eq!(rs.corruption, None);

    // A second checkpoint folds in the first; with upto = current it cuts the segment first.
    let cur = w.current_segment();
    let stats2 = w.checkpoint(cur, keep_even, mint).unwrap();
    assert_eq!(stats2.upto, cur);
    assert!(!dir.join("checkpoint.00000006").exists());
    assert_eq!(w.current_segment(), cur + 1);
    assert_eq!(segment_numbers(dir), vec![cur + 1]);
    let (got2, _) = replay_all(dir);
    assert_eq!(flatten(&got2), filtered(want.clone(), mint));
    // Covered already: no-op.
    assert_eq!(
        w.checkpoint(cur, keep_even, mint).unwrap().segments_removed,
        0
    );
    assert!(matches!(
        w.checkpoint(cur + 5, keep_even, mint),
        Err(Error::InvalidOption(_))
    ));
    w.close().unwrap();

    // Reopen after a checkpoint that left no older segments.
    let mut w = Wal::open(dir, opts(400)).unwrap();
    assert_eq!(w.current_segment(), cur + 2);
    w.log_series(&[series(4242)]).unwrap();
    w.close().unwrap();
    let (got3, _) = replay_all(dir);
    let mut want3 = filtered(want, mint);
    want3.push(Item::Series(4242, series(4242).labels));
    assert_eq!(flatten(&got3), want3);
}

#[test]
fn checkpoint_built_while_records_are_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Wal::open(dir, opts(400)).unwrap();
    let mut all = Vec::new();
    for i in 0..20 {
        for r in sample_records(i) {
            log(&mut w, &r);
            all.push(r);
        }
    }
    let mint = 1_700_000_000_000;
    let cur = w.cut_segment().unwrap();
    let mut p = w.begin_checkpoint(cur - 1).unwrap().unwrap();
    // Appends go on (and rotate) while the checkpoint is written.
    let during = sample_records(500);
    for r in &during {
        log(&mut w, r);
    }
    p.write(&keep_even, mint).unwrap();
    let more = sample_records(501);
    for r in &more {
        log(&mut w, r);
    }
    let stats = w.finish_checkpoint(p).unwrap();
    assert_eq!(stats.upto, cur - 1);
    assert!(stats.segments_removed > 0);
    w.close().unwrap();
    let mut want = filtered(flatten(&all), mint);
    want.extend(flatten(&during));
    want.extend(flatten(&more));
    let (got, rs) = replay_all(dir);
    assert_eq!(flatten(&got), want);
    assert_eq!(rs.checkpoint, Some(cur - 1));

    // An abandoned checkpoint leaves nothing behind, and a stale one is refused.
    let mut w = Wal::open(dir, opts(400)).unwrap();
    log(&mut w, &sample_records(502)[0]);
    let cur = w.cut_segment().unwrap();
    let p = w.begin_checkpoint(cur - 1).unwrap().unwrap();
    drop(p);
    assert!(!dir.join(format!("checkpoint.{:08}.tmp", cur - 1)).exists());
    let p = w.begin_checkpoint(cur - 1).unwrap().unwrap();
    assert!(w.finish_checkpoint(p).is_err(), "not written");
    w.close().unwrap();
}

#[test]
fn checkpoint_crash_points_leave_a_readable_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let per = build_segments(&dir, 4);
    let all = flatten(&per.concat());
    let (orig, _) = replay_all(&dir);
    assert_eq!(flatten(&orig), all);

    // Crash before the rename: a partial temp dir exists; replay ignores and removes it.
    let crashed_early = tmp.path().join("early");
    copy_dir(&dir, &crashed_early);
    let t = crashed_early.join("checkpoint.00000002.tmp");
    std::fs::create_dir(&t).unwrap();
    std::fs::write(t.join("00000000"), b"TWAL\x01\0\0\0garbage").unwrap();
    let (ro, _) = read_only_all(&crashed_early);
    assert_eq!(flatten(&ro), all);
    assert!(t.exists());
    let (got, stats) = replay_all(&crashed_early);
    assert_eq!(flatten(&got), all);
    assert_eq!(stats.corruption, None);
    assert!(!t.exists());

    // Crash after the rename but before deleting segments: the checkpoint wins, leftovers go.
    let backup = tmp.path().join("backup");
    copy_dir(&dir, &backup);
    let mut w = Wal::open(&dir, WalOptions::default()).unwrap();
    w.checkpoint(1, keep_even, i64::MIN).unwrap();
    w.close().unwrap();
    let (after, _) = replay_all(&dir);
    for s in 0..=1 {
        std::fs::copy(seg_path(&backup, s), seg_path(&dir, s)).unwrap();
    }
    let (ro, _) = read_only_all(&dir);
    assert_eq!(flatten(&ro), flatten(&after));
    let (got, _) = replay_all(&dir);
    assert_eq!(flatten(&got), flatten(&after));
    assert!(segment_numbers(&dir).iter().all(|&s| s > 1));
    let want: Vec<Item> = filtered(flatten(&per[..2].concat()), i64::MIN)
        .into_iter()
        .chain(flatten(&per[2..].concat()))
        .collect();
    assert_eq!(flatten(&after), want);
}

#[test]
fn read_only_never_modifies_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let per = build_segments(dir, 4);
    let mut w = Wal::open(dir, WalOptions::default()).unwrap();
    w.checkpoint(0, |_| true, i64::MIN).unwrap();
    w.close().unwrap();
    // Damage the tail of segment 2, leave a temp checkpoint and a stale covered segment behind.
    let p = seg_path(dir, 2);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    std::fs::create_dir(dir.join("checkpoint.00000003.tmp")).unwrap();
    std::fs::write(seg_path(dir, 0), b"stale").unwrap();

    let before = snapshot(dir);
    let (ro, stats) = read_only_all(dir);
    assert_eq!(snapshot(dir), before);
    let mut want = per[..2].concat();
    want.extend(per[2][..per[2].len() - 1].iter().cloned());
    want.extend(per[3].iter().cloned());
    assert_eq!(flatten(&ro), flatten(&want));
    assert!(stats.corruption.is_some());
    assert_eq!(stats.checkpoint, Some(0));

    // replay of the same directory agrees on the records, and then repairs.
    let (got, rstats) = replay_all(dir);
    assert_eq!(flatten(&got), flatten(&want));
    assert_eq!(rstats.dropped_bytes, stats.dropped_bytes);
    assert_ne!(snapshot(dir), before);
    assert_eq!(read_only_all(dir).1.corruption, None);
}

#[test]
fn damaged_checkpoint_is_cut_and_segments_still_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let per = build_segments(dir, 3);
    let mut w = Wal::open(dir, WalOptions::default()).unwrap();
    w.checkpoint(1, |_| true, i64::MIN).unwrap();
    w.close().unwrap();
    let cp = dir.join("checkpoint.00000001").join("00000000");
    let len = std::fs::metadata(&cp).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cp)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let (got, stats) = replay_all(dir);
    assert!(stats.corruption.unwrap().contains("checkpoint.00000001"));
    let items = flatten(&got);
    assert!(items.ends_with(&flatten(&per[2])));
    assert!(items.len() < flatten(&per.concat()).len());
    assert_eq!(replay_all(dir).1.corruption, None);
}

#[test]
fn empty_or_missing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert_eq!(replay_all(&missing).1, ReplayStats::default());
    assert_eq!(read_only_all(&missing).1, ReplayStats::default());
    assert!(!missing.exists());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn samples_codec_round_trip(s in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..200)) {
        let samples: Vec<RefSample> = s.iter().map(|&(r, t, v)| RefSample { r, t, v: f64::from_bits(v) }).collect();
        let mut buf = Vec::new();
        codec::encode_samples(&mut buf, &samples);
        let back = codec::decode_samples(&buf).unwrap();
        prop_assert_eq!(back.len(), samples.len());
        for (a, b) in back.iter().zip(&samples) {
            prop_assert_eq!((a.r, a.t, a.v.to_bits()), (b.r, b.t, b.v.to_bits()));
        }
    }

    #[test]
    fn decoders_never_panic_on_garbage(b in proptest::collection::vec(any::<u8>(), 0..64), typ in 0u8..5) {
        let _ = codec::decode_record(typ, &b);
    }
}

/// Throughput of encoding + writing 1,000,000 samples. Run with
/// `cargo test -p tocsin-tsdb --release --lib wal::tests::write_throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn write_throughput() {
    const N: usize = 1_000_000;
    const SERIES: u64 = 10_000;
    let samples: Vec<RefSample> = (0..N)
        .map(|i| {
            let r = i as u64 % SERIES;
            let scrape = (i as u64 / SERIES) as i64;
            // Counters growing by varying amounts, a realistic mix for XOR encoding.
            RefSample {
                r,
                t: 1_700_000_000_000 + scrape * 15_000,
                v: (scrape * (r as i64 % 97 + 1)) as f64,
            }
        })
        .collect();
    for batch in [1_000usize, N] {
        let tmp = tempfile::tempdir().unwrap();
        let mut w = Wal::open(tmp.path(), WalOptions::default()).unwrap();
        let start = std::time::Instant::now();
        for chunk in samples.chunks(batch) {
            w.log_samples(chunk).unwrap();
        }
        w.flush().unwrap();
        let el = start.elapsed();
        let bytes = w.size_bytes();
        w.close().unwrap();
        println!(
            "batch {batch}: {N} samples in {:?} ({:.1} M samples/s), {bytes} bytes ({:.2} bytes/sample)",
            el,
            N as f64 / el.as_secs_f64() / 1e6,
            bytes as f64 / N as f64
        );
        let start = std::time::Instant::now();
        let (_, stats) = replay_all(tmp.path());
        println!("  replay: {:?}, {} samples", start.elapsed(), stats.samples);
        assert_eq!(stats.samples, N as u64);
    }
}
