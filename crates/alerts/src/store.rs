//! The alert store: every alert the manager knows, deduplicated by fingerprint and merged as
//! Alertmanager merges re-sent alerts; alerts without `endsAt` resolve after `resolve_timeout`;
//! resolved alerts are dropped by `gc`. `put` returns the stored alerts for the dispatcher to
//! route. Every firing and resolve is recorded in the alert history (state db).
//!
//! Live alerts are not persisted, as in Alertmanager: senders re-send firing alerts every few
//! evaluation intervals, so the set rebuilds itself after a restart. The history is the record
//! that survives. A history row still open at startup becomes a live alert again
//! (`revive_orphans`, with a `resolve_timeout` end): the embedded rule engine dies with us, so
//! an alert whose condition cleared during the restart would otherwise never be notified as
//! resolved. Re-sent still firing, it continues with the row's (earlier) start kept, as a
//! running Alertmanager would merge it; not re-sent, it resolves `resolve_timeout` after the
//! start it was first put back at (the row's `revived_until`, so quick restarts do not push it
//! back), since Alertmanager would have timed it out too. Rows that cannot be revived are
//! closed then.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use rusqlite::{OptionalExtension, Transaction};
use tocsin_model::{Alert, Labels};

use crate::error::{Error, Result};
use crate::events::{AlertEvent, EventBus};

#[path = "store_history.rs"]
mod history;
#[path = "store_resolved.rs"]
mod resolved;
#[path = "store_shared.rs"]
mod shared;
use crate::state::StateDb;
pub use history::HistoryQuery;
use resolved::change_kind;
pub use shared::{HistoryChange, HistoryHook};

/// How long closed history rows are kept.
pub const DEFAULT_HISTORY_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

pub struct AlertStore {
    db: StateDb,
    inner: Mutex<Inner>,
    resolve_timeout_ms: AtomicI64,
    history_retention_ms: AtomicI64,
    /// Firing, resolved and updated alerts are published here as they are put.
    events: EventBus,
    /// Told of every history change recorded (replicas share the history).
    history_hook: std::sync::OnceLock<HistoryHook>,
}

/// One row of the alert history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub fingerprint: u64,
    pub labels: tocsin_model::Labels,
    pub starts_at: i64,
    /// 0 while still firing.
    pub ends_at: i64,
}

struct Inner {
    alerts: HashMap<u64, Alert>,
    /// The history row of each alert currently recorded as firing.
    open: HashMap<u64, OpenRow>,
    /// Open rows found at startup that no sender has re-sent yet.
    orphans: HashSet<u64>,
    /// The first `now` seen after startup; unclaimed orphans are closed `resolve_timeout` later.
    first_seen: Option<i64>,
    /// Alerts put back by `revive_orphans` whose row carries a `revived_until`, until a sender
    /// re-sends them.
    revived: HashSet<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OpenRow {
    id: i64,
    starts_at: i64,
}

/// A change to the history, decided from an alert's transition.
#[derive(Debug, Clone, Copy, PartialEq)]
enum HistOp {
    Open { starts_at: i64 },
    Close { id: i64, ends_at: i64 },
    SetStart { id: i64, starts_at: i64 },
}

impl AlertStore {
    /// `resolve_timeout_ms` is applied to alerts received without an end.
    pub fn new(db: Option<StateDb>, resolve_timeout_ms: i64) -> Result<AlertStore> {
        let db = match db {
            Some(db) => db,
            None => StateDb::in_memory()?,
        };
        let open = load_open(&db)?;
        let orphans = open.keys().copied().collect();
        Ok(AlertStore {
            db,
            inner: Mutex::new(Inner {
                alerts: HashMap::new(),
                open,
                orphans,
                first_seen: None,
                revived: HashSet::new(),
            }),
            resolve_timeout_ms: AtomicI64::new(resolve_timeout_ms),
            history_retention_ms: AtomicI64::new(DEFAULT_HISTORY_RETENTION_MS),
            events: EventBus::default(),
            history_hook: std::sync::OnceLock::new(),
        })
    }

