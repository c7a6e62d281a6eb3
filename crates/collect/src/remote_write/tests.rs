//! Tests of the remote-write codec, including a cross-check against prost-derived messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use proptest::prelude::*;
use prost::Message;

/// Reference schema of remote write 1.0, written from the published .proto field numbers.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(double, tag = "2")]
        pub value: f64,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }
    /// Only a few of the real fields: enough to exercise skipping of an unknown-to-us message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub count_int: u64,
        #[prost(double, tag = "3")]
        pub sum: f64,
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        #[prost(sint64, repeated, tag = "9")]
        pub positive_deltas: Vec<i64>,
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

fn pb_label(n: &str, v: &str) -> pb::Label {
    pb::Label {
        name: n.to_string(),
        value: v.to_string(),
    }
}

fn pb_series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: labels.iter().map(|(n, v)| pb_label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| pb::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
        ..Default::default()
    }
}

fn compress(msg: &pb::WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&msg.encode_to_vec())
        .unwrap()
}

fn decode_pb(msg: &pb::WriteRequest) -> Result<DecodedWrite> {
    decode(&compress(msg))
}

fn err_of(msg: &pb::WriteRequest) -> String {
    decode_pb(msg).unwrap_err().to_string()
}

type Pairs = Vec<(String, String)>;
type Owned = Vec<(Pairs, Vec<(i64, f64)>)>;
type Bits = Vec<(Pairs, Vec<(i64, u64)>)>;
type RefSeries<'a> = (Vec<(&'a str, &'a str)>, &'a [(i64, f64)]);

fn owned(w: &DecodedWrite) -> Owned {
    w.series()
        .map(|s| {
            (
                s.labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                s.samples.to_vec(),
            )
        })
        .collect()
}

#[test]
fn decodes_basic_request_sorted() {
    let req = pb::WriteRequest {
        timeseries: vec![
            pb_series(
                &[("job", "node"), ("__name__", "up"), ("instance", "a:9100")],
                &[(1000, 1.0), (2000, 0.0)],
            ),
            pb_series(&[("__name__", "x"), ("empty", "")], &[(5, -1.5)]),
        ],
        metadata: vec![pb::MetricMetadata {
            r#type: 1,
            metric_family_name: "up".into(),
            ..Default::default()
        }],
    };
    let w = decode_pb(&req).unwrap();
    assert_eq!(w.series_count(), 2);
    assert_eq!(w.sample_count(), 3);
    assert_eq!(w.metadata_count(), 1);
    let s0 = w.series_at(0).unwrap();
    assert_eq!(
        s0.labels,
        &[("__name__", "up"), ("instance", "a:9100"), ("job", "node")]
    );
    assert_eq!(s0.samples, &[(1000, 1.0), (2000, 0.0)]);
    let s1 = w.series_at(1).unwrap();
    assert_eq!(s1.labels, &[("__name__", "x")]);
    assert_eq!(s1.samples, &[(5, -1.5)]);
    assert!(w.series_at(2).is_none());
    // The pairs hash like a `Labels` built from them, which is what lets the server look up
    // existing series without allocating.
    let l = tocsin_model::Labels::from_pairs(s0.labels);
    assert_eq!(
        l.hash(),
        tocsin_model::hash_label_pairs(s0.labels.iter().copied())
    );
    // Moving the decoded request keeps the borrowed pairs valid.
    let moved = Box::new(w);
    assert_eq!(moved.series_at(0).unwrap().labels()[0], ("__name__", "up"));
}

#[test]
fn counts_histograms_and_exemplars() {
    let mut ts = pb_series(&[("__name__", "h")], &[]);
    ts.histograms = vec![
        pb::Histogram {
            count_int: 3,
            sum: 1.5,
            schema: -2,
            positive_deltas: vec![1, -1, 4],
            timestamp: 7
        };
        2
    ];
    ts.exemplars = vec![pb::Exemplar {
        labels: vec![pb_label("trace_id", "abc")],
        value: 1.0,
        timestamp: 3,
    }];
    let w = decode_pb(&pb::WriteRequest {
        timeseries: vec![ts],
        metadata: vec![],
    })
    .unwrap();
    assert_eq!(w.histogram_count(), 2);
    assert_eq!(w.exemplar_count(), 1);
    assert_eq!(w.sample_count(), 0);
    assert_eq!(w.series_count(), 1);
}

