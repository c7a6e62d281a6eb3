//! The files in `examples/` that the README points newcomers to: the config passes `check config`
//! and starts a server, the rule test passes, and the routing tree sends what the README says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn ok(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tocsin {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn example_config_checks_runs_and_routes() {
    let cfg = examples().join("tocsin.yml");
    let cfg = cfg.to_str().unwrap();
    let out = ok(&["check", "config", cfg]);
    assert!(out.contains("SUCCESS: 4 rules found"), "{out}");
    let tests = examples().join("rules.test.yml");
    let out = ok(&["test", "rules", tests.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
    let out = ok(&[
        "routes",
        "test",
        "--config",
        cfg,
        "alertname=CpuIdleLow",
        "severity=critical",
    ]);
    assert_eq!(out, "platform-webhook\n");
    let srv = TestServer::start(bin(), &["--config", cfg]);
    // Rule groups are registered by the rule manager just after readiness.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (rules, v) = loop {
        let r = client().get(srv.url("/api/v1/rules")).send().unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        let rules: usize = v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["file"].as_str().unwrap_or("").ends_with("rules.yml"))
            .map(|g| g["rules"].as_array().unwrap().len())
            .sum();
        if rules > 0 || std::time::Instant::now() > deadline {
            break (rules, v);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(rules, 4, "{v}");
}
