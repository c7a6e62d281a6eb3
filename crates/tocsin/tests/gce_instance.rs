//! The `gce_instance` action in the real server against the fake Google server: alerts posted
//! to `/api/v2/alerts` delete each VM once (an instance already gone counts as done), the
//! audit keeps the request without the token, and a kill -9 while the operation is being
//! waited on is resumed after the restart with the same `requestId`, so Compute Engine (the
//! fake, with its real semantics) acts once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tocsin_testkit::fake_gcp::FakeGcp;
use tocsin_testkit::{client, get_json, now_ms, wait_until, TestServer};

const PROJECT: &str = "fleet";
const ZONE: &str = "europe-west1-b";

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

fn alert(vm: &str, start: i64) -> Value {
    json!({
        "labels": {"alertname": "VmStuck", "project_id": PROJECT, "zone": ZONE,
                   "instance_name": vm},
        "startsAt": tocsin_model::time::format_rfc3339_ms(start),
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
    })
}

fn config(google: &FakeGcp, key: Option<&Path>) -> String {
    format!(
        r#"
alertmanager:
  route:
    receiver: fix
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: fix
      action_configs: [{{policy: delete-vm}}]
actions:
  policies:
    - name: delete-vm
      target: '{{{{ $labels.instance_name }}}}'
      timeout: 60s
      retry: {{attempts: 1}}
      gce_instance:
        operation: delete
        google:
{}"#,
        google.google_yaml(10, key)
    )
}

fn actions(srv: &TestServer, query: &str) -> Vec<Value> {
    let v = get_json(srv, &format!("/api/v1/actions?{query}"));
    assert_eq!(v["status"], "success", "{v}");
    v["data"].as_array().cloned().unwrap_or_default()
}

fn deletes(google: &FakeGcp, vm: &str) -> Vec<String> {
    google
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/instances/{vm}")))
        .map(|r| r.query_param("requestId").unwrap_or_default())
        .collect()
}

#[test]
fn each_vm_is_deleted_once_and_a_gone_one_counts_as_done() {
    let google = FakeGcp::start();
    for vm in ["vm-1", "vm-2", "vm-3"] {
        google.add_instance(PROJECT, ZONE, vm);
    }
    let tmp = tempfile::tempdir().unwrap();
    let key = google.write_key(tmp.path(), "sa.json");
    let cfg = tmp.path().join("tocsin.yml");
    std::fs::write(&cfg, config(&google, Some(Path::new("sa.json")))).unwrap();
    assert!(key.exists());
    let srv = TestServer::start_on(
        bin(),
        &tmp.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let start = now_ms() - 60_000;
    let alerts = [
        alert("vm-1", start),
        alert("vm-2", start),
        alert("vm-gone", start),
    ];
    post_alerts(&srv, &alerts);
    wait_until(Duration::from_secs(30), "three succeeded actions", || {
        (actions(&srv, "policy=delete-vm&outcome=succeeded").len() == 3).then_some(())
    });
    // A repeated notification acts no more.
    post_alerts(&srv, &alerts);
    std::thread::sleep(Duration::from_secs(2));
    let c = google.counters();
    assert_eq!(c.deleted, 2);
    assert_eq!(deletes(&google, "vm-1").len(), 1);
    assert_eq!(deletes(&google, "vm-2").len(), 1);
    assert_eq!(deletes(&google, "vm-gone").len(), 1);
    assert_eq!(
        google.instance_status(PROJECT, ZONE, "vm-3").as_deref(),
        Some("RUNNING")
    );
    // One token from the key's token endpoint served every call.
    assert_eq!(google.requests_to("/token").len(), 1);
    assert_eq!(c.access_tokens, 1);
    // The audit has the request as sent, requestId included, and no token.
    let list = actions(&srv, "policy=delete-vm&outcome=succeeded");
    let one = list
        .iter()
        .find(|a| a["target"] == "vm-1")
        .unwrap_or_else(|| panic!("{list:?}"));
    let id = one["id"].as_i64().unwrap();
    let detail = get_json(&srv, &format!("/api/v1/actions/{id}"));
    let text = detail.to_string();
    assert!(text.contains(&deletes(&google, "vm-1")[0]), "{text}");
    assert!(!text.contains("key-token-"), "{text}");
}

#[test]
fn kill9_while_waiting_on_the_operation_resends_with_the_same_request_id() {
    let google = FakeGcp::start();
    google.add_instance(PROJECT, ZONE, "vm-9");
    // The operation will not finish while the first server waits on it.
    google.set_operation_duration(Duration::from_secs(3600));
    google.set_wait_max(Duration::from_millis(200));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tocsin.yml");
    std::fs::write(&cfg, config(&google, None)).unwrap();
    let data = tmp.path().join("data");
    let args = ["--config", cfg.to_str().unwrap()];
    let mut srv = TestServer::start_on(bin(), &data, &args);
    let start = now_ms() - 60_000;
    post_alerts(&srv, &[alert("vm-9", start)]);
    google.wait_until(Duration::from_secs(30), "the delete and a wait", |g| {
        g.requests_to(&format!(
            "/compute/v1/projects/{PROJECT}/zones/{ZONE}/operations/"
        ))
        .len()
            >= 2
    });
    srv.kill9();
    google.complete_operations();
    let srv = TestServer::start_on(bin(), &data, &args);
    wait_until(
        Duration::from_secs(30),
        "succeeded after the restart",
        || (actions(&srv, "policy=delete-vm&outcome=succeeded").len() == 1).then_some(()),
    );
    let ids = deletes(&google, "vm-9");
    assert_eq!(ids.len(), 2, "sent again after the restart");
    assert_eq!(ids[0], ids[1], "with the same requestId");
    let c = google.counters();
    assert_eq!(c.deleted, 1, "Compute Engine acted once");
    assert_eq!(google.acted().len(), 1);
    // Both servers asked the metadata server, each with the header.
    let meta = google.requests_to("/computeMetadata/");
    assert_eq!(meta.len(), 2);
    assert!(meta
        .iter()
        .all(|r| r.header("metadata-flavor") == Some("Google")));
}
