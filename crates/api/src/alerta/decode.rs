//! Decoding Alerta's alert and heartbeat JSON into what the alert manager takes: a pure function
//! of the body and the time, so the handler, the tests and the fuzz target run the same code.
//!
//! The mapping (also the README's table): labels carry what identifies and routes an alert and
//! does not change between sends of it: `alertname` (event), `resource`, `environment`,
//! `customer`, `severity`, `service` (comma-joined), `group`; the handler adds `alerta_id`.
//! Everything else is an annotation: `summary` (text), `value`, `origin`, `type`, `tags` and
//! `correlate` (comma-joined), `timeout` (seconds), `create_time`, `raw_data`, and each attribute
//! `K` as `attribute_K`. Empty strings are left out. Lists are comma-joined, so an element
//! containing a comma is refused rather than split later.
//!
//! Fields the server adds (`id` aside: a sender may choose its alert's id) such as
//! `duplicateCount` or `history` are ignored, as Alerta ignores them on input.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tocsin_model::{Alert, Labels};

/// Alerta's default alert timeout, in seconds.
pub const DEFAULT_TIMEOUT_S: i64 = 86_400;
/// Alerta's default heartbeat timeout, in seconds.
pub const DEFAULT_HEARTBEAT_TIMEOUT_S: i64 = 86_400;
/// Longest timeout taken (ten years): beyond it the millisecond end times overflow nothing yet,
/// but such a value is a mistake.
pub const MAX_TIMEOUT_S: i64 = 10 * 366 * 86_400;
/// The end given to an alert whose `timeout` is 0, which Alerta reads as "never expires":
/// 9999-12-31T23:59:59Z.
pub const NEVER_MS: i64 = 253_402_300_799_000;

/// Severities of Alerta's default alarm model, most severe first (the order `sort-by=severity`
/// and `trendIndication` use).
pub const SEVERITIES: [&str; 13] = [
    "security",
    "critical",
    "major",
    "minor",
    "warning",
    "indeterminate",
    "informational",
    "normal",
    "ok",
    "cleared",
    "debug",
    "trace",
    "unknown",
];

/// Severities that clear (resolve) an alert.
pub const CLEARING: [&str; 3] = ["normal", "ok", "cleared"];

/// Statuses an incoming alert may carry. Others (`ack`, `shelved`, `assign`, `blackout`) are
/// states Tocsin keeps itself and are refused on input.
const INPUT_STATUSES: [&str; 4] = ["open", "unknown", "closed", "expired"];

/// Alerta's dedup key: alerts with the same one are one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupKey {
    pub environment: String,
    pub resource: String,
    pub event: String,
    pub customer: String,
}

/// One decoded alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertaAlert {
    pub key: DedupKey,
    /// An `id` the sender chose, if any.
    pub id: Option<String>,
    pub severity: String,
    /// A clearing severity or a `closed`/`expired` status: the alert is to be resolved.
    pub clears: bool,
    /// Related events (`correlate`): a firing alert of the same environment, resource and
    /// customer with one of these events is this alert.
    pub correlate: Vec<String>,
    /// In seconds; 0 = never expires.
    pub timeout_s: i64,
    /// Labels (without `alerta_id`), annotations, start (the sender's `createTime`, not later
    /// than now) and end (now + timeout; now when it clears).
    pub alert: Alert,
}

type Obj = Map<String, Value>;

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `obj[key]` as a string; absent or null = `None`.
fn opt_string<'a>(obj: &'a Obj, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("{key}: must be a string, not {}", type_name(v))),
    }
}

fn required_string<'a>(obj: &'a Obj, key: &str) -> Result<&'a str, String> {
    match opt_string(obj, key)? {
        None => Err(format!("{key}: missing")),
        Some(s) if s.trim().is_empty() => Err(format!("{key}: must not be empty")),
        Some(s) => Ok(s),
    }
}

/// A scalar as text: strings as they are, numbers and booleans as their JSON text (senders
/// type `value` as a number now and then).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn opt_scalar(obj: &Obj, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => scalar_text(v)
            .map(Some)
            .ok_or_else(|| format!("{key}: must be a string, not {}", type_name(v))),
    }
}

/// A list of strings without commas (they are comma-joined into one label or annotation).
pub(crate) fn string_list(obj: &Obj, key: &str) -> Result<Vec<String>, String> {
    let items = match obj.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        // One string where a list is expected: taken as a list of one, as Alerta's own
        // integrations sometimes send `"service": "web"`.
        Some(Value::String(s)) => return check_items(key, vec![s.clone()]),
        Some(v) => return Err(format!("{key}: must be a list, not {}", type_name(v))),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::String(s) => out.push(s.clone()),
            other => {
                return Err(format!(
                    "{key}[{i}]: must be a string, not {}",
                    type_name(other)
                ))
            }
        }
    }
    check_items(key, out)
}

