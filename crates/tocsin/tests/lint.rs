//! `tocsin lint` as users run it: the repository's examples report no ERR, exit codes (0 / 1 / 2),
//! rule selection, and the shape of the JSON and SARIF outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn lint(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .arg("lint")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A config with an alert routed only to a receiver without notifiers (alerting/ERR/001) and a
/// template referencing a label the aggregation drops (rules/ERR/001).
fn broken(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: JobErrors\n        expr: sum by (job) (rate(errors_total[5m])) > 1\n        labels: {severity: critical}\n        annotations:\n          summary: \"{{ $labels.instance }}\"\n",
    )
    .unwrap();
    let cfg = dir.join("tocsin.yml");
    std::fs::write(
        &cfg,
        "rule_files: [rules.yml]\nalertmanager:\n  route:\n    receiver: nobody\n  receivers:\n    - name: nobody\n",
    )
    .unwrap();
    cfg
}

#[test]
fn examples_report_no_err() {
    for cfg in ["examples/tocsin.yml", "examples/reactive-fleet/tocsin.yml"] {
        let path = repo().join(cfg);
        let (code, out, err) = lint(&["--config", path.to_str().unwrap(), "--output", "json"]);
        assert_eq!(code, 0, "{cfg}: {out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for r in v["rules"].as_array().unwrap() {
            if r["class"] == "ERR" || r["class"] == "SEC" {
                assert_eq!(r["failed"], 0, "{cfg}: {r:#}");
            }
        }
    }
}

