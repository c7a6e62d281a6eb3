//! Remote write out: `remote_write:` queues that read samples from the TSDB's WAL and forward
//! them to Prometheus remote-write receivers (VictoriaMetrics, Mimir, Thanos Receive, Prometheus).
//!
//! Owns the section's config types, one queue per remote (WAL reader, shards, position file under
//! `<data>/remote/`), and its metrics. Because samples are read back from the WAL and the position
//! is saved only once the receiver acknowledged them, an outage of the receiver or a restart of
//! the server loses nothing the WAL still holds.

pub mod config;
pub mod metadata;
pub mod metrics;
pub mod position;
pub mod queue;
pub mod send;
pub mod shard;
pub mod v2;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tocsin_collect::scrape::MetadataView;
use tocsin_model::Labels;
use tokio::sync::watch;

pub use config::{MetadataConfig, Protocol, QueueConfig, RemoteWriteConfig};
pub use metrics::QueueMetrics;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("remote_write[{index}]: {message}")]
    Config { index: usize, message: String },
}

struct Running {
    /// Everything the queue was built from; equal on reload = keep it running.
    fingerprint: String,
    url: String,
    metrics: Arc<QueueMetrics>,
    handle: queue::QueueHandle,
    metadata: Option<tokio::task::JoinHandle<()>>,
}

/// A queue's metrics with its identity, for `/metrics`.
#[derive(Debug, Clone)]
pub struct QueueSnapshot {
    pub name: String,
    pub url: String,
    pub metrics: Arc<QueueMetrics>,
}

/// All remote-write queues of the server.
pub struct RemoteWrite {
    wal_dir: PathBuf,
    root: PathBuf,
    metadata: Arc<dyn MetadataView>,
    queues: Mutex<BTreeMap<String, Running>>,
}

impl std::fmt::Debug for RemoteWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteWrite({})", self.root.display())
    }
}

/// A client and endpoint for one config, as the queue will use it: checks credential and
/// certificate files now.
pub fn endpoint(c: &RemoteWriteConfig, base: &Path) -> Result<send::Endpoint, String> {
    let timeout = Duration::from_millis(c.remote_timeout.0.max(1) as u64);
    let client = c
        .http
        .build_client(base, timeout, false)
        .map_err(|e| e.to_string())?;
    let q = &c.queue_config;
    Ok(send::Endpoint {
        client,
        url: c.url.clone(),
        headers: send::request_headers(&c.headers, c.protocol().unwrap_or(Protocol::V1)),
        timeout,
        min_backoff: Duration::from_millis(q.min_backoff.0.max(1) as u64),
        max_backoff: Duration::from_millis(q.max_backoff.0.max(1) as u64),
        retry_on_429: q.retry_on_http_429,
        name: c.queue_name(),
    })
}

impl RemoteWrite {
    /// `data_dir` holds `wal/` and gets `remote/`.
    pub fn new(data_dir: &Path, metadata: Arc<dyn MetadataView>) -> Self {
        Self {
            wal_dir: data_dir.join("wal"),
            root: data_dir.join("remote"),
            metadata,
            queues: Mutex::new(BTreeMap::new()),
        }
    }

    /// Brings the running queues in line with `cfgs`: unchanged remotes keep running, changed
    /// ones restart (from their saved position), removed ones stop. Every client is built before
    /// anything changes, so an error leaves the running queues as they were. Must be called
    /// within a Tokio runtime.
    pub fn apply(
        &self,
        cfgs: &[RemoteWriteConfig],
        external_labels: &Labels,
        base: &Path,
    ) -> Result<(), Error> {
        let mut built = Vec::with_capacity(cfgs.len());
        for (index, c) in cfgs.iter().enumerate() {
            let msg = config::problems(std::slice::from_ref(c));
            if let Some((_, m)) = msg.into_iter().next() {
                return Err(Error::Config { index, message: m });
            }
            let ep = endpoint(c, base).map_err(|message| Error::Config { index, message })?;
            built.push((c, ep));
        }
        let mut queues = self.queues.lock();
        let mut keep = BTreeMap::new();
        for (c, ep) in built {
            let name = c.queue_name();
            let fingerprint = format!("{c:?}|{external_labels:?}|{}", base.display());
            let old = queues.remove(&name);
            let old = match old {
                Some(o) if o.fingerprint == fingerprint => {
                    keep.insert(name, o);
                    continue;
                }
                other => other,
            };
            let predecessor = old.map(|o| {
                tracing::info!(remote = %name, "remote write settings changed; restarting its queue");
                let _ = o.handle.stop.send(true);
                if let Some(m) = o.metadata {
                    m.abort();
                }
                o.handle.task
            });
            let r = self.start(
                c,
                ep,
                name.clone(),
                fingerprint,
                external_labels,
                predecessor,
            );
            keep.insert(name, r);
        }
        for (name, o) in std::mem::take(&mut *queues) {
            tracing::info!(remote = %name, "remote write removed from the configuration; stopping its queue");
            let _ = o.handle.stop.send(true);
            if let Some(m) = o.metadata {
                m.abort();
            }
        }
        *queues = keep;
        Ok(())
    }

