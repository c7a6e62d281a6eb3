//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values` and `/api/v1/metadata`: what
//! Grafana's label browser and metric autocomplete ask. Index lookups, not evaluation, so they skip
//! the query gate; they still run on the blocking pool, since a broad selector can take a while.
//!
//! With `limit`, Prometheus returns the first `limit` entries and the warning
//! "results truncated due to limit" when there were more.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tocsin_model::{Labels, Matcher};
use tocsin_storage::SelectHints;

use super::encode::{labels_json, success, success_raw, PromError};
use super::params::{Params, MAX_TIME_MS, MIN_TIME_MS};
use crate::ApiState;

pub const TRUNCATED: &str = "results truncated due to limit";

/// Keeps the first `limit` entries (0 = all); returns the warnings to send.
fn truncate<T>(v: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        vec![TRUNCATED.to_string()]
    } else {
        Vec::new()
    }
}

/// Runs a storage read on the blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, PromError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PromError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PromError::internal(format!("request failed: {e}")))?
}

fn respond(r: Result<Response, PromError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

pub async fn series(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    respond(series_inner(st, p).await)
}

async fn series_inner(st: ApiState, p: Params) -> Result<Response, PromError> {
    if p.all("match[]").is_empty() {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let sets = p.matcher_sets()?;
    let out = blocking(move || {
        let q = st.queryable.querier(start, end)?;
        let hints = SelectHints {
            start,
            end,
            func: Some("series".into()),
            ..SelectHints::default()
        };
        let mut seen: BTreeSet<Labels> = BTreeSet::new();
        for ms in &sets {
            for s in q.select(&hints, ms)? {
                seen.insert(s?.labels);
                // One more than the limit is enough to know the answer was cut.
                if limit > 0 && sets.len() == 1 && seen.len() > limit {
                    break;
                }
            }
        }
        Ok((seen.into_iter().collect::<Vec<_>>(), q.warnings()))
    })
    .await?;
    let (mut out, mut warnings) = out;
    warnings.extend(truncate(&mut out, limit));
    let mut data = String::from("[");
    for (i, l) in out.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        labels_json(&mut data, l);
    }
    data.push(']');
    Ok(success_raw(&data, &warnings, &[]))
}

/// Union of `f` over the `match[]` sets (or `f(&[])` without any), sorted and unique.
fn union(
    sets: &[Vec<Matcher>],
    mut f: impl FnMut(&[Matcher]) -> tocsin_storage::Result<Vec<String>>,
) -> Result<Vec<String>, PromError> {
    if sets.is_empty() {
        return Ok(f(&[])?);
    }
    if sets.len() == 1 {
        return Ok(f(&sets[0])?);
    }
    let mut all = BTreeSet::new();
    for ms in sets {
        all.extend(f(ms)?);
    }
    Ok(all.into_iter().collect())
}

pub async fn labels(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    respond(labels_inner(st, p).await)
}

async fn labels_inner(st: ApiState, p: Params) -> Result<Response, PromError> {
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let sets = p.matcher_sets()?;
    let (mut names, mut warnings) = blocking(move || {
        let q = st.queryable.querier(start, end)?;
        let names = union(&sets, |ms| q.label_names(ms))?;
        Ok((names, q.warnings()))
    })
    .await?;
    warnings.extend(truncate(&mut names, limit));
    Ok(success(&names, &warnings))
}

pub async fn label_values(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, b"");
    respond(label_values_inner(st, name, p).await)
}

async fn label_values_inner(st: ApiState, name: String, p: Params) -> Result<Response, PromError> {
    if tocsin_model::labels::validate_label_name(&name).is_err() {
        return Err(PromError::bad_data(format!("invalid label name: {name:?}")));
    }
    let start = p.time_or("start", MIN_TIME_MS)?;
    let end = p.time_or("end", MAX_TIME_MS)?;
    let limit = p.limit()?;
    let sets = p.matcher_sets()?;
    // Tocsin's extra for completion: only values holding this text (any case), before `limit`.
    let contains = p.get("contains").map(str::to_lowercase);
    let (mut values, mut warnings) = blocking(move || {
        let q = st.queryable.querier(start, end)?;
        let values = union(&sets, |ms| q.label_values(&name, ms))?;
        Ok((values, q.warnings()))
    })
    .await?;
    if let Some(c) = &contains {
        values.retain(|v| tocsin_alerts::console::contains_ci(v, c));
    }
    warnings.extend(truncate(&mut values, limit));
    Ok(success(&values, &warnings))
}

pub async fn metadata(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, b"");
    respond(metadata_inner(&st, &p))
}

/// A count parameter of the metadata endpoint: absent = -1 (no limit), as Prometheus.
fn count_param(p: &Params, key: &str) -> Result<i64, PromError> {
    match p.get(key) {
        None => Ok(-1),
        Some(s) => s
            .parse()
            .map_err(|_| PromError::bad_data(format!("{key} must be a number"))),
    }
}

fn metadata_inner(st: &ApiState, p: &Params) -> Result<Response, PromError> {
    let limit = count_param(p, "limit")?;
    // Checked, but one entry per metric is kept, so no per-metric limit (0 and negative mean
    // none in Prometheus) changes the answer.
    count_param(p, "limit_per_metric")?;
    let mut res: BTreeMap<String, Value> = BTreeMap::new();
    for (name, md) in st.metadata.metadata(p.get("metric")) {
        if limit >= 0 && res.len() as i64 >= limit {
            break;
        }
        res.insert(
            name,
            json!([{"type": md.kind, "help": md.help, "unit": md.unit}]),
        );
    }
    Ok(success(&res, &[]))
}
