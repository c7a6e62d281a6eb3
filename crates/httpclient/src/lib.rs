//! The HTTP client settings of `prometheus.yml` (`basic_auth`, `authorization`, `bearer_token[_file]`,
//! `tls_config`, `proxy_url`, `http_headers`, `follow_redirects`) and building a client from them.
//! Its own crate because scraping, HTTP service discovery, the rule engine's Alertmanager client and
//! the notification receivers all speak HTTP with the same settings. `oauth2` and
//! `proxy_connect_header` are here too; the client callers get is [`Client`], which adds what
//! changes per request (an OAuth2 token).

mod client;
mod oauth2;

pub use client::{Client, RequestBuilder};
pub use oauth2::OAuth2;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub username_file: Option<PathBuf>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
}

/// One entry of `http_headers`: values given inline, as secrets, or read from files.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderValues {
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// Prometheus's `http_config`, flattened into the scrape config as it is in `prometheus.yml`. No
/// `deny_unknown_fields`: the flattening parent sees the leftover keys and refuses unknown ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HttpClientConfig {
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub oauth2: Option<OAuth2>,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub proxy_url: Option<String>,
    #[serde(default)]
    pub no_proxy: Option<String>,
    #[serde(default)]
    pub proxy_from_environment: bool,
    /// Headers sent to the proxy with CONNECT (tunnelled HTTPS), e.g. `Proxy-Authorization`.
    #[serde(default)]
    pub proxy_connect_header: BTreeMap<String, Vec<String>>,
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "yes")]
    pub enable_http2: bool,
    #[serde(default)]
    pub http_headers: BTreeMap<String, HeaderValues>,
}

