//! The alert store: every alert the manager knows, deduplicated by fingerprint and merged as
//! Alertmanager merges re-sent alerts; alerts without `endsAt` resolve after `resolve_timeout`;
//! resolved alerts are dropped by `gc`. `put` returns the stored alerts for the dispatcher to
//! route. Every firing and resolve is recorded in the alert history (state db).
//!
//! Live alerts are not persisted, as in Alertmanager: senders re-send firing alerts every few
//! evaluation intervals, so the set rebuilds itself after a restart. The history is the record
//! that survives. A history row still open at startup is continued when its alert is re-sent
//! still firing, with the row's (earlier) start kept, as a running Alertmanager would merge it;
//! rows nobody re-sends within `resolve_timeout` of the first activity
//! after the start are closed then, since Alertmanager would have timed those alerts out too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use rusqlite::{OptionalExtension, Transaction};
use tocsin_model::{Alert, Labels};

use crate::error::{Error, Result};
use crate::state::StateDb;

/// How long closed history rows are kept.
pub const DEFAULT_HISTORY_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

pub struct AlertStore {
    db: StateDb,
    inner: Mutex<Inner>,
    resolve_timeout_ms: AtomicI64,
    history_retention_ms: AtomicI64,
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
            }),
            resolve_timeout_ms: AtomicI64::new(resolve_timeout_ms),
            history_retention_ms: AtomicI64::new(DEFAULT_HISTORY_RETENTION_MS),
        })
    }

    pub fn set_resolve_timeout(&self, ms: i64) {
        self.resolve_timeout_ms.store(ms, Ordering::Relaxed);
    }

    pub fn resolve_timeout(&self) -> i64 {
        self.resolve_timeout_ms.load(Ordering::Relaxed)
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
            transitions.push((fp, old, merged.clone()));
            out.push(merged);
        }
        let Inner { open, .. } = &mut *inner;
        // The alerts are stored whatever happens to the history: losing a history row is
        // better than refusing alerts because the disk is full.
        let res = self.db.write(|tx| {
            let mut overlay: HashMap<u64, Option<OpenRow>> = HashMap::new();
            for (fp, old, merged) in &transitions {
                let row = match overlay.get(fp) {
                    Some(r) => *r,
                    None => open.get(fp).copied(),
                };
                for op in decide(old.as_ref(), merged, row, now) {
                    let change = exec(tx, *fp, &merged.labels, op)?;
                    overlay.insert(*fp, change);
                }
            }
            Ok(overlay)
        });
        match res {
            Ok(overlay) => apply(open, overlay),
            Err(e) => tracing::warn!(error = %e, "alert history not recorded"),
        }
        out
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
        for a in &removed {
            let fp = a.fingerprint();
            if let Some(row) = inner.open.get(&fp) {
                closes.push((fp, row.id, a.ends_at.max(row.starts_at)));
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
                for (fp, _, _) in closes {
                    inner.open.remove(&fp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "alert history not updated"),
        }
        removed
    }

    /// History rows, newest first, at most `limit` (every alert).
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.history_query(&HistoryQuery {
            limit,
            ..HistoryQuery::default()
        })
    }

    /// History rows that overlap `[start_ms, end_ms]` and whose labels match every matcher,
    /// newest start first, at most `limit`.
    pub fn history_query(&self, q: &HistoryQuery) -> Result<Vec<HistoryEntry>> {
        let path = self.db.path().to_string();
        let bad =
            |e: String| Error::Internal(format!("state db {path}: alert history labels: {e}"));
        let mut out = Vec::new();
        let mut decode_err = None;
        self.db.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT fingerprint, labels, starts_at, ends_at FROM alert_history
                 WHERE starts_at <= ?1 AND (ends_at = 0 OR ends_at >= ?2)
                 ORDER BY starts_at DESC, id DESC",
            )?;
            let mut rows = st.query([q.end_ms, q.start_ms])?;
            // Rows are read lazily: matchers filter as we go and the limit stops the scan.
            while out.len() < q.limit {
                let Some(r) = rows.next()? else { break };
                let labels: String = r.get(1)?;
                let labels = match decode_labels(&labels) {
                    Ok(l) => l,
                    Err(e) => {
                        decode_err = Some(e);
                        break;
                    }
                };
                if !crate::matchers::matches_all(&q.matchers, &labels) {
                    continue;
                }
                let fp: i64 = r.get(0)?;
                out.push(HistoryEntry {
                    fingerprint: fp as u64,
                    labels,
                    starts_at: r.get(2)?,
                    ends_at: r.get(3)?,
                });
            }
            Ok(())
        })?;
        match decode_err {
            Some(e) => Err(bad(e)),
            None => Ok(out),
        }
    }
}

