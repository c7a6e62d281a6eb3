//! Running one execution: the intent (state `running`, the rendered request) is written durably
//! before the first attempt; attempts are retried with backoff while the failure is retryable
//! and attempts are left; the outcome is written after. A success under `verify` waits to see
//! the alert resolve, else `RemediationIneffective` fires.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Due, Engine, Job, Policy};
use crate::guards::fmt_dur;
use crate::journal::{state, Update};
use crate::kinds::{Attempt, ExecCx};

/// Extra time an attempt gets beyond the policy's timeout before the engine drops it: the
/// kind enforces the timeout itself (and `exec` kills its process group), this only bounds a
/// kind that fails to.
const GRACE: Duration = Duration::from_secs(2);

impl Engine {
    /// Writes the intent and runs the execution in the background. `resumed`: the intent is
    /// already in the journal (a restart resumes it).
    pub(crate) fn start(self: &Arc<Self>, job: Job, p: Arc<Policy>, now: i64, resumed: bool) {
        let prepared = match p.kind.prepare(&self.render_cx(&job, now)) {
            Ok(x) => x,
            Err(e) => {
                self.release(&job.policy);
                self.finish_as(&job, state::FAILED, "failed", &e.to_string(), now);
                return;
            }
        };
        if !resumed {
            let intent = Update {
                state: Some(state::RUNNING),
                request: Some(prepared.request.clone()),
                started_at: Some(now),
                event: Some((
                    "sent".into(),
                    "intent recorded; calling".into(),
                    String::new(),
                )),
                ..Default::default()
            };
            // The intent must be on disk before the far side can act: if it cannot be
            // written, nothing is sent.
            if let Err(e) = self.journal.update(job.id, &intent, now, true) {
                tracing::error!(execution = job.id, error = %e, "writing the action intent failed; not acting");
                self.release(&job.policy);
                self.finish_as(
                    &job,
                    state::FAILED,
                    "failed",
                    &format!("the intent could not be written to the journal: {e}"),
                    now,
                );
                return;
            }
        }
        self.metrics.outcome(&job.policy, "sent");
        self.running.fetch_add(1, Ordering::SeqCst);
        let e = self.clone();
        tokio::spawn(async move {
            e.run(job, p, prepared).await;
            if e.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                e.idle.notify_waiters();
            }
        });
    }

    fn release(&self, policy: &str) {
        if let Some(g) = self.guards.lock().get_mut(policy) {
            g.finished();
        }
    }

    async fn run(self: &Arc<Self>, job: Job, p: Arc<Policy>, prepared: crate::kinds::Prepared) {
        let began = tokio::time::Instant::now();
        let timeout = p.cfg.timeout.std();
        let attempts = p.cfg.retry.attempts.max(1);
        let mut backoff = p.cfg.retry.backoff.std();
        let max_backoff = p.cfg.retry.max_backoff.std();
        let mut n: u32 = 0;
        let last = loop {
            n += 1;
            let cx = ExecCx {
                timeout,
                attempt: n,
            };
            let a =
                match tokio::time::timeout(timeout + GRACE, p.kind.execute(&prepared, &cx)).await {
                    Ok(a) => a,
                    Err(_) => Attempt::Failed {
                        retryable: true,
                        status: None,
                        message: format!(
                            "no answer within the timeout of {}",
                            fmt_dur(p.cfg.timeout.ms())
                        ),
                        retry_after: None,
                    },
                };
            match &a {
                Attempt::Failed {
                    retryable: true,
                    message,
                    retry_after,
                    ..
                } if n < attempts => {
                    let wait = retry_after
                        .map_or(backoff, |r| r.max(backoff))
                        .min(max_backoff.max(backoff));
                    let now = self.clock.now_ms();
                    self.metrics.outcome(&job.policy, "retried");
                    self.journal_update(
                        job.id,
                        Update {
                            attempts: Some(n as i64),
                            event: Some((
                                "retried".into(),
                                format!(
                                    "attempt {n} failed: {message}; retrying in {}",
                                    fmt_dur(wait.as_millis() as i64)
                                ),
                                String::new(),
                            )),
                            ..Default::default()
                        },
                        now,
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(max_backoff);
                }
                _ => break a,
            }
        };
        let took = began.elapsed();
        self.release(&job.policy);
        self.metrics.observe(&job.policy, took);
        let now = self.clock.now_ms();
        let dur = took.as_millis() as i64;
        match last {
            Attempt::Done {
                status,
                detail,
                already_done,
            } => {
                let what = if already_done {
                    format!("already done: {detail}")
                } else {
                    detail
                };
                let verify = p.cfg.verify.map(|v| now + v.within.ms());
                self.metrics.outcome(&job.policy, state::SUCCEEDED);
                self.journal_update(
                    job.id,
                    Update {
                        state: Some(if verify.is_some() {
                            state::VERIFYING
                        } else {
                            state::SUCCEEDED
                        }),
                        status,
                        detail: Some(what.clone()),
                        attempts: Some(n as i64),
                        finished_at: Some(now),
                        duration_ms: Some(dur),
                        due_at: verify,
                        event: Some(("succeeded".into(), what, String::new())),
                        ..Default::default()
                    },
                    now,
                );
                if let Some(at) = verify {
                    self.hold(job, Due::Verify, at);
                }
            }
            Attempt::Failed {
                status, message, ..
            } => {
                tracing::warn!(policy = %job.policy, target = %job.target, attempts = n, error = %message, "action failed");
                self.metrics.outcome(&job.policy, state::FAILED);
                self.journal_update(
                    job.id,
                    Update {
                        state: Some(state::FAILED),
                        status,
                        detail: Some(message.clone()),
                        attempts: Some(n as i64),
                        finished_at: Some(now),
                        duration_ms: Some(dur),
                        event: Some((
                            "failed".into(),
                            format!("attempt {n} failed: {message}"),
                            String::new(),
                        )),
                        ..Default::default()
                    },
                    now,
                );
            }
        }
    }

    fn journal_update(&self, id: i64, u: Update, now: i64) {
        if let Err(e) = self.journal.update(id, &u, now, false) {
            tracing::error!(execution = id, error = %e, "action journal write failed");
        }
    }

    /// The verification window passed: did the alert resolve?
    pub(crate) fn verify(&self, job: Job, now: i64) {
        let on = self
            .policy(&job.policy)
            .map_or(crate::On::Firing, |p| p.cfg.on);
        if self.alert_unchanged(&job, on, now) {
            let why = "the alert is still firing after the verification window";
            self.finish_as(&job, state::INEFFECTIVE, "ineffective", why, now);
            self.builtin.ineffective(self, &job, why, now);
        } else {
            self.finish_as(
                &job,
                state::VERIFIED,
                "verified",
                "the alert resolved within the verification window",
                now,
            );
        }
    }
}
