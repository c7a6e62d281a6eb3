//! Tests of the Pub/Sub and Alerta receivers against a loopback server that records requests.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};

use super::tests::*;
use super::*;

// ---------------------------------------------------------------- pubsub

fn decode_push(r: &Req) -> (Value, Value) {
    let env = r.json();
    let data = env["message"]["data"].as_str().unwrap();
    let data = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    (env, serde_json::from_slice(&data).unwrap())
}

#[tokio::test]
async fn pubsub_pushes_one_incident_per_alert() -> R {
    let srv = Server::start(&[]).await;
    let n = build_one(
        &format!(
            "name: team-x
pubsub_configs:
- url: {}
  project_id: my-proj
  subscription: projects/my-proj/subscriptions/alerts
  http_config: {{bearer_token: oidc}}
",
            srv.url("/push")
        ),
        Path::new("."),
    );
    assert_eq!(n.integration(), "pubsub");
    let (mut a, b) = group();
    a.annotations
        .insert("description".into(), "Probe of **web-1** failed".into());
    a.annotations.insert("value".into(), "0".into());
    n.notify(&cx(), &[a.clone(), b.clone()]).await?;
    let reqs = srv.reqs();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some("Bearer oidc")
    );

    let (env, data) = decode_push(&reqs[0]);
    let id = format!("{}-{STARTS}", a.fingerprint_hex());
    let msg = &env["message"];
    assert_eq!(env["subscription"], "projects/my-proj/subscriptions/alerts");
    assert_eq!(
        msg["attributes"],
        json!({"incident_id": id, "state": "open"})
    );
    assert!(msg["messageId"].as_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(msg["messageId"], msg["message_id"]);
    assert_eq!(msg["publishTime"], msg["publish_time"]);
    let pt = msg["publishTime"].as_str().unwrap();
    assert!(
        pt.ends_with('Z') && pt.len() >= 20 && &pt[10..11] == "T",
        "{pt}"
    );
    let labels = json!({"alertname": "ProbeFailure", "instance": "web-1", "severity": "critical"});
    assert_eq!(
        data,
        json!({
            "version": "1.2",
            "incident": {
                "incident_id": id,
                "scoping_project_id": "my-proj",
                "url": GEN,
                "started_at": 1_700_000_000,
                "ended_at": null,
                "state": "open",
                "summary": "web-1 down",
                "observed_value": "0",
                "resource": {
                    "type": "prometheus_target",
                    "labels": {"instance": "web-1", "project_id": "my-proj"}
                },
                "resource_name": "web-1",
                "resource_display_name": "web-1",
                "metric": {
                    "type": "tocsin/alerts/ProbeFailure",
                    "displayName": "ProbeFailure",
                    "labels": {"alertname": "ProbeFailure", "severity": "critical"}
                },
                "metadata": {"system_labels": {}, "user_labels": labels},
                "policy_name": "ProbeFailure",
                "policy_user_labels": labels,
                "condition_name": "ProbeFailure",
                "condition": {
                    "name": "projects/my-proj/alertPolicies/ProbeFailure/conditions/ProbeFailure",
                    "displayName": "ProbeFailure",
                    "conditionPrometheusQueryLanguage": {"query": "up == 0", "alertRule": "ProbeFailure"}
                },
                "documentation": {
                    "content": "Probe of **web-1** failed",
                    "mime_type": "text/markdown",
                    "subject": "web-1 down"
                },
                "severity": "critical"
            }
        })
    );

    let (env2, closed) = decode_push(&reqs[1]);
    assert_ne!(env2["message"]["messageId"], msg["messageId"]);
    let inc = &closed["incident"];
    assert_eq!(inc["state"], "closed");
    assert_eq!(
        inc["incident_id"],
        json!(format!("{}-{STARTS}", b.fingerprint_hex()))
    );
    assert_eq!(inc["started_at"], 1_700_000_000);
    assert_eq!(inc["ended_at"], 1_700_000_050);
    assert_eq!(inc["documentation"]["content"], "");
    assert!(inc.get("observed_value").is_none());
    assert_eq!(env2["message"]["attributes"]["state"], "closed");
    Ok(())
}

