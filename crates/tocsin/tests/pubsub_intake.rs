//! The Cloud Monitoring intake in the real server: a Pub/Sub push of an `open` incident fires an
//! alert with the incident's resource and metric labels and notifies a webhook once, whatever
//! the redeliveries (same message id, or a new id for the same incident state); `closed`
//! resolves it; after a restart a redelivered message id is still a no-op; malformed pushes are
//! 400s naming the field; and with `pubsub_push.oidc` configured, the push's OIDC token is
//! checked (signature against a JWKS file, audience).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};
use tocsin_testkit::webhook::{Recorded, WebhookCollector};
use tocsin_testkit::{client, oidc, wait_until, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const INCIDENT: &str = "0.nr1bt5u9dj2q";

/// A push as Pub/Sub sends it for a Cloud Monitoring `gce_instance` CPU policy.
fn push_body(message_id: &str, state: &str, started: i64, ended: Option<i64>) -> Vec<u8> {
    let incident = json!({
        "version": "1.2",
        "incident": {
            "incident_id": INCIDENT,
            "scoping_project_id": "fleet-prod",
            "scoping_project_number": 286919713412_i64,
            "url": format!("https://console.cloud.google.com/monitoring/alerting/incidents/{INCIDENT}?project=fleet-prod"),
            "started_at": started,
            "ended_at": ended,
            "state": state,
            "summary": "CPU utilization for fleet-prod vm-17 is above the threshold of 0.950 with a value of 0.991.",
            "observed_value": "0.991",
            "threshold_value": "0.95",
            "resource": {"type": "gce_instance", "labels": {
                "project_id": "fleet-prod", "instance_id": "4721895234567", "zone": "europe-west1-b"}},
            "resource_type_display_name": "VM Instance",
            "resource_display_name": "vm-17",
            "metric": {"type": "compute.googleapis.com/instance/cpu/utilization",
                "displayName": "CPU utilization", "labels": {"instance_name": "vm-17"}},
            "metadata": {"system_labels": {}, "user_labels": {}},
            "policy_name": "VmCpuHigh",
            "policy_user_labels": {"action": "delete_vm"},
            "condition_name": "CPU above 95% for 5m",
            "condition": {"name": "projects/fleet-prod/alertPolicies/1/conditions/2",
                "displayName": "CPU above 95% for 5m"},
            "documentation": {"content": "Delete the VM", "mime_type": "text/markdown"},
            "severity": "CRITICAL"
        }
    });
    let data = base64::engine::general_purpose::STANDARD.encode(incident.to_string());
    serde_json::to_vec(&json!({
        "message": {
            "attributes": {"incident_id": INCIDENT, "state": state},
            "data": data,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-12-04T03:00:00.000Z",
            "publish_time": "2026-12-04T03:00:00.000Z"
        },
        "subscription": "projects/fleet-prod/subscriptions/tocsin-intake"
    }))
    .unwrap()
}

fn push(srv: &TestServer, body: Vec<u8>, token: Option<&str>) -> (u16, String) {
    let mut req = client()
        .post(srv.url("/api/v1/pubsub/push"))
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let r = req.body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn status_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["status"].as_str().unwrap_or("").to_string()
}

fn alerts(srv: &TestServer) -> Vec<Value> {
    let r = client()
        .get(srv.url("/api/v2/alerts?filter=alertname%3D%22VmCpuHigh%22"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    serde_json::from_str::<Value>(&r.text().unwrap())
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn config(dir: &Path, hook: &str, extra: &str) -> std::path::PathBuf {
    let cfg = dir.join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "alertmanager:\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 0s\n    group_interval: 1s\n    repeat_interval: 1h\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {hook}\n{extra}"
        ),
    )
    .unwrap();
    cfg
}

/// Webhook notifications for the incident with `status` ("firing" or "resolved").
fn notifications(r: &[Recorded], status: &str) -> usize {
    r.iter()
        .filter(|x| {
            let v = x.json();
            v["status"] == status && v["groupLabels"]["alertname"] == "VmCpuHigh"
        })
        .count()
}

#[test]
fn open_fires_once_redeliveries_are_no_ops_closed_resolves_and_restart_keeps_ids() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let cfg = config(dir.path(), &hook.url("/hook"), "");
    let data = dir.path().join("data");
    let mut srv = TestServer::start_on(bin(), &data, &["--config", cfg.to_str().unwrap()]);
    let started = now_s() - 300;

    let (code, body) = push(&srv, push_body("9001", "open", started, None), None);
    assert_eq!((code, status_of(&body).as_str()), (200, "taken"), "{body}");
    let v = alerts(&srv);
    assert_eq!(v.len(), 1, "{v:?}");
    let a = &v[0];
    for (k, want) in [
        ("alertname", "VmCpuHigh"),
        ("condition", "CPU above 95% for 5m"),
        ("incident_id", INCIDENT),
        ("resource_type", "gce_instance"),
        ("project_id", "fleet-prod"),
        ("instance_id", "4721895234567"),
        ("zone", "europe-west1-b"),
        ("instance_name", "vm-17"),
        ("action", "delete_vm"),
        ("severity", "CRITICAL"),
    ] {
        assert_eq!(a["labels"][k], want, "label {k}: {a}");
    }
    assert_eq!(a["annotations"]["value"], "0.991");
    assert_eq!(a["annotations"]["description"], "Delete the VM");
    assert_eq!(a["status"]["state"], "active");
    let starts_at = a["startsAt"].clone();
    let updated_at = a["updatedAt"].clone();
    hook.wait_for(Duration::from_secs(20), "the firing notification", |r| {
        notifications(r, "firing") == 1
    });

    // The same message again: acknowledged, nothing done (the alert is not even touched).
    let (code, body) = push(&srv, push_body("9001", "open", started, None), None);
    assert_eq!(
        (code, status_of(&body).as_str()),
        (200, "duplicate"),
        "{body}"
    );
    let v = alerts(&srv);
    assert_eq!(v[0]["updatedAt"], updated_at);
    // The same incident state under a new message id (Cloud Monitoring re-publishing) updates
    // the one alert: same labels, same start.
    let (code, body) = push(&srv, push_body("9002", "open", started, None), None);
    assert_eq!((code, status_of(&body).as_str()), (200, "taken"), "{body}");
    let v = alerts(&srv);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0]["startsAt"], starts_at);

    // Malformed pushes: 400 naming the field.
    for (body, field) in [
        (b"{".to_vec(), "body: not JSON"),
        (
            br#"{"message": {"messageId": "1", "data": "%%"}}"#.to_vec(),
            "message.data: not valid base64",
        ),
        (
            push_body("9009", "acknowledged", started, None),
            "incident.state: must be open or closed, not \\\"acknowledged\\\"",
        ),
    ] {
        let (code, text) = push(&srv, body, None);
        assert_eq!(code, 400, "{text}");
        assert!(text.contains(field), "{text} lacks {field}");
    }

    // Closed resolves it.
    let ended = now_s() - 5;
    let (code, body) = push(
        &srv,
        push_body("9003", "closed", started, Some(ended)),
        None,
    );
    assert_eq!((code, status_of(&body).as_str()), (200, "taken"), "{body}");
    let r = hook.wait_for(Duration::from_secs(20), "the resolved notification", |r| {
        notifications(r, "resolved") == 1
    });
    assert_eq!(
        notifications(&r, "firing"),
        1,
        "the redeliveries notified again"
    );
    let resolved = r
        .iter()
        .find(|x| x.json()["status"] == "resolved")
        .unwrap()
        .json();
    assert_eq!(
        resolved["alerts"][0]["labels"]["instance_id"],
        "4721895234567"
    );

    // Restart, then Pub/Sub redelivers the first (open) message: still a no-op, so the
    // resolved incident does not fire again.
    srv.stop();
    let srv = TestServer::start_on(bin(), &data, &["--config", cfg.to_str().unwrap()]);
    let (code, body) = push(&srv, push_body("9001", "open", started, None), None);
    assert_eq!(
        (code, status_of(&body).as_str()),
        (200, "duplicate"),
        "{body}"
    );
    let (code, body) = push(
        &srv,
        push_body("9003", "closed", started, Some(ended)),
        None,
    );
    assert_eq!(
        (code, status_of(&body).as_str()),
        (200, "duplicate"),
        "{body}"
    );
    assert!(
        alerts(&srv)
            .iter()
            .all(|a| a["status"]["state"] != "active"),
        "{:?}",
        alerts(&srv)
    );
    // Two group intervals pass with no new notification.
    let before = hook.requests().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(hook.requests().len(), before);
}

