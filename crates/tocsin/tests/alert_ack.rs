//! Acknowledge, shelve and notes in the real server: an ack stops a webhook's repeats and
//! survives a restart; unknown fingerprints, double acks, ack → resolve → fire again, a severity
//! change and shelf expiry behave as the README says; the timeline shows notes, notifications
//! and a remediation action; with a web config, a read-only user is refused and an `alert`
//! user is recorded as `by`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod web_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tocsin_model::Labels;
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, get_json, now_ms, wait_until, TestServer};
use web_common::{bin, hash, WebDir};

const WAIT: Duration = Duration::from_secs(30);

/// Every alert is a group of its own (by instance), flushed every second and repeated after a
/// second, so each alert's notifications can be counted at the webhook.
fn config(hook: &str) -> String {
    format!(
        r#"
alertmanager:
  global: {{resolve_timeout: 1h}}
  route:
    receiver: hook
    group_by: [alertname, instance]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1s
    routes:
      - matchers: ['alertname="Fix"']
        receiver: fix
  receivers:
    - name: hook
      webhook_configs: [{{url: '{hook}/hook', send_resolved: true}}]
    - name: fix
      action_configs: [{{policy: restart}}]
actions:
  policies:
    - name: restart
      target: '{{{{ $labels.instance }}}}'
      http: {{url: '{hook}/restart/{{{{ $labels.instance }}}}'}}
"#
    )
}

fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("tocsin.yml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn labels(name: &str, instance: &str, severity: &str) -> Value {
    json!({"alertname": name, "instance": instance, "severity": severity})
}

fn fp(l: &Value) -> String {
    let pairs: Vec<(String, String)> = l
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    format!(
        "{:016x}",
        tocsin_model::alert::fingerprint(&Labels::from_pairs(&pairs))
    )
}

fn firing(l: &Value) -> Value {
    json!({
        "labels": l,
        "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms() - 1_000),
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
    })
}

/// Fires again after a resolve: a new start, after the resolve.
fn refiring(l: &Value) -> Value {
    json!({
        "labels": l,
        "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms()),
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
    })
}

fn resolved(l: &Value) -> Value {
    json!({
        "labels": l,
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms()),
    })
}

