//! Tests of the Pub/Sub push decoder: real-shaped incidents, the open/closed pair mapping to
//! one fingerprint, the round trip through the outbound mapping, and every refusal's message.

use base64::Engine as _;
use serde_json::{json, Value};
use tocsin_model::Labels;

use super::decode::{decode_push, sanitize_label_name, IncidentState, OPEN_INCIDENT_LIFETIME_MS};

const NOW: i64 = 1_767_225_600_000;

/// A CPU incident as Cloud Monitoring sends it for a `gce_instance` policy.
fn incident(state: &str) -> Value {
    let closed = state == "closed";
    json!({
        "incident_id": "0.mtdi83m6w8ao",
        "scoping_project_id": "fleet-prod",
        "scoping_project_number": 286919713412_i64,
        "url": "https://console.cloud.google.com/monitoring/alerting/incidents/0.mtdi83m6w8ao?project=fleet-prod",
        "started_at": 1_767_225_000_i64,
        "ended_at": if closed { json!(1_767_225_300_i64) } else { Value::Null },
        "state": state,
        "summary": if closed {
            "CPU utilization for fleet-prod vm-17 returned to normal with a value of 0.310."
        } else {
            "CPU utilization for fleet-prod vm-17 is above the threshold of 0.950 with a value of 0.991."
        },
        "apigee_url": "https://apigee.google.com",
        "observed_value": if closed { "0.310" } else { "0.991" },
        "resource": {"type": "gce_instance", "labels": {
            "project_id": "fleet-prod", "instance_id": "4721895234567", "zone": "europe-west1-b"}},
        "resource_type_display_name": "VM Instance",
        "resource_id": "",
        "resource_display_name": "vm-17",
        "resource_name": "fleet-prod vm-17",
        "metric": {"type": "compute.googleapis.com/instance/cpu/utilization",
            "displayName": "CPU utilization", "labels": {"instance_name": "vm-17"}},
        "metadata": {"system_labels": {"state": "ACTIVE"}, "user_labels": {"team": "fleet"}},
        "policy_name": "VM CPU above 95%",
        "policy_user_labels": {"action": "delete_vm", "cloud.region": "eu"},
        "condition_name": "CPU above 95% for 5m",
        "threshold_value": "0.95",
        "condition": {
            "name": "projects/fleet-prod/alertPolicies/1098/conditions/1099",
            "displayName": "CPU above 95% for 5m",
            "conditionThreshold": {"filter": "metric.type = \"compute.googleapis.com/instance/cpu/utilization\"",
                "comparison": "COMPARISON_GT", "thresholdValue": 0.95, "duration": "300s",
                "trigger": {"count": 1}}
        },
        "documentation": {"content": "Delete ${resource.label.instance_id}", "mime_type": "text/markdown", "subject": "VM hot"},
        "severity": "CRITICAL"
    })
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn envelope_with_data(data: &str, id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "message": {
            "attributes": {"incident_id": "0.mtdi83m6w8ao"},
            "data": data,
            "messageId": id,
            "message_id": id,
            "publishTime": "2026-01-01T00:00:00.123456789Z",
            "publish_time": "2026-01-01T00:00:00.123456789Z",
            "orderingKey": ""
        },
        "subscription": "projects/fleet-prod/subscriptions/tocsin",
        "deliveryAttempt": 2,
        "someFutureField": {"x": 1}
    }))
    .unwrap()
}

