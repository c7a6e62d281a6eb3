//! Alerta intake bodies. First byte even: the rest is a `POST /api/alert` body, decoded by
//! `tocsin_api::alerta::decode::decode_alert`; odd: a `POST /api/heartbeat` body, decoded by
//! `decode_heartbeat`. Then what the server does with the result: the alert (with its derived
//! `alerta_id`) into an in-memory alert store and back out as Alerta's JSON; the heartbeat as a
//! detailed ping of an in-memory heartbeat set, checked and listed.
//!
//! Invariants checked: a decoded alert has valid label names, `alertname` and `resource` labels
//! equal to the event and resource, a start no later than its end, the store accepts it (the
//! decoder never hands the alert manager something it refuses as bad data), and its Alerta JSON
//! gives back the resource, event and id; a decoded heartbeat's name is a valid heartbeat name
//! and the heartbeat set takes the ping.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tocsin_alerts::heartbeat::{Heartbeats, PingDetails};
use tocsin_alerts::store::AlertStore;
use tocsin_api::alerta::decode::{decode_alert, decode_heartbeat};
use tocsin_api::alerta::view::{alert_id, alert_json, Extra, ID_LABEL};
use tocsin_fuzz::NOW_MS;

fn store() -> &'static AlertStore {
    static S: OnceLock<AlertStore> = OnceLock::new();
    S.get_or_init(|| AlertStore::new(None, 300_000).expect("in-memory store"))
}

fn heartbeats() -> &'static Heartbeats {
    static H: OnceLock<Heartbeats> = OnceLock::new();
    H.get_or_init(Heartbeats::new)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        let Ok(h) = decode_heartbeat(body, NOW_MS) else {
            return;
        };
        assert!(tocsin_alerts::heartbeat::validate_name(&h.name).is_ok(), "{:?}", h.name);
        let details = PingDetails {
            timeout_ms: Some(h.timeout_s * 1000),
            labels: h.labels.clone(),
            annotations: h.annotations.clone(),
        };
        heartbeats().ping_with(&h.name, NOW_MS, details).expect("ping taken");
        for a in heartbeats().check(NOW_MS + h.timeout_s * 1000 + 1, 60_000) {
            assert!(a.labels.validate().is_ok(), "{:?}", a.labels);
        }
        let _ = heartbeats().status();
        return;
    }
    let Ok(d) = decode_alert(body, NOW_MS) else {
        return;
    };
    let mut a = d.alert.clone();
    assert!(a.labels.validate().is_ok(), "invalid label name: {:?}", a.labels);
    assert_eq!(a.labels.get("alertname"), Some(d.key.event.as_str()));
    assert_eq!(a.labels.get("resource"), Some(d.key.resource.as_str()));
    assert!(a.starts_at <= a.ends_at, "start after end: {a:?}");
    let id = d.id.clone().unwrap_or_else(|| alert_id(&d.key));
    a.labels = a.labels.builder().set(ID_LABEL, &id).build();
    let (stored, invalid) = store().put_partial(vec![a], NOW_MS);
    assert!(invalid.is_none(), "store refused a decoded alert: {invalid:?}");
    for s in &stored {
        let v = alert_json(s, &Extra::default(), NOW_MS);
        assert_eq!(v["resource"], d.key.resource.as_str());
        assert_eq!(v["event"], d.key.event.as_str());
        assert_eq!(v["id"], id.as_str());
    }
    // Keep the store small: every alert of a run lands in the one store.
    if store().len() > 1000 {
        let _ = store().gc(i64::MAX);
    }
});
