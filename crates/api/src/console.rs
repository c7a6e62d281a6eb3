//! The console's alert list (`GET /api/v1/console/alerts`): parameters decoded and checked (each
//! error names its parameter), the built-in alert manager asked through `AlertmanagerApi`, and
//! the page answered in the Prometheus API's envelope. Everything a console with 20,000 alerts
//! needs is computed on the server: filters, grouping, order, totals and one page.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tocsin_alerts::console::{ConsolePage, ConsoleQuery, ConsoleRow, ConsoleState, GroupBy};
use tocsin_model::time::format_rfc3339_millis;
use tocsin_model::Labels;

use crate::prom::encode::PromError;
use crate::prom::params::{parse_duration_ns, Params};
use crate::ApiState;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;
pub const DEFAULT_GROUP_LIMIT: usize = 100;
pub const MAX_GROUP_LIMIT: usize = 10_000;
/// `resolved_within` without the parameter.
pub const DEFAULT_RESOLVED_WITHIN_MS: i64 = 15 * 60_000;
/// Longest `resolved_within`: the history is read back this far at most.
pub const MAX_RESOLVED_WITHIN_MS: i64 = 7 * 24 * 3_600_000;
/// Longest free-text search string, in bytes.
pub const MAX_TEXT: usize = 1_024;

fn count(p: &Params, key: &str, default: usize, max: usize) -> Result<usize, String> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("{key}: {v:?} is not a number from 1 to {max}")),
        },
    }
}

/// Decodes the list's parameters; errors name the parameter.
pub fn decode_query(p: &Params) -> Result<ConsoleQuery, String> {
    let mut matchers = Vec::new();
    for f in p.all("filter") {
        if f.is_empty() {
            continue;
        }
        matchers.extend(
            tocsin_alerts::matchers::parse_matchers(f).map_err(|e| format!("filter: {e}"))?,
        );
    }
    let text = p.get("q").unwrap_or("").trim().to_string();
    if text.len() > MAX_TEXT {
        return Err(format!("q: longer than {MAX_TEXT} bytes"));
    }
    let mut states = Vec::new();
    for s in p.all("state") {
        // Repeatable, and commas are accepted too (`state=firing,acknowledged`).
        for s in s.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let st = ConsoleState::parse(s).ok_or_else(|| {
                format!(
                    "state: {s:?} is not one of {}",
                    ConsoleState::ALL.map(|s| s.as_str()).join(", ")
                )
            })?;
            if !states.contains(&st) {
                states.push(st);
            }
        }
    }
    let group_by = match p.get("group_by") {
        None => None,
        Some("route") => Some(GroupBy::Route),
        Some(name) => {
            tocsin_model::labels::validate_label_name(name).map_err(|e| {
                format!("group_by: {name:?} is neither \"route\" nor a label name: {e}")
            })?;
            Some(GroupBy::Label(name.to_string()))
        }
    };
    let group = p.get("group").map(str::to_string);
    if group.is_some() && group_by.is_none() {
        return Err("group: needs group_by".into());
    }
    let resolved_within_ms = match p.get("resolved_within") {
        None => DEFAULT_RESOLVED_WITHIN_MS,
        Some(v) => {
            let ns = parse_duration_ns(v).map_err(|e| format!("resolved_within: {e}"))?;
            let ms = ns / 1_000_000;
            if !(0..=MAX_RESOLVED_WITHIN_MS).contains(&ms) {
                return Err(format!(
                    "resolved_within: {v:?} is not from 0 to {}h",
                    MAX_RESOLVED_WITHIN_MS / 3_600_000
                ));
            }
            ms
        }
    };
    let offset = match p.get("offset") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("offset: {v:?} is not a non-negative number"))?,
    };
    Ok(ConsoleQuery {
        matchers,
        text,
        states,
        group_by,
        group,
        resolved_within_ms,
        offset,
        limit: count(p, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        group_limit: count(p, "group_limit", DEFAULT_GROUP_LIMIT, MAX_GROUP_LIMIT)?,
    })
}

fn label_map(l: &Labels) -> Map<String, Value> {
    l.iter()
        .map(|l| (l.name.to_string(), Value::String(l.value.to_string())))
        .collect()
}

fn states_json(c: &[usize; 6]) -> Value {
    Value::Object(
        ConsoleState::ALL
            .iter()
            .zip(c)
            .map(|(s, n)| (s.as_str().to_string(), json!(n)))
            .collect(),
    )
}

fn time_or_null(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(format_rfc3339_millis(ms))
    }
}

