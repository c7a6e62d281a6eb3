//! The engine's own alerts, put into the alert manager so they are routed like any other:
//! - `RemediationSuppressed{policy, guard}` fires while a policy is tripped;
//! - `RemediationIneffective{policy, target}` fires when an action succeeded but its alert did
//!   not resolve within `verify.within`, until that alert resolves;
//! - `RemediationOutcomeUnknown{policy, target}` fires when a crash interrupted an action that
//!   is not safe to repeat, until its alert resolves (someone must look at the target).
//!
//! They are re-sent while they hold, with an end a few minutes ahead, so they resolve by
//! themselves if the server dies, as rule alerts do.

use std::collections::HashMap;

use parking_lot::Mutex;
use tocsin_model::{Alert, Labels};

use crate::engine::{Engine, Job};
use crate::guards::{fmt_ms, Trip};
use crate::journal::{state, ExecRow};

/// The names of the engine's own alerts.
pub const OWN_ALERTS: [&str; 3] = [
    "RemediationSuppressed",
    "RemediationIneffective",
    "RemediationOutcomeUnknown",
];

/// Whether an alert is one of the engine's own (by name, with the `policy` label it sets).
pub fn is_own(a: &Alert) -> bool {
    OWN_ALERTS.contains(&a.name()) && a.labels.get("policy").is_some()
}

/// How far ahead the end of a held alert is set.
const HOLD_MS: i64 = 3 * 60_000;
/// How often a held alert is sent again.
const RESEND_MS: i64 = 30_000;

struct Held {
    alert: Alert,
    last_sent: i64,
}

struct Alarm {
    held: Held,
    job: Job,
}

#[derive(Default)]
pub struct Builtin {
    tripped: Mutex<HashMap<String, (Held, u64)>>,
    alarms: Mutex<HashMap<i64, Alarm>>,
}

fn alert(
    pairs: &[(&str, &str)],
    summary: String,
    description: String,
    starts_at: i64,
    now: i64,
    url: &str,
) -> Alert {
    let mut a = Alert {
        labels: Labels::from_pairs(pairs),
        annotations: Default::default(),
        starts_at,
        ends_at: now + HOLD_MS,
        generator_url: format!("{url}/api/v1/actions"),
        updated_at: now,
        timeout: false,
    };
    a.annotations.insert("summary".into(), summary);
    a.annotations.insert("description".into(), description);
    a
}

impl Builtin {
    fn put(engine: &Engine, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        if let Some(b) = engine.bridge.get() {
            b.put(alerts);
        }
    }

    pub(crate) fn tripped(&self, engine: &Engine, policy: &str, t: &Trip, now: i64) {
        let a = alert(
            &[
                ("alertname", "RemediationSuppressed"),
                ("policy", policy),
                ("guard", t.guard.as_str()),
                ("severity", "critical"),
            ],
            format!("Remediation policy {policy} is tripped by its {} guard", t.guard.as_str()),
            format!(
                "{} (at {}). Its actions are suppressed until it is reset (tocsin actions reset {policy}){}.",
                t.reason,
                fmt_ms(t.at_ms),
                if t.reset_at_ms > 0 {
                    format!(" or trip_reset passes at {}", fmt_ms(t.reset_at_ms))
                } else {
                    String::new()
                }
            ),
            t.at_ms,
            now,
            &engine.external_url,
        );
        self.tripped.lock().insert(
            policy.to_string(),
            (
                Held {
                    alert: a.clone(),
                    last_sent: now,
                },
                0,
            ),
        );
        Self::put(engine, vec![a]);
    }

    pub(crate) fn count_suppressed(&self, policy: &str) {
        if let Some((_, n)) = self.tripped.lock().get_mut(policy) {
            *n += 1;
        }
    }

    pub(crate) fn reset(&self, engine: &Engine, policy: &str, now: i64) {
        if let Some((mut h, _)) = self.tripped.lock().remove(policy) {
            h.alert.ends_at = now;
            h.alert.updated_at = now;
            Self::put(engine, vec![h.alert]);
        }
    }

    fn alarm(&self, engine: &Engine, name: &str, job: Job, why: &str, now: i64) {
        let a = alert(
            &[
                ("alertname", name),
                ("policy", &job.policy),
                ("target", &job.target),
                ("remediated_alertname", job.alert.name()),
                ("remediated_fingerprint", &job.alert.fingerprint_hex()),
                ("severity", "warning"),
            ],
            format!(
                "Remediation {} of {} by policy {}: {}",
                job.id, job.target, job.policy, name
            ),
            why.to_string(),
            now,
            now,
            &engine.external_url,
        );
        self.alarms.lock().insert(
            job.id,
            Alarm {
                held: Held {
                    alert: a.clone(),
                    last_sent: now,
                },
                job,
            },
        );
        Self::put(engine, vec![a]);
    }

    pub(crate) fn ineffective(&self, engine: &Engine, job: &Job, why: &str, now: i64) {
        self.alarm(engine, "RemediationIneffective", job.clone(), why, now);
    }

    /// Re-raises the alarm of an execution that ended ineffective or unknown (at start-up).
    pub(crate) fn restore_alarm(&self, engine: &Engine, r: &ExecRow, now: i64) {
        let name = match r.state.as_str() {
            state::INEFFECTIVE => "RemediationIneffective",
            state::UNKNOWN => "RemediationOutcomeUnknown",
            _ => return,
        };
        let job = crate::resume::job_of(r);
        if !engine.alert_unchanged(&job, crate::On::Firing, now) && r.state == state::INEFFECTIVE {
            return;
        }
        self.alarm(engine, name, job, &r.detail, now);
    }

    /// Re-sends what still holds and resolves what no longer does.
    pub(crate) fn refresh(&self, engine: &Engine, now: i64) {
        let mut out = Vec::new();
        {
            let mut t = self.tripped.lock();
            for (h, n) in t.values_mut() {
                if now - h.last_sent >= RESEND_MS {
                    h.alert.ends_at = now + HOLD_MS;
                    h.alert.updated_at = now;
                    h.alert
                        .annotations
                        .insert("suppressed_since_trip".into(), n.to_string());
                    h.last_sent = now;
                    out.push(h.alert.clone());
                }
            }
        }
        {
            let mut alarms = self.alarms.lock();
            let ids: Vec<i64> = alarms.keys().copied().collect();
            for id in ids {
                let Some(a) = alarms.get_mut(&id) else {
                    continue;
                };
                if now - a.held.last_sent < RESEND_MS {
                    continue;
                }
                if engine.alert_unchanged(&a.job, crate::On::Firing, now) {
                    a.held.alert.ends_at = now + HOLD_MS;
                    a.held.alert.updated_at = now;
                    a.held.last_sent = now;
                    out.push(a.held.alert.clone());
                } else if let Some(mut a) = alarms.remove(&id) {
                    a.held.alert.ends_at = now;
                    a.held.alert.updated_at = now;
                    out.push(a.held.alert);
                }
            }
        }
        Self::put(engine, out);
    }
}
