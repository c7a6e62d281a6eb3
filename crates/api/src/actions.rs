//! The remediation actions API: the audit of executions (`GET /api/v1/actions`,
//! `GET /api/v1/actions/{id}`), human decisions on queued ones (`POST
//! /api/v1/actions/{id}/approve|deny`), and the policies' guard state (`GET
//! /api/v1/actions/policies`, `POST /api/v1/actions/policies/{name}/reset`). Answers use the
//! Prometheus API envelope. Handlers only translate: the server's actions engine answers
//! through [`ActionsApi`], and who decided comes from the auth layer's [`Principal`].

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use serde_json::Value;
use tocsin_model::ErrorKind;

use crate::class::Principal;
use crate::prom::encode::{success, PromError};
use crate::prom::params::{parse_time, Params};
use crate::ApiState;

/// Default and largest `limit` of `GET /api/v1/actions`.
pub const LIST_DEFAULT: usize = 100;
pub const LIST_MAX: usize = 10_000;

/// Filters of `GET /api/v1/actions`; `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionQuery {
    pub policy: Option<String>,
    pub outcome: Option<String>,
    pub target: Option<String>,
    /// Executions created at or after this time (ms).
    pub from_ms: Option<i64>,
    /// Executions created at or before this time (ms).
    pub to_ms: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ActionsApiError {
    #[error("{0}")]
    BadData(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

impl ActionsApiError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ActionsApiError::BadData(_) => ErrorKind::BadData,
            ActionsApiError::NotFound(_) => ErrorKind::NotFound,
            ActionsApiError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// The actions engine as the API sees it.
pub trait ActionsApi: Send + Sync {
    /// Executions, newest first, each a JSON object (id, key, policy, target, kind, mode, outcome, guard,
    /// alert labels, created_at..., request, status, detail, attempts, duration_ms, decided_by).
    fn list(&self, q: &ActionQuery) -> Result<Vec<Value>, ActionsApiError>;
    /// One execution with its `events` (the audit trail).
    fn get(&self, id: i64) -> Result<Value, ActionsApiError>;
    fn approve(&self, id: i64, who: &str, comment: &str) -> Result<Value, ActionsApiError>;
    fn deny(&self, id: i64, who: &str, comment: &str) -> Result<Value, ActionsApiError>;
    fn reset(&self, policy: &str, who: &str) -> Result<Value, ActionsApiError>;
    /// Each policy: name, kind, mode, tripped state (guard, reason, since, reset_at), guard counters.
    fn policies(&self) -> Result<Vec<Value>, ActionsApiError>;
}

fn err(e: ActionsApiError) -> Response {
    PromError::new(e.kind(), e.to_string()).into_response()
}

fn engine(st: &ApiState) -> Result<&dyn ActionsApi, Response> {
    st.actions.as_deref().ok_or_else(|| {
        PromError::new(ErrorKind::NotFound, "no actions engine is running").into_response()
    })
}

fn answer<T: serde::Serialize>(r: Result<T, ActionsApiError>) -> Response {
    match r {
        Ok(v) => success(&v, &[]),
        Err(e) => err(e),
    }
}

fn who(p: Option<Extension<Principal>>) -> String {
    p.map_or_else(|| Principal::ANONYMOUS.to_string(), |Extension(p)| p.0)
}

fn parse_id(s: &str) -> Result<i64, Response> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            PromError::bad_data(format!("id: {s:?} is not an execution id (a positive integer)"))
                .into_response()
        })
}

/// The filters of a list request; the error names the parameter.
pub fn parse_query(q: Option<&str>) -> Result<ActionQuery, String> {
    let p = Params::new(q, &HeaderMap::new(), &[]);
    let time = |key: &str| -> Result<Option<i64>, String> {
        p.get(key)
            .map(|v| parse_time(v).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let limit = match p.get("limit") {
        None => LIST_DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=LIST_MAX).contains(&n) => n,
            _ => return Err(format!("limit: {v:?} is not a number from 1 to {LIST_MAX}")),
        },
    };
    let q = ActionQuery {
        policy: p.get("policy").map(str::to_string),
        outcome: p.get("outcome").map(str::to_string),
        target: p.get("target").map(str::to_string),
        from_ms: time("start")?,
        to_ms: time("end")?,
        limit,
    };
    if let (Some(a), Some(b)) = (q.from_ms, q.to_ms) {
        if a > b {
            return Err("end: must not be before start".into());
        }
    }
    Ok(q)
}

/// `GET /api/v1/actions`: executions, newest first.
pub async fn list(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let e = match engine(&st) {
        Ok(e) => e,
        Err(r) => return r,
    };
    match parse_query(q.as_deref()) {
        Ok(q) => answer(e.list(&q)),
        Err(m) => PromError::bad_data(m).into_response(),
    }
}

/// `GET /api/v1/actions/{id}`: one execution with its audit trail.
pub async fn get(State(st): State<ApiState>, Path(id): Path<String>) -> Response {
    let (e, id) = match (engine(&st), parse_id(&id)) {
        (Ok(e), Ok(id)) => (e, id),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    answer(e.get(id))
}

/// The optional `comment` of an approval or denial: a JSON object `{"comment": "..."}`, a form
/// body, or the query string. Anything else in a JSON body is refused so a typo is not lost.
fn comment(q: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if json && !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("body: invalid JSON: {e}"))?;
        let Value::Object(m) = v else {
            return Err("body: expected a JSON object such as {\"comment\": \"...\"}".into());
        };
        if let Some(k) = m.keys().find(|k| *k != "comment") {
            return Err(format!("body: unknown field {k:?} (only \"comment\" is accepted)"));
        }
        return match m.get("comment") {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err("body: comment must be a string".into()),
        };
    }
    Ok(Params::new(q, headers, body)
        .get("comment")
        .unwrap_or("")
        .to_string())
}

async fn decide(
    st: ApiState,
    id: String,
    principal: Option<Extension<Principal>>,
    q: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    approve: bool,
) -> Response {
    let (e, id) = match (engine(&st), parse_id(&id)) {
        (Ok(e), Ok(id)) => (e, id),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let c = match comment(q.as_deref(), &headers, &body) {
        Ok(c) => c,
        Err(m) => return PromError::bad_data(m).into_response(),
    };
    let who = who(principal);
    answer(if approve {
        e.approve(id, &who, &c)
    } else {
        e.deny(id, &who, &c)
    })
}

/// `POST /api/v1/actions/{id}/approve`: runs an execution queued for approval.
pub async fn approve(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    decide(st, id, principal, q, headers, body, true).await
}

/// `POST /api/v1/actions/{id}/deny`: drops an execution queued for approval.
pub async fn deny(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    principal: Option<Extension<Principal>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    decide(st, id, principal, q, headers, body, false).await
}

/// `POST /api/v1/actions/policies/{name}/reset`: clears a tripped policy.
pub async fn reset(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Response {
    match engine(&st) {
        Ok(e) => answer(e.reset(&name, &who(principal))),
        Err(r) => r,
    }
}

/// `GET /api/v1/actions/policies`: every policy with its guard state.
pub async fn policies(State(st): State<ApiState>) -> Response {
    match engine(&st) {
        Ok(e) => answer(e.policies()),
        Err(r) => r,
    }
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
