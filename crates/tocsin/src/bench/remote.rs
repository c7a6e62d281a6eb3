//! Remote-write load client: sends a generated fleet to any remote-write 1.0 receiver, the way
//! Prometheus's queue manager would, and measures what the receiver accepted.
//!
//! Encoding (generation, protobuf, snappy) happens on a separate thread ahead of the senders and
//! is mostly done before the clock starts: requests are buffered up to a memory budget first, so
//! on small and medium runs the timed phase contains nothing but sending. Larger runs keep
//! encoding during the timed phase; the stats say so, because then the client competes with the
//! server for CPU.
//!
//! Series are partitioned over `shards` concurrent connections, each sending its own requests in
//! order, as Prometheus's shards do. Each sample travels as its own `TimeSeries`, also as
//! Prometheus does. Because shards run independently, one could race far ahead in time and push
//! the receiver's head past the others' samples, which would then be rejected as too old; a shard
//! therefore waits while its next request is more than `max_lag_ms` ahead of the slowest shard.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tocsin_collect::remote_write::WriteRequestBuilder;

use super::fleet::{Fleet, FleetOptions};

#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Full URL of the receiver, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub url: String,
    pub fleet: FleetOptions,
    /// Concurrent connections.
    pub shards: usize,
    /// Samples per request.
    pub batch_samples: usize,
    /// Encoded requests buffered before the timed phase starts (and at most while it runs).
    pub max_buffer_bytes: usize,
    /// Retries of one request on 5xx, 429 or a connection error before it counts as failed.
    pub max_retries: u32,
    /// How far (ms of sample time) a shard may run ahead of the slowest one.
    pub max_lag_ms: i64,
    pub request_timeout: Duration,
    /// Live mode: rounds whose time lies in the future are held until the wall clock reaches
    /// them, so the tail of the fleet arrives as a scraper would send it. Once the backlog (the
    /// history up to now) has been accepted, one JSON line `{"caught_up": true, ...}` is printed
    /// on stdout, so a driver can start measuring against a server that keeps receiving fresh
    /// data.
    pub live: bool,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9090/api/v1/write".into(),
            fleet: FleetOptions::default(),
            shards: 4,
            batch_samples: 2000,
            max_buffer_bytes: 2 << 30,
            max_retries: 10,
            max_lag_ms: 5 * 60_000,
            request_timeout: Duration::from_secs(60),
            live: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RemoteStats {
    pub samples_sent: u64,
    pub samples_accepted: u64,
    pub requests: u64,
    pub requests_failed: u64,
    pub retries: u64,
    /// Compressed body bytes sent (first attempts only).
    pub bytes_sent: u64,
    pub active_series: u64,
    pub series_created: u64,
    /// Time spent encoding before the timed phase.
    pub prefill_secs: f64,
    /// Whether encoding was still running during the timed phase.
    pub encoding_overlapped: bool,
    /// Duration of the timed (sending) phase.
    pub wall_secs: f64,
    /// Accepted samples per second of `wall_secs`.
    pub samples_per_sec: f64,
    /// The first failure's status and body, to tell why samples were refused.
    pub first_error: Option<String>,
}

impl RemoteStats {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "samples_sent": self.samples_sent,
            "samples_accepted": self.samples_accepted,
            "requests": self.requests,
            "requests_failed": self.requests_failed,
            "retries": self.retries,
            "bytes_sent": self.bytes_sent,
            "active_series": self.active_series,
            "series_created": self.series_created,
            "prefill_secs": self.prefill_secs,
            "encoding_overlapped": self.encoding_overlapped,
            "wall_secs": self.wall_secs,
            "samples_per_sec": self.samples_per_sec,
            "first_error": self.first_error,
        })
    }
}

impl std::fmt::Display for RemoteStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sent {} samples ({} series active, {} created) in {} requests, {:.1} MiB compressed",
            self.samples_sent,
            self.active_series,
            self.series_created,
            self.requests,
            self.bytes_sent as f64 / (1 << 20) as f64
        )?;
        writeln!(
            f,
            "accepted {} samples in {:.2} s: {:.0} samples/s ({} failed requests, {} retries)",
            self.samples_accepted,
            self.wall_secs,
            self.samples_per_sec,
            self.requests_failed,
            self.retries
        )?;
        write!(
            f,
            "encoding: {:.2} s before the clock started{}",
            self.prefill_secs,
            if self.encoding_overlapped {
                ", and continued during sending"
            } else {
                ", none during sending"
            }
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\nfirst error: {e}")?;
        }
        Ok(())
    }
}

/// One encoded request.
struct Req {
    body: Bytes,
    samples: u64,
    min_t: i64,
}