fn post_alerts_as(srv: &TestServer, alerts: &[Value], user: Option<(&str, &str)>) {
    let mut r = client()
        .post(srv.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(Value::Array(alerts.to_vec()).to_string());
    if let Some((u, p)) = user {
        r = r.basic_auth(u, Some(p));
    }
    let r = r.send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
}

fn post_alerts(srv: &TestServer, alerts: &[Value]) {
    post_alerts_as(srv, alerts, None);
}

/// POSTs `body` to `/api/v1/alerts/{fp}/{verb}`: (status, JSON answer).
fn mark_as(
    srv: &TestServer,
    fp: &str,
    verb: &str,
    body: &str,
    user: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut r = client()
        .post(srv.url(&format!("/api/v1/alerts/{fp}/{verb}")))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some((u, p)) = user {
        r = r.basic_auth(u, Some(p));
    }
    let r = r.send().unwrap();
    let s = r.status().as_u16();
    let text = r.text().unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn mark(srv: &TestServer, fp: &str, verb: &str, body: &str) -> (u16, Value) {
    mark_as(srv, fp, verb, body, None)
}

fn detail(srv: &TestServer, fp: &str) -> Value {
    let v = get_json(srv, &format!("/api/v1/alerts/{fp}"));
    v["data"].clone()
}

fn timeline(srv: &TestServer, fp: &str) -> Vec<Value> {
    let v = get_json(srv, &format!("/api/v1/alerts/{fp}/timeline?limit=1000"));
    v["data"].as_array().cloned().unwrap()
}

/// Notifications at the webhook for the group of `instance`.
fn sent_for(hook: &WebhookCollector, instance: &str) -> usize {
    hook.requests()
        .iter()
        .filter(|r| r.path == "/hook")
        .filter(|r| r.json()["groupLabels"]["instance"] == instance)
        .count()
}

fn wait_more(hook: &WebhookCollector, instance: &str, than: usize, what: &str) -> usize {
    wait_until(WAIT, what, || {
        let n = sent_for(hook, instance);
        (n > than).then_some(n)
    })
}

#[test]
fn ack_stops_repeats_at_a_webhook_and_survives_a_restart() {
    let hook = WebhookCollector::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config(&hook.url("")));
    let data = tmp.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(bin(), &data, &args);
    let (a, b) = (
        labels("Disk", "a", "warning"),
        labels("Disk", "b", "warning"),
    );
    post_alerts(&srv, &[firing(&a), firing(&b)]);
    // Repeats happen before the ack.
    wait_more(&hook, "a", 1, "a repeat of a");
    let (s, v) = mark(&srv, &fp(&a), "ack", r#"{"comment":"on it","by":"ann"}"#);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["ack"]["by"], "ann");
    assert_eq!(v["data"]["ack"]["comment"], "on it");
    // A flush that was running when the ack arrived may still land; from then on, b (not
    // acknowledged) keeps being repeated and a does not.
    let b0 = sent_for(&hook, "b");
    wait_more(&hook, "b", b0, "a repeat of b");
    let a0 = sent_for(&hook, "a");
    let b1 = sent_for(&hook, "b");
    wait_more(&hook, "b", b1 + 1, "two more repeats of b");
    assert_eq!(
        sent_for(&hook, "a"),
        a0,
        "a was repeated while acknowledged"
    );

    srv.stop();
    let srv = TestServer::start_on(bin(), &data, &args);
    let d = detail(&srv, &fp(&a));
    assert_eq!(d["state"], "firing", "{d}");
    assert_eq!(d["ack"]["by"], "ann", "{d}");
    let b2 = sent_for(&hook, "b");
    wait_more(&hook, "b", b2 + 1, "repeats of b after the restart");
    assert_eq!(
        sent_for(&hook, "a"),
        a0,
        "a was repeated after the restart while acknowledged"
    );
    let (s, v) = mark(&srv, &fp(&a), "unack", r#"{"by":"bob"}"#);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["ack"], Value::Null);
    wait_more(&hook, "a", a0, "repeats of a once unacknowledged");

    let tl = timeline(&srv, &fp(&a));
    let types: Vec<&str> = tl.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.last(), Some(&"firing"), "{types:?}");
    let ack = tl.iter().find(|e| e["type"] == "ack").unwrap();
    assert_eq!(
        (&ack["by"], &ack["comment"]),
        (&json!("ann"), &json!("on it"))
    );
    assert_eq!(
        tl.iter().find(|e| e["type"] == "unack").unwrap()["by"],
        "bob"
    );
    let n = tl.iter().find(|e| e["type"] == "notification").unwrap();
    assert_eq!(n["receiver"], "hook", "{n}");
    assert_eq!(n["outcome"], "sent", "{n}");
    assert_eq!(n["status"], "firing", "{n}");
    assert!(
        types.iter().filter(|t| **t == "notification").count() >= a0,
        "{types:?}"
    );
    let m = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let gauge = m
        .lines()
        .find(|l| l.starts_with("tocsin_alerts_acknowledged"))
        .expect("tocsin_alerts_acknowledged missing");
    let v: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(v, 0.0, "{gauge}");
}

#[test]
fn edge_cases_notes_shelves_and_the_timeline() {
    let hook = WebhookCollector::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config(&hook.url("")));
    let srv = TestServer::start_on(
        bin(),
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let c = labels("Cpu", "c", "warning");
    let fc = fp(&c);
    post_alerts(&srv, &[firing(&c)]);

    // Unknown fingerprint: 404 naming it; malformed: 400 naming the field.
    let (s, v) = mark(&srv, "0123456789abcdef", "ack", "{}");
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("0123456789abcdef"),
        "{v}"
    );
    let r = client()
        .get(srv.url("/api/v1/alerts/0123456789abcdef"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let (s, v) = mark(&srv, &fc, "ack", r#"{"expires":"tomorrow"}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("expires:"), "{v}");
    let (s, v) = mark(&srv, &fc, "shelve", r#"{}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("duration:"), "{v}");

    // Double ack: idempotent, 200 both times; the second changes nothing.
    let (s, v) = mark(&srv, &fc, "ack", r#"{"comment":"x"}"#);
    assert_eq!((s, &v["data"]["changed"]), (200, &json!(true)), "{v}");
    assert_eq!(v["data"]["ack"]["by"], "anonymous");
    assert_eq!(v["data"]["ack"]["expires"], Value::Null);
    let (s, v) = mark(&srv, &fc, "ack", r#"{"comment":"x"}"#);
    assert_eq!((s, &v["data"]["changed"]), (200, &json!(false)), "{v}");
    let acks = timeline(&srv, &fc)
        .iter()
        .filter(|e| e["type"] == "ack")
        .count();
    assert_eq!(acks, 1);
    // A different one replaces it.
    let (s, v) = mark(&srv, &fc, "ack", r#"{"comment":"y","expires":"1h"}"#);
    assert_eq!((s, &v["data"]["changed"]), (200, &json!(true)), "{v}");
    assert!(v["data"]["ack"]["expires"].is_string(), "{v}");

    // Ack → resolve → fire again: not acknowledged; acking the resolved alert is a conflict.
    post_alerts(&srv, &[resolved(&c)]);
    let d = detail(&srv, &fc);
    assert_eq!(
        (&d["state"], &d["ack"]),
        (&json!("resolved"), &Value::Null),
        "{d}"
    );
    let (s, v) = mark(&srv, &fc, "ack", "{}");
    assert_eq!(s, 409, "{v}");
    post_alerts(&srv, &[refiring(&c)]);
    let d = detail(&srv, &fc);
    assert_eq!(
        (&d["state"], &d["ack"]),
        (&json!("firing"), &Value::Null),
        "{d}"
    );
    let ended = timeline(&srv, &fc);
    let ended = ended.iter().find(|e| e["type"] == "ack_ended").unwrap();
    assert_eq!(ended["reason"], "resolved");

    // A severity change ends the ack of the alert at the old severity.
    let (s, _) = mark(&srv, &fc, "ack", "{}");
    assert_eq!(s, 200);
    let crit = labels("Cpu", "c", "critical");
    post_alerts(&srv, &[firing(&crit)]);
    assert_eq!(detail(&srv, &fc)["ack"], Value::Null);
    assert_eq!(detail(&srv, &fp(&crit))["ack"], Value::Null);
    let tl = timeline(&srv, &fc);
    assert!(
        tl.iter().any(|e| e["type"] == "ack_ended"
            && e["reason"] == r#"severity changed from "warning" to "critical""#),
        "{tl:?}"
    );

    // A shelf hides from the console, not from /api/v2/alerts, and lapses.
    let (s, v) = mark(
        &srv,
        &fc,
        "shelve",
        r#"{"duration":"2s","comment":"flapping"}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert!(v["data"]["shelved_until"].is_string(), "{v}");
    let marks = get_json(&srv, "/api/v1/alerts/marks");
    assert!(marks["data"]["shelves"][&fc].is_object(), "{marks}");
    let listed = get_json(&srv, "/api/v2/alerts");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["fingerprint"] == fc.as_str()),
        "{listed}"
    );
    wait_until(WAIT, "the shelf to lapse", || {
        detail(&srv, &fc)["shelved_until"].is_null().then_some(())
    });
    wait_until(WAIT, "shelve_ended on the timeline", || {
        timeline(&srv, &fc)
            .iter()
            .any(|e| e["type"] == "shelve_ended")
            .then_some(())
    });

    // Notes.
    let (s, v) = mark(&srv, &fc, "note", r#"{"text":"fan replaced","by":"carol"}"#);
    assert_eq!(s, 200, "{v}");
    let (s, v) = mark(&srv, &fc, "note", r#"{"txt":"x"}"#);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("txt:"), "{v}");
    assert_eq!(detail(&srv, &fc)["notes"], 1);
    let tl = timeline(&srv, &fc);
    let note = tl.iter().find(|e| e["type"] == "note").unwrap();
    assert_eq!(
        (&note["by"], &note["text"]),
        (&json!("carol"), &json!("fan replaced"))
    );
    // Newest first.
    let at: Vec<&str> = tl.iter().map(|e| e["at"].as_str().unwrap()).collect();
    let mut sorted = at.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(at, sorted);
    let r = client()
        .get(srv.url(&format!("/api/v1/alerts/{fc}/timeline?limit=0")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn notifications_and_an_action_are_on_the_timeline() {
    let hook = WebhookCollector::start();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config(&hook.url("")));
    let srv = TestServer::start_on(
        bin(),
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let f = labels("Fix", "vm1", "page");
    let d = labels("Disk", "d", "warning");
    post_alerts(&srv, &[firing(&f), firing(&d)]);
    hook.wait_for(WAIT, "the restart call", |r| {
        r.iter().any(|x| x.path == "/restart/vm1")
    });
    let tl = wait_until(WAIT, "the action on the timeline", || {
        let tl = timeline(&srv, &fp(&f));
        tl.iter().any(|e| e["type"] == "action").then_some(tl)
    });
    let act = tl.iter().find(|e| e["type"] == "action").unwrap();
    assert_eq!(act["policy"], "restart", "{act}");
    assert!(act["action"].as_i64().unwrap() > 0, "{act}");
    wait_more(&hook, "d", 0, "the notification of d");
    hook.set_status(500);
    let before = sent_for(&hook, "d");
    wait_until(WAIT, "a failed notification on the timeline", || {
        timeline(&srv, &fp(&d))
            .iter()
            .any(|e| e["type"] == "notification" && e["outcome"] == "failed")
            .then_some(())
    });
    assert!(sent_for(&hook, "d") > before);
    let tl = timeline(&srv, &fp(&d));
    let failed = tl
        .iter()
        .find(|e| e["type"] == "notification" && e["outcome"] == "failed")
        .unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    assert!(tl
        .iter()
        .any(|e| e["type"] == "notification" && e["outcome"] == "sent"));
}

#[test]
fn roles_decide_who_may_ack_and_the_user_is_recorded() {
    let hook = WebhookCollector::start();
    let dir = WebDir::new();
    let web = dir.config(&format!(
        "basic_auth_users:\n  reader: {}\n  alerter: {}\nbasic_auth_roles:\n  reader: [read]\n  alerter: [read, alert]\n",
        hash("readerpw"),
        hash("alerterpw"),
    ));
    let cfg = write_config(dir.dir.path(), &config(&hook.url("")));
    let srv = TestServer::start_on(
        bin(),
        &dir.path("data"),
        &["--config", cfg.to_str().unwrap(), "--web.config.file", &web],
    );
    let alerter = Some(("alerter", "alerterpw"));
    let reader = Some(("reader", "readerpw"));
    let e = labels("Disk", "e", "warning");
    post_alerts_as(&srv, &[firing(&e)], alerter);
    let (s, v) = mark_as(&srv, &fp(&e), "ack", r#"{"by":"mallory"}"#, reader);
    assert_eq!(s, 403, "{v}");
    let (s, v) = mark_as(&srv, &fp(&e), "note", r#"{"text":"x"}"#, reader);
    assert_eq!(s, 403, "{v}");
    let (s, v) = mark_as(&srv, &fp(&e), "ack", r#"{"by":"mallory"}"#, None);
    assert_eq!(s, 401, "{v}");
    let (s, v) = mark_as(&srv, &fp(&e), "ack", r#"{"by":"mallory"}"#, alerter);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["ack"]["by"], "alerter", "{v}");
    // Reading is the read role's.
    let r = client()
        .get(srv.url(&format!("/api/v1/alerts/{}/timeline", fp(&e))))
        .basic_auth("reader", Some("readerpw"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let tl: Value = r.json().unwrap();
    let ack = tl["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "ack")
        .cloned()
        .unwrap();
    assert_eq!(ack["by"], "alerter", "{tl}");
}

#[test]
fn check_config_accepts_notify_acked_and_names_a_bad_value() {
    let tmp = tempfile::tempdir().unwrap();
    let good = "alertmanager:\n  route:\n    receiver: r\n    notify_acked: true\n    routes:\n      - matchers: ['a=\"b\"']\n        notify_acked: false\n  receivers:\n    - name: r\n";
    let p = write_config(tmp.path(), good);
    let out = std::process::Command::new(bin())
        .args(["check", "config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let p = write_config(
        tmp.path(),
        &good.replace("notify_acked: false", "notify_acked: nope"),
    );
    let out = std::process::Command::new(bin())
        .args(["check", "config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("tocsin.yml:7:") && text.contains("notify_acked"),
        "{text}"
    );
}
