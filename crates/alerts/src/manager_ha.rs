//! The alert manager as one of several replicas (see `ha`): what it shares of what people do,
//! how it applies what the others did, and taking over sending.

use std::sync::{Arc, Weak};

use crate::error::Result;
use crate::events::EventKind;
use tocsin_model::Alert;

use crate::ha::ops::SharedAlert;
use crate::ha::{Ha, Op};

use super::AlertManager;

impl AlertManager {
    /// Makes this manager a replica sharing state through `ha`: its silences, acknowledgements,
    /// shelves and notes are published, the others' are applied here, and it sends only while
    /// it holds the sender lease (flushing every group at once when it takes over).
    pub fn attach_ha(self: &Arc<Self>, ha: Arc<Ha>) -> Result<()> {
        if self.ha.set(Arc::clone(&ha)).is_err() {
            return Ok(());
        }
        let h = Arc::clone(&ha);
        self.silences.on_write(Box::new(move |op| h.publish(op)));
        let h = Arc::clone(&ha);
        self.store
            .on_history(Box::new(move |changes| h.record_history(changes)));
        let weak: Weak<AlertManager> = Arc::downgrade(self);
        ha.set_on_takeover(Box::new(move || {
            if let Some(am) = weak.upgrade() {
                am.flush_all_now();
            }
        }));
        let db = self.marks.db().clone();
        match ha.keep_queue_in(db.clone()) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                operations = n,
                "HA: operations queued before the restart will be shared"
            ),
            Err(e) => return Err(e),
        }
        db.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS ha_position (
                     id  INTEGER PRIMARY KEY CHECK (id = 1),
                     seq INTEGER NOT NULL
                 );",
            )
        })?;
        let last: i64 = db
            .with_conn(|c| {
                c.query_row("SELECT seq FROM ha_position WHERE id = 1", [], |r| r.get(0))
                    .or(Ok(0))
            })
            .unwrap_or(0);
        let weak: Weak<AlertManager> = Arc::downgrade(self);
        let save_db = db.clone();
        ha.start_sync(
            last,
            Box::new(move |op| weak.upgrade().is_some_and(|am| am.apply_op(op))),
            Box::new(move |seq| {
                let r = save_db.write(|tx| {
                    tx.execute(
                        "INSERT INTO ha_position (id, seq) VALUES (1, ?1)
                         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
                        [seq],
                    )
                });
                if let Err(e) = r {
                    tracing::warn!(error = %e, "HA: position not saved");
                }
            }),
        );
        Ok(())
    }

    /// The replica handle, when this manager is one.
    pub fn ha(&self) -> Option<&Arc<Ha>> {
        self.ha.get()
    }

    /// Shares `op` with the other replicas (nothing without `ha:`).
    pub fn share(&self, op: Op) {
        if let Some(ha) = self.ha.get() {
            ha.publish(op);
        }
    }

    /// Takes alerts a client posted (the alert API, Alerta's, Pub/Sub pushes) and shares them,
    /// so the replica that sends knows them whichever replica the client reached.
    pub fn put_client_alerts(&self, alerts: Vec<Alert>) -> Result<()> {
        if self.ha.get().is_some() && !alerts.is_empty() {
            self.share(Op::Alerts {
                alerts: alerts.iter().map(SharedAlert::from_alert).collect(),
            });
        }
        self.put_alerts(alerts)
    }

    /// Applies the shared operations the alert manager does not own (heartbeat pings); the
    /// server sets it.
    pub fn on_shared_op(&self, f: crate::ha::ApplyOp) {
        let _ = self.foreign_ops.set(f);
    }

    /// Every group flushes at once: this replica just took over sending, and what the previous
    /// sender had not logged is due now.
    pub(super) fn flush_all_now(&self) {
        // The previous sender may have died before writing the openings of what fires now.
        if let Some(ha) = self.ha.get() {
            match self.store.open_episodes() {
                Ok(open) => ha.record_history(open),
                Err(e) => tracing::warn!(error = %e, "HA: open alert history not shared"),
            }
        }
        let now = self.clock.now_ms();
        self.dispatcher.lock().all_due(now);
        self.wake.notify_one();
    }

    /// Applies another replica's operation; false (logged) when it could not be.
    fn apply_op(&self, op: &Op) -> bool {
        let res = match op {
            Op::Silence { .. } => self.silences.merge(op).map(|_| ()),
            Op::Ack {
                fingerprint,
                by,
                comment,
                expires_at,
                at,
            } => self
                .firing_alert(*fingerprint, "acknowledged", self.clock.now_ms())
                .and_then(|a| self.marks.ack(&a, by, comment, *expires_at, *at))
                .map(|changed| {
                    if changed {
                        self.tell(*fingerprint, EventKind::Acknowledged);
                    }
                }),
            Op::Unack {
                fingerprint,
                by,
                comment,
                at,
            } => self
                .marks
                .unack(*fingerprint, by, comment, *at)
                .map(|changed| {
                    if changed {
                        self.tell(*fingerprint, EventKind::Unacknowledged);
                    }
                }),
            Op::Shelve {
                fingerprint,
                by,
                comment,
                until,
                at,
            } => self
                .marks
                .shelve(*fingerprint, by, comment, *until, *at)
                .map(|()| self.tell(*fingerprint, EventKind::Shelved)),
            Op::Unshelve {
                fingerprint,
                by,
                at,
            } => self.marks.unshelve(*fingerprint, by, *at).map(|changed| {
                if changed {
                    self.tell(*fingerprint, EventKind::Unshelved);
                }
            }),
            Op::Note {
                fingerprint,
                by,
                text,
                at,
            } => self
                .marks
                .note(*fingerprint, by, text, *at)
                .map(|_| self.tell(*fingerprint, EventKind::Noted)),
            Op::Alerts { alerts } => {
                self.put_alerts(alerts.iter().map(SharedAlert::to_alert).collect())
            }
            Op::Heartbeat { .. }
            | Op::ActionAdmitted { .. }
            | Op::ActionTripped { .. }
            | Op::ActionReset { .. }
            | Op::ActionDecision { .. } => {
                return self.foreign_ops.get().is_some_and(|f| f(op));
            }
        };
        match res {
            Ok(()) => true,
            // A client's batch with invalid alerts: the valid ones were taken here too.
            Err(crate::Error::BadData(_)) if matches!(op, Op::Alerts { .. }) => true,
            Err(e) => {
                tracing::debug!(error = %e, op = ?op, "HA: another replica's operation not applied (yet)");
                false
            }
        }
    }
}
