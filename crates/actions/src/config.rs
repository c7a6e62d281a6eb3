//! The `actions:` section of tocsin.yml: remediation policies, their guards and modes, and the
//! action each runs. Parsing is serde with unknown fields refused; [`ActionsConfig::problems`]
//! reports every bad value as `(path, message)` with paths below `actions` so the server can
//! point at file:line:col.
//!
//! ```yaml
//! actions:
//!   policies:
//!     - name: delete-stuck-vm
//!       on: firing                 # or resolved
//!       mode: auto                 # auto | approve | dry_run
//!       target: '{{ $labels.instance_id }}'
//!       delay: 30s                 # act only if still firing after this
//!       timeout: 1m                # one attempt
//!       retry: {attempts: 3, backoff: 2s, max_backoff: 30s}
//!       approval_ttl: 1h           # mode approve
//!       verify: {within: 5m}       # expect the alert to resolve after a success
//!       guards:
//!         max_concurrent: 5
//!         rate: {limit: 20, window: 1h}
//!         cooldown: 30m            # per target
//!         max_fraction: 0.01       # of the fleet, per window
//!         fleet_size: 'count(count by (instance_id) (uptime_total))'
//!         max_targets: 50          # distinct targets per window
//!         window: 1h               # of max_fraction and max_targets
//!         min_age: 10m
//!         age: 'uptime_total{instance_id="{{ $labels.instance_id }}"}'
//!       trip_reset: 1h             # a tripped policy resets itself after this; 0: never
//!       gce_instance: {operation: delete}
//! ```

use serde::{Deserialize, Deserializer};

use crate::kinds::exec::ExecActionConfig;
use crate::kinds::gce_instance::GceInstanceConfig;
use crate::kinds::http::HttpActionConfig;
use crate::template::ActionTemplate;

