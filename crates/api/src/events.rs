//! `GET /api/v1/events`: alert changes as server-sent events, so a console refetches only what
//! changed. Each change is an `alert` event whose data is `{"fingerprint","kind","time"}`; a
//! subscriber that fell behind gets one `reset` event (refetch everything) and continues; a
//! comment line every 15 s keeps proxies from closing an idle stream. The stream ends when the
//! alert manager shuts down, so it never holds up the server's graceful stop.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::json;
use tocsin_alerts::events::{AlertEvent, Received, Subscription};
use tocsin_model::time::format_rfc3339_millis;

use crate::ApiState;

pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The `data` of one `alert` event.
pub fn event_data(e: &AlertEvent) -> String {
    json!({
        "fingerprint": format!("{:016x}", e.fingerprint),
        "kind": e.kind.as_str(),
        "time": format_rfc3339_millis(e.at_ms),
    })
    .to_string()
}

/// The SSE event for what a subscriber received; `None` ends the stream.
fn to_event(r: Received) -> Option<Event> {
    match r {
        Received::Event(e) => Some(Event::default().event("alert").data(event_data(&e))),
        Received::Lagged(n) => Some(
            Event::default()
                .event("reset")
                .data(json!({ "missed": n }).to_string()),
        ),
        Received::Closed => None,
    }
}

pub async fn events(State(st): State<ApiState>) -> Response {
    let Some(sub) = st.alertmanager.subscribe() else {
        return (StatusCode::NOT_FOUND, "no alert manager\n").into_response();
    };
    // The first event tells the client the stream is live (it may refetch once then).
    let hello = Event::default().event("hello").data("{}");
    let first = stream::iter([Ok::<Event, Infallible>(hello)]);
    let rest = stream::unfold(sub, |mut sub: Subscription| async move {
        let ev = to_event(sub.recv().await)?;
        Some((Ok::<Event, Infallible>(ev), sub))
    });
    use futures_util::StreamExt;
    Sse::new(first.chain(rest))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tocsin_alerts::events::EventKind;

    #[test]
    fn event_data_is_small_json() {
        let d = event_data(&AlertEvent {
            fingerprint: 0xab,
            kind: EventKind::Acknowledged,
            at_ms: 1_767_225_600_000,
        });
        assert_eq!(
            d,
            r#"{"fingerprint":"00000000000000ab","kind":"acknowledged","time":"2026-01-01T00:00:00.000Z"}"#
        );
        assert!(to_event(Received::Closed).is_none());
    }
}
