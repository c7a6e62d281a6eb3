//! Remediation actions: policies (tocsin.yml's `actions:` section) reached through the alert
//! manager's receivers (`action_configs: [{policy: NAME}]`), so routing, grouping, silences,
//! inhibition and time intervals apply to them. Each alert of a flushed group triggers its
//! policy once: every execution has a key (policy, alert fingerprint, alert start) whose
//! intent is written to the journal in state.db before the call and whose outcome after it.
//! Guards (concurrency, rate, cooldown, blast radius, minimum age) stop runaways; modes run,
//! queue for approval or only record (dry run); kinds live in `kinds/<kind>.rs`.

pub mod backtest;
mod builtin;
pub mod config;
mod control;
mod decide;
pub mod engine;
pub mod error;
mod execute;
pub mod guards;
pub mod journal;
pub mod kinds;
pub mod metrics;
pub mod notifier;
mod resume;
mod shared;
pub mod template;

pub use config::{ActionsConfig, Mode, On, PolicyConfig};
pub use engine::{AlertBridge, Engine, EngineOptions, Query};
pub use error::{Error, Result};
pub use notifier::ActionNotifier;
