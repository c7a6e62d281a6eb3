//! Integration tests of scraping: the real binary scraping loopback exposition servers (plain, with
//! basic auth, bearer token, a required header, TLS), file-based discovery changed on disk, reload
//! (good and bad), staleness markers, the targets API, the default self-scrape and a real
//! node_exporter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin_testkit::expo::{ExpoOptions, ExpoServer};
use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn dump(dir: &Path, selector: &str) -> Vec<String> {
    tocsin_testkit::dump_lines(bin(), dir, &["--match", selector])
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn targets(srv: &TestServer) -> Value {
    let text = client()
        .get(srv.url("/api/v1/targets"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn active(srv: &TestServer) -> Vec<Value> {
    targets(srv)["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Health of the target whose scrape URL contains `needle`, once it has been scraped.
fn health_of(srv: &TestServer, needle: &str) -> Option<(String, String)> {
    active(srv).into_iter().find_map(|t| {
        let url = t["scrapeUrl"].as_str()?;
        let h = t["health"].as_str()?;
        (url.contains(needle) && h != "unknown").then(|| {
            (
                h.to_string(),
                t["lastError"].as_str().unwrap_or("").to_string(),
            )
        })
    })
}

struct Setup {
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    srv: TestServer,
}

fn start_with_config(yaml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(&cfg, yaml).unwrap();
    let data = dir.path().join("data");
    // With the lifecycle endpoints: the reload tests post to /-/reload.
    let srv = TestServer::start_on(
        bin(),
        &data,
        &["--config", cfg.to_str().unwrap(), "--web.enable-lifecycle"],
    );
    Setup {
        _dir: dir,
        cfg,
        srv,
    }
}

const BODY: &str = "# HELP app_requests_total Requests.\n# TYPE app_requests_total counter\napp_requests_total{path=\"/a\"} 10\napp_requests_total{path=\"/b\"} 20\n# TYPE app_temp gauge\napp_temp 21.5\n";

#[test]
fn static_scrape_writes_samples_report_series_and_staleness() {
    let expo = ExpoServer::start(
        BODY,
        ExpoOptions {
            required_header: Some(("X-App-Instance".into(), "guid:3".into())),
            ..Default::default()
        },
    );
    let s = start_with_config(&format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: app
    http_headers:
      X-App-Instance:
        values: ["guid:3"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: app_temp
        target_label: unit
        replacement: celsius
    static_configs:
      - targets: ["{}"]
        labels:
          env: test
"#,
        expo.addr
    ));
    let dir = s.srv.data_dir.clone();
    let up = wait_for("up == 1", Duration::from_secs(20), || {
        let l = dump(&dir, "up");
        l.iter()
            .find(|x| x.ends_with(" 1") || x.contains(" 1 "))
            .cloned()
    });
    assert!(
        up.contains("job=\"app\"") && up.contains("env=\"test\""),
        "{up}"
    );
    assert!(up.contains(&format!("instance=\"{}\"", expo.addr)), "{up}");
    let b = dump(&dir, "app_requests_total{path=\"/b\"}");
    assert!(b.iter().all(|l| l.contains(" 20 ")), "{b:?}");
    let temp = dump(&dir, "app_temp");
    assert!(temp[0].contains("unit=\"celsius\""), "{temp:?}");
    for name in [
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        assert!(!dump(&dir, name).is_empty(), "no {name}");
    }
    let scraped = dump(&dir, "scrape_samples_scraped");
    assert!(scraped[0].contains(" 3 "), "{scraped:?}");
    // The scraper asked for OpenMetrics first and sent the configured header.
    let reqs = expo.requests();
    let accept = reqs[0]
        .iter()
        .find(|(k, _)| k == "accept")
        .map(|x| x.1.clone())
        .unwrap_or_default();
    assert!(
        accept.starts_with("application/openmetrics-text"),
        "{accept}"
    );

    // A series vanishing from the exposition gets a staleness marker.
    expo.set_body(
        "# TYPE app_requests_total counter\napp_requests_total{path=\"/a\"} 11\napp_temp 22\n",
    );
    wait_for("stale marker for /b", Duration::from_secs(20), || {
        dump(&dir, "app_requests_total{path=\"/b\"}")
            .iter()
            .any(|l| l.contains(" NaN "))
            .then_some(())
    });
    let (h, _) = health_of(&s.srv, &expo.addr.to_string()).unwrap();
    assert_eq!(h, "up");
    let t = &active(&s.srv)[0];
    assert_eq!(t["scrapePool"], "app");
    assert_eq!(t["labels"]["env"], "test");
    assert_eq!(t["discoveredLabels"]["__address__"], expo.addr.to_string());
    assert_eq!(t["scrapeInterval"], "1s");

    // Failing target: up becomes 0 and the target is shown down with the error.
    drop(expo);
    wait_for("target down", Duration::from_secs(20), || {
        active(&s.srv)
            .iter()
            .any(|t| t["health"] == "down" && !t["lastError"].as_str().unwrap_or("").is_empty())
            .then_some(())
    });
}

#[test]
fn file_sd_change_is_picked_up_and_removed_target_goes_stale() {
    let a = ExpoServer::start("metric_a 1\n", ExpoOptions::default());
    let b = ExpoServer::start("metric_b 2\n", ExpoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let tfile = dir.path().join("targets.json");
    std::fs::write(
        &tfile,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "x"}}}}]"#,
            a.addr
        ),
    )
    .unwrap();
    let s = start_with_config(&format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: broker
    file_sd_configs:
      - files: ["{}/*.json"]
        refresh_interval: 1m
"#,
        dir.path().display()
    ));
    let data = s.srv.data_dir.clone();
    wait_for("metric_a scraped", Duration::from_secs(20), || {
        (!dump(&data, "metric_a{team=\"x\"}").is_empty()).then_some(())
    });
    // Replace A with B in the file: B is scraped well before the 1m refresh interval and A's
    // series get staleness markers.
    std::fs::write(
        &tfile,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"team": "y"}}}}]"#,
            b.addr
        ),
    )
    .unwrap();
    wait_for("metric_b scraped", Duration::from_secs(20), || {
        (!dump(&data, "metric_b{team=\"y\"}").is_empty()).then_some(())
    });
    wait_for("metric_a stale", Duration::from_secs(20), || {
        dump(&data, "metric_a")
            .last()
            .is_some_and(|l| l.contains(" NaN "))
            .then_some(())
    });
    wait_for("up of A stale", Duration::from_secs(20), || {
        dump(&data, &format!("up{{instance=\"{}\"}}", a.addr))
            .last()
            .is_some_and(|l| l.contains(" NaN "))
            .then_some(())
    });
    let act = active(&s.srv);
    assert_eq!(act.len(), 1, "{act:?}");
    assert!(act[0]["scrapeUrl"]
        .as_str()
        .unwrap()
        .contains(&b.addr.to_string()));
    assert!(act[0]["discoveredLabels"]["__meta_filepath"]
        .as_str()
        .unwrap()
        .ends_with("targets.json"));
}

