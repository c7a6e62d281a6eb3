use std::sync::Arc;

use parking_lot::Mutex;
use tocsin_model::{Labels, MatchOp, Matcher, Sample};
use tocsin_storage::{AppendOptions, Appendable, MemoryStore, Queryable, SelectHints};

use super::fanout::{remote_matchers, required_present, ReadFanout, ReadSource, RemoteSet};
use super::proto::{MatcherType, Query};
use super::{decode_samples, proto, RawSeries, ReadError};

/// A remote answering from a fixed list of series (filtered by equality matchers), recording
/// the queries it got.
struct Fake {
    series: Vec<RawSeries>,
    read_recent: bool,
    required: Vec<(String, String)>,
    fail: bool,
    got: Mutex<Vec<Query>>,
}

impl Fake {
    fn new(series: Vec<RawSeries>) -> Self {
        Self {
            series,
            read_recent: true,
            required: Vec::new(),
            fail: false,
            got: Mutex::new(Vec::new()),
        }
    }
}

impl ReadSource for Fake {
    fn name(&self) -> &str {
        "peer"
    }
    fn read_recent(&self) -> bool {
        self.read_recent
    }
    fn required_matchers(&self) -> &[(String, String)] {
        &self.required
    }
    fn filter_external_labels(&self) -> bool {
        true
    }
    fn read(&self, q: Query) -> Result<Vec<RawSeries>, ReadError> {
        self.got.lock().push(q.clone());
        if self.fail {
            return Err(ReadError::Unavailable {
                name: "peer".into(),
                url: "http://127.0.0.1:1/api/v1/read".into(),
                reason: "connection refused".into(),
            });
        }
        Ok(self
            .series
            .iter()
            .filter(|s| {
                q.matchers.iter().all(|m| {
                    m.r#type != MatcherType::Eq as i32
                        || s.labels.iter().any(|(n, v)| n == &m.name && v == &m.value)
                })
            })
            .cloned()
            .collect())
    }
}

fn raw(pairs: &[(&str, &str)], ts: &[i64]) -> RawSeries {
    RawSeries {
        labels: pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        samples: ts.iter().map(|t| Sample::new(*t, *t as f64)).collect(),
    }
}

fn local(series: &[(&str, &[i64])]) -> Arc<MemoryStore> {
    let m = Arc::new(MemoryStore::new());
    {
        let mut a = m.appender();
        for (name, ts) in series {
            for t in *ts {
                a.append(
                    &Labels::from_pairs(&[("__name__", *name)]),
                    *t,
                    *t as f64 + 0.5,
                    &AppendOptions::default(),
                )
                .unwrap();
            }
        }
        a.commit().unwrap();
    }
    m
}

fn fanout(local: Arc<MemoryStore>, start: i64, src: Arc<Fake>) -> ReadFanout {
    let f = ReadFanout::new(local, Arc::new(move || start));
    f.apply(RemoteSet {
        sources: vec![src as Arc<dyn ReadSource>],
        external_labels: vec![("replica".into(), "b".into())],
        strip: Vec::new(),
    });
    f
}

fn select(
    f: &ReadFanout,
    mint: i64,
    maxt: i64,
    name: &str,
) -> (Vec<(Labels, Vec<Sample>)>, Vec<String>) {
    let q = f.querier(mint, maxt).unwrap();
    let out = q
        .select(&SelectHints::default(), &[Matcher::equal("__name__", name)])
        .unwrap()
        .map(|s| s.unwrap().collect_samples())
        .collect();
    (out, q.warnings())
}

#[test]
fn series_with_a_gap_is_filled_from_the_peer_local_samples_winning() {
    let l = local(&[("up", &[10, 20, 50, 60])]);
    let peer = Arc::new(Fake::new(vec![raw(
        &[("__name__", "up"), ("replica", "b")],
        &[10, 20, 30, 40, 50, 60, 70],
    )]));
    let f = fanout(l, 10, peer.clone());
    let (s, w) = select(&f, 0, 65, "up");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        s.len(),
        1,
        "the replica label is stripped, so the series meet"
    );
    assert_eq!(s[0].0, Labels::from_pairs(&[("__name__", "up")]));
    let got: Vec<(i64, f64)> = s[0].1.iter().map(|x| (x.t, x.v)).collect();
    assert_eq!(
        got,
        vec![
            (10, 10.5),
            (20, 20.5),
            (30, 30.0),
            (40, 40.0),
            (50, 50.5),
            (60, 60.5)
        ],
        "local samples win on equal timestamps; the peer's fill the gap; 70 is past maxt"
    );
    // The external label went out as an equality matcher.
    let q = peer.got.lock()[0].clone();
    assert!(q
        .matchers
        .iter()
        .any(|m| m.name == "replica" && m.value == "b" && m.r#type == MatcherType::Eq as i32));
    assert_eq!((q.start_timestamp_ms, q.end_timestamp_ms), (0, 65));
}

#[test]
fn read_recent_false_asks_only_for_time_before_the_local_data() {
    let l = local(&[("up", &[100, 110])]);
    let mut fake = Fake::new(vec![raw(
        &[("__name__", "up"), ("replica", "b")],
        &[50, 60, 105],
    )]);
    fake.read_recent = false;
    let peer = Arc::new(fake);
    let f = fanout(l, 100, peer.clone());
    let (s, _) = select(&f, 0, 200, "up");
    let ts: Vec<i64> = s[0].1.iter().map(|x| x.t).collect();
    assert_eq!(ts, vec![50, 60, 100, 110], "105 is in the local range");
    assert_eq!(peer.got.lock()[0].end_timestamp_ms, 100);
    // A range the local storage covers whole does not go out at all.
    select(&f, 101, 200, "up");
    assert_eq!(peer.got.lock().len(), 1);
}

#[test]
fn required_matchers_gate_the_remote() {
    let mut fake = Fake::new(vec![raw(
        &[("__name__", "up"), ("dc", "x"), ("replica", "b")],
        &[1],
    )]);
    fake.required = vec![("dc".into(), "x".into())];
    let peer = Arc::new(fake);
    let f = fanout(local(&[]), i64::MAX, peer.clone());
    let (s, _) = select(&f, 0, 10, "up");
    assert!(s.is_empty());
    assert!(peer.got.lock().is_empty());
    let q = f.querier(0, 10).unwrap();
    let ms = [Matcher::equal("__name__", "up"), Matcher::equal("dc", "x")];
    let n = q.select(&SelectHints::default(), &ms).unwrap().count();
    assert_eq!(n, 1);
    assert!(!required_present(
        &[("dc".into(), "x".into())],
        &[Matcher::new(MatchOp::Regex, "dc", "x").unwrap()]
    ));
}

#[test]
fn a_failing_remote_is_a_warning_and_local_data_is_kept() {
    let mut fake = Fake::new(Vec::new());
    fake.fail = true;
    let f = fanout(local(&[("up", &[1, 2])]), 1, Arc::new(fake));
    let (s, w) = select(&f, 0, 10, "up");
    assert_eq!(s[0].1.len(), 2);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("remote_read \"peer\""), "{w:?}");
    assert!(w[0].contains("connection refused"), "{w:?}");
}

