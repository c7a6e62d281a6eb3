//! Alerta's heartbeats: `POST /api/heartbeat` pings the Tocsin heartbeat its `origin` maps to
//! (`decode::heartbeat_name`) with the heartbeat's timeout, labels and annotations, so a late
//! one raises `HeartbeatMissing` as any Tocsin heartbeat does; `GET /api/heartbeats` and
//! `GET /api/heartbeat/{id}` list every heartbeat (configured ones too) as Alerta shows them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tocsin_alerts::heartbeat::PingDetails;

use super::decode::decode_heartbeat;
use super::view::heartbeat_json;
use super::{am_error, error, now_ms, ok};
use crate::ApiState;

pub async fn post_heartbeat(State(st): State<ApiState>, body: Bytes) -> Response {
    let now = now_ms();
    let hb = match decode_heartbeat(&body, now) {
        Ok(h) => h,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let details = PingDetails {
        timeout_ms: Some(hb.timeout_s.saturating_mul(1000)),
        labels: hb.labels.clone(),
        annotations: hb.annotations.clone(),
    };
    if let Err(e) = st.alertmanager.heartbeat_with(&hb.name, details) {
        return am_error(e);
    }
    let Some(h) = st
        .alertmanager
        .heartbeats()
        .into_iter()
        .find(|h| h.name == hb.name)
    else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("heartbeat {:?} was pinged but is not listed", hb.name),
        );
    };
    let mut v = heartbeat_json(&h, now);
    if let (Some(ms), Value::Object(m)) = (hb.create_ms, &mut v) {
        m.insert(
            "createTime".into(),
            Value::String(tocsin_model::time::format_rfc3339_millis(ms)),
        );
    }
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    ok(StatusCode::CREATED, json!({"id": id, "heartbeat": v}))
}

pub async fn get_heartbeats(State(st): State<ApiState>) -> Response {
    let now = now_ms();
    let list: Vec<Value> = st
        .alertmanager
        .heartbeats()
        .iter()
        .map(|h| heartbeat_json(h, now))
        .collect();
    ok(
        StatusCode::OK,
        json!({"total": list.len(), "heartbeats": list}),
    )
}

pub async fn get_heartbeat(State(st): State<ApiState>, Path(id): Path<String>) -> Response {
    let now = now_ms();
    let found = st
        .alertmanager
        .heartbeats()
        .iter()
        .map(|h| heartbeat_json(h, now))
        .find(|v| {
            v.get("id")
                .and_then(Value::as_str)
                .is_some_and(|x| !id.is_empty() && x.starts_with(id.as_str()))
        });
    match found {
        Some(v) => ok(StatusCode::OK, json!({"heartbeat": v, "total": 1})),
        None => error(StatusCode::NOT_FOUND, format!("heartbeat {id:?} not found")),
    }
}
