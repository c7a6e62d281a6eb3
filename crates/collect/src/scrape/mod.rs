//! Scraping: the manager keeps one pool per job; a pool runs the job's discoverers, turns target
//! groups into targets (relabelling), and keeps one [`scrape_loop::ScrapeLoop`] task per target.
//! A reload keeps pools whose job config is unchanged untouched (their targets keep their state and
//! schedule); a changed job is restarted without staleness markers; a removed job's series go stale.

pub mod config;
pub mod metadata;
pub mod scrape_loop;
pub mod target;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tocsin_model::Labels;
use tocsin_storage::Appendable;
use tokio::sync::{mpsc, watch};

use crate::discovery::TargetGroup;
pub use config::{GlobalConfig, ResolvedScrape, ScrapeConfig};
pub use metadata::{MetadataStore, MetadataView, MetricMetadata, NoMetadata};
use scrape_loop::{ScrapeLoop, StopMode};
use target::Populated;
pub use target::{Health, Target, TargetStatus};

/// Counters for tocsin's own `/metrics`.
#[derive(Debug, Default)]
pub struct ScrapeMetrics {
    pub scrapes: AtomicU64,
    pub scrapes_failed: AtomicU64,
    pub samples: AtomicU64,
    pub samples_rejected: AtomicU64,
    pub stale_markers: AtomicU64,
    /// Scrapes failed because they had more samples than `sample_limit`.
    pub exceeded_sample_limit: AtomicU64,
}

/// A target as `/api/v1/targets` shows it.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    pub pool: String,
    pub target: Arc<Target>,
}

#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub pool: String,
    pub discovered: BTreeMap<String, String>,
}

/// Read view for the HTTP API.
pub trait TargetsView: Send + Sync {
    fn active_targets(&self) -> Vec<ActiveTarget>;
    fn dropped_targets(&self) -> Vec<DroppedTarget>;
    /// Dropped targets per pool, without copying their labels (pools with none are left out).
    fn dropped_counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for d in self.dropped_targets() {
            *out.entry(d.pool).or_default() += 1;
        }
        out
    }
}

/// No scraping: for servers and tests without a scrape manager.
pub struct NoTargets;

impl TargetsView for NoTargets {
    fn active_targets(&self) -> Vec<ActiveTarget> {
        Vec::new()
    }
    fn dropped_targets(&self) -> Vec<DroppedTarget> {
        Vec::new()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("scrape_configs[{index}] (job {job:?}): {field}: {message}")]
pub struct ConfigError {
    pub index: usize,
    pub job: String,
    pub field: String,
    pub message: String,
}

struct Pool {
    cfg: Arc<ResolvedScrape>,
    stop: watch::Sender<StopMode>,
    state: Arc<PoolState>,
}

#[derive(Default)]
struct PoolState {
    active: Mutex<Vec<Arc<Target>>>,
    dropped: Mutex<Vec<BTreeMap<String, String>>>,
}

pub struct ScrapeManager {
    appendable: Arc<dyn Appendable>,
    metrics: Arc<ScrapeMetrics>,
    pools: Mutex<BTreeMap<String, Pool>>,
    metadata: Arc<MetadataStore>,
}

impl ScrapeManager {
    pub fn new(appendable: Arc<dyn Appendable>, metrics: Arc<ScrapeMetrics>) -> Self {
        Self {
            appendable,
            metrics,
            pools: Mutex::new(BTreeMap::new()),
            metadata: Arc::new(MetadataStore::new()),
        }
    }

    /// Metric metadata the loops have scraped.
    pub fn metadata(&self) -> Arc<MetadataStore> {
        self.metadata.clone()
    }

    /// Checks every job against the global defaults; the first error names the job and field.
    pub fn validate(
        global: &GlobalConfig,
        jobs: &[ScrapeConfig],
    ) -> Result<Vec<ResolvedScrape>, ConfigError> {
        let (out, errs) = Self::validate_all(global, jobs);
        match errs.into_iter().next() {
            None => Ok(out),
            Some(e) => Err(e),
        }
    }

    /// Checks every job against the global defaults, returning every problem of every job.
    pub fn validate_all(
        global: &GlobalConfig,
        jobs: &[ScrapeConfig],
    ) -> (Vec<ResolvedScrape>, Vec<ConfigError>) {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(jobs.len());
        let mut errs = Vec::new();
        for (index, j) in jobs.iter().enumerate() {
            let mut p = Vec::new();
            if !seen.insert(j.job_name.clone()) {
                p.push((
                    "job_name".to_string(),
                    format!(
                        "found multiple scrape configs with job name {:?}",
                        j.job_name
                    ),
                ));
            }
            out.push(j.resolve_checked(global, &mut p));
            errs.extend(p.into_iter().map(|(field, message)| ConfigError {
                index,
                job: j.job_name.clone(),
                field,
                message,
            }));
        }
        (out, errs)
    }

