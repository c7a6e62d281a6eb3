//! Decoding a Pub/Sub push envelope that carries a Cloud Monitoring incident (schema "1.2") into
//! one alert: a pure function of the body and the time, so the handler, the tests and the fuzz
//! target run the same code. The mapping is the inverse of the outbound one
//! (`tocsin_alerts::notify::pubsub`), so labels survive a Tocsin → Pub/Sub → Tocsin trip.
//!
//! Labels never depend on what changes between an incident's `open` and `closed` messages
//! (state, times, summary, observed value), so both map to one fingerprint and the closed
//! message resolves the alert the open one started. Later sources override earlier ones:
//! `policy_user_labels`, `metadata.user_labels`, `metric.labels`, `resource.labels`, then the
//! fixed ones (`resource_type`, `severity`, `incident_id`, `condition`, `alertname`).
//!
//! Label names that are not valid Prometheus label names are sanitised: every character other
//! than an ASCII letter, digit or `_` becomes `_`, and a name starting with a digit gets a `_`
//! in front (`cloud.region` → `cloud_region`, `1st` → `_1st`). When two names sanitise to the
//! same one, the first in byte order of the original names wins. Empty names are dropped.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};
use tocsin_model::{Alert, Labels};

/// How long an open incident stays firing without its closed message: Cloud Monitoring sends
/// `open` once, not repeatedly, and closes an incident by itself after 7 days by default
/// (`alertStrategy.autoClose`).
pub const OPEN_INCIDENT_LIFETIME_MS: i64 = 7 * 24 * 3_600_000;

/// Latest accepted time, in unix seconds (9999-12-31T23:59:59Z): beyond it the millisecond
/// arithmetic of the alert manager has no use, and a value that large is a mistake.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// An incident's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    Open,
    Closed,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Closed => "closed",
        }
    }
}

/// One decoded push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// `message.messageId` (or `message.message_id`): the redelivery key.
    pub message_id: String,
    /// `subscription`; empty when absent.
    pub subscription: String,
    /// `message.publishTime` (or `publish_time`) as sent; empty when absent.
    pub publish_time: String,
    /// `deliveryAttempt` (set when the subscription has a dead-letter policy).
    pub delivery_attempt: Option<i64>,
    pub attributes: BTreeMap<String, String>,
    pub incident_id: String,
    pub state: IncidentState,
    /// The alert the incident maps to.
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

/// `obj[key]` as an object; absent or null = `None`.
fn opt_object<'a>(obj: &'a Obj, key: &str, path: &str) -> Result<Option<&'a Obj>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(format!(
            "{path}{key}: must be an object, not {}",
            type_name(v)
        )),
    }
}

/// `obj[key]` as a string; absent or null = `None`.
fn opt_string<'a>(obj: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!(
            "{path}{key}: must be a string, not {}",
            type_name(v)
        )),
    }
}

/// `obj[key]` as a non-empty string.
fn required_string<'a>(obj: &'a Obj, key: &str, path: &str) -> Result<&'a str, String> {
    match opt_string(obj, key, path)? {
        None => Err(format!("{path}{key}: missing")),
        Some("") => Err(format!("{path}{key}: must not be empty")),
        Some(s) => Ok(s),
    }
}

/// A string map (`attributes`, label maps). Numbers and booleans are taken as their JSON text,
/// nulls are skipped: label values are strings, and a sender that typed one is not wrong
/// enough to refuse the incident.
fn string_map(obj: &Obj, key: &str, path: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let Some(m) = opt_object(obj, key, path)? else {
        return Ok(out);
    };
    for (k, v) in m {
        let s = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(format!(
                    "{path}{key}.{k}: must be a string, not {}",
                    type_name(other)
                ))
            }
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

/// A unix time in seconds as the incident gives it: an integer (real payloads), a float or a
/// decimal string (seen in hand-written fixtures). `None` for absent, null and 0 (test
/// notifications send 0 for "not set").
fn opt_unix_ms(obj: &Obj, key: &str) -> Result<Option<i64>, String> {
    let bad = |v: &Value| {
        format!(
            "incident.{key}: must be unix seconds (an integer), not {}",
            match v {
                Value::String(s) => format!("{s:?}"),
                Value::Number(n) => n.to_string(),
                other => type_name(other).to_string(),
            }
        )
    };
    let (secs, shown): (f64, String) = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v @ Value::Number(n)) => (n.as_f64().ok_or_else(|| bad(v))?, n.to_string()),
        Some(v @ Value::String(s)) => (
            s.trim().parse::<f64>().map_err(|_| bad(v))?,
            format!("{s:?}"),
        ),
        Some(v) => return Err(bad(v)),
    };
    if !secs.is_finite() || !(0.0..=MAX_UNIX_SECONDS as f64).contains(&secs) {
        return Err(format!(
            "incident.{key}: {shown} is out of range (0 to {MAX_UNIX_SECONDS})"
        ));
    }
    let ms = (secs * 1000.0).round() as i64;
    Ok((ms != 0).then_some(ms))
}

