//! The `http` action: a templated request (method, URL, headers, body) sent with prometheus.yml
//! `http_config` auth and TLS; success is one of `success_codes`, and an optional
//! `already_done` rule (status plus body match) counts as done.
//!
//! Every template is parsed once when the policy loads, so a typo is a config error naming the
//! field; what can only be checked after rendering (an absolute http(s) URL, a valid header
//! value) is a render error naming the field. The audit sees the request with credentials
//! redacted (see `redact`); the `http_config` credentials are added by the client at send time
//! and so never appear in it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use tocsin_httpclient::HttpClientConfig;

use super::{Attempt, BoxFuture, ExecCx, Kind, Prepared};
use crate::error::{Error, Result};
use crate::template::{ActionTemplate, RenderCx};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpActionConfig {
    /// Default `POST`. Templated.
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default, deserialize_with = "strict_http_config")]
    pub http_config: Option<HttpClientConfig>,
    /// Statuses that mean success; default any 2xx.
    #[serde(default)]
    pub success_codes: Vec<u16>,
    #[serde(default)]
    pub already_done: Option<AlreadyDone>,
    /// The endpoint can take the same request twice, so an execution a crash interrupted is
    /// sent again at start-up.
    #[serde(default)]
    pub idempotent: bool,
}

/// An answer that says the work was already done, e.g. `{status: 404, body: "no such VM"}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlreadyDone {
    pub status: u16,
    /// A regular expression the body must contain a match of; empty: any body.
    #[serde(default)]
    pub body: String,
}

/// `HttpClientConfig` accepts unknown keys because scrape configs flatten it; nested here, a
/// typo would silently drop a credential, so leftovers are refused.
fn strict_http_config<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<HttpClientConfig>, D::Error> {
    #[derive(Deserialize)]
    struct Strict {
        #[serde(flatten)]
        cfg: HttpClientConfig,
        #[serde(flatten)]
        rest: BTreeMap<String, serde_norway::Value>,
    }
    let s = Strict::deserialize(d)?;
    if let Some(k) = s.rest.keys().next() {
        return Err(serde::de::Error::custom(format!(
            "http_config: unknown field `{k}`"
        )));
    }
    Ok(Some(s.cfg))
}

/// Methods a remediation can use; anything else is most likely a typo.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// How much of a response is read (for `already_done` and the audit detail).
const BODY_READ_MAX: usize = 64 * 1024;
/// How much of it the audit keeps.
const DETAIL_BYTES: usize = 200;
/// The client's own bound; each attempt is bounded by the policy's `timeout`.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// What `prepare` hands to `execute`.
struct Payload {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<String>,
}

pub struct HttpKind {
    what: String,
    method: ActionTemplate,
    url: ActionTemplate,
    headers: Vec<(HeaderName, ActionTemplate)>,
    body: Option<ActionTemplate>,
    client: tocsin_httpclient::Client,
    success_codes: Vec<u16>,
    already_done: Option<(u16, Option<Regex>)>,
    idempotent: bool,
}

fn check_method(field: &str, m: &str) -> std::result::Result<Method, String> {
    let up = m.trim().to_ascii_uppercase();
    if !METHODS.contains(&up.as_str()) {
        return Err(format!(
            "{field}: {m:?} is not one of {}",
            METHODS.join(", ")
        ));
    }
    Method::from_bytes(up.as_bytes()).map_err(|e| format!("{field}: {e}"))
}

fn check_code(field: &str, c: u16) -> Result<()> {
    if (100..=599).contains(&c) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{field}: {c} is not an HTTP status (100-599)"
        )))
    }
}

