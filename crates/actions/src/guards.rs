//! The guards of one policy as a state machine over time, shared by the engine and the
//! backtest so both decide alike: what ran recently (rate, distinct targets, blast radius),
//! per-target cooldown, what is in flight, and whether the policy is tripped.
//!
//! Guards that protect the fleet (`max_concurrent`, `rate`, `max_targets`, `max_fraction`) trip
//! the policy when they stop an action: every later action is suppressed until the policy is
//! reset by hand or `trip_reset` passes, because a storm that reached a limit is a reason to
//! stop, not to carry on at the limit's pace. Guards about one target (`cooldown`,
//! `min_age`) only suppress that action.

use std::collections::{HashMap, VecDeque};

use crate::config::GuardsConfig;

/// Which guard stopped an action; the `guard` label of the suppressed metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Guard {
    /// The policy was already tripped (by the guard recorded at the time).
    Tripped,
    MaxConcurrent,
    Rate,
    Cooldown,
    MaxFraction,
    MaxTargets,
    MinAge,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Tripped => "tripped",
            Guard::MaxConcurrent => "max_concurrent",
            Guard::Rate => "rate",
            Guard::Cooldown => "cooldown",
            Guard::MaxFraction => "max_fraction",
            Guard::MaxTargets => "max_targets",
            Guard::MinAge => "min_age",
        }
    }

    pub fn parse(s: &str) -> Option<Guard> {
        Some(match s {
            "tripped" => Guard::Tripped,
            "max_concurrent" => Guard::MaxConcurrent,
            "rate" => Guard::Rate,
            "cooldown" => Guard::Cooldown,
            "max_fraction" => Guard::MaxFraction,
            "max_targets" => Guard::MaxTargets,
            "min_age" => Guard::MinAge,
            _ => return None,
        })
    }

    /// Whether stopping an action with this guard trips the whole policy.
    pub fn trips(self) -> bool {
        matches!(
            self,
            Guard::MaxConcurrent | Guard::Rate | Guard::MaxFraction | Guard::MaxTargets
        )
    }
}

/// Why an action was not run.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    pub guard: Guard,
    pub reason: String,
}

/// The tripped state of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub guard: Guard,
    pub reason: String,
    pub at_ms: i64,
    /// When it resets itself; 0: only by hand.
    pub reset_at_ms: i64,
}

/// Facts about the action being decided that come from outside (queries).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The target's age in seconds (`guards.age`), when `min_age` is set: `Err` says why it is
    /// not known (the query failed or matched nothing).
    pub age_s: Option<Result<f64, String>>,
    /// The fleet's size (`guards.fleet_size`), when `max_fraction` is set.
    pub fleet: Option<Result<f64, String>>,
}

/// Counters of one policy, as the policies API shows them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Counters {
    pub in_flight: u32,
    /// Actions run (or, in dry run, that would have run) within the rate window.
    pub in_rate_window: usize,
    /// Distinct targets acted on within the blast-radius window.
    pub targets_in_window: usize,
}

#[derive(Debug, Clone, Default)]
pub struct PolicyGuards {
    /// When actions ran, with their target, oldest first (kept for the longest window).
    ran: VecDeque<(i64, String)>,
    /// Last time each target was acted on (cooldown).
    last_by_target: HashMap<String, i64>,
    in_flight: u32,
    trip: Option<Trip>,
}

impl PolicyGuards {
    pub fn trip(&self) -> Option<&Trip> {
        self.trip.as_ref()
    }

    /// Restores the tripped state read from the journal.
    pub fn set_trip(&mut self, t: Option<Trip>) {
        self.trip = t;
    }

    /// Restores one past action read from the journal.
    pub fn restore_ran(&mut self, at_ms: i64, target: &str) {
        self.ran.push_back((at_ms, target.to_string()));
        let e = self
            .last_by_target
            .entry(target.to_string())
            .or_insert(at_ms);
        *e = (*e).max(at_ms);
    }

