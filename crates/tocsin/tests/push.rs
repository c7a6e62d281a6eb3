//! Integration tests of the push protocols against the real binary: InfluxDB line protocol (v1 and
//! v2, plain and gzip, every precision family), the JSON push API and Graphite over TCP; what was
//! stored is read back with `tocsin tsdb dump`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// These tests write samples from 2023, which the default 15d retention refuses.
const OLD_DATA: &str = "storage:\n  retention_time: 10y\n";

fn start() -> TestServer {
    TestServer::start_with_config(bin(), OLD_DATA, &[])
}

fn dump(dir: &Path) -> BTreeSet<String> {
    tocsin_testkit::dump_lines(bin(), dir, &[])
        .into_iter()
        .collect()
}

fn post(srv: &TestServer, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut r = client().post(srv.url(path));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let r = r.body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|s| s.to_string()).collect()
}

#[test]
fn influx_line_protocol_v1_v2_plain_gzip_and_precision() {
    let mut srv = start();
    let c = client();
    let ping = c.get(srv.url("/ping")).send().unwrap();
    assert_eq!(ping.status().as_u16(), 204);
    assert!(ping.headers().contains_key("x-influxdb-version"));
    assert_eq!(
        c.head(srv.url("/ping")).send().unwrap().status().as_u16(),
        204
    );
    let q = c
        .post(srv.url("/query?q=CREATE+DATABASE+%22telegraf%22"))
        .send()
        .unwrap();
    assert_eq!(q.status().as_u16(), 200);
    assert_eq!(q.text().unwrap(), r#"{"results":[{"statement_id":0}]}"#);
    let q = c
        .post(srv.url("/query"))
        .form(&[("q", "create database telegraf")])
        .send()
        .unwrap();
    assert_eq!(q.status().as_u16(), 200);

    // v1, seconds, with db/rp/u/p that are ignored.
    let (code, msg) = post(
        &srv,
        "/write?db=telegraf&rp=autogen&u=x&p=y&precision=s",
        &[],
        b"cpu,host=web\\ 1,cpu=cpu0 usage_idle=98.5,usage_user=1i 1700000000\n\
          mem,host=web\\ 1 available=1024u,ok=true,note=\"a \\\"quoted\\\" string\" 1700000000\n"
            .to_vec(),
    );
    assert_eq!((code, msg.as_str()), (204, ""));
    // v1, default nanoseconds, gzip.
    let (code, msg) = post(
        &srv,
        "/write?db=telegraf",
        &[("Content-Encoding", "gzip")],
        gzip(b"cpu,host=web\\ 1,cpu=cpu0 usage_idle=97 1700000010123456789\n"),
    );
    assert_eq!((code, msg.as_str()), (204, ""));
    // v1, hours.
    let (code, _) = post(
        &srv,
        "/write?precision=h",
        &[],
        b"hourly v=1 472223\n".to_vec(),
    );
    assert_eq!(code, 204);
    // v2, milliseconds, token and org/bucket ignored; gzip.
    let (code, msg) = post(
        &srv,
        "/api/v2/write?org=o&bucket=b&precision=ms",
        &[
            ("Authorization", "Token secret"),
            ("Content-Encoding", "gzip"),
        ],
        gzip(b"disk,path=/,device=sda used_percent=41.5 1700000020000\r\n"),
    );
    assert_eq!((code, msg.as_str()), (204, ""));
    // v2, microseconds.
    let (code, _) = post(
        &srv,
        "/api/v2/write?precision=us",
        &[],
        b"disk,path=/,device=sda used_percent=42 1700000030000000\n".to_vec(),
    );
    assert_eq!(code, 204);
    // v2 has no minute or hour precision.
    let (code, msg) = post(
        &srv,
        "/api/v2/write?precision=h",
        &[],
        b"x v=1 1\n".to_vec(),
    );
    assert_eq!(code, 400);
    assert!(msg.contains("precision"), "{msg}");

    let m = c.get(srv.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        m.contains("tocsin_influx_write_string_fields_skipped_total 1"),
        "{m}"
    );
    assert!(
        m.contains("tocsin_influx_write_samples_received_total 8"),
        "{m}"
    );
    assert_eq!(srv.stop(), Some(0));
    let want = set(&[
        r#"{__name__="cpu_usage_idle", cpu="cpu0", host="web 1"} 98.5 1700000000000"#,
        r#"{__name__="cpu_usage_idle", cpu="cpu0", host="web 1"} 97 1700000010123"#,
        r#"{__name__="cpu_usage_user", cpu="cpu0", host="web 1"} 1 1700000000000"#,
        r#"{__name__="disk_used_percent", device="sda", path="/"} 41.5 1700000020000"#,
        r#"{__name__="disk_used_percent", device="sda", path="/"} 42 1700000030000"#,
        r#"{__name__="hourly_v"} 1 1700002800000"#,
        r#"{__name__="mem_available", host="web 1"} 1024 1700000000000"#,
        r#"{__name__="mem_ok", host="web 1"} 1 1700000000000"#,
    ]);
    assert_eq!(dump(&srv.data_dir), want);
}

#[test]
fn influx_partial_failure_lists_bad_lines_and_keeps_good_ones() {
    let mut srv = start();
    let (code, body) = post(
        &srv,
        "/write?precision=s",
        &[],
        b"good v=1 1700000000\nno_fields_here\ngood v=2 1700000001\ngood v=x 1700000002\ngood v=0 1699999999\n"
            .to_vec(),
    );
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let err = v["error"].as_str().unwrap();
    assert!(err.starts_with("partial write:"), "{err}");
    assert!(err.contains("line 2: missing fields"), "{err}");
    assert!(
        err.contains("line 4: field \"v\": invalid value \"x\""),
        "{err}"
    );
    // The last line is older than the series' newest sample: refused by storage, reported.
    assert!(err.contains("1 samples refused by storage"), "{err}");
    // v2 answers in its own error shape too.
    let (code, body) = post(&srv, "/api/v2/write", &[], b"bad\n".to_vec());
    assert_eq!(code, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], "invalid");
    assert!(v["message"].as_str().unwrap().contains("line 1"), "{body}");
    // A body that is not gzip at all is refused whole.
    let (code, body) = post(
        &srv,
        "/write",
        &[("Content-Encoding", "gzip")],
        b"nope".to_vec(),
    );
    assert_eq!(code, 400);
    assert!(body.contains("gzip"), "{body}");
    let m = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains("tocsin_influx_write_lines_rejected_total 3"),
        "{m}"
    );
    assert!(
        m.contains("tocsin_influx_write_samples_rejected_total 1"),
        "{m}"
    );
    assert_eq!(srv.stop(), Some(0));
    assert_eq!(
        dump(&srv.data_dir),
        set(&[
            r#"{__name__="good_v"} 1 1700000000000"#,
            r#"{__name__="good_v"} 2 1700000001000"#,
        ])
    );
}

