//! The `remote_write:` section in prometheus.yml's format: each entry typed, defaults as
//! Prometheus has them, and every setting Tocsin does not act on refused by name rather than
//! accepted and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use tocsin_collect::relabel::RelabelConfig;
use tocsin_collect::scrape::config::Duration;
use tocsin_httpclient::HttpClientConfig;

/// The remote-write protocol spoken to a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `prometheus.WriteRequest` (remote write 1.0).
    V1,
    /// `io.prometheus.write.v2.Request` (remote write 2.0).
    V2,
}

/// One `remote_write` entry. `deny_unknown_fields` does not combine with the flattened
/// `http_config`, so unknown keys land in `rest` and are refused by [`RemoteWriteConfig::problems`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RemoteWriteConfig {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: Duration,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    #[serde(default = "default_protobuf_message")]
    pub protobuf_message: String,
    #[serde(default)]
    pub send_exemplars: bool,
    #[serde(default)]
    pub send_native_histograms: bool,
    #[serde(default)]
    pub round_robin_dns: bool,
    #[serde(default)]
    pub queue_config: QueueConfig,
    #[serde(default)]
    pub metadata_config: MetadataConfig,
    #[serde(flatten)]
    pub http: HttpClientConfig,
    #[serde(flatten, deserialize_with = "rest")]
    pub rest: BTreeMap<String, serde_norway::Value>,
}

/// Keys Prometheus has that Tocsin refuses with a reason rather than as unknown.
const REFUSED: &[(&str, &str)] = &[
    (
        "sigv4",
        "AWS SigV4 signing is not implemented yet; remove it",
    ),
    (
        "azuread",
        "Azure AD authentication is not implemented yet; remove it",
    ),
    (
        "google_iam",
        "Google IAM authentication is not implemented yet; remove it",
    ),
];

const FIELDS: &[&str] = &[
    "url",
    "name",
    "remote_timeout",
    "headers",
    "write_relabel_configs",
    "protobuf_message",
    "send_exemplars",
    "send_native_histograms",
    "round_robin_dns",
    "queue_config",
    "metadata_config",
    "basic_auth",
    "authorization",
    "oauth2",
    "tls_config",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "http_headers",
];

fn rest<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_norway::Value>, D::Error> {
    let m = BTreeMap::<String, serde_norway::Value>::deserialize(d)?;
    for k in m.keys() {
        if !REFUSED.iter().any(|(r, _)| r == k) {
            return Err(serde::de::Error::custom(format!(
                "unknown field `{k}`, expected one of `{}`",
                FIELDS.join("`, `")
            )));
        }
    }
    Ok(m)
}

fn default_remote_timeout() -> Duration {
    Duration(30_000)
}

fn default_protobuf_message() -> String {
    "prometheus.WriteRequest".into()
}

/// `queue_config`, with Prometheus's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Samples buffered per shard before reading the WAL pauses.
    pub capacity: usize,
    pub max_shards: usize,
    pub min_shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
    /// Samples older than this when they are sent are dropped; 0 = never.
    pub sample_age_limit: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration(5_000),
            min_backoff: Duration(30),
            max_backoff: Duration(5_000),
            retry_on_http_429: false,
            sample_age_limit: Duration(0),
        }
    }
}

/// `metadata_config`, with Prometheus's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: Duration,
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            send: true,
            send_interval: Duration(60_000),
            max_samples_per_send: 2_000,
        }
    }
}

impl RemoteWriteConfig {
    /// The protocol `protobuf_message` asks for.
    pub fn protocol(&self) -> Option<Protocol> {
        match self.protobuf_message.as_str() {
            "prometheus.WriteRequest" => Some(Protocol::V1),
            "io.prometheus.write.v2.Request" => Some(Protocol::V2),
            _ => None,
        }
    }

