//! Acknowledge, shelve and annotate one alert of the built-in alert manager, and read it back
//! with its timeline: `POST /api/v1/alerts/{fingerprint}/ack|unack|shelve|unshelve|note`,
//! `GET /api/v1/alerts/{fingerprint}`, `GET /api/v1/alerts/{fingerprint}/timeline` and
//! `GET /api/v1/alerts/marks` (every acknowledgement and shelf in force, for a console's list).
//! Answers use the Prometheus API envelope; a request on an alert in the wrong state (acking a
//! resolved alert) is 409. Who did it is the auth layer's [`Principal`]; a body's `by` is read
//! only when authentication is off. Handlers translate; the manager answers through
//! [`AlertmanagerApi`](crate::am::AlertmanagerApi).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tocsin_alerts::{parse_fingerprint, Ack, AlertDetail, Shelve, TimelineEvent};
use tocsin_model::time::{format_rfc3339_millis, parse_rfc3339_ms};

use crate::class::Principal;
use crate::prom::encode::{success, PromError};
use crate::prom::params::Params;
use crate::ApiState;

/// Largest body one of these requests may have.
const MAX_BODY: usize = 64 * 1024;

fn error(e: tocsin_alerts::Error) -> Response {
    if let tocsin_alerts::Error::Conflict(m) = &e {
        let body = json!({"status": "error", "errorType": "conflict", "error": m});
        return (
            StatusCode::CONFLICT,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    PromError::new(e.kind(), e.to_string()).into_response()
}

fn ms(t: i64) -> String {
    format_rfc3339_millis(t)
}

pub fn ack_json(a: &Ack) -> Value {
    json!({
        "by": a.by,
        "at": ms(a.at_ms),
        "comment": a.comment,
        "expires": a.expires_ms.map(ms),
    })
}

pub fn shelve_json(s: &Shelve) -> Value {
    json!({
        "by": s.by,
        "at": ms(s.at_ms),
        "comment": s.comment,
        "until": ms(s.until_ms),
    })
}

/// The JSON shape of `GET /api/v1/alerts/{fingerprint}` (documented in the README).
pub fn detail_json(d: &AlertDetail) -> Value {
    let a = &d.alert;
    let labels: Map<String, Value> = a
        .labels
        .iter()
        .map(|l| (l.name.clone(), Value::from(l.value.as_str())))
        .collect();
    json!({
        "fingerprint": a.fingerprint_hex(),
        "labels": labels,
        "annotations": a.annotations,
        "startsAt": ms(a.starts_at),
        "endsAt": (!d.firing).then(|| ms(a.ends_at)),
        "generatorURL": a.generator_url,
        "state": if d.firing { "firing" } else { "resolved" },
        "status": d.status.state.as_str(),
        "silencedBy": d.status.silenced_by,
        "inhibitedBy": d.status.inhibited_by,
        "receivers": d.receivers,
        "ack": d.ack.as_ref().map(ack_json),
        "shelved_until": d.shelve.as_ref().map(|s| ms(s.until_ms)),
        "shelve": d.shelve.as_ref().map(shelve_json),
        "notes": d.notes,
    })
}

/// One timeline entry; fields that do not apply to its `type` are left out.
pub fn event_json(e: &TimelineEvent) -> Value {
    let mut m = Map::new();
    m.insert("at".into(), ms(e.at_ms).into());
    m.insert("type".into(), e.kind.clone().into());
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            m.insert(k.into(), v.into());
        }
    };
    put("by", &e.by);
    let text_key = match e.kind.as_str() {
        "note" => "text",
        "notification" => "error",
        "ack_ended" | "shelve_ended" => "reason",
        "action" => "event",
        _ => "comment",
    };
    put(text_key, &e.text);
    put("receiver", &e.receiver);
    put("integration", &e.integration);
    put("status", &e.status);
    put("outcome", &e.outcome);
    put("policy", &e.policy);
    if let Some(u) = e.until_ms {
        let k = if e.kind == "ack" { "expires" } else { "until" };
        m.insert(k.into(), ms(u).into());
    }
    if let Some(id) = e.action {
        m.insert("action".into(), id.into());
    }
    Value::Object(m)
}

