//! Alertmanager's `discord_configs`: one webhook POST per flush with an embed whose colour
//! follows the group's status.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};

const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 4096;
const MAX_CONTENT: usize = 2000;
const RED: u32 = 0x992D22;
const GREEN: u32 = 0x2ECC71;

fn yes() -> bool {
    true
}

/// One entry of `discord_configs`, as Alertmanager's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "shared::de_opt_http_config")]
    pub http_config: Option<HttpClientConfig>,
    pub webhook_url: Option<String>,
    pub webhook_url_file: Option<PathBuf>,
    pub title: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub avatar_url: String,
}

pub struct Discord {
    cfg: DiscordConfig,
    url: String,
    ctx: Arc<ReceiverCtx>,
    client: tocsin_httpclient::Client,
}

impl Discord {
    pub fn new(cfg: &DiscordConfig, ctx: Arc<ReceiverCtx>, what: &str) -> crate::Result<Self> {
        let url = shared::secret(
            &cfg.webhook_url,
            &cfg.webhook_url_file,
            &ctx.base_dir,
            what,
            "webhook_url",
        )?
        .or_else(|| ctx.globals.discord_webhook_url.clone())
        .ok_or_else(|| {
            crate::Error::Config(format!(
                "{what}: one of webhook_url or webhook_url_file must be configured"
            ))
        })?;
        shared::check_url(&url, what, "webhook_url")?;
        let mut fields: Vec<(&str, &str)> = vec![
            ("content", &cfg.content),
            ("username", &cfg.username),
            ("avatar_url", &cfg.avatar_url),
        ];
        if let Some(t) = &cfg.title {
            fields.push(("title", t));
        }
        if let Some(m) = &cfg.message {
            fields.push(("message", m));
        }
        ctx.check_templates(what, fields)?;
        let client = shared::client(&ctx, &cfg.http_config, what)?;
        Ok(Discord {
            cfg: cfg.clone(),
            url,
            ctx,
            client,
        })
    }
}

#[derive(Serialize)]
struct Embed {
    title: String,
    description: String,
    color: u32,
}

#[derive(Serialize)]
struct Message {
    #[serde(skip_serializing_if = "String::is_empty")]
    content: String,
    embeds: Vec<Embed>,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    avatar_url: String,
}

impl Notifier for Discord {
    fn integration(&self) -> &'static str {
        "discord"
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
            let title = r.s(
                "title",
                c.title
                    .as_deref()
                    .unwrap_or(r#"{{ template "discord.default.title" . }}"#),
            );
            let description = r.s(
                "message",
                c.message
                    .as_deref()
                    .unwrap_or(r#"{{ template "discord.default.message" . }}"#),
            );
            let content = r.s("content", &c.content);
            let username = r.s("username", &c.username);
            let avatar_url = r.s("avatar_url", &c.avatar_url);
            let color = if r.data.status == "firing" {
                RED
            } else {
                GREEN
            };
            r.finish()?;
            let msg = Message {
                content: shared::truncate(&content, MAX_CONTENT).0,
                embeds: vec![Embed {
                    title: shared::truncate(&title, MAX_TITLE).0,
                    description: shared::truncate(&description, MAX_DESCRIPTION).0,
                    color,
                }],
                username,
                avatar_url,
            };
            shared::post_json(&self.client, &self.url, &msg, &[])
                .await
                .map(|_| ())
        })
    }
}
