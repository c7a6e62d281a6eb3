//! The reactive fleet of `examples/reactive-fleet`, end to end with shortened windows: 500 VMs
//! simulated by `tocsin bench fleet` push their metrics to the real server, the example's rules
//! (with `for:` cut to seconds) find the 20 bad ones, and the `delete-bad-vm` policy deletes
//! each exactly once at a fake Compute Engine on 127.0.0.1, never a healthy or a young one.
//! Then half the fleet goes bad at once: the blast-radius guard lets the policy reach 10 % of
//! the fleet and no more, `RemediationSuppressed` reaches a human, and the audit lists every
//! target it held back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tocsin_testkit::fake_gcp::FakeGcp;
use tocsin_testkit::gce_inventory::GceInventory;
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, get_json, wait_until, TestServer};

const PROJECT: &str = "fleet-demo";
const ZONES: [&str; 3] = ["europe-west1-b", "europe-west1-c", "us-central1-a"];
const VMS: usize = 500;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/reactive-fleet")
        .join(name)
}

fn vm_name(i: usize) -> String {
    format!("vm-{i:05}")
}

fn vm_id(i: usize) -> String {
    format!("{}", 4_000_000_000_000_000_000u64 + i as u64)
}

/// The example's rules with their `for:` windows cut from minutes to seconds.
fn short_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(example("fleet.rules.yml")).unwrap();
    assert!(
        text.contains("for: 5m") && text.contains("for: 3m"),
        "{text}"
    );
    let text = text
        .replace("for: 5m", "for: 4s")
        .replace("for: 3m", "for: 3s");
    let p = dir.join("fleet.rules.yml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The example's tocsin.yml shape with test windows: 1 s evaluation, group_wait 0 s, the policy
/// limited to 10 % of the fleet, Google at the fake.
fn config(rules: &Path, hook: &str, fake: &FakeGcp) -> String {
    format!(
        r#"
global: {{evaluation_interval: 1s}}
rule_files: ['{rules}']
alertmanager:
  route:
    receiver: sre
    group_by: [alertname, instance_id]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['alertname=~"Remediation.*"']
        receiver: sre
      - matchers: [remediation="delete"]
        receiver: remediate
  receivers:
    - name: remediate
      action_configs: [{{policy: delete-bad-vm}}]
    - name: sre
      webhook_configs: [{{url: '{hook}', send_resolved: true}}]
actions:
  policies:
    - name: delete-bad-vm
      target: '{{{{ $labels.instance_id }}}}'
      timeout: 30s
      retry: {{attempts: 3, backoff: 200ms, max_backoff: 1s}}
      guards:
        rate: {{limit: 200, window: 1h}}
        cooldown: 1h
        max_fraction: 0.1
        fleet_size: 'count(count by (instance_id) (uptime_total))'
        window: 1h
        min_age: 10m
        age: 'max(uptime_total{{instance_id="{{{{ $labels.instance_id }}}}"}})'
      trip_reset: 1h
      gce_instance:
        operation: delete
        project: '{{{{ $labels.project_id }}}}'
        zone: '{{{{ $labels.zone }}}}'
        instance: '{{{{ $labels.instance_name }}}}'
        google:
{google}"#,
        rules = rules.display(),
        google = fake.google_yaml(10, None),
    )
}

/// `tocsin bench fleet` against the server, VMs gone at the fake stop reporting.
struct Sim(Child);

impl Sim {
    fn start(srv: &TestServer, inv: &GceInventory, log: &Path, faults: &[&str]) -> Sim {
        let mut args = vec![
            "bench".to_string(),
            "fleet".into(),
            "--url".into(),
            srv.url(""),
            "--project".into(),
            PROJECT.into(),
            "--zones".into(),
            ZONES.join(","),
            "--vms".into(),
            VMS.to_string(),
            "--interval".into(),
            "1s".into(),
            "--compute-url".into(),
            inv.url(),
        ];
        args.extend(faults.iter().map(|s| s.to_string()));
        let child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Sim(child)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(srv: &TestServer, q: &str) -> Vec<Value> {
    let r = client()
        .get(srv.url("/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .unwrap();
    let v: Value = r.json().unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn scalar(srv: &TestServer, q: &str) -> Option<f64> {
    query(srv, q)
        .first()
        .and_then(|s| s["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

/// The audit rows of the policy with this outcome, by target.
fn audit(srv: &TestServer, outcome: &str) -> BTreeMap<String, Vec<Value>> {
    let v = get_json(
        srv,
        &format!("/api/v1/actions?policy=delete-bad-vm&outcome={outcome}&limit=10000"),
    );
    assert_eq!(v["status"], "success", "{v}");
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in v["data"].as_array().unwrap() {
        out.entry(r["target"].as_str().unwrap().to_string())
            .or_default()
            .push(r.clone());
    }
    out
}

/// Instance names deleted at the fake, with how many times each.
fn deleted(fake: &FakeGcp) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in fake.acted() {
        assert_eq!(a.operation, "delete");
        assert_eq!(a.project, PROJECT);
        *m.entry(a.instance).or_insert(0) += 1;
    }
    m
}

#[test]
fn bad_vms_are_deleted_once_and_a_storm_stops_at_the_blast_radius() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeGcp::start());
    let mut known = Vec::new();
    for i in 0..VMS {
        let z = ZONES[i % ZONES.len()];
        fake.add_instance(PROJECT, z, &vm_name(i));
        known.push((PROJECT.to_string(), z.to_string(), vm_name(i)));
    }
    let inv = GceInventory::start(fake.clone(), known);
    let hook = WebhookCollector::start();
    let rules = short_rules(tmp.path());
    let srv = TestServer::start_with_config(bin(), &config(&rules, &hook.url("/page"), &fake), &[]);

    // Phase 1: 20 bad VMs (7 pegged, 7 without antivirus, 6 intruded), and two young ones
    // (pegged; no antivirus) that the rules or min_age must spare.
    let bad_cpu: Vec<usize> = (0..7).collect();
    let bad_av: Vec<usize> = (100..107).collect();
    let bad_ua: Vec<usize> = (200..206).collect();
    let sim_log = tmp.path().join("fleet1.log");
    let sim = Sim::start(
        &srv,
        &inv,
        &sim_log,
        &[
            "--cpu-high",
            "0-6,300",
            "--no-antivirus",
            "100-106,301",
            "--unauthorized",
            "200-205",
            "--young",
            "300-301",
        ],
    );
    wait_until(Duration::from_secs(60), "the fleet's first samples", || {
        (scalar(&srv, "count(count by (instance_id) (uptime_total))") == Some(VMS as f64))
            .then_some(())
    });
    let want: BTreeSet<String> = bad_cpu
        .iter()
        .chain(&bad_av)
        .chain(&bad_ua)
        .map(|&i| vm_name(i))
        .collect();
    fake.wait_until(Duration::from_secs(90), "the 20 bad VMs deleted", |f| {
        f.counters().deleted >= 20
    });
    // The young VM without antivirus fires, and min_age holds the policy back.
    let young = vm_id(301);
    let held = wait_until(
        Duration::from_secs(60),
        "vm-00301 held back by min_age",
        || audit(&srv, "suppressed").remove(&young),
    );
    assert_eq!(held[0]["guard"], "min_age", "{held:?}");
    // Every bad VM stopped reporting once deleted: nothing fires for it any more at the policy.
    wait_until(
        Duration::from_secs(30),
        "deleted VMs to stop reporting",
        || {
            let log = std::fs::read_to_string(&sim_log).unwrap_or_default();
            (log.matches("is gone").count() == 20).then_some(())
        },
    );
    drop(sim);

    // Phase 2: half the fleet pegged at once (250-499, two of them young).
    let storm: Vec<usize> = (250..VMS).collect();
    let sim_log2 = tmp.path().join("fleet2.log");
    let _sim = Sim::start(
        &srv,
        &inv,
        &sim_log2,
        &["--cpu-high", "250-499", "--young", "300-301"],
    );
    // A fleet of 500 at 10 % is 50 targets an hour: 30 more after the first 20.
    let firing: BTreeSet<String> = storm
        .iter()
        .filter(|&&i| i != 300 && i != 301)
        .map(|&i| vm_id(i))
        .collect();
    let (ran, suppressed) =
        wait_until(Duration::from_secs(90), "every storm alert decided", || {
            let ran: BTreeSet<String> = audit(&srv, "succeeded").into_keys().collect();
            let sup = audit(&srv, "suppressed");
            let decided = firing
                .iter()
                .filter(|t| ran.contains(*t) || sup.contains_key(*t))
                .count();
            (decided == firing.len()).then_some((ran, sup))
        });

    let d = deleted(&fake);
    assert_eq!(d.len(), 50, "deleted: {d:?}");
    assert!(
        d.values().all(|&n| n == 1),
        "an instance deleted twice: {d:?}"
    );
    for name in &want {
        assert_eq!(d.get(name), Some(&1), "{name} not deleted once: {d:?}");
    }
    let storm_names: BTreeSet<String> = storm.iter().map(|&i| vm_name(i)).collect();
    for name in d.keys().filter(|n| !want.contains(*n)) {
        assert!(
            storm_names.contains(name),
            "a healthy VM was deleted: {name}"
        );
        assert!(
            name != &vm_name(300) && name != &vm_name(301),
            "a young VM was deleted"
        );
    }
    assert_eq!(ran.len(), 50, "{ran:?}");
    // Every storm target that did not run is in the audit as held back by the blast radius.
    let held_back: Vec<&String> = firing.iter().filter(|t| !ran.contains(*t)).collect();
    assert_eq!(held_back.len(), firing.len() - 30);
    for t in &held_back {
        let rows = &suppressed[*t];
        assert!(
            rows.iter().all(|r| r["guard"] == "max_fraction"),
            "{t}: {rows:?}"
        );
        let name = rows[0]["labels"]["instance_name"].as_str().unwrap();
        assert!(!d.contains_key(name), "{name} was held back and deleted");
    }
    // A person hears about it.
    let page = wait_until(
        Duration::from_secs(30),
        "RemediationSuppressed at the webhook",
        || {
            hook.requests().into_iter().find_map(|r| {
                let v = r.json();
                v["alerts"].as_array().and_then(|a| {
                    a.iter()
                        .find(|a| {
                            a["labels"]["alertname"] == "RemediationSuppressed"
                                && a["status"] == "firing"
                        })
                        .cloned()
                })
            })
        },
    );
    assert_eq!(page["labels"]["policy"], "delete-bad-vm", "{page}");
    assert_eq!(page["labels"]["guard"], "max_fraction", "{page}");
    let pol = get_json(&srv, "/api/v1/actions/policies");
    let p = pol["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "delete-bad-vm")
        .cloned()
        .unwrap();
    assert_eq!(p["state"], "tripped", "{p}");
    assert_eq!(p["tripped"]["guard"], "max_fraction", "{p}");
    // Nothing more reached Compute Engine while the storm went on being decided.
    assert_eq!(deleted(&fake).len(), 50);
}

fn run_ok(args: &[&str]) -> String {
    let out = Command::new(bin()).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tocsin {args:?}: {text}");
    text
}

#[test]
fn the_example_config_checks_and_its_rule_tests_pass() {
    let cfg = example("tocsin.yml");
    let out = run_ok(&["check", "config", cfg.to_str().unwrap()]);
    assert!(out.contains("SUCCESS: 3 rules found"), "{out}");
    let tests = example("fleet.rules.test.yml");
    let out = run_ok(&["test", "rules", tests.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
    // The pegged and intruded VMs go to the policy; the engine's own alerts to a person.
    let route = |labels: &[&str]| {
        let mut args = vec!["routes", "test", "--config", cfg.to_str().unwrap()];
        args.extend_from_slice(labels);
        run_ok(&args)
    };
    assert_eq!(
        route(&[
            "alertname=VmCpuPegged",
            "remediation=delete",
            "severity=page"
        ]),
        "remediate,sre\n"
    );
    assert_eq!(
        route(&["alertname=RemediationSuppressed", "policy=delete-bad-vm"]),
        "sre\n"
    );
}
