//! Alertmanager's API v2 (`/api/v2/alerts`, `/alerts/groups`, `/silences`, `/silence/{id}`,
//! `/status`, `/receivers`) in its JSON shapes, so Prometheus servers, amtool and Grafana talk to
//! the built-in alert manager as to an Alertmanager; plus the inbound heartbeat endpoint
//! (`POST /api/v1/heartbeat/{name}`) and the alert history (`GET /api/v1/alerts/history`).
//! Handlers (these and the Pub/Sub intake's) reach the manager only through `AlertmanagerApi`.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tocsin_alerts::heartbeat::HeartbeatStatus;

use crate::prom::encode::PromError;
use tocsin_alerts::silence::{Silence, SilenceState};
use tocsin_alerts::store::{HistoryEntry, HistoryQuery};
use tocsin_alerts::{AlertFilter, AlertView, GroupView};
use tocsin_model::time::{format_rfc3339_millis, parse_rfc3339_ms};
use tocsin_model::{Alert, Labels, MatchOp, Matcher};

use crate::prom::params::Params;
use crate::ApiState;

/// The alert manager as the API sees it.
pub trait AlertmanagerApi: Send + Sync {
    fn put_alerts(&self, alerts: Vec<Alert>) -> tocsin_alerts::Result<()>;
    fn alerts(&self, f: &AlertFilter) -> Vec<AlertView>;
    fn groups(&self, f: &AlertFilter) -> Vec<GroupView>;
    fn silences(&self) -> Vec<(Silence, SilenceState)>;
    fn silence(&self, id: &str) -> Option<(Silence, SilenceState)>;
    fn upsert_silence(&self, s: Silence) -> tocsin_alerts::Result<String>;
    fn expire_silence(&self, id: &str) -> tocsin_alerts::Result<()>;
    fn receivers(&self) -> Vec<String>;
    fn config_yaml(&self) -> String;
    fn started_at_ms(&self) -> i64;
    fn heartbeat(&self, name: &str) -> tocsin_alerts::Result<()>;
    fn heartbeats(&self) -> Vec<HeartbeatStatus>;
    /// A ping that also sets the heartbeat's timeout, labels and annotations (Alerta's
    /// `POST /api/heartbeat`).
    fn heartbeat_with(
        &self,
        _name: &str,
        _details: tocsin_alerts::heartbeat::PingDetails,
    ) -> tocsin_alerts::Result<()> {
        Err(no_manager())
    }
    /// Every held alert matching `matchers`, resolved ones included until collected.
    fn recent_alerts(&self, _matchers: &[Matcher]) -> Vec<Alert> {
        Vec::new()
    }
    fn history(&self, q: &HistoryQuery) -> tocsin_alerts::Result<Vec<HistoryEntry>>;
    /// Checks the `Authorization` header of a Pub/Sub push (the OIDC token Pub/Sub attaches)
    /// against the configured verification; `Ok` when none is configured.
    fn pubsub_authorize(&self, authorization: Option<&str>)
        -> Result<(), crate::pubsub::AuthError>;
    /// Takes one decoded Pub/Sub push in one go: a known message id does nothing; otherwise the
    /// alert is stored and the id recorded, both before this returns.
    fn pubsub_push(
        &self,
        msg: &crate::pubsub::PushMessage,
    ) -> tocsin_alerts::Result<crate::pubsub::PushOutcome>;
    /// Size limits on one posted silence.
    fn silence_limits(&self) -> SilenceLimits {
        SilenceLimits::default()
    }
    /// The console's alert list (`GET /api/v1/console/alerts`).
    fn console(
        &self,
        _q: &tocsin_alerts::console::ConsoleQuery,
    ) -> tocsin_alerts::Result<tocsin_alerts::console::ConsolePage> {
        Err(tocsin_alerts::Error::Internal("no alert manager".into()))
    }
    /// Alert changes as they happen (`GET /api/v1/events`); `None` without an alert manager.
    fn subscribe(&self) -> Option<tocsin_alerts::events::Subscription> {
        None
    }
    /// The manager's clock (ms), for turning a duration into an expiry.
    fn now_ms(&self) -> i64 {
        0
    }
    /// Acknowledges a firing alert; false when the same acknowledgement was in force already.
    fn ack(
        &self,
        _fp: u64,
        _by: &str,
        _comment: &str,
        _expires_ms: Option<i64>,
    ) -> tocsin_alerts::Result<bool> {
        Err(no_manager())
    }
    fn unack(&self, _fp: u64, _by: &str, _comment: &str) -> tocsin_alerts::Result<bool> {
        Err(no_manager())
    }
    fn shelve(
        &self,
        _fp: u64,
        _by: &str,
        _comment: &str,
        _until_ms: i64,
    ) -> tocsin_alerts::Result<()> {
        Err(no_manager())
    }
    fn unshelve(&self, _fp: u64, _by: &str) -> tocsin_alerts::Result<bool> {
        Err(no_manager())
    }
    /// Adds a note; returns its id.
    fn note(&self, _fp: u64, _by: &str, _text: &str) -> tocsin_alerts::Result<i64> {
        Err(no_manager())
    }
    fn alert_detail(&self, _fp: u64) -> tocsin_alerts::Result<tocsin_alerts::AlertDetail> {
        Err(no_manager())
    }
    fn timeline(
        &self,
        _fp: u64,
        _limit: usize,
    ) -> tocsin_alerts::Result<Vec<tocsin_alerts::TimelineEvent>> {
        Err(no_manager())
    }
    /// Every acknowledgement and shelf in force, by fingerprint.
    fn marks(&self) -> tocsin_alerts::marks::MarkList {
        (Vec::new(), Vec::new())
    }
}

