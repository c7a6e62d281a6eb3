//! The figures of the remediation closing note, measured against the real server and the fake
//! Compute Engine on 127.0.0.1 (`bench/remediation/run` runs them in release mode):
//! - latency from the sample that crosses the threshold to the `instances.delete` request
//!   arriving at the fake, 1 s evaluation interval, `group_wait: 0s`, 5 runs;
//! - a storm of 10,000 alerts in one `POST /api/v2/alerts` against a policy limited to 1 % of
//!   a fleet of 10,000: actions run, suppressed, duplicates at the fake, time to decide.
//!
//! They are `#[ignore]`d (timings, not assertions about behaviour; the behaviour is tested in
//! `reactive_fleet.rs` and `actions.rs`) but still fail if the engine does the wrong thing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tocsin_testkit::fake_gcp::FakeGcp;
use tocsin_testkit::{client, now_ms, wait_until, TestServer};

const PROJECT: &str = "fleet-demo";
const ZONE: &str = "europe-west1-b";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn name(i: usize) -> String {
    format!("vm-{i:05}")
}

fn id(i: usize) -> String {
    format!("{}", 4_000_000_000_000_000_000u64 + i as u64)
}

fn config(fake: &FakeGcp, rules: &str, max_fraction: f64, group_by: &str) -> String {
    format!(
        r#"
global: {{evaluation_interval: 1s}}
rule_files: ['{rules}']
alertmanager:
  route:
    receiver: remediate
    group_by: {group_by}
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: remediate
      action_configs: [{{policy: delete-bad-vm}}]
actions:
  policies:
    - name: delete-bad-vm
      target: '{{{{ $labels.instance_id }}}}'
      timeout: 30s
      guards:
        rate: {{limit: 100000, window: 1h}}
        cooldown: 1h
        max_fraction: {max_fraction}
        fleet_size: 'count(count by (instance_id) (uptime_total))'
      trip_reset: 1h
      gce_instance:
        operation: delete
        google:
{google}"#,
        google = fake.google_yaml(10, None),
    )
}

/// One CreateTimeSeries series of VM `i` at `t_ms`.
fn series(i: usize, metric: &str, v: f64, t_ms: i64) -> Value {
    json!({
        "metric": {"type": format!("custom.googleapis.com/{metric}"),
                   "labels": {"instance_name": name(i)}},
        "resource": {"type": "gce_instance",
                     "labels": {"project_id": PROJECT, "zone": ZONE, "instance_id": id(i)}},
        "points": [{"interval": {"endTime": tocsin_model::time::format_rfc3339_ms(t_ms)},
                    "value": {"doubleValue": v}}],
    })
}

