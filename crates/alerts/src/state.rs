//! The SQLite state file (`state.db` under the data dir): schema, migrations and the shared
//! connection. Silences, the notification log and the alert history keep their rows here so a
//! restart neither forgets a silence nor re-sends or loses a notification; acknowledgements,
//! shelves, notes and per-alert notification outcomes (the alert timeline) live here too.
//!
//! Durability: the file runs in WAL mode with `synchronous=NORMAL`, which survives a crash of
//! the process but may lose the last commits on power loss. Writes that an API acknowledges to a
//! human (silences) go through [`StateDb::write_durable`], which syncs the WAL before returning.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};

use crate::error::{Error, Result};

/// Schema migrations, applied in order; `PRAGMA user_version` counts how many have run. Never
/// edit an entry once released: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: silences, notification log, alert history.
    "CREATE TABLE silences (
        id         TEXT PRIMARY KEY,
        matchers   TEXT NOT NULL,
        starts_at  INTEGER NOT NULL,
        ends_at    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        comment    TEXT NOT NULL
    );
    CREATE TABLE nflog (
        receiver   TEXT NOT NULL,
        group_key  TEXT NOT NULL,
        firing     TEXT NOT NULL,
        resolved   TEXT NOT NULL,
        sent_at    INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (receiver, group_key)
    );
    CREATE INDEX nflog_expires_at ON nflog (expires_at);
    CREATE TABLE alert_history (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint INTEGER NOT NULL,
        labels      TEXT NOT NULL,
        starts_at   INTEGER NOT NULL,
        ends_at     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alert_history_fp ON alert_history (fingerprint, starts_at);
    CREATE INDEX alert_history_starts_at ON alert_history (starts_at);
    CREATE INDEX alert_history_ends_at ON alert_history (ends_at);",
    // 2: when an alert put back at start-up resolves unless a sender re-sends it, kept so that
    // restarts in a row do not push it back each time (0: not put back).
    "ALTER TABLE alert_history ADD COLUMN revived_until INTEGER NOT NULL DEFAULT 0;",
    // 3: the remediation actions' journal (one row per execution key, written before the
    // call), its audit trail, and the tripped state of each policy.
    "CREATE TABLE action_executions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        key             TEXT NOT NULL UNIQUE,
        policy          TEXT NOT NULL,
        fingerprint     INTEGER NOT NULL,
        alert_starts_at INTEGER NOT NULL,
        labels          TEXT NOT NULL,
        annotations     TEXT NOT NULL,
        target          TEXT NOT NULL,
        kind            TEXT NOT NULL,
        mode            TEXT NOT NULL,
        state           TEXT NOT NULL,
        guard           TEXT NOT NULL DEFAULT '',
        request         TEXT NOT NULL DEFAULT '',
        status          INTEGER NOT NULL DEFAULT 0,
        detail          TEXT NOT NULL DEFAULT '',
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        due_at          INTEGER NOT NULL DEFAULT 0,
        started_at      INTEGER NOT NULL DEFAULT 0,
        finished_at     INTEGER NOT NULL DEFAULT 0,
        duration_ms     INTEGER NOT NULL DEFAULT 0,
        decided_by      TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX action_executions_policy ON action_executions (policy, created_at);
    CREATE INDEX action_executions_state ON action_executions (state);
    CREATE INDEX action_executions_target ON action_executions (policy, target, started_at);
    CREATE INDEX action_executions_created ON action_executions (created_at);
    CREATE TABLE action_events (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        execution INTEGER NOT NULL,
        at        INTEGER NOT NULL,
        event     TEXT NOT NULL,
        detail    TEXT NOT NULL DEFAULT '',
        actor     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX action_events_execution ON action_events (execution, id);
    CREATE TABLE action_policies (
        policy     TEXT PRIMARY KEY,
        tripped_at INTEGER NOT NULL DEFAULT 0,
        guard      TEXT NOT NULL DEFAULT '',
        reason     TEXT NOT NULL DEFAULT '',
        reset_at   INTEGER NOT NULL DEFAULT 0
    );",
    // 4: Pub/Sub push messages already taken, so a redelivery is a no-op.
    "CREATE TABLE pubsub_messages (
        message_id   TEXT PRIMARY KEY,
        subscription TEXT NOT NULL,
        received_at  INTEGER NOT NULL
    );
    CREATE INDEX pubsub_messages_received ON pubsub_messages (received_at);",
    // 5: acknowledgements and shelves in force (one row per alert), the alert events a person
    // or the manager caused (ack, unack, ack ended, shelve, unshelve, note), and each
    // notification attempt's outcome per alert and receiver integration, for the timeline.
    "CREATE TABLE alert_acks (
        fingerprint INTEGER PRIMARY KEY,
        labels      TEXT NOT NULL,
        acked_by    TEXT NOT NULL,
        comment     TEXT NOT NULL,
        acked_at    INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE alert_shelves (
        fingerprint INTEGER PRIMARY KEY,
        shelved_by  TEXT NOT NULL,
        comment     TEXT NOT NULL,
        shelved_at  INTEGER NOT NULL,
        until       INTEGER NOT NULL
    );
    CREATE TABLE alert_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        actor       TEXT NOT NULL DEFAULT '',
        text        TEXT NOT NULL DEFAULT '',
        until       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alert_events_fp ON alert_events (fingerprint, at);
    CREATE INDEX alert_events_at ON alert_events (at);
    CREATE TABLE notifications (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        receiver    TEXT NOT NULL,
        integration TEXT NOT NULL,
        group_key   TEXT NOT NULL,
        status      TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        error       TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX notifications_fp ON notifications (fingerprint, at);
    CREATE INDEX notifications_at ON notifications (at);
    CREATE INDEX action_executions_fp ON action_executions (fingerprint);",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A shared handle on the state database. Cheap to clone.
#[derive(Clone)]
pub struct StateDb {
    conn: Arc<Mutex<rusqlite::Connection>>,
    /// For error messages: the file, or `:memory:`.
    path: Arc<str>,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish()
    }
}

impl StateDb {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<StateDb> {
        let name: Arc<str> = Arc::from(path.display().to_string());
        let err = |source| Error::Db {
            path: name.to_string(),
            source,
        };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        // WAL lets readers (the API listing silences) proceed while a write commits, and with
        // NORMAL sync a commit costs no fsync; the writes that must be on disk before an
        // acknowledgement raise it per transaction (`write_durable`).
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %name, mode, "state db: WAL journal mode not available");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        check_integrity(&conn, &name)?;
        Self::init(conn, name)
    }

    /// A private in-memory database, for tests and `--no-state` runs.
    pub fn in_memory() -> Result<StateDb> {
        let name: Arc<str> = Arc::from(":memory:");
        let conn = rusqlite::Connection::open_in_memory().map_err(|source| Error::Db {
            path: name.to_string(),
            source,
        })?;
        Self::init(conn, name)
    }

    fn init(mut conn: Connection, path: Arc<str>) -> Result<StateDb> {
        migrate(&mut conn, &path)?;
        Ok(StateDb {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The file this handle writes (`:memory:` for a private database).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version stored in the file.
    pub fn schema_version(&self) -> Result<i64> {
        self.with_conn(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Db {
            path: self.path.to_string(),
            source,
        }
    }

    /// Runs `f` on the connection (for reads and single statements); errors name the file.
    pub fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock();
        f(&conn).map_err(|e| self.err(e))
    }

    /// Runs `f` in one transaction, committed when `f` succeeds and rolled back otherwise.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let out = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Like [`write`](Self::write), but the commit is synced to disk before this returns, so
    /// the change survives a power loss as well as a crash.
    pub fn write_durable<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock();
        // In WAL mode FULL syncs the log at each commit; NORMAL only at checkpoints. The
        // setting belongs to the connection, so it is raised for this commit alone.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        let res = (|| {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        let restore = conn.pragma_update(None, "synchronous", "NORMAL");
        let out = res.map_err(|e| self.err(e))?;
        restore.map_err(|e| self.err(e))?;
        Ok(out)
    }
}

/// `PRAGMA quick_check` reads every page of the file (a state db is small), so a damaged file is
/// found at start-up, where it can be set aside, rather than by a failed write hours later.
fn check_integrity(conn: &Connection, path: &str) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let res = (|| {
        let mut st = conn.prepare("PRAGMA quick_check(5)")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for r in rows {
            problems.push(r?);
        }
        Ok(())
    })();
    res.map_err(|source| Error::Db {
        path: path.to_string(),
        source,
    })?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(Error::Corrupt {
        path: path.to_string(),
        detail: problems.join("; "),
    })
}

/// Moves a damaged state file aside as `<name>.corrupt-<suffix>`, with its `-wal` and `-shm`
/// files (the WAL may hold the last commits, and an inspector needs it next to the main file).
/// Returns the new path of the main file.
pub fn quarantine(path: &Path, suffix: &str) -> std::io::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.db".into());
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let target = dir.join(format!("{name}.corrupt-{suffix}"));
    for ext in ["-wal", "-shm"] {
        let from = dir.join(format!("{name}{ext}"));
        if from.exists() {
            std::fs::rename(&from, dir.join(format!("{name}.corrupt-{suffix}{ext}")))?;
        }
    }
    std::fs::rename(path, &target)?;
    // The renames are durable before a fresh file is created under the old name.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(target)
}

fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    let err = |source| Error::Db {
        path: path.to_string(),
        source,
    };
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(Error::Internal(format!(
            "state db {path}: schema version {version} is newer than this build supports \
             ({SCHEMA_VERSION}); it was written by a newer release"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = i as i64 + 1;
        // One transaction per step: a crash mid-migration leaves the file at the previous
        // version, to be migrated again on the next start.
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", to).map_err(err)?;
        tx.commit().map_err(err)?;
        tracing::debug!(path, version = to, "state db migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn open_creates_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let db = StateDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = db
            .with_conn(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        db.write(|tx| {
            tx.execute(
                "INSERT INTO alert_history (fingerprint, labels, starts_at) VALUES (1, '{}', 5)",
                [],
            )
        })
        .unwrap();
        drop(db);
        let db = StateDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        let n: i64 = db
            .with_conn(|c| c.query_row("SELECT count(*) FROM alert_history", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn durable_write_restores_normal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(&dir.path().join("state.db")).unwrap();
        db.write_durable(|tx| {
            let s: i64 = tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            assert_eq!(s, 2, "FULL while the durable transaction runs");
            Ok(())
        })
        .unwrap();
        let s: i64 = db
            .with_conn(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(s, 1, "NORMAL afterwards");
    }

    #[test]
    fn failed_write_rolls_back_and_names_the_file() {
        let db = StateDb::in_memory().unwrap();
        let err = db
            .write(|tx| {
                tx.execute(
                    "INSERT INTO alert_history (fingerprint, labels, starts_at) VALUES (1, '{}', 5)",
                    [],
                )?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])
            })
            .unwrap_err();
        assert!(err.to_string().contains(":memory:"), "{err}");
        let n: i64 = db
            .with_conn(|c| c.query_row("SELECT count(*) FROM alert_history", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn newer_schema_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = StateDb::open(&path).unwrap_err().to_string();
        assert!(err.contains("state.db") && err.contains("newer"), "{err}");
    }

    #[test]
    fn garbage_file_is_reported_as_corruption_and_can_be_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = StateDb::open(&path).unwrap_err();
        assert!(err.is_corruption(), "{err}");
        // A WAL left beside it moves with it.
        std::fs::write(dir.path().join("state.db-wal"), b"junk").unwrap();
        let moved = quarantine(&path, "20260101T000000Z").unwrap();
        assert!(moved.ends_with("state.db.corrupt-20260101T000000Z"));
        assert!(moved.exists() && !path.exists());
        assert!(dir
            .path()
            .join("state.db.corrupt-20260101T000000Z-wal")
            .exists());
        StateDb::open(&path).unwrap();
    }

    #[test]
    fn damaged_page_fails_the_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let db = StateDb::open(&path).unwrap();
            db.write(|tx| {
                for i in 0..2000 {
                    tx.execute(
                        "INSERT INTO alert_history (fingerprint, labels, starts_at) VALUES (?1, 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 5)",
                        [i],
                    )?;
                }
                Ok(())
            })
            .unwrap();
            db.with_conn(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
                .unwrap();
        }
        // Keep the header page, scribble over the b-tree pages after it.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 16384, "{}", bytes.len());
        for b in &mut bytes[4096..12288] {
            *b = 0xa5;
        }
        std::fs::write(&path, bytes).unwrap();
        let err = StateDb::open(&path).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }

    #[test]
    fn newer_schema_is_not_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        assert!(!StateDb::open(&path).unwrap_err().is_corruption());
    }

    #[test]
    fn unopenable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("state.db");
        let err = StateDb::open(&path).unwrap_err().to_string();
        assert!(err.contains("missing-dir"), "{err}");
    }
}
