//! The soak's steady load: remote-write lanes, line-protocol writers and a query loop. Writers
//! record every sample of a 2xx response in the ledger; a refused or unanswered request (the
//! server being killed or restarting) is only counted, and its timestamps are never reused.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tocsin_collect::remote_write::WriteRequestBuilder;

use super::ledger::{series_key, Ledger};

#[derive(Default)]
pub struct Counter {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Answered with a status other than 2xx (the server was up and refused).
    pub refused: AtomicU64,
}

impl Counter {
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// What every load task shares.
pub struct Cx {
    pub client: reqwest::Client,
    pub base: String,
    pub ledger: Ledger,
    pub stop: AtomicBool,
    pub remote_write: Counter,
    pub line_protocol: Counter,
    pub queries: Counter,
    /// First refusal of each kind, for the report.
    pub first_refusal: std::sync::Mutex<Option<String>>,
}

impl Cx {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn note_refusal(&self, what: &str) {
        if let Ok(mut g) = self.first_refusal.lock() {
            if g.is_none() {
                *g = Some(what.to_string());
            }
        }
    }

    /// Posts a body; `Ok(true)` on 2xx. Connection errors (server down) are `Ok(false)`.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        extra: &[(&str, &str)],
        body: Vec<u8>,
        counter: &Counter,
    ) -> bool {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", content_type);
        for (n, v) in extra {
            req = req.header(*n, *v);
        }
        match req.body(body).send().await {
            Ok(r) if r.status().is_success() => {
                counter.ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(r) => {
                counter.refused.fetch_add(1, Ordering::Relaxed);
                let s = r.status();
                let t = r.text().await.unwrap_or_default();
                self.note_refusal(&format!("POST {path}: HTTP {s}: {t}"));
                false
            }
            Err(_) => {
                counter.failed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A finite value with many significant digits and a wide range of exponents, so the read-back
/// tests the exact round trip, not just small integers.
fn odd_value(rng: &mut StdRng) -> f64 {
    let sign = if rng.gen_bool(0.2) { -1.0 } else { 1.0 };
    sign * rng.gen::<f64>() * 10f64.powi(rng.gen_range(-8..12))
}

/// Strictly increasing timestamps for one sender: its series never see a repeated or older time.
struct Clock(i64);
impl Clock {
    fn next(&mut self) -> i64 {
        self.0 = now_ms().max(self.0 + 1);
        self.0
    }
}

pub const REMOTE_WRITE_HEADERS: &[(&str, &str)] = &[
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// One remote-write lane: `series` series `soak_rw{lane, s}`, one sample each per request.
pub async fn remote_write_lane(
    cx: Arc<Cx>,
    lane: usize,
    series: usize,
    period: Duration,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clock = Clock(0);
    let lane_s = lane.to_string();
    let names: Vec<String> = (0..series).map(|s| s.to_string()).collect();
    let mut b = WriteRequestBuilder::new();
    while !cx.stopped() {
        let t = clock.next();
        b.clear();
        let mut acked = Vec::with_capacity(series);
        for s in &names {
            let v = odd_value(&mut rng);
            b.add_series(
                [
                    ("__name__", "soak_rw"),
                    ("lane", lane_s.as_str()),
                    ("s", s.as_str()),
                ],
                &[(t, v)],
            );
            acked.push((series_key("soak_rw", &[("lane", &lane_s), ("s", s)]), t, v));
        }
        if cx
            .post(
                "/api/v1/write",
                "application/x-protobuf",
                REMOTE_WRITE_HEADERS,
                b.finish(),
                &cx.remote_write,
            )
            .await
        {
            cx.ledger.ack(acked);
        }
        tokio::time::sleep(period).await;
    }
}

/// One line-protocol writer: `hosts` lines per request, each with a float, an integer and a
/// second float field (`soak_lp_f`, `soak_lp_i`, `soak_lp_g` with `writer` and `host` labels).
pub async fn line_protocol_writer(
    cx: Arc<Cx>,
    writer: usize,
    hosts: usize,
    period: Duration,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut clock = Clock(0);
    let w = writer.to_string();
    while !cx.stopped() {
        let t = clock.next();
        let mut body = String::new();
        let mut acked = Vec::with_capacity(hosts * 3);
        for h in 0..hosts {
            let host = format!("h{h}");
            let f = odd_value(&mut rng);
            let i: i64 = rng.gen_range(-(1i64 << 53)..(1i64 << 53));
            let g = odd_value(&mut rng);
            // Rust's `{}` prints the shortest text that parses back to the same f64, without an
            // exponent, which line protocol accepts as a float.
            let _ = writeln!(
                body,
                "soak_lp,writer={w},host={host} f={f},i={i}i,g={g} {t}"
            );
            let labels = [("host", host.as_str()), ("writer", w.as_str())];
            acked.push((series_key("soak_lp_f", &labels), t, f));
            acked.push((series_key("soak_lp_i", &labels), t, i as f64));
            acked.push((series_key("soak_lp_g", &labels), t, g));
        }
        if cx
            .post(
                "/write?precision=ms",
                "text/plain",
                &[],
                body.into_bytes(),
                &cx.line_protocol,
            )
            .await
        {
            cx.ledger.ack(acked);
        }
        tokio::time::sleep(period).await;
    }
}

/// Instant and range queries, the alerts list and federation, round robin.
pub async fn query_loop(cx: Arc<Cx>, period: Duration) {
    let mut i = 0usize;
    while !cx.stopped() {
        let now = now_ms() as f64 / 1000.0;
        let (start, end) = (format!("{:.3}", now - 300.0), format!("{now:.3}"));
        let req = match i % 5 {
            0 => cx
                .client
                .get(format!("{}/api/v1/query", cx.base))
                .query(&[("query", "sum by (lane) (soak_rw)")]),
            1 => cx
                .client
                .get(format!("{}/api/v1/query_range", cx.base))
                .query(&[
                    ("query", "sum by (writer) (rate(soak_lp_i[1m]))"),
                    ("start", start.as_str()),
                    ("end", end.as_str()),
                    ("step", "5"),
                ]),
            2 => cx.client.get(format!("{}/api/v1/alerts", cx.base)),
            3 => cx
                .client
                .get(format!("{}/federate", cx.base))
                .query(&[("match[]", "{__name__=~\"soak_alert|lane:.*\"}")]),
            _ => cx
                .client
                .get(format!("{}/api/v1/query", cx.base))
                .query(&[("query", "count by (job) (up)")]),
        };
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                cx.queries.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => {
                cx.queries.refused.fetch_add(1, Ordering::Relaxed);
                let s = r.status();
                let t = r.text().await.unwrap_or_default();
                cx.note_refusal(&format!("query: HTTP {s}: {t}"));
            }
            Err(_) => {
                cx.queries.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        i += 1;
        tokio::time::sleep(period).await;
    }
}