const AUD: &str = "https://tocsin.example.com/api/v1/pubsub/push";

#[test]
fn with_oidc_configured_only_a_good_token_for_the_audience_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("google-certs.json"), oidc::JWKS).unwrap();
    let hook = WebhookCollector::start();
    let extra = format!(
        "pubsub_push:\n  oidc:\n    jwks_file: google-certs.json\n    audience: {AUD}\n    service_account_emails: [{}]\n",
        oidc::EMAIL
    );
    let cfg = config(dir.path(), &hook.url("/hook"), &extra);
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let started = now_s() - 60;

    let (code, body) = push(&srv, push_body("1", "open", started, None), None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("no Authorization header"), "{body}");
    let wrong_aud = oidc::sign(&oidc::claims("https://other.example.com/push"));
    let (code, body) = push(
        &srv,
        push_body("1", "open", started, None),
        Some(&wrong_aud),
    );
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("wrong audience"), "{body}");
    let forged = oidc::sign_with(&oidc::claims(AUD), oidc::OTHER_KEY_PEM, oidc::KID);
    let (code, body) = push(&srv, push_body("1", "open", started, None), Some(&forged));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("bad signature"), "{body}");
    // Refused pushes were not recorded: the good one is taken, not a duplicate.
    let good = oidc::sign(&oidc::claims(AUD));
    let (code, body) = push(&srv, push_body("1", "open", started, None), Some(&good));
    assert_eq!((code, status_of(&body).as_str()), (200, "taken"), "{body}");
    wait_until(Duration::from_secs(10), "the alert", || {
        (alerts(&srv).len() == 1).then_some(())
    });
}

