//! Google credentials: access tokens and ID tokens, from the metadata server (header
//! `Metadata-Flavor: Google`) or from a service-account JSON key (an RS256-signed JWT exchanged
//! at the key's `token_uri`). Tokens are cached until shortly before they expire; concurrent
//! callers wait on one refresh instead of each fetching their own.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tocsin_httpclient::Client;

use crate::error::{classify, Error, Result};

/// How long before a token's expiry it is replaced: a token handed out is good for at least
/// this long, enough for one Compute Engine call and its operation wait.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The parts of a service-account key file we use.
#[derive(Clone, Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: String,
}

#[derive(Clone)]
pub(crate) struct ServiceAccountKey {
    client_email: String,
    token_uri: String,
    key_id: Option<String>,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Reads and checks a key file; every error names the file.
    pub(crate) fn load(path: &Path) -> Result<ServiceAccountKey> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading service-account key {shown}: {e}")))?;
        let k: KeyFile = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "service-account key {shown}: not a JSON key file: {e}"
            ))
        })?;
        if k.kind != "service_account" {
            return Err(Error::Config(format!(
                "service-account key {shown}: \"type\" is {:?}, not \"service_account\" (only service-account keys are supported)",
                k.kind
            )));
        }
        for (field, v) in [
            ("client_email", &k.client_email),
            ("private_key", &k.private_key),
            ("token_uri", &k.token_uri),
        ] {
            if v.trim().is_empty() {
                return Err(Error::Config(format!(
                    "service-account key {shown}: \"{field}\" is missing"
                )));
            }
        }
        let url = reqwest::Url::parse(&k.token_uri)
            .map_err(|e| Error::Config(format!("service-account key {shown}: token_uri: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "service-account key {shown}: token_uri must be http or https"
            )));
        }
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(k.private_key.as_bytes()).map_err(|e| {
                Error::Config(format!(
                    "service-account key {shown}: private_key is not an RSA key in PEM form: {e}"
                ))
            })?;
        Ok(ServiceAccountKey {
            client_email: k.client_email,
            token_uri: k.token_uri,
            key_id: k.private_key_id.filter(|s| !s.is_empty()),
            key,
        })
    }

    /// A signed assertion for the token endpoint: `scope` for an access token,
    /// `target_audience` for an ID token.
    fn assertion(&self, scope: Option<&str>, target_audience: Option<&str>) -> Result<String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            scope: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            target_audience: Option<&'a str>,
        }
        let iat = unix_now();
        let claims = Claims {
            iss: &self.client_email,
            aud: &self.token_uri,
            iat,
            exp: iat + 3600,
            scope,
            target_audience,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Error::Config(format!("signing the token request: {e}")))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug)]
pub(crate) enum Source {
    Metadata(reqwest::Url),
    Key(ServiceAccountKey),
}

#[derive(Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// Where tokens come from, and the caches.
pub(crate) struct Auth {
    source: Source,
    /// For the token endpoint (proxy and TLS settings apply).
    client: Client,
    /// For the metadata server: never through a proxy, as Google's own libraries do.
    metadata_client: Client,
    scopes: Vec<String>,
    access: tokio::sync::Mutex<Option<Cached>>,
    ids: tokio::sync::Mutex<HashMap<String, Cached>>,
    fetches: AtomicU64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    id_token: String,
}

impl Auth {
    pub(crate) fn new(
        source: Source,
        client: Client,
        metadata_client: Client,
        scopes: Vec<String>,
    ) -> Auth {
        Auth {
            source,
            client,
            metadata_client,
            scopes,
            access: tokio::sync::Mutex::new(None),
            ids: tokio::sync::Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many tokens (access and ID) were fetched, for tests and logs.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// An access token good for at least [`REFRESH_MARGIN`].
    pub(crate) async fn access_token(&self) -> Result<String> {
        let mut g = self.access.lock().await;
        if let Some(c) = g.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let (token, ttl) = self.fetch_access().await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        *g = Some(Cached {
            token: token.clone(),
            refresh_at: refresh_at(ttl),
        });
        Ok(token)
    }

    /// Forgets the cached access token (Google answered 401 to it).
    pub(crate) async fn invalidate(&self) {
        *self.access.lock().await = None;
    }

    /// A Google-signed ID token for `audience`, good for at least [`REFRESH_MARGIN`].
    pub(crate) async fn id_token(&self, audience: &str) -> Result<String> {
        let mut g = self.ids.lock().await;
        if let Some(c) = g.get(audience).filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.token.clone());
        }
        let token = self.fetch_id(audience).await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        // A token whose expiry cannot be read is used once and not kept.
        let refresh = jwt_exp(&token).map(|exp| {
            let left = exp.saturating_sub(unix_now());
            refresh_at(Duration::from_secs(left))
        });
        match refresh {
            Some(at) => {
                g.insert(
                    audience.to_string(),
                    Cached {
                        token: token.clone(),
                        refresh_at: at,
                    },
                );
            }
            None => {
                g.remove(audience);
            }
        }
        Ok(token)
    }

