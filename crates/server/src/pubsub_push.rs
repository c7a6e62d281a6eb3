//! The Cloud Monitoring intake's server side: the `pubsub_push:` section of tocsin.yml (OIDC
//! verification of the token Pub/Sub attaches to each push), the verifier itself (RS256 against
//! the keys of a JWKS file, `exp`/`iat`, `aud`, `iss`, and optionally the service account's
//! `email`), and the "in one go" step behind `POST /api/v1/pubsub/push`: a known message id
//! does nothing, else the alert is stored and the id recorded in state.db before the answer.
//!
//! The section is reloadable: a reload re-reads the JWKS file, and a token signed with a key id
//! the verifier does not know makes it re-read the file when it changed on disk (Google rotates
//! its signing keys; a job refreshing the file is enough, no reload needed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use serde::Deserialize;
use tocsin_alerts::pubsub_log::{PubsubLog, RETENTION_MS};
use tocsin_alerts::AlertManager;
use tocsin_api::pubsub::{AuthError, IncidentState, PushMessage, PushOutcome};

use crate::config::Problems;

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;

/// How often taken message ids older than Pub/Sub's retention are pruned.
const PRUNE_EVERY_MS: i64 = 3_600_000;

fn default_issuers() -> Vec<String> {
    vec![
        "https://accounts.google.com".into(),
        "accounts.google.com".into(),
    ]
}

/// The `pubsub_push:` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubPushConfig {
    /// Verification of the push's `Authorization: Bearer` OIDC token; absent = pushes are
    /// taken without one (the web configuration's `alert` role still applies).
    #[serde(default)]
    pub oidc: Option<OidcConfig>,
}

/// `pubsub_push.oidc`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// JWKS file with the signing keys (Google's are at
    /// `https://www.googleapis.com/oauth2/v3/certs`), relative to the config file.
    pub jwks_file: String,
    /// The `aud` the token must carry: the audience set on the push subscription (by default
    /// the push endpoint URL).
    pub audience: String,
    /// Accepted `iss` values.
    #[serde(default = "default_issuers")]
    pub issuers: Vec<String>,
    /// When not empty, the token's `email` (the push subscription's service account) must be
    /// one of these, with `email_verified` true.
    #[serde(default)]
    pub service_account_emails: Vec<String>,
}

impl PubsubPushConfig {
    /// Problems of the text alone, as `(path, message)`.
    pub fn problems(&self, p: &mut Problems) {
        let Some(o) = &self.oidc else {
            return;
        };
        let at = |f: &str| format!("pubsub_push.oidc.{f}");
        if o.jwks_file.trim().is_empty() {
            p.push((at("jwks_file"), "must not be empty".into()));
        }
        if o.audience.trim().is_empty() {
            p.push((at("audience"), "must not be empty".into()));
        }
        if o.issuers.is_empty() {
            p.push((at("issuers"), "must list at least one issuer".into()));
        }
        for (i, s) in o.issuers.iter().enumerate() {
            if s.trim().is_empty() {
                p.push((at(&format!("issuers[{i}]")), "must not be empty".into()));
            }
        }
        for (i, s) in o.service_account_emails.iter().enumerate() {
            if !s.contains('@') {
                p.push((
                    at(&format!("service_account_emails[{i}]")),
                    format!("{s:?} is not an email address"),
                ));
            }
        }
    }

    /// The verifier this section asks for (reading the JWKS file relative to `base`).
    pub fn verifier(&self, base: &Path) -> Result<Option<Arc<OidcVerifier>>, String> {
        match &self.oidc {
            None => Ok(None),
            Some(o) => OidcVerifier::load(o, base)
                .map(|v| Some(Arc::new(v)))
                .map_err(|e| format!("pubsub_push.oidc.jwks_file: {e}")),
        }
    }
}

/// The keys of a JWKS file by key id, and the file's modification time when read.
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    modified: Option<SystemTime>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reads a JWKS file: every key must be an RSA key for RS256 with a `kid`.
fn read_jwks(path: &Path) -> Result<KeySet, String> {
    let modified = modified(path);
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let list = doc
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| format!("{}: not a JWKS (no \"keys\" array)", path.display()))?;
    let mut keys = HashMap::new();
    for (i, k) in list.iter().enumerate() {
        let at = |m: String| format!("{}: keys[{i}]: {m}", path.display());
        let kty = k.get("kty").and_then(|v| v.as_str()).unwrap_or("");
        if kty != "RSA" {
            return Err(at(format!(
                "kty {kty:?}: only RSA keys (RS256) are supported"
            )));
        }
        let jwk: Jwk = serde_json::from_value(k.clone()).map_err(|e| at(e.to_string()))?;
        if let Some(alg) = jwk.common.key_algorithm {
            if alg != KeyAlgorithm::RS256 {
                return Err(at(format!("alg {alg:?}: only RS256 is supported")));
            }
        }
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
            return Err(at("not an RSA key".into()));
        }
        let kid = jwk
            .common
            .key_id
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| at("kid: missing".into()))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| at(e.to_string()))?;
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err(format!("{}: no keys", path.display()));
    }
    Ok(KeySet { keys, modified })
}

/// The claims checked besides those `jsonwebtoken` validates.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

/// Verifies push tokens against one configuration.
pub struct OidcVerifier {
    path: PathBuf,
    keys: RwLock<Arc<KeySet>>,
    validation: Validation,
    emails: Vec<String>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("path", &self.path)
            .finish()
    }
}

impl OidcVerifier {
    pub fn load(cfg: &OidcConfig, base: &Path) -> Result<OidcVerifier, String> {
        let path = base.join(&cfg.jwks_file);
        let keys = read_jwks(&path)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_audience(&[cfg.audience.as_str()]);
        validation.set_issuer(&cfg.issuers);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        Ok(OidcVerifier {
            path,
            keys: RwLock::new(Arc::new(keys)),
            validation,
            emails: cfg.service_account_emails.clone(),
        })
    }

