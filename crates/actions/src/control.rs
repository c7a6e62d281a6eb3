//! The read and control side of the engine, as the HTTP API and the CLI use it: the audit
//! (executions with their events), approving and denying queued executions, resetting tripped
//! policies, and each policy's state and guard counters.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::engine::{Due, Engine};
use crate::error::{Error, Result};
use crate::guards::fmt_ms;
use crate::journal::{state, ListQuery, Update};

impl Engine {
    /// Executions, newest first.
    pub fn list(&self, q: &ListQuery) -> Result<Vec<Value>> {
        Ok(self
            .journal
            .list(q)?
            .into_iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect())
    }

    /// One execution with its audit trail.
    pub fn get(&self, id: i64) -> Result<Value> {
        let r = self
            .journal
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("action execution {id}")))?;
        let events = self.journal.events(id)?;
        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert(
                "events".into(),
                serde_json::to_value(events).unwrap_or(Value::Null),
            );
        }
        Ok(v)
    }

    /// Runs a queued execution. Its guards were checked when it was queued; a human's
    /// approval is the decision to act, so a trip since then does not stop it.
    pub fn approve(self: &Arc<Self>, id: i64, who: &str, comment: &str) -> Result<Value> {
        let now = self.clock.now_ms();
        let job = self.take_pending(id)?;
        let Some(p) = self.policy(&job.policy) else {
            self.finish_as(
                &job,
                state::DENIED,
                "denied",
                "the policy is no longer configured",
                now,
            );
            return Err(Error::BadData(format!(
                "policy {:?} of execution {id} is no longer configured; the execution was closed",
                job.policy
            )));
        };
        self.journal.update(
            id,
            &Update {
                decided_by: Some(who.to_string()),
                event: Some(("approved".into(), comment.to_string(), who.to_string())),
                ..Default::default()
            },
            now,
            false,
        )?;
        self.metrics.outcome(&job.policy, "approved");
        self.guards
            .lock()
            .entry(job.policy.clone())
            .or_default()
            .start_approved();
        self.start(job, p, now, false);
        self.get(id)
    }

    pub fn deny(&self, id: i64, who: &str, comment: &str) -> Result<Value> {
        let now = self.clock.now_ms();
        let job = self.take_pending(id)?;
        self.metrics.outcome(&job.policy, state::DENIED);
        self.journal.update(
            id,
            &Update {
                state: Some(state::DENIED),
                decided_by: Some(who.to_string()),
                finished_at: Some(now),
                detail: Some(if comment.is_empty() {
                    format!("denied by {who}")
                } else {
                    format!("denied by {who}: {comment}")
                }),
                event: Some(("denied".into(), comment.to_string(), who.to_string())),
                ..Default::default()
            },
            now,
            false,
        )?;
        self.get(id)
    }

    fn take_pending(&self, id: i64) -> Result<crate::engine::Job> {
        let mut w = self.waiting.lock();
        match w.get(&id) {
            Some((_, Due::ApprovalExpiry, _)) => {}
            _ => {
                drop(w);
                return Err(match self.journal.get(id)? {
                    None => Error::NotFound(format!("action execution {id}")),
                    Some(r) => Error::BadData(format!(
                        "action execution {id} is {}, not waiting for approval",
                        r.state
                    )),
                });
            }
        }
        w.remove(&id)
            .map(|(j, _, _)| j)
            .ok_or_else(|| Error::NotFound(format!("action execution {id}")))
    }

    /// Clears a policy's trip.
    pub fn reset(&self, policy: &str, who: &str) -> Result<Value> {
        let now = self.clock.now_ms();
        if self.policy(policy).is_none() && !self.guards.lock().contains_key(policy) {
            return Err(Error::NotFound(format!("action policy {policy:?}")));
        }
        let was = self.guards.lock().get_mut(policy).and_then(|g| g.reset());
        let Some(t) = was else {
            return Err(Error::BadData(format!(
                "action policy {policy:?} is not tripped"
            )));
        };
        self.journal.set_trip(
            policy,
            None,
            (
                "reset",
                &format!(
                    "reset by {who} (tripped by {} at {})",
                    t.guard.as_str(),
                    fmt_ms(t.at_ms)
                ),
                who,
            ),
            now,
        )?;
        tracing::info!(policy, who, "action policy reset");
        self.share(tocsin_alerts::ha::Op::ActionReset {
            policy: policy.to_string(),
            by: who.to_string(),
            at: now,
        });
        self.builtin.reset(self, policy, now);
        Ok(self.policy_json(policy, now))
    }

    fn policy_json(&self, name: &str, now: i64) -> Value {
        let p = self.policy(name);
        let g = self.guards.lock();
        let pg = g.get(name);
        let counters = match (&p, pg) {
            (Some(p), Some(pg)) => {
                serde_json::to_value(pg.counters(&p.cfg.guards, now)).unwrap_or(Value::Null)
            }
            _ => json!({"in_flight": 0, "in_rate_window": 0, "targets_in_window": 0}),
        };
        let trip = pg.and_then(|g| g.trip()).map(|t| {
            json!({
                "guard": t.guard.as_str(),
                "reason": t.reason,
                "since": fmt_ms(t.at_ms),
                "reset_at": if t.reset_at_ms > 0 { Value::String(fmt_ms(t.reset_at_ms)) } else { Value::Null },
            })
        });
        let pending = self
            .waiting
            .lock()
            .values()
            .filter(|(j, d, _)| j.policy == name && *d == Due::ApprovalExpiry)
            .count();
        json!({
            "name": name,
            "configured": p.is_some(),
            "kind": p.as_ref().map(|p| p.kind.kind()),
            "mode": p.as_ref().map(|p| p.cfg.mode.as_str()),
            "on": p.as_ref().map(|p| p.cfg.on.as_str()),
            "state": if trip.is_some() { "tripped" } else { "ok" },
            "tripped": trip,
            "pending_approvals": pending,
            "counters": counters,
        })
    }

    /// Every policy (configured, or tripped and since removed).
    pub fn policies_json(&self) -> Vec<Value> {
        let now = self.clock.now_ms();
        let mut names = self.policy_names();
        for n in self.guards.lock().keys() {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names.sort();
        names.iter().map(|n| self.policy_json(n, now)).collect()
    }

    /// Whether each policy is tripped, for the `tocsin_action_policy_tripped` gauge.
    pub fn tripped(&self) -> Vec<(String, bool)> {
        let g = self.guards.lock();
        self.policy_names()
            .into_iter()
            .map(|n| {
                let t = g.get(&n).is_some_and(|g| g.trip().is_some());
                (n, t)
            })
            .collect()
    }
}
