//! Integration tests of `tocsin server` and `tocsin tsdb dump`: the real binary on 127.0.0.1 with a
//! temp data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use tocsin_collect::remote_write::encode;
use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// These tests write samples from 2023 (and 1970), which the default 15d retention refuses.
const OLD_DATA: &str = "storage:\n  retention_time: 100y\n";

fn start() -> TestServer {
    TestServer::start_with_config(bin(), OLD_DATA, &[])
}

fn post_write(srv: &TestServer, body: Vec<u8>) -> (u16, String) {
    tocsin_testkit::remote_write(srv, body)
}

fn dump(dir: &Path, args: &[&str]) -> Vec<String> {
    tocsin_testkit::dump_lines(bin(), dir, args)
}

/// Request `i` of a run: 20 series x 5 samples.
fn request(i: i64) -> (Vec<u8>, Vec<String>) {
    let mut lines = Vec::new();
    #[allow(clippy::type_complexity)]
    let mut series: Vec<(Vec<(String, String)>, Vec<(i64, f64)>)> = Vec::new();
    for s in 0..20 {
        let labels = vec![
            ("__name__".to_string(), "node_cpu_seconds_total".to_string()),
            ("cpu".to_string(), (s % 4).to_string()),
            ("instance".to_string(), format!("host-{}:9100", s / 4)),
            ("mode".to_string(), "idle".to_string()),
        ];
        let samples: Vec<(i64, f64)> = (0..5)
            .map(|k| {
                (
                    1_700_000_000_000 + (i * 5 + k) * 10_000,
                    (i * 5 + k) as f64 * 1.5 + s as f64,
                )
            })
            .collect();
        for (t, v) in &samples {
            lines.push(format!(
                "{{__name__=\"node_cpu_seconds_total\", cpu=\"{}\", instance=\"host-{}:9100\", mode=\"idle\"}} {} {}",
                s % 4,
                s / 4,
                v,
                t
            ));
        }
        series.push((labels, samples));
    }
    let pairs: Vec<Vec<(&str, &str)>> = series
        .iter()
        .map(|(l, _)| l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect())
        .collect();
    let body = encode(
        pairs
            .iter()
            .zip(series.iter())
            .map(|(p, (_, s))| (p.as_slice(), s.as_slice())),
    );
    (body, lines)
}

