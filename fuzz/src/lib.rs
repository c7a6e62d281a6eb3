//! What the fuzz targets share: a fresh in-memory store to append decoded samples into (as the
//! ingest endpoints do, so label validation in the appender is exercised), the small fixed store
//! PromQL is evaluated against, and the fixed "now" every target uses so runs are reproducible.

use tocsin_model::Labels;
use tocsin_storage::{Appendable, MemoryStore};

/// 2026-01-01T00:00:00Z: every target's "now", so a crash replays the same way.
pub const NOW_MS: i64 = 1_767_225_600_000;

/// Appends `(pairs, t, v)` to a fresh store the way the ingest handlers do: sample rejections are
/// counted and skipped, any other error drops the batch.
pub fn append_all<'a>(items: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, i64, f64)>) {
    let store = MemoryStore::new();
    let mut app = store.appender();
    for (pairs, t, v) in items {
        match app.append_pairs(&pairs, t, v) {
            Ok(_) => {}
            Err(e) if e.is_sample_rejection() => {}
            Err(_) => {
                app.rollback();
                return;
            }
        }
    }
    let _ = app.commit();
}

/// A small store: a few series of counters, gauges and a classic histogram, one sample every
/// 15 s over the hour before [`NOW_MS`], plus a stale marker, so most PromQL functions have
/// something to chew on without making any single evaluation expensive.
pub fn promql_store() -> MemoryStore {
    let store = MemoryStore::new();
    let mut app = store.appender();
    let step = 15_000;
    let start = NOW_MS - 3_600_000;
    let mut series: Vec<(Labels, Box<dyn Fn(i64) -> f64>)> = Vec::new();
    for (job, inst) in [("api", "a:1"), ("api", "b:1"), ("db", "c:1")] {
        let l = Labels::from_pairs(&[
            ("__name__", "http_requests_total"),
            ("job", job),
            ("instance", inst),
        ]);
        let k = inst.len() as f64;
        series.push((l, Box::new(move |i| (i as f64) * k)));
        let l = Labels::from_pairs(&[("__name__", "temp"), ("job", job), ("instance", inst)]);
        series.push((l, Box::new(move |i| ((i as f64) / 7.0).sin() * 10.0 + k)));
    }
    for le in ["0.1", "0.5", "1", "+Inf"] {
        let l = Labels::from_pairs(&[
            ("__name__", "lat_seconds_bucket"),
            ("job", "api"),
            ("le", le),
        ]);
        let f: f64 = le.parse().unwrap_or(f64::INFINITY);
        series.push((l, Box::new(move |i| (i as f64) * f.min(2.0))));
    }
    series.push((
        Labels::from_pairs(&[("__name__", "up"), ("job", "db")]),
        Box::new(|i| if i % 10 == 0 { 0.0 } else { 1.0 }),
    ));
    for (l, f) in &series {
        for i in 0..=240i64 {
            let _ = app.append(l, start + i * step, f(i), &Default::default());
        }
    }
    let stale = Labels::from_pairs(&[("__name__", "gone"), ("job", "db")]);
    let _ = app.append(&stale, start, 1.0, &Default::default());
    let _ = app.append(
        &stale,
        start + step,
        tocsin_model::STALE_NAN,
        &Default::default(),
    );
    let _ = app.commit();
    store
}

thread_local! {
    static EXPFMT_PARSER: std::cell::RefCell<tocsin_collect::expfmt::Parser> =
        std::cell::RefCell::new(tocsin_collect::expfmt::Parser::new());
}

/// One exposition body as a scrape parses it: the scrape loop's reusable parser (kept across
/// inputs, as a loop keeps it across scrapes), every entry looked at, and the samples of a body
/// that parsed appended to the store.
pub fn exposition(data: &[u8], format: tocsin_collect::expfmt::Format) {
    use tocsin_collect::expfmt::Entry;
    EXPFMT_PARSER.with(|cell| {
        let mut parser = cell.borrow_mut();
        let mut items = Vec::new();
        let res = parser.parse(data, format, |e| match e {
            Entry::Sample(s) => {
                let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(s.labels.len() + 1);
                pairs.push(("__name__", s.name));
                pairs.extend_from_slice(s.labels);
                pairs.sort_unstable();
                let pairs: Vec<(String, String)> = pairs
                    .into_iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect();
                items.push((pairs, s.timestamp_ms.unwrap_or(NOW_MS), s.value));
            }
            Entry::Type { name, kind } => {
                let _ = (name.len(), kind.as_str());
            }
            Entry::Help { name, text } | Entry::Unit { name, unit: text } => {
                let _ = (name.len(), text.len());
            }
        });
        if res.is_ok() {
            append_all(items.iter().map(|(p, t, v)| {
                (
                    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect(),
                    *t,
                    *v,
                )
            }));
        }
    });
}
