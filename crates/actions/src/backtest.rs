//! Backtest: replays the stored alert history through the routes and the policies, with their
//! guards, and says what each policy would have done, when, and what the guards would have
//! stopped. The guards are the engine's own state machine ([`PolicyGuards`]), driven by the
//! history's times instead of the clock, so the answer is what the engine would have decided.
//!
//! What is replayed: routing (matchers, `continue`), the route's `group_wait` before the first
//! notification, mute and active time intervals, silences (those still in state.db), the
//! policy's `on` and `delay`, exactly-once per (policy, alert, start), and every guard; fleet
//! size and target age are asked of a query engine at the decision time when one is given.
//! What is not: inhibition (it depends on other alerts' states at each instant, which the
//! history does not keep), and how long actions take (`max_concurrent` counts none running).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tocsin_alerts::route::RouteTree;
use tocsin_alerts::silence::Silences;
use tocsin_alerts::store::HistoryEntry;
use tocsin_alerts::AmConfig;
use tocsin_model::{Alert, Labels};

use crate::config::{ActionsConfig, Mode, On, PolicyConfig};
use crate::engine::{execution_key, request_id, Query};
use crate::error::{Error, Result};
use crate::guards::{Facts, PolicyGuards};
use crate::template::{ActionTemplate, RenderCx};

/// One decision the engine would have made.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decision {
    /// When the decision would have been made (ms).
    pub at_ms: i64,
    pub policy: String,
    pub alertname: String,
    #[serde(serialize_with = "hex")]
    pub fingerprint: u64,
    pub alert_starts_at: i64,
    pub target: String,
    /// `run`, `dry_run`, `queued` (approval), `suppressed`, `skipped`, `silenced`, `muted`.
    pub outcome: String,
    /// The guard that stopped it (`suppressed` only).
    pub guard: String,
    pub reason: String,
}

fn hex<S: serde::Serializer>(fp: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{fp:016x}"))
}

pub struct Backtest<'a> {
    pub am: &'a AmConfig,
    pub actions: &'a ActionsConfig,
    /// Silences as state.db has them; None: silences are not replayed.
    pub silences: Option<&'a Silences>,
    /// Asked for fleet sizes and target ages at decision times; None: guards that need them
    /// count the answer as unknown (and stop the action), as the engine would.
    pub query: Option<&'a dyn Query>,
    pub from_ms: i64,
    pub to_ms: i64,
}

struct Candidate<'p> {
    at: i64,
    policy: &'p PolicyConfig,
    alert: Alert,
    muted: Option<String>,
    skipped: Option<String>,
}

