//! Prometheus remote read, client side: the `remote_read:` settings ([`config`]), the protocol's
//! messages ([`proto`]), the streamed-chunks framing ([`frames`]) and Prometheus's XOR chunks
//! ([`xor`]), one configured remote ([`Remote`]: builds the request, sends it, decodes either
//! answer type), and the read fan-out that merges the local storage with every remote
//! ([`fanout`]).
//!
//! A remote that fails (unreachable, timing out, answering non-2xx or a damaged stream) never
//! fails the query: as in Prometheus, where remote-read queriers are secondaries, the failure
//! becomes a warning of the answer naming the remote, and the local data is still returned.

pub mod config;
pub mod fanout;
pub mod frames;
pub mod proto;
pub mod serve;
pub mod xor;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use tocsin_model::Sample;

pub use config::RemoteReadConfig;
pub use fanout::{ReadFanout, RemoteSet};

/// Largest answer body read from a remote, compressed or framed; beyond it the read fails
/// rather than exhausting memory.
pub const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// The content type of streamed answers.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// A series as a remote sent it: label pairs in its order, samples in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<Sample>,
}

fn describe(labels: &[proto::Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Why a read from one remote failed. The message names the remote.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("remote_read {name:?} ({url}): request failed: {reason}")]
    Unavailable {
        name: String,
        url: String,
        reason: String,
    },
    #[error("remote_read {name:?} ({url}): answered HTTP {code}: {body}")]
    Status {
        name: String,
        url: String,
        code: u16,
        body: String,
    },
    #[error("remote_read {name:?} ({url}): bad answer: {reason}")]
    BadAnswer {
        name: String,
        url: String,
        reason: String,
    },
}

/// Buckets of `read_request_duration_seconds`, in seconds (Prometheus's defaults plus 25 and 60).
pub const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

/// Counters of one remote, kept across reloads while its name and URL stay.
#[derive(Debug, Default)]
pub struct RemoteMetrics {
    /// Finished reads by outcome: the HTTP status code, or `error` when none came back.
    pub queries: parking_lot::Mutex<BTreeMap<String, u64>>,
    /// Reads in flight.
    pub in_flight: AtomicI64,
    /// Per-bucket (not cumulative) counts, the last for +Inf; sum in microseconds; count.
    pub duration_buckets: [AtomicU64; 14],
    pub duration_sum_us: AtomicU64,
    pub duration_count: AtomicU64,
}

