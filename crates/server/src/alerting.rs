//! The `alerting:` section of prometheus.yml (external Alertmanagers to send to, and
//! `alert_relabel_configs`), the `rules:` section (rule engine settings Prometheus has as flags),
//! and loading the groups of every file `rule_files` matches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use tocsin_collect::discovery::static_sd::StaticConfig;
use tocsin_collect::discovery::{FileSdConfig, HttpSdConfig};
use tocsin_collect::httpclient::HttpClientConfig;
use tocsin_collect::relabel::RelabelConfig;
use tocsin_collect::scrape::config::Duration;
use tocsin_rules::{AlertSink, LoadedGroup};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    #[serde(default)]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One entry of `alerting.alertmanagers`. Targets come from static, file and HTTP discovery
/// (see `am_targets`); other discovery keys are refused with a message rather than ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertmanagerConfig {
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub path_prefix: String,
    #[serde(default)]
    pub timeout: Option<Duration>,
    #[serde(default = "default_api")]
    pub api_version: String,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(flatten)]
    pub http: HttpClientConfig,
    #[serde(flatten, deserialize_with = "refuse_other")]
    pub other: BTreeMap<String, serde_norway::Value>,
}

fn default_scheme() -> String {
    "http".into()
}
fn default_api() -> String {
    "v2".into()
}

/// `deny_unknown_fields` does not work next to `flatten`; unknown keys land here and fail.
fn refuse_other<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_norway::Value>, D::Error> {
    let m = BTreeMap::<String, serde_norway::Value>::deserialize(d)?;
    if let Some(k) = m.keys().next() {
        let msg = if k.ends_with("_sd_configs") {
            format!(
                "alertmanagers: {k} is not supported (use static_configs, file_sd_configs or \
                 http_sd_configs)"
            )
        } else {
            format!("unknown field `{k}`")
        };
        return Err(serde::de::Error::custom(msg));
    }
    Ok(m)
}

/// The `rules:` section: settings of the rule engine that Prometheus has as flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Least time between two sends of a still-firing alert.
    pub resend_delay: Duration,
    /// Longest outage after which `for` state is still restored.
    pub outage_tolerance: Duration,
    /// Least time an alert whose `for` completed during an outage waits after a restart.
    pub for_grace_period: Duration,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            resend_delay: Duration(60_000),
            outage_tolerance: Duration(3_600_000),
            for_grace_period: Duration(0),
        }
    }
}

impl AlertingConfig {
    /// Checks what can be checked without the network; the message names the first bad field.
    pub fn validate(&self) -> Result<(), String> {
        let mut p = Vec::new();
        self.problems(&mut p);
        match p.into_iter().next() {
            None => Ok(()),
            Some((f, m)) => Err(format!("{f}: {m}")),
        }
    }

    /// Every problem, as (path of the field, message).
    pub fn problems(&self, p: &mut crate::config::Problems) {
        for (i, r) in self.alert_relabel_configs.iter().enumerate() {
            if let Err(e) = r.validate() {
                p.push((format!("alerting.alert_relabel_configs[{i}]"), e));
            }
        }
        for (i, am) in self.alertmanagers.iter().enumerate() {
            let mut f = |field: &str, m: String| {
                let path = format!("alerting.alertmanagers[{i}]");
                p.push((
                    if field.is_empty() {
                        path
                    } else {
                        format!("{path}.{field}")
                    },
                    m,
                ))
            };
            if am.api_version != "v2" {
                f(
                    "api_version",
                    format!(
                        "api_version {:?} is not supported (Alertmanager 0.27 removed v1; use v2)",
                        am.api_version
                    ),
                );
            }
            if am.scheme != "http" && am.scheme != "https" {
                f(
                    "scheme",
                    format!("scheme {:?}: must be http or https", am.scheme),
                );
            }
            for (j, r) in am.relabel_configs.iter().enumerate() {
                if let Err(e) = r.validate() {
                    f(&format!("relabel_configs[{j}]"), e);
                }
            }
            for (j, c) in am.file_sd_configs.iter().enumerate() {
                if let Err(e) = c.validate() {
                    f(&format!("file_sd_configs[{j}]"), e);
                }
            }
            for (j, c) in am.http_sd_configs.iter().enumerate() {
                if let Err(e) = c.validate() {
                    f(&format!("http_sd_configs[{j}]"), e);
                }
            }
            if let Err(e) = am.http.validate() {
                match e {
                    tocsin_collect::httpclient::HttpConfigError::Invalid { field, message } => {
                        f(&field, message)
                    }
                    other => f("", other.to_string()),
                }
            }
            for (j, sc) in am.static_configs.iter().enumerate() {
                for (k, t) in sc.targets.iter().enumerate() {
                    if t.is_empty() || t.contains('/') {
                        f(
                            &format!("static_configs[{j}].targets[{k}]"),
                            format!("target {t:?}: expected host:port"),
                        );
                    }
                }
            }
        }
    }
}

