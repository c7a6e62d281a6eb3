//! Sends a generated node-exporter fleet to a remote-write receiver and prints what it accepted.
//! A stand-in for `tocsin tsdb bench --remote-write URL` until that is wired, used by
//! `bench/compare-peers`. Prints a human summary on stderr and one JSON object on stdout.

#[path = "../src/bench/mod.rs"]
mod bench;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Receiver URL, e.g. http://127.0.0.1:9090/api/v1/write
    #[arg(long)]
    url: String,
    /// Active series.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Hours of data, ending at --end-ms.
    #[arg(long, default_value_t = 4.0)]
    hours: f64,
    /// Replace each host every this many minutes (0: no churn).
    #[arg(long, default_value_t = 0)]
    churn_minutes: i64,
    /// Scrape interval in seconds.
    #[arg(long, default_value_t = 10)]
    interval_seconds: i64,
    /// End of the data, ms since the epoch (default: now).
    #[arg(long)]
    end_ms: Option<i64>,
    #[arg(long, default_value_t = 4)]
    shards: usize,
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Encoded requests held in memory ahead of sending, MiB.
    #[arg(long, default_value_t = 2048)]
    buffer_mib: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let end = a.end_ms.unwrap_or(now);
    let duration_ms = (a.hours * 3_600_000.0) as i64;
    let opts = bench::remote::RemoteOptions {
        url: a.url,
        fleet: bench::fleet::FleetOptions {
            series: a.series,
            interval_ms: a.interval_seconds * 1000,
            churn_ms: (a.churn_minutes > 0).then_some(a.churn_minutes * 60_000),
            start_ms: end - duration_ms,
            duration_ms,
            seed: a.seed,
            ..Default::default()
        },
        shards: a.shards,
        batch_samples: a.batch,
        max_buffer_bytes: a.buffer_mib << 20,
        request_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stats = rt.block_on(bench::remote::run_remote_write(opts))?;
    eprintln!("{stats}");
    println!("{}", stats.to_json());
    Ok(())
}
