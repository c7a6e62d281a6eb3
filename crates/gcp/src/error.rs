//! Errors of Google calls, each knowing whether another attempt may succeed and, for quota
//! errors, when. Google's JSON error body (`{"error": {"code", "message", "status",
//! "errors": [{"reason", ...}]}}`) is parsed and classified here, in one place.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad settings (an unreadable key file, a malformed topic, an invalid request id). Never
    /// retried.
    #[error("{0}")]
    Config(String),
    /// Google answered with an error status.
    #[error("{message}")]
    Api {
        status: u16,
        /// Google's `reason` (`notFound`, `rateLimitExceeded`) or `status` (`NOT_FOUND`).
        reason: String,
        message: String,
        retryable: bool,
        retry_after: Option<Duration>,
    },
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("{0}")]
    Transport(String),
    /// A Compute Engine operation finished (`DONE`) with an `error`. Not retried: a retry with
    /// the same `requestId` gets the same failed operation back.
    #[error("{0}")]
    Operation(String),
    /// The overall time given to the call ran out (operation still not `DONE`).
    #[error("{0}")]
    Timeout(String),
    /// Google answered 2xx with a body that is not what the API documents.
    #[error("{0}")]
    BadResponse(String),
}

impl Error {
    /// Whether another attempt may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Api { retryable, .. } => *retryable,
            Error::Transport(_) | Error::Timeout(_) => true,
            Error::Config(_) | Error::Operation(_) | Error::BadResponse(_) => false,
        }
    }

    /// How long Google asked us to wait (Retry-After, or until per-minute quotas refill).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status Google answered with, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is an API error with `status`.
    pub fn is_status(&self, s: u16) -> bool {
        self.status() == Some(s)
    }

    pub(crate) fn transport(what: &str, e: &reqwest::Error) -> Error {
        let chain = tocsin_httpclient::error_chain(e);
        if e.is_timeout() {
            Error::Transport(format!("{what}: timed out: {chain}"))
        } else {
            Error::Transport(format!("{what}: {chain}"))
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Default, Deserialize)]
struct Body {
    #[serde(default)]
    error: Option<BodyError>,
}

#[derive(Debug, Default, Deserialize)]
struct BodyError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    errors: Vec<BodyItem>,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct BodyItem {
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
}

/// Google's error body, as far as it was readable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    /// The top-level `message`, else the first of `errors[].message`, else the body itself.
    pub message: String,
    /// Every `errors[].message` and the top-level one, for matching resource names.
    pub messages: Vec<String>,
    /// `errors[0].reason`, else `details[].reason` (ErrorInfo), else `status`.
    pub reason: String,
}

impl ApiError {
    pub fn parse(body: &[u8]) -> ApiError {
        let parsed: Body = serde_json::from_slice(body).unwrap_or_default();
        let Some(e) = parsed.error else {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(512).collect();
            return ApiError {
                message: text.clone(),
                messages: vec![text],
                reason: String::new(),
            };
        };
        let mut messages = vec![e.message.clone()];
        messages.extend(e.errors.iter().map(|i| i.message.clone()));
        let message = if e.message.is_empty() {
            e.errors
                .iter()
                .map(|i| i.message.clone())
                .find(|m| !m.is_empty())
                .unwrap_or_default()
        } else {
            e.message.clone()
        };
        let reason = e
            .errors
            .iter()
            .map(|i| i.reason.clone())
            .find(|r| !r.is_empty())
            .or_else(|| {
                e.details.iter().find_map(|d| {
                    d.get("reason")
                        .and_then(|r| r.as_str())
                        .filter(|r| !r.is_empty())
                        .map(str::to_string)
                })
            })
            .unwrap_or(e.status);
        ApiError {
            message,
            messages,
            reason,
        }
    }

