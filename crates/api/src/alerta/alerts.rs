//! Alerta's alert endpoints: `POST /api/alert` (a send), `GET /api/alert/{id}`,
//! `GET /api/alerts` and `/api/alerts/count`, `PUT /api/alert/{id}/action` and `/status`, and
//! `DELETE /api/alert/{id}`. Alerts reach the alert manager only through `AlertmanagerApi`.

use std::collections::{BTreeMap, HashSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tocsin_alerts::AlertFilter;
use tocsin_model::{Alert, Matcher};

use super::decode::{self, NEVER_MS};
use super::query::Query;
use super::view::{self, ID_LABEL};
use super::{
    alerta_alerts, am_error, error, extra_for, find, marked, now_ms, ok, Marked, MAX_META,
};
use crate::class::Principal;
use crate::ApiState;

/// Fingerprints of the Alerta alerts a silence mutes now (Alerta's `blackout`).
fn silenced(st: &ApiState) -> HashSet<u64> {
    let f = AlertFilter {
        matchers: Vec::new(),
        ..AlertFilter::default()
    };
    st.alertmanager
        .alerts(&f)
        .into_iter()
        .filter(|v| v.alert.labels.get(ID_LABEL).is_some() && !v.status.silenced_by.is_empty())
        .map(|v| v.alert.fingerprint())
        .collect()
}

/// What a rendering needs to know besides the alert: silences and marks in force.
struct Muted {
    silenced: HashSet<u64>,
    marks: Marked,
}

fn muted(st: &ApiState) -> Muted {
    Muted {
        silenced: silenced(st),
        marks: marked(st),
    }
}

fn render(st: &ApiState, a: &Alert, m: &Muted, now: i64) -> Value {
    let extra = extra_for(st, a, m.silenced.contains(&a.fingerprint()), &m.marks);
    view::alert_json(a, &extra, now)
}

/// `a`, resolved now.
fn resolved(a: &Alert, now: i64) -> Alert {
    let mut r = a.clone();
    r.ends_at = now.max(r.starts_at);
    r.timeout = false;
    r
}

pub async fn post_alert(State(st): State<ApiState>, body: Bytes) -> Response {
    let now = now_ms();
    let d = match decode::decode_alert(&body, now) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let _one_at_a_time = st.alerta.intake.lock().await;
    let place = [
        Matcher::equal("resource", d.key.resource.as_str()),
        Matcher::equal("environment", d.key.environment.as_str()),
        Matcher::equal("customer", d.key.customer.as_str()),
    ];
    let held: Vec<Alert> = alerta_alerts(&st, &place)
        .into_iter()
        .filter(|a| !a.resolved_at(now))
        .collect();
    let mut same: Vec<Alert> = held
        .iter()
        .filter(|a| a.name() == d.key.event)
        .cloned()
        .collect();
    if same.is_empty() {
        same = held
            .iter()
            .filter(|a| d.correlate.iter().any(|c| c == a.name()))
            .cloned()
            .collect();
    }
    let id = match same
        .iter()
        .max_by_key(|a| a.updated_at)
        .and_then(|a| a.labels.get(ID_LABEL))
    {
        Some(id) => id.to_string(),
        None => match &d.id {
            Some(chosen) => {
                let taken = alerta_alerts(&st, &[Matcher::equal(ID_LABEL, chosen.as_str())])
                    .into_iter()
                    .any(|a| {
                        a.labels.get("resource") != Some(d.key.resource.as_str())
                            || a.name() != d.key.event
                    });
                if taken {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("id: {chosen:?} is the id of another alert"),
                    );
                }
                chosen.clone()
            }
            None => view::alert_id(&d.key),
        },
    };
    let mut new = d.alert.clone();
    new.labels = new.labels.builder().set(ID_LABEL, &id).build();
    let mut batch = Vec::new();
    if d.clears && !same.is_empty() {
        // The clearing send resolves what fires, under its labels; its text and value say why.
        for s in &same {
            let mut r = resolved(s, now);
            r.annotations.extend(new.annotations.clone());
            batch.push(r);
        }
    } else {
        for s in &same {
            if s.fingerprint() != new.fingerprint() {
                batch.push(resolved(s, now));
            }
        }
        if d.clears {
            new.starts_at = now;
            new.ends_at = now;
        }
        batch.push(new.clone());
    }
    let shown_fp = batch.last().map(Alert::fingerprint).unwrap_or_default();
    if let Err(e) = st.alertmanager.put_alerts(batch) {
        return am_error(e);
    }
    remember(&st, &id, &same, &d.severity, d.clears);
    let stored = alerta_alerts(&st, &[Matcher::equal(ID_LABEL, id.as_str())])
        .into_iter()
        .find(|a| a.fingerprint() == shown_fp);
    let Some(stored) = stored else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("alert {id} was taken but is not held; see the server log"),
        );
    };
    let alert = render(&st, &stored, &muted(&st), now);
    ok(StatusCode::CREATED, json!({"id": id, "alert": alert}))
}

