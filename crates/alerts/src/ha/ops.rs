//! What people do on one replica and the others must apply: silences (whole, with their id and
//! `updated_at`, so applying is a merge that keeps the newer), acknowledgements, shelves and
//! notes. Appended to `tocsin_ha_ops` in order; each replica reads what the others appended
//! since the last sequence number it applied.

use std::collections::VecDeque;

use parking_lot::Mutex;
use postgres::Client;
use serde::{Deserialize, Serialize};

use super::pg::ops_lock;
use super::{now_ms, HaError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A silence as stored after a create, update or expiry.
    Silence {
        id: String,
        matchers: Vec<SharedMatcher>,
        starts_at: i64,
        ends_at: i64,
        updated_at: i64,
        created_by: String,
        comment: String,
    },
    Ack {
        fingerprint: u64,
        by: String,
        comment: String,
        expires_at: Option<i64>,
        at: i64,
    },
    Unack {
        fingerprint: u64,
        by: String,
        comment: String,
        at: i64,
    },
    Shelve {
        fingerprint: u64,
        by: String,
        comment: String,
        until: i64,
        at: i64,
    },
    Unshelve {
        fingerprint: u64,
        by: String,
        at: i64,
    },
    Note {
        fingerprint: u64,
        by: String,
        text: String,
        at: i64,
    },
    /// Alerts a client posted to this replica (API, Alerta, Pub/Sub push): the others take them
    /// too, so whichever replica sends knows them. Alerts from the rules are not shared: every
    /// replica evaluates them.
    Alerts { alerts: Vec<SharedAlert> },
    /// An action admitted by its policy's guards here, so that a replica taking over sending
    /// counts it against the same rate, target and cooldown limits.
    ActionAdmitted {
        policy: String,
        target: String,
        at: i64,
    },
    /// A policy tripped here: it stays tripped whichever replica sends.
    ActionTripped {
        policy: String,
        guard: String,
        reason: String,
        at: i64,
        reset_at: i64,
    },
    /// A person's approval or denial made here of an execution another replica owns.
    ActionDecision {
        key: String,
        approve: bool,
        by: String,
        comment: String,
    },
    /// A tripped policy reset by a person here.
    ActionReset { policy: String, by: String, at: i64 },
    /// A heartbeat ping received here, so no replica thinks the job late.
    Heartbeat {
        name: String,
        at: i64,
        details: Option<crate::heartbeat::PingDetails>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedAlert {
    pub labels: Vec<(String, String)>,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
}

impl SharedAlert {
    pub fn from_alert(a: &tocsin_model::Alert) -> SharedAlert {
        SharedAlert {
            labels: a
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            // An end the receiving manager filled in from its resolve timeout is not the
            // client's: the other replicas fill in their own.
            ends_at: if a.timeout { 0 } else { a.ends_at },
            generator_url: a.generator_url.clone(),
        }
    }

    pub fn to_alert(&self) -> tocsin_model::Alert {
        tocsin_model::Alert {
            labels: tocsin_model::Labels::from_pairs(&self.labels),
            annotations: self.annotations.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            generator_url: self.generator_url.clone(),
            updated_at: 0,
            timeout: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedMatcher {
    pub name: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Silence { .. } => "silence",
            Op::Ack { .. } => "ack",
            Op::Unack { .. } => "unack",
            Op::Shelve { .. } => "shelve",
            Op::Unshelve { .. } => "unshelve",
            Op::Note { .. } => "note",
            Op::Alerts { .. } => "alerts",
            Op::Heartbeat { .. } => "heartbeat",
            Op::ActionAdmitted { .. } => "action_admitted",
            Op::ActionTripped { .. } => "action_tripped",
            Op::ActionReset { .. } => "action_reset",
            Op::ActionDecision { .. } => "action_decision",
        }
    }
}

/// Operations not yet written, oldest first. Those that could not be written at once are also
/// kept in `state.db` (`ha_outbox`), so a replica that crashes while the database is away still
/// shares them when it is back. Bounded: past `MAX_QUEUED` the oldest are dropped (and logged),
/// since a replica cut off that long has bigger news than one old note.
pub(crate) struct Outbox {
    origin: String,
    queue: Mutex<VecDeque<Item>>,
    /// Held while a batch is being written.
    writing: Mutex<()>,
    db: std::sync::OnceLock<crate::state::StateDb>,
}

struct Item {
    op: Op,
    /// Its `ha_outbox` row, once kept there.
    row: Option<i64>,
}

const MAX_QUEUED: usize = 100_000;

impl Outbox {
    pub(crate) fn new(origin: String) -> Outbox {
        Outbox {
            origin,
            queue: Mutex::new(VecDeque::new()),
            writing: Mutex::new(()),
            db: std::sync::OnceLock::new(),
        }
    }

    /// Keeps unwritten operations in `db` from now on, and queues those a previous process left
    /// there (ahead of anything queued since).
    pub(crate) fn keep_in(&self, db: crate::state::StateDb) -> crate::Result<usize> {
        db.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS ha_outbox (
                     id   INTEGER PRIMARY KEY AUTOINCREMENT,
                     body TEXT NOT NULL
                 );",
            )
        })?;
        let rows: Vec<(i64, String)> = db.with_conn(|c| {
            let mut st = c.prepare("SELECT id, body FROM ha_outbox ORDER BY id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        let n = rows.len();
        {
            let mut q = self.queue.lock();
            for (id, body) in rows.into_iter().rev() {
                match serde_json::from_str::<Op>(&body) {
                    Ok(op) => q.push_front(Item { op, row: Some(id) }),
                    Err(e) => {
                        tracing::error!(row = id, error = %e, "HA: unreadable queued operation skipped")
                    }
                }
            }
        }
        let _ = self.db.set(db);
        Ok(n)
    }

    pub(crate) fn push(&self, op: Op) {
        let mut q = self.queue.lock();
        if q.len() >= MAX_QUEUED {
            q.pop_front();
            tracing::error!("HA: operation queue full, the oldest queued operation is dropped");
        }
        q.push_back(Item { op, row: None });
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Writes the queued operations not yet in `state.db` there (after the database could not
    /// take them).
    pub(crate) fn persist(&self) {
        let Some(db) = self.db.get() else { return };
        let mut q = self.queue.lock();
        let todo: Vec<(usize, String)> = q
            .iter()
            .enumerate()
            .filter(|(_, it)| it.row.is_none())
            .map(|(i, it)| (i, serde_json::to_string(&it.op).unwrap_or_default()))
            .collect();
        if todo.is_empty() {
            return;
        }
        let res = db.write(|tx| {
            let mut ids = Vec::with_capacity(todo.len());
            for (_, body) in &todo {
                tx.execute("INSERT INTO ha_outbox (body) VALUES (?1)", [body])?;
                ids.push(tx.last_insert_rowid());
            }
            Ok(ids)
        });
        match res {
            Ok(ids) => {
                for ((i, _), id) in todo.iter().zip(ids) {
                    if let Some(it) = q.get_mut(*i) {
                        it.row = Some(id);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "HA: queued operations not kept in state.db"),
        }
    }

    /// Writes the queued operations with `write` (one transaction), removing them once written.
    pub(crate) fn flush(
        &self,
        write: impl FnOnce(&[(String, Op)]) -> Result<(), HaError>,
    ) -> Result<(), HaError> {
        let _w = self.writing.lock();
        let batch: Vec<(String, Op)> = self
            .queue
            .lock()
            .iter()
            .take(1000)
            .map(|it| (self.origin.clone(), it.op.clone()))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        write(&batch)?;
        let mut last_row = None;
        {
            let mut q = self.queue.lock();
            for _ in 0..batch.len() {
                if let Some(Item { row: Some(r), .. }) = q.pop_front() {
                    last_row = Some(r);
                }
            }
        }
        // Rows are kept in queue order, so the written ones are every row up to the last.
        if let (Some(r), Some(db)) = (last_row, self.db.get()) {
            if let Err(e) = db.write(|tx| tx.execute("DELETE FROM ha_outbox WHERE id <= ?1", [r])) {
                tracing::warn!(error = %e, "HA: written operations not removed from state.db");
            }
        }
        Ok(())
    }
}

pub(crate) fn insert(c: &mut Client, batch: &[(String, Op)]) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    insert_in(&mut tx, batch)?;
    tx.commit()
}

/// Appends `batch` within `tx`, holding the append lock until it commits.
pub(crate) fn insert_in(
    tx: &mut postgres::Transaction<'_>,
    batch: &[(String, Op)],
) -> Result<(), postgres::Error> {
    ops_lock(tx)?;
    let at = now_ms();
    for (origin, op) in batch {
        let body = serde_json::to_string(op).unwrap_or_default();
        tx.execute(
            "INSERT INTO tocsin_ha_ops (origin, at, kind, body) VALUES ($1, $2, $3, $4)",
            &[origin, &at, &op.kind(), &body],
        )?;
    }
    Ok(())
}

/// The other replicas' operations after `seq`, and the last sequence number read (own ones
/// included, so the position moves past them).
pub(crate) fn since(c: &mut Client, seq: i64, me: &str) -> Result<(Vec<Op>, i64), postgres::Error> {
    let rows = c.query(
        "SELECT seq, origin, body FROM tocsin_ha_ops WHERE seq > $1 ORDER BY seq LIMIT 1000",
        &[&seq],
    )?;
    let mut last = seq;
    let mut out = Vec::new();
    for r in rows {
        last = r.get(0);
        if r.get::<_, &str>(1) == me {
            continue;
        }
        match serde_json::from_str::<Op>(r.get::<_, &str>(2)) {
            Ok(op) => out.push(op),
            Err(e) => tracing::warn!(seq = last, error = %e, "HA: unreadable operation skipped"),
        }
    }
    Ok((out, last))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::StateDb;

    fn note(i: i64) -> Op {
        Op::Note {
            fingerprint: 7,
            by: "ann".into(),
            text: format!("n{i}"),
            at: i,
        }
    }

    #[test]
    fn operations_survive_json() {
        let ops = vec![
            note(1),
            Op::Ack {
                fingerprint: u64::MAX,
                by: "a".into(),
                comment: "c".into(),
                expires_at: Some(5),
                at: 1,
            },
            Op::Alerts {
                alerts: vec![SharedAlert {
                    labels: vec![("alertname".into(), "X".into())],
                    annotations: Default::default(),
                    starts_at: 1,
                    ends_at: 0,
                    generator_url: String::new(),
                }],
            },
            Op::ActionDecision {
                key: "k".into(),
                approve: true,
                by: "b".into(),
                comment: String::new(),
            },
        ];
        for op in ops {
            let s = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&s).unwrap(), op, "{s}");
        }
    }

    #[test]
    fn queued_operations_are_kept_in_order_across_a_restart() {
        let db = StateDb::in_memory().unwrap();
        let out = Outbox::new("r0".into());
        out.keep_in(db.clone()).unwrap();
        for i in 0..3 {
            out.push(note(i));
        }
        // The database is away: nothing is written, and the queue goes to state.db.
        let down = out.flush(|_| Err(HaError::Unreachable("down".into())));
        assert!(down.is_err());
        out.persist();
        assert_eq!(out.len(), 3);
        // A new process finds them, in order, ahead of anything newer.
        let again = Outbox::new("r0".into());
        again.push(note(9));
        assert_eq!(again.keep_in(db.clone()).unwrap(), 3);
        let mut seen = Vec::new();
        again
            .flush(|b| {
                seen = b.iter().map(|(o, op)| (o.clone(), op.clone())).collect();
                Ok(())
            })
            .unwrap();
        let texts: Vec<String> = seen
            .iter()
            .map(|(_, op)| match op {
                Op::Note { text, .. } => text.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(texts, ["n0", "n1", "n2", "n9"]);
        assert!(seen.iter().all(|(o, _)| o == "r0"));
        assert_eq!(again.len(), 0);
        let left: i64 = db
            .with_conn(|c| c.query_row("SELECT count(*) FROM ha_outbox", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(left, 0, "written operations leave state.db");
    }
}
