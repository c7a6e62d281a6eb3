//! One request to the receiver with Prometheus's retry rules: 5xx, network errors and (with
//! `retry_on_http_429`) 429 are retried with exponential backoff between `min_backoff` and
//! `max_backoff`, honouring `Retry-After`; any other 4xx is final (the batch is dropped and
//! counted as failed, since resending the same bytes cannot succeed).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{
    HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT,
};
use tokio::sync::watch;

use crate::metrics::QueueMetrics;

/// What is fixed for every request of one queue.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub client: tocsin_httpclient::Client,
    pub url: String,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_429: bool,
    pub name: String,
}

/// How a send ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Refused for good (a 4xx other than a retried 429).
    Refused(u16),
    /// Stopped while retrying; the data is neither sent nor dropped.
    Stopped,
}

/// The standard headers of a remote-write request of `protocol`, then the configured ones.
pub fn request_headers(
    extra: &std::collections::BTreeMap<String, String>,
    protocol: crate::Protocol,
) -> HeaderMap {
    let (content_type, version) = match protocol {
        crate::Protocol::V1 => ("application/x-protobuf", "0.1.0"),
        crate::Protocol::V2 => (
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "2.0.0",
        ),
    };
    let mut h = HeaderMap::new();
    h.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "X-Prometheus-Remote-Write-Version",
        HeaderValue::from_static(version),
    );
    h.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("Tocsin/", env!("CARGO_PKG_VERSION"))),
    );
    for (k, v) in extra {
        // Checked at config load; a header that does not convert was refused there.
        if let (Ok(n), Ok(v)) = (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(n, v);
        }
    }
    h
}

/// `h` with remote write 1.0's content type and version in place of 2.0's.
pub fn as_v1(h: &HeaderMap) -> HeaderMap {
    let mut h = h.clone();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-protobuf"),
    );
    h.insert(
        "X-Prometheus-Remote-Write-Version",
        HeaderValue::from_static("0.1.0"),
    );
    h
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let t = httpdate_parse(v)?;
    t.duration_since(std::time::SystemTime::now()).ok()
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate_parse(s: &str) -> Option<std::time::SystemTime> {
    let p: Vec<&str> = s.split_whitespace().collect();
    if p.len() != 6 || p[5] != "GMT" {
        return None;
    }
    let day: i64 = p[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == p[2])? as i64
        + 1;
    let year: i64 = p[3].parse().ok()?;
    let hms: Vec<i64> = p[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    u64::try_from(secs)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
}

/// The delay before retry number `attempt` (0-based): doubling from `min`, capped at `max`.
pub fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    min.saturating_mul(1u32 << attempt.min(20)).min(max)
}

/// Sends `body` (carrying `n` samples, or metadata entries when `n` is 0) until it is
/// accepted, refused, or `stop` turns true.
pub async fn send(
    ep: &Endpoint,
    body: bytes::Bytes,
    n: u64,
    m: &Arc<QueueMetrics>,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let mut attempt = 0u32;
    loop {
        let t0 = Instant::now();
        let res = ep
            .client
            .post(ep.url.as_str())
            .headers(ep.headers.clone())
            .timeout(ep.timeout)
            .body(body.clone())
            .send()
            .await;
        m.observe_batch(t0.elapsed());
        let mut wait = backoff(ep.min_backoff, ep.max_backoff, attempt);
        match res {
            Ok(r) if r.status().is_success() => {
                m.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
                return Outcome::Sent;
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let retry = status >= 500 || (status == 429 && ep.retry_on_429);
                let after = retry_after(r.headers());
                let text = r.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                if !retry {
                    tracing::warn!(remote = %ep.name, url = %ep.url, status, samples = n, response = %text.trim(), "remote write refused a batch; it is dropped");
                    return Outcome::Refused(status);
                }
                if let Some(a) = after {
                    wait = a;
                }
                tracing::warn!(remote = %ep.name, url = %ep.url, status, retry_in_s = wait.as_secs_f64(), response = %text.trim(), "remote write failed; retrying");
            }
            Err(e) => {
                tracing::warn!(remote = %ep.name, url = %ep.url, error = %tocsin_httpclient::error_chain(&e), retry_in_s = wait.as_secs_f64(), "remote write failed; retrying");
            }
        }
        m.samples_retried.fetch_add(n, Ordering::Relaxed);
        attempt = attempt.saturating_add(1);
        if *stop.borrow() {
            return Outcome::Stopped;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return Outcome::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (min, max) = (Duration::from_millis(30), Duration::from_secs(5));
        assert_eq!(backoff(min, max, 0), Duration::from_millis(30));
        assert_eq!(backoff(min, max, 1), Duration::from_millis(60));
        assert_eq!(backoff(min, max, 3), Duration::from_millis(240));
        assert_eq!(backoff(min, max, 10), max);
        assert_eq!(backoff(min, max, 100), max);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