#[test]
fn empty_request_is_fine() {
    let w = decode(&snap::raw::Encoder::new().compress_vec(&[]).unwrap()).unwrap();
    assert_eq!(w.series_count(), 0);
    assert_eq!(w.series().len(), 0);
}

#[test]
fn rejects_invalid_series_with_useful_message() {
    let bad = |labels: &[(&str, &str)]| {
        err_of(&pb::WriteRequest {
            timeseries: vec![
                pb_series(&[("__name__", "ok")], &[(1, 1.0)]),
                pb_series(labels, &[(1, 1.0)]),
            ],
            metadata: vec![],
        })
    };
    assert_eq!(
        bad(&[("__name__", "x"), ("1bad", "y")]),
        r#"series 1 {__name__="x", 1bad="y"}: invalid label name "1bad": must match [a-zA-Z_][a-zA-Z0-9_]*"#
    );
    assert!(
        bad(&[("__name__", "x"), ("", "y")]).contains("empty label name"),
        "{}",
        bad(&[("", "y")])
    );
    assert!(bad(&[("__name__", "x"), ("a-b", "y")]).contains("invalid label name \"a-b\""));
    assert!(bad(&[("__name__", "9x")]).contains("invalid metric name \"9x\""));
    assert!(bad(&[("__name__", "x-y")]).contains("invalid metric name"));
    assert!(
        bad(&[("b", "1"), ("__name__", "x"), ("b", "2")]).contains("duplicate label name \"b\"")
    );
    assert!(
        bad(&[("__name__", "x"), ("b", "1"), ("b", "2")]).contains("duplicate label name \"b\"")
    );
    assert!(bad(&[]).contains("series 1 {}: series has no labels"));
    assert!(bad(&[("a", "")]).contains("no labels"));
    assert!(bad(&[("job", "x")]).contains("no metric name"));
    assert!(bad(&[("__name__", ""), ("job", "x")]).contains("no metric name"));
    // Colons are fine in metric names but not in label names.
    assert!(decode_pb(&pb::WriteRequest {
        timeseries: vec![pb_series(&[("__name__", "a:b_c1")], &[])],
        metadata: vec![]
    })
    .is_ok());
    assert!(bad(&[("__name__", "x"), ("a:b", "1")]).contains("invalid label name"));
}

/// Writes a single-series request with raw label bytes, bypassing prost's `String` UTF-8 rule.
fn raw_request(labels: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut ts = Vec::new();
    for (n, v) in labels {
        let mut l = Vec::new();
        l.push(0x0a);
        put_varint(&mut l, n.len() as u64);
        l.extend_from_slice(n);
        l.push(0x12);
        put_varint(&mut l, v.len() as u64);
        l.extend_from_slice(v);
        ts.push(0x0a);
        put_varint(&mut ts, l.len() as u64);
        ts.extend_from_slice(&l);
    }
    let mut req = vec![0x0a];
    put_varint(&mut req, ts.len() as u64);
    req.extend_from_slice(&ts);
    req
}

#[test]
fn rejects_non_utf8() {
    let e = decode_protobuf(raw_request(&[(b"__name__", b"x"), (b"a", b"\xff\xfe")])).unwrap_err();
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    let e = decode_protobuf(raw_request(&[(b"__name__", b"x"), (b"\xc3\xa9", b"v")])).unwrap_err();
    assert!(e.to_string().contains("invalid label name"), "{e}");
    assert_eq!(e.kind(), tocsin_model::ErrorKind::BadData);
}

