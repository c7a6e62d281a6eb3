//! Head statistics for the status page and `tsdb analyze`: cardinality by metric and label pair from
//! the postings, and per-series memory.

use super::*;

impl Head {
    /// Index statistics from the postings alone (one pass over the label pairs, no series
    /// touched), so a status page can be asked for often without slowing ingest.
    pub fn postings_stats(&self, limit: usize) -> PostingsStats {
        let p = self.postings.read();
        let mut by_metric = Vec::new();
        let mut values_by_name = Vec::with_capacity(p.map.len());
        let mut bytes_by_name = Vec::with_capacity(p.map.len());
        let mut by_pair = Vec::new();
        let mut pairs = 0u64;
        for (name, vals) in p.map.iter() {
            pairs += vals.len() as u64;
            values_by_name.push((name.as_str(), "", vals.len() as u64));
            let mut bytes = 0u64;
            for (v, b) in vals {
                let n = b.len();
                bytes += v.len() as u64 * n;
                if name == tocsin_model::METRIC_NAME {
                    by_metric.push((v.as_str(), "", n));
                }
                by_pair.push((name.as_str(), v.as_str(), n));
            }
            bytes_by_name.push((name.as_str(), "", bytes));
        }
        PostingsStats {
            num_label_pairs: pairs,
            series_count_by_metric_name: names(top(by_metric, limit)),
            label_value_count_by_label_name: names(top(values_by_name, limit)),
            memory_in_bytes_by_label_name: names(top(bytes_by_name, limit)),
            series_count_by_label_value_pair: top(by_pair, limit)
                .into_iter()
                .map(|(n, v, c)| (format!("{n}={v}"), c))
                .collect(),
        }
    }

    /// Labels of every head series with its sample count; for `tsdb analyze`.
    pub fn series_stats(&self) -> Vec<(Labels, u64)> {
        let mut out = Vec::new();
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            for s in st.series.iter().flatten() {
                let mut it = self.series_iter(s, i64::MIN, i64::MAX);
                let mut n = 0u64;
                while it.next().is_some() {
                    n += 1;
                }
                out.push((st.materialize(s), n));
            }
        }
        out
    }

    pub fn stats(&self) -> HeadStats {
        let mut hs = HeadStats {
            series: self.num_series(),
            min_time: self.min_time(),
            max_time: self.max_time(),
            ..Default::default()
        };
        for stripe in self.stripes.iter() {
            let st = stripe.lock();
            for s in st.series.iter().flatten() {
                hs.heap_bytes += s.heap_size() as u64;
                for c in &s.closed {
                    match c.loc {
                        ChunkLoc::Mem(_) => hs.chunks_in_memory += 1,
                        ChunkLoc::Disk(_) => hs.chunks_spilled += 1,
                    }
                }
                if s.open().is_some() {
                    hs.chunks_in_memory += 1;
                }
            }
        }
        hs
    }
}

/// Keeps the `limit` entries with the largest count, largest first, ties by name then value.
/// Selecting before sorting keeps this linear in the number of label pairs.
fn top<'a>(mut v: Vec<(&'a str, &'a str, u64)>, limit: usize) -> Vec<(&'a str, &'a str, u64)> {
    let order = |a: &(&str, &str, u64), b: &(&str, &str, u64)| {
        b.2.cmp(&a.2)
            .then_with(|| a.0.cmp(b.0))
            .then_with(|| a.1.cmp(b.1))
    };
    if limit == 0 {
        return Vec::new();
    }
    if v.len() > limit {
        v.select_nth_unstable_by(limit - 1, order);
        v.truncate(limit);
    }
    v.sort_unstable_by(order);
    v
}

fn names(v: Vec<(&str, &str, u64)>) -> Vec<(String, u64)> {
    v.into_iter().map(|(n, _, c)| (n.to_string(), c)).collect()
}
