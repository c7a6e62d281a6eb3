//! `POST /api/v1/admin/tsdb/delete_series`: deletes samples of series matching `match[]` selectors
//! within [`start`, `end`], as Prometheus's admin API does. Parameters come from the query string
//! or a form body. Deleted data disappears from queries at once and from disk at the next
//! compaction of the affected blocks.

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

pub async fn delete_series(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    match delete_inner(&st, q.as_deref(), &body) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        // Under /api/v1 errors come in Prometheus's envelope.
        Err(e) => PromError::new(e.kind, e.message).into_response(),
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
        assert_eq!(
            parse_time("start", "2026-01-02T03:04:05.5Z").unwrap(),
            1_767_323_045_500
        );
    }
}
