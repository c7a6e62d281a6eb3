//! The live lint rules against a real server filled with data: a join whose label one side lost
//! (rules/ERR/101), a churny fleet whose series live 5 minutes under a 10-minute `for`
//! (rules/ERR/102), a selector with a typo (rules/WARN/101); by `tocsin lint --server`, by the
//! server's own `lint:` loop (`tocsin_lint_failed` on `/metrics`), and by `--data-dir` on the
//! stopped server's data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tocsin_collect::remote_write::encode;
use tocsin_testkit::{client, now_ms, wait_until, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

const RULES: &str = r#"groups:
  - name: fleet
    rules:
      - alert: BusyVm
        expr: (vm_cpu > 0.95) and on(instance_id) (vm_uptime > 600)
        for: 1m
        labels: {severity: page}
      - alert: VmHot
        expr: vm_churn_cpu > 0.9
        for: 10m
        labels: {severity: page}
      - alert: Typo
        expr: vm_cpuu > 1
        labels: {severity: page}
      - alert: CpuVeryHigh
        expr: vm_cpu > 2
        for: 1m
        labels: {severity: page}
"#;

fn setup(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    let cfg = dir.join("tocsin.yml");
    std::fs::write(
        &cfg,
        "rule_files: [rules.yml]\nlint:\n  interval: 10m\n  include: ['rules/*']\n",
    )
    .unwrap();
    cfg
}

/// 30 minutes of a long-lived VM whose `vm_uptime` lacks `instance_id`, and 12 VMs of a churny
/// fleet that each live 5 minutes, one after the other, over the last hour.
fn fill(srv: &TestServer) {
    let now = now_ms() / 15_000 * 15_000;
    let steady: Vec<(i64, f64)> = (0..120)
        .map(|k| (now - 1_800_000 + k * 15_000, 0.99))
        .collect();
    let up: Vec<(i64, f64)> = steady.iter().map(|(t, _)| (*t, 1000.0)).collect();
    let cpu = [
        ("__name__", "vm_cpu"),
        ("instance", "vm-1:9100"),
        ("instance_id", "i-1"),
        ("job", "vm"),
    ];
    let uptime = [
        ("__name__", "vm_uptime"),
        ("instance", "vm-1:9100"),
        ("job", "vm"),
    ];
    let body = encode([(&cpu[..], &steady[..]), (&uptime[..], &up[..])]);
    let (code, text) = tocsin_testkit::remote_write(srv, body);
    assert_eq!(code, 204, "{text}");
    let names: Vec<String> = (0..12).map(|i| format!("vm-{i}")).collect();
    let labels: Vec<[(&str, &str); 3]> = names
        .iter()
        .map(|n| {
            [
                ("__name__", "vm_churn_cpu"),
                ("job", "fleet"),
                ("vm", n.as_str()),
            ]
        })
        .collect();
    let samples: Vec<Vec<(i64, f64)>> = (0..12)
        .map(|i| {
            let born = now - 3_600_000 + i * 300_000;
            (0..20).map(|k| (born + k * 15_000, 0.95)).collect()
        })
        .collect();
    let body = encode(labels.iter().zip(&samples).map(|(l, s)| (&l[..], &s[..])));
    let (code, text) = tocsin_testkit::remote_write(srv, body);
    assert_eq!(code, 204, "{text}");
}

fn lint(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(bin())
        .arg("lint")
        .args(args)
        .args(["--output", "json", "--include", "rules/*"])
        .env_remove("TOCSIN_SERVER")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}{}", String::from_utf8_lossy(&out.stderr)));
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The entry of rule `id` for `resource`: (status, reason).
fn entry(v: &Value, id: &str, resource: &str) -> (String, String) {
    let r = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no rule {id}: {v:#}"));
    let e = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == resource)
        .unwrap_or_else(|| panic!("{id}: no entry for {resource}: {r:#}"));
    (
        e["status"].as_str().unwrap().to_string(),
        e["reason"].as_str().unwrap_or_default().to_string(),
    )
}

fn assert_findings(v: &Value) {
    let (s, why) = entry(v, "rules/ERR/101", "alert BusyVm");
    assert_eq!(s, "failed", "{why}");
    assert!(
        why.contains("no series of the right side `vm_uptime` carries instance_id")
            && why.contains(r#"vm_uptime{instance="vm-1:9100", job="vm"}"#),
        "{why}"
    );
    let (s, why) = entry(v, "rules/ERR/102", "alert VmHot");
    assert_eq!(s, "failed", "{why}");
    assert!(
        why.contains("the 12 series of `vm_churn_cpu`")
            && why.contains("under `for: 10m`: the alert can never fire"),
        "{why}"
    );
    assert_eq!(entry(v, "rules/ERR/102", "alert CpuVeryHigh").0, "ok");
    let (s, why) = entry(v, "rules/WARN/101", "alert Typo");
    assert_eq!(s, "failed");
    assert!(
        why.contains("`vm_cpuu` matched no series in the last 6h"),
        "{why}"
    );
    assert_eq!(entry(v, "rules/WARN/101", "alert CpuVeryHigh").0, "ok");
}

#[test]
fn live_rules_find_broken_joins_short_lived_series_and_typos() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path());
    let data = tmp.path().join("data");
    let cfg_s = cfg.to_str().unwrap();
    let mut srv =
        TestServer::start_on(bin(), &data, &["--config", cfg_s, "--web.enable-lifecycle"]);
    fill(&srv);

    // By hand, against the running server.
    let (code, v, err) = lint(&["--config", cfg_s, "--server", &srv.url("")]);
    assert_eq!(code, 1, "{v:#}{err}");
    assert_findings(&v);

    // The server's own run, kicked by a reload now that the data is in.
    let r = client().post(srv.url("/-/reload")).send().unwrap();
    assert!(r.status().is_success());
    let want = r#"tocsin_lint_failed{rule="rules/ERR/102",resource="alert VmHot"} 1"#;
    wait_until(
        Duration::from_secs(60),
        "tocsin_lint_failed on /metrics",
        || {
            let m = client().get(srv.url("/metrics")).send().ok()?.text().ok()?;
            m.contains(want).then_some(())
        },
    );
    let m = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        m.contains(r#"tocsin_lint_failed{rule="rules/ERR/101",resource="alert BusyVm"} 1"#),
        "{m}"
    );
    assert!(!m.contains(r#"resource="alert CpuVeryHigh""#), "{m}");

    // In-process, on the stopped server's data directory.
    srv.stop();
    let (code, v, err) = lint(&["--config", cfg_s, "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, 1, "{v:#}{err}");
    assert_findings(&v);
}

#[test]
fn without_a_live_source_live_rules_are_skipped_and_bad_settings_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path());
    let (code, v, err) = lint(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{v:#}{err}");
    let r = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "rules/ERR/102")
        .unwrap();
    assert_eq!(r["entries"][0]["status"], "skipped", "{r:#}");
    assert!(r["entries"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("--server"));

    std::fs::write(
        &cfg,
        "lint:\n  interval: 10s\n  include: ['nope/*']\n  bogus: 1\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("bogus"), "{text}");
    std::fs::write(&cfg, "lint:\n  interval: 10s\n  include: ['nope/*']\n").unwrap();
    let out = Command::new(bin())
        .args(["check", "config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("interval") && text.contains("\"nope/*\" matches no lint rule"),
        "{text}"
    );
}
