//! `FakeGcp`: one loopback HTTP server standing in for Google in tests: the metadata server
//! (access and ID tokens, project and instance facts; requests without `Metadata-Flavor:
//! Google` refused with 403 as the real one does), the OAuth token endpoint of a
//! service-account key (the JWT's RS256 signature and claims checked), Compute Engine's
//! instances delete/reset/stop and zone operations get/wait (see `fake_gcp/compute.rs`), and
//! Pub/Sub `topics.publish`. Every request is recorded; failures can be injected.
//!
//! The key pair in `testdata/fake-gcp/` is a test-only key generated for these tests.

mod compute;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

/// The test-only private key (PKCS#8 PEM) the fake's service-account key carries.
pub const TEST_PRIVATE_KEY: &str = include_str!("../testdata/fake-gcp/TEST-ONLY-private-key.pem");
/// Its public half, which the fake checks signatures with.
pub const TEST_PUBLIC_KEY: &str = include_str!("../testdata/fake-gcp/TEST-ONLY-public-key.pem");
pub const CLIENT_EMAIL: &str = "tocsin-test@fake-project.iam.gserviceaccount.com";
/// The project, zone and instance the metadata server describes.
pub const META_PROJECT: &str = "fake-project";
pub const META_PROJECT_NUMBER: &str = "123456789012";
pub const META_ZONE: &str = "europe-west1-b";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct GcpRequest {
    pub method: String,
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: SystemTime,
}

impl GcpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Whether this went to Compute Engine's instances or operations.
    pub fn is_compute(&self) -> bool {
        self.path.starts_with("/compute/v1/")
    }
}

/// A failure the next calls to Compute Engine's instance methods or to Pub/Sub publish meet.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// 503 with Google's error body.
    Unavailable,
    /// 403 `rateLimitExceeded`.
    RateLimited,
    /// 400 `resourceNotReady`.
    ResourceNotReady,
    /// The call is accepted, nothing happens, and the operation ends `DONE` with this error
    /// message (code `INTERNAL_ERROR`). Compute calls only.
    DoneWithError(String),
}

/// What the fake has done, in numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub deleted: u64,
    pub reset: u64,
    pub stopped: u64,
    pub access_tokens: u64,
    pub id_tokens: u64,
    pub published: u64,
    /// Metadata requests refused for lack of `Metadata-Flavor: Google`.
    pub metadata_refused: u64,
    /// API calls refused with 401 (no or unknown bearer token).
    pub unauthenticated: u64,
}

/// One action the fake carried out on an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub operation: String,
    pub project: String,
    pub zone: String,
    pub instance: String,
    pub request_id: Option<String>,
}

/// A published Pub/Sub message.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub topic: String,
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub message_id: String,
}

impl Published {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.data).unwrap_or_else(|e| panic!("data is not JSON: {e}"))
    }
}

