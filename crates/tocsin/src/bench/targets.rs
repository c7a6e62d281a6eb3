//! `tocsin bench targets`: many synthetic scrape targets served by one process, for comparing the
//! cost of scraping across servers. Each target listens on its own loopback port and exposes
//! node-exporter-shaped text (HELP/TYPE, counters that grow, gauges with few significant digits,
//! a histogram), regenerated on each request so values move between scrapes.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

#[derive(clap::Args, Debug)]
pub struct TargetsArgs {
    /// Number of targets (one loopback port each).
    #[arg(long, default_value_t = 500)]
    targets: usize,
    /// Series exposed by each target.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Write the `host:port` of every target here, one per line, once all are listening.
    #[arg(long)]
    addr_file: PathBuf,
}

struct Target {
    idx: usize,
    series: usize,
    start: Instant,
}

/// Families cycled through until `series` lines are written; (name, type, labels per series).
const FAMILIES: &[(&str, &str)] = &[
    ("node_cpu_seconds_total", "counter"),
    ("node_network_receive_bytes_total", "counter"),
    ("node_disk_io_time_seconds_total", "counter"),
    ("node_memory_Active_bytes", "gauge"),
    ("node_filesystem_avail_bytes", "gauge"),
    ("http_request_duration_seconds", "histogram"),
];

fn body(t: &Target) -> String {
    let secs = t.start.elapsed().as_secs_f64();
    let mut out = String::with_capacity(t.series * 80);
    let mut written = 0usize;
    let mut fam = 0usize;
    let per_family = (t.series / FAMILIES.len()).max(1);
    while written < t.series {
        let (name, kind) = FAMILIES[fam % FAMILIES.len()];
        let round = fam / FAMILIES.len();
        let _ = writeln!(out, "# HELP {name} Synthetic {kind} for scrape benchmarks.");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let n = per_family.min(t.series - written);
        if kind == "histogram" {
            let les = ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"];
            let mut i = 0;
            while i < n {
                let route = i / (les.len() + 2);
                let total = (secs * 10.0) as u64 + (t.idx * 7 + route) as u64;
                for (k, le) in les.iter().enumerate() {
                    if i >= n {
                        break;
                    }
                    let c = total * (k as u64 + 1) / les.len() as u64;
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{route=\"/r{round}_{route}\",le=\"{le}\"}} {c}"
                    );
                    i += 1;
                }
                if i < n {
                    let _ = writeln!(
                        out,
                        "{name}_sum{{route=\"/r{round}_{route}\"}} {:.3}",
                        total as f64 * 0.042
                    );
                    i += 1;
                }
                if i < n {
                    let _ = writeln!(out, "{name}_count{{route=\"/r{round}_{route}\"}} {total}");
                    i += 1;
                }
            }
        } else {
            for i in 0..n {
                let v = if kind == "counter" {
                    ((secs * (1 + i % 13) as f64) as u64 + (t.idx * 31 + i) as u64) as f64
                } else {
                    // Gauges move in coarse steps, like memory in pages.
                    (((secs / 30.0) as u64 + (i as u64 * 7919 + t.idx as u64) % 1000) * 4096) as f64
                };
                let _ = writeln!(
                    out,
                    "{name}{{device=\"d{round}_{}\",mode=\"m{}\"}} {v}",
                    i / 8,
                    i % 8
                );
            }
        }
        written += n;
        fam += 1;
    }
    out
}

async fn metrics(State(t): State<Arc<Target>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body(&t),
    )
}

/// Starts `targets` targets of `series` series each on the current runtime; returns their
/// `host:port` addresses. They serve until the runtime ends.
pub async fn serve(targets: usize, series: usize) -> anyhow::Result<Vec<String>> {
    let start = Instant::now();
    let mut addrs = Vec::with_capacity(targets);
    for idx in 0..targets {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(l.local_addr()?.to_string());
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(Arc::new(Target { idx, series, start }));
        tokio::spawn(async move { axum::serve(l, app).await });
    }
    Ok(addrs)
}

pub fn run(a: TargetsArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addrs = serve(a.targets, a.series).await?;
        let tmp = a.addr_file.with_extension("tmp");
        std::fs::write(&tmp, addrs.join("\n") + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &a.addr_file)?;
        std::future::pending::<()>().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_requested_series_count() {
        let t = Target {
            idx: 3,
            series: 1000,
            start: Instant::now(),
        };
        let b = body(&t);
        let samples = b.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 1000);
    }
}
