//! Block round trips, queries, tombstones, compaction, atomicity and corruption handling, plus an
//! ignored size benchmark (`cargo test -p tocsin-tsdb --release --lib block::tests::bytes_per_sample -- --ignored --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tocsin_model::{Labels, MatchOp, Matcher, Sample, STALE_NAN};

use super::*;
use crate::index::IndexReader;

type Data = BTreeMap<Labels, Vec<Sample>>;

fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
    Matcher::new(op, n, v).unwrap()
}

/// Every label name and value of the series, as a writer needs them up front.
fn symbols<'a>(series: impl IntoIterator<Item = &'a Labels>) -> Vec<String> {
    series
        .into_iter()
        .flat_map(|l| {
            l.iter()
                .flat_map(|l| [l.name.clone(), l.value.clone()])
                .collect::<Vec<_>>()
        })
        .collect()
}

fn write(dir: &Path, data: &Data, mint: i64, maxt: i64) -> Block {
    let mut w = BlockWriter::new(dir, mint, maxt, 1, vec![], symbols(data.keys())).unwrap();
    for (l, s) in data {
        w.add_series(l, s).unwrap();
    }
    let meta = w.finish().unwrap().unwrap();
    Block::open(&dir.join(&meta.ulid)).unwrap()
}

fn select(b: &Block, mint: i64, maxt: i64, ms: &[Matcher]) -> Data {
    b.select(mint, maxt, ms)
        .unwrap()
        .map(|s| s.unwrap().collect_samples())
        .collect()
}

