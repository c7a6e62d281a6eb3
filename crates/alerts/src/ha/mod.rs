//! Replicas (`ha:`): several Tocsin servers evaluate the same rules and share one alert-manager
//! state in PostgreSQL, so that every notification is sent, and every action run, by one of them.
//!
//! - **Who sends.** One replica at a time holds the sender lease: a PostgreSQL advisory lock on a
//!   connection of its own (`lease.rs`). The lock dies with that session, so a sender killed
//!   with -9 frees it as soon as the database sees the socket close; the others try for it every
//!   `takeover_timeout / 10` and the winner flushes every group at once. A sender that cannot
//!   reach the database for `takeover_timeout / 2` stops sending on its own.
//! - **What was sent.** The notification log is shared (`tocsin_ha_nflog`): every replica runs
//!   its groups through the pipeline up to the deduplication step and compares with the shared
//!   entry. A replica that is not the sender keeps a group's resolved alerts until the sender has
//!   logged them, so a taker-over still has what was due. The sender's log write is fenced by its
//!   lease (it only lands while the lock is held by its own lease session).
//! - **What people did.** Silences, acknowledgements, shelves and notes made on one replica are
//!   appended to `tocsin_ha_ops` and applied by the others (`ops.rs`), polled every 200 ms.
//! - **Losing the database.** Nobody holds the lease: no replica notifies (unless
//!   `fallback: notify`), operations are queued in memory and written when it is back, and
//!   `TocsinHADatabaseUnreachable` fires.
//!
//! Alert history, timelines and the action journal stay per replica (in its `state.db`); actions
//! run only from the sender's pipeline, and each execution key is claimed in
//! `tocsin_ha_action_claims` before it runs.

pub mod actions;
mod config;
mod history;
mod lease;
pub mod migrate;
pub mod ops;
mod pg;

pub use config::{Fallback, HaConfig};
pub use ops::Op;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::nflog::Entry;

/// Errors of the shared state; the caller decides what losing the database means for it.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("PostgreSQL unreachable: {0}")]
    Unreachable(String),
    #[error("PostgreSQL: {0}")]
    Db(String),
    #[error("not the sender any more (lease lost)")]
    LeaseLost,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HaMetrics {
    pub takeovers: AtomicU64,
    pub lease_losses: AtomicU64,
    pub ops_published: AtomicU64,
    pub ops_applied: AtomicU64,
    pub ops_apply_failed: AtomicU64,
    pub nflog_fenced: AtomicU64,
    pub db_errors: AtomicU64,
    pub actions_claimed_elsewhere: AtomicU64,
}

/// How long an operation that cannot be applied yet is retried.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// Applies one shared operation; false when it could not be (yet).
pub type ApplyOp = Box<dyn Fn(&Op) -> bool + Send + Sync>;

/// Called by the lease thread when this replica becomes the sender.
pub type OnTakeover = Box<dyn Fn() + Send + Sync>;

/// One replica's handle on the shared state.
pub struct Ha {
    cfg: HaConfig,
    pg: pg::Pg,
    lease: Arc<lease::Lease>,
    ops: ops::Outbox,
    pub metrics: Arc<HaMetrics>,
    /// When the database last answered (ms since the epoch; 0: never).
    last_ok_ms: Arc<AtomicI64>,
    stopped: Arc<AtomicBool>,
    on_takeover: Arc<Mutex<Option<OnTakeover>>>,
    started_ms: i64,
    /// To the thread writing the shared history.
    history_tx: Mutex<std::sync::mpsc::SyncSender<Vec<crate::store::HistoryChange>>>,
}

