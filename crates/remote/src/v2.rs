//! Remote write 2.0 bodies (`io.prometheus.write.v2.Request`): one symbols table per request that
//! every label name and value, help and unit text points into, and each series' metadata (type,
//! help, unit of its family, as the scrapes saw them) carried with the series.

use std::collections::HashMap;

use tocsin_collect::scrape::{MetadataView, MetricMetadata};

use crate::shard::Pending;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// `Metadata.MetricType` of remote write 2.0 (the same codes as 1.0's).
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

/// The family a sample's metric name belongs to: the name itself, or without the suffix the
/// exposition formats add (`_total`, `_bucket`, `_count`, `_sum`, `_created`, `_info`).
fn family_metadata(view: &dyn MetadataView, name: &str) -> Option<MetricMetadata> {
    if let Some((_, m)) = view.metadata(Some(name)).into_iter().next() {
        return Some(m);
    }
    for suf in ["_total", "_bucket", "_count", "_sum", "_created", "_info"] {
        if let Some(base) = name.strip_suffix(suf) {
            if let Some((_, m)) = view.metadata(Some(base)).into_iter().next() {
                return Some(m);
            }
        }
    }
    None
}

struct Symbols<'a> {
    index: HashMap<&'a str, u32>,
    list: Vec<&'a str>,
}

impl<'a> Symbols<'a> {
    fn new() -> Self {
        // The empty string is symbol 0, as the specification requires.
        Self {
            index: HashMap::from([("", 0)]),
            list: vec![""],
        }
    }

    fn get(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(s);
        self.index.insert(s, i);
        i
    }
}

/// Encodes a batch (samples grouped per series, each series' samples in time order) as a
/// snappy-compressed 2.0 `Request`.
pub fn encode(batch: &mut [Pending], metadata: Option<&dyn MetadataView>) -> Vec<u8> {
    batch.sort_by_key(|p| p.r);
    // Looked up once per family and batch; owned here so the symbols can borrow the text.
    let mut md_cache: HashMap<String, Option<MetricMetadata>> = HashMap::new();
    if let Some(view) = metadata {
        for p in batch.iter() {
            if let Some(name) = p.labels.metric_name() {
                if !md_cache.contains_key(name) {
                    md_cache.insert(name.to_string(), family_metadata(view, name));
                }
            }
        }
    }
    let mut syms = Symbols::new();
    let mut series_msgs = Vec::new();
    let mut ts = Vec::new();
    let mut refs = Vec::new();
    let mut sample = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        let r = batch[i].r;
        let labels = &batch[i].labels;
        ts.clear();
        refs.clear();
        for l in labels.iter() {
            put_varint(&mut refs, u64::from(syms.get(&l.name)));
            put_varint(&mut refs, u64::from(syms.get(&l.value)));
        }
        put_len(&mut ts, 1, &refs);
        while i < batch.len() && batch[i].r == r {
            sample.clear();
            sample.push(1 << 3 | 1);
            sample.extend_from_slice(&batch[i].v.to_bits().to_le_bytes());
            sample.push(2 << 3);
            put_varint(&mut sample, batch[i].t as u64);
            put_len(&mut ts, 2, &sample);
            i += 1;
        }
        let md = labels
            .metric_name()
            .and_then(|n| md_cache.get(n))
            .and_then(|m| m.as_ref());
        if let Some(md) = md {
            let mut m = Vec::new();
            let t = type_code(md.kind);
            if t != 0 {
                m.push(1 << 3);
                put_varint(&mut m, t);
            }
            let help = syms.get(&md.help);
            if help != 0 {
                m.push(3 << 3);
                put_varint(&mut m, u64::from(help));
            }
            let unit = syms.get(&md.unit);
            if unit != 0 {
                m.push(4 << 3);
                put_varint(&mut m, u64::from(unit));
            }
            put_len(&mut ts, 5, &m);
        }
        series_msgs.push(std::mem::take(&mut ts));
    }
    let mut pb = Vec::new();
    for s in &syms.list {
        put_len(&mut pb, 4, s.as_bytes());
    }
    for s in &series_msgs {
        put_len(&mut pb, 5, s);
    }
    // Only fails for inputs over ~4 GiB, which a batch never is.
    snap::raw::Encoder::new()
        .compress_vec(&pb)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tocsin_model::Labels;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Request {
        #[prost(string, repeated, tag = "4")]
        symbols: Vec<String>,
        #[prost(message, repeated, tag = "5")]
        timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct TimeSeries {
        #[prost(uint32, repeated, tag = "1")]
        labels_refs: Vec<u32>,
        #[prost(message, repeated, tag = "2")]
        samples: Vec<Sample>,
        #[prost(message, optional, tag = "5")]
        metadata: Option<Metadata>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Sample {
        #[prost(double, tag = "1")]
        value: f64,
        #[prost(int64, tag = "2")]
        timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Metadata {
        #[prost(int32, tag = "1")]
        r#type: i32,
        #[prost(uint32, tag = "3")]
        help_ref: u32,
        #[prost(uint32, tag = "4")]
        unit_ref: u32,
    }

    struct View;
    impl MetadataView for View {
        fn metadata(&self, metric: Option<&str>) -> Vec<(String, MetricMetadata)> {
            match metric {
                Some("http_requests") => vec![(
                    "http_requests".into(),
                    MetricMetadata {
                        kind: "counter",
                        help: "Requests served.".into(),
                        unit: String::new(),
                    },
                )],
                _ => Vec::new(),
            }
        }
    }

    fn p(r: u64, name: &str, t: i64) -> Pending {
        Pending {
            r,
            labels: Labels::from_pairs(&[("__name__", name), ("job", "a")]),
            t,
            v: t as f64 / 2.0,
            ticket: 0,
        }
    }

    #[test]
    fn a_prost_decoder_reads_symbols_series_samples_and_metadata() {
        let mut batch = vec![
            p(2, "up", 20),
            p(1, "http_requests_total", 10),
            p(2, "up", 21),
            p(1, "http_requests_total", 11),
        ];
        let body = encode(&mut batch, Some(&View));
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = <Request as prost::Message>::decode(raw.as_slice()).unwrap();
        assert_eq!(req.symbols[0], "");
        assert_eq!(req.timeseries.len(), 2);
        let name = |ts: &TimeSeries| {
            let r = &ts.labels_refs;
            let pairs: Vec<(String, String)> = r
                .chunks(2)
                .map(|c| {
                    (
                        req.symbols[c[0] as usize].clone(),
                        req.symbols[c[1] as usize].clone(),
                    )
                })
                .collect();
            pairs
        };
        let first = &req.timeseries[0];
        assert_eq!(
            name(first),
            vec![
                ("__name__".to_string(), "http_requests_total".to_string()),
                ("job".to_string(), "a".to_string())
            ]
        );
        assert_eq!(
            first
                .samples
                .iter()
                .map(|s| (s.timestamp, s.value))
                .collect::<Vec<_>>(),
            vec![(10, 5.0), (11, 5.5)]
        );
        let md = first.metadata.clone().unwrap();
        assert_eq!(md.r#type, 1);
        assert_eq!(req.symbols[md.help_ref as usize], "Requests served.");
        assert_eq!(md.unit_ref, 0);
        // No metadata known for `up`: none sent.
        assert!(req.timeseries[1].metadata.is_none());
        // "job" and "a" are one symbol each, shared by both series.
        assert_eq!(req.symbols.iter().filter(|s| *s == "job").count(), 1);
    }
}
