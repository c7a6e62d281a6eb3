#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `remote_write:` end to end: Tocsin forwards what it receives to Debian's `victoria-metrics` and
//! to Debian's `prometheus` (2.42, receiver enabled), both on free 127.0.0.1 ports, and every
//! series arrives with every sample (compared with `count_over_time` on the receiver), also
//! across an outage of the receiver with a kill -9 of Tocsin in the middle of it. A 400 is
//! dropped and counted; a 429 is retried when `retry_on_http_429` says so (a small axum fake).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tocsin_collect::remote_write::encode;
use tocsin_testkit::{client, now_ms, remote_write, wait_until, TestServer};

const VM: &str = "/usr/bin/victoria-metrics";
const PROMETHEUS: &str = "/usr/bin/prometheus";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tocsin"))
}

/// False (and the test is skipped) when `path` is missing, unless the run requires it.
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
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A receiver process on a fixed port and data directory, so it can be stopped and started
/// again where it was.
struct Receiver {
    kind: &'static str,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Receiver {
    fn new(kind: &'static str, root: &Path) -> Receiver {
        let dir = root.join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Receiver {
            kind,
            port: free_port(),
            dir,
            child: None,
        };
        r.start();
        r
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn write_url(&self) -> String {
        match self.kind {
            "victoria-metrics" => format!("{}/api/v1/write", self.base()),
            _ => format!("{}/api/v1/write", self.base()),
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let mut cmd = match self.kind {
            "victoria-metrics" => {
                let mut c = Command::new(VM);
                c.arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
                    .arg(format!(
                        "-storageDataPath={}",
                        self.dir.join("data").display()
                    ))
                    .arg("-retentionPeriod=100y")
                    // Fresh samples are queryable at once, and answers are never cached.
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.disableCache");
                c
            }
            _ => {
                let cfg = self.dir.join("prometheus.yml");
                std::fs::write(&cfg, "global:\n  scrape_interval: 1m\n").unwrap();
                let mut c = Command::new(PROMETHEUS);
                c.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        self.dir.join("data").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
                    .arg("--web.enable-remote-write-receiver");
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.kind));
        self.child = Some(child);
        let ready = match self.kind {
            "victoria-metrics" => format!("{}/health", self.base()),
            _ => format!("{}/-/ready", self.base()),
        };
        wait_until(Duration::from_secs(60), "the receiver to be ready", || {
            client()
                .get(&ready)
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
    }

    /// SIGTERM, so the receiver persists what it acknowledged (a SIGKILLed VictoriaMetrics
    /// loses its last seconds of in-memory data, which would look like a loss of ours).
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// `count_over_time(metric[range])` per `i` label.
    fn counts(&self, metric: &str) -> BTreeMap<String, u64> {
        if self.kind == "victoria-metrics" {
            let _ = client()
                .get(format!("{}/internal/force_flush", self.base()))
                .send();
        }
        let q = format!("count_over_time({metric}[2h])");
        let r = client()
            .get(format!("{}/api/v1/query", self.base()))
            .query(&[
                ("query", q.as_str()),
                ("time", &format!("{}", now_ms() / 1000 + 1)),
            ])
            .send();
        let Ok(r) = r else {
            return BTreeMap::new();
        };
        let v: serde_json::Value = r.json().unwrap_or_default();
        let mut out = BTreeMap::new();
        for s in v["data"]["result"].as_array().cloned().unwrap_or_default() {
            let i = s["metric"]["i"].as_str().unwrap_or_default().to_string();
            let n: u64 = s["value"][1].as_str().unwrap_or("0").parse().unwrap_or(0);
            out.insert(i, n);
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Labels and samples of one series.
type Series = (Vec<(String, String)>, Vec<(i64, f64)>);

/// `series` series of `metric`, `per` samples each, one a second ending at `end_ms`; pushed in
/// several requests. Returns the expected count per series.
fn push(srv: &TestServer, metric: &str, series: usize, per: usize, end_ms: i64, from: usize) {
    for chunk in 0..per.div_ceil(10) {
        let mut owned: Vec<Series> = Vec::new();
        for s in 0..series {
            let labels = vec![
                ("__name__".to_string(), metric.to_string()),
                ("i".to_string(), format!("{s:03}")),
                ("job".to_string(), "rw".to_string()),
            ];
            let samples: Vec<(i64, f64)> = (chunk * 10..((chunk + 1) * 10).min(per))
                .map(|k| {
                    let t = end_ms - ((per - 1 - k) as i64) * 1000;
                    (t, (from + k) as f64)
                })
                .collect();
            owned.push((labels, samples));
        }
        let pairs: Vec<Vec<(&str, &str)>> = owned
            .iter()
            .map(|(l, _)| l.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect())
            .collect();
        let body = encode(
            pairs
                .iter()
                .zip(&owned)
                .map(|(p, (_, s))| (p.as_slice(), s.as_slice())),
        );
        let (code, text) = remote_write(srv, body);
        assert_eq!(code, 204, "{text}");
    }
}

fn expect(series: usize, n: u64) -> BTreeMap<String, u64> {
    (0..series).map(|s| (format!("{s:03}"), n)).collect()
}

fn wait_counts(r: &Receiver, metric: &str, want: &BTreeMap<String, u64>, timeout: Duration) {
    let mut last = BTreeMap::new();
    let ok = (0..(timeout.as_millis() / 500)).any(|_| {
        last = r.counts(metric);
        if &last == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
        false
    });
    assert!(
        ok,
        "{}: series by series count_over_time differs:\n got {last:?}\nwant {want:?}",
        r.kind
    );
}

fn metric(srv: &TestServer, name: &str, remote: &str) -> f64 {
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("remote_name=\"{remote}\"")))
        .filter(|l| l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the named queues run: a new remote starts at the end of the WAL as it is then.
fn wait_queues(srv: &TestServer, names: &[&str]) {
    wait_until(
        Duration::from_secs(30),
        "the remote-write queues to start",
        || {
            names
                .iter()
                .all(|n| metric(srv, "prometheus_remote_storage_shards", n) > 0.0)
                .then_some(())
        },
    );
}

fn config(remotes: &[(&str, String)], extra: &str) -> String {
    let mut y = String::from(
        "global:\n  external_labels: {replica: a}\nscrape_configs: []\nremote_write:\n",
    );
    for (name, url) in remotes {
        y.push_str(&format!(
            "  - url: {url}\n    name: {name}\n    queue_config: {{batch_send_deadline: 200ms, max_samples_per_send: 500, min_backoff: 50ms, max_backoff: 500ms{extra}}}\n    metadata_config: {{send: false}}\n"
        ));
    }
    y
}

#[test]
fn every_sample_reaches_victoria_metrics_and_prometheus() {
    if !have(VM) || !have(PROMETHEUS) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let vm = Receiver::new("victoria-metrics", root.path());
    let prom = Receiver::new("prometheus", root.path());
    let cfg = config(&[("vm", vm.write_url()), ("prom", prom.write_url())], "");
    let srv = TestServer::start_with_config(&bin(), &cfg, &[]);
    wait_queues(&srv, &["vm", "prom"]);
    let end = now_ms() - 60_000;
    push(&srv, "rw_out_a", 50, 60, end, 0);
    let want = expect(50, 60);
    wait_counts(&vm, "rw_out_a", &want, Duration::from_secs(60));
    wait_counts(&prom, "rw_out_a", &want, Duration::from_secs(60));
    // External labels are added, as Prometheus adds them.
    let v: serde_json::Value = client()
        .get(format!("{}/api/v1/query", prom.base()))
        .query(&[("query", "count(rw_out_a{replica=\"a\"})")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "50", "{v}");
    assert!(metric(&srv, "prometheus_remote_storage_samples_total", "vm") >= 3000.0);
    assert!(metric(&srv, "prometheus_remote_storage_samples_total", "prom") >= 3000.0);
    assert_eq!(
        metric(&srv, "prometheus_remote_storage_failed_samples_total", "vm"),
        0.0
    );
    assert!(
        metric(
            &srv,
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "vm"
        ) >= (end / 1000) as f64
    );
}

/// Receiver down, samples keep coming, Tocsin killed with -9 in the middle of the outage and
/// started again: once the receiver is back, every sample is there.
fn outage_and_kill9(outage: Duration) {
    if !have(VM) {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut vm = Receiver::new("victoria-metrics", root.path());
    let cfg = config(&[("vm", vm.write_url())], "");
    let cfg_path = root.path().join("tocsin.yml");
    std::fs::write(&cfg_path, &cfg).unwrap();
    let data = root.path().join("tocsin-data");
    let args = ["--config", cfg_path.to_str().unwrap()];
    let mut srv = TestServer::start_on(&bin(), &data, &args);
    wait_queues(&srv, &["vm"]);
    let series = 20;
    let end = now_ms() - 10 * 60_000;
    push(&srv, "rw_out_b", series, 30, end, 0);
    wait_counts(
        &vm,
        "rw_out_b",
        &expect(series, 30),
        Duration::from_secs(60),
    );

    vm.stop();
    let half = outage / 2;
    let t0 = std::time::Instant::now();
    push(&srv, "rw_out_b", series, 30, end + 30_000, 30);
    std::thread::sleep(half.saturating_sub(t0.elapsed()));
    srv.kill9();
    let mut srv = TestServer::start_on(&bin(), &data, &args);
    push(&srv, "rw_out_b", series, 30, end + 60_000, 60);
    std::thread::sleep(outage.saturating_sub(t0.elapsed()));
    assert!(
        metric(&srv, "prometheus_remote_storage_samples_pending", "vm") > 0.0
            || metric(
                &srv,
                "prometheus_remote_storage_retried_samples_total",
                "vm"
            ) > 0.0
    );
    vm.start();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_counts(
            &vm,
            "rw_out_b",
            &expect(series, 90),
            Duration::from_secs(60),
        )
    }));
    if res.is_err() {
        let ex = client()
            .get(format!("{}/api/v1/export", vm.base()))
            .query(&[("match[]", "rw_out_b{i=\"000\"}")])
            .send()
            .unwrap()
            .text()
            .unwrap();
        let m = client()
            .get(srv.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let m: Vec<&str> = m.lines().filter(|l| l.contains("remote_storage")).collect();
        panic!("end={end}\nexport: {ex}\nmetrics:\n{}", m.join("\n"));
    }
    srv.stop();
}

/// The case: the receivers are down for two minutes, and Tocsin is killed with -9 in
/// the middle of it.
#[test]
fn a_two_minute_outage_and_a_kill_9_lose_nothing() {
    outage_and_kill9(Duration::from_secs(120));
}

/// What the fake receiver answers, and what it got.
struct Fake {
    port: u16,
    samples: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    /// Content-Type and X-Prometheus-Remote-Write-Version of the last request.
    last: Arc<std::sync::Mutex<(String, String)>>,
    _rt: tokio::runtime::Runtime,
}

/// Answers `statuses[k]` to request k (the last one from then on), with `Retry-After: 1` on 429.
/// Counts the samples of the 1.0 requests it accepts.
fn fake(statuses: Vec<u16>) -> Fake {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let samples = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let last = Arc::new(std::sync::Mutex::new((String::new(), String::new())));
    let l = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = l.local_addr().unwrap().port();
    let (s2, r2, l2) = (samples.clone(), requests.clone(), last.clone());
    let app = axum::Router::new().route(
        "/write",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (s2, r2, l2, statuses) = (s2.clone(), r2.clone(), l2.clone(), statuses.clone());
                async move {
                    assert_eq!(headers["content-encoding"], "snappy");
                    assert!(headers["user-agent"]
                        .to_str()
                        .unwrap()
                        .starts_with("Tocsin/"));
                    let ct = headers["content-type"].to_str().unwrap().to_string();
                    let version = headers["x-prometheus-remote-write-version"]
                        .to_str()
                        .unwrap()
                        .to_string();
                    *l2.lock().unwrap() = (ct, version.clone());
                    let k = r2.fetch_add(1, Ordering::SeqCst) as usize;
                    let status = statuses[k.min(statuses.len() - 1)];
                    if status < 300 && version == "0.1.0" {
                        let d = tocsin_collect::remote_write::decode(&body).unwrap();
                        s2.fetch_add(d.sample_count() as u64, Ordering::SeqCst);
                    }
                    let mut h = axum::http::HeaderMap::new();
                    if status == 429 {
                        h.insert("retry-after", "1".parse().unwrap());
                    }
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        h,
                        "fake says so",
                    )
                }
            },
        ),
    );
    rt.spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Fake {
        port,
        samples,
        requests,
        last,
        _rt: rt,
    }
}

#[test]
fn a_400_is_dropped_and_counted_and_a_429_is_retried_when_asked() {
    let refuse = fake(vec![400]);
    let limit = fake(vec![429, 429, 204]);
    let cfg = config(
        &[
            ("refuse", format!("http://127.0.0.1:{}/write", refuse.port)),
            ("limit", format!("http://127.0.0.1:{}/write", limit.port)),
        ],
        ", retry_on_http_429: true",
    );
    let srv = TestServer::start_with_config(&bin(), &cfg, &[]);
    wait_queues(&srv, &["refuse", "limit"]);
    push(&srv, "rw_out_c", 5, 10, now_ms() - 60_000, 0);
    wait_until(Duration::from_secs(30), "the 400 to be counted", || {
        (metric(
            &srv,
            "prometheus_remote_storage_failed_samples_total",
            "refuse",
        ) == 50.0)
            .then_some(())
    });
    // Refused for good: not retried.
    assert_eq!(refuse.requests.load(Ordering::SeqCst), 1);
    assert_eq!(
        metric(
            &srv,
            "prometheus_remote_storage_retried_samples_total",
            "refuse"
        ),
        0.0
    );
    wait_until(Duration::from_secs(30), "the 429s to be retried", || {
        (limit.samples.load(Ordering::SeqCst) == 50).then_some(())
    });
    assert_eq!(limit.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        metric(
            &srv,
            "prometheus_remote_storage_retried_samples_total",
            "limit"
        ),
        100.0
    );
    assert_eq!(
        metric(&srv, "prometheus_remote_storage_samples_total", "limit"),
        50.0
    );
    assert_eq!(refuse.samples.load(Ordering::SeqCst), 0);
}

#[test]
fn check_config_refuses_what_the_server_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yml");
    std::fs::write(
        &cfg,
        "remote_write:\n  - url: http://127.0.0.1:1/w\n    azuread: {cloud: AzurePublic}\n    queue_config: {max_shards: 0}\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "t.yml:3:5: remote_write[0].azuread: Azure AD authentication is not implemented yet"
        ),
        "{text}"
    );
    assert!(
        text.contains("remote_write[0].queue_config.max_shards"),
        "{text}"
    );
}

#[test]
fn reload_keeps_unchanged_queues_and_restarts_changed_ones_where_they_stopped() {
    let a = fake(vec![204]);
    let b = fake(vec![204]);
    let url_a = format!("http://127.0.0.1:{}/write", a.port);
    let url_b = format!("http://127.0.0.1:{}/write", b.port);
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("tocsin.yml");
    std::fs::write(&cfg_path, config(&[("a", url_a.clone())], "")).unwrap();
    let data = dir.path().join("data");
    let srv = TestServer::start_on(&bin(), &data, &["--config", cfg_path.to_str().unwrap()]);
    wait_queues(&srv, &["a"]);
    push(&srv, "rw_out_d", 5, 10, now_ms() - 60_000, 0);
    wait_until(Duration::from_secs(30), "the first samples", || {
        (a.samples.load(Ordering::SeqCst) == 50).then_some(())
    });
    let reloads = |srv: &TestServer| {
        srv.log_text()
            .lines()
            .filter(|l| l.contains("configuration reloaded"))
            .count()
    };
    let started = |srv: &TestServer, name: &str| {
        srv.log_text()
            .lines()
            .filter(|l| {
                l.contains("remote write queue started") && l.contains(&format!("remote={name} "))
            })
            .count()
    };
    // A second remote added: the first keeps running (not restarted).
    std::fs::write(
        &cfg_path,
        config(&[("a", url_a.clone()), ("b", url_b.clone())], ""),
    )
    .unwrap();
    srv.signal(1);
    wait_until(Duration::from_secs(30), "the reload", || {
        (reloads(&srv) == 1).then_some(())
    });
    wait_queues(&srv, &["a", "b"]);
    assert_eq!(started(&srv, "a"), 1, "{}", srv.log_text());
    // The first one's settings change: it restarts from its saved position, sending nothing twice.
    std::fs::write(
        &cfg_path,
        config(&[("a", url_a), ("b", url_b)], ", max_shards: 7"),
    )
    .unwrap();
    srv.signal(1);
    wait_until(Duration::from_secs(30), "the second reload", || {
        (reloads(&srv) == 2).then_some(())
    });
    wait_until(Duration::from_secs(30), "the restart of a", || {
        (started(&srv, "a") == 2).then_some(())
    });
    assert!(
        srv.log_text().contains("resumed=true"),
        "{}",
        srv.log_text()
    );
    push(&srv, "rw_out_d", 5, 10, now_ms() - 30_000, 10);
    wait_until(
        Duration::from_secs(30),
        "the samples after the reload",
        || {
            (a.samples.load(Ordering::SeqCst) == 100 && b.samples.load(Ordering::SeqCst) == 50)
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a.samples.load(Ordering::SeqCst), 100);
}

#[test]
fn protobuf_message_v2_sends_remote_write_2_0() {
    let r = fake(vec![204]);
    let cfg = config(&[("v2", format!("http://127.0.0.1:{}/write", r.port))], "")
        + "    protobuf_message: io.prometheus.write.v2.Request\n";
    let srv = TestServer::start_with_config(&bin(), &cfg, &[]);
    wait_queues(&srv, &["v2"]);
    push(&srv, "rw_out_e", 5, 10, now_ms() - 60_000, 0);
    wait_until(
        Duration::from_secs(30),
        "the 2.0 requests to be acknowledged",
        || (metric(&srv, "prometheus_remote_storage_samples_total", "v2") == 50.0).then_some(()),
    );
    let (ct, version) = r.last.lock().unwrap().clone();
    assert_eq!(
        ct,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request"
    );
    assert_eq!(version, "2.0.0");
}

/// A receiver that does not take 2.0 (another Tocsin: its `/api/v1/write` answers 415 to any
/// message but 1.0's) gets 1.0 instead, with every sample; nothing is counted as failed.
#[test]
fn a_receiver_refusing_2_0_gets_1_0() {
    let receiver = TestServer::start(&bin(), &[]);
    let cfg = config(&[("tocsin", receiver.url("/api/v1/write"))], "")
        + "    protobuf_message: io.prometheus.write.v2.Request\n";
    let srv = TestServer::start_with_config(&bin(), &cfg, &[]);
    wait_queues(&srv, &["tocsin"]);
    push(&srv, "rw_out_f", 5, 10, now_ms() - 60_000, 0);
    wait_until(
        Duration::from_secs(30),
        "every sample at the receiver",
        || {
            let r: serde_json::Value = client()
                .post(receiver.url("/api/v1/query"))
                .form(&[("query", "count(count_over_time(rw_out_f[5m]) == 10)")])
                .send()
                .ok()?
                .json()
                .ok()?;
            (r["data"]["result"][0]["value"][1] == "5").then_some(())
        },
    );
    assert_eq!(
        metric(
            &srv,
            "prometheus_remote_storage_failed_samples_total",
            "tocsin"
        ),
        0.0
    );
    assert_eq!(
        metric(&srv, "prometheus_remote_storage_samples_total", "tocsin"),
        50.0
    );
    assert!(srv.log_text().contains("does not take remote write 2.0"));
}
