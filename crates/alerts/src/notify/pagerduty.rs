//! Alertmanager's `pagerduty_configs`: Events API v2 (`routing_key`) or v1 (`service_key`), one
//! event per flush, `trigger` while the group has firing alerts and `resolve` once all are
//! resolved, deduplicated by the SHA-256 of the group key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::common::de_opt_duration;
use super::shared::{self, ReceiverCtx, Renderer};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};
use crate::config::Scalar;

const DEFAULT_V2_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const DEFAULT_V1_URL: &str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json";
/// PagerDuty refuses longer summaries (v2) and descriptions (v1).
const MAX_SUMMARY: usize = 1024;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    pub src: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    pub href: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

fn yes() -> bool {
    true
}

/// One entry of `pagerduty_configs`, as Alertmanager's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "shared::de_opt_http_config")]
    pub http_config: Option<HttpClientConfig>,
    pub routing_key: Option<String>,
    pub routing_key_file: Option<PathBuf>,
    pub service_key: Option<String>,
    pub service_key_file: Option<PathBuf>,
    pub url: Option<String>,
    pub client: Option<String>,
    pub client_url: Option<String>,
    pub description: Option<String>,
    /// None: Alertmanager's default details (firing/resolved lists and counts).
    pub details: Option<BTreeMap<String, Scalar>>,
    pub severity: Option<String>,
    #[serde(default)]
    pub class: String,
    #[serde(default)]
    pub component: String,
    #[serde(default)]
    pub group: String,
    pub source: Option<String>,
    #[serde(default)]
    pub images: Vec<PagerdutyImage>,
    #[serde(default)]
    pub links: Vec<PagerdutyLink>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
}

enum Version {
    V1 { service_key: String },
    V2 { routing_key: String },
}

pub struct Pagerduty {
    cfg: PagerdutyConfig,
    version: Version,
    url: String,
    details: BTreeMap<String, String>,
    ctx: Arc<ReceiverCtx>,
    client: tocsin_httpclient::Client,
}

