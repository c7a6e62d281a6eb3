//! The authentication and authorization layer in front of every route: who the caller is
//! (basic-auth user, bearer token, or an `allow` network when no credentials are sent), whether
//! their roles cover the route's class (`tocsin_api::class::classify`), and the response headers
//! the web config sets. Failed logins are counted and logged with the user and source address,
//! never the secret. Successful bcrypt checks are cached under a SHA-256 of the password so a
//! client sending the same credentials on every request pays bcrypt's cost once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tocsin_api::class::{classify, Class};

use super::config::Roles;
use super::{Active, WebRuntime};

/// How long a verified password stays verified, and how many are kept.
const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 1024;

/// A bcrypt hash of no password anyone has, checked for unknown users so that an unknown user
/// costs as much time as a wrong password (no user enumeration by timing).
const DUMMY_HASH: &str = "$2b$10$A7iVT7Ul8kx3wmJ8wOGUQOcdvqtJ3YqQcYxdZbH6Q6QJ6vXkq3E5a";

#[derive(Default)]
pub struct Cache(parking_lot::Mutex<HashMap<(String, [u8; 32]), Instant>>);

impl Cache {
    fn hit(&self, key: &(String, [u8; 32])) -> bool {
        let m = self.0.lock();
        m.get(key).is_some_and(|t| t.elapsed() < CACHE_TTL)
    }

    fn insert(&self, key: (String, [u8; 32])) {
        let mut m = self.0.lock();
        if m.len() >= CACHE_MAX {
            m.retain(|_, t| t.elapsed() < CACHE_TTL);
            if m.len() >= CACHE_MAX {
                m.clear();
            }
        }
        m.insert(key, Instant::now());
    }
}

/// Why a login failed: the `reason` label of `tocsin_http_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    UnknownUser,
    WrongPassword,
    InvalidToken,
    Malformed,
}

impl Failure {
    pub const ALL: [Failure; 4] = [
        Failure::UnknownUser,
        Failure::WrongPassword,
        Failure::InvalidToken,
        Failure::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::UnknownUser => "unknown_user",
            Failure::WrongPassword => "wrong_password",
            Failure::InvalidToken => "invalid_token",
            Failure::Malformed => "malformed",
        }
    }
}

/// Wraps `app` with the layer (a no-op pass-through without a web config's credentials).
pub fn layer(app: Router, rt: Arc<WebRuntime>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(rt, middleware))
}

async fn middleware(State(rt): State<Arc<WebRuntime>>, req: Request, next: Next) -> Response {
    let active = rt.current();
    let mut resp = if active.cfg.auth_enabled() {
        match check(&rt, &active, asked(&req)).await {
            Ok(()) => next.run(req).await,
            Err(r) => r,
        }
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    for (k, v) in &active.headers {
        h.insert(k.clone(), v.clone());
    }
    resp
}

fn unauthorized(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tocsin\""),
        )],
        format!("Unauthorized: {msg}\n"),
    )
        .into_response()
}

/// What the check needs from a request (the body is not `Sync`, so the request itself cannot be
/// held across the bcrypt wait).
struct Asked {
    method: axum::http::Method,
    path: String,
    peer: Option<SocketAddr>,
    authorization: Option<HeaderValue>,
}

fn asked(req: &Request) -> Asked {
    Asked {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        peer: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        authorization: req.headers().get(header::AUTHORIZATION).cloned(),
    }
}

async fn check(rt: &WebRuntime, active: &Arc<Active>, req: Asked) -> Result<(), Response> {
    let class = classify(&req.method, &req.path);
    if class == Class::Public {
        return Ok(());
    }
    let peer = req.peer;
    let (who, roles) = match &req.authorization {
        None => match peer.and_then(|p| active.cfg.network_roles(p.ip())) {
            Some(r) => ("allowed network".to_string(), r.clone()),
            None => return Err(unauthorized("credentials required")),
        },
        Some(h) => match authenticate(rt, active, h).await {
            Ok(x) => x,
            Err((Failure::InvalidToken, _)) if pubsub_push_token(rt, &req) => (
                "a Pub/Sub OIDC token".into(),
                Roles([Class::Alert].into_iter().collect()),
            ),
            Err((reason, user)) => {
                rt.metrics.auth_failures[reason as usize].fetch_add(1, Ordering::Relaxed);
                let source = peer.map(|p| p.ip().to_string()).unwrap_or_default();
                tracing::warn!(
                    user = %user,
                    %source,
                    reason = reason.as_str(),
                    "failed login"
                );
                return Err(unauthorized("invalid credentials"));
            }
        },
    };
    if !roles.allows(class) {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden: {} {} needs the \"{}\" role, which {who} does not have\n",
                req.method,
                req.path,
                class.as_str()
            ),
        )
            .into_response());
    }
    Ok(())
}

