//! Alertmanager's `msteams_configs` (Office 365 connector MessageCard) and `msteamsv2_configs`
//! (Power Automate workflow webhook with an Adaptive Card): one POST per flush.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};

fn yes() -> bool {
    true
}

/// One entry of `msteams_configs` or `msteamsv2_configs` (v2 has no `summary`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsteamsConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "shared::de_opt_http_config")]
    pub http_config: Option<HttpClientConfig>,
    pub webhook_url: Option<String>,
    pub webhook_url_file: Option<PathBuf>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
}

pub struct Msteams {
    cfg: MsteamsConfig,
    v2: bool,
    url: String,
    ctx: Arc<ReceiverCtx>,
    client: tocsin_httpclient::Client,
}

impl Msteams {
    pub fn new(
        cfg: &MsteamsConfig,
        v2: bool,
        ctx: Arc<ReceiverCtx>,
        what: &str,
    ) -> crate::Result<Self> {
        let url = shared::secret(
            &cfg.webhook_url,
            &cfg.webhook_url_file,
            &ctx.base_dir,
            what,
            "webhook_url",
        )?
        .ok_or_else(|| {
            crate::Error::Config(format!(
                "{what}: one of webhook_url or webhook_url_file must be configured"
            ))
        })?;
        if v2 && cfg.summary.is_some() {
            return Err(crate::Error::Config(format!(
                "{what}: summary is not a field of msteamsv2_configs"
            )));
        }
        shared::check_url(&url, what, "webhook_url")?;
        let mut fields = Vec::new();
        for (n, v) in [
            ("title", &cfg.title),
            ("summary", &cfg.summary),
            ("text", &cfg.text),
        ] {
            if let Some(v) = v {
                fields.push((n, v.as_str()));
            }
        }
        ctx.check_templates(what, fields)?;
        let client = shared::client(&ctx, &cfg.http_config, what)?;
        Ok(Msteams {
            cfg: cfg.clone(),
            v2,
            url,
            ctx,
            client,
        })
    }
}

#[derive(Serialize)]
struct MessageCard {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "type")]
    type_: &'static str,
    title: String,
    summary: String,
    text: String,
    #[serde(rename = "themeColor")]
    theme_color: &'static str,
}

impl Notifier for Msteams {
    fn integration(&self) -> &'static str {
        if self.v2 {
            "msteamsv2"
        } else {
            "msteams"
        }
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
            let kind = if self.v2 { "msteamsv2" } else { "msteams" };
            let mut r = Renderer::new(&self.ctx.templates, cx, alerts);
            let dt = |name: &str| format!("{{{{ template \"{kind}.default.{name}\" . }}}}");
            let title = r.s("title", &c.title.clone().unwrap_or_else(|| dt("title")));
            let text = r.s("text", &c.text.clone().unwrap_or_else(|| dt("text")));
            let summary = if self.v2 {
                String::new()
            } else {
                r.s(
                    "summary",
                    &c.summary.clone().unwrap_or_else(|| dt("summary")),
                )
            };
            let firing = r.data.status == "firing";
            r.finish()?;
            if self.v2 {
                let body = json!({
                    "type": "message",
                    "attachments": [{
                        "contentType": "application/vnd.microsoft.card.adaptive",
                    // Alertmanager sends the key with null; Power Automate flows built on its
                    // payload may expect it.
                    "contentUrl": null,
                        "content": {
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "type": "AdaptiveCard",
                            "version": "1.2",
                            "body": [
                                {
                                    "type": "TextBlock",
                                    "text": title,
                                    "weight": "Bolder",
                                    "size": "Medium",
                                    "wrap": true,
                                    "style": "heading",
                                    "color": if firing { "Attention" } else { "Good" },
                                },
                                {"type": "TextBlock", "text": text, "wrap": true},
                            ],
                            "msteams": {"width": "full"},
                        },
                    }],
                });
                shared::post_json(&self.client, &self.url, &body, &[])
                    .await
                    .map(|_| ())
            } else {
                let card = MessageCard {
                    context: "http://schema.org/extensions",
                    type_: "MessageCard",
                    title,
                    summary,
                    text,
                    theme_color: if firing { "8C1A1A" } else { "2DC72D" },
                };
                shared::post_json(&self.client, &self.url, &card, &[])
                    .await
                    .map(|_| ())
            }
        })
    }
}