#[tokio::test]
async fn pubsub_minimal_alert_and_redelivery_semantics() -> R {
    let srv = Server::start(&[400]).await;
    let n = build_one(
        &format!("name: r\npubsub_configs:\n- url: {}\n", srv.url("/")),
        Path::new("."),
    );
    let mut a = alert(
        &[("alertname", "Bare"), ("resource_type", "gce_instance")],
        &[],
        0,
    );
    a.generator_url.clear();
    // Pub/Sub redelivers on any non-2xx answer, 4xx included.
    let e = n.notify(&cx(), std::slice::from_ref(&a)).await.unwrap_err();
    assert_eq!((e.retryable, e.reason), (true, Reason::ClientError));
    n.notify(&cx(), std::slice::from_ref(&a)).await?;
    let reqs = srv.reqs();
    let (env, data) = decode_push(&reqs[1]);
    assert_eq!(env["subscription"], "projects/tocsin/subscriptions/tocsin");
    let inc = &data["incident"];
    assert_eq!(inc["url"], "http://am.example:9093");
    assert_eq!(
        inc["summary"],
        "Bare is firing for {alertname=\"Bare\", resource_type=\"gce_instance\"}."
    );
    assert_eq!(inc["resource"]["type"], "gce_instance");
    assert_eq!(inc["resource"]["labels"], json!({}));
    assert_eq!(inc["metric"]["labels"], json!({"alertname": "Bare"}));
    assert_eq!(
        inc["condition"],
        json!({"name": "projects/tocsin/alertPolicies/Bare/conditions/Bare", "displayName": "Bare"})
    );
    assert!(inc.get("scoping_project_id").is_none());
    assert!(inc.get("severity").is_none());
    assert!(inc.get("resource_name").is_none());
    Ok(())
}

#[tokio::test]
async fn pubsub_resource_type_and_labels_split_the_alert_labels() -> R {
    let srv = Server::start(&[]).await;
    let n = build_one(
        &format!(
            "name: r\npubsub_configs:\n- url: {}\n  project_id: p1\n  resource_type: gce_instance\n",
            srv.url("/")
        ),
        Path::new("."),
    );
    let a = alert(
        &[
            ("alertname", "Stuck"),
            ("instance_id", "42"),
            ("zone", "europe-west1-b"),
            ("severity", "page"),
            ("resource_type", "ignored_when_configured"),
        ],
        &[],
        0,
    );
    n.notify(&cx(), std::slice::from_ref(&a)).await?;
    let n2 = build_one(
        &format!(
            "name: r\npubsub_configs:\n- url: {}\n  resource_type: my_type\n  resource_labels: [host]\n",
            srv.url("/")
        ),
        Path::new("."),
    );
    let b = alert(&[("alertname", "X"), ("host", "h1"), ("team", "t")], &[], 0);
    n2.notify(&cx(), std::slice::from_ref(&b)).await?;
    let reqs = srv.reqs();
    let (_, data) = decode_push(&reqs[0]);
    let inc = &data["incident"];
    assert_eq!(
        inc["resource"],
        json!({"type": "gce_instance", "labels": {"instance_id": "42", "zone": "europe-west1-b", "project_id": "p1"}})
    );
    assert_eq!(
        inc["metric"]["labels"],
        json!({"alertname": "Stuck", "severity": "page"})
    );
    let (_, data) = decode_push(&reqs[1]);
    let inc = &data["incident"];
    assert_eq!(
        inc["resource"],
        json!({"type": "my_type", "labels": {"host": "h1"}})
    );
    assert_eq!(
        inc["metric"]["labels"],
        json!({"alertname": "X", "team": "t"})
    );
    // A type Tocsin has no label list for needs resource_labels.
    let cfg: ReceiverConfig = serde_norway::from_str(&format!(
        "name: r\npubsub_configs:\n- url: {}\n  resource_type: my_type\n",
        srv.url("/")
    ))?;
    let e = build_receiver(&cfg, Path::new("."))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("resource_labels: required"), "{e}");
    Ok(())
}