    /// Whether some message names `resource` (`projects/P/zones/Z/instances/I`) as a whole
    /// path: `.../instances/vm-1` is not named by a message about `.../instances/vm-10`.
    pub fn names(&self, resource: &str) -> bool {
        self.messages.iter().any(|m| {
            m.match_indices(resource).any(|(i, _)| {
                let before = m[..i].chars().next_back();
                let after = m[i + resource.len()..].chars().next();
                let part = |c: Option<char>| {
                    c.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/'))
                };
                !part(before) && !part(after)
            })
        })
    }
}

/// Seconds until the next minute starts (per-minute quotas refill then), at least one.
pub(crate) fn until_next_minute() -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = now.as_millis() % 60_000;
    Duration::from_millis((60_000 - into as u64).max(1_000))
}

fn retry_after_header(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Classifies a non-2xx answer of any Google API (`what` prefixes the message): 403 with a
/// rate-limit reason, 429 and 5xx are retryable, with a hint to wait for the next minute for
/// rate limits; 400 `resourceNotReady` is retryable; every other 4xx is not.
pub(crate) fn classify(
    what: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Error {
    let e = ApiError::parse(body);
    let rate_limited = matches!(
        e.reason.as_str(),
        "rateLimitExceeded" | "userRateLimitExceeded" | "RATE_LIMIT_EXCEEDED"
    );
    let (retryable, retry_after) = match status {
        429 => (
            true,
            Some(retry_after_header(headers).unwrap_or_else(until_next_minute)),
        ),
        403 if rate_limited => (
            true,
            Some(retry_after_header(headers).unwrap_or_else(until_next_minute)),
        ),
        400 if e.reason == "resourceNotReady" => (true, retry_after_header(headers)),
        500..=599 => (true, retry_after_header(headers)),
        _ => (false, None),
    };
    let detail = if e.message.is_empty() {
        format!("HTTP {status}")
    } else if e.reason.is_empty() {
        format!("HTTP {status}: {}", e.message)
    } else {
        format!("HTTP {status} {}: {}", e.reason, e.message)
    };
    Error::Api {
        status,
        reason: e.reason,
        message: format!("{what}: {detail}"),
        retryable,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn body(code: u16, reason: &str, msg: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": code, "message": msg,
            "errors": [{"message": msg, "domain": "global", "reason": reason}]}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn names_matches_whole_resource_paths_only() {
        let e = ApiError::parse(&body(
            404,
            "notFound",
            "The resource 'projects/p/zones/z/instances/vm-10' was not found",
        ));
        assert!(e.names("projects/p/zones/z/instances/vm-10"));
        assert!(!e.names("projects/p/zones/z/instances/vm-1"));
        assert!(!e.names("projects/p/zones/z"));
        assert_eq!(e.reason, "notFound");
    }

    #[test]
    fn classification() {
        let h = reqwest::header::HeaderMap::new();
        let rl = classify(
            "x",
            403,
            &h,
            &body(403, "rateLimitExceeded", "Rate Limit Exceeded"),
        );
        assert!(rl.retryable());
        let after = rl.retry_after().unwrap();
        assert!(after >= Duration::from_secs(1) && after <= Duration::from_secs(60));
        assert!(!classify("x", 403, &h, &body(403, "forbidden", "no")).retryable());
        assert!(classify("x", 503, &h, b"oops").retryable());
        assert!(classify("x", 400, &h, &body(400, "resourceNotReady", "r")).retryable());
        assert!(!classify("x", 400, &h, &body(400, "invalid", "r")).retryable());
        let e = classify("delete", 404, &h, &body(404, "notFound", "gone"));
        assert_eq!(e.to_string(), "delete: HTTP 404 notFound: gone");
        // Pub/Sub's gRPC-style body: `status` instead of `errors[]`.
        let ps = br#"{"error":{"code":404,"message":"Resource not found (resource=t).","status":"NOT_FOUND"}}"#;
        let e = classify("publish", 404, &h, ps);
        assert!(!e.retryable());
        assert!(e.to_string().contains("NOT_FOUND"), "{e}");
    }
}
