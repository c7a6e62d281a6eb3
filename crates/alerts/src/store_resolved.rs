//! The store's part in the console: which put is a change worth an event, and the recently
//! resolved alerts the history still has after `gc` dropped them from memory.

use std::collections::HashSet;

use tocsin_model::Alert;

use super::{decode_labels, AlertStore, HistoryEntry};
use crate::error::{Error, Result};
use crate::events::EventKind;

impl AlertStore {
    /// `f` of every stored alert (with its fingerprint), keeping the `Some`s, under the store's
    /// lock: for lists that look at every alert but keep few, or keep little of each.
    pub fn scan<T>(&self, mut f: impl FnMut(u64, &Alert) -> Option<T>) -> Vec<T> {
        let inner = self.inner.lock();
        inner
            .alerts
            .iter()
            .filter_map(|(fp, a)| f(*fp, a))
            .collect()
    }

    /// Every stored alert, in no order (the console sorts its own way).
    pub fn snapshot(&self) -> Vec<Alert> {
        self.inner.lock().alerts.values().cloned().collect()
    }

    /// The newest history row of each alert resolved at or after `since_ms`, newest end first,
    /// at most `limit` rows (the console's recently resolved alerts once `gc` has dropped them
    /// from memory).
    pub fn resolved_since(&self, since_ms: i64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let path = self.db.path().to_string();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut decode_err = None;
        self.db.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT fingerprint, labels, starts_at, ends_at FROM alert_history
                 WHERE ends_at != 0 AND ends_at >= ?1 ORDER BY ends_at DESC, id DESC",
            )?;
            let mut rows = st.query([since_ms])?;
            while out.len() < limit {
                let Some(r) = rows.next()? else { break };
                let fp: i64 = r.get(0)?;
                if !seen.insert(fp) {
                    continue;
                }
                let labels: String = r.get(1)?;
                match decode_labels(&labels) {
                    Ok(labels) => out.push(HistoryEntry {
                        fingerprint: fp as u64,
                        labels,
                        starts_at: r.get(2)?,
                        ends_at: r.get(3)?,
                    }),
                    Err(e) => {
                        decode_err = Some(e);
                        break;
                    }
                }
            }
            Ok(())
        })?;
        match decode_err {
            Some(e) => Err(Error::Internal(format!(
                "state db {path}: alert history labels: {e}"
            ))),
            None => Ok(out),
        }
    }
}

/// The event a put makes of an alert's transition from `old` to `new`, if any: a refresh of an
/// alert still firing with the same annotations is not one (rules re-send every evaluation).
pub(super) fn change_kind(old: Option<&Alert>, new: &Alert, now: i64) -> Option<EventKind> {
    let firing = !new.resolved_at(now);
    match old {
        Some(o) if !o.resolved_at(now) => {
            if !firing {
                Some(EventKind::Resolved)
            } else if o.annotations != new.annotations || o.generator_url != new.generator_url {
                Some(EventKind::Updated)
            } else {
                None
            }
        }
        Some(_) => firing.then_some(EventKind::Firing),
        None => Some(if firing {
            EventKind::Firing
        } else {
            EventKind::Resolved
        }),
    }
}
