//! The action journal in state.db: one row per execution key, claimed (`INSERT OR IGNORE`) before
//! anything is decided, so a repeated notification, a redelivered Pub/Sub message, a reload or a
//! restart finds the key taken and does nothing; the intent (state `running`, the request) is
//! written durably before the call and the outcome after it. Every decision is also appended to
//! `action_events`, the audit trail. Policy-wide events (trips, resets) are events of execution 0.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use tocsin_alerts::state::StateDb;

use crate::error::Result;
use crate::guards::{Guard, Trip};

/// States an execution passes through; the last one is its outcome.
pub mod state {
    /// Claimed, to be decided now.
    pub const MATCHED: &str = "matched";
    /// Waiting for the policy's `delay`.
    pub const DELAYED: &str = "delayed";
    pub const PENDING_APPROVAL: &str = "pending_approval";
    /// Intent written: the call is being made.
    pub const RUNNING: &str = "running";
    /// Succeeded; waiting to see the alert resolve (`verify`).
    pub const VERIFYING: &str = "verifying";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const SUPPRESSED: &str = "suppressed";
    pub const DRY_RUN: &str = "dry_run";
    pub const DENIED: &str = "denied";
    pub const EXPIRED: &str = "expired";
    /// The alert resolved (or fired again) before the delay passed.
    pub const SKIPPED: &str = "skipped";
    /// Interrupted by a crash and not safe to repeat.
    pub const UNKNOWN: &str = "unknown";
    pub const VERIFIED: &str = "verified";
    pub const INEFFECTIVE: &str = "ineffective";

    /// States that are not an outcome yet.
    pub const OPEN: [&str; 5] = [MATCHED, DELAYED, PENDING_APPROVAL, RUNNING, VERIFYING];
}

/// A new execution to claim.
#[derive(Debug, Clone)]
pub struct NewExec {
    pub key: String,
    pub policy: String,
    pub fingerprint: u64,
    pub alert_starts_at: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub target: String,
    pub kind: String,
    pub mode: String,
    pub state: &'static str,
    pub due_at: i64,
    pub detail: String,
}

/// One row of `action_executions`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExecRow {
    pub id: i64,
    pub key: String,
    pub policy: String,
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
    pub alert_starts_at: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub target: String,
    pub kind: String,
    pub mode: String,
    #[serde(rename = "outcome")]
    pub state: String,
    pub guard: String,
    pub request: serde_json::Value,
    pub status: i64,
    pub detail: String,
    pub attempts: i64,
    pub created_at: i64,
    pub due_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub duration_ms: i64,
    pub decided_by: String,
}

fn hex<S: serde::Serializer>(fp: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{fp:016x}"))
}

/// One row of `action_events`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub id: i64,
    pub execution: i64,
    pub at: i64,
    pub event: String,
    pub detail: String,
    pub actor: String,
}

/// A change to one execution, with the audit event that explains it.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub state: Option<&'static str>,
    pub guard: Option<String>,
    pub request: Option<serde_json::Value>,
    pub status: Option<i64>,
    pub detail: Option<String>,
    pub attempts: Option<i64>,
    pub due_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub decided_by: Option<String>,
    /// The audit event: (event, detail, actor).
    pub event: Option<(String, String, String)>,
}

/// Filters of [`Journal::list`].
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub policy: Option<String>,
    pub outcome: Option<String>,
    pub target: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Most rows returned; 0: 100.
    pub limit: usize,
}

#[derive(Clone, Debug)]
pub struct Journal {
    db: StateDb,
}

const COLS: &str =
    "id, key, policy, fingerprint, alert_starts_at, labels, annotations, target, kind, mode, \
     state, guard, request, status, detail, attempts, created_at, due_at, started_at, finished_at, \
     duration_ms, decided_by";