fn envelope(inc: Value, id: &str) -> Vec<u8> {
    let data = serde_json::to_vec(&json!({"version": "1.2", "incident": inc})).unwrap();
    envelope_with_data(&b64(&data), id)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

#[test]
fn open_incident_becomes_firing_alert_with_resource_and_metric_labels() {
    let m = decode_push(&envelope(incident("open"), "7001"), NOW).unwrap();
    assert_eq!(m.message_id, "7001");
    assert_eq!(m.subscription, "projects/fleet-prod/subscriptions/tocsin");
    assert_eq!(m.delivery_attempt, Some(2));
    assert_eq!(m.publish_time, "2026-01-01T00:00:00.123456789Z");
    assert_eq!(m.attributes["incident_id"], "0.mtdi83m6w8ao");
    assert_eq!(m.state, IncidentState::Open);
    let a = &m.alert;
    assert_eq!(
        a.labels,
        labels(&[
            ("action", "delete_vm"),
            ("alertname", "VM CPU above 95%"),
            ("cloud_region", "eu"),
            ("condition", "CPU above 95% for 5m"),
            ("incident_id", "0.mtdi83m6w8ao"),
            ("instance_id", "4721895234567"),
            ("instance_name", "vm-17"),
            ("project_id", "fleet-prod"),
            ("resource_type", "gce_instance"),
            ("severity", "CRITICAL"),
            ("team", "fleet"),
            ("zone", "europe-west1-b"),
        ])
    );
    assert_eq!(a.starts_at, 1_767_225_000_000);
    assert_eq!(a.ends_at, 1_767_225_000_000 + OPEN_INCIDENT_LIFETIME_MS);
    assert!(!a.resolved_at(NOW));
    assert_eq!(a.annotations["value"], "0.991");
    assert_eq!(a.annotations["observed_value"], "0.991");
    assert_eq!(a.annotations["threshold_value"], "0.95");
    assert_eq!(
        a.annotations["description"],
        "Delete ${resource.label.instance_id}"
    );
    assert_eq!(a.annotations["subject"], "VM hot");
    assert_eq!(a.annotations["incident_id"], "0.mtdi83m6w8ao");
    assert_eq!(a.annotations["resource_display_name"], "vm-17");
    assert!(a.annotations["summary"].starts_with("CPU utilization"));
    assert!(a.annotations["url"].contains("0.mtdi83m6w8ao"));
    assert_eq!(a.generator_url, a.annotations["url"]);
    a.labels.validate().unwrap();
}

#[test]
fn open_and_closed_messages_of_one_incident_have_one_fingerprint() {
    let open = decode_push(&envelope(incident("open"), "1"), NOW).unwrap();
    let closed = decode_push(&envelope(incident("closed"), "2"), NOW).unwrap();
    assert_eq!(closed.state, IncidentState::Closed);
    assert_eq!(open.alert.labels, closed.alert.labels);
    assert_eq!(open.alert.fingerprint(), closed.alert.fingerprint());
    assert_eq!(closed.alert.starts_at, open.alert.starts_at);
    assert_eq!(closed.alert.ends_at, 1_767_225_300_000);
    assert!(closed.alert.resolved_at(NOW));
    assert_eq!(closed.alert.annotations["value"], "0.310");
}

#[test]
fn redelivery_under_another_message_id_maps_to_the_same_alert() {
    let a = decode_push(&envelope(incident("open"), "1"), NOW).unwrap();
    let b = decode_push(&envelope(incident("open"), "99"), NOW + 60_000).unwrap();
    assert_eq!(a.alert, b.alert);
}

#[test]
fn closed_without_ended_at_ends_now_and_state_is_case_insensitive() {
    let mut inc = incident("CLOSED");
    inc["ended_at"] = Value::Null;
    let m = decode_push(&envelope(inc, "3"), NOW).unwrap();
    assert_eq!(m.state, IncidentState::Closed);
    assert_eq!(m.alert.ends_at, NOW);
    let mut inc = incident("Open");
    inc["started_at"] = json!("1767225000");
    let m = decode_push(&envelope(inc, "4"), NOW).unwrap();
    assert_eq!(m.state, IncidentState::Open);
    assert_eq!(m.alert.starts_at, 1_767_225_000_000);
}

#[test]
fn minimal_incident_and_test_notification_are_taken() {
    let inc = json!({"incident_id": "i-1", "state": "open", "policy_name": "P"});
    let m = decode_push(&envelope(inc, "5"), NOW).unwrap();
    assert_eq!(
        m.alert.labels,
        labels(&[("alertname", "P"), ("incident_id", "i-1")])
    );
    assert_eq!(m.alert.starts_at, NOW);
    // The console's test notification: version "test", zero times, upper-case state.
    let data = json!({"version": "test", "incident": {"incident_id": "12345", "started_at": 0,
        "ended_at": 0, "state": "OPEN", "policy_name": "Test", "severity": "No severity",
        "resource": {"type": "example_resource", "labels": {"example": "label"}}}});
    let body = envelope_with_data(&b64(&serde_json::to_vec(&data).unwrap()), "6");
    let m = decode_push(&body, NOW).unwrap();
    assert_eq!(m.alert.labels.get("severity"), None);
    assert_eq!(m.alert.labels.get("example"), Some("label"));
    assert_eq!(m.alert.starts_at, NOW);
}

#[test]
fn message_id_snake_case_and_unpadded_base64_are_accepted() {
    let data = serde_json::to_vec(
        &json!({"version": "1.2", "incident": {"incident_id": "x", "state": "open", "policy_name": "P"}}),
    )
    .unwrap();
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&data);
    let body = json!({"message": {"data": unpadded, "message_id": "42"}});
    let m = decode_push(&serde_json::to_vec(&body).unwrap(), NOW).unwrap();
    assert_eq!(m.message_id, "42");
    assert_eq!(m.subscription, "");
}