/// A duration in milliseconds, written as Prometheus writes durations (`30s`, `1h30m`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub i64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        tocsin_model::duration::parse_duration_ms(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl Dur {
    pub fn ms(self) -> i64 {
        self.0
    }

    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionsConfig {
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum On {
    #[default]
    Firing,
    Resolved,
}

impl On {
    pub fn as_str(self) -> &'static str {
        match self {
            On::Firing => "firing",
            On::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Auto,
    Approve,
    DryRun,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::DryRun => "dry_run",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each, up to `max_backoff`.
    #[serde(default = "default_backoff")]
    pub backoff: Dur,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Dur,
}

fn default_attempts() -> u32 {
    3
}
fn default_backoff() -> Dur {
    Dur(1_000)
}
fn default_max_backoff() -> Dur {
    Dur(30_000)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: default_attempts(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    pub limit: u32,
    pub window: Dur,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// The alert must resolve within this after a successful action.
    pub within: Dur,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GuardsConfig {
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    #[serde(default)]
    pub rate: Option<RateConfig>,
    #[serde(default)]
    pub cooldown: Option<Dur>,
    #[serde(default)]
    pub max_fraction: Option<f64>,
    /// PromQL giving the fleet's size for `max_fraction` (a single number).
    #[serde(default)]
    pub fleet_size: Option<String>,
    #[serde(default)]
    pub max_targets: Option<u32>,
    /// The window of `max_fraction` and `max_targets`; default 1h.
    #[serde(default)]
    pub window: Option<Dur>,
    #[serde(default)]
    pub min_age: Option<Dur>,
    /// PromQL template giving the target's age in seconds, for `min_age`.
    #[serde(default)]
    pub age: Option<String>,
}

pub const DEFAULT_GUARD_WINDOW_MS: i64 = 3_600_000;

impl GuardsConfig {
    pub fn window_ms(&self) -> i64 {
        self.window.map_or(DEFAULT_GUARD_WINDOW_MS, Dur::ms)
    }

    /// Whether any guard limits how much the policy can do in a storm (rate, blast radius or
    /// concurrency); `cooldown` and `min_age` only protect one target.
    pub fn limits_volume(&self) -> bool {
        self.rate.is_some()
            || self.max_fraction.is_some()
            || self.max_targets.is_some()
            || self.max_concurrent.is_some()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(default)]
    pub on: On,
    #[serde(default)]
    pub mode: Mode,
    /// The target key (cooldown, max_targets, audit); default the alert's fingerprint.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub delay: Dur,
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub guards: GuardsConfig,
    /// A tripped policy resets itself this long after it tripped; 0: only by hand.
    #[serde(default)]
    pub trip_reset: Dur,
    #[serde(default = "default_approval_ttl")]
    pub approval_ttl: Dur,
    #[serde(default)]
    pub verify: Option<VerifyConfig>,
    #[serde(default)]
    pub http: Option<HttpActionConfig>,
    #[serde(default)]
    pub exec: Option<ExecActionConfig>,
    #[serde(default)]
    pub gce_instance: Option<GceInstanceConfig>,
}

fn default_timeout() -> Dur {
    Dur(60_000)
}
fn default_approval_ttl() -> Dur {
    Dur(3_600_000)
}

pub type Problem = (String, String);

impl ActionsConfig {
    /// Every problem of the section, as (path below `actions`, message). Kinds are built to
    /// check them (templates, credential files), so what loads here also runs.
    pub fn problems(&self, base_dir: &std::path::Path) -> Vec<Problem> {
        let mut p: Vec<Problem> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, pol) in self.policies.iter().enumerate() {
            let at = format!("actions.policies[{i}]");
            if pol.name.is_empty() {
                p.push((format!("{at}.name"), "a policy needs a name".into()));
            } else if !names.insert(pol.name.as_str()) {
                p.push((
                    format!("{at}.name"),
                    format!("policy {:?} is defined twice", pol.name),
                ));
            }
            pol.check(&at, &mut p);
            if let Err(e) = crate::kinds::build(pol, base_dir, &at) {
                p.push(split(&e.to_string(), &at));
            }
        }
        p
    }

    pub fn policy(&self, name: &str) -> Option<&PolicyConfig> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// `path: message` split, keeping `at` when the message carries no path of its own.
fn split(msg: &str, at: &str) -> Problem {
    match msg.split_once(": ") {
        Some((path, m)) if path.starts_with("actions.") && !path.contains(' ') => {
            (path.to_string(), m.to_string())
        }
        _ => (at.to_string(), msg.to_string()),
    }
}

impl PolicyConfig {
    fn check(&self, at: &str, p: &mut Vec<Problem>) {
        let mut bad = |field: &str, m: String| p.push((format!("{at}.{field}"), m));
        if let Some(t) = &self.target {
            if let Err(e) = ActionTemplate::parse(&format!("{at}.target"), t) {
                bad("target", strip(&e.to_string()));
            }
        }
        if self.delay.0 < 0 {
            bad("delay", "must not be negative".into());
        }
        if self.timeout.0 <= 0 {
            bad("timeout", "must be positive".into());
        }
        if self.retry.attempts == 0 {
            bad("retry.attempts", "must be at least 1".into());
        }
        if self.retry.backoff.0 < 0 || self.retry.max_backoff.0 < self.retry.backoff.0 {
            bad("retry.max_backoff", "must be at least retry.backoff".into());
        }
        if self.trip_reset.0 < 0 {
            bad("trip_reset", "must not be negative".into());
        }
        if self.approval_ttl.0 <= 0 {
            bad("approval_ttl", "must be positive".into());
        }
        if let Some(v) = &self.verify {
            if v.within.0 <= 0 {
                bad("verify.within", "must be positive".into());
            }
            if self.on == On::Resolved {
                bad(
                    "verify",
                    "verify expects the alert to resolve, so it needs on: firing".into(),
                );
            }
        }
        let g = &self.guards;
        if g.max_concurrent == Some(0) {
            bad("guards.max_concurrent", "must be at least 1".into());
        }
        if let Some(r) = &g.rate {
            if r.limit == 0 {
                bad("guards.rate.limit", "must be at least 1".into());
            }
            if r.window.0 <= 0 {
                bad("guards.rate.window", "must be positive".into());
            }
        }
        if g.cooldown.is_some_and(|c| c.0 <= 0) {
            bad("guards.cooldown", "must be positive".into());
        }
        if let Some(f) = g.max_fraction {
            if !(f > 0.0 && f <= 1.0) {
                bad(
                    "guards.max_fraction",
                    format!("must be above 0 and at most 1, not {f}"),
                );
            }
            if g.fleet_size.as_deref().unwrap_or("").trim().is_empty() {
                bad(
                    "guards.max_fraction",
                    "needs guards.fleet_size, the PromQL expression giving the fleet's size".into(),
                );
            }
        } else if g.fleet_size.is_some() {
            bad(
                "guards.fleet_size",
                "is only used by guards.max_fraction, which is not set".into(),
            );
        }
        if g.max_targets == Some(0) {
            bad("guards.max_targets", "must be at least 1".into());
        }
        if g.window.is_some_and(|w| w.0 <= 0) {
            bad("guards.window", "must be positive".into());
        }
        if let Some(m) = g.min_age {
            if m.0 <= 0 {
                bad("guards.min_age", "must be positive".into());
            }
            match g.age.as_deref() {
                None | Some("") => bad(
                    "guards.min_age",
                    "needs guards.age, the PromQL expression (templated) giving the target's age in seconds".into(),
                ),
                Some(a) => {
                    if let Err(e) = ActionTemplate::parse(&format!("{at}.guards.age"), a) {
                        bad("guards.age", strip(&e.to_string()));
                    }
                }
            }
        } else if g.age.is_some() {
            bad(
                "guards.age",
                "is only used by guards.min_age, which is not set".into(),
            );
        }
    }
}

/// A template error's message without the field path it starts with.
fn strip(msg: &str) -> String {
    msg.split_once(": ")
        .map_or(msg.to_string(), |(_, m)| m.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(y: &str) -> ActionsConfig {
        serde_norway::from_str(y).unwrap()
    }

    #[test]
    fn defaults() {
        let c = parse("policies:\n  - name: p\n    exec: {command: /bin/true}\n");
        let p = &c.policies[0];
        assert_eq!(p.on, On::Firing);
        assert_eq!(p.mode, Mode::Auto);
        assert_eq!(p.timeout, Dur(60_000));
        assert_eq!(p.retry, RetryConfig::default());
        assert_eq!(p.guards.window_ms(), 3_600_000);
    }

    #[test]
    fn bad_values_are_named_by_path() {
        let c = parse(
            "policies:
  - name: p
    timeout: 0s
    retry: {attempts: 0}
    guards:
      max_fraction: 2
      min_age: 10m
      rate: {limit: 0, window: 1m}
    exec: {command: /bin/true}
  - name: p
    exec: {command: /bin/true}
",
        );
        let got: Vec<String> = c
            .problems(std::path::Path::new("."))
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect();
        let want = [
            "actions.policies[0].timeout: must be positive",
            "actions.policies[0].retry.attempts: must be at least 1",
            "actions.policies[0].guards.max_fraction: must be above 0 and at most 1, not 2",
            "actions.policies[0].guards.rate.limit: must be at least 1",
            "actions.policies[1].name: policy \"p\" is defined twice",
        ];
        for w in want {
            assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
        }
        assert!(got
            .iter()
            .any(|g| g.starts_with("actions.policies[0].guards.min_age: needs guards.age")));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_norway::from_str::<ActionsConfig>("policies:\n  - name: p\n    gaurds: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gaurds"), "{e}");
    }
}
