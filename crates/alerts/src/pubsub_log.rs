//! The Pub/Sub push messages already taken (`pubsub_messages` in state.db), so a redelivered
//! `messageId` is answered without acting again, also after a restart. Pub/Sub keeps an unacked
//! message at most 7 days, so rows older than that can never be asked about again and are
//! pruned.

use rusqlite::OptionalExtension;

use crate::error::Result;
use crate::state::StateDb;

/// How long a taken message id is remembered: Pub/Sub's longest message retention.
pub const RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// A handle on the table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PubsubLog {
    db: StateDb,
}

impl PubsubLog {
    pub fn new(db: StateDb) -> PubsubLog {
        PubsubLog { db }
    }

    /// Whether `message_id` was taken already.
    pub fn contains(&self, message_id: &str) -> Result<bool> {
        self.db.with_conn(|c| {
            c.prepare_cached("SELECT 1 FROM pubsub_messages WHERE message_id = ?1")?
                .query_row([message_id], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
    }

    /// Records `message_id` as taken. Recording it twice keeps the first row (two deliveries of
    /// one message racing each other both succeed).
    pub fn record(&self, message_id: &str, subscription: &str, now_ms: i64) -> Result<()> {
        self.db.write(|tx| {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO pubsub_messages (message_id, subscription, received_at)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(rusqlite::params![message_id, subscription, now_ms])?;
            Ok(())
        })
    }

    /// Forgets the ids taken before `before_ms`; returns how many.
    pub fn prune(&self, before_ms: i64) -> Result<usize> {
        self.db.write(|tx| {
            tx.prepare_cached("DELETE FROM pubsub_messages WHERE received_at < ?1")?
                .execute([before_ms])
        })
    }

    /// How many ids are remembered.
    pub fn len(&self) -> Result<usize> {
        self.db.with_conn(|c| {
            c.query_row("SELECT COUNT(*) FROM pubsub_messages", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as usize)
        })
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_found_pruned_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let log = PubsubLog::new(StateDb::open(&path).unwrap());
        assert!(!log.contains("1").unwrap());
        log.record("1", "projects/p/subscriptions/s", 1_000)
            .unwrap();
        log.record("1", "projects/p/subscriptions/other", 5_000)
            .unwrap();
        log.record("2", "projects/p/subscriptions/s", 9_000)
            .unwrap();
        assert!(log.contains("1").unwrap());
        assert_eq!(log.len().unwrap(), 2);
        drop(log);

        let log = PubsubLog::new(StateDb::open(&path).unwrap());
        assert!(log.contains("1").unwrap() && log.contains("2").unwrap());
        // The first record of "1" (at 1 000) is the one kept.
        assert_eq!(log.prune(2_000).unwrap(), 1);
        assert!(!log.contains("1").unwrap());
        assert!(log.contains("2").unwrap());
    }
}
