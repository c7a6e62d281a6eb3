//! Self-monitoring out of the box: the server writes its own metrics as job="tocsin_self" without
//! a scrape job, evaluates the embedded rule group (Watchdog fires at once), exports what the
//! rules need (file_sd target counts, data-directory free space), and `self_monitoring.enabled:
//! false` switches all of it off. The rules' firing conditions are tested by the rule unit tests
//! in crates/server/src/self_rules.test.yml, run here too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tocsin_testkit::{client, get_json, wait_until, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn query(srv: &TestServer, q: &str) -> Vec<Value> {
    let r = client()
        .get(srv.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .unwrap();
    let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn self_group(srv: &TestServer) -> Option<Value> {
    get_json(srv, "/api/v1/rules")["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "tocsin-self-monitoring")
        .cloned()
}

#[test]
fn self_metrics_are_stored_and_watchdog_fires_without_any_scrape_job() {
    let tmp = tempfile::tempdir().unwrap();
    let sd = tmp.path().join("empty.json");
    std::fs::write(&sd, "[]").unwrap();
    let cfg = format!(
        "self_monitoring: {{interval: 1s}}\nscrape_configs:\n  - job_name: fromfile\n    file_sd_configs: [{{files: ['{}']}}]\n",
        sd.display()
    );
    let srv = TestServer::start_with_config(bin(), &cfg, &["--self-monitoring=true"]);
    let g = wait_until(Duration::from_secs(30), "the self-monitoring group", || {
        self_group(&srv)
    });
    assert_eq!(g["file"], "<builtin>/self_monitoring.yml");
    assert_eq!(g["interval"], 1.0);
    let build = wait_until(
        Duration::from_secs(30),
        "tocsin_build_info{job=\"tocsin_self\"}",
        || {
            let r = query(&srv, "tocsin_build_info{job=\"tocsin_self\"}");
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(build[0]["metric"]["instance"], srv.addr.as_str());
    let files = wait_until(Duration::from_secs(30), "tocsin_sd_file_targets", || {
        let r = query(&srv, "tocsin_sd_file_targets{job=\"tocsin_self\"}");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(
        files[0]["metric"]["file"],
        sd.display().to_string().as_str()
    );
    assert_eq!(files[0]["value"][1], "0");
    let free = query(
        &srv,
        "tocsin_storage_filesystem_avail_bytes{job=\"tocsin_self\"} <= tocsin_storage_filesystem_size_bytes{job=\"tocsin_self\"}",
    );
    assert_eq!(free.len(), 1, "{free:?}");
    let watchdog = wait_until(Duration::from_secs(30), "Watchdog firing", || {
        get_json(&srv, "/api/v1/alerts")["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["labels"]["alertname"] == "Watchdog" && a["state"] == "firing")
            .cloned()
    });
    assert!(watchdog["annotations"]["runbook_url"]
        .as_str()
        .unwrap()
        .ends_with("README.md#watchdog"));
}

#[test]
fn self_monitoring_switched_off_has_no_group_and_a_reload_turns_it_on() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tocsin.yml");
    std::fs::write(
        tmp.path().join("mine.yml"),
        "groups: [{name: mine, interval: 1s, rules: [{record: one, expr: vector(1)}]}]\n",
    )
    .unwrap();
    std::fs::write(
        &cfg,
        "self_monitoring: {enabled: false}\nrule_files: [mine.yml]\n",
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let srv = TestServer::start(bin(), &["--config", &cfg_s, "--self-monitoring=true"]);
    // Once our own group has evaluated, the self group would be there and would have written.
    wait_until(
        Duration::from_secs(30),
        "the user's group to evaluate",
        || (!query(&srv, "one").is_empty()).then_some(()),
    );
    assert!(self_group(&srv).is_none());
    assert!(query(&srv, "{job=\"tocsin_self\"}").is_empty());
    std::fs::write(
        &cfg,
        "self_monitoring: {interval: 1s, runbook_base: 'https://wiki.example/tocsin'}\n",
    )
    .unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(srv.pid() as i32, libc::SIGHUP);
    }
    let g = wait_until(Duration::from_secs(30), "the group after reload", || {
        self_group(&srv)
    });
    let watchdog = g["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Watchdog")
        .cloned()
        .unwrap();
    assert_eq!(
        watchdog["annotations"]["runbook_url"],
        "https://wiki.example/tocsin#watchdog"
    );
    wait_until(Duration::from_secs(30), "self metrics after reload", || {
        (!query(&srv, "tocsin_build_info{job=\"tocsin_self\"}").is_empty()).then_some(())
    });
}

#[test]
fn the_flag_switches_self_monitoring_off_over_the_config() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("mine.yml");
    std::fs::write(
        &mine,
        "groups: [{name: mine, interval: 1s, rules: [{record: one, expr: vector(1)}]}]\n",
    )
    .unwrap();
    let cfg = format!(
        "self_monitoring: {{interval: 1s}}\nrule_files: ['{}']\n",
        mine.display()
    );
    let srv = TestServer::start_with_config(bin(), &cfg, &["--self-monitoring=false"]);
    assert_eq!(
        get_json(&srv, "/api/v1/status/flags")["data"]["self-monitoring"],
        "false"
    );
    wait_until(
        Duration::from_secs(30),
        "the user's group to evaluate",
        || (!query(&srv, "one").is_empty()).then_some(()),
    );
    assert!(self_group(&srv).is_none());
    assert!(query(&srv, "{job=\"tocsin_self\"}").is_empty());
}

#[test]
fn embedded_rules_pass_their_rule_tests_and_bad_settings_are_refused() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/self_rules.test.yml");
    let out = std::process::Command::new(bin())
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SUCCESS"),
        "{stdout}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yml");
    std::fs::write(&bad, "self_monitoring:\n  interval: 0s\n  enable: true\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "bad.yml:3:3: self_monitoring.enable: unknown field `enable`, did you mean `enabled`?"
        ),
        "{text}"
    );
}
