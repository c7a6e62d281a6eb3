//! The alert manager: alerts arrive (from the rule engine or `POST /api/v2/alerts`), are deduplicated
//! by fingerprint, routed by labels through Alertmanager's route tree, grouped, muted by silences,
//! inhibition and time intervals, and handed to receivers (`notify/<kind>.rs`) through a pipeline that
//! retries and records what was sent in a notification log that survives restarts.
//! Acknowledgements, shelves and notes (`marks`), each alert's timeline (`timeline`) and
//! heartbeats (the dead-man's switch, both ways) live here too.

pub mod config;
mod config_receivers;
pub mod console;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod ha;
pub mod heartbeat;
pub mod inhibit;
pub mod manager;
pub mod marks;
pub mod matchers;
pub mod nflog;
pub mod notify;
mod pipeline;
pub mod process;
pub mod pubsub_log;
pub mod route;
pub mod silence;
pub mod state;
pub mod store;
pub mod timeinterval;
pub mod timeline;
pub mod tmpl;

pub use config::AmConfig;
pub use error::{Error, Result};
pub use manager::{
    parse_fingerprint, AlertDetail, AlertFilter, AlertManager, AlertState, AlertStatus, AlertView,
    GroupView, ManagerOptions, ManagerStats,
};
pub use marks::{Ack, Shelve};
pub use timeline::TimelineEvent;
