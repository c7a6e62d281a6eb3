//! A Pub/Sub receiver: each alert becomes a Cloud Monitoring incident (schema "1.2"), so
//! handlers written for Cloud Monitoring's Pub/Sub notification channel (typically Cloud Run
//! services) work unchanged. Two ways to deliver it:
//! - `url`: POSTed in a push-subscription envelope straight to the handler, optionally with a
//!   Google-signed ID token (`id_token: {audience}`) as `Authorization: Bearer`, which an
//!   IAM-protected Cloud Run service requires;
//! - `topic: projects/P/topics/T`: published with `projects.topics.publish` (as Cloud
//!   Monitoring does), `data` the incident JSON, `attributes` `incident_id` and `state`.
//!
//! Google credentials for both (metadata server or service-account key) are the `google:`
//! settings of the `gcp` crate.
//!
//! Cloud Monitoring sends one incident per notification, so one push is made per alert. Envelope:
//! `{"message": {"data", "attributes", "messageId", "message_id", "publishTime", "publish_time"},
//! "subscription"}`; `data` is base64 of `{"version": "1.2", "incident": {...}}`; `attributes`
//! carry `incident_id` and `state` so push filters can use them; `messageId` is unique per push
//! (a decimal number, like Pub/Sub's) and `publishTime` is the wall-clock time of the push.
//!
//! Incident mapping:
//! - `incident_id`: `<fingerprint>-<startsAt ms>`: stable over the life of one firing (the
//!   resolved push reuses it) and new when the same label set fires again; together with `state`
//!   it is the idempotency key handlers should use.
//! - `state`: `open` while firing, `closed` once resolved; `started_at` = startsAt and `ended_at`
//!   = endsAt in unix seconds, `ended_at` null while open.
//! - `policy_name`, `condition_name`, `condition.displayName`: the `alertname`;
//!   `condition.name` is `projects/<project>/alertPolicies/<alertname>/conditions/<alertname>`,
//!   and `condition.conditionPrometheusQueryLanguage` `{query, alertRule}` is filled when the
//!   generator URL carries the rule's expression (`g0.expr`).
//! - `summary`: annotation `summary`, else `description`, else a generated sentence.
//! - `url`: the generator URL, else the external URL.
//! - `resource`: `type` is the configured `resource_type`, else label `resource_type`, else
//!   `prometheus_target` (the resource type Google uses for Prometheus data). `labels` are the
//!   alert labels that form that resource (the configured `resource_labels`, else the labels
//!   Google defines for the type: [`known_resource_labels`]), plus `project_id` when configured
//!   and not already a label. `resource_name`/`resource_display_name` = label `instance` when
//!   present.
//! - `metric`: `type` `tocsin/alerts/<alertname>`, `displayName` the alertname, `labels` the
//!   alert's other labels (neither resource labels nor `resource_type`). For a resource type
//!   with no known label list and no `resource_labels`, every label goes to both, since there
//!   is nothing to split by.
//! - `policy_user_labels` and `metadata.user_labels`: the alert's labels (routing hints such as
//!   `action=delete_vm` are ordinary alert labels); `metadata.system_labels` is empty.
//! - `documentation`: `content` = annotation `description` (else empty), `mime_type`
//!   `text/markdown`, `subject` = annotation `summary` when present.
//! - `observed_value`/`threshold_value`: annotation, else label, `observed_value` or `value` /
//!   `threshold_value` or `threshold`; omitted when absent. `severity`: label `severity`.
//! - `scoping_project_id`: `project_id` when configured.
//!
//! Like Pub/Sub, any non-2xx answer to a push means "redeliver": every push failure is
//! retryable (the flush deadline bounds the retries). When one push of a flush fails the others
//! are still made, and a retry sends all of them again, which is the at-least-once contract
//! handlers already expect. Publishing sends a flush's incidents in one request (up to 1000
//! messages each, Pub/Sub's limit); a missing topic or a refused permission is not retried,
//! quota errors and 5xx are.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tocsin_httpclient::HttpClientConfig;
use tocsin_model::Alert;

use super::common::{self, de_http_config, de_opt_duration, yes};
use super::webhook::label_map;
use super::{BoxFuture, Notifier, NotifyCx, NotifyError};

fn default_subscription() -> String {
    "projects/tocsin/subscriptions/tocsin".to_string()
}

