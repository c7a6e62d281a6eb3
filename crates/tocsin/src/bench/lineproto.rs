//! `tocsin bench lineproto`: an InfluxDB line-protocol load client. It generates Telegraf-shaped
//! lines (measurements `cpu`, `mem`, `disk`, `net`, `system` with host tags and several fields per
//! line: floats, `i` integers, a boolean-free mix Telegraf's inputs produce), encodes every request
//! before the clock starts, then sends them from N concurrent writers and reports accepted samples
//! per second. The same seed gives every server identical payloads.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct LineprotoArgs {
    /// Write URL, e.g. http://127.0.0.1:9090/write?precision=ns
    #[arg(long)]
    url: String,
    /// Distinct series (tag set x field).
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Rounds of samples per series (one every 10 s of timestamps).
    #[arg(long, default_value_t = 60)]
    rounds: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Lines per request (Telegraf's metric_batch_size defaults to 1000).
    #[arg(long, default_value_t = 1000)]
    batch_lines: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// (measurement, fields): every line of a measurement carries all its fields.
const SHAPES: &[(&str, &[&str])] = &[
    (
        "cpu",
        &[
            "usage_user",
            "usage_system",
            "usage_idle",
            "usage_iowait",
            "usage_steal",
        ],
    ),
    ("mem", &["used", "free", "cached", "available_percent"]),
    ("disk", &["used", "free", "inodes_used", "used_percent"]),
    (
        "net",
        &[
            "bytes_recv",
            "bytes_sent",
            "packets_recv",
            "packets_sent",
            "err_in",
        ],
    ),
    ("system", &["load1", "load5", "uptime"]),
];

/// Builds every request body: rounds in time order, each round split into batches.
fn encode(a: &LineprotoArgs, start_ns: i64) -> (Vec<Vec<u8>>, u64) {
    let fields_per_line: usize = SHAPES.iter().map(|s| s.1.len()).sum::<usize>();
    // One "host" emits one line per shape: fields_per_line series.
    let hosts = a.series.div_ceil(fields_per_line).max(1);
    let mut bodies = Vec::new();
    let mut samples = 0u64;
    let mut cur = String::new();
    let mut lines = 0usize;
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for r in 0..a.rounds {
        let ts = start_ns + r as i64 * 10_000_000_000;
        for h in 0..hosts {
            for (m, fields) in SHAPES {
                let _ = write!(
                    cur,
                    "{m},host=host-{h:06},region=r{},dc=dc{} ",
                    h % 7,
                    h % 3
                );
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        cur.push(',');
                    }
                    let v = next();
                    if m == &"net" || f.contains("inodes") || f == &"uptime" {
                        // Counters as Telegraf sends them: integers with the `i` suffix.
                        let _ = write!(cur, "{f}={}i", (r as u64 + 1) * 1000 + (v % 1000));
                    } else {
                        let _ = write!(cur, "{f}={:.2}", (v % 10_000) as f64 / 100.0);
                    }
                    samples += 1;
                }
                let _ = writeln!(cur, " {ts}");
                lines += 1;
                if lines >= a.batch_lines {
                    bodies.push(std::mem::take(&mut cur).into_bytes());
                    lines = 0;
                }
            }
        }
    }
    if !cur.is_empty() {
        bodies.push(cur.into_bytes());
    }
    (bodies, samples)
}

pub fn run(a: LineprotoArgs) -> anyhow::Result<()> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as i64;
    let start_ns = now_ns - a.rounds as i64 * 10_000_000_000;
    let t_enc = Instant::now();
    let (bodies, samples_total) = encode(&a, start_ns);
    let enc_secs = t_enc.elapsed().as_secs_f64();
    let bytes: usize = bodies.iter().map(|b| b.len()).sum();
    let bodies: Arc<Vec<bytes::Bytes>> =
        Arc::new(bodies.into_iter().map(bytes::Bytes::from).collect());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.writers.clamp(1, 4))
        .enable_all()
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let ok_bodies = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_err = Arc::new(first_error::Slot::default());
    let t0 = Instant::now();
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let mut tasks = Vec::new();
        for _ in 0..a.writers.max(1) {
            let (client, bodies, next, ok, failed, first_err, url) = (
                client.clone(),
                bodies.clone(),
                next.clone(),
                ok_bodies.clone(),
                failed.clone(),
                first_err.clone(),
                a.url.clone(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { break };
                    match client.post(&url).body(b.clone()).send().await {
                        Ok(r) if r.status().is_success() => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let s = r.status();
                            let t = r.text().await.unwrap_or_default();
                            first_err.set(format!("HTTP {s}: {t}"));
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            first_err.set(e.to_string());
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.context("writer task")?;
        }
        anyhow::Ok(())
    })?;
    let wall = t0.elapsed().as_secs_f64();
    let n = bodies.len() as u64;
    let okn = ok_bodies.load(Ordering::Relaxed);
    // Every body holds the same number of samples except possibly the last.
    let accepted = (samples_total * okn).checked_div(n).unwrap_or(0);
    let sps = accepted as f64 / wall.max(1e-9);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "samples_sent": samples_total,
                "samples_accepted": accepted,
                "requests": n,
                "requests_failed": failed.load(Ordering::Relaxed),
                "bytes": bytes,
                "wall_secs": wall,
                "encode_secs": enc_secs,
                "samples_per_sec": sps,
                "first_error": first_err.get(),
            })
        );
    } else {
        println!(
            "{accepted} of {samples_total} samples accepted in {wall:.2} s = {sps:.0} samples/s ({n} requests, {} failed, {} MB)",
            failed.load(Ordering::Relaxed),
            bytes / 1_000_000
        );
        if let Some(e) = first_err.get() {
            println!("first error: {e}");
        }
    }
    Ok(())
}

mod first_error {
    /// First error seen by any writer.
    #[derive(Default)]
    pub struct Slot(std::sync::Mutex<Option<String>>);
    impl Slot {
        pub fn set(&self, s: String) {
            if let Ok(mut g) = self.0.lock() {
                if g.is_none() {
                    *g = Some(s);
                }
            }
        }
        pub fn get(&self) -> Option<String> {
            self.0.lock().ok().and_then(|g| g.clone())
        }
    }
}
