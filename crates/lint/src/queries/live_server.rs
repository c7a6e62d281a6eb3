//! What the server says about itself, asked in parallel once per run: its targets, rule groups,
//! cardinality, and a few PromQL questions over its own metrics (written by self-monitoring with
//! job="tocsin_self") and the `ALERTS` series the rule engine writes.

use crate::live::{GroupState, Live, LiveError, Sample, SeriesLabels, Target, TsdbStatus};
use crate::queries::par::par_map;
use crate::settings::LintConfig;

/// Entries of each cardinality list asked for.
pub const TOP: usize = 20;

#[derive(Default)]
pub struct LiveServer {
    pub targets: Option<Result<Vec<Target>, LiveError>>,
    pub groups: Option<Result<Vec<GroupState>, LiveError>>,
    pub tsdb: Option<Result<TsdbStatus, LiveError>>,
    /// Targets down for all of `target_down_for` (and known at least that long).
    pub targets_down: Option<Result<Vec<Sample>, LiveError>>,
    /// Notification failures in the last hour, by integration.
    pub notify_failed: Option<Result<Vec<Sample>, LiveError>>,
    /// Failed sends to external Alertmanagers in the last hour.
    pub am_send_failed: Option<Result<Vec<Sample>, LiveError>>,
    /// The data directory's file system predicted to fill within `disk_fill_within`: the
    /// predicted free bytes, by path.
    pub disk_fill: Option<Result<Vec<Sample>, LiveError>>,
    /// Times each alert started firing in the last day, by alertname.
    pub firings_per_day: Option<Result<Vec<Sample>, LiveError>>,
    /// Alertnames that fired in `never_fired_window`.
    pub fired: Option<Result<Vec<Sample>, LiveError>>,
    /// The oldest sample the server holds (Unix ms), when it says.
    pub lowest_ms: Option<Result<Vec<Sample>, LiveError>>,
    /// Targets listed by each file `file_sd_configs` read (self-monitoring), by `file`.
    pub file_sd: Option<Result<Vec<Sample>, LiveError>>,
    /// Whether the server writes self-monitoring series (job="tocsin_self"); rules reading them
    /// are skipped when it does not (a Prometheus, or `self_monitoring.enabled: false`).
    pub self_monitored: Option<Result<Vec<Sample>, LiveError>>,
    /// The built-in alert manager's `HeartbeatMissing` alerts as (labels, summary).
    pub heartbeats_missing: Option<Result<Vec<(SeriesLabels, String)>, LiveError>>,
}

#[derive(Clone, Copy)]
enum Q {
    Targets,
    Groups,
    Tsdb,
    TargetsDown,
    NotifyFailed,
    AmSendFailed,
    DiskFill,
    Firings,
    Fired,
    Lowest,
    Heartbeats,
    FileSd,
    SelfMonitored,
}

enum A {
    Targets(Vec<Target>),
    Groups(Vec<GroupState>),
    Tsdb(TsdbStatus),
    Samples(Vec<Sample>),
    Alerts(Vec<(SeriesLabels, String)>),
}

fn s(d: i64) -> String {
    format!("{}s", (d / 1000).max(1))
}