#[test]
fn health_ready_metrics_and_clean_shutdown() {
    let mut srv = start();
    let c = client();
    assert_eq!(
        c.get(srv.url("/-/healthy"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        c.get(srv.url("/-/ready")).send().unwrap().status().as_u16(),
        200
    );
    let (body, _) = request(0);
    assert_eq!(post_write(&srv, body).0, 204);
    let m = c.get(srv.url("/metrics")).send().unwrap().text().unwrap();
    for name in [
        "tocsin_tsdb_head_samples_appended_total 100",
        "tocsin_tsdb_head_series 20",
        "tocsin_tsdb_head_series_created_total 20",
        "tocsin_tsdb_head_series_removed_total",
        "tocsin_tsdb_wal_bytes",
        "tocsin_tsdb_wal_segments",
        "tocsin_tsdb_samples_rejected_total{reason=\"out_of_order\"}",
        "tocsin_tsdb_compactions_total",
        "tocsin_tsdb_compaction_duration_seconds_total",
        "tocsin_tsdb_blocks 0",
        "tocsin_tsdb_blocks_bytes",
        "process_resident_memory_bytes",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
    assert_eq!(srv.stop(), Some(0));
    assert!(
        srv.log_text().contains("WAL flushed and closed"),
        "{}",
        srv.log_text()
    );
}

#[test]
fn second_server_on_same_data_dir_refuses_to_start() {
    let srv = start();
    let out = Command::new(bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&srv.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another process"), "{err}");
}

#[test]
fn acknowledged_samples_survive_kill9_and_dump_reads_live_and_stopped_dirs() {
    let mut srv = start();
    let mut want = BTreeSet::new();
    for i in 0..30 {
        let (body, lines) = request(i);
        let (code, msg) = post_write(&srv, body);
        assert_eq!(code, 204, "{msg}");
        want.extend(lines);
    }
    srv.kill9();
    let dir = srv.data_dir.clone();
    let mut srv2 = TestServer::start_on(bin(), &dir, &[]);
    // Read-only dump of a directory a live server owns.
    let got: BTreeSet<String> = dump(&dir, &[]).into_iter().collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let one = dump(
        &dir,
        &[
            "--match",
            "node_cpu_seconds_total{instance=\"host-0:9100\",cpu=~\"1|2\"}",
            "--max-time",
            "1700000100000",
        ],
    );
    assert_eq!(one.len(), 2 * 11, "{one:?}");
    assert_eq!(srv2.stop(), Some(0));
    let got: BTreeSet<String> = dump(&dir, &[]).into_iter().collect();
    assert_eq!(got, want);
}

fn raw_body(pb: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(pb).unwrap()
}

/// Hand-builds a protobuf WriteRequest with one series so tests can put invalid strings in it.
fn pb_series(labels: &[(&[u8], &[u8])], t: i64, v: f64) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut x: u64) {
        while x >= 0x80 {
            out.push(x as u8 | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    }
    fn field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
        out.push(tag);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut ts = Vec::new();
    for (n, val) in labels {
        let mut l = Vec::new();
        field(&mut l, 0x0a, n);
        field(&mut l, 0x12, val);
        field(&mut ts, 0x0a, &l);
    }
    let mut s = vec![0x09];
    s.extend_from_slice(&v.to_bits().to_le_bytes());
    s.push(0x10);
    varint(&mut s, t as u64);
    field(&mut ts, 0x12, &s);
    let mut req = Vec::new();
    field(&mut req, 0x0a, &ts);
    req
}

#[test]
fn bad_write_requests_get_400_and_write_nothing() {
    let srv = start();
    let good = pb_series(
        &[(b"__name__", b"good_metric"), (b"job", b"x")],
        1_700_000_000_000,
        1.0,
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad snappy", b"this is not snappy".to_vec(), "snappy"),
        (
            "bad protobuf",
            raw_body(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
            "protobuf",
        ),
        (
            "empty label name",
            raw_body(
                &[
                    good.clone(),
                    pb_series(&[(b"__name__", b"m"), (b"", b"v")], 1, 1.0),
                ]
                .concat(),
            ),
            "label name",
        ),
        (
            "invalid label name",
            raw_body(
                &[
                    good.clone(),
                    pb_series(&[(b"__name__", b"m"), (b"1bad", b"v")], 1, 1.0),
                ]
                .concat(),
            ),
            "1bad",
        ),
        (
            "duplicate label",
            raw_body(
                &[
                    good.clone(),
                    pb_series(&[(b"__name__", b"m"), (b"a", b"1"), (b"a", b"2")], 1, 1.0),
                ]
                .concat(),
            ),
            "duplicate",
        ),
        (
            "non-UTF-8",
            raw_body(
                &[
                    good.clone(),
                    pb_series(&[(b"__name__", b"m"), (b"a", b"\xff\xfe")], 1, 1.0),
                ]
                .concat(),
            ),
            "UTF-8",
        ),
    ];
    for (what, body, needle) in cases {
        let (code, msg) = post_write(&srv, body);
        assert_eq!(code, 400, "{what}: {msg}");
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "{what}: message {msg:?} lacks {needle:?}"
        );
    }
    assert!(
        dump(&srv.data_dir, &[]).is_empty(),
        "a rejected request wrote data"
    );
    let (code, _) = post_write(&srv, raw_body(&good));
    assert_eq!(code, 204);
    assert_eq!(dump(&srv.data_dir, &[]).len(), 1);
}

#[test]
fn out_of_order_samples_are_counted_and_reported() {
    let srv = start();
    let l: &[(&str, &str)] = &[("__name__", "m"), ("job", "a")];
    let (code, _) = post_write(&srv, encode([(l, &[(2_000_000i64, 1.0)][..])]));
    assert_eq!(code, 204);
    let (code, msg) = post_write(
        &srv,
        encode([(l, &[(1_000_000i64, 2.0), (3_000_000, 3.0)][..])]),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("1 of 2 samples rejected"), "{msg}");
    let m = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains("tocsin_tsdb_samples_rejected_total{reason=\"out_of_order\"} 1"),
        "{m}"
    );
    assert_eq!(dump(&srv.data_dir, &[]).len(), 2);
}

#[test]
fn delete_series_api_removes_matching_data() {
    let srv = TestServer::start_with_config(bin(), OLD_DATA, &tocsin_testkit::ADMIN_FLAGS);
    for i in 0..3 {
        assert_eq!(post_write(&srv, request(i).0).0, 204);
    }
    let before = dump(&srv.data_dir, &[]).len();
    assert_eq!(before, 300);
    // host-0 has 4 series with 15 samples each; delete the first 10 of each (t up to +90 s).
    let r = client()
        .post(srv.url("/api/v1/admin/tsdb/delete_series"))
        .form(&[
            (
                "match[]",
                "node_cpu_seconds_total{instance=\"host-0:9100\"}",
            ),
            ("start", "1700000000"),
            ("end", "1700000090"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap_or_default());
    let after = dump(&srv.data_dir, &[]);
    assert_eq!(after.len(), 300 - 40);
    assert_eq!(
        dump(&srv.data_dir, &["--match", "{instance=\"host-0:9100\"}"]).len(),
        20
    );
    let bad = client()
        .post(srv.url("/api/v1/admin/tsdb/delete_series"))
        .form(&[("match[]", "{")])
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

#[test]
fn analyze_reports_series_samples_and_cardinality() {
    let mut srv = start();
    for i in 0..2 {
        assert_eq!(post_write(&srv, request(i).0).0, 204);
    }
    assert_eq!(srv.stop(), Some(0));
    let out = Command::new(bin())
        .args(["tsdb", "analyze", "--data-dir"])
        .arg(&srv.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Series: 20"), "{text}");
    assert!(text.contains("Samples: 200"), "{text}");
    assert!(text.contains("Blocks: 0"), "{text}");
    // instance has 5 values, cpu 4; the top metric holds every series.
    assert!(text.contains("         5 instance"), "{text}");
    assert!(text.contains("        20 node_cpu_seconds_total"), "{text}");
}

#[test]
fn server_starts_after_wal_tail_corruption_and_keeps_complete_records() {
    let mut srv = start();
    let mut want = BTreeSet::new();
    for i in 0..5 {
        let (body, lines) = request(i);
        assert_eq!(post_write(&srv, body).0, 204);
        want.extend(lines);
    }
    srv.kill9();
    // A torn write: garbage appended to the newest segment.
    let wal = srv.data_dir.join("wal");
    let mut segs: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let mut data = std::fs::read(last).unwrap();
    data.extend_from_slice(&[
        0x02, 0xff, 0x00, 0x00, 0x10, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3,
    ]);
    std::fs::write(last, data).unwrap();
    let dir = srv.data_dir.clone();
    let mut srv2 = TestServer::start_on(bin(), &dir, &[]);
    let got: BTreeSet<String> = dump(&dir, &[]).into_iter().collect();
    assert_eq!(got, want);
    assert_eq!(srv2.stop(), Some(0));
    assert!(
        srv2.log_text().contains("WAL tail was damaged and cut off"),
        "{}",
        srv2.log_text()
    );
}
