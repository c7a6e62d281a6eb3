//! One target's scrape loop: fetch on the target's interval (at a fixed per-target offset so a job's
//! targets are spread over the interval), parse, apply `honor_labels` and `metric_relabel_configs`,
//! enforce the limits, append, write staleness markers for series that vanished, and the report
//! series (`up`, `scrape_duration_seconds`, ...). A failed scrape appends nothing but `up` = 0 and
//! the report series, and marks every series of the last good scrape stale, as Prometheus does.
//! `# TYPE`/`# HELP`/`# UNIT` lines that changed since the target's last good scrape go to the
//! shared metadata store (see `metadata.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin_model::{Labels, LabelsBuilder, STALE_NAN};
use tocsin_storage::{AppendOptions, Appendable};

use super::config::ResolvedScrape;
use super::metadata::{MetadataStore, TargetMetadata};
use super::target::{Health, Target};
use super::ScrapeMetrics;
use crate::expfmt::{Entry, Format, Parser, SCRAPE_ACCEPT_HEADER};
use crate::relabel;

/// What the loop remembers about one exposed series between scrapes.
struct CacheEntry {
    /// Final labels; `None` when metric relabelling drops the series.
    labels: Option<Labels>,
    /// Scrape iteration that last saw it, and the one before (to tell, after a scrape that failed
    /// half-way, which series the last good scrape had).
    seen: u64,
    prev: u64,
    /// Exposed with its own timestamp: Prometheus writes no staleness marker for those.
    explicit_ts: bool,
    /// The store's reference for the series, once an append returned one; 0 = none.
    sref: u64,
}

/// Series of a target between scrapes: entries in a slab, found by the series as exposed (name
/// and labels), so unchanged series skip relabelling and the store's label lookup.
#[derive(Default)]
struct Cache {
    index: HashMap<Box<[u8]>, u32, xxhash_rust::xxh3::Xxh3DefaultBuilder>,
    entries: Vec<CacheEntry>,
    free: Vec<u32>,
}

impl Cache {
    fn insert(&mut self, key: &[u8], e: CacheEntry) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = e;
                i
            }
            None => {
                self.entries.push(e);
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(key.into(), idx);
        idx
    }

    fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
        self.free.clear();
    }
}

pub struct ScrapeLoop {
    pub target: Arc<Target>,
    pub cfg: Arc<ResolvedScrape>,
    pub client: tocsin_httpclient::Client,
    pub appendable: Arc<dyn Appendable>,
    pub metrics: Arc<ScrapeMetrics>,
    parser: Parser,
    body: Vec<u8>,
    key: Vec<u8>,
    cache: Cache,
    /// Staged samples of the current scrape: cache entry, timestamp, value.
    batch: Vec<(u32, i64, f64)>,
    iter: u64,
    /// Where changed `# TYPE`/`# HELP`/`# UNIT` text goes; `None` = not tracked.
    metadata: Option<Arc<MetadataStore>>,
    target_md: TargetMetadata,
}

/// Why a scrape failed; becomes `lastError`.
type ScrapeError = String;

impl ScrapeLoop {
    pub fn new(
        target: Arc<Target>,
        cfg: Arc<ResolvedScrape>,
        client: tocsin_httpclient::Client,
        appendable: Arc<dyn Appendable>,
        metrics: Arc<ScrapeMetrics>,
    ) -> Self {
        Self {
            target,
            cfg,
            client,
            appendable,
            metrics,
            parser: Parser::new(),
            body: Vec::new(),
            key: Vec::new(),
            cache: Cache::default(),
            batch: Vec::new(),
            iter: 0,
            metadata: None,
            target_md: TargetMetadata::default(),
        }
    }

    /// Feeds the target's metric metadata to `store`.
    pub fn with_metadata(mut self, store: Arc<MetadataStore>) -> Self {
        self.metadata = Some(store);
        self
    }

    /// Offset of this target's scrapes within the interval, stable across restarts so a target's
    /// samples keep their spacing.
    pub fn offset_ms(&self) -> i64 {
        (self.target.key() % self.target.interval_ms.max(1) as u64) as i64
    }

