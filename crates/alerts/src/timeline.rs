//! An alert's timeline, read from the state db: its firings and resolves (`alert_history`), what
//! people did to it and what the manager ended (`alert_events`), the outcome of every
//! notification that carried it, per receiver integration (`notifications`, written here by the
//! pipeline after each delivery), and the remediation actions taken on it (`action_executions`
//! and their `action_events`, matched by fingerprint). Newest first.

use serde::Serialize;

use crate::error::Result;
use crate::state::StateDb;

/// Default and largest number of timeline entries one request returns.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;

/// One entry of an alert's timeline. `kind` says which of the other fields mean something:
///
/// - `firing`, `resolved`: the alert started (`at` is its start) or ended.
/// - `ack` (by, text = comment, until = expiry or none), `unack` (by, text), `ack_ended` (text
///   says why: `resolved`, `expired`, `severity changed from "a" to "b"`).
/// - `shelve` (by, text, until), `unshelve` (by), `shelve_ended` (text `expired`).
/// - `note` (by, text).
/// - `notification`: receiver, integration (`<receiver>/<kind>/<index>`), status (`firing` or
///   `resolved`: how the alert was reported), outcome (`sent` or `failed`), text (the error).
/// - `action`: action (execution id), policy, text = `<event>: <detail>`, by (the actor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct TimelineEvent {
    pub at_ms: i64,
    pub kind: String,
    pub by: String,
    pub text: String,
    pub until_ms: Option<i64>,
    pub receiver: String,
    pub integration: String,
    pub status: String,
    pub outcome: String,
    pub action: Option<i64>,
    pub policy: String,
}

/// One notification attempt's outcome for one alert, as the pipeline records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRecord {
    pub fingerprint: u64,
    /// The receiver's name.
    pub receiver: String,
    /// `<receiver>/<integration>/<index>`.
    pub integration: String,
    pub group_key: String,
    /// Whether the alert was reported firing (false: resolved).
    pub firing: bool,
    /// `None` when delivered; the error otherwise.
    pub error: Option<String>,
    pub at_ms: i64,
}

/// Writes the outcome of one delivery, one row per alert it carried, in one transaction.
pub fn record_notifications(db: &StateDb, recs: &[NotificationRecord]) -> Result<()> {
    if recs.is_empty() {
        return Ok(());
    }
    db.write(|tx| {
        let mut st = tx.prepare_cached(
            "INSERT INTO notifications
               (fingerprint, at, receiver, integration, group_key, status, outcome, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for r in recs {
            st.execute(rusqlite::params![
                r.fingerprint as i64,
                r.at_ms,
                r.receiver,
                r.integration,
                r.group_key,
                if r.firing { "firing" } else { "resolved" },
                if r.error.is_some() { "failed" } else { "sent" },
                r.error.as_deref().unwrap_or(""),
            ])?;
        }
        Ok(())
    })
}

/// Whether the state db holds anything about alert `fp` (history, events or notifications).
pub fn known(db: &StateDb, fp: u64) -> Result<bool> {
    db.with_conn(|c| {
        c.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM alert_history WHERE fingerprint = ?1)
                 OR EXISTS (SELECT 1 FROM alert_events WHERE fingerprint = ?1)
                 OR EXISTS (SELECT 1 FROM notifications WHERE fingerprint = ?1)",
        )?
        .query_row([fp as i64], |r| r.get(0))
    })
}

/// The newest `limit` entries of alert `fp`'s timeline, newest first; entries at the same
/// instant keep the order they happened in, reversed.
pub fn timeline(db: &StateDb, fp: u64, limit: usize) -> Result<Vec<TimelineEvent>> {
    let fpi = fp as i64;
    let lim = limit.min(MAX_LIMIT) as i64;
    // Each source is read newest first and cut at `limit`; the merge keeps the newest overall.
    // The second key orders entries of one instant: a firing before what was done to it, a
    // resolve after.
    let mut all: Vec<(i64, u8, i64, TimelineEvent)> = db.with_conn(|c| {
        let mut out = Vec::new();
        let mut st = c.prepare_cached(
            "SELECT id, starts_at, ends_at FROM alert_history WHERE fingerprint = ?1
             ORDER BY starts_at DESC, id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(rusqlite::params![fpi, lim], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (id, starts, ends) = row?;
            out.push((starts, 0, id, ev(starts, "firing")));
            if ends != 0 {
                out.push((ends, 9, id, ev(ends, "resolved")));
            }
        }
        let mut st = c.prepare_cached(
            "SELECT id, at, kind, actor, text, until FROM alert_events WHERE fingerprint = ?1
             ORDER BY at DESC, id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(rusqlite::params![fpi, lim], |r| {
            let until: i64 = r.get(5)?;
            Ok((
                r.get::<_, i64>(0)?,
                TimelineEvent {
                    at_ms: r.get(1)?,
                    kind: r.get(2)?,
                    by: r.get(3)?,
                    text: r.get(4)?,
                    until_ms: (until != 0).then_some(until),
                    ..TimelineEvent::default()
                },
            ))
        })?;
        for row in rows {
            let (id, e) = row?;
            out.push((e.at_ms, 2, id, e));
        }
        let mut st = c.prepare_cached(
            "SELECT id, at, receiver, integration, status, outcome, error FROM notifications
             WHERE fingerprint = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(rusqlite::params![fpi, lim], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                TimelineEvent {
                    at_ms: r.get(1)?,
                    kind: "notification".into(),
                    receiver: r.get(2)?,
                    integration: r.get(3)?,
                    status: r.get(4)?,
                    outcome: r.get(5)?,
                    text: r.get(6)?,
                    ..TimelineEvent::default()
                },
            ))
        })?;
        for row in rows {
            let (id, e) = row?;
            out.push((e.at_ms, 3, id, e));
        }
        let mut st = c.prepare_cached(
            "SELECT e.id, e.at, e.event, e.detail, e.actor, x.id, x.policy
             FROM action_events e JOIN action_executions x ON x.id = e.execution
             WHERE x.fingerprint = ?1 ORDER BY e.at DESC, e.id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(rusqlite::params![fpi, lim], |r| {
            let event: String = r.get(2)?;
            let detail: String = r.get(3)?;
            Ok((
                r.get::<_, i64>(0)?,
                TimelineEvent {
                    at_ms: r.get(1)?,
                    kind: "action".into(),
                    text: if detail.is_empty() {
                        event
                    } else {
                        format!("{event}: {detail}")
                    },
                    by: r.get(4)?,
                    action: Some(r.get(5)?),
                    policy: r.get(6)?,
                    ..TimelineEvent::default()
                },
            ))
        })?;
        for row in rows {
            let (id, e) = row?;
            out.push((e.at_ms, 4, id, e));
        }
        Ok(out)
    })?;
    all.sort_by_key(|e| std::cmp::Reverse((e.0, e.1, e.2)));
    all.truncate(limit);
    Ok(all.into_iter().map(|(_, _, _, e)| e).collect())
}

fn ev(at_ms: i64, kind: &str) -> TimelineEvent {
    TimelineEvent {
        at_ms,
        kind: kind.into(),
        ..TimelineEvent::default()
    }
}
