//! Matcher evaluation over an inverted index, shared by the in-memory head and the on-disk blocks:
//! the `IndexReader` trait both implement and `postings_for_matchers`, which turns a list of label
//! matchers into the set of series ids selecting all of them with Prometheus semantics.

use roaring::RoaringBitmap;
use tocsin_model::{MatchOp, Matcher};

/// An inverted index over series ids (u32), implemented by the in-memory head and by blocks.
pub trait IndexReader {
    /// Sorted distinct values of label `name` (empty if unknown).
    fn label_values(&self, name: &str) -> Vec<String>;

    /// Values of `name` starting with `prefix` (sorted). Implementations with a sorted value list
    /// should override this with a seek; the default filters `label_values`.
    fn label_values_with_prefix(&self, name: &str, prefix: &str) -> Vec<String> {
        self.label_values(name)
            .into_iter()
            .filter(|v| v.starts_with(prefix))
            .collect()
    }

    /// Series ids having label `name` with exactly `value`.
    fn postings(&self, name: &str, value: &str) -> RoaringBitmap;

    /// Every series id in the index.
    fn all_postings(&self) -> RoaringBitmap;
}

/// Union of the postings of every value of `m.name` that `keep` accepts, looking values up directly
/// when the matcher names them (equality, literal alternations) and seeking by prefix when it can.
fn union_matching<I: IndexReader + ?Sized>(
    ix: &I,
    m: &Matcher,
    keep: impl Fn(&str) -> bool,
    direct: Option<Vec<&str>>,
) -> RoaringBitmap {
    let mut out = RoaringBitmap::new();
    if let Some(vals) = direct {
        for v in vals {
            if !v.is_empty() && keep(v) {
                out |= ix.postings(&m.name, v);
            }
        }
        return out;
    }
    let values = match (m.op, m.prefix()) {
        (MatchOp::Regex, Some(p)) => ix.label_values_with_prefix(&m.name, p),
        _ => ix.label_values(&m.name),
    };
    for v in values.iter().filter(|v| keep(v)) {
        out |= ix.postings(&m.name, v);
    }
    out
}