    /// Runs until `stop` turns true. Returns whether end-of-run staleness was written.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<StopMode>) {
        let interval = self.target.interval_ms.max(1);
        let now = now_ms();
        let mut next = now - now.rem_euclid(interval) + self.offset_ms();
        if next < now {
            next += interval;
        }
        loop {
            let wait = Duration::from_millis((next - now_ms()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = stop.changed() => {
                    let mode = if r.is_ok() { *stop.borrow() } else { StopMode::Stale };
                    if mode != StopMode::Running {
                        if mode == StopMode::Stale {
                            self.end_of_run_staleness();
                        }
                        return;
                    }
                    continue;
                }
            }
            let start = now_ms();
            self.scrape_once(start).await;
            next += interval;
            // A scrape that overran its slot skips the missed ticks instead of bursting.
            let n = now_ms();
            if next <= n {
                next += ((n - next) / interval + 1) * interval;
            }
        }
    }

    /// One scrape at `ts` (Unix ms). Public for tests.
    pub async fn scrape_once(&mut self, ts: i64) {
        let started = Instant::now();
        self.iter += 1;
        let res = self.fetch().await;
        let res = match res {
            Ok(ct) => self.parse_and_stage(ts, ct),
            Err(e) => Err(e),
        };
        match (&res, &self.metadata) {
            (Ok(_), Some(store)) => {
                let changed = self.target_md.commit();
                if !changed.is_empty() {
                    store.update(changed);
                }
            }
            _ => self.target_md.discard(),
        }
        let duration = started.elapsed().as_secs_f64();
        let (scraped, post, added) = match &res {
            Ok(x) => *x,
            Err(_) => (0, 0, 0),
        };
        let up = res.is_ok();
        if !up {
            self.batch.clear();
        }
        let mut app = self.appendable.appender();
        let entries = &mut self.cache.entries;
        // Samples the store refuses one by one (too far in the future, over a label limit, out
        // of order): dropped from this scrape, counted, and the first one logged.
        let mut refused = 0u64;
        let mut first_refusal: Option<String> = None;
        for (idx, t, v) in self.batch.drain(..) {
            let e = &mut entries[idx as usize];
            let Some(l) = &e.labels else { continue };
            let res = match app.append_ref(e.sref, t, v) {
                Ok(true) => continue,
                Ok(false) => app.append(l, t, v, &AppendOptions::default()),
                Err(err) => Err(err),
            };
            match res {
                Ok(r) => {
                    if r != 0 {
                        e.sref = r;
                    }
                }
                Err(err) if err.is_sample_rejection() => {
                    refused += 1;
                    if first_refusal.is_none() {
                        first_refusal = Some(err.to_string());
                    }
                }
                Err(err) => {
                    tracing::warn!(target = %self.target.url, "append failed: {err}");
                    break;
                }
            }
        }
        if let Some(first) = &first_refusal {
            tracing::warn!(target = %self.target.url, refused, first = %first, "scraped samples refused by storage");
        }
        // Staleness: series of the previous scrape missing from this one (or all of them after a
        // failed scrape) get a marker at this scrape's time.
        let iter = self.iter;
        let mut stale = 0u64;
        let Cache {
            index,
            entries,
            free,
        } = &mut self.cache;
        index.retain(|_, idx| {
            let e = &mut entries[*idx as usize];
            let in_last_good = iter > 1
                && if up {
                    e.seen == iter - 1
                } else {
                    e.seen == iter - 1 || (e.seen == iter && e.prev == iter - 1)
                };
            if up && e.seen == iter {
                return true;
            }
            if in_last_good && !e.explicit_ts {
                if let Some(l) = &e.labels {
                    if app
                        .append(l, ts, STALE_NAN, &AppendOptions::default())
                        .is_ok()
                    {
                        stale += 1;
                    }
                }
            }
            e.labels = None;
            free.push(*idx);
            false
        });
        let report = [
            ("up", if up { 1.0 } else { 0.0 }),
            ("scrape_duration_seconds", duration),
            ("scrape_samples_scraped", scraped as f64),
            ("scrape_samples_post_metric_relabeling", post as f64),
            ("scrape_series_added", added as f64),
        ];
        for (name, v) in report {
            let l = self.report_labels(name);
            let _ = app.append(&l, ts, v, &AppendOptions::default());
        }
        let rejected = refused
            + match app.commit() {
                Ok(st) => st.rejected(),
                Err(e) => {
                    tracing::warn!(target = %self.target.url, "commit failed: {e}");
                    0
                }
            };
        let m = &self.metrics;
        use std::sync::atomic::Ordering::Relaxed;
        m.scrapes.fetch_add(1, Relaxed);
        m.samples.fetch_add(post as u64, Relaxed);
        m.samples_rejected.fetch_add(rejected, Relaxed);
        m.stale_markers.fetch_add(stale, Relaxed);
        let mut st = self.target.status.lock();
        st.last_scrape_ms = ts;
        st.last_duration_secs = duration;
        st.last_samples = post as u64;
        match res {
            Ok(_) => {
                st.health = Health::Up;
                st.last_error.clear();
            }
            Err(e) => {
                m.scrapes_failed.fetch_add(1, Relaxed);
                if st.last_error != e {
                    tracing::debug!(target = %self.target.url, "scrape failed: {e}");
                }
                st.health = Health::Down;
                st.last_error = e;
            }
        }
    }