    /// What identifies this remote's queue and position file: the name if given, else the URL.
    pub fn queue_name(&self) -> String {
        match &self.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => self.url.clone(),
        }
    }

    /// Every problem, as (path below this entry, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match reqwest::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => p.push((
                "url".into(),
                format!("scheme {:?} is not http or https", u.scheme()),
            )),
            Err(e) => p.push(("url".into(), format!("{:?} is not a URL: {e}", self.url))),
        }
        for (k, why) in REFUSED {
            if self.rest.contains_key(*k) {
                p.push(((*k).into(), (*why).into()));
            }
        }
        if self.protocol().is_none() {
            p.push((
                "protobuf_message".into(),
                format!(
                    "{:?} is not one of \"prometheus.WriteRequest\" (remote write 1.0) or \"io.prometheus.write.v2.Request\" (2.0)",
                    self.protobuf_message
                ),
            ));
        }
        if self.send_exemplars {
            p.push((
                "send_exemplars".into(),
                "exemplars are not kept in the WAL, so they cannot be sent; remove it".into(),
            ));
        }
        if self.send_native_histograms {
            p.push((
                "send_native_histograms".into(),
                "native histograms are not stored, so they cannot be sent; remove it".into(),
            ));
        }
        if self.round_robin_dns {
            p.push((
                "round_robin_dns".into(),
                "round_robin_dns is not implemented yet; remove it".into(),
            ));
        }
        if self.remote_timeout.0 <= 0 {
            p.push(("remote_timeout".into(), "must be positive".into()));
        }
        for k in self.headers.keys() {
            let lk = k.to_ascii_lowercase();
            // Prometheus refuses the headers the protocol sets itself.
            if [
                "content-encoding",
                "content-type",
                "user-agent",
                "x-prometheus-remote-write-version",
                "authorization",
                "host",
                "content-length",
            ]
            .contains(&lk.as_str())
            {
                p.push((
                    format!("headers.{k}"),
                    format!(
                        "{k} is set by the protocol or the auth settings and cannot be overridden"
                    ),
                ));
            } else if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                p.push((format!("headers.{k}"), "is not a valid header name".into()));
            }
        }
        for (k, v) in &self.headers {
            if reqwest::header::HeaderValue::from_str(v).is_err() {
                p.push((format!("headers.{k}"), "is not a valid header value".into()));
            }
        }
        for (i, r) in self.write_relabel_configs.iter().enumerate() {
            if let Err(e) = r.validate() {
                p.push((format!("write_relabel_configs[{i}]"), e));
            }
        }
        if let Err(e) = self.http.validate() {
            p.push((String::new(), e.to_string()));
        }
        let q = &self.queue_config;
        let qp = |f: &str| format!("queue_config.{f}");
        if q.capacity == 0 {
            p.push((qp("capacity"), "must be at least 1".into()));
        }
        if q.min_shards == 0 {
            p.push((qp("min_shards"), "must be at least 1".into()));
        }
        if q.max_shards < q.min_shards.max(1) {
            p.push((
                qp("max_shards"),
                format!("must be at least min_shards ({})", q.min_shards),
            ));
        }
        if q.max_samples_per_send == 0 {
            p.push((qp("max_samples_per_send"), "must be at least 1".into()));
        }
        if q.batch_send_deadline.0 <= 0 {
            p.push((qp("batch_send_deadline"), "must be positive".into()));
        }
        if q.min_backoff.0 <= 0 {
            p.push((qp("min_backoff"), "must be positive".into()));
        }
        if q.max_backoff.0 < q.min_backoff.0 {
            p.push((qp("max_backoff"), "must be at least min_backoff".into()));
        }
        if q.sample_age_limit.0 < 0 {
            p.push((qp("sample_age_limit"), "must not be negative".into()));
        }
        let m = &self.metadata_config;
        if m.send && m.send_interval.0 <= 0 {
            p.push((
                "metadata_config.send_interval".into(),
                "must be positive".into(),
            ));
        }
        if m.send && m.max_samples_per_send == 0 {
            p.push((
                "metadata_config.max_samples_per_send".into(),
                "must be at least 1".into(),
            ));
        }
        p
    }
}

/// Problems of the whole section, paths starting with `remote_write[i]`; also refuses two
/// entries with the same queue name (they would share a position file).
pub fn problems(cfgs: &[RemoteWriteConfig]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, c) in cfgs.iter().enumerate() {
        for (path, m) in c.problems() {
            let path = if path.is_empty() {
                format!("remote_write[{i}]")
            } else {
                format!("remote_write[{i}].{path}")
            };
            out.push((path, m));
        }
        if let Some(j) = seen.insert(c.queue_name(), i) {
            let what = if c.name.is_some() { "name" } else { "url" };
            out.push((
                format!("remote_write[{i}].{what}"),
                format!("remote_write[{j}] has the same {what}; give each remote a distinct name"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(y: &str) -> Result<Vec<RemoteWriteConfig>, String> {
        serde_norway::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn prometheus_defaults_and_fields() {
        let c = parse(
            "- url: http://vm:8428/api/v1/write\n  name: vm\n  remote_timeout: 10s\n  headers: {X-Scope-OrgID: t1}\n  basic_auth: {username: u, password: p}\n  queue_config: {max_shards: 4, retry_on_http_429: true}\n  metadata_config: {send: false}\n  write_relabel_configs:\n    - source_labels: [__name__]\n      regex: go_.*\n      action: drop\n",
        )
        .unwrap();
        let c = &c[0];
        assert_eq!(c.remote_timeout, Duration(10_000));
        assert_eq!(c.queue_config.max_shards, 4);
        assert_eq!(c.queue_config.capacity, 10_000);
        assert_eq!(c.queue_config.max_samples_per_send, 2_000);
        assert!(c.queue_config.retry_on_http_429);
        assert!(!c.metadata_config.send);
        assert_eq!(c.protocol(), Some(Protocol::V1));
        assert!(c.http.basic_auth.is_some());
        assert!(
            problems(std::slice::from_ref(c)).is_empty(),
            "{:?}",
            problems(std::slice::from_ref(c))
        );
    }

    #[test]
    fn unimplemented_and_unknown_settings_are_refused() {
        let c = parse("- url: http://x/\n  sigv4: {region: eu}\n  send_exemplars: true\n").unwrap();
        let p = problems(&c);
        assert!(
            p.iter()
                .any(|(f, m)| f == "remote_write[0].sigv4" && m.contains("not implemented")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|(f, _)| f == "remote_write[0].send_exemplars"),
            "{p:?}"
        );
        let e = parse("- url: http://x/\n  max_retries: 3\n").unwrap_err();
        assert!(e.contains("unknown field `max_retries`"), "{e}");
        let e = parse("- url: http://x/\n  queue_config: {max_retries: 3}\n").unwrap_err();
        assert!(e.contains("max_retries"), "{e}");
    }

    #[test]
    fn bad_values_and_duplicates_are_named() {
        let c = parse("- url: ftp://x/\n  queue_config: {min_shards: 5, max_shards: 2}\n  headers: {User-Agent: me}\n- url: ftp://x/\n  protobuf_message: foo\n").unwrap();
        let p = problems(&c);
        let fields: Vec<&str> = p.iter().map(|(f, _)| f.as_str()).collect();
        for want in [
            "remote_write[0].url",
            "remote_write[0].queue_config.max_shards",
            "remote_write[0].headers.User-Agent",
            "remote_write[1].protobuf_message",
            "remote_write[1].url",
        ] {
            assert!(fields.contains(&want), "{want} missing in {p:?}");
        }
    }
}
