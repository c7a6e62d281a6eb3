//! The sender lease: a session-level advisory lock on a connection of its own. PostgreSQL frees
//! it when that session ends, which a kill -9 of its holder causes as soon as the socket closes;
//! a holder whose connection stalls stops counting itself as sender after half the takeover
//! time, before the others (whose TCP keepalives and polls run on the same clock) can take over.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use postgres::{Client, NoTls};

use super::pg::{create_schema, SENDER_LOCK};
use super::{now_ms, HaConfig, HaMetrics, OnTakeover};

pub(crate) struct Lease {
    /// The lease session's backend pid while this replica holds the lock, else 0.
    pid: AtomicI32,
    /// When the lease session last answered (ms).
    last_ok_ms: AtomicI64,
    half_ms: i64,
    /// Set to drop the lock at the next turn (a fenced write found it gone, or shutdown).
    drop_now: AtomicBool,
}

impl Lease {
    pub(crate) fn start(
        pg: postgres::Config,
        cfg: HaConfig,
        metrics: Arc<HaMetrics>,
        stopped: Arc<AtomicBool>,
        on_takeover: Arc<Mutex<Option<OnTakeover>>>,
    ) -> Arc<Lease> {
        let lease = Arc::new(Lease {
            pid: AtomicI32::new(0),
            last_ok_ms: AtomicI64::new(0),
            half_ms: cfg.takeover_timeout_ms / 2,
            drop_now: AtomicBool::new(false),
        });
        let me = Arc::clone(&lease);
        let poll = Duration::from_millis((cfg.takeover_timeout_ms / 10).clamp(100, 1000) as u64);
        let spawned = std::thread::Builder::new()
            .name("tocsin-ha-lease".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                let mut since = 0i64;
                while !stopped.load(Ordering::Acquire) {
                    if me.drop_now.swap(false, Ordering::AcqRel) {
                        // Closing the session is the one sure way to give the lock up.
                        client = None;
                        me.set_lost(&metrics);
                    }
                    if client.as_ref().is_some_and(Client::is_closed) {
                        client = None;
                        me.set_lost(&metrics);
                    }
                    if client.is_none() {
                        match connect(&pg, cfg.takeover_timeout_ms) {
                            Ok(c) => client = Some(c),
                            Err(e) => {
                                metrics.db_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(error = %super::pg::chain(&e), "HA lease: PostgreSQL unreachable");
                                std::thread::sleep(poll);
                                continue;
                            }
                        }
                    }
                    let Some(c) = client.as_mut() else { continue };
                    match me.turn(c, &cfg.replica, &mut since) {
                        Ok(took) => {
                            me.last_ok_ms.store(now_ms(), Ordering::Release);
                            if took {
                                metrics.takeovers.fetch_add(1, Ordering::Relaxed);
                                tracing::info!(replica = %cfg.replica, "HA: this replica sends now");
                                if let Some(f) = on_takeover.lock().as_ref() {
                                    f();
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %super::pg::chain(&e), "HA lease: PostgreSQL lost");
                            client = None;
                            me.set_lost(&metrics);
                        }
                    }
                    std::thread::sleep(poll);
                }
                // Dropping the client ends the session and with it the lock.
                drop(client);
                me.pid.store(0, Ordering::Release);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "HA: lease thread not started");
        }
        lease
    }

    /// One poll: try for the lock, or prove the session still lives; true when just taken.
    fn turn(
        &self,
        c: &mut Client,
        replica: &str,
        since: &mut i64,
    ) -> Result<bool, postgres::Error> {
        let now = now_ms();
        let mut took = false;
        if self.pid.load(Ordering::Acquire) == 0 {
            let row = c.query_one(
                "SELECT pg_try_advisory_lock($1), pg_backend_pid()",
                &[&SENDER_LOCK],
            )?;
            if row.get::<_, bool>(0) {
                self.pid.store(row.get::<_, i32>(1), Ordering::Release);
                *since = now;
                took = true;
            }
        }
        let sender = self.pid.load(Ordering::Acquire) != 0;
        // Doubles as the liveness probe of the session.
        c.execute(
            "INSERT INTO tocsin_ha_replicas (name, seen_at, sender, since) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET seen_at = EXCLUDED.seen_at,
                 sender = EXCLUDED.sender, since = EXCLUDED.since",
            &[&replica, &now, &sender, &*since],
        )?;
        Ok(took)
    }

    fn set_lost(&self, metrics: &HaMetrics) {
        if self.pid.swap(0, Ordering::AcqRel) != 0 {
            metrics.lease_losses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("HA: this replica no longer sends");
        }
    }

    /// Holds the lock and heard from its session within half the takeover time.
    pub(crate) fn held(&self) -> bool {
        self.pid.load(Ordering::Acquire) != 0
            && now_ms().saturating_sub(self.last_ok_ms.load(Ordering::Acquire)) <= self.half_ms
    }

    pub(crate) fn pid(&self) -> Option<i32> {
        let p = self.pid.load(Ordering::Acquire);
        (p != 0 && self.held()).then_some(p)
    }

    pub(crate) fn last_ok_ms(&self) -> i64 {
        self.last_ok_ms.load(Ordering::Acquire)
    }

    /// A fenced write found the lock gone: stop sending now, reconnect at the next turn.
    pub(crate) fn lost(&self) {
        self.drop_now.store(true, Ordering::Release);
        self.pid.store(0, Ordering::Release);
    }

    pub(crate) fn release(&self) {
        self.lost();
    }
}

fn connect(pg: &postgres::Config, takeover_ms: i64) -> Result<Client, postgres::Error> {
    let mut c = pg.connect(NoTls)?;
    create_schema(&mut c)?;
    // The server notices a vanished holder through keepalives too, not only by a closed socket;
    // a stalled statement must not hold the lease thread past half the takeover time.
    let half = (takeover_ms / 2).max(500);
    let idle = (takeover_ms / 4000).max(1);
    c.batch_execute(&format!(
        "SET statement_timeout = {half}; SET tcp_keepalives_idle = {idle}; \
         SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 2;"
    ))?;
    Ok(c)
}
