//! The request guard, one middleware in front of every route: the `Host` check against
//! `web.allowed_hosts` (DNS rebinding), the cross-origin refusal of state-changing requests (a web
//! page a user visits must not be able to post to this server through the user's browser), and
//! the request body size limit of the request's class. What it refuses is answered 403 or 413
//! with a message naming the rule or the setting, before any handler runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::class::{classify, Class};

/// Largest request body per access class, in bytes. `Public` requests (probes) take the read limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    pub read: u64,
    pub write: u64,
    pub alert: u64,
    pub admin: u64,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            read: 8 << 20,
            write: crate::MAX_WRITE_BODY as u64,
            alert: 8 << 20,
            admin: 4 << 20,
        }
    }
}

impl BodyLimits {
    /// The limit for `class` and the setting that changes it.
    pub fn for_class(&self, class: Class) -> (u64, &'static str) {
        match class {
            Class::Public | Class::Read => (self.read, "web.max_body_size.read"),
            Class::Write => (self.write, "web.max_body_size.write"),
            Class::Alert => (self.alert, "web.max_body_size.alert"),
            Class::Admin => (self.admin, "web.max_body_size.admin"),
        }
    }
}

/// An origin: scheme, host (lowercase; IPv6 in brackets), port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of a URL such as `--web.external-url`; None if it has no host.
    pub fn of_url(s: &str) -> Option<Origin> {
        let u = url::Url::parse(s).ok()?;
        let host = match u.host()? {
            url::Host::Ipv6(a) => format!("[{a}]"),
            h => h.to_string().to_ascii_lowercase(),
        };
        Some(Origin {
            scheme: u.scheme().to_ascii_lowercase(),
            host,
            port: u.port_or_known_default()?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct GuardSettings {
    pub body: BodyLimits,
    /// Host names (without port, lowercase) requests may name in `Host`; empty: any.
    pub allowed_hosts: Vec<String>,
    /// Origins besides the one the `Host` header names that count as this server's own (the
    /// external URL, when a proxy in front rewrites `Host`).
    pub own_origins: Vec<Origin>,
    /// Counts of refused requests, for `tocsin_http_requests_refused_total`.
    pub refused: Arc<GuardMetrics>,
}

/// Requests the guard refused, by reason.
#[derive(Debug, Default)]
pub struct GuardMetrics {
    pub host: AtomicU64,
    pub origin: AtomicU64,
    pub body_size: AtomicU64,
}

/// The middleware; apply with `axum::middleware::from_fn_with_state(Arc::new(settings), guard)`.
pub async fn guard(State(g): State<Arc<GuardSettings>>, req: Request, next: Next) -> Response {
    let class = classify(req.method(), req.uri().path());
    let host = request_host(&req);
    // Probes are exempt: they reveal nothing, and orchestrators send the pod address as Host.
    if class != Class::Public {
        if let Err(msg) = check_host(&g.allowed_hosts, host.as_deref()) {
            tracing::warn!(host = ?host, path = req.uri().path(), "request refused: {msg}");
            g.refused.host.fetch_add(1, Ordering::Relaxed);
            return refuse(StatusCode::FORBIDDEN, msg);
        }
    }
    if let Err(msg) = check_origin(req.method(), req.headers(), host.as_deref(), &g.own_origins) {
        tracing::warn!(method = %req.method(), path = req.uri().path(), "request refused: {msg}");
        g.refused.origin.fetch_add(1, Ordering::Relaxed);
        return refuse(StatusCode::FORBIDDEN, msg);
    }
    let (limit, setting) = g.body.for_class(class);
    let too_large = || {
        g.refused.body_size.fetch_add(1, Ordering::Relaxed);
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body larger than {}, the limit for {} requests (set by {setting} in \
                 the configuration file)",
                fmt_size(limit),
                class.as_str()
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    if req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    // Read here, bounded, so that a chunked body without a length is cut at the limit too and
    // the handlers' own buffering never sees more.
    let (parts, body) = req.into_parts();
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let bytes = match Limited::new(body, limit_usize).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("reading the request body failed: {e}"),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refuse(code: StatusCode, msg: String) -> Response {
    (code, format!("{msg}\n")).into_response()
}

/// `64MB`, `512KB`, or bytes.
fn fmt_size(n: u64) -> String {
    if n > 0 && n.is_multiple_of(1 << 20) {
        format!("{}MB", n >> 20)
    } else if n > 0 && n.is_multiple_of(1 << 10) {
        format!("{}KB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// The authority the client addressed: the `Host` header, else the request target's authority.
fn request_host(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// Splits `host[:port]` (IPv6 in brackets) into a lowercase host, brackets kept, and the port.
fn split_host(authority: &str) -> (String, Option<u16>) {
    let a = authority.trim();
    let (host, port) = if a.starts_with('[') {
        match a.find(']') {
            Some(i) => (&a[..=i], a[i + 1..].strip_prefix(':')),
            None => (a, None),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    (
        host.trim_end_matches('.').to_ascii_lowercase(),
        port.and_then(|p| p.parse().ok()),
    )
}

fn check_host(allowed: &[String], host: Option<&str>) -> Result<(), String> {
    if allowed.is_empty() {
        return Ok(());
    }
    let Some(h) = host else {
        return Err(
            "the request names no Host, and web.allowed_hosts is set in the configuration file"
                .into(),
        );
    };
    let (name, _) = split_host(h);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if allowed.iter().any(|a| a == bare) {
        return Ok(());
    }
    Err(format!(
        "Host {name:?} is not in web.allowed_hosts in the configuration file"
    ))
}

/// A state-changing request (any method but GET, HEAD and OPTIONS) sent by a browser on behalf of
/// another site is refused. Browsers add `Origin` to such requests and `Sec-Fetch-Site` when they
/// know it; tools (curl, Prometheus, Telegraf, amtool, Grafana's server-side proxy) send neither.
fn check_origin(
    method: &Method,
    headers: &HeaderMap,
    host: Option<&str>,
    own: &[Origin],
) -> Result<(), String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if site.eq_ignore_ascii_case("cross-site") {
        return Err(
            "cross-site request refused (Sec-Fetch-Site: cross-site): a web page may not change \
             this server's state"
                .into(),
        );
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let text = origin.to_str().unwrap_or_default();
    let refused = || {
        Err(format!(
            "cross-origin request refused (Origin {text:?} is not this server's own): a web page \
             may not change this server's state"
        ))
    };
    let Some(o) = Origin::of_url(text) else {
        // `null` (sandboxed frames, files) and anything unparsable.
        return refused();
    };
    if own.contains(&o) {
        return Ok(());
    }
    if let Some(h) = host {
        let (name, port) = split_host(h);
        // Without a port in Host the client used its scheme's default one.
        let default = if o.scheme == "https" { 443 } else { 80 };
        if name == o.host && port.unwrap_or(default) == o.port {
            return Ok(());
        }
    }
    refused()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn cross_origin_state_changes_are_refused_and_tools_pass() {
        let own = [Origin::of_url("https://tocsin.example.com/prefix").unwrap()];
        let post = &Method::POST;
        let host = Some("127.0.0.1:9090");
        // Tools send no Origin.
        assert!(check_origin(post, &h(&[]), host, &[]).is_ok());
        // Same origin, by Host, and by the external URL.
        let same = h(&[("origin", "http://127.0.0.1:9090")]);
        assert!(check_origin(post, &same, host, &[]).is_ok());
        let ext = h(&[("origin", "https://tocsin.example.com")]);
        assert!(check_origin(post, &ext, host, &own).is_ok());
        let default_port = h(&[("origin", "http://tocsin.local")]);
        assert!(check_origin(post, &default_port, Some("tocsin.local"), &[]).is_ok());
        // Another port, another host, null, or a cross-site fetch.
        for o in ["http://127.0.0.1:3000", "http://evil.example", "null"] {
            let hdr = h(&[("origin", o)]);
            let e = check_origin(post, &hdr, host, &own).unwrap_err();
            assert!(e.contains("cross-origin"), "{o}: {e}");
        }
        let fetch = h(&[("sec-fetch-site", "cross-site")]);
        assert!(check_origin(&Method::DELETE, &fetch, host, &[]).is_err());
        let fetch = h(&[("sec-fetch-site", "same-origin")]);
        assert!(check_origin(&Method::DELETE, &fetch, host, &[]).is_ok());
        // Reads stay allowed from anywhere.
        let evil = h(&[("origin", "http://evil.example")]);
        assert!(check_origin(&Method::GET, &evil, host, &[]).is_ok());
    }

    #[test]
    fn hosts_outside_the_allowed_list_are_refused() {
        let allowed = vec!["tocsin.example.com".to_string(), "::1".to_string()];
        assert!(check_host(&[], Some("anything:1")).is_ok());
        assert!(check_host(&allowed, Some("Tocsin.Example.com:9090")).is_ok());
        assert!(check_host(&allowed, Some("[::1]:9090")).is_ok());
        let e = check_host(&allowed, Some("rebound.attacker.example:9090")).unwrap_err();
        assert!(e.contains("web.allowed_hosts"), "{e}");
        assert!(check_host(&allowed, None).is_err());
    }

    #[test]
    fn sizes_are_shown_in_their_unit() {
        assert_eq!(fmt_size(64 << 20), "64MB");
        assert_eq!(fmt_size(256 << 10), "256KB");
        assert_eq!(fmt_size(1000), "1000 bytes");
        assert_eq!(split_host("[::1]:80"), ("[::1]".into(), Some(80)));
        assert_eq!(split_host("Example.COM."), ("example.com".into(), None));
    }
}
