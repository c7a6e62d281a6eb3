//! The notification log: for each (receiver integration, group key), which alerts were last
//! notified as firing and as resolved, and when. The dedup stage reads it to decide whether a flush
//! needs sending (new firing, new resolved, or `repeat_interval` elapsed); it is persisted in the
//! state db so a restart neither floods receivers nor forgets to send a resolve.
//!
//! As in Alertmanager, an entry stays readable until `gc` removes it after its expiry; `get_at`
//! also hides entries past their expiry for callers that hold a clock.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::error::Result;
use crate::state::StateDb;

/// What was last sent for one (receiver integration, group key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Fingerprints notified as firing, sorted.
    pub firing: Vec<u64>,
    /// Fingerprints notified as resolved, sorted.
    pub resolved: Vec<u64>,
    /// When it was sent (ms).
    pub sent_at: i64,
}

pub struct NotificationLog {
    db: StateDb,
    entries: Mutex<HashMap<Key, Stored>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    receiver: String,
    group: String,
}

#[derive(Debug, Clone)]
struct Stored {
    entry: Entry,
    expires_at: i64,
}

impl NotificationLog {
    pub fn new(db: Option<StateDb>) -> Result<NotificationLog> {
        let db = match db {
            Some(db) => db,
            None => StateDb::in_memory()?,
        };
        let entries = load(&db)?;
        Ok(NotificationLog {
            db,
            entries: Mutex::new(entries),
        })
    }

    /// `receiver_key` names one integration of one receiver, e.g. `team-a/webhook/0`.
    pub fn get(&self, receiver_key: &str, group_key: &str) -> Option<Entry> {
        self.entries
            .lock()
            .get(&key(receiver_key, group_key))
            .map(|s| s.entry.clone())
    }

    /// Like `get`, but an entry past its expiry at `now_ms` is not returned even before `gc`.
    pub fn get_at(&self, receiver_key: &str, group_key: &str, now_ms: i64) -> Option<Entry> {
        self.entries
            .lock()
            .get(&key(receiver_key, group_key))
            .filter(|s| s.expires_at > now_ms)
            .map(|s| s.entry.clone())
    }