/// One entry of `pubsub_configs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubConfig {
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// The push endpoint; exactly one of `url` and `topic` is given.
    #[serde(default)]
    pub url: Option<String>,
    /// A topic to publish to, `projects/P/topics/T`.
    #[serde(default)]
    pub topic: Option<String>,
    /// Authentication of pushes goes here, e.g. `authorization: {credentials_file: ...}`,
    /// unless `id_token` is set.
    #[serde(default, deserialize_with = "de_http_config")]
    pub http_config: HttpClientConfig,
    /// Push with a Google-signed ID token for this audience (default: the URL).
    #[serde(default)]
    pub id_token: Option<IdTokenConfig>,
    /// Google credentials and API base URLs, for `topic` and `id_token`.
    #[serde(default)]
    pub google: Option<tocsin_gcp::GoogleConfig>,
    /// `subscription` of the envelope.
    #[serde(default = "default_subscription")]
    pub subscription: String,
    /// Project named in `scoping_project_id`, `condition.name` and `resource.labels.project_id`.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Per-request timeout; unset = bounded only by the flush deadline.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Monitored-resource type of every incident (`gce_instance`, ...); unset = the alert's
    /// `resource_type` label, else `prometheus_target`.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// Alert labels that form `resource.labels`; unset = the labels Google defines for the type.
    #[serde(default)]
    pub resource_labels: Option<Vec<String>>,
}

/// `id_token` of a push: the audience the ID token is for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdTokenConfig {
    /// Default: the push URL (what Cloud Run expects: the service URL or the full URL).
    #[serde(default)]
    pub audience: Option<String>,
}

/// Pub/Sub's limit of messages in one publish request.
const PUBLISH_BATCH: usize = 1000;

/// The labels of the monitored-resource types alert handlers most often see, as Google defines
/// them (`project_id` comes from the configuration when it is not a label).
pub fn known_resource_labels(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "prometheus_target" => &[
            "project_id",
            "location",
            "cluster",
            "namespace",
            "job",
            "instance",
        ],
        "gce_instance" => &["project_id", "instance_id", "zone"],
        "k8s_container" => &[
            "project_id",
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
            "container_name",
        ],
        "k8s_pod" => &[
            "project_id",
            "location",
            "cluster_name",
            "namespace_name",
            "pod_name",
        ],
        "k8s_node" => &["project_id", "location", "cluster_name", "node_name"],
        "generic_node" => &["project_id", "location", "namespace", "node_id"],
        "generic_task" => &["project_id", "location", "namespace", "job", "task_id"],
        "cloud_run_revision" => &[
            "project_id",
            "service_name",
            "revision_name",
            "location",
            "configuration_name",
        ],
        "global" => &["project_id"],
        _ => return None,
    })
}

/// How alert labels become an incident's resource and metric.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncidentShape {
    pub project_id: Option<String>,
    pub resource_type: Option<String>,
    pub resource_labels: Option<Vec<String>>,
}

impl PubsubConfig {
    /// Configuration errors the server refuses at load, each as `field: reason`.
    pub fn check(&self) -> Vec<String> {
        let mut errs = Vec::new();
        self.check_delivery(&mut errs);
        if let Some(t) = &self.resource_type {
            if t.is_empty() {
                errs.push("resource_type: must not be empty".to_string());
            } else if self.resource_labels.is_none() && known_resource_labels(t).is_none() {
                errs.push(format!(
                    "resource_labels: required for resource_type {t:?}, whose labels Tocsin does not know"
                ));
            }
        }
        if let Some(list) = &self.resource_labels {
            for (i, n) in list.iter().enumerate() {
                if n.is_empty() {
                    errs.push(format!("resource_labels[{i}]: empty label name"));
                }
            }
        }
        errs
    }
}

