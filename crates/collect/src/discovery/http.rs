//! `http_sd_configs`: target groups fetched with a GET every `refresh_interval` from an endpoint
//! that answers `200` with `application/json` and a list of `{targets, labels}`. A failed fetch
//! keeps the previous targets. The HTTP client fields follow Prometheus's names; the ones we do
//! not implement yet are accepted by the parser and rejected by `validate`, never ignored.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::{
    at_least_1ms, de_duration, removed_groups, to_target_groups, BoxFuture, Discoverer, RawGroup,
    TargetGroup,
};
use crate::error::Error;

/// The label naming the URL a target came from.
pub const URL_LABEL: &str = "__meta_url";

/// One `http_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    pub url: String,
    #[serde(default = "default_refresh", deserialize_with = "de_duration")]
    pub refresh_interval: Duration,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub tls_config: TlsConfig,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes")]
    pub enable_http2: bool,
    /// Not implemented: rejected by `validate` when set.
    #[serde(default)]
    pub oauth2: Option<serde_json::Value>,
    /// Not implemented: rejected by `validate` when set.
    #[serde(default)]
    pub http_headers: Option<serde_json::Value>,
    /// Not implemented: rejected by `validate` when set.
    #[serde(default)]
    pub proxy_connect_header: Option<serde_json::Value>,
}

fn default_refresh() -> Duration {
    Duration::from_secs(60)
}
fn yes() -> bool {
    true
}

/// `basic_auth`: the password (or username) may come from a file, re-read on every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub username_file: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization`: sends `Authorization: <type> <credentials>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn bearer() -> String {
    "Bearer".to_string()
}

/// `tls_config`. Files are read when the discoverer is built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// `TLS12` or `TLS13`.
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
    /// Not implemented: rejected by `validate` when set.
    #[serde(default)]
    pub server_name: Option<String>,
}

fn both(a: &Option<String>, b: &Option<String>) -> bool {
    a.is_some() && b.is_some()
}

fn tls_version(field: &str, v: &Option<String>) -> Result<Option<reqwest::tls::Version>, String> {
    match v.as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(reqwest::tls::Version::TLS_1_2)),
        Some("TLS13") => Ok(Some(reqwest::tls::Version::TLS_1_3)),
        Some(other) => Err(format!(
            "http_sd_configs: tls_config.{field} {other:?} is not supported (use TLS12 or TLS13)"
        )),
    }
}

impl HttpSdConfig {
    /// Checks the URL and the HTTP client fields; every message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("http_sd_configs: invalid 'url' {:?}: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "http_sd_configs: 'url' {:?} must use http or https",
                self.url
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("http_sd_configs: 'url' {:?} has no host", self.url));
        }
        if self.refresh_interval.is_zero() {
            return Err("http_sd_configs: 'refresh_interval' must be greater than zero".into());
        }
        for (name, set) in [
            ("oauth2", self.oauth2.is_some()),
            ("http_headers", self.http_headers.is_some()),
            ("proxy_connect_header", self.proxy_connect_header.is_some()),
            (
                "tls_config.server_name",
                self.tls_config.server_name.is_some(),
            ),
        ] {
            if set {
                return Err(format!("http_sd_configs: '{name}' is not supported yet"));
            }
        }
        if self.basic_auth.is_some() && self.authorization.is_some() {
            return Err(
                "http_sd_configs: at most one of 'basic_auth' and 'authorization' may be set"
                    .into(),
            );
        }
        if let Some(b) = &self.basic_auth {
            if both(&b.password, &b.password_file) {
                return Err("http_sd_configs: basic_auth: at most one of 'password' and 'password_file' may be set".into());
            }
            if !b.username.is_empty() && b.username_file.is_some() {
                return Err("http_sd_configs: basic_auth: at most one of 'username' and 'username_file' may be set".into());
            }
        }
        if let Some(a) = &self.authorization {
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err("http_sd_configs: authorization: 'type' cannot be \"Basic\", use 'basic_auth' instead".into());
            }
            if both(&a.credentials, &a.credentials_file) {
                return Err("http_sd_configs: authorization: at most one of 'credentials' and 'credentials_file' may be set".into());
            }
        }
        let t = &self.tls_config;
        for (a, b, what) in [
            (&t.ca, &t.ca_file, "'ca' and 'ca_file'"),
            (&t.cert, &t.cert_file, "'cert' and 'cert_file'"),
            (&t.key, &t.key_file, "'key' and 'key_file'"),
        ] {
            if both(a, b) {
                return Err(format!(
                    "http_sd_configs: tls_config: at most one of {what} may be set"
                ));
            }
        }
        if (t.cert.is_some() || t.cert_file.is_some()) != (t.key.is_some() || t.key_file.is_some())
        {
            return Err(
                "http_sd_configs: tls_config: a client certificate needs both a cert and a key"
                    .into(),
            );
        }
        tls_version("min_version", &t.min_version)?;
        tls_version("max_version", &t.max_version)?;
        if let Some(p) = &self.proxy_url {
            reqwest::Proxy::all(p)
                .map_err(|e| format!("http_sd_configs: invalid 'proxy_url' {p:?}: {e}"))?;
        }
        Ok(())
    }
}

/// Polls one `HttpSdConfig`'s endpoint.
#[derive(Debug, Clone)]
pub struct HttpDiscoverer {
    url: String,
    refresh: Duration,
    client: reqwest::Client,
    basic_auth: Option<BasicAuth>,
    authorization: Option<Authorization>,
}

