//! `tocsin.yml`: a superset of `prometheus.yml`. This module owns loading (parse, then validate with
//! file:line:col in every message, every problem at once; the checks are in `config_check.rs`),
//! the embedded default, and the `storage:` and `query:` sections (`limits:` and `web:` are typed
//! in `limits.rs`). `global` and `scrape_configs` are typed by the collect crate, as is the
//! optional `graphite:` section; `rule_files`, `alerting` and `rules` are typed in `alerting.rs`;
//! `pubsub_push` in `pubsub_push.rs`.
//! `remote_write` is typed by the remote crate, `remote_read` by the collect crate
//! (`tocsin_collect::remote_read`).

use std::path::Path;

use serde::Deserialize;
use tocsin_collect::scrape::{GlobalConfig, ScrapeConfig};
use tocsin_confdiag::{Diagnostics, Doc};
use tocsin_tsdb::DbOptions;

/// The configuration used when no `--config` is given. `$TOCSIN_SELF` becomes the address the
/// server listens on, so the default scrapes tocsin's own `/metrics` whatever `--listen` says.
pub const DEFAULT_CONFIG: &str = include_str!("default.yml");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    /// Every problem of a file, one per line.
    #[error("{0}")]
    Diagnostics(Diagnostics),
    #[error("reading {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Globs of rule files, relative to the config file's directory.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Queues forwarding the WAL's samples to remote-write receivers (`null` = none).
    #[serde(default)]
    pub remote_write: Option<Vec<tocsin_remote::RemoteWriteConfig>>,
    /// Remote Prometheus-API sources merged into queries (`remote_read:` of prometheus.yml).
    #[serde(
        default,
        deserialize_with = "tocsin_collect::remote_read::config::de_list"
    )]
    pub remote_read: Vec<tocsin_collect::remote_read::RemoteReadConfig>,
    #[serde(default)]
    pub alerting: crate::alerting::AlertingConfig,
    #[serde(default)]
    pub rules: crate::alerting::RulesConfig,
    /// The built-in alert manager, in Alertmanager's format (inline or `file:`).
    #[serde(default)]
    pub alertmanager: Option<serde_norway::Value>,
    /// Remediation policies, reached through receivers' `action_configs`.
    #[serde(default)]
    pub actions: tocsin_actions::ActionsConfig,
    /// Heartbeats of external jobs (`POST /api/v1/heartbeat/<name>`) that alert when late.
    #[serde(default)]
    pub heartbeats: Vec<tocsin_alerts::heartbeat::HeartbeatConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    /// The Cloud Monitoring intake (`POST /api/v1/pubsub/push`): OIDC verification of pushes.
    #[serde(default)]
    pub pubsub_push: crate::pubsub_push::PubsubPushConfig,
    /// Graphite plaintext listener; absent = disabled.
    #[serde(default)]
    pub graphite: Option<tocsin_collect::graphite::GraphiteConfig>,
    #[serde(default)]
    pub query: QueryConfig,
    /// Sizes of what clients may send (labels of a series, silences).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// The HTTP listener: connection cap and timeouts.
    #[serde(default)]
    pub web: crate::limits::WebConfig,
    /// The server's own metrics written to its storage and the embedded alert rules on them.
    #[serde(default)]
    pub self_monitoring: crate::self_monitor::SelfMonitorConfig,
    /// `lint:`: the server runs `tocsin lint` every `interval` and exports the failures.
    #[serde(default)]
    pub lint: Option<tocsin_lint::settings::LintConfig>,
    /// `ha:`: this server is one of several replicas sharing alert state in PostgreSQL.
    #[serde(default)]
    pub ha: Option<tocsin_alerts::ha::HaConfig>,
    /// The text this config was parsed from, for `/api/v1/status/config`.
    #[serde(skip)]
    pub source: String,
    /// The `alertmanager:` section parsed and validated.
    #[serde(skip)]
    pub am: tocsin_alerts::AmConfig,
    /// Things that load but deserve a word (a `rule_files` glob matching nothing).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The `query:` section: limits of the PromQL engine and the query API. Prometheus has these as
/// `--query.*` flags; here they live in the file with the rest of the settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Longest a query may take, queueing included; a request's `timeout` can only lower it.
    pub timeout: String,
    /// Most samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Queries evaluated at once; more wait in a queue.
    pub max_concurrency: usize,
    /// How far back an instant selector (and federation) looks for a sample.
    pub lookback_delta: String,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            timeout: "2m".into(),
            max_samples: 50_000_000,
            max_concurrency: 20,
            lookback_delta: "5m".into(),
        }
    }
}

