//! Alertmanager's `slack_configs`: one incoming-webhook POST per flush with a single attachment
//! (or `chat.postMessage` with a bot token when `app_token` is set). Slack answers 200 with
//! `ok` (webhook) or `{"ok":true}` (API); anything else is a failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::common::de_opt_duration;
use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError, Reason};

/// Slack cuts titles longer than this.
const MAX_TITLE: usize = 1024;
const DEFAULT_APP_URL: &str = "https://slack.com/api/chat.postMessage";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ok_text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dismiss_text: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(rename = "type")]
    pub type_: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub style: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<SlackConfirm>,
}

fn d(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// One entry of `slack_configs`, as Alertmanager's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    #[serde(default)]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "shared::de_opt_http_config")]
    pub http_config: Option<HttpClientConfig>,
    pub api_url: Option<String>,
    pub api_url_file: Option<PathBuf>,
    pub app_token: Option<String>,
    pub app_token_file: Option<PathBuf>,
    pub app_url: Option<String>,
    #[serde(default)]
    pub channel: String,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    #[serde(default)]
    pub image_url: String,
    #[serde(default)]
    pub thumb_url: String,
    #[serde(default)]
    pub link_names: bool,
    pub mrkdwn_in: Option<Vec<String>>,
    #[serde(default)]
    pub actions: Vec<SlackAction>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
}

pub struct Slack {
    cfg: SlackConfig,
    url: String,
    token: Option<String>,
    ctx: Arc<ReceiverCtx>,
    client: tocsin_httpclient::Client,
}

impl Slack {
    pub fn new(cfg: &SlackConfig, ctx: Arc<ReceiverCtx>, what: &str) -> crate::Result<Self> {
        let g = &ctx.globals;
        let dir = &ctx.base_dir;
        let own_url = shared::secret(&cfg.api_url, &cfg.api_url_file, dir, what, "api_url")?;
        let own_token =
            shared::secret(&cfg.app_token, &cfg.app_token_file, dir, what, "app_token")?;
        let (url, token) = match (own_url, own_token) {
            (Some(_), Some(_)) => {
                return Err(crate::Error::Config(format!(
                    "{what}: at most one of api_url/api_url_file and app_token/app_token_file must be configured"
                )))
            }
            (Some(u), None) => (u, None),
            (None, Some(t)) => (
                cfg.app_url.clone().or_else(|| g.slack_app_url.clone()).unwrap_or_else(|| DEFAULT_APP_URL.into()),
                Some(t),
            ),
            (None, None) => {
                match shared::secret(&g.slack_api_url, &g.slack_api_url_file, dir, what, "global slack_api_url")? {
                    Some(u) => (u, None),
                    None => match shared::secret(&g.slack_app_token, &g.slack_app_token_file, dir, what, "global slack_app_token")? {
                        Some(t) => (
                            cfg.app_url.clone().or_else(|| g.slack_app_url.clone()).unwrap_or_else(|| DEFAULT_APP_URL.into()),
                            Some(t),
                        ),
                        None => {
                            return Err(crate::Error::Config(format!(
                                "{what}: no global Slack API URL set either inline or in a file"
                            )))
                        }
                    },
                }
            }
        };
        shared::check_url(&url, what, "api_url")?;
        let mut fields: Vec<(&str, &str)> = vec![("channel", cfg.channel.as_str())];
        for (n, v) in [
            ("username", &cfg.username),
            ("color", &cfg.color),
            ("title", &cfg.title),
            ("title_link", &cfg.title_link),
            ("pretext", &cfg.pretext),
            ("text", &cfg.text),
            ("footer", &cfg.footer),
            ("fallback", &cfg.fallback),
            ("callback_id", &cfg.callback_id),
            ("icon_emoji", &cfg.icon_emoji),
            ("icon_url", &cfg.icon_url),
        ] {
            if let Some(v) = v {
                fields.push((n, v));
            }
        }
        for f in &cfg.fields {
            fields.push(("fields.title", &f.title));
            fields.push(("fields.value", &f.value));
        }
        for a in &cfg.actions {
            fields.push(("actions.text", &a.text));
            fields.push(("actions.url", &a.url));
        }
        ctx.check_templates(what, fields)?;
        let client = shared::client(&ctx, &cfg.http_config, what)?;
        Ok(Slack {
            cfg: cfg.clone(),
            url,
            token,
            ctx,
            client,
        })
    }
}

#[derive(Serialize)]
struct Attachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<SlackField>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<SlackAction>,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

#[derive(Serialize)]
struct Request {
    #[serde(skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

impl Notifier for Slack {
    fn integration(&self) -> &'static str {
        "slack"
    }

    fn send_resolved(&self) -> bool {
        self.cfg.send_resolved
    }

