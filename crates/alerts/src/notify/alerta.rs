//! Alerta receiver: one `POST {url}/alert` per alert, in Alerta's alert JSON.
//!
//! Mapping:
//! - `resource`: label `instance`, else the alertname; `event`: the alertname.
//! - `environment`: label `environment`, else the configured one (`Production`).
//! - `severity`: label `severity` mapped onto Alerta's names (`crit`/`page` → `critical`,
//!   `error`/`high` → `major`, `low` → `minor`, `warn` → `warning`, `info` → `informational`;
//!   Alerta's own names pass through). No label → `warning`, an unknown one → `indeterminate`.
//!   Resolved alerts are sent with severity `normal` and status `closed`; firing ones `open`.
//! - `service`: label `service`, else label `job` (comma-separated lists split); `group`: label
//!   `job` (omitted without it, so Alerta applies its default).
//! - `value`: annotation `value`, else empty; `text`: annotation `summary`, else `description`.
//! - `tags`: annotation, else label, `tags`, comma-separated.
//! - `attributes`: the labels not used above, then the annotations not used above (labels win on a
//!   clash), keys with `.` or `$` rewritten to `_` because Alerta refuses them.
//! - `origin` (config, `tocsin`), `type` `prometheusAlert`, `createTime`: startsAt when firing,
//!   endsAt when resolved, with millisecond precision; `timeout`: `alert_timeout` in seconds;
//!   `rawData`: the alert as it appears in the webhook message; `customer` when configured.
//!
//! Authentication: `api_key` (or `api_key_file`) is sent as `Authorization: Key <key>`; any other
//! scheme goes through `http_config`. 2xx is success, 5xx and transport errors are retried.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::common::{self, de_duration, de_http_config, de_opt_duration, yes};
use super::webhook::WebhookAlert;
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};

fn default_environment() -> String {
    "Production".to_string()
}

fn default_origin() -> String {
    "tocsin".to_string()
}

fn default_alert_timeout() -> Duration {
    Duration::from_secs(86_400)
}

/// One entry of `alerta_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertaConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// API base URL, e.g. `https://alerta.example.com/api`; alerts go to `{url}/alert`.
    pub url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Used when the alert has no `environment` label.
    #[serde(default = "default_environment")]
    pub environment: String,
    #[serde(default = "default_origin")]
    pub origin: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "de_http_config")]
    pub http_config: HttpClientConfig,
    /// Per-request timeout; unset = bounded only by the flush deadline.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Alerta's `timeout`: how long Alerta keeps the alert open without an update.
    #[serde(default = "default_alert_timeout", deserialize_with = "de_duration")]
    pub alert_timeout: Duration,
}

/// The body of `POST /alert`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertaAlert {
    pub resource: String,
    pub event: String,
    pub environment: String,
    pub severity: &'static str,
    pub status: &'static str,
    pub service: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub value: String,
    pub text: String,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub origin: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "createTime")]
    pub create_time: String,
    pub timeout: u64,
    #[serde(rename = "rawData")]
    pub raw_data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

