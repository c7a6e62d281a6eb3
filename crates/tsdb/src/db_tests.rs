//! Tests of the database as a whole: WAL restart, block cutting, compaction, retention, deletion,
//! out-of-order handling and churn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use tocsin_model::{MatchOp, Sample};
#[allow(unused_imports)]
use tocsin_storage::{Querier, Queryable, SelectHints};

const MIN: i64 = 60_000;

fn opts(range: i64) -> DbOptions {
    DbOptions {
        block_range_ms: range,
        retention_ms: 1000 * range,
        ..Default::default()
    }
}

fn lbl(host: usize, metric: &str) -> Labels {
    Labels::from_pairs(&[
        ("__name__", metric),
        ("instance", &format!("host-{host}")),
        ("job", "node"),
    ])
}

fn write(db: &Db, hosts: std::ops::Range<usize>, from: i64, to: i64, step: i64) {
    let mut t = from;
    while t < to {
        let mut a = db.appender();
        for h in hosts.clone() {
            a.append(
                &lbl(h, "cpu"),
                t,
                (t / step) as f64 + h as f64,
                &AppendOptions::default(),
            )
            .unwrap();
        }
        a.commit().unwrap();
        t += step;
    }
}

fn read_all(db: &Db, ms: &[Matcher], mint: i64, maxt: i64) -> Vec<(Labels, Vec<Sample>)> {
    let q = db.querier(mint, maxt).unwrap();
    q.select(&SelectHints::default(), ms)
        .unwrap()
        .map(|s| s.unwrap().collect_samples())
        .collect()
}

fn all() -> Vec<Matcher> {
    vec![Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()]
}

#[test]
fn append_select_and_labels() {
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
    write(&db, 0..3, 0, 100_000, 10_000);
    let got = read_all(&db, &[Matcher::equal("instance", "host-1")], 0, i64::MAX);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.len(), 10);
    assert_eq!(got[0].1[3], Sample::new(30_000, 4.0));
    let q = db.querier(0, i64::MAX).unwrap();
    assert_eq!(
        q.label_names(&[]).unwrap(),
        vec!["__name__", "instance", "job"]
    );
    assert_eq!(
        q.label_values(
            "instance",
            &[Matcher::new(MatchOp::Regex, "instance", "host-(0|2)").unwrap()]
        )
        .unwrap(),
        vec!["host-0", "host-2"]
    );
    let got = read_all(
        &db,
        &[Matcher::new(MatchOp::NotEqual, "instance", "host-1").unwrap()],
        20_000,
        40_000,
    );
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1.len(), 3);
}

#[test]
fn second_open_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let _db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
    let e = Db::open(d.path(), opts(2 * HOUR_MS)).err().unwrap();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
}

#[test]
fn out_of_order_rejected_by_default_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
    write(&db, 0..1, 100_000, 200_000, 10_000);
    let mut a = db.appender();
    a.append(&lbl(0, "cpu"), 50_000, 1.0, &AppendOptions::default())
        .unwrap();
    a.append(&lbl(0, "cpu"), 190_000, 99.0, &AppendOptions::default())
        .unwrap();
    a.append(&lbl(0, "cpu"), 200_000, 1.0, &AppendOptions::default())
        .unwrap();
    let st = a.commit().unwrap();
    assert_eq!(st.rejected_out_of_order, 1);
    assert_eq!(st.rejected_duplicate, 1);
    assert_eq!(st.samples, 1);
    assert!(st.first_rejection.unwrap().contains("50000"));
    assert_eq!(
        db.metrics().rejected_out_of_order.load(Ordering::Relaxed),
        1
    );
}

#[test]
fn out_of_order_window_accepts_and_survives_restart() {
    let d = tempfile::tempdir().unwrap();
    let o = DbOptions {
        ooo_window_ms: 10 * MIN,
        ..opts(2 * HOUR_MS)
    };
    {
        let db = Db::open(d.path(), o.clone()).unwrap();
        write(&db, 0..1, 20 * MIN, 30 * MIN, MIN);
        let mut a = db.appender();
        a.append(
            &lbl(0, "cpu"),
            25 * MIN + 30_000,
            7.5,
            &AppendOptions::default(),
        )
        .unwrap();
        a.append(&lbl(0, "cpu"), 5 * MIN, 1.0, &AppendOptions::default())
            .unwrap();
        let st = a.commit().unwrap();
        assert_eq!((st.samples, st.rejected_too_old), (1, 1));
        db.close().unwrap();
    }
    let db = Db::open(d.path(), o).unwrap();
    let got = read_all(&db, &all(), 0, i64::MAX);
    let ts: Vec<i64> = got[0].1.iter().map(|s| s.t).collect();
    assert_eq!(ts.len(), 11);
    assert!(ts.windows(2).all(|w| w[0] < w[1]));
    assert!(ts.contains(&(25 * MIN + 30_000)));
}

