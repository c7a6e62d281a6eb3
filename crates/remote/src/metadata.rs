//! `metadata_config`: every `send_interval`, the metric metadata the scrapes collected (type,
//! help, unit per family) is sent in `WriteRequest.metadata`, `max_samples_per_send` entries per
//! request, as Prometheus does for remote write 1.0.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tocsin_collect::scrape::{MetadataView, MetricMetadata};
use tokio::sync::watch;

use crate::metrics::QueueMetrics;
use crate::send::{send, Endpoint, Outcome};

/// `MetricMetadata.MetricType` of remote write 1.0.
fn type_code(kind: &str) -> u64 {
    match kind {
        "counter" => 1,
        "gauge" => 2,
        "histogram" => 3,
        "gaugehistogram" => 4,
        "summary" => 5,
        "info" => 6,
        "stateset" => 7,
        _ => 0,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, field: u8, s: &str) {
    if s.is_empty() {
        return;
    }
    out.push((field << 3) | 2);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A snappy-compressed `WriteRequest` holding only metadata (field 3).
pub fn encode(entries: &[(String, MetricMetadata)]) -> Vec<u8> {
    let mut pb = Vec::new();
    let mut m = Vec::new();
    for (name, md) in entries {
        m.clear();
        let t = type_code(md.kind);
        if t != 0 {
            m.push(1 << 3);
            put_varint(&mut m, t);
        }
        put_str(&mut m, 2, name);
        put_str(&mut m, 4, &md.help);
        put_str(&mut m, 5, &md.unit);
        pb.push((3 << 3) | 2);
        put_varint(&mut pb, m.len() as u64);
        pb.extend_from_slice(&m);
    }
    // Only fails for inputs over ~4 GiB; an empty body is then refused by the receiver.
    snap::raw::Encoder::new()
        .compress_vec(&pb)
        .unwrap_or_default()
}

pub async fn run(
    ep: Arc<Endpoint>,
    view: Arc<dyn MetadataView>,
    interval: Duration,
    per_request: usize,
    m: Arc<QueueMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let all = view.metadata(None);
        for chunk in all.chunks(per_request.max(1)) {
            let body = bytes::Bytes::from(encode(chunk));
            match send(&ep, body, 0, &m, &mut stop).await {
                Outcome::Sent => {
                    m.metadata_sent
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Outcome::Refused(_) => {
                    m.metadata_failed
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Outcome::Stopped => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn metadata_is_counted_by_the_intake_decoder() {
        let e = vec![(
            "http_requests_total".to_string(),
            MetricMetadata {
                kind: "counter",
                help: "Requests.".into(),
                unit: String::new(),
            },
        )];
        let d = tocsin_collect::remote_write::decode(&encode(&e)).unwrap();
        assert_eq!(d.metadata_count(), 1);
        assert_eq!(d.series_count(), 0);
    }
}
