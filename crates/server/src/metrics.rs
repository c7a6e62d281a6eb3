//! The server's own metrics at `/metrics`, read from the components' counters at scrape time.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tocsin_api::{PushMetrics, WriteMetrics};
use tocsin_collect::scrape::ScrapeMetrics;
use tocsin_tsdb::Db;

#[derive(Debug)]
pub struct Sources {
    pub db: Arc<OnceLock<Db>>,
    pub write: Arc<WriteMetrics>,
    pub push: Arc<PushMetrics>,
    pub scrape: Arc<ScrapeMetrics>,
    pub reload: Arc<ReloadMetrics>,
    pub rules: Arc<tocsin_rules::RuleManager>,
    pub sender: Arc<tocsin_rules::sender::AlertmanagerSender>,
    pub am: Arc<crate::am::AmRuntime>,
    pub server: Arc<ServerMetrics>,
    /// For the free-space gauges of the file system holding it.
    pub data_dir: std::path::PathBuf,
    pub guard: Arc<tocsin_api::guard::GuardMetrics>,
    pub actions: Arc<tocsin_actions::Engine>,
    /// The last run of the server's own lint (`lint:`).
    pub lint: Arc<crate::lint_run::LintState>,
    pub remote: Arc<tocsin_remote::RemoteWrite>,
}

/// The HTTP listener and start-up, for `tocsin_http_connections*` and
/// `tocsin_state_db_corruptions_total`.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub state_db_corruptions: std::sync::atomic::AtomicU64,
    pub connections_open: std::sync::atomic::AtomicU64,
    pub connections_accepted: std::sync::atomic::AtomicU64,
    pub connections_refused: std::sync::atomic::AtomicU64,
    /// Failed logins, indexed by `web::auth::Failure`.
    pub auth_failures: [std::sync::atomic::AtomicU64; 4],
}

/// Outcome of config reloads, for `tocsin_config_last_reload_successful` and friends.
#[derive(Debug, Default)]
pub struct ReloadMetrics {
    pub last_ok: std::sync::atomic::AtomicBool,
    pub last_success_unix: std::sync::atomic::AtomicI64,
    pub failures: std::sync::atomic::AtomicU64,
}

pub(crate) fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    let me = e.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(me)
}

pub(crate) fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    let me = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(me)
}

fn counter_family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    vals: &[(&str, f64)],
) -> Result<(), std::fmt::Error> {
    let mut me = e.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (lv, v) in vals {
        let labels = [(label.to_string(), lv.to_string())];
        let fe = me.encode_family(&labels)?;
        ConstCounter::new(*v).encode(fe)?;
    }
    Ok(())
}

/// A family whose samples each carry several labels.
pub(crate) fn family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: prometheus_client::metrics::MetricType,
    vals: &[(Vec<(String, String)>, f64)],
) -> Result<(), std::fmt::Error> {
    if vals.is_empty() {
        return Ok(());
    }
    let mut me = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in vals {
        let fe = me.encode_family(labels)?;
        match kind {
            prometheus_client::metrics::MetricType::Counter => ConstCounter::new(*v).encode(fe)?,
            _ => ConstGauge::new(*v).encode(fe)?,
        }
    }
    Ok(())
}

