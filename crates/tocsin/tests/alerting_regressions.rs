//! Regression tests of alerting run against the real binary: the exec receiver under a config
//! given by bare file name, and a firing alert's start time and history row kept across a restart.

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