impl PubsubConfig {
    fn check_delivery(&self, errs: &mut Vec<String>) {
        let h = &self.http_config;
        let http_auth = h.basic_auth.is_some()
            || h.authorization.is_some()
            || h.bearer_token.is_some()
            || h.bearer_token_file.is_some()
            || h.oauth2.is_some();
        match (&self.url, &self.topic) {
            (Some(_), Some(_)) => errs.push(
                "topic: give only one of url (push to an endpoint) and topic (publish to a Pub/Sub topic)"
                    .into(),
            ),
            (None, None) => errs.push(
                "url: one of url (push endpoint) or topic (projects/P/topics/T) is required".into(),
            ),
            (None, Some(t)) => {
                if let Err(e) = tocsin_gcp::parse_topic(t) {
                    errs.push(format!("topic: {e}"));
                }
                if self.id_token.is_some() {
                    errs.push(
                        "id_token: only for url pushes; publishing to a topic authenticates with an access token"
                            .into(),
                    );
                }
                if *h != HttpClientConfig::default() {
                    errs.push(
                        "http_config: not used with topic; put TLS and proxy settings in google.http_config"
                            .into(),
                    );
                }
            }
            (Some(_), None) => {
                if let Some(t) = &self.id_token {
                    if t.audience.as_deref().is_some_and(|a| a.trim().is_empty()) {
                        errs.push("id_token.audience: must not be empty".into());
                    }
                    if http_auth {
                        errs.push(
                            "id_token: http_config already sets the Authorization header; give only one"
                                .into(),
                        );
                    }
                } else if self.google.is_some() {
                    errs.push(
                        "google: only used with topic or id_token, and neither is set".into(),
                    );
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentResource {
    #[serde(rename = "type")]
    pub kind: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentMetric {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentMetadata {
    pub system_labels: BTreeMap<String, String>,
    pub user_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentDocumentation {
    pub content: String,
    pub mime_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromQlCondition {
    pub query: String,
    #[serde(rename = "alertRule")]
    pub alert_rule: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentCondition {
    pub name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(
        rename = "conditionPrometheusQueryLanguage",
        skip_serializing_if = "Option::is_none"
    )]
    pub promql: Option<PromQlCondition>,
}

/// The `incident` object of a Cloud Monitoring notification, schema "1.2".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub incident_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scoping_project_id: Option<String>,
    pub url: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub state: &'static str,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_value: Option<String>,
    pub resource: IncidentResource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_display_name: Option<String>,
    pub metric: IncidentMetric,
    pub metadata: IncidentMetadata,
    pub policy_name: String,
    pub policy_user_labels: BTreeMap<String, String>,
    pub condition_name: String,
    pub condition: IncidentCondition,
    pub documentation: IncidentDocumentation,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

#[derive(Serialize)]
struct Notification<'a> {
    version: &'static str,
    incident: &'a Incident,
}

/// The rule expression Prometheus puts in generator URLs (`/graph?g0.expr=...`).
fn generator_expr(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let expr = u
        .query_pairs()
        .find(|(k, _)| k == "g0.expr")
        .map(|(_, v)| v.into_owned());
    expr.filter(|e| !e.is_empty())
}

/// Annotation, else label, of the first of `keys` that is set.
fn lookup(a: &Alert, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        a.annotations
            .get(*k)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| a.labels.get(k).map(str::to_string))
    })
}

/// Maps one alert to an incident as of `now_ms` (see the module doc for the mapping).
pub fn incident(a: &Alert, cx: &NotifyCx, shape: &IncidentShape) -> Incident {
    let project_id = shape.project_id.as_deref();
    let name = a.name().to_string();
    let closed = a.resolved_at(cx.now_ms);
    let labels = label_map(&a.labels);
    let kind = shape
        .resource_type
        .as_deref()
        .or_else(|| a.labels.get("resource_type"))
        .unwrap_or("prometheus_target")
        .to_string();
    let split: Option<Vec<&str>> = match &shape.resource_labels {
        Some(l) => Some(l.iter().map(String::as_str).collect()),
        None => known_resource_labels(&kind).map(|l| l.to_vec()),
    };
    let (mut resource_labels, metric_labels) = match split {
        None => (labels.clone(), labels.clone()),
        Some(names) => labels
            .iter()
            .filter(|(k, _)| k.as_str() != "resource_type")
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| names.contains(&k.as_str())),
    };
    let project = project_id.unwrap_or("tocsin");
    let instance = a.labels.get("instance").map(str::to_string);
    let ann = |k: &str| a.annotations.get(k).filter(|v| !v.is_empty()).cloned();
    let summary = ann("summary")
        .or_else(|| ann("description"))
        .unwrap_or_else(|| {
            if closed {
                format!("{name} has been resolved for {}.", a.labels)
            } else {
                format!("{name} is firing for {}.", a.labels)
            }
        });
    if let Some(p) = project_id {
        resource_labels
            .entry("project_id".to_string())
            .or_insert_with(|| p.to_string());
    }
    Incident {
        incident_id: format!("{}-{}", a.fingerprint_hex(), a.starts_at),
        scoping_project_id: project_id.map(str::to_string),
        url: if a.generator_url.is_empty() {
            cx.external_url.clone()
        } else {
            a.generator_url.clone()
        },
        started_at: a.starts_at.div_euclid(1000),
        ended_at: closed.then(|| a.ends_at.div_euclid(1000)),
        state: if closed { "closed" } else { "open" },
        summary,
        observed_value: lookup(a, &["observed_value", "value"]),
        threshold_value: lookup(a, &["threshold_value", "threshold"]),
        resource: IncidentResource {
            kind,
            labels: resource_labels,
        },
        resource_name: instance.clone(),
        resource_display_name: instance,
        metric: IncidentMetric {
            kind: format!("tocsin/alerts/{name}"),
            display_name: name.clone(),
            labels: metric_labels,
        },
        metadata: IncidentMetadata {
            system_labels: BTreeMap::new(),
            user_labels: labels.clone(),
        },
        policy_name: name.clone(),
        policy_user_labels: labels,
        condition_name: name.clone(),
        condition: IncidentCondition {
            name: format!("projects/{project}/alertPolicies/{name}/conditions/{name}"),
            display_name: name.clone(),
            promql: generator_expr(&a.generator_url).map(|query| PromQlCondition {
                query,
                alert_rule: name.clone(),
            }),
        },
        documentation: IncidentDocumentation {
            content: ann("description").unwrap_or_default(),
            mime_type: "text/markdown",
            subject: ann("summary"),
        },
        severity: a.labels.get("severity").map(str::to_string),
    }
}

#[derive(Serialize)]
struct PushMessage {
    data: String,
    attributes: BTreeMap<&'static str, String>,
    #[serde(rename = "messageId")]
    message_id_camel: String,
    message_id: String,
    #[serde(rename = "publishTime")]
    publish_time_camel: String,
    publish_time: String,
}

#[derive(Serialize)]
struct PushEnvelope<'a> {
    message: PushMessage,
    subscription: &'a str,
}

/// Message ids unique within the process and, being seeded from the clock, across restarts.
static NEXT_MESSAGE_ID: LazyLock<AtomicU64> = LazyLock::new(|| {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1);
    AtomicU64::new(micros)
});

fn next_message_id() -> String {
    NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed).to_string()
}

/// The message data for one incident: the notification JSON Cloud Monitoring sends.
pub(crate) fn notification(inc: &Incident) -> Result<Vec<u8>, NotifyError> {
    serde_json::to_vec(&Notification {
        version: "1.2",
        incident: inc,
    })
    .map_err(|e| NotifyError {
        retryable: false,
        reason: super::Reason::Other,
        message: format!("encoding incident: {e}"),
    })
}

/// The message attributes of one incident, for push filters and subscription filters.
fn attributes(inc: &Incident) -> BTreeMap<&'static str, String> {
    let mut attributes = BTreeMap::new();
    attributes.insert("incident_id", inc.incident_id.clone());
    attributes.insert("state", inc.state.to_string());
    attributes
}