/// A valid Prometheus label name for `name` (see the module doc); `None` for an empty name.
pub fn sanitize_label_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(name.len() + 1);
    if name.as_bytes()[0].is_ascii_digit() {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    Some(out)
}

/// Adds `src` to `labels`, sanitising names; within `src` the first original name (in byte
/// order) of a sanitised name wins, while across calls later sources override earlier ones.
fn merge_labels(labels: &mut BTreeMap<String, String>, src: &BTreeMap<String, String>) {
    let mut this: BTreeMap<String, &String> = BTreeMap::new();
    for (k, v) in src {
        if let Some(name) = sanitize_label_name(k) {
            this.entry(name).or_insert(v);
        }
    }
    for (k, v) in this {
        labels.insert(k, v.clone());
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    // Pub/Sub sends standard base64 with padding; unpadded and URL-safe data (hand-made
    // envelopes) are accepted too, since there is no ambiguity.
    let cfg = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let std = GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
    let url = GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
    let s = s.trim();
    std.decode(s).or_else(|_| url.decode(s)).ok()
}

/// The envelope's `message` fields the decoder needs.
struct Envelope {
    message_id: String,
    subscription: String,
    publish_time: String,
    delivery_attempt: Option<i64>,
    attributes: BTreeMap<String, String>,
    data: Vec<u8>,
}

fn envelope(body: &[u8]) -> Result<Envelope, String> {
    let root: Value = serde_json::from_slice(body).map_err(|e| format!("body: not JSON: {e}"))?;
    let Value::Object(root) = root else {
        return Err(format!(
            "body: must be a JSON object (a Pub/Sub push envelope), not {}",
            type_name(&root)
        ));
    };
    let message = opt_object(&root, "message", "")?.ok_or("message: missing")?;
    let message_id = match opt_string(message, "messageId", "message.")? {
        Some(s) => s,
        None => {
            opt_string(message, "message_id", "message.")?.ok_or("message.messageId: missing")?
        }
    };
    if message_id.is_empty() {
        return Err("message.messageId: must not be empty".into());
    }
    let publish_time = match opt_string(message, "publishTime", "message.")? {
        Some(s) => s,
        None => opt_string(message, "publish_time", "message.")?.unwrap_or(""),
    };
    let subscription = opt_string(&root, "subscription", "")?.unwrap_or("");
    let delivery_attempt = match root.get("deliveryAttempt") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(v) => {
            return Err(format!(
                "deliveryAttempt: must be an integer, not {}",
                type_name(v)
            ))
        }
    };
    let attributes = string_map(message, "attributes", "message.")?;
    let data = required_string(message, "data", "message.")?;
    let data = decode_base64(data).ok_or("message.data: not valid base64")?;
    Ok(Envelope {
        message_id: message_id.to_string(),
        subscription: subscription.to_string(),
        publish_time: publish_time.to_string(),
        delivery_attempt,
        attributes,
        data,
    })
}

/// Decodes a push body at `now_ms` (the end of a closed incident that has no `ended_at`). Every
/// error names the field: `message.data: not valid base64`, `incident.policy_name: missing`...
pub fn decode_push(body: &[u8], now_ms: i64) -> Result<PushMessage, String> {
    let env = envelope(body)?;
    let doc: Value = serde_json::from_slice(&env.data)
        .map_err(|e| format!("message.data: the decoded data is not JSON: {e}"))?;
    let Value::Object(doc) = doc else {
        return Err(format!(
            "message.data: must be a JSON object (a Cloud Monitoring notification), not {}",
            type_name(&doc)
        ));
    };
    // `version` is "1.2" for real incidents and "test" for the console's test notification;
    // the fields read here are the same in both.
    opt_string(&doc, "version", "")?;
    let inc = opt_object(&doc, "incident", "")?.ok_or("incident: missing")?;
    let (incident_id, state, alert) = incident_alert(inc, now_ms)?;
    Ok(PushMessage {
        message_id: env.message_id,
        subscription: env.subscription,
        publish_time: env.publish_time,
        delivery_attempt: env.delivery_attempt,
        attributes: env.attributes,
        incident_id,
        state,
        alert,
    })
}