/// What `history_query` selects.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    pub matchers: Vec<tocsin_model::Matcher>,
    pub limit: usize,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self {
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            matchers: Vec::new(),
            limit: usize::MAX,
        }
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
    if !superseded.is_empty() {
        db.write(|tx| {
            let mut close =
                tx.prepare_cached("UPDATE alert_history SET ends_at = ?2 WHERE id = ?1")?;
            for (id, ends_at) in &superseded {
                close.execute([id, ends_at])?;
            }
            Ok(())
        })?;
    }
    Ok(open)
}

fn encode_labels(labels: &Labels) -> String {
    let m: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|l| (l.name.clone(), serde_json::Value::from(l.value.clone())))
        .collect();
    serde_json::Value::Object(m).to_string()
}

fn decode_labels(s: &str) -> std::result::Result<Labels, String> {
    let m: std::collections::BTreeMap<String, String> =
        serde_json::from_str(s).map_err(|e| e.to_string())?;
    let pairs: Vec<(String, String)> = m.into_iter().collect();
    Labels::try_from_pairs(&pairs).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::collections::BTreeMap;

    const T0: i64 = 1_700_000_000_000;
    const MIN: i64 = 60_000;
    const RT: i64 = 5 * MIN;

    fn alert(name: &str, starts_at: i64, ends_at: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(&[("alertname", name), ("job", "api")]),
            annotations: BTreeMap::new(),
            starts_at,
            ends_at,
            generator_url: String::new(),
            updated_at: 0,
            timeout: false,
        }
    }

    fn with_summary(mut a: Alert, s: &str) -> Alert {
        a.annotations.insert("summary".into(), s.into());
        a
    }

    fn store() -> AlertStore {
        AlertStore::new(None, RT).unwrap()
    }

    fn bad(r: Result<Vec<Alert>>) -> String {
        match r {
            Err(Error::BadData(m)) => m,
            other => panic!("expected BadData, got {other:?}"),
        }
    }

    #[test]
    fn resolve_timeout_applies_to_alerts_without_end() {
        let s = store();
        let out = s.put(vec![alert("A", T0, 0)], T0).unwrap();
        assert_eq!(out[0].ends_at, T0 + RT);
        assert!(out[0].timeout);
        assert_eq!(out[0].updated_at, T0);
        let explicit = s.put(vec![alert("B", T0, T0 + MIN)], T0).unwrap();
        assert!(!explicit[0].timeout);
        assert_eq!(explicit[0].ends_at, T0 + MIN);
        s.set_resolve_timeout(MIN);
        let out = s.put(vec![alert("C", T0, 0)], T0).unwrap();
        assert_eq!(out[0].ends_at, T0 + MIN);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_timeout_end_filled_in_by_the_caller_stays_a_timeout_end() {
        let s = store();
        // An API layer that applied the resolve timeout itself, as Alertmanager's does.
        let mut a = alert("A", T0, T0 + RT);
        a.timeout = true;
        let out = s.put(vec![a], T0).unwrap();
        assert!(out[0].timeout);
        // So the sender's explicit, earlier resolve wins over the guessed end.
        let out = s
            .put(vec![alert("A", T0 + MIN, T0 + 2 * MIN)], T0 + MIN)
            .unwrap();
        assert_eq!(out[0].ends_at, T0 + 2 * MIN);
        assert!(!out[0].timeout);
    }

    #[test]
    fn resend_extends_and_newer_annotations_win() {
        let s = store();
        s.put(vec![with_summary(alert("A", T0, 0), "one")], T0)
            .unwrap();
        let out = s
            .put(
                vec![with_summary(alert("A", T0 + 30_000, 0), "two")],
                T0 + MIN,
            )
            .unwrap();
        let a = &out[0];
        assert_eq!(a.starts_at, T0, "earliest start kept");
        assert_eq!(a.ends_at, T0 + MIN + RT);
        assert_eq!(a.annotations["summary"], "two");
        assert_eq!(a.updated_at, T0 + MIN);
        assert_eq!(s.get(a.fingerprint()).unwrap(), *a);
        assert_eq!(s.all().len(), 1);
    }

    #[test]
    fn explicit_end_survives_a_timeout_resend() {
        let s = store();
        // Told explicitly it ends at T0+10m; a later re-send without an end only guesses.
        s.put(vec![alert("A", T0, T0 + 10 * MIN)], T0).unwrap();
        let out = s.put(vec![alert("A", T0 + MIN, 0)], T0 + MIN).unwrap();
        assert_eq!(out[0].starts_at, T0);
        assert_eq!(out[0].ends_at, T0 + 10 * MIN);
    }

    #[test]
    fn timeout_end_does_not_override_an_explicit_earlier_resolve() {
        let s = store();
        s.put(vec![alert("A", T0, 0)], T0).unwrap();
        // The sender resolves it explicitly inside the timeout window.
        let out = s
            .put(vec![alert("A", T0, T0 + 2 * MIN)], T0 + 2 * MIN)
            .unwrap();
        assert_eq!(out[0].ends_at, T0 + 2 * MIN);
        assert!(!out[0].timeout);
        assert!(out[0].resolved_at(T0 + 2 * MIN));
    }

    #[test]
    fn both_resolved_keeps_the_later_end() {
        let s = store();
        s.put(vec![alert("A", T0, T0 + 3 * MIN)], T0 + 4 * MIN)
            .unwrap();
        // An older copy arrives later claiming an earlier end: overlapping, both resolved.
        let out = s
            .put(vec![alert("A", T0 + MIN, T0 + 2 * MIN)], T0 + 5 * MIN)
            .unwrap();
        assert_eq!(out[0].starts_at, T0);
        assert_eq!(out[0].ends_at, T0 + 3 * MIN);
    }

    #[test]
    fn refire_after_resolve_starts_a_new_alert() {
        let s = store();
        s.put(vec![alert("A", T0, T0 + MIN)], T0 + MIN).unwrap();
        let out = s
            .put(vec![alert("A", T0 + 10 * MIN, 0)], T0 + 10 * MIN)
            .unwrap();
        assert_eq!(
            out[0].starts_at,
            T0 + 10 * MIN,
            "no merge with the resolved one"
        );
        assert_eq!(out[0].ends_at, T0 + 10 * MIN + RT);
    }

    #[test]
    fn validation_names_field_and_index() {
        let s = store();
        let mut no_labels = alert("A", T0, 0);
        no_labels.labels = Labels::empty();
        assert_eq!(
            bad(s.put(vec![alert("ok", T0, 0), no_labels], T0)),
            "alerts[1].labels: at least one label pair required"
        );
        assert!(s.is_empty(), "nothing stored when any alert is invalid");
        let mut bad_name = alert("A", T0, 0);
        bad_name.labels = Labels::from_pairs(&[("bad-name", "x")]);
        assert!(bad(s.put(vec![bad_name], T0)).starts_with("alerts[0].labels: invalid label name"));
        assert_eq!(
            bad(s.put(vec![alert("A", 0, 0)], T0)),
            "alerts[0].startsAt: start time missing"
        );
        assert_eq!(
            bad(s.put(vec![alert("A", T0, T0 - 1)], T0)),
            "alerts[0].endsAt: end time must not be before start time"
        );
        assert!(bad(s.put(vec![alert("A", T0 + 10 * MIN, 0)], T0)).starts_with("alerts[0].endsAt:"));
        let mut ann = alert("A", T0, 0);
        ann.annotations.insert(String::new(), "x".into());
        assert!(bad(s.put(vec![ann], T0)).starts_with("alerts[0].annotations:"));

        let (stored, err) = s.put_partial(vec![alert("A", 0, 0), alert("B", T0, 0)], T0);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].name(), "B");
        assert!(err.unwrap().to_string().starts_with("alerts[0].startsAt"));
    }

    #[test]
    fn gc_removes_resolved_alerts() {
        let s = store();
        s.put(
            vec![
                alert("A", T0, T0 + MIN),
                alert("B", T0, 0),
                alert("C", T0, T0 + 2 * MIN),
            ],
            T0,
        )
        .unwrap();
        assert!(s.gc(T0 + MIN - 1).is_empty());
        let gone = s.gc(T0 + MIN);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name(), "A");
        let gone = s.gc(T0 + RT);
        let names: Vec<&str> = gone.iter().map(|a| a.name()).collect();
        assert_eq!(names, vec!["B", "C"]);
        assert!(s.is_empty());
    }

    fn hist(s: &AlertStore) -> Vec<(String, i64, i64)> {
        s.history(100)
            .unwrap()
            .into_iter()
            .map(|h| {
                (
                    h.labels.get("alertname").unwrap_or("").to_string(),
                    h.starts_at,
                    h.ends_at,
                )
            })
            .collect()
    }

    #[test]
    fn history_records_firing_and_resolve() {
        let s = store();
        s.put(vec![alert("A", T0, 0)], T0).unwrap();
        s.put(vec![alert("A", T0, 0)], T0 + MIN).unwrap();
        assert_eq!(
            hist(&s),
            vec![("A".into(), T0, 0)],
            "a re-send is no new row"
        );
        // Explicit resolve detected at put.
        s.put(vec![alert("A", T0, T0 + 2 * MIN)], T0 + 2 * MIN)
            .unwrap();
        assert_eq!(hist(&s), vec![("A".into(), T0, T0 + 2 * MIN)]);
        // Re-fire: a new row, newest first.
        s.put(vec![alert("A", T0 + 5 * MIN, 0)], T0 + 5 * MIN)
            .unwrap();
        assert_eq!(
            hist(&s),
            vec![
                ("A".into(), T0 + 5 * MIN, 0),
                ("A".into(), T0, T0 + 2 * MIN)
            ]
        );
        // Resolve by timeout, detected at gc, recorded at the alert's end.
        s.gc(T0 + 20 * MIN);
        assert_eq!(
            hist(&s),
            vec![
                ("A".into(), T0 + 5 * MIN, T0 + 10 * MIN),
                ("A".into(), T0, T0 + 2 * MIN)
            ]
        );
        let h = s.history(1).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].fingerprint, alert("A", 0, 0).fingerprint());
        assert_eq!(h[0].labels, alert("A", 0, 0).labels);
    }

    #[test]
    fn resolved_alert_never_seen_firing_leaves_no_row() {
        let s = store();
        s.put(vec![alert("A", T0, T0 + MIN)], T0 + 2 * MIN).unwrap();
        assert!(hist(&s).is_empty());
    }

    #[test]
    fn refire_detected_at_put_before_gc_closes_the_old_row() {
        let s = store();
        s.put(vec![alert("A", T0, 0)], T0).unwrap();
        // Timed out at T0+5m, no gc ran; it fires again with a new start.
        s.put(vec![alert("A", T0 + 8 * MIN, 0)], T0 + 8 * MIN)
            .unwrap();
        assert_eq!(
            hist(&s),
            vec![("A".into(), T0 + 8 * MIN, 0), ("A".into(), T0, T0 + RT)]
        );
    }

    #[test]
    fn resend_with_original_start_after_timeout_reopens_the_row() {
        let s = store();
        s.put(vec![alert("A", T0, 0)], T0).unwrap();
        s.gc(T0 + 6 * MIN);
        assert_eq!(hist(&s), vec![("A".into(), T0, T0 + RT)]);
        // The sender was merely late: same episode, same start.
        s.put(vec![alert("A", T0, 0)], T0 + 7 * MIN).unwrap();
        assert_eq!(hist(&s), vec![("A".into(), T0, 0)]);
    }

    #[test]
    fn history_survives_restart_and_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
            s.put(
                vec![alert("A", T0, 0), alert("B", T0, 0), alert("C", T0, 0)],
                T0,
            )
            .unwrap();
            s.put(vec![alert("C", T0, T0 + MIN)], T0 + MIN).unwrap();
        }
        let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
        assert!(s.is_empty(), "live alerts are not persisted");
        let mut h = hist(&s);
        h.sort();
        assert_eq!(
            h,
            vec![
                ("A".into(), T0, 0),
                ("B".into(), T0, 0),
                ("C".into(), T0, T0 + MIN)
            ]
        );
        // A is re-sent after the restart: its row continues. B never comes back.
        s.put(vec![alert("A", T0, 0)], T0 + 10 * MIN).unwrap();
        s.gc(T0 + 10 * MIN + RT - 1);
        s.put(vec![alert("A", T0, 0)], T0 + 14 * MIN).unwrap();
        assert_eq!(
            hist(&s).iter().filter(|r| r.2 == 0).count(),
            2,
            "B not yet given up"
        );
        s.gc(T0 + 10 * MIN + RT);
        let mut h = hist(&s);
        h.sort();
        assert_eq!(
            h,
            vec![
                ("A".into(), T0, 0),
                ("B".into(), T0, T0 + 10 * MIN),
                ("C".into(), T0, T0 + MIN)
            ]
        );
        drop(s);
        let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
        assert_eq!(s.history(10).unwrap().len(), 3);
    }

    #[test]
    fn restart_gave_a_still_firing_alert_a_new_start_and_a_second_history_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
            s.put(vec![alert("A", T0, 0)], T0).unwrap();
        }
        let s = AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap();
        // A rule engine restarted with us re-sends the alert with the time it fired again.
        let got = s
            .put(vec![alert("A", T0 + 3 * MIN, 0)], T0 + 3 * MIN)
            .unwrap();
        assert_eq!(got[0].starts_at, T0, "the stored alert keeps its start");
        assert_eq!(hist(&s), vec![("A".into(), T0, 0)]);
        // Later re-sends merge into it as usual.
        let got = s
            .put(vec![alert("A", T0 + 3 * MIN, 0)], T0 + 4 * MIN)
            .unwrap();
        assert_eq!(got[0].starts_at, T0);
        assert_eq!(hist(&s), vec![("A".into(), T0, 0)]);
        // A resolve re-sent after the restart closes the row at its end.
        let s2 = {
            drop(s);
            AlertStore::new(Some(StateDb::open(&path).unwrap()), RT).unwrap()
        };
        s2.put(vec![alert("A", T0 + 3 * MIN, T0 + 5 * MIN)], T0 + 6 * MIN)
            .unwrap();
        assert_eq!(hist(&s2), vec![("A".into(), T0, T0 + 5 * MIN)]);
    }

    #[test]
    fn history_query_selects_by_time_overlap_and_labels() {
        let s = store();
        // A fired and resolved early, B fired later and still fires, C resolved in between.
        s.put(vec![alert("A", T0, T0 + MIN)], T0).unwrap();
        s.put(vec![alert("C", T0 + 2 * MIN, T0 + 3 * MIN)], T0 + 2 * MIN)
            .unwrap();
        s.put(vec![alert("B", T0 + 5 * MIN, 0)], T0 + 5 * MIN)
            .unwrap();
        // Collection closes the rows of alerts whose end has passed.
        s.gc(T0 + 5 * MIN);
        let names = |q: HistoryQuery| -> Vec<String> {
            s.history_query(&q)
                .unwrap()
                .iter()
                .map(|r| r.labels.get("alertname").unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(names(HistoryQuery::default()), ["B", "C", "A"]);
        let window = |start_ms, end_ms| HistoryQuery {
            start_ms,
            end_ms,
            ..HistoryQuery::default()
        };
        assert_eq!(names(window(T0 + 90_000, T0 + 4 * MIN)), ["C"]);
        assert_eq!(
            names(window(T0 + MIN, T0 + MIN)),
            ["A"],
            "an end at start overlaps"
        );
        assert_eq!(
            names(window(T0 + 10 * MIN, i64::MAX)),
            ["B"],
            "still firing"
        );
        let m = crate::matchers::parse_matchers("alertname=~\"A|B\"").unwrap();
        assert_eq!(
            names(HistoryQuery {
                matchers: m.clone(),
                ..HistoryQuery::default()
            }),
            ["B", "A"]
        );
        assert_eq!(
            names(HistoryQuery {
                matchers: m,
                limit: 1,
                ..HistoryQuery::default()
            }),
            ["B"]
        );
    }

    #[test]
    fn history_retention_deletes_old_closed_rows() {
        let s = store();
        s.set_history_retention(60 * MIN);
        s.put(vec![alert("A", T0, T0 + MIN), alert("B", T0, 0)], T0)
            .unwrap();
        s.gc(T0 + 61 * MIN - 1);
        assert_eq!(hist(&s).len(), 2);
        s.gc(T0 + 61 * MIN);
        assert_eq!(hist(&s), vec![("B".into(), T0, T0 + RT)]);
        s.gc(T0 + RT + 60 * MIN);
        assert!(hist(&s).is_empty());
        assert_eq!(DEFAULT_HISTORY_RETENTION_MS, 30 * 24 * 60 * MIN);
    }

    #[test]
    fn duplicate_alerts_in_one_batch_merge_in_order() {
        let s = store();
        let out = s
            .put(
                vec![
                    with_summary(alert("A", T0, 0), "x"),
                    alert("A", T0, T0 + MIN),
                ],
                T0 + MIN,
            )
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(s.len(), 1);
        assert!(s.get(out[1].fingerprint()).unwrap().resolved_at(T0 + MIN));
        assert_eq!(hist(&s), vec![("A".into(), T0, T0 + MIN)]);
    }
}
