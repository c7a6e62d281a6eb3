//! Alerta compatibility: the part of Alerta's API (below `/api`) that Alerta's `alerta`
//! command-line tool, Kapacitor's `.alerta()` handler and Alerta's integrations call, answered
//! from the built-in alert manager. An Alerta alert becomes an alert there (`decode` has the
//! mapping), found again by its `alerta_id` label; its id is derived from Alerta's dedup key
//! (`view`), so nothing Alerta-specific is stored beyond what the alert carries.
//!
//! One alert per dedup key (environment, resource, event, customer): a send whose labels
//! differ from the firing alert's (another severity, service or group) resolves that one and
//! fires the new one under the same id, and a clearing severity (`normal`, `ok`, `cleared`)
//! resolves it. A send naming the firing alert's event in `correlate` takes its place as Alerta
//! correlates `NodeDown`/`NodeUp`. Sends are handled one at a time, so two concurrent sends of
//! one alert cannot both miss the alert the other fires.
//!
//! Handlers are in `alerts.rs` (alerts and actions), `heartbeats.rs` and `server.rs` (the
//! client's `/config` and `/management/status`). Answers use Alerta's envelope: `{"status":
//! "ok", ...}`, errors `{"status": "error", "message": ..., "code": N}`.

pub mod alerts;
pub mod decode;
pub mod heartbeats;
pub mod query;
pub mod server;
pub mod view;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tocsin_model::{Alert, MatchOp, Matcher};

use crate::ApiState;
use view::ID_LABEL;

/// Bookkeeping Alerta shows about an alert that the alert manager has no use for, per id.
/// Kept in memory: after a restart `duplicateCount` starts again from 0.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub duplicate_count: u64,
    pub previous_severity: Option<String>,
    pub severity: String,
}

/// Most ids bookkept at once; beyond, entries of alerts no longer held are dropped.
const MAX_META: usize = 100_000;

/// The Alerta API's own state.
#[derive(Default)]
pub struct AlertaState {
    /// Held while a send or an action reads and then changes an alert.
    pub(crate) intake: tokio::sync::Mutex<()>,
    pub(crate) meta: parking_lot::Mutex<HashMap<String, Meta>>,
}

impl std::fmt::Debug for AlertaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertaState")
    }
}

/// Alerta's error envelope.
pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({
            "status": "error",
            "message": msg.into(),
            "code": status.as_u16(),
        })),
    )
        .into_response()
}

pub(crate) fn ok(status: StatusCode, mut body: Value) -> Response {
    if let Value::Object(m) = &mut body {
        m.insert("status".into(), Value::String("ok".into()));
    }
    (status, axum::Json(body)).into_response()
}

pub(crate) fn am_error(e: tocsin_alerts::Error) -> Response {
    use tocsin_model::ErrorKind;
    if let tocsin_alerts::Error::Conflict(m) = &e {
        return error(StatusCode::CONFLICT, m.clone());
    }
    let status = match e.kind() {
        ErrorKind::BadData => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

pub(crate) fn now_ms() -> i64 {
    tocsin_model::Clock::now_ms(&tocsin_model::SystemClock)
}

/// Every alert the manager holds that came through this API (it has an `alerta_id`).
pub(crate) fn alerta_alerts(st: &ApiState, extra: &[Matcher]) -> Vec<Alert> {
    let mut ms = Vec::with_capacity(extra.len() + 1);
    // `!= ""` cannot fail to build; the fallback keeps this free of unwraps.
    ms.push(
        Matcher::new(MatchOp::NotEqual, ID_LABEL, "")
            .unwrap_or_else(|_| Matcher::equal(ID_LABEL, "")),
    );
    ms.extend_from_slice(extra);
    st.alertmanager.recent_alerts(&ms)
}

/// The alert an id (or a unique prefix of one, as the CLI's short ids) names: the firing one
/// when there is one, else the most recently updated. `Err` is the answer to give (boxed: a
/// response is large next to an alert).
pub(crate) fn find(st: &ApiState, id: &str, now: i64) -> Result<Alert, Box<Response>> {
    if id.is_empty() {
        return Err(Box::new(error(StatusCode::NOT_FOUND, "not found")));
    }
    let hits: Vec<Alert> = alerta_alerts(st, &[])
        .into_iter()
        .filter(|a| a.labels.get(ID_LABEL).is_some_and(|x| x.starts_with(id)))
        .collect();
    let mut ids: Vec<String> = hits
        .iter()
        .filter_map(|a| a.labels.get(ID_LABEL).map(str::to_string))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let exact = ids.iter().any(|x| x == id);
    if ids.len() > 1 && !exact {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "id: {id:?} is the start of {} alert ids; give more of it",
                ids.len()
            ),
        )));
    }
    hits.into_iter()
        .filter(|a| !exact || a.labels.get(ID_LABEL) == Some(id))
        .max_by_key(|a| (!a.resolved_at(now), a.updated_at))
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::NOT_FOUND,
                format!("alert {id:?} not found"),
            ))
        })
}

/// Fingerprints of the alerts acknowledged and of those shelved now.
#[derive(Debug, Default)]
pub(crate) struct Marked {
    pub acked: std::collections::HashSet<u64>,
    pub shelved: std::collections::HashSet<u64>,
}

pub(crate) fn marked(st: &ApiState) -> Marked {
    let (acks, shelves) = st.alertmanager.marks();
    Marked {
        acked: acks.into_iter().map(|(fp, _)| fp).collect(),
        shelved: shelves.into_iter().map(|(fp, _)| fp).collect(),
    }
}

/// What Alerta shows about `a` beyond its labels and annotations.
pub(crate) fn extra_for(st: &ApiState, a: &Alert, silenced: bool, marks: &Marked) -> view::Extra {
    let id = a.labels.get(ID_LABEL).unwrap_or("");
    let meta = st.alerta.meta.lock().get(id).cloned().unwrap_or_default();
    let severity = a.labels.get("severity").unwrap_or("");
    // Counts belong to the severity they were made at.
    let (dups, prev) = if meta.severity == severity {
        (meta.duplicate_count, meta.previous_severity)
    } else {
        (0, None)
    };
    view::Extra {
        silenced,
        acked: marks.acked.contains(&a.fingerprint()),
        shelved: marks.shelved.contains(&a.fingerprint()),
        duplicate_count: dups,
        previous_severity: prev,
        last_receive_id: None,
    }
}
