//! The `global` and `scrape_configs` sections of `prometheus.yml`. Every field Prometheus knows is
//! read; the ones Tocsin does not act on yet are refused with a message when set (see
//! [`ScrapeConfig::resolve_checked`] and [`GlobalConfig::unsupported`]), never ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::discovery::{FileSdConfig, HttpSdConfig, StaticConfig};
use crate::httpclient::HttpClientConfig;
use crate::relabel::RelabelConfig;

/// A Prometheus duration (`15s`, `1m30s`) in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub i64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        tocsin_model::duration::parse_duration_ms(&s)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

/// A byte size (`10MB`, `0` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Size(n)),
            Raw::S(s) if s.trim() == "0" => Ok(Size(0)),
            Raw::S(s) => tocsin_model::duration::parse_size(&s)
                .map(Size)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub evaluation_interval: Duration,
    pub rule_query_offset: Option<Duration>,
    pub scrape_protocols: Option<Vec<String>>,
    pub external_labels: BTreeMap<String, String>,
    pub query_log_file: Option<String>,
    pub scrape_failure_log_file: Option<String>,
    pub body_size_limit: Size,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub keep_dropped_targets: u64,
    pub metric_name_validation_scheme: Option<String>,
    pub metric_name_escaping_scheme: Option<String>,
    pub always_scrape_classic_histograms: Option<bool>,
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    pub scrape_native_histograms: Option<bool>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            scrape_interval: Duration(60_000),
            scrape_timeout: Duration(10_000),
            evaluation_interval: Duration(60_000),
            rule_query_offset: None,
            scrape_protocols: None,
            external_labels: BTreeMap::new(),
            query_log_file: None,
            scrape_failure_log_file: None,
            body_size_limit: Size(0),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            target_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: None,
            metric_name_escaping_scheme: None,
            always_scrape_classic_histograms: None,
            convert_classic_histograms_to_nhcb: None,
            scrape_native_histograms: None,
        }
    }
}

/// Discovery mechanisms Prometheus has and Tocsin does not implement yet. They are read so the
/// refusal can say so (rather than "unknown field"); a job using one is refused.
const UNSUPPORTED_SD: &[&str] = &[
    "azure_sd_configs",
    "consul_sd_configs",
    "digitalocean_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "eureka_sd_configs",
    "gce_sd_configs",
    "hetzner_sd_configs",
    "ionos_sd_configs",
    "kubernetes_sd_configs",
    "kuma_sd_configs",
    "lightsail_sd_configs",
    "linode_sd_configs",
    "marathon_sd_configs",
    "nerve_sd_configs",
    "nomad_sd_configs",
    "openstack_sd_configs",
    "ovhcloud_sd_configs",
    "puppetdb_sd_configs",
    "scaleway_sd_configs",
    "serverset_sd_configs",
    "triton_sd_configs",
    "uyuni_sd_configs",
    "vultr_sd_configs",
    "stackit_sd_configs",
];

/// Keys of a job (its own and the HTTP client's), named when an unknown key is refused.
const SCRAPE_FIELDS: &[&str] = &[
    "job_name",
    "honor_labels",
    "honor_timestamps",
    "track_timestamps_staleness",
    "scrape_interval",
    "scrape_timeout",
    "scrape_protocols",
    "fallback_scrape_protocol",
    "metrics_path",
    "scheme",
    "params",
    "enable_compression",
    "body_size_limit",
    "sample_limit",
    "label_limit",
    "label_name_length_limit",
    "label_value_length_limit",
    "target_limit",
    "keep_dropped_targets",
    "scrape_classic_histograms",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "scrape_native_histograms",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "scrape_failure_log_file",
    "relabel_configs",
    "metric_relabel_configs",
    "static_configs",
    "file_sd_configs",
    "http_sd_configs",
    "basic_auth",
    "authorization",
    "oauth2",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "http_headers",
];

