//! `tocsin check config` and `tocsin check rules` against files written by the test: exit codes
//! and the file:line of every problem.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn tocsin(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

const GOOD_RULES: &str = "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: up == 0\n        for: 5m\n        labels:\n          severity: page\n";

#[test]
fn check_rules_accepts_good_files_and_names_bad_lines() {
    let d = tempfile::tempdir().unwrap();
    let good = d.path().join("good.yml");
    std::fs::write(&good, GOOD_RULES).unwrap();
    let (code, out) = tocsin(&["check", "rules", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS: 2 rules found"), "{out}");

    let bad = d.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n",
    )
    .unwrap();
    let (code, out) = tocsin(&[
        "check",
        "rules",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "{}:5:15: group \"g\", rule 1, \"x\": could not parse expression",
            bad.display()
        )),
        "{out}"
    );
}

#[test]
fn check_config_follows_rule_file_globs() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("rules")).unwrap();
    std::fs::write(d.path().join("rules/a.yml"), GOOD_RULES).unwrap();
    std::fs::write(d.path().join("rules/b.yml"), "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: later\n").unwrap();
    let cfg = d.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 15s\nrule_files:\n  - rules/*.yml\n",
    )
    .unwrap();
    let (code, out) = tocsin(&["check", "config", cfg.to_str().unwrap()]);
    // The rule files' problems are the config's, as the server refuses them at start.
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("b.yml:4: invalid 'for'"), "{out}");
    std::fs::remove_file(d.path().join("rules/b.yml")).unwrap();
    let (code, out) = tocsin(&["check", "config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    assert!(out.contains("SUCCESS: 2 rules found"), "{out}");

    std::fs::write(&cfg, "global:\n  scrape_interval: 15s\n  bogus: 1\n").unwrap();
    let (code, out) = tocsin(&["check", "config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bogus"), "{out}");
}

#[test]
fn check_config_refuses_bad_ha_settings_as_the_server_does() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "ha:\n  postgres: postgres://tocsin:secret@127.0.0.1/tocsin\n  password_file: nope\n  replica: a\n  takeover_timeout: 10ms\n  fallback: maybe\n",
    )
    .unwrap();
    let (code, out) = tocsin(&["check", "config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("fallback"), "{out}");
    std::fs::write(
        &cfg,
        "ha:\n  postgres: postgres://tocsin:secret@127.0.0.1/tocsin\n  password_file: nope\n  replica: a\n  takeover_timeout: 10ms\n",
    )
    .unwrap();
    let (code, out) = tocsin(&["check", "config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    for want in [
        "tocsin.yml:2:13: ha.postgres: holds a password",
        "tocsin.yml:3:18: ha.password_file: reading",
        "tocsin.yml:5:21: ha.takeover_timeout: must be at least 1s",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    // The server refuses the same file at start.
    let (code, out) = tocsin(&[
        "server",
        "--config",
        cfg.to_str().unwrap(),
        "--data-dir",
        d.path().join("data").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("ha.postgres: holds a password"), "{out}");
}