fn yes() -> bool {
    true
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            oauth2: None,
            tls_config: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            follow_redirects: true,
            enable_http2: true,
            http_headers: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpConfigError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{field}: reading {path}: {source}")]
    Read {
        field: String,
        path: String,
        source: std::io::Error,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> HttpConfigError {
    HttpConfigError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads a credentials file, resolved against the config file's directory as Prometheus does.
fn read_secret(base: &Path, field: &str, p: &Path) -> Result<String, HttpConfigError> {
    let path = base.join(p);
    std::fs::read_to_string(&path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|e| HttpConfigError::Read {
            field: field.to_string(),
            path: path.display().to_string(),
            source: e,
        })
}

fn read_bytes(base: &Path, field: &str, p: &Path) -> Result<Vec<u8>, HttpConfigError> {
    let path = base.join(p);
    std::fs::read(&path).map_err(|e| HttpConfigError::Read {
        field: field.to_string(),
        path: path.display().to_string(),
        source: e,
    })
}

/// Deserializes an `http_config:` written as a nested object, refusing unknown keys.
/// `HttpClientConfig` itself accepts them because scrape configs flatten it among their own
/// fields; nested (receivers, actions, Google settings), a typo would silently drop a
/// credential.
pub fn de_strict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HttpClientConfig, D::Error> {
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
    Ok(s.cfg)
}

/// [`de_strict`] for an optional field.
pub fn de_strict_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<HttpClientConfig>, D::Error> {
    de_strict(d).map(Some)
}

/// An error and its causes as one line, each cause said once: reqwest's "error sending request
/// for url (...)" becomes "error sending request for url (...): client error (Connect): tcp
/// connect error: Connection refused (os error 111)". A cause whose text the previous message
/// already contains (libraries often repeat their source in their own message) is skipped.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !msg.is_empty() && !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = c.source();
    }
    out
}

impl HttpClientConfig {
    /// Checks what can be checked without touching files.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        let mut auths = 0;
        if self.basic_auth.is_some() {
            auths += 1;
        }
        if self.authorization.is_some() {
            auths += 1;
        }
        if self.bearer_token.is_some() || self.bearer_token_file.is_some() {
            auths += 1;
        }
        if let Some(o) = &self.oauth2 {
            auths += 1;
            o.validate()?;
        }
        if auths > 1 {
            return Err(invalid(
                "authorization",
                "at most one of basic_auth, authorization, oauth2 and bearer_token[_file] may be set",
            ));
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(invalid(
                "bearer_token",
                "at most one of bearer_token and bearer_token_file may be set",
            ));
        }
        if let Some(b) = &self.basic_auth {
            if b.password.is_some() && b.password_file.is_some() {
                return Err(invalid(
                    "basic_auth",
                    "at most one of password and password_file may be set",
                ));
            }
        }
        if let Some(a) = &self.authorization {
            if a.kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("basic"))
            {
                return Err(invalid(
                    "authorization.type",
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
                ));
            }
            if a.credentials.is_some() && a.credentials_file.is_some() {
                return Err(invalid(
                    "authorization",
                    "at most one of credentials and credentials_file may be set",
                ));
            }
        }
        if !self.proxy_connect_header.is_empty() {
            if self.proxy_url.is_none() {
                return Err(invalid(
                    "proxy_connect_header",
                    if self.proxy_from_environment {
                        "proxy_connect_header needs proxy_url: with proxy_from_environment the \
                         proxy comes from the environment and these headers could not be attached \
                         to it; set proxy_url instead"
                    } else {
                        "proxy_connect_header needs proxy_url"
                    },
                ));
            }
            for (name, vals) in &self.proxy_connect_header {
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    invalid(
                        "proxy_connect_header",
                        format!("invalid header name {name:?}"),
                    )
                })?;
                for v in vals {
                    HeaderValue::from_str(v).map_err(|_| {
                        invalid(
                            "proxy_connect_header",
                            format!("value of {name:?} is not a valid header value"),
                        )
                    })?;
                }
            }
        }
        if self.no_proxy.is_some() && self.proxy_url.is_none() {
            return Err(invalid("no_proxy", "no_proxy needs proxy_url"));
        }
        if let Some(p) = &self.proxy_url {
            reqwest::Url::parse(p).map_err(|e| invalid("proxy_url", format!("{p:?}: {e}")))?;
        }
        if let Some(t) = &self.tls_config {
            if t.ca.is_some() && t.ca_file.is_some() {
                return Err(invalid(
                    "tls_config",
                    "at most one of ca and ca_file may be set",
                ));
            }
            if t.cert.is_some() && t.cert_file.is_some() {
                return Err(invalid(
                    "tls_config",
                    "at most one of cert and cert_file may be set",
                ));
            }
            if t.key.is_some() && t.key_file.is_some() {
                return Err(invalid(
                    "tls_config",
                    "at most one of key and key_file may be set",
                ));
            }
            let has_cert = t.cert.is_some() || t.cert_file.is_some();
            let has_key = t.key.is_some() || t.key_file.is_some();
            if has_cert != has_key {
                return Err(invalid(
                    "tls_config",
                    "client certificate and key must be given together",
                ));
            }
        }
        for name in self.http_headers.keys() {
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("http_headers", format!("invalid header name {name:?}")))?;
            let lower = name.to_ascii_lowercase();
            if matches!(
                lower.as_str(),
                "authorization" | "host" | "content-length" | "user-agent" | "connection"
            ) {
                return Err(invalid(
                    "http_headers",
                    format!("header {name:?} is reserved"),
                ));
            }
        }
        Ok(())
    }

    /// Default headers for every request: authentication and `http_headers`. Files are read now;
    /// a reload re-reads them.
    pub fn headers(&self, base: &Path) -> Result<HeaderMap, HttpConfigError> {
        let mut h = HeaderMap::new();
        let hv = |field: &str, v: String| {
            HeaderValue::from_str(&v).map_err(|_| invalid(field, "value is not a valid header"))
        };
        if let Some(b) = &self.basic_auth {
            let user = match &b.username_file {
                Some(f) => read_secret(base, "basic_auth.username_file", f)?,
                None => b.username.clone(),
            };
            let pass = match (&b.password, &b.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => read_secret(base, "basic_auth.password_file", f)?,
                (None, None) => String::new(),
            };
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            let mut v = hv("basic_auth", format!("Basic {token}"))?;
            v.set_sensitive(true);
            h.insert(reqwest::header::AUTHORIZATION, v);
        }
        let bearer = match (&self.bearer_token, &self.bearer_token_file) {
            (Some(t), _) => Some(("Bearer".to_string(), t.clone())),
            (None, Some(f)) => Some((
                "Bearer".to_string(),
                read_secret(base, "bearer_token_file", f)?,
            )),
            _ => None,
        };
        let authz = match &self.authorization {
            Some(a) => {
                let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
                let cred = match (&a.credentials, &a.credentials_file) {
                    (Some(c), _) => c.clone(),
                    (None, Some(f)) => read_secret(base, "authorization.credentials_file", f)?,
                    (None, None) => String::new(),
                };
                Some((kind, cred))
            }
            None => bearer,
        };
        if let Some((kind, cred)) = authz {
            let mut v = hv("authorization", format!("{kind} {cred}"))?;
            v.set_sensitive(true);
            h.insert(reqwest::header::AUTHORIZATION, v);
        }
        for (name, vals) in &self.http_headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("http_headers", format!("invalid header name {name:?}")))?;
            for v in vals.values.iter().chain(&vals.secrets) {
                h.append(n.clone(), hv("http_headers", v.clone())?);
            }
            for f in &vals.files {
                let v = read_secret(base, "http_headers.files", f)?;
                h.append(n.clone(), hv("http_headers", v)?);
            }
        }
        Ok(h)
    }

    /// A client for one job. `base` is the config file's directory (relative paths resolve there).
    pub fn build_client(
        &self,
        base: &Path,
        timeout: std::time::Duration,
        gzip: bool,
    ) -> Result<Client, HttpConfigError> {
        self.validate()?;
        let token = match &self.oauth2 {
            Some(o) => Some(o.source(base, timeout)?),
            None => None,
        };
        Ok(Client::with_oauth2(
            self.build_reqwest(base, timeout, gzip)?,
            token,
        ))
    }

    /// reqwest's client with everything that is fixed for the client's life.
    pub(crate) fn build_reqwest(
        &self,
        base: &Path,
        timeout: std::time::Duration,
        gzip: bool,
    ) -> Result<reqwest::Client, HttpConfigError> {
        let mut b = reqwest::Client::builder()
            .default_headers(self.headers(base)?)
            .user_agent(concat!("Tocsin/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .gzip(gzip)
            .use_preconfigured_tls(self.rustls_config(base)?)
            .redirect(if self.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .pool_idle_timeout(std::time::Duration::from_secs(5 * 60));
        if !self.enable_http2 {
            b = b.http1_only();
        }
        b = match &self.proxy_url {
            Some(p) => {
                let mut proxy =
                    reqwest::Proxy::all(p).map_err(|e| invalid("proxy_url", e.to_string()))?;
                if !self.proxy_connect_header.is_empty() {
                    let mut h = HeaderMap::new();
                    for (name, vals) in &self.proxy_connect_header {
                        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                            invalid(
                                "proxy_connect_header",
                                format!("invalid header name {name:?}"),
                            )
                        })?;
                        for v in vals {
                            let mut v = HeaderValue::from_str(v).map_err(|_| {
                                invalid("proxy_connect_header", "value is not a valid header")
                            })?;
                            v.set_sensitive(true);
                            h.append(n.clone(), v);
                        }
                    }
                    proxy = proxy.headers(h);
                }
                b.proxy(
                    proxy.no_proxy(
                        self.no_proxy
                            .as_deref()
                            .and_then(reqwest::NoProxy::from_string),
                    ),
                )
            }
            None if self.proxy_from_environment => b,
            None => b.no_proxy(),
        };
        b.build().map_err(|e| invalid("http client", e.to_string()))
    }

    fn rustls_config(&self, base: &Path) -> Result<rustls::ClientConfig, HttpConfigError> {
        let tls = self.tls_config.clone().unwrap_or_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        let ca_pem = match (&tls.ca, &tls.ca_file) {
            (Some(ca), _) => Some(ca.clone().into_bytes()),
            (None, Some(f)) => Some(read_bytes(base, "tls_config.ca_file", f)?),
            _ => None,
        };
        match ca_pem {
            Some(pem) => {
                let mut n = 0;
                for c in CertificateDer::pem_slice_iter(&pem) {
                    let c = c.map_err(|e| invalid("tls_config.ca", e.to_string()))?;
                    roots
                        .add(c)
                        .map_err(|e| invalid("tls_config.ca", e.to_string()))?;
                    n += 1;
                }
                if n == 0 {
                    return Err(invalid("tls_config.ca", "no PEM certificate found"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| invalid("tls_config", e.to_string()))?;
        let server_name = match &tls.server_name {
            Some(s) if !s.is_empty() => Some(
                ServerName::try_from(s.clone())
                    .map_err(|e| invalid("tls_config.server_name", format!("{s:?}: {e}")))?,
            ),
            _ => None,
        };
        let verifier = Arc::new(Verifier {
            inner: webpki,
            server_name,
            insecure: tls.insecure_skip_verify,
            schemes: provider.signature_verification_algorithms,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("tls_config", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let cert = match (&tls.cert, &tls.cert_file) {
            (Some(c), _) => Some(c.clone().into_bytes()),
            (None, Some(f)) => Some(read_bytes(base, "tls_config.cert_file", f)?),
            _ => None,
        };
        let key = match (&tls.key, &tls.key_file) {
            (Some(k), _) => Some(k.clone().into_bytes()),
            (None, Some(f)) => Some(read_bytes(base, "tls_config.key_file", f)?),
            _ => None,
        };
        let mut cfg = match (cert, key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(&cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid("tls_config.cert", e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(&key)
                    .map_err(|e| invalid("tls_config.key", e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| invalid("tls_config.cert", e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = if self.enable_http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(cfg)
    }
}

/// Certificate verification with Prometheus's two knobs: `server_name` checks the certificate
/// against a name other than the target's host, `insecure_skip_verify` accepts any certificate.
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
    schemes: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.server_name.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.schemes)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.schemes)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn error_chain_keeps_root_cause_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let root = E("connection refused", None);
        let mid = E(
            "tcp connect error: connection refused",
            Some(Box::new(root)),
        );
        let top = E(
            "error sending request for url (http://x/)",
            Some(Box::new(mid)),
        );
        assert_eq!(
            super::error_chain(&top),
            "error sending request for url (http://x/): tcp connect error: connection refused"
        );
    }

    #[tokio::test]
    async fn error_chain_of_a_refused_connection_names_the_cause() {
        // A port nothing listens on: bind, learn it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let m = super::error_chain(&e);
        assert!(m.contains("error sending request"), "{m}");
        assert!(m.to_lowercase().contains("refused"), "{m}");
    }
}