fn no_manager() -> tocsin_alerts::Error {
    tocsin_alerts::Error::Internal("no alert manager".into())
}

/// Size limits on one silence: every alert is checked against every active silence's matchers,
/// and silences live in the state db, so one huge silence costs on every alert and every start.
/// `0` turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceLimits {
    pub max_matchers: usize,
    /// In bytes.
    pub max_comment_length: usize,
    /// The whole JSON body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for SilenceLimits {
    fn default() -> Self {
        Self {
            max_matchers: 64,
            max_comment_length: 16 * 1024,
            max_body_bytes: 256 * 1024,
        }
    }
}

impl SilenceLimits {
    /// The first limit `s` breaks, as the 400 message.
    pub fn check(&self, s: &Silence) -> Result<(), String> {
        if self.max_matchers > 0 && s.matchers.len() > self.max_matchers {
            return Err(format!(
                "matchers: {} matchers, more than limits.max_silence_matchers ({})",
                s.matchers.len(),
                self.max_matchers
            ));
        }
        if self.max_comment_length > 0 && s.comment.len() > self.max_comment_length {
            return Err(format!(
                "comment: {} bytes, more than limits.max_silence_comment_length ({})",
                s.comment.len(),
                self.max_comment_length
            ));
        }
        Ok(())
    }
}

/// No alert manager (tests of other endpoints).
pub struct NoAlertmanager;