#[test]
fn label_names_are_sanitised() {
    assert_eq!(
        sanitize_label_name("cloud.region").as_deref(),
        Some("cloud_region")
    );
    assert_eq!(sanitize_label_name("1st").as_deref(), Some("_1st"));
    assert_eq!(sanitize_label_name("zoné").as_deref(), Some("zon_"));
    assert_eq!(sanitize_label_name("ok_Name9").as_deref(), Some("ok_Name9"));
    assert_eq!(sanitize_label_name(""), None);
    let mut inc = incident("open");
    // Two names sanitising to one: the first in byte order ("a-b" < "a.b") wins.
    inc["metric"]["labels"] =
        json!({"a.b": "dot", "a-b": "dash", "": "dropped", "n": 5, "t": true, "z": null});
    let m = decode_push(&envelope(inc, "7"), NOW).unwrap();
    assert_eq!(m.alert.labels.get("a_b"), Some("dash"));
    assert_eq!(m.alert.labels.get("n"), Some("5"));
    assert_eq!(m.alert.labels.get("t"), Some("true"));
    assert_eq!(m.alert.labels.get("z"), None);
    m.alert.labels.validate().unwrap();
}

#[test]
fn fixed_labels_override_resource_and_metric_labels() {
    let mut inc = incident("open");
    inc["resource"]["labels"]["alertname"] = json!("spoofed");
    inc["metric"]["labels"]["zone"] = json!("metric-zone");
    let m = decode_push(&envelope(inc, "8"), NOW).unwrap();
    assert_eq!(m.alert.labels.get("alertname"), Some("VM CPU above 95%"));
    // Resource labels come after metric labels.
    assert_eq!(m.alert.labels.get("zone"), Some("europe-west1-b"));
}

fn err(body: &[u8]) -> String {
    decode_push(body, NOW).unwrap_err()
}

fn err_inc(f: impl FnOnce(&mut Value)) -> String {
    let mut inc = incident("open");
    f(&mut inc);
    err(&envelope(inc, "9"))
}