#[test]
fn wal_replay_restores_head() {
    let d = tempfile::tempdir().unwrap();
    {
        let db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
        write(&db, 0..50, 0, 60 * MIN, 10_000);
        // No close: a crash keeps whatever was flushed at commit.
    }
    let db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
    let got = read_all(&db, &all(), 0, i64::MAX);
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|(_, s)| s.len() == 360));
}

#[test]
fn head_cut_to_block_compaction_and_restart() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    {
        let db = Db::open(d.path(), opts(range)).unwrap();
        // 95 minutes of data: the head cuts ranges until it spans at most 1.5 ranges.
        write(&db, 0..20, 0, 95 * MIN, 10_000);
        db.maintain().unwrap();
        let blocks = db.blocks();
        assert!(!blocks.is_empty());
        // 3x range windows fully behind the head were compacted into level-2 blocks.
        assert!(
            blocks.iter().any(|b| b.meta().compaction.level >= 2),
            "{:?}",
            blocks.iter().map(|b| b.meta().clone()).collect::<Vec<_>>()
        );
        assert!(db.head().min_valid_time() >= 80 * MIN);
        let got = read_all(&db, &all(), 0, i64::MAX);
        assert_eq!(got.len(), 20);
        for (_, s) in &got {
            assert_eq!(s.len(), 570);
            assert!(s.windows(2).all(|w| w[0].t < w[1].t));
        }
        db.close().unwrap();
    }
    let db = Db::open(d.path(), opts(range)).unwrap();
    let got = read_all(&db, &all(), 0, i64::MAX);
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|(_, s)| s.len() == 570));
    // Samples before the persisted range are refused.
    let mut a = db.appender();
    a.append(&lbl(0, "cpu"), MIN, 1.0, &AppendOptions::default())
        .unwrap();
    assert_eq!(a.commit().unwrap().rejected_too_old, 1);
}

#[test]
fn retention_by_time_and_size() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let db = Db::open(
        d.path(),
        DbOptions {
            retention_ms: 40 * MIN,
            ..opts(range)
        },
    )
    .unwrap();
    write(&db, 0..5, 0, 120 * MIN, 10_000);
    db.maintain().unwrap();
    let min_block = db.blocks().iter().map(|b| b.meta().min_time).min().unwrap();
    assert!(
        min_block >= 120 * MIN - 40 * MIN - 3 * range,
        "oldest block starts at {min_block}"
    );
    assert!(
        db.metrics()
            .blocks_deleted_retention
            .load(Ordering::Relaxed)
            > 0
    );

    let d2 = tempfile::tempdir().unwrap();
    let db2 = Db::open(
        d2.path(),
        DbOptions {
            retention_bytes: 1,
            ..opts(range)
        },
    )
    .unwrap();
    write(&db2, 0..5, 0, 60 * MIN, 10_000);
    db2.maintain().unwrap();
    assert!(db2.blocks().is_empty());
}

#[test]
fn delete_in_head_and_blocks_survives_restart_and_compaction() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let victim = [Matcher::equal("instance", "host-1")];
    {
        let db = Db::open(d.path(), opts(range)).unwrap();
        write(&db, 0..3, 0, 40 * MIN, 10_000);
        db.maintain().unwrap();
        assert!(!db.blocks().is_empty());
        let n = db.delete(5 * MIN, 35 * MIN, &victim).unwrap();
        assert!(n >= 2, "deleted in {n} places");
        let got = read_all(&db, &victim, 0, i64::MAX);
        assert!(got[0].1.iter().all(|s| s.t < 5 * MIN || s.t > 35 * MIN));
        let other = read_all(&db, &[Matcher::equal("instance", "host-2")], 0, i64::MAX);
        assert_eq!(other[0].1.len(), 240);
        db.maintain().unwrap();
        assert!(db.blocks().iter().all(|b| !b.has_tombstones()));
    }
    let db = Db::open(d.path(), opts(range)).unwrap();
    let got = read_all(&db, &victim, 0, i64::MAX);
    assert_eq!(got[0].1.len(), 240 - 181);
}

#[test]
fn churned_series_leave_the_head() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let db = Db::open(d.path(), opts(range)).unwrap();
    // Generation g of 10 hosts lives for 10 minutes; 12 generations.
    for g in 0..12 {
        write(
            &db,
            g * 10..g * 10 + 10,
            g as i64 * 10 * MIN,
            (g as i64 + 1) * 10 * MIN,
            10_000,
        );
        db.maintain().unwrap();
    }
    // The head keeps at most the generations inside its last 1.5 ranges.
    assert!(
        db.head().num_series() <= 30,
        "head series {}",
        db.head().num_series()
    );
    assert!(db.head().series_removed.load(Ordering::Relaxed) >= 90);
    let got = read_all(&db, &all(), 0, i64::MAX);
    assert_eq!(got.len(), 120);
}

