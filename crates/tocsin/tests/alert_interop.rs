//! Interop with the real thing from Debian, both directions: tocsin's rule engine sends its alerts
//! to `prometheus-alertmanager` (which notifies a loopback webhook), and `prometheus` sends its
//! alerts to tocsin's built-in alert manager through `/api/v2/alerts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin_testkit::expo::{ExpoOptions, ExpoServer};
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, TestServer};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// True when the external program is there; panics when scripts/test should have installed it.
fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("{path} is not installed (scripts/test installs it)");
    }
    eprintln!("SKIPPED: {path} not installed; scripts/test installs it");
    false
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A child process killed when dropped.
struct Proc(Child, std::path::PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

fn wait_http_ok(url: &str, p: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client().get(url).send() {
            if r.status().is_success() {
                return;
            }
        }
        if let Ok(Some(st)) = p.0.try_wait() {
            panic!("{url}: process exited with {st}; log:\n{}", p.log());
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready; log:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_alertmanager(dir: &Path, webhook: &str) -> (Proc, String) {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = dir.join("alertmanager.log");
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc(child, log);
    wait_http_ok(&format!("http://{addr}/-/ready"), &mut p);
    (p, addr)
}

#[test]
fn tocsin_rules_notify_through_debian_alertmanager() {
    if !have(ALERTMANAGER) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let (_am, am_addr) = start_alertmanager(dir.path(), &hook.url("/hook"));
    let expo = ExpoServer::start(
        "# TYPE app_temp gauge\napp_temp 40\n",
        ExpoOptions::default(),
    );
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: app\n    rules:\n      - alert: Hot\n        expr: app_temp > 30\n        labels:\n          severity: page\n        annotations:\n          summary: too hot\n",
    )
    .unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: c1\nrule_files: [rules.yml]\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n",
            expo.addr
        ),
    )
    .unwrap();
    let _srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let reqs = hook.wait_for(
        Duration::from_secs(30),
        "firing notification from Alertmanager",
        |r| r.iter().any(|x| x.json()["status"] == "firing"),
    );
    let body = reqs
        .iter()
        .map(|r| r.json())
        .find(|b| b["status"] == "firing")
        .unwrap();
    assert_eq!(body["version"], "4");
    let a = &body["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "Hot");
    assert_eq!(a["labels"]["cluster"], "c1");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["annotations"]["summary"], "too hot");
    assert!(a["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr="));
    // Alertmanager's own API lists it as active.
    let v: Value = serde_json::from_str(
        &client()
            .get(format!("http://{am_addr}/api/v2/alerts"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v[0]["labels"]["alertname"], "Hot");
    assert_eq!(v[0]["status"]["state"], "active");

    // The condition clears: tocsin sends the resolve and Alertmanager notifies it.
    expo.set_body("# TYPE app_temp gauge\napp_temp 20\n");
    hook.wait_for(Duration::from_secs(30), "resolved notification", |r| {
        r.iter().any(|x| x.json()["status"] == "resolved")
    });
}

const PROMETHEUS: &str = "/usr/bin/prometheus";

#[test]
fn debian_prometheus_sends_its_alerts_to_tocsin() {
    if !have(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "alertmanager:\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 1s\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {}\n",
            hook.url("/hook")
        ),
    )
    .unwrap();
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    std::fs::write(
        dir.path().join("prom-rules.yml"),
        "groups:\n  - name: p\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n        labels:\n          severity: info\n        annotations:\n          summary: 'value {{ $value }}'\n",
    )
    .unwrap();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  evaluation_interval: 1s\n  external_labels:\n    replica: a\nrule_files: [{}]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['{}']\n",
            dir.path().join("prom-rules.yml").display(),
            srv.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("prometheus.log");
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Its first send can race Alertmanager discovery at start-up and be dropped; the default
        // 1m resend delay would then make the test wait a minute.
        .arg("--rules.alert.resend-delay=1s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut prom = Proc(child, log);
    wait_http_ok(&format!("http://127.0.0.1:{port}/-/ready"), &mut prom);
    let reqs = hook.wait_for(
        Duration::from_secs(60),
        "Prometheus's alert notified by tocsin",
        |r| {
            r.iter()
                .any(|x| x.json()["groupLabels"]["alertname"] == "FromPrometheus")
        },
    );
    let b = reqs
        .iter()
        .map(|x| x.json())
        .find(|b| b["groupLabels"]["alertname"] == "FromPrometheus")
        .unwrap();
    let a = &b["alerts"][0];
    assert_eq!(a["labels"]["severity"], "info");
    assert_eq!(
        a["labels"]["replica"], "a",
        "Prometheus adds its external labels"
    );
    assert_eq!(a["annotations"]["summary"], "value 1");
    assert!(a["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr=vector"));
    // tocsin's Alertmanager API lists it, as amtool would see it.
    let v: Value = serde_json::from_str(
        &client()
            .get(srv.url("/api/v2/alerts?filter=alertname%3D%22FromPrometheus%22"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v[0]["status"]["state"], "active");
    assert_eq!(v[0]["receivers"][0]["name"], "hook");
    let ends = tocsin_model::time::parse_rfc3339_ms(v[0]["endsAt"].as_str().unwrap()).unwrap();
    let starts = tocsin_model::time::parse_rfc3339_ms(v[0]["startsAt"].as_str().unwrap()).unwrap();
    assert!(ends > starts, "Prometheus sends an endsAt ahead: {}", v[0]);
}