fn row(r: &Row<'_>) -> rusqlite::Result<ExecRow> {
    let json_map = |s: String| serde_json::from_str(&s).unwrap_or_default();
    let req: String = r.get(12)?;
    Ok(ExecRow {
        id: r.get(0)?,
        key: r.get(1)?,
        policy: r.get(2)?,
        fingerprint: r.get::<_, i64>(3)? as u64,
        alert_starts_at: r.get(4)?,
        labels: json_map(r.get(5)?),
        annotations: json_map(r.get(6)?),
        target: r.get(7)?,
        kind: r.get(8)?,
        mode: r.get(9)?,
        state: r.get(10)?,
        guard: r.get(11)?,
        request: if req.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&req).unwrap_or(serde_json::Value::String(req))
        },
        status: r.get(13)?,
        detail: r.get(14)?,
        attempts: r.get(15)?,
        created_at: r.get(16)?,
        due_at: r.get(17)?,
        started_at: r.get(18)?,
        finished_at: r.get(19)?,
        duration_ms: r.get(20)?,
        decided_by: r.get(21)?,
    })
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    execution: i64,
    at: i64,
    event: &str,
    detail: &str,
    actor: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO action_events (execution, at, event, detail, actor) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![execution, at, event, detail, actor],
    )?;
    Ok(())
}

fn apply(tx: &rusqlite::Transaction<'_>, id: i64, u: &Update, now_ms: i64) -> rusqlite::Result<()> {
    let mut sets: Vec<String> = Vec::new();
    let mut vals: Vec<rusqlite::types::Value> = Vec::new();
    let mut set = |col: &str, v: rusqlite::types::Value| {
        vals.push(v);
        sets.push(format!("{col} = ?{}", vals.len()));
    };
    use rusqlite::types::Value as V;
    if let Some(s) = u.state {
        set("state", V::Text(s.into()));
    }
    if let Some(g) = &u.guard {
        set("guard", V::Text(g.clone()));
    }
    if let Some(r) = &u.request {
        set("request", V::Text(r.to_string()));
    }
    if let Some(s) = u.status {
        set("status", V::Integer(s));
    }
    if let Some(d) = &u.detail {
        set("detail", V::Text(d.clone()));
    }
    if let Some(a) = u.attempts {
        set("attempts", V::Integer(a));
    }
    if let Some(d) = u.due_at {
        set("due_at", V::Integer(d));
    }
    if let Some(s) = u.started_at {
        set("started_at", V::Integer(s));
    }
    if let Some(f) = u.finished_at {
        set("finished_at", V::Integer(f));
    }
    if let Some(d) = u.duration_ms {
        set("duration_ms", V::Integer(d));
    }
    if let Some(d) = &u.decided_by {
        set("decided_by", V::Text(d.clone()));
    }
    if !sets.is_empty() {
        vals.push(V::Integer(id));
        let sql = format!(
            "UPDATE action_executions SET {} WHERE id = ?{}",
            sets.join(", "),
            vals.len()
        );
        tx.execute(&sql, rusqlite::params_from_iter(vals))?;
    }
    if let Some((event, detail, actor)) = &u.event {
        insert_event(tx, id, now_ms, event, detail, actor)?;
    }
    Ok(())
}

impl Journal {
    pub fn new(db: StateDb) -> Journal {
        Journal { db }
    }

    pub fn db(&self) -> &StateDb {
        &self.db
    }