#[test]
fn read_only_open_sees_live_data() {
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path(), opts(10 * MIN)).unwrap();
    write(&db, 0..4, 0, 30 * MIN, 10_000);
    db.maintain().unwrap();
    let ro = Db::open_read_only(d.path()).unwrap();
    let got = read_all(&ro, &all(), 0, i64::MAX);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|(_, s)| s.len() == 180));
}

#[test]
fn append_by_reference_and_stale_reference_after_deletion() {
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
    let mut a = db.appender();
    let r = a
        .append(&lbl(0, "cpu"), 1_000, 1.0, &AppendOptions::default())
        .unwrap();
    assert_ne!(r, 0);
    assert!(a.append_ref(r, 2_000, 2.0).unwrap());
    // A reference that was never handed out is refused, not misapplied.
    assert!(!a.append_ref(0, 3_000, 3.0).unwrap());
    assert!(!a.append_ref(r ^ 0xffff, 3_000, 3.0).unwrap());
    let st = a.commit().unwrap();
    assert_eq!(st.samples, 2);
    let got = read_all(&db, &all(), 0, i64::MAX);
    assert_eq!(
        got[0].1,
        vec![Sample::new(1_000, 1.0), Sample::new(2_000, 2.0)]
    );
    // Out-of-order through a reference is counted like any other rejection.
    let mut a = db.appender();
    assert!(a.append_ref(r, 1_500, 9.0).unwrap());
    assert_eq!(a.commit().unwrap().rejected_out_of_order, 1);
}

#[test]
fn postings_stats_rank_metric_names_and_label_pairs() {
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path(), opts(2 * HOUR_MS)).unwrap();
    write(&db, 0..3, 0, 20_000, 10_000);
    let mut a = db.appender();
    a.append(&lbl(0, "mem"), 0, 1.0, &AppendOptions::default())
        .unwrap();
    a.commit().unwrap();
    let st = db.head().postings_stats(2);
    // __name__ {cpu, mem}, instance {host-0..2}, job {node}.
    assert_eq!(st.num_label_pairs, 6);
    assert_eq!(
        st.series_count_by_metric_name,
        vec![("cpu".to_string(), 3), ("mem".to_string(), 1)]
    );
    assert_eq!(
        st.label_value_count_by_label_name,
        vec![("instance".to_string(), 3), ("__name__".to_string(), 2)]
    );
    assert_eq!(
        st.series_count_by_label_value_pair[0],
        ("job=node".to_string(), 4)
    );
    // "host-N" is 6 bytes, in 4 series.
    assert_eq!(
        st.memory_in_bytes_by_label_name[0],
        ("instance".to_string(), 24)
    );
    assert!(db
        .head()
        .postings_stats(0)
        .series_count_by_metric_name
        .is_empty());
}

/// Series of varied shapes for head-cut tests: label sets that are prefixes of others, optional
/// labels, `n` distinct instances (so many symbols), and lifetimes inside, across and after the
/// cut range [0, cut).
fn cut_fixture(n: usize, cut: i64) -> Vec<(Labels, Vec<Sample>)> {
    let mut out = Vec::new();
    for i in 0..n {
        let inst = format!("host-{i:06}");
        let mut ls = vec![
            Labels::from_pairs(&[("__name__", "up"), ("instance", inst.as_str())]),
            Labels::from_pairs(&[
                ("__name__", "up"),
                ("instance", inst.as_str()),
                ("job", "node"),
            ]),
        ];
        if i % 3 == 0 {
            ls.push(Labels::from_pairs(&[
                ("__name__", "cpu"),
                ("instance", inst.as_str()),
                ("mode", ["idle", "user", "system"][(i / 3) % 3]),
                ("zz", "last"),
            ]));
        }
        for (k, l) in ls.into_iter().enumerate() {
            // Alive across the cut, only before it, or only after it.
            let (from, to) = match (i + k) % 3 {
                0 => (cut / 2, cut + cut / 2),
                1 => (0, cut / 3),
                _ => (cut + 1000, cut + cut / 2),
            };
            let step = cut / 8;
            let s: Vec<Sample> = (0..)
                .map(|j| from + j * step + (i as i64 % 7))
                .take_while(|t| *t < to)
                .map(|t| Sample::new(t, (t / 1000 + i as i64) as f64))
                .collect();
            out.push((l, s));
        }
    }
    out
}