fn row_json(r: &ConsoleRow) -> Value {
    let a = &r.alert;
    json!({
        "fingerprint": format!("{:016x}", r.fingerprint),
        "labels": label_map(&a.labels),
        "annotations": a.annotations,
        "startsAt": time_or_null(a.starts_at),
        "endsAt": time_or_null(a.ends_at),
        "updatedAt": time_or_null(a.updated_at),
        "generatorURL": a.generator_url,
        "state": r.state.as_str(),
        "severity": r.severity.as_str(),
        "silencedBy": r.silenced_by,
        "inhibitedBy": r.inhibited_by,
        "receivers": r.receivers,
        "group": r.group,
        "fromHistory": r.from_history,
        "ack": r.ack.as_ref().map(|a| json!({
            "by": a.by,
            "at": format_rfc3339_millis(a.at_ms),
            "comment": a.comment,
            "expires": a.expires_ms.map(format_rfc3339_millis),
        })),
        "shelve": r.shelve.as_ref().map(|s| json!({
            "by": s.by,
            "at": format_rfc3339_millis(s.at_ms),
            "comment": s.comment,
            "until": format_rfc3339_millis(s.until_ms),
        })),
    })
}

/// The page as JSON (`data` of the answer).
pub fn page_json(q: &ConsoleQuery, p: &ConsolePage) -> Value {
    json!({
        "total": p.total,
        "offset": q.offset,
        "limit": q.limit,
        "states": states_json(&p.states),
        "groupsTotal": p.groups_total,
        "groups": p.groups.iter().map(|g| json!({
            "key": g.key,
            "labels": label_map(&g.labels),
            "receiver": g.receiver,
            "count": g.count,
            "severity": g.severity.as_str(),
            "states": states_json(&g.states),
        })).collect::<Vec<_>>(),
        "alerts": p.rows.iter().map(row_json).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/console/alerts`.
pub async fn alerts(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::new(q.as_deref(), &HeaderMap::new(), &[]);
    let q = match decode_query(&p) {
        Ok(q) => q,
        Err(e) => return PromError::bad_data(e).into_response(),
    };
    // Listing 20,000 alerts is milliseconds of CPU: off the async workers all the same.
    let am = st.alertmanager.clone();
    let q2 = q.clone();
    match tokio::task::spawn_blocking(move || am.console(&q2)).await {
        Ok(Ok(page)) => crate::am::ok_json(json!({
            "status": "success",
            "data": page_json(&q, &page),
        })),
        Ok(Err(e)) => PromError::new(e.kind(), e.to_string()).into_response(),
        Err(e) => PromError::new(
            tocsin_model::ErrorKind::Internal,
            format!("console list failed: {e}"),
        )
        .into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<ConsoleQuery, String> {
        decode_query(&Params::new(Some(s), &HeaderMap::new(), &[]))
    }

    #[test]
    fn parameters_decode_with_defaults() {
        let d = q("").unwrap();
        assert_eq!(d.limit, 100);
        assert_eq!(d.offset, 0);
        assert_eq!(d.resolved_within_ms, 15 * 60_000);
        assert!(d.states.is_empty() && d.matchers.is_empty() && d.group_by.is_none());
        let x = q("filter=alertname%3D%22A%22&filter=job%3D~%22n.*%22&q=Disk&state=firing&state=silenced,resolved&group_by=route&limit=1000&offset=5&resolved_within=1h").unwrap();
        assert_eq!(x.matchers.len(), 2);
        assert_eq!(x.text, "Disk");
        assert_eq!(
            x.states,
            [
                ConsoleState::Firing,
                ConsoleState::Silenced,
                ConsoleState::Resolved
            ]
        );
        assert_eq!(x.group_by, Some(GroupBy::Route));
        assert_eq!((x.limit, x.offset), (1000, 5));
        assert_eq!(x.resolved_within_ms, 3_600_000);
        assert_eq!(
            q("group_by=instance").unwrap().group_by,
            Some(GroupBy::Label("instance".into()))
        );
        assert_eq!(q("resolved_within=0s").unwrap().resolved_within_ms, 0);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (s, field) in [
            ("limit=0", "limit:"),
            ("limit=1001", "limit:"),
            ("offset=-1", "offset:"),
            ("state=open", "state:"),
            ("group_by=0bad", "group_by:"),
            ("group=x", "group:"),
            ("filter=%7Bbad", "filter:"),
            ("resolved_within=soon", "resolved_within:"),
            ("resolved_within=30d", "resolved_within:"),
            ("group_limit=0", "group_limit:"),
        ] {
            let e = q(s).unwrap_err();
            assert!(e.starts_with(field), "{s}: {e}");
        }
    }
}