#[test]
fn labels_and_values_include_the_remotes() {
    let peer = Arc::new(Fake::new(vec![raw(
        &[("__name__", "only_peer"), ("zone", "z1"), ("replica", "b")],
        &[1],
    )]));
    let f = fanout(local(&[("up", &[1])]), 1, peer.clone());
    let q = f.querier(0, 10).unwrap();
    assert_eq!(q.label_names(&[]).unwrap(), vec!["__name__", "zone"]);
    assert_eq!(
        q.label_values("__name__", &[]).unwrap(),
        vec!["only_peer", "up"]
    );
    let got = peer.got.lock()[0].clone();
    assert_eq!(got.hints.unwrap().func, "series");
}

#[test]
fn matchers_translate_to_the_protocol() {
    let ms = [
        Matcher::equal("a", "1"),
        Matcher::new(MatchOp::NotEqual, "b", "2").unwrap(),
        Matcher::new(MatchOp::Regex, "c", "x|y").unwrap(),
        Matcher::new(MatchOp::NotRegex, "replica", ".+").unwrap(),
    ];
    let ext = vec![
        ("region".to_string(), "eu".to_string()),
        ("replica".to_string(), "b".to_string()),
    ];
    let (out, added) = remote_matchers(&ms, &ext, true);
    let got: Vec<(i32, &str, &str)> = out
        .iter()
        .map(|m| (m.r#type, m.name.as_str(), m.value.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "a", "1"),
            (1, "b", "2"),
            (2, "c", "x|y"),
            (3, "replica", ".+"),
            (0, "region", "eu"),
        ],
        "an external label the selector already constrains is left alone"
    );
    assert_eq!(added, vec!["region"]);
    let (out, added) = remote_matchers(&ms, &ext, false);
    assert_eq!(out.len(), 4);
    assert!(added.is_empty());
}

#[test]
fn samples_answers_decode() {
    use prost::Message;
    let r = proto::ReadResponse {
        results: vec![proto::QueryResult {
            timeseries: vec![proto::TimeSeries {
                labels: vec![proto::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![proto::Sample {
                    value: 1.5,
                    timestamp: 7,
                }],
                histograms: Vec::new(),
            }],
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&r.encode_to_vec())
        .unwrap();
    let s = decode_samples(&body).unwrap();
    assert_eq!(s[0].samples, vec![Sample::new(7, 1.5)]);
    assert!(decode_samples(b"not snappy at all").is_err());
}

#[test]
fn several_remotes_are_read_and_merged_one_failing() {
    let a = Arc::new(Fake::new(vec![raw(
        &[("__name__", "up"), ("replica", "b")],
        &[10, 30],
    )]));
    let b = Arc::new(Fake::new(vec![raw(
        &[("__name__", "up"), ("replica", "b")],
        &[20, 30, 40],
    )]));
    let mut down = Fake::new(Vec::new());
    down.fail = true;
    let f = ReadFanout::new(local(&[("up", &[50])]), Arc::new(|| 50));
    f.apply(RemoteSet {
        sources: vec![
            a as Arc<dyn ReadSource>,
            b as Arc<dyn ReadSource>,
            Arc::new(down) as Arc<dyn ReadSource>,
        ],
        external_labels: vec![("replica".into(), "b".into())],
        strip: Vec::new(),
    });
    let (s, w) = select(&f, 0, 100, "up");
    let ts: Vec<i64> = s[0].1.iter().map(|x| x.t).collect();
    assert_eq!(ts, vec![10, 20, 30, 40, 50]);
    assert_eq!(w.len(), 1, "{w:?}");
}