/// The query section resolved: engine options and the concurrency limit.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    pub engine: tocsin_promql::EngineOptions,
    pub max_concurrency: usize,
}

impl QueryConfig {
    /// `evaluation_interval_ms` (from `global`) is the step of subqueries written without one.
    pub fn to_settings(
        &self,
        file: &str,
        evaluation_interval_ms: i64,
    ) -> Result<QuerySettings, Error> {
        let mut p = Problems::new();
        let q = self.settings(evaluation_interval_ms, &mut p);
        if p.is_empty() {
            Ok(q)
        } else {
            Err(first(file, p))
        }
    }

    /// The settings, with every bad field pushed to `p`.
    pub fn settings(&self, evaluation_interval_ms: i64, p: &mut Problems) -> QuerySettings {
        let d = QueryConfig::default();
        let mut positive = |field: &str, s: &str, fallback: &str| {
            let parsed = tocsin_model::duration::parse_duration_ms(s).and_then(|ms| {
                if ms <= 0 {
                    Err("must be positive".to_string())
                } else {
                    Ok(ms)
                }
            });
            parsed.unwrap_or_else(|e| {
                p.push((format!("query.{field}"), e));
                tocsin_model::duration::parse_duration_ms(fallback).unwrap_or(1)
            })
        };
        let timeout = positive("timeout", &self.timeout, &d.timeout);
        let lookback = positive("lookback_delta", &self.lookback_delta, &d.lookback_delta);
        if self.max_concurrency == 0 {
            p.push(("query.max_concurrency".into(), "must be at least 1".into()));
        }
        if self.max_samples == 0 {
            p.push(("query.max_samples".into(), "must be at least 1".into()));
        }
        QuerySettings {
            engine: tocsin_promql::EngineOptions {
                lookback_delta: lookback,
                max_samples: self.max_samples.max(1),
                timeout: std::time::Duration::from_millis(timeout as u64),
                default_subquery_step: evaluation_interval_ms.max(1),
            },
            max_concurrency: self.max_concurrency.max(1),
        }
    }
}

/// The `storage:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Span of head data per block, e.g. `2h`.
    pub block_range: String,
    /// Time retention, e.g. `15d`.
    pub retention_time: String,
    /// Size retention over blocks and WAL, e.g. `50GB`; empty = none.
    pub retention_size: String,
    /// Out-of-order acceptance window, e.g. `10m`; `0s` = off (Prometheus's default).
    pub out_of_order_time_window: String,
    /// WAL segment size, e.g. `128MB`.
    pub wal_segment_size: String,
    /// Samples further than this ahead of the server's clock are refused, e.g. `10m`; `0s` = no
    /// bound.
    pub max_future: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            block_range: "2h".into(),
            retention_time: "15d".into(),
            retention_size: String::new(),
            out_of_order_time_window: "0s".into(),
            wal_segment_size: "128MB".into(),
            max_future: "10m".into(),
        }
    }
}

impl Config {
    /// Reads, parses and checks a config file and the files it names (rule files, certificates,
    /// receivers' files); every problem is in the error, one per line.
    pub fn load_file(path: &Path) -> Result<Config, Error> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            file: name.clone(),
            source: e,
        })?;
        let base = crate::config_dir(Some(path));
        Self::parse_in(&text, &name, Some(&base))
    }

    pub fn load_default() -> Result<Config, Error> {
        Self::load_default_for("localhost:9090")
    }

    /// The embedded default with its self-scrape target pointing at `self_addr`.
    pub fn load_default_for(self_addr: &str) -> Result<Config, Error> {
        Self::parse(
            &DEFAULT_CONFIG.replace("$TOCSIN_SELF", self_addr),
            "<embedded default config>",
        )
    }

    /// Logs what loaded but deserves a word.
    pub fn log_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
    }

    /// Parses and checks text alone (no file it names is read); every problem is in the error,
    /// each as `file:line:col: path: message`.
    pub fn parse(text: &str, file: &str) -> Result<Config, Error> {
        Self::parse_in(text, file, None)
    }

    fn parse_in(text: &str, file: &str, base: Option<&Path>) -> Result<Config, Error> {
        let mut doc = Doc::parse(text, file).map_err(Error::Diagnostics)?;
        let mut errs = Vec::new();
        let mut cfg: Config = doc.take("", &mut errs).unwrap_or_default();
        cfg.source = text.to_string();
        crate::config_check::sections(&mut cfg, &doc, &mut errs);
        if let Some(base) = base {
            let mut warnings = Vec::new();
            crate::config_check::files(&cfg, &doc, base, &mut errs, &mut warnings);
            cfg.warnings = warnings;
        }
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(Error::Diagnostics(Diagnostics(errs).sorted()))
        }
    }
}