impl HttpKind {
    pub fn new(cfg: &HttpActionConfig, base_dir: &Path, what: &str) -> Result<HttpKind> {
        let field = |f: &str| format!("{what}.{f}");
        let method =
            ActionTemplate::parse(&field("method"), cfg.method.as_deref().unwrap_or("POST"))?;
        if !method.is_templated() {
            check_method(&field("method"), method.source()).map_err(Error::Config)?;
        }
        if cfg.url.trim().is_empty() {
            return Err(Error::Config(format!("{}: must be set", field("url"))));
        }
        let url = ActionTemplate::parse(&field("url"), &cfg.url)?;
        if !url.is_templated() {
            absolute_url(&field("url"), url.source()).map_err(Error::Config)?;
        }
        let mut headers = Vec::new();
        for (name, value) in &cfg.headers {
            let f = format!("{what}.headers.{name}");
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Config(format!("{f}: {name:?} is not a valid header name")))?;
            let t = ActionTemplate::parse(&f, value)?;
            if !t.is_templated() {
                HeaderValue::from_str(value)
                    .map_err(|_| Error::Config(format!("{f}: not a valid header value")))?;
            }
            headers.push((n, t));
        }
        let body = cfg
            .body
            .as_deref()
            .map(|b| ActionTemplate::parse(&field("body"), b))
            .transpose()?;
        for (i, c) in cfg.success_codes.iter().enumerate() {
            check_code(&format!("{what}.success_codes[{i}]"), *c)?;
        }
        let already_done = match &cfg.already_done {
            None => None,
            Some(a) => {
                check_code(&field("already_done.status"), a.status)?;
                let re = if a.body.is_empty() {
                    None
                } else {
                    Some(Regex::new(&a.body).map_err(|e| {
                        Error::Config(format!("{}: {e}", field("already_done.body")))
                    })?)
                };
                Some((a.status, re))
            }
        };
        let client = cfg
            .http_config
            .clone()
            .unwrap_or_default()
            .build_client(base_dir, CLIENT_TIMEOUT, false)
            .map_err(|e| Error::Config(format!("{}: {e}", field("http_config"))))?;
        Ok(HttpKind {
            what: what.to_string(),
            method,
            url,
            headers,
            body,
            client,
            success_codes: cfg.success_codes.clone(),
            already_done,
            idempotent: cfg.idempotent,
        })
    }

    fn is_success(&self, s: StatusCode) -> bool {
        if self.success_codes.is_empty() {
            s.is_success()
        } else {
            self.success_codes.contains(&s.as_u16())
        }
    }

    fn is_already_done(&self, s: StatusCode, body: &str) -> bool {
        match &self.already_done {
            Some((code, re)) => {
                *code == s.as_u16() && re.as_ref().is_none_or(|re| re.is_match(body))
            }
            None => false,
        }
    }

    async fn send(&self, p: &Payload, timeout: Duration) -> Attempt {
        let mut rb = self
            .client
            .request(p.method.clone(), p.url.clone())
            .headers(p.headers.clone())
            .timeout(timeout);
        if let Some(b) = &p.body {
            rb = rb.body(b.clone());
        }
        let run = async {
            let mut resp = rb.send().await?;
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await? {
                if body.len() < BODY_READ_MAX {
                    let n = chunk.len().min(BODY_READ_MAX - body.len());
                    body.extend_from_slice(&chunk[..n]);
                }
            }
            Ok::<_, reqwest::Error>((resp.status(), resp.headers().clone(), body))
        };
        let (status, headers, body) = match tokio::time::timeout(timeout, run).await {
            Err(_) => return timed_out(&p.url, timeout),
            Ok(Err(e)) if e.is_timeout() => return timed_out(&p.url, timeout),
            Ok(Err(e)) => {
                // Connection refused, reset, TLS or DNS failures: the far side may come back.
                // A request that could not be built is a bug of ours and will not improve.
                return Attempt::Failed {
                    retryable: !e.is_builder(),
                    status: None,
                    message: format!(
                        "{} {}: {}",
                        p.method,
                        redact_url(&p.url),
                        tocsin_httpclient::error_chain(&e)
                    ),
                    retry_after: None,
                };
            }
            Ok(Ok(x)) => x,
        };
        let text = String::from_utf8_lossy(&body);
        let code = Some(i64::from(status.as_u16()));
        if self.is_already_done(status, &text) {
            return Attempt::Done {
                status: code,
                detail: detail(status, &text),
                already_done: true,
            };
        }
        if self.is_success(status) {
            return Attempt::Done {
                status: code,
                detail: detail(status, &text),
                already_done: false,
            };
        }
        let retryable = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        Attempt::Failed {
            retryable,
            status: code,
            message: format!(
                "{} {}: {}",
                p.method,
                redact_url(&p.url),
                detail(status, &text)
            ),
            retry_after: if retryable {
                retry_after(&headers, wall_now_ms())
            } else {
                None
            },
        }
    }
}

