//! Deciding one execution once its delay has passed: the alert must still be as it was (and not
//! muted since), then the policy's guards are asked, and the action is run, queued for approval
//! or recorded as a dry run; a guard's refusal is recorded as suppressed and may trip the policy.

use std::sync::Arc;

use crate::config::{Mode, On};
use crate::engine::{single, Due, Engine, Job, Policy, FLEET_CACHE_MS};
use crate::guards::{Facts, Guard, Suppression};
use crate::journal::{state, Update};
use crate::template::RenderCx;

impl Engine {
    pub(crate) fn decide(self: &Arc<Self>, job: Job, now: i64) {
        let Some(p) = self.policy(&job.policy) else {
            self.finish_as(
                &job,
                state::SKIPPED,
                "skipped",
                "the policy is no longer configured",
                now,
            );
            return;
        };
        if p.cfg.delay.ms() > 0 {
            if let Some(why) = self.bridge.get().and_then(|b| b.muted(&job.alert.labels)) {
                self.finish_as(
                    &job,
                    state::SKIPPED,
                    "skipped",
                    &format!("{why} during the delay"),
                    now,
                );
                return;
            }
        }
        if p.cfg.delay.ms() > 0 && !self.alert_unchanged(&job, p.cfg.on, now) {
            let why = match p.cfg.on {
                On::Firing => "the alert stopped firing before the delay passed",
                On::Resolved => "the alert fired again before the delay passed",
            };
            self.finish_as(&job, state::SKIPPED, "skipped", why, now);
            return;
        }
        let facts = self.facts(&p, &job, now);
        let runs = p.cfg.mode == Mode::Auto;
        let admitted = {
            let mut g = self.guards.lock();
            let pg = g.entry(job.policy.clone()).or_default();
            let was_tripped = pg.trip().is_some();
            let res = pg.admit(
                &p.cfg.guards,
                &job.target,
                now,
                &facts,
                runs,
                p.cfg.trip_reset.ms(),
            );
            let new_trip = if !was_tripped {
                pg.trip().cloned()
            } else {
                None
            };
            (res, new_trip)
        };
        match admitted {
            (Err(s), new_trip) => {
                if let Some(t) = new_trip {
                    self.on_trip(&job.policy, &t, now);
                }
                self.suppress(&job, &s, now);
            }
            (Ok(()), _) => {
                self.share(tocsin_alerts::ha::Op::ActionAdmitted {
                    policy: job.policy.clone(),
                    target: job.target.clone(),
                    at: now,
                });
                match p.cfg.mode {
                    Mode::Auto => self.start(job, p, now, false),
                    Mode::DryRun => self.dry_run(&job, &p, now),
                    Mode::Approve => self.queue_approval(job, &p, now),
                }
            }
        }
    }

    fn facts(&self, p: &Policy, job: &Job, now: i64) -> Facts {
        let mut f = Facts::default();
        let Some(q) = self.query.get() else {
            let none = Err("no query engine attached".to_string());
            if p.cfg.guards.min_age.is_some() {
                f.age_s = Some(none.clone());
            }
            if p.cfg.guards.max_fraction.is_some() {
                f.fleet = Some(none);
            }
            return f;
        };
        if let (Some(_), Some(t)) = (p.cfg.guards.min_age, &p.age) {
            let expr = t.render(&RenderCx {
                alert: &job.alert,
                policy: &job.policy,
                target: &job.target,
                request_id: &job.request_id,
                now_ms: now,
            });
            f.age_s = Some(match expr {
                Err(e) => Err(e.to_string()),
                Ok(expr) => single(q.instant(&expr, now), &expr),
            });
        }
        if let (Some(_), Some(expr)) = (p.cfg.guards.max_fraction, &p.cfg.guards.fleet_size) {
            let cached = self
                .fleet_cache
                .lock()
                .get(&job.policy)
                .filter(|(at, _)| now - *at < FLEET_CACHE_MS && *at <= now)
                .map(|(_, v)| v.clone());
            let v = cached.unwrap_or_else(|| {
                let v = single(q.instant(expr, now), expr);
                self.fleet_cache
                    .lock()
                    .insert(job.policy.clone(), (now, v.clone()));
                v
            });
            f.fleet = Some(v);
        }
        f
    }

