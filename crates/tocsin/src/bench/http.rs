//! `tocsin bench http`: a closed-loop HTTP load generator for one URL (keep-alive connections,
//! optional basic auth and a CA for https), printing requests per second as JSON. Used by
//! `bench/auth-cost` to measure what TLS and authentication cost per request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args)]
pub struct HttpArgs {
    /// The URL to GET.
    #[arg(long)]
    url: String,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to send for.
    #[arg(long, default_value = "5s", value_parser = crate::parse_duration)]
    duration: Duration,
    /// Basic-auth user (with --password).
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// PEM CA certificate to trust for https.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

pub fn run(a: HttpArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(load(a))
}

async fn load(a: HttpArgs) -> anyhow::Result<()> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(a.concurrency)
        .timeout(Duration::from_secs(30));
    if let Some(ca) = &a.ca_file {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        b = b
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let client = b.build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // One request per connection first, so handshakes are not in the timed part.
    let req = |c: &reqwest::Client| {
        let r = c.get(&a.url);
        match &a.user {
            Some(u) => r.basic_auth(u, a.password.as_deref()),
            None => r,
        }
    };
    let warm: Vec<_> = (0..a.concurrency).map(|_| req(&client).send()).collect();
    for w in warm {
        let r = w.await.context("warm-up request")?;
        anyhow::ensure!(r.status().is_success(), "warm-up answered {}", r.status());
        r.bytes().await?;
    }
    let start = Instant::now();
    let deadline = start + a.duration;
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (ok, failed) = (ok.clone(), failed.clone());
        let rb = req(&client);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Some(r) = rb.try_clone() else { break };
                match r.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "requests": n,
            "errors": failed.load(Ordering::Relaxed),
            "seconds": secs,
            "rps": n as f64 / secs,
        })
    );
    Ok(())
}
