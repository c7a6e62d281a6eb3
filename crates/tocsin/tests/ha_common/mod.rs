//! The harness of the replica tests (`ha.rs`, `ha_state.rs`): a throwaway PostgreSQL cluster
//! (Debian's), three `tocsin` replicas sharing alert state in it, a webhook receiver, and a
//! feeder posting the wanted alerts to every live replica every 250 ms, as Prometheus HA pairs
//! send to each alert manager (each copy carrying its sender's `replica` label).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tocsin_model::Labels;
use tocsin_testkit::pg::PgCluster;
use tocsin_testkit::webhook::{Recorded, WebhookCollector};
use tocsin_testkit::{client, now_ms, wait_until, TestServer};

pub const N: usize = 3;
pub const KILLS: usize = 20;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tocsin"))
}

pub fn have_postgres() -> bool {
    if Path::new("/usr/lib/postgresql").exists() {
        return true;
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("PostgreSQL is not installed (scripts/test installs it)");
    }
    eprintln!("SKIPPED: PostgreSQL not installed; scripts/test installs it");
    false
}

pub fn config(pg: &PgCluster, pwfile: &Path, hook: &str, replica: usize) -> String {
    format!(
        r#"
global:
  evaluation_interval: 1s
  external_labels: {{replica: r{replica}}}
ha:
  postgres: {url}
  password_file: {pw}
  replica: r{replica}
  takeover_timeout: 2s
alertmanager:
  route:
    receiver: hook
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['alertname=~"Fix|Fix2"']
        receiver: fix
      - matchers: ['alertname="Ask"']
        receiver: ask
  receivers:
    - name: hook
      webhook_configs: [{{url: '{hook}/hook', send_resolved: true}}]
    - name: fix
      action_configs: [{{policy: restart}}]
    - name: ask
      action_configs: [{{policy: ask}}]
actions:
  policies:
    - name: restart
      target: '{{{{ $labels.vm }}}}'
      http: {{url: '{hook}/restart/{{{{ $labels.vm }}}}'}}
      guards: {{rate: {{limit: 1, window: 1h}}}}
    - name: ask
      mode: approve
      target: '{{{{ $labels.vm }}}}'
      http: {{url: '{hook}/approved/{{{{ $labels.vm }}}}'}}
"#,
        url = pg.url("tocsin"),
        pw = pwfile.display(),
    )
}

/// What the test wants the replicas to know: alert name -> (start, end when resolved).
pub type Wanted = Arc<Mutex<BTreeMap<String, (i64, Option<i64>)>>>;

pub struct Cluster {
    pub pg: PgCluster,
    pub hook: WebhookCollector,
    pub dir: tempfile::TempDir,
    pub servers: Vec<Option<TestServer>>,
    pub addrs: Arc<Mutex<Vec<Option<String>>>>,
    pub wanted: Wanted,
    pub stop: Arc<AtomicBool>,
}

impl Cluster {
    pub fn start() -> Cluster {
        Self::start_with("")
    }

