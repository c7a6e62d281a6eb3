//! Head statistics for the status page and `tsdb analyze`: cardinality by metric and label pair from
//! the postings, per-series memory, and series created per hour.

use super::*;

use std::collections::VecDeque;

const HOUR_MS: i64 = 3_600_000;
/// Hours of series creations kept.
pub const CREATED_HOURS: usize = 24;

/// The wall clock in Unix ms (series creation is not tied to sample time, which may be old).
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Series created by this process per wall-clock hour, the last `CREATED_HOURS` hours. Only
/// creations by appends count: series read back from the WAL at startup were created before, at
/// a time nobody recorded.
#[derive(Default)]
pub(crate) struct CreatedPerHour {
    /// (hour number since the epoch, creations), oldest first.
    buckets: Mutex<VecDeque<(i64, u64)>>,
}

impl CreatedPerHour {
    pub(crate) fn record(&self, now_ms: i64) {
        let hour = now_ms.div_euclid(HOUR_MS);
        let mut b = self.buckets.lock();
        if let Some(e) = b.iter_mut().rev().find(|(h, _)| *h == hour) {
            e.1 += 1;
            return;
        }
        // A clock stepped back past the kept hours: nowhere to count it.
        if b.len() >= CREATED_HOURS && b.front().is_some_and(|(h, _)| *h > hour) {
            return;
        }
        b.push_back((hour, 1));
        b.make_contiguous().sort_unstable_by_key(|(h, _)| *h);
        while b.len() > CREATED_HOURS {
            b.pop_front();
        }
    }

    /// One entry per hour of the last `CREATED_HOURS` up to the one holding `now_ms`: (hour
    /// start in Unix ms, series created), oldest first, hours without creations as 0.
    pub(crate) fn last_hours(&self, now_ms: i64) -> Vec<(i64, u64)> {
        let now_h = now_ms.div_euclid(HOUR_MS);
        let b = self.buckets.lock();
        (0..CREATED_HOURS as i64)
            .rev()
            .map(|ago| {
                let h = now_h - ago;
                let n = b.iter().find(|(x, _)| *x == h).map_or(0, |(_, n)| *n);
                (h * HOUR_MS, n)
            })
            .collect()
    }
}

impl Head {
    /// Series created by appends per wall-clock hour over the last 24 hours, oldest first:
    /// (hour start, Unix ms; count).
    pub fn series_created_per_hour(&self) -> Vec<(i64, u64)> {
        self.created_per_hour.last_hours(wall_ms())
    }

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

#[cfg(test)]
mod created_tests {
    use super::*;

    #[test]
    fn creations_are_counted_per_hour_for_the_last_day() {
        let c = CreatedPerHour::default();
        let t0 = 1_767_225_600_000; // an hour boundary
        c.record(t0 + 1);
        c.record(t0 + HOUR_MS - 1);
        c.record(t0 + 3 * HOUR_MS);
        // Far in the past of every kept hour once a day is kept: dropped.
        for h in 0..30 {
            c.record(t0 + (4 + h) * HOUR_MS);
        }
        let now = t0 + 33 * HOUR_MS + 5;
        let v = c.last_hours(now);
        assert_eq!(v.len(), CREATED_HOURS);
        assert_eq!(v[CREATED_HOURS - 1], (t0 + 33 * HOUR_MS, 1));
        assert_eq!(v[0].0, t0 + 10 * HOUR_MS);
        assert!(v.iter().all(|(_, n)| *n == 1));
        // The first hours fell out of the window.
        let early = c.last_hours(t0 + HOUR_MS / 2);
        assert_eq!(early[CREATED_HOURS - 1], (t0, 0));
        c.record(t0);
        assert_eq!(c.last_hours(now)[0].1, 1, "too old to keep: not counted");
    }
}