    /// Sorts restored history (the journal may give it in any order).
    pub fn finish_restore(&mut self) {
        self.ran.make_contiguous().sort_by_key(|(t, _)| *t);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Clears the trip if its `trip_reset` time has come; true when it did.
    pub fn auto_reset(&mut self, now_ms: i64) -> bool {
        match &self.trip {
            Some(t) if t.reset_at_ms > 0 && now_ms >= t.reset_at_ms => {
                self.trip = None;
                true
            }
            _ => false,
        }
    }

    /// Clears the trip by hand; the trip that was cleared.
    pub fn reset(&mut self) -> Option<Trip> {
        self.trip.take()
    }

    fn prune(&mut self, cfg: &GuardsConfig, now_ms: i64) {
        let keep = longest_window(cfg);
        while self
            .ran
            .front()
            .is_some_and(|(t, _)| *t <= now_ms.saturating_sub(keep))
        {
            self.ran.pop_front();
        }
        if let Some(c) = cfg.cooldown {
            if self.last_by_target.len() > 4096 {
                self.last_by_target
                    .retain(|_, t| *t > now_ms.saturating_sub(c.ms()));
            }
        } else {
            self.last_by_target.clear();
        }
    }

    pub fn counters(&self, cfg: &GuardsConfig, now_ms: i64) -> Counters {
        let rate_window = cfg.rate.map_or(0, |r| r.window.ms());
        let w = cfg.window_ms();
        Counters {
            in_flight: self.in_flight,
            in_rate_window: self
                .ran
                .iter()
                .filter(|(t, _)| *t > now_ms - rate_window)
                .count(),
            targets_in_window: self.targets_since(now_ms - w, None),
        }
    }

    /// Distinct targets acted on after `since`, counting `extra` as one more if new.
    fn targets_since(&self, since: i64, extra: Option<&str>) -> usize {
        let mut set: std::collections::HashSet<&str> = self
            .ran
            .iter()
            .filter(|(t, _)| *t > since)
            .map(|(_, k)| k.as_str())
            .collect();
        if let Some(e) = extra {
            set.insert(e);
        }
        set.len()
    }

    /// Decides whether an action on `target` may run at `now_ms`. On success the action is
    /// counted (rate, targets, cooldown; in flight when `runs`), so a caller that gets `Ok`
    /// must call [`finished`](Self::finished) when a running action ends. A refusal by a
    /// guard that trips trips the policy (`trip_reset_ms` after now, 0: never by itself).
    pub fn admit(
        &mut self,
        cfg: &GuardsConfig,
        target: &str,
        now_ms: i64,
        facts: &Facts,
        runs: bool,
        trip_reset_ms: i64,
    ) -> Result<(), Suppression> {
        self.prune(cfg, now_ms);
        if let Some(t) = &self.trip {
            return Err(Suppression {
                guard: Guard::Tripped,
                reason: format!(
                    "policy tripped by {} at {}: {}",
                    t.guard.as_str(),
                    fmt_ms(t.at_ms),
                    t.reason
                ),
            });
        }
        let res = self.check(cfg, target, now_ms, facts);
        match res {
            Ok(()) => {
                self.ran.push_back((now_ms, target.to_string()));
                if cfg.cooldown.is_some() {
                    self.last_by_target.insert(target.to_string(), now_ms);
                }
                if runs {
                    self.in_flight += 1;
                }
                Ok(())
            }
            Err(s) => {
                if s.guard.trips() {
                    self.trip = Some(Trip {
                        guard: s.guard,
                        reason: s.reason.clone(),
                        at_ms: now_ms,
                        reset_at_ms: if trip_reset_ms > 0 {
                            now_ms.saturating_add(trip_reset_ms)
                        } else {
                            0
                        },
                    });
                }
                Err(s)
            }
        }
    }

    /// Counts an approved action in flight (its guards were checked when it was queued).
    pub fn start_approved(&mut self) {
        self.in_flight += 1;
    }

    /// A running action ended.
    pub fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn check(
        &self,
        cfg: &GuardsConfig,
        target: &str,
        now_ms: i64,
        facts: &Facts,
    ) -> Result<(), Suppression> {
        let no = |guard: Guard, reason: String| Err(Suppression { guard, reason });
        if let Some(c) = cfg.cooldown {
            if let Some(last) = self.last_by_target.get(target) {
                if *last > now_ms - c.ms() {
                    return no(
                        Guard::Cooldown,
                        format!(
                            "target {target:?} was acted on at {}, within the cooldown of {}",
                            fmt_ms(*last),
                            fmt_dur(c.ms())
                        ),
                    );
                }
            }
        }
        if let Some(min) = cfg.min_age {
            match &facts.age_s {
                Some(Ok(age)) if *age * 1000.0 >= min.ms() as f64 => {}
                Some(Ok(age)) => {
                    return no(
                        Guard::MinAge,
                        format!(
                            "target {target:?} is {}, younger than min_age {}",
                            fmt_dur((*age * 1000.0) as i64),
                            fmt_dur(min.ms())
                        ),
                    )
                }
                Some(Err(e)) => {
                    return no(
                        Guard::MinAge,
                        format!("age of target {target:?} unknown: {e}"),
                    )
                }
                None => return no(Guard::MinAge, format!("age of target {target:?} unknown")),
            }
        }
        if let Some(m) = cfg.max_concurrent {
            if self.in_flight >= m {
                return no(
                    Guard::MaxConcurrent,
                    format!(
                        "{} actions already running (max_concurrent {m})",
                        self.in_flight
                    ),
                );
            }
        }
        if let Some(r) = cfg.rate {
            let n = self
                .ran
                .iter()
                .filter(|(t, _)| *t > now_ms - r.window.ms())
                .count();
            if n >= r.limit as usize {
                return no(
                    Guard::Rate,
                    format!(
                        "{n} actions in the last {} (rate limit {} per {})",
                        fmt_dur(r.window.ms()),
                        r.limit,
                        fmt_dur(r.window.ms())
                    ),
                );
            }
        }
        let w = cfg.window_ms();
        if let Some(m) = cfg.max_targets {
            let n = self.targets_since(now_ms - w, Some(target));
            if n > m as usize {
                return no(
                    Guard::MaxTargets,
                    format!(
                        "{n} distinct targets in the last {} would exceed max_targets {m}",
                        fmt_dur(w)
                    ),
                );
            }
        }
        if let Some(f) = cfg.max_fraction {
            let fleet = match &facts.fleet {
                Some(Ok(n)) if n.is_finite() && *n > 0.0 => *n,
                Some(Ok(n)) => {
                    return no(
                        Guard::MaxFraction,
                        format!("fleet size is {n}; the blast radius cannot be bounded"),
                    )
                }
                Some(Err(e)) => return no(Guard::MaxFraction, format!("fleet size unknown: {e}")),
                None => return no(Guard::MaxFraction, "fleet size unknown".into()),
            };
            let n = self.targets_since(now_ms - w, Some(target));
            if n as f64 > f * fleet {
                return no(
                    Guard::MaxFraction,
                    format!(
                        "{n} distinct targets in the last {} is more than {} of a fleet of {fleet} ({} targets)",
                        fmt_dur(w),
                        fmt_fraction(f),
                        (f * fleet).floor()
                    ),
                );
            }
        }
        Ok(())
    }
}

fn longest_window(cfg: &GuardsConfig) -> i64 {
    cfg.rate.map_or(0, |r| r.window.ms()).max(cfg.window_ms())
}

fn fmt_fraction(f: f64) -> String {
    format!("{}%", (f * 10_000.0).round() / 100.0)
}

/// Prometheus's duration notation (`1h30m`), for messages.
pub fn fmt_dur(ms: i64) -> String {
    tocsin_model::duration::format_duration_ms(ms)
}

/// RFC 3339 in UTC, for messages.
pub fn fmt_ms(ms: i64) -> String {
    tocsin_model::time::format_rfc3339_ms(ms)
}

#[cfg(test)]
#[path = "guards_tests.rs"]
mod tests;
