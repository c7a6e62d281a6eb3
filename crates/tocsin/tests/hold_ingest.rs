//! Issue 12, "Hold": ingest that cannot be served is refused (remote write 2.0, samples far in
//! the future, oversized labels and silences, huge headers), connections are bounded and time
//! out, a damaged state.db does not keep the server from starting, and status endpoints hide
//! secrets. Each test is named after what broke; all run the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use tocsin_collect::remote_write::encode;
use tocsin_testkit::{client, now_ms, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn rw_body(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Vec<u8> {
    encode([(labels, samples)])
}

fn post_rw(srv: &TestServer, content_type: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut r = client()
        .post(srv.url("/api/v1/write"))
        .header("Content-Encoding", "snappy");
    if let Some(ct) = content_type {
        r = r.header("Content-Type", ct);
    }
    let r = r.body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn post(srv: &TestServer, path: &str, ct: &str, body: impl Into<Vec<u8>>) -> (u16, String) {
    let r = client()
        .post(srv.url(path))
        .header("Content-Type", ct)
        .body(body.into())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn get(srv: &TestServer, path: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn metric(srv: &TestServer, name: &str) -> f64 {
    let (_, m) = get(srv, "/metrics");
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{m}"))
}

/// The result of an instant query for a bare metric name.
fn query(srv: &TestServer, metric_name: &str) -> serde_json::Value {
    let (_, text) = get(srv, &format!("/api/v1/query?query={metric_name}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"].clone()
}

fn start_with_config(yaml: &str) -> (TestServer, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("tocsin.yml");
    std::fs::write(&cfg, yaml).unwrap();
    let srv = TestServer::start_on(
        bin(),
        &d.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    (srv, d)
}

#[test]
fn remote_write_2_0_was_acknowledged_and_nothing_stored() {
    let srv = TestServer::start(bin(), &[]);
    let t = now_ms();
    let body = rw_body(&[("__name__", "rw_v2_probe")], &[(t, 1.0)]);
    let (code, msg) = post_rw(
        &srv,
        Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        body.clone(),
    );
    assert_eq!(code, 415, "{msg}");
    assert!(
        msg.contains("io.prometheus.write.v2.Request") && msg.contains("1.0"),
        "{msg}"
    );
    for ct in [
        "application/json",
        "application/x-protobuf;proto=something.Else",
    ] {
        let (code, msg) = post_rw(&srv, Some(ct), body.clone());
        assert_eq!(code, 415, "{ct}: {msg}");
        assert!(msg.contains("not supported"), "{msg}");
    }
    // Remote write 1.0, named explicitly or not, is still served.
    for ct in [
        Some("application/x-protobuf;proto=prometheus.WriteRequest"),
        Some("application/x-protobuf"),
        None,
    ] {
        let (code, msg) = post_rw(&srv, ct, body.clone());
        assert_eq!(code, 204, "{ct:?}: {msg}");
    }
    assert_eq!(query(&srv, "rw_v2_probe").as_array().unwrap().len(), 1);
    // A healthy start raises no built-in alert.
    let (_, a) = get(&srv, "/api/v2/alerts");
    assert!(!a.contains("Tocsin"), "{a}");
}

#[test]
fn sample_in_year_2300_made_every_later_write_too_old() {
    let srv = TestServer::start(bin(), &[]);
    let t2300 = 10_413_792_000_000i64;
    let now = now_ms();
    // Remote write: the far-future sample is refused by name, the good one in the same request
    // is written.
    let body = encode([
        (
            &[("__name__", "future_metric"), ("job", "a")][..],
            &[(t2300, 1.0)][..],
        ),
        (
            &[("__name__", "present_metric"), ("job", "a")][..],
            &[(now, 2.0)][..],
        ),
    ]);
    let (code, msg) = post_rw(&srv, None, body);
    assert_eq!(code, 400, "{msg}");
    assert!(
        msg.contains("future_metric") && msg.contains("2300-01-01") && msg.contains("max_future"),
        "{msg}"
    );
    // Line protocol (in seconds: 2300 does not fit in i64 nanoseconds) and JSON push.
    let (code, msg) = post(
        &srv,
        "/write?precision=s",
        "text/plain",
        format!("future_lp,host=a value=1 {}\n", t2300 / 1000),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(
        msg.contains("future_lp") && msg.contains("2300-01-01"),
        "{msg}"
    );
    let json = r#"{"timeSeries":[{"metric":{"type":"custom.googleapis.com/future_push"},"points":[{"interval":{"endTime":"2300-01-01T00:00:00Z"},"value":{"doubleValue":1}}]}]}"#;
    let (code, msg) = post(&srv, "/api/v1/push", "application/json", json);
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("2300-01-01"), "{msg}");
    // Normal writes after it are not "too old", and the head's time range never reached 2300.
    let body = rw_body(
        &[("__name__", "present_metric"), ("job", "b")],
        &[(now - 1000, 3.0)],
    );
    assert_eq!(post_rw(&srv, None, body).0, 204);
    assert_eq!(query(&srv, "present_metric").as_array().unwrap().len(), 2);
    let (_, tsdb) = get(&srv, "/api/v1/status/tsdb");
    let v: serde_json::Value = serde_json::from_str(&tsdb).unwrap();
    let max_t = v["data"]["headStats"]["maxTime"].as_i64().unwrap();
    assert!(max_t < now + 600_000, "head max time moved to {max_t}");
    assert!(metric(&srv, "tocsin_remote_write_samples_rejected_total") >= 1.0);
}

#[test]
fn scraped_samples_far_in_the_future_were_stored() {
    let t2300 = 10_413_792_000_000i64;
    let expo = tocsin_testkit::expo::ExpoServer::start(
        &format!("scraped_future 1 {t2300}\nscraped_now 1\n"),
        Default::default(),
    );
    let (srv, _d) = start_with_config(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: e\n    static_configs:\n      - targets: [\"{}\"]\n",
        expo.addr
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&srv, "tocsin_scrape_samples_rejected_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "future sample never counted\n{}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(query(&srv, "scraped_now").as_array().unwrap().len(), 1);
    assert!(
        srv.log_text().contains("scraped_future"),
        "{}",
        srv.log_text()
    );
}

#[test]
fn oversized_labels_were_accepted_without_limit() {
    let (srv, _d) = start_with_config(
        "limits:\n  max_labels_per_series: 4\n  max_label_name_length: 20\n  max_label_value_length: 100\n",
    );
    let now = now_ms();
    let many = [
        ("__name__", "m"),
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "4"),
    ];
    let (code, msg) = post_rw(&srv, None, rw_body(&many, &[(now, 1.0)]));
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("max_labels_per_series (4)"), "{msg}");
    let long_value = "v".repeat(101);
    let (code, msg) = post_rw(
        &srv,
        None,
        rw_body(&[("__name__", "m"), ("a", &long_value)], &[(now, 1.0)]),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("max_label_value_length (100)"), "{msg}");
    let (code, msg) = post(
        &srv,
        "/write",
        "text/plain",
        format!("m,{}=x value=1\n", "n".repeat(21)),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("max_label_name_length (20)"), "{msg}");
    let (code, msg) = post_rw(
        &srv,
        None,
        rw_body(&[("__name__", "m"), ("a", "ok")], &[(now, 1.0)]),
    );
    assert_eq!(code, 204, "{msg}");
}

#[test]
fn silences_of_any_size_were_accepted() {
    let (srv, _d) = start_with_config(
        "limits:\n  max_silence_matchers: 3\n  max_silence_comment_length: 50\n  max_silence_body_size: 10KB\n",
    );
    let silence = |matchers: usize, comment: &str| {
        let ms: Vec<String> = (0..matchers)
            .map(|i| format!(r#"{{"name":"l{i}","value":"v","isRegex":false}}"#))
            .collect();
        format!(
            r#"{{"matchers":[{}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"t","comment":"{comment}"}}"#,
            ms.join(",")
        )
    };
    let (code, msg) = post(
        &srv,
        "/api/v2/silences",
        "application/json",
        silence(4, "c"),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("max_silence_matchers (3)"), "{msg}");
    let (code, msg) = post(
        &srv,
        "/api/v2/silences",
        "application/json",
        silence(1, &"c".repeat(51)),
    );
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("max_silence_comment_length (50)"), "{msg}");
    let (code, msg) = post(
        &srv,
        "/api/v2/silences",
        "application/json",
        silence(1, &"c".repeat(20_000)),
    );
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("max_silence_body_size"), "{msg}");
    let (code, msg) = post(
        &srv,
        "/api/v2/silences",
        "application/json",
        silence(3, "fine"),
    );
    assert_eq!(code, 200, "{msg}");
}

#[test]
fn huge_request_headers_were_accepted() {
    let srv = TestServer::start(bin(), &[]);
    let r = client()
        .get(srv.url("/-/healthy"))
        .header("X-Big", "h".repeat(100 << 10))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert_eq!(get(&srv, "/-/healthy").0, 200);
}

/// Reads until the server closes the connection; returns how long that took.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Duration {
    s.set_read_timeout(Some(limit)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("connection still open after {:?}: {e}", start.elapsed()),
        }
    }
}

#[test]
fn half_sent_headers_and_idle_keep_alive_held_connections_forever() {
    let (srv, _d) = start_with_config("web:\n  header_read_timeout: 1s\n");
    // A client that never finishes its headers.
    let mut half = TcpStream::connect(&srv.addr).unwrap();
    half.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let took = time_to_close(&mut half, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // An idle keep-alive connection after one answered request.
    let mut idle = TcpStream::connect(&srv.addr).unwrap();
    idle.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let took = time_to_close(&mut idle, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(get(&srv, "/-/healthy").0, 200);
}

/// Opens a connection and runs one request on it; the connection stays open (keep-alive).
/// `None` when the server closed it instead of answering.
fn served_connection(addr: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("Healthy") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(s)
}

#[test]
fn connections_beyond_any_number_were_accepted() {
    let (srv, _d) = start_with_config("web:\n  max_connections: 4\n");
    // Let the readiness probe's connection close.
    std::thread::sleep(Duration::from_millis(200));
    // Served keep-alive connections fill the cap; the next one is closed unanswered.
    let mut held = Vec::new();
    let mut refused = false;
    for _ in 0..6 {
        match served_connection(&srv.addr) {
            Some(c) => held.push(c),
            None => {
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "{} connections served, none refused", held.len());
    assert!((1..=4).contains(&held.len()), "{}", held.len());
    drop(held);
    // Normal requests succeed again once the held connections are gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client().get(srv.url("/-/healthy")).send() {
            Ok(r) if r.status().as_u16() == 200 => break,
            _ => assert!(Instant::now() < deadline, "server did not recover"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&srv, "tocsin_http_connections_refused_total") >= 1.0);
    assert!(metric(&srv, "tocsin_http_connections") >= 1.0);
    assert!(
        srv.log_text().contains("connection limit reached"),
        "{}",
        srv.log_text()
    );
}

#[test]
fn corrupt_state_db_kept_the_whole_server_from_starting() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let garbage = b"definitely not an SQLite database ".repeat(300);
    std::fs::write(data.join("state.db"), &garbage).unwrap();
    let srv = TestServer::start_on(bin(), &data, &[]);
    // Ingest and queries work.
    let now = now_ms();
    let (code, msg) = post_rw(
        &srv,
        None,
        rw_body(&[("__name__", "after_damage")], &[(now, 7.0)]),
    );
    assert_eq!(code, 204, "{msg}");
    let r = query(&srv, "after_damage");
    assert_eq!(r[0]["value"][1], "7", "{r}");
    // The old file is kept, byte for byte, beside a fresh state.db.
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.db.corrupt-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(std::fs::read(&kept[0]).unwrap(), garbage);
    assert!(data.join("state.db").exists());
    // Loud: a built-in alert, a counter and an error in the log.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        let (_, a) = get(&srv, "/api/v2/alerts");
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        if let Some(x) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["labels"]["alertname"] == "TocsinStateDbCorrupt")
        {
            break x.clone();
        }
        assert!(Instant::now() < deadline, "no TocsinStateDbCorrupt in {a}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(alert["labels"]["severity"], "critical");
    let desc = alert["annotations"]["description"].as_str().unwrap();
    assert!(desc.contains("state.db.corrupt-"), "{desc}");
    assert_eq!(metric(&srv, "tocsin_state_db_corruptions_total"), 1.0);
    assert!(
        srv.log_text().contains("STATE DB DAMAGED"),
        "{}",
        srv.log_text()
    );
    // Silences work on the fresh file.
    let (code, msg) = post(
        &srv,
        "/api/v2/silences",
        "application/json",
        r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"t","comment":"c"}"#,
    );
    assert_eq!(code, 200, "{msg}");
}

const SECRET_CONFIG: &str = r#"
global:
  scrape_interval: 1h
scrape_configs:
  - job_name: basic
    basic_auth: {username: u, password: basic-pw-secret}
    static_configs: [{targets: ["127.0.0.1:1"]}]
  - job_name: bearer
    bearer_token: bearer-token-secret
    static_configs: [{targets: ["127.0.0.1:1"]}]
  - job_name: authz
    authorization: {type: Bearer, credentials: authz-credentials-secret}
    static_configs: [{targets: ["127.0.0.1:1"]}]
alerting:
  alertmanagers:
    - basic_auth: {username: am, password: am-pw-secret}
      static_configs: [{targets: ["127.0.0.1:1"]}]
alertmanager:
  route: {receiver: all}
  receivers:
    - name: all
      webhook_configs:
        - url: "http://127.0.0.1:1/hook?token=webhook-url-secret"
          http_config:
            authorization: {credentials: webhook-authz-secret}
      alerta_configs:
        - url: "http://127.0.0.1:1/api"
          api_key: alerta-api-key-secret
"#;

#[test]
fn status_endpoints_showed_passwords_tokens_and_webhook_urls_in_clear() {
    let (srv, _d) = start_with_config(SECRET_CONFIG);
    let (code, v1) = get(&srv, "/api/v1/status/config");
    assert_eq!(code, 200);
    let (code, v2) = get(&srv, "/api/v2/status");
    assert_eq!(code, 200);
    for secret in [
        "basic-pw-secret",
        "bearer-token-secret",
        "authz-credentials-secret",
        "am-pw-secret",
        "webhook-url-secret",
        "webhook-authz-secret",
        "alerta-api-key-secret",
    ] {
        assert!(
            !v1.contains(secret),
            "{secret} in /api/v1/status/config:\n{v1}"
        );
        assert!(!v2.contains(secret), "{secret} in /api/v2/status:\n{v2}");
    }
    assert!(
        v1.contains("<secret>") && v2.contains("<secret>"),
        "{v1}\n{v2}"
    );
    // What is not secret is still there to read.
    assert!(
        v1.contains("http://127.0.0.1:1/api") && v1.contains("job_name: basic"),
        "{v1}"
    );
    assert!(v2.contains("http://127.0.0.1:1/api"), "{v2}");
}

#[test]
fn check_config_validates_the_new_limits_and_web_settings() {
    let d = tempfile::tempdir().unwrap();
    let run = |yaml: &str| {
        let f = d.path().join("c.yml");
        std::fs::write(&f, yaml).unwrap();
        let out = std::process::Command::new(bin())
            .args(["check", "config", f.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = run("storage:\n  max_future: 5m\nlimits:\n  max_labels_per_series: 30\nweb:\n  max_connections: 100\n  header_read_timeout: 10s\n  max_header_size: 32KB\n");
    assert_eq!(code, 0, "{out}");
    for (yaml, field) in [
        ("storage:\n  max_future: soon\n", "storage.max_future"),
        ("web:\n  max_connections: 0\n", "web.max_connections"),
        (
            "web:\n  header_read_timeout: 0s\n",
            "web.header_read_timeout",
        ),
        (
            "limits:\n  max_silence_body_size: lots\n",
            "limits.max_silence_body_size",
        ),
        ("limits:\n  max_labels: 3\n", "max_labels"),
    ] {
        let (code, out) = run(yaml);
        assert_ne!(code, 0, "{yaml}: {out}");
        assert!(out.contains(field), "{yaml}: {out}");
    }
}

/// Polls `/api/v2/alerts` for an alert by name.
fn wait_for_alert(srv: &TestServer, name: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, a) = get(srv, "/api/v2/alerts");
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        if let Some(x) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["labels"]["alertname"] == name)
        {
            return x.clone();
        }
        assert!(Instant::now() < deadline, "no {name} in {a}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn damaged_wal_was_only_a_log_line_without_an_alert() {
    let mut srv = TestServer::start(bin(), &[]);
    // Several records, so the damage below sits between intact ones: a torn tail alone is what a
    // crash mid-write leaves and is not an alert.
    for i in 0..4 {
        let name = format!("before_damage_{i}");
        let body = rw_body(&[("__name__", name.as_str())], &[(now_ms(), 1.0)]);
        assert_eq!(post_rw(&srv, None, body).0, 204);
    }
    srv.kill9();
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
    let at = data.len() / 3;
    for b in &mut data[at..at + 4] {
        *b ^= 0xff;
    }
    std::fs::write(last, data).unwrap();
    let dir = srv.data_dir.clone();
    let srv2 = TestServer::start_on(bin(), &dir, &[]);
    let alert = wait_for_alert(&srv2, "TocsinStorageCorruption");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("damaged"),
        "{alert}"
    );
}
