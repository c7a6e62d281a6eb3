//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's shapes, read from the rule manager's
//! group snapshots through `RulesView`.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use tocsin_model::time::format_rfc3339_ms;
use tocsin_model::Labels;
use tocsin_rules::{Alert, AlertState, GroupSnapshot, Rule};

use super::encode::{success, PromError};
use super::params::Params;
use crate::ApiState;

/// The rule manager as the API sees it.
pub trait RulesView: Send + Sync {
    fn rule_groups(&self) -> Vec<GroupSnapshot>;

    /// External Alertmanagers as alerts URLs: those in use, and those relabelling dropped.
    fn alertmanagers(&self) -> (Vec<String>, Vec<String>) {
        (Vec::new(), Vec::new())
    }
}

/// No rules loaded (tests, tools).
pub struct NoRules;

impl RulesView for NoRules {
    fn rule_groups(&self) -> Vec<GroupSnapshot> {
        Vec::new()
    }
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, which Prometheus uses for alert values.
pub fn format_value_e(v: f64) -> String {
    tocsin_template::gofmt::format_float(v, 'e', -1)
}

/// Time as Prometheus's JSON writes a `time.Time`; the zero time for "never".
fn time_or_zero(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        format_rfc3339_ms(ms)
    }
}

fn label_map(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn alert_json(a: &Alert) -> Value {
    let mut o = json!({
        "labels": label_map(&a.labels),
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": time_or_zero(a.active_at),
        "value": format_value_e(a.value),
    });
    if a.keep_firing_since != 0 {
        o["keepFiringSince"] = Value::String(format_rfc3339_ms(a.keep_firing_since));
    }
    o
}

/// The state of an alerting rule: the most severe state of its alerts.
fn rule_state(alerts: &[Alert]) -> &'static str {
    if alerts.iter().any(|a| a.state == AlertState::Firing) {
        "firing"
    } else if alerts.iter().any(|a| a.state == AlertState::Pending) {
        "pending"
    } else {
        "inactive"
    }
}

/// Seconds as Go's JSON encodes a float64: whole numbers without a fraction.
fn secs(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

pub async fn rules(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    match rules_inner(&st, &p) {
        Ok(v) => success(&v, &[]),
        Err(e) => e.into_response(),
    }
}

fn rules_inner(st: &ApiState, p: &Params) -> Result<Value, PromError> {
    let kind = match p.get("type").map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => None,
        Some("alert") => Some("alerting"),
        Some("record") => Some("recording"),
        Some(other) => {
            return Err(PromError::bad_data(format!(
                "invalid parameter \"type\": unsupported value {other:?}, expected \"alert\" or \"record\""
            )))
        }
    };
    let exclude_alerts = match p.get("exclude_alerts") {
        None | Some("") => false,
        Some(s) => s.parse::<bool>().map_err(|_| {
            PromError::bad_data(format!(
                "invalid parameter \"exclude_alerts\": {s:?} is not a boolean"
            ))
        })?,
    };
    let names = p.all("rule_name[]");
    let groups_f = p.all("rule_group[]");
    let files = p.all("file[]");
    let mut out = Vec::new();
    for g in st.rules.rule_groups() {
        if !groups_f.is_empty() && !groups_f.contains(&g.name.as_str()) {
            continue;
        }
        if !files.is_empty() && !files.contains(&g.file.as_str()) {
            continue;
        }
        let mut rules = Vec::new();
        for (i, r) in g.rules.iter().enumerate() {
            if !names.is_empty() && !names.contains(&r.name()) {
                continue;
            }
            let status = g.rule_status.get(i).cloned().unwrap_or_default();
            let health = if status.health.is_empty() {
                "unknown"
            } else {
                status.health
            };
            let mut o = match r {
                Rule::Alerting(a) => {
                    if kind == Some("recording") {
                        continue;
                    }
                    let alerts = g.alerts.get(i).map(Vec::as_slice).unwrap_or(&[]);
                    let mut o = json!({
                        "state": rule_state(alerts),
                        "name": a.alert,
                        "query": a.expr,
                        "duration": secs(a.for_),
                        "keepFiringFor": secs(a.keep_firing_for),
                        "labels": a.labels,
                        "annotations": a.annotations,
                        "type": "alerting",
                    });
                    if !exclude_alerts {
                        o["alerts"] = Value::Array(
                            alerts
                                .iter()
                                .filter(|a| a.state != AlertState::Inactive)
                                .map(alert_json)
                                .collect(),
                        );
                    }
                    o
                }
                Rule::Recording {
                    record,
                    expr,
                    labels,
                    ..
                } => {
                    if kind == Some("alerting") {
                        continue;
                    }
                    let mut o = json!({
                        "name": record,
                        "query": expr,
                        "type": "recording",
                    });
                    if !labels.is_empty() {
                        o["labels"] = json!(labels);
                    }
                    o
                }
            };
            o["health"] = json!(health);
            o["lastError"] = json!(status.last_error);
            o["evaluationTime"] = json!(status.eval_seconds);
            o["lastEvaluation"] = json!(time_or_zero(status.last_eval_ms));
            if status.last_error.is_empty() {
                if let Some(m) = o.as_object_mut() {
                    m.remove("lastError");
                }
            }
            rules.push(o);
        }
        if (kind.is_some() || !names.is_empty()) && rules.is_empty() {
            continue;
        }
        out.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": secs(g.interval_ms),
            "limit": g.limit,
            "evaluationTime": g.eval_seconds,
            "lastEvaluation": time_or_zero(g.last_eval_ms),
        }));
    }
    Ok(json!({ "groups": out }))
}

pub async fn alerts(State(st): State<ApiState>) -> Response {
    let mut out = Vec::new();
    for g in st.rules.rule_groups() {
        for alerts in &g.alerts {
            out.extend(
                alerts
                    .iter()
                    .filter(|a| a.state != AlertState::Inactive)
                    .map(alert_json),
            );
        }
    }
    success(&json!({ "alerts": out }), &[])
}

/// `GET /api/v1/alertmanagers`, in Prometheus's shape.
pub async fn alertmanagers(State(st): State<ApiState>) -> Response {
    let (active, dropped) = st.rules.alertmanagers();
    let urls = |v: Vec<String>| {
        v.into_iter()
            .map(|u| json!({ "url": u }))
            .collect::<Vec<_>>()
    };
    success(
        &json!({
            "activeAlertmanagers": urls(active),
            "droppedAlertmanagers": urls(dropped),
        }),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::format_value_e;

    #[test]
    fn values_print_like_go_e_format() {
        assert_eq!(format_value_e(1.0), "1e+00");
        assert_eq!(format_value_e(0.32), "3.2e-01");
        assert_eq!(format_value_e(12345.0), "1.2345e+04");
        assert_eq!(format_value_e(1e100), "1e+100");
        assert_eq!(format_value_e(0.0), "0e+00");
        assert_eq!(format_value_e(f64::NAN), "NaN");
        assert_eq!(format_value_e(f64::NEG_INFINITY), "-Inf");
    }
}
