//! Push endpoints: InfluxDB line protocol (`POST /write` for 1.x clients, `POST /api/v2/write`
//! for 2.x), the bits of the InfluxDB API Telegraf needs to start (`/ping`, `CREATE DATABASE` on
//! `/query`), and the JSON custom-metric API (`POST /api/v1/push`, and Cloud Monitoring's REST
//! path `POST /v3/projects/{project}/timeSeries`).
//!
//! Partial-failure policy, the same for both formats: everything good in a request is written; if
//! anything was refused (a bad line, a bad time series, a sample the store rejects), the answer is
//! 400 with a JSON `{"error": "..."}` naming each refused line or JSON path (the list is capped and
//! says how many more there were). The message starts with `partial write:` as InfluxDB's does, so
//! Telegraf drops the batch instead of retrying data that can never be accepted.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tocsin_collect::lineproto::{Decoder, Options, Precision, Report};
use tocsin_model::{Clock, ErrorKind, SystemClock};

use crate::error::ApiError;
use crate::prom::encode::PromError;
use crate::ApiState;

/// Largest decompressed request body accepted on push endpoints.
pub const MAX_DECOMPRESSED_BODY: u64 = 256 << 20;

/// The InfluxDB version `/ping` reports; clients only check that the header is there.
pub const INFLUXDB_VERSION: &str = "1.8.10";

/// Counters of the push endpoints, read by the server's `/metrics`.
#[derive(Debug, Default)]
pub struct PushMetrics {
    pub influx_requests_ok: AtomicU64,
    pub influx_requests_bad: AtomicU64,
    pub influx_requests_failed: AtomicU64,
    pub influx_samples_received: AtomicU64,
    pub influx_samples_rejected: AtomicU64,
    pub influx_lines_rejected: AtomicU64,
    pub influx_string_fields_skipped: AtomicU64,
    pub json_requests_ok: AtomicU64,
    pub json_requests_bad: AtomicU64,
    pub json_requests_failed: AtomicU64,
    pub json_samples_received: AtomicU64,
    pub json_samples_rejected: AtomicU64,
    pub json_series_rejected: AtomicU64,
}

/// Samples the store refused one by one.
#[derive(Debug, Default)]
struct Refused {
    count: u64,
    first: Option<String>,
}

impl Refused {
    fn note(&mut self, msg: String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(msg);
        }
    }

    fn add_commit(&mut self, stats: &tocsin_storage::CommitStats) {
        self.count += stats.rejected();
        if self.first.is_none() {
            self.first = stats.first_rejection.clone();
        }
    }

    fn message(&self) -> Option<String> {
        (self.count > 0).then(|| {
            format!(
                "{} samples refused by storage (out of order, too old, older than retention, too far in the future, over a label limit, or duplicate with a different value); first: {}",
                self.count,
                self.first.as_deref().unwrap_or("")
            )
        })
    }
}

/// Which InfluxDB API a write came in on; decides the precision names and the error body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

