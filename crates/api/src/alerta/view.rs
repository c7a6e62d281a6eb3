//! Alerts and heartbeats of the alert manager as Alerta shows them: the alert JSON rebuilt from
//! the labels and annotations `decode` mapped it to, the status Alerta would give it, and the
//! deterministic ids (UUIDs derived from Alerta's dedup key, so an alert keeps its id across
//! sends and restarts without Tocsin storing one).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tocsin_alerts::heartbeat::HeartbeatStatus;
use tocsin_model::time::format_rfc3339_millis;
use tocsin_model::Alert;

use super::decode::{DedupKey, SEVERITIES};

/// The label holding an alert's Alerta id; its presence marks an alert as Alerta's.
pub const ID_LABEL: &str = "alerta_id";

/// A UUID (version 8, "custom", RFC 9562) from a SHA-256 of the parts, each ended by a NUL so
/// that `("ab", "c")` and `("a", "bc")` differ.
pub fn derived_uuid(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The id of the alert with this dedup key.
pub fn alert_id(k: &DedupKey) -> String {
    derived_uuid(
        "alerta-alert",
        &[&k.environment, &k.resource, &k.event, &k.customer],
    )
}

/// The id of the heartbeat of this origin and customer.
pub fn heartbeat_id(origin: &str, customer: &str) -> String {
    derived_uuid("alerta-heartbeat", &[origin, customer])
}

/// An Alerta status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Open,
    Ack,
    Shelved,
    Blackout,
    Closed,
    Expired,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::Ack,
        Status::Shelved,
        Status::Blackout,
        Status::Closed,
        Status::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Ack => "ack",
            Status::Shelved => "shelved",
            Status::Blackout => "blackout",
            Status::Closed => "closed",
            Status::Expired => "expired",
        }
    }
}

/// What Alerta-side state one alert has that its labels and annotations do not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    pub silenced: bool,
    pub acked: bool,
    pub shelved: bool,
    /// Sends of the same alert since its severity last changed (this process's count).
    pub duplicate_count: u64,
    pub previous_severity: Option<String>,
    pub last_receive_id: Option<String>,
}

/// The status at `now`: a resolved alert is `closed` when it was resolved by its last send or
/// an action (its end is not after its last update) and `expired` when its timeout ran out.
pub fn status(a: &Alert, extra: &Extra, now_ms: i64) -> Status {
    if a.resolved_at(now_ms) {
        return if a.ends_at <= a.updated_at {
            Status::Closed
        } else {
            Status::Expired
        };
    }
    if extra.shelved {
        Status::Shelved
    } else if extra.acked {
        Status::Ack
    } else if extra.silenced {
        Status::Blackout
    } else {
        Status::Open
    }
}

/// Rank of a severity, most severe first (unknown names last).
pub fn severity_rank(s: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SEVERITIES.len())
}

fn split_list(s: Option<&String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn label(a: &Alert, name: &str) -> String {
    a.labels.get(name).unwrap_or("").to_string()
}

/// The `attributes` of an alert or heartbeat: its `attribute_K` annotations.
fn attributes(ann: &BTreeMap<String, String>) -> Map<String, Value> {
    ann.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("attribute_")
                .map(|k| (k.to_string(), Value::String(v.clone())))
        })
        .collect()
}

/// The alert's `timeout` in seconds: the annotation `decode` wrote, else what is left of its
/// activity (alerts that came in another way have none).
fn timeout_s(a: &Alert) -> i64 {
    a.annotations
        .get("timeout")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| ((a.ends_at - a.updated_at) / 1000).max(0))
}

