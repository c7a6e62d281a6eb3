//! `tocsin tsdb bench`: ingest a generated node-exporter-shaped fleet into a fresh database in
//! process and print append throughput, bytes per sample on disk after compaction, resident memory
//! per active series and WAL replay time; or, with `--remote-write URL`, send the same fleet to a
//! server over remote write (what `bench/compare-peers` drives).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tocsin_model::Labels;
use tocsin_storage::Appendable;
use tocsin_tsdb::{Db, DbOptions};

use crate::bench::fleet::{Fleet, FleetOptions, FleetShape};
use crate::bench::remote::{run_remote_write, RemoteOptions};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Active series in the fleet.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Hours of data to generate, ending now.
    #[arg(long, default_value_t = 4.0)]
    hours: f64,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 10)]
    interval_secs: i64,
    /// Replace every host by a new one this often (minutes); 0 = no churn.
    #[arg(long, default_value_t = 0)]
    churn_minutes: i64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What the hosts look like: node exporters, or cloud VMs with an `instance_id` (ten series
    /// each).
    #[arg(long, value_enum, default_value_t = FleetShape::Node)]
    shape: FleetShape,
    /// Data directory for the in-process run (default: a fresh temp directory, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Send the fleet to this remote-write URL instead of ingesting in process.
    #[arg(long)]
    remote_write: Option<String>,
    /// Concurrent connections for --remote-write.
    #[arg(long, default_value_t = 4)]
    shards: usize,
    /// Samples per remote-write request.
    #[arg(long, default_value_t = 2000)]
    batch_samples: usize,
    /// Encoded requests held in memory ahead of sending (MiB), so the client's encoding does not
    /// compete with the server during the timed phase.
    #[arg(long, default_value_t = 2048)]
    buffer_mib: usize,
    /// With --remote-write: after the history, keep sending live rounds for this many seconds,
    /// each when the wall clock reaches its timestamp. A JSON line `{"caught_up": true}` on
    /// stdout marks the moment the history has been accepted.
    #[arg(long, default_value_t = 0)]
    follow_secs: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn fleet_options(a: &BenchArgs) -> FleetOptions {
    let history_ms = (a.hours * 3_600_000.0) as i64;
    let now = tocsin_model::Clock::now_ms(&tocsin_model::SystemClock);
    let interval_ms = a.interval_secs.max(1) * 1000;
    FleetOptions {
        series: a.series,
        interval_ms,
        churn_ms: (a.churn_minutes > 0).then_some(a.churn_minutes * 60_000),
        start_ms: (now - history_ms).div_euclid(interval_ms) * interval_ms,
        duration_ms: history_ms + a.follow_secs as i64 * 1000,
        seed: a.seed,
        shape: a.shape,
        ..FleetOptions::default()
    }
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    if let Some(url) = &a.remote_write {
        let opts = RemoteOptions {
            url: url.clone(),
            fleet: fleet_options(&a),
            shards: a.shards.max(1),
            batch_samples: a.batch_samples.max(1),
            live: a.follow_secs > 0,
            ..RemoteOptions::default()
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let st = rt.block_on(run_remote_write(opts))?;
        if a.json {
            println!("{}", st.to_json());
        } else {
            println!("{st}");
        }
        return Ok(());
    }
    anyhow::ensure!(a.follow_secs == 0, "--follow-secs needs --remote-write");
    in_process(a)
}

/// Resident set size of this process in bytes.
fn rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn in_process(a: BenchArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("tocsin-bench-{}", std::process::id()));
            tmp.clone()
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let fopts = fleet_options(&a);
    let mut fleet = Fleet::new(fopts.clone());
    let active = fleet.active_series();
    let rss_before = rss_bytes();
    let db = Db::open(&dir, DbOptions::default())
        .with_context(|| format!("opening {}", dir.display()))?;

    // One commit per scrape round, as a scrape loop or a remote-write batch would do. Generation
    // happens outside the timed section.
    let mut round: Vec<(Labels, i64, f64)> = Vec::with_capacity(active);
    let mut append_time = Duration::ZERO;
    let mut maint_time = Duration::ZERO;
    let mut samples = 0u64;
    let mut rejected = 0u64;
    let mut peak_rss = 0u64;
    let mut last_maint_t = fopts.start_ms;
    loop {
        round.clear();
        let more = fleet.next_round(|s| round.push((s.labels.clone(), s.t, s.v)));
        if !more {
            break;
        }
        let t0 = Instant::now();
        let mut app = db.appender();
        for (l, t, v) in &round {
            let pairs: Vec<(&str, &str)> = l
                .iter()
                .map(|x| (x.name.as_str(), x.value.as_str()))
                .collect();
            if app.append_pairs(&pairs, *t, *v).is_err() {
                rejected += 1;
            }
        }
        let st = app.commit()?;
        append_time += t0.elapsed();
        samples += st.samples;
        rejected += st.rejected();
        // Maintenance every 10 minutes of data, as the server's timer would.
        let t_now = round.last().map_or(last_maint_t, |x| x.1);
        if t_now - last_maint_t >= 600_000 {
            last_maint_t = t_now;
            let t1 = Instant::now();
            db.maintain()?;
            maint_time += t1.elapsed();
            peak_rss = peak_rss.max(rss_bytes());
        }
    }
    let t1 = Instant::now();
    db.maintain()?;
    maint_time += t1.elapsed();
    let rss_end = rss_bytes();
    peak_rss = peak_rss.max(rss_end);
    let stats = db.stats();
    let head = db.head().stats();
    db.close()?;
    drop(db);

    let t2 = Instant::now();
    let db2 = Db::open(&dir, DbOptions::default())?;
    let replay = t2.elapsed();
    let replayed_series = db2.head().num_series();
    drop(db2);
    let wal_bytes = crate::tsdb_cmd::dir_size(&dir.join("wal"));

    let sps = samples as f64 / append_time.as_secs_f64().max(1e-9);
    let bps = if stats.block_samples > 0 {
        stats.block_bytes as f64 / stats.block_samples as f64
    } else {
        f64::NAN
    };
    let rss_per = rss_end.saturating_sub(rss_before) as f64 / active.max(1) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "active_series": active,
                "series_created": fleet.series_created(),
                "samples": samples,
                "rejected": rejected,
                "append_seconds": append_time.as_secs_f64(),
                "samples_per_second": sps,
                "maintenance_seconds": maint_time.as_secs_f64(),
                "blocks": stats.blocks,
                "block_bytes": stats.block_bytes,
                "block_samples": stats.block_samples,
                "bytes_per_sample": bps,
                "rss_end_bytes": rss_end,
                "rss_before_bytes": rss_before,
                "rss_per_active_series": rss_per,
                "peak_rss_bytes": peak_rss,
                "head_series": head.series,
                "head_heap_bytes": head.heap_bytes,
                "wal_bytes": wal_bytes,
                "wal_replay_seconds": replay.as_secs_f64(),
                "wal_replay_series": replayed_series,
            })
        );
    } else {
        println!(
            "fleet: {active} active series, {} created, {} hosts, {:.1} h at {} s",
            fleet.series_created(),
            fleet.hosts(),
            a.hours,
            a.interval_secs
        );
        println!(
            "append: {samples} samples in {:.2} s = {:.0} samples/s ({rejected} rejected)",
            append_time.as_secs_f64(),
            sps
        );
        println!(
            "maintenance (block cuts, compaction): {:.2} s",
            maint_time.as_secs_f64()
        );
        println!(
            "blocks: {} holding {} samples in {} bytes = {:.3} bytes/sample",
            stats.blocks, stats.block_samples, stats.block_bytes, bps
        );
        println!(
            "memory: RSS {:.1} MiB at the end ({:.1} MiB before opening the db; peak {:.1} MiB) = {:.0} bytes per active series; head {} series, {:.1} MiB of chunk and label heap",
            rss_end as f64 / 1048576.0,
            rss_before as f64 / 1048576.0,
            peak_rss as f64 / 1048576.0,
            rss_per,
            head.series,
            head.heap_bytes as f64 / 1048576.0
        );
        println!(
            "WAL replay: {:.2} s for {replayed_series} series ({wal_bytes} WAL bytes)",
            replay.as_secs_f64()
        );
    }
    if a.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