    fn notify<'a>(
        &'a self,
        cx: &'a NotifyCx,
        alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let c = &self.cfg;
            let mut r = Renderer::new(&self.ctx.templates, cx, alerts);
            let mut t = |field: &str, v: &Option<String>, default: &str| {
                let text = v.clone().or_else(|| d(default)).unwrap_or_default();
                r.s(field, &text)
            };
            let title = t(
                "title",
                &c.title,
                r#"{{ template "slack.default.title" . }}"#,
            );
            let (title, _) = shared::truncate(&title, MAX_TITLE);
            let title_link = t(
                "title_link",
                &c.title_link,
                r#"{{ template "slack.default.titlelink" . }}"#,
            );
            let pretext = t(
                "pretext",
                &c.pretext,
                r#"{{ template "slack.default.pretext" . }}"#,
            );
            let text = t("text", &c.text, r#"{{ template "slack.default.text" . }}"#);
            let fallback = t(
                "fallback",
                &c.fallback,
                r#"{{ template "slack.default.fallback" . }}"#,
            );
            let callback_id = t(
                "callback_id",
                &c.callback_id,
                r#"{{ template "slack.default.callbackid" . }}"#,
            );
            let footer = t(
                "footer",
                &c.footer,
                r#"{{ template "slack.default.footer" . }}"#,
            );
            let color = t(
                "color",
                &c.color,
                r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#,
            );
            let username = t(
                "username",
                &c.username,
                r#"{{ template "slack.default.username" . }}"#,
            );
            let icon_emoji = t(
                "icon_emoji",
                &c.icon_emoji,
                r#"{{ template "slack.default.iconemoji" . }}"#,
            );
            let icon_url = t(
                "icon_url",
                &c.icon_url,
                r#"{{ template "slack.default.iconurl" . }}"#,
            );
            let fields = c
                .fields
                .iter()
                .map(|f| SlackField {
                    title: r.s("fields.title", &f.title),
                    value: r.s("fields.value", &f.value),
                    short: Some(f.short.unwrap_or(c.short_fields)),
                })
                .collect();
            let actions = c
                .actions
                .iter()
                .map(|a| SlackAction {
                    type_: r.s("actions.type", &a.type_),
                    text: r.s("actions.text", &a.text),
                    url: r.s("actions.url", &a.url),
                    style: r.s("actions.style", &a.style),
                    name: r.s("actions.name", &a.name),
                    value: r.s("actions.value", &a.value),
                    confirm: a.confirm.as_ref().map(|cf| SlackConfirm {
                        text: r.s("actions.confirm.text", &cf.text),
                        title: r.s("actions.confirm.title", &cf.title),
                        ok_text: r.s("actions.confirm.ok_text", &cf.ok_text),
                        dismiss_text: r.s("actions.confirm.dismiss_text", &cf.dismiss_text),
                    }),
                })
                .collect();
            let channel = r.s("channel", &c.channel);
            let image_url = r.s("image_url", &c.image_url);
            let thumb_url = r.s("thumb_url", &c.thumb_url);
            r.finish()?;
            let req = Request {
                channel,
                username,
                icon_emoji,
                icon_url,
                link_names: c.link_names,
                attachments: vec![Attachment {
                    title,
                    title_link,
                    pretext,
                    text,
                    fallback,
                    callback_id,
                    fields,
                    actions,
                    image_url,
                    thumb_url,
                    footer,
                    color,
                    mrkdwn_in: c.mrkdwn_in.clone().unwrap_or_else(|| {
                        vec!["fallback".into(), "pretext".into(), "text".into()]
                    }),
                }],
            };
            let headers: Vec<(&str, String)> = match &self.token {
                Some(t) => vec![("Authorization", format!("Bearer {t}"))],
                None => Vec::new(),
            };
            let send = shared::post_json(&self.client, &self.url, &req, &headers);
            let body = match c.timeout {
                Some(to) => tokio::time::timeout(to, send)
                    .await
                    .map_err(|_| NotifyError {
                        retryable: true,
                        reason: Reason::Other,
                        message: format!("request timed out after {to:?}"),
                    })??,
                None => send.await?,
            };
            check_body(&body, self.token.is_some())
        })
    }
}

/// Slack reports some failures with a 200: the webhook answers other than `ok`, the API with
/// `"ok": false`.
fn check_body(body: &[u8], api: bool) -> Result<(), NotifyError> {
    let text = String::from_utf8_lossy(body);
    let fail = |m: String| NotifyError {
        retryable: false,
        reason: Reason::ClientError,
        message: m,
    };
    if api {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if v["ok"] == serde_json::Value::Bool(true) {
            return Ok(());
        }
        return Err(fail(format!(
            "Slack API error: {}",
            v["error"].as_str().unwrap_or(text.trim())
        )));
    }
    match text.trim() {
        "ok" | "" => Ok(()),
        other => Err(fail(format!("Slack webhook answered {other:?}"))),
    }
}