impl Ha {
    /// Connects (in the background: a database down at start-up is the same case as one lost
    /// later) and starts the lease thread.
    pub fn start(cfg: HaConfig) -> Result<Arc<Ha>, HaError> {
        let pg_cfg = cfg.pg_config().map_err(HaError::Db)?;
        let metrics = Arc::new(HaMetrics::default());
        let last_ok_ms = Arc::new(AtomicI64::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let on_takeover: Arc<Mutex<Option<OnTakeover>>> = Arc::new(Mutex::new(None));
        let pg = pg::Pg::start(
            pg_cfg.clone(),
            cfg.op_timeout(),
            Arc::clone(&last_ok_ms),
            Arc::clone(&metrics),
        );
        let lease = lease::Lease::start(
            pg_cfg.clone(),
            cfg.clone(),
            Arc::clone(&metrics),
            Arc::clone(&stopped),
            Arc::clone(&on_takeover),
        );
        let (history_tx, history_rx) = std::sync::mpsc::sync_channel(10_000);
        let history_pg = pg::Pg::start(
            pg_cfg,
            cfg.op_timeout(),
            Arc::clone(&last_ok_ms),
            Arc::clone(&metrics),
        );
        let spawned = std::thread::Builder::new()
            .name("tocsin-ha-history".into())
            .spawn(move || {
                while let Ok(batch) = history_rx.recv() {
                    let mut all: Vec<crate::store::HistoryChange> = batch;
                    while let Ok(more) = history_rx.try_recv() {
                        all.extend(more);
                    }
                    if let Err(e) = history_pg.call(move |c| history::write(c, &all)) {
                        tracing::warn!(error = %e, "HA: shared history not written");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "HA: history thread not started");
        }
        Ok(Arc::new(Ha {
            history_tx: Mutex::new(history_tx),
            ops: ops::Outbox::new(cfg.replica.clone()),
            cfg,
            pg,
            lease,
            metrics,
            last_ok_ms,
            stopped,
            on_takeover,
            started_ms: now_ms(),
        }))
    }

    pub fn config(&self) -> &HaConfig {
        &self.cfg
    }

    pub fn replica(&self) -> &str {
        &self.cfg.replica
    }

    /// Sets what runs when this replica takes over sending (the manager flushes every group).
    pub fn set_on_takeover(&self, f: OnTakeover) {
        *self.on_takeover.lock() = Some(f);
    }

    /// Whether this replica sends notifications now: it holds the lease and heard from the
    /// database within half the takeover time, or the database is lost and `fallback: notify`.
    pub fn may_send(&self) -> bool {
        self.lease.held() || self.sending_alone()
    }

    /// Sending on its own: the database is lost and `fallback: notify` says to notify anyway
    /// (deduplicating against what this replica sent itself).
    pub fn sending_alone(&self) -> bool {
        self.cfg.fallback == Fallback::Notify && !self.lease.held() && !self.db_up()
    }

    /// Whether this replica holds the sender lease.
    pub fn is_sender(&self) -> bool {
        self.lease.held()
    }

    /// Whether the database answered within the takeover time (either connection).
    pub fn db_up(&self) -> bool {
        let now = now_ms();
        let last = self
            .last_ok_ms
            .load(Ordering::Acquire)
            .max(self.lease.last_ok_ms());
        last > 0 && now.saturating_sub(last) <= self.cfg.takeover_timeout_ms
    }

    /// How long the database has not answered either connection (counted from the start while
    /// it never did).
    pub fn unreachable_for_ms(&self) -> i64 {
        let last = self
            .last_ok_ms
            .load(Ordering::Acquire)
            .max(self.lease.last_ok_ms())
            .max(self.started_ms);
        now_ms().saturating_sub(last)
    }

    /// The shared notification-log entry of (`receiver_key`, `group_key`).
    pub fn nflog_get(&self, receiver_key: &str, group_key: &str) -> Result<Option<Entry>, HaError> {
        let (r, g) = (receiver_key.to_string(), group_key.to_string());
        self.pg.call(move |c| pg::nflog_get(c, &r, &g))
    }

    /// Records a send in the shared log, only while this replica's lease session holds the lock.
    pub fn nflog_log(
        &self,
        receiver_key: &str,
        group_key: &str,
        entry: &Entry,
        expires_at: i64,
    ) -> Result<(), HaError> {
        if self.sending_alone() {
            // Sending on our own while the database is lost: nothing to fence against.
            return Ok(());
        }
        let pid = self.lease.pid().ok_or(HaError::LeaseLost)?;
        let (r, g, e, me) = (
            receiver_key.to_string(),
            group_key.to_string(),
            entry.clone(),
            self.cfg.replica.clone(),
        );
        let wrote = self
            .pg
            .call(move |c| pg::nflog_log(c, &r, &g, &e, expires_at, &me, pid))?;
        if wrote {
            Ok(())
        } else {
            self.metrics.nflog_fenced.fetch_add(1, Ordering::Relaxed);
            self.lease.lost();
            Err(HaError::LeaseLost)
        }
    }

    /// Mirrors history changes into the shared history while this replica sends (queued for
    /// the history thread; never waits).
    pub fn record_history(&self, changes: Vec<crate::store::HistoryChange>) {
        if !self.is_sender() {
            return;
        }
        if let Err(e) = self.history_tx.lock().try_send(changes) {
            tracing::warn!(error = %e, "HA: shared history change dropped (queue full or closed)");
        }
    }

    /// Mirrors executions this replica owns into the shared journal.
    pub fn mirror_actions(&self, rows: Vec<actions::MirroredExecution>) -> Result<(), HaError> {
        if rows.is_empty() {
            return Ok(());
        }
        let me = self.cfg.replica.clone();
        self.pg.call(move |c| actions::mirror(c, &me, &rows))
    }

    /// Executions of every replica, newest first, under shared ids.
    pub fn actions_list(
        &self,
        q: &actions::SharedActionQuery,
    ) -> Result<Vec<serde_json::Value>, HaError> {
        let q = q.clone();
        self.pg.call(move |c| actions::list(c, &q))
    }

    /// One execution by shared id.
    pub fn action_get(&self, id: i64) -> Result<Option<actions::Located>, HaError> {
        self.pg.call(move |c| actions::get(c, id))
    }

    /// The shared id of the execution `key`.
    pub fn action_id(&self, key: &str) -> Result<Option<i64>, HaError> {
        let key = key.to_string();
        self.pg.call(move |c| actions::id_of(c, &key))
    }

    /// The shared history (the history API of every replica reads it).
    pub fn history_query(
        &self,
        q: &crate::store::HistoryQuery,
    ) -> Result<Vec<crate::store::HistoryEntry>, HaError> {
        let q = q.clone();
        self.pg.call(move |c| history::query(c, &q))
    }

    /// Drops shared log entries past their expiry and operations no replica needs any more (the
    /// sender does it, once a gc round).
    pub fn gc(&self, now: i64) -> Result<u64, HaError> {
        self.pg.call(move |c| pg::nflog_gc(c, now))
    }

    /// Claims an action's execution key for this replica; false when another replica has it.
    pub fn claim_action(&self, key: &str) -> Result<bool, HaError> {
        let (k, me) = (key.to_string(), self.cfg.replica.clone());
        let mine = self.pg.call(move |c| pg::claim_action(c, &k, &me))?;
        if !mine {
            self.metrics
                .actions_claimed_elsewhere
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(mine)
    }

    /// Shares an operation made on this replica. Written before returning when the database
    /// answers; otherwise queued (in order) and written when it is back.
    pub fn publish(&self, op: Op) {
        self.metrics.ops_published.fetch_add(1, Ordering::Relaxed);
        self.ops.push(op);
        if !self.push_outbox() {
            self.ops.persist();
        }
    }

    /// Keeps operations that wait for the database in `db` (this replica's state.db), and
    /// queues those a previous process left there; returns how many.
    pub fn keep_queue_in(&self, db: crate::state::StateDb) -> crate::Result<usize> {
        self.ops.keep_in(db)
    }

    /// Writes queued operations; false while some are still queued. One writer at a time (the
    /// caller of `publish` and the sync thread), so a batch is never written twice.
    fn push_outbox(&self) -> bool {
        let res = self.ops.flush(|batch| {
            let batch = batch.to_vec();
            self.pg.call(move |c| ops::insert(c, &batch))
        });
        if let Err(e) = &res {
            tracing::debug!(error = %e, queued = self.ops.len(), "HA operations queued");
        }
        res.is_ok()
    }

    /// Operations queued while the database is unreachable.
    pub fn queued_ops(&self) -> usize {
        self.ops.len()
    }

    /// Starts the thread that writes queued operations and applies the other replicas' ones
    /// (every 200 ms) with `apply`, which returns false for one it could not apply (retried for
    /// two minutes, then logged and counted). `last_seq` is where the previous process stopped; `save_seq` keeps
    /// the new position.
    pub fn start_sync(
        self: &Arc<Self>,
        last_seq: i64,
        apply: Box<dyn Fn(&Op) -> bool + Send + Sync>,
        save_seq: Box<dyn Fn(i64) + Send + Sync>,
    ) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("tocsin-ha-sync".into())
            .spawn(move || {
                let mut seq = last_seq;
                // Operations that could not be applied yet (an acknowledgement of an alert
                // this replica's rules have not raised yet), retried for a while.
                let mut later: Vec<(Op, std::time::Instant)> = Vec::new();
                while !me.stopped.load(Ordering::Acquire) {
                    me.push_outbox();
                    later.retain(|(op, since)| {
                        if apply(op) {
                            me.metrics.ops_applied.fetch_add(1, Ordering::Relaxed);
                            return false;
                        }
                        if since.elapsed() < RETRY_FOR {
                            return true;
                        }
                        me.metrics.ops_apply_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(op = ?op, "HA: another replica's operation could not be applied here");
                        false
                    });
                    let (from, mine) = (seq, me.cfg.replica.clone());
                    match me.pg.call(move |c| ops::since(c, from, &mine)) {
                        Ok((ops, last)) => {
                            for op in ops {
                                if apply(&op) {
                                    me.metrics.ops_applied.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    later.push((op, std::time::Instant::now()));
                                }
                            }
                            if last > seq {
                                seq = last;
                                save_seq(seq);
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "HA sync"),
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "HA sync thread not started");
        }
    }

    /// Stops the threads and gives the lease back (so a clean shutdown hands over at once).
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        self.push_outbox();
        self.lease.release();
    }
}

impl Drop for Ha {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