/// The alert as Alerta's JSON.
pub fn alert_json(a: &Alert, extra: &Extra, now_ms: i64) -> Value {
    let ann = &a.annotations;
    let text = |k: &str| ann.get(k).cloned().unwrap_or_default();
    let severity = label(a, "severity");
    let id = label(a, ID_LABEL);
    let previous = extra
        .previous_severity
        .clone()
        .unwrap_or_else(|| "indeterminate".to_string());
    let trend = match severity_rank(&severity).cmp(&severity_rank(&previous)) {
        std::cmp::Ordering::Less => "moreSevere",
        std::cmp::Ordering::Greater => "lessSevere",
        std::cmp::Ordering::Equal => "noChange",
    };
    let st = status(a, extra, now_ms);
    let create = ann
        .get("create_time")
        .cloned()
        .unwrap_or_else(|| format_rfc3339_millis(a.starts_at));
    let last = format_rfc3339_millis(if a.updated_at > 0 {
        a.updated_at
    } else {
        a.starts_at
    });
    let opt = |s: String| {
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s)
        }
    };
    json!({
        "id": id,
        "resource": label(a, "resource"),
        "event": label(a, "alertname"),
        "environment": label(a, "environment"),
        "severity": severity,
        "correlate": split_list(ann.get("correlate")),
        "status": st.as_str(),
        "service": split_list(a.labels.get("service").map(str::to_string).as_ref()),
        "group": label(a, "group"),
        "value": opt(text("value")),
        "text": text("summary"),
        "tags": split_list(ann.get("tags")),
        "attributes": attributes(ann),
        "origin": opt(text("origin")),
        "type": text("type"),
        "createTime": create,
        "timeout": timeout_s(a),
        "rawData": opt(text("raw_data")),
        "customer": opt(label(a, "customer")),
        "duplicateCount": extra.duplicate_count,
        "repeat": extra.duplicate_count > 0,
        "previousSeverity": previous,
        "trendIndication": trend,
        "receiveTime": format_rfc3339_millis(a.starts_at),
        "lastReceiveId": extra.last_receive_id.clone().unwrap_or_else(|| id.clone()),
        "lastReceiveTime": last,
        "updateTime": last,
        "fingerprint": a.fingerprint_hex(),
        "startsAt": format_rfc3339_millis(a.starts_at),
        "endsAt": format_rfc3339_millis(a.ends_at),
        "history": [],
    })
}

/// A heartbeat as Alerta's JSON. Heartbeats configured in tocsin.yml or pinged on
/// `/api/v1/heartbeat/{name}` show with their name as the origin.
pub fn heartbeat_json(h: &HeartbeatStatus, now_ms: i64) -> Value {
    let origin = h
        .annotations
        .get("origin")
        .cloned()
        .unwrap_or_else(|| h.name.clone());
    let customer = h.labels.get("customer").cloned().unwrap_or_default();
    let mut attrs = attributes(&h.annotations);
    for k in ["severity", "environment", "group"] {
        if let Some(v) = h.labels.get(k) {
            attrs.insert(k.to_string(), Value::String(v.clone()));
        }
    }
    if let Some(s) = h.labels.get("service") {
        attrs.insert(
            "service".to_string(),
            Value::Array(s.split(',').map(|x| Value::String(x.to_string())).collect()),
        );
    }
    let status = if h.late {
        "expired"
    } else if h.last_ms == 0 {
        "unknown"
    } else {
        "ok"
    };
    // Alerta's client computes latency from both times, so a never-seen heartbeat gets the
    // epoch rather than null.
    let seen = Value::String(format_rfc3339_millis(h.last_ms.max(0)));
    json!({
        "id": heartbeat_id(&origin, &customer),
        "origin": origin,
        "name": h.name,
        "tags": split_list(h.annotations.get("tags")),
        "attributes": attrs,
        "type": "Heartbeat",
        "createTime": seen,
        "receiveTime": seen,
        "timeout": h.timeout_ms.map_or(0, |t| t / 1000),
        "latency": 0,
        "maxLatency": 2000,
        "since": if h.last_ms > 0 { (now_ms - h.last_ms).max(0) / 1000 } else { 0 },
        "status": status,
        "customer": if customer.is_empty() { Value::Null } else { Value::String(customer) },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_uuids_and_stable() {
        let k = DedupKey {
            environment: "Production".into(),
            resource: "web01".into(),
            event: "NodeDown".into(),
            customer: String::new(),
        };
        let a = alert_id(&k);
        assert_eq!(a, alert_id(&k.clone()));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "variant: {a}");
        let other = DedupKey {
            resource: "web0".into(),
            event: "1NodeDown".into(),
            ..k
        };
        assert_ne!(a, alert_id(&other));
    }
}
