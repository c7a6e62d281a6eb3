//! Read views the server implements for the status endpoints, so the API never holds the database,
//! the config loader or the process state themselves.

use std::collections::BTreeMap;

/// `headStats` of `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStatus {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    /// ms; `i64::MAX` / `i64::MIN` when the head is empty, as Prometheus reports it.
    pub min_time: i64,
    pub max_time: i64,
}

/// `/api/v1/status/tsdb`: head statistics and the top entries of each cardinality list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsdbStatus {
    pub head: HeadStatus,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
    /// Series created by appends per wall-clock hour, the last 24 hours, oldest first: (hour
    /// start, Unix ms; count).
    pub series_created_per_hour: Vec<(i64, u64)>,
}

pub trait TsdbStatsView: Send + Sync {
    /// At most `limit` entries per list. Unavailable while storage is not ready.
    fn tsdb_status(&self, limit: usize) -> tocsin_storage::Result<TsdbStatus>;
}

/// `/api/v1/status/runtimeinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// Unix ms.
    pub start_time_ms: i64,
    pub cwd: String,
    pub reload_config_success: bool,
    /// Unix seconds of the last successful (re)load.
    pub last_config_time: i64,
    pub corruption_count: u64,
    /// Worker threads (Prometheus reports goroutines and GOMAXPROCS; the closest things here).
    pub threads: u64,
    pub storage_retention: String,
}

/// Process and configuration state for the status endpoints and federation.
pub trait StatusView: Send + Sync {
    /// The configuration file as loaded (the running one, after reloads).
    fn config_yaml(&self) -> String;
    /// Command-line flags and the settings Prometheus exposes as flags, by name.
    fn flags(&self) -> BTreeMap<String, String>;
    fn runtime_info(&self) -> RuntimeInfo;
    /// `global.external_labels`, added to federated series that lack them.
    fn external_labels(&self) -> Vec<(String, String)>;
}

/// Empty views for tests and for servers without storage.
pub struct NoStatus;

impl StatusView for NoStatus {
    fn config_yaml(&self) -> String {
        String::new()
    }
    fn flags(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
    fn runtime_info(&self) -> RuntimeInfo {
        RuntimeInfo::default()
    }
    fn external_labels(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl TsdbStatsView for NoStatus {
    fn tsdb_status(&self, _limit: usize) -> tocsin_storage::Result<TsdbStatus> {
        Ok(TsdbStatus {
            head: HeadStatus {
                min_time: i64::MAX,
                max_time: i64::MIN,
                ..HeadStatus::default()
            },
            ..TsdbStatus::default()
        })
    }
}
