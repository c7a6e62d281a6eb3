#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `remote_read:` against Debian's Prometheus (2.42, installed by scripts/test): Prometheus
//! holds 40 minutes of data, Tocsin the last 20 with a 5-minute hole in one series. Tocsin's
//! query API, series/labels endpoints and /federate must return what only Prometheus has and
//! the holed series complete; `required_matchers` and `read_recent` are honoured and applied by
//! a reload; Prometheus down gives warnings, never an error or a crash.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tocsin_collect::remote_write::WriteRequestBuilder;
use tocsin_testkit::{client, now_ms, remote_write, wait_until, TestServer, ADMIN_FLAGS};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const STEP: i64 = 15_000;
const MIN: i64 = 60_000;

struct Prometheus {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus() -> Prometheus {
    start_prometheus_with("")
}

/// Prometheus with `extra` appended to its configuration.
fn start_prometheus_with(extra: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    // Same external labels as Tocsin: Prometheus adds them to what it serves, Tocsin asks for
    // them and strips them, so the series meet Tocsin's own.
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1m\n  external_labels: {{cluster: c1}}\n{extra}"),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut p = Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = c.get(format!("{}/-/ready", p.base)).send() {
            if r.status().as_u16() == 200 {
                break;
            }
        }
        if let Ok(Some(st)) = p.child.try_wait() {
            let log =
                std::fs::read_to_string(p.dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("prometheus exited with {st}:\n{log}");
        }
        assert!(Instant::now() < deadline, "prometheus not ready in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

/// Samples every 15 s over [from, to), skipping [hole.0, hole.1); the value is the minute.
fn samples(from: i64, to: i64, hole: Option<(i64, i64)>) -> Vec<(i64, f64)> {
    (0..)
        .map(|i| from + i * STEP)
        .take_while(|t| *t < to)
        .filter(|t| hole.is_none_or(|(a, b)| *t < a || *t >= b))
        .map(|t| (t, (t / MIN) as f64))
        .collect()
}

/// (label pairs, samples) of one series to write.
type ToWrite<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn body(series: &[ToWrite]) -> Vec<u8> {
    let mut b = WriteRequestBuilder::new();
    for (labels, s) in series {
        b.add_series(labels.iter().copied(), s);
    }
    b.finish()
}

fn write_prometheus(p: &Prometheus, b: Vec<u8>) {
    let r = client()
        .post(format!("{}/api/v1/write", p.base))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(b)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    assert!(
        (200..300).contains(&code),
        "prometheus remote write: {code} {}",
        r.text().unwrap_or_default()
    );
}

/// Tocsin's config: Prometheus as the remote, `extra` appended to its entry, and a recording rule
/// (in Prometheus's directory) that shows what rule evaluation sees.
fn config(prom: &Prometheus, extra: &str) -> String {
    let rules = prom.dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: local\n    interval: 1s\n    rules:\n      - record: rr_only_prom_seen_by_rules\n        expr: count(only_prom) or vector(0)\n",
    )
    .unwrap();
    format!(
        "global:\n  external_labels: {{cluster: c1}}\nrule_files: [{}]\nremote_read:\n  - url: {}/api/v1/read\n    name: peer\n    remote_timeout: 5s\n{extra}",
        rules.display(),
        prom.base
    )
}

fn rewrite_and_reload(srv: &TestServer, yaml: &str) {
    let cfg = srv.data_dir.parent().unwrap().join("tocsin.yml");
    std::fs::write(&cfg, yaml).unwrap();
    let r = client().post(srv.url("/-/reload")).send().unwrap();
    let code = r.status().as_u16();
    assert_eq!(code, 200, "reload: {}", r.text().unwrap_or_default());
}

/// `/api/v1/query` at `t`: (status, data.result, warnings).
fn query(srv: &TestServer, q: &str, t: i64) -> (u16, Json, Vec<String>) {
    let r = client()
        .post(srv.url("/api/v1/query"))
        .form(&[
            ("query", q.to_string()),
            ("time", format!("{}", t as f64 / 1000.0)),
        ])
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let j: Json = serde_json::from_str(&r.text().unwrap()).unwrap();
    let warnings = j["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (code, j["data"]["result"].clone(), warnings)
}

/// The single value of an instant vector answer, or None when empty.
fn scalar(srv: &TestServer, q: &str, t: i64) -> Option<f64> {
    let (code, res, w) = query(srv, q, t);
    assert_eq!(code, 200, "{q}");
    assert!(w.is_empty(), "{q}: warnings {w:?}");
    let a = res.as_array().unwrap();
    assert!(a.len() <= 1, "{q}: {res}");
    a.first()
        .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
}

fn get(srv: &TestServer, path: &str) -> (u16, String) {
    let r = client().get(srv.url(path)).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// only_prom read straight from Prometheus's /api/v1/read, chunks requested first.
fn read_direct(p: &Prometheus, from: i64, to: i64) -> Vec<(i64, f64)> {
    use prost::Message;
    use tocsin_collect::remote_read::{frames, proto, STREAMED_CONTENT_TYPE};
    let req = proto::ReadRequest {
        queries: vec![proto::Query {
            start_timestamp_ms: from,
            end_timestamp_ms: to,
            matchers: vec![proto::LabelMatcher {
                r#type: proto::MatcherType::Eq as i32,
                name: "__name__".into(),
                value: "only_prom".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![
            proto::ResponseType::StreamedXorChunks as i32,
            proto::ResponseType::Samples as i32,
        ],
    };
    let r = client()
        .post(format!("{}/api/v1/read", p.base))
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .unwrap(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, STREAMED_CONTENT_TYPE);
    let body = r.bytes().unwrap();
    let series = frames::frames_to_series(frames::decode_frames(&body).unwrap()).unwrap();
    assert_eq!(series.len(), 1, "{series:?}");
    series[0].samples.iter().map(|s| (s.t, s.v)).collect()
}

#[test]
fn remote_read_from_prometheus() {
    if !Path::new(PROMETHEUS).exists() {
        if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
            panic!("{PROMETHEUS} is not installed (scripts/test installs Debian's prometheus)");
        }
        eprintln!("SKIPPED: {PROMETHEUS} not installed; scripts/test installs it");
        return;
    }
    let prom = start_prometheus();
    // Aligned to the step so both sides hold the same timestamps.
    let now = now_ms() / STEP * STEP;
    let (p_from, t_from) = (now - 40 * MIN, now - 20 * MIN);
    let hole = (now - 10 * MIN, now - 5 * MIN);
    let all = samples(p_from, now + 1, None);
    write_prometheus(
        &prom,
        body(&[
            (&[("__name__", "only_prom"), ("job", "p")], &all),
            (&[("__name__", "both"), ("job", "b")], &all),
        ]),
    );

    // Prometheus answers a chunks-first request with the streamed format, which our frame and
    // XOR decoders read back sample for sample.
    assert_eq!(read_direct(&prom, p_from, now), all);

    let mut srv = TestServer::start_with_config(
        Path::new(env!("CARGO_BIN_EXE_tocsin")),
        &config(&prom, "    read_recent: true\n"),
        &ADMIN_FLAGS,
    );
    srv.wait_ready(Duration::from_secs(30));
    let holed = samples(t_from, now + 1, Some(hole));
    let mine = samples(t_from, now + 1, None);
    let (code, text) = remote_write(
        &srv,
        body(&[
            (&[("__name__", "both"), ("job", "b")], &holed),
            (&[("__name__", "only_tocsin"), ("job", "t")], &mine),
        ]),
    );
    assert!((200..300).contains(&code), "{code} {text}");

    // A series only Prometheus has, through the query API.
    let n_all = all.len() as f64;
    assert_eq!(
        scalar(&srv, "count_over_time(only_prom[45m])", now),
        Some(n_all)
    );
    // The holed series comes back complete, with the stripped external label meeting ours.
    let (_, res, _) = query(&srv, "both[45m]", now);
    let a = res.as_array().unwrap();
    assert_eq!(a.len(), 1, "{res}");
    assert_eq!(
        a[0]["metric"],
        serde_json::json!({"__name__": "both", "job": "b"})
    );
    assert_eq!(a[0]["values"].as_array().unwrap().len(), all.len());
    // query_range too: a point every step in the hole.
    let r: Json = client()
        .post(srv.url("/api/v1/query_range"))
        .form(&[
            ("query", "both".to_string()),
            ("start", format!("{}", (hole.0 / 1000))),
            ("end", format!("{}", (hole.1 / 1000))),
            ("step", "15".to_string()),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let vals = r["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(vals.len(), 21, "{r}");

    // Series, label values and federation see the remote's series.
    let (code, text) = get(&srv, "/api/v1/series?match[]=only_prom");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"only_prom\""), "{text}");
    let (_, text) = get(&srv, "/api/v1/label/__name__/values");
    assert!(
        text.contains("\"only_prom\"") && text.contains("\"only_tocsin\""),
        "{text}"
    );
    let (_, text) = get(&srv, "/api/v1/labels?match[]=only_prom");
    assert!(text.contains("\"job\""), "{text}");
    let (code, text) = get(&srv, "/federate?match[]=only_prom");
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("only_prom{cluster=\"c1\",job=\"p\"}"),
        "{text}"
    );

    // Rules read local data only, as in Prometheus: the recorded count of only_prom is 0.
    let seen = wait_until(Duration::from_secs(20), "the recording rule", || {
        let (_, res, _) = query(&srv, "rr_only_prom_seen_by_rules", now_ms());
        res.as_array()
            .and_then(|a| a.first().cloned())
            .map(|s| s["value"][1].as_str().unwrap().to_string())
    });
    assert_eq!(seen, "0");

    // Metrics under Prometheus's names.
    let (_, m) = get(&srv, "/metrics");
    assert!(
        m.contains("prometheus_remote_storage_read_queries_total{remote_name=\"peer\"")
            && m.contains("code=\"200\""),
        "{}",
        m.lines()
            .filter(|l| l.contains("remote_storage"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(m.contains("prometheus_remote_storage_read_request_duration_seconds_bucket"));

    // required_matchers: a selector without job="b" stays local.
    rewrite_and_reload(
        &srv,
        &config(
            &prom,
            "    read_recent: true\n    required_matchers: {job: b}\n",
        ),
    );
    assert_eq!(scalar(&srv, "count_over_time(only_prom[45m])", now), None);
    assert_eq!(
        scalar(&srv, "count_over_time(both{job=\"b\"}[45m])", now),
        Some(n_all)
    );
    assert_eq!(
        scalar(&srv, "count_over_time(both[45m])", now),
        Some(holed.len() as f64)
    );

    // read_recent: false: only time before Tocsin's oldest sample goes to the remote, so the
    // hole stays and only_prom has its first 20 minutes (and the sample at Tocsin's start).
    rewrite_and_reload(&srv, &config(&prom, "    read_recent: false\n"));
    let before = samples(p_from, t_from + 1, None).len();
    assert_eq!(
        scalar(&srv, "count_over_time(only_prom[45m])", now),
        Some(before as f64)
    );
    assert_eq!(
        scalar(&srv, "count_over_time(both[45m])", now),
        Some((before - 1 + holed.len()) as f64)
    );
    // A range the local storage covers whole is not sent.
    assert_eq!(scalar(&srv, "count_over_time(only_prom[5m])", now), None);

    // Prometheus down: local data with a warning naming the remote, never an error.
    rewrite_and_reload(&srv, &config(&prom, "    read_recent: true\n"));
    drop(prom);
    let (code, res, w) = query(&srv, "count_over_time(both[45m])", now);
    assert_eq!(code, 200);
    assert_eq!(
        res[0]["value"][1].as_str().unwrap(),
        holed.len().to_string()
    );
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("remote_read \"peer\"") && w[0].contains("Connection refused"),
        "{w:?}"
    );
    let (code, text) = get(&srv, "/api/v1/series?match[]=both");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("remote_read \\\"peer\\\""), "{text}");
    let (code, text) = get(&srv, "/federate?match[]=both");
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("both{"), "{text}");
    let (_, m) = get(&srv, "/metrics");
    assert!(m.contains("code=\"error\""), "failed reads are counted");
    wait_until(Duration::from_secs(5), "server still up", || {
        (get(&srv, "/-/ready").0 == 200).then_some(())
    });
}

#[test]
fn bad_remote_read_settings_are_refused_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "remote_read:\n  - url: http://127.0.0.1:1/api/v1/read\n    headers: {Authorization: x}\n  - url: ftp://x/\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("tocsin.yml:3:") && text.contains("Authorization is a reserved header"),
        "{text}"
    );
    assert!(
        text.contains("tocsin.yml:4:") && text.contains("ftp"),
        "{text}"
    );
    std::fs::write(
        &cfg,
        "remote_read:\n  - url: http://127.0.0.1:1/api/v1/read\n    sigv4: {region: x}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("unknown field `sigv4`"), "{text}");
}

/// The other way round: Debian's Prometheus reads Tocsin's `/api/v1/read` (asking for streamed
/// chunks first; Tocsin answers with samples, which every client takes) and sees every sample,
/// Tocsin's external labels meeting its own.
#[test]
fn prometheus_reads_tocsin() {
    if !Path::new(PROMETHEUS).exists() {
        if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
            panic!("{PROMETHEUS} is not installed (scripts/test installs Debian's prometheus)");
        }
        eprintln!("SKIPPED: {PROMETHEUS} not installed; scripts/test installs it");
        return;
    }
    let srv = TestServer::start_with_config(
        Path::new(env!("CARGO_BIN_EXE_tocsin")),
        "global:\n  external_labels: {cluster: c1}\n",
        &[],
    );
    let now = now_ms() / STEP * STEP;
    let mine = samples(now - 20 * MIN, now + 1, None);
    let (code, text) = remote_write(
        &srv,
        body(&[(&[("__name__", "only_tocsin"), ("job", "t")], &mine)]),
    );
    assert!((200..300).contains(&code), "{code} {text}");
    let prom = start_prometheus_with(&format!(
        "remote_read:\n  - url: {}\n    read_recent: true\n",
        srv.url("/api/v1/read")
    ));
    let r: Json = client()
        .post(format!("{}/api/v1/query", prom.base))
        .form(&[
            ("query", "count_over_time(only_tocsin[25m])".to_string()),
            ("time", format!("{}", now as f64 / 1000.0)),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{r}");
    let res = r["data"]["result"].as_array().unwrap();
    assert_eq!(res.len(), 1, "{r}");
    assert_eq!(res[0]["value"][1], mine.len().to_string(), "{r}");
    assert!(r.get("warnings").is_none(), "{r}");
    // A bad request is refused with a message, never a crash.
    let bad = client()
        .post(srv.url("/api/v1/read"))
        .header("Content-Encoding", "snappy")
        .body("not a read request")
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().unwrap().contains("remote read"));
}
