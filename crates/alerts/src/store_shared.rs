//! The alert history as replicas share it: every change this store records (a firing opened, a
//! resolve closing it, an earlier start) is handed to a hook; a replica mirrors them into
//! PostgreSQL while it sends (see `ha`), so every replica shows one history, gaps of its own
//! downtime included.

use tocsin_model::Labels;

use super::AlertStore;

/// One change to the history, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryChange {
    Open {
        fingerprint: u64,
        labels: Labels,
        starts_at: i64,
    },
    Close {
        fingerprint: u64,
        ends_at: i64,
        /// The labels and start of the episode closed, when known: a reader that missed its
        /// opening (a sender killed before writing it) records it closed.
        episode: Option<(Labels, i64)>,
    },
    SetStart {
        fingerprint: u64,
        starts_at: i64,
    },
}

pub type HistoryHook = Box<dyn Fn(Vec<HistoryChange>) + Send + Sync>;

impl AlertStore {
    /// Sets where recorded history changes go; only the first call counts. The hook must not
    /// block: it is called on the path that stores alerts.
    pub fn on_history(&self, f: HistoryHook) {
        let _ = self.history_hook.set(f);
    }

    /// The episodes open in this store's history, as changes that open them (a replica taking
    /// over sending writes them, in case its predecessor died before it did).
    pub fn open_episodes(&self) -> crate::Result<Vec<HistoryChange>> {
        let rows: Vec<(i64, String, i64)> = self.db.with_conn(|c| {
            let mut st = c.prepare(
                "SELECT fingerprint, labels, starts_at FROM alert_history WHERE ends_at = 0",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(fp, labels, starts_at)| {
                Some(HistoryChange::Open {
                    fingerprint: fp as u64,
                    labels: super::decode_labels(&labels).ok()?,
                    starts_at,
                })
            })
            .collect())
    }

    pub(super) fn tell_history(&self, changes: Vec<HistoryChange>) {
        if changes.is_empty() {
            return;
        }
        if let Some(f) = self.history_hook.get() {
            f(changes);
        }
    }
}

pub(super) fn change(
    fp: u64,
    labels: &Labels,
    op: super::HistOp,
    open_start: Option<i64>,
) -> HistoryChange {
    match op {
        super::HistOp::Open { starts_at } => HistoryChange::Open {
            fingerprint: fp,
            labels: labels.clone(),
            starts_at,
        },
        super::HistOp::Close { ends_at, .. } => HistoryChange::Close {
            fingerprint: fp,
            ends_at,
            episode: open_start.map(|s| (labels.clone(), s)),
        },
        super::HistOp::SetStart { starts_at, .. } => HistoryChange::SetStart {
            fingerprint: fp,
            starts_at,
        },
    }
}