    /// Puts back the alerts the previous process knew and may still owe a notification for,
    /// since the manager that knew them was killed (and, for rules, the sender with it):
    ///
    /// - alerts whose history row is still open, as firing: each gets the row's start and
    ///   labels, no annotations (they are not kept), and an end of `now_ms` + `resolve_timeout`
    ///   marked as a timeout, the way Alertmanager holds an alert whose sender stopped sending.
    ///   A sender that re-sends it firing keeps it going (and the notification log keeps that
    ///   from notifying again); one that does not lets it resolve, and the resolve is notified.
    /// - alerts in `notified_firing` (the notification log's firing sets) whose latest history
    ///   row is closed, as resolved at the row's end: the resolve reached the history but the
    ///   flush that would have notified it did not happen. The notification log tells the
    ///   dedup stage whether it still must.
    ///
    /// Returns how many were put back; the manager routes them.
    pub fn revive_orphans(&self, now_ms: i64, notified_firing: &HashSet<u64>) -> Result<usize> {
        let mut rows: Vec<(i64, String, i64, i64, i64)> = self.db.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT fingerprint, labels, starts_at, ends_at, revived_until FROM alert_history
                 WHERE ends_at = 0",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            rows.collect()
        })?;
        let open: HashSet<u64> = rows.iter().map(|r| r.0 as u64).collect();
        let owed: Vec<u64> = notified_firing
            .iter()
            .copied()
            .filter(|fp| !open.contains(fp))
            .collect();
        if !owed.is_empty() {
            let closed: Vec<(i64, String, i64, i64, i64)> = self.db.with_conn(|c| {
                let mut st = c.prepare_cached(
                    "SELECT fingerprint, labels, starts_at, ends_at, revived_until FROM alert_history
                     WHERE fingerprint = ?1 ORDER BY starts_at DESC, id DESC LIMIT 1",
                )?;
                let mut out = Vec::new();
                for fp in &owed {
                    let row = st
                        .query_row([*fp as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                        })
                        .optional()?;
                    out.extend(row);
                }
                Ok(out)
            })?;
            rows.extend(closed);
        }
        let rt = self.resolve_timeout();
        let mut inner = self.inner.lock();
        inner.first_seen.get_or_insert(now_ms);
        let mut revived = 0;
        // Rows put back for the first time get their deadline written down.
        let mut deadlines: Vec<(i64, i64)> = Vec::new();
        for (fp, labels, starts_at, ends_at, revived_until) in rows {
            let fp = fp as u64;
            if inner.alerts.contains_key(&fp) {
                continue;
            }
            let still_open = ends_at == 0;
            if still_open && !inner.orphans.contains(&fp) {
                continue;
            }
            let labels = match decode_labels(&labels) {
                Ok(l) if tocsin_model::alert::fingerprint(&l) == fp => l,
                // A row that cannot be read back is left to be closed as an orphan.
                _ => continue,
            };
            let ends_at = if !still_open {
                ends_at
            } else if revived_until != 0 {
                // Put back before and not re-sent since: the deadline stands, or restarts
                // coming faster than `resolve_timeout` would keep it firing for ever.
                revived_until
            } else {
                let until = now_ms.saturating_add(rt).max(starts_at);
                if let Some(row) = inner.open.get(&fp) {
                    deadlines.push((row.id, until));
                }
                until
            };
            if still_open {
                inner.revived.insert(fp);
            }
            let a = Alert {
                labels,
                annotations: Default::default(),
                starts_at,
                ends_at,
                generator_url: String::new(),
                updated_at: now_ms,
                timeout: still_open,
            };
            inner.alerts.insert(fp, a);
            // Now an alert like any other: it resolves (closing its row) through `gc`.
            inner.orphans.remove(&fp);
            revived += 1;
        }
        set_per_row(&self.db, "revived_until", &deadlines)?;
        Ok(revived)
    }

    /// Those of `alerts` whose history row is still open.
    pub fn with_open_rows(&self, alerts: &[Alert]) -> Vec<Alert> {
        if alerts.is_empty() {
            return Vec::new();
        }
        let inner = self.inner.lock();
        alerts
            .iter()
            .filter(|a| inner.open.contains_key(&a.fingerprint()))
            .cloned()
            .collect()
    }

    /// Closes the history rows of alerts whose resolve has been notified everywhere it was
    /// due, unless they fired again meanwhile. Rows of alerts resolved by a sender are closed
    /// when the resolve is put; this is for those resolved by their end passing (a sender that
    /// stopped, an alert put back by `revive_orphans`), whose rows `gc` would close only much
    /// later: a restart before that would put them back as firing and notify them again.
    pub fn close_notified(&self, alerts: &[Alert], now_ms: i64) {
        let mut inner = self.inner.lock();
        let mut closes: Vec<(u64, i64, i64)> = Vec::new();
        let mut episodes: HashMap<u64, (Labels, i64)> = HashMap::new();
        for a in alerts {
            let fp = a.fingerprint();
            if inner
                .alerts
                .get(&fp)
                .is_some_and(|cur| !cur.resolved_at(now_ms))
            {
                continue;
            }
            if let Some(row) = inner.open.get(&fp) {
                closes.push((fp, row.id, a.ends_at.max(row.starts_at)));
                episodes.insert(fp, (a.labels.clone(), row.starts_at));
            }
        }
        if closes.is_empty() {
            return;
        }
        let res = self.db.write(|tx| {
            let mut close =
                tx.prepare_cached("UPDATE alert_history SET ends_at = ?2 WHERE id = ?1")?;
            for (_, id, ends_at) in &closes {
                close.execute([id, ends_at])?;
            }
            Ok(())
        });
        match res {
            Ok(()) => {
                let mut told = Vec::with_capacity(closes.len());
                for (fp, _, ends_at) in closes {
                    inner.open.remove(&fp);
                    told.push(HistoryChange::Close {
                        fingerprint: fp,
                        ends_at,
                        episode: episodes.remove(&fp),
                    });
                }
                self.tell_history(told);
            }
            Err(e) => tracing::warn!(error = %e, "alert history not updated"),
        }
    }

    pub fn set_resolve_timeout(&self, ms: i64) {
        self.resolve_timeout_ms.store(ms, Ordering::Relaxed);
    }

    pub fn resolve_timeout(&self) -> i64 {
        self.resolve_timeout_ms.load(Ordering::Relaxed)
    }

    /// How long closed history rows are kept (ms).
    pub fn history_retention(&self) -> i64 {
        self.history_retention_ms.load(Ordering::Relaxed)
    }

    /// How long closed history rows are kept (ms).
    pub fn set_history_retention(&self, ms: i64) {
        self.history_retention_ms
            .store(ms.max(0), Ordering::Relaxed);
    }

    /// Merges `alerts` received at `now_ms`; returns the alerts as stored after the merge (the
    /// dispatcher routes these). Invalid alerts are `Error::BadData` naming the field; if any
    /// alert is invalid nothing is stored.
    pub fn put(&self, alerts: Vec<Alert>, now_ms: i64) -> Result<Vec<Alert>> {
        let rt = self.resolve_timeout();
        let mut prepared = Vec::with_capacity(alerts.len());
        let mut errors = Vec::new();
        for (i, a) in alerts.into_iter().enumerate() {
            match prepare(a, now_ms, rt) {
                Ok(a) => prepared.push(a),
                Err(e) => errors.push(format!("alerts[{i}].{e}")),
            }
        }
        if !errors.is_empty() {
            return Err(Error::BadData(errors.join("; ")));
        }
        Ok(self.store(prepared, now_ms))
    }

    /// Alertmanager's behaviour for `POST /api/v2/alerts`: stores the valid alerts and reports
    /// the invalid ones (`Error::BadData` naming each by index and field) alongside.
    pub fn put_partial(&self, alerts: Vec<Alert>, now_ms: i64) -> (Vec<Alert>, Option<Error>) {
        let rt = self.resolve_timeout();
        let mut prepared = Vec::with_capacity(alerts.len());
        let mut errors = Vec::new();
        for (i, a) in alerts.into_iter().enumerate() {
            match prepare(a, now_ms, rt) {
                Ok(a) => prepared.push(a),
                Err(e) => errors.push(format!("alerts[{i}].{e}")),
            }
        }
        let stored = self.store(prepared, now_ms);
        let err = (!errors.is_empty()).then(|| Error::BadData(errors.join("; ")));
        (stored, err)
    }

    fn store(&self, alerts: Vec<Alert>, now: i64) -> Vec<Alert> {
        let mut inner = self.inner.lock();
        inner.first_seen.get_or_insert(now);
        let mut out = Vec::with_capacity(alerts.len());
        let mut transitions = Vec::with_capacity(alerts.len());
        // Rows of put-back alerts a sender has re-sent: their deadline no longer holds.
        let mut unrevive: Vec<i64> = Vec::new();
        for a in alerts {
            let fp = a.fingerprint();
            let old = inner.alerts.get(&fp).cloned();
            let mut merged = match &old {
                Some(old) if overlaps(old, &a) => merge(old, &a, now),
                _ => a,
            };
            // First re-send after a restart of an alert whose history row is still open: the
            // sender's clock of the episode restarted with us (a rule's `startsAt` is when it
            // fired again after the restart), but an Alertmanager that had kept running would
            // have merged it into the alert it held and kept the earlier start. Do the same,
            // so the alert keeps its start time and its history stays one row.
            if old.is_none() && inner.orphans.contains(&fp) && !merged.resolved_at(now) {
                if let Some(row) = inner.open.get(&fp) {
                    if row.starts_at < merged.starts_at {
                        merged.starts_at = row.starts_at;
                    }
                }
            }
            inner.alerts.insert(fp, merged.clone());
            inner.orphans.remove(&fp);
            if inner.revived.remove(&fp) {
                if let Some(row) = inner.open.get(&fp) {
                    unrevive.push(row.id);
                }
            }
            transitions.push((fp, old, merged.clone()));
            out.push(merged);
        }
        let events: Vec<AlertEvent> = transitions
            .iter()
            .filter_map(|(fp, old, merged)| {
                change_kind(old.as_ref(), merged, now).map(|kind| AlertEvent {
                    fingerprint: *fp,
                    kind,
                    at_ms: now,
                })
            })
            .collect();
        let Inner { open, .. } = &mut *inner;
        let mut told = Vec::new();
        // The alerts are stored whatever happens to the history: losing a history row is
        // better than refusing alerts because the disk is full.
        let res = self.db.write(|tx| {
            for id in &unrevive {
                tx.prepare_cached("UPDATE alert_history SET revived_until = 0 WHERE id = ?1")?
                    .execute([id])?;
            }
            let mut overlay: HashMap<u64, Option<OpenRow>> = HashMap::new();
            for (fp, old, merged) in &transitions {
                let row = match overlay.get(fp) {
                    Some(r) => *r,
                    None => open.get(fp).copied(),
                };
                for op in decide(old.as_ref(), merged, row, now) {
                    let change = exec(tx, *fp, &merged.labels, op)?;
                    told.push(shared::change(
                        *fp,
                        &merged.labels,
                        op,
                        row.map(|r| r.starts_at),
                    ));
                    overlay.insert(*fp, change);
                }
            }
            Ok(overlay)
        });
        match res {
            Ok(overlay) => apply(open, overlay),
            Err(e) => {
                told.clear();
                tracing::warn!(error = %e, "alert history not recorded");
            }
        }
        drop(inner);
        self.tell_history(told);
        self.events.publish(events);
        out
    }

    /// Where alert changes are published (the manager publishes its own there too).
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    pub fn get(&self, fingerprint: u64) -> Option<Alert> {
        self.inner.lock().alerts.get(&fingerprint).cloned()
    }

    /// Every stored alert (firing and not yet collected resolved ones), ordered by labels.
    pub fn all(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.inner.lock().alerts.values().cloned().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// How many alerts are stored.
    pub fn len(&self) -> usize {
        self.inner.lock().alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops alerts resolved before `now_ms`, returning them (the dispatcher removes them from groups).
    pub fn gc(&self, now_ms: i64) -> Vec<Alert> {
        let rt = self.resolve_timeout();
        let retention = self.history_retention_ms.load(Ordering::Relaxed);
        let mut inner = self.inner.lock();
        let first_seen = *inner.first_seen.get_or_insert(now_ms);
        let gone: Vec<u64> = inner
            .alerts
            .iter()
            .filter(|(_, a)| a.resolved_at(now_ms))
            .map(|(fp, _)| *fp)
            .collect();
        let mut removed = Vec::with_capacity(gone.len());
        for fp in gone {
            if let Some(a) = inner.alerts.remove(&fp) {
                removed.push(a);
            }
        }
        removed.sort_by(|a, b| a.labels.cmp(&b.labels));

        let mut closes: Vec<(u64, i64, i64)> = Vec::new();
        let mut episodes: HashMap<u64, (Labels, i64)> = HashMap::new();
        for a in &removed {
            let fp = a.fingerprint();
            if let Some(row) = inner.open.get(&fp) {
                closes.push((fp, row.id, a.ends_at.max(row.starts_at)));
                episodes.insert(fp, (a.labels.clone(), row.starts_at));
            }
        }
        let orphans_due = !inner.orphans.is_empty() && now_ms >= first_seen.saturating_add(rt);
        if orphans_due {
            for fp in std::mem::take(&mut inner.orphans) {
                if let Some(row) = inner.open.get(&fp) {
                    closes.push((fp, row.id, first_seen.max(row.starts_at)));
                }
            }
        }
        let res = self.db.write(|tx| {
            let mut close =
                tx.prepare_cached("UPDATE alert_history SET ends_at = ?2 WHERE id = ?1")?;
            for (_, id, ends_at) in &closes {
                close.execute([id, ends_at])?;
            }
            tx.prepare_cached("DELETE FROM alert_history WHERE ends_at != 0 AND ends_at <= ?1")?
                .execute([now_ms.saturating_sub(retention)])?;
            Ok(())
        });
        match res {
            Ok(()) => {
                let mut told = Vec::with_capacity(closes.len());
                for (fp, _, ends_at) in closes {
                    inner.open.remove(&fp);
                    told.push(HistoryChange::Close {
                        fingerprint: fp,
                        ends_at,
                        episode: episodes.remove(&fp),
                    });
                }
                self.tell_history(told);
            }
            Err(e) => tracing::warn!(error = %e, "alert history not updated"),
        }
        removed
    }
}

/// Checks an alert and fills in what the manager owns: `updated_at`, and an end from the
/// resolve timeout when the sender gave none. An end already filled in by the caller keeps the
/// caller's `timeout` flag. Errors start with the field name.
fn prepare(mut a: Alert, now: i64, resolve_timeout: i64) -> std::result::Result<Alert, String> {
    if a.labels.is_empty() {
        return Err("labels: at least one label pair required".into());
    }
    if let Err(e) = a.labels.validate() {
        return Err(format!("labels: {e}"));
    }
    if a.annotations.keys().any(|k| k.is_empty()) {
        return Err("annotations: empty annotation name".into());
    }
    if a.starts_at == 0 {
        return Err("startsAt: start time missing".into());
    }
    if a.ends_at == 0 {
        a.ends_at = now.saturating_add(resolve_timeout);
        a.timeout = true;
        if a.ends_at < a.starts_at {
            return Err(
                "endsAt: end time must not be before start time (no endsAt given, and startsAt \
                 is later than now + resolve_timeout)"
                    .into(),
            );
        }
    } else {
        // `timeout` is left as the caller set it: Alertmanager's store keeps the flag its API
        // put on an alert whose end it filled in, and `merge` relies on it to let a sender's
        // explicit end override a guessed one.
        if a.ends_at < a.starts_at {
            return Err("endsAt: end time must not be before start time".into());
        }
    }
    a.updated_at = now;
    Ok(a)
}

/// Alertmanager merges a re-sent alert into the stored one only when the new activity range
/// reaches into the old one; otherwise the new alert replaces it (a re-fire after a resolve
/// starts afresh).
fn overlaps(old: &Alert, new: &Alert) -> bool {
    (new.ends_at > old.starts_at && new.ends_at < old.ends_at)
        || (new.starts_at > old.starts_at && new.starts_at < old.ends_at)
}

/// The younger (by `updated_at`) alert's labels, annotations and URL win; the start is the
/// earlier one; the end is the younger's unless the older carries a later end it was told
/// explicitly (not a resolve-timeout guess), or both are resolved and the older ended later.
fn merge(a: &Alert, b: &Alert, now: i64) -> Alert {
    let (older, younger) = if b.updated_at < a.updated_at {
        (b, a)
    } else {
        (a, b)
    };
    let mut res = younger.clone();
    if older.starts_at < younger.starts_at {
        res.starts_at = older.starts_at;
    }
    if younger.resolved_at(now) {
        if older.resolved_at(now) && older.ends_at > younger.ends_at {
            res.ends_at = older.ends_at;
        }
    } else if older.ends_at > younger.ends_at && !older.timeout {
        res.ends_at = older.ends_at;
    }
    res
}

/// What the history needs for one stored alert, given what it was (`old`), what it is now
/// (`merged`) and the open row of its fingerprint, if any.
fn decide(old: Option<&Alert>, merged: &Alert, row: Option<OpenRow>, now: i64) -> Vec<HistOp> {
    let firing = !merged.resolved_at(now);
    let old_resolved = old.filter(|o| o.resolved_at(now));
    let continuing = old.is_some() && old_resolved.is_none();
    match (firing, row) {
        (true, Some(row)) if merged.starts_at <= row.starts_at || continuing => {
            // The same episode, possibly with an earlier start learned from the merge.
            if merged.starts_at < row.starts_at {
                vec![HistOp::SetStart {
                    id: row.id,
                    starts_at: merged.starts_at,
                }]
            } else {
                Vec::new()
            }
        }
        (true, Some(row)) => {
            // A later start after the old alert resolved (or after a restart): a new episode.
            let ended = old_resolved.map_or(merged.starts_at, |o| o.ends_at);
            vec![
                HistOp::Close {
                    id: row.id,
                    ends_at: ended.max(row.starts_at),
                },
                HistOp::Open {
                    starts_at: merged.starts_at,
                },
            ]
        }
        (true, None) => vec![HistOp::Open {
            starts_at: merged.starts_at,
        }],
        (false, Some(row)) => vec![HistOp::Close {
            id: row.id,
            ends_at: merged.ends_at.max(row.starts_at),
        }],
        // Never seen firing: nothing to record.
        (false, None) => Vec::new(),
    }
}

/// Applies one history change; returns the fingerprint's open row afterwards.
fn exec(
    tx: &Transaction<'_>,
    fp: u64,
    labels: &Labels,
    op: HistOp,
) -> rusqlite::Result<Option<OpenRow>> {
    match op {
        HistOp::Open { starts_at } => {
            // A row closed for the same episode (it resolved by timeout, then the sender
            // re-sent it with its original start) is reopened rather than duplicated.
            let closed: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM alert_history WHERE fingerprint = ?1 AND starts_at = ?2
                     ORDER BY id DESC LIMIT 1",
                )?
                .query_row(rusqlite::params![fp as i64, starts_at], |r| r.get(0))
                .optional()?;
            let id = match closed {
                Some(id) => {
                    tx.prepare_cached("UPDATE alert_history SET ends_at = 0 WHERE id = ?1")?
                        .execute([id])?;
                    id
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO alert_history (fingerprint, labels, starts_at, ends_at)
                         VALUES (?1, ?2, ?3, 0)",
                    )?
                    .execute(rusqlite::params![
                        fp as i64,
                        encode_labels(labels),
                        starts_at
                    ])?;
                    tx.last_insert_rowid()
                }
            };
            Ok(Some(OpenRow { id, starts_at }))
        }
        HistOp::Close { id, ends_at } => {
            tx.prepare_cached("UPDATE alert_history SET ends_at = ?2 WHERE id = ?1")?
                .execute([id, ends_at])?;
            Ok(None)
        }
        HistOp::SetStart { id, starts_at } => {
            tx.prepare_cached("UPDATE alert_history SET starts_at = ?2 WHERE id = ?1")?
                .execute([id, starts_at])?;
            Ok(Some(OpenRow { id, starts_at }))
        }
    }
}