fn json_error(status: StatusCode, api: Api, msg: &str) -> Response {
    // 2.x clients read `code` and `message`; 1.x clients (and everyone else) read `error`.
    let body = match api {
        Api::V1 => serde_json::json!({ "error": msg }),
        Api::V2 => serde_json::json!({ "code": "invalid", "message": msg, "error": msg }),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn api_error(e: ApiError, api: Api) -> Response {
    json_error(crate::error::status_for(e.kind), api, &e.message)
}

fn query_param(query: &Option<String>, name: &str) -> Option<String> {
    let q = query.as_deref()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The request body, gunzipped when `Content-Encoding: gzip`.
fn request_body(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4));
            flate2::read::MultiGzDecoder::new(&body[..])
                .take(MAX_DECOMPRESSED_BODY + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::new(
                        ErrorKind::BadData,
                        format!("request body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() as u64 > MAX_DECOMPRESSED_BODY {
                return Err(ApiError::new(
                    ErrorKind::BadData,
                    format!("request body decompresses to more than {MAX_DECOMPRESSED_BODY} bytes"),
                ));
            }
            Ok(Bytes::from(out))
        }
        other => Err(ApiError::new(
            ErrorKind::BadData,
            format!("unsupported Content-Encoding {other:?} (use gzip or none)"),
        )),
    }
}

/// `POST /write`: InfluxDB 1.x. `db`, `rp`, `u`, `p` and `consistency` are accepted and ignored.
pub async fn influx_write_v1(
    State(st): State<ApiState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = query_param(&query, "precision").unwrap_or_default();
    match Precision::from_v1(&p) {
        Some(precision) => influx_write(st, Api::V1, precision, headers, body).await,
        None => json_error(
            StatusCode::BAD_REQUEST,
            Api::V1,
            &format!("precision: {p:?} is not one of n, ns, u, us, µ, ms, s, m, h"),
        ),
    }
}

/// `POST /api/v2/write`: InfluxDB 2.x. `org`, `bucket` and the `Authorization` token are ignored.
pub async fn influx_write_v2(
    State(st): State<ApiState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = query_param(&query, "precision").unwrap_or_default();
    match Precision::from_v2(&p) {
        Some(precision) => influx_write(st, Api::V2, precision, headers, body).await,
        None => json_error(
            StatusCode::BAD_REQUEST,
            Api::V2,
            &format!("precision: {p:?} is not one of ns, us, ms, s"),
        ),
    }
}

async fn influx_write(
    st: ApiState,
    api: Api,
    precision: Precision,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let opts = Options {
        precision,
        now_ms: SystemClock.now_ms(),
    };
    let st2 = st.clone();
    // Parsing and appending are CPU work; the blocking pool keeps the reactor free (as remote write).
    let res = tokio::task::spawn_blocking(move || {
        let body = request_body(&headers, body)?;
        ingest_lines(&st2, &body, &opts)
    })
    .await;
    let m = &st.push_metrics;
    match res {
        Ok(Ok(None)) => {
            m.influx_requests_ok.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Ok(Some(msg))) => {
            m.influx_requests_bad.fetch_add(1, Ordering::Relaxed);
            json_error(StatusCode::BAD_REQUEST, api, &msg)
        }
        Ok(Err(e)) => {
            if e.kind == ErrorKind::BadData {
                m.influx_requests_bad.fetch_add(1, Ordering::Relaxed);
            } else {
                m.influx_requests_failed.fetch_add(1, Ordering::Relaxed);
            }
            api_error(e, api)
        }
        Err(e) => {
            m.influx_requests_failed.fetch_add(1, Ordering::Relaxed);
            api_error(
                ApiError::new(ErrorKind::Internal, format!("write failed: {e}")),
                api,
            )
        }
    }
}

thread_local! {
    /// One decoder per blocking worker thread: its scratch buffers outlive requests.
    static DECODER: std::cell::RefCell<Decoder> = std::cell::RefCell::new(Decoder::new());
}

/// Returns `Ok(None)` when everything was written, `Ok(Some(message))` on a partial write.
fn ingest_lines(st: &ApiState, body: &[u8], opts: &Options) -> Result<Option<String>, ApiError> {
    let mut app = st.appendable.appender();
    let mut report = Report::default();
    let mut refused = Refused::default();
    let res = DECODER.with(|cell| {
        let mut fresh;
        let mut guard;
        let dec: &mut Decoder = match cell.try_borrow_mut() {
            Ok(g) => {
                guard = g;
                &mut guard
            }
            Err(_) => {
                fresh = Decoder::new();
                &mut fresh
            }
        };
        dec.decode(body, opts, &mut report, |pairs, t, v| {
            match app.append_pairs(pairs, t, v) {
                Ok(_) => Ok(()),
                Err(e) if e.is_sample_rejection() => {
                    let mut msg = e.to_string();
                    if matches!(
                        e,
                        tocsin_storage::Error::TooFarInFuture { .. }
                            | tocsin_storage::Error::OlderThanRetention { .. }
                    ) {
                        if let Some(h) = tocsin_collect::lineproto::precision_hint(
                            t,
                            opts.precision,
                            opts.now_ms,
                        ) {
                            msg = format!("{msg} ({h})");
                        }
                    }
                    refused.note(msg);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    });
    if let Err(e) = res {
        app.rollback();
        return Err(e.into());
    }
    let stats = app.commit()?;
    refused.add_commit(&stats);
    let m = &st.push_metrics;
    m.influx_samples_received
        .fetch_add(report.samples, Ordering::Relaxed);
    m.influx_samples_rejected
        .fetch_add(refused.count, Ordering::Relaxed);
    m.influx_lines_rejected
        .fetch_add(report.bad_total, Ordering::Relaxed);
    m.influx_string_fields_skipped
        .fetch_add(report.strings_skipped, Ordering::Relaxed);
    let mut parts = Vec::new();
    if report.bad_total > 0 {
        parts.push(report.bad_lines_message());
    }
    if let Some(r) = refused.message() {
        parts.push(r);
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "partial write: {}; the other lines were written dropped={}",
        parts.join("; "),
        report.bad_total + refused.count
    )))
}

/// `GET|HEAD /ping`: what InfluxDB clients probe before writing.
pub async fn ping() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        "X-Influxdb-Version",
        HeaderValue::from_static(INFLUXDB_VERSION),
    );
    h.insert("X-Influxdb-Build", HeaderValue::from_static("OSS"));
    r
}

/// `GET|POST /query`: only `CREATE DATABASE`, which Telegraf's influxdb output sends on start; the
/// database name is ignored because all data lands in one store.
pub async fn influx_query(RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mut q = query_param(&query, "q");
    if q.is_none() && form {
        q = form_urlencoded::parse(&body)
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.into_owned());
    }
    let Some(q) = q else {
        return json_error(
            StatusCode::BAD_REQUEST,
            Api::V1,
            "missing required parameter \"q\"",
        );
    };
    let words: Vec<String> = q
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    if words == ["CREATE", "DATABASE"] {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"results":[{"statement_id":0}]}"#,
        )
            .into_response();
    }
    json_error(
        StatusCode::BAD_REQUEST,
        Api::V1,
        &format!("q: only CREATE DATABASE is supported here (InfluxQL queries are not), got {q:?}"),
    )
}

