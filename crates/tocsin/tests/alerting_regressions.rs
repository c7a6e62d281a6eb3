//! Regression tests of alerting run against the real binary: the exec receiver under a config
//! given by bare file name, and a firing alert's start time and history row kept across a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tocsin_testkit::{client, now_ms, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn get_json(srv: &TestServer, path: &str) -> Value {
    let r = client().get(srv.url(path)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    serde_json::from_str(&r.text().unwrap()).unwrap()
}

fn post_json(srv: &TestServer, path: &str, body: &Value) -> (u16, String) {
    let r = client()
        .post(srv.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn wait_file(path: &Path, timeout: Duration, srv: &TestServer) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.is_empty() {
                return s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written; log:\n{}",
            path.display(),
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn exec_receiver_failed_with_a_bare_config_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("notify.sh");
    std::fs::write(&script, "#!/bin/sh\ncat > out.json\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("rules.yml"), "groups: []\n").unwrap();
    std::fs::write(
        dir.path().join("tocsin.yml"),
        "rule_files: [rules.yml]\nalertmanager:\n  route:\n    receiver: run\n    group_wait: 100ms\n  receivers:\n    - name: run\n      exec_configs:\n        - command: ./notify.sh\n",
    )
    .unwrap();
    // `--config tocsin.yml`: the config file's parent is the empty path.
    let srv = TestServer::start_in(
        bin(),
        dir.path(),
        &dir.path().join("data"),
        &["--config", "tocsin.yml"],
    );
    let (code, body) = post_json(
        &srv,
        "/api/v2/alerts",
        &json!([{"labels": {"alertname": "Bare"}, "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms())}]),
    );
    assert_eq!(code, 200, "{body}");
    let out = wait_file(&dir.path().join("out.json"), Duration::from_secs(20), &srv);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["alerts"][0]["labels"]["alertname"], "Bare");
}

fn write_temp(srv: &TestServer, v: f64) {
    let r = client()
        .post(srv.url("/write?precision=ms"))
        .body(format!("app temp={v} {}\n", now_ms()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

/// Polls `/api/v2/alerts` until an alert named `name` is there; returns its `startsAt`.
fn wait_alert(srv: &TestServer, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get_json(srv, "/api/v2/alerts");
        if let Some(a) = v
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
        {
            return a["startsAt"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{name} never fired; log:\n{}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn restart_gave_a_firing_alert_a_new_start_and_split_its_history() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: app\n    rules:\n      - alert: Hot\n        expr: app_temp > 30\n      - alert: HotFor\n        expr: app_temp > 30\n        for: 2s\n",
    )
    .unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalertmanager:\n  route:\n    receiver: none\n  receivers:\n    - name: none\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(bin(), &data, &args);
    write_temp(&srv, 40.0);
    let hot = wait_alert(&srv, "Hot");
    let hot_for = wait_alert(&srv, "HotFor");
    // Let a few evaluations pass so the restart comes well after the alerts fired.
    std::thread::sleep(Duration::from_millis(1500));
    write_temp(&srv, 41.0);
    assert_eq!(srv.stop(), Some(0));

    let srv = TestServer::start_on(bin(), &data, &args);
    write_temp(&srv, 42.0);
    // The rules re-send after their first evaluations; wait until both are back.
    assert_eq!(
        wait_alert(&srv, "Hot"),
        hot,
        "Hot startsAt after the restart"
    );
    assert_eq!(
        wait_alert(&srv, "HotFor"),
        hot_for,
        "HotFor startsAt after the restart"
    );
    for name in ["Hot", "HotFor"] {
        let v = get_json(
            &srv,
            &format!("/api/v1/alerts/history?filter=alertname%3D%22{name}%22"),
        );
        let rows = v["data"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{name}: {v}");
        assert!(rows[0]["endsAt"].is_null(), "{name}: {v}");
        let start = if name == "Hot" { &hot } else { &hot_for };
        assert_eq!(
            tocsin_model::time::parse_rfc3339_ms(rows[0]["startsAt"].as_str().unwrap()),
            tocsin_model::time::parse_rfc3339_ms(start),
            "{name}: {v}"
        );
    }
}