/// One job. Unknown keys are refused by `other_sd` rather than `deny_unknown_fields`, which serde
/// ignores on a struct with flattened fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    #[serde(default)]
    pub scrape_interval: Option<Duration>,
    #[serde(default)]
    pub scrape_timeout: Option<Duration>,
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default)]
    pub fallback_scrape_protocol: Option<String>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default = "yes")]
    pub enable_compression: bool,
    #[serde(default)]
    pub body_size_limit: Option<Size>,
    #[serde(default)]
    pub sample_limit: Option<u64>,
    #[serde(default)]
    pub label_limit: Option<u64>,
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    #[serde(default)]
    pub target_limit: Option<u64>,
    #[serde(default)]
    pub keep_dropped_targets: Option<u64>,
    #[serde(default)]
    pub scrape_classic_histograms: Option<bool>,
    #[serde(default)]
    pub always_scrape_classic_histograms: Option<bool>,
    #[serde(default)]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    #[serde(default)]
    pub native_histogram_bucket_limit: Option<u64>,
    #[serde(default)]
    pub native_histogram_min_bucket_factor: Option<f64>,
    #[serde(default)]
    pub metric_name_validation_scheme: Option<String>,
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<String>,
    #[serde(default)]
    pub scrape_failure_log_file: Option<String>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(flatten)]
    pub http: HttpClientConfig,
    /// Every other `*_sd_configs` key, kept to warn about (see [`UNSUPPORTED_SD`]).
    #[serde(flatten, deserialize_with = "other_sd")]
    pub other_sd: BTreeMap<String, serde_norway::Value>,
}

/// `deny_unknown_fields` does not combine with `flatten`, so unknown keys land here and are
/// refused unless they name a discovery mechanism Prometheus has.
fn other_sd<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_norway::Value>, D::Error> {
    let m = BTreeMap::<String, serde_norway::Value>::deserialize(d)?;
    for k in m.keys() {
        if !UNSUPPORTED_SD.contains(&k.as_str()) {
            let known = SCRAPE_FIELDS.join("`, `");
            return Err(serde::de::Error::custom(format!(
                "unknown field `{k}`, expected one of `{known}`"
            )));
        }
    }
    Ok(m)
}

fn yes() -> bool {
    true
}
fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}

/// The message for a Prometheus setting Tocsin reads but does not act on yet.
pub fn not_implemented(field: &str) -> String {
    format!("{field} is not implemented yet; remove it")
}

impl GlobalConfig {
    /// Settings Prometheus has in `global:` that Tocsin does not act on yet, set to something
    /// that would change behaviour: (field, message).
    pub fn unsupported(&self) -> Vec<(String, String)> {
        [
            ("scrape_protocols", self.scrape_protocols.is_some()),
            ("query_log_file", self.query_log_file.is_some()),
            (
                "scrape_failure_log_file",
                self.scrape_failure_log_file.is_some(),
            ),
            (
                "metric_name_validation_scheme",
                self.metric_name_validation_scheme.is_some(),
            ),
            (
                "metric_name_escaping_scheme",
                self.metric_name_escaping_scheme.is_some(),
            ),
            (
                "scrape_native_histograms",
                self.scrape_native_histograms == Some(true),
            ),
            (
                "convert_classic_histograms_to_nhcb",
                self.convert_classic_histograms_to_nhcb == Some(true),
            ),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| (f.to_string(), not_implemented(f)))
        .collect()
    }
}

/// A scrape config with the global defaults applied and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedScrape {
    pub cfg: ScrapeConfig,
    pub interval_ms: i64,
    pub timeout_ms: i64,
    pub body_size_limit: u64,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub target_limit: u64,
    pub keep_dropped_targets: u64,
}

impl ScrapeConfig {
    /// Discovery sections present that Tocsin does not implement.
    pub fn unsupported(&self) -> Vec<&str> {
        self.other_sd.keys().map(|s| s.as_str()).collect()
    }

    /// Applies the global defaults and checks the job; the error names the first bad field.
    pub fn resolve(&self, g: &GlobalConfig) -> Result<ResolvedScrape, (String, String)> {
        let mut p = Vec::new();
        let r = self.resolve_checked(g, &mut p);
        match p.into_iter().next() {
            None => Ok(r),
            Some(e) => Err(e),
        }
    }