fn expected(data: &Data, mint: i64, maxt: i64, ms: &[Matcher]) -> Data {
    data.iter()
        .filter(|(l, _)| ms.iter().all(|m| m.matches(l.get(&m.name).unwrap_or(""))))
        .map(|(l, s)| {
            (
                l.clone(),
                s.iter()
                    .copied()
                    .filter(|s| s.t >= mint && s.t <= maxt)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

fn assert_data_eq(a: &Data, b: &Data) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (l, s) in a {
        let t = &b[l];
        assert_eq!(s.len(), t.len(), "{l}");
        for (x, y) in s.iter().zip(t) {
            assert!(x.bit_eq(y), "{l}: {x:?} vs {y:?}");
        }
    }
}

fn fixture(mint: i64, n: i64, step: i64) -> Data {
    let mut d = Data::new();
    for (k, name) in [
        "up",
        "node_cpu_seconds_total",
        "node_disk_read_bytes_total",
        "http_requests_total",
    ]
    .iter()
    .enumerate()
    {
        for inst in ["a:9100", "b:9100", "c:9100"] {
            for mode in ["", "idle", "user"] {
                let l = Labels::from_pairs(&[
                    ("__name__", *name),
                    ("instance", inst),
                    ("mode", mode),
                    ("job", "node"),
                ]);
                let s: Vec<Sample> = (0..n)
                    .map(|i| {
                        let v = match k {
                            0 => 1.0,
                            1 => (i * 3) as f64,
                            2 => (i as f64) * 0.25 + 0.1,
                            _ if i == 5 => STALE_NAN,
                            _ => i as f64,
                        };
                        Sample::new(mint + i * step + (i % 3), v)
                    })
                    .collect();
                d.insert(l, s);
            }
        }
    }
    d
}

#[test]
fn round_trip_all_matchers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture(1000, 500, 1000);
    let b = write(tmp.path(), &data, 0, 1_000_000);
    assert_eq!(b.meta().stats.num_series, data.len() as u64);
    assert_eq!(b.meta().stats.num_samples, 500 * data.len() as u64);
    assert!(b.size_bytes() > 0);
    use MatchOp::*;
    let cases = vec![
        vec![],
        vec![m(Equal, "__name__", "up")],
        vec![m(NotEqual, "mode", "idle")],
        vec![m(Equal, "mode", "")],
        vec![m(Regex, "__name__", "node_.*")],
        vec![m(Regex, "mode", "idle|user")],
        vec![m(Regex, "mode", "idle|")],
        vec![m(Regex, "instance", "(a|c):.*")],
        vec![m(NotRegex, "instance", "a.*"), m(Equal, "job", "node")],
        vec![m(Equal, "__name__", "missing")],
        vec![m(Equal, "job", "node"), m(NotRegex, "mode", ".+")],
    ];
    for ms in &cases {
        for (lo, hi) in [
            (i64::MIN, i64::MAX),
            (1000, 1000),
            (50_000, 120_000),
            (600_000, 700_000),
            (-10, 999),
        ] {
            assert_data_eq(&select(&b, lo, hi, ms), &expected(&data, lo, hi, ms));
        }
    }
    // IndexReader surface.
    assert_eq!(IndexReader::label_values(&b, "mode"), vec!["idle", "user"]);
    assert_eq!(
        b.label_values_with_prefix("__name__", "node_"),
        vec!["node_cpu_seconds_total", "node_disk_read_bytes_total"]
    );
    assert_eq!(b.postings("mode", "nope").len(), 0);
    assert_eq!(b.all_postings().len(), data.len() as u64);
}

#[test]
fn label_names_and_values_with_matchers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = fixture(0, 10, 1000);
    data.insert(
        Labels::from_pairs(&[("__name__", "solo"), ("extra", "x")]),
        vec![Sample::new(5, 1.0)],
    );
    let b = write(tmp.path(), &data, 0, 100_000);
    assert_eq!(
        b.label_names(&[]).unwrap(),
        vec!["__name__", "extra", "instance", "job", "mode"]
    );
    assert_eq!(
        b.label_names(&[m(MatchOp::Equal, "__name__", "solo")])
            .unwrap(),
        vec!["__name__", "extra"]
    );
    assert_eq!(
        b.label_names(&[m(MatchOp::Equal, "mode", "idle")]).unwrap(),
        vec!["__name__", "instance", "job", "mode"]
    );
    assert_eq!(b.label_values("mode", &[]).unwrap(), vec!["idle", "user"]);
    assert_eq!(
        b.label_values("mode", &[m(MatchOp::Equal, "__name__", "solo")])
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        b.label_values(
            "instance",
            &[
                m(MatchOp::Equal, "__name__", "up"),
                m(MatchOp::NotEqual, "instance", "b:9100")
            ]
        )
        .unwrap(),
        vec!["a:9100", "c:9100"]
    );
    assert_eq!(
        b.label_values("__name__", &[m(MatchOp::Regex, "instance", ".+")])
            .unwrap()
            .len(),
        4
    );
    assert!(b.label_values("nope", &[]).unwrap().is_empty());
}

#[test]
fn tombstones_hide_data_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture(0, 100, 1000);
    let b = write(tmp.path(), &data, 0, 1_000_000);
    assert!(!b.has_tombstones());
    let ms = [m(MatchOp::Equal, "__name__", "up")];
    assert_eq!(b.delete(10_000, 19_999, &ms).unwrap(), 9);
    assert_eq!(b.delete(500_000, 600_000, &ms).unwrap(), 0, "no data there");
    let ms2 = [
        m(MatchOp::Equal, "instance", "a:9100"),
        m(MatchOp::Equal, "mode", "idle"),
    ];
    assert_eq!(b.delete(i64::MIN, i64::MAX, &ms2).unwrap(), 4);
    assert!(b.has_tombstones());
    let check = |b: &Block| {
        let got = select(b, i64::MIN, i64::MAX, &[]);
        let mut want = data.clone();
        want.retain(|l, _| !(l.get("instance") == Some("a:9100") && l.get("mode") == Some("idle")));
        for (l, s) in want.iter_mut() {
            if l.get("__name__") == Some("up") {
                s.retain(|s| !(10_000..=19_999).contains(&s.t));
            }
        }
        assert_data_eq(&got, &want);
    };
    check(&b);
    let dir = b.dir().to_path_buf();
    drop(b);
    let b = Block::open(&dir).unwrap();
    assert!(b.has_tombstones());
    // up{a:9100,idle} got both ranges, merged into one interval.
    assert_eq!(b.num_tombstones(), 9 + 4 - 1);
    check(&b);
    // Stats are from the index, tombstones not applied.
    assert_eq!(
        b.series_stats().unwrap().iter().map(|x| x.1).sum::<u64>(),
        b.meta().stats.num_samples
    );
}