#[test]
fn failures_exit_1_with_reasons_and_locations() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = broken(dir.path());
    let cfg = cfg.to_str().unwrap();
    let (code, out, _) = lint(&["--config", cfg, "--hide-ok"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] alerting/ERR/001"), "{out}");
    assert!(out.contains("routed only to receiver(s) nobody"), "{out}");
    assert!(
        out.contains("$labels.instance (in summary) always empty"),
        "{out}"
    );
    assert!(
        !out.contains("\x1b["),
        "no colour when stdout is not a TTY: {out}"
    );

    let (code, out, _) = lint(&["--config", cfg, "--output", "sarif"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    let r = results
        .iter()
        .find(|r| r["ruleId"] == "rules/ERR/001")
        .expect("a rules/ERR/001 result");
    assert_eq!(r["level"], "error");
    let loc = &r["locations"][0]["physicalLocation"];
    assert!(loc["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("rules.yml"));
    assert_eq!(loc["region"]["startLine"], 4, "the rule's line: {r:#}");
    let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    let idx = r["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[idx]["id"], "rules/ERR/001");

    let (code, out, _) = lint(&["--config", cfg, "--output", "html"]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("<!DOCTYPE html>") && out.contains("routed only to receiver(s) nobody")
    );

    // Excluding the failing ERR rules leaves nothing that makes lint exit 1.
    let (code, out, _) = lint(&["--config", cfg, "--exclude", "*/ERR/*"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = lint(&["--config", cfg, "--include", "rules/*", "--output", "json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["product"] == "rules"));
}

#[test]
fn the_lint_sections_selection_applies_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = broken(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}lint:\n  include: ['rules/*', 'alerting/*']\n  exclude: ['alerting/*']\n"),
    )
    .unwrap();
    let (_, out, err) = lint(&["--config", cfg.to_str().unwrap(), "--output", "json"]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let rules = v["rules"].as_array().unwrap();
    assert!(
        !rules.is_empty() && rules.iter().all(|r| r["product"] == "rules"),
        "{v:#}"
    );
    // --include replaces the section's includes; its excludes still apply.
    let (_, out, _) = lint(&[
        "--config",
        cfg.to_str().unwrap(),
        "--output",
        "json",
        "--include",
        "*/ERR/*",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rules = v["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["product"] == "config"), "{v:#}");
    assert!(
        rules
            .iter()
            .all(|r| r["product"] != "alerting" && r["class"] == "ERR"),
        "{v:#}"
    );
}

#[test]
fn lint_that_cannot_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let (code, _, err) = lint(&["--config", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lint could not run"), "{err}");
    let cfg = broken(dir.path());
    let (code, _, err) = lint(&["--config", cfg.to_str().unwrap(), "--include", "nothing/*"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("leave no rule to run"), "{err}");
}

#[test]
fn comments_ignore_and_snooze_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = broken(dir.path());
    let cfg = cfg.to_str().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      # tocsin lint ignore alerting/ERR/001\n      # tocsin lint snooze rules/ERR/001 until 2999-12-31\n      - alert: JobErrors\n        expr: sum by (job) (rate(errors_total[5m])) > 1\n        labels: {severity: critical}\n        annotations:\n          summary: \"{{ $labels.instance }}\"\n",
    )
    .unwrap();
    let (code, out, _) = lint(&["--config", cfg, "--show-skipped"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ignored by the comment at"), "{out}");
    assert!(out.contains("snoozed until 2999-12-31"), "{out}");

    // An expired snooze no longer hides the failure.
    let text = std::fs::read_to_string(dir.path().join("rules.yml")).unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        text.replace("2999-12-31", "2000-01-01"),
    )
    .unwrap();
    let (code, out, _) = lint(&["--config", cfg, "--include", "rules/*"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn a_configuration_the_server_refuses_is_a_failing_rule_not_an_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: MemoryGrowing\n        expr: rate(process_resident_memory_bytes[30m]) > 1e6\n",
    )
    .unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 15s\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: node\n    scrape_timeout: 20s\n    static_configs: [{targets: [\"127.0.0.1:9100\"]}]\nalertmanager:\n  route:\n    receiver: pager\n  receivers:\n    - name: pager\n      webhook_configs: [{url: \"http://127.0.0.1:5001/\"}]\n",
    )
    .unwrap();
    let (code, out, err) = lint(&["--config", cfg.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rule = |id: &str| {
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {v:#}"))
            .clone()
    };
    // The loader's message, at the setting's line and column.
    let e = &rule("config/ERR/002")["entries"][0];
    assert_eq!(e["status"], "failed", "{e:#}");
    assert_eq!(e["resource"], "scrape_configs[0].scrape_timeout", "{e:#}");
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(6), Some(21)),
        "{e:#}"
    );
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("greater than the scrape interval"),
        "{e:#}"
    );
    // The job, by name, from the YAML as written.
    let e = &rule("scrape/ERR/001")["entries"][0];
    assert_eq!(e["resource"], "job node", "{e:#}");
    assert_eq!(e["line"], 6, "{e:#}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("scrape_timeout 20s exceeds global.scrape_interval 15s"),
        "{e:#}"
    );
    // Rule files named in the YAML tree are still linted.
    assert_eq!(rule("rules/WARN/005")["failed"], 1);
    // Rules needing the loaded configuration say why they did not run.
    let e = &rule("alerting/ERR/001")["entries"][0];
    assert_eq!(e["status"], "skipped", "{e:#}");
    assert!(
        e["reason"].as_str().unwrap().contains("config/ERR/002"),
        "{e:#}"
    );
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = broken(dir.path());
    let cfg = cfg.to_str().unwrap();
    // Not a terminal: stderr stays clean for logs and pipes.
    let (code, _, err) = lint(&["--config", cfg]);
    assert_eq!(code, 1);
    assert_eq!(err, "", "no progress output without a terminal");
    // Under a pseudo-terminal (util-linux's `script`), the bar ticks through the query modules on
    // stderr and is cleared before the report.
    let cmd = format!(
        "{} lint --config {cfg} --hide-ok 2>&1 >/dev/null",
        env!("CARGO_BIN_EXE_tocsin")
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("util-linux's script");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("prefetching"), "{tty:?}");
    let total = tocsin_lint::Context::PREFETCH_MODULES;
    assert!(tty.contains(&format!("/{total}")), "{tty:?}");
    assert!(
        tty.contains("\u{1b}[2K"),
        "the bar's line is cleared: {tty:?}"
    );
}