    fn start(
        &self,
        c: &RemoteWriteConfig,
        ep: send::Endpoint,
        name: String,
        fingerprint: String,
        external_labels: &Labels,
        predecessor: Option<tokio::task::JoinHandle<()>>,
    ) -> Running {
        let metrics = Arc::new(QueueMetrics::new());
        let q = &c.queue_config;
        let (stop_tx, stop_rx) = watch::channel(false);
        let protocol = c.protocol().unwrap_or(Protocol::V1);
        // Remote write 2.0 carries metadata with each series instead of in separate requests.
        let metadata = if c.metadata_config.send && protocol == Protocol::V1 {
            Some(tokio::spawn(metadata::run(
                Arc::new(ep.clone()),
                self.metadata.clone(),
                Duration::from_millis(c.metadata_config.send_interval.0.max(1) as u64),
                c.metadata_config.max_samples_per_send,
                metrics.clone(),
                stop_rx.clone(),
            )))
        } else {
            None
        };
        let ep_v1 = send::Endpoint {
            headers: send::as_v1(&ep.headers),
            ..ep.clone()
        };
        let shard = Arc::new(shard::ShardCx {
            ep,
            ep_v1,
            downgraded: std::sync::atomic::AtomicBool::new(false),
            max_samples: q.max_samples_per_send,
            deadline: Duration::from_millis(q.batch_send_deadline.0.max(1) as u64),
            sample_age_limit_ms: q.sample_age_limit.0,
            metrics: metrics.clone(),
            tracker: Arc::new(position::Tracker::new(Default::default())),
            protocol,
            metadata: (protocol == Protocol::V2 && c.metadata_config.send)
                .then(|| self.metadata.clone()),
        });
        let settings = queue::QueueSettings {
            name: name.clone(),
            url: c.url.clone(),
            wal_dir: self.wal_dir.clone(),
            dir: position::queue_dir(&self.root, &name),
            external_labels: external_labels.clone(),
            relabel: c.write_relabel_configs.clone(),
            capacity: q.capacity,
            min_shards: q.min_shards,
            max_shards: q.max_shards,
            shard,
        };
        let task = tokio::spawn(queue::run(settings, stop_rx, predecessor));
        Running {
            fingerprint,
            url: c.url.clone(),
            metrics,
            handle: queue::QueueHandle {
                stop: stop_tx,
                task,
            },
            metadata,
        }
    }

    /// Stops every queue: each sends what it holds for up to `queue::FLUSH_DEADLINE`, then saves
    /// its position.
    pub async fn shutdown(&self) {
        let queues = std::mem::take(&mut *self.queues.lock());
        let mut tasks = Vec::new();
        for (_, o) in queues {
            let _ = o.handle.stop.send(true);
            if let Some(m) = o.metadata {
                m.abort();
            }
            tasks.push(o.handle.task);
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    pub fn snapshot(&self) -> Vec<QueueSnapshot> {
        self.queues
            .lock()
            .iter()
            .map(|(name, r)| QueueSnapshot {
                name: name.clone(),
                url: r.url.clone(),
                metrics: r.metrics.clone(),
            })
            .collect()
    }

    /// Highest sample timestamp read from the WAL by any queue, in ms (`None` before any).
    pub fn highest_read_ms(&self) -> Option<i64> {
        self.queues
            .lock()
            .values()
            .map(|r| r.metrics.highest_read_ms.load(Ordering::Relaxed))
            .filter(|&t| t != i64::MIN)
            .max()
    }
}