/// Alerta's name for a `severity` label value.
pub fn alerta_severity(label: Option<&str>) -> &'static str {
    let Some(l) = label else {
        return "warning";
    };
    match l.trim().to_ascii_lowercase().as_str() {
        "security" => "security",
        "critical" | "crit" | "page" | "fatal" | "emergency" | "emerg" => "critical",
        "major" | "error" | "err" | "high" => "major",
        "minor" | "low" => "minor",
        "warning" | "warn" => "warning",
        "informational" | "info" | "notice" => "informational",
        "debug" => "debug",
        "trace" => "trace",
        "ok" => "ok",
        "normal" => "normal",
        "cleared" => "cleared",
        "unknown" => "unknown",
        _ => "indeterminate",
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn attribute_key(k: &str) -> String {
    k.replace(['.', '$'], "_")
}

/// Labels and annotations that have a field of their own.
const USED_LABELS: &[&str] = &[
    "alertname",
    "instance",
    "environment",
    "severity",
    "service",
    "job",
    "tags",
];

/// Builds the Alerta body for one alert (see the module doc for the mapping).
pub fn alerta_alert(a: &Alert, cx: &NotifyCx, cfg: &AlertaConfig) -> AlertaAlert {
    let resolved = a.resolved_at(cx.now_ms);
    let name = a.name().to_string();
    let ann = |k: &str| a.annotations.get(k).filter(|v| !v.is_empty()).cloned();
    let label = |k: &str| {
        a.labels
            .get(k)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (text, text_key) = match (ann("summary"), ann("description")) {
        (Some(s), _) => (s, Some("summary")),
        (None, Some(d)) => (d, Some("description")),
        (None, None) => (String::new(), None),
    };
    let mut attributes = BTreeMap::new();
    for l in a.labels.iter() {
        if !USED_LABELS.contains(&l.name.as_str()) {
            attributes.insert(attribute_key(&l.name), l.value.clone());
        }
    }
    for (k, v) in &a.annotations {
        if k == "value" || k == "tags" || Some(k.as_str()) == text_key {
            continue;
        }
        attributes
            .entry(attribute_key(k))
            .or_insert_with(|| v.clone());
    }
    let raw = serde_json::to_string(&WebhookAlert::new(a, cx.now_ms)).unwrap_or_default();
    AlertaAlert {
        resource: label("instance").unwrap_or_else(|| name.clone()),
        event: name,
        environment: label("environment").unwrap_or_else(|| cfg.environment.clone()),
        severity: if resolved {
            "normal"
        } else {
            alerta_severity(a.labels.get("severity"))
        },
        status: if resolved { "closed" } else { "open" },
        service: label("service")
            .or_else(|| label("job"))
            .map(|s| split_list(&s))
            .unwrap_or_default(),
        group: label("job"),
        value: ann("value").unwrap_or_default(),
        text,
        tags: ann("tags")
            .or_else(|| label("tags"))
            .map(|s| split_list(&s))
            .unwrap_or_default(),
        attributes,
        origin: cfg.origin.clone(),
        kind: "prometheusAlert",
        create_time: common::millis_time(if resolved { a.ends_at } else { a.starts_at }),
        timeout: cfg.alert_timeout.as_secs(),
        raw_data: raw,
        customer: cfg.customer.clone(),
    }
}

/// A configured Alerta server.
pub struct Alerta {
    cfg: AlertaConfig,
    url: reqwest::Url,
    key: Option<HeaderValue>,
    client: tocsin_httpclient::Client,
}

impl Alerta {
    pub fn new(cfg: &AlertaConfig, base_dir: &Path, what: &str) -> crate::Result<Self> {
        let base = common::parse_url(&cfg.url, what)?;
        let url = common::parse_url(
            &format!("{}/alert", base.as_str().trim_end_matches('/')),
            what,
        )?;
        let key = match (&cfg.api_key, &cfg.api_key_file) {
            (Some(_), Some(_)) => {
                return Err(crate::Error::Config(format!(
                    "{what}: at most one of api_key and api_key_file may be set"
                )))
            }
            (Some(k), None) => Some(k.clone()),
            (None, Some(f)) => {
                let p = base_dir.join(f);
                let k = std::fs::read_to_string(&p).map_err(|e| {
                    crate::Error::Config(format!(
                        "{what}: reading api_key_file {}: {e}",
                        p.display()
                    ))
                })?;
                Some(k.trim().to_string())
            }
            (None, None) => None,
        };
        let h = &cfg.http_config;
        let http_auth = h.basic_auth.is_some()
            || h.authorization.is_some()
            || h.bearer_token.is_some()
            || h.bearer_token_file.is_some();
        if key.is_some() && http_auth {
            return Err(crate::Error::Config(format!(
                "{what}: api_key and http_config authentication cannot both be set"
            )));
        }
        let key = match key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Key {k}")).map_err(|_| {
                    crate::Error::Config(format!("{what}: api_key is not a valid header value"))
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let timeout = cfg.timeout.unwrap_or(common::UNBOUNDED_HTTP_TIMEOUT);
        Ok(Alerta {
            client: common::build_client(&cfg.http_config, base_dir, timeout, what)?,
            cfg: cfg.clone(),
            url,
            key,
        })
    }

    async fn post(&self, body: &AlertaAlert) -> Result<(), NotifyError> {
        let bytes = common::go_json(body)?;
        let auth = self.key.clone().map(|v| (AUTHORIZATION, v));
        common::post_json(&self.client, self.url.clone(), bytes, auth).await
    }
}

impl Notifier for Alerta {
    fn integration(&self) -> &'static str {
        "alerta"
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
            let mut out = common::Failures::default();
            for a in alerts {
                if !self.cfg.send_resolved && a.resolved_at(cx.now_ms) {
                    continue;
                }
                out.record(self.post(&alerta_alert(a, cx, &self.cfg)).await);
            }
            out.finish("alerts")
        })
    }
}