#[test]
fn check_config_refuses_a_bad_pubsub_push_section_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "pubsub_push:\n  oidc:\n    jwks_file: missing.json\n    audience: x\n    issuer: typo\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("tocsin.yml:5:"), "{text}");
    assert!(text.contains("issuer"), "{text}");

    std::fs::write(
        &cfg,
        "pubsub_push:\n  oidc:\n    jwks_file: missing.json\n    audience: x\n",
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("tocsin.yml:3:"), "{text}");
    assert!(text.contains("pubsub_push.oidc.jwks_file"), "{text}");
    // The server refuses the same file.
    let out = std::process::Command::new(bin())
        .args([
            "server",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pubsub_push.oidc.jwks_file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With a web configuration that has credentials, Pub/Sub (which cannot send basic auth) gets
/// in on the OIDC token alone, on the push route only; a forged token or none stays out.
#[test]
fn with_web_auth_the_oidc_token_stands_for_the_alert_role_on_the_push_route_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("google-certs.json"), oidc::JWKS).unwrap();
    std::fs::write(dir.path().join("reader.token"), "reader-token\n").unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "bearer_tokens:\n  - name: reader\n    token_file: reader.token\n    roles: [read]\n",
    )
    .unwrap();
    let hook = WebhookCollector::start();
    let extra =
        format!("pubsub_push:\n  oidc:\n    jwks_file: google-certs.json\n    audience: {AUD}\n");
    let cfg = config(dir.path(), &hook.url("/hook"), &extra);
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--web.config.file",
            web.to_str().unwrap(),
        ],
    );
    let started = now_s() - 60;
    let (code, body) = push(&srv, push_body("1", "open", started, None), None);
    assert_eq!(code, 401, "{body}");
    let forged = oidc::sign_with(&oidc::claims(AUD), oidc::OTHER_KEY_PEM, oidc::KID);
    let (code, body) = push(&srv, push_body("1", "open", started, None), Some(&forged));
    assert_eq!(code, 401, "{body}");
    let good = oidc::sign(&oidc::claims(AUD));
    let (code, body) = push(&srv, push_body("1", "open", started, None), Some(&good));
    assert_eq!((code, status_of(&body).as_str()), (200, "taken"), "{body}");
    // The token is no credential anywhere else.
    let r = client()
        .post(srv.url("/api/v2/silences"))
        .header("Authorization", format!("Bearer {good}"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// The Cloud Run handler this replaces deleted the VM on every delivery. Here a redelivered
/// push, the same incident re-published under a new id, and a restart in between all lead to
/// one action at the far side.
#[test]
fn redeliveries_of_an_incident_run_its_action_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"alertmanager:
  route:
    receiver: fix
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1s
  receivers:
    - name: fix
      action_configs: [{{policy: delete-vm}}]
actions:
  policies:
    - name: delete-vm
      target: '{{{{ $labels.instance_id }}}}'
      http:
        method: DELETE
        url: '{}/{{{{ $labels.zone }}}}/{{{{ $labels.instance_name }}}}'
"#,
            hook.url("/vm")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(bin(), &data, &args);
    let started = now_s() - 300;
    let (code, body) = push(&srv, push_body("7001", "open", started, None), None);
    assert_eq!((code, status_of(&body).as_str()), (200, "taken"), "{body}");
    hook.wait_for(Duration::from_secs(20), "the action", |r| !r.is_empty());
    for id in ["7001", "7002"] {
        let (code, body) = push(&srv, push_body(id, "open", started, None), None);
        assert_eq!(code, 200, "{body}");
    }
    srv.kill9();
    let srv = TestServer::start_on(bin(), &data, &args);
    for id in ["7001", "7003"] {
        let (code, body) = push(&srv, push_body(id, "open", started, None), None);
        assert_eq!(code, 200, "{body}");
    }
    // Proving an absence takes time: three repeat intervals (1 s) after the restart, the
    // flushes that re-send the alert to the policy have happened and were no-ops.
    std::thread::sleep(Duration::from_secs(3));
    let r = client()
        .get(srv.url("/api/v1/actions?policy=delete-vm"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    let execs = v["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(execs.len(), 1, "{v}");
    let got = hook.requests();
    assert_eq!(
        got.len(),
        1,
        "{:?}",
        got.iter().map(|r| r.path.clone()).collect::<Vec<_>>()
    );
    assert_eq!(got[0].path, "/vm/europe-west1-b/vm-17");
    assert_eq!(got[0].method, "DELETE");
}