impl Backtest<'_> {
    /// The decisions, in time order.
    pub fn run(&self, history: &[HistoryEntry]) -> Result<Vec<Decision>> {
        let tree = RouteTree::from_config(self.am)
            .map_err(|e| Error::Config(format!("alertmanager routes: {e}")))?;
        let intervals = self
            .am
            .time_intervals()
            .map_err(|e| Error::Config(format!("alertmanager time intervals: {e}")))?;
        let mut targets: HashMap<&str, Option<ActionTemplate>> = HashMap::new();
        for (i, p) in self.actions.policies.iter().enumerate() {
            let t = p
                .target
                .as_deref()
                .map(|t| ActionTemplate::parse(&format!("actions.policies[{i}].target"), t))
                .transpose()?;
            targets.insert(p.name.as_str(), t);
        }
        let mut cands: Vec<Candidate<'_>> = Vec::new();
        let mut keys: HashSet<String> = HashSet::new();
        for h in history {
            let alert = Alert {
                labels: h.labels.clone(),
                annotations: Default::default(),
                starts_at: h.starts_at,
                ends_at: h.ends_at,
                generator_url: String::new(),
                updated_at: h.starts_at,
                timeout: false,
            };
            for route in tree.matches(&h.labels) {
                let Some(recv) = self.am.receivers.iter().find(|r| r.name == route.receiver) else {
                    continue;
                };
                for a in &recv.action_configs {
                    let Some(p) = self.actions.policy(&a.policy) else {
                        continue;
                    };
                    if !keys.insert(execution_key(&p.name, h.fingerprint, h.starts_at)) {
                        continue;
                    }
                    let (notified, skipped) = match p.on {
                        On::Firing => {
                            let at = h.starts_at + route.group_wait_ms;
                            let decide = at + p.delay.ms();
                            let gone = h.ends_at != 0 && h.ends_at <= decide;
                            if gone && h.ends_at <= at {
                                // Resolved before the group's first notification.
                                continue;
                            }
                            (
                                decide,
                                (gone && p.delay.ms() > 0).then(|| {
                                    "the alert stopped firing before the delay passed".to_string()
                                }),
                            )
                        }
                        On::Resolved => {
                            if h.ends_at == 0 {
                                continue;
                            }
                            (
                                h.ends_at + route.group_interval_ms.max(0) + p.delay.ms(),
                                None,
                            )
                        }
                    };
                    if notified < self.from_ms || notified > self.to_ms {
                        continue;
                    }
                    let inactive = !route.active_time_intervals.is_empty()
                        && intervals
                            .containing(&route.active_time_intervals, notified)
                            .is_empty();
                    let muting = intervals.containing(&route.mute_time_intervals, notified);
                    let muted = if inactive {
                        Some("outside the route's active_time_intervals".to_string())
                    } else if !muting.is_empty() {
                        Some(format!("muted by time interval {}", muting.join(", ")))
                    } else {
                        None
                    };
                    cands.push(Candidate {
                        at: notified,
                        policy: p,
                        alert: alert.clone(),
                        muted,
                        skipped,
                    });
                }
            }
        }
        cands.sort_by_key(|c| (c.at, c.alert.fingerprint()));
        let mut guards: HashMap<&str, PolicyGuards> = HashMap::new();
        let mut fleet: HashMap<&str, (i64, std::result::Result<f64, String>)> = HashMap::new();
        let mut out = Vec::with_capacity(cands.len());
        for c in &cands {
            let p = c.policy;
            let key = execution_key(&p.name, c.alert.fingerprint(), c.alert.starts_at);
            let rid = request_id(&key);
            let target = match targets.get(p.name.as_str()).and_then(Option::as_ref) {
                None => c.alert.fingerprint_hex(),
                Some(t) => t
                    .render(&RenderCx {
                        alert: &c.alert,
                        policy: &p.name,
                        target: "",
                        request_id: &rid,
                        now_ms: c.at,
                    })
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| c.alert.fingerprint_hex()),
            };
            let mut d = Decision {
                at_ms: c.at,
                policy: p.name.clone(),
                alertname: c.alert.name().to_string(),
                fingerprint: c.alert.fingerprint(),
                alert_starts_at: c.alert.starts_at,
                target: target.clone(),
                outcome: String::new(),
                guard: String::new(),
                reason: String::new(),
            };
            let silenced = self
                .silences
                .map(|s| s.mutes(&c.alert.labels, c.at))
                .unwrap_or_default();
            if let Some(m) = &c.muted {
                d.outcome = "muted".into();
                d.reason = m.clone();
            } else if !silenced.is_empty() {
                d.outcome = "silenced".into();
                d.reason = format!("silenced by {}", silenced.join(", "));
            } else if let Some(s) = &c.skipped {
                d.outcome = "skipped".into();
                d.reason = s.clone();
            } else {
                let facts = self.facts(p, &c.alert, &target, &rid, c.at, &mut fleet);
                let g = guards.entry(p.name.as_str()).or_default();
                g.auto_reset(c.at);
                match g.admit(&p.guards, &target, c.at, &facts, false, p.trip_reset.ms()) {
                    Ok(()) => {
                        d.outcome = match p.mode {
                            Mode::Auto => "run",
                            Mode::DryRun => "dry_run",
                            Mode::Approve => "queued",
                        }
                        .into();
                    }
                    Err(s) => {
                        d.outcome = "suppressed".into();
                        d.guard = s.guard.as_str().into();
                        d.reason = s.reason;
                    }
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    fn facts<'p>(
        &self,
        p: &'p PolicyConfig,
        alert: &Alert,
        target: &str,
        rid: &str,
        at: i64,
        fleet: &mut HashMap<&'p str, (i64, std::result::Result<f64, String>)>,
    ) -> Facts {
        let mut f = Facts::default();
        let Some(q) = self.query else {
            let none = Err("no query source given (--server)".to_string());
            if p.guards.min_age.is_some() {
                f.age_s = Some(none.clone());
            }
            if p.guards.max_fraction.is_some() {
                f.fleet = Some(none);
            }
            return f;
        };
        if let (Some(_), Some(age)) = (p.guards.min_age, &p.guards.age) {
            f.age_s = Some(
                ActionTemplate::parse("guards.age", age)
                    .and_then(|t| {
                        t.render(&RenderCx {
                            alert,
                            policy: &p.name,
                            target,
                            request_id: rid,
                            now_ms: at,
                        })
                    })
                    .map_err(|e| e.to_string())
                    .and_then(|expr| one(q.instant(&expr, at), &expr)),
            );
        }
        if let (Some(_), Some(expr)) = (p.guards.max_fraction, &p.guards.fleet_size) {
            let hit = fleet
                .get(p.name.as_str())
                .filter(|(t, _)| (at - *t).abs() < 60_000)
                .map(|(_, v)| v.clone());
            let v = hit.unwrap_or_else(|| {
                let v = one(q.instant(expr, at), expr);
                fleet.insert(p.name.as_str(), (at, v.clone()));
                v
            });
            f.fleet = Some(v);
        }
        f
    }
}

fn one(
    r: std::result::Result<Vec<(Labels, f64)>, String>,
    expr: &str,
) -> std::result::Result<f64, String> {
    match r {
        Err(e) => Err(format!("query {expr:?} failed: {e}")),
        Ok(v) if v.len() == 1 => Ok(v[0].1),
        Ok(v) if v.is_empty() => Err(format!("query {expr:?} returned nothing")),
        Ok(v) => Err(format!(
            "query {expr:?} returned {} series; it must return one",
            v.len()
        )),
    }
}

/// Counts of outcomes by policy, for the summary.
pub fn summary(ds: &[Decision]) -> Vec<(String, Vec<(String, usize)>)> {
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<String, usize>> =
        Default::default();
    for d in ds {
        let key = if d.guard.is_empty() {
            d.outcome.clone()
        } else {
            format!("{} ({})", d.outcome, d.guard)
        };
        *m.entry(d.policy.clone())
            .or_default()
            .entry(key)
            .or_default() += 1;
    }
    m.into_iter()
        .map(|(p, c)| (p, c.into_iter().collect()))
        .collect()
}

#[cfg(test)]
#[path = "backtest_tests.rs"]
mod tests;