/// Counts a duplicate, or notes the severity change, for the alert `id`.
fn remember(st: &ApiState, id: &str, same: &[Alert], severity: &str, clears: bool) {
    let mut m = st.alerta.meta.lock();
    let e = m.entry(id.to_string()).or_default();
    let before = same
        .iter()
        .max_by_key(|a| a.updated_at)
        .and_then(|a| a.labels.get("severity"))
        .map(str::to_string);
    if !clears && before.as_deref() == Some(severity) {
        e.duplicate_count += 1;
    } else {
        e.previous_severity = before.or_else(|| Some(e.severity.clone()).filter(|s| !s.is_empty()));
        e.duplicate_count = 0;
    }
    e.severity = severity.to_string();
    if m.len() > MAX_META {
        drop(m);
        let live: HashSet<String> = alerta_alerts(st, &[])
            .iter()
            .filter_map(|a| a.labels.get(ID_LABEL).map(str::to_string))
            .collect();
        st.alerta.meta.lock().retain(|k, _| live.contains(k));
    }
}

pub async fn get_alert(State(st): State<ApiState>, Path(id): Path<String>) -> Response {
    let now = now_ms();
    match find(&st, &id, now) {
        Ok(a) => {
            let alert = render(&st, &a, &muted(&st), now);
            ok(StatusCode::OK, json!({"alert": alert, "total": 1}))
        }
        Err(r) => *r,
    }
}

fn pairs(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The alerts a query selects, as Alerta's JSON, sorted. One per id, as Alerta has one alert
/// per id: the firing one, else the latest (an earlier severity of it, resolved when the
/// severity changed, is not shown until the alert manager collects it).
fn select(st: &ApiState, q: &Query, now: i64) -> Vec<Value> {
    let m = muted(st);
    let mut current: BTreeMap<String, Alert> = BTreeMap::new();
    for a in alerta_alerts(st, &[]) {
        let id = a.labels.get(ID_LABEL).unwrap_or("").to_string();
        let rank = |x: &Alert| (!x.resolved_at(now), x.updated_at);
        match current.get(&id) {
            Some(cur) if rank(cur) >= rank(&a) => {}
            _ => {
                current.insert(id, a);
            }
        }
    }
    let mut v: Vec<Value> = current
        .values()
        .map(|a| render(st, a, &m, now))
        .filter(|a| q.admits(a))
        .collect();
    q.sort(&mut v);
    v
}

fn counts(alerts: &[Value]) -> (Map<String, Value>, Map<String, Value>) {
    let mut sev: BTreeMap<String, u64> = BTreeMap::new();
    let mut status: BTreeMap<String, u64> = view::Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for a in alerts {
        let f = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        *sev.entry(f("severity")).or_default() += 1;
        *status.entry(f("status")).or_default() += 1;
    }
    let to_map = |m: BTreeMap<String, u64>| m.into_iter().map(|(k, v)| (k, json!(v))).collect();
    (to_map(sev), to_map(status))
}

pub async fn get_alerts(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let now = now_ms();
    let q = match Query::parse(&pairs(q.as_deref())) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let all = select(&st, &q, now);
    let (severity_counts, status_counts) = counts(&all);
    let total = all.len();
    let pages = total.div_ceil(q.page_size).max(1);
    let last_time = all
        .iter()
        .filter_map(|a| a.get("lastReceiveTime").and_then(Value::as_str))
        .max()
        .map(str::to_string)
        .unwrap_or_else(|| tocsin_model::time::format_rfc3339_millis(now));
    let start = (q.page - 1).saturating_mul(q.page_size).min(total);
    let end = start.saturating_add(q.page_size).min(total);
    let page: Vec<Value> = all[start..end].to_vec();
    ok(
        StatusCode::OK,
        json!({
            "alerts": page,
            "total": total,
            "page": q.page,
            "pageSize": q.page_size,
            "pages": pages,
            "more": q.page < pages,
            "severityCounts": severity_counts,
            "statusCounts": status_counts,
            "lastTime": last_time,
            "autoRefresh": true,
        }),
    )
}

pub async fn get_count(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let now = now_ms();
    let q = match Query::parse(&pairs(q.as_deref())) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let all = select(&st, &q, now);
    let (severity_counts, status_counts) = counts(&all);
    ok(
        StatusCode::OK,
        json!({
            "total": all.len(),
            "severityCounts": severity_counts,
            "statusCounts": status_counts,
        }),
    )
}

/// An action's body: `action` (or `status` for the status endpoint), `text`, `timeout`.
struct ActionBody {
    verb: String,
    text: String,
    timeout_s: Option<i64>,
}

fn action_body(body: &[u8], field: &str) -> Result<ActionBody, String> {
    let o = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err("body: must be a JSON object".into()),
        Err(e) => return Err(format!("body: {e}")),
    };
    let verb = match o.get(field) {
        Some(Value::String(s)) if !s.is_empty() => s.to_ascii_lowercase(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(format!("{field}: missing"))
        }
        Some(_) => return Err(format!("{field}: must be a string")),
    };
    let text = match o.get("text") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("text: must be a string".into()),
    };
    let timeout_s = match o.get("timeout") {
        None | Some(Value::Null) => None,
        Some(_) => Some(decode::timeout(&o, 0)?),
    };
    Ok(ActionBody {
        verb,
        text,
        timeout_s,
    })
}

