//! Alertmanager's `email_configs`: one message per flush over SMTP (lettre), with STARTTLS
//! (`require_tls`, the default) or implicit TLS (port 465 or `force_implicit_tls`), AUTH PLAIN or
//! LOGIN, templated headers (`Subject`, `To`, `From` by default) and an HTML and/or text body
//! (multipart/alternative when both).
//!
//! Retries: connection failures and transient (4xx) SMTP replies are retried; permanent (5xx)
//! replies are not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Identity, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use tocsin_model::Alert;

use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError, Reason};

/// `tls_config` of an email integration (Prometheus's TLS settings that apply to SMTP).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTlsConfig {
    pub ca_file: Option<PathBuf>,
    pub ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One entry of `email_configs`, as Alertmanager's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default)]
    pub send_resolved: bool,
    pub to: Option<String>,
    pub from: Option<String>,
    pub hello: Option<String>,
    pub smarthost: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<String>,
    pub auth_password_file: Option<PathBuf>,
    pub auth_secret: Option<String>,
    pub auth_secret_file: Option<PathBuf>,
    pub auth_identity: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub require_tls: Option<bool>,
    pub tls_config: Option<EmailTlsConfig>,
    pub force_implicit_tls: Option<bool>,
}

pub struct Email {
    send_resolved: bool,
    /// Header name (canonical case) to template.
    headers: BTreeMap<String, String>,
    html: Option<String>,
    text: Option<String>,
    host: String,
    port: u16,
    hello: String,
    credentials: Option<Credentials>,
    tls: TlsMode,
    tls_params: Option<TlsParameters>,
    ctx: Arc<ReceiverCtx>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    None,
    StartTls,
    Implicit,
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `content-type` -> `Content-Type`.
fn canonical_header(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    let mut up = true;
    for c in k.chars() {
        if up {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        up = c == '-';
    }
    out
}

fn cfg_err(what: &str, msg: impl std::fmt::Display) -> crate::Error {
    crate::Error::Config(format!("{what}: {msg}"))
}

fn tls_params(
    host: &str,
    tls: &Option<EmailTlsConfig>,
    base: &std::path::Path,
    what: &str,
) -> crate::Result<TlsParameters> {
    let t = tls.clone().unwrap_or_default();
    let domain = t.server_name.clone().unwrap_or_else(|| host.to_string());
    let mut b =
        TlsParameters::builder(domain).dangerous_accept_invalid_certs(t.insecure_skip_verify);
    let ca = match (&t.ca, &t.ca_file) {
        (Some(_), Some(_)) => {
            return Err(cfg_err(what, "tls_config: at most one of ca and ca_file"))
        }
        (Some(c), None) => Some(c.clone().into_bytes()),
        (None, Some(f)) => Some(
            std::fs::read(base.join(f))
                .map_err(|e| cfg_err(what, format!("tls_config: ca_file {}: {e}", f.display())))?,
        ),
        (None, None) => None,
    };
    if let Some(pem) = ca {
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| cfg_err(what, format!("tls_config: CA certificate: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => {
            let read = |p: &PathBuf| {
                std::fs::read(base.join(p))
                    .map_err(|e| cfg_err(what, format!("tls_config: {}: {e}", p.display())))
            };
            let id = Identity::from_pem(&read(c)?, &read(k)?)
                .map_err(|e| cfg_err(what, format!("tls_config: client certificate: {e}")))?;
            b = b.identify_with(id);
        }
        (None, None) => {}
        _ => {
            return Err(cfg_err(
                what,
                "tls_config: cert_file and key_file must be set together",
            ))
        }
    }
    b.build_rustls()
        .map_err(|e| cfg_err(what, format!("tls_config: {e}")))
}

impl Email {
    pub fn new(cfg: &EmailConfig, ctx: Arc<ReceiverCtx>, what: &str) -> crate::Result<Self> {
        let g = &ctx.globals;
        let base = ctx.base_dir.clone();
        let to = cfg
            .to
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| cfg_err(what, "missing to address in email config"))?;
        let from = cfg
            .from
            .clone()
            .or_else(|| g.smtp_from.clone())
            .filter(|f| !f.is_empty())
            .ok_or_else(|| cfg_err(what, "no global SMTP from set"))?;
        let smarthost = cfg
            .smarthost
            .clone()
            .or_else(|| g.smtp_smarthost.clone())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| cfg_err(what, "no global SMTP smarthost set"))?;
        let (host, port) = smarthost
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<u16>().ok()?,
                ))
            })
            .ok_or_else(|| {
                cfg_err(
                    what,
                    format!("smarthost {smarthost:?}: address must be host:port"),
                )
            })?;
        let hello = cfg
            .hello
            .clone()
            .or_else(|| g.smtp_hello.clone())
            .unwrap_or_else(|| "localhost".into());
        // Each auth field falls back to its global on its own, as in Alertmanager.
        let username = cfg
            .auth_username
            .clone()
            .or_else(|| g.smtp_auth_username.clone());
        let password = match shared::secret(
            &cfg.auth_password,
            &cfg.auth_password_file,
            &base,
            what,
            "auth_password",
        )? {
            Some(p) => Some(p),
            None => shared::secret(
                &g.smtp_auth_password,
                &g.smtp_auth_password_file,
                &base,
                what,
                "global smtp_auth_password",
            )?,
        };
        let secret = match shared::secret(
            &cfg.auth_secret,
            &cfg.auth_secret_file,
            &base,
            what,
            "auth_secret",
        )? {
            Some(s) => Some(s),
            None => shared::secret(
                &g.smtp_auth_secret,
                &g.smtp_auth_secret_file,
                &base,
                what,
                "global smtp_auth_secret",
            )?,
        };
        if secret.is_some() {
            return Err(cfg_err(
                what,
                "auth_secret (CRAM-MD5) is not supported; use auth_password (PLAIN or LOGIN)",
            ));
        }
        let identity = cfg
            .auth_identity
            .clone()
            .or_else(|| g.smtp_auth_identity.clone());
        if identity
            .as_deref()
            .is_some_and(|i| !i.is_empty() && Some(i) != username.as_deref())
        {
            return Err(cfg_err(
                what,
                "auth_identity other than auth_username is not supported",
            ));
        }
        let credentials = match (username, password) {
            (Some(u), p) if !u.is_empty() => Some(Credentials::new(u, p.unwrap_or_default())),
            _ => None,
        };
        let require_tls = cfg.require_tls.or(g.smtp_require_tls).unwrap_or(true);
        let implicit = cfg.force_implicit_tls.or(g.smtp_force_implicit_tls);
        let tls_cfg = match &cfg.tls_config {
            Some(t) => Some(t.clone()),
            None => match &g.smtp_tls_config {
                Some(v) => Some(
                    serde_norway::from_value(v.clone())
                        .map_err(|e| cfg_err(what, format!("global smtp_tls_config: {e}")))?,
                ),
                None => None,
            },
        };
        let tls = match implicit {
            Some(true) => TlsMode::Implicit,
            Some(false) if require_tls => TlsMode::StartTls,
            Some(false) => TlsMode::None,
            None if port == 465 => TlsMode::Implicit,
            None if require_tls => TlsMode::StartTls,
            None => TlsMode::None,
        };
        let tls_params = match tls {
            TlsMode::None => None,
            _ => Some(tls_params(&host, &tls_cfg, &base, what)?),
        };
        let mut headers: BTreeMap<String, String> = cfg
            .headers
            .iter()
            .map(|(k, v)| (canonical_header(k), v.clone()))
            .collect();
        headers
            .entry("Subject".into())
            .or_insert_with(|| r#"{{ template "email.default.subject" . }}"#.into());
        headers.entry("To".into()).or_insert(to);
        headers.entry("From".into()).or_insert(from);
        let html = match (&cfg.html, &cfg.text) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(r#"{{ template "email.default.html" . }}"#.into()),
        };
        let mut fields: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(h) = &html {
            fields.push(("html", h));
        }
        if let Some(t) = &cfg.text {
            fields.push(("text", t));
        }
        ctx.check_templates(what, fields)?;
        Ok(Email {
            send_resolved: cfg.send_resolved,
            headers,
            html,
            text: cfg.text.clone(),
            host,
            port,
            hello,
            credentials,
            tls,
            tls_params,
            ctx,
        })
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        let tls = match (self.tls, &self.tls_params) {
            (TlsMode::Implicit, Some(p)) => Tls::Wrapper(p.clone()),
            (TlsMode::StartTls, Some(p)) => Tls::Required(p.clone()),
            _ => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .hello_name(ClientId::Domain(self.hello.clone()));
        if let Some(c) = &self.credentials {
            b = b
                .credentials(c.clone())
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        b.build()
    }
}

fn not_retryable(message: String) -> NotifyError {
    NotifyError {
        retryable: false,
        reason: Reason::Other,
        message,
    }
}

fn addresses(list: &str, header: &str) -> Result<Vec<Address>, NotifyError> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mb: Mailbox = part
            .parse()
            .map_err(|e| not_retryable(format!("parsing {header} address {part:?}: {e}")))?;
        out.push(mb.email);
    }
    Ok(out)
}

