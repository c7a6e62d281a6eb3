//! Google credentials (metadata server, service-account key, token cache, ID tokens) and the few
//! Google REST calls Tocsin makes (Compute Engine instances, Pub/Sub publish). Base URLs are
//! settings, so tests talk to fakes on 127.0.0.1.
//!
//! A [`Google`] is built once per configured user (an action policy, a receiver) and keeps its
//! token caches for its life; building it reads and checks the key file but makes no request.

mod auth;
pub mod compute;
pub mod error;
pub mod pubsub;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tocsin_httpclient::{Client, HttpClientConfig};

pub use auth::DEFAULT_SCOPE;
pub use compute::{InstanceOp, InstanceOutcome, Operation};
pub use error::{ApiError, Error, Result};
pub use pubsub::{parse_topic, PubsubMessage};

pub const DEFAULT_METADATA_URL: &str = "http://metadata.google.internal";
pub const DEFAULT_COMPUTE_URL: &str = "https://compute.googleapis.com";
pub const DEFAULT_PUBSUB_URL: &str = "https://pubsub.googleapis.com";

/// Where Google credentials come from and where Google's APIs are; shared by the
/// `gce_instance` action and the Pub/Sub receiver.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// A service-account JSON key (relative paths resolve against the config file's directory);
    /// without one, the metadata server is asked.
    #[serde(default)]
    pub service_account_key_file: Option<String>,
    /// Base URL of the metadata server; default `http://metadata.google.internal`.
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// Base URL of Compute Engine; default `https://compute.googleapis.com`.
    #[serde(default)]
    pub compute_url: Option<String>,
    /// Base URL of Pub/Sub; default `https://pubsub.googleapis.com`.
    #[serde(default)]
    pub pubsub_url: Option<String>,
    /// OAuth scopes of access tokens; default `cloud-platform` with a key, the instance's
    /// scopes with the metadata server.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// TLS and proxy settings of the calls to Google (prometheus.yml `http_config` without its
    /// authentication settings: Google's calls carry their own bearer token).
    #[serde(default, deserialize_with = "de_http_config")]
    pub http_config: Option<HttpClientConfig>,
}

/// `http_config` with unknown keys refused (the type itself accepts them, being flattened
/// into scrape configs elsewhere).
fn de_http_config<'de, D: Deserializer<'de>>(d: D) -> Result<Option<HttpClientConfig>, D::Error> {
    #[derive(Deserialize)]
    struct Strict {
        #[serde(flatten)]
        cfg: HttpClientConfig,
        #[serde(flatten)]
        rest: BTreeMap<String, serde::de::IgnoredAny>,
    }
    let s = Strict::deserialize(d)?;
    if let Some(k) = s.rest.keys().next() {
        return Err(serde::de::Error::custom(format!(
            "http_config: unknown field `{k}`"
        )));
    }
    Ok(Some(s.cfg))
}

/// Time allowed for one API request, a little over the 2 minutes an operation wait can take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(150);

/// A Google API user: credentials with their caches, and the HTTP clients.
pub struct Google {
    auth: auth::Auth,
    client: Client,
    compute_url: reqwest::Url,
    pubsub_url: reqwest::Url,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google")
            .field("compute_url", &self.compute_url.as_str())
            .field("pubsub_url", &self.pubsub_url.as_str())
            .finish_non_exhaustive()
    }
}

