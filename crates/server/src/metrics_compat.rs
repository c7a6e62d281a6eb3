//! Self-metrics under the names Prometheus and Alertmanager give the same measurements, so the
//! community prometheus-mixin and alertmanager-mixin alerts and dashboards work against Tocsin,
//! and the alert manager's notification metrics (Alertmanager's names and the `tocsin_` ones the
//! README documents). Values come from the same counters as the `tocsin_` metrics; the README
//! table "Prometheus and Alertmanager names" maps one to the other.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge, Histogram};

use crate::metrics::{family, Sources};

type Rows = Vec<(Vec<(String, String)>, f64)>;

fn one(v: f64) -> Rows {
    vec![(Vec::new(), v)]
}

fn lbl(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Prometheus's own metric names (rules, notifier, config, engine, TSDB).
pub fn encode_prometheus(src: &Sources, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let groups = src.rules.groups();
    let per = |f: &dyn Fn(&tocsin_rules::GroupSnapshot) -> f64| -> Rows {
        groups
            .iter()
            .map(|g| {
                (
                    lbl(&[("rule_group", &format!("{};{}", g.file, g.name))]),
                    f(g),
                )
            })
            .collect()
    };
    family(
        e,
        "prometheus_rule_evaluations",
        "The total number of rule evaluations.",
        Counter,
        &per(&|g| g.evaluations as f64),
    )?;
    family(
        e,
        "prometheus_rule_evaluation_failures",
        "The total number of rule evaluation failures.",
        Counter,
        &per(&|g| g.failures as f64),
    )?;
    family(
        e,
        "prometheus_rule_group_iterations",
        "The total number of scheduled rule group evaluations, whether executed or missed.",
        Counter,
        &per(&|g| (g.iterations + g.missed) as f64),
    )?;
    family(
        e,
        "prometheus_rule_group_iterations_missed",
        "The total number of rule group evaluations missed due to slow rule group evaluation.",
        Counter,
        &per(&|g| g.missed as f64),
    )?;
    family(
        e,
        "prometheus_rule_group_last_duration_seconds",
        "The duration of the last rule group evaluation.",
        Gauge,
        &per(&|g| g.eval_seconds),
    )?;
    family(
        e,
        "prometheus_rule_group_interval_seconds",
        "The interval of a rule group.",
        Gauge,
        &per(&|g| g.interval_ms as f64 / 1000.0),
    )?;
    family(
        e,
        "prometheus_rule_group_last_evaluation_timestamp_seconds",
        "The timestamp of the last rule group evaluation in seconds.",
        Gauge,
        &per(&|g| g.last_eval_ms as f64 / 1000.0),
    )?;
    family(
        e,
        "prometheus_rule_group_rules",
        "The number of rules.",
        Gauge,
        &per(&|g| g.rules.len() as f64),
    )?;

    let targets = src.sender.metrics.by_target.lock().clone();
    let am = |f: &dyn Fn(&tocsin_rules::sender::TargetCounters) -> u64| -> Rows {
        targets
            .iter()
            .map(|(u, c)| (lbl(&[("alertmanager", u)]), f(c) as f64))
            .collect()
    };
    family(
        e,
        "prometheus_notifications_sent",
        "Total number of alerts sent.",
        Counter,
        &am(&|c| c.sent.load(Ordering::Relaxed)),
    )?;
    family(
        e,
        "prometheus_notifications_errors",
        "Total number of sent alerts affected by errors.",
        Counter,
        &am(&|c| c.errors.load(Ordering::Relaxed)),
    )?;
    family(
        e,
        "prometheus_notifications_dropped",
        "Total number of alerts dropped due to errors when sending to Alertmanager.",
        Counter,
        &one(src.sender.metrics.dropped.load(Ordering::Relaxed) as f64),
    )?;
    family(
        e,
        "prometheus_notifications_queue_length",
        "The number of alert notifications in the queue.",
        Gauge,
        &one(src.sender.queue_len() as f64),
    )?;
    family(
        e,
        "prometheus_notifications_queue_capacity",
        "The capacity of the alert notifications queue.",
        Gauge,
        &one(src.sender.capacity() as f64),
    )?;
    family(
        e,
        "prometheus_notifications_alertmanagers_discovered",
        "The number of alertmanagers discovered and active.",
        Gauge,
        &one(targets.len() as f64),
    )?;

    let r = &src.reload;
    let ok = f64::from(u8::from(r.last_ok.load(Ordering::Relaxed)));
    let at = r.last_success_unix.load(Ordering::Relaxed) as f64;
    family(
        e,
        "prometheus_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful.",
        Gauge,
        &one(ok),
    )?;
    family(
        e,
        "prometheus_config_last_reload_success_timestamp_seconds",
        "Timestamp of the last successful configuration reload.",
        Gauge,
        &one(at),
    )?;
    family(
        e,
        "prometheus_engine_queries",
        "The current number of queries being executed or waiting.",
        Gauge,
        &one(tocsin_promql::running_queries() as f64),
    )?;
    let sc = &src.scrape;
    family(
        e,
        "prometheus_target_scrapes_sample_out_of_bounds",
        "Total number of samples rejected due to timestamp falling outside of the time bounds.",
        Counter,
        &one(sc.samples_rejected.load(Ordering::Relaxed) as f64),
    )?;

    family(
        e,
        "prometheus_target_scrapes_exceeded_sample_limit",
        "Total number of scrapes that hit the sample limit and were rejected.",
        Counter,
        &one(sc.exceeded_sample_limit.load(Ordering::Relaxed) as f64),
    )?;

    let Some(db) = src.db.get() else {
        return Ok(());
    };
    let m = db.metrics();
    let s = db.stats();
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    family(
        e,
        "prometheus_tsdb_head_series",
        "Total number of series in the head block.",
        Gauge,
        &one(s.head_series as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_head_samples_appended",
        "Total number of appended samples.",
        Counter,
        &[(lbl(&[("type", "float")]), ld(&m.samples_appended))],
    )?;
    family(
        e,
        "prometheus_tsdb_head_series_created",
        "Total number of series created in the head",
        Counter,
        &one(s.series_created as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_head_series_removed",
        "Total number of series removed in the head",
        Counter,
        &one(s.series_removed as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_head_min_time",
        "Minimum time bound of the head block (Unix ms).",
        Gauge,
        &one(s.head_min_time as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_head_max_time",
        "Maximum timestamp of the head block (Unix ms).",
        Gauge,
        &one(s.head_max_time as f64),
    )?;
    let lowest = db
        .blocks()
        .iter()
        .map(|b| b.meta().min_time)
        .chain((s.head_series > 0).then_some(s.head_min_time))
        .min()
        .unwrap_or(0);
    family(
        e,
        "prometheus_tsdb_lowest_timestamp",
        "Lowest timestamp value stored in the database (Unix ms).",
        Gauge,
        &one(lowest as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_wal_corruptions",
        "Total number of WAL corruptions.",
        Counter,
        &one(ld(&m.wal_corruptions)),
    )?;
    family(
        e,
        "prometheus_tsdb_compactions",
        "Total number of compactions that were executed for the partition.",
        Counter,
        &one(ld(&m.compactions)),
    )?;
    family(
        e,
        "prometheus_tsdb_compactions_failed",
        "Total number of compactions that failed for the partition.",
        Counter,
        &one(ld(&m.compactions_failed)),
    )?;
    family(
        e,
        "prometheus_tsdb_head_truncations_failed",
        "Total number of head truncations that failed.",
        Counter,
        &one(ld(&m.head_cuts_failed)),
    )?;
    family(
        e,
        "prometheus_tsdb_checkpoint_creations_failed",
        "Total number of checkpoint creations that failed.",
        Counter,
        &one(ld(&m.checkpoints_failed)),
    )?;
    family(
        e,
        "prometheus_tsdb_blocks_loaded",
        "Number of currently loaded data blocks.",
        Gauge,
        &one(s.blocks as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_storage_blocks_bytes",
        "The number of bytes that are currently used for local storage by all blocks.",
        Gauge,
        &one(s.block_bytes as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_retention_limit_bytes",
        "Max number of bytes to be retained in the tsdb blocks, configured 0 means disabled.",
        Gauge,
        &one(db.options().retention_bytes as f64),
    )?;
    family(
        e,
        "prometheus_tsdb_time_retentions",
        "The number of times that blocks were deleted because the maximum time limit was exceeded.",
        Counter,
        &one(ld(&m.blocks_deleted_retention)),
    )?;
    Ok(())
}

/// The alert manager's metrics: Alertmanager's names, and the `tocsin_alertmanager_*` ones.
pub fn encode_alertmanager(
    src: &Sources,
    e: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let am = &src.am.am;
    let counts = am.notify_metrics().snapshot();
    // By integration (Alertmanager's labels), summed over receivers.
    let mut by_int: std::collections::BTreeMap<
        String,
        (f64, std::collections::BTreeMap<String, f64>),
    > = std::collections::BTreeMap::new();
    let mut latency: std::collections::BTreeMap<String, (Vec<u64>, f64)> =
        std::collections::BTreeMap::new();
    for c in &counts {
        let failed: u64 = c.failed.values().sum();
        let slot = by_int.entry(c.integration.clone()).or_default();
        // Alertmanager counts every attempt in notifications_total, failed or not.
        slot.0 += (c.sent + failed) as f64;
        for (reason, n) in &c.failed {
            *slot.1.entry(reason.clone()).or_default() += *n as f64;
        }
        let l = latency
            .entry(c.integration.clone())
            .or_insert_with(|| (vec![0; c.latency_buckets.len()], 0.0));
        for (acc, n) in l.0.iter_mut().zip(&c.latency_buckets) {
            *acc += n;
        }
        l.1 += c.latency_sum_micros as f64 / 1e6;
    }
    let total: Rows = by_int
        .iter()
        .map(|(i, (n, _))| (lbl(&[("integration", i)]), *n))
        .collect();
    let failed: Rows = by_int
        .iter()
        .flat_map(|(i, (_, f))| {
            f.iter()
                .map(move |(r, n)| (lbl(&[("integration", i), ("reason", r)]), *n))
        })
        .collect();
    let failed_sum: Rows = by_int
        .iter()
        .map(|(i, (_, f))| (lbl(&[("integration", i)]), f.values().sum()))
        .collect();
    family(
        e,
        "alertmanager_notifications",
        "The total number of attempted notifications.",
        Counter,
        &total,
    )?;
    family(
        e,
        "alertmanager_notifications_failed",
        "The total number of failed notifications.",
        Counter,
        &failed,
    )?;
    family(
        e,
        "alertmanager_notification_requests",
        "The total number of attempted notification requests.",
        Counter,
        &total,
    )?;
    family(
        e,
        "alertmanager_notification_requests_failed",
        "The total number of failed notification requests.",
        Counter,
        &failed_sum,
    )?;
    if !latency.is_empty() {
        let mut me = e.encode_descriptor(
            "alertmanager_notification_latency_seconds",
            "The latency of notifications in seconds.",
            None,
            Histogram,
        )?;
        for (integration, (buckets, sum)) in &latency {
            let bounds = tocsin_alerts::notify::LATENCY_BUCKETS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX));
            let pairs: Vec<(f64, u64)> = bounds.zip(buckets.iter().copied()).collect();
            let count = buckets.iter().sum();
            let labels = lbl(&[("integration", integration)]);
            let mut fe = me.encode_family(&labels)?;
            fe.encode_histogram::<Vec<(String, String)>>(*sum, count, &pairs, None)?;
        }
    }
    // The documented Tocsin names keep the receiver.
    family(
        e,
        "tocsin_alertmanager_notifications",
        "Notification attempts by receiver and integration.",
        Counter,
        &counts
            .iter()
            .map(|c| {
                (
                    lbl(&[("receiver", &c.receiver), ("integration", &c.integration)]),
                    (c.sent + c.failed.values().sum::<u64>()) as f64,
                )
            })
            .collect::<Rows>(),
    )?;
    family(
        e,
        "tocsin_alertmanager_notifications_failed",
        "Failed notification attempts by receiver, integration and reason.",
        Counter,
        &counts
            .iter()
            .flat_map(|c| {
                c.failed.iter().map(|(r, n)| {
                    (
                        lbl(&[
                            ("receiver", &c.receiver),
                            ("integration", &c.integration),
                            ("reason", r),
                        ]),
                        *n as f64,
                    )
                })
            })
            .collect::<Rows>(),
    )?;
    let st = am.stats();
    family(
        e,
        "alertmanager_alerts",
        "How many alerts by state.",
        Gauge,
        &[
            (lbl(&[("state", "active")]), st.alerts_active as f64),
            (lbl(&[("state", "suppressed")]), st.alerts_suppressed as f64),
            (
                lbl(&[("state", "unprocessed")]),
                st.alerts_unprocessed as f64,
            ),
        ],
    )?;
    family(
        e,
        "tocsin_alerts_acknowledged",
        "Alerts acknowledged through the API (not lapsed).",
        Gauge,
        &one(st.alerts_acknowledged as f64),
    )?;
    family(
        e,
        "tocsin_alerts_shelved",
        "Alerts shelved through the API (not lapsed).",
        Gauge,
        &one(st.alerts_shelved as f64),
    )?;
    family(
        e,
        "alertmanager_silences",
        "How many silences by state.",
        Gauge,
        &[
            (lbl(&[("state", "active")]), st.silences_active as f64),
            (lbl(&[("state", "pending")]), st.silences_pending as f64),
            (lbl(&[("state", "expired")]), st.silences_expired as f64),
        ],
    )?;
    family(
        e,
        "alertmanager_dispatcher_aggregation_groups",
        "Number of active aggregation groups",
        Gauge,
        &one(st.groups as f64),
    )?;
    let r = &src.reload;
    family(
        e,
        "alertmanager_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful.",
        Gauge,
        &one(f64::from(u8::from(r.last_ok.load(Ordering::Relaxed)))),
    )?;
    family(
        e,
        "alertmanager_config_last_reload_success_timestamp_seconds",
        "Timestamp of the last successful configuration reload.",
        Gauge,
        &one(r.last_success_unix.load(Ordering::Relaxed) as f64),
    )?;
    family(
        e,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Gauge,
        &one(am.started_at_ms() as f64 / 1000.0),
    )?;
    Ok(())
}