#[test]
fn every_refusal_names_the_field() {
    assert!(err(b"{").starts_with("body: not JSON"), "{}", err(b"{"));
    assert!(err(b"[]").starts_with("body: must be a JSON object"));
    assert_eq!(err(b"{}"), "message: missing");
    assert_eq!(
        err(br#"{"message": "x"}"#),
        "message: must be an object, not a string"
    );
    assert_eq!(
        err(br#"{"message": {"data": "e30="}}"#),
        "message.messageId: missing"
    );
    assert_eq!(
        err(br#"{"message": {"data": "e30=", "messageId": 5}}"#),
        "message.messageId: must be a string, not a number"
    );
    assert_eq!(
        err(br#"{"message": {"data": "e30=", "messageId": ""}}"#),
        "message.messageId: must not be empty"
    );
    assert_eq!(
        err(br#"{"message": {"messageId": "1"}}"#),
        "message.data: missing"
    );
    assert_eq!(
        err(br#"{"message": {"messageId": "1", "data": "%%%"}}"#),
        "message.data: not valid base64"
    );
    assert_eq!(
        err(br#"{"message": {"messageId": "1", "data": "e30=", "attributes": []}}"#),
        "message.attributes: must be an object, not an array"
    );
    assert_eq!(
        err(br#"{"message": {"messageId": "1", "data": "e30="}, "deliveryAttempt": "2"}"#),
        "deliveryAttempt: must be an integer, not a string"
    );
    assert_eq!(
        err(br#"{"message": {"messageId": "1", "data": "e30="}, "subscription": 1}"#),
        "subscription: must be a string, not a number"
    );
    let not_json = envelope_with_data(&b64(b"not json"), "1");
    assert!(err(&not_json).starts_with("message.data: the decoded data is not JSON"));
    let array = envelope_with_data(&b64(b"[1]"), "1");
    assert!(err(&array).starts_with("message.data: must be a JSON object"));
    // `{}` decoded: no incident.
    assert_eq!(err(&envelope_with_data("e30=", "1")), "incident: missing");
    assert_eq!(
        err(&envelope_with_data(&b64(br#"{"incident": 3}"#), "1")),
        "incident: must be an object, not a number"
    );
    assert_eq!(
        err_inc(|i| i["state"] = json!("x")),
        "incident.state: must be open or closed, not \"x\""
    );
    assert_eq!(
        err_inc(|i| i["state"] = json!("acknowledged")),
        "incident.state: must be open or closed, not \"acknowledged\""
    );
    assert_eq!(
        err_inc(|i| {
            i.as_object_mut().unwrap().remove("state");
        }),
        "incident.state: missing"
    );
    assert_eq!(
        err_inc(|i| {
            i.as_object_mut().unwrap().remove("policy_name");
        }),
        "incident.policy_name: missing"
    );
    assert_eq!(
        err_inc(|i| i["policy_name"] = json!("")),
        "incident.policy_name: must not be empty"
    );
    assert_eq!(
        err_inc(|i| {
            i.as_object_mut().unwrap().remove("incident_id");
        }),
        "incident.incident_id: missing"
    );
    assert_eq!(
        err_inc(|i| i["incident_id"] = json!(7)),
        "incident.incident_id: must be a string, not a number"
    );
    assert_eq!(
        err_inc(|i| i["started_at"] = json!("yesterday")),
        "incident.started_at: must be unix seconds (an integer), not \"yesterday\""
    );
    assert_eq!(
        err_inc(|i| i["started_at"] = json!(-5)),
        "incident.started_at: -5 is out of range (0 to 253402300799)"
    );
    assert_eq!(
        err_inc(|i| i["started_at"] = json!(1e300)),
        "incident.started_at: 1e+300 is out of range (0 to 253402300799)"
    );
    assert_eq!(
        err_inc(|i| {
            i["state"] = json!("closed");
            i["ended_at"] = json!(1_767_224_000_i64);
        }),
        "incident.ended_at: before started_at"
    );
    assert_eq!(
        err_inc(|i| i["resource"]["labels"] = json!(["a"])),
        "incident.resource.labels: must be an object, not an array"
    );
    assert_eq!(
        err_inc(|i| i["metric"]["labels"]["x"] = json!({"y": 1})),
        "incident.metric.labels.x: must be a string, not an object"
    );
    assert_eq!(
        err_inc(|i| i["metadata"] = json!("m")),
        "incident.metadata: must be an object, not a string"
    );
    assert_eq!(
        err_inc(|i| i["documentation"]["content"] = json!(1)),
        "incident.documentation.content: must be a string, not a number"
    );
    assert_eq!(
        err_inc(|i| i["policy_user_labels"] = json!(1)),
        "incident.policy_user_labels: must be an object, not a number"
    );
}

/// Tocsin → Pub/Sub → Tocsin: an alert sent by the Pub/Sub receiver and pushed back keeps its
/// labels (plus the few the incident adds) and its start.
#[test]
fn round_trip_through_the_outbound_mapping_keeps_labels() {
    use tocsin_alerts::notify::pubsub::{incident as outbound, IncidentShape};
    use tocsin_alerts::notify::NotifyCx;
    let original = tocsin_model::Alert {
        labels: labels(&[
            ("alertname", "VmStuck"),
            ("instance_id", "123"),
            ("zone", "us-east1-b"),
            ("project_id", "p"),
            ("resource_type", "gce_instance"),
            ("severity", "page"),
            ("action", "delete_vm"),
        ]),
        annotations: [("summary".to_string(), "stuck".to_string())].into(),
        starts_at: 1_767_225_000_000,
        ends_at: 0,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    };
    let cx = NotifyCx {
        receiver: "r".into(),
        group_key: "{}:{}".into(),
        group_labels: Labels::default(),
        now_ms: NOW,
        external_url: "http://tocsin:9090".into(),
        group_interval_ms: 0,
        notification_id: String::new(),
    };
    let inc = outbound(&original, &cx, &IncidentShape::default());
    let data = serde_json::to_vec(&json!({"version": "1.2", "incident": inc})).unwrap();
    let m = decode_push(&envelope_with_data(&b64(&data), "1"), NOW).unwrap();
    for l in original.labels.iter() {
        assert_eq!(
            m.alert.labels.get(&l.name),
            Some(l.value.as_str()),
            "{}",
            l.name
        );
    }
    assert_eq!(m.alert.labels.get("condition"), Some("VmStuck"));
    assert_eq!(m.alert.starts_at, original.starts_at);
    assert_eq!(m.alert.annotations["summary"], "stuck");
    assert_eq!(m.state, IncidentState::Open);
}