/// Paths matched by the `rule_files` globs, relative ones resolved against the config's directory.
pub fn rule_file_paths(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let full = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let paths = glob::glob(&full.to_string_lossy())
            .map_err(|e| format!("rule_files pattern {p:?}: {e}"))?;
        for r in paths {
            out.push(r.map_err(|e| format!("rule_files pattern {p:?}: {e}"))?);
        }
    }
    Ok(out)
}

/// Loads every rule file; all problems of all files are reported together.
pub fn load_groups(
    patterns: &[String],
    base: &Path,
    default_interval_ms: i64,
    default_query_offset_ms: Option<i64>,
) -> Result<Vec<LoadedGroup>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for path in rule_file_paths(patterns, base)? {
        match tocsin_rules::load_file(&path) {
            Ok(f) => {
                for mut g in f.groups {
                    if g.query_offset.is_none() {
                        g.query_offset = default_query_offset_ms;
                    }
                    out.push(LoadedGroup {
                        file: f.path.clone(),
                        interval_ms: g.interval.unwrap_or(default_interval_ms),
                        group: g,
                    });
                }
            }
            Err(e) => errors.extend(e.messages()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// Applies `alert_relabel_configs` before alerts leave for any Alertmanager; alerts the rules
/// drop go nowhere.
pub struct RelabelSink {
    pub configs: parking_lot::RwLock<Vec<RelabelConfig>>,
    pub inner: Arc<dyn AlertSink>,
}

impl AlertSink for RelabelSink {
    fn send(&self, alerts: Vec<tocsin_model::Alert>) {
        let cfgs = self.configs.read();
        if cfgs.is_empty() {
            drop(cfgs);
            self.inner.send(alerts);
            return;
        }
        let mut kept = Vec::with_capacity(alerts.len());
        for mut a in alerts {
            let mut lb = a.labels.builder();
            if tocsin_collect::relabel::process(&mut lb, &cfgs) {
                a.labels = lb.build();
                kept.push(a);
            }
        }
        drop(cfgs);
        if !kept.is_empty() {
            self.inner.send(kept);
        }
    }
}

/// The `alertmanager:` section: Alertmanager's own format, inline or as `file: path` (relative
/// to the config file). Inline, the section's lines are handed to the Alertmanager parser at
/// their original line numbers, so errors point into tocsin.yml. Absent: one receiver without
/// integrations (alerts are kept and shown, nothing is sent).
pub fn alertmanager_config(
    section: Option<&serde_norway::Value>,
    source: &str,
    file: &str,
) -> Result<tocsin_alerts::AmConfig, String> {
    let Some(v) = section else {
        return Ok(tocsin_alerts::AmConfig::default());
    };
    if let serde_norway::Value::Mapping(m) = v {
        if m.len() == 1 {
            if let Some(p) = m.get("file").and_then(|p| p.as_str()) {
                let base = crate::config_dir(Some(Path::new(file)));
                let path = base.join(p);
                return tocsin_alerts::AmConfig::load_file(&path).map_err(|e| e.to_string());
            }
        }
    }
    if v.is_null() {
        return Ok(tocsin_alerts::AmConfig::default());
    }
    let text = section_text(source, "alertmanager").unwrap_or_else(|| {
        // Flow style or otherwise not found by lines: the value itself, for the status page.
        serde_norway::to_string(v).unwrap_or_default()
    });
    tocsin_alerts::AmConfig::parse_section(source, file, "alertmanager", &text)
        .map_err(|e| e.to_string())
}

/// The body of a top-level block-style section, dedented, preceded by blank lines so line
/// numbers are those of the whole file.
fn section_text(source: &str, key: &str) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let start = lines.iter().position(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .is_some_and(|r| r.trim().is_empty() || r.trim_start().starts_with('#'))
    })?;
    let mut body = Vec::new();
    for l in &lines[start + 1..] {
        let top_level =
            !l.is_empty() && !l.starts_with(' ') && !l.starts_with('\t') && !l.starts_with('#');
        if top_level {
            break;
        }
        body.push(*l);
    }
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()?;
    let mut out = "\n".repeat(start + 1);
    for l in body {
        out.push_str(l.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inline_alertmanager_section_errors_keep_file_lines() {
        let src = "global:\n  scrape_interval: 15s\nalertmanager:\n  route:\n    receiver: nobody\n  receivers:\n    - name: team\n";
        let v: serde_norway::Value = serde_norway::from_str(src).unwrap();
        let e = alertmanager_config(v.get("alertmanager"), src, "tocsin.yml").unwrap_err();
        assert!(e.contains("tocsin.yml:"), "{e}");
        assert!(e.contains("nobody"), "{e}");
        let ok = "alertmanager:\n  route:\n    receiver: team\n  receivers:\n    - name: team\nrule_files: []\n";
        let v: serde_norway::Value = serde_norway::from_str(ok).unwrap();
        let c = alertmanager_config(v.get("alertmanager"), ok, "tocsin.yml").unwrap();
        assert_eq!(c.receivers[0].name, "team");
    }

    #[test]
    fn section_text_keeps_line_numbers() {
        let src = "a: 1\nalertmanager:\n  route:\n    receiver: x\nb: 2\n";
        let t = section_text(src, "alertmanager").unwrap();
        assert_eq!(t, "\n\nroute:\n  receiver: x\n");
    }
}