fn apply(open: &mut HashMap<u64, OpenRow>, overlay: HashMap<u64, Option<OpenRow>>) {
    for (fp, row) in overlay {
        match row {
            Some(r) => {
                open.insert(fp, r);
            }
            None => {
                open.remove(&fp);
            }
        }
    }
}

fn load_open(db: &StateDb) -> Result<HashMap<u64, OpenRow>> {
    let rows: Vec<(i64, i64, i64)> = db.with_conn(|c| {
        let mut st = c.prepare(
            "SELECT id, fingerprint, starts_at FROM alert_history WHERE ends_at = 0 ORDER BY id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect()
    })?;
    let mut open: HashMap<u64, OpenRow> = HashMap::new();
    let mut superseded = Vec::new();
    for (id, fp, starts_at) in rows {
        // Only one row per alert can be open; an older one left open (by a failed write) ended
        // no later than the newer one started.
        if let Some(prev) = open.insert(fp as u64, OpenRow { id, starts_at }) {
            superseded.push((prev.id, starts_at.max(prev.starts_at)));
        }
    }
    set_per_row(db, "ends_at", &superseded)?;
    Ok(open)
}

/// Sets `column` of history rows: `(row id, value)` pairs, in one transaction.
fn set_per_row(db: &StateDb, column: &'static str, rows: &[(i64, i64)]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    db.write(|tx| {
        let mut st = tx.prepare_cached(&format!(
            "UPDATE alert_history SET {column} = ?2 WHERE id = ?1"
        ))?;
        for (id, v) in rows {
            st.execute([id, v])?;
        }
        Ok(())
    })
}

pub(crate) fn encode_labels(labels: &Labels) -> String {
    let m: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|l| (l.name.clone(), serde_json::Value::from(l.value.clone())))
        .collect();
    serde_json::Value::Object(m).to_string()
}

pub(crate) fn decode_labels(s: &str) -> std::result::Result<Labels, String> {
    let m: std::collections::BTreeMap<String, String> =
        serde_json::from_str(s).map_err(|e| e.to_string())?;
    let pairs: Vec<(String, String)> = m.into_iter().collect();
    Labels::try_from_pairs(&pairs).map_err(|e| e.to_string())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