#[test]
fn compaction_merges_overlapping_and_adjacent_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    // b1: [0, 100s), b2 overlaps b1 with different values at shared timestamps, b3 adjacent.
    let d1 = fixture(0, 100, 1000);
    let mut d2 = Data::new();
    for (l, s) in d1.iter().take(20) {
        d2.insert(
            l.clone(),
            s.iter()
                .skip(50)
                .map(|s| Sample::new(s.t, -1.0))
                .chain((0..30).map(|i| Sample::new(100_000 + i * 500, 7.0)))
                .collect(),
        );
    }
    d2.insert(
        Labels::from_pairs(&[("__name__", "only_in_b2")]),
        vec![Sample::new(3, 3.0)],
    );
    let d3 = fixture(200_000, 50, 1000);
    let b1 = Arc::new(write(tmp.path(), &d1, 0, 100_000));
    let b2 = Arc::new(write(tmp.path(), &d2, 0, 200_000));
    let b3 = Arc::new(write(tmp.path(), &d3, 200_000, 300_000));
    let ms = [m(MatchOp::Equal, "instance", "c:9100")];
    b3.delete(210_000, 220_000, &ms).unwrap();

    let meta = compact(
        tmp.path(),
        &[b1.clone(), b2.clone(), b3.clone()],
        0,
        300_000,
    )
    .unwrap()
    .unwrap();
    assert_eq!(meta.compaction.level, 2);
    let mut srcs = vec![
        b1.meta().ulid.clone(),
        b2.meta().ulid.clone(),
        b3.meta().ulid.clone(),
    ];
    srcs.sort();
    assert_eq!(meta.compaction.sources, srcs);
    let c = Block::open(&tmp.path().join(&meta.ulid)).unwrap();

    let mut want = Data::new();
    for d in [&d1, &d2, &d3] {
        for (l, s) in d {
            let e = want.entry(l.clone()).or_default();
            let mut map: BTreeMap<i64, Sample> = e.iter().map(|s| (s.t, *s)).collect();
            for s in s {
                map.insert(s.t, *s);
            }
            *e = map.into_values().collect();
        }
    }
    for (l, s) in want.iter_mut() {
        if l.get("instance") == Some("c:9100") {
            s.retain(|s| !(210_000..=220_000).contains(&s.t));
        }
    }
    assert_data_eq(&select(&c, i64::MIN, i64::MAX, &[]), &want);
    assert_eq!(
        c.meta().stats.num_samples,
        want.values().map(|v| v.len() as u64).sum::<u64>()
    );
    assert!(!c.has_tombstones());

    // Rewriting one block applies its tombstones; deleting everything leaves no block.
    let before = std::fs::read_dir(tmp.path()).unwrap().count();
    c.delete(i64::MIN, i64::MAX, &[]).unwrap();
    let c = Arc::new(c);
    assert!(compact(tmp.path(), &[c], 0, 300_000).unwrap().is_none());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), before);
}

