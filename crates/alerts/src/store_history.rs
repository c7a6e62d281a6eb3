//! Reading the alert history back: every row, one alert's rows, and rows matching a query
//! (time window, matchers, limit), for the history API, the timeline and backtests.

use super::{decode_labels, AlertStore, HistoryEntry};
use crate::error::{Error, Result};

impl AlertStore {
    /// History rows, newest first, at most `limit` (every alert).
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.history_query(&HistoryQuery {
            limit,
            ..HistoryQuery::default()
        })
    }

    /// The newest `limit` history rows of alert `fp`, newest first.
    pub fn history_of(&self, fp: u64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let path = self.db.path().to_string();
        let rows: Vec<(String, i64, i64)> = self.db.with_conn(|c| {
            let mut st = c.prepare_cached(
                "SELECT labels, starts_at, ends_at FROM alert_history WHERE fingerprint = ?1
                 ORDER BY starts_at DESC, id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(
                rusqlite::params![fp as i64, limit.min(i64::MAX as usize) as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(labels, starts_at, ends_at)| {
                let labels = decode_labels(&labels).map_err(|e| {
                    Error::Internal(format!("state db {path}: alert history labels: {e}"))
                })?;
                Ok(HistoryEntry {
                    fingerprint: fp,
                    labels,
                    starts_at,
                    ends_at,
                })
            })
            .collect()
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