/// The alert one incident object maps to.
pub fn incident_alert(inc: &Obj, now_ms: i64) -> Result<(String, IncidentState, Alert), String> {
    const P: &str = "incident.";
    let incident_id = required_string(inc, "incident_id", P)?;
    let state = match required_string(inc, "state", P)? {
        s if s.eq_ignore_ascii_case("open") => IncidentState::Open,
        s if s.eq_ignore_ascii_case("closed") => IncidentState::Closed,
        s => return Err(format!("incident.state: must be open or closed, not {s:?}")),
    };
    let policy_name = required_string(inc, "policy_name", P)?;
    let condition_name = opt_string(inc, "condition_name", P)?.unwrap_or("");
    let resource = opt_object(inc, "resource", P)?;
    let metric = opt_object(inc, "metric", P)?;
    let metadata = opt_object(inc, "metadata", P)?;
    let empty = Obj::new();

    let mut labels = BTreeMap::new();
    merge_labels(&mut labels, &string_map(inc, "policy_user_labels", P)?);
    merge_labels(
        &mut labels,
        &string_map(
            metadata.unwrap_or(&empty),
            "user_labels",
            "incident.metadata.",
        )?,
    );
    merge_labels(
        &mut labels,
        &string_map(metric.unwrap_or(&empty), "labels", "incident.metric.")?,
    );
    merge_labels(
        &mut labels,
        &string_map(resource.unwrap_or(&empty), "labels", "incident.resource.")?,
    );
    let resource_type = match resource {
        Some(r) => opt_string(r, "type", "incident.resource.")?,
        None => None,
    };
    if let Some(t) = resource_type.filter(|t| !t.is_empty()) {
        labels.insert("resource_type".into(), t.to_string());
    }
    // Cloud Monitoring writes "No severity" for a policy without one; that is no label.
    if let Some(s) = opt_string(inc, "severity", P)?
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("no severity"))
    {
        labels.insert("severity".into(), s.to_string());
    }
    labels.insert("incident_id".into(), incident_id.to_string());
    if !condition_name.is_empty() {
        labels.insert("condition".into(), condition_name.to_string());
    }
    labels.insert("alertname".into(), policy_name.to_string());

    let started = opt_unix_ms(inc, "started_at")?;
    let ended = opt_unix_ms(inc, "ended_at")?;
    // Without a start (test notifications send 0) the incident starts when it arrives, or,
    // closed, when it ended; redeliveries then differ in start, and the alert manager keeps the
    // earlier one.
    let (starts_at, ends_at) = match state {
        IncidentState::Open => {
            let s = started.unwrap_or(now_ms);
            (s, s.saturating_add(OPEN_INCIDENT_LIFETIME_MS))
        }
        IncidentState::Closed => {
            let e = ended.unwrap_or_else(|| now_ms.max(started.unwrap_or(now_ms)));
            (started.unwrap_or(e), e)
        }
    };
    if ends_at < starts_at {
        return Err("incident.ended_at: before started_at".into());
    }

    let mut ann = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            ann.insert(k.to_string(), v.to_string());
        }
    };
    let url = opt_string(inc, "url", P)?;
    put("summary", opt_string(inc, "summary", P)?);
    put("url", url);
    if let Some(doc) = opt_object(inc, "documentation", P)? {
        put(
            "description",
            opt_string(doc, "content", "incident.documentation.")?,
        );
        put(
            "subject",
            opt_string(doc, "subject", "incident.documentation.")?,
        );
    }
    let observed = opt_string(inc, "observed_value", P)?;
    put("observed_value", observed);
    put("value", observed);
    put("threshold_value", opt_string(inc, "threshold_value", P)?);
    put(
        "resource_display_name",
        opt_string(inc, "resource_display_name", P)?,
    );
    put("incident_id", Some(incident_id));

    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let alert = Alert {
        labels: Labels::from_pairs(&pairs),
        annotations: ann,
        starts_at,
        ends_at,
        generator_url: url.unwrap_or("").to_string(),
        updated_at: 0,
        timeout: false,
    };
    Ok((incident_id.to_string(), state, alert))
}
