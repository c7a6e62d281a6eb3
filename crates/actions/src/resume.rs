//! Picking up after a restart: guard history and trips come back from the journal so limits
//! hold across restarts, and executions the last process left open are resumed: delays and
//! approvals are held again, verifications rescheduled, and an execution a crash interrupted
//! between intent and outcome is sent again only when its kind is idempotent, else recorded
//! `unknown` with an alert, because no one can tell whether it happened.

use std::sync::Arc;

use tocsin_model::{Alert, Labels};

use crate::engine::{request_id, Due, Engine, Job};
use crate::error::Result;
use crate::journal::{state, ExecRow, Update};

impl Engine {
    /// Guard history and trips from the journal, so limits hold across restarts.
    pub(crate) fn restore_guards(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let longest = self
            .policies
            .read()
            .values()
            .map(|p| {
                p.cfg
                    .guards
                    .rate
                    .map_or(0, |r| r.window.ms())
                    .max(p.cfg.guards.window_ms())
                    .max(p.cfg.guards.cooldown.map_or(0, |c| c.ms()))
            })
            .max()
            .unwrap_or(0);
        let mut g = self.guards.lock();
        for (policy, at, target) in self.journal.admitted_since(now - longest)? {
            g.entry(policy).or_default().restore_ran(at, &target);
        }
        for pg in g.values_mut() {
            pg.finish_restore();
        }
        for (policy, trip) in self.journal.trips()? {
            g.entry(policy).or_default().set_trip(Some(trip));
        }
        Ok(())
    }

    /// Resumes what the journal left open at the last stop: delays and approvals are held
    /// again, executions a crash interrupted are sent again when the kind is idempotent and
    /// recorded `unknown` (with an alert) when not, verifications are rescheduled.
    pub fn resume(self: &Arc<Self>) -> Result<usize> {
        let now = self.clock.now_ms();
        // Alarms of executions that already ended are raised first: the loop below may end
        // more (unknown), and raises theirs itself.
        for r in self.journal.alarming_rows(now - 86_400_000)? {
            self.builtin.restore_alarm(self, &r, now);
        }
        let rows = self.journal.open_rows()?;
        let n = rows.len();
        for r in rows {
            self.seen.lock().insert(r.key.clone(), r.alert_starts_at);
            let job = job_of(&r);
            match r.state.as_str() {
                state::MATCHED => self.hold(job, Due::Delay, now),
                state::DELAYED => self.hold(job, Due::Delay, r.due_at),
                state::PENDING_APPROVAL => self.hold(job, Due::ApprovalExpiry, r.due_at),
                state::VERIFYING => self.hold(job, Due::Verify, r.due_at),
                state::RUNNING => self.resume_running(job, &r, now),
                _ => {}
            }
        }
        let trips: Vec<(String, crate::guards::Trip)> = self
            .guards
            .lock()
            .iter()
            .filter_map(|(p, g)| g.trip().map(|t| (p.clone(), t.clone())))
            .collect();
        for (p, t) in trips {
            self.builtin.tripped(self, &p, &t, now);
        }
        Ok(n)
    }

    fn resume_running(self: &Arc<Self>, job: Job, r: &ExecRow, now: i64) {
        match self.policy(&job.policy) {
            Some(p) if p.kind.idempotent() => {
                self.guards
                    .lock()
                    .entry(job.policy.clone())
                    .or_default()
                    .start_approved();
                self.record(
                    job.id,
                    Update {
                        event: Some((
                            "resumed".into(),
                            "interrupted by a restart; sending again (the action is idempotent)"
                                .into(),
                            String::new(),
                        )),
                        ..Default::default()
                    },
                    now,
                );
                self.start(job, p, now, true);
            }
            p => {
                let why = match p {
                    None => "interrupted by a restart, and the policy is no longer configured: the action may or may not have happened".to_string(),
                    Some(p) => format!(
                        "interrupted by a restart; a {} action that is not marked idempotent is not sent again: it may or may not have happened",
                        p.kind.kind()
                    ),
                };
                self.finish_as(&job, state::UNKNOWN, "unknown", &why, now);
                let mut row = r.clone();
                row.state = state::UNKNOWN.into();
                row.detail = why;
                self.builtin.restore_alarm(self, &row, now);
            }
        }
    }
}

pub(crate) fn job_of(r: &ExecRow) -> Job {
    let labels = Labels::from_pairs(
        &r.labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    Job {
        id: r.id,
        policy: r.policy.clone(),
        alert: Alert {
            labels,
            annotations: r.annotations.clone(),
            starts_at: r.alert_starts_at,
            ends_at: 0,
            generator_url: String::new(),
            updated_at: r.created_at,
            timeout: false,
        },
        target: r.target.clone(),
        request_id: request_id(&r.key),
    }
}