/// The push body for one incident.
fn envelope(inc: &Incident, subscription: &str) -> Result<Vec<u8>, NotifyError> {
    let data = notification(inc)?;
    let id = next_message_id();
    let published = common::proto_time(std::time::SystemTime::now());
    let attributes = attributes(inc);
    let env = PushEnvelope {
        message: PushMessage {
            data: base64::engine::general_purpose::STANDARD.encode(data),
            attributes,
            message_id_camel: id.clone(),
            message_id: id,
            publish_time_camel: published.clone(),
            publish_time: published,
        },
        subscription,
    };
    serde_json::to_vec(&env).map_err(|e| NotifyError {
        retryable: false,
        reason: super::Reason::Other,
        message: format!("encoding push envelope: {e}"),
    })
}

/// Where incidents go.
enum Delivery {
    Push {
        url: reqwest::Url,
        client: tocsin_httpclient::Client,
        /// The Google user and audience of the ID token attached to each push.
        id_token: Option<(tocsin_gcp::Google, String)>,
    },
    Publish {
        topic: String,
        google: tocsin_gcp::Google,
    },
}

/// A configured Pub/Sub target.
pub struct Pubsub {
    send_resolved: bool,
    subscription: String,
    shape: IncidentShape,
    delivery: Delivery,
    timeout: Duration,
}

