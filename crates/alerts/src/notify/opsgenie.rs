//! Alertmanager's `opsgenie_configs`: the Alert API v2. A firing group creates (or, Opsgenie
//! deduplicating by alias, updates) an alert aliased by the hash of the group key; a resolved
//! group closes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};
use crate::config::Scalar;

const DEFAULT_API_URL: &str = "https://api.opsgenie.com/";
/// Opsgenie's limits.
const MAX_MESSAGE: usize = 130;
const MAX_DESCRIPTION: usize = 15_000;

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieResponder {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(rename = "type")]
    pub type_: String,
}

/// One entry of `opsgenie_configs`, as Alertmanager's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "shared::de_opt_http_config")]
    pub http_config: Option<HttpClientConfig>,
    pub api_key: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub message: Option<String>,
    pub description: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub entity: String,
    #[serde(default)]
    pub responders: Vec<OpsgenieResponder>,
    #[serde(default)]
    pub actions: String,
    #[serde(default)]
    pub tags: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub update_alerts: bool,
}

pub struct Opsgenie {
    cfg: OpsgenieConfig,
    key: String,
    api: String,
    ctx: Arc<ReceiverCtx>,
    client: tocsin_httpclient::Client,
}

impl Opsgenie {
    pub fn new(cfg: &OpsgenieConfig, ctx: Arc<ReceiverCtx>, what: &str) -> crate::Result<Self> {
        let g = &ctx.globals;
        let err = |m: &str| crate::Error::Config(format!("{what}: {m}"));
        if cfg.update_alerts {
            return Err(err("update_alerts is not supported by Tocsin"));
        }
        let key = match shared::secret(
            &cfg.api_key,
            &cfg.api_key_file,
            &ctx.base_dir,
            what,
            "api_key",
        )? {
            Some(k) => k,
            None => shared::secret(
                &g.opsgenie_api_key,
                &g.opsgenie_api_key_file,
                &ctx.base_dir,
                what,
                "global opsgenie_api_key",
            )?
            .ok_or_else(|| err("no global opsgenie_api_key set either inline or in a file"))?,
        };
        let mut api = cfg
            .api_url
            .clone()
            .or_else(|| g.opsgenie_api_url.clone())
            .unwrap_or_else(|| DEFAULT_API_URL.into());
        if !api.ends_with('/') {
            api.push('/');
        }
        shared::check_url(&api, what, "api_url")?;
        for r in &cfg.responders {
            if r.id.is_empty() && r.name.is_empty() && r.username.is_empty() {
                return Err(err(
                    "opsgenie_configs: responders: one of id, name or username must be configured",
                ));
            }
            if !matches!(
                r.type_.to_lowercase().as_str(),
                "team" | "teams" | "user" | "escalation" | "schedule"
            ) && !r.type_.contains("{{")
            {
                return Err(err(&format!(
                    "responders: type {:?} must be team, teams, user, escalation or schedule",
                    r.type_
                )));
            }
        }
        let mut fields: Vec<(&str, &str)> = vec![
            ("entity", &cfg.entity),
            ("actions", &cfg.actions),
            ("tags", &cfg.tags),
            ("note", &cfg.note),
            ("priority", &cfg.priority),
        ];
        for (n, v) in [
            ("message", &cfg.message),
            ("description", &cfg.description),
            ("source", &cfg.source),
        ] {
            if let Some(v) = v {
                fields.push((n, v));
            }
        }
        for v in cfg.details.values() {
            fields.push(("details", &v.0));
        }
        ctx.check_templates(what, fields)?;
        let client = shared::client(&ctx, &cfg.http_config, what)?;
        Ok(Opsgenie {
            cfg: cfg.clone(),
            key,
            api,
            ctx,
            client,
        })
    }
}

#[derive(Serialize)]
struct CreateMessage {
    alias: String,
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    details: BTreeMap<String, String>,
    source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    responders: Vec<OpsgenieResponder>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    note: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    priority: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    entity: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<String>,
}

#[derive(Serialize)]
struct CloseMessage {
    source: String,
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

impl Notifier for Opsgenie {
    fn integration(&self) -> &'static str {
        "opsgenie"
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
            let alias = shared::group_key_hash(&cx.group_key);
            let source = r.s(
                "source",
                c.source
                    .as_deref()
                    .unwrap_or(r#"{{ template "opsgenie.default.source" . }}"#),
            );
            let auth = [("Authorization", format!("GenieKey {}", self.key))];
            if r.data.status == "resolved" {
                r.finish()?;
                let url = format!("{}v2/alerts/{alias}/close?identifierType=alias", self.api);
                return shared::post_json(&self.client, &url, &CloseMessage { source }, &auth)
                    .await
                    .map(|_| ());
            }
            let message = r.s(
                "message",
                c.message
                    .as_deref()
                    .unwrap_or(r#"{{ template "opsgenie.default.message" . }}"#),
            );
            let description = r.s(
                "description",
                c.description
                    .as_deref()
                    .unwrap_or(r#"{{ template "opsgenie.default.description" . }}"#),
            );
            let mut details: BTreeMap<String, String> = r.data.common_labels.0.clone();
            for (k, v) in &c.details {
                let s = r.s(&format!("details.{k}"), &v.0);
                details.insert(k.clone(), s);
            }
            let responders = c
                .responders
                .iter()
                .map(|x| OpsgenieResponder {
                    id: r.s("responders.id", &x.id),
                    name: r.s("responders.name", &x.name),
                    username: r.s("responders.username", &x.username),
                    type_: r.s("responders.type", &x.type_).to_lowercase(),
                })
                .collect();
            let msg = CreateMessage {
                alias,
                message: shared::truncate(&message, MAX_MESSAGE).0,
                description: shared::truncate(&description, MAX_DESCRIPTION).0,
                details,
                source,
                responders,
                tags: split_list(&r.s("tags", &c.tags)),
                note: r.s("note", &c.note),
                priority: r.s("priority", &c.priority),
                entity: r.s("entity", &c.entity),
                actions: split_list(&r.s("actions", &c.actions)),
            };
            r.finish()?;
            let url = format!("{}v2/alerts", self.api);
            shared::post_json(&self.client, &url, &msg, &auth)
                .await
                .map(|_| ())
        })
    }
}
