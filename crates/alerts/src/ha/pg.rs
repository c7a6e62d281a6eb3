//! The connection the shared-state queries run on: one thread owning a `postgres::Client`,
//! taking jobs from a channel, reconnecting (at most once a second) after the database went away.
//! Callers block until their job ran or `op_timeout` passed: a lost database costs a caller half
//! the takeover time, never a hung flush. Also the schema and the queries themselves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::{Client, NoTls};

use super::{now_ms, HaError, HaMetrics};
use crate::nflog::Entry;

type Job = Box<dyn FnOnce(Option<&mut Client>) + Send>;

pub(crate) struct Pg {
    tx: Mutex<mpsc::Sender<Job>>,
    op_timeout: Duration,
}

/// The advisory lock the sender holds (on its lease session) for as long as it sends.
pub(crate) const SENDER_LOCK: i64 = 0x746f_6373; // "tocs"
/// Taken for the length of a transaction appending operations, so that their sequence numbers
/// commit in order and a reader never skips one committed late.
const OPS_LOCK: i64 = 0x746f_6370;

/// Idempotent: every replica runs it on connecting; the transaction-scoped lock keeps two
/// replicas starting at once from racing on `CREATE TABLE`.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tocsin_ha_nflog (
    receiver   TEXT NOT NULL,
    group_key  TEXT NOT NULL,
    firing     TEXT NOT NULL,
    resolved   TEXT NOT NULL,
    sent_at    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    sent_by    TEXT NOT NULL,
    PRIMARY KEY (receiver, group_key)
);
CREATE TABLE IF NOT EXISTS tocsin_ha_ops (
    seq    BIGSERIAL PRIMARY KEY,
    origin TEXT NOT NULL,
    at     BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    body   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tocsin_ha_replicas (
    name     TEXT PRIMARY KEY,
    seen_at  BIGINT NOT NULL,
    sender   BOOLEAN NOT NULL,
    since    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS tocsin_ha_history (
    id          BIGSERIAL PRIMARY KEY,
    fingerprint BIGINT NOT NULL,
    labels      TEXT NOT NULL,
    starts_at   BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tocsin_ha_history_fp ON tocsin_ha_history (fingerprint, ends_at);
CREATE INDEX IF NOT EXISTS tocsin_ha_history_starts ON tocsin_ha_history (starts_at);
CREATE TABLE IF NOT EXISTS tocsin_ha_actions (
    id         BIGSERIAL UNIQUE,
    key        TEXT PRIMARY KEY,
    replica    TEXT NOT NULL,
    local_id   BIGINT NOT NULL,
    policy     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tocsin_ha_actions_created ON tocsin_ha_actions (created_at);
CREATE TABLE IF NOT EXISTS tocsin_ha_action_claims (
    key     TEXT PRIMARY KEY,
    replica TEXT NOT NULL,
    at      BIGINT NOT NULL
);";

pub(crate) fn create_schema(c: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&(SENDER_LOCK + 1)])?;
    tx.batch_execute(SCHEMA)?;
    tx.commit()
}

impl Pg {
    pub(crate) fn start(
        cfg: postgres::Config,
        op_timeout: Duration,
        last_ok_ms: Arc<AtomicI64>,
        metrics: Arc<HaMetrics>,
    ) -> Pg {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("tocsin-ha-pg".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                let mut last_try: Option<Instant> = None;
                while let Ok(job) = rx.recv() {
                    if client.as_ref().is_some_and(Client::is_closed) {
                        client = None;
                    }
                    if client.is_none()
                        && last_try.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                    {
                        last_try = Some(Instant::now());
                        match cfg.connect(NoTls).and_then(|mut c| {
                            create_schema(&mut c)?;
                            Ok(c)
                        }) {
                            Ok(c) => {
                                tracing::info!("HA: connected to PostgreSQL");
                                client = Some(c);
                            }
                            Err(e) => {
                                metrics.db_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %chain(&e), "HA: PostgreSQL unreachable");
                            }
                        }
                    }
                    job(client.as_mut());
                    match &client {
                        Some(c) if !c.is_closed() => last_ok_ms.store(now_ms(), Ordering::Release),
                        Some(_) => client = None,
                        None => {}
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "HA: PostgreSQL thread not started");
        }
        Pg {
            tx: Mutex::new(tx),
            op_timeout,
        }
    }

    /// Runs `f` on the connection; a lost connection or a job that outlives the timeout is
    /// `Unreachable`, an error PostgreSQL answered is `Db`.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, HaError> {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |c| {
            let r = match c {
                Some(c) => f(c).map_err(|e| {
                    if e.is_closed() || e.as_db_error().is_none() {
                        HaError::Unreachable(chain(&e))
                    } else {
                        HaError::Db(chain(&e))
                    }
                }),
                None => Err(HaError::Unreachable("not connected".into())),
            };
            let _ = rtx.send(r);
        });
        self.tx
            .lock()
            .send(job)
            .map_err(|_| HaError::Unreachable("connection thread gone".into()))?;
        match rrx.recv_timeout(self.op_timeout) {
            Ok(r) => r,
            Err(_) => Err(HaError::Unreachable(format!(
                "no answer within {} ms",
                self.op_timeout.as_millis()
            ))),
        }
    }
}