#[test]
fn long_series_split_into_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    let n = (chunks::MAX_CHUNK_SAMPLES * 2 + 17) as i64;
    data.insert(
        Labels::from_pairs(&[("__name__", "x")]),
        (0..n)
            .map(|i| Sample::new(i * 10, (i % 7) as f64 * 0.5))
            .collect(),
    );
    let b = write(tmp.path(), &data, 0, n * 10);
    assert_eq!(b.meta().stats.num_chunks, 3);
    assert_data_eq(&select(&b, i64::MIN, i64::MAX, &[]), &data);
    for (lo, hi) in [(0, 5), (40_000, 45_000), (n * 10 - 30, n * 10)] {
        assert_data_eq(&select(&b, lo, hi, &[]), &expected(&data, lo, hi, &[]));
    }
}

#[test]
fn writer_validates_and_empty_finish_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = BlockWriter::new(tmp.path(), 0, 100, 1, vec![], ["a", "1", "2", "3"]).unwrap();
    let a = Labels::from_pairs(&[("a", "1")]);
    let b = Labels::from_pairs(&[("a", "2")]);
    w.add_series(&b, &[Sample::new(1, 1.0)]).unwrap();
    assert!(
        w.add_series(&a, &[Sample::new(1, 1.0)]).is_err(),
        "descending labels"
    );
    let c = Labels::from_pairs(&[("a", "3")]);
    assert!(
        w.add_series(&c, &[Sample::new(100, 1.0)]).is_err(),
        "outside range"
    );
    assert!(
        w.add_series(&c, &[Sample::new(5, 1.0), Sample::new(5, 1.0)])
            .is_err(),
        "duplicate timestamps"
    );
    let d = Labels::from_pairs(&[("a", "4")]);
    assert!(
        w.add_series(&d, &[Sample::new(5, 1.0)]).is_err(),
        "label missing from the symbols"
    );
    assert!(
        w.add_series_ids(&[0, 99], &[Sample::new(5, 1.0)]).is_err(),
        "symbol id out of range"
    );
    assert!(
        w.add_series_ids(&[0, 1, 2], &[Sample::new(5, 1.0)])
            .is_err(),
        "odd number of ids"
    );
    drop(w);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "abandoned writer cleans up"
    );
    let w = BlockWriter::new(tmp.path(), 0, 100, 1, vec![], ["a"]).unwrap();
    assert!(w.finish().unwrap().is_none());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn tmp_dirs_are_not_blocks_and_are_cleaned() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture(0, 10, 1000);
    let b = write(tmp.path(), &data, 0, 100_000);
    let ulid = b.meta().ulid.clone();
    assert!(is_block_dir_name(&ulid));
    let leftover = tmp.path().join(format!("{}{}", new_ulid(), TMP_SUFFIX));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("chunks"), b"partial").unwrap();
    assert!(Block::open(&leftover).is_err());
    assert!(!is_block_dir_name(
        &leftover.file_name().unwrap().to_string_lossy()
    ));
    assert_eq!(cleanup_tmp(tmp.path()).unwrap(), 1);
    assert!(!leftover.exists());
    assert!(tmp.path().join(&ulid).exists());
    // ULIDs sort by time and are unique.
    let (u1, u2) = (new_ulid(), new_ulid());
    assert_eq!(u1.len(), 26);
    assert_ne!(u1, u2);
}

fn corrupt_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x55;
    std::fs::write(path, b).unwrap();
}

