//! Tests of the database on a full disk: every write path (block cut, head chunk spill, WAL
//! append, WAL checkpoint, compaction) made to fail with ENOSPC through `fault`, then checked to
//! have left nothing behind, to be retried, and to have lost no acknowledged sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::fault;
use tocsin_model::{MatchOp, Sample};
use tocsin_storage::{Queryable, SelectHints};

const MIN: i64 = 60_000;
const STEP: i64 = 15_000;

fn opts(range: i64) -> DbOptions {
    DbOptions {
        block_range_ms: range,
        retention_ms: 1000 * range,
        ..Default::default()
    }
}

fn lbl(host: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", "cpu"),
        ("instance", &format!("host-{host}")),
        ("job", "node"),
    ])
}

fn value(host: usize, t: i64) -> f64 {
    (t / STEP) as f64 * 0.5 + host as f64
}

/// Appends one sample per host every STEP in [from, to), one commit per timestamp; panics unless
/// every sample is accepted.
fn write(db: &Db, hosts: std::ops::Range<usize>, from: i64, to: i64) {
    let mut t = from;
    while t < to {
        let mut a = db.appender();
        for h in hosts.clone() {
            a.append(&lbl(h), t, value(h, t), &AppendOptions::default())
                .unwrap();
        }
        let st = a.commit().unwrap();
        assert_eq!(st.rejected(), 0, "{st:?}");
        t += STEP;
    }
}

