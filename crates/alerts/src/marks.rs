//! What people put on an alert, as server state rather than silences: acknowledgements (who,
//! comment, optional expiry), shelves (hidden from the console until a time) and notes (free
//! text). Marks in force are held in memory for the notification pipeline's per-flush checks
//! and written through to the state db (`alert_acks`, `alert_shelves`), so they survive a
//! restart; every change, and every end the manager decides (resolve, severity change, expiry),
//! is an event in `alert_events` for the alert's timeline.
//!
//! An acknowledgement belongs to one firing episode of one alert: it ends when the alert
//! resolves, when the same alert comes back with another `severity` (a new fingerprint, since
//! the fingerprint covers every label, so the old one is ended explicitly rather than left to
//! time out), at its expiry, or on unack. A shelf is bounded by time only, so a flapping alert
//! stays hidden for the time asked for.

use std::collections::HashMap;

use parking_lot::Mutex;
use rusqlite::params;
use tocsin_model::{Alert, Labels};

use crate::error::{Error, Result};
use crate::state::StateDb;

/// Longest comment or note kept, in bytes: marks are read at every flush and listed whole.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// How long notification outcomes stay on timelines at most.
pub const NOTIFICATIONS_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// The label whose change ends an acknowledgement.
pub const SEVERITY_LABEL: &str = "severity";

/// An acknowledgement in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ack {
    pub by: String,
    /// When it was given (ms).
    pub at_ms: i64,
    pub comment: String,
    /// When it lapses (ms); `None`: when the alert resolves.
    pub expires_ms: Option<i64>,
}

/// A shelf in force: the alert is left out of the console's list until `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shelve {
    pub by: String,
    pub at_ms: i64,
    pub comment: String,
    pub until_ms: i64,
}

/// The kinds of rows in `alert_events`, as stored and as the timeline names them.
pub mod kind {
    pub const ACK: &str = "ack";
    pub const UNACK: &str = "unack";
    /// The manager ended an acknowledgement; the text says why (resolved, expired, severity).
    pub const ACK_ENDED: &str = "ack_ended";
    pub const SHELVE: &str = "shelve";
    pub const UNSHELVE: &str = "unshelve";
    /// A shelf reached its end.
    pub const SHELVE_ENDED: &str = "shelve_ended";
    pub const NOTE: &str = "note";
}

/// An acknowledgement with what it was given for: the alert's labels, so that the same alert
/// with another severity is recognised (`identity`) and named in the end event.
#[derive(Debug, Clone)]
struct AckRow {
    ack: Ack,
    identity: u64,
    severity: String,
}

#[derive(Default)]
struct Inner {
    acks: HashMap<u64, AckRow>,
    shelves: HashMap<u64, Shelve>,
}

pub struct Marks {
    db: StateDb,
    inner: Mutex<Inner>,
}

/// Acknowledgements and shelves in force, by fingerprint.
pub type MarkList = (Vec<(u64, Ack)>, Vec<(u64, Shelve)>);

/// Why the manager ended an acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckEnd {
    Resolved,
    Expired,
    /// The alert came back with another severity (old, new).
    SeverityChanged(String, String),
}

impl AckEnd {
    fn text(&self) -> String {
        match self {
            AckEnd::Resolved => "resolved".into(),
            AckEnd::Expired => "expired".into(),
            AckEnd::SeverityChanged(old, new) => {
                format!("severity changed from {old:?} to {new:?}")
            }
        }
    }
}

/// The labels of an alert without its severity, hashed: the same alert at another severity
/// has the same identity.
fn identity(labels: &Labels) -> u64 {
    tocsin_model::labels::hash_label_pairs(
        labels
            .iter()
            .filter(|l| l.name != SEVERITY_LABEL)
            .map(|l| (l.name.as_str(), l.value.as_str())),
    )
}

