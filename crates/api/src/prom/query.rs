//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query` and `/api/v1/query_exemplars`.
//!
//! Evaluation is CPU-bound and synchronous, so it runs on tokio's blocking pool; a semaphore of
//! `max_concurrency` permits queues queries beyond that, as Prometheus's query gate does, and the
//! time spent queued counts against the query's timeout, as it does there. A query that outlives
//! its timeout is answered with a timeout error at once, and its evaluation is canceled, as it is
//! when the request is dropped (its client went away); the evaluator notices within a
//! millisecond or so, and its thread keeps its permit until then, so concurrency stays bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tocsin_model::ErrorKind;
use tocsin_promql::{Cancel, Engine, EngineOptions, QueryOutput};
use tocsin_storage::Queryable;
use tokio::sync::Semaphore;

use super::encode::{query_data, success_raw, PromError};
use super::params::{parse_duration_ns, Params};
use crate::ApiState;

/// Prometheus refuses range queries with more points per series than this.
pub const MAX_POINTS_PER_SERIES: i128 = 11_000;

/// Engine settings and the concurrency gate shared by every query request.
pub struct QueryState {
    opts: EngineOptions,
    gate: Arc<Semaphore>,
    max_concurrency: usize,
}

impl QueryState {
    pub fn new(opts: EngineOptions, max_concurrency: usize) -> Self {
        let n = max_concurrency.max(1);
        Self {
            opts,
            gate: Arc::new(Semaphore::new(n)),
            max_concurrency: n,
        }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Runs `f` on the blocking pool once a permit is free, within `timeout` (queueing included).
    pub async fn run<F>(
        &self,
        queryable: Arc<dyn Queryable>,
        timeout: Duration,
        f: F,
    ) -> Result<QueryOutput, PromError>
    where
        F: FnOnce(&Engine, &dyn Queryable) -> tocsin_promql::Result<QueryOutput> + Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let permit = match tokio::time::timeout(timeout, self.gate.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(PromError::internal("the query gate is closed")),
            Err(_) => {
                return Err(PromError::new(
                    ErrorKind::Timeout,
                    "query timed out in query queue",
                ))
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let cancel = Cancel::new();
        // Dropped on every way out of this function, the request future's drop included.
        let _cancel_on_drop = cancel.on_drop();
        let engine = Engine::new(EngineOptions {
            timeout: remaining,
            ..self.opts.clone()
        })
        .with_cancel(cancel);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&engine, queryable.as_ref())
        });
        match tokio::time::timeout(remaining, task).await {
            Err(_) => Err(PromError::new(
                ErrorKind::Timeout,
                "query timed out in expression evaluation",
            )),
            Ok(Err(e)) => Err(PromError::internal(format!("query evaluation failed: {e}"))),
            Ok(Ok(res)) => res.map_err(PromError::from),
        }
    }
}

/// The request's timeout: the `timeout` parameter, never above the configured one.
fn timeout(st: &ApiState, p: &Params) -> Result<Duration, PromError> {
    let max = st.query.opts.timeout;
    match p.get("timeout") {
        None => Ok(max),
        Some(s) => {
            let ns = parse_duration_ns(s).map_err(|e| PromError::invalid_param("timeout", e))?;
            if ns <= 0 {
                return Err(PromError::invalid_param(
                    "timeout",
                    format!("{s:?}: the timeout must be positive"),
                ));
            }
            Ok(Duration::from_nanos(ns as u64).min(max))
        }
    }
}

/// Parses `query` first so a syntax error is a 400 naming the parameter, before any queueing.
/// A deep expression is only checked against the depth limit here: parsing it costs more than
/// an async worker should spend, so its parse errors come from the evaluation thread.
fn query_param(p: &Params) -> Result<String, PromError> {
    let q = p.get("query").unwrap_or("");
    tocsin_promql::parse_if_shallow(q).map_err(|e| PromError::invalid_param("query", e))?;
    Ok(q.to_string())
}