fn check_items(key: &str, items: Vec<String>) -> Result<Vec<String>, String> {
    for (i, s) in items.iter().enumerate() {
        if s.contains(',') {
            return Err(format!(
                "{key}[{i}]: {s:?} contains a comma, which Tocsin uses to join the list"
            ));
        }
    }
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

/// `attributes`: values that are not strings are kept as their JSON text; nulls are dropped.
pub(crate) fn attributes(obj: &Obj) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let m = match obj.get("attributes") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(m)) => m,
        Some(v) => {
            return Err(format!(
                "attributes: must be an object, not {}",
                type_name(v)
            ))
        }
    };
    for (k, v) in m {
        if k.is_empty() {
            return Err("attributes: empty attribute name".into());
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}

/// `timeout` in seconds: an integer (or a float with no fraction, or a decimal string) from 0
/// to `MAX_TIMEOUT_S`; absent or null = `default`.
pub(crate) fn timeout(obj: &Obj, default: i64) -> Result<i64, String> {
    let t = match obj.get("timeout") {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(v) => {
            return Err(format!(
                "timeout: must be a number of seconds, not {}",
                type_name(v)
            ))
        }
    };
    match t {
        Some(t) if (0..=MAX_TIMEOUT_S).contains(&t) => Ok(t),
        _ => Err(format!(
            "timeout: must be whole seconds from 0 (never expires) to {MAX_TIMEOUT_S}"
        )),
    }
}

/// `createTime` in ms, not later than `now`; `None` when absent.
pub(crate) fn create_time(obj: &Obj, now_ms: i64) -> Result<Option<i64>, String> {
    match opt_string(obj, "createTime")? {
        None | Some("") => Ok(None),
        Some(s) => tocsin_model::time::parse_rfc3339_ms(s)
            .map(|t| Some(t.min(now_ms)))
            .ok_or_else(|| {
                format!("createTime: {s:?} is not an ISO 8601 time like 2024-01-01T00:00:00.000Z")
            }),
    }
}

fn body_object(body: &[u8]) -> Result<Obj, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(v) => Err(format!(
            "body: must be a JSON object, not {}",
            type_name(&v)
        )),
        Err(e) => Err(format!("body: {e}")),
    }
}

/// An alert id a sender chose: what fits in a URL path segment and a label value.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "id: {id:?} must be 1 to 128 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// Decodes `POST /api/alert`'s body received at `now_ms`. Errors name the field.
pub fn decode_alert(body: &[u8], now_ms: i64) -> Result<AlertaAlert, String> {
    let o = body_object(body)?;
    let resource = required_string(&o, "resource")?.to_string();
    let event = required_string(&o, "event")?.to_string();
    let environment = opt_string(&o, "environment")?.unwrap_or("").to_string();
    let customer = opt_string(&o, "customer")?.unwrap_or("").to_string();
    let severity = match opt_string(&o, "severity")? {
        None | Some("") => "normal".to_string(),
        Some(s) => {
            let l = s.to_ascii_lowercase();
            if !SEVERITIES.contains(&l.as_str()) {
                return Err(format!(
                    "severity: {s:?} is not one of {}",
                    SEVERITIES.join(", ")
                ));
            }
            l
        }
    };
    let status = match opt_string(&o, "status")? {
        None | Some("") => "open".to_string(),
        Some(s) => {
            let l = s.to_ascii_lowercase();
            if !INPUT_STATUSES.contains(&l.as_str()) {
                return Err(format!(
                    "status: {s:?} cannot be sent with an alert (one of {} can); \
                     acknowledge or shelve with PUT /api/alert/{{id}}/action",
                    INPUT_STATUSES.join(", ")
                ));
            }
            l
        }
    };
    let id = match opt_string(&o, "id")? {
        None | Some("") => None,
        Some(s) => {
            validate_id(s)?;
            Some(s.to_string())
        }
    };
    let correlate = string_list(&o, "correlate")?;
    let service = string_list(&o, "service")?;
    let tags = string_list(&o, "tags")?;
    let group = opt_string(&o, "group")?.unwrap_or("").to_string();
    let value = opt_scalar(&o, "value")?.unwrap_or_default();
    let text = opt_scalar(&o, "text")?.unwrap_or_default();
    let origin = opt_string(&o, "origin")?.unwrap_or("").to_string();
    let typ = opt_string(&o, "type")?.unwrap_or("").to_string();
    let raw_data = opt_scalar(&o, "rawData")?.unwrap_or_default();
    let attrs = attributes(&o)?;
    let timeout_s = timeout(&o, DEFAULT_TIMEOUT_S)?;
    let created = create_time(&o, now_ms)?;
    let clears =
        CLEARING.contains(&severity.as_str()) || matches!(status.as_str(), "closed" | "expired");

    let mut b = Labels::empty().builder();
    b.set("alertname", &event);
    b.set("resource", &resource);
    for (name, v) in [
        ("environment", environment.as_str()),
        ("customer", customer.as_str()),
        ("severity", severity.as_str()),
        ("group", group.as_str()),
    ] {
        if !v.is_empty() {
            b.set(name, v);
        }
    }
    if !service.is_empty() {
        b.set("service", &service.join(","));
    }
    let mut ann = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() {
            ann.insert(k.to_string(), v);
        }
    };
    put("summary", text);
    put("value", value);
    put("origin", origin);
    put("type", typ);
    put("tags", tags.join(","));
    put("correlate", correlate.join(","));
    put("timeout", timeout_s.to_string());
    put(
        "create_time",
        tocsin_model::time::format_rfc3339_millis(created.unwrap_or(now_ms)),
    );
    put("raw_data", raw_data);
    for (k, v) in attrs {
        put(&format!("attribute_{k}"), v);
    }
    let ends_at = if clears {
        now_ms
    } else if timeout_s == 0 {
        NEVER_MS
    } else {
        now_ms.saturating_add(timeout_s.saturating_mul(1000))
    };
    Ok(AlertaAlert {
        key: DedupKey {
            environment,
            resource,
            event,
            customer,
        },
        id,
        severity,
        clears,
        correlate,
        timeout_s,
        alert: Alert {
            labels: b.build(),
            annotations: ann,
            starts_at: created.unwrap_or(now_ms).min(now_ms),
            ends_at,
            generator_url: String::new(),
            updated_at: 0,
            timeout: false,
        },
    })
}

