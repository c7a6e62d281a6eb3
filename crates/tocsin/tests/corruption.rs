//! Damaged data directories against the real binary: a block whose meta.json lies about its end,
//! a corrupt chunk met by a query and by compaction, and `tocsin tsdb check` / `repair`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin_collect::remote_write::encode;
use tocsin_storage::{AppendOptions, Appendable};
use tocsin_testkit::{client, now_ms, remote_write, TestServer};
use tocsin_tsdb::{Db, DbOptions};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// A data directory with `m{i="0".."2"}` every minute over [base, base + 9 h): three 2 h blocks
/// (in one 6 h compaction window) and 3 h in the head, WAL checkpoint included.
struct Data {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    base: i64,
}

fn build() -> Data {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let base = (now_ms() - 12 * HOUR).div_euclid(6 * HOUR) * 6 * HOUR;
    let opts = DbOptions {
        retention_ms: 20 * HOUR,
        ..Default::default()
    };
    let db = Db::open(&dir, opts).unwrap();
    let mut t = base;
    while t < base + 9 * HOUR {
        let mut a = db.appender();
        for i in 0..3 {
            let l = tocsin_model::Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]);
            a.append(&l, t, (t / MIN) as f64, &AppendOptions::default())
                .unwrap();
        }
        a.commit().unwrap();
        t += MIN;
    }
    db.maintain().unwrap();
    assert_eq!(db.blocks().len(), 3);
    db.close().unwrap();
    drop(db);
    Data {
        _tmp: tmp,
        dir,
        base,
    }
}

impl Data {
    fn blocks(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.dir.join("blocks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        let min_time = |p: &PathBuf| {
            let m: Value =
                serde_json::from_slice(&std::fs::read(p.join("meta.json")).unwrap()).unwrap();
            m["min_time"].as_i64().unwrap()
        };
        v.sort_by_key(min_time);
        v
    }

    fn ulid(&self, i: usize) -> String {
        self.blocks()[i]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string()
    }