/// The request body as a JSON object; an empty body is an empty object.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.len() > MAX_BODY {
        return Err(format!(
            "body: {} bytes, more than the {MAX_BODY} allowed",
            body.len()
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("body: must be a JSON object".into()),
        Err(e) => Err(format!("body: invalid JSON: {e}")),
    }
}

/// The fields of one request's body, each checked once it is read.
struct Fields {
    m: Map<String, Value>,
}

impl Fields {
    fn parse(body: &[u8], allowed: &[&str]) -> Result<Fields, String> {
        let m = body_object(body)?;
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "{k}: unknown field (allowed: {})",
                allowed.join(", ")
            ));
        }
        Ok(Fields { m })
    }

    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.m.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key}: must be a string")),
        }
    }
}

/// A point in time given as RFC 3339 or as a duration from `now` (`2h`, `30m`).
fn parse_when(key: &str, s: &str, now: i64) -> Result<i64, String> {
    if let Some(t) = parse_rfc3339_ms(s) {
        return Ok(t);
    }
    match tocsin_model::duration::parse_duration_ms(s) {
        Ok(d) if d > 0 => Ok(now.saturating_add(d)),
        Ok(_) => Err(format!("{key}: {s:?} must be a positive duration")),
        Err(_) => Err(format!(
            "{key}: {s:?} is neither an RFC 3339 time nor a duration such as 2h"
        )),
    }
}

/// Who did it: the authenticated principal; the body's `by` only when authentication is off.
fn who(p: Option<Extension<Principal>>, f: &Fields) -> Result<String, String> {
    let principal = p.map_or_else(|| Principal::ANONYMOUS.to_string(), |Extension(p)| p.0);
    if principal != Principal::ANONYMOUS {
        return Ok(principal);
    }
    match f.string("by")? {
        Some(b) if !b.trim().is_empty() => Ok(b),
        _ => Ok(principal),
    }
}

fn fingerprint(s: &str) -> Result<u64, Box<Response>> {
    parse_fingerprint(s).map_err(|e| Box::new(error(e)))
}

/// Answers with the alert's detail after a change.
fn detail_answer(st: &ApiState, fp: u64, changed: bool) -> Response {
    match st.alertmanager.alert_detail(fp) {
        Ok(d) => {
            let mut v = detail_json(&d);
            if let Value::Object(m) = &mut v {
                m.insert("changed".into(), changed.into());
            }
            success(&v, &[])
        }
        Err(e) => error(e),
    }
}

macro_rules! try_bad {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(m) => return PromError::bad_data(m).into_response(),
        }
    };
}

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

/// `POST /api/v1/alerts/{fingerprint}/ack` with `{"comment": "...", "expires": "2h"}`.
pub async fn ack(
    State(st): State<ApiState>,
    Path(fp): Path<String>,
    p: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    let fp = try_resp!(fingerprint(&fp));
    let f = try_bad!(Fields::parse(&body, &["comment", "expires", "by"]));
    let by = try_bad!(who(p, &f));
    let comment = try_bad!(f.string("comment")).unwrap_or_default();
    let now = st.alertmanager.now_ms();
    let expires = match try_bad!(f.string("expires")) {
        None => None,
        Some(s) if s.is_empty() => None,
        Some(s) => Some(try_bad!(parse_when("expires", &s, now))),
    };
    match st.alertmanager.ack(fp, &by, &comment, expires) {
        Ok(changed) => detail_answer(&st, fp, changed),
        Err(e) => error(e),
    }
}

/// `POST /api/v1/alerts/{fingerprint}/unack` with an optional `{"comment": "..."}`.
pub async fn unack(
    State(st): State<ApiState>,
    Path(fp): Path<String>,
    p: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    let fp = try_resp!(fingerprint(&fp));
    let f = try_bad!(Fields::parse(&body, &["comment", "by"]));
    let by = try_bad!(who(p, &f));
    let comment = try_bad!(f.string("comment")).unwrap_or_default();
    match st.alertmanager.unack(fp, &by, &comment) {
        Ok(changed) => detail_answer(&st, fp, changed),
        Err(e) => error(e),
    }
}