/// The error with its causes ("error connecting to server: Connection refused").
pub(crate) fn chain(e: &postgres::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

pub(crate) fn nflog_get(
    c: &mut Client,
    receiver: &str,
    group: &str,
) -> Result<Option<Entry>, postgres::Error> {
    let row = c.query_opt(
        "SELECT firing, resolved, sent_at FROM tocsin_ha_nflog
         WHERE receiver = $1 AND group_key = $2",
        &[&receiver, &group],
    )?;
    Ok(row.map(|r| Entry {
        firing: crate::nflog::decode(r.get::<_, &str>(0)).unwrap_or_default(),
        resolved: crate::nflog::decode(r.get::<_, &str>(1)).unwrap_or_default(),
        sent_at: r.get(2),
    }))
}

/// Writes the entry only while backend `pid` (the writer's lease session) holds the sender
/// lock; false when it does not, so a replica that lost its lease cannot record a send.
pub(crate) fn nflog_log(
    c: &mut Client,
    receiver: &str,
    group: &str,
    e: &Entry,
    expires_at: i64,
    replica: &str,
    pid: i32,
) -> Result<bool, postgres::Error> {
    let n = c.execute(
        "INSERT INTO tocsin_ha_nflog
             (receiver, group_key, firing, resolved, sent_at, expires_at, sent_by)
         SELECT $1, $2, $3, $4, $5, $6, $7
         WHERE EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                       AND pid = $8 AND classid = 0 AND objsubid = 1
                       AND objid = $9::bigint::oid)
         ON CONFLICT (receiver, group_key) DO UPDATE SET
             firing = EXCLUDED.firing, resolved = EXCLUDED.resolved,
             sent_at = EXCLUDED.sent_at, expires_at = EXCLUDED.expires_at,
             sent_by = EXCLUDED.sent_by",
        &[
            &receiver,
            &group,
            &crate::nflog::encode(&e.firing),
            &crate::nflog::encode(&e.resolved),
            &e.sent_at,
            &expires_at,
            &replica,
            &pid,
            &SENDER_LOCK,
        ],
    )?;
    Ok(n == 1)
}

/// Drops expired log entries, and operations no replica needs any more: re-sent alerts and
/// pings after an hour (their senders re-send), acknowledgements, shelves and notes after the
/// alert history's 30 days, silences 5 days after they ended (Alertmanager's retention).
/// A replica that joins later reads what is left.
pub(crate) fn nflog_gc(c: &mut Client, now: i64) -> Result<u64, postgres::Error> {
    let hour = now - 3_600_000;
    let month = now - 30 * 24 * 3_600_000;
    let five_days = now - 5 * 24 * 3_600_000;
    let mut n = c.execute(
        "DELETE FROM tocsin_ha_nflog WHERE expires_at <= $1",
        &[&now],
    )?;
    n += c.execute(
        "DELETE FROM tocsin_ha_ops WHERE
             (kind IN ('alerts', 'heartbeat', 'action_admitted') AND at < $1)
          OR (kind IN ('ack', 'unack', 'shelve', 'unshelve', 'note', 'action_tripped',
                       'action_reset', 'action_decision') AND at < $2)
          OR (kind = 'silence' AND ((body::jsonb ->> 'ends_at')::bigint) < $3)",
        &[&hour, &month, &five_days],
    )?;
    n += c.execute(
        "DELETE FROM tocsin_ha_action_claims WHERE at < $1",
        &[&month],
    )?;
    n += c.execute(
        "DELETE FROM tocsin_ha_history WHERE ends_at <> 0 AND ends_at < $1",
        &[&month],
    )?;
    n += c.execute(
        "DELETE FROM tocsin_ha_actions WHERE created_at < $1",
        &[&month],
    )?;
    Ok(n)
}

pub(crate) fn claim_action(
    c: &mut Client,
    key: &str,
    replica: &str,
) -> Result<bool, postgres::Error> {
    let row = c.query_opt(
        "INSERT INTO tocsin_ha_action_claims (key, replica, at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
         RETURNING replica",
        &[&key, &replica, &now_ms()],
    )?;
    Ok(row.is_some_and(|r| r.get::<_, &str>(0) == replica))
}

pub(crate) fn ops_lock(tx: &mut postgres::Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OPS_LOCK])
        .map(|_| ())
}