/// A bearer token that is no configured token may be the Google-signed OIDC token Pub/Sub puts
/// on its pushes: with `pubsub_push.oidc` configured, on `POST /api/v1/pubsub/push` only, a
/// token that passes that verification (signature, audience, issuer, expiry) stands for the
/// `alert` role. The handler verifies it again; without the section such a token is refused
/// here like any unknown token.
fn pubsub_push_token(rt: &WebRuntime, req: &Asked) -> bool {
    if req.method != axum::http::Method::POST || req.path != "/api/v1/pubsub/push" {
        return false;
    }
    let Some(intake) = rt.pubsub.get().filter(|i| i.has_verifier()) else {
        return false;
    };
    let auth = req.authorization.as_ref().and_then(|h| h.to_str().ok());
    intake.authorize(auth).is_ok()
}

/// The caller's name (for messages) and roles, or why the credentials were refused and the
/// user name they claimed.
async fn authenticate(
    rt: &WebRuntime,
    active: &Arc<Active>,
    h: &HeaderValue,
) -> Result<(String, Roles), (Failure, String)> {
    let bad = || (Failure::Malformed, String::new());
    let s = h.to_str().map_err(|_| bad())?;
    let (scheme, rest) = s.split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if !rt.self_token.is_empty() && ct_eq(rt.self_token.as_bytes(), rest.as_bytes()) {
            return Ok((
                "the self-scrape".into(),
                Roles([Class::Read].into_iter().collect()),
            ));
        }
        return match active
            .cfg
            .tokens
            .iter()
            .find(|t| ct_eq(t.secret.as_bytes(), rest.as_bytes()))
        {
            Some(t) => Ok((format!("token {:?}", t.name), t.roles.clone())),
            None => Err((Failure::InvalidToken, String::new())),
        };
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (user, pass) = raw.split_once(':').ok_or_else(bad)?;
    let key = (user.to_string(), Sha256::digest(pass.as_bytes()).into());
    let found = active.cfg.users.get(user);
    if let Some(u) = found {
        if active.cache.hit(&key) {
            return Ok((format!("user {user:?}"), u.roles.clone()));
        }
    }
    let hash = found.map_or(DUMMY_HASH.to_string(), |u| u.hash.clone());
    let pass = pass.to_string();
    // bcrypt takes tens of milliseconds by design: off the async workers, and a few at a time,
    // so a flood of wrong passwords queues instead of taking every core.
    let _permit = bcrypt_slots().acquire().await;
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    match found {
        None => Err((Failure::UnknownUser, user.to_string())),
        Some(_) if !ok => Err((Failure::WrongPassword, user.to_string())),
        Some(u) => {
            active.cache.insert(key);
            Ok((format!("user {user:?}"), u.roles.clone()))
        }
    }
}

fn bcrypt_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(n.max(1))
    })
}

/// Compares without returning early, so the time taken does not tell how much of a guessed
/// token was right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(DUMMY_HASH.parse::<bcrypt::HashParts>().is_ok());
        // It must be checkable (an error would answer at once and tell unknown users apart).
        assert!(!bcrypt::verify("x", DUMMY_HASH).unwrap());
    }

    #[test]
    fn cache_is_bounded() {
        let c = Cache::default();
        for i in 0..CACHE_MAX + 10 {
            c.insert((format!("u{i}"), [0; 32]));
        }
        assert!(c.0.lock().len() <= CACHE_MAX);
        assert!(c.hit(&(format!("u{}", CACHE_MAX + 9), [0; 32])));
        assert!(!c.hit(&("nobody".into(), [0; 32])));
    }
}