/// Series ids matching ALL matchers, with Prometheus semantics: a matcher that matches the empty
/// string also selects series without that label (`a!="x"`, `a=~".*"`, `a=""`); `=~` with a literal
/// set looks up each value directly, a literal prefix seeks in the sorted values; negative matchers
/// subtract. No matchers select every series.
pub fn postings_for_matchers<I: IndexReader + ?Sized>(ix: &I, ms: &[Matcher]) -> RoaringBitmap {
    // Positive matchers (not matching "") narrow by intersection; the rest subtract the series whose
    // value they reject. Evaluating all intersections first keeps the working set small.
    let mut acc: Option<RoaringBitmap> = None;
    let mut subtract: Vec<&Matcher> = Vec::new();
    for m in ms {
        if m.matches_empty() {
            subtract.push(m);
            continue;
        }
        if acc.as_ref().is_some_and(|a| a.is_empty()) {
            return RoaringBitmap::new();
        }
        let direct = match m.op {
            MatchOp::Equal => Some(vec![m.value.as_str()]),
            MatchOp::Regex => m
                .set_values()
                .map(|s| s.iter().map(String::as_str).collect()),
            _ => None,
        };
        let p = union_matching(ix, m, |v| m.matches(v), direct);
        acc = Some(match acc {
            Some(a) => a & p,
            None => p,
        });
    }
    let mut acc = match acc {
        Some(a) => a,
        None => ix.all_postings(),
    };
    for m in subtract {
        if acc.is_empty() {
            break;
        }
        // `=~".*"` rejects nothing.
        if m.op == MatchOp::Regex && m.value == ".*" {
            continue;
        }
        // Values this matcher rejects; `a!="x"` rejects exactly "x", so look it up directly.
        let direct = match m.op {
            MatchOp::NotEqual => Some(vec![m.value.as_str()]),
            _ => None,
        };
        let rejected = union_matching(ix, m, |v| !m.matches(v), direct);
        acc -= rejected;
    }
    acc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;
    use tocsin_model::Labels;

    /// A brute-force index over a list of label sets, ids = positions.
    struct MemIndex {
        series: Vec<Labels>,
        post: BTreeMap<(String, String), RoaringBitmap>,
    }

    impl MemIndex {
        fn new(series: Vec<Labels>) -> Self {
            let mut post: BTreeMap<(String, String), RoaringBitmap> = BTreeMap::new();
            for (i, ls) in series.iter().enumerate() {
                for l in ls.iter() {
                    post.entry((l.name.clone(), l.value.clone()))
                        .or_default()
                        .insert(i as u32);
                }
            }
            Self { series, post }
        }
    }

    impl IndexReader for MemIndex {
        fn label_values(&self, name: &str) -> Vec<String> {
            self.post
                .keys()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        }
        fn postings(&self, name: &str, value: &str) -> RoaringBitmap {
            self.post
                .get(&(name.to_string(), value.to_string()))
                .cloned()
                .unwrap_or_default()
        }
        fn all_postings(&self) -> RoaringBitmap {
            (0..self.series.len() as u32).collect()
        }
    }

    fn brute(ix: &MemIndex, ms: &[Matcher]) -> RoaringBitmap {
        ix.series
            .iter()
            .enumerate()
            .filter(|(_, ls)| ms.iter().all(|m| m.matches(ls.get(&m.name).unwrap_or(""))))
            .map(|(i, _)| i as u32)
            .collect()
    }

    fn fixture() -> MemIndex {
        let mut v = Vec::new();
        for name in [
            "up",
            "node_cpu_seconds_total",
            "node_disk_io",
            "http_requests_total",
        ] {
            for inst in ["a:9100", "b:9100", "c:9100"] {
                for mode in ["", "idle", "user", "system"] {
                    for dev in ["", "sda", "nvme0n1"] {
                        v.push(Labels::from_pairs(&[
                            ("__name__", name),
                            ("instance", inst),
                            ("mode", mode),
                            ("device", dev),
                            ("job", "node"),
                        ]));
                    }
                }
            }
        }
        v.push(Labels::from_pairs(&[("__name__", "lonely")]));
        v.push(Labels::from_pairs(&[("other", "x")]));
        v.sort();
        v.dedup();
        MemIndex::new(v)
    }

    #[test]
    fn matchers_agree_with_brute_force() {
        let ix = fixture();
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        use MatchOp::*;
        let cases: Vec<Vec<Matcher>> = vec![
            vec![],
            vec![m(Equal, "__name__", "up")],
            vec![m(Equal, "__name__", "nope")],
            vec![m(Equal, "mode", "")],
            vec![m(Equal, "nolabel", "")],
            vec![m(NotEqual, "mode", "")],
            vec![m(NotEqual, "mode", "idle")],
            vec![m(NotEqual, "nolabel", "x")],
            vec![m(Regex, "mode", ".*")],
            vec![m(Regex, "mode", ".+")],
            vec![m(Regex, "mode", "idle|user")],
            vec![m(Regex, "mode", "idle|user|missing")],
            vec![m(Regex, "mode", "idle|")],
            vec![m(Regex, "__name__", "node_.*")],
            vec![m(Regex, "__name__", "node_d.*")],
            vec![m(Regex, "__name__", ".*_total")],
            vec![m(Regex, "mode", "(i|u).*")],
            vec![m(NotRegex, "mode", "idle|user")],
            vec![m(NotRegex, "mode", ".*")],
            vec![m(NotRegex, "mode", ".+")],
            vec![m(NotRegex, "mode", "")],
            vec![m(NotRegex, "__name__", "node_.*")],
            vec![
                m(Equal, "__name__", "up"),
                m(NotEqual, "instance", "a:9100"),
                m(Regex, "device", "sd.*"),
            ],
            vec![
                m(Equal, "job", "node"),
                m(Equal, "device", ""),
                m(NotRegex, "mode", "idle"),
            ],
            vec![
                m(Regex, "__name__", ".+"),
                m(Equal, "instance", "b:9100"),
                m(Regex, "mode", "|system"),
            ],
            vec![m(Equal, "__name__", "up"), m(Equal, "__name__", "lonely")],
            vec![m(Regex, "other", "x|y"), m(NotEqual, "__name__", "up")],
            vec![m(Equal, "__name__", ""), m(Regex, "other", ".*")],
        ];
        for ms in cases {
            assert_eq!(
                postings_for_matchers(&ix, &ms),
                brute(&ix, &ms),
                "matchers {ms:?}"
            );
        }
    }

    #[test]
    fn default_prefix_filters() {
        let ix = fixture();
        assert_eq!(
            ix.label_values_with_prefix("__name__", "node_"),
            vec![
                "node_cpu_seconds_total".to_string(),
                "node_disk_io".to_string()
            ]
        );
        assert!(ix.label_values("missing").is_empty());
    }
}