impl Config {
    /// The `remote_write:` entries (none when the section is absent or null).
    pub fn remote_write(&self) -> &[tocsin_remote::RemoteWriteConfig] {
        self.remote_write.as_deref().unwrap_or(&[])
    }

    /// `global.external_labels` as a label set (added to what remote write sends).
    pub fn external_labels(&self) -> tocsin_model::Labels {
        tocsin_model::Labels::from_pairs(
            &self
                .global
                .external_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
    }

    /// The resolved `query:` section.
    pub fn query_settings(&self, file: &str) -> Result<QuerySettings, Error> {
        self.query
            .to_settings(file, self.global.evaluation_interval.0)
    }
}

/// Problems found in a section: (path of the field, message), all of them, not only the first.
pub type Problems = Vec<(String, String)>;

/// The first problem as this module's error (for callers that only need to know it failed).
fn first(file: &str, p: Problems) -> Error {
    let (field, message) = p.into_iter().next().unwrap_or_default();
    Error::Invalid {
        file: file.to_string(),
        field,
        message,
    }
}

impl StorageConfig {
    /// `max_future` in milliseconds (0 = no bound).
    pub fn max_future_ms(&self, file: &str) -> Result<i64, Error> {
        let mut p = Problems::new();
        let ms = self.max_future_checked(&mut p);
        if p.is_empty() {
            Ok(ms)
        } else {
            Err(first(file, p))
        }
    }

    pub fn max_future_checked(&self, p: &mut Problems) -> i64 {
        let field = "storage.max_future".to_string();
        match tocsin_model::duration::parse_duration_ms(&self.max_future) {
            Ok(ms) if ms < 0 => {
                p.push((field, "must not be negative".into()));
                0
            }
            Ok(ms) => ms,
            Err(e) => {
                p.push((field, e));
                0
            }
        }
    }

    pub fn to_options(&self, file: &str) -> Result<DbOptions, Error> {
        let mut p = Problems::new();
        let o = self.options(&mut p);
        if p.is_empty() {
            Ok(o)
        } else {
            Err(first(file, p))
        }
    }

    /// The options, with every bad field pushed to `p` (and its default used in its place).
    pub fn options(&self, p: &mut Problems) -> DbOptions {
        let d = DbOptions::default();
        let mut bad = |field: &str, message: String| p.push((format!("storage.{field}"), message));
        let dur = |field: &str, s: &str, bad: &mut dyn FnMut(&str, String)| {
            tocsin_model::duration::parse_duration_ms(s)
                .map_err(|e| bad(field, e))
                .ok()
        };
        let size = |field: &str, s: &str, bad: &mut dyn FnMut(&str, String)| {
            tocsin_model::duration::parse_size(s)
                .map_err(|e| bad(field, e))
                .ok()
        };
        let block_range_ms = dur("block_range", &self.block_range, &mut bad);
        if block_range_ms.is_some_and(|ms| ms < 60_000) {
            bad("block_range", "must be at least 1m".into());
        }
        let retention_bytes = if self.retention_size.is_empty() {
            Some(0)
        } else {
            size("retention_size", &self.retention_size, &mut bad)
        };
        let wal_segment_size = size("wal_segment_size", &self.wal_segment_size, &mut bad);
        if wal_segment_size.is_some_and(|s| s < 64 << 10) {
            bad("wal_segment_size", "must be at least 64KB".into());
        }
        let retention_ms = dur("retention_time", &self.retention_time, &mut bad);
        let ooo_window_ms = dur(
            "out_of_order_time_window",
            &self.out_of_order_time_window,
            &mut bad,
        );
        DbOptions {
            block_range_ms: block_range_ms.unwrap_or(d.block_range_ms),
            retention_ms: retention_ms.unwrap_or(d.retention_ms),
            retention_bytes: retention_bytes.unwrap_or(d.retention_bytes),
            ooo_window_ms: ooo_window_ms.unwrap_or(d.ooo_window_ms),
            wal_segment_size: wal_segment_size.unwrap_or(d.wal_segment_size),
            ..d
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn default_config_loads() {
        let c = Config::load_default().unwrap();
        let o = c.storage.to_options("x").unwrap();
        assert_eq!(o.block_range_ms, 2 * 3_600_000);
        assert_eq!(o.retention_ms, 15 * 24 * 3_600_000);
    }

    #[test]
    fn unknown_field_names_file_and_line() {
        let e = Config::parse("storage:\n  block_range: 2h\n  bogus: 1\n", "t.yml")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "t.yml:3:3: storage.bogus: unknown field `bogus`");
    }

    #[test]
    fn bad_duration_names_field() {
        let e = Config::parse("storage:\n  retention_time: 15x\n", "t.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.retention_time"), "{e}");
    }