/// `POST /api/v1/alerts/{fingerprint}/shelve` with `{"duration": "2h", "comment": "..."}`.
pub async fn shelve(
    State(st): State<ApiState>,
    Path(fp): Path<String>,
    p: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    let fp = try_resp!(fingerprint(&fp));
    let f = try_bad!(Fields::parse(&body, &["duration", "comment", "by"]));
    let by = try_bad!(who(p, &f));
    let comment = try_bad!(f.string("comment")).unwrap_or_default();
    let d = match try_bad!(f.string("duration")) {
        Some(d) if !d.is_empty() => d,
        _ => {
            return PromError::bad_data("duration: required (a duration such as 2h)")
                .into_response()
        }
    };
    let dur = match tocsin_model::duration::parse_duration_ms(&d) {
        Ok(ms) if ms > 0 => ms,
        _ => {
            return PromError::bad_data(format!(
                "duration: {d:?} is not a positive duration such as 2h"
            ))
            .into_response()
        }
    };
    let until = st.alertmanager.now_ms().saturating_add(dur);
    match st.alertmanager.shelve(fp, &by, &comment, until) {
        Ok(()) => detail_answer(&st, fp, true),
        Err(e) => error(e),
    }
}

/// `POST /api/v1/alerts/{fingerprint}/unshelve`.
pub async fn unshelve(
    State(st): State<ApiState>,
    Path(fp): Path<String>,
    p: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    let fp = try_resp!(fingerprint(&fp));
    let f = try_bad!(Fields::parse(&body, &["by"]));
    let by = try_bad!(who(p, &f));
    match st.alertmanager.unshelve(fp, &by) {
        Ok(changed) => detail_answer(&st, fp, changed),
        Err(e) => error(e),
    }
}

/// `POST /api/v1/alerts/{fingerprint}/note` with `{"text": "..."}`.
pub async fn note(
    State(st): State<ApiState>,
    Path(fp): Path<String>,
    p: Option<Extension<Principal>>,
    body: Bytes,
) -> Response {
    let fp = try_resp!(fingerprint(&fp));
    let f = try_bad!(Fields::parse(&body, &["text", "by"]));
    let by = try_bad!(who(p, &f));
    let text = match try_bad!(f.string("text")) {
        Some(t) if !t.trim().is_empty() => t,
        _ => return PromError::bad_data("text: required and not empty").into_response(),
    };
    match st.alertmanager.note(fp, &by, &text) {
        Ok(id) => success(&json!({"id": id, "fingerprint": format!("{fp:016x}")}), &[]),
        Err(e) => error(e),
    }
}

/// `GET /api/v1/alerts/{fingerprint}`.
pub async fn get(State(st): State<ApiState>, Path(fp): Path<String>) -> Response {
    let fp = try_resp!(fingerprint(&fp));
    match st.alertmanager.alert_detail(fp) {
        Ok(d) => success(&detail_json(&d), &[]),
        Err(e) => error(e),
    }
}

/// `GET /api/v1/alerts/{fingerprint}/timeline?limit=<n>` (default 100, at most 10,000).
pub async fn timeline(
    State(st): State<ApiState>,
    Path(fp): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    use tocsin_alerts::timeline::{DEFAULT_LIMIT, MAX_LIMIT};
    let fp = try_resp!(fingerprint(&fp));
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let limit = match p.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return PromError::bad_data(format!(
                    "limit: {v:?} is not a number from 1 to {MAX_LIMIT}"
                ))
                .into_response()
            }
        },
    };
    match st.alertmanager.timeline(fp, limit) {
        Ok(evs) => success(&evs.iter().map(event_json).collect::<Vec<_>>(), &[]),
        Err(e) => error(e),
    }
}

/// `GET /api/v1/alerts/marks`: `{"acks": {fingerprint: ack}, "shelves": {fingerprint: shelf}}`.
pub async fn marks(State(st): State<ApiState>) -> Response {
    let (acks, shelves) = st.alertmanager.marks();
    let acks: Map<String, Value> = acks
        .iter()
        .map(|(fp, a)| (format!("{fp:016x}"), ack_json(a)))
        .collect();
    let shelves: Map<String, Value> = shelves
        .iter()
        .map(|(fp, s)| (format!("{fp:016x}"), shelve_json(s)))
        .collect();
    success(&json!({"acks": acks, "shelves": shelves}), &[])
}

#[cfg(test)]
#[path = "alert_marks_tests.rs"]
mod tests;