    fn report_labels(&self, name: &str) -> Labels {
        let mut b = LabelsBuilder::new();
        for l in self.target.labels.iter() {
            b.set(&l.name, &l.value);
        }
        b.set("__name__", name);
        b.build()
    }

    /// Fetches the body into `self.body`; returns the response's Content-Type.
    async fn fetch(&mut self) -> Result<Option<String>, ScrapeError> {
        let timeout = Duration::from_millis(self.target.timeout_ms.max(1) as u64);
        let req = self
            .client
            .get(&self.target.url)
            .header(reqwest::header::ACCEPT, SCRAPE_ACCEPT_HEADER)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
            .timeout(timeout);
        let mut resp = req.send().await.map_err(describe)?;
        if !resp.status().is_success() {
            return Err(format!("server returned HTTP status {}", resp.status()));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let limit = self.cfg.body_size_limit;
        self.body.clear();
        while let Some(chunk) = resp.chunk().await.map_err(describe)? {
            if limit > 0 && (self.body.len() + chunk.len()) as u64 > limit {
                return Err(format!("body size limit exceeded ({limit} bytes)"));
            }
            self.body.extend_from_slice(&chunk);
        }
        Ok(ct)
    }

    /// Parses the body and stages samples in `self.batch`. Returns (scraped, after relabelling,
    /// new series).
    fn parse_and_stage(
        &mut self,
        ts: i64,
        ct: Option<String>,
    ) -> Result<(usize, usize, usize), ScrapeError> {
        let format = Format::from_content_type(ct.as_deref());
        let cfg = self.cfg.clone();
        let target = self.target.clone();
        let honor_ts = cfg.cfg.honor_timestamps;
        let iter = self.iter;
        let mut scraped = 0usize;
        let mut post = 0usize;
        let mut added = 0usize;
        let mut err: Option<String> = None;
        self.batch.clear();
        let (cache, key, batch) = (&mut self.cache, &mut self.key, &mut self.batch);
        let track_md = self.metadata.is_some();
        let target_md = &mut self.target_md;
        let parsed = self.parser.parse(&self.body, format, |e| {
            let s = match e {
                Entry::Sample(s) => s,
                other => {
                    if track_md {
                        target_md.observe(&other);
                    }
                    return;
                }
            };
            if err.is_some() {
                return;
            }
            scraped += 1;
            key.clear();
            key.extend_from_slice(s.name.as_bytes());
            for (n, v) in s.labels.iter() {
                key.push(0xff);
                key.extend_from_slice(n.as_bytes());
                key.push(0xfe);
                key.extend_from_slice(v.as_bytes());
            }
            let t = match (honor_ts, s.timestamp_ms) {
                (true, Some(t)) => t,
                _ => ts,
            };
            let idx = match cache.index.get(key.as_slice()) {
                Some(&i) => i,
                None => {
                    let labels = match series_labels(&cfg, &target, s.name, s.labels) {
                        Ok(l) => l,
                        Err(e) => {
                            err = Some(e);
                            return;
                        }
                    };
                    if labels.is_some() {
                        added += 1;
                    }
                    cache.insert(
                        key,
                        CacheEntry {
                            labels,
                            seen: 0,
                            prev: 0,
                            explicit_ts: false,
                            sref: 0,
                        },
                    )
                }
            };
            let entry = &mut cache.entries[idx as usize];
            if entry.seen != iter {
                entry.prev = entry.seen;
                entry.seen = iter;
            }
            entry.explicit_ts =
                honor_ts && s.timestamp_ms.is_some() && !cfg.cfg.track_timestamps_staleness;
            if entry.labels.is_some() {
                post += 1;
                batch.push((idx, t, s.value));
            }
        });
        if let Err(e) = parsed {
            return Err(e.to_string());
        }
        if let Some(e) = err {
            return Err(e);
        }
        if cfg.sample_limit > 0 && post as u64 > cfg.sample_limit {
            self.metrics
                .exceeded_sample_limit
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(format!(
                "sample limit exceeded: {post} samples after relabelling, limit {}",
                cfg.sample_limit
            ));
        }
        Ok((scraped, post, added))
    }

    /// Marks every series of the last scrape stale, and the report series, when the target goes
    /// away (it left discovery or its job was removed).
    fn end_of_run_staleness(&mut self) {
        let ts = now_ms();
        let mut app = self.appendable.appender();
        let last = self.iter;
        for e in &self.cache.entries {
            if e.seen == last && !e.explicit_ts {
                if let Some(l) = &e.labels {
                    let _ = app.append(l, ts, STALE_NAN, &AppendOptions::default());
                }
            }
        }
        if self.iter > 0 {
            for name in [
                "up",
                "scrape_duration_seconds",
                "scrape_samples_scraped",
                "scrape_samples_post_metric_relabeling",
                "scrape_series_added",
            ] {
                let l = self.report_labels(name);
                let _ = app.append(&l, ts, STALE_NAN, &AppendOptions::default());
            }
        }
        if let Err(e) = app.commit() {
            tracing::warn!(target = %self.target.url, "writing staleness markers failed: {e}");
        }
        self.cache.clear();
    }
}

/// How a loop is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Running,
    /// The target went away: mark its series stale.
    Stale,
    /// Replaced by a reload: the new loop continues the same series, so no markers.
    Quiet,
}