/// `POST /api/v1/push`: Cloud Monitoring style JSON time series (see `tocsin_collect::jsonpush`).
/// Errors come in Prometheus's `/api/v1` envelope (`error` holds the message, as before).
pub async fn json_push(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    match json_ingest(&st, headers, body, None).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => PromError::new(e.kind, e.message).into_response(),
    }
}

/// `POST /v3/projects/{project}/timeSeries`: the REST path of Cloud Monitoring's
/// `CreateTimeSeries`, so its client libraries can be pointed at Tocsin. Success is `{}`; errors
/// are Google's `{"error": {"code", "message", "status"}}`.
pub async fn create_time_series(
    State(st): State<ApiState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match json_ingest(&st, headers, body, Some(project)).await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response(),
        Err(e) => {
            let status = crate::error::status_for(e.kind);
            let g = match status.as_u16() {
                400 => "INVALID_ARGUMENT",
                404 => "NOT_FOUND",
                503 => "UNAVAILABLE",
                499 => "CANCELLED",
                _ => "INTERNAL",
            };
            let body = serde_json::json!({"error": {"code": status.as_u16(), "message": e.message, "status": g}});
            (status, axum::Json(body)).into_response()
        }
    }
}

async fn json_ingest(
    st: &ApiState,
    headers: HeaderMap,
    body: Bytes,
    project: Option<String>,
) -> Result<(), ApiError> {
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || {
        let body = request_body(&headers, body)?;
        ingest_json(&st2, &body, project.as_deref())
    })
    .await;
    let m = &st.push_metrics;
    match res {
        Ok(Ok(None)) => {
            m.json_requests_ok.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Ok(Ok(Some(msg))) => {
            m.json_requests_bad.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(ErrorKind::BadData, msg))
        }
        Ok(Err(e)) => {
            if e.kind == ErrorKind::BadData {
                m.json_requests_bad.fetch_add(1, Ordering::Relaxed);
            } else {
                m.json_requests_failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e)
        }
        Err(e) => {
            m.json_requests_failed.fetch_add(1, Ordering::Relaxed);
            Err(ApiError::new(
                ErrorKind::Internal,
                format!("push failed: {e}"),
            ))
        }
    }
}

