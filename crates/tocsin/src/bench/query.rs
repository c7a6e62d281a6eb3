//! `tocsin bench query`: times PromQL queries in process over a data directory, to profile the
//! engine and the storage read path without HTTP in the way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tocsin_promql::{Engine, EngineOptions};
use tocsin_tsdb::Db;

#[derive(clap::Args)]
pub struct QueryArgs {
    /// Data directory (opened read-only).
    #[arg(long)]
    data_dir: PathBuf,
    /// Queries to run (repeat the flag).
    #[arg(long = "query", required = true)]
    queries: Vec<String>,
    /// End of the range in ms since the epoch (default: the newest sample in the head).
    #[arg(long)]
    end: Option<i64>,
    /// Length of the range.
    #[arg(long, default_value = "1h", value_parser = crate::parse_duration)]
    range: Duration,
    /// Step of the range query.
    #[arg(long, default_value = "60s", value_parser = crate::parse_duration)]
    step: Duration,
    /// Run instant queries at the end instead of range queries.
    #[arg(long)]
    instant: bool,
    /// Runs per query; the median is printed.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

pub fn run(a: QueryArgs) -> anyhow::Result<()> {
    let db = Db::open_read_only(&a.data_dir)
        .with_context(|| format!("opening {}", a.data_dir.display()))?;
    let end = a.end.unwrap_or_else(|| db.stats().head_max_time);
    let start = end - a.range.as_millis() as i64;
    let step = a.step.as_millis() as i64;
    let engine = Engine::new(EngineOptions::default());
    println!(
        "{:>10} {:>10} {:>8}  query",
        "median_ms", "min_ms", "series"
    );
    for q in &a.queries {
        let mut times = Vec::new();
        let mut series = 0;
        for _ in 0..a.runs.max(1) {
            let t0 = Instant::now();
            let out = if a.instant {
                engine.instant(&db, q, end)
            } else {
                engine.range(&db, q, start, end, step)
            }
            .with_context(|| format!("query {q}"))?;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            series = match &out.value {
                tocsin_promql::Value::Vector(v) => v.len(),
                tocsin_promql::Value::Matrix(m) => m.len(),
                _ => 1,
            };
        }
        times.sort_by(|x, y| x.total_cmp(y));
        println!(
            "{:>10.1} {:>10.1} {:>8}  {q}",
            times[times.len() / 2],
            times[0],
            series
        );
    }
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        if let Some(l) = s.lines().find(|l| l.starts_with("VmHWM")) {
            println!("peak RSS: {}", l.trim_start_matches("VmHWM:").trim());
        }
    }
    Ok(())
}