fn answer(out: QueryOutput, limit: usize) -> Response {
    let mut data = String::new();
    let mut warnings = out.warnings;
    if query_data(&mut data, &out.value, limit) {
        warnings.push("results truncated due to limit".into());
    }
    success_raw(&data, &warnings, &out.infos)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub async fn query(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    match query_inner(&st, &p).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn query_inner(st: &ApiState, p: &Params) -> Result<Response, PromError> {
    let limit = p.limit()?;
    let t = p.time_or("time", now_ms())?;
    let timeout = timeout(st, p)?;
    let expr = query_param(p)?;
    let out = st
        .query
        .run(st.queryable.clone(), timeout, move |engine, q| {
            engine.instant(q, &expr, t)
        })
        .await?;
    Ok(answer(out, limit))
}

pub async fn query_range(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    match query_range_inner(&st, &p).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Checks of a range query's parameters, in Prometheus's order and with its messages. Returns
/// (start, end, step) in ms.
pub fn range_params(p: &Params) -> Result<(i64, i64, i64), PromError> {
    let start = p.time("start")?;
    let end = p.time("end")?;
    if end < start {
        return Err(PromError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step_ns = parse_duration_ns(p.get("step").unwrap_or(""))
        .map_err(|e| PromError::invalid_param("step", e))?;
    if step_ns <= 0 {
        return Err(PromError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // Integer division of durations, as Go's `end.Sub(start)/step`.
    if (i128::from(end) - i128::from(start)) * 1_000_000 / i128::from(step_ns)
        > MAX_POINTS_PER_SERIES
    {
        return Err(PromError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    // The engine works in ms; a sub-millisecond step still advances.
    let step = (step_ns / 1_000_000).max(1);
    Ok((start, end, step))
}

async fn query_range_inner(st: &ApiState, p: &Params) -> Result<Response, PromError> {
    let limit = p.limit()?;
    let (start, end, step) = range_params(p)?;
    let timeout = timeout(st, p)?;
    let expr = query_param(p)?;
    let out = st
        .query
        .run(st.queryable.clone(), timeout, move |engine, q| {
            engine.range(q, &expr, start, end, step)
        })
        .await?;
    Ok(answer(out, limit))
}

pub async fn format_query(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    let q = p.get("query").unwrap_or("").to_string();
    // A deep expression takes a while to parse and print: not on an async worker.
    let pretty =
        tokio::task::spawn_blocking(move || tocsin_promql::parse(&q).map(|e| e.prettify())).await;
    match pretty {
        Ok(Ok(Ok(s))) => super::encode::success(&s, &[]),
        Ok(Ok(Err(e))) => PromError::from(e).into_response(),
        Ok(Err(e)) => PromError::invalid_param("query", e).into_response(),
        Err(e) => PromError::internal(format!("formatting failed: {e}")).into_response(),
    }
}

/// Exemplars are not stored yet: a valid request gets an empty list.
pub async fn query_exemplars(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::new(q.as_deref(), &headers, &body);
    let check = || -> Result<(), PromError> {
        let start = p.time_or("start", super::params::MIN_TIME_MS)?;
        let end = p.time_or("end", super::params::MAX_TIME_MS)?;
        if end < start {
            return Err(PromError::bad_data(
                "end timestamp must not be before start time",
            ));
        }
        query_param(&p)?;
        Ok(())
    };
    match check() {
        Ok(()) => success_raw("[]", &[], &[]),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(q: &str) -> Result<(i64, i64, i64), PromError> {
        range_params(&Params::new(Some(q), &HeaderMap::new(), b""))
    }

    #[test]
    fn range_parameters_are_checked_like_prometheus() {
        assert_eq!(range("start=0&end=60&step=15"), Ok((0, 60_000, 15_000)));
        assert_eq!(range("start=0&end=60&step=15s"), Ok((0, 60_000, 15_000)));
        assert_eq!(range("start=0&end=60&step=0.5"), Ok((0, 60_000, 500)));
        let msg = |q: &str| range(q).unwrap_err().message;
        assert!(msg("end=60&step=15").contains("invalid parameter \"start\""));
        assert!(msg("start=0&end=x&step=15").contains("invalid parameter \"end\""));
        assert!(msg("start=0&end=60&step=x").contains("invalid parameter \"step\""));
        assert!(msg("start=0&end=60").contains("invalid parameter \"step\""));
        assert_eq!(
            msg("start=60&end=0&step=15"),
            "end timestamp must not be before start time"
        );
        assert!(msg("start=0&end=60&step=0").starts_with("zero or negative"));
        assert!(msg("start=0&end=60&step=-1").starts_with("zero or negative"));
        assert_eq!(
            msg("start=0&end=11001&step=1"),
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        );
        assert!(range("start=0&end=11000&step=1").is_ok());
    }

    #[tokio::test]
    async fn the_gate_queues_and_times_out() {
        let st = QueryState::new(EngineOptions::default(), 1);
        let q: Arc<dyn Queryable> = Arc::new(tocsin_storage::MemoryStore::new());
        let hold = st.gate.clone().acquire_owned().await.unwrap();
        let e = st
            .run(q.clone(), Duration::from_millis(50), |_, _| {
                Err(tocsin_promql::Error::Canceled)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.message.contains("queue"), "{}", e.message);
        drop(hold);
        let e = st
            .run(q.clone(), Duration::from_secs(5), |_, _| {
                Err(tocsin_promql::Error::Execution("boom".into()))
            })
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Execution, "boom"));
        let e = st
            .run(q, Duration::from_millis(50), |_, _| {
                std::thread::sleep(Duration::from_millis(300));
                Err(tocsin_promql::Error::Canceled)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
    }
}
