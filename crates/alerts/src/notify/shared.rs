//! What the Alertmanager integrations added with notification templates share: the receiver
//! context (templates, `global:` defaults, base directory) set on each `ReceiverConfig` at load,
//! secrets read from `*_file` settings at load, field rendering that reports the first failing
//! field, and HTTP sends that retry on 429 and 5xx.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::common::{excerpt, transport_error};
use super::{NotifyCx, NotifyError, Reason};
use crate::tmpl::{NotifyTemplates, TmplData};

/// Alertmanager's `global:` defaults for the integrations (the other global fields are read by
/// `config::GlobalConfig`). Unset fields take Alertmanager's defaults in the accessors.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NotifyGlobals {
    pub smtp_from: Option<String>,
    pub smtp_smarthost: Option<String>,
    pub smtp_hello: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<String>,
    pub smtp_auth_password_file: Option<PathBuf>,
    pub smtp_auth_identity: Option<String>,
    pub smtp_auth_secret: Option<String>,
    pub smtp_auth_secret_file: Option<PathBuf>,
    pub smtp_require_tls: Option<bool>,
    pub smtp_tls_config: Option<serde_norway::Value>,
    pub smtp_force_implicit_tls: Option<bool>,
    pub slack_api_url: Option<String>,
    pub slack_api_url_file: Option<PathBuf>,
    pub slack_app_token: Option<String>,
    pub slack_app_token_file: Option<PathBuf>,
    pub slack_app_url: Option<String>,
    pub pagerduty_url: Option<String>,
    pub opsgenie_api_url: Option<String>,
    pub opsgenie_api_key: Option<String>,
    pub opsgenie_api_key_file: Option<PathBuf>,
    pub telegram_api_url: Option<String>,
    pub telegram_bot_token: Option<String>,
    pub telegram_bot_token_file: Option<PathBuf>,
    pub discord_webhook_url: Option<String>,
}

impl NotifyGlobals {
    /// Reads the integration defaults out of the `global:` fields; a wrongly typed value is an
    /// error naming it.
    pub fn from_fields(other: &BTreeMap<String, serde_norway::Value>) -> Result<Self, String> {
        let map: serde_norway::Mapping = other
            .iter()
            .map(|(k, v)| (serde_norway::Value::String(k.clone()), v.clone()))
            .collect();
        serde_norway::from_value(serde_norway::Value::Mapping(map))
            .map_err(|e| format!("global: {e}"))
    }
}

/// What building a receiver's integrations needs besides their own config.
#[derive(Debug, Clone)]
pub struct ReceiverCtx {
    pub templates: Arc<NotifyTemplates>,
    pub globals: Arc<NotifyGlobals>,
    /// `global.http_config`: the default of every HTTP integration's `http_config`.
    pub http_config: Option<HttpClientConfig>,
    /// Where relative paths resolve (the configuration file's directory).
    pub base_dir: PathBuf,
}

impl ReceiverCtx {
    /// Defaults only: used for receivers built without a loaded configuration (tests).
    pub fn defaults(base_dir: &Path) -> crate::Result<ReceiverCtx> {
        Ok(ReceiverCtx {
            templates: NotifyTemplates::defaults().map_err(crate::Error::Config)?,
            globals: Arc::new(NotifyGlobals::default()),
            http_config: None,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// The integration's `http_config`, or the global one when it has none.
    pub fn http_config(&self, own: &Option<HttpClientConfig>) -> HttpClientConfig {
        own.clone()
            .or_else(|| self.http_config.clone())
            .unwrap_or_default()
    }

    /// Checks at load that every templated field parses.
    pub fn check_templates<'a>(
        &self,
        what: &str,
        fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> crate::Result<()> {
        for (name, text) in fields {
            self.templates
                .check(text)
                .map_err(|e| crate::Error::Config(format!("{what}: {name}: {e}")))?;
        }
        Ok(())
    }
}

/// A secret given inline or as `*_file` (read now, trailing newline dropped, as Alertmanager).
/// Both set is an error; neither gives `None`.
pub(crate) fn secret(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    base_dir: &Path,
    what: &str,
    field: &str,
) -> crate::Result<Option<String>> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(crate::Error::Config(format!(
            "{what}: at most one of {field} and {field}_file must be configured"
        ))),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(f)) => {
            let p = base_dir.join(f);
            std::fs::read_to_string(&p)
                .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_string()))
                .map_err(|e| {
                    crate::Error::Config(format!("{what}: {field}_file {}: {e}", p.display()))
                })
        }
        (None, None) => Ok(None),
    }
}

