//! Integration tests of the built-in alert manager in the real server: rules notify a webhook
//! through the route tree (with the end-to-end latency printed as a figure), alerts posted to
//! `/api/v2/alerts` as an external Prometheus does, silences through `/api/v2/silences`, no
//! duplicate notification after a restart, and inbound heartbeats that alert when late.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
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

fn parse_time(v: &Value) -> i64 {
    tocsin_model::time::parse_rfc3339_ms(v.as_str().unwrap_or("")).unwrap_or(i64::MAX)
}

fn get_json(srv: &TestServer, path: &str) -> Value {
    let r = client().get(srv.url(path)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    serde_json::from_str(&r.text().unwrap()).unwrap()
}

fn post_json(srv: &TestServer, path: &str, body: &Value) -> (u16, String) {
    let r = client()
        .post(srv.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn write_temp(srv: &TestServer, v: f64) {
    let r = client()
        .post(srv.url("/write?precision=ms"))
        .body(format!("app temp={v} {}\n", now_ms()))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

fn config(dir: &Path, hook: &str, extra: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: app\n    rules:\n      - alert: Hot\n        expr: app_temp > 30\n        labels:\n          severity: page\n        annotations:\n          summary: '{{ $labels.host }} is at {{ $value }}'\n",
    )
    .unwrap();
    let cfg = dir.join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalertmanager:\n  route:\n    receiver: hook\n    group_by: [alertname]\n    group_wait: 1s\n    group_interval: 2s\n    repeat_interval: 1h\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {hook}\n{extra}"
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_threshold_crossing_reaches_the_webhook_within_interval_plus_group_wait() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let cfg = config(dir.path(), &hook.url("/hook"), "");
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    write_temp(&srv, 20.0);
    // Let the group run a few times on the calm value.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(hook.requests().is_empty());
    let crossed = SystemTime::now();
    write_temp(&srv, 40.0);
    let reqs = hook.wait_for(Duration::from_secs(20), "notification", |r| !r.is_empty());
    let latency = reqs[0].at.duration_since(crossed).unwrap();
    // The figure for the issue: evaluation interval (1 s) + group_wait (1 s) + 100 ms.
    println!(
        "FIGURE end-to-end latency, sample over threshold -> webhook: {} ms (target <= 2100 ms)",
        latency.as_millis()
    );
    // Only a sanity bound: the figure is measured, not asserted, on a shared machine.
    assert!(latency <= Duration::from_secs(5), "{latency:?}");
    let b = reqs[0].json();
    assert_eq!(b["version"], "4");
    assert_eq!(b["status"], "firing");
    assert_eq!(b["receiver"], "hook");
    assert_eq!(b["groupKey"], "{}:{alertname=\"Hot\"}");
    assert_eq!(b["groupLabels"], json!({"alertname": "Hot"}));
    let a = &b["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "Hot");
    assert_eq!(a["labels"]["severity"], "page");
    assert_eq!(a["annotations"]["summary"], " is at 40");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);

    // Resolve: the next group_interval flush carries the resolved alert.
    write_temp(&srv, 20.0);
    let reqs = hook.wait_for(Duration::from_secs(20), "resolve", |r| {
        r.iter().any(|x| x.json()["status"] == "resolved")
    });
    let r = reqs
        .iter()
        .map(|x| x.json())
        .find(|b| b["status"] == "resolved")
        .unwrap();
    assert_eq!(r["alerts"][0]["status"], "resolved");
    assert_ne!(r["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
}

#[test]
fn external_alerts_silences_and_restart_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let cfg = config(dir.path(), &hook.url("/hook"), "");
    let data = dir.path().join("data");
    let mut srv = TestServer::start_on(bin(), &data, &["--config", cfg.to_str().unwrap()]);
    // What an external Prometheus posts.
    let alert = |name: &str| {
        json!([{
            "labels": {"alertname": name, "job": "ext"},
            "annotations": {"summary": "from outside"},
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms() - 60_000),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "generatorURL": "http://prom/graph"
        }])
    };
    let (code, body) = post_json(&srv, "/api/v2/alerts", &alert("External"));
    assert_eq!(code, 200, "{body}");
    let (code, body) = post_json(&srv, "/api/v2/alerts", &json!([{"labels": {}}]));
    assert_eq!(code, 400);
    assert!(body.contains("alerts[0].labels"), "{body}");
    // A silence for a second alert, created before it arrives.
    let (code, body) = post_json(
        &srv,
        "/api/v2/silences",
        &json!({
            "matchers": [{"name": "alertname", "value": "Sil.*", "isRegex": true, "isEqual": true}],
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms()),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "createdBy": "test",
            "comment": "maintenance"
        }),
    );
    assert_eq!(code, 200, "{body}");
    let sid = serde_json::from_str::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = post_json(&srv, "/api/v2/alerts", &alert("Silenced"));
    assert_eq!(code, 200);
    hook.wait_for(Duration::from_secs(20), "External notified", |r| {
        r.iter()
            .any(|x| x.json()["groupLabels"]["alertname"] == "External")
    });
    let v = get_json(&srv, "/api/v2/alerts?filter=alertname%3D%22Silenced%22");
    assert_eq!(v[0]["status"]["state"], "suppressed");
    assert_eq!(v[0]["status"]["silencedBy"][0], sid.as_str());
    let v = get_json(&srv, "/api/v2/alerts?silenced=false");
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["labels"]["alertname"] != "Silenced"));
    let v = get_json(&srv, "/api/v2/silences");
    assert_eq!(v[0]["status"]["state"], "active");
    assert_eq!(v[0]["comment"], "maintenance");

    // Restart: the silence survives, and the sender re-sending the same alert does not
    // produce a second notification (repeat_interval is 1h).
    std::thread::sleep(Duration::from_millis(500));
    let before = hook.requests().len();
    srv.stop();
    let srv = TestServer::start_on(bin(), &data, &["--config", cfg.to_str().unwrap()]);
    let (code, _) = post_json(&srv, "/api/v2/alerts", &alert("External"));
    assert_eq!(code, 200);
    let (code, _) = post_json(&srv, "/api/v2/alerts", &alert("Silenced"));
    assert_eq!(code, 200);
    let v = get_json(&srv, &format!("/api/v2/silence/{sid}"));
    assert_eq!(v["status"]["state"], "active");
    let v = get_json(&srv, "/api/v2/alerts?filter=alertname%3D%22Silenced%22");
    assert_eq!(v[0]["status"]["state"], "suppressed");
    // The history: this sender re-sends with a later startsAt after the restart; as an
    // Alertmanager that had kept running would merge it, the alert keeps its first start and
    // its history stays one open row.
    let v = get_json(
        &srv,
        "/api/v1/alerts/history?filter=alertname%3D%22External%22&limit=5",
    );
    assert_eq!(v["status"], "success", "{v}");
    let rows = v["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{v}");
    assert!(rows[0]["endsAt"].is_null(), "still firing: {v}");
    assert!(parse_time(&rows[0]["startsAt"]) <= now_ms() - 60_000, "{v}");
    assert_eq!(rows[0]["labels"]["job"], "ext");
    assert_eq!(rows[0]["fingerprint"].as_str().unwrap().len(), 16);
    let v = get_json(&srv, "/api/v1/alerts/history?filter=job%3D%22ext%22");
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    let future = tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000);
    let v = get_json(
        &srv,
        &format!("/api/v1/alerts/history?start={future}&filter=job%3D%22ext%22"),
    );
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        2,
        "open rows overlap any later window"
    );
    for (q, field) in [
        ("limit=0", "limit"),
        ("filter=%7Bbad", "filter"),
        ("start=x", "start"),
    ] {
        let r = client()
            .get(srv.url(&format!("/api/v1/alerts/history?{q}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{q}");
        let body: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        assert_eq!(body["errorType"], "bad_data", "{q}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(field),
            "{q}: {body}"
        );
    }
    // Two group_intervals and a group_wait pass with no new notification.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        hook.requests().len(),
        before,
        "{:?}",
        hook.requests().last().map(|r| r.json())
    );

    // Expiring the silence lets the alert through.
    let r = client()
        .delete(srv.url(&format!("/api/v2/silence/{sid}")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    hook.wait_for(
        Duration::from_secs(20),
        "Silenced notified after expiry",
        |r| {
            r.iter()
                .any(|x| x.json()["groupLabels"]["alertname"] == "Silenced")
        },
    );
}

#[test]
fn late_heartbeat_alerts_and_its_metric_is_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let hook = WebhookCollector::start();
    let cfg = config(
        dir.path(),
        &hook.url("/hook"),
        "heartbeats:\n  - name: nightly-backup\n    timeout: 2s\n    labels:\n      severity: ticket\n",
    );
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let r = client()
        .post(srv.url("/api/v1/heartbeat/nightly-backup"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client()
        .post(srv.url("/api/v1/heartbeat/bad%2Fname"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let started = Instant::now();
    let v = get_json(
        &srv,
        "/api/v1/query?query=tocsin_heartbeat_last_seen_timestamp_seconds",
    );
    assert_eq!(
        v["data"]["result"][0]["metric"]["heartbeat"],
        "nightly-backup"
    );
    let reqs = hook.wait_for(Duration::from_secs(30), "HeartbeatMissing", |r| {
        r.iter()
            .any(|x| x.json()["groupLabels"]["alertname"] == "HeartbeatMissing")
    });
    assert!(started.elapsed() >= Duration::from_secs(2));
    let b = reqs
        .iter()
        .map(|x| x.json())
        .find(|b| b["groupLabels"]["alertname"] == "HeartbeatMissing")
        .unwrap();
    assert_eq!(b["alerts"][0]["labels"]["heartbeat"], "nightly-backup");
    assert_eq!(b["alerts"][0]["labels"]["severity"], "ticket");
    // The job runs again: the alert resolves.
    let r = client()
        .post(srv.url("/api/v1/heartbeat/nightly-backup"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    hook.wait_for(Duration::from_secs(30), "HeartbeatMissing resolved", |r| {
        r.iter().any(|x| {
            let b = x.json();
            b["groupLabels"]["alertname"] == "HeartbeatMissing" && b["status"] == "resolved"
        })
    });
}