    fn quarantined(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join("quarantine"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn checkpoint_segment(&self) -> PathBuf {
        std::fs::read_dir(self.dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("checkpoint.")
            })
            .unwrap()
            .join("00000000")
    }
}

fn flip(path: &Path, at_from_end: usize) {
    let mut b = std::fs::read(path).unwrap();
    let n = b.len();
    b[n - at_from_end] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn query(srv: &TestServer, q: &str, t_ms: i64) -> (u16, Value) {
    let r = client()
        .get(srv.url("/api/v1/query"))
        .query(&[("query", q), ("time", &format!("{}", t_ms as f64 / 1000.0))])
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let text = r.text().unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn scalar_result(v: &Value) -> f64 {
    v["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap_or_else(|| panic!("no value: {v}"))
        .parse()
        .unwrap()
}

fn warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn metrics(srv: &TestServer) -> String {
    client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap()
}

fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn write_now(srv: &TestServer, t: i64) -> u16 {
    let labels: Vec<(&str, &str)> = vec![("__name__", "fresh"), ("job", "t")];
    let samples = vec![(t, 42.0)];
    // `encode` returns the snappy-compressed body.
    let body = encode([(labels.as_slice(), samples.as_slice())]);
    let (code, text) = remote_write(srv, body);
    if code != 204 {
        eprintln!("write answered {code}: {text}");
    }
    code
}

#[test]
fn block_meta_claiming_max_time_30_days_ahead_no_longer_drops_the_head_or_refuses_writes() {
    let d = build();
    let newest = d.blocks()[2].join("meta.json");
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&newest).unwrap()).unwrap();
    let max = meta["max_time"].as_i64().unwrap();
    meta["max_time"] = Value::from(max + 30 * 24 * HOUR);
    std::fs::write(&newest, serde_json::to_vec(&meta).unwrap()).unwrap();
    let ulid = d.ulid(2);

    let srv = TestServer::start_on(bin(), &d.dir, &[]);
    assert_eq!(d.quarantined(), vec![format!("{ulid}-block_meta")]);
    // The head (base + 6 h on) was replayed whole: 180 minutes of three series.
    let end = d.base + 9 * HOUR - MIN;
    let (code, v) = query(&srv, "count_over_time(m[3h])", end);
    assert_eq!(code, 200, "{v}");
    let per_series: Vec<f64> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(per_series, vec![180.0; 3], "{v}");
    // The quarantined range is missing, and the answer says so.
    let (code, v) = query(&srv, "count(count_over_time(m[2h]))", d.base + 6 * HOUR - 1);
    assert_eq!(code, 200, "{v}");
    let w = warnings(&v);
    assert!(
        w.iter().any(|w| w.contains(&ulid) && w.contains("missing")),
        "{v}"
    );
    // Writes at the wall clock's time are accepted and readable.
    let now = now_ms();
    assert_eq!(write_now(&srv, now), 204);
    let (_, v) = query(&srv, "fresh", now);
    assert_eq!(scalar_result(&v), 42.0, "{v}");
    let m = metrics(&srv);
    assert_eq!(
        metric_value(&m, "tocsin_tsdb_corruptions_total{kind=\"block_meta\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(
        srv.log_text().contains("in the future"),
        "{}",
        srv.log_text()
    );
}

#[test]
fn corrupt_chunk_no_longer_fails_queries_or_stops_compaction_and_retention() {
    let d = build();
    flip(&d.blocks()[0].join("chunks"), 10);
    let ulid0 = d.ulid(0);
    // A query over the damaged block answers with the rest and a warning (it used to be a 500).
    {
        let srv = TestServer::start_on(bin(), &d.dir, &[]);
        let (code, v) = query(&srv, "count_over_time(m[9h])", d.base + 9 * HOUR - MIN);
        assert_eq!(code, 200, "{v}");
        let w = warnings(&v);
        assert!(w.iter().any(|w| w.contains(&ulid0)), "{v}");
        let n: Vec<f64> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
            .collect();
        // Blocks 1 and 2 and the head: 7 h of minutes per series; the damage is in the last
        // chunk (series 2), so series 0 and 1 had been read from block 0 before it was met.
        assert_eq!(n, vec![540.0, 540.0, 420.0], "{v}");
        assert_eq!(d.quarantined(), vec![format!("{ulid0}-block_chunk")]);
        let m = metrics(&srv);
        assert_eq!(
            metric_value(&m, "tocsin_tsdb_corruptions_total{kind=\"block_chunk\"}"),
            Some(1.0),
            "{m}"
        );
    }
    // Damage met by compaction: the block is set aside and retention still runs, pass after pass.
    flip(&d.blocks()[0].join("chunks"), 10);
    let ulid1 = d.ulid(0);
    let cfg = d.dir.with_extension("yml");
    std::fs::write(
        &cfg,
        "storage:\n  retention_time: 60h\n  retention_size: 1KB\n",
    )
    .unwrap();
    let srv = TestServer::start_on(
        bin(),
        &d.dir,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--maintenance-interval",
            "200ms",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = metrics(&srv);
        let corrupt = metric_value(&m, "tocsin_tsdb_corruptions_total{kind=\"block_chunk\"}");
        let deleted = metric_value(&m, "tocsin_tsdb_blocks_deleted_by_retention_total");
        if corrupt == Some(1.0) && deleted.is_some_and(|x| x >= 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{m}\n{}", srv.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(d.quarantined().contains(&format!("{ulid1}-block_chunk")));
    assert_eq!(write_now(&srv, now_ms()), 204);
}

fn tocsin(args: &[&str], dir: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "lock") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn tsdb_check_reports_damage_read_only_and_repair_sets_it_aside() {
    let d = build();
    let o = tocsin(&["tsdb", "check"], &d.dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("OK: no damage found"), "{}", text(&o));

    flip(&d.blocks()[1].join("chunks"), 10);
    flip(&d.checkpoint_segment(), 20);
    let ulid = d.ulid(1);
    let before = snapshot(&d.dir);
    let o = tocsin(&["tsdb", "check"], &d.dir);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("DAMAGED block_chunk")
            && l.contains(&format!("{ulid}/chunks"))
            && l.contains("offset")
            && l.contains("series {__name__=\"m\"")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("DAMAGED wal_checkpoint") && l.contains("checkpoint.")),
        "{out}"
    );
    assert!(out.contains("2 problem(s) found"), "{out}");
    assert_eq!(snapshot(&d.dir), before, "check changed files");

    // Repair refuses while a server holds the directory.
    {
        let _lock = tocsin_tsdb::lock::DirLock::acquire(&d.dir).unwrap();
        let o = tocsin(&["tsdb", "repair"], &d.dir);
        assert_ne!(o.status.code(), Some(0), "{}", text(&o));
        assert!(text(&o).contains("locked"), "{}", text(&o));
        assert_eq!(snapshot(&d.dir), before);
    }
    let o = tocsin(&["tsdb", "repair"], &d.dir);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(&format!("quarantined block {ulid} (block_chunk)")),
        "{out}"
    );
    assert!(out.contains("skipped damaged bytes"), "{out}");
    assert_eq!(d.quarantined(), vec![format!("{ulid}-block_chunk")]);

    let o = tocsin(&["tsdb", "check"], &d.dir);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Everything outside the quarantined block is still there.
    let lines = tocsin_testkit::dump_lines(bin(), &d.dir, &[]);
    let (lo, hi) = (d.base + 2 * HOUR, d.base + 4 * HOUR);
    let ts: Vec<i64> = lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(ts.iter().all(|t| *t < lo || *t >= hi));
    // Blocks 0 and 2 whole; the head loses only the damaged checkpoint record's samples.
    assert!(ts.iter().filter(|t| **t < lo).count() == 3 * 120);
    assert!(
        ts.iter()
            .filter(|t| (hi..d.base + 6 * HOUR).contains(*t))
            .count()
            == 3 * 120
    );
}
