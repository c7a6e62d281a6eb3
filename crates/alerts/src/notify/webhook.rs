//! Alertmanager's `webhook_configs`: one POST of the version "4" JSON message per flush.
//!
//! The message is built by [`webhook_message`], which `exec` and `file` reuse, so every consumer
//! of "the Alertmanager payload" sees the same bytes. Details that follow Alertmanager rather than
//! its documentation example:
//! - key order is the one Alertmanager's encoder produces (`receiver`, `status`, `alerts`,
//!   `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`, `version`, `groupKey`,
//!   `truncatedAlerts`), because the message embeds the template data before its own fields;
//! - `endsAt` of an alert that is still firing is Go's zero time even when the alert carries a
//!   future end (Alertmanager hides ends that have not been reached);
//! - times are UTC in Go's RFC 3339 form with trailing fractional zeros trimmed;
//! - `max_alerts` truncates before `status` and the common labels are computed, and `<`, `>`, `&`
//!   are `\u`-escaped with a trailing newline, as Go's JSON encoder writes them.
//!
//! Responses: 2xx is success, 5xx and transport errors are retried, anything else is not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::{Alert, Labels};

use super::common::{self, de_http_config, de_opt_duration, yes};
use super::{BoxFuture, Notifier, NotifyCx, NotifyError, Reason};

/// One entry of `webhook_configs`, as Alertmanager's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    #[serde(default, deserialize_with = "de_http_config")]
    pub http_config: HttpClientConfig,
    /// Exactly one of `url` and `url_file` must be set.
    #[serde(default)]
    pub url: Option<String>,
    /// Read at every notification, so the URL can be rotated without a reload.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Most alerts in one message; 0 = all. The rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: u64,
    /// Per-request timeout; unset = bounded only by the flush deadline.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
}

/// The version "4" webhook message. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookMessage {
    pub receiver: String,
    pub status: &'static str,
    pub alerts: Vec<WebhookAlert>,
    #[serde(rename = "groupLabels")]
    pub group_labels: BTreeMap<String, String>,
    #[serde(rename = "commonLabels")]
    pub common_labels: BTreeMap<String, String>,
    #[serde(rename = "commonAnnotations")]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub version: &'static str,
    #[serde(rename = "groupKey")]
    pub group_key: String,
    #[serde(rename = "truncatedAlerts")]
    pub truncated_alerts: u64,
}

/// One alert of the webhook message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

pub(crate) fn label_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

impl WebhookAlert {
    /// The alert as Alertmanager exposes it at `now_ms`.
    pub fn new(a: &Alert, now_ms: i64) -> Self {
        let resolved = a.resolved_at(now_ms);
        WebhookAlert {
            status: if resolved { "resolved" } else { "firing" },
            labels: label_map(&a.labels),
            annotations: a.annotations.clone(),
            starts_at: common::go_time(a.starts_at),
            ends_at: if resolved {
                common::go_time(a.ends_at)
            } else {
                common::GO_ZERO_TIME.to_string()
            },
            generator_url: a.generator_url.clone(),
            fingerprint: a.fingerprint_hex(),
        }
    }
}

/// Pairs present with the same value in every map; empty when there are none.
fn common_pairs<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut common = first.clone();
    for m in maps {
        common.retain(|k, v| m.get(k) == Some(v));
    }
    common
}

/// Builds the version "4" message for `alerts`, keeping the first `max_alerts` (0 = all).
pub fn webhook_message(cx: &NotifyCx, alerts: &[Alert], max_alerts: u64) -> WebhookMessage {
    let keep = match usize::try_from(max_alerts) {
        Ok(0) | Err(_) => alerts.len(),
        Ok(n) => n.min(alerts.len()),
    };
    let truncated = (alerts.len() - keep) as u64;
    let alerts: Vec<WebhookAlert> = alerts[..keep]
        .iter()
        .map(|a| WebhookAlert::new(a, cx.now_ms))
        .collect();
    let firing = alerts.iter().any(|a| a.status == "firing");
    WebhookMessage {
        receiver: cx.receiver.clone(),
        status: if firing { "firing" } else { "resolved" },
        group_labels: label_map(&cx.group_labels),
        common_labels: common_pairs(alerts.iter().map(|a| &a.labels)),
        common_annotations: common_pairs(alerts.iter().map(|a| &a.annotations)),
        external_url: cx.external_url.clone(),
        version: "4",
        group_key: cx.group_key.clone(),
        truncated_alerts: truncated,
        alerts,
    }
}

enum Target {
    Url(reqwest::Url),
    File(PathBuf),
}

/// A configured webhook.
pub struct Webhook {
    send_resolved: bool,
    max_alerts: u64,
    target: Target,
    client: tocsin_httpclient::Client,
}

impl Webhook {
    /// `what` names the config in errors (`receiver "x": webhook_configs[0]`).
    pub fn new(cfg: &WebhookConfig, base_dir: &Path, what: &str) -> crate::Result<Self> {
        let target = match (&cfg.url, &cfg.url_file) {
            (Some(u), None) => Target::Url(common::parse_url(u, what)?),
            (None, Some(f)) => Target::File(base_dir.join(f)),
            (Some(_), Some(_)) => {
                return Err(crate::Error::Config(format!(
                    "{what}: at most one of url and url_file may be set"
                )))
            }
            (None, None) => {
                return Err(crate::Error::Config(format!(
                    "{what}: one of url or url_file must be set"
                )))
            }
        };
        let timeout = cfg.timeout.unwrap_or(common::UNBOUNDED_HTTP_TIMEOUT);
        Ok(Webhook {
            send_resolved: cfg.send_resolved,
            max_alerts: cfg.max_alerts,
            target,
            client: common::build_client(&cfg.http_config, base_dir, timeout, what)?,
        })
    }

    async fn url(&self) -> Result<reqwest::Url, NotifyError> {
        match &self.target {
            Target::Url(u) => Ok(u.clone()),
            Target::File(p) => {
                let not_retryable = |message: String| NotifyError {
                    retryable: false,
                    reason: Reason::Other,
                    message,
                };
                let s = std::fs::read_to_string(p)
                    .map_err(|e| not_retryable(format!("reading url_file {}: {e}", p.display())))?;
                reqwest::Url::parse(s.trim()).map_err(|e| {
                    not_retryable(format!("url_file {}: invalid url: {e}", p.display()))
                })
            }
        }
    }
}

impl Notifier for Webhook {
    fn integration(&self) -> &'static str {
        "webhook"
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
            let url = self.url().await?;
            let body = common::go_json(&webhook_message(cx, alerts, self.max_alerts))?;
            let key = reqwest::header::HeaderValue::from_str(&cx.notification_id)
                .ok()
                .filter(|_| !cx.notification_id.is_empty())
                .map(|v| {
                    (
                        reqwest::header::HeaderName::from_static("idempotency-key"),
                        v,
                    )
                });
            common::post_json(&self.client, url, body, key).await
        })
    }
}