#[test]
fn rejects_bad_snappy_and_protobuf() {
    let e = decode(b"\xff\xff\xff\xff\xff\xff").unwrap_err();
    assert!(matches!(e, Error::Snappy(_)), "{e}");
    let e = decode(
        &snap::raw::Encoder::new()
            .compress_vec(b"hello world")
            .unwrap(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Protobuf { .. }), "{e}");
    // Framed snappy (the stream format) is not what remote write uses.
    let mut framed = Vec::new();
    {
        use std::io::Write;
        let mut w = snap::write::FrameEncoder::new(&mut framed);
        w.write_all(&raw_request(&[(b"__name__", b"x")])).unwrap();
    }
    assert!(decode(&framed).is_err());
    // Length running past the end.
    assert!(decode_protobuf(vec![0x0a, 0x05, 0x0a]).is_err());
    // Truncated varint.
    assert!(decode_protobuf(vec![0x0a, 0x80]).is_err());
    // Overlong varint (11 bytes).
    assert!(decode_protobuf(vec![
        0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01
    ])
    .is_err());
    // 10th byte too big.
    assert!(decode_protobuf(vec![
        0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02
    ])
    .is_err());
    // Field number 0.
    assert!(decode_protobuf(vec![0x00, 0x00]).is_err());
    // Group wire type.
    assert!(decode_protobuf(vec![0x0b, 0x0c]).is_err());
    // timeseries with the wrong wire type.
    assert!(decode_protobuf(vec![0x08, 0x01]).is_err());
}

#[test]
fn skips_unknown_fields_of_every_wire_type() {
    // Unknown fields at all three levels: request (field 9), series (field 15), label (field 7),
    // sample (field 5), covering varint, i64, len and i32 wire types.
    let mut label = vec![0x0a, 0x08];
    label.extend_from_slice(b"__name__");
    label.extend_from_slice(&[0x12, 0x01, b'm']);
    label.extend_from_slice(&[0x38, 0x96, 0x01]); // field 7 varint 150
    let mut sample = vec![0x09];
    sample.extend_from_slice(&2.5f64.to_bits().to_le_bytes());
    sample.extend_from_slice(&[0x10, 0x2a]); // t = 42
    sample.extend_from_slice(&[0x2d, 1, 2, 3, 4]); // field 5 i32
    let mut ts = vec![0x0a, label.len() as u8];
    ts.extend_from_slice(&label);
    ts.extend_from_slice(&[0x12, sample.len() as u8]);
    ts.extend_from_slice(&sample);
    ts.extend_from_slice(&[0x79, 1, 2, 3, 4, 5, 6, 7, 8]); // field 15 i64
    let mut req = vec![0x4a, 0x03, b'a', b'b', b'c']; // field 9 len
    req.extend_from_slice(&[0x0a, ts.len() as u8]);
    req.extend_from_slice(&ts);
    req.extend_from_slice(&[0x48, 0x01]); // field 9 varint
    let w = decode_protobuf(req).unwrap();
    assert_eq!(
        owned(&w),
        vec![(vec![("__name__".into(), "m".into())], vec![(42, 2.5)])]
    );
}

#[test]
fn negative_timestamps_and_special_floats() {
    let samples = [
        (-1i64, f64::NAN),
        (i64::MIN, f64::INFINITY),
        (i64::MAX, -0.0),
        (0, f64::from_bits(0x7ff0000000000002)),
    ];
    let body = encode([(&[("__name__", "m")][..], &samples[..])]);
    let w = decode(&body).unwrap();
    let got = w.series_at(0).unwrap().samples().to_vec();
    for (a, b) in got.iter().zip(samples.iter()) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1.to_bits(), b.1.to_bits());
    }
}

#[test]
fn decode_into_reuses_and_clears_on_error() {
    let mut w = DecodedWrite::default();
    let good = encode([(&[("__name__", "a")][..], &[(1, 1.0)][..])]);
    w.decode_into(&good, 1 << 20).unwrap();
    assert_eq!(w.sample_count(), 1);
    assert!(w.decode_into(b"\x01", 1 << 20).is_err());
    assert_eq!(w.series_count(), 0);
    let e = w.decode_into(&good, 4).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,12}"
}