impl Notifier for Email {
    fn integration(&self) -> &'static str {
        "email"
    }

    fn send_resolved(&self) -> bool {
        self.send_resolved
    }

    fn notify<'a>(
        &'a self,
        cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let mut r = Renderer::new(&self.ctx.templates, cx, alerts);
            let headers: Vec<(String, String)> = self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), r.s(&format!("headers.{k}"), v)))
                .collect();
            let html = self.html.as_ref().map(|h| r.html("html", h));
            let text = self.text.as_ref().map(|t| r.s("text", t));
            r.finish()?;
            let get = |k: &str| {
                headers
                    .iter()
                    .find(|(h, _)| h == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            let from = addresses(get("From"), "From")?
                .into_iter()
                .next()
                .ok_or_else(|| not_retryable("no From address".into()))?;
            let to = addresses(get("To"), "To")?;
            let envelope = lettre::address::Envelope::new(Some(from), to)
                .map_err(|e| not_retryable(format!("envelope: {e}")))?;
            let mut b = lettre::Message::builder()
                .envelope(envelope)
                .message_id(None);
            for (k, v) in &headers {
                let name = HeaderName::new_from_ascii(k.clone())
                    .map_err(|e| not_retryable(format!("header {k:?}: {e}")))?;
                b = b.raw_header(HeaderValue::new(name, v.clone()));
            }
            let msg = match (text, html) {
                (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(t, h)),
                (Some(t), None) => b.singlepart(SinglePart::plain(t)),
                (None, Some(h)) => b.singlepart(SinglePart::html(h)),
                (None, None) => b.singlepart(SinglePart::plain(String::new())),
            }
            .map_err(|e| not_retryable(format!("building the message: {e}")))?;
            let transport = self.transport();
            match transport.send_raw(msg.envelope(), &msg.formatted()).await {
                Ok(_) => Ok(()),
                Err(e) => Err(NotifyError {
                    retryable: !e.is_permanent(),
                    reason: if e.is_permanent() {
                        Reason::ClientError
                    } else {
                        Reason::Other
                    },
                    message: format!("sending mail via {}:{}: {e}", self.host, self.port),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_header_names() {
        assert_eq!(super::canonical_header("content-TYPE"), "Content-Type");
        assert_eq!(super::canonical_header("subject"), "Subject");
    }
}