/// Renders the templated fields of one notification; the first failure is kept and reported
/// by `finish`, naming the field.
pub(crate) struct Renderer<'a> {
    templates: &'a NotifyTemplates,
    pub data: TmplData,
    /// `data` HTML-escaped, made on first use.
    html_data: Option<TmplData>,
    now_ms: i64,
    err: Option<String>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(templates: &'a NotifyTemplates, cx: &NotifyCx, alerts: &[Alert]) -> Self {
        Renderer {
            templates,
            data: TmplData::new(cx, alerts),
            html_data: None,
            now_ms: cx.now_ms,
            err: None,
        }
    }

    /// The rendered text, or "" after recording the error.
    pub(crate) fn s(&mut self, field: &str, text: &str) -> String {
        match self.templates.render(text, &self.data, self.now_ms) {
            Ok(s) => s,
            Err(e) => {
                if self.err.is_none() {
                    self.err = Some(format!("rendering {field}: {e}"));
                }
                String::new()
            }
        }
    }

    /// Renders a field whose output is HTML: the data's strings are escaped.
    pub(crate) fn html(&mut self, field: &str, text: &str) -> String {
        let data = self
            .html_data
            .get_or_insert_with(|| self.data.html_escaped());
        match self.templates.render(text, data, self.now_ms) {
            Ok(s) => s,
            Err(e) => {
                if self.err.is_none() {
                    self.err = Some(format!("rendering {field}: {e}"));
                }
                String::new()
            }
        }
    }

    pub(crate) fn finish(self) -> Result<TmplData, NotifyError> {
        match self.err {
            None => Ok(self.data),
            Some(message) => Err(NotifyError {
                retryable: false,
                reason: Reason::Other,
                message,
            }),
        }
    }
}

/// At most `n` characters, the last replaced by `…` when cut, as Alertmanager truncates.
pub(crate) fn truncate(s: &str, n: usize) -> (String, bool) {
    if s.chars().count() <= n {
        return (s.to_string(), false);
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    (out, true)
}

/// Alertmanager's classification for the chat and paging APIs: 429 and 5xx retried, other
/// non-2xx not.
pub(crate) fn status_error(status: reqwest::StatusCode, body: &[u8]) -> NotifyError {
    let code = status.as_u16();
    let (reason, retryable) = match code {
        429 => (Reason::ClientError, true),
        400..=499 => (Reason::ClientError, false),
        500..=599 => (Reason::ServerError, true),
        _ => (Reason::Other, false),
    };
    let body = excerpt(body);
    NotifyError {
        retryable,
        reason,
        message: if body.is_empty() {
            format!("unexpected status code {code}")
        } else {
            format!("unexpected status code {code}: {body}")
        },
    }
}

/// Sends a request; `Ok(body)` on 2xx.
pub(crate) async fn send(req: tocsin_httpclient::RequestBuilder) -> Result<Vec<u8>, NotifyError> {
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default().to_vec();
    if status.is_success() {
        Ok(body)
    } else {
        Err(status_error(status, &body))
    }
}

/// POSTs JSON (Go's encoding) with optional extra headers.
pub(crate) async fn post_json<T: serde::Serialize>(
    client: &tocsin_httpclient::Client,
    url: &str,
    body: &T,
    headers: &[(&str, String)],
) -> Result<Vec<u8>, NotifyError> {
    let bytes = super::common::go_json(body)?;
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes);
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    send(req).await
}

/// Alertmanager's `Key.Hash()`: the SHA-256 of the group key, hex.
pub(crate) fn group_key_hash(group_key: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(group_key.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a URL given in config (templated URLs are checked when rendered).
pub(crate) fn check_url(s: &str, what: &str, field: &str) -> crate::Result<()> {
    if s.contains("{{") {
        return Ok(());
    }
    super::common::parse_url(s, &format!("{what}: {field}")).map(|_| ())
}

/// Builds an HTTP client for an integration.
pub(crate) fn client(
    ctx: &ReceiverCtx,
    own: &Option<HttpClientConfig>,
    what: &str,
) -> crate::Result<tocsin_httpclient::Client> {
    super::common::build_client(
        &ctx.http_config(own),
        &ctx.base_dir,
        super::common::UNBOUNDED_HTTP_TIMEOUT,
        what,
    )
}

/// An `http_config` given as a nested object (strict: unknown keys refused).
pub(crate) fn de_opt_http_config<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<HttpClientConfig>, D::Error> {
    super::common::de_http_config(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_truncate() {
        assert_eq!(
            group_key_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(group_key_hash("").len(), 64);
        assert_eq!(truncate("abcdef", 4), ("abc…".to_string(), true));
        assert_eq!(truncate("abc", 4), ("abc".to_string(), false));
    }
}