fn arb_series() -> impl Strategy<Value = (Pairs, Vec<(i64, f64)>)> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
        proptest::collection::btree_map(arb_name(), "\\PC{0,16}", 0..8),
        proptest::collection::vec((any::<i64>(), any::<f64>()), 0..4),
    )
        .prop_map(|(metric, labels, samples)| {
            let mut l: Vec<(String, String)> = labels
                .into_iter()
                .filter(|(n, _)| n != "__name__")
                .collect();
            l.push(("__name__".to_string(), metric));
            // Any order on the wire; the decoder must sort.
            l.reverse();
            (l, samples)
        })
}

fn expected(series: &[(Pairs, Vec<(i64, f64)>)]) -> Bits {
    series
        .iter()
        .map(|(l, s)| {
            let mut l: Vec<_> = l.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
            l.sort();
            (l, s.iter().map(|&(t, v)| (t, v.to_bits())).collect())
        })
        .collect()
}

fn bits(o: Owned) -> Bits {
    o.into_iter()
        .map(|(l, s)| (l, s.into_iter().map(|(t, v)| (t, v.to_bits())).collect()))
        .collect()
}

fn charset_by_table(s: &[u8], start: u8, rest: u8) -> bool {
    match s.split_first() {
        Some((f, t)) => {
            CLASSES[*f as usize] & start != 0 && t.iter().all(|b| CLASSES[*b as usize] & rest != 0)
        }
        None => false,
    }
}

