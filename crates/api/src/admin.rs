//! The TSDB admin API, as Prometheus's: `delete_series` deletes samples of series matching
//! `match[]` selectors within [`start`, `end`] (gone from queries at once, from disk at the next
//! compaction of the affected blocks or at `clean_tombstones`), `snapshot` copies the data into
//! `<data>/snapshots/<name>`. Parameters come from the query string or a form body. All of it is
//! refused (503, as Prometheus answers) unless the server runs with `--web.enable-admin-api`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tocsin_model::{ErrorKind, Matcher};

use crate::error::ApiError;
use crate::prom::encode::PromError;
use crate::ApiState;

/// A Prometheus API time: RFC 3339 or Unix seconds (with fraction), as the query endpoints take.
fn parse_time(field: &str, s: &str) -> Result<i64, ApiError> {
    crate::prom::params::parse_time(s).map_err(|e| {
        ApiError::new(
            ErrorKind::BadData,
            format!("invalid parameter {field:?}: {e}"),
        )
    })
}

fn params(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .chain(form_urlencoded::parse(body))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Snapshots and tombstone cleaning, which only a database with files has.
pub trait TsdbAdmin: Send + Sync {
    /// Takes a snapshot and returns its name (the directory under `<data>/snapshots/`).
    fn snapshot(&self, skip_head: bool) -> tocsin_storage::Result<String>;
    /// Rewrites the blocks that have tombstones, so deleted data leaves the disk now.
    fn clean_tombstones(&self) -> tocsin_storage::Result<()>;
}

/// The answer while the admin API is off: Prometheus's status code, error type and message.
fn disabled() -> Response {
    PromError::new(ErrorKind::Unavailable, "admin APIs disabled").into_response()
}

/// The admin seam when `--web.enable-admin-api` was given.
fn enabled(st: &ApiState) -> Option<std::sync::Arc<dyn TsdbAdmin>> {
    st.admin.clone()
}

pub async fn delete_series(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if enabled(&st).is_none() {
        return disabled();
    }
    match delete_inner(&st, q.as_deref(), &body) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        // Under /api/v1 errors come in Prometheus's envelope.
        Err(e) => PromError::new(e.kind, e.message).into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/snapshot[?skip_head=true]`: `{"name": ...}` in the success
/// envelope.
pub async fn snapshot(State(st): State<ApiState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let Some(admin) = enabled(&st) else {
        return disabled();
    };
    let mut skip_head = false;
    for (k, v) in params(q.as_deref(), &body) {
        if k == "skip_head" {
            skip_head = match parse_bool(&v) {
                Some(b) => b,
                None => {
                    return PromError::new(
                        ErrorKind::BadData,
                        format!("invalid parameter \"skip_head\": {v:?} is not a boolean"),
                    )
                    .into_response()
                }
            };
        }
    }
    // Writing the head out and linking block files is disk work.
    match tokio::task::spawn_blocking(move || admin.snapshot(skip_head)).await {
        Ok(Ok(name)) => crate::prom::encode::success(&serde_json::json!({ "name": name }), &[]),
        Ok(Err(e)) => {
            let e = ApiError::from(e);
            PromError::new(e.kind, format!("create snapshot: {}", e.message)).into_response()
        }
        Err(e) => PromError::internal(format!("create snapshot: {e}")).into_response(),
    }
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: 204 once the blocks are rewritten.
pub async fn clean_tombstones(State(st): State<ApiState>) -> Response {
    let Some(admin) = enabled(&st) else {
        return disabled();
    };
    match tokio::task::spawn_blocking(move || admin.clean_tombstones()).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => {
            let e = ApiError::from(e);
            PromError::new(e.kind, format!("clean tombstones: {}", e.message)).into_response()
        }
        Err(e) => PromError::internal(format!("clean tombstones: {e}")).into_response(),
    }
}

/// Go's `strconv.ParseBool`, which Prometheus uses for boolean parameters.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn delete_inner(st: &ApiState, q: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let del = &st.deletable;
    let mut start = i64::MIN;
    let mut end = i64::MAX;
    let mut selectors = Vec::new();
    for (k, v) in params(q, body) {
        match k.as_str() {
            "match[]" => selectors.push(v),
            "start" => start = parse_time("start", &v)?,
            "end" => end = parse_time("end", &v)?,
            _ => {}
        }
    }
    if selectors.is_empty() {
        return Err(ApiError::new(
            ErrorKind::BadData,
            "no match[] parameter provided",
        ));
    }
    for sel in selectors {
        let ms = Matcher::parse_selector(&sel).map_err(|e| {
            ApiError::new(
                ErrorKind::BadData,
                format!("invalid parameter \"match[]\": {e}"),
            )
        })?;
        let n = del.delete(start, end, &ms)?;
        tracing::info!(selector = %sel, start, end, series = n, "deleted series data");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn form_and_query_params_are_decoded() {
        let p = params(
            Some("match%5B%5D=up%7Bjob%3D%22a%22%7D&start=1"),
            b"end=2.5",
        );
        assert_eq!(p[0], ("match[]".into(), "up{job=\"a\"}".into()));
        assert_eq!(parse_time("end", &p[2].1).unwrap(), 2500);
        assert!(parse_time("start", "x").is_err());
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(
            parse_time("start", "2026-01-02T03:04:05.5Z").unwrap(),
            1_767_323_045_500
        );
    }
}
