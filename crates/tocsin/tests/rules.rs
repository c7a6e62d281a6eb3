//! Integration tests of the rule engine in the real server: rule files loaded from `rule_files`
//! globs, groups evaluated on their interval, `/api/v1/rules` and `/api/v1/alerts`, `ALERTS`
//! written, alerts sent to an external Alertmanager (a loopback collector) with Prometheus's
//! `endsAt` and resolve behaviour, `for` state restored after a restart, and reloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tocsin_testkit::expo::{ExpoOptions, ExpoServer};
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn get_json(srv: &TestServer, path: &str) -> Value {
    let r = client().get(srv.url(path)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    serde_json::from_str(&r.text().unwrap()).unwrap()
}

fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn parse_rfc3339(s: &str) -> i64 {
    tocsin_model::time::parse_rfc3339_ms(s).unwrap_or_else(|| panic!("bad time {s}"))
}

struct Setup {
    dir: tempfile::TempDir,
    expo: ExpoServer,
}

impl Setup {
    fn new(rules: &str, extra_cfg: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let expo = ExpoServer::start(
            "# TYPE app_temp gauge\napp_temp 20\n",
            ExpoOptions::default(),
        );
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(dir.path().join("rules/app.yml"), rules).unwrap();
        let cfg = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: c1\nrule_files: ['rules/*.yml']\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{}']\n{extra_cfg}",
            expo.addr
        );
        std::fs::write(dir.path().join("tocsin.yml"), cfg).unwrap();
        Setup { dir, expo }
    }

    fn start(&self) -> TestServer {
        let cfg = self.dir.path().join("tocsin.yml");
        // With the lifecycle endpoints: the reload tests post to /-/reload.
        TestServer::start_on(
            bin(),
            &self.dir.path().join("data"),
            &["--config", cfg.to_str().unwrap(), "--web.enable-lifecycle"],
        )
    }
}

const RULES: &str = r#"groups:
  - name: app
    rules:
      - record: app:temp:max
        expr: max by (job) (app_temp)
      - alert: Hot
        expr: app_temp > 30
        labels:
          severity: page
        annotations:
          summary: too hot
"#;

#[test]
fn rules_evaluate_and_alerts_reach_an_external_alertmanager_and_resolve() {
    let am = WebhookCollector::start();
    let s = Setup::new(
        RULES,
        &format!(
            "alerting:\n  alertmanagers:\n    - path_prefix: /am\n      static_configs:\n        - targets: ['{}']\n",
            am.addr
        ),
    );
    let srv = s.start();
    // Both rules evaluated and healthy.
    let rules = wait_until(Duration::from_secs(20), "rules evaluated", || {
        let v = get_json(&srv, "/api/v1/rules");
        let rules = v["data"]["groups"][0]["rules"].as_array()?.clone();
        (rules.len() == 2 && rules.iter().all(|r| r["health"] == "ok")).then_some(rules)
    });
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[0]["name"], "app:temp:max");
    assert_eq!(rules[1]["type"], "alerting");
    assert_eq!(rules[1]["state"], "inactive");
    assert_eq!(rules[1]["labels"]["severity"], "page");
    let v = get_json(&srv, "/api/v1/rules?type=record");
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1);
    // The recording rule's output is queryable.
    wait_until(Duration::from_secs(20), "recorded series", || {
        let v = get_json(&srv, "/api/v1/query?query=app:temp:max");
        (v["data"]["result"][0]["value"][1] == "20").then_some(())
    });

    s.expo.set_body("# TYPE app_temp gauge\napp_temp 40\n");
    let reqs = am.wait_for(
        Duration::from_secs(20),
        "firing alert at the Alertmanager",
        |r| !r.is_empty(),
    );
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/am/api/v2/alerts");
    let body = r.json();
    let a = &body[0];
    assert_eq!(a["labels"]["alertname"], "Hot");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["labels"]["cluster"], "c1", "external labels are added");
    assert_eq!(a["annotations"]["summary"], "too hot");
    let starts = parse_rfc3339(a["startsAt"].as_str().unwrap());
    let ends = parse_rfc3339(a["endsAt"].as_str().unwrap());
    // Prometheus: endsAt = eval time + 4 × max(interval, resend delay) = 4 min ahead.
    assert!((ends - starts - 240_000).abs() <= 2_000, "{a}");
    assert!(a["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr=app_temp"));
    let v = get_json(&srv, "/api/v1/alerts");
    assert_eq!(v["data"]["alerts"][0]["state"], "firing");
    assert_eq!(v["data"]["alerts"][0]["value"], "4e+01");
    let v = get_json(&srv, "/api/v1/query?query=ALERTS");
    assert_eq!(v["data"]["result"][0]["metric"]["alertstate"], "firing");

    // Back under the threshold: a resolve goes out at once with endsAt in the past.
    s.expo.set_body("# TYPE app_temp gauge\napp_temp 20\n");
    let reqs = am.wait_for(Duration::from_secs(20), "resolved alert", |r| {
        r.iter().any(|x| {
            let b = x.json();
            let e = parse_rfc3339(b[0]["endsAt"].as_str().unwrap_or("0001-01-01T00:00:00Z"));
            e <= now_ms()
        })
    });
    assert!(reqs.len() >= 2);
    wait_until(Duration::from_secs(10), "ALERTS gone", || {
        let v = get_json(&srv, "/api/v1/query?query=ALERTS");
        v["data"]["result"].as_array()?.is_empty().then_some(())
    });
}

