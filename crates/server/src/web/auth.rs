//! The authentication and authorization layer in front of every route: who the caller is
//! (basic-auth user, bearer token, or an `allow` network when no credentials are sent), whether
//! their roles cover the route's class (`tocsin_api::class::classify`), who they are for handlers
//! (a `Principal` in the request's extensions), and the response headers
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
use tocsin_api::class::{classify, Class, Principal};

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

async fn middleware(State(rt): State<Arc<WebRuntime>>, mut req: Request, next: Next) -> Response {
    let active = rt.current();
    let mut resp = if active.cfg.auth_enabled() {
        match check(&rt, &active, asked(&req)).await {
            Ok(p) => {
                // Handlers that record who did something (action approvals) read it here.
                req.extensions_mut().insert(p);
                next.run(req).await
            }
            Err(r) => r,
        }
    } else {
        req.extensions_mut()
            .insert(Principal(Principal::ANONYMOUS.to_string()));
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
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .cloned()
            .or_else(|| {
                // Alerta's integrations may send their API key as `X-API-Key` instead.
                let key = req.headers().get("x-api-key")?.to_str().ok()?;
                HeaderValue::from_str(&format!("Key {key}")).ok()
            }),
    }
}

/// The caller, when they may make the request.
async fn check(rt: &WebRuntime, active: &Arc<Active>, req: Asked) -> Result<Principal, Response> {
    let class = classify(&req.method, &req.path);
    if class == Class::Public {
        return Ok(Principal(Principal::ANONYMOUS.to_string()));
    }
    let peer = req.peer;
    let (who, principal, roles) = match &req.authorization {
        None => match peer.and_then(|p| active.cfg.network_roles(p.ip()).map(|r| (p, r))) {
            Some((p, r)) => (
                "allowed network".to_string(),
                format!("network {}", p.ip()),
                r.clone(),
            ),
            None => return Err(unauthorized("credentials required")),
        },
        Some(h) => match authenticate(rt, active, h).await {
            Ok(x) => x,
            Err((Failure::InvalidToken, _)) if pubsub_push_token(rt, &req) => (
                "a Pub/Sub OIDC token".into(),
                "pubsub".into(),
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
    Ok(Principal(principal))
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

/// The caller's description (for messages), name (the [`Principal`]) and roles, or why the
/// credentials were refused and the user name they claimed.
async fn authenticate(
    rt: &WebRuntime,
    active: &Arc<Active>,
    h: &HeaderValue,
) -> Result<(String, String, Roles), (Failure, String)> {
    let bad = || (Failure::Malformed, String::new());
    let s = h.to_str().map_err(|_| bad())?;
    let (scheme, rest) = s.split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim();
    // `Key` is how Alerta's clients send an API key (`Authorization: Key <key>`): it stands for
    // `Bearer`, so a bearer token of the web configuration is the API key to give them.
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("key") {
        if !rt.self_token.is_empty() && ct_eq(rt.self_token.as_bytes(), rest.as_bytes()) {
            return Ok((
                "the self-scrape".into(),
                "self-scrape".into(),
                Roles([Class::Read].into_iter().collect()),
            ));
        }
        return match active
            .cfg
            .tokens
            .iter()
            .find(|t| ct_eq(t.secret.as_bytes(), rest.as_bytes()))
        {
            Some(t) => Ok((
                format!("token {:?}", t.name),
                if t.name.is_empty() {
                    "bearer".to_string()
                } else {
                    t.name.clone()
                },
                t.roles.clone(),
            )),
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
            return Ok((format!("user {user:?}"), user.to_string(), u.roles.clone()));
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
            Ok((format!("user {user:?}"), user.to_string(), u.roles.clone()))
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

    /// Each way in gives handlers a principal: the basic-auth user, the token's name, the
    /// allowed network, `anonymous` without authentication.
    #[tokio::test]
    async fn handlers_see_who_is_calling() {
        use axum::body::Body;
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ops.token"), "tok-1\n").unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let web = dir.path().join("web.yml");
        std::fs::write(
            &web,
            format!(
                "basic_auth_users:\n  alice: {hash}\nbearer_tokens:\n  - name: ops-bot\n    token_file: ops.token\n    roles: [read]\nallow:\n  - networks: [127.0.0.1]\n    roles: [read]\n"
            ),
        )
        .unwrap();
        let metrics = Arc::new(crate::metrics::ServerMetrics::default());
        let who = |rt: Arc<WebRuntime>| {
            let app = Router::new().route(
                "/api/v1/actions",
                axum::routing::get(|p: Option<axum::Extension<Principal>>| async move {
                    p.map_or("none".to_string(), |p| p.0 .0)
                }),
            );
            layer(app, rt)
        };
        let call = |rt: Arc<WebRuntime>, auth: Option<&str>| {
            let mut req = Request::get("/api/v1/actions");
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            let mut req = req.body(Body::empty()).unwrap();
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 5555))));
            async move {
                let resp = who(rt).oneshot(req).await.unwrap();
                let b = axum::body::to_bytes(resp.into_body(), 1 << 16)
                    .await
                    .unwrap();
                String::from_utf8(b.to_vec()).unwrap()
            }
        };
        let rt = Arc::new(WebRuntime::load(&web, metrics.clone()).unwrap());
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pw")
        );
        assert_eq!(call(rt.clone(), Some(&basic)).await, "alice");
        assert_eq!(call(rt.clone(), Some("Bearer tok-1")).await, "ops-bot");
        assert_eq!(call(rt.clone(), Some("Key tok-1")).await, "ops-bot");
        assert_eq!(call(rt.clone(), None).await, "network 127.0.0.1");
        let open = Arc::new(WebRuntime::disabled(metrics));
        assert_eq!(call(open, None).await, "anonymous");
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