impl RemoteMetrics {
    fn observe(&self, outcome: &str, secs: f64) {
        *self.queries.lock().entry(outcome.to_string()).or_default() += 1;
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Metrics of every remote ever configured, by (name, url); the server exports them.
#[derive(Debug, Default)]
pub struct ReadMetrics {
    remotes: parking_lot::Mutex<BTreeMap<(String, String), Arc<RemoteMetrics>>>,
}

impl ReadMetrics {
    fn get(&self, name: &str, url: &str) -> Arc<RemoteMetrics> {
        self.remotes
            .lock()
            .entry((name.to_string(), url.to_string()))
            .or_default()
            .clone()
    }

    /// (name, url, metrics) of every remote, sorted.
    pub fn snapshot(&self) -> Vec<(String, String, Arc<RemoteMetrics>)> {
        self.remotes
            .lock()
            .iter()
            .map(|((n, u), m)| (n.clone(), u.clone(), m.clone()))
            .collect()
    }
}

/// One configured remote, ready to be asked.
pub struct Remote {
    pub name: String,
    pub url: String,
    pub read_recent: bool,
    /// Sorted (name, value) pairs a selector must carry as equality matchers.
    pub required_matchers: Vec<(String, String)>,
    pub filter_external_labels: bool,
    client: crate::httpclient::Client,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    metrics: Arc<RemoteMetrics>,
    /// The runtime the HTTP client lives on; reads come from blocking threads.
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({:?}, {})", self.name, self.url)
    }
}

impl Remote {
    /// Builds the client (reading credential and certificate files relative to `base`). `rt` is
    /// the runtime the requests run on.
    pub fn new(
        cfg: &RemoteReadConfig,
        base: &Path,
        metrics: &ReadMetrics,
        rt: tokio::runtime::Handle,
    ) -> Result<Self, String> {
        let timeout = Duration::from_millis(cfg.remote_timeout.0.max(1) as u64);
        // Compression is snappy, negotiated by the protocol, not HTTP's.
        let client = cfg
            .http
            .build_client(base, timeout, false)
            .map_err(|e| e.to_string())?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &cfg.headers {
            let n = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("headers.{k}: {e}"))?;
            let v = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| format!("headers.{k}: {e}"))?;
            headers.insert(n, v);
        }
        let name = cfg.effective_name();
        Ok(Self {
            metrics: metrics.get(&name, &cfg.url),
            name,
            url: cfg.url.clone(),
            read_recent: cfg.read_recent,
            required_matchers: cfg
                .required_matchers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            filter_external_labels: cfg.filter_external_labels,
            client,
            headers,
            timeout,
            rt,
        })
    }

    fn unavailable(&self, reason: String) -> ReadError {
        ReadError::Unavailable {
            name: self.name.clone(),
            url: self.url.clone(),
            reason,
        }
    }

    fn bad(&self, reason: String) -> ReadError {
        ReadError::BadAnswer {
            name: self.name.clone(),
            url: self.url.clone(),
            reason,
        }
    }

    /// Runs one query against the remote and waits for its series. Called from blocking
    /// threads (query evaluation); the request itself runs on the server's runtime.
    pub fn read_blocking(self: &Arc<Self>, q: proto::Query) -> Result<Vec<RawSeries>, ReadError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let me = self.clone();
        self.rt.spawn(async move {
            let _ = tx.send(me.read(q).await);
        });
        rx.recv()
            .map_err(|_| self.unavailable("the read task ended without an answer".into()))?
    }

    /// Runs one query against the remote: chunks are asked for first, samples accepted too.
    pub async fn read(&self, q: proto::Query) -> Result<Vec<RawSeries>, ReadError> {
        self.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let (outcome, res) = self.read_inner(q).await;
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .observe(&outcome, started.elapsed().as_secs_f64());
        res
    }

    async fn read_inner(&self, q: proto::Query) -> (String, Result<Vec<RawSeries>, ReadError>) {
        let req = proto::ReadRequest {
            queries: vec![q],
            accepted_response_types: vec![
                proto::ResponseType::StreamedXorChunks as i32,
                proto::ResponseType::Samples as i32,
            ],
        };
        let body = match snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()) {
            Ok(b) => b,
            Err(e) => return ("error".into(), Err(self.bad(format!("snappy: {e}")))),
        };
        let resp = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header("Content-Encoding", "snappy")
            .header("Accept-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let reason = crate::httpclient::error_chain(&e);
                return ("error".into(), Err(self.unavailable(reason)));
            }
        };
        let code = resp.status().as_u16();
        let outcome = code.to_string();
        let streamed = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-streamed-protobuf"));
        let mut data = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if data.len() + c.len() > MAX_RESPONSE_BYTES {
                        return (
                            outcome,
                            Err(self.bad(format!(
                                "the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                            ))),
                        );
                    }
                    data.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => {
                    let reason =
                        format!("reading the answer: {}", crate::httpclient::error_chain(&e));
                    return (outcome, Err(self.unavailable(reason)));
                }
            }
        }
        if !(200..300).contains(&code) {
            let text = String::from_utf8_lossy(&data[..data.len().min(512)])
                .trim()
                .to_string();
            return (
                outcome,
                Err(ReadError::Status {
                    name: self.name.clone(),
                    url: self.url.clone(),
                    code,
                    body: text,
                }),
            );
        }
        let res = if streamed {
            frames::decode_frames(&data).and_then(frames::frames_to_series)
        } else {
            decode_samples(&data)
        };
        (outcome, res.map_err(|e| self.bad(e)))
    }
}

/// A snappy block-compressed body (`what`: "answer", "request") decompressed, refused when it
/// would be larger than `max` bytes.
pub(crate) fn unsnappy(body: &[u8], what: &str, max: usize) -> Result<Vec<u8>, String> {
    let size = snap::raw::decompress_len(body).map_err(|e| format!("snappy: {e}"))?;
    if size > max {
        return Err(format!(
            "the {what} decompresses to {size} bytes, more than {max}"
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))
}

/// A `SAMPLES` answer: a snappy-compressed `ReadResponse` with one result.
pub fn decode_samples(body: &[u8]) -> Result<Vec<RawSeries>, String> {
    let raw = unsnappy(body, "answer", MAX_RESPONSE_BYTES)?;
    let r = proto::ReadResponse::decode(raw.as_slice())
        .map_err(|e| format!("not a ReadResponse: {e}"))?;
    let mut out = Vec::new();
    for qr in r.results {
        for ts in qr.timeseries {
            if !ts.histograms.is_empty() {
                return Err(format!(
                    "series {}: native histogram samples are not supported",
                    describe(&ts.labels)
                ));
            }
            out.push(RawSeries {
                labels: ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                samples: ts
                    .samples
                    .into_iter()
                    .map(|s| Sample::new(s.timestamp, s.value))
                    .collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod client_tests;