impl AlertmanagerApi for NoAlertmanager {
    fn put_alerts(&self, _: Vec<Alert>) -> tocsin_alerts::Result<()> {
        Err(tocsin_alerts::Error::Internal("no alert manager".into()))
    }
    fn alerts(&self, _: &AlertFilter) -> Vec<AlertView> {
        Vec::new()
    }
    fn groups(&self, _: &AlertFilter) -> Vec<GroupView> {
        Vec::new()
    }
    fn silences(&self) -> Vec<(Silence, SilenceState)> {
        Vec::new()
    }
    fn silence(&self, _: &str) -> Option<(Silence, SilenceState)> {
        None
    }
    fn upsert_silence(&self, _: Silence) -> tocsin_alerts::Result<String> {
        Err(tocsin_alerts::Error::Internal("no alert manager".into()))
    }
    fn expire_silence(&self, _: &str) -> tocsin_alerts::Result<()> {
        Err(tocsin_alerts::Error::Internal("no alert manager".into()))
    }
    fn receivers(&self) -> Vec<String> {
        Vec::new()
    }
    fn config_yaml(&self) -> String {
        String::new()
    }
    fn started_at_ms(&self) -> i64 {
        0
    }
    fn heartbeat(&self, _: &str) -> tocsin_alerts::Result<()> {
        Err(tocsin_alerts::Error::Internal("no alert manager".into()))
    }
    fn heartbeats(&self) -> Vec<HeartbeatStatus> {
        Vec::new()
    }
    fn history(&self, _: &HistoryQuery) -> tocsin_alerts::Result<Vec<HistoryEntry>> {
        Ok(Vec::new())
    }
    fn pubsub_authorize(&self, _: Option<&str>) -> Result<(), crate::pubsub::AuthError> {
        Ok(())
    }
    fn pubsub_push(
        &self,
        _: &crate::pubsub::PushMessage,
    ) -> tocsin_alerts::Result<crate::pubsub::PushOutcome> {
        Err(tocsin_alerts::Error::Internal("no alert manager".into()))
    }
}

/// Alertmanager answers API errors as a bare JSON string with the HTTP status.
fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(Value::String(msg.into()))).into_response()
}

