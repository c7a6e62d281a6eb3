//! The command line's conventions against the real binary: `--log.format=json`, `tocsin query`'s
//! output for a person, `tocsin routes show|test`, and RFC 3339 times in `tsdb dump` and
//! `delete_series`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use tocsin_model::time::format_rfc3339_ms;
use tocsin_testkit::{client, now_ms, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Writes `name value` at `ts_s` (Unix seconds) through the line-protocol endpoint.
fn write(srv: &TestServer, lines: &str) {
    let r = client()
        .post(srv.url("/write?precision=s"))
        .body(lines.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap());
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let mut srv = TestServer::start(bin(), &["--log.format", "json"]);
    assert_eq!(srv.stop(), Some(0));
    let log = srv.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(!log.contains('\u{1b}'), "{log}");
}

#[test]
fn query_prints_readable_times_a_row_per_series_and_no_data() {
    let srv = TestServer::start(bin(), &[]);
    let t0 = now_ms() / 1000 - 120;
    write(
        &srv,
        &format!(
            "cpu,host=a v=1 {t0}\ncpu,host=a v=2 {}\ncpu,host=b v=5 {}\n",
            t0 + 10,
            t0 + 10
        ),
    );
    let server = srv.url("");
    let at = format_rfc3339_ms((t0 + 10) * 1000);
    let out = run(&["query", "--server", &server, "--time", &at, "cpu_v"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(o.starts_with("LABELS"), "{o}");
    assert!(
        o.contains(&format!("cpu_v{{host=\"a\"}}  2      {at}")),
        "{o}"
    );
    let out = run(&[
        "query",
        "range",
        "--server",
        &server,
        "--start",
        &format_rfc3339_ms(t0 * 1000),
        "--end",
        &at,
        "--step",
        "10s",
        "cpu_v",
    ]);
    let o = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(o.starts_with("2 steps from "), "{o}");
    assert!(o.contains("cpu_v{host=\"a\"}  1 2\n"), "{o}");
    assert!(o.contains("cpu_v{host=\"b\"}  _ 5\n"), "{o}");
    let out = run(&["query", "--server", &server, "nothing_here"]);
    assert_eq!(text(&out.stdout), "no data\n");
    let out = run(&["query", "--server", &server, "sum(cpu_v"]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("bad_data") && e.contains("1:10: parse error"),
        "{e}"
    );
    assert!(e.contains("\n  sum(cpu_v\n           ^"), "{e}");
}

#[test]
fn routes_show_and_test_read_a_tocsin_yml() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        r#"alertmanager:
  route:
    receiver: default
    group_by: [alertname]
    routes:
    - matchers: [service="db"]
      receiver: db
      continue: true
    - matchers: [owner="y"]
      receiver: team-y
  receivers:
  - name: default
  - name: db
    exec_configs:
    - command: /bin/true
  - name: team-y
"#,
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let out = run(&["routes", "show", "--config", c]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o = text(&out.stdout);
    assert!(o.contains("└── default-route  receiver: default"), "{o}");
    assert!(o.contains("{service=\"db\"}  receiver: db"), "{o}");
    let out = run(&["routes", "test", "--config", c, "service=db", "owner=y"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "db,team-y\n");
    let out = run(&[
        "routes",
        "test",
        "--config",
        c,
        "--verify.receivers",
        "db",
        "service=db",
        "owner=y",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&["routes", "test", "--config", c, "alertname=X"]);
    assert_eq!(text(&out.stdout), "default\n");
}

#[test]
fn tsdb_dump_and_delete_series_take_rfc3339_times() {
    let mut srv = TestServer::start(bin(), &tocsin_testkit::ADMIN_FLAGS);
    let t0 = now_ms() / 1000 - 600;
    write(&srv, &format!("d v=1 {t0}\nd v=2 {}\n", t0 + 300));
    let r = client()
        .post(srv.url("/api/v1/admin/tsdb/delete_series"))
        .form(&[
            ("match[]", "d_v"),
            ("start", &format_rfc3339_ms((t0 - 1) * 1000)),
            ("end", &format_rfc3339_ms((t0 + 1) * 1000)),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap());
    let r = client()
        .post(srv.url("/api/v1/admin/tsdb/delete_series"))
        .form(&[("match[]", "d_v"), ("start", "yesterday")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["errorType"], "bad_data", "{v}");
    assert!(v["error"].as_str().unwrap().contains("\"start\""), "{v}");
    assert_eq!(srv.stop(), Some(0));
    let all = tocsin_testkit::dump_lines(bin(), &srv.data_dir, &[]);
    assert_eq!(
        all,
        [format!("{{__name__=\"d_v\"}} 2 {}", (t0 + 300) * 1000)]
    );
    let dir = srv.data_dir.to_str().unwrap();
    let from = format_rfc3339_ms((t0 + 301) * 1000);
    let out = run(&["tsdb", "dump", "--data-dir", dir, "--min-time", &from]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "");
    let out = run(&["tsdb", "dump", "--data-dir", dir, "--max-time", "soon"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("RFC 3339"),
        "{}",
        text(&out.stderr)
    );
}

/// Every `/api/v1` endpoint but remote write (whose senders expect Prometheus's plain-text
/// errors) answers in the Prometheus envelope, on success and on a bad request alike.
#[test]
fn every_api_v1_endpoint_answers_in_the_prometheus_envelope() {
    let srv = TestServer::start(bin(), &tocsin_testkit::ADMIN_FLAGS);
    let ok = [
        "/api/v1/query?query=1",
        "/api/v1/query_range?query=1&start=0&end=60&step=15",
        "/api/v1/format_query?query=up",
        "/api/v1/query_exemplars?query=up&start=0&end=60",
        "/api/v1/series?match[]=up",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/metadata",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/alertmanagers",
        "/api/v1/alerts/history",
        "/api/v1/heartbeats",
        "/api/v1/status/buildinfo",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/flags",
        "/api/v1/status/config",
        "/api/v1/status/tsdb",
        "/api/v1/targets",
    ];
    for path in ok {
        let r = client().get(srv.url(path)).send().unwrap();
        let code = r.status().as_u16();
        let body = r.text().unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(
            (code, &v["status"]),
            (200, &"success".into()),
            "{path}: {body}"
        );
    }
    let bad: [(&str, &str); 7] = [
        ("GET", "/api/v1/query?query=sum("),
        ("GET", "/api/v1/query_range?query=1"),
        ("GET", "/api/v1/series"),
        ("GET", "/api/v1/alerts/history?limit=0"),
        ("POST", "/api/v1/heartbeat/bad%2Fname"),
        ("POST", "/api/v1/push"),
        ("POST", "/api/v1/admin/tsdb/delete_series"),
    ];
    for (method, path) in bad {
        let r = match method {
            "GET" => client().get(srv.url(path)),
            _ => client().post(srv.url(path)).body("{}"),
        }
        .send()
        .unwrap();
        let code = r.status().as_u16();
        let body = r.text().unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!((400..500).contains(&code), "{path}: {code} {body}");
        assert_eq!(v["status"], "error", "{path}: {body}");
        assert!(
            v["errorType"].is_string() && v["error"].is_string(),
            "{path}: {body}"
        );
    }
}

/// With `alertmanager: {file: am/am.yml}`, a receiver's relative paths are relative to am.yml,
/// as they were for Alertmanager (they were resolved against tocsin.yml's directory).
#[test]
fn alertmanager_file_receivers_resolve_paths_against_that_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("am")).unwrap();
    std::fs::write(dir.path().join("am/hook.url"), "http://127.0.0.1:9/hook\n").unwrap();
    std::fs::write(
        dir.path().join("am/am.yml"),
        "route:\n  receiver: r\nreceivers:\n- name: r\n  webhook_configs:\n  - url_file: hook.url\n",
    )
    .unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(&cfg, "alertmanager:\n  file: am/am.yml\n").unwrap();
    let out = run(&["check", "config", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mut srv = TestServer::start(bin(), &["--config", cfg.to_str().unwrap()]);
    assert_eq!(srv.stop(), Some(0));
}

#[test]
fn version_names_the_git_revision_and_build_date() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let v = text(&out.stdout);
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .map(|o| text(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert!(v.starts_with("tocsin 0."), "{v}");
    assert!(
        v.contains(&format!("(revision {rev}, built 20")),
        "{v} / {rev}"
    );
}