#[test]
fn corruption_is_reported_not_panicked() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture(0, 200, 1000);
    let dir = write(tmp.path(), &data, 0, 1_000_000).dir().to_path_buf();
    let copy = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        for f in [META_FILE, INDEX_FILE, CHUNKS_FILE, TOMBSTONES_FILE] {
            std::fs::copy(dir.join(f), d.join(f)).unwrap();
        }
        d
    };
    let ilen = std::fs::metadata(dir.join(INDEX_FILE)).unwrap().len() as usize;
    for at in [0, 4, 10, ilen / 2, ilen - 10, ilen - 1] {
        let d = copy(&format!("i{at}"));
        corrupt_byte(&d.join(INDEX_FILE), at);
        let e = Block::open(&d).unwrap_err().to_string();
        assert!(e.contains("index"), "{e}");
    }
    let d = copy("trunc");
    std::fs::write(d.join(INDEX_FILE), b"TIDX").unwrap();
    assert!(Block::open(&d).unwrap_err().to_string().contains("index"));

    let clen = std::fs::metadata(dir.join(CHUNKS_FILE)).unwrap().len() as usize;
    for at in [clen / 3, clen / 2, clen - 1] {
        let d = copy(&format!("c{at}"));
        corrupt_byte(&d.join(CHUNKS_FILE), at);
        let b = Block::open(&d).unwrap();
        let r: Result<Vec<_>, _> = b.select(i64::MIN, i64::MAX, &[]).unwrap().collect();
        let e = r.unwrap_err().to_string();
        assert!(e.contains("chunks") && e.contains("checksum"), "{e}");
    }
    let d = copy("c0");
    corrupt_byte(&d.join(CHUNKS_FILE), 0);
    assert!(Block::open(&d).unwrap_err().to_string().contains("chunks"));
    let d = copy("ctrunc");
    std::fs::write(
        d.join(CHUNKS_FILE),
        &std::fs::read(dir.join(CHUNKS_FILE)).unwrap()[..clen / 2],
    )
    .unwrap();
    let b = Block::open(&d).unwrap();
    let r: Result<Vec<_>, _> = b.select(i64::MIN, i64::MAX, &[]).unwrap().collect();
    assert!(r.unwrap_err().to_string().contains("beyond end"));

    let d = copy("t");
    corrupt_byte(&d.join(TOMBSTONES_FILE), 5);
    assert!(Block::open(&d)
        .unwrap_err()
        .to_string()
        .contains("tombstones"));
    let d = copy("m");
    std::fs::write(d.join(META_FILE), b"{").unwrap();
    assert!(Block::open(&d)
        .unwrap_err()
        .to_string()
        .contains("meta.json"));
}