#[test]
fn json_push_good_and_bad_series() {
    let mut srv = start();
    let good = r#"{"timeSeries":[{"metric":{"type":"custom.googleapis.com/vm/stuck_seconds","labels":{"job":"backup"}},
        "resource":{"type":"gce_instance","labels":{"instance_id":"42","zone":"europe-west1-b"}},
        "metricKind":"GAUGE","valueType":"DOUBLE",
        "points":[{"interval":{"endTime":"2023-11-14T22:13:20Z"},"value":{"doubleValue":1.5}}]}]}"#;
    let (code, body) = post(
        &srv,
        "/api/v1/push",
        &[("Content-Type", "application/json")],
        good.into(),
    );
    assert_eq!((code, body.as_str()), (204, ""));
    let mixed = r#"{"timeSeries":[
        {"metric":{"type":"custom.googleapis.com/jobs_done"},"valueType":"INT64","points":[{"interval":{"endTime":"2023-11-14T22:13:20Z"},"value":{"int64Value":"42"}}]},
        {"metric":{"type":"custom.googleapis.com/x"},"points":[{"interval":{"endTime":"2023-11-14T22:13:20Z"},"value":{"int64Value":"4x"}}]},
        {"metric":{"type":"custom.googleapis.com/y","labels":{"zone":"a"}},"resource":{"type":"r","labels":{"zone":"b"}},"points":[{"interval":{"endTime":"2023-11-14T22:13:20Z"},"value":{"boolValue":true}}]}
    ]}"#;
    let (code, body) = post(&srv, "/api/v1/push", &[], gzip(mixed.as_bytes())).clone();
    assert_eq!(code, 400, "{body}");
    // gzip without the header is not JSON: refused whole.
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("JSON push body"), "{err}");
    let (code, body) = post(
        &srv,
        "/api/v1/push",
        &[("Content-Encoding", "gzip")],
        gzip(mixed.as_bytes()),
    );
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("timeSeries[1].points[0].value.int64Value"),
        "{err}"
    );
    assert!(err.contains("timeSeries[2].resource.labels.zone"), "{err}");
    assert!(!err.contains("timeSeries[0]"), "{err}");
    let (code, body) = post(&srv, "/api/v1/push", &[], b"{\"timeSeries\": 3}".to_vec());
    assert_eq!(code, 400);
    assert!(body.contains("timeSeries: must be an array"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&v["status"], &v["errorType"]),
        (&"error".into(), &"bad_data".into())
    );
    // Cloud Monitoring's REST path, with proto field names in snake_case.
    let snake = r#"{"time_series":[{"metric":{"type":"custom.googleapis.com/queue_depth"},
        "metric_kind":"GAUGE","value_type":"INT64",
        "points":[{"interval":{"end_time":"2023-11-14T22:13:20Z"},"value":{"int64_value":"7"}}]}]}"#;
    let (code, body) = post(&srv, "/v3/projects/p1/timeSeries", &[], snake.into());
    assert_eq!((code, body.as_str()), (200, "{}"));
    let (code, body) = post(&srv, "/v3/projects/p1/timeSeries", &[], b"{}".to_vec());
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], 400, "{body}");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{body}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timeSeries"),
        "{body}"
    );
    assert_eq!(srv.stop(), Some(0));
    assert_eq!(
        dump(&srv.data_dir),
        set(&[
            r#"{__name__="jobs_done"} 42 1700000000000"#,
            r#"{__name__="queue_depth", project_id="p1"} 7 1700000000000"#,
            r#"{__name__="vm_stuck_seconds", instance_id="42", job="backup", resource_type="gce_instance", zone="europe-west1-b"} 1.5 1700000000000"#,
        ])
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn graphite_plaintext_over_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = tmp.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "{OLD_DATA}graphite:\n  listen: 127.0.0.1:{port}\n  mappings:\n    - match: servers.*.cpu.*\n      name: server_cpu_${{2}}\n      labels:\n        host: \"${{1}}\"\n"
        ),
    )
    .unwrap();
    let mut srv = TestServer::start(bin(), &["--config", cfg.to_str().unwrap()]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        b"servers.web1.cpu.user 12.5 1700000000\n\
          not a valid line\n\
          app.requests-total;env=prod 7 1700000000\n\
          servers.web1.cpu.user 13 1700000010\n",
    )
    .unwrap();
    drop(s);
    let want = set(&[
        r#"{__name__="app_requests_total", env="prod"} 7 1700000000000"#,
        r#"{__name__="server_cpu_user", host="web1"} 12.5 1700000000000"#,
        r#"{__name__="server_cpu_user", host="web1"} 13 1700000010000"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dump(&srv.data_dir) != want {
        assert!(
            Instant::now() < deadline,
            "graphite samples not stored; log:\n{}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A connection still open at shutdown commits its complete lines before the WAL closes.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"late.metric 1 1700000020\n").unwrap();
    s.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dump(&srv.data_dir).contains(r#"{__name__="late_metric"} 1 1700000020000"#) {
        assert!(Instant::now() < deadline, "late sample not stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(srv.stop(), Some(0));
    drop(s);
    let log = srv.log_text();
    assert!(
        !log.contains('\u{1b}'),
        "log_has_colour_codes_when_stderr_is_a_file: {log}"
    );
    assert!(log.contains("graphite: bad line skipped"), "{log}");
    assert!(log.contains("too many fields"), "{log}");
    assert!(log.contains("line=2"), "{log}");
    let got = dump(&srv.data_dir);
    assert_eq!(got.len(), 4, "{got:?}");
}

#[test]
fn samples_older_than_retention_were_acknowledged_then_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = tmp.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!("storage:\n  retention_time: 1d\ngraphite:\n  listen: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let srv = TestServer::start(bin(), &["--config", cfg.to_str().unwrap()]);
    let now = tocsin_testkit::now_ms();
    let old = now - 2 * 86_400_000;
    let fresh = now - 60_000;
    let names_sample = |body: &str, series: &str, t: i64| {
        assert!(
            body.contains(series)
                && body.contains(&format!("at {t}"))
                && body.contains("older than storage.retention_time (1d)")
                && body.contains("oldest timestamp accepted now is"),
            "{body}"
        );
    };

    // Remote write: one old and one fresh sample; the fresh one is written (per-sample refusal,
    // as for out-of-order samples), the answer is 400 naming the old one.
    let labels = [("__name__", "rw_old")];
    let samples = [(old, 1.0), (fresh, 2.0)];
    let body = tocsin_collect::remote_write::encode([(&labels[..], &samples[..])]);
    let (code, msg) = tocsin_testkit::remote_write(&srv, body);
    assert_eq!(code, 400, "{msg}");
    names_sample(&msg, r#"{__name__="rw_old"}"#, old);
    assert!(msg.contains("1 of 2 samples rejected"), "{msg}");

    // Line protocol in milliseconds.
    let (code, msg) = post(
        &srv,
        "/write?precision=ms",
        &[],
        format!("lp,host=a v=1 {old}\nlp,host=a v=2 {fresh}\n").into_bytes(),
    );
    assert_eq!(code, 400, "{msg}");
    names_sample(&msg, r#"{__name__=\"lp_v\", host=\"a\"}"#, old);
    // Seconds sent without precision= (read as nanoseconds: 1970): the hint says so.
    let (code, msg) = post(
        &srv,
        "/api/v2/write",
        &[],
        format!("secs v=1 {}\n", now / 1000).into_bytes(),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(
        msg.contains("looks like seconds: did you mean precision=s?"),
        "{msg}"
    );

    // JSON push.
    let when = tocsin_model::time::format_rfc3339_ms(old);
    let body = format!(
        r#"{{"timeSeries":[{{"metric":{{"type":"custom.googleapis.com/json_old"}},"points":[{{"interval":{{"endTime":"{when}"}},"value":{{"doubleValue":1}}}}]}}]}}"#
    );
    let (code, msg) = post(&srv, "/api/v1/push", &[], body.into_bytes());
    assert_eq!(code, 400, "{msg}");
    names_sample(&msg, "json_old", old);

    // Graphite has no answer: the refusal is logged, and nothing is stored.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("gr.old 1 {}\ngr.fresh 1 {}\n", old / 1000, fresh / 1000).as_bytes())
        .unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !srv.log_text().contains("sample refused by storage") {
        assert!(Instant::now() < deadline, "log:\n{}", srv.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = srv.log_text();
    assert!(
        log.contains("older than storage.retention_time (1d)"),
        "{log}"
    );

    let mut srv = srv;
    assert_eq!(srv.stop(), Some(0));
    let got = dump(&srv.data_dir);
    let names: BTreeSet<String> = got
        .iter()
        .filter(|l| !l.contains("tocsin_") && !l.contains("process_") && !l.contains("up"))
        .cloned()
        .collect();
    assert!(
        names.iter().all(|l| !l.ends_with(&format!(" {old}"))),
        "old samples stored: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|l| l.contains("rw_old") && l.ends_with(&format!(" {fresh}"))),
        "{names:?}"
    );
    assert!(names.iter().any(|l| l.contains("gr_fresh")), "{names:?}");
}