fn wall_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn timed_out(url: &Url, timeout: Duration) -> Attempt {
    Attempt::Failed {
        retryable: true,
        status: None,
        message: format!(
            "{}: no answer within the timeout of {timeout:?}",
            redact_url(url)
        ),
        retry_after: None,
    }
}

/// `HTTP 200 OK: <first bytes of the body>`, for the audit.
fn detail(status: StatusCode, body: &str) -> String {
    let b = body.trim();
    let mut end = b.len().min(DETAIL_BYTES);
    while !b.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < b.len() { "..." } else { "" };
    if b.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}{more}", &b[..end])
    }
}

/// `Retry-After` as delay seconds or an HTTP date (IMF-fixdate), relative to `now_ms`.
fn retry_after(h: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = parse_http_date(v)?;
    Some(Duration::from_millis(
        u64::try_from(at - now_ms).unwrap_or(0),
    ))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` in ms.
fn parse_http_date(s: &str) -> Option<i64> {
    let (_, rest) = s.split_once(", ")?;
    let mut it = rest.split(' ');
    let day: i64 = it.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = it.next()?;
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let year: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if it.next()? != "GMT" {
        return None;
    }
    let days = tocsin_model::time::days_from_civil(year, month, day);
    Some(((days * 86_400) + h * 3600 + m * 60 + sec) * 1000)
}

fn absolute_url(field: &str, s: &str) -> std::result::Result<Url, String> {
    let u = Url::parse(s.trim()).map_err(|e| format!("{field}: {s:?} is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{field}: {s:?} is not an absolute http or https URL"
        ));
    }
    Ok(u)
}

/// Whether a header or query parameter name looks like it carries a credential.
pub(crate) fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("authorization")
        || n == "cookie"
        || ["token", "key", "secret", "password", "passwd"]
            .iter()
            .any(|w| n.contains(w))
}

const SECRET: &str = "<secret>";

/// The URL without userinfo and with the values of secret-looking query parameters replaced.
fn redact_url(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_name(&k) {
                    SECRET.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if pairs.iter().any(|(_, v)| v == SECRET) {
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    u.to_string()
}

fn redact(p: &Payload) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (n, v) in &p.headers {
        let shown = if secret_name(n.as_str()) {
            SECRET.to_string()
        } else {
            String::from_utf8_lossy(v.as_bytes()).into_owned()
        };
        headers.insert(n.as_str().to_string(), serde_json::Value::String(shown));
    }
    json!({
        "method": p.method.as_str(),
        "url": redact_url(&p.url),
        "headers": headers,
        "body": p.body,
    })
}

impl Kind for HttpKind {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn prepare(&self, cx: &RenderCx<'_>) -> Result<Prepared> {
        let what = &self.what;
        let method = check_method(&format!("{what}.method"), &self.method.render(cx)?)
            .map_err(Error::Render)?;
        let url =
            absolute_url(&format!("{what}.url"), &self.url.render(cx)?).map_err(Error::Render)?;
        let mut headers = HeaderMap::new();
        for (n, t) in &self.headers {
            let v = t.render(cx)?;
            let mut hv = HeaderValue::from_str(&v).map_err(|_| {
                Error::Render(format!(
                    "{what}.headers.{n}: rendered {v:?}, which is not a valid header value"
                ))
            })?;
            hv.set_sensitive(secret_name(n.as_str()));
            headers.append(n.clone(), hv);
        }
        let body = self.body.as_ref().map(|b| b.render(cx)).transpose()?;
        let p = Payload {
            method,
            url,
            headers,
            body,
        };
        Ok(Prepared {
            request: redact(&p),
            payload: Box::new(p),
        })
    }

    fn execute<'a>(&'a self, p: &'a Prepared, cx: &'a ExecCx) -> BoxFuture<'a, Attempt> {
        Box::pin(async move {
            match p.payload.downcast_ref::<Payload>() {
                Some(pl) => self.send(pl, cx.timeout).await,
                None => Attempt::Failed {
                    retryable: false,
                    status: None,
                    message: format!("{}: the prepared request is not an http one", self.what),
                    retry_after: None,
                },
            }
        })
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
