//! A shard: one task with its own bounded queue of samples, sending one batch at a time so the
//! samples of a series (always routed to the same shard) reach the receiver in order. A batch
//! goes out when it holds `max_samples_per_send` samples or `batch_send_deadline` after its
//! first sample arrived.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tocsin_collect::remote_write::WriteRequestBuilder;
use tocsin_model::Labels;
use tokio::sync::{mpsc, watch};

use crate::metrics::{raise, QueueMetrics};
use crate::position::Tracker;
use crate::send::{send, Endpoint, Outcome};

/// One sample waiting to be sent.
#[derive(Debug, Clone)]
pub struct Pending {
    pub r: u64,
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
    /// The tracker ticket of the WAL record it came from.
    pub ticket: u64,
}

/// What every shard of a queue shares.
pub struct ShardCx {
    pub ep: Endpoint,
    pub max_samples: usize,
    pub deadline: Duration,
    /// 0 = no limit.
    pub sample_age_limit_ms: i64,
    pub metrics: Arc<QueueMetrics>,
    pub tracker: Arc<Tracker>,
    pub protocol: crate::Protocol,
    /// The endpoint with remote write 1.0's headers, for a 2.0 queue whose receiver answered
    /// 415 (it does not take 2.0).
    pub ep_v1: Endpoint,
    /// Set once the receiver refused 2.0: every later batch goes as 1.0, as the 2.0
    /// specification asks of senders.
    pub downgraded: std::sync::atomic::AtomicBool,
    /// Where 2.0 requests find each series' metadata (`None`: not sent).
    pub metadata: Option<Arc<dyn tocsin_collect::scrape::MetadataView>>,
}

impl std::fmt::Debug for ShardCx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShardCx({}, {:?})", self.ep.name, self.protocol)
    }
}

/// Encodes a batch as a remote-write 1.0 body: samples grouped per series (a stable sort keeps
/// each series' samples in time order).
pub fn encode(batch: &mut [Pending], b: &mut WriteRequestBuilder) -> Vec<u8> {
    b.clear();
    batch.sort_by_key(|p| p.r);
    let mut samples = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        let r = batch[i].r;
        samples.clear();
        let mut j = i;
        while j < batch.len() && batch[j].r == r {
            samples.push((batch[j].t, batch[j].v));
            j += 1;
        }
        b.add_series(
            batch[i]
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
            &samples,
        );
        i = j;
    }
    b.finish()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs until the queue's sender side is dropped and everything received is sent, or until
/// `hard_stop`, which abandons the batch being retried (it stays unsettled, so it is read
/// from the WAL again after a restart).
pub async fn run(
    cx: Arc<ShardCx>,
    mut rx: mpsc::Receiver<Pending>,
    mut hard_stop: watch::Receiver<bool>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(cx.max_samples);
    let mut builder = WriteRequestBuilder::new();
    loop {
        batch.clear();
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, cx.max_samples) => n,
            _ = hard_stop.wait_for(|s| *s) => return,
        };
        if n == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + cx.deadline;
        while batch.len() < cx.max_samples {
            let want = cx.max_samples - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, want)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let tickets: Vec<u64> = batch.iter().map(|p| p.ticket).collect();
        let total = batch.len();
        if cx.sample_age_limit_ms > 0 {
            let oldest = now_ms() - cx.sample_age_limit_ms;
            batch.retain(|p| p.t >= oldest);
            let old = (total - batch.len()) as u64;
            cx.metrics.samples_dropped.fetch_add(old, Ordering::Relaxed);
        }
        let n = batch.len() as u64;
        let max_t = batch.iter().map(|p| p.t).max();
        let outcome = if batch.is_empty() {
            Outcome::Sent
        } else if cx.protocol == crate::Protocol::V1 || cx.downgraded.load(Ordering::Relaxed) {
            let body = bytes::Bytes::from(encode(&mut batch, &mut builder));
            let ep = if cx.protocol == crate::Protocol::V1 {
                &cx.ep
            } else {
                &cx.ep_v1
            };
            send(ep, body, n, &cx.metrics, &mut hard_stop).await
        } else {
            let body = bytes::Bytes::from(crate::v2::encode(&mut batch, cx.metadata.as_deref()));
            match send(&cx.ep, body, n, &cx.metrics, &mut hard_stop).await {
                Outcome::Refused(415) => {
                    if !cx.downgraded.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            remote = %cx.ep.name,
                            url = %cx.ep.url,
                            "the receiver does not take remote write 2.0 (415); sending 1.0 from now on \
                             (series metadata is no longer sent)"
                        );
                    }
                    let body = bytes::Bytes::from(encode(&mut batch, &mut builder));
                    send(&cx.ep_v1, body, n, &cx.metrics, &mut hard_stop).await
                }
                other => other,
            }
        };
        match outcome {
            Outcome::Sent => {
                cx.metrics.samples_sent.fetch_add(n, Ordering::Relaxed);
                if let Some(t) = max_t {
                    raise(&cx.metrics.highest_sent_ms, t);
                }
            }
            Outcome::Refused(_) => {
                cx.metrics.samples_failed.fetch_add(n, Ordering::Relaxed);
            }
            Outcome::Stopped => return,
        }
        cx.metrics
            .samples_pending
            .fetch_sub(total as i64, Ordering::Relaxed);
        cx.tracker.settle_all(tickets);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn p(r: u64, t: i64) -> Pending {
        Pending {
            r,
            labels: Labels::from_pairs(&[("__name__", "m"), ("r", &r.to_string())]),
            t,
            v: t as f64,
            ticket: 0,
        }
    }

    #[test]
    fn a_batch_is_one_series_entry_per_series_in_time_order() {
        let mut batch = vec![p(2, 1), p(1, 1), p(2, 2), p(1, 2), p(2, 3)];
        let mut b = WriteRequestBuilder::new();
        let body = encode(&mut batch, &mut b);
        let d = tocsin_collect::remote_write::decode(&body).unwrap();
        assert_eq!(d.series_count(), 2);
        let s: Vec<(String, Vec<i64>)> = d
            .series()
            .map(|s| {
                let r = s
                    .labels()
                    .iter()
                    .find(|(n, _)| *n == "r")
                    .unwrap()
                    .1
                    .to_string();
                (r, s.samples().iter().map(|x| x.0).collect())
            })
            .collect();
        assert_eq!(
            s,
            vec![("1".into(), vec![1, 2]), ("2".into(), vec![1, 2, 3])]
        );
    }
}
