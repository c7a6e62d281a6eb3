//! What Alerta's client asks of the server itself: `GET /api/config` (read before every
//! command, without credentials, for the alarm model the `heartbeat` commands check severities
//! against) and `GET /api/management/status` (`alerta version`, `status`, `uptime`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::decode::SEVERITIES;
use super::{alerta_alerts, now_ms, ok};
use crate::ApiState;

/// Alerta's default colours, by severity.
fn colour(s: &str) -> &'static str {
    match s {
        "security" | "critical" => "red",
        "major" => "orange",
        "minor" => "yellow",
        "warning" => "dodgerblue",
        "indeterminate" => "lightblue",
        "cleared" | "normal" | "ok" => "#00CC00",
        _ => "silver",
    }
}

/// `GET /api/config`: the alarm model (severities with their rank, statuses) and defaults.
/// Nothing here is secret: it is the same for every Tocsin.
pub async fn get_config() -> Response {
    let severity: Map<String, Value> = SEVERITIES
        .iter()
        .enumerate()
        .map(|(i, s)| (s.to_string(), json!(i)))
        .collect();
    let colors: Map<String, Value> = SEVERITIES
        .iter()
        .map(|s| (s.to_string(), json!(colour(s))))
        .collect();
    let status: Map<String, Value> = super::view::Status::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str().to_string(), json!(i)))
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "provider": "basic",
            "auth_required": false,
            "customer_views": false,
            "alarm_model": {
                "name": "Alerta default alarm model (Tocsin)",
                "severity": severity,
                "colors": {"severity": colors},
                "status": status,
                "defaults": {
                    "status": "open",
                    "normal_severity": "normal",
                    "previous_severity": "indeterminate",
                },
            },
            "sort_by": "lastReceiveTime",
            "refresh_interval": 5000,
        }),
    )
}

/// `GET /api/management/status`: version, time and uptime (ms), and a few gauges.
pub async fn get_status(State(st): State<ApiState>) -> Response {
    let now = now_ms();
    let started = st.alertmanager.started_at_ms();
    let alerts = alerta_alerts(&st, &[]);
    let firing = alerts.iter().filter(|a| !a.resolved_at(now)).count();
    let gauge = |name: &str, title: &str, value: usize| {
        json!({"group": "alerts", "name": name, "type": "gauge", "title": title,
               "description": title, "value": value})
    };
    ok(
        StatusCode::OK,
        json!({
            "application": "tocsin",
            "version": format!("tocsin {}", env!("CARGO_PKG_VERSION")),
            "time": now,
            "uptime": if started > 0 { (now - started).max(0) } else { 0 },
            "metrics": [
                gauge("total", "Alerta alerts held (firing and recently resolved)", alerts.len()),
                gauge("firing", "Alerta alerts firing", firing),
                gauge("heartbeats", "Heartbeats", st.alertmanager.heartbeats().len()),
            ],
        }),
    )
}