fn push(srv: &TestServer, ts: Vec<Value>) {
    let r = client()
        .post(srv.url(&format!("/v3/projects/{PROJECT}/timeSeries")))
        .json(&json!({"timeSeries": ts}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
}

fn metric(srv: &TestServer, prefix: &str) -> f64 {
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
#[ignore = "a benchmark: bench/remediation/run"]
fn figure_latency_threshold_to_compute_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeGcp::start();
    const FLEET: usize = 100;
    for i in 0..FLEET {
        fake.add_instance(PROJECT, ZONE, &name(i));
    }
    let rules = tmp.path().join("r.yml");
    std::fs::write(
        &rules,
        "groups:\n- name: g\n  rules:\n  - alert: VmCpuPegged\n    expr: cpu_utilization > 0.95 and on(instance_id) uptime_total > 600\n    labels: {remediation: delete}\n",
    )
    .unwrap();
    let cfg = config(
        &fake,
        &rules.display().to_string(),
        0.1,
        "[alertname, instance_id]",
    );
    let srv = TestServer::start_with_config(bin(), &cfg, &[]);
    // The whole fleet reports every 250 ms (healthy) from a thread, so fleet size and ages are
    // there; run r pegs VM r with one sample.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pegged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let feeder = {
        let (stop, pegged) = (stop.clone(), pegged.clone());
        let url = srv.url(&format!("/v3/projects/{PROJECT}/timeSeries"));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // The time is read under the lock, so no healthy sample is stamped after a
                // run's crossing sample and no pegged one before it.
                let (t, p) = {
                    let g = pegged.lock().unwrap();
                    (now_ms(), g.clone())
                };
                let ts: Vec<Value> = (0..FLEET)
                    .flat_map(|i| {
                        let cpu = if p.contains(&i) { 0.99 } else { 0.2 };
                        [
                            series(i, "uptime_total", 3600.0, t),
                            series(i, "cpu_utilization", cpu, t),
                        ]
                    })
                    .collect();
                let _ = client().post(&url).json(&json!({"timeSeries": ts})).send();
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    wait_until(Duration::from_secs(30), "the fleet reporting", || {
        let r: Value = client()
            .get(srv.url("/api/v1/query"))
            .query(&[("query", "count(uptime_total)")])
            .send()
            .unwrap()
            .json()
            .unwrap();
        (r["data"]["result"][0]["value"][1] == json!(FLEET.to_string())).then_some(())
    });
    let mut lat = Vec::new();
    for run in 0..5 {
        // Land somewhere random in the evaluation cycle.
        std::thread::sleep(Duration::from_millis(700 + 173 * run as u64));
        let t0 = {
            let mut g = pegged.lock().unwrap();
            let t0 = now_ms();
            push(&srv, vec![series(run, "cpu_utilization", 0.99, t0)]);
            g.push(run);
            t0
        };
        let path = format!(
            "/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{}",
            name(run)
        );
        let at = wait_until(Duration::from_secs(30), "the delete at the fake", || {
            fake.requests()
                .into_iter()
                .find(|r| r.method == "DELETE" && r.path == path)
                .map(|r| ms(r.at))
        });
        lat.push(at - t0);
        eprintln!("run {}: {} ms", run + 1, at - t0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
    let mut s = lat.clone();
    s.sort();
    eprintln!(
        "FIGURE latency sample->instances.delete (eval 1s, group_wait 0s, 5 runs): median {} ms, worst {} ms, all {:?}",
        s[2], s[4], lat
    );
    assert_eq!(fake.counters().deleted, 5);
}

#[test]
#[ignore = "a benchmark: bench/remediation/run"]
fn figure_storm_of_10000_alerts_against_a_1_percent_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeGcp::start();
    const FLEET: usize = 10_000;
    for i in 0..FLEET {
        fake.add_instance(PROJECT, ZONE, &name(i));
    }
    let rules = tmp.path().join("r.yml");
    std::fs::write(&rules, "groups: []\n").unwrap();
    let group_by = std::env::var("STORM_GROUP_BY").unwrap_or("[alertname, instance_id]".into());
    let cfg = config(&fake, &rules.display().to_string(), 0.01, &group_by);
    let srv = TestServer::start_with_config(bin(), &cfg, &[]);
    let t = now_ms();
    push(
        &srv,
        (0..FLEET)
            .map(|i| series(i, "uptime_total", 3600.0, t))
            .collect(),
    );
    let start = tocsin_model::time::format_rfc3339_ms(t - 60_000);
    let end = tocsin_model::time::format_rfc3339_ms(t + 3_600_000);
    let alerts: Vec<Value> = (0..FLEET)
        .map(|i| {
            json!({"labels": {"alertname": "VmCpuPegged", "remediation": "delete",
                              "project_id": PROJECT, "zone": ZONE,
                              "instance_id": id(i), "instance_name": name(i)},
                   "startsAt": start, "endsAt": end})
        })
        .collect();
    let body = Value::Array(alerts).to_string();
    let t0 = Instant::now();
    let r = client()
        .post(srv.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    let posted = t0.elapsed();
    let p = "tocsin_actions_total{policy=\"delete-bad-vm\",outcome=";
    let matched = wait_until(Duration::from_secs(300), "every alert matched", || {
        (metric(&srv, &format!("{p}\"matched\"}}")) >= FLEET as f64).then(|| t0.elapsed())
    });
    let decided = wait_until(Duration::from_secs(300), "every alert decided", || {
        let sent = metric(&srv, &format!("{p}\"sent\"}}"));
        let sup = metric(&srv, &format!("{p}\"suppressed\"}}"));
        (sent + sup >= FLEET as f64).then(|| t0.elapsed())
    });
    let done = wait_until(Duration::from_secs(300), "the runs finished", || {
        let ok = metric(&srv, &format!("{p}\"succeeded\"}}"));
        (ok >= 100.0).then(|| t0.elapsed())
    });
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for a in fake.acted() {
        *per.entry(a.instance).or_insert(0) += 1;
    }
    let dups: usize = per.values().map(|n| n - 1).sum();
    let sup = metric(&srv, &format!("{p}\"suppressed\"}}"));
    eprintln!(
        "FIGURE storm 10000 alerts (one POST, group_by {group_by}), max_fraction 0.01 of {FLEET}: \
         run {} (at the fake), suppressed {sup}, duplicates {dups}; POST answered in {} ms, all \
         handed to the policy (matched) in {} ms, all decided in {} ms, runs finished in {} ms",
        per.len(),
        posted.as_millis(),
        matched.as_millis(),
        decided.as_millis(),
        done.as_millis()
    );
    assert_eq!(dups, 0);
    assert_eq!(per.len(), 100);
    assert_eq!(sup as usize, FLEET - 100);
}