#[test]
fn charset_check_matches_table_exhaustively_per_byte() {
    for len in 1..20 {
        for b in 0..=255u8 {
            for pos in 0..len {
                let mut s = vec![b'a'; len];
                s[pos] = b;
                for (st, re) in [(NAME_START, NAME_REST), (METRIC_START, METRIC_REST)] {
                    assert_eq!(
                        matches_charset(&s, st, re),
                        charset_by_table(&s, st, re),
                        "{s:?}"
                    );
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn charset_check_matches_table(s in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'_'), Just(b':'), Just(b'z'), Just(b'0')], 0..40)) {
        for (st, re) in [(NAME_START, NAME_REST), (METRIC_START, METRIC_REST)] {
            prop_assert_eq!(matches_charset(&s, st, re), charset_by_table(&s, st, re));
        }
    }

    #[test]
    fn prost_encoded_decodes_the_same(series in proptest::collection::vec(arb_series(), 0..12)) {
        let req = pb::WriteRequest {
            timeseries: series.iter().map(|(l, s)| pb::TimeSeries {
                labels: l.iter().map(|(n, v)| pb_label(n, v)).collect(),
                samples: s.iter().map(|&(t, v)| pb::Sample { value: v, timestamp: t }).collect(),
                ..Default::default()
            }).collect(),
            metadata: vec![],
        };
        let w = decode_pb(&req).unwrap();
        // prost omits a -0.0 value as the default, so it arrives as +0.0.
        let norm: Vec<_> = series
            .iter()
            .map(|(l, s)| (l.clone(), s.iter().map(|&(t, v)| (t, if v == 0.0 { 0.0 } else { v })).collect()))
            .collect();
        prop_assert_eq!(bits(owned(&w)), expected(&norm));
    }

    #[test]
    fn our_encoding_decodes_with_prost(series in proptest::collection::vec(arb_series(), 0..12)) {
        let refs: Vec<RefSeries<'_>> = series
            .iter()
            .map(|(l, s)| (l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(), &s[..]))
            .collect();
        let body = encode(refs.iter().map(|(l, s)| (&l[..], *s)));
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let got = pb::WriteRequest::decode(&raw[..]).unwrap();
        prop_assert_eq!(got.timeseries.len(), series.len());
        for (g, (l, s)) in got.timeseries.iter().zip(series.iter()) {
            let gl: Vec<(String, String)> = g.labels.iter().map(|x| (x.name.clone(), x.value.clone())).collect();
            prop_assert_eq!(&gl, l);
            let gs: Vec<(i64, u64)> = g.samples.iter().map(|x| (x.timestamp, x.value.to_bits())).collect();
            let es: Vec<(i64, u64)> = s.iter().map(|&(t, v)| (t, v.to_bits())).collect();
            prop_assert_eq!(gs, es);
        }
        // And round-trips through our own decoder.
        let w = decode(&body).unwrap();
        prop_assert_eq!(bits(owned(&w)), expected(&series));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_protobuf(bytes.clone());
        let _ = decode(&bytes);
    }

    #[test]
    fn truncations_and_corruptions_never_panic(series in proptest::collection::vec(arb_series(), 1..4), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let refs: Vec<RefSeries<'_>> = series
            .iter()
            .map(|(l, s)| (l.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(), &s[..]))
            .collect();
        let mut b = WriteRequestBuilder::new();
        for (l, s) in &refs {
            b.add_series(l.iter().copied(), s);
        }
        let raw = b.protobuf().to_vec();
        let _ = decode_protobuf(raw[..cut.index(raw.len())].to_vec());
        let mut c = raw.clone();
        let i = flip.index(c.len());
        c[i] ^= 1 << bit;
        let _ = decode_protobuf(c);
    }
}

/// A realistic request: `n` node-exporter-like series with 8 labels and one sample each.
fn realistic_request(n: usize, t: i64) -> Vec<u8> {
    let mut b = WriteRequestBuilder::new();
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    for i in 0..n {
        let host = format!(
            "ip-10-20-{}-{}.eu-west-1.compute.internal:9100",
            i / 200,
            i % 250
        );
        let cpu = (i % 16).to_string();
        let labels = [
            ("__name__", "node_cpu_seconds_total"),
            ("availability_zone", "eu-west-1b"),
            ("cpu", cpu.as_str()),
            ("env", "production"),
            ("instance", host.as_str()),
            ("job", "node-exporter"),
            ("mode", modes[i % 8]),
            ("region", "eu-west-1"),
        ];
        b.add_series(
            labels.iter().copied(),
            &[(t + (i as i64 % 7), 123456.78 + i as f64)],
        );
    }
    b.finish()
}

/// On-CPU nanoseconds of this thread, so the figure holds up when other processes share the cores.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

/// Run with `cargo test --release -p tocsin-collect decode_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn decode_speed() {
    let body = realistic_request(2000, 1_700_000_000_000);
    let raw_len = snap::raw::decompress_len(&body).unwrap();
    let mut w = DecodedWrite::default();
    let iters = 2000;
    // Warm up, then time decoding plus walking every pair as the server would.
    w.decode_into(&body, DEFAULT_MAX_DECOMPRESSED_BYTES)
        .unwrap();
    let start = std::time::Instant::now();
    let cpu0 = thread_cpu_ns();
    let mut total = 0usize;
    let mut check = 0usize;
    for _ in 0..iters {
        w.decode_into(&body, DEFAULT_MAX_DECOMPRESSED_BYTES)
            .unwrap();
        for s in w.series() {
            check += s.labels().len();
            total += s.samples().len();
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - cpu0) as f64 / 1e9;
    let el = if cpu > 0.0 { cpu } else { wall };
    let snappy_start = thread_cpu_ns();
    let mut out = vec![0u8; raw_len];
    for _ in 0..iters {
        snap::raw::Decoder::new()
            .decompress(&body, &mut out)
            .unwrap();
    }
    let snappy = (thread_cpu_ns() - snappy_start) as f64 / 1e9;
    println!(
        "request: {} bytes compressed, {} raw; decode+view: {:.2} M samples/s per CPU-second (wall {wall:.2}s, cpu {el:.2}s; {:.1} µs/request, of which snappy {:.1} µs); {check} pairs",
        body.len(),
        raw_len,
        total as f64 / el / 1e6,
        el / iters as f64 * 1e6,
        snappy / iters as f64 * 1e6,
    );
}