#[test]
fn reload_rejects_a_bad_config_and_applies_a_good_one() {
    let a = ExpoServer::start("metric_a 1\n", ExpoOptions::default());
    let b = ExpoServer::start("metric_b 2\n", ExpoOptions::default());
    let job = |name: &str, addr: &std::net::SocketAddr| {
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: {name}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        )
    };
    let mut s = start_with_config(&job("one", &a.addr));
    wait_for("job one up", Duration::from_secs(20), || {
        health_of(&s.srv, &a.addr.to_string()).filter(|h| h.0 == "up")
    });
    let scrapes_before = a.requests().len();

    // A typo: rejected with file, line and field; the old job keeps running.
    std::fs::write(
        &s.cfg,
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: one\n    scrape_intervl: 5s\n",
    )
    .unwrap();
    let r = client().post(s.srv.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("tocsin.yml") && msg.contains("scrape_intervl"),
        "{msg}"
    );
    assert!(
        msg.contains("tocsin.yml:5:5: scrape_configs[0].scrape_intervl: unknown field"),
        "{msg}"
    );
    let act = active(&s.srv);
    assert_eq!(act.len(), 1);
    assert_eq!(act[0]["scrapePool"], "one");

    // The same config again: the target keeps its state and is not scraped early.
    std::fs::write(&s.cfg, job("one", &a.addr)).unwrap();
    let last_before = active(&s.srv)[0]["lastScrape"].clone();
    let r = client().post(s.srv.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let after = active(&s.srv);
    assert_eq!(after[0]["lastScrape"], last_before);
    assert_eq!(after[0]["health"], "up");
    assert!(a.requests().len() >= scrapes_before);

    // A new job by SIGHUP.
    std::fs::write(&s.cfg, job("two", &b.addr)).unwrap();
    unsafe {
        libc::kill(s.srv.pid() as i32, libc::SIGHUP);
    }
    wait_for("job two up", Duration::from_secs(20), || {
        health_of(&s.srv, &b.addr.to_string()).filter(|h| h.0 == "up")
    });
    let act = active(&s.srv);
    assert_eq!(act.len(), 1, "{act:?}");
    assert_eq!(act[0]["scrapePool"], "two");
    let metrics = client()
        .get(s.srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("tocsin_config_last_reload_successful 1"),
        "{metrics}"
    );
    s.srv.stop();
}