    /// Claims each execution key; the new row's id, or None when the key was already taken
    /// (that execution exists: nothing more to do). One transaction for the batch.
    pub fn claim(&self, execs: &[NewExec], now_ms: i64) -> Result<Vec<Option<i64>>> {
        if execs.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.db.write(|tx| {
            let mut out = Vec::with_capacity(execs.len());
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO action_executions (key, policy, fingerprint, alert_starts_at, \
                 labels, annotations, target, kind, mode, state, detail, created_at, due_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for e in execs {
                let n = st.execute(params![
                    e.key,
                    e.policy,
                    e.fingerprint as i64,
                    e.alert_starts_at,
                    serde_json::to_string(&e.labels).unwrap_or_default(),
                    serde_json::to_string(&e.annotations).unwrap_or_default(),
                    e.target,
                    e.kind,
                    e.mode,
                    e.state,
                    e.detail,
                    now_ms,
                    e.due_at,
                ])?;
                if n == 0 {
                    out.push(None);
                    continue;
                }
                let id = tx.last_insert_rowid();
                let detail = if e.state == state::DELAYED {
                    format!("alert matched; acting after the delay, at {}", crate::guards::fmt_ms(e.due_at))
                } else {
                    "alert matched".to_string()
                };
                insert_event(tx, id, now_ms, "matched", &detail, "")?;
                out.push(Some(id));
            }
            Ok(out)
        })?)
    }

    /// Applies one change. `durable` syncs it to disk before returning (the intent before a
    /// call: it must survive a power loss, not only a crash).
    pub fn update(&self, id: i64, u: &Update, now_ms: i64, durable: bool) -> Result<()> {
        if durable {
            self.db.write_durable(|tx| apply(tx, id, u, now_ms))?;
        } else {
            self.db.write(|tx| apply(tx, id, u, now_ms))?;
        }
        Ok(())
    }