impl LiveServer {
    pub fn load(live: &Live, cfg: &LintConfig) -> LiveServer {
        let all = [
            Q::Targets,
            Q::Groups,
            Q::Tsdb,
            Q::TargetsDown,
            Q::NotifyFailed,
            Q::AmSendFailed,
            Q::DiskFill,
            Q::Firings,
            Q::Fired,
            Q::Lowest,
            Q::Heartbeats,
            Q::FileSd,
            Q::SelfMonitored,
        ];
        let answers = par_map(&all, cfg.concurrency, |q| ask(*q, live, cfg));
        let mut out = LiveServer::default();
        let samples = |a: Result<A, LiveError>| {
            a.map(|a| match a {
                A::Samples(v) => v,
                _ => Vec::new(),
            })
        };
        for (q, a) in all.into_iter().zip(answers) {
            match q {
                Q::Targets => {
                    out.targets = Some(a.map(|a| match a {
                        A::Targets(t) => t,
                        _ => Vec::new(),
                    }))
                }
                Q::Groups => {
                    out.groups = Some(a.map(|a| match a {
                        A::Groups(g) => g,
                        _ => Vec::new(),
                    }))
                }
                Q::Tsdb => {
                    out.tsdb = Some(a.map(|a| match a {
                        A::Tsdb(t) => t,
                        _ => TsdbStatus::default(),
                    }))
                }
                Q::Heartbeats => {
                    out.heartbeats_missing = Some(a.map(|a| match a {
                        A::Alerts(v) => v,
                        _ => Vec::new(),
                    }))
                }
                Q::TargetsDown => out.targets_down = Some(samples(a)),
                Q::NotifyFailed => out.notify_failed = Some(samples(a)),
                Q::AmSendFailed => out.am_send_failed = Some(samples(a)),
                Q::DiskFill => out.disk_fill = Some(samples(a)),
                Q::Firings => out.firings_per_day = Some(samples(a)),
                Q::Fired => out.fired = Some(samples(a)),
                Q::Lowest => out.lowest_ms = Some(samples(a)),
                Q::FileSd => out.file_sd = Some(samples(a)),
                Q::SelfMonitored => out.self_monitored = Some(samples(a)),
            }
        }
        out
    }
}

fn ask(q: Q, live: &Live, cfg: &LintConfig) -> Result<A, LiveError> {
    let down = cfg.target_down_for.0;
    Ok(match q {
        Q::Targets => A::Targets(live.targets()?),
        Q::Groups => A::Groups(live.rule_groups()?),
        Q::Tsdb => A::Tsdb(live.tsdb_status(TOP)?),
        // Down the whole window, and not a target that only appeared within it.
        Q::TargetsDown => A::Samples(live.query(&format!(
            "max_over_time(up[{d}]) == 0 unless on(job, instance) \
             (min_over_time(timestamp(up)[{d}:{st}]) > time() - {secs})",
            d = s(down),
            st = s((down / 48).max(60_000)),
            secs = down / 1000 * 9 / 10,
        ))?),
        Q::NotifyFailed => A::Samples(live.query(
            "sum by (integration) (increase(alertmanager_notifications_failed_total{job=\"tocsin_self\"}[1h])) > 0",
        )?),
        Q::AmSendFailed => A::Samples(live.query(
            "sum by (alertmanager) (increase(tocsin_notifications_errors_total{job=\"tocsin_self\"}[1h])) > 0",
        )?),
        Q::DiskFill => A::Samples(live.query(&format!(
            "predict_linear(tocsin_storage_filesystem_avail_bytes{{job=\"tocsin_self\"}}[6h], {}) < 0",
            cfg.disk_fill_within.0 / 1000
        ))?),
        // Steps where an alert fires and did not one step before: the times it started.
        Q::Firings => A::Samples(live.query(
            "sum by (alertname) (sum_over_time((ALERTS{alertstate=\"firing\"} \
             unless ALERTS{alertstate=\"firing\"} offset 1m)[1d:1m]))",
        )?),
        Q::Fired => A::Samples(live.query(&format!(
            "count by (alertname) (max_over_time(ALERTS{{alertstate=\"firing\"}}[{}]))",
            s(cfg.never_fired_window.0)
        ))?),
        Q::Lowest => A::Samples(live.query("min(prometheus_tsdb_lowest_timestamp)")?),
        Q::FileSd => A::Samples(live.query("tocsin_sd_file_targets{job=\"tocsin_self\"}")?),
        Q::SelfMonitored => A::Samples(
            live.query("count(last_over_time(tocsin_tsdb_head_series{job=\"tocsin_self\"}[1h]))")?,
        ),
        Q::Heartbeats => A::Alerts(live.am_alerts("alertname=\"HeartbeatMissing\"")?),
    })
}