    /// With `ha_extra` added to every replica's `ha:` section.
    pub fn start_with(ha_extra: &str) -> Cluster {
        let pg = PgCluster::start();
        pg.psql("postgres", "CREATE DATABASE tocsin");
        let hook = WebhookCollector::start();
        let dir = tempfile::tempdir().unwrap();
        let pw = pg.password_file(dir.path());
        for r in 0..N {
            std::fs::write(
                dir.path().join(format!("r{r}.yml")),
                config(&pg, &pw, &hook.url(""), r).replace(
                    "  takeover_timeout: 2s\n",
                    &format!("  takeover_timeout: 2s\n{ha_extra}"),
                ),
            )
            .unwrap();
        }
        let mut c = Cluster {
            pg,
            hook,
            dir,
            servers: Vec::new(),
            addrs: Arc::new(Mutex::new(vec![None; N])),
            wanted: Arc::new(Mutex::new(BTreeMap::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        for r in 0..N {
            let s = c.spawn(r);
            c.servers.push(Some(s));
        }
        c.start_feeder();
        c
    }

    pub fn spawn(&self, r: usize) -> TestServer {
        let cfg = self.dir.path().join(format!("r{r}.yml"));
        let data = self.dir.path().join(format!("r{r}"));
        let s = TestServer::start_on(&bin(), &data, &["--config", cfg.to_str().unwrap()]);
        self.addrs.lock().unwrap()[r] = Some(s.addr.clone());
        s
    }

    pub fn kill(&mut self, r: usize) {
        self.addrs.lock().unwrap()[r] = None;
        if let Some(mut s) = self.servers[r].take() {
            s.kill9();
        }
    }

    pub fn restart(&mut self, r: usize) {
        let s = self.spawn(r);
        self.servers[r] = Some(s);
    }

    pub fn srv(&self, r: usize) -> &TestServer {
        self.servers[r].as_ref().unwrap()
    }

    /// Posts every wanted alert to every live replica every 250 ms, as rule evaluators re-send.
    pub fn start_feeder(&self) {
        let (addrs, wanted, stop) = (self.addrs.clone(), self.wanted.clone(), self.stop.clone());
        std::thread::spawn(move || {
            let c = client();
            while !stop.load(Ordering::Relaxed) {
                let alerts: Vec<(String, i64, Option<i64>)> = wanted
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(k, (s, e))| (k.clone(), *s, *e))
                    .collect();
                let targets: Vec<(usize, String)> = addrs
                    .lock()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| a.clone().map(|a| (i, a)))
                    .collect();
                for (i, a) in targets {
                    let body: Vec<Value> = alerts
                        .iter()
                        .map(|(name, s, e)| alert_json(name, &format!("r{i}"), *s, *e))
                        .collect();
                    let _ = c
                        .post(format!("http://{a}/api/v2/alerts"))
                        .json(&body)
                        .timeout(Duration::from_secs(2))
                        .send();
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
    }

    pub fn fire(&self, name: &str) {
        self.wanted
            .lock()
            .unwrap()
            .insert(name.to_string(), (now_ms() - 1000, None));
    }

    pub fn resolve(&self, name: &str) {
        if let Some(v) = self.wanted.lock().unwrap().get_mut(name) {
            v.1 = Some(now_ms());
        }
    }

    /// The replica holding the sender lease (waits for one).
    pub fn sender(&self) -> usize {
        wait_until(Duration::from_secs(30), "a sender", || {
            (0..N).find(|&r| {
                self.servers[r]
                    .as_ref()
                    .is_some_and(|s| metric(s, "tocsin_ha_sender") == Some(1.0))
            })
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if std::thread::panicking() {
            for (r, s) in self.servers.iter().enumerate() {
                if let Some(s) = s {
                    let log = s.log_text();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!(
                        "--- replica r{r} log (last lines, newest first):\n{}",
                        tail.join("\n")
                    );
                }
            }
            let pg = self.pg.log_text();
            let tail: Vec<&str> = pg.lines().rev().take(20).collect();
            eprintln!("--- postgres log (newest first):\n{}", tail.join("\n"));
        }
    }
}

pub fn alert_json(name: &str, replica: &str, start: i64, end: Option<i64>) -> Value {
    let end = end.unwrap_or(now_ms() + 10_000);
    json!({
        "labels": {"alertname": name, "vm": format!("vm-{name}"), "replica": replica},
        "startsAt": tocsin_model::time::format_rfc3339_ms(start),
        "endsAt": tocsin_model::time::format_rfc3339_ms(end),
    })
}

pub fn metric(s: &TestServer, name: &str) -> Option<f64> {
    let text = client()
        .get(s.url("/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?
        .text()
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The webhook requests notifying `name` with `status` (firing or resolved).
pub fn notified<'a>(reqs: &'a [Recorded], name: &str, status: &str) -> Vec<&'a Recorded> {
    reqs.iter()
        .filter(|r| r.path == "/hook")
        .filter(|r| {
            let v = r.json();
            v["status"] == status
                && v["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == name))
        })
        .collect()
}

pub fn ids(reqs: &[&Recorded]) -> BTreeSet<String> {
    reqs.iter()
        .map(|r| {
            r.header("idempotency-key")
                .expect("every webhook request carries an Idempotency-Key")
                .to_string()
        })
        .collect()
}

pub fn fingerprint(name: &str) -> String {
    let vm = format!("vm-{name}");
    let l = Labels::from_pairs(&[("alertname", name), ("vm", vm.as_str())]);
    format!("{:016x}", tocsin_model::alert::fingerprint(&l))
}

pub fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let r = client().post(s.url(path)).json(&body).send().unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

pub fn silence_ids(s: &TestServer) -> BTreeSet<String> {
    let v: Value = client()
        .get(s.url("/api/v2/silences"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn alert_state(s: &TestServer, name: &str) -> Option<String> {
    let v: Value = client()
        .get(s.url(&format!("/api/v2/alerts?filter=alertname%3D%22{name}%22")))
        .send()
        .ok()?
        .json()
        .ok()?;
    v.as_array()?
        .first()
        .map(|a| a["status"]["state"].as_str().unwrap_or("").to_string())
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub fn since(t: SystemTime, start: SystemTime) -> f64 {
    t.duration_since(start).unwrap_or_default().as_secs_f64()
}
