//! HTTP handlers, translation only: requests are decoded, handed to the seams (`Appendable` for
//! writes, `Queryable` and the PromQL engine for reads, read-view traits for status) and answered
//! in the peers' formats. Error kinds map to HTTP codes in `error.rs`.

pub mod admin;
pub mod am;
pub mod class;
pub mod error;
pub mod prom;
pub mod push;
pub mod targets;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tocsin_collect::scrape::{MetadataView, TargetsView};
use tocsin_storage::{Appendable, Deletable, Queryable};

pub use error::{ApiError, Error, Result};
pub use prom::{NoRules, QueryState, RulesView, StatusView, TsdbStatsView};
pub use push::PushMetrics;
pub use write::WriteMetrics;

/// What the handlers need; the server fills it in.
#[derive(Clone)]
pub struct ApiState {
    pub appendable: Arc<dyn Appendable>,
    pub write_metrics: Arc<WriteMetrics>,
    pub push_metrics: Arc<PushMetrics>,
    pub deletable: Arc<dyn Deletable>,
    pub targets: Arc<dyn TargetsView>,
    pub queryable: Arc<dyn Queryable>,
    /// Engine settings and the concurrency gate.
    pub query: Arc<QueryState>,
    pub metadata: Arc<dyn MetadataView>,
    pub tsdb_stats: Arc<dyn TsdbStatsView>,
    pub status: Arc<dyn StatusView>,
    pub rules: Arc<dyn RulesView>,
    pub alertmanager: Arc<dyn am::AlertmanagerApi>,
}

/// Largest compressed request body accepted on write endpoints.
pub const MAX_WRITE_BODY: usize = 64 << 20;

pub fn router(state: ApiState) -> Router {
    use prom::{federate, meta, query, status};
    Router::new()
        .route("/api/v1/query", get(query::query).post(query::query))
        .route(
            "/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route("/api/v1/series", get(meta::series).post(meta::series))
        .route("/api/v1/labels", get(meta::labels).post(meta::labels))
        .route("/api/v1/label/{name}/values", get(meta::label_values))
        .route("/api/v1/metadata", get(meta::metadata))
        .route(
            "/api/v1/rules",
            get(prom::rules::rules).post(prom::rules::rules),
        )
        .route("/api/v1/alerts", get(prom::rules::alerts))
        .route("/api/v1/alertmanagers", get(prom::rules::alertmanagers))
        .route("/api/v1/alerts/history", get(am::history))
        .route("/api/v2/alerts", get(am::get_alerts).post(am::post_alerts))
        .route("/api/v2/alerts/groups", get(am::get_groups))
        .route(
            "/api/v2/silences",
            get(am::get_silences).post(am::post_silences),
        )
        .route(
            "/api/v2/silence/{id}",
            get(am::get_silence).delete(am::delete_silence),
        )
        .route("/api/v2/status", get(am::get_status))
        .route("/api/v2/receivers", get(am::get_receivers))
        .route("/api/v1/heartbeat/{name}", post(am::post_heartbeat))
        .route("/api/v1/heartbeats", get(am::get_heartbeats))
        .route("/api/v1/status/buildinfo", get(status::buildinfo))
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/federate", get(federate::federate))
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/targets", get(targets::targets))
        .route("/write", post(push::influx_write_v1))
        .route("/api/v2/write", post(push::influx_write_v2))
        .route("/ping", get(push::ping).head(push::ping))
        .route("/query", get(push::influx_query).post(push::influx_query))
        .route("/api/v1/push", post(push::json_push))
        .route(
            "/v3/projects/{project}/timeSeries",
            post(push::create_time_series),
        )
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        )
        .layer(DefaultBodyLimit::max(MAX_WRITE_BODY))
        .with_state(state)
}
