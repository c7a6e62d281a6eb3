//! `tocsin tsdb ...`: dump samples, analyze a data directory, benchmark the engine.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use tocsin_model::{Labels, Matcher, METRIC_NAME};
use tocsin_storage::{Queryable, SelectHints};
use tocsin_tsdb::Db;

/// A time flag: integer Unix milliseconds, or RFC 3339 (`2026-01-02T03:04:05Z`).
fn parse_time_ms(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    tocsin_model::time::parse_rfc3339_ms(s).ok_or_else(|| {
        format!(
            "{s:?} is neither Unix milliseconds nor an RFC 3339 time (like 2026-01-02T03:04:05Z)"
        )
    })
}

#[derive(Subcommand)]
pub enum TsdbCmd {
    /// Print every matching sample as `{labels} value timestamp_ms`, one per line. Works read-only,
    /// also on a data directory a running server is using.
    Dump {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Series selector, e.g. 'up{job="node"}'. Default: every series.
        #[arg(long = "match")]
        matcher: Option<String>,
        /// Earliest sample time: Unix milliseconds (as promtool takes) or RFC 3339.
        #[arg(long, default_value_t = i64::MIN, allow_negative_numbers = true, value_parser = parse_time_ms)]
        min_time: i64,
        /// Latest sample time: Unix milliseconds or RFC 3339.
        #[arg(long, default_value_t = i64::MAX, allow_negative_numbers = true, value_parser = parse_time_ms)]
        max_time: i64,
    },
    /// Print series, samples, blocks, bytes per sample and the highest-cardinality labels and metrics.
    Analyze {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// How many entries per top list.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Verify every block (meta, index, every chunk decoded with its checksum) and the WAL (every
    /// segment and the checkpoint) without changing anything; exit 1 if anything is damaged.
    /// Safe on a directory a running server uses.
    Check {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Quarantine what `check` finds damaged (into DATA_DIR/quarantine/), delete blocks left by an
    /// interrupted compaction, and rewrite damaged WAL segments and checkpoint from their intact
    /// records. Refuses while a server holds the directory.
    Repair {
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Benchmark the engine on a generated fleet (in process), or send the fleet over remote write.
    Bench(crate::tsdb_bench::BenchArgs),
}

pub fn run(cmd: TsdbCmd) -> anyhow::Result<()> {
    match cmd {
        TsdbCmd::Dump {
            data_dir,
            matcher,
            min_time,
            max_time,
        } => dump(data_dir, matcher, min_time, max_time),
        TsdbCmd::Analyze { data_dir, limit } => analyze(data_dir, limit),
        TsdbCmd::Check { data_dir } => check(data_dir),
        TsdbCmd::Repair { data_dir } => repair(data_dir),
        TsdbCmd::Bench(a) => crate::tsdb_bench::run(a),
    }
}

/// Formats a value as the Prometheus API does: shortest round-trip decimal, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn dump(dir: PathBuf, matcher: Option<String>, mint: i64, maxt: i64) -> anyhow::Result<()> {
    let ms = match &matcher {
        Some(s) => Matcher::parse_selector(s).with_context(|| format!("--match {s:?}"))?,
        None => vec![Matcher::new(
            tocsin_model::MatchOp::Regex,
            METRIC_NAME,
            ".+",
        )?],
    };
    let db = Db::open_read_only(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let q = db.querier(mint, maxt)?;
    let out = std::io::stdout();
    let mut w = BufWriter::new(out.lock());
    for s in q.select(
        &SelectHints {
            start: mint,
            end: maxt,
            ..Default::default()
        },
        &ms,
    )? {
        let mut s = s?;
        let l = s.labels.to_string();
        while let Some(x) = s.samples.next() {
            if writeln!(w, "{l} {} {}", format_value(x.v), x.t).is_err() {
                // A closed pipe (e.g. `| head`) is not an error for a dump.
                return Ok(());
            }
        }
    }
    let _ = w.flush();
    Ok(())
}

fn analyze(dir: PathBuf, limit: usize) -> anyhow::Result<()> {
    let db = Db::open_read_only(&dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut series: HashMap<Labels, u64> = HashMap::new();
    let blocks = db.blocks();
    for b in &blocks {
        for (l, n) in b.series_stats()? {
            *series.entry(l).or_default() += n;
        }
    }
    let head = db.head().series_stats();
    let head_samples: u64 = head.iter().map(|x| x.1).sum();
    let head_series = head.len();
    for (l, n) in head {
        *series.entry(l).or_default() += n;
    }
    let samples: u64 = series.values().sum();
    let block_bytes: u64 = blocks.iter().map(|b| b.size_bytes()).sum();
    let block_samples: u64 = blocks.iter().map(|b| b.meta().stats.num_samples).sum();
    let wal_bytes = dir_size(&dir.join("wal"));
    println!("Data directory: {}", dir.display());
    println!("Series: {}", series.len());
    println!("Samples: {samples}");
    println!("Head: {head_series} series, {head_samples} samples, WAL {wal_bytes} bytes");
    println!("Blocks: {}", blocks.len());
    for b in &blocks {
        let m = b.meta();
        println!(
            "  {} [{} .. {}) level {} series {} samples {} bytes {}",
            m.ulid,
            m.min_time,
            m.max_time,
            m.compaction.level,
            m.stats.num_series,
            m.stats.num_samples,
            b.size_bytes()
        );
    }
    if block_samples > 0 {
        println!(
            "Block bytes per sample: {:.3}",
            block_bytes as f64 / block_samples as f64
        );
    }
    let mut values: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    let mut per_metric: HashMap<&str, u64> = HashMap::new();
    for l in series.keys() {
        for x in l.iter() {
            values
                .entry(x.name.as_str())
                .or_default()
                .insert(x.value.as_str());
        }
        *per_metric.entry(l.metric_name().unwrap_or("")).or_default() += 1;
    }
    let mut card: Vec<(&str, usize)> = values.iter().map(|(k, v)| (*k, v.len())).collect();
    card.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!("\nHighest cardinality labels (distinct values):");
    for (n, c) in card.iter().take(limit) {
        println!("  {c:>10} {n}");
    }
    let mut pm: Vec<(&str, u64)> = per_metric.into_iter().collect();
    pm.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!("\nHighest cardinality metric names (series):");
    for (n, c) in pm.iter().take(limit) {
        println!("  {c:>10} {n}");
    }
    Ok(())
}

fn check(dir: PathBuf) -> anyhow::Result<()> {
    let r =
        tocsin_tsdb::check::check(&dir).with_context(|| format!("checking {}", dir.display()))?;
    println!("Data directory: {}", dir.display());
    println!("Blocks: {} checked, {} chunks decoded", r.blocks, r.chunks);
    println!(
        "WAL: {} segment(s), {} record(s) read",
        r.wal_segments, r.wal_records
    );
    for p in &r.problems {
        println!("DAMAGED {} {}: {}", p.kind, p.path.display(), p.detail);
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    if r.is_clean() {
        println!("OK: no damage found");
        return Ok(());
    }
    anyhow::bail!(
        "{} problem(s) found in {}; stop the server and run `tocsin tsdb repair --data-dir {}` to set them aside",
        r.problems.len(),
        dir.display(),
        dir.display()
    )
}

fn repair(dir: PathBuf) -> anyhow::Result<()> {
    let r =
        tocsin_tsdb::check::repair(&dir).with_context(|| format!("repairing {}", dir.display()))?;
    for (ulid, kind, reason, to) in &r.quarantined {
        println!(
            "quarantined block {ulid} ({kind}) to {}: {reason}",
            to.display()
        );
    }
    for d in &r.leftovers_removed {
        println!(
            "deleted block {} (its data is in a compacted block)",
            d.display()
        );
    }
    for d in &r.wal_damage {
        let what = if d.torn_tail {
            "cut off torn tail"
        } else {
            "skipped damaged bytes"
        };
        println!(
            "WAL {}: {what} [{}, {}): {}",
            d.path.display(),
            d.start,
            d.end,
            d.reason
        );
    }
    if r.unknown_series_samples > 0 {
        println!(
            "WAL: {} sample(s) refer to series whose definition was lost; they are dropped at replay",
            r.unknown_series_samples
        );
    }
    if r.quarantined.is_empty() && r.leftovers_removed.is_empty() && r.wal_damage.is_empty() {
        println!("OK: nothing to repair");
    } else {
        println!("repair done");
    }
    Ok(())
}

pub fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