    /// Applies the global defaults and checks the job, pushing every problem to `p` as (field
    /// relative to the job, message).
    pub fn resolve_checked(
        &self,
        g: &GlobalConfig,
        p: &mut Vec<(String, String)>,
    ) -> ResolvedScrape {
        let mut f = |field: &str, msg: String| p.push((field.to_string(), msg));
        if self.job_name.is_empty() {
            f("job_name", "must not be empty".into());
        }
        for k in self.other_sd.keys() {
            f(
                k,
                format!(
                    "{k} is not implemented yet; use static_configs, file_sd_configs or \
                     http_sd_configs"
                ),
            );
        }
        for (field, set) in [
            ("scrape_protocols", self.scrape_protocols.is_some()),
            (
                "fallback_scrape_protocol",
                self.fallback_scrape_protocol.is_some(),
            ),
            (
                "scrape_native_histograms",
                self.scrape_native_histograms == Some(true),
            ),
            (
                "convert_classic_histograms_to_nhcb",
                self.convert_classic_histograms_to_nhcb == Some(true),
            ),
            (
                "native_histogram_bucket_limit",
                self.native_histogram_bucket_limit.is_some(),
            ),
            (
                "native_histogram_min_bucket_factor",
                self.native_histogram_min_bucket_factor.is_some(),
            ),
            (
                "metric_name_validation_scheme",
                self.metric_name_validation_scheme.is_some(),
            ),
            (
                "metric_name_escaping_scheme",
                self.metric_name_escaping_scheme.is_some(),
            ),
            (
                "scrape_failure_log_file",
                self.scrape_failure_log_file.is_some(),
            ),
        ] {
            if set {
                f(field, not_implemented(field));
            }
        }
        let mut interval_ms = self.scrape_interval.unwrap_or(g.scrape_interval).0;
        if interval_ms <= 0 {
            f("scrape_interval", "must be positive".into());
            interval_ms = 60_000;
        }
        let mut timeout_ms = self.scrape_timeout.map(|d| d.0).unwrap_or_else(|| {
            // The global timeout only applies up to the job's interval, as in Prometheus.
            g.scrape_timeout.0.min(interval_ms)
        });
        if timeout_ms <= 0 {
            timeout_ms = interval_ms;
        }
        if timeout_ms > interval_ms {
            f(
                "scrape_timeout",
                format!(
                    "scrape timeout {}ms is greater than the scrape interval {}ms",
                    timeout_ms, interval_ms
                ),
            );
            timeout_ms = interval_ms;
        }
        if self.scheme != "http" && self.scheme != "https" {
            f(
                "scheme",
                format!("{:?}: must be \"http\" or \"https\"", self.scheme),
            );
        }
        if !self.metrics_path.starts_with('/') {
            f(
                "metrics_path",
                format!("{:?} must start with /", self.metrics_path),
            );
        }
        for (i, r) in self.relabel_configs.iter().enumerate() {
            if let Err(e) = r.validate() {
                f(&format!("relabel_configs[{i}]"), e);
            }
        }
        for (i, r) in self.metric_relabel_configs.iter().enumerate() {
            if let Err(e) = r.validate() {
                f(&format!("metric_relabel_configs[{i}]"), e);
            }
        }
        for (i, c) in self.static_configs.iter().enumerate() {
            if let Err(e) = c.validate() {
                f(&format!("static_configs[{i}]"), e);
            }
        }
        for (i, c) in self.file_sd_configs.iter().enumerate() {
            if let Err(e) = c.validate() {
                f(&format!("file_sd_configs[{i}]"), e);
            }
        }
        for (i, c) in self.http_sd_configs.iter().enumerate() {
            if let Err(e) = c.validate() {
                f(&format!("http_sd_configs[{i}]"), e);
            }
        }
        if let Err(e) = self.http.validate() {
            match e {
                crate::httpclient::HttpConfigError::Invalid { field, message } => {
                    f(&field, message)
                }
                other => f("", other.to_string()),
            }
        }
        ResolvedScrape {
            cfg: self.clone(),
            interval_ms,
            timeout_ms,
            body_size_limit: self.body_size_limit.unwrap_or(g.body_size_limit).0,
            sample_limit: self.sample_limit.unwrap_or(g.sample_limit),
            label_limit: self.label_limit.unwrap_or(g.label_limit),
            label_name_length_limit: self
                .label_name_length_limit
                .unwrap_or(g.label_name_length_limit),
            label_value_length_limit: self
                .label_value_length_limit
                .unwrap_or(g.label_value_length_limit),
            target_limit: self.target_limit.unwrap_or(g.target_limit),
            keep_dropped_targets: self.keep_dropped_targets.unwrap_or(g.keep_dropped_targets),
        }
    }
}