#[test]
fn for_state_is_restored_after_a_restart() {
    let rules = r#"groups:
  - name: app
    rules:
      - alert: HotForLong
        expr: app_temp > 30
        for: 10s
"#;
    let s = Setup::new(rules, "");
    s.expo.set_body("# TYPE app_temp gauge\napp_temp 40\n");
    let mut srv = s.start();
    let active_at = wait_until(Duration::from_secs(20), "pending alert", || {
        let v = get_json(&srv, "/api/v1/alerts");
        let a = v["data"]["alerts"].get(0)?.clone();
        (a["state"] == "pending").then(|| parse_rfc3339(a["activeAt"].as_str().unwrap()))
    });
    // Pending for 6 of its 10 seconds, then a restart.
    wait_until(Duration::from_secs(20), "6 s pending", || {
        (now_ms() - active_at >= 6_000).then_some(())
    });
    let v = get_json(&srv, "/api/v1/alerts");
    assert_eq!(v["data"]["alerts"][0]["state"], "pending");
    assert_eq!(srv.stop(), Some(0));
    let down_ms = now_ms();
    let srv = s.start();
    let restarted = Instant::now();
    let fired = wait_until(Duration::from_secs(30), "firing after restart", || {
        let v = get_json(&srv, "/api/v1/alerts");
        let a = v["data"]["alerts"].get(0)?.clone();
        (a["state"] == "firing").then_some(a)
    });
    let took = restarted.elapsed();
    // About 4 s were left; without restore it would take the whole 10 s again.
    assert!(
        took < Duration::from_secs(8),
        "fired {took:?} after the restart; alert {fired}"
    );
    // activeAt moved forward by the downtime, not reset to the restart.
    let restored = parse_rfc3339(fired["activeAt"].as_str().unwrap());
    assert!(
        restored < down_ms,
        "activeAt {restored} should be before the shutdown {down_ms}"
    );
}

