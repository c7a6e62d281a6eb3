//! The engine as one of several replicas' (`tocsin_alerts::ha`): what its guards decide is
//! shared, so a replica that takes over sending counts the actions the previous sender ran
//! against the same limits, and a tripped policy stays tripped (and a reset resets it) on all.

use tocsin_alerts::ha::Op;

use crate::engine::Engine;
use crate::guards::{Guard, Trip};

impl Engine {
    /// Executions changed since audit event `after` (with the newest event id), for mirroring.
    pub fn changed_since(&self, after: i64) -> crate::Result<(Vec<i64>, i64)> {
        self.journal.changed_since(after)
    }

    /// The local id of execution `key`.
    pub fn id_of(&self, key: &str) -> crate::Result<Option<i64>> {
        self.journal.id_of(key)
    }

    pub(crate) fn share(&self, op: Op) {
        if let Some(ha) = self.ha.get() {
            ha.publish(op);
        }
    }

    /// Applies another replica's guard event; false for any other operation.
    pub fn apply_shared(&self, op: &Op) -> bool {
        match op {
            Op::ActionAdmitted { policy, target, at } => {
                let mut g = self.guards.lock();
                let pg = g.entry(policy.clone()).or_default();
                pg.restore_ran(*at, target);
                pg.finish_restore();
                true
            }
            Op::ActionTripped {
                policy,
                guard,
                reason,
                at,
                reset_at,
            } => {
                let Some(guard) = Guard::parse(guard) else {
                    tracing::warn!(
                        policy,
                        guard,
                        "another replica's trip names an unknown guard"
                    );
                    return true;
                };
                let t = Trip {
                    guard,
                    reason: reason.clone(),
                    at_ms: *at,
                    reset_at_ms: *reset_at,
                };
                let newly = {
                    let mut g = self.guards.lock();
                    let pg = g.entry(policy.clone()).or_default();
                    let newly = pg.trip().is_none();
                    pg.set_trip(Some(t.clone()));
                    newly
                };
                if newly {
                    if let Err(e) = self.journal.set_trip(
                        policy,
                        Some(&t),
                        (
                            "tripped",
                            &format!(
                                "tripped on another replica by {}: {}",
                                t.guard.as_str(),
                                t.reason
                            ),
                            "",
                        ),
                        *at,
                    ) {
                        tracing::error!(policy, error = %e, "recording another replica's trip failed");
                    }
                    self.builtin.tripped(self, policy, &t, *at);
                }
                true
            }
            Op::ActionReset { policy, by, at } => {
                let was = self.guards.lock().get_mut(policy).and_then(|g| g.reset());
                if was.is_some() {
                    if let Err(e) = self.journal.set_trip(
                        policy,
                        None,
                        ("reset", &format!("reset by {by} on another replica"), by),
                        *at,
                    ) {
                        tracing::error!(policy, error = %e, "recording another replica's reset failed");
                    }
                    self.builtin.reset(self, policy, *at);
                }
                true
            }
            _ => false,
        }
    }
}