#[test]
fn basic_auth_bearer_and_tls_scrapes() {
    let basic = ExpoServer::start(
        "m_basic 1\n",
        ExpoOptions {
            basic_auth: Some(("alice".into(), "s3cret".into())),
            ..Default::default()
        },
    );
    let bearer = ExpoServer::start(
        "m_bearer 1\n",
        ExpoOptions {
            bearer: Some("tok-123".into()),
            ..Default::default()
        },
    );
    let tls = ExpoServer::start(
        "m_tls 1\n",
        ExpoOptions {
            tls_names: Some(vec!["metrics.internal".into()]),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "tok-123\n").unwrap();
    std::fs::write(dir.path().join("ca.pem"), tls.ca_pem.clone().unwrap()).unwrap();
    let yaml = format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: basic
    basic_auth: {{username: alice, password: s3cret}}
    static_configs: [{{targets: ["{basic}"]}}]
  - job_name: basic-wrong
    basic_auth: {{username: alice, password: nope}}
    static_configs: [{{targets: ["{basic}"]}}]
  - job_name: bearer
    bearer_token_file: {tokfile}
    static_configs: [{{targets: ["{bearer}"]}}]
  - job_name: tls
    scheme: https
    tls_config:
      ca_file: {ca}
      server_name: metrics.internal
    static_configs: [{{targets: ["{tls}"]}}]
  - job_name: tls-untrusted
    scheme: https
    static_configs: [{{targets: ["{tls}"]}}]
"#,
        basic = basic.addr,
        bearer = bearer.addr,
        tls = tls.addr,
        tokfile = dir.path().join("token").display(),
        ca = dir.path().join("ca.pem").display(),
    );
    // Written beside the data so relative paths would also resolve; absolute ones are used here.
    let s = start_with_config(&yaml);
    let pool_health = |pool: &str| {
        active(&s.srv).into_iter().find_map(|t| {
            (t["scrapePool"] == pool && t["health"] != "unknown").then(|| {
                (
                    t["health"].as_str().unwrap().to_string(),
                    t["lastError"].as_str().unwrap().to_string(),
                )
            })
        })
    };
    for pool in ["basic", "bearer", "tls"] {
        let (h, e) = wait_for(pool, Duration::from_secs(20), || pool_health(pool));
        assert_eq!(h, "up", "{pool}: {e}");
    }
    let (h, e) = wait_for("basic-wrong", Duration::from_secs(20), || {
        pool_health("basic-wrong")
    });
    assert_eq!(h, "down");
    assert!(e.contains("401"), "{e}");
    let (h, e) = wait_for("tls-untrusted", Duration::from_secs(20), || {
        pool_health("tls-untrusted")
    });
    assert_eq!(h, "down", "{e}");
    let data = s.srv.data_dir.clone();
    for m in ["m_basic", "m_bearer", "m_tls"] {
        assert!(!dump(&data, m).is_empty(), "{m} not stored");
    }
}

#[test]
fn default_config_scrapes_tocsin_itself() {
    let srv = TestServer::start(bin(), &[]);
    let data = srv.data_dir.clone();
    let line = wait_for("self scrape", Duration::from_secs(40), || {
        dump(&data, "up{job=\"tocsin\"}").first().cloned()
    });
    assert!(
        line.contains(&format!("instance=\"{}\"", srv.addr)),
        "{line}"
    );
    assert!(line.contains(" 1 "), "{line}");
    wait_for("own metrics", Duration::from_secs(40), || {
        (!dump(&data, "tocsin_scrapes_total{job=\"tocsin\"}").is_empty()).then_some(())
    });
}

#[test]
fn node_exporter_end_to_end() {
    let exe = [
        "/usr/bin/prometheus-node-exporter",
        "/usr/bin/node_exporter",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    let Some(exe) = exe else {
        if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
            panic!("prometheus-node-exporter is not installed (scripts/test installs it)");
        }
        eprintln!("SKIPPED: prometheus-node-exporter not installed; scripts/test installs it");
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _ne = Kill(
        Command::new(exe)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let s = start_with_config(&format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n"
    ));
    let data = s.srv.data_dir.clone();
    wait_for("node_exporter up", Duration::from_secs(30), || {
        dump(&data, "up{job=\"node\"}")
            .iter()
            .any(|l| l.contains(" 1 "))
            .then_some(())
    });
    let cpu = dump(&data, "node_cpu_seconds_total{mode=\"idle\"}");
    assert!(!cpu.is_empty(), "no node_cpu_seconds_total");
    assert!(!dump(&data, "node_memory_MemTotal_bytes").is_empty());
    let n = dump(&data, "scrape_samples_scraped{job=\"node\"}");
    let v: f64 = n[0].split(' ').rev().nth(1).unwrap().parse().unwrap();
    assert!(v > 100.0, "node_exporter exposed only {v} samples");
}