/// State shared by the encoder thread and the senders.
struct Shared {
    queues: Vec<Mutex<VecDeque<Req>>>,
    queued_bytes: AtomicUsize,
    /// Set once the encoder has produced everything.
    done: AtomicBool,
    /// Set when the timed phase may start (buffer full or encoding done).
    prefilled: AtomicBool,
    /// Per shard, the min timestamp of the request it holds, or `i64::MAX` when idle.
    frontier: Vec<AtomicI64>,
    series_created: AtomicU64,
    /// Live mode: set when the encoder first has to wait for the wall clock.
    reached_now: AtomicBool,
}

impl Shared {
    fn pop(&self, shard: usize) -> Option<Req> {
        match self.queues[shard].lock() {
            Ok(mut q) => q.pop_front(),
            Err(p) => p.into_inner().pop_front(),
        }
    }
}

/// Runs the whole load: encodes, waits for the prefill, sends, and reports.
pub async fn run_remote_write(opts: RemoteOptions) -> anyhow::Result<RemoteStats> {
    anyhow::ensure!(opts.shards > 0, "shards must be at least 1");
    anyhow::ensure!(opts.batch_samples > 0, "batch size must be at least 1");
    let shards = opts.shards;
    let shared = Arc::new(Shared {
        queues: (0..shards).map(|_| Mutex::new(VecDeque::new())).collect(),
        queued_bytes: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        prefilled: AtomicBool::new(false),
        frontier: (0..shards).map(|_| AtomicI64::new(i64::MIN)).collect(),
        series_created: AtomicU64::new(0),
        reached_now: AtomicBool::new(false),
    });
    let fleet = Fleet::new(opts.fleet.clone());
    let active_series = fleet.active_series() as u64;

    let prefill_start = Instant::now();
    let encoder = {
        let shared = shared.clone();
        let (batch, budget, live) = (opts.batch_samples, opts.max_buffer_bytes, opts.live);
        std::thread::Builder::new()
            .name("rw-encode".into())
            .spawn(move || encode_all(fleet, shards, batch, budget, live, &shared))
            .context("starting the encoder thread")?
    };
    while !shared.prefilled.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let prefill_secs = prefill_start.elapsed().as_secs_f64();
    let encoding_overlapped = !shared.done.load(Ordering::Acquire);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(shards)
        .timeout(opts.request_timeout)
        .build()
        .context("building the HTTP client")?;
    let totals = Arc::new(Totals::default());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for shard in 0..shards {
        let (client, shared, totals, opts) =
            (client.clone(), shared.clone(), totals.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            send_shard(shard, &client, &shared, &totals, &opts).await
        }));
    }
    if opts.live {
        let (shared, totals) = (shared.clone(), totals.clone());
        tokio::spawn(async move {
            // Caught up once the encoder waits for the clock and everything before was sent.
            while !(shared.reached_now.load(Ordering::Acquire)
                && shared.queued_bytes.load(Ordering::Acquire) == 0)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            use std::io::Write;
            let line = serde_json::json!({
                "caught_up": true,
                "samples_accepted": totals.accepted.load(Ordering::Relaxed),
                "first_error": lock(&totals.first_error).clone(),
            });
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
    }
    for t in tasks {
        t.await.context("sender task")?;
    }
    let wall_secs = start.elapsed().as_secs_f64();
    // Every sender has seen `done`, so the encoder has returned or is about to.
    let joined = tokio::task::spawn_blocking(move || encoder.join())
        .await
        .context("joining the encoder")?;
    if joined.is_err() {
        anyhow::bail!("the encoder thread panicked");
    }

    let accepted = totals.accepted.load(Ordering::Relaxed);
    let first_error = lock(&totals.first_error).clone();
    Ok(RemoteStats {
        samples_sent: totals.sent.load(Ordering::Relaxed),
        samples_accepted: accepted,
        requests: totals.requests.load(Ordering::Relaxed),
        requests_failed: totals.failed.load(Ordering::Relaxed),
        retries: totals.retries.load(Ordering::Relaxed),
        bytes_sent: totals.bytes.load(Ordering::Relaxed),
        active_series,
        series_created: shared.series_created.load(Ordering::Relaxed),
        prefill_secs,
        encoding_overlapped,
        wall_secs,
        samples_per_sec: if wall_secs > 0.0 {
            accepted as f64 / wall_secs
        } else {
            0.0
        },
        first_error,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    accepted: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    bytes: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// The encoder thread: generates the fleet round by round and cuts per-shard requests.
fn encode_all(
    mut fleet: Fleet,
    shards: usize,
    batch: usize,
    budget: usize,
    live: bool,
    shared: &Shared,
) {
    struct Pending {
        b: WriteRequestBuilder,
        min_t: i64,
    }
    let mut pending: Vec<Pending> = (0..shards)
        .map(|_| Pending {
            b: WriteRequestBuilder::new(),
            min_t: i64::MAX,
        })
        .collect();
    let flush = |p: &mut Pending, shard: usize| {
        if p.b.sample_count() == 0 {
            return;
        }
        let body = Bytes::from(p.b.finish());
        shared.queued_bytes.fetch_add(body.len(), Ordering::AcqRel);
        let req = Req {
            body,
            samples: p.b.sample_count() as u64,
            min_t: p.min_t,
        };
        lock(&shared.queues[shard]).push_back(req);
        p.b.clear();
        p.min_t = i64::MAX;
    };
    loop {
        if shared.queued_bytes.load(Ordering::Acquire) >= budget {
            shared.prefilled.store(true, Ordering::Release);
            while shared.queued_bytes.load(Ordering::Acquire) >= budget {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if live {
            let due = fleet.next_round_start();
            if due > now_ms() {
                // Send everything before this round now, not when a batch fills up.
                for (shard, p) in pending.iter_mut().enumerate() {
                    flush(p, shard);
                }
                shared.prefilled.store(true, Ordering::Release);
                shared.reached_now.store(true, Ordering::Release);
                while due > now_ms() {
                    std::thread::sleep(Duration::from_millis(
                        ((due - now_ms()).clamp(1, 200)) as u64,
                    ));
                }
            }
        }
        let more = fleet.next_round(|s| {
            let shard = s.slot % shards;
            let p = &mut pending[shard];
            p.b.add_series(
                s.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
                &[(s.t, s.v)],
            );
            p.min_t = p.min_t.min(s.t);
            // Cut as soon as the batch is full, as Prometheus's queue manager does
            // (max_samples_per_send): requests much larger than that would make every receiver
            // buffer more than it would in production.
            if p.b.sample_count() >= batch {
                flush(p, shard);
            }
        });
        shared
            .series_created
            .store(fleet.series_created(), Ordering::Relaxed);
        if !more {
            break;
        }
    }
    for (shard, p) in pending.iter_mut().enumerate() {
        flush(p, shard);
    }
    shared.done.store(true, Ordering::Release);
    shared.prefilled.store(true, Ordering::Release);
}

fn now_ms() -> i64 {
    tocsin_model::Clock::now_ms(&tocsin_model::SystemClock)
}

async fn send_shard(
    shard: usize,
    client: &reqwest::Client,
    shared: &Shared,
    totals: &Totals,
    opts: &RemoteOptions,
) {
    loop {
        let req = match shared.pop(shard) {
            Some(r) => r,
            None => {
                // Idle: whatever arrives next is newer than anything queued elsewhere, so this
                // shard must not hold the others back.
                shared.frontier[shard].store(i64::MAX, Ordering::Release);
                if shared.done.load(Ordering::Acquire) {
                    // Re-check: the encoder may have pushed a last request before setting `done`.
                    match shared.pop(shard) {
                        Some(r) => r,
                        None => return,
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            }
        };
        shared.frontier[shard].store(req.min_t, Ordering::Release);
        loop {
            let slowest = shared
                .frontier
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != shard)
                .map(|(_, f)| f.load(Ordering::Acquire))
                .min()
                .unwrap_or(i64::MAX);
            if slowest == i64::MAX || req.min_t <= slowest.saturating_add(opts.max_lag_ms) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let len = req.body.len();
        totals.requests.fetch_add(1, Ordering::Relaxed);
        totals.sent.fetch_add(req.samples, Ordering::Relaxed);
        totals.bytes.fetch_add(len as u64, Ordering::Relaxed);
        match send_with_retries(client, &opts.url, req.body, opts.max_retries, totals).await {
            Ok(()) => {
                totals.accepted.fetch_add(req.samples, Ordering::Relaxed);
            }
            Err(e) => {
                totals.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = lock(&totals.first_error);
                if first.is_none() {
                    *first = Some(e);
                }
            }
        }
        shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

async fn send_with_retries(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    max_retries: u32,
    totals: &Totals,
) -> Result<(), String> {
    let mut attempt = 0u32;
    loop {
        let res = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("User-Agent", "tocsin-bench")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await;
        let retryable = match res {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let msg = format!(
                    "HTTP {status}: {}",
                    text.trim().chars().take(300).collect::<String>()
                );
                if !(status.is_server_error() || status.as_u16() == 429) {
                    return Err(msg);
                }
                msg
            }
            Err(e) => format!("request failed: {e}"),
        };
        if attempt >= max_retries {
            return Err(format!("{retryable} (gave up after {attempt} retries)"));
        }
        attempt += 1;
        totals.retries.fetch_add(1, Ordering::Relaxed);
        let backoff = Duration::from_millis((50u64 << attempt.min(7)).min(5_000));
        tokio::time::sleep(backoff).await;
    }
}
