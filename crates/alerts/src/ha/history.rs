//! The shared alert history (`tocsin_ha_history`): written by the sender from its store's
//! changes (a thread of its own, so storing alerts never waits on the database), read by every
//! replica's history API. Writes are idempotent per episode: an open row per fingerprint at most,
//! a resolve closes it, a re-sent earlier start moves it, so a new sender continuing the previous
//! one's episodes neither duplicates nor loses them.

use postgres::Client;

use crate::store::{HistoryChange, HistoryEntry, HistoryQuery};

pub(crate) fn write(c: &mut Client, changes: &[HistoryChange]) -> Result<(), postgres::Error> {
    let mut tx = c.transaction()?;
    for ch in changes {
        match ch {
            HistoryChange::Open {
                fingerprint,
                labels,
                starts_at,
            } => {
                let fp = *fingerprint as i64;
                // The same episode closed early (resolved by timeout, then re-sent) opens again.
                let reopened = tx.execute(
                    "UPDATE tocsin_ha_history SET ends_at = 0
                     WHERE fingerprint = $1 AND starts_at = $2 AND ends_at <> 0",
                    &[&fp, starts_at],
                )?;
                if reopened == 0 {
                    tx.execute(
                        "INSERT INTO tocsin_ha_history (fingerprint, labels, starts_at, ends_at)
                         SELECT $1, $2, $3, 0
                         WHERE NOT EXISTS (SELECT 1 FROM tocsin_ha_history
                                           WHERE fingerprint = $1 AND ends_at = 0)",
                        &[&fp, &crate::store::encode_labels(labels), starts_at],
                    )?;
                }
            }
            HistoryChange::Close {
                fingerprint,
                ends_at,
                episode,
            } => {
                let fp = *fingerprint as i64;
                let closed = tx.execute(
                    "UPDATE tocsin_ha_history SET ends_at = GREATEST($2, starts_at)
                     WHERE fingerprint = $1 AND ends_at = 0",
                    &[&fp, ends_at],
                )?;
                if let (0, Some((labels, starts_at))) = (closed, episode) {
                    // Its opening was never written (the sender that saw it died first).
                    tx.execute(
                        "INSERT INTO tocsin_ha_history (fingerprint, labels, starts_at, ends_at)
                         SELECT $1, $2, $3, GREATEST($4, $3)
                         WHERE NOT EXISTS (SELECT 1 FROM tocsin_ha_history
                                           WHERE fingerprint = $1 AND starts_at = $3)",
                        &[
                            &fp,
                            &crate::store::encode_labels(labels),
                            starts_at,
                            ends_at,
                        ],
                    )?;
                }
            }
            HistoryChange::SetStart {
                fingerprint,
                starts_at,
            } => {
                tx.execute(
                    "UPDATE tocsin_ha_history SET starts_at = $2
                     WHERE fingerprint = $1 AND ends_at = 0",
                    &[&(*fingerprint as i64), starts_at],
                )?;
            }
        }
    }
    tx.commit()
}

/// Rows overlapping the query's window whose labels match, newest start first, at most
/// `limit`; read a page at a time, since matchers are applied here.
pub(crate) fn query(
    c: &mut Client,
    q: &HistoryQuery,
) -> Result<Vec<HistoryEntry>, postgres::Error> {
    const PAGE: i64 = 1000;
    let mut out = Vec::new();
    let mut offset = 0i64;
    loop {
        let rows = c.query(
            "SELECT fingerprint, labels, starts_at, ends_at FROM tocsin_ha_history
             WHERE starts_at <= $1 AND (ends_at = 0 OR ends_at >= $2)
             ORDER BY starts_at DESC, id DESC LIMIT $3 OFFSET $4",
            &[&q.end_ms, &q.start_ms, &PAGE, &offset],
        )?;
        let n = rows.len() as i64;
        for r in rows {
            let Ok(labels) = crate::store::decode_labels(r.get::<_, &str>(1)) else {
                continue;
            };
            if !crate::matchers::matches_all(&q.matchers, &labels) {
                continue;
            }
            out.push(HistoryEntry {
                fingerprint: r.get::<_, i64>(0) as u64,
                labels,
                starts_at: r.get(2),
                ends_at: r.get(3),
            });
            if out.len() >= q.limit {
                return Ok(out);
            }
        }
        if n < PAGE {
            return Ok(out);
        }
        offset += PAGE;
    }
}
