//! Pieces every integration shares: duration and `http_config` parsing for the typed configs,
//! timestamp formatting in the styles receivers expect (Go's `time.Time`, protobuf `Timestamp`,
//! Alerta's millisecond ISO 8601), Go-compatible JSON encoding, and turning HTTP outcomes into
//! `NotifyError`s with Alertmanager's retry rules.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tocsin_httpclient::HttpClientConfig;

use super::{NotifyError, Reason};

/// Alertmanager's "no timeout" for HTTP integrations: the flush deadline that `deliver` applies
/// is the real bound, so the client itself only guards against a request living forever.
pub(crate) const UNBOUNDED_HTTP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How much of a response body or stderr goes into an error message.
const EXCERPT_BYTES: usize = 1024;

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let ms = tocsin_model::duration::parse_duration_ms(&s).map_err(serde::de::Error::custom)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| serde::de::Error::custom(format!("negative duration {s:?}")))
}

pub(crate) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

pub(crate) use tocsin_httpclient::de_strict as de_http_config;

pub(crate) fn yes() -> bool {
    true
}

/// Builds the client of one integration; `what` names it in the error (`receiver "x":
/// webhook_configs[0]`).
pub(crate) fn build_client(
    cfg: &HttpClientConfig,
    base_dir: &Path,
    timeout: Duration,
    what: &str,
) -> crate::Result<tocsin_httpclient::Client> {
    cfg.build_client(base_dir, timeout, false)
        .map_err(|e| crate::Error::Config(format!("{what}: http_config: {e}")))
}

pub(crate) fn parse_url(s: &str, what: &str) -> crate::Result<reqwest::Url> {
    let u = reqwest::Url::parse(s.trim())
        .map_err(|e| crate::Error::Config(format!("{what}: invalid url: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(crate::Error::Config(format!(
            "{what}: url scheme must be http or https, got {:?}",
            u.scheme()
        )));
    }
    Ok(u)
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) and the milliseconds of a timestamp.
fn date_time(ms: i64) -> (String, i64) {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = tocsin_model::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        ),
        ms.rem_euclid(1000),
    )
}

/// Go's `time.Time` JSON form (RFC 3339 with nanoseconds, trailing zeros trimmed) in UTC, as
/// Alertmanager writes `startsAt`/`endsAt`.
pub(crate) fn go_time(ms: i64) -> String {
    tocsin_model::time::format_rfc3339_ms(ms)
}

/// Go's zero `time.Time`, which Alertmanager sends as `endsAt` of alerts still firing.
pub(crate) const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Alerta's `createTime` form: always three fractional digits.
pub(crate) fn millis_time(ms: i64) -> String {
    let (dt, frac) = date_time(ms);
    format!("{dt}.{frac:03}Z")
}

/// A protobuf `Timestamp` in JSON (0, 3, 6 or 9 fractional digits), as Pub/Sub writes
/// `publishTime`.
pub(crate) fn proto_time(t: std::time::SystemTime) -> String {
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000);
    let (dt, _) = date_time(secs * 1000);
    let n = d.subsec_nanos();
    if n == 0 {
        return format!("{dt}Z");
    }
    let f = format!("{n:09}");
    let f = if f.ends_with("000000") {
        &f[..3]
    } else if f.ends_with("000") {
        &f[..6]
    } else {
        &f[..]
    };
    format!("{dt}.{f}Z")
}

pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// JSON as Go's `json.Encoder` writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped and a
/// trailing newline. Receivers that hash or diff bodies then see what Alertmanager would send.
/// Those characters can only occur inside string literals, so replacing them in the serialized
/// text is exact.
pub(crate) fn go_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, NotifyError> {
    let s = serde_json::to_string(v).map_err(|e| NotifyError {
        retryable: false,
        reason: Reason::Other,
        message: format!("encoding payload: {e}"),
    })?;
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    Ok(out.into_bytes())
}