/// What `write(db, hosts, from, to)` acknowledged, as `read_all` returns it.
fn want(hosts: std::ops::Range<usize>, from: i64, to: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out: Vec<(Labels, Vec<Sample>)> = hosts
        .map(|h| {
            let s = (from..to)
                .step_by(STEP as usize)
                .map(|t| Sample::new(t, value(h, t)))
                .collect();
            (lbl(h), s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn read_all(db: &Db) -> Vec<(Labels, Vec<Sample>)> {
    let ms = vec![Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()];
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    q.select(&SelectHints::default(), &ms)
        .unwrap()
        .map(|s| s.unwrap().collect_samples())
        .collect()
}

/// Names in a directory, sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn assert_same(got: &[(Labels, Vec<Sample>)], want: &[(Labels, Vec<Sample>)]) {
    assert_eq!(got.len(), want.len(), "series count");
    for ((gl, gs), (wl, ws)) in got.iter().zip(want) {
        assert_eq!(gl, wl);
        let lost = ws.iter().filter(|s| !gs.contains(s)).count();
        assert_eq!(
            lost,
            0,
            "{gl}: {lost} of {} acknowledged samples missing or wrong (got {})",
            ws.len(),
            gs.len()
        );
        assert_eq!(gs.len(), ws.len(), "{gl}: unexpected extra samples");
    }
}

#[test]
fn failed_cut_on_enospc_is_retried_not_skipped() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let bdir = d.path().join("blocks");
    {
        let db = Db::open(d.path(), opts(range)).unwrap();
        write(&db, 0..5, 0, 25 * MIN);
        fault::fail_writes(&bdir, u32::MAX);
        let err = db.maintain().unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        // Nothing half-written stays behind, and the range is still the head's.
        assert_eq!(ls(&bdir), Vec::<String>::new());
        assert!(db.blocks().is_empty());
        assert_eq!(db.head().min_valid_time(), i64::MIN);
        assert_eq!(db.metrics().head_cuts_failed.load(Ordering::Relaxed), 1);
        // Appends inside the range that failed are accepted again.
        let mut a = db.appender();
        a.append(&lbl(9), 5 * MIN, 1.0, &AppendOptions::default())
            .unwrap();
        assert_eq!(a.commit().unwrap().samples, 1);
        // A second failing pass does not skip ahead either.
        assert!(db.maintain().is_err());
        assert_eq!(db.head().min_valid_time(), i64::MIN);

        fault::clear(d.path());
        db.maintain().unwrap();
        assert!(!db.blocks().is_empty());
        assert!(db.blocks().iter().any(|b| b.meta().min_time == 0));
        let mut w = want(0..5, 0, 25 * MIN);
        w.push((lbl(9), vec![Sample::new(5 * MIN, 1.0)]));
        w.sort_by(|a, b| a.0.cmp(&b.0));
        assert_same(&read_all(&db), &w);
        db.close().unwrap();
    }
    let db = Db::open(d.path(), opts(range)).unwrap();
    let got: Vec<_> = read_all(&db)
        .into_iter()
        .filter(|(l, _)| *l != lbl(9))
        .collect();
    assert_same(&got, &want(0..5, 0, 25 * MIN));
}

#[test]
fn partial_spill_write_on_enospc_does_not_shift_later_chunks() {
    let d = tempfile::tempdir().unwrap();
    let spill_dir = d.path().join("chunks_head");
    let db = Db::open(d.path(), opts(100 * 60 * MIN)).unwrap();
    // 120 samples close a chunk: 20 series x 150 samples closes one chunk each.
    write(&db, 0..20, 0, 150 * STEP);
    assert_same(&read_all(&db), &want(0..20, 0, 150 * STEP));
    // The next closes fail after writing half of their chunk; the chunks stay in memory.
    fault::fail_writes(&spill_dir, 5);
    write(&db, 0..20, 150 * STEP, 400 * STEP);
    assert_eq!(db.stats().head_chunk_spill_failures, 5);
    // Every chunk spilled after the failures reads back from where it was written.
    assert_same(&read_all(&db), &want(0..20, 0, 400 * STEP));
    db.head().spill_idle(i64::MAX);
    assert_same(&read_all(&db), &want(0..20, 0, 400 * STEP));
    // And a block cut from them holds the same.
    db.persist_head_range(0, 100 * 60 * MIN).unwrap();
    assert_same(&read_all(&db), &want(0..20, 0, 400 * STEP));
    db.close().unwrap();
    drop(db);
    let db = Db::open(d.path(), opts(100 * 60 * MIN)).unwrap();
    assert_same(&read_all(&db), &want(0..20, 0, 400 * STEP));
}

#[test]
fn wal_append_failing_on_enospc_leaves_no_torn_record() {
    let d = tempfile::tempdir().unwrap();
    let wal_dir = d.path().join("wal");
    {
        let db = Db::open(d.path(), opts(100 * 60 * MIN)).unwrap();
        write(&db, 0..5, 0, 10 * MIN);
        // Half of the next flush reaches the segment, then the disk is full: refused.
        fault::fail_writes(&wal_dir.join("0"), 1);
        let mut a = db.appender();
        for h in 0..5 {
            let t = 10 * MIN;
            a.append(&lbl(h), t, value(h, t), &AppendOptions::default())
                .unwrap();
        }
        let err = a.commit().unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        // Space is back: later records are acknowledged and must all be readable after a crash.
        write(&db, 0..5, 10 * MIN + STEP, 20 * MIN);
        // No close: the next open replays the log as after a crash.
        drop(db);
    }
    let db = Db::open(d.path(), opts(100 * 60 * MIN)).unwrap();
    assert_eq!(db.metrics().wal_corruptions.load(Ordering::Relaxed), 0);
    // The refused sample may be there or not; every acknowledged one must be.
    let got: Vec<_> = read_all(&db)
        .into_iter()
        .map(|(l, s)| (l, s.into_iter().filter(|x| x.t != 10 * MIN).collect()))
        .collect();
    let w: Vec<_> = want(0..5, 0, 20 * MIN)
        .into_iter()
        .map(|(l, s)| (l, s.into_iter().filter(|x| x.t != 10 * MIN).collect()))
        .collect();
    assert_same(&got, &w);
}

fn checkpoints(wal: &Path) -> Vec<String> {
    ls(wal)
        .into_iter()
        .filter(|n| n.starts_with("checkpoint"))
        .collect()
}

#[test]
fn failed_wal_checkpoint_keeps_the_old_one_and_is_retried() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let wal = d.path().join("wal");
    {
        let db = Db::open(d.path(), opts(range)).unwrap();
        write(&db, 0..5, 0, 25 * MIN);
        db.maintain().unwrap();
        let before = checkpoints(&wal);
        assert_eq!(before.len(), 1, "{before:?}");
        write(&db, 0..5, 25 * MIN, 40 * MIN);
        fault::fail_writes(&wal.join("checkpoint"), u32::MAX);
        let err = db.maintain().unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        // The cut itself succeeded; the old checkpoint and every segment stay, no temp is left.
        assert_eq!(db.blocks().len(), 2);
        assert_eq!(checkpoints(&wal), before);
        assert_eq!(db.metrics().checkpoints_failed.load(Ordering::Relaxed), 1);
        // Retried on every pass until it works.
        assert!(db.maintain().is_err());
        assert_eq!(checkpoints(&wal), before);
        fault::clear(d.path());
        db.maintain().unwrap();
        let after = checkpoints(&wal);
        assert_eq!(after.len(), 1);
        assert_ne!(after, before);
        assert_same(&read_all(&db), &want(0..5, 0, 40 * MIN));
        write(&db, 0..5, 40 * MIN, 45 * MIN);
        drop(db);
    }
    let db = Db::open(d.path(), opts(range)).unwrap();
    assert_same(&read_all(&db), &want(0..5, 0, 45 * MIN));
}

#[test]
fn failed_compaction_keeps_its_sources_and_is_retried() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let bdir = d.path().join("blocks");
    {
        let db = Db::open(d.path(), opts(range)).unwrap();
        write(&db, 0..5, 0, 45 * MIN);
        for i in 0..3 {
            db.persist_head_range(i * range, (i + 1) * range).unwrap();
        }
        let before: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
        assert_eq!(before.len(), 3);
        fault::fail_writes(&bdir, u32::MAX);
        let err = db.maintain().unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        let now: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
        assert_eq!(now, before);
        let mut on_disk = before.clone();
        on_disk.sort();
        assert_eq!(ls(&bdir), on_disk);
        assert_eq!(db.metrics().compactions_failed.load(Ordering::Relaxed), 1);
        assert_same(&read_all(&db), &want(0..5, 0, 45 * MIN));

        fault::clear(d.path());
        db.maintain().unwrap();
        let blocks = db.blocks();
        assert_eq!(blocks.len(), 1, "compaction was retried");
        assert_eq!(blocks[0].meta().compaction.level, 2);
        assert_eq!(ls(&bdir), vec![blocks[0].meta().ulid.clone()]);
        assert_same(&read_all(&db), &want(0..5, 0, 45 * MIN));
        db.close().unwrap();
    }
    let db = Db::open(d.path(), opts(range)).unwrap();
    assert_same(&read_all(&db), &want(0..5, 0, 45 * MIN));
}