#[test]
fn reload_applies_new_rules_and_a_bad_rule_file_keeps_the_old_ones() {
    let s = Setup::new(RULES, "");
    let srv = s.start();
    wait_until(Duration::from_secs(20), "rules loaded", || {
        let v = get_json(&srv, "/api/v1/rules");
        (v["data"]["groups"][0]["rules"].as_array()?.len() == 2).then_some(())
    });
    let rules_file = s.dir.path().join("rules/app.yml");
    std::fs::write(
        &rules_file,
        "groups:\n  - name: app\n    rules:\n      - alert: Broken\n        expr: app_temp >\n",
    )
    .unwrap();
    let r = client().post(srv.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 500);
    let msg = r.text().unwrap();
    assert!(
        msg.contains("app.yml:5:15: group \"app\", rule 1, \"Broken\""),
        "{msg}"
    );
    let v = get_json(&srv, "/api/v1/rules");
    assert_eq!(
        v["data"]["groups"][0]["rules"].as_array().unwrap().len(),
        2,
        "old rules kept"
    );

    std::fs::write(&rules_file, "groups:\n  - name: other\n    interval: 2s\n    rules:\n      - record: x:y\n        expr: vector(1)\n").unwrap();
    let r = client().post(srv.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v = get_json(&srv, "/api/v1/rules");
    let g = &v["data"]["groups"][0];
    assert_eq!(g["name"], "other");
    assert_eq!(g["interval"], 2);
    assert_eq!(g["rules"].as_array().unwrap().len(), 1);
}

/// Alertmanagers found by file discovery, filtered and rewritten by `relabel_configs`, listed by
/// `/api/v1/alertmanagers`, and followed when the discovery file changes.
#[test]
fn alertmanagers_come_from_file_discovery_with_relabelling() {
    let am1 = WebhookCollector::start();
    let am2 = WebhookCollector::start();
    let standby = WebhookCollector::start();
    let always =
        "groups:\n  - name: app\n    rules:\n      - alert: Always\n        expr: vector(1)\n";
    let s = Setup::new(
        always,
        "rules:\n  resend_delay: 1s\nalerting:\n  alertmanagers:\n    - path_prefix: /am\n      file_sd_configs:\n        - files: ['ams/*.json']\n      relabel_configs:\n        - source_labels: [role]\n          regex: standby\n          action: drop\n",
    );
    let sd = s.dir.path().join("ams");
    std::fs::create_dir_all(&sd).unwrap();
    let write_sd = |targets: &[(&str, &str)]| {
        let groups: Vec<Value> = targets
            .iter()
            .map(|(addr, role)| serde_json::json!({"targets": [addr], "labels": {"role": role}}))
            .collect();
        let tmp = sd.join("ams.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&groups).unwrap()).unwrap();
        std::fs::rename(&tmp, sd.join("ams.json")).unwrap();
    };
    let a1 = am1.addr.to_string();
    let a2 = am2.addr.to_string();
    let sb = standby.addr.to_string();
    write_sd(&[(&a1, "primary"), (&sb, "standby")]);
    let srv = s.start();

    let reqs = am1.wait_for(
        Duration::from_secs(20),
        "alerts at the discovered Alertmanager",
        |r| !r.is_empty(),
    );
    assert_eq!(reqs[0].path, "/am/api/v2/alerts");
    assert_eq!(reqs[0].json()[0]["labels"]["alertname"], "Always");
    let v = get_json(&srv, "/api/v1/alertmanagers");
    assert_eq!(
        v["data"]["activeAlertmanagers"],
        serde_json::json!([{ "url": format!("http://{a1}/am/api/v2/alerts") }])
    );
    assert_eq!(
        v["data"]["droppedAlertmanagers"],
        serde_json::json!([{ "url": format!("http://{sb}/am/api/v2/alerts") }])
    );

    // The file now names another Alertmanager: alerts follow it, and the old one hears no more.
    write_sd(&[(&a2, "primary")]);
    am2.wait_for(
        Duration::from_secs(20),
        "alerts at the new Alertmanager",
        |r| !r.is_empty(),
    );
    wait_until(Duration::from_secs(10), "the API shows the change", || {
        let v = get_json(&srv, "/api/v1/alertmanagers");
        (v["data"]["activeAlertmanagers"][0]["url"] == format!("http://{a2}/am/api/v2/alerts")
            && v["data"]["droppedAlertmanagers"].as_array()?.is_empty())
        .then_some(())
    });
    // Three more sends to the new one (resend delay 1 s) while the old one hears nothing more
    // (one send may have been in flight at the switch).
    let before = am1.requests().len();
    let seen = am2.requests().len();
    am2.wait_for(
        Duration::from_secs(20),
        "more alerts at the new Alertmanager",
        |r| r.len() >= seen + 3,
    );
    assert!(
        am1.requests().len() <= before + 1,
        "the removed Alertmanager still receives alerts"
    );
    assert!(
        standby.requests().is_empty(),
        "the dropped Alertmanager received alerts"
    );
}