    /// Records a successful send. Entries expire `retention_ms` after `entry.sent_at`.
    pub fn log(
        &self,
        receiver_key: &str,
        group_key: &str,
        entry: Entry,
        retention_ms: i64,
    ) -> Result<()> {
        let mut entry = entry;
        entry.firing.sort_unstable();
        entry.firing.dedup();
        entry.resolved.sort_unstable();
        entry.resolved.dedup();
        let k = key(receiver_key, group_key);
        let mut entries = self.entries.lock();
        if let Some(prev) = entries.get(&k) {
            // Sends of one group are serialised, but a retry that finishes late must not
            // replace the record of a newer send.
            if prev.entry.sent_at > entry.sent_at {
                return Ok(());
            }
        }
        let expires_at = entry.sent_at.saturating_add(retention_ms.max(0));
        let firing = encode(&entry.firing);
        let resolved = encode(&entry.resolved);
        // Normal durability: losing the last record to a power cut costs at most one repeated
        // notification.
        self.db.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO nflog (receiver, group_key, firing, resolved, sent_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (receiver, group_key) DO UPDATE SET firing = excluded.firing,
                   resolved = excluded.resolved, sent_at = excluded.sent_at,
                   expires_at = excluded.expires_at",
            )?
            .execute(rusqlite::params![
                receiver_key,
                group_key,
                firing,
                resolved,
                entry.sent_at,
                expires_at
            ])?;
            Ok(())
        })?;
        entries.insert(k, Stored { entry, expires_at });
        Ok(())
    }

    /// Drops expired entries.
    pub fn gc(&self, now_ms: i64) -> Result<usize> {
        let mut entries = self.entries.lock();
        self.db
            .write(|tx| tx.execute("DELETE FROM nflog WHERE expires_at <= ?1", [now_ms]))?;
        let before = entries.len();
        entries.retain(|_, s| s.expires_at > now_ms);
        Ok(before - entries.len())
    }

    /// Every fingerprint last notified as firing by some receiver: the alerts that are owed a
    /// resolve (or are still firing).
    pub fn notified_firing(&self) -> std::collections::HashSet<u64> {
        self.entries
            .lock()
            .values()
            .flat_map(|s| s.entry.firing.iter().copied())
            .collect()
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn key(receiver: &str, group: &str) -> Key {
    Key {
        receiver: receiver.to_string(),
        group: group.to_string(),
    }
}

/// Fingerprints as a JSON array of 16-digit hex strings: JSON numbers above 2^53 do not
/// survive every reader, and this is the form the API shows.
pub(crate) fn encode(fps: &[u64]) -> String {
    let v: Vec<String> = fps.iter().map(|f| format!("{f:016x}")).collect();
    serde_json::Value::from(v).to_string()
}

pub(crate) fn decode(s: &str) -> std::result::Result<Vec<u64>, String> {
    let v: Vec<String> = serde_json::from_str(s).map_err(|e| e.to_string())?;
    v.iter()
        .map(|h| u64::from_str_radix(h, 16).map_err(|e| format!("fingerprint {h:?}: {e}")))
        .collect()
}

type Row = (String, String, String, String, i64, i64);

fn load(db: &StateDb) -> Result<HashMap<Key, Stored>> {
    let rows: Vec<Row> = db.with_conn(|c| {
        let mut st = c.prepare(
            "SELECT receiver, group_key, firing, resolved, sent_at, expires_at FROM nflog",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        rows.collect()
    })?;
    let mut out = HashMap::with_capacity(rows.len());
    for (receiver, group, firing, resolved, sent_at, expires_at) in rows {
        match (decode(&firing), decode(&resolved)) {
            (Ok(firing), Ok(resolved)) => {
                out.insert(
                    Key { receiver, group },
                    Stored {
                        entry: Entry {
                            firing,
                            resolved,
                            sent_at,
                        },
                        expires_at,
                    },
                );
            }
            // Without the entry the group is notified again, which is the safe side.
            (Err(e), _) | (_, Err(e)) => tracing::error!(
                path = db.path(),
                receiver,
                group,
                error = %e,
                "skipping unreadable notification log entry"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const H: i64 = 3_600_000;

    fn entry(firing: &[u64], resolved: &[u64], sent_at: i64) -> Entry {
        Entry {
            firing: firing.to_vec(),
            resolved: resolved.to_vec(),
            sent_at,
        }
    }

    #[test]
    fn log_get_and_overwrite() {
        let l = NotificationLog::new(None).unwrap();
        assert!(l.get("r/webhook/0", "g").is_none());
        l.log("r/webhook/0", "g", entry(&[3, 1, 3], &[], T0), H)
            .unwrap();
        assert_eq!(l.get("r/webhook/0", "g").unwrap(), entry(&[1, 3], &[], T0));
        assert!(l.get("r/webhook/1", "g").is_none());
        assert!(l.get("r/webhook/0", "h").is_none());
        l.log("r/webhook/0", "g", entry(&[1], &[3], T0 + 10), H)
            .unwrap();
        assert_eq!(
            l.get("r/webhook/0", "g").unwrap(),
            entry(&[1], &[3], T0 + 10)
        );
        // An older send finishing late does not replace the newer record.
        l.log("r/webhook/0", "g", entry(&[9], &[], T0 + 5), H)
            .unwrap();
        assert_eq!(l.get("r/webhook/0", "g").unwrap().sent_at, T0 + 10);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn expiry_and_gc() {
        let l = NotificationLog::new(None).unwrap();
        l.log("a", "g1", entry(&[1], &[], T0), H).unwrap();
        l.log("a", "g2", entry(&[2], &[], T0), 2 * H).unwrap();
        assert!(l.get_at("a", "g1", T0 + H - 1).is_some());
        assert!(l.get_at("a", "g1", T0 + H).is_none());
        assert!(l.get("a", "g1").is_some(), "visible until gc");
        assert_eq!(l.gc(T0 + H - 1).unwrap(), 0);
        assert_eq!(l.gc(T0 + H).unwrap(), 1);
        assert!(l.get("a", "g1").is_none());
        assert!(l.get("a", "g2").is_some());
    }

    #[test]
    fn persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let big = u64::MAX - 7;
        {
            let l = NotificationLog::new(Some(StateDb::open(&path).unwrap())).unwrap();
            l.log(
                "team/webhook/0",
                "{}:{a=\"b\"}",
                entry(&[big, 2], &[5], T0),
                H,
            )
            .unwrap();
            l.log("team/webhook/0", "old", entry(&[1], &[], T0 - 2 * H), H)
                .unwrap();
            l.log("team/webhook/0", "gone", entry(&[1], &[], T0 - 3 * H), H)
                .unwrap();
            assert_eq!(l.gc(T0 - H - 1).unwrap(), 1);
        }
        let l = NotificationLog::new(Some(StateDb::open(&path).unwrap())).unwrap();
        assert_eq!(
            l.get("team/webhook/0", "{}:{a=\"b\"}").unwrap(),
            entry(&[2, big], &[5], T0)
        );
        assert!(l.get("team/webhook/0", "gone").is_none());
        assert_eq!(l.len(), 2);
        assert_eq!(l.gc(T0).unwrap(), 1);
        drop(l);
        let l = NotificationLog::new(Some(StateDb::open(&path).unwrap())).unwrap();
        assert_eq!(l.len(), 1);
    }
}