/// A node-exporter-like fleet: ~6 labels per series, 2 h at 10 s with scrape jitter; integer
/// counters with small increments, gauges with 2-3 significant digits, ~10% constant series.
fn fleet(num_series: usize, seed: u64) -> Vec<(Labels, Vec<Sample>)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let start = 1_700_000_000_000i64;
    let n = 720;
    let per_instance = 500;
    let metrics = [
        ("node_cpu_seconds_total", "cpu", 'c'),
        ("node_network_receive_bytes_total", "device", 'c'),
        ("node_network_transmit_packets_total", "device", 'c'),
        ("node_disk_io_time_seconds_total", "device", 'c'),
        ("node_filesystem_avail_bytes", "mountpoint", 'g'),
        ("node_memory_MemAvailable_bytes", "", 'g'),
        ("node_load1", "", 'g'),
        ("node_hwmon_temp_celsius", "sensor", 'g'),
        ("node_filesystem_size_bytes", "mountpoint", 'k'),
        ("node_cpu_frequency_max_hertz", "cpu", 'k'),
    ];
    let mut out = Vec::with_capacity(num_series);
    let mut inst = 0;
    while out.len() < num_series {
        let instance = format!(
            "10.{}.{}.{}:9100",
            inst / 65536,
            (inst / 256) % 256,
            inst % 256
        );
        let dc = format!("dc{}", inst % 4);
        let phase: i64 = rng.gen_range(0..10_000);
        // One scrape stamps all series of an instance at once, so jitter is per instance and scrape.
        let ts: Vec<i64> = (0..n)
            .map(|i| start + phase + i * 10_000 + rng.gen_range(-3..=3))
            .collect();
        for k in 0..per_instance {
            let (name, extra, kind) = metrics[k % metrics.len()];
            // Label-less gauges stand for node exporter's many distinct single-series metrics.
            let name = if extra.is_empty() {
                format!("{name}_{}", k / metrics.len())
            } else {
                name.to_string()
            };
            let mut pairs = vec![
                ("__name__", name.clone()),
                ("instance", instance.clone()),
                ("job", "node".to_string()),
                ("dc", dc.clone()),
            ];
            if !extra.is_empty() {
                pairs.push((extra, format!("{extra}{}", k / metrics.len())));
            }
            if name == "node_cpu_seconds_total" {
                pairs.push((
                    "mode",
                    ["idle", "user", "system", "iowait"][(k / metrics.len()) % 4].to_string(),
                ));
            }
            let labels = Labels::from_pairs(&pairs);
            let mut v: f64;
            let samples: Vec<Sample> = match kind {
                'c' => {
                    v = rng.gen_range(0..1_000_000_000u64) as f64;
                    let big = rng.gen_bool(0.3);
                    ts.iter()
                        .map(|&t| {
                            v += if big {
                                rng.gen_range(0..5_000u64)
                            } else {
                                rng.gen_range(0..=10u64)
                            } as f64;
                            Sample::new(t, v)
                        })
                        .collect()
                }
                'g' => {
                    let mag = 10f64.powi(rng.gen_range(-1..10));
                    v = rng.gen_range(1.0..10.0) * mag;
                    let digits = rng.gen_range(2..=3);
                    ts.iter()
                        .map(|&t| {
                            v = (v * rng.gen_range(0.99..1.01)).max(mag * 0.1);
                            let p = 10f64.powi(v.log10().floor() as i32 + 1 - digits);
                            Sample::new(t, (v / p).round() * p)
                        })
                        .collect()
                }
                _ => {
                    let c = rng.gen_range(1..1000) as f64 * 1e6;
                    ts.iter().map(|&t| Sample::new(t, c)).collect()
                }
            };
            out.push((labels, samples));
            if out.len() == num_series {
                break;
            }
        }
        inst += 1;
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Bits Prometheus's XOR chunks (delta-of-delta timestamps, XOR values, 120 samples per chunk)
/// would need for the same samples, counted from the published scheme, plus ~8 bytes of chunk
/// framing (length, encoding, crc32) per chunk. Index not included.
fn gorilla_bytes(s: &[Sample]) -> f64 {
    let mut bits = 0u64;
    for c in s.chunks(120) {
        bits += (2 + 8 + 8 + 2) * 8; // sample count, first timestamp varint, first value, first delta
        let (mut pt, mut pd, mut pv) = (c[0].t, 0i64, c[0].v.to_bits());
        let (mut lead, mut trail) = (u32::MAX, 0u32);
        for (i, x) in c.iter().enumerate().skip(1) {
            let d = x.t - pt;
            if i > 1 {
                let dod = d - pd;
                let fits = |b: u32| dod >= -(1 << (b - 1)) && dod < (1 << (b - 1));
                bits += if dod == 0 {
                    1
                } else if fits(14) {
                    16
                } else if fits(17) {
                    20
                } else if fits(20) {
                    24
                } else {
                    68
                };
            }
            let xor = x.v.to_bits() ^ pv;
            if xor == 0 {
                bits += 1;
            } else {
                let (l, t) = (xor.leading_zeros().min(31), xor.trailing_zeros());
                if lead != u32::MAX && l >= lead && t >= trail {
                    bits += 2 + (64 - lead - trail) as u64;
                } else {
                    bits += 2 + 5 + 6 + (64 - l - t) as u64;
                    (lead, trail) = (l, t);
                }
            }
            (pt, pd, pv) = (x.t, d, x.v.to_bits());
        }
        bits += 8 * 8;
    }
    bits as f64 / 8.0
}

#[test]
#[ignore]
fn bytes_per_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let series = fleet(100_000, 42);
    let samples: u64 = series.iter().map(|s| s.1.len() as u64).sum();
    let t = std::time::Instant::now();
    let mut w = BlockWriter::new(
        tmp.path(),
        1_699_999_990_000,
        1_700_007_300_000,
        1,
        vec![],
        symbols(series.iter().map(|s| &s.0)),
    )
    .unwrap();
    for (l, s) in &series {
        w.add_series(l, s).unwrap();
    }
    let meta = w.finish().unwrap().unwrap();
    let write_time = t.elapsed();
    let b = Block::open(&tmp.path().join(&meta.ulid)).unwrap();
    let size = |f: &str| std::fs::metadata(b.dir().join(f)).unwrap().len();
    let (ix, ch) = (size(INDEX_FILE), size(CHUNKS_FILE));
    let t = std::time::Instant::now();
    let read: usize = b
        .select(i64::MIN, i64::MAX, &[])
        .unwrap()
        .map(|s| s.unwrap().collect_samples().1.len())
        .sum();
    let read_time = t.elapsed();
    assert_eq!(read as u64, samples);
    println!("series {}  samples {samples}", series.len());
    println!("chunks {ch} B = {:.3} B/sample", ch as f64 / samples as f64);
    println!(
        "index  {ix} B = {:.3} B/sample ({:.1} B/series)",
        ix as f64 / samples as f64,
        ix as f64 / series.len() as f64
    );
    println!(
        "block  {} B = {:.3} B/sample (incl. meta.json, tombstones)",
        b.size_bytes(),
        b.size_bytes() as f64 / samples as f64
    );
    println!("write {write_time:?}  full read {read_time:?}");
    let g: f64 = series.iter().map(|s| gorilla_bytes(&s.1)).sum();
    println!(
        "Prometheus XOR chunks on the same data (estimate, chunks only): {:.3} B/sample",
        g / samples as f64
    );
    // Why chunks are large: pco's per-chunk metadata, measured on every 50th series, timestamps not shared.
    for size in [120, 240, 720] {
        let (mut bytes, mut n) = (0usize, 0usize);
        for (_, s) in series.iter().step_by(50) {
            for c in s.chunks(size) {
                bytes += chunks::encode(c, None).unwrap().len() + 4 + 8;
                n += c.len();
            }
        }
        println!("chunk size {size}: {:.3} B/sample (payload + crc + ~8 B index ref, unshared timestamps)", bytes as f64 / n as f64);
    }
}