    #[test]
    fn graphite_section_is_optional_and_checked() {
        assert!(Config::load_default().unwrap().graphite.is_none());
        let c = Config::parse(
            "graphite:\n  listen: 127.0.0.1:2003\n  mappings:\n    - match: servers.*.cpu.*\n      name: server_cpu_${2}\n      labels: { host: \"${1}\" }\n",
            "g.yml",
        )
        .unwrap();
        let g = c.graphite.unwrap();
        assert_eq!(g.listen, "127.0.0.1:2003");
        assert_eq!(g.mappings[0].name, "server_cpu_${2}");
        let e = Config::parse(
            "graphite:\n  listen: x\n  mappings:\n    - match: a.*\n      name: b_${3}\n",
            "g.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("g.yml") && e.contains("graphite.mappings[0].name"),
            "{e}"
        );
        let e = Config::parse("graphite:\n  listen: x\n  bogus: 1\n", "g.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn query_section_defaults_and_checks() {
        let c = Config::load_default().unwrap();
        let q = c.query_settings("x").unwrap();
        assert_eq!(q.engine.timeout, std::time::Duration::from_secs(120));
        assert_eq!(q.engine.lookback_delta, 300_000);
        assert_eq!(q.engine.max_samples, 50_000_000);
        assert_eq!(q.engine.default_subquery_step, 15_000);
        assert_eq!(q.max_concurrency, 20);
        assert!(c.source.contains("scrape_configs"));
        let c = Config::parse(
            "query:\n  timeout: 30s\n  max_concurrency: 2\n  lookback_delta: 1m\n  max_samples: 1000\n",
            "q.yml",
        )
        .unwrap();
        let q = c.query_settings("q.yml").unwrap();
        assert_eq!(q.engine.timeout, std::time::Duration::from_secs(30));
        assert_eq!((q.max_concurrency, q.engine.lookback_delta), (2, 60_000));
        let e = Config::parse("query:\n  timeout: 0s\n", "q.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("query.timeout"), "{e}");
        let e = Config::parse("query:\n  max_concurrency: 0\n", "q.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("query.max_concurrency"), "{e}");
        let e = Config::parse("query:\n  bogus: 1\n", "q.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn every_error_of_a_file_in_one_run_with_suggestions() {
        let text = "global:\n  scrape_interval: 15s\nstorage:\n  retention_time: 15x\n  block_range: 1s\nscrape_configs:\n  - job_name: a\n    scrape_intervl: 5s\n  - job_name: b\n    scrape_timeout: 1m\n    scrape_interval: 10s\nremote_write:\n  - url: http://x/\n    sigv4: {region: r}\n";
        let e = Config::parse(text, "t.yml").unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines,
            vec![
                "t.yml:4:19: storage.retention_time: invalid duration \"15x\": unknown unit \"x\" (use ms, s, m, h, d, w, y)",
                "t.yml:5:16: storage.block_range: must be at least 1m",
                "t.yml:8:5: scrape_configs[0].scrape_intervl: unknown field `scrape_intervl`, did you mean `scrape_interval`?",
                "t.yml:10:21: scrape_configs[1].scrape_timeout: scrape timeout 60000ms is greater than the scrape interval 10000ms",
                "t.yml:14:5: remote_write[0].sigv4: AWS SigV4 signing is not implemented yet; remove it",
            ],
            "{e}"
        );
    }

    #[test]
    fn rule_files_missing_literal_fails_empty_glob_warns() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("tocsin.yml");
        std::fs::write(&cfg, "rule_files:\n  - missing.yml\n  - rules/*.yml\n").unwrap();
        let e = Config::load_file(&cfg).unwrap_err().to_string();
        assert!(
            e.ends_with(":2:5: rule_files[0]: rule file \"missing.yml\" does not exist"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        std::fs::write(&cfg, "rule_files:\n  - rules/*.yml\n").unwrap();
        let c = Config::load_file(&cfg).unwrap();
        assert_eq!(
            c.warnings,
            vec!["rule_files[0]: \"rules/*.yml\" matches no file"]
        );
        // The rule files named are checked too, their errors in the same list.
        std::fs::create_dir(dir.path().join("rules")).unwrap();
        std::fs::write(
            dir.path().join("rules/a.yml"),
            "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n",
        )
        .unwrap();
        let e = Config::load_file(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("a.yml:5:15: group \"g\", rule 1, \"x\": could not parse expression"),
            "{e}"
        );
    }

    #[test]
    fn prometheus_sections_accepted() {
        let c = Config::parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: x\n",
            "p.yml",
        );
        assert!(c.is_ok());
    }
}