fn am_error(e: tocsin_alerts::Error) -> Response {
    use tocsin_model::ErrorKind;
    let status = match e.kind() {
        ErrorKind::BadData => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

pub(crate) fn ok_json(v: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn label_map(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn time_or_zero(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00.000Z".into()
    } else {
        format_rfc3339_millis(ms)
    }
}

fn gettable_alert(v: &AlertView) -> Value {
    let a = &v.alert;
    json!({
        "annotations": a.annotations,
        "endsAt": time_or_zero(a.ends_at),
        "fingerprint": a.fingerprint_hex(),
        "receivers": v.receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "startsAt": time_or_zero(a.starts_at),
        "status": {
            "inhibitedBy": v.status.inhibited_by,
            "silencedBy": v.status.silenced_by,
            "state": v.status.state.as_str(),
        },
        "updatedAt": time_or_zero(a.updated_at),
        "generatorURL": a.generator_url,
        "labels": label_map(&a.labels),
    })
}

// Parameter errors are all "bad request"; the message names the parameter.
fn parse_bool(p: &Params, key: &str) -> Result<bool, String> {
    match p.get(key) {
        None | Some("") => Ok(true),
        Some(s) => s
            .parse::<bool>()
            .map_err(|_| format!("{key}: {s:?} is not a boolean")),
    }
}

fn filter_matchers(p: &Params) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for f in p.all("filter") {
        let ms = tocsin_alerts::matchers::parse_matchers(f).map_err(|e| format!("filter: {e}"))?;
        out.extend(ms);
    }
    Ok(out)
}

fn alert_filter(p: &Params) -> Result<AlertFilter, String> {
    let receiver = match p.get("receiver") {
        None | Some("") => None,
        Some(r) => Some(AlertFilter::receiver_regex(r).map_err(|e| format!("receiver: {e}"))?),
    };
    Ok(AlertFilter {
        matchers: filter_matchers(p)?,
        active: parse_bool(p, "active")?,
        silenced: parse_bool(p, "silenced")?,
        inhibited: parse_bool(p, "inhibited")?,
        unprocessed: parse_bool(p, "unprocessed")?,
        receiver,
    })
}

pub async fn get_alerts(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let f = match alert_filter(&p) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let v: Vec<Value> = st
        .alertmanager
        .alerts(&f)
        .iter()
        .map(gettable_alert)
        .collect();
    ok_json(Value::Array(v))
}

pub async fn get_groups(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let f = match alert_filter(&p) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let v: Vec<Value> = st
        .alertmanager
        .groups(&f)
        .iter()
        .map(|g| {
            json!({
                "labels": label_map(&g.labels),
                "receiver": {"name": g.receiver},
                "alerts": g.alerts.iter().map(gettable_alert).collect::<Vec<_>>(),
            })
        })
        .collect();
    ok_json(Value::Array(v))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

fn parse_time_field(i: usize, field: &str, v: &Option<String>) -> Result<i64, String> {
    match v.as_deref() {
        None | Some("") => Ok(0),
        // Go's zero time means "not set".
        Some(s) if s.starts_with("0001-01-01T00:00:00") => Ok(0),
        Some(s) => parse_rfc3339_ms(s)
            .ok_or_else(|| format!("alerts[{i}].{field}: {s:?} is not an RFC 3339 time")),
    }
}

/// Decodes `postableAlerts`; every message names the offending element and field.
pub fn decode_alerts(body: &[u8]) -> Result<Vec<Alert>, String> {
    let raw: Vec<PostableAlert> = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        let labels = a
            .labels
            .ok_or_else(|| format!("alerts[{i}].labels: required"))?;
        if labels.is_empty() {
            return Err(format!(
                "alerts[{i}].labels: at least one label pair required"
            ));
        }
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (k, _) in &pairs {
            tocsin_model::labels::validate_label_name(k)
                .map_err(|e| format!("alerts[{i}].labels: {e}"))?;
        }
        for k in a.annotations.keys() {
            if k.is_empty() {
                return Err(format!("alerts[{i}].annotations: empty annotation name"));
            }
        }
        let starts_at = parse_time_field(i, "startsAt", &a.starts_at)?;
        let ends_at = parse_time_field(i, "endsAt", &a.ends_at)?;
        if starts_at != 0 && ends_at != 0 && ends_at < starts_at {
            return Err(format!("alerts[{i}]: endsAt is before startsAt"));
        }
        out.push(Alert {
            labels: Labels::from_pairs(&pairs),
            annotations: a.annotations,
            starts_at,
            ends_at,
            generator_url: a.generator_url.unwrap_or_default(),
            updated_at: 0,
            timeout: false,
        });
    }
    Ok(out)
}

pub async fn post_alerts(State(st): State<ApiState>, body: Bytes) -> Response {
    let alerts = match decode_alerts(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match st.alertmanager.put_alerts(alerts) {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => am_error(e),
    }
}

fn silence_json(s: &Silence, state: SilenceState) -> Value {
    json!({
        "id": s.id,
        "status": {"state": state.as_str()},
        "updatedAt": format_rfc3339_millis(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": format_rfc3339_millis(s.ends_at),
        "matchers": s.matchers.iter().map(|m| json!({
            "name": m.name,
            "value": m.value,
            "isRegex": matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            "isEqual": matches!(m.op, MatchOp::Equal | MatchOp::Regex),
        })).collect::<Vec<_>>(),
        "startsAt": format_rfc3339_millis(s.starts_at),
    })
}

pub async fn get_silences(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let filter = match filter_matchers(&p) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let mut list: Vec<(Silence, SilenceState)> = st
        .alertmanager
        .silences()
        .into_iter()
        .filter(|(s, _)| {
            // Alertmanager keeps a silence when each filter matcher finds a matcher of the
            // silence on the same label whose value it matches.
            filter.iter().all(|f| {
                s.matchers
                    .iter()
                    .any(|m| m.name == f.name && f.matches(&m.value))
            })
        })
        .collect();
    // Active first (soonest to end), then pending (soonest to start), then expired (newest).
    let rank = |s: SilenceState| match s {
        SilenceState::Active => 0,
        SilenceState::Pending => 1,
        SilenceState::Expired => 2,
    };
    list.sort_by(|(a, sa), (b, sb)| {
        rank(*sa).cmp(&rank(*sb)).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    ok_json(Value::Array(
        list.iter()
            .map(|(s, state)| silence_json(s, *state))
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableMatcher {
    name: Option<String>,
    value: Option<String>,
    #[serde(default)]
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    matchers: Vec<PostableMatcher>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

/// Decodes a `postableSilence`; every message names the offending field. Public for the fuzz
/// targets, which call what `POST /api/v2/silences` calls.
#[doc(hidden)]
pub fn decode_silence(body: &[u8]) -> Result<Silence, String> {
    let p: PostableSilence = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let mut matchers = Vec::with_capacity(p.matchers.len());
    for (i, m) in p.matchers.into_iter().enumerate() {
        let name = m
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("matchers[{i}].name: required"))?;
        let value = m
            .value
            .ok_or_else(|| format!("matchers[{i}].value: required"))?;
        let op = match (m.is_regex, m.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        matchers.push(Matcher::new(op, name, value).map_err(|e| format!("matchers[{i}]: {e}"))?);
    }
    let time = |field: &str, v: Option<String>| -> Result<i64, String> {
        let s = v.ok_or_else(|| format!("{field}: required"))?;
        parse_rfc3339_ms(&s).ok_or_else(|| format!("{field}: {s:?} is not an RFC 3339 time"))
    };
    Ok(Silence {
        id: p.id.unwrap_or_default(),
        matchers,
        starts_at: time("startsAt", p.starts_at)?,
        ends_at: time("endsAt", p.ends_at)?,
        updated_at: 0,
        created_by: p.created_by,
        comment: p.comment,
    })
}

pub async fn post_silences(State(st): State<ApiState>, body: Bytes) -> Response {
    let limits = st.alertmanager.silence_limits();
    if limits.max_body_bytes > 0 && body.len() > limits.max_body_bytes {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body: {} bytes, more than limits.max_silence_body_size ({} bytes)",
                body.len(),
                limits.max_body_bytes
            ),
        );
    }
    let s = match decode_silence(&body).and_then(|s| limits.check(&s).map(|()| s)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match st.alertmanager.upsert_silence(s) {
        Ok(id) => ok_json(json!({ "silenceID": id })),
        Err(e) => am_error(e),
    }
}

pub async fn get_silence(State(st): State<ApiState>, Path(id): Path<String>) -> Response {
    match st.alertmanager.silence(&id) {
        Some((s, state)) => ok_json(silence_json(&s, state)),
        None => error(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

pub async fn delete_silence(State(st): State<ApiState>, Path(id): Path<String>) -> Response {
    match st.alertmanager.expire_silence(&id) {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => am_error(e),
    }
}

pub async fn get_status(State(st): State<ApiState>) -> Response {
    ok_json(json!({
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": concat!("tocsin-", env!("CARGO_PKG_VERSION")),
        },
        "config": {"original": st.alertmanager.config_yaml()},
        "uptime": format_rfc3339_millis(st.alertmanager.started_at_ms()),
    }))
}

pub async fn get_receivers(State(st): State<ApiState>) -> Response {
    ok_json(Value::Array(
        st.alertmanager
            .receivers()
            .into_iter()
            .map(|r| json!({ "name": r }))
            .collect(),
    ))
}

fn heartbeat_json(h: &HeartbeatStatus) -> Value {
    json!({
        "name": h.name,
        "lastSeen": if h.last_ms > 0 { Value::String(format_rfc3339_millis(h.last_ms)) } else { Value::Null },
        "pings": h.pings,
        "timeoutSeconds": h.timeout_ms.map(|t| t as f64 / 1000.0),
        "late": h.late,
    })
}

/// `POST /api/v1/heartbeat/{name}`: an external job says it ran.
pub async fn post_heartbeat(State(st): State<ApiState>, Path(name): Path<String>) -> Response {
    match st.alertmanager.heartbeat(&name) {
        Ok(()) => {
            let h = st
                .alertmanager
                .heartbeats()
                .into_iter()
                .find(|h| h.name == name);
            ok_json(json!({"status": "success", "data": h.as_ref().map(heartbeat_json)}))
        }
        Err(e) => PromError::new(e.kind(), e.to_string()).into_response(),
    }
}

/// `GET /api/v1/heartbeats`: every heartbeat with its last ping.
pub async fn get_heartbeats(State(st): State<ApiState>) -> Response {
    let v: Vec<Value> = st
        .alertmanager
        .heartbeats()
        .iter()
        .map(heartbeat_json)
        .collect();
    ok_json(json!({"status": "success", "data": v}))
}

/// Most rows one history request returns.
const HISTORY_MAX: usize = 10_000;

/// `GET /api/v1/alerts/history?filter=<matchers>&start=<time>&end=<time>&limit=<n>`: every
/// firing of the alerts that match, overlapping [start, end], newest first (default limit 1,000).
pub async fn history(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let time = |key: &str, default: i64| -> Result<i64, String> {
        match p.get(key) {
            None | Some("") => Ok(default),
            Some(v) => crate::prom::params::parse_time(v).map_err(|e| format!("{key}: {e}")),
        }
    };
    let parsed = (|| -> Result<HistoryQuery, String> {
        let limit = match p.get("limit") {
            None | Some("") => 1_000,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=HISTORY_MAX).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "limit: {v:?} is not a number from 1 to {HISTORY_MAX}"
                    ))
                }
            },
        };
        let q = HistoryQuery {
            start_ms: time("start", i64::MIN)?,
            end_ms: time("end", i64::MAX)?,
            matchers: filter_matchers(&p)?,
            limit,
        };
        if q.start_ms > q.end_ms {
            return Err("end: must not be before start".into());
        }
        Ok(q)
    })();
    let q = match parsed {
        Ok(q) => q,
        Err(e) => return PromError::bad_data(e).into_response(),
    };
    match st.alertmanager.history(&q) {
        Ok(rows) => ok_json(json!({"status": "success", "data": Value::Array(
            rows.into_iter()
                .map(|r| {
                    json!({
                        "fingerprint": format!("{:016x}", r.fingerprint),
                        "labels": label_map(&r.labels),
                        "startsAt": format_rfc3339_millis(r.starts_at),
                        "endsAt": (r.ends_at != 0).then(|| format_rfc3339_millis(r.ends_at)),
                    })
                })
                .collect(),
        )})),
        Err(e) => PromError::new(e.kind(), e.to_string()).into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn postable_alerts_decode_and_name_bad_fields() {
        let a = decode_alerts(br#"[{"labels":{"alertname":"A","job":"x"},"annotations":{"s":"t"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://p/graph"}]"#).unwrap();
        assert_eq!(a[0].labels.get("alertname"), Some("A"));
        assert_eq!(
            a[0].starts_at,
            parse_rfc3339_ms("2026-01-01T00:00:00Z").unwrap()
        );
        assert_eq!(a[0].ends_at, 0);
        assert_eq!(a[0].generator_url, "http://p/graph");
        let e = decode_alerts(br#"[{"labels":{"a":"b"}},{"labels":{}}]"#).unwrap_err();
        assert!(e.contains("alerts[1].labels"), "{e}");
        let e = decode_alerts(br#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#).unwrap_err();
        assert!(e.contains("alerts[0].startsAt"), "{e}");
        let e = decode_alerts(br#"[{"labels":{"0bad":"b"}}]"#).unwrap_err();
        assert!(e.contains("alerts[0].labels"), "{e}");
        let e = decode_alerts(br#"{"labels":{}}"#).unwrap_err();
        assert!(e.starts_with("body:"), "{e}");
    }

    #[test]
    fn postable_silence_decodes_all_matcher_kinds() {
        let s = decode_silence(br#"{"matchers":[{"name":"a","value":"b","isRegex":false},{"name":"c","value":"d.*","isRegex":true,"isEqual":false}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","createdBy":"me","comment":"x"}"#).unwrap();
        assert_eq!(s.matchers[0].op, MatchOp::Equal);
        assert_eq!(s.matchers[1].op, MatchOp::NotRegex);
        assert_eq!(s.ends_at - s.starts_at, 3_600_000);
        let e = decode_silence(br#"{"matchers":[{"value":"b"}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z"}"#).unwrap_err();
        assert!(e.contains("matchers[0].name"), "{e}");
    }
}
