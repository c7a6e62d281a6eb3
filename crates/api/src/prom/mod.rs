//! Prometheus's HTTP query API (`/api/v1/query`, `query_range`, `series`, `labels`, `label/<name>/values`,
//! `metadata`, `query_exemplars`, `format_query`, `status/*`) and `/federate`, in Prometheus's
//! response shapes. Every endpoint takes its parameters from the URL or a form-encoded POST body.
//! Handlers see storage only through `Queryable`, metadata through `MetadataView`, and the server's
//! state through the views in [`views`].

pub mod encode;
pub mod federate;
pub mod meta;
pub mod params;
pub mod query;
pub mod read;
pub mod rules;
pub mod status;
pub mod views;

#[cfg(test)]
mod tests;

pub use encode::PromError;
pub use query::QueryState;
pub use rules::{NoRules, RulesView};
pub use views::{HeadStatus, NoStatus, RuntimeInfo, StatusView, TsdbStatsView, TsdbStatus};
