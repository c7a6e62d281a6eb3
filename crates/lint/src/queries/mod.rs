//! Query modules: the only code that reads inputs (files now, a live source next). Each is built
//! once per run by [`crate::Context`] and shared by every rule.

pub mod config_load;
pub mod config_yaml;
pub mod live_rules;
pub mod live_server;
pub mod metadata;
pub mod par;
pub mod positions;
pub mod routing;
pub mod rule_files;
pub mod source_text;
pub mod suppress;