/// Reads a secret or PEM file named by a config field.
fn read_config_file(field: &str, path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::DiscoveryConfig {
        field: format!("http_sd_configs: {field}"),
        reason: format!("cannot read {path:?}: {e}"),
    })
}

impl HttpDiscoverer {
    /// Builds the HTTP client: reads TLS files now (secrets in `*_file` fields are read on each
    /// request). Expects a config that passed `validate`.
    pub fn new(cfg: &HttpSdConfig) -> Result<Self, Error> {
        let bad = |field: &str, reason: String| Error::DiscoveryConfig {
            field: format!("http_sd_configs: {field}"),
            reason,
        };
        let t = &cfg.tls_config;
        // The fetch must finish before the next one is due, as in Prometheus.
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(at_least_1ms(cfg.refresh_interval))
            .user_agent(concat!("Tocsin/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(t.insecure_skip_verify);
        if !cfg.follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        let ca = match (&t.ca, &t.ca_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(read_config_file("tls_config.ca_file", path)?),
            (None, None) => None,
        };
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| bad("tls_config.ca_file", e.to_string()))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let cert = match (&t.cert, &t.cert_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(read_config_file("tls_config.cert_file", path)?),
            (None, None) => None,
        };
        let key = match (&t.key, &t.key_file) {
            (Some(pem), _) => Some(pem.clone()),
            (None, Some(path)) => Some(read_config_file("tls_config.key_file", path)?),
            (None, None) => None,
        };
        if let (Some(cert), Some(key)) = (cert, key) {
            let id = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(|e| bad("tls_config.cert_file", e.to_string()))?;
            b = b.identity(id);
        }
        if let Some(v) = tls_version("min_version", &t.min_version)
            .map_err(|e| bad("tls_config.min_version", e))?
        {
            b = b.min_tls_version(v);
        }
        if let Some(v) = tls_version("max_version", &t.max_version)
            .map_err(|e| bad("tls_config.max_version", e))?
        {
            b = b.max_tls_version(v);
        }
        // Prometheus ignores proxy environment variables unless asked to.
        match &cfg.proxy_url {
            Some(p) => {
                let proxy = reqwest::Proxy::all(p)
                    .map_err(|e| bad("proxy_url", e.to_string()))?
                    .no_proxy(
                        cfg.no_proxy
                            .as_deref()
                            .and_then(reqwest::NoProxy::from_string),
                    );
                b = b.proxy(proxy);
            }
            None if cfg.proxy_from_environment => {}
            None => b = b.no_proxy(),
        }
        let client = b.build().map_err(|e| bad("tls_config", e.to_string()))?;
        Ok(Self {
            url: cfg.url.clone(),
            refresh: cfg.refresh_interval,
            client,
            basic_auth: cfg.basic_auth.clone(),
            authorization: cfg.authorization.clone(),
        })
    }

    fn unavailable(&self, reason: impl ToString) -> Error {
        Error::HttpSdUnavailable {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    fn bad_response(&self, reason: impl ToString) -> Error {
        Error::HttpSdResponse {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// One fetch: the groups the endpoint lists now.
    pub async fn fetch(&self) -> Result<Vec<TargetGroup>, Error> {
        let mut req = self
            .client
            .get(&self.url)
            .header(
                "X-Prometheus-Refresh-Interval-Seconds",
                self.refresh.as_secs_f64().to_string(),
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(ba) = &self.basic_auth {
            let user = match &ba.username_file {
                Some(f) => read_config_file("basic_auth.username_file", f)?
                    .trim()
                    .to_string(),
                None => ba.username.clone(),
            };
            let pass = match (&ba.password, &ba.password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(
                    read_config_file("basic_auth.password_file", f)?
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
            req = req.basic_auth(user, pass);
        }
        if let Some(a) = &self.authorization {
            let creds = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read_config_file("authorization.credentials_file", f)?
                    .trim()
                    .to_string(),
                (None, None) => String::new(),
            };
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("{} {creds}", a.kind),
            );
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.unavailable(crate::httpclient::error_chain(&e)))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return Err(self.bad_response(format!("server returned HTTP status {status}")));
        }
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let essence = ctype.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(self.bad_response(format!(
                "unsupported content type {ctype:?} (expected application/json)"
            )));
        }
        let body = resp.bytes().await.map_err(|e| self.unavailable(e))?;
        let raw: Vec<RawGroup> = serde_json::from_slice(&body)
            .map_err(|e| self.bad_response(format!("invalid JSON target groups: {e}")))?;
        to_target_groups(raw, &self.url, (URL_LABEL, self.url.as_str()))
            .map_err(|e| self.bad_response(e))
    }
}

impl Discoverer for HttpDiscoverer {
    fn run(
        self: Box<Self>,
        tx: mpsc::Sender<Vec<TargetGroup>>,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture<()> {
        Box::pin(async move {
            let mut tick = tokio::time::interval(at_least_1ms(self.refresh));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut last_len = 0;
            loop {
                tokio::select! {
                    biased;
                    _ = super::stopped(&mut stop) => return,
                    _ = tick.tick() => {}
                }
                let result = tokio::select! {
                    biased;
                    _ = super::stopped(&mut stop) => return,
                    r = self.fetch() => r,
                };
                let mut update = match result {
                    Ok(groups) => groups,
                    Err(e) => {
                        tracing::error!("{e}; keeping the targets it had before");
                        continue;
                    }
                };
                let n = update.len();
                update.extend(removed_groups(&self.url, n, last_len));
                last_len = n;
                if tx.send(update).await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
