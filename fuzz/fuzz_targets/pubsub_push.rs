//! `POST /api/v1/pubsub/push` bodies: a Pub/Sub push envelope carrying a base64 Cloud
//! Monitoring incident. First byte even: the rest is the body as sent; odd: the rest is the
//! decoded notification (`{"version", "incident"}`), which the target wraps into an envelope
//! itself so the fuzzer mutates the incident rather than its base64. Then what the server does
//! with the alert: its fingerprint, the alert store taking it, and the outbound mapping (the
//! Pub/Sub receiver) turning it back into an incident.
//!
//! Invariants checked: every decoded alert has valid label names, `alertname` and
//! `incident_id` labels, a start no later than its end, and the store accepts it (the decoder
//! never hands the alert manager something it refuses as bad data).
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tocsin_alerts::notify::pubsub::{incident, IncidentShape};
use tocsin_alerts::notify::NotifyCx;
use tocsin_alerts::store::AlertStore;
use tocsin_fuzz::NOW_MS;

fn store() -> &'static AlertStore {
    static S: OnceLock<AlertStore> = OnceLock::new();
    S.get_or_init(|| AlertStore::new(None, 300_000).expect("in-memory store"))
}

fn wrap(notification: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(notification);
    format!(
        r#"{{"message":{{"data":"{data}","messageId":"1","publishTime":"2026-01-01T00:00:00Z"}},"subscription":"projects/p/subscriptions/s"}}"#
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode % 2 == 0 { rest.to_vec() } else { wrap(rest) };
    let Ok(m) = tocsin_api::pubsub::decode_push(&body, NOW_MS) else {
        return;
    };
    let a = &m.alert;
    assert!(a.labels.validate().is_ok(), "invalid label name: {:?}", a.labels);
    assert!(a.labels.get("alertname").is_some() && a.labels.get("incident_id").is_some());
    assert!(a.starts_at <= a.ends_at, "start after end: {a:?}");
    let _ = a.fingerprint_hex();
    let (_, invalid) = store().put_partial(vec![a.clone()], NOW_MS);
    assert!(invalid.is_none(), "store refused a decoded alert: {invalid:?}");
    let cx = NotifyCx {
        receiver: "r".into(),
        group_key: "{}:{}".into(),
        group_labels: Default::default(),
        now_ms: NOW_MS,
        external_url: "http://tocsin".into(),
        group_interval_ms: 0,
        notification_id: String::new(),
    };
    let _ = incident(a, &cx, &IncidentShape::default());
    // Keep the store small: every alert of a run lands in the one store.
    if store().len() > 1000 {
        let _ = store().gc(i64::MAX);
    }
});
