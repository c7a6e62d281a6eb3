//! `POST /api/v1/write`: Prometheus remote write 1.0 (other message types and encodings: 415). A request that fails to decode or validate is
//! rejected whole (400, nothing written). Samples the store refuses one by one (out of order, too
//! old, duplicate) are counted and reported in a 400 body while the rest are written, as Prometheus
//! does, so the sender does not retry data that can never be accepted.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tocsin_model::ErrorKind;

use tocsin_collect::remote_write::{DecodedWrite, DEFAULT_MAX_DECOMPRESSED_BYTES};

use crate::error::ApiError;
use crate::ApiState;

#[derive(Debug, Default)]
pub struct WriteMetrics {
    pub requests_ok: AtomicU64,
    pub requests_bad: AtomicU64,
    pub requests_failed: AtomicU64,
    pub samples_received: AtomicU64,
    pub samples_rejected: AtomicU64,
}

/// Checks that the request is remote write 1.0. The remote-write 2.0 specification has receivers
/// answer 415 to a message type they do not implement, so that a 2.0 sender falls back to 1.0;
/// decoding a 2.0 body as 1.0 would find no series and answer 204 while storing nothing.
fn check_remote_write_1(headers: &HeaderMap) -> Result<(), String> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .map_err(|_| "Content-Type: not valid text".to_string())?;
        let mut parts = ct.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(format!(
                "Content-Type {ct:?} is not supported: remote write takes application/x-protobuf"
            ));
        }
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("proto") {
                let v = v.trim().trim_matches('"');
                if v != "prometheus.WriteRequest" {
                    return Err(format!(
                        "Content-Type {ct:?}: proto={v} is not supported; this receiver \
                         implements remote write 1.0 only (proto=prometheus.WriteRequest)"
                    ));
                }
            }
        }
    }
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or_default().trim();
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(format!(
                "Content-Encoding {enc:?} is not supported: remote write takes snappy"
            ));
        }
    }
    Ok(())
}

pub async fn remote_write(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(msg) = check_remote_write_1(&headers) {
        st.write_metrics
            .requests_bad
            .fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{msg}\n")).into_response();
    }
    // Decoding and appending are CPU work measured in hundreds of microseconds; running them on a
    // blocking thread keeps the reactor responsive for health checks under heavy ingest.
    let st2 = st.clone();
    let res = tokio::task::spawn_blocking(move || ingest(&st2, &body)).await;
    let m = &st.write_metrics;
    match res {
        Ok(Ok(None)) => {
            m.requests_ok.fetch_add(1, Ordering::Relaxed);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Ok(Some(msg))) => {
            m.requests_bad.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, msg).into_response()
        }
        Ok(Err(e)) => {
            if e.kind == ErrorKind::BadData {
                m.requests_bad.fetch_add(1, Ordering::Relaxed);
            } else {
                m.requests_failed.fetch_add(1, Ordering::Relaxed);
            }
            e.into_response()
        }
        Err(e) => {
            m.requests_failed.fetch_add(1, Ordering::Relaxed);
            ApiError::new(ErrorKind::Internal, format!("write failed: {e}")).into_response()
        }
    }
}

thread_local! {
    /// One decode buffer per blocking worker thread, reused across requests: a fresh multi-hundred
    /// kilobyte buffer per request costs page faults and zeroing that showed up as ~8% of ingest.
    static DECODED: std::cell::RefCell<DecodedWrite> = std::cell::RefCell::new(DecodedWrite::default());
}

/// Returns `Ok(None)` when every sample was written, `Ok(Some(message))` when some were refused.
fn ingest(st: &ApiState, body: &[u8]) -> Result<Option<String>, ApiError> {
    DECODED.with(|cell| match cell.try_borrow_mut() {
        Ok(mut req) => ingest_with(st, body, &mut req),
        Err(_) => ingest_with(st, body, &mut DecodedWrite::default()),
    })
}

fn ingest_with(
    st: &ApiState,
    body: &[u8],
    req: &mut DecodedWrite,
) -> Result<Option<String>, ApiError> {
    req.decode_into(body, DEFAULT_MAX_DECOMPRESSED_BYTES)
        .map_err(|e| ApiError::new(ErrorKind::BadData, format!("remote write: {e}")))?;
    let mut app = st.appendable.appender();
    let mut total = 0u64;
    let mut rejected = 0u64;
    let mut first: Option<String> = None;
    for s in req.series() {
        let pairs = s.labels();
        for &(t, v) in s.samples() {
            total += 1;
            match app.append_pairs(pairs, t, v) {
                Ok(_) => {}
                Err(e) if e.is_sample_rejection() => {
                    rejected += 1;
                    if first.is_none() {
                        first = Some(e.to_string());
                    }
                }
                Err(e) => {
                    app.rollback();
                    return Err(e.into());
                }
            }
        }
    }
    let stats = app.commit()?;
    rejected += stats.rejected();
    if first.is_none() {
        first = stats.first_rejection.clone();
    }
    let m = &st.write_metrics;
    m.samples_received.fetch_add(total, Ordering::Relaxed);
    m.samples_rejected.fetch_add(rejected, Ordering::Relaxed);
    if rejected == 0 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{rejected} of {total} samples rejected (out of order, too old, older than retention, too far in the future, over a label limit, or duplicate with a different value); the other {} were written; first rejection: {}\n",
        total - rejected,
        first.unwrap_or_default()
    )))
}