#[test]
fn block_is_send_sync_and_select_outlives_borrow() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Block>();
    let tmp = tempfile::tempdir().unwrap();
    let data = fixture(0, 10, 1000);
    let b = write(tmp.path(), &data, 0, 100_000);
    let set = b.select(i64::MIN, i64::MAX, &[]).unwrap();
    drop(b);
    let got: Data = std::thread::spawn(move || set.map(|s| s.unwrap().collect_samples()).collect())
        .join()
        .unwrap();
    assert_data_eq(&got, &data);
}

/// The exact bytes the writer produces for a fixed data set, so that any change to them is
/// deliberate. Pinned first with the writer that built the index in memory (index 110,838 bytes,
/// crc 531242041), which the streaming writer reproduced byte for byte; the chunk encoder's
/// choices changed afterwards (integer-valued chunks compressed only as i64, pco level 4), not
/// the format.
#[test]
fn writer_output_is_byte_stable() {
    let tmp = tempfile::tempdir().unwrap();
    let series = fleet(3000, 7);
    let mut w = BlockWriter::new(
        tmp.path(),
        1_699_999_990_000,
        1_700_007_300_000,
        1,
        vec![],
        symbols(series.iter().map(|s| &s.0)),
    )
    .unwrap();
    for (l, s) in &series {
        w.add_series(l, s).unwrap();
    }
    let meta = w.finish().unwrap().unwrap();
    let dir = tmp.path().join(&meta.ulid);
    let crc = |f: &str| {
        let b = std::fs::read(dir.join(f)).unwrap();
        (b.len(), crc32c::crc32c(&b))
    };
    assert_eq!(
        (crc(INDEX_FILE), crc(CHUNKS_FILE)),
        ((110_837, 818_615_616), (1_092_843, 2_959_542_801))
    );
}