fn gcp_error(e: tocsin_gcp::Error) -> NotifyError {
    let reason = match e.status() {
        Some(400..=499) => super::Reason::ClientError,
        Some(500..=599) => super::Reason::ServerError,
        _ => super::Reason::Other,
    };
    NotifyError {
        retryable: e.retryable(),
        reason,
        message: e.to_string(),
    }
}

impl Pubsub {
    pub fn new(cfg: &PubsubConfig, base_dir: &Path, what: &str) -> crate::Result<Self> {
        if let Some(e) = cfg.check().into_iter().next() {
            return Err(crate::Error::Config(format!("{what}: {e}")));
        }
        let timeout = cfg.timeout.unwrap_or(common::UNBOUNDED_HTTP_TIMEOUT);
        let google = || {
            tocsin_gcp::Google::new(&cfg.google.clone().unwrap_or_default(), base_dir, what)
                .map_err(|e| crate::Error::Config(e.to_string()))
        };
        let delivery = match (&cfg.url, &cfg.topic) {
            (Some(u), _) => Delivery::Push {
                url: common::parse_url(u, what)?,
                client: common::build_client(&cfg.http_config, base_dir, timeout, what)?,
                id_token: match &cfg.id_token {
                    Some(t) => Some((
                        google()?,
                        t.audience.clone().unwrap_or_else(|| u.trim().to_string()),
                    )),
                    None => None,
                },
            },
            (None, Some(t)) => Delivery::Publish {
                topic: t.clone(),
                google: google()?,
            },
            (None, None) => {
                return Err(crate::Error::Config(format!(
                    "{what}: url: one of url or topic is required"
                )))
            }
        };
        Ok(Pubsub {
            send_resolved: cfg.send_resolved,
            subscription: cfg.subscription.clone(),
            shape: IncidentShape {
                project_id: cfg.project_id.clone(),
                resource_type: cfg.resource_type.clone(),
                resource_labels: cfg.resource_labels.clone(),
            },
            delivery,
            timeout,
        })
    }

    async fn push(
        &self,
        url: &reqwest::Url,
        client: &tocsin_httpclient::Client,
        id_token: &Option<(tocsin_gcp::Google, String)>,
        inc: &Incident,
    ) -> Result<(), NotifyError> {
        let body = envelope(inc, &self.subscription)?;
        let auth = match id_token {
            Some((g, audience)) => {
                let t = g.id_token(audience).await.map_err(gcp_error)?;
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| NotifyError {
                        retryable: false,
                        reason: super::Reason::Other,
                        message: "the ID token is not a valid header value".into(),
                    })?;
                v.set_sensitive(true);
                Some((reqwest::header::AUTHORIZATION, v))
            }
            None => None,
        };
        common::post_json(client, url.clone(), body, auth)
            .await
            .map_err(|mut e| {
                e.retryable = true;
                e
            })
    }

    async fn publish(
        &self,
        topic: &str,
        google: &tocsin_gcp::Google,
        incidents: &[Incident],
    ) -> Result<(), NotifyError> {
        let mut out = common::Failures::default();
        for chunk in incidents.chunks(PUBLISH_BATCH) {
            let mut msgs = Vec::with_capacity(chunk.len());
            for inc in chunk {
                msgs.push(tocsin_gcp::PubsubMessage {
                    data: notification(inc)?,
                    attributes: attributes(inc)
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                });
            }
            let r = google.publish(topic, &msgs, self.timeout).await;
            out.record(r.map(|_| ()).map_err(gcp_error));
        }
        out.finish("publish requests")
    }
}

impl Notifier for Pubsub {
    fn integration(&self) -> &'static str {
        "pubsub"
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
            let incidents: Vec<Incident> = alerts
                .iter()
                .filter(|a| self.send_resolved || !a.resolved_at(cx.now_ms))
                .map(|a| incident(a, cx, &self.shape))
                .collect();
            match &self.delivery {
                Delivery::Push {
                    url,
                    client,
                    id_token,
                } => {
                    let mut out = common::Failures::default();
                    for inc in &incidents {
                        out.record(self.push(url, client, id_token, inc).await);
                    }
                    out.finish("pushes")
                }
                Delivery::Publish { topic, google } => {
                    if incidents.is_empty() {
                        return Ok(());
                    }
                    self.publish(topic, google, &incidents).await
                }
            }
        })
    }
}
