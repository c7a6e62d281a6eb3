//! `tocsin.yml`: a superset of `prometheus.yml`. This module owns loading (parse, then validate with
//! file:line in every message), the embedded default, and the `storage:` and `query:` sections
//! (`limits:` and `web:` are typed in `limits.rs`). `global` and
//! `scrape_configs` are typed by the collect crate, as is the optional `graphite:` section;
//! `rule_files`, `alerting` and `rules` are typed in `alerting.rs`; sections later issues will own
//! are accepted as they are.

use std::path::Path;

use serde::Deserialize;
use tocsin_collect::scrape::{GlobalConfig, ScrapeConfig, ScrapeManager};
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
    #[serde(default)]
    pub remote_write: Option<serde_norway::Value>,
    #[serde(default)]
    pub remote_read: Option<serde_norway::Value>,
    #[serde(default)]
    pub alerting: crate::alerting::AlertingConfig,
    #[serde(default)]
    pub rules: crate::alerting::RulesConfig,
    /// The built-in alert manager, in Alertmanager's format (inline or `file:`).
    #[serde(default)]
    pub alertmanager: Option<serde_norway::Value>,
    /// Heartbeats of external jobs (`POST /api/v1/heartbeat/<name>`) that alert when late.
    #[serde(default)]
    pub heartbeats: Vec<tocsin_alerts::heartbeat::HeartbeatConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
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
    /// The text this config was parsed from, for `/api/v1/status/config`.
    #[serde(skip)]
    pub source: String,
    /// The `alertmanager:` section parsed and validated.
    #[serde(skip)]
    pub am: tocsin_alerts::AmConfig,
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
        let inv = |field: &str, message: String| Error::Invalid {
            file: file.to_string(),
            field: format!("query.{field}"),
            message,
        };
        let dur = tocsin_model::duration::parse_duration_ms;
        let timeout = dur(&self.timeout).map_err(|e| inv("timeout", e))?;
        if timeout <= 0 {
            return Err(inv("timeout", "must be positive".into()));
        }
        let lookback = dur(&self.lookback_delta).map_err(|e| inv("lookback_delta", e))?;
        if lookback <= 0 {
            return Err(inv("lookback_delta", "must be positive".into()));
        }
        if self.max_concurrency == 0 {
            return Err(inv("max_concurrency", "must be at least 1".into()));
        }
        if self.max_samples == 0 {
            return Err(inv("max_samples", "must be at least 1".into()));
        }
        Ok(QuerySettings {
            engine: tocsin_promql::EngineOptions {
                lookback_delta: lookback,
                max_samples: self.max_samples,
                timeout: std::time::Duration::from_millis(timeout as u64),
                default_subquery_step: evaluation_interval_ms.max(1),
            },
            max_concurrency: self.max_concurrency,
        })
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
    pub fn load_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            file: path.display().to_string(),
            source: e,
        })?;
        Self::parse(&text, &path.display().to_string())
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

    /// Parses and validates; every message names the file (and line, from the YAML parser).
    pub fn parse(text: &str, file: &str) -> Result<Config, Error> {
        let mut cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_norway::from_str(text).map_err(|e| Error::Parse {
                file: file.to_string(),
                message: e.to_string(),
            })?
        };
        cfg.storage.to_options(file)?;
        cfg.storage.max_future_ms(file)?;
        cfg.query_settings(file)?;
        cfg.limits.silences(file)?;
        cfg.web.settings(file)?;
        cfg.source = text.to_string();
        ScrapeManager::validate(&cfg.global, &cfg.scrape_configs).map_err(|e| Error::Invalid {
            file: file.to_string(),
            field: format!("scrape_configs[{}].{}", e.index, e.field),
            message: format!("job {:?}: {}", e.job, e.message),
        })?;
        cfg.alerting.validate().map_err(|message| Error::Parse {
            file: file.to_string(),
            message,
        })?;
        cfg.am = crate::alerting::alertmanager_config(cfg.alertmanager.as_ref(), text, file)
            .map_err(|message| Error::Parse {
                file: file.to_string(),
                message,
            })?;
        tocsin_alerts::heartbeat::Heartbeats::new()
            .configure(&cfg.heartbeats, 0)
            .map_err(|e| Error::Parse {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        if let Some(g) = &cfg.graphite {
            g.validate().map_err(|message| Error::Parse {
                file: file.to_string(),
                message,
            })?;
        }
        Ok(cfg)
    }
}

impl Config {
    /// The resolved `query:` section.
    pub fn query_settings(&self, file: &str) -> Result<QuerySettings, Error> {
        self.query
            .to_settings(file, self.global.evaluation_interval.0)
    }
}

impl StorageConfig {
    /// `max_future` in milliseconds (0 = no bound).
    pub fn max_future_ms(&self, file: &str) -> Result<i64, Error> {
        let inv = |message: String| Error::Invalid {
            file: file.to_string(),
            field: "storage.max_future".into(),
            message,
        };
        let ms = tocsin_model::duration::parse_duration_ms(&self.max_future).map_err(inv)?;
        if ms < 0 {
            return Err(inv("must not be negative".into()));
        }
        Ok(ms)
    }

    pub fn to_options(&self, file: &str) -> Result<DbOptions, Error> {
        let inv = |field: &str, message: String| Error::Invalid {
            file: file.to_string(),
            field: format!("storage.{field}"),
            message,
        };
        let dur = tocsin_model::duration::parse_duration_ms;
        let size = tocsin_model::duration::parse_size;
        let block_range_ms = dur(&self.block_range).map_err(|e| inv("block_range", e))?;
        if block_range_ms < 60_000 {
            return Err(inv("block_range", "must be at least 1m".into()));
        }
        let retention_bytes = if self.retention_size.is_empty() {
            0
        } else {
            size(&self.retention_size).map_err(|e| inv("retention_size", e))?
        };
        let wal_segment_size =
            size(&self.wal_segment_size).map_err(|e| inv("wal_segment_size", e))?;
        if wal_segment_size < 64 << 10 {
            return Err(inv("wal_segment_size", "must be at least 64KB".into()));
        }
        let o = DbOptions {
            block_range_ms,
            retention_ms: dur(&self.retention_time).map_err(|e| inv("retention_time", e))?,
            retention_bytes,
            ooo_window_ms: dur(&self.out_of_order_time_window)
                .map_err(|e| inv("out_of_order_time_window", e))?,
            wal_segment_size,
            ..DbOptions::default()
        };
        Ok(o)
    }
}

#[cfg(test)]
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
        assert!(
            e.contains("t.yml") && e.contains("bogus") && e.contains("line 3"),
            "{e}"
        );
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
    fn prometheus_sections_accepted() {
        let c = Config::parse(
            "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: x\n",
            "p.yml",
        );
        assert!(c.is_ok());
    }
}
