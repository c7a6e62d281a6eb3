//! The server on a full disk: its data directory on a small tmpfs the test mounts (root needed),
//! filled with a filler file while remote writes, block cuts, head chunk spills, WAL checkpoints
//! and compactions run, then freed; every write answered 2xx before, during and after must be
//! there after a clean restart and after a kill -9.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tocsin_collect::remote_write::encode;
use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// A tmpfs mounted for the test; unmounted when dropped, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("running mount: {e}"));
        assert!(
            out.status.success(),
            "this test needs root to mount a {size} tmpfs at {} (uid {}): {}",
            dir.display(),
            unsafe { libc::geteuid() },
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a process still holding a file cannot keep the mount around.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

const SERIES: usize = 20;
const T0: i64 = 1_700_000_000_000;
/// Request i carries one sample per series at T0 + i * STEP_MS.
const STEP_MS: i64 = 100;

fn value(i: i64, s: usize) -> f64 {
    (i * SERIES as i64 + s as i64) as f64
}

fn request(i: i64) -> Vec<u8> {
    let names: Vec<String> = (0..SERIES).map(|s| s.to_string()).collect();
    let labels: Vec<[(&str, &str); 2]> = names
        .iter()
        .map(|n| [("__name__", "disk_full_probe"), ("s", n.as_str())])
        .collect();
    let samples: Vec<[(i64, f64); 1]> = (0..SERIES)
        .map(|s| [(T0 + i * STEP_MS, value(i, s))])
        .collect();
    encode(
        labels
            .iter()
            .zip(samples.iter())
            .map(|(l, s)| (l.as_slice(), s.as_slice())),
    )
}

fn post(srv: &TestServer, body: Vec<u8>) -> (u16, String) {
    match client()
        .post(srv.url("/api/v1/write"))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
    {
        Ok(r) => {
            let code = r.status().as_u16();
            (code, r.text().unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

/// Which requests were acknowledged, per phase.
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<i64, &'static str>,
    refused_5xx: u64,
    first_5xx: Option<String>,
}

impl Ledger {
    /// Sends request `i`; records it if answered 2xx. Returns the status.
    fn send(&mut self, srv: &TestServer, i: i64, phase: &'static str) -> u16 {
        let (code, msg) = post(srv, request(i));
        match code {
            200..=299 => {
                self.acked.insert(i, phase);
            }
            500..=599 => {
                self.refused_5xx += 1;
                self.first_5xx.get_or_insert(msg);
            }
            _ => panic!("request {i} ({phase}): unexpected answer {code}: {msg}"),
        }
        code
    }

    fn count(&self, phase: &str) -> usize {
        self.acked.values().filter(|p| **p == phase).count() * SERIES
    }
}

fn metric(srv: &TestServer, name: &str) -> f64 {
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The server's storage metrics and the end of its log, for a failure message.
fn diag(srv: &TestServer) -> String {
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    let m: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("tocsin_tsdb"))
        .collect();
    let log = srv.log_text();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    format!(
        "metrics:\n{}\nlog tail:\n{}",
        m.join("\n"),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

fn wait_for(srv: &TestServer, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            diag(srv)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every sample the stopped data directory holds, by (series, timestamp).
fn stored(dir: &Path) -> HashMap<(usize, i64), f64> {
    let mut out = HashMap::new();
    for line in tocsin_testkit::dump_lines(bin(), dir, &[]) {
        let mut it = line.rsplitn(3, ' ');
        let (Some(t), Some(v), Some(labels)) = (it.next(), it.next(), it.next()) else {
            panic!("bad dump line {line:?}");
        };
        let s = labels
            .split("s=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no series label in {line:?}"));
        out.insert((s, t.parse().unwrap()), v.parse().unwrap());
    }
    out
}

/// Acknowledged samples missing from (or wrong in) the directory, by phase.
fn lost(ledger: &Ledger, dir: &Path) -> BTreeMap<&'static str, usize> {
    let got = stored(dir);
    let mut out = BTreeMap::new();
    for (&i, &phase) in &ledger.acked {
        for s in 0..SERIES {
            let ok = got.get(&(s, T0 + i * STEP_MS)) == Some(&value(i, s));
            *out.entry(phase).or_insert(0) += usize::from(!ok);
        }
    }
    out
}

/// Fills the filesystem up to the last byte.
fn fill(path: &Path) -> File {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .unwrap();
    let chunk = vec![0xa5u8; 64 << 10];
    let mut n = chunk.len();
    while n > 0 {
        match f.write(&chunk[..n]) {
            Ok(k) if k > 0 => {}
            _ => n /= 2,
        }
    }
    f
}

#[test]
fn full_disk_loses_no_acknowledged_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = Tmpfs::mount(&tmp.path().join("fs"), "8m");
    // The server's log goes beside its data directory, so onto the full filesystem too: logging
    // must not fail the threads that log.
    let data = mnt.dir.join("data");
    let filler = mnt.dir.join("filler");
    let cfg = tmp.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        // Its samples are from 2023: retention must not refuse them.
        "storage:\n  block_range: 1m\n  wal_segment_size: 64KB\n  retention_time: 10y\n",
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let args = [
        "--config",
        cfg_s.as_str(),
        "--maintenance-interval",
        "100ms",
    ];
    let mut ledger = Ledger::default();
    let mut i = 0i64;

    // Before: plenty of space; blocks are cut and compacted as the data spans minutes.
    let mut srv = TestServer::start_on(bin(), &data, &args);
    while i < 3000 {
        assert_eq!(ledger.send(&srv, i, "before"), 204, "request {i}");
        i += 1;
    }
    wait_for(&srv, "a block cut", Duration::from_secs(30), || {
        metric(&srv, "tocsin_tsdb_head_truncations_total") >= 2.0
    });

    // During: the disk is full. A little space comes back now and then (as on a real disk
    // where other files churn), so some writes get through while cuts, spills, checkpoints and
    // compactions keep hitting ENOSPC.
    let mut fill_file = fill(&filler);
    let full_from = i;
    let mut retry: Vec<i64> = Vec::new();
    while i < full_from + 3000 {
        if (i - full_from) % 150 == 0 {
            let len = fill_file.metadata().unwrap().len();
            fill_file.set_len(len.saturating_sub(48 << 10)).unwrap();
        }
        if ledger.send(&srv, i, "during") != 204 {
            retry.push(i);
        }
        i += 1;
        if (i - full_from) % 150 == 75 {
            // What the freed space did not take, the filler takes back.
            drop(fill_file);
            fill_file = OpenOptions::new().append(true).open(&filler).unwrap();
            let chunk = vec![0x5au8; 4096];
            while fill_file.write(&chunk).is_ok_and(|n| n > 0) {}
        }
    }
    let failed_cuts = metric(&srv, "tocsin_tsdb_head_truncations_failed_total");
    let failed_checkpoints = metric(&srv, "tocsin_tsdb_checkpoint_creations_failed_total");
    let failed_compactions = metric(&srv, "tocsin_tsdb_compactions_failed_total");
    let failed_spills = metric(&srv, "tocsin_tsdb_head_chunk_spill_failures_total");

    // After: space is back. The refused requests are sent again as a remote-write queue would.
    drop(fill_file);
    std::fs::remove_file(&filler).unwrap();
    let cuts = metric(&srv, "tocsin_tsdb_head_truncations_total");
    for r in retry.drain(..) {
        let (code, _) = post(&srv, request(r));
        if code == 204 {
            ledger.acked.insert(r, "during (resent)");
        }
    }
    let after_from = i;
    while i < after_from + 3000 {
        assert_eq!(
            ledger.send(&srv, i, "after"),
            204,
            "request {i} after space came back"
        );
        i += 1;
    }
    wait_for(
        &srv,
        "maintenance to cut again once space is back",
        Duration::from_secs(30),
        || metric(&srv, "tocsin_tsdb_head_truncations_total") > cuts,
    );

    // A clean restart, more writes, then a kill -9.
    assert_eq!(srv.stop(), Some(0), "{}", srv.log_text());
    let lost_stop = lost(&ledger, &data);
    srv = TestServer::start_on(bin(), &data, &args);
    let restart_from = i;
    while i < restart_from + 1000 {
        assert_eq!(
            ledger.send(&srv, i, "after"),
            204,
            "request {i} after restart"
        );
        i += 1;
    }
    srv.kill9();
    let lost_kill = lost(&ledger, &data);
    // And the server starts again on what the kill left.
    srv = TestServer::start_on(bin(), &data, &args);
    assert_eq!(srv.stop(), Some(0));
    let lost_final = lost(&ledger, &data);

    println!(
        "FIGURE acknowledged_samples_before {}",
        ledger.count("before")
    );
    println!(
        "FIGURE acknowledged_samples_during {} (+{} resent after the disk was freed)",
        ledger.count("during"),
        ledger.count("during (resent)")
    );
    println!(
        "FIGURE acknowledged_samples_after {}",
        ledger.count("after")
    );
    println!("FIGURE refused_5xx_while_full {}", ledger.refused_5xx);
    println!(
        "FIGURE first_5xx_answer {:?}",
        ledger.first_5xx.as_deref().unwrap_or("")
    );
    println!(
        "FIGURE failures_while_full cuts={failed_cuts} checkpoints={failed_checkpoints} compactions={failed_compactions} spills={failed_spills}"
    );
    let total = |m: &BTreeMap<&str, usize>| m.values().sum::<usize>();
    println!(
        "FIGURE lost_samples after_clean_restart={} after_kill9={} final={} by_phase={lost_final:?}",
        total(&lost_stop),
        total(&lost_kill),
        total(&lost_final)
    );

    assert!(ledger.refused_5xx > 0, "the disk never filled up");
    let first = ledger.first_5xx.clone().unwrap_or_default();
    assert!(
        first.contains("No space left"),
        "5xx must name the cause: {first}"
    );
    assert!(failed_cuts > 0.0, "no block cut hit the full disk");
    assert!(
        ledger.count("during") > 0,
        "no write got through while space came and went"
    );
    assert_eq!(
        total(&lost_stop),
        0,
        "lost after clean restart: {lost_stop:?}"
    );
    assert_eq!(total(&lost_kill), 0, "lost after kill -9: {lost_kill:?}");
    assert_eq!(total(&lost_final), 0, "lost: {lost_final:?}");
}