#[test]
fn unreadable_spilled_chunk_fails_the_cut_instead_of_persisting_a_gap() {
    let d = tempfile::tempdir().unwrap();
    let range = 100 * MIN;
    {
        let db = Db::open(d.path(), opts(range)).unwrap();
        // 300 samples per series: two closed chunks each, spilled.
        write(&db, 0..5, 0, 300 * STEP);
        assert!(db.head().stats().chunks_spilled > 0);
        // The spill file loses its content (it is a cache of what the WAL holds).
        let spilled = d.path().join("chunks_head").join("00000000");
        fs::OpenOptions::new()
            .write(true)
            .open(&spilled)
            .unwrap()
            .set_len(0)
            .unwrap();
        let err = db.persist_head_range(0, range).unwrap_err();
        assert!(err.to_string().contains("could not be read back"), "{err}");
        assert!(db.blocks().is_empty());
        assert_eq!(ls(&d.path().join("blocks")), Vec::<String>::new());
        assert_eq!(db.head().min_valid_time(), i64::MIN);
        db.close().unwrap();
    }
    // The WAL was left whole, so a restart rebuilds the head and the cut succeeds.
    let db = Db::open(d.path(), opts(range)).unwrap();
    db.persist_head_range(0, range).unwrap();
    assert_same(&read_all(&db), &want(0..5, 0, 300 * STEP));
}
