//! Alertmanager's `telegram_configs`: one Bot API `sendMessage` per flush.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};

const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// Telegram refuses longer messages.
const MAX_MESSAGE: usize = 4096;

fn yes() -> bool {
    true
}

/// One entry of `telegram_configs`, as Alertmanager's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "shared::de_opt_http_config")]
    pub http_config: Option<HttpClientConfig>,
    pub api_url: Option<String>,
    pub bot_token: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    #[serde(default)]
    pub chat_id: i64,
    #[serde(default)]
    pub message_thread_id: i64,
    pub message: Option<String>,
    #[serde(default)]
    pub disable_notifications: bool,
    pub parse_mode: Option<String>,
}

pub struct Telegram {
    cfg: TelegramConfig,
    url: String,
    ctx: Arc<ReceiverCtx>,
    client: tocsin_httpclient::Client,
}

impl Telegram {
    pub fn new(cfg: &TelegramConfig, ctx: Arc<ReceiverCtx>, what: &str) -> crate::Result<Self> {
        let g = &ctx.globals;
        let err = |m: &str| crate::Error::Config(format!("{what}: {m}"));
        let token = match shared::secret(
            &cfg.bot_token,
            &cfg.bot_token_file,
            &ctx.base_dir,
            what,
            "bot_token",
        )? {
            Some(t) => t,
            None => shared::secret(
                &g.telegram_bot_token,
                &g.telegram_bot_token_file,
                &ctx.base_dir,
                what,
                "global telegram_bot_token",
            )?
            .ok_or_else(|| err("missing bot_token or bot_token_file on telegram_config"))?,
        };
        if cfg.chat_id == 0 {
            return Err(err("missing chat_id on telegram_config"));
        }
        let mode = cfg.parse_mode.as_deref().unwrap_or("HTML");
        if !matches!(mode, "" | "Markdown" | "MarkdownV2" | "HTML") {
            return Err(err("unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty string"));
        }
        let api = cfg
            .api_url
            .clone()
            .or_else(|| g.telegram_api_url.clone())
            .unwrap_or_else(|| DEFAULT_API_URL.into());
        shared::check_url(&api, what, "api_url")?;
        if let Some(m) = &cfg.message {
            ctx.check_templates(what, [("message", m.as_str())])?;
        }
        let client = shared::client(&ctx, &cfg.http_config, what)?;
        Ok(Telegram {
            cfg: cfg.clone(),
            url: format!("{}/bot{token}/sendMessage", api.trim_end_matches('/')),
            ctx,
            client,
        })
    }
}

#[derive(Serialize)]
struct SendMessage {
    chat_id: i64,
    #[serde(skip_serializing_if = "is_zero")]
    message_thread_id: i64,
    text: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    parse_mode: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    disable_notification: bool,
    /// Always true, as Alertmanager sends it: a link in an alert must not expand into a preview.
    disable_web_page_preview: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl Notifier for Telegram {
    fn integration(&self) -> &'static str {
        "telegram"
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
            let mode = c.parse_mode.clone().unwrap_or_else(|| "HTML".into());
            let tmpl = c
                .message
                .as_deref()
                .unwrap_or(r#"{{ template "telegram.default.message" . }}"#);
            // Alertmanager renders HTML-mode messages as HTML templates: data is escaped.
            let text = if mode == "HTML" {
                r.html("message", tmpl)
            } else {
                r.s("message", tmpl)
            };
            r.finish()?;
            let msg = SendMessage {
                chat_id: c.chat_id,
                message_thread_id: c.message_thread_id,
                text: shared::truncate(&text, MAX_MESSAGE).0,
                parse_mode: mode,
                disable_notification: c.disable_notifications,
                disable_web_page_preview: true,
            };
            shared::post_json(&self.client, &self.url, &msg, &[])
                .await
                .map(|_| ())
        })
    }
}