    fn on_trip(&self, policy: &str, t: &crate::guards::Trip, now: i64) {
        tracing::warn!(policy, guard = t.guard.as_str(), reason = %t.reason, "action policy tripped");
        if let Err(e) = self.journal.set_trip(
            policy,
            Some(t),
            (
                "tripped",
                &format!("tripped by {}: {}", t.guard.as_str(), t.reason),
                "",
            ),
            now,
        ) {
            tracing::error!(policy, error = %e, "recording the trip failed");
        }
        self.builtin.tripped(self, policy, t, now);
        self.share(tocsin_alerts::ha::Op::ActionTripped {
            policy: policy.to_string(),
            guard: t.guard.as_str().to_string(),
            reason: t.reason.clone(),
            at: t.at_ms,
            reset_at: t.reset_at_ms,
        });
    }

    fn suppress(&self, job: &Job, s: &Suppression, now: i64) {
        let guard = match s.guard {
            Guard::Tripped => self
                .guards
                .lock()
                .get(&job.policy)
                .and_then(|g| g.trip().map(|t| t.guard))
                .unwrap_or(Guard::Tripped),
            g => g,
        };
        self.metrics.suppressed(&job.policy, guard.as_str());
        self.metrics.outcome(&job.policy, state::SUPPRESSED);
        self.builtin.count_suppressed(&job.policy);
        self.record_final(
            job.id,
            Update {
                state: Some(state::SUPPRESSED),
                guard: Some(guard.as_str().to_string()),
                detail: Some(s.reason.clone()),
                finished_at: Some(now),
                event: Some((
                    "suppressed".into(),
                    format!("suppressed by {}: {}", guard.as_str(), s.reason),
                    String::new(),
                )),
                ..Default::default()
            },
        );
    }

    pub(crate) fn finish_as(&self, job: &Job, st: &'static str, event: &str, why: &str, now: i64) {
        self.metrics.outcome(&job.policy, st);
        self.record(
            job.id,
            Update {
                state: Some(st),
                detail: Some(why.to_string()),
                finished_at: Some(now),
                event: Some((event.into(), why.into(), String::new())),
                ..Default::default()
            },
            now,
        );
    }

    pub(crate) fn render_cx<'a>(&self, job: &'a Job, now: i64) -> RenderCx<'a> {
        RenderCx {
            alert: &job.alert,
            policy: &job.policy,
            target: &job.target,
            request_id: &job.request_id,
            now_ms: now,
        }
    }

    fn dry_run(&self, job: &Job, p: &Policy, now: i64) {
        let (st, detail, request) = match p.kind.prepare(&self.render_cx(job, now)) {
            Ok(prep) => (
                state::DRY_RUN,
                "dry run: recorded what would have been sent; nothing was sent".to_string(),
                prep.request,
            ),
            Err(e) => (state::FAILED, e.to_string(), serde_json::Value::Null),
        };
        self.metrics.outcome(&job.policy, st);
        self.record_final(
            job.id,
            Update {
                state: Some(st),
                request: Some(request),
                started_at: Some(now),
                finished_at: Some(now),
                detail: Some(detail.clone()),
                event: Some((st.into(), detail, String::new())),
                ..Default::default()
            },
        );
    }

    fn queue_approval(&self, job: Job, p: &Policy, now: i64) {
        let request = match p.kind.prepare(&self.render_cx(&job, now)) {
            Ok(prep) => prep.request,
            Err(e) => {
                self.finish_as(&job, state::FAILED, "failed", &e.to_string(), now);
                return;
            }
        };
        let until = now + p.cfg.approval_ttl.ms();
        self.metrics.outcome(&job.policy, state::PENDING_APPROVAL);
        self.record(
            job.id,
            Update {
                state: Some(state::PENDING_APPROVAL),
                request: Some(request),
                started_at: Some(now),
                due_at: Some(until),
                event: Some((
                    "queued".into(),
                    format!(
                        "waiting for approval until {}",
                        crate::guards::fmt_ms(until)
                    ),
                    String::new(),
                )),
                ..Default::default()
            },
            now,
        );
        self.hold(job, Due::ApprovalExpiry, until);
    }

    pub(crate) fn expire(&self, job: Job, now: i64) {
        self.finish_as(
            &job,
            state::EXPIRED,
            "expired",
            "no one approved or denied it before approval_ttl passed",
            now,
        );
    }

    pub(crate) fn auto_resets(&self, now: i64) {
        let reset: Vec<String> = {
            let mut g = self.guards.lock();
            g.iter_mut()
                .filter_map(|(p, pg)| pg.auto_reset(now).then(|| p.clone()))
                .collect()
        };
        for p in reset {
            if let Err(e) = self
                .journal
                .set_trip(&p, None, ("reset", "trip_reset passed", ""), now)
            {
                tracing::error!(policy = %p, error = %e, "recording the reset failed");
            }
            tracing::info!(policy = %p, "action policy reset itself (trip_reset)");
            self.builtin.reset(self, &p, now);
        }
    }
}