    async fn fetch_access(&self) -> Result<(String, Duration)> {
        let a: TokenAnswer = match &self.source {
            Source::Metadata(base) => {
                let mut url = metadata_url(base, "instance/service-accounts/default/token");
                if !self.scopes.is_empty() {
                    url.query_pairs_mut()
                        .append_pair("scopes", &self.scopes.join(","));
                }
                let body = self.metadata_get(url, "access token").await?;
                serde_json::from_slice(&body).map_err(|e| {
                    Error::BadResponse(format!(
                        "access token from the metadata server: not the documented JSON: {e}"
                    ))
                })?
            }
            Source::Key(k) => {
                let scope = if self.scopes.is_empty() {
                    DEFAULT_SCOPE.to_string()
                } else {
                    self.scopes.join(" ")
                };
                self.exchange(k, &k.assertion(Some(&scope), None)?, "access token")
                    .await?
            }
        };
        if a.access_token.is_empty() {
            return Err(Error::BadResponse(
                "access token answer has no access_token".into(),
            ));
        }
        let ttl = Duration::from_secs(a.expires_in.unwrap_or(3600));
        Ok((a.access_token, ttl))
    }

    async fn fetch_id(&self, audience: &str) -> Result<String> {
        match &self.source {
            Source::Metadata(base) => {
                let mut url = metadata_url(base, "instance/service-accounts/default/identity");
                url.query_pairs_mut()
                    .append_pair("audience", audience)
                    .append_pair("format", "full");
                let body = self.metadata_get(url, "ID token").await?;
                let t = String::from_utf8_lossy(&body).trim().to_string();
                if t.split('.').count() != 3 {
                    return Err(Error::BadResponse(
                        "ID token from the metadata server is not a JWT".into(),
                    ));
                }
                Ok(t)
            }
            Source::Key(k) => {
                let a = self
                    .exchange(k, &k.assertion(None, Some(audience))?, "ID token")
                    .await?;
                if a.id_token.is_empty() {
                    return Err(Error::BadResponse(format!(
                        "ID token answer of {} has no id_token",
                        k.token_uri
                    )));
                }
                Ok(a.id_token)
            }
        }
    }

    async fn metadata_get(&self, url: reqwest::Url, what: &str) -> Result<Vec<u8>> {
        let what = format!("{what} from the metadata server");
        let resp = self
            .metadata_client
            .get(url)
            .header("Metadata-Flavor", "Google")
            .timeout(TOKEN_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::transport(&what, &e))?;
        read_ok(resp, &what).await
    }

    async fn exchange(
        &self,
        k: &ServiceAccountKey,
        assertion: &str,
        what: &str,
    ) -> Result<TokenAnswer> {
        let what = format!("{what} from {}", k.token_uri);
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", assertion)
            .finish();
        let resp = self
            .client
            .post(&k.token_uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .timeout(TOKEN_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::transport(&what, &e))?;
        let body = read_ok(resp, &what).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::BadResponse(format!("{what}: not the documented JSON: {e}")))
    }
}

/// The body of a 2xx answer, else the classified error. An OAuth error body
/// (`{"error": "invalid_grant", "error_description": ...}`) is shown as it is.
async fn read_ok(resp: reqwest::Response, what: &str) -> Result<Vec<u8>> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| Error::transport(what, &e))?
        .to_vec();
    if (200..300).contains(&status) {
        return Ok(body);
    }
    #[derive(Deserialize)]
    struct OAuthErr {
        error: String,
        #[serde(default)]
        error_description: String,
    }
    if let Ok(o) = serde_json::from_slice::<OAuthErr>(&body) {
        return Err(Error::Api {
            status,
            reason: o.error.clone(),
            message: format!("{what}: HTTP {status} {}: {}", o.error, o.error_description),
            retryable: status >= 500 || status == 429,
            retry_after: None,
        });
    }
    Err(classify(what, status, &headers, &body))
}

fn metadata_url(base: &reqwest::Url, rest: &str) -> reqwest::Url {
    let mut u = base.clone();
    let path = format!(
        "{}/computeMetadata/v1/{rest}",
        base.path().trim_end_matches('/')
    );
    u.set_path(&path);
    u
}

fn refresh_at(ttl: Duration) -> Instant {
    // A short-lived token is kept for half its life rather than not at all.
    let keep = if ttl > REFRESH_MARGIN * 2 {
        ttl - REFRESH_MARGIN
    } else {
        ttl / 2
    };
    Instant::now() + keep
}

/// The `exp` claim of a JWT, read without checking the signature (the token is ours to pass
/// on, not to trust).
pub(crate) fn jwt_exp(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_u64()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn key_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = ServiceAccountKey::load(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.json"), "{e}");
        let user = dir.path().join("user.json");
        std::fs::write(&user, r#"{"type": "authorized_user", "client_id": "x"}"#).unwrap();
        let e = ServiceAccountKey::load(&user).unwrap_err().to_string();
        assert!(
            e.contains("user.json") && e.contains("authorized_user"),
            "{e}"
        );
        let bad = dir.path().join("bad.json");
        std::fs::write(
            &bad,
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "nope", "token_uri": "http://x/token"}"#,
        )
        .unwrap();
        let e = ServiceAccountKey::load(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("private_key"), "{e}");
        let text = dir.path().join("text.json");
        std::fs::write(&text, "hello").unwrap();
        let e = ServiceAccountKey::load(&text).unwrap_err().to_string();
        assert!(e.contains("text.json"), "{e}");
    }

    #[test]
    fn jwt_exp_reads_the_claim() {
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1234}"#);
        assert_eq!(jwt_exp(&format!("h.{p}.s")), Some(1234));
        assert_eq!(jwt_exp("garbage"), None);
    }
}