// ---------------------------------------------------------------- alerta

#[tokio::test]
async fn alerta_posts_one_alert_each() -> R {
    let srv = Server::start(&[]).await;
    let n = build_one(
        &format!(
            "name: team-x
alerta_configs:
- url: {}
  api_key: demo-key
  customer: acme
",
            srv.url("/api/")
        ),
        Path::new("."),
    );
    assert_eq!(n.integration(), "alerta");
    let mut a = alert(
        &[
            ("alertname", "DiskFull"),
            ("instance", "db-1:9100"),
            ("job", "node"),
            ("severity", "page"),
            ("mount.point", "/var"),
            ("environment", "Staging"),
        ],
        &[
            ("summary", "disk full"),
            ("description", "/var is at 99%"),
            ("value", "99%"),
            ("runbook_url", "http://rb/disk"),
        ],
        0,
    );
    a.generator_url = "http://prom/graph".into();
    let (_, b) = group();
    n.notify(&cx(), &[a.clone(), b.clone()]).await?;
    let reqs = srv.reqs();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/api/alert");
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some("Key demo-key")
    );
    let raw_a = serde_json::to_string(&webhook::WebhookAlert::new(&a, NOW))?;
    assert_eq!(
        reqs[0].json(),
        json!({
            "resource": "db-1:9100",
            "event": "DiskFull",
            "environment": "Staging",
            "severity": "critical",
            "status": "open",
            "service": ["node"],
            "group": "node",
            "value": "99%",
            "text": "disk full",
            "tags": [],
            "attributes": {
                "mount_point": "/var",
                "description": "/var is at 99%",
                "runbook_url": "http://rb/disk"
            },
            "origin": "tocsin",
            "type": "prometheusAlert",
            "createTime": "2023-11-14T22:13:20.120Z",
            "timeout": 86400,
            "rawData": raw_a,
            "customer": "acme"
        })
    );
    let rb = reqs[1].json();
    let raw_b = serde_json::to_string(&webhook::WebhookAlert::new(&b, NOW))?;
    assert_eq!(
        rb,
        json!({
            "resource": "web-2",
            "event": "ProbeFailure",
            "environment": "Production",
            "severity": "normal",
            "status": "closed",
            "service": [],
            "value": "",
            "text": "web-2 down",
            "tags": [],
            "attributes": {"runbook": "http://rb/1"},
            "origin": "tocsin",
            "type": "prometheusAlert",
            "createTime": "2023-11-14T22:14:10.000Z",
            "timeout": 86400,
            "rawData": raw_b,
            "customer": "acme"
        })
    );
    Ok(())
}

#[test]
fn alerta_severity_mapping() {
    use alerta::alerta_severity as s;
    assert_eq!(s(None), "warning");
    assert_eq!(s(Some("CRITICAL")), "critical");
    assert_eq!(s(Some("error")), "major");
    assert_eq!(s(Some("info")), "informational");
    assert_eq!(s(Some("minor")), "minor");
    assert_eq!(s(Some("p3")), "indeterminate");
}

#[tokio::test]
async fn alerta_partial_failure_is_retryable_if_any_is() -> R {
    let srv = Server::start(&[403, 502]).await;
    let n = build_one(
        &format!("name: r\nalerta_configs:\n- url: {}\n", srv.url("")),
        Path::new("."),
    );
    let (a, b) = group();
    let e = n.notify(&cx(), &[a, b]).await.unwrap_err();
    assert_eq!((e.retryable, e.reason), (true, Reason::ServerError));
    assert!(
        e.message.starts_with("2 of 2 alerts failed"),
        "{}",
        e.message
    );
    assert_eq!(srv.reqs()[0].path, "/alert");
    assert_eq!(srv.reqs()[0].header("authorization"), None);
    Ok(())
}
