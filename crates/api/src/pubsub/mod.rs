//! Cloud Monitoring intake: `POST /api/v1/pubsub/push` takes a Pub/Sub push whose message is a
//! Cloud Monitoring incident and hands the alert it maps to (see `decode`) to the alert manager
//! through `AlertmanagerApi::pubsub_push`, which makes a redelivered `messageId` a no-op. The
//! push's OIDC token is checked first (`AlertmanagerApi::pubsub_authorize`) when the server is
//! configured to.
//!
//! Answers follow Pub/Sub's push contract: 2xx acknowledges (only once the alert is stored), 4xx
//! names what is wrong with the request, and 5xx asks Pub/Sub to deliver again later.

pub mod decode;

#[cfg(test)]
mod tests;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};

pub use decode::{decode_push, IncidentState, PushMessage};

use crate::ApiState;

/// What the alert manager did with a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The alert was stored and the message id recorded.
    Taken,
    /// The message id was taken before: nothing was done.
    Duplicate,
    /// An `open` message arrived for an incident already resolved here (Pub/Sub does not keep
    /// order): re-opening it would fire an alert Cloud Monitoring has closed.
    Stale,
}

impl PushOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PushOutcome::Taken => "taken",
            PushOutcome::Duplicate => "duplicate",
            PushOutcome::Stale => "stale",
        }
    }
}

/// Why a push was refused before it was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No (usable) token, or a token that does not verify: 401.
    Unauthorized(String),
    /// The verifier itself failed (its key file became unreadable): 500, so Pub/Sub retries.
    Internal(String),
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(Value::String(msg.into()))).into_response()
}

pub async fn post_push(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    match st.alertmanager.pubsub_authorize(auth) {
        Ok(()) => {}
        Err(AuthError::Unauthorized(m)) => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(Value::String(m)),
            )
                .into_response()
        }
        Err(AuthError::Internal(m)) => return error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
    let now = tocsin_model::Clock::now_ms(&tocsin_model::SystemClock);
    let msg = match decode_push(&body, now) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match st.alertmanager.pubsub_push(&msg) {
        Ok(outcome) => (
            StatusCode::OK,
            axum::Json(json!({
                "status": outcome.as_str(),
                "messageId": msg.message_id,
                "incident_id": msg.incident_id,
                "state": msg.state.as_str(),
                "fingerprint": msg.alert.fingerprint_hex(),
            })),
        )
            .into_response(),
        Err(e) => {
            use tocsin_model::ErrorKind;
            let status = match e.kind() {
                ErrorKind::BadData => StatusCode::BAD_REQUEST,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
    }
}
