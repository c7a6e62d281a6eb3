//! `/api/v1/status/*`: buildinfo, runtimeinfo, flags, config and tsdb, in Prometheus's shapes.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::encode::{success, PromError};
use super::params::Params;
use crate::ApiState;

/// The Prometheus release whose API this server answers like. Clients such as Grafana read
/// `version` to decide which requests they may send (label `match[]` and `limit` parameters, ...);
/// 2.55 has every one of those this API implements and none of 3.0's UTF-8 name quoting, which it
/// does not.
pub const PROMETHEUS_COMPAT_VERSION: &str = "2.55.0";

pub async fn buildinfo() -> Response {
    let b = tocsin_model::build::get();
    success(
        &json!({
            "version": PROMETHEUS_COMPAT_VERSION,
            "revision": b.revision,
            "branch": b.branch,
            "buildUser": "",
            "buildDate": b.date,
            "goVersion": "",
            "application": "tocsin",
            "tocsinVersion": b.version,
        }),
        &[],
    )
}

fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

pub async fn runtimeinfo(State(st): State<ApiState>) -> Response {
    let r = st.status.runtime_info();
    success(
        &json!({
            "startTime": rfc3339_ms(r.start_time_ms),
            "CWD": r.cwd,
            "reloadConfigSuccess": r.reload_config_success,
            "lastConfigTime": humantime::format_rfc3339_seconds(
                UNIX_EPOCH + Duration::from_secs(r.last_config_time.max(0) as u64)
            ).to_string(),
            "corruptionCount": r.corruption_count,
            "goroutineCount": r.threads,
            "GOMAXPROCS": r.threads,
            "GOMEMLIMIT": i64::MAX,
            "GOGC": "",
            "GODEBUG": "",
            "storageRetention": r.storage_retention,
        }),
        &[],
    )
}

pub async fn flags(State(st): State<ApiState>) -> Response {
    success(&st.status.flags(), &[])
}

pub async fn config(State(st): State<ApiState>) -> Response {
    success(&json!({ "yaml": st.status.config_yaml() }), &[])
}

fn stats_list(v: &[(String, u64)]) -> Value {
    Value::Array(
        v.iter()
            .map(|(n, c)| json!({"name": n, "value": c}))
            .collect(),
    )
}

pub async fn tsdb(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, b"");
    let limit = match p.get("limit") {
        None => 10,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return PromError::bad_data("limit must be a positive number").into_response(),
        },
    };
    let view = st.tsdb_stats.clone();
    let res = tokio::task::spawn_blocking(move || view.tsdb_status(limit)).await;
    let s = match res {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return PromError::from(e).into_response(),
        Err(e) => return PromError::internal(format!("request failed: {e}")).into_response(),
    };
    success(
        &json!({
            "headStats": {
                "numSeries": s.head.num_series,
                "numLabelPairs": s.head.num_label_pairs,
                "chunkCount": s.head.chunk_count,
                "minTime": s.head.min_time,
                "maxTime": s.head.max_time,
            },
            "seriesCountByMetricName": stats_list(&s.series_count_by_metric_name),
            "labelValueCountByLabelName": stats_list(&s.label_value_count_by_label_name),
            "memoryInBytesByLabelName": stats_list(&s.memory_in_bytes_by_label_name),
            "seriesCountByLabelValuePair": stats_list(&s.series_count_by_label_value_pair),
            // Tocsin's addition, for the status page's cardinality growth.
            "seriesCreatedPerHour": s.series_created_per_hour.iter().map(|(t, n)| json!({
                "time": tocsin_model::time::format_rfc3339_millis(*t),
                "count": n,
            })).collect::<Vec<_>>(),
        }),
        &[],
    )
}