/// At most `EXCERPT_BYTES` of `b` as text, cut on a character boundary.
pub(crate) fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(EXCERPT_BYTES)]);
    let s = s.trim();
    if b.len() > EXCERPT_BYTES {
        format!("{s}…")
    } else {
        s.to_string()
    }
}

/// Alertmanager's classification of a non-2xx response: 5xx retryable, everything else not.
pub(crate) fn status_error(status: reqwest::StatusCode, body: &[u8]) -> NotifyError {
    let code = status.as_u16();
    let (reason, retryable) = match code {
        400..=499 => (Reason::ClientError, false),
        500..=599 => (Reason::ServerError, true),
        _ => (Reason::Other, false),
    };
    let body = excerpt(body);
    let message = if body.is_empty() {
        format!("unexpected status code {code}")
    } else {
        format!("unexpected status code {code}: {body}")
    };
    NotifyError {
        retryable,
        reason,
        message,
    }
}

/// Connection errors and timeouts may go away; the URL is stripped because webhook URLs often
/// carry secrets.
pub(crate) fn transport_error(e: reqwest::Error) -> NotifyError {
    NotifyError {
        retryable: true,
        reason: Reason::Other,
        message: format!(
            "request failed: {}",
            tocsin_httpclient::error_chain(&e.without_url())
        ),
    }
}

/// POSTs `body` as JSON; `Ok` on 2xx. Non-2xx become `status_error`.
pub(crate) async fn post_json(
    client: &tocsin_httpclient::Client,
    url: reqwest::Url,
    body: Vec<u8>,
    extra: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
) -> Result<(), NotifyError> {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some((k, v)) = extra {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    if status.is_success() {
        // Drain so the connection goes back to the pool.
        let _ = resp.bytes().await;
        return Ok(());
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(status_error(status, &body))
}

/// Outcome of a flush made of several requests (one per alert): later requests are still made
/// after a failure, and the flush fails as a whole, retryably if any failure was retryable.
#[derive(Default)]
pub(crate) struct Failures {
    total: usize,
    failed: usize,
    worst: Option<NotifyError>,
}

impl Failures {
    pub(crate) fn record(&mut self, r: Result<(), NotifyError>) {
        self.total += 1;
        if let Err(e) = r {
            self.failed += 1;
            let replace = match &self.worst {
                None => true,
                Some(w) => e.retryable && !w.retryable,
            };
            if replace {
                self.worst = Some(e);
            }
        }
    }

    pub(crate) fn finish(self, what: &str) -> Result<(), NotifyError> {
        match self.worst {
            None => Ok(()),
            Some(e) if self.total == 1 => Err(e),
            Some(e) => Err(NotifyError {
                message: format!(
                    "{} of {} {what} failed: {}",
                    self.failed, self.total, e.message
                ),
                ..e
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_trims_fraction() {
        assert_eq!(go_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(go_time(1_700_000_000_120), "2023-11-14T22:13:20.12Z");
        assert_eq!(go_time(1_700_000_000_005), "2023-11-14T22:13:20.005Z");
        assert_eq!(go_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(go_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(millis_time(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn proto_time_digits() {
        let t = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(proto_time(t), "2023-11-14T22:13:20.120Z");
        let t = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 120_001_000);
        assert_eq!(proto_time(t), "2023-11-14T22:13:20.120001Z");
        let t = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 1);
        assert_eq!(proto_time(t), "2023-11-14T22:13:20.000000001Z");
    }

    #[test]
    fn go_json_escapes_like_go() -> Result<(), NotifyError> {
        let v = serde_json::json!({"u": "a?b=1&c=<2>"});
        let b = go_json(&v)?;
        assert_eq!(
            String::from_utf8_lossy(&b),
            "{\"u\":\"a?b=1\\u0026c=\\u003c2\\u003e\"}\n"
        );
        Ok(())
    }
}