    /// The key for `kid`, re-reading the file once if it changed since it was read.
    fn key(&self, kid: &str) -> Result<Option<DecodingKey>, AuthError> {
        let current = self.keys.read().clone();
        if let Some(k) = current.keys.get(kid) {
            return Ok(Some(k.clone()));
        }
        if modified(&self.path) == current.modified {
            return Ok(None);
        }
        let fresh = read_jwks(&self.path).map_err(|e| {
            tracing::error!(error = %e, "pubsub_push: re-reading the JWKS file failed");
            AuthError::Internal(format!("pubsub_push.oidc.jwks_file: {e}"))
        })?;
        let key = fresh.keys.get(kid).cloned();
        *self.keys.write() = Arc::new(fresh);
        tracing::info!(path = %self.path.display(), "pubsub_push: JWKS file re-read");
        Ok(key)
    }

    /// Checks an `Authorization` header value.
    pub fn verify(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        let unauthorized = |m: String| AuthError::Unauthorized(format!("pubsub push: {m}"));
        let value = authorization.ok_or_else(|| {
            unauthorized("no Authorization header; a Bearer OIDC token is required".into())
        })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("Authorization is not a Bearer token".into()))?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthorized(format!("token is not a JWT: {e}")))?;
        if header.alg != Algorithm::RS256 {
            return Err(unauthorized(format!(
                "token algorithm {:?}, expected RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthorized("token header has no kid".into()))?;
        let key = self
            .key(&kid)?
            .ok_or_else(|| unauthorized(format!("token signed with unknown key id {kid:?}")))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            .map_err(|e| unauthorized(format!("token refused: {}", describe(&e))))?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        // `jsonwebtoken` checks the presence of exp, aud and iss but not of iat.
        let iat = data
            .claims
            .iat
            .ok_or_else(|| unauthorized("token refused: claim iat missing".into()))?;
        if iat > now + LEEWAY_SECS as i64 {
            return Err(unauthorized(
                "token refused: issued in the future (iat)".into(),
            ));
        }
        if !self.emails.is_empty() {
            let email = data.claims.email.unwrap_or_default();
            if !self.emails.iter().any(|e| e == &email) {
                return Err(unauthorized(format!(
                    "token refused: email {email:?} is not one of service_account_emails"
                )));
            }
            if data.claims.email_verified != Some(true) {
                return Err(unauthorized(
                    "token refused: email_verified is not true".into(),
                ));
            }
        }
        Ok(())
    }
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired (exp)".into(),
        K::InvalidAudience => "wrong audience (aud)".into(),
        K::InvalidIssuer => "wrong issuer (iss)".into(),
        K::InvalidSignature => "bad signature".into(),
        K::MissingRequiredClaim(c) => format!("claim {c} missing"),
        K::ImmatureSignature => "not valid yet (nbf)".into(),
        _ => e.to_string(),
    }
}

/// What `POST /api/v1/pubsub/push` needs of the server.
#[derive(Debug)]
pub struct PubsubIntake {
    log: PubsubLog,
    verifier: RwLock<Option<Arc<OidcVerifier>>>,
    /// Pushes are taken one at a time, so a message delivered twice at once is stored once.
    lock: Mutex<()>,
    last_prune_ms: AtomicI64,
}

impl PubsubIntake {
    pub fn new(log: PubsubLog, verifier: Option<Arc<OidcVerifier>>) -> PubsubIntake {
        PubsubIntake {
            log,
            verifier: RwLock::new(verifier),
            lock: Mutex::new(()),
            last_prune_ms: AtomicI64::new(0),
        }
    }

    /// Installs the verifier of a reloaded configuration.
    pub fn set_verifier(&self, v: Option<Arc<OidcVerifier>>) {
        *self.verifier.write() = v;
    }

    /// Whether pushes must carry a verified token.
    pub fn has_verifier(&self) -> bool {
        self.verifier.read().is_some()
    }

    pub fn authorize(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        let v = self.verifier.read().clone();
        match v {
            None => Ok(()),
            Some(v) => v.verify(authorization),
        }
    }

    /// Takes one push at `now_ms` (see the module doc).
    pub fn push(
        &self,
        am: &AlertManager,
        msg: &PushMessage,
        now_ms: i64,
    ) -> tocsin_alerts::Result<PushOutcome> {
        let _one = self.lock.lock();
        self.prune(now_ms);
        if self.log.contains(&msg.message_id)? {
            return Ok(PushOutcome::Duplicate);
        }
        let stale = msg.state == IncidentState::Open
            && am
                .store()
                .get(msg.alert.fingerprint())
                .is_some_and(|old| old.resolved_at(now_ms));
        if !stale {
            am.put_client_alerts(vec![msg.alert.clone()])?;
        }
        self.log
            .record(&msg.message_id, &msg.subscription, now_ms)?;
        Ok(if stale {
            PushOutcome::Stale
        } else {
            PushOutcome::Taken
        })
    }

    fn prune(&self, now_ms: i64) {
        let last = self.last_prune_ms.load(Ordering::Relaxed);
        if now_ms - last < PRUNE_EVERY_MS {
            return;
        }
        self.last_prune_ms.store(now_ms, Ordering::Relaxed);
        match self.log.prune(now_ms - RETENTION_MS) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "pubsub_push: old message ids pruned"),
            Err(e) => tracing::warn!(error = %e, "pubsub_push: pruning message ids failed"),
        }
    }
}

#[cfg(test)]
#[path = "pubsub_push_tests.rs"]
mod tests;