impl Sources {
    /// Rule group and Alertmanager-sender metrics, under Prometheus's names with our prefix.
    fn encode_rules(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType::{Counter, Gauge};
        let groups = self.rules.groups();
        let per =
            |f: &dyn Fn(&tocsin_rules::GroupSnapshot) -> f64| -> Vec<(Vec<(String, String)>, f64)> {
                groups
                    .iter()
                    .map(|g| {
                        (
                            vec![("rule_group".to_string(), format!("{};{}", g.file, g.name))],
                            f(g),
                        )
                    })
                    .collect()
            };
        family(
            e,
            "tocsin_rule_group_iterations",
            "Scheduled evaluations of rule groups.",
            Counter,
            &per(&|g| g.iterations as f64),
        )?;
        family(
            e,
            "tocsin_rule_group_iterations_missed",
            "Evaluations skipped because the previous one was still running past the interval.",
            Counter,
            &per(&|g| g.missed as f64),
        )?;
        family(
            e,
            "tocsin_rule_evaluations",
            "Rule evaluations.",
            Counter,
            &per(&|g| g.evaluations as f64),
        )?;
        family(
            e,
            "tocsin_rule_evaluation_failures",
            "Rule evaluations that failed.",
            Counter,
            &per(&|g| g.failures as f64),
        )?;
        family(
            e,
            "tocsin_rule_group_last_duration_seconds",
            "Duration of the last evaluation of the group.",
            Gauge,
            &per(&|g| g.eval_seconds),
        )?;
        family(
            e,
            "tocsin_rule_group_interval_seconds",
            "Interval of the group.",
            Gauge,
            &per(&|g| g.interval_ms as f64 / 1000.0),
        )?;
        family(
            e,
            "tocsin_rule_group_last_evaluation_timestamp_seconds",
            "When the group was last evaluated.",
            Gauge,
            &per(&|g| g.last_eval_ms as f64 / 1000.0),
        )?;
        family(
            e,
            "tocsin_rule_group_rules",
            "Rules in the group.",
            Gauge,
            &per(&|g| g.rules.len() as f64),
        )?;
        // A group whose last evaluation took longer than its interval is slow even before it
        // misses an iteration.
        family(
            e,
            "tocsin_rule_group_slow",
            "1 if the last evaluation took longer than the interval.",
            Gauge,
            &per(&|g| f64::from(u8::from(g.eval_seconds * 1000.0 > g.interval_ms as f64))),
        )?;
        let targets = self.sender.metrics.by_target.lock().clone();
        let am = |f: &dyn Fn(&tocsin_rules::sender::TargetCounters) -> u64| -> Vec<(Vec<(String, String)>, f64)> {
            targets
                .iter()
                .map(|(u, c)| (vec![("alertmanager".to_string(), u.clone())], f(c) as f64))
                .collect()
        };
        family(
            e,
            "tocsin_notifications_sent",
            "Alerts sent to external Alertmanagers.",
            Counter,
            &am(&|c| c.sent.load(Ordering::Relaxed)),
        )?;
        family(
            e,
            "tocsin_notifications_errors",
            "Alerts that failed to reach an external Alertmanager.",
            Counter,
            &am(&|c| c.errors.load(Ordering::Relaxed)),
        )?;
        counter(
            e,
            "tocsin_notifications_dropped",
            "Alerts dropped because the send queue was full.",
            self.sender.metrics.dropped.load(Ordering::Relaxed) as f64,
        )?;
        gauge(
            e,
            "tocsin_notifications_queue_length",
            "Alerts waiting to be sent to external Alertmanagers.",
            self.sender.queue_len() as f64,
        )?;
        Ok(())
    }
}

/// Resident memory and CPU time of this process, read from /proc.
fn process_stats() -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no memory effects.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let rss: f64 = f.get(21)?.parse().ok()?;
    let vsize: f64 = f.get(20)?.parse().ok()?;
    Some(((utime + stime) / tck, rss * page, vsize))
}