fn boxed(e: tocsin_alerts::Error) -> Box<Response> {
    Box::new(am_error(e))
}

/// How long `shelve` hides an alert when the action gives no `timeout`: Alerta's default
/// `SHELVE_TIMEOUT`, 2 hours.
pub const DEFAULT_SHELVE_S: i64 = 7200;

/// Applies an action to the alert `a` for `by`. `ack`, `unack`, `shelve` and `unshelve` are
/// the alert manager's acknowledgements and shelves: an ack's `timeout` (seconds, 0 = none) is
/// its expiry, a shelf's is its length.
fn apply(
    st: &ApiState,
    a: &Alert,
    b: &ActionBody,
    by: &str,
    now: i64,
) -> Result<(), Box<Response>> {
    let am = &st.alertmanager;
    let fp = a.fingerprint();
    let ms = |s: i64| now.saturating_add(s.saturating_mul(1000));
    match b.verb.as_str() {
        "ack" => {
            let expires = b.timeout_s.filter(|t| *t > 0).map(ms);
            am.ack(fp, by, &b.text, expires).map(|_| ()).map_err(boxed)
        }
        "unack" => am.unack(fp, by, &b.text).map(|_| ()).map_err(boxed),
        "shelve" => {
            let secs = b.timeout_s.filter(|t| *t > 0).unwrap_or(DEFAULT_SHELVE_S);
            am.shelve(fp, by, &b.text, ms(secs)).map_err(boxed)
        }
        "unshelve" => am.unshelve(fp, by).map(|_| ()).map_err(boxed),
        "close" => {
            if a.resolved_at(now) {
                return Ok(());
            }
            let mut r = resolved(a, now);
            if !b.text.is_empty() {
                r.annotations.insert("close_text".into(), b.text.clone());
            }
            st.alertmanager.put_alerts(vec![r]).map_err(boxed)
        }
        "open" => {
            if !a.resolved_at(now) {
                // Alerta's `open` on an acknowledged or shelved alert takes that back.
                am.unack(fp, by, &b.text).map_err(boxed)?;
                am.unshelve(fp, by).map_err(boxed)?;
                return Ok(());
            }
            // Re-opens a closed or expired alert for its timeout from now.
            let mut r = a.clone();
            let t = a
                .annotations
                .get("timeout")
                .and_then(|t| t.parse::<i64>().ok())
                .unwrap_or(decode::DEFAULT_TIMEOUT_S);
            r.starts_at = now;
            r.ends_at = if t == 0 {
                NEVER_MS
            } else {
                now.saturating_add(t.saturating_mul(1000))
            };
            r.timeout = false;
            st.alertmanager.put_alerts(vec![r]).map_err(boxed)
        }
        v => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("action: {v:?} is not one of ack, unack, shelve, unshelve, close, open"),
        ))),
    }
}

fn who(p: Option<Extension<Principal>>) -> String {
    p.map_or_else(|| Principal::ANONYMOUS.to_string(), |Extension(p)| p.0)
}

pub async fn put_action(
    State(st): State<ApiState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let b = match action_body(&body, "action") {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    act(&st, &id, b, &who(p)).await
}

/// `PUT /api/alert/{id}/status`: a status set directly, as the action that leads to it.
pub async fn put_status(
    State(st): State<ApiState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut b = match action_body(&body, "status") {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    b.verb = match b.verb.as_str() {
        "open" => "open",
        "closed" => "close",
        "ack" => "ack",
        "shelved" => "shelve",
        s => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("status: {s:?} cannot be set; one of open, closed, ack, shelved can"),
            )
        }
    }
    .to_string();
    act(&st, &id, b, &who(p)).await
}

async fn act(st: &ApiState, id: &str, b: ActionBody, by: &str) -> Response {
    let now = now_ms();
    let _one_at_a_time = st.alerta.intake.lock().await;
    let a = match find(st, id, now) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match apply(st, &a, &b, by, now) {
        Ok(()) => ok(StatusCode::OK, json!({})),
        Err(r) => *r,
    }
}

/// `DELETE /api/alert/{id}`: Tocsin keeps an alert's history, so a delete resolves the alert
/// as `close` does; it leaves the list when the alert manager collects resolved alerts.
pub async fn delete_alert(
    State(st): State<ApiState>,
    p: Option<Extension<Principal>>,
    Path(id): Path<String>,
) -> Response {
    let b = ActionBody {
        verb: "close".into(),
        text: String::new(),
        timeout_s: None,
    };
    act(&st, &id, b, &who(p)).await
}