    /// Starts, keeps, restarts or stops pools to match `jobs`. Must run inside a tokio runtime.
    /// `base` resolves relative file paths (the config file's directory).
    pub fn apply(
        &self,
        global: &GlobalConfig,
        jobs: &[ScrapeConfig],
        base: &Path,
    ) -> Result<(), ConfigError> {
        let resolved = Self::validate(global, jobs)?;
        // Clients are built before anything changes, so a bad certificate file rejects the reload.
        let mut clients = Vec::with_capacity(resolved.len());
        for (index, r) in resolved.iter().enumerate() {
            let c = r
                .cfg
                .http
                .build_client(
                    base,
                    Duration::from_millis(r.timeout_ms as u64),
                    r.cfg.enable_compression,
                )
                .map_err(|e| ConfigError {
                    index,
                    job: r.cfg.job_name.clone(),
                    field: "http".into(),
                    message: e.to_string(),
                })?;
            clients.push(c);
        }
        let mut pools = self.pools.lock();
        let keep: std::collections::HashSet<&str> =
            resolved.iter().map(|r| r.cfg.job_name.as_str()).collect();
        let gone: Vec<String> = pools
            .keys()
            .filter(|k| !keep.contains(k.as_str()))
            .cloned()
            .collect();
        for k in gone {
            if let Some(p) = pools.remove(&k) {
                let _ = p.stop.send(StopMode::Stale);
            }
        }
        for (r, client) in resolved.into_iter().zip(clients) {
            if let Some(p) = pools.get(&r.cfg.job_name) {
                if *p.cfg == r {
                    continue;
                }
                let _ = p.stop.send(StopMode::Quiet);
            }
            let name = r.cfg.job_name.clone();
            let pool = self.start_pool(Arc::new(r), client, base.to_path_buf());
            pools.insert(name, pool);
        }
        Ok(())
    }

    /// Stops every loop; series are not marked stale (the process is going away, and a restart
    /// continues them).
    pub fn stop(&self) {
        let mut pools = self.pools.lock();
        for (_, p) in std::mem::take(&mut *pools) {
            let _ = p.stop.send(StopMode::Quiet);
        }
    }

    fn start_pool(
        &self,
        cfg: Arc<ResolvedScrape>,
        client: tocsin_httpclient::Client,
        base: PathBuf,
    ) -> Pool {
        let (stop_tx, stop_rx) = watch::channel(StopMode::Running);
        let state = Arc::new(PoolState::default());
        let (tx, rx) = mpsc::channel::<(usize, Vec<TargetGroup>)>(16);
        let (dstop_tx, dstop_rx) = watch::channel(false);
        start_discovery(&cfg.cfg, &base, tx, dstop_rx);
        let runner = PoolRunner {
            cfg: cfg.clone(),
            client,
            appendable: self.appendable.clone(),
            metrics: self.metrics.clone(),
            metadata: self.metadata.clone(),
            state: state.clone(),
            loops: HashMap::new(),
        };
        tokio::spawn(runner.run(rx, stop_rx, dstop_tx));
        Pool {
            cfg,
            stop: stop_tx,
            state,
        }
    }
}

impl TargetsView for ScrapeManager {
    fn active_targets(&self) -> Vec<ActiveTarget> {
        let pools = self.pools.lock();
        let mut out = Vec::new();
        for (name, p) in pools.iter() {
            for t in p.state.active.lock().iter() {
                out.push(ActiveTarget {
                    pool: name.clone(),
                    target: t.clone(),
                });
            }
        }
        out
    }

    fn dropped_targets(&self) -> Vec<DroppedTarget> {
        let pools = self.pools.lock();
        let mut out = Vec::new();
        for (name, p) in pools.iter() {
            for d in p.state.dropped.lock().iter() {
                out.push(DroppedTarget {
                    pool: name.clone(),
                    discovered: d.clone(),
                });
            }
        }
        out
    }

    fn dropped_counts(&self) -> BTreeMap<String, usize> {
        let pools = self.pools.lock();
        pools
            .iter()
            .map(|(name, p)| (name.clone(), p.state.dropped.lock().len()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

struct PoolRunner {
    cfg: Arc<ResolvedScrape>,
    client: tocsin_httpclient::Client,
    appendable: Arc<dyn Appendable>,
    metrics: Arc<ScrapeMetrics>,
    metadata: Arc<MetadataStore>,
    state: Arc<PoolState>,
    loops: HashMap<u64, (Arc<Target>, watch::Sender<StopMode>)>,
}

impl PoolRunner {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<(usize, Vec<TargetGroup>)>,
        mut stop: watch::Receiver<StopMode>,
        _discovery_stop: watch::Sender<bool>,
    ) {
        // Latest groups per (provider, source); an update replaces a source's group.
        let mut groups: BTreeMap<(usize, String), TargetGroup> = BTreeMap::new();
        let mut dirty = false;
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    match msg {
                        Some((provider, gs)) => {
                            for g in gs {
                                groups.insert((provider, g.source.clone()), g);
                            }
                            dirty = true;
                        }
                        None => {
                            if dirty {
                                self.sync(&groups);
                            }
                            // Every discoverer ended (static only): wait for the stop signal.
                            let mode = wait_stop(&mut stop).await;
                            self.stop_all(mode);
                            return;
                        }
                    }
                }
                // Updates arriving together (a file with many groups, several providers at
                // start-up) are applied once.
                _ = tokio::time::sleep(Duration::from_millis(100)), if dirty => {
                    self.sync(&groups);
                    dirty = false;
                }
                r = stop.changed() => {
                    let mode = if r.is_ok() { *stop.borrow() } else { StopMode::Quiet };
                    if mode != StopMode::Running {
                        self.stop_all(mode);
                        return;
                    }
                }
            }
        }
    }