fn default_details() -> BTreeMap<String, String> {
    [
        (
            "firing",
            r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
        ),
        (
            "resolved",
            r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
        ),
        ("num_firing", "{{ .Alerts.Firing | len }}"),
        ("num_resolved", "{{ .Alerts.Resolved | len }}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl Pagerduty {
    pub fn new(cfg: &PagerdutyConfig, ctx: Arc<ReceiverCtx>, what: &str) -> crate::Result<Self> {
        let dir = &ctx.base_dir;
        let routing = shared::secret(
            &cfg.routing_key,
            &cfg.routing_key_file,
            dir,
            what,
            "routing_key",
        )?;
        let service = shared::secret(
            &cfg.service_key,
            &cfg.service_key_file,
            dir,
            what,
            "service_key",
        )?;
        let version = match (routing, service) {
            (Some(routing_key), None) => Version::V2 { routing_key },
            (None, Some(service_key)) => Version::V1 { service_key },
            (Some(_), Some(_)) => {
                return Err(crate::Error::Config(format!(
                    "{what}: at most one of routing_key and service_key may be set"
                )))
            }
            (None, None) => {
                return Err(crate::Error::Config(format!(
                    "{what}: missing service or routing key in PagerDuty config"
                )))
            }
        };
        let url = cfg
            .url
            .clone()
            .or_else(|| ctx.globals.pagerduty_url.clone())
            .unwrap_or_else(|| match version {
                Version::V1 { .. } => DEFAULT_V1_URL.to_string(),
                Version::V2 { .. } => DEFAULT_V2_URL.to_string(),
            });
        shared::check_url(&url, what, "url")?;
        let details = match &cfg.details {
            None => default_details(),
            Some(d) => d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
        };
        let mut fields: Vec<(&str, &str)> = vec![("url", url.as_str())];
        for (k, v) in &details {
            fields.push((k.as_str(), v.as_str()));
        }
        for (name, v) in [
            ("client", &cfg.client),
            ("client_url", &cfg.client_url),
            ("description", &cfg.description),
            ("severity", &cfg.severity),
            ("source", &cfg.source),
        ] {
            if let Some(v) = v {
                fields.push((name, v.as_str()));
            }
        }
        ctx.check_templates(what, fields)?;
        let client = shared::client(&ctx, &cfg.http_config, what)?;
        Ok(Pagerduty {
            cfg: cfg.clone(),
            version,
            url,
            details,
            ctx,
            client,
        })
    }
}

#[derive(Serialize)]
struct PdPayload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_details: BTreeMap<String, String>,
}

/// The event, fields in Alertmanager's wire order.
#[derive(Serialize, Default)]
struct PdMessage {
    #[serde(skip_serializing_if = "String::is_empty")]
    routing_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    service_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    dedup_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    incident_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    event_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    event_action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<PdPayload>,
    #[serde(skip_serializing_if = "String::is_empty")]
    client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    details: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<PagerdutyImage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<PagerdutyLink>,
}

fn or<'a>(v: &'a Option<String>, default: &'a str) -> &'a str {
    v.as_deref().unwrap_or(default)
}

impl Notifier for Pagerduty {
    fn integration(&self) -> &'static str {
        "pagerduty"
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
            let resolved = r.data.status == "resolved";
            let key = shared::group_key_hash(&cx.group_key);
            let client = r.s(
                "client",
                or(&c.client, r#"{{ template "pagerduty.default.client" . }}"#),
            );
            let client_url = r.s(
                "client_url",
                or(
                    &c.client_url,
                    r#"{{ template "pagerduty.default.clientURL" . }}"#,
                ),
            );
            let description = r.s(
                "description",
                or(
                    &c.description,
                    r#"{{ template "pagerduty.default.description" .}}"#,
                ),
            );
            let (description, cut) = shared::truncate(&description, MAX_SUMMARY);
            if cut {
                tracing::warn!(receiver = %cx.receiver, "truncated PagerDuty summary to {MAX_SUMMARY} characters");
            }
            let details: BTreeMap<String, String> = self
                .details
                .iter()
                .map(|(k, v)| (k.clone(), r.s(&format!("details.{k}"), v)))
                .collect();
            let url = r.s("url", &self.url);
            let msg = match &self.version {
                Version::V1 { service_key } => PdMessage {
                    service_key: service_key.clone(),
                    incident_key: key,
                    event_type: if resolved { "resolve" } else { "trigger" }.into(),
                    description,
                    client,
                    client_url,
                    details,
                    ..PdMessage::default()
                },
                Version::V2 { routing_key } => {
                    let severity = r.s("severity", or(&c.severity, "error"));
                    let source = match &c.source {
                        Some(s) => r.s("source", s),
                        None => client.clone(),
                    };
                    let images = c
                        .images
                        .iter()
                        .map(|i| PagerdutyImage {
                            src: r.s("images.src", &i.src),
                            alt: r.s("images.alt", &i.alt),
                            href: r.s("images.href", &i.href),
                        })
                        .collect();
                    let links = c
                        .links
                        .iter()
                        .map(|l| PagerdutyLink {
                            href: r.s("links.href", &l.href),
                            text: r.s("links.text", &l.text),
                        })
                        .collect();
                    PdMessage {
                        routing_key: routing_key.clone(),
                        dedup_key: key,
                        event_action: if resolved { "resolve" } else { "trigger" }.into(),
                        payload: Some(PdPayload {
                            summary: description,
                            source,
                            severity,
                            class: r.s("class", &c.class),
                            component: r.s("component", &c.component),
                            group: r.s("group", &c.group),
                            custom_details: details,
                        }),
                        client,
                        client_url,
                        images,
                        links,
                        ..PdMessage::default()
                    }
                }
            };
            r.finish()?;
            let send = shared::post_json(&self.client, &url, &msg, &[]);
            match c.timeout {
                Some(t) => tokio::time::timeout(t, send)
                    .await
                    .map_err(|_| NotifyError {
                        retryable: true,
                        reason: super::Reason::Other,
                        message: format!("request timed out after {t:?}"),
                    })??,
                None => send.await?,
            };
            Ok(())
        })
    }
}