    /// Applies several changes in one transaction.
    pub fn update_many(&self, us: &[(i64, Update)], now_ms: i64) -> Result<()> {
        if us.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            for (id, u) in us {
                apply(tx, *id, u, now_ms)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// A policy-wide audit event (trip, reset).
    pub fn policy_event(
        &self,
        policy: &str,
        event: &str,
        detail: &str,
        actor: &str,
        now_ms: i64,
    ) -> Result<()> {
        let d = format!("policy {policy:?}: {detail}");
        self.db
            .write(|tx| insert_event(tx, 0, now_ms, event, &d, actor))?;
        Ok(())
    }

    pub fn get(&self, id: i64) -> Result<Option<ExecRow>> {
        Ok(self.db.with_conn(|c| {
            c.query_row(
                &format!("SELECT {COLS} FROM action_executions WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
        })?)
    }

    /// The executions with audit events after event `after`, and the newest event id (every
    /// change of an execution adds an event): what a replica mirrors to the others.
    pub fn changed_since(&self, after: i64) -> Result<(Vec<i64>, i64)> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT execution, max(id) FROM action_events WHERE id > ?1 GROUP BY execution
                 ORDER BY execution",
            )?;
            let rows: Vec<(i64, i64)> = st
                .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let last = rows.iter().map(|(_, m)| *m).max().unwrap_or(after);
            Ok((rows.into_iter().map(|(e, _)| e).collect(), last))
        })?)
    }

    /// The id of the execution `key`.
    pub fn id_of(&self, key: &str) -> Result<Option<i64>> {
        Ok(self.db.with_conn(|c| {
            c.query_row(
                "SELECT id FROM action_executions WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
        })?)
    }

    pub fn events(&self, id: i64) -> Result<Vec<Event>> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLS} FROM action_events WHERE execution = ?1 ORDER BY id"
            ))?;
            let rows = st.query_map([id], event_row)?;
            rows.collect()
        })?)
    }

    /// Executions not finished yet (to resume at start-up).
    pub fn open_rows(&self) -> Result<Vec<ExecRow>> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM action_executions WHERE state IN ('matched', 'delayed', 'pending_approval', 'running', 'verifying') ORDER BY id"
            ))?;
            let rows = st.query_map([], row)?;
            rows.collect()
        })?)
    }

    /// Executions that ended ineffective or unknown since `since` (their alerts may still fire).
    pub fn alarming_rows(&self, since_ms: i64) -> Result<Vec<ExecRow>> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM action_executions WHERE state IN ('ineffective', 'unknown') AND finished_at > ?1 ORDER BY id"
            ))?;
            let rows = st.query_map([since_ms], row)?;
            rows.collect()
        })?)
    }

    /// (policy, when, target) of every action admitted (run, dry run or queued) since `since`:
    /// the history the guards count.
    pub fn admitted_since(&self, since_ms: i64) -> Result<Vec<(String, i64, String)>> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT policy, started_at, target FROM action_executions WHERE started_at > ?1",
            )?;
            let rows = st.query_map([since_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })?)
    }

    pub fn list(&self, q: &ListQuery) -> Result<Vec<ExecRow>> {
        let mut conds: Vec<String> = Vec::new();
        let mut vals: Vec<rusqlite::types::Value> = Vec::new();
        let mut cond = |sql: &str, v: rusqlite::types::Value| {
            vals.push(v);
            conds.push(sql.replace('?', &format!("?{}", vals.len())));
        };
        use rusqlite::types::Value as V;
        if let Some(p) = &q.policy {
            cond("policy = ?", V::Text(p.clone()));
        }
        if let Some(o) = &q.outcome {
            cond("state = ?", V::Text(o.clone()));
        }
        if let Some(t) = &q.target {
            cond("target = ?", V::Text(t.clone()));
        }
        if let Some(f) = q.from_ms {
            cond("created_at >= ?", V::Integer(f));
        }
        if let Some(t) = q.to_ms {
            cond("created_at <= ?", V::Integer(t));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let limit = if q.limit == 0 {
            100
        } else {
            q.limit.min(100_000)
        } as i64;
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLS} FROM action_executions {filter} ORDER BY id DESC LIMIT {limit}"
            ))?;
            let rows = st.query_map(rusqlite::params_from_iter(vals), row)?;
            rows.collect()
        })?)
    }

    /// The tripped state of every policy that has one.
    pub fn trips(&self) -> Result<Vec<(String, Trip)>> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT policy, tripped_at, guard, reason, reset_at FROM action_policies WHERE tripped_at > 0",
            )?;
            let rows = st.query_map([], |r| {
                let g: String = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Trip {
                        at_ms: r.get(1)?,
                        guard: Guard::parse(&g).unwrap_or(Guard::Tripped),
                        reason: r.get(3)?,
                        reset_at_ms: r.get(4)?,
                    },
                ))
            })?;
            rows.collect()
        })?)
    }

    /// Records (or, with None, clears) a policy's trip, with its audit event.
    pub fn set_trip(
        &self,
        policy: &str,
        trip: Option<&Trip>,
        event: (&str, &str, &str),
        now_ms: i64,
    ) -> Result<()> {
        let detail = format!("policy {policy:?}: {}", event.1);
        self.db.write_durable(|tx| {
            match trip {
                Some(t) => tx.execute(
                    "INSERT INTO action_policies (policy, tripped_at, guard, reason, reset_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT(policy) DO UPDATE SET tripped_at = ?2, guard = ?3, reason = ?4, reset_at = ?5",
                    params![policy, t.at_ms, t.guard.as_str(), t.reason, t.reset_at_ms],
                )?,
                None => tx.execute(
                    "UPDATE action_policies SET tripped_at = 0, guard = '', reason = '', reset_at = 0 WHERE policy = ?1",
                    [policy],
                )?,
            };
            insert_event(tx, 0, now_ms, event.0, &detail, event.2)
        })?;
        Ok(())
    }

    /// Policy-wide events (trips, resets), newest first.
    pub fn policy_events(&self, limit: usize) -> Result<Vec<Event>> {
        Ok(self.db.with_conn(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {EVENT_COLS} FROM action_events WHERE execution = 0 ORDER BY id DESC LIMIT {}",
                limit.clamp(1, 10_000)
            ))?;
            let rows = st.query_map([], event_row)?;
            rows.collect()
        })?)
    }
}

const EVENT_COLS: &str = "id, execution, at, event, detail, actor";

/// One `action_events` row selected as [`EVENT_COLS`].
fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        execution: r.get(1)?,
        at: r.get(2)?,
        event: r.get(3)?,
        detail: r.get(4)?,
        actor: r.get(5)?,
    })
}