fn check_head_cut(n: usize) {
    use crate::index::IndexReader;
    let cut = HOUR_MS;
    let d = tempfile::tempdir().unwrap();
    let db = Db::open(d.path(), opts(cut)).unwrap();
    let data = cut_fixture(n, cut);
    // Appended in time order, as a scrape would.
    let mut all: Vec<(i64, usize)> = data
        .iter()
        .enumerate()
        .flat_map(|(k, (_, s))| s.iter().map(move |x| (x.t, k)))
        .collect();
    all.sort();
    let mut pos = vec![0usize; data.len()];
    for batch in all.chunks(5000) {
        let mut a = db.appender();
        for &(_, k) in batch {
            let x = data[k].1[pos[k]];
            pos[k] += 1;
            a.append(&data[k].0, x.t, x.v, &AppendOptions::default())
                .unwrap();
        }
        a.commit().unwrap();
    }
    let before = db.head().num_series();
    let meta = db.persist_head_range(0, cut).unwrap().unwrap();

    let expected: std::collections::BTreeMap<Labels, Vec<Sample>> = data
        .iter()
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter().filter(|x| x.t < cut).copied().collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    assert_eq!(meta.stats.num_series, expected.len() as u64);
    assert_eq!(
        meta.stats.num_samples,
        expected.values().map(|s| s.len() as u64).sum::<u64>()
    );
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    let b = &blocks[0];
    let got: Vec<(Labels, Vec<Sample>)> = b
        .select(i64::MIN, i64::MAX, &[])
        .unwrap()
        .map(|s| s.unwrap().collect_samples())
        .collect();
    assert_eq!(got.len(), expected.len());
    for ((gl, gs), (el, es)) in got.iter().zip(&expected) {
        assert_eq!(gl, el);
        assert_eq!(gs, es, "samples of {gl}");
    }
    // Postings: series ids are positions in label order.
    let mut want: std::collections::BTreeMap<(String, String), Vec<u32>> = Default::default();
    for (id, l) in expected.keys().enumerate() {
        for l in l.iter() {
            want.entry((l.name.clone(), l.value.clone()))
                .or_default()
                .push(id as u32);
        }
    }
    for ((name, value), ids) in &want {
        let p: Vec<u32> = b.postings(name, value).iter().collect();
        assert_eq!(&p, ids, "postings of {name}={value}");
    }
    let names: std::collections::BTreeSet<&str> = want.keys().map(|k| k.0.as_str()).collect();
    for name in names {
        let vals: Vec<String> = want
            .keys()
            .filter(|k| k.0 == name)
            .map(|k| k.1.clone())
            .collect();
        assert_eq!(IndexReader::label_values(&**b, name), vals);
    }
    // Series with nothing after the cut left the head.
    let left = data
        .iter()
        .filter(|(_, s)| s.iter().any(|x| x.t >= cut))
        .count() as u64;
    assert_eq!(db.head().num_series(), left);
    assert!(left < before);
    // And the whole range reads back through the database (block + head).
    let got = read_all(&db, &[], i64::MIN, i64::MAX);
    assert_eq!(got.len(), data.len());
}

#[test]
fn head_cut_round_trips_through_the_block_reader() {
    check_head_cut(300);
}

#[test]
fn head_cut_with_many_series_and_symbols() {
    // > 65,536 symbols: label ids take three bytes in the cut's sort keys.
    check_head_cut(70_000);
}

#[test]
fn persisted_idle_series_release_their_head_state() {
    let d = tempfile::tempdir().unwrap();
    let range = 10 * MIN;
    let db = Db::open(d.path(), opts(range)).unwrap();
    // Hosts 0..50 stop at 5 min; hosts 50..60 keep going past the cut.
    write(&db, 0..60, 0, 5 * MIN, 10_000);
    write(&db, 50..60, 5 * MIN, 20 * MIN, 10_000);
    let h = db.head();
    let busy = h.stats().heap_bytes;
    // Idle series give up their open chunk once spilled.
    h.spill_idle(6 * MIN);
    let idle = h.stats();
    assert!(idle.heap_bytes < busy, "{} !< {busy}", idle.heap_bytes);
    db.persist_head_range(0, range).unwrap().unwrap();
    assert_eq!(h.num_series(), 10);
    assert!(h.stats().heap_bytes < idle.heap_bytes);
    // Their postings entries and label values are gone...
    let want: Vec<String> = (50..60).map(|i| format!("host-{i}")).collect();
    assert_eq!(h.label_values("instance", &[]), want);
    assert_eq!(h.postings(&[]).len(), 10);
    // ...and so is their hash entry: the same labels make a new series.
    let mut a = db.appender();
    a.append(&lbl(3, "cpu"), 30 * MIN, 1.0, &AppendOptions::default())
        .unwrap();
    assert_eq!(a.commit().unwrap().series_created, 1);
    assert_eq!(h.num_series(), 11);
}