    fn stop_all(&mut self, mode: StopMode) {
        for (_, (_, tx)) in self.loops.drain() {
            let _ = tx.send(mode);
        }
        self.state.active.lock().clear();
    }

    /// Recomputes the target set and starts or stops loops to match it.
    fn sync(&mut self, groups: &BTreeMap<(usize, String), TargetGroup>) {
        let mut active: Vec<Arc<Target>> = Vec::new();
        let mut dropped = Vec::new();
        let mut want: HashMap<u64, Target> = HashMap::new();
        for g in groups.values() {
            for t in &g.targets {
                let mut labels = g.labels.clone();
                for (k, v) in t {
                    labels.insert(k.clone(), v.clone());
                }
                match target::populate(&self.cfg, labels) {
                    Populated::Target(t) => {
                        want.entry(t.key()).or_insert(t);
                    }
                    Populated::Dropped(d) => dropped.push(d),
                    Populated::Invalid(d, why) => {
                        tracing::warn!(job = %self.cfg.cfg.job_name, "dropping target: {why}");
                        dropped.push(d);
                    }
                }
            }
        }
        if self.cfg.target_limit > 0 && want.len() as u64 > self.cfg.target_limit {
            tracing::error!(
                job = %self.cfg.cfg.job_name,
                "target_limit exceeded ({} targets, limit {}); scraping none",
                want.len(),
                self.cfg.target_limit
            );
            want.clear();
        }
        let gone: Vec<u64> = self
            .loops
            .keys()
            .filter(|k| !want.contains_key(k))
            .copied()
            .collect();
        for k in gone {
            if let Some((_, tx)) = self.loops.remove(&k) {
                let _ = tx.send(StopMode::Stale);
            }
        }
        for (k, t) in want {
            if let Some((existing, _)) = self.loops.get(&k) {
                active.push(existing.clone());
                continue;
            }
            let t = Arc::new(t);
            let (tx, rx) = watch::channel(StopMode::Running);
            let l = ScrapeLoop::new(
                t.clone(),
                self.cfg.clone(),
                self.client.clone(),
                self.appendable.clone(),
                self.metrics.clone(),
            )
            .with_metadata(self.metadata.clone());
            tokio::spawn(l.run(rx));
            self.loops.insert(k, (t.clone(), tx));
            active.push(t);
        }
        active.sort_by(|a, b| a.labels.cmp(&b.labels));
        let keep = self.cfg.keep_dropped_targets;
        if keep > 0 && dropped.len() as u64 > keep {
            dropped.truncate(keep as usize);
        }
        *self.state.active.lock() = active;
        *self.state.dropped.lock() = dropped;
    }
}

/// Runs every discoverer of a job; each one's updates reach the pool tagged with its index, so
/// group sources only need to be unique within a discoverer.
fn start_discovery(
    cfg: &ScrapeConfig,
    base: &Path,
    tx: mpsc::Sender<(usize, Vec<TargetGroup>)>,
    stop: watch::Receiver<bool>,
) {
    use crate::discovery::{Discoverer, FileDiscoverer, HttpDiscoverer, StaticDiscoverer};
    let mut ds: Vec<Box<dyn Discoverer>> = Vec::new();
    if !cfg.static_configs.is_empty() {
        ds.push(Box::new(StaticDiscoverer::new(&cfg.static_configs)));
    }
    for f in &cfg.file_sd_configs {
        let mut f = f.clone();
        f.set_directory(base);
        ds.push(Box::new(FileDiscoverer::new(&f)));
    }
    for h in &cfg.http_sd_configs {
        match HttpDiscoverer::new(h) {
            Ok(d) => ds.push(Box::new(d)),
            Err(e) => tracing::error!(job = %cfg.job_name, "http_sd_configs: {e}"),
        }
    }
    crate::discovery::spawn_tagged(ds, &tx, &stop, |i| i);
}

async fn wait_stop(stop: &mut watch::Receiver<StopMode>) -> StopMode {
    loop {
        let m = *stop.borrow();
        if m != StopMode::Running {
            return m;
        }
        if stop.changed().await.is_err() {
            return StopMode::Quiet;
        }
    }
}

/// Labels of a target for display (sorted map).
pub fn labels_map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect()
}