fn base_url(v: &Option<String>, default: &str, field: &str) -> Result<reqwest::Url> {
    let s = v.as_deref().unwrap_or(default).trim();
    let u = reqwest::Url::parse(s).map_err(|e| Error::Config(format!("{field}: {s:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.query().is_some() {
        return Err(Error::Config(format!(
            "{field}: {s:?}: must be an http or https URL without a query"
        )));
    }
    Ok(u)
}

impl Google {
    /// Checks the settings and reads the key; `what` prefixes messages (`...gce_instance`),
    /// `base_dir` resolves a relative key path.
    pub fn new(cfg: &GoogleConfig, base_dir: &Path, what: &str) -> Result<Google> {
        let at = |f: &str| format!("{what}.google.{f}");
        let metadata_url = base_url(&cfg.metadata_url, DEFAULT_METADATA_URL, &at("metadata_url"))?;
        let compute_url = base_url(&cfg.compute_url, DEFAULT_COMPUTE_URL, &at("compute_url"))?;
        let pubsub_url = base_url(&cfg.pubsub_url, DEFAULT_PUBSUB_URL, &at("pubsub_url"))?;
        for (i, s) in cfg.scopes.iter().enumerate() {
            if s.trim().is_empty() || s.contains([' ', ',']) {
                return Err(Error::Config(format!(
                    "{}: {s:?} is not a scope URL",
                    at(&format!("scopes[{i}]"))
                )));
            }
        }
        let http = cfg.http_config.clone().unwrap_or_default();
        if http.basic_auth.is_some()
            || http.authorization.is_some()
            || http.bearer_token.is_some()
            || http.bearer_token_file.is_some()
            || http.oauth2.is_some()
        {
            return Err(Error::Config(format!(
                "{}: authentication settings are not allowed: calls to Google carry a token from the metadata server or service_account_key_file",
                at("http_config")
            )));
        }
        let client = http
            .build_client(base_dir, REQUEST_TIMEOUT, true)
            .map_err(|e| Error::Config(format!("{}: {e}", at("http_config"))))?;
        let source = match cfg.service_account_key_file.as_deref() {
            Some(p) if p.trim().is_empty() => {
                return Err(Error::Config(format!(
                    "{}: empty path",
                    at("service_account_key_file")
                )))
            }
            Some(p) => {
                auth::Source::Key(auth::ServiceAccountKey::load(&base_dir.join(p)).map_err(
                    |e| Error::Config(format!("{}: {e}", at("service_account_key_file"))),
                )?)
            }
            None => auth::Source::Metadata(metadata_url),
        };
        // The metadata server is link-local: never through a proxy, and TLS settings meant
        // for Google's public endpoints do not apply.
        let metadata_client = HttpClientConfig::default()
            .build_client(base_dir, REQUEST_TIMEOUT, false)
            .map_err(|e| Error::Config(format!("{what}: metadata client: {e}")))?;
        Ok(Google {
            auth: auth::Auth::new(source, client.clone(), metadata_client, cfg.scopes.clone()),
            client,
            compute_url,
            pubsub_url,
        })
    }

    /// An OAuth access token for Google's APIs (cached).
    pub async fn access_token(&self) -> Result<String> {
        self.auth.access_token().await
    }

    /// A Google-signed ID token whose `aud` is `audience` (cached per audience).
    pub async fn id_token(&self, audience: &str) -> Result<String> {
        self.auth.id_token(audience).await
    }

    /// How many tokens this user has fetched so far.
    pub fn token_fetches(&self) -> u64 {
        self.auth.fetches()
    }

    /// One authorized request; a 401 (a token revoked or expired early) makes one more try
    /// with a fresh token. Answers of any status are returned for the caller to classify.
    async fn call(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<Vec<u8>>,
        timeout: Duration,
        what: &str,
    ) -> Result<Answer> {
        let mut tried_fresh = false;
        loop {
            let token = self.auth.access_token().await?;
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .bearer_auth(&token)
                .timeout(timeout.min(REQUEST_TIMEOUT));
            req = match &body {
                Some(b) => req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone()),
                // Compute Engine's POST methods take no body; a length is still required.
                None if method == reqwest::Method::POST => {
                    req.header(reqwest::header::CONTENT_LENGTH, "0")
                }
                None => req,
            };
            let resp = req.send().await.map_err(|e| Error::transport(what, &e))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| Error::transport(what, &e))?
                .to_vec();
            if status == 401 && !tried_fresh {
                tried_fresh = true;
                self.auth.invalidate().await;
                continue;
            }
            return Ok(Answer {
                status,
                headers,
                body: bytes,
            });
        }
    }
}

pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment.
pub(crate) fn join(base: &reqwest::Url, segments: &[&str]) -> Result<reqwest::Url> {
    let mut u = base.clone();
    u.path_segments_mut()
        .map_err(|_| Error::Config(format!("{base}: cannot be a base URL")))?
        .pop_if_empty()
        .extend(segments);
    Ok(u)
}

#[cfg(test)]
mod tests;
