//! Opening the alert manager's `state.db` so that a damaged file cannot keep the server (and with
//! it ingest and queries) from starting: a file SQLite calls corrupt, or that fails its integrity
//! check, is moved aside with its `-wal`/`-shm` files as `state.db.corrupt-<time>`, logged, counted,
//! and the alert manager starts on a fresh file with empty state. The old file is kept for
//! inspection; the `TocsinStateDbCorrupt` built-in alert fires while it is there.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use tocsin_alerts::state::StateDb;

use crate::metrics::ServerMetrics;
use crate::Error;

/// What opening found.
pub struct OpenedState {
    pub db: StateDb,
    /// Where a damaged file was moved, with what was wrong with it.
    pub set_aside: Option<(PathBuf, String)>,
}

/// `20261203T161129Z`: sortable, and without characters some filesystems refuse.
fn stamp(now_ms: i64) -> String {
    let s = tocsin_model::time::format_rfc3339_ms(now_ms);
    let digits: String = s
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

pub fn open(path: &Path, now_ms: i64, metrics: &ServerMetrics) -> Result<OpenedState, Error> {
    let e = match StateDb::open(path) {
        Ok(db) => {
            return Ok(OpenedState {
                db,
                set_aside: None,
            })
        }
        Err(e) if e.is_corruption() => e,
        Err(e) => return Err(Error::Internal(format!("opening {}: {e}", path.display()))),
    };
    metrics.state_db_corruptions.fetch_add(1, Ordering::Relaxed);
    let moved = tocsin_alerts::state::quarantine(path, &stamp(now_ms)).map_err(|io| {
        Error::Internal(format!(
            "{} is damaged ({e}) and could not be moved aside: {io}",
            path.display()
        ))
    })?;
    tracing::error!(
        path = %path.display(),
        moved_to = %moved.display(),
        error = %e,
        "STATE DB DAMAGED: moved aside for inspection; the alert manager starts with EMPTY state \
         (silences, notification log and alert history are not restored)"
    );
    let db = StateDb::open(path)
        .map_err(|e2| Error::Internal(format!("opening a fresh {}: {e2}", path.display())))?;
    Ok(OpenedState {
        db,
        set_aside: Some((moved, e.to_string())),
    })
}

/// The `TocsinStateDbCorrupt` condition: holds while the set-aside file is still there.
pub fn condition(moved: PathBuf, error: String) -> impl Fn() -> Option<String> + Send + Sync {
    move || {
        moved.exists().then(|| {
            format!(
                "state.db was damaged ({error}) and was moved to {} at start-up; the alert \
                 manager started with empty state (silences, notification log and alert history \
                 were not restored). Inspect the file, then delete it to resolve this alert.",
                moved.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn garbage_state_db_is_set_aside_and_a_fresh_one_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(
            &path,
            b"this is not a sqlite file, just garbage ".repeat(200),
        )
        .unwrap();
        let m = ServerMetrics::default();
        let o = open(&path, 1_796_314_385_000, &m).unwrap();
        let (moved, err) = o.set_aside.unwrap();
        assert!(
            moved.ends_with("state.db.corrupt-20261203T161305Z"),
            "{}",
            moved.display()
        );
        assert!(moved.exists() && path.exists(), "old kept, new created");
        assert_eq!(m.state_db_corruptions.load(Ordering::Relaxed), 1);
        let c = condition(moved.clone(), err);
        assert!(c().unwrap().contains("state.db.corrupt-"));
        std::fs::remove_file(&moved).unwrap();
        assert!(c().is_none(), "resolves once the file is gone");
        // A healthy file opens without being touched.
        drop(o.db);
        assert!(open(&path, 0, &m).unwrap().set_aside.is_none());
    }
}