/// One decoded heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertaHeartbeat {
    pub origin: String,
    /// The Tocsin heartbeat name `origin` maps to (see `heartbeat_name`).
    pub name: String,
    pub customer: String,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub timeout_s: i64,
    pub create_ms: Option<i64>,
    /// Labels of the `HeartbeatMissing` alert: `severity` (attribute `severity`, default
    /// `major` as the `alerta heartbeats --alert` default), `environment`, `service`, `group`
    /// from the attributes of those names, `customer`.
    pub labels: BTreeMap<String, String>,
    /// `origin`, `tags`, and the other attributes as `attribute_K`.
    pub annotations: BTreeMap<String, String>,
}

/// Tocsin heartbeat names allow letters, digits, `_`, `-` and `.`: every other character of
/// the origin (Alerta's are like `cron/host1`) becomes `_`, and it is cut to 200 bytes.
pub fn heartbeat_name(origin: &str) -> String {
    let mut s: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(200);
    s
}

/// Decodes `POST /api/heartbeat`'s body. Errors name the field.
pub fn decode_heartbeat(body: &[u8], now_ms: i64) -> Result<AlertaHeartbeat, String> {
    let o = body_object(body)?;
    let origin = required_string(&o, "origin")?.to_string();
    let customer = opt_string(&o, "customer")?.unwrap_or("").to_string();
    let tags = string_list(&o, "tags")?;
    let mut attrs = attributes(&o)?;
    let timeout_s = match timeout(&o, DEFAULT_HEARTBEAT_TIMEOUT_S)? {
        0 => return Err("timeout: a heartbeat needs a timeout of at least 1 second".into()),
        t => t,
    };
    let create_ms = create_time(&o, now_ms)?;
    let mut labels = BTreeMap::new();
    let severity = attrs
        .remove("severity")
        .unwrap_or_else(|| "major".to_string())
        .to_ascii_lowercase();
    if !SEVERITIES.contains(&severity.as_str()) || CLEARING.contains(&severity.as_str()) {
        return Err(format!(
            "attributes.severity: {severity:?} is not a non-clearing severity of {}",
            SEVERITIES.join(", ")
        ));
    }
    labels.insert("severity".to_string(), severity);
    for k in ["environment", "group"] {
        if let Some(v) = attrs.remove(k).filter(|v| !v.is_empty()) {
            labels.insert(k.to_string(), v);
        }
    }
    // `alerta heartbeat --service` sends a list, which `attributes` kept as JSON text.
    if let Some(v) = attrs.remove("service") {
        let joined = match serde_json::from_str::<Vec<String>>(&v) {
            Ok(list) => check_items("attributes.service", list)?.join(","),
            Err(_) => v,
        };
        if !joined.is_empty() {
            labels.insert("service".to_string(), joined);
        }
    }
    if !customer.is_empty() {
        labels.insert("customer".to_string(), customer.clone());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert("origin".to_string(), origin.clone());
    if !tags.is_empty() {
        annotations.insert("tags".to_string(), tags.join(","));
    }
    for (k, v) in &attrs {
        annotations.insert(format!("attribute_{k}"), v.clone());
    }
    Ok(AlertaHeartbeat {
        name: heartbeat_name(&origin),
        origin,
        customer,
        tags,
        attributes: attrs,
        timeout_s,
        create_ms,
        labels,
        annotations,
    })
}