/// Labels of one exposed series: target labels merged per `honor_labels`, then metric relabelling
/// and the label limits. `Ok(None)` = dropped by relabelling; `Err` fails the scrape.
fn series_labels(
    cfg: &ResolvedScrape,
    target: &Target,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<Option<Labels>, String> {
    let mut b = LabelsBuilder::new();
    b.set("__name__", name);
    for (n, v) in labels {
        if *n == "__name__" {
            continue;
        }
        if !v.is_empty() {
            b.set(n, v);
        }
    }
    for l in target.labels.iter() {
        if cfg.cfg.honor_labels {
            if b.get(&l.name).is_none() {
                b.set(&l.name, &l.value);
            }
        } else {
            if let Some(existing) = b.get(&l.name).map(str::to_string) {
                // Clashing exposed labels are kept as `exported_<name>`, target labels win.
                let mut exported = format!("exported_{}", l.name);
                while b.get(&exported).is_some() {
                    exported = format!("exported_{exported}");
                }
                b.set(&exported, &existing);
            }
            b.set(&l.name, &l.value);
        }
    }
    if !relabel::process(&mut b, &cfg.cfg.metric_relabel_configs) {
        return Ok(None);
    }
    let l = b.build();
    if l.get("__name__").is_none_or(|n| n.is_empty()) {
        return Ok(None);
    }
    if cfg.label_limit > 0 && l.len() as u64 > cfg.label_limit {
        return Err(format!(
            "label_limit exceeded (metric: {}, number of labels: {}, limit: {})",
            name,
            l.len(),
            cfg.label_limit
        ));
    }
    for lab in l.iter() {
        if cfg.label_name_length_limit > 0 && lab.name.len() as u64 > cfg.label_name_length_limit {
            return Err(format!(
                "label_name_length_limit exceeded (metric: {name}, label name: {})",
                lab.name
            ));
        }
        if cfg.label_value_length_limit > 0 && lab.value.len() as u64 > cfg.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded (metric: {name}, label: {})",
                lab.name
            ));
        }
    }
    if let Err(e) = l.validate() {
        return Err(format!("invalid series {l}: {e}"));
    }
    Ok(Some(l))
}

/// The error with its causes, each said once (see `httpclient::error_chain`).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "context deadline exceeded (scrape timeout)".to_string()
    } else {
        crate::httpclient::error_chain(&e)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
