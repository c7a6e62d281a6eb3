//! Remediation actions in the real server: alerts posted to `/api/v2/alerts` reach a policy
//! through a receiver's `action_configs` and the `http`/`exec` action runs once per alert at a
//! loopback server; duplicates, silences and mute intervals do not act; a kill -9 between
//! intent and outcome is resumed (idempotent) or recorded unknown with an alert; a reload keeps
//! trips and pending approvals; approving and resetting go through the API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, get_json, now_ms, wait_until, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn post_alerts(srv: &TestServer, alerts: &[Value]) {
    let r = client()
        .post(srv.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(Value::Array(alerts.to_vec()).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
}

/// A firing alert for VM `vm`, started a minute ago (the same start on every call within a
/// test, so a re-post is the same firing).
fn alert(name: &str, vm: &str, start: i64) -> Value {
    json!({
        "labels": {"alertname": name, "vm": vm, "severity": "page"},
        "annotations": {"value": "0.99"},
        "startsAt": tocsin_model::time::format_rfc3339_ms(start),
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
    })
}

fn config(url: &str, extra_policy: &str, extra_am: &str) -> String {
    format!(
        r#"
global: {{evaluation_interval: 1s}}
alertmanager:
  route:
    receiver: nobody
    group_wait: 0s
    group_interval: 1s
    routes:
      - matchers: ['alertname="Muted"']
        receiver: fix
        mute_time_intervals: [always]
      - matchers: ['alertname=~"Stuck|Approve|Limited"']
        receiver: fix
        group_by: [alertname]
{extra_am}
  time_intervals:
    - name: always
      time_intervals: [{{times: [{{start_time: '00:00', end_time: '24:00'}}]}}]
  receivers:
    - name: nobody
    - name: fix
      action_configs: [{{policy: restart}}, {{policy: approve}}, {{policy: limited}}]
actions:
  policies:
    - name: restart
      target: '{{{{ $labels.vm }}}}'
      http:
        url: '{url}/restart/{{{{ $labels.vm }}}}?v={{{{ $value }}}}'
        body: '{{{{ .RequestID }}}}'
        idempotent: true
      retry: {{attempts: 1}}
      timeout: 60s
{extra_policy}
    - name: approve
      mode: approve
      target: '{{{{ $labels.vm }}}}'
      http: {{url: '{url}/approved/{{{{ $labels.vm }}}}'}}
    - name: limited
      target: '{{{{ $labels.vm }}}}'
      trip_reset: 0s
      guards: {{rate: {{limit: 1, window: 1h}}}}
      http: {{url: '{url}/limited/{{{{ $labels.vm }}}}'}}
"#
    )
}

/// Only alerts of their own alertname reach each policy: the receiver hands every alert to
/// every policy it names, so the policies act on `Stuck`, `Approve` and `Limited` alike; the
/// tests below post one alertname at a time and look at the policy they care about.
fn actions(srv: &TestServer, query: &str) -> Vec<Value> {
    let v = get_json(srv, &format!("/api/v1/actions?{query}"));
    assert_eq!(v["status"], "success", "{v}");
    v["data"].as_array().cloned().unwrap_or_default()
}

fn paths(hook: &WebhookCollector, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = hook
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn metric(srv: &TestServer, name_and_labels: &str) -> f64 {
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn each_alert_is_acted_on_once_and_silences_and_mute_intervals_stop_actions() {
    let hook = WebhookCollector::start();
    let srv = TestServer::start_with_config(bin(), &config(&hook.url(""), "", ""), &[]);
    let start = now_ms() - 60_000;
    // A silence on vm3 before its alert arrives.
    let r = client()
        .post(srv.url("/api/v2/silences"))
        .json(&json!({
            "matchers": [{"name": "vm", "value": "vm3", "isRegex": false, "isEqual": true}],
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms() - 1000),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "createdBy": "sre", "comment": "hands off vm3"
        }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let batch = [
        alert("Stuck", "vm1", start),
        alert("Stuck", "vm2", start),
        alert("Stuck", "vm3", start),
        alert("Muted", "vm4", start),
    ];
    post_alerts(&srv, &batch);
    hook.wait_for(Duration::from_secs(30), "two restarts", |r| {
        r.iter().filter(|x| x.path.starts_with("/restart/")).count() >= 2
    });
    // The same alerts again (a sender's resend, a duplicate notification), and several flushes.
    post_alerts(&srv, &batch);
    let seen = wait_until(Duration::from_secs(30), "audit of both", || {
        let a = actions(&srv, "policy=restart&outcome=succeeded");
        (a.len() >= 2).then_some(a)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        paths(&hook, "/restart/"),
        ["/restart/vm1?v=0.99", "/restart/vm2?v=0.99"]
    );
    // The body carries the execution's request id, a UUID.
    let r = hook
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/restart/vm1"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&r.body).len(), 36);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["kind"], "http");
    assert_eq!(seen[0]["request"]["method"], "POST");
    // Every execution of the receiver's three policies is in the audit, once per alert.
    let all = actions(&srv, "limit=1000");
    for p in ["restart", "approve", "limited"] {
        let n = all.iter().filter(|a| a["policy"] == p).count();
        assert_eq!(n, 2, "{p}: {all:#?}");
    }
    assert_eq!(
        metric(
            &srv,
            "tocsin_actions_total{policy=\"restart\",outcome=\"succeeded\"}"
        ),
        2.0
    );
    // One execution with its trail.
    let id = seen[0]["id"].as_i64().unwrap();
    let one = get_json(&srv, &format!("/api/v1/actions/{id}"));
    let events: Vec<&str> = one["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["matched", "sent", "succeeded"]);
}

fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("tocsin.yml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn kill_between_intent_and_outcome(idempotent: bool) {
    let hook = WebhookCollector::start();
    hook.set_hold(Some(Duration::from_secs(3600)));
    let tmp = tempfile::tempdir().unwrap();
    let yaml = config(&hook.url(""), "", "").replace(
        "idempotent: true",
        if idempotent {
            "idempotent: true"
        } else {
            "idempotent: false"
        },
    );
    let cfg = write_config(tmp.path(), &yaml);
    let data = tmp.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(bin(), &data, &args);
    let start = now_ms() - 60_000;
    post_alerts(&srv, &[alert("Stuck", "vm9", start)]);
    hook.wait_for(Duration::from_secs(30), "the call in flight", |r| {
        r.iter().any(|x| x.path.starts_with("/restart/vm9"))
    });
    srv.kill9();
    hook.set_hold(None);
    let srv = TestServer::start_on(bin(), &data, &args);
    if idempotent {
        // Sent again, with the same request id.
        let r = hook.wait_for(Duration::from_secs(30), "the call sent again", |r| {
            r.iter()
                .filter(|x| x.path.starts_with("/restart/vm9"))
                .count()
                == 2
        });
        let bodies: Vec<Vec<u8>> = r
            .iter()
            .filter(|x| x.path.starts_with("/restart/vm9"))
            .map(|x| x.body.clone())
            .collect();
        assert_eq!(bodies[0], bodies[1]);
        wait_until(Duration::from_secs(30), "succeeded", || {
            (actions(&srv, "policy=restart&outcome=succeeded").len() == 1).then_some(())
        });
    } else {
        wait_until(Duration::from_secs(30), "unknown", || {
            (actions(&srv, "policy=restart&outcome=unknown").len() == 1).then_some(())
        });
        wait_until(Duration::from_secs(30), "RemediationOutcomeUnknown", || {
            let a = get_json(
                &srv,
                "/api/v2/alerts?filter=alertname%3D%22RemediationOutcomeUnknown%22&filter=policy%3D%22restart%22",
            );
            (a.as_array().map_or(0, Vec::len) == 1).then_some(())
        });
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(paths(&hook, "/restart/vm9").len(), 1);
    }
    // A re-post of the alert after the restart does nothing more.
    post_alerts(&srv, &[alert("Stuck", "vm9", start)]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        paths(&hook, "/restart/vm9").len(),
        if idempotent { 2 } else { 1 }
    );
}

#[test]
fn kill9_mid_call_resends_an_idempotent_http_action() {
    kill_between_intent_and_outcome(true);
}

#[test]
fn kill9_mid_call_of_a_non_idempotent_http_action_is_unknown_and_alerts() {
    kill_between_intent_and_outcome(false);
}

#[test]
fn reload_keeps_trips_and_pending_approvals_and_the_api_decides() {
    let hook = WebhookCollector::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config(&hook.url(""), "", ""));
    let srv = TestServer::start_on(
        bin(),
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap(), "--web.enable-lifecycle"],
    );
    let start = now_ms() - 60_000;
    post_alerts(
        &srv,
        &[
            alert("Limited", "vm1", start),
            alert("Limited", "vm2", start),
        ],
    );
    wait_until(Duration::from_secs(30), "limited tripped", || {
        let p = get_json(&srv, "/api/v1/actions/policies");
        let lim = p["data"]
            .as_array()?
            .iter()
            .find(|x| x["name"] == "limited")?
            .clone();
        (lim["state"] == "tripped").then_some(())
    });
    wait_until(Duration::from_secs(30), "RemediationSuppressed", || {
        let a = get_json(
            &srv,
            "/api/v2/alerts?filter=alertname%3D%22RemediationSuppressed%22",
        );
        (a.as_array().map_or(0, Vec::len) == 1).then_some(())
    });
    let pending = wait_until(Duration::from_secs(30), "approvals queued", || {
        let a = actions(&srv, "policy=approve&outcome=pending_approval");
        (a.len() == 2).then_some(a)
    });
    // Reload with a changed file: trips and the queue stay.
    std::fs::write(
        &cfg,
        config(&hook.url(""), "", "").replace("timeout: 60s", "timeout: 30s"),
    )
    .unwrap();
    let r = client().post(srv.url("/-/reload")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    let p = get_json(&srv, "/api/v1/actions/policies");
    let lim = p["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "limited")
        .unwrap()
        .clone();
    assert_eq!(lim["state"], "tripped", "{lim}");
    assert_eq!(lim["tripped"]["guard"], "rate");
    assert_eq!(
        actions(&srv, "policy=approve&outcome=pending_approval").len(),
        2
    );

    // Approve one, deny the other.
    let id0 = pending[0]["id"].as_i64().unwrap();
    let id1 = pending[1]["id"].as_i64().unwrap();
    let r = client()
        .post(srv.url(&format!("/api/v1/actions/{id0}/approve")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    let r = client()
        .post(srv.url(&format!("/api/v1/actions/{id1}/deny")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    hook.wait_for(Duration::from_secs(30), "the approved call", |r| {
        r.iter().any(|x| x.path.starts_with("/approved/"))
    });
    let r = client()
        .post(srv.url(&format!("/api/v1/actions/{id1}/approve")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "{}", r.text().unwrap_or_default());
    // Reset the tripped policy: the alert resolves.
    let r = client()
        .post(srv.url("/api/v1/actions/policies/limited/reset"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
    wait_until(
        Duration::from_secs(30),
        "RemediationSuppressed resolved",
        || {
            let a = get_json(
                &srv,
                "/api/v2/alerts?filter=alertname%3D%22RemediationSuppressed%22",
            );
            (a.as_array().map_or(0, Vec::len) == 0).then_some(())
        },
    );
    assert_eq!(
        metric(&srv, "tocsin_action_policy_tripped{policy=\"limited\"}"),
        0.0
    );
    assert_eq!(
        metric(
            &srv,
            "tocsin_actions_suppressed_total{policy=\"limited\",guard=\"rate\"}"
        ),
        1.0
    );
}

#[test]
fn kill9_mid_exec_action_is_unknown_and_not_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let script = tmp.path().join("fix.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" >> {}\nsleep 20\n", marker.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let yaml = format!(
        r#"
alertmanager:
  route: {{receiver: fix, group_wait: 0s, group_interval: 1s}}
  receivers:
    - name: fix
      action_configs: [{{policy: run}}]
actions:
  policies:
    - name: run
      target: '{{{{ $labels.vm }}}}'
      timeout: 60s
      exec: {{command: '{}', args: ['{{{{ $labels.vm }}}}']}}
"#,
        script.display()
    );
    let cfg = write_config(tmp.path(), &yaml);
    let data = tmp.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(bin(), &data, &args);
    let start = now_ms() - 60_000;
    post_alerts(&srv, &[alert("Stuck", "vm7", start)]);
    wait_until(Duration::from_secs(30), "the command running", || {
        std::fs::read_to_string(&marker)
            .ok()
            .filter(|s| !s.is_empty())
    });
    srv.kill9();
    let srv = TestServer::start_on(bin(), &data, &args);
    let a = wait_until(Duration::from_secs(30), "unknown", || {
        let a = actions(&srv, "policy=run&outcome=unknown");
        (a.len() == 1).then_some(a)
    });
    assert_eq!(a[0]["kind"], "exec");
    post_alerts(&srv, &[alert("Stuck", "vm7", start)]);
    std::thread::sleep(Duration::from_secs(2));
    // Run once; and RemediationOutcomeUnknown, which this config routes to the same receiver,
    // is not acted on (regression: it ran the command with an empty target).
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "vm7\n");
}