impl Collector for Sources {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        crate::metrics_compat::encode_prometheus(self, &mut e)?;
        crate::metrics_compat::encode_alertmanager(self, &mut e)?;
        crate::metrics_actions::encode(&self.actions, &mut e)?;
        crate::metrics_lint::encode(&self.lint, &mut e)?;
        crate::metrics_remote::encode(&self.remote, &mut e)?;
        if let Some((avail, size)) = crate::self_monitor::filesystem_bytes(&self.data_dir) {
            let path = vec![("path".to_string(), self.data_dir.display().to_string())];
            family(
                &mut e,
                "tocsin_storage_filesystem_avail_bytes",
                "Bytes available to the server on the file system of its data directory.",
                prometheus_client::metrics::MetricType::Gauge,
                &[(path.clone(), avail as f64)],
            )?;
            family(
                &mut e,
                "tocsin_storage_filesystem_size_bytes",
                "Size of the file system of the data directory.",
                prometheus_client::metrics::MetricType::Gauge,
                &[(path, size as f64)],
            )?;
        }
        let files: Vec<(Vec<(String, String)>, f64)> =
            tocsin_collect::discovery::file_sd_target_counts()
                .into_iter()
                .map(|(f, n)| (vec![("file".to_string(), f)], n as f64))
                .collect();
        family(
            &mut e,
            "tocsin_sd_file_targets",
            "Targets listed in each file that file_sd_configs read, as of its last good read.",
            prometheus_client::metrics::MetricType::Gauge,
            &files,
        )?;
        let b = tocsin_model::build::get();
        family(
            &mut e,
            "tocsin_build_info",
            "Always 1; the labels say what the binary was built from.",
            prometheus_client::metrics::MetricType::Gauge,
            &[(
                vec![
                    ("version".to_string(), b.version),
                    ("revision".to_string(), b.revision),
                    ("branch".to_string(), b.branch),
                    ("build_date".to_string(), b.date),
                ],
                1.0,
            )],
        )?;
        if let Some((cpu, rss, vsize)) = process_stats() {
            counter(
                &mut e,
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                cpu,
            )?;
            gauge(
                &mut e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss,
            )?;
            gauge(
                &mut e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                vsize,
            )?;
        }
        gauge(
            &mut e,
            "tocsin_engine_queries",
            "PromQL queries being parsed or evaluated right now (API, rules and templates).",
            tocsin_promql::running_queries() as f64,
        )?;
        let w = &self.write;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        counter_family(
            &mut e,
            "tocsin_remote_write_requests",
            "Remote-write requests by outcome.",
            "outcome",
            &[
                ("ok", ld(&w.requests_ok)),
                ("bad_request", ld(&w.requests_bad)),
                ("failed", ld(&w.requests_failed)),
            ],
        )?;
        counter(
            &mut e,
            "tocsin_remote_write_samples_received",
            "Samples received over remote write.",
            ld(&w.samples_received),
        )?;
        counter(
            &mut e,
            "tocsin_remote_write_samples_rejected",
            "Remote-write samples refused by storage.",
            ld(&w.samples_rejected),
        )?;
        let sc = &self.scrape;
        counter(
            &mut e,
            "tocsin_scrapes",
            "Scrapes run, failed or not.",
            ld(&sc.scrapes),
        )?;
        counter(
            &mut e,
            "tocsin_scrapes_failed",
            "Scrapes that failed (target down, timeout, bad exposition, limits).",
            ld(&sc.scrapes_failed),
        )?;
        counter(
            &mut e,
            "tocsin_scrape_samples",
            "Samples scraped and kept after metric relabelling.",
            ld(&sc.samples),
        )?;
        counter(
            &mut e,
            "tocsin_scrape_samples_rejected",
            "Scraped samples refused by storage (out of order, duplicate, too old, too far in the future, over a label limit).",
            ld(&sc.samples_rejected),
        )?;
        counter(
            &mut e,
            "tocsin_scrape_stale_markers",
            "Staleness markers written for series that vanished from a target or with it.",
            ld(&sc.stale_markers),
        )?;
        let r = &self.reload;
        gauge(
            &mut e,
            "tocsin_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            if r.last_ok.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        )?;
        gauge(
            &mut e,
            "tocsin_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            r.last_success_unix.load(Ordering::Relaxed) as f64,
        )?;
        counter(
            &mut e,
            "tocsin_config_reload_failures",
            "Configuration reloads that were rejected.",
            ld(&r.failures),
        )?;
        let p = &self.push;
        counter_family(
            &mut e,
            "tocsin_influx_write_requests",
            "InfluxDB line-protocol write requests by outcome.",
            "outcome",
            &[
                ("ok", ld(&p.influx_requests_ok)),
                ("bad_request", ld(&p.influx_requests_bad)),
                ("failed", ld(&p.influx_requests_failed)),
            ],
        )?;
        counter(
            &mut e,
            "tocsin_influx_write_samples_received",
            "Samples received over InfluxDB line protocol.",
            ld(&p.influx_samples_received),
        )?;
        counter(
            &mut e,
            "tocsin_influx_write_samples_rejected",
            "InfluxDB line-protocol samples refused by storage.",
            ld(&p.influx_samples_rejected),
        )?;
        counter(
            &mut e,
            "tocsin_influx_write_lines_rejected",
            "InfluxDB line-protocol lines that could not be parsed or mapped.",
            ld(&p.influx_lines_rejected),
        )?;
        counter(
            &mut e,
            "tocsin_influx_write_string_fields_skipped",
            "String fields skipped in InfluxDB line protocol (they have no numeric value).",
            ld(&p.influx_string_fields_skipped),
        )?;
        counter_family(
            &mut e,
            "tocsin_json_push_requests",
            "JSON push requests by outcome.",
            "outcome",
            &[
                ("ok", ld(&p.json_requests_ok)),
                ("bad_request", ld(&p.json_requests_bad)),
                ("failed", ld(&p.json_requests_failed)),
            ],
        )?;
        counter(
            &mut e,
            "tocsin_json_push_samples_received",
            "Samples received over the JSON push API.",
            ld(&p.json_samples_received),
        )?;
        counter(
            &mut e,
            "tocsin_json_push_samples_rejected",
            "JSON push samples refused by storage.",
            ld(&p.json_samples_rejected),
        )?;
        counter(
            &mut e,
            "tocsin_json_push_series_rejected",
            "JSON push time series refused as invalid.",
            ld(&p.json_series_rejected),
        )?;
        let sv = &self.server;
        counter(
            &mut e,
            "tocsin_state_db_corruptions",
            "Times the alert manager's state.db was found damaged at start-up and set aside.",
            ld(&sv.state_db_corruptions),
        )?;
        gauge(
            &mut e,
            "tocsin_http_connections",
            "HTTP connections open now.",
            ld(&sv.connections_open),
        )?;
        counter(
            &mut e,
            "tocsin_http_connections_accepted",
            "HTTP connections accepted and served.",
            ld(&sv.connections_accepted),
        )?;
        counter(
            &mut e,
            "tocsin_http_connections_refused",
            "HTTP connections closed at once because web.max_connections were open.",
            ld(&sv.connections_refused),
        )?;
        let g = &self.guard;
        counter_family(
            &mut e,
            "tocsin_http_requests_refused",
            "HTTP requests refused before any handler: Host not in web.allowed_hosts, \
             cross-origin state change, body over web.max_body_size.",
            "reason",
            &[
                ("host", ld(&g.host)),
                ("origin", ld(&g.origin)),
                ("body_size", ld(&g.body_size)),
            ],
        )?;
        let fails: Vec<(&str, f64)> = crate::web::auth::Failure::ALL
            .iter()
            .map(|f| (f.as_str(), ld(&sv.auth_failures[*f as usize])))
            .collect();
        counter_family(
            &mut e,
            "tocsin_http_auth_failures",
            "Requests refused for wrong credentials (web config file), by reason.",
            "reason",
            &fails,
        )?;
        let Some(db) = self.db.get() else {
            return Ok(());
        };
        let m = db.metrics();
        let s = db.stats();
        counter(
            &mut e,
            "tocsin_tsdb_head_samples_appended",
            "Samples appended to the head.",
            ld(&m.samples_appended),
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_head_series",
            "Series in the head (active series).",
            s.head_series as f64,
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_head_series_created",
            "Series created in the head.",
            s.series_created as f64,
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_head_series_removed",
            "Series removed from the head.",
            s.series_removed as f64,
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_head_min_time",
            "Oldest sample time in the head (Unix ms, as Prometheus).",
            s.head_min_time as f64,
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_head_max_time",
            "Newest sample time in the head (Unix ms, as Prometheus).",
            s.head_max_time as f64,
        )?;
        counter_family(
            &mut e,
            "tocsin_tsdb_samples_rejected",
            "Samples refused by storage, by reason.",
            "reason",
            &[
                ("out_of_order", ld(&m.rejected_out_of_order)),
                ("too_old", ld(&m.rejected_too_old)),
                ("duplicate", ld(&m.rejected_duplicate)),
            ],
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_wal_bytes",
            "Bytes of WAL segments and checkpoint on disk.",
            s.wal_bytes as f64,
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_wal_segments",
            "WAL segment files on disk.",
            s.wal_segments as f64,
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_wal_replay_duration_seconds",
            "Time the last WAL replay took.",
            ld(&m.wal_replay_micros) / 1e6,
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_wal_corruptions",
            "WAL tails found damaged and cut off at start-up.",
            ld(&m.wal_corruptions),
        )?;
        let corruptions: Vec<(&str, f64)> = m
            .corruptions()
            .into_iter()
            .map(|(k, v)| (k, v as f64))
            .collect();
        counter_family(
            &mut e,
            "tocsin_tsdb_corruptions",
            "Damage found in blocks and the WAL (at open, while reading or compacting), by kind.",
            "kind",
            &corruptions,
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_wal_unknown_series_samples",
            "WAL samples dropped at replay because the record defining their series was damaged.",
            ld(&m.wal_unknown_series_samples),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_blocks_quarantined",
            "Damaged blocks moved into the quarantine folder since start.",
            ld(&m.blocks_quarantined),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_compactions",
            "Block compactions completed.",
            ld(&m.compactions),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_compactions_failed",
            "Block compactions that failed.",
            ld(&m.compactions_failed),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_compaction_duration_seconds",
            "Total time spent compacting blocks.",
            ld(&m.compaction_micros) / 1e6,
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_head_truncations",
            "Head ranges persisted to blocks.",
            ld(&m.head_cuts),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_head_truncations_failed",
            "Head ranges whose block could not be written (e.g. disk full); kept in the head and retried.",
            ld(&m.head_cuts_failed),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_checkpoint_creations_failed",
            "WAL checkpoints that failed; the old checkpoint and segments are kept and it is retried.",
            ld(&m.checkpoints_failed),
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_head_chunk_spill_failures",
            "Closed head chunks that could not be written to chunks_head/ and stayed in memory.",
            s.head_chunk_spill_failures as f64,
        )?;
        counter(
            &mut e,
            "tocsin_tsdb_blocks_deleted_by_retention",
            "Blocks deleted by time or size retention.",
            ld(&m.blocks_deleted_retention),
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_blocks",
            "Blocks on disk.",
            s.blocks as f64,
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_blocks_bytes",
            "Bytes of all blocks on disk.",
            s.block_bytes as f64,
        )?;
        gauge(
            &mut e,
            "tocsin_tsdb_blocks_samples",
            "Samples held in blocks.",
            s.block_samples as f64,
        )?;
        self.encode_rules(&mut e)?;
        Ok(())
    }
}

pub fn registry(src: Sources) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(src));
    r
}
