//! What the status endpoints show: the rule groups and Alertmanagers (`RulesView`), the process
//! and configuration (`StatusView`: config, flags, runtime information, external labels).

use std::sync::{Arc, OnceLock};

use tocsin_api::prom::{RuntimeInfo, StatusView};
use tocsin_tsdb::Db;

use crate::{am_targets, config, redact, Config, Reloader, ServerOptions};

pub(crate) struct RulesApi(
    pub(crate) Arc<tocsin_rules::RuleManager>,
    pub(crate) Arc<am_targets::AmDiscovery>,
);

impl tocsin_api::RulesView for RulesApi {
    fn rule_groups(&self) -> Vec<tocsin_rules::GroupSnapshot> {
        self.0.groups()
    }

    fn alertmanagers(&self) -> (Vec<String>, Vec<String>) {
        let s = self.1.status();
        (s.active, s.dropped)
    }
}

/// Process and config state for `/api/v1/status/*` and federation.
pub(crate) struct ServerStatus {
    pub(crate) reloader: Arc<Reloader>,
    pub(crate) db: Arc<OnceLock<Db>>,
    pub(crate) flags: std::collections::BTreeMap<String, String>,
    pub(crate) start_ms: i64,
}

impl StatusView for ServerStatus {
    fn config_yaml(&self) -> String {
        redact::redact_yaml(&self.reloader.current.lock().source)
    }

    fn flags(&self) -> std::collections::BTreeMap<String, String> {
        self.flags.clone()
    }

    fn runtime_info(&self) -> RuntimeInfo {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.reloader.metrics;
        let storage = self.reloader.current.lock().storage.clone();
        let mut retention = storage.retention_time;
        if !storage.retention_size.is_empty() {
            retention = format!("{retention} or {}", storage.retention_size);
        }
        RuntimeInfo {
            start_time_ms: self.start_ms,
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            reload_config_success: m.last_ok.load(Relaxed),
            last_config_time: m.last_success_unix.load(Relaxed),
            corruption_count: self
                .db
                .get()
                .map_or(0, |db| db.metrics().corruptions_total()),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            storage_retention: retention,
        }
    }

    fn external_labels(&self) -> Vec<(String, String)> {
        self.reloader
            .current
            .lock()
            .global
            .external_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// `/api/v1/status/flags`: the process flags and the settings Prometheus has as flags, under
/// Prometheus's names so tools that read them find them.
pub(crate) fn flags_map(
    opts: &ServerOptions,
    cfg: &Config,
    q: &config::QuerySettings,
) -> std::collections::BTreeMap<String, String> {
    let mut f = std::collections::BTreeMap::new();
    let mut set = |k: &str, v: String| {
        f.insert(k.to_string(), v);
    };
    set(
        "config.file",
        opts.config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    );
    set("web.listen-address", opts.listen.clone());
    set("storage.tsdb.path", opts.data_dir.display().to_string());
    set(
        "storage.tsdb.retention.time",
        cfg.storage.retention_time.clone(),
    );
    set(
        "storage.tsdb.retention.size",
        cfg.storage.retention_size.clone(),
    );
    set("query.timeout", cfg.query.timeout.clone());
    set("query.lookback-delta", cfg.query.lookback_delta.clone());
    set("query.max-samples", q.engine.max_samples.to_string());
    set("query.max-concurrency", q.max_concurrency.to_string());
    set(
        "maintenance-interval",
        format!("{}s", opts.maintenance_interval.as_secs_f64()),
    );
    set("web.enable-admin-api", opts.enable_admin_api.to_string());
    set("web.enable-lifecycle", opts.enable_lifecycle.to_string());
    set("self-monitoring", opts.self_monitoring.to_string());
    set(
        "web.external-url",
        opts.external_url.clone().unwrap_or_default(),
    );
    f
}
