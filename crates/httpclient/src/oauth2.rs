//! `oauth2:` of `http_config`: the client-credentials grant (RFC 6749 section 4.4). A token is
//! fetched from `token_url` when first needed, kept until shortly before it expires, and fetched
//! again after that; concurrent requests wait for one fetch instead of each starting their own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde::Deserialize;

use crate::{invalid, read_secret, HttpConfigError, TlsConfig};

/// Prometheus's `oauth2` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
}

/// A token is renewed this long before the expiry the server gave, so a request never carries one
/// that expires on the way (the same margin Go's oauth2 package uses).
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl OAuth2 {
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        if self.client_id.is_empty() {
            return Err(invalid("oauth2.client_id", "missing"));
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            return Err(invalid(
                "oauth2",
                "at most one of client_secret and client_secret_file may be set",
            ));
        }
        if self.token_url.is_empty() {
            return Err(invalid("oauth2.token_url", "missing"));
        }
        let u = reqwest::Url::parse(&self.token_url)
            .map_err(|e| invalid("oauth2.token_url", format!("{:?}: {e}", self.token_url)))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(invalid(
                "oauth2.token_url",
                format!(
                    "{:?}: must be an http or https URL with a host",
                    self.token_url
                ),
            ));
        }
        // The token endpoint is reached with the same kind of client, so the same rules apply.
        let inner = self.token_client_config();
        inner.validate().map_err(|e| match e {
            HttpConfigError::Invalid { field, message } => {
                invalid(&format!("oauth2.{field}"), message)
            }
            other => other,
        })
    }

    fn token_client_config(&self) -> crate::HttpClientConfig {
        crate::HttpClientConfig {
            tls_config: self.tls_config.clone(),
            proxy_url: self.proxy_url.clone(),
            no_proxy: self.no_proxy.clone(),
            proxy_from_environment: self.proxy_from_environment,
            proxy_connect_header: self.proxy_connect_header.clone(),
            ..Default::default()
        }
    }

    /// A token source for a client; the secret file is read now (a reload re-reads it).
    pub(crate) fn source(
        &self,
        base: &Path,
        timeout: Duration,
    ) -> Result<TokenSource, HttpConfigError> {
        self.validate()?;
        let secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => read_secret(base, "oauth2.client_secret_file", f)?,
            (None, None) => String::new(),
        };
        let client = self
            .token_client_config()
            .build_reqwest(base, timeout, false)?;
        Ok(TokenSource {
            client,
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: secret,
            scopes: self.scopes.clone(),
            endpoint_params: self.endpoint_params.clone(),
            cached: tokio::sync::Mutex::new(None),
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    header: HeaderValue,
    /// None: the server gave no lifetime, the token is kept until a request is refused.
    renew_at: Option<Instant>,
}

pub(crate) struct TokenSource {
    client: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    endpoint_params: BTreeMap<String, String>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// The `Authorization` header value to send now. Errors are reqwest's own (connection,
    /// status, undecodable body) so callers handle them like any failed request.
    pub(crate) async fn header(&self) -> Result<HeaderValue, reqwest::Error> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.renew_at.is_none_or(|t| Instant::now() < t) {
                return Ok(c.header.clone());
            }
        }
        let fetched_at = Instant::now();
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = self.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        for (k, v) in &self.endpoint_params {
            form.push((k, v));
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .client
            .post(&self.token_url)
            // Client authentication in the header, as RFC 6749 section 2.3.1 recommends.
            .basic_auth(
                form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect::<String>(),
                Some(
                    form_urlencoded::byte_serialize(self.client_secret.as_bytes())
                        .collect::<String>(),
                ),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let t: TokenResponse = resp.json().await?;
        let kind = match t.token_type.as_deref() {
            // Servers answer "bearer" in any case; the header wants the canonical spelling.
            None | Some("") => "Bearer".to_string(),
            Some(k) if k.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
            Some(k) => k.to_string(),
        };
        let mut header = match HeaderValue::from_str(&format!("{kind} {}", t.access_token)) {
            Ok(h) => h,
            // Not a header-safe token: the request goes out unauthenticated and the server's
            // 401 says so, rather than a panic or a silent drop.
            Err(_) => HeaderValue::from_static("Bearer invalid-token-from-token-url"),
        };
        header.set_sensitive(true);
        let renew_at = t
            .expires_in
            .map(|s| fetched_at + Duration::from_secs(s).saturating_sub(EXPIRY_MARGIN));
        *cached = Some(Cached {
            header: header.clone(),
            renew_at,
        });
        Ok(header)
    }

    /// Forgets the token, after the resource server refused it.
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

#[cfg(test)]
#[path = "oauth2_tests.rs"]
mod tests;
