//! `POST /api/v1/write`: Prometheus remote write 1.0. A request that fails to decode or validate is
//! rejected whole (400, nothing written). Samples the store refuses one by one (out of order, too
//! old, duplicate) are counted and reported in a 400 body while the rest are written, as Prometheus
//! does, so the sender does not retry data that can never be accepted.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
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

pub async fn remote_write(State(st): State<ApiState>, body: Bytes) -> Response {
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
        "{rejected} of {total} samples rejected (out of order, too old, or duplicate with a different value); the other {} were written; first rejection: {}\n",
        total - rejected,
        first.unwrap_or_default()
    )))
}