fn severity(labels: &Labels) -> String {
    labels.get(SEVERITY_LABEL).unwrap_or("").to_string()
}

/// Checks a person's text (comment, note); `field` names it in the error.
pub fn check_text(field: &str, s: &str) -> Result<()> {
    if s.len() > MAX_TEXT_BYTES {
        return Err(Error::BadData(format!(
            "{field}: {} bytes, more than the {MAX_TEXT_BYTES} allowed",
            s.len()
        )));
    }
    Ok(())
}

impl Marks {
    /// Loads the marks in force from `db` (a private in-memory one when `None`).
    pub fn new(db: Option<StateDb>) -> Result<Marks> {
        let db = match db {
            Some(db) => db,
            None => StateDb::in_memory()?,
        };
        let inner = load(&db)?;
        Ok(Marks {
            db,
            inner: Mutex::new(inner),
        })
    }

    pub(crate) fn db(&self) -> &StateDb {
        &self.db
    }

    /// Acknowledges the firing alert `a`. Returns false when the same acknowledgement (by,
    /// comment, expiry) is already in force: nothing is written then. Otherwise the new one
    /// replaces any earlier one and is on the timeline.
    pub fn ack(
        &self,
        a: &Alert,
        by: &str,
        comment: &str,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<bool> {
        check_text("comment", comment)?;
        let fp = a.fingerprint();
        let mut inner = self.inner.lock();
        if let Some(cur) = inner.acks.get(&fp) {
            let live = cur.ack.expires_ms.is_none_or(|e| e > now_ms);
            if live
                && cur.ack.by == by
                && cur.ack.comment == comment
                && cur.ack.expires_ms == expires_ms
            {
                return Ok(false);
            }
        }
        let ack = Ack {
            by: by.to_string(),
            at_ms: now_ms,
            comment: comment.to_string(),
            expires_ms,
        };
        let labels = encode_labels(&a.labels);
        // Durable: a person was told it is acknowledged.
        self.db.write_durable(|tx| {
            tx.execute(
                "INSERT INTO alert_acks (fingerprint, labels, acked_by, comment, acked_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels,
                   acked_by = excluded.acked_by, comment = excluded.comment,
                   acked_at = excluded.acked_at, expires_at = excluded.expires_at",
                params![fp as i64, labels, by, comment, now_ms, expires_ms.unwrap_or(0)],
            )?;
            insert_event(
                tx,
                fp,
                now_ms,
                kind::ACK,
                by,
                comment,
                expires_ms.unwrap_or(0),
            )
        })?;
        inner.acks.insert(
            fp,
            AckRow {
                ack,
                identity: identity(&a.labels),
                severity: severity(&a.labels),
            },
        );
        Ok(true)
    }

    /// Withdraws an acknowledgement; false when none was in force.
    pub fn unack(&self, fp: u64, by: &str, comment: &str, now_ms: i64) -> Result<bool> {
        check_text("comment", comment)?;
        let mut inner = self.inner.lock();
        if !inner.acks.contains_key(&fp) {
            return Ok(false);
        }
        self.db.write_durable(|tx| {
            tx.execute("DELETE FROM alert_acks WHERE fingerprint = ?1", [fp as i64])?;
            insert_event(tx, fp, now_ms, kind::UNACK, by, comment, 0)
        })?;
        inner.acks.remove(&fp);
        Ok(true)
    }

    /// Ends an acknowledgement for a reason the manager saw, recorded as of `at_ms`.
    pub fn end_ack(&self, fp: u64, at_ms: i64, why: &AckEnd) -> Result<bool> {
        let mut inner = self.inner.lock();
        if !inner.acks.contains_key(&fp) {
            return Ok(false);
        }
        self.db.write(|tx| {
            tx.execute("DELETE FROM alert_acks WHERE fingerprint = ?1", [fp as i64])?;
            insert_event(tx, fp, at_ms, kind::ACK_ENDED, "", &why.text(), 0)
        })?;
        inner.acks.remove(&fp);
        Ok(true)
    }

    /// Shelves alert `fp` until `until_ms`, replacing an earlier shelf.
    pub fn shelve(
        &self,
        fp: u64,
        by: &str,
        comment: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<()> {
        check_text("comment", comment)?;
        let mut inner = self.inner.lock();
        self.db.write_durable(|tx| {
            tx.execute(
                "INSERT INTO alert_shelves (fingerprint, shelved_by, comment, shelved_at, until)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (fingerprint) DO UPDATE SET shelved_by = excluded.shelved_by,
                   comment = excluded.comment, shelved_at = excluded.shelved_at,
                   until = excluded.until",
                params![fp as i64, by, comment, now_ms, until_ms],
            )?;
            insert_event(tx, fp, now_ms, kind::SHELVE, by, comment, until_ms)
        })?;
        inner.shelves.insert(
            fp,
            Shelve {
                by: by.to_string(),
                at_ms: now_ms,
                comment: comment.to_string(),
                until_ms,
            },
        );
        Ok(())
    }

    /// Takes alert `fp` off the shelf; false when it was not shelved.
    pub fn unshelve(&self, fp: u64, by: &str, now_ms: i64) -> Result<bool> {
        let mut inner = self.inner.lock();
        match inner.shelves.get(&fp) {
            Some(s) if s.until_ms > now_ms => {}
            _ => return Ok(false),
        }
        self.db.write_durable(|tx| {
            tx.execute(
                "DELETE FROM alert_shelves WHERE fingerprint = ?1",
                [fp as i64],
            )?;
            insert_event(tx, fp, now_ms, kind::UNSHELVE, by, "", 0)
        })?;
        inner.shelves.remove(&fp);
        Ok(true)
    }

    /// Adds a note to alert `fp`; returns its id.
    pub fn note(&self, fp: u64, by: &str, text: &str, now_ms: i64) -> Result<i64> {
        check_text("text", text)?;
        if text.trim().is_empty() {
            return Err(Error::BadData("text: a note must not be empty".into()));
        }
        self.db.write_durable(|tx| {
            insert_event(tx, fp, now_ms, kind::NOTE, by, text, 0)?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// How many notes alert `fp` has.
    pub fn notes_count(&self, fp: u64) -> Result<usize> {
        let n: i64 = self.db.with_conn(|c| {
            c.prepare_cached(
                "SELECT count(*) FROM alert_events WHERE fingerprint = ?1 AND kind = 'note'",
            )?
            .query_row([fp as i64], |r| r.get(0))
        })?;
        Ok(n.max(0) as usize)
    }

    /// The acknowledgement of `fp` in force at `now_ms`.
    pub fn ack_of(&self, fp: u64, now_ms: i64) -> Option<Ack> {
        self.inner
            .lock()
            .acks
            .get(&fp)
            .filter(|r| r.ack.expires_ms.is_none_or(|e| e > now_ms))
            .map(|r| r.ack.clone())
    }

    /// The shelf of `fp` in force at `now_ms`.
    pub fn shelve_of(&self, fp: u64, now_ms: i64) -> Option<Shelve> {
        self.inner
            .lock()
            .shelves
            .get(&fp)
            .filter(|s| s.until_ms > now_ms)
            .cloned()
    }

    /// Those of `fps` acknowledged at `now_ms`, in their order.
    pub fn acked_among(&self, fps: &[u64], now_ms: i64) -> Vec<u64> {
        let inner = self.inner.lock();
        if inner.acks.is_empty() {
            return Vec::new();
        }
        fps.iter()
            .copied()
            .filter(|fp| {
                inner
                    .acks
                    .get(fp)
                    .is_some_and(|r| r.ack.expires_ms.is_none_or(|e| e > now_ms))
            })
            .collect()
    }

    /// Every acknowledgement and shelf in force at `now_ms`, by fingerprint.
    pub fn all(&self, now_ms: i64) -> MarkList {
        let inner = self.inner.lock();
        let mut acks: Vec<(u64, Ack)> = inner
            .acks
            .iter()
            .filter(|(_, r)| r.ack.expires_ms.is_none_or(|e| e > now_ms))
            .map(|(fp, r)| (*fp, r.ack.clone()))
            .collect();
        acks.sort_by_key(|(fp, _)| *fp);
        let mut shelves: Vec<(u64, Shelve)> = inner
            .shelves
            .iter()
            .filter(|(_, s)| s.until_ms > now_ms)
            .map(|(fp, s)| (*fp, s.clone()))
            .collect();
        shelves.sort_by_key(|(fp, _)| *fp);
        (acks, shelves)
    }

    /// Whether an acknowledgement of `fp` is held (in force, or lapsed and not yet swept).
    pub fn holds_ack(&self, fp: u64) -> bool {
        self.inner.lock().acks.contains_key(&fp)
    }

    /// Whether a shelf of `fp` is held (in force, or lapsed and not yet swept).
    pub fn holds_shelve(&self, fp: u64) -> bool {
        self.inner.lock().shelves.contains_key(&fp)
    }

    /// Whether any acknowledgement is held (in force or not yet swept).
    pub fn any_acks(&self) -> bool {
        !self.inner.lock().acks.is_empty()
    }

    /// The acknowledged alert that `a` replaces by coming with another severity: its
    /// fingerprint and the ack's old severity. `a` must be firing.
    pub fn severity_sibling(&self, a: &Alert) -> Option<(u64, String)> {
        let inner = self.inner.lock();
        if inner.acks.is_empty() {
            return None;
        }
        let fp = a.fingerprint();
        if inner.acks.contains_key(&fp) {
            return None;
        }
        let id = identity(&a.labels);
        let new = severity(&a.labels);
        inner
            .acks
            .iter()
            .find(|(ofp, r)| **ofp != fp && r.identity == id && r.severity != new)
            .map(|(ofp, r)| (*ofp, r.severity.clone()))
    }

    /// Ends the marks whose time has come at `now_ms`: lapsed acknowledgements and shelves, and
    /// acknowledgements of alerts that are no longer firing. `alert` says where each alert
    /// stands: `None` if the manager no longer has it, else its end when it is resolved at
    /// `now_ms` (`Some(Some(end))`) or `Some(None)` while it fires.
    pub fn sweep(&self, now_ms: i64, alert: impl Fn(u64) -> Option<Option<i64>>) {
        type Due = (Vec<(u64, i64, AckEnd)>, Vec<(u64, i64)>);
        let (acks, shelves): Due = {
            let inner = self.inner.lock();
            let acks = inner
                .acks
                .iter()
                .filter_map(|(fp, r)| match (r.ack.expires_ms, alert(*fp)) {
                    (Some(e), _) if e <= now_ms => Some((*fp, e, AckEnd::Expired)),
                    (_, None) => Some((*fp, now_ms, AckEnd::Resolved)),
                    (_, Some(Some(end))) => Some((*fp, end, AckEnd::Resolved)),
                    (_, Some(None)) => None,
                })
                .collect();
            let shelves = inner
                .shelves
                .iter()
                .filter(|(_, s)| s.until_ms <= now_ms)
                .map(|(fp, s)| (*fp, s.until_ms))
                .collect();
            (acks, shelves)
        };
        for (fp, at, why) in acks {
            if let Err(e) = self.end_ack(fp, at, &why) {
                tracing::warn!(fingerprint = %format!("{fp:016x}"), error = %e, "ending an acknowledgement");
            }
        }
        if shelves.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        let res = self.db.write(|tx| {
            for (fp, until) in &shelves {
                tx.execute(
                    "DELETE FROM alert_shelves WHERE fingerprint = ?1",
                    [*fp as i64],
                )?;
                insert_event(tx, *fp, *until, kind::SHELVE_ENDED, "", "expired", 0)?;
            }
            Ok(())
        });
        match res {
            Ok(()) => {
                for (fp, _) in shelves {
                    inner.shelves.remove(&fp);
                }
            }
            Err(e) => tracing::warn!(error = %e, "ending shelves"),
        }
    }

    /// The earliest time a mark lapses, for the manager's wake-up.
    pub fn next_deadline(&self) -> Option<i64> {
        let inner = self.inner.lock();
        let acks = inner.acks.values().filter_map(|r| r.ack.expires_ms);
        let shelves = inner.shelves.values().map(|s| s.until_ms);
        acks.chain(shelves).min()
    }

    /// How many acknowledgements and shelves are in force at `now_ms`.
    pub fn counts(&self, now_ms: i64) -> (usize, usize) {
        let inner = self.inner.lock();
        let acks = inner
            .acks
            .values()
            .filter(|r| r.ack.expires_ms.is_none_or(|e| e > now_ms))
            .count();
        let shelves = inner
            .shelves
            .values()
            .filter(|s| s.until_ms > now_ms)
            .count();
        (acks, shelves)
    }

    /// Drops timeline rows older than `retention_ms` (the history's), and notification
    /// outcomes older than [`NOTIFICATIONS_RETENTION_MS`] too: there is one per alert and
    /// integration at every send, repeats included, so a large fleet makes many.
    pub fn gc(&self, now_ms: i64, retention_ms: i64) -> Result<usize> {
        let cut = now_ms.saturating_sub(retention_ms.max(0));
        let sends_cut = now_ms.saturating_sub(retention_ms.clamp(0, NOTIFICATIONS_RETENTION_MS));
        self.db.write(|tx| {
            let a = tx.execute("DELETE FROM alert_events WHERE at <= ?1", [cut])?;
            let b = tx.execute("DELETE FROM notifications WHERE at <= ?1", [sends_cut])?;
            Ok(a + b)
        })
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    fp: u64,
    at: i64,
    kind: &str,
    actor: &str,
    text: &str,
    until: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO alert_events (fingerprint, at, kind, actor, text, until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![fp as i64, at, kind, actor, text, until])?;
    Ok(())
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

type AckDbRow = (i64, String, String, String, i64, i64);
type ShelfDbRow = (i64, String, String, i64, i64);

fn load(db: &StateDb) -> Result<Inner> {
    let (acks, shelves): (Vec<AckDbRow>, Vec<ShelfDbRow>) = db.with_conn(|c| {
        let mut st = c.prepare(
            "SELECT fingerprint, labels, acked_by, comment, acked_at, expires_at FROM alert_acks",
        )?;
        let acks = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut st = c.prepare(
            "SELECT fingerprint, shelved_by, comment, shelved_at, until FROM alert_shelves",
        )?;
        let shelves = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((acks, shelves))
    })?;
    let mut inner = Inner::default();
    for (fp, labels, by, comment, at, expires) in acks {
        let labels = decode_labels(&labels).map_err(|e| {
            Error::Internal(format!(
                "state db {}: alert_acks row {:016x}: labels: {e}",
                db.path(),
                fp as u64
            ))
        })?;
        inner.acks.insert(
            fp as u64,
            AckRow {
                ack: Ack {
                    by,
                    at_ms: at,
                    comment,
                    expires_ms: (expires != 0).then_some(expires),
                },
                identity: identity(&labels),
                severity: severity(&labels),
            },
        );
    }
    for (fp, by, comment, at, until) in shelves {
        inner.shelves.insert(
            fp as u64,
            Shelve {
                by,
                at_ms: at,
                comment,
                until_ms: until,
            },
        );
    }
    Ok(inner)
}

#[cfg(test)]
#[path = "marks_tests.rs"]
mod tests;