pub(crate) struct State {
    requests: Vec<GcpRequest>,
    /// (project, zone) -> instance name -> (id, status).
    pub(crate) zones: BTreeMap<(String, String), BTreeMap<String, (u64, String)>>,
    pub(crate) ops: HashMap<String, compute::Op>,
    /// (project, requestId) -> operation name.
    pub(crate) by_request_id: HashMap<(String, String), String>,
    pub(crate) failures: VecDeque<Failure>,
    pub(crate) op_duration: Duration,
    pub(crate) wait_max: Duration,
    /// Access tokens handed out, with their expiry.
    tokens: HashMap<String, Instant>,
    token_ttl: u64,
    pub(crate) next_id: u64,
    pub(crate) counters: Counters,
    pub(crate) acted: Vec<Acted>,
    topics: BTreeSet<String>,
    published: Vec<Published>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct FakeGcp {
    pub addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGcp {
    /// Starts the server on 127.0.0.1 with a thread and runtime of its own (so sync and async
    /// tests can both use it).
    pub fn start() -> FakeGcp {
        let state: Shared = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            zones: BTreeMap::new(),
            ops: HashMap::new(),
            by_request_id: HashMap::new(),
            failures: VecDeque::new(),
            op_duration: Duration::ZERO,
            wait_max: Duration::from_secs(2),
            tokens: HashMap::new(),
            token_ttl: 3599,
            next_id: 1,
            counters: Counters::default(),
            acted: Vec::new(),
            topics: BTreeSet::new(),
            published: Vec::new(),
        }));
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .unwrap_or_else(|e| panic!("listener: {e}"));
                let app = axum::Router::new().fallback(handle).with_state(st);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_background();
        });
        FakeGcp {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`: the base of every API (metadata, compute, pubsub, token).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `google:` settings pointing every base URL at the fake, as YAML lines indented by
    /// `indent` spaces; with `key_file`, the key flow is used.
    pub fn google_yaml(&self, indent: usize, key_file: Option<&Path>) -> String {
        let pad = " ".repeat(indent);
        let mut s = format!(
            "{pad}metadata_url: {u}\n{pad}compute_url: {u}\n{pad}pubsub_url: {u}\n",
            u = self.url()
        );
        if let Some(k) = key_file {
            s.push_str(&format!("{pad}service_account_key_file: {}\n", k.display()));
        }
        s
    }

    /// A service-account JSON key around the test-only key, `token_uri` at the fake.
    pub fn service_account_key(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": META_PROJECT,
            "private_key_id": "test-only-key-1",
            "private_key": TEST_PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.url()),
        })
    }

    /// Writes [`Self::service_account_key`] to `dir/name` and returns the path.
    pub fn write_key(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.service_account_key().to_string())
            .unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut lock(&self.state))
    }

    /// Makes `project`/`zone` exist (with no instances yet).
    pub fn add_zone(&self, project: &str, zone: &str) {
        self.with(|s| {
            s.zones
                .entry((project.to_string(), zone.to_string()))
                .or_default();
        });
    }

    /// Adds a RUNNING instance; returns its numeric id.
    pub fn add_instance(&self, project: &str, zone: &str, name: &str) -> u64 {
        self.with(|s| {
            let id = 1_000_000 + s.next_id;
            s.next_id += 1;
            s.zones
                .entry((project.to_string(), zone.to_string()))
                .or_default()
                .insert(name.to_string(), (id, "RUNNING".to_string()));
            id
        })
    }

    /// The instance's status (`RUNNING`, `TERMINATED` after stop), None once deleted.
    pub fn instance_status(&self, project: &str, zone: &str, name: &str) -> Option<String> {
        self.with(|s| {
            s.zones
                .get(&(project.to_string(), zone.to_string()))
                .and_then(|z| z.get(name))
                .map(|(_, st)| st.clone())
        })
    }

    /// How long operations take from PENDING (first half) through RUNNING to DONE; default 0.
    pub fn set_operation_duration(&self, d: Duration) {
        self.with(|s| s.op_duration = d);
    }

    /// The longest an operation wait blocks before answering with a not-DONE operation
    /// (Google's is about 2 minutes; the fake's default is 2 s).
    pub fn set_wait_max(&self, d: Duration) {
        self.with(|s| s.wait_max = d);
    }

    /// The `expires_in` of access tokens handed out from now on; default 3599.
    pub fn set_token_ttl(&self, secs: u64) {
        self.with(|s| s.token_ttl = secs);
    }

    /// Forgets every access token handed out, so API calls with them get 401.
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// The next `n` instance calls (or publishes) meet `f`.
    pub fn fail_next(&self, n: usize, f: Failure) {
        self.with(|s| {
            for _ in 0..n {
                s.failures.push_back(f.clone());
            }
        });
    }

    pub fn add_topic(&self, topic: &str) {
        self.with(|s| {
            s.topics.insert(topic.to_string());
        });
    }

    pub fn requests(&self) -> Vec<GcpRequest> {
        self.with(|s| s.requests.clone())
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<GcpRequest> {
        self.with(|s| {
            s.requests
                .iter()
                .filter(|r| r.path.starts_with(prefix))
                .cloned()
                .collect()
        })
    }

    pub fn clear_requests(&self) {
        self.with(|s| s.requests.clear());
    }

    pub fn counters(&self) -> Counters {
        self.with(|s| s.counters.clone())
    }

    /// Every action carried out on an instance, in order.
    pub fn acted(&self) -> Vec<Acted> {
        self.with(|s| s.acted.clone())
    }

    pub fn published(&self) -> Vec<Published> {
        self.with(|s| s.published.clone())
    }

    /// Polls until `pred` holds over the fake's state, or panics after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&FakeGcp) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; counters {:?}",
                self.counters()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Checks an ID token's signature (the test key's) and returns its claims.
    pub fn verify_id_token(token: &str) -> Result<Value, String> {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.validate_aud = false;
        jsonwebtoken::decode::<Value>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }
}

impl Drop for FakeGcp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Google's error body.
pub(crate) fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}});
    (status, axum::Json(body)).into_response()
}

/// The gRPC-style error body of APIs such as Pub/Sub.
fn rpc_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": code}});
    (status, axum::Json(body)).into_response()
}

async fn handle(AxState(st): AxState<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let rec = GcpRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect(),
        body,
        at: SystemTime::now(),
    };
    lock(&st).requests.push(rec.clone());
    let path = rec.path.clone();
    if let Some(rest) = path.strip_prefix("/computeMetadata/v1/") {
        return metadata(&st, &parts.headers, rest, &rec);
    }
    if path == "/token" && parts.method == Method::POST {
        return token_endpoint(&st, &rec);
    }
    if path.starts_with("/compute/v1/") || path.starts_with("/v1/projects/") {
        if let Some(r) = check_bearer(&st, &parts.headers) {
            return r;
        }
        if let Some(rest) = path.strip_prefix("/compute/v1/") {
            return compute::handle(&st, &parts.method, rest, &rec).await;
        }
        return publish(&st, &parts.method, &path, &rec);
    }
    google_error(
        StatusCode::NOT_FOUND,
        "notFound",
        &format!("no such path {path}"),
    )
}

fn check_bearer(st: &Shared, h: &HeaderMap) -> Option<Response> {
    let token = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let mut s = lock(st);
    let ok = s.tokens.get(token).is_some_and(|exp| Instant::now() < *exp);
    if ok {
        return None;
    }
    s.counters.unauthenticated += 1;
    let body = json!({"error": {"code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError", "location": "Authorization", "locationType": "header"}],
        "status": "UNAUTHENTICATED"}});
    Some((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
}

fn issue_access_token(st: &Shared, prefix: &str) -> Value {
    let mut s = lock(st);
    let n = s.next_id;
    s.next_id += 1;
    let token = format!("{prefix}-{n}");
    let ttl = s.token_ttl;
    s.tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
    s.counters.access_tokens += 1;
    json!({"access_token": token, "expires_in": ttl, "token_type": "Bearer"})
}

/// An ID token for `audience`, signed with the test key as Google signs its own.
fn issue_id_token(st: &Shared, audience: &str) -> Result<String, String> {
    lock(st).counters.id_tokens += 1;
    let now = unix_now();
    let claims = json!({
        "iss": "https://accounts.google.com",
        "aud": audience,
        "azp": CLIENT_EMAIL,
        "email": CLIENT_EMAIL,
        "email_verified": true,
        "sub": "100000000000000000001",
        "iat": now,
        "exp": now + 3600,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(TEST_PRIVATE_KEY.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-only-key-1".into());
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| e.to_string())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn metadata(st: &Shared, h: &HeaderMap, rest: &str, rec: &GcpRequest) -> Response {
    if h.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        lock(st).counters.metadata_refused += 1;
        return text(
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"\n",
        );
    }
    match rest {
        "instance/service-accounts/default/token" => {
            axum::Json(issue_access_token(st, "meta-token")).into_response()
        }
        "instance/service-accounts/default/identity" => {
            let Some(aud) = rec.query_param("audience").filter(|a| !a.is_empty()) else {
                return text(
                    StatusCode::BAD_REQUEST,
                    "non-empty audience parameter required\n",
                );
            };
            match issue_id_token(st, &aud) {
                Ok(t) => text(StatusCode::OK, t),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        "instance/service-accounts/default/email" => text(StatusCode::OK, CLIENT_EMAIL),
        "project/project-id" => text(StatusCode::OK, META_PROJECT),
        "project/numeric-project-id" => text(StatusCode::OK, META_PROJECT_NUMBER),
        "instance/zone" => text(
            StatusCode::OK,
            format!("projects/{META_PROJECT_NUMBER}/zones/{META_ZONE}"),
        ),
        "instance/id" => text(StatusCode::OK, "4567890123456789012"),
        "instance/name" => text(StatusCode::OK, "tocsin-1"),
        _ => text(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

fn oauth_error(desc: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant", "error_description": desc})),
    )
        .into_response()
}

/// The token endpoint of the key flow: checks the assertion's signature against the test
/// key, then its claims, then answers an access token (`scope`) or an ID token
/// (`target_audience`).
fn token_endpoint(st: &Shared, rec: &GcpRequest) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&rec.body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})),
        )
            .into_response();
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("Missing assertion");
    };
    let key = match jsonwebtoken::DecodingKey::from_rsa_pem(TEST_PUBLIC_KEY.as_bytes()) {
        Ok(k) => k,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let token_uri = format!("http://{}/token", rec.header("host").unwrap_or("127.0.0.1"));
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[token_uri.as_str()]);
    v.set_issuer(&[CLIENT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return oauth_error(&format!("Invalid JWT: {e}")),
    };
    let iat = claims.get("iat").and_then(Value::as_u64).unwrap_or(0);
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if exp <= iat || exp - iat > 3600 {
        return oauth_error("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe");
    }
    if let Some(aud) = claims.get("target_audience").and_then(Value::as_str) {
        return match issue_id_token(st, aud) {
            Ok(t) => axum::Json(json!({"id_token": t})).into_response(),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
    }
    match claims.get("scope").and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => {
            axum::Json(issue_access_token(st, "key-token")).into_response()
        }
        _ => oauth_error("Invalid JWT: No scope or target_audience"),
    }
}

/// Pub/Sub `projects.topics.publish`.
fn publish(st: &Shared, method: &Method, path: &str, rec: &GcpRequest) -> Response {
    let Some(topic) = path
        .strip_prefix("/v1/")
        .and_then(|p| p.strip_suffix(":publish"))
        .filter(|_| method == Method::POST)
    else {
        return rpc_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method");
    };
    let mut s = lock(st);
    if let Some(f) = s.failures.front().cloned() {
        if !matches!(f, Failure::DoneWithError(_)) {
            s.failures.pop_front();
            return compute::failure_response(&f);
        }
    }
    if !s.topics.contains(topic) {
        let name = topic.rsplit('/').next().unwrap_or(topic);
        return rpc_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Resource not found (resource={name})."),
        );
    }
    let body: Value = serde_json::from_slice(&rec.body).unwrap_or(Value::Null);
    let Some(msgs) = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The value for message_count is too small. You passed 0 in the request, but the minimum value is 1.",
        );
    };
    let mut decoded = Vec::new();
    for m in msgs {
        let data = m.get("data").and_then(Value::as_str).unwrap_or("");
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data) else {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Invalid value at 'messages[0].data' (TYPE_BYTES), Base64 decoding failed",
            );
        };
        let attributes: BTreeMap<String, String> = m
            .get("attributes")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if bytes.is_empty() && attributes.is_empty() {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Some messages are empty (no data and no attributes).",
            );
        }
        decoded.push((bytes, attributes));
    }
    let mut ids = Vec::new();
    for (data, attributes) in decoded {
        let id = format!("{}", 9_000_000_000u64 + s.next_id);
        s.next_id += 1;
        s.counters.published += 1;
        s.published.push(Published {
            topic: topic.to_string(),
            data,
            attributes,
            message_id: id.clone(),
        });
        ids.push(id);
    }
    axum::Json(json!({"messageIds": ids})).into_response()
}