fn ingest_json(
    st: &ApiState,
    body: &[u8],
    project: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let decoded = tocsin_collect::jsonpush::decode_for_project(body, project)
        .map_err(|e| ApiError::new(e.kind(), e.to_string()))?;
    let mut app = st.appendable.appender();
    let mut refused = Refused::default();
    let mut total = 0u64;
    for s in &decoded.series {
        let pairs = s.pairs();
        for &(t, v) in &s.samples {
            total += 1;
            match app.append_pairs(&pairs, t, v) {
                Ok(_) => {}
                Err(e) if e.is_sample_rejection() => refused.note(e.to_string()),
                Err(e) => {
                    app.rollback();
                    return Err(e.into());
                }
            }
        }
    }
    let stats = app.commit()?;
    refused.add_commit(&stats);
    let m = &st.push_metrics;
    m.json_samples_received.fetch_add(total, Ordering::Relaxed);
    m.json_samples_rejected
        .fetch_add(refused.count, Ordering::Relaxed);
    m.json_series_rejected
        .fetch_add(decoded.errors_total, Ordering::Relaxed);
    let mut parts = Vec::new();
    if decoded.errors_total > 0 {
        parts.push(decoded.errors_message());
    }
    if let Some(r) = refused.message() {
        parts.push(r);
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "partial write: {}; the other time series were written",
        parts.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;
    use std::sync::Arc;

    use super::*;
    use tocsin_storage::{MemoryStore, Queryable, SelectHints};

    struct NoDelete;
    impl tocsin_storage::Deletable for NoDelete {
        fn delete(
            &self,
            _: i64,
            _: i64,
            _: &[tocsin_model::Matcher],
        ) -> tocsin_storage::Result<u64> {
            Ok(0)
        }
    }

    fn state(store: &MemoryStore) -> ApiState {
        ApiState {
            appendable: Arc::new(store.clone()),
            write_metrics: Arc::default(),
            push_metrics: Arc::default(),
            deletable: Arc::new(NoDelete),
            targets: Arc::new(tocsin_collect::scrape::NoTargets),
            queryable: Arc::new(store.clone()),
            local_queryable: None,
            query: Arc::new(crate::QueryState::new(
                tocsin_promql::EngineOptions::default(),
                1,
            )),
            metadata: Arc::new(tocsin_collect::scrape::NoMetadata),
            tsdb_stats: Arc::new(crate::prom::NoStatus),
            status: Arc::new(crate::prom::NoStatus),
            rules: Arc::new(crate::prom::NoRules),
            alertmanager: Arc::new(crate::am::NoAlertmanager),
            admin: None,
            actions: None,
            alerta: Default::default(),
        }
    }

    fn count(store: &MemoryStore) -> usize {
        let q = store.querier(i64::MIN, i64::MAX).unwrap();
        q.select(&SelectHints::default(), &[])
            .unwrap()
            .map(|s| s.unwrap().collect_samples().1.len())
            .sum()
    }

    #[test]
    fn lines_partial_write_message_and_counters() {
        let store = MemoryStore::new();
        let st = state(&store);
        let opts = Options {
            precision: Precision::Seconds,
            now_ms: 0,
        };
        let body = b"a v=1,s=\"x\" 1\nbad\na v=2 2\n";
        let msg = ingest_lines(&st, body, &opts).unwrap().unwrap();
        assert!(
            msg.starts_with("partial write: line 2: missing fields"),
            "{msg}"
        );
        assert!(msg.ends_with("dropped=1"), "{msg}");
        assert_eq!(count(&store), 2);
        let m = &st.push_metrics;
        assert_eq!(m.influx_lines_rejected.load(Ordering::Relaxed), 1);
        assert_eq!(m.influx_string_fields_skipped.load(Ordering::Relaxed), 1);
        assert_eq!(m.influx_samples_received.load(Ordering::Relaxed), 2);
        assert_eq!(ingest_lines(&st, b"a v=3 3\n", &opts).unwrap(), None);
    }

    #[test]
    fn json_partial_write() {
        let store = MemoryStore::new();
        let st = state(&store);
        let body = br#"{"timeSeries":[{"metric":{"type":"a"},"points":[{"interval":{"endTime":"2024-01-01T00:00:00Z"},"value":{"doubleValue":1}}]},{"metric":{"type":"b"}}]}"#;
        let msg = ingest_json(&st, body, None).unwrap().unwrap();
        assert!(msg.contains("timeSeries[1].points: missing"), "{msg}");
        assert_eq!(count(&store), 1);
        assert_eq!(
            st.push_metrics.json_series_rejected.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn gzip_bodies_are_inflated_and_garbage_refused() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"m v=1").unwrap();
        let gz = Bytes::from(e.finish().unwrap());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(&request_body(&h, gz).unwrap()[..], b"m v=1");
        assert!(request_body(&h, Bytes::from_static(b"plain")).is_err());
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        let e = request_body(&h, Bytes::from_static(b"x")).unwrap_err();
        assert!(
            e.message.contains("unsupported Content-Encoding"),
            "{}",
            e.message
        );
    }
}
