//! HTTP handlers, translation only: requests are decoded, handed to the seams (`Appendable` for
//! writes) and answered in the peers' formats. Error kinds map to HTTP codes in `error.rs`.

pub mod admin;
pub mod error;
pub mod push;
pub mod targets;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tocsin_collect::scrape::TargetsView;
use tocsin_storage::{Appendable, Deletable};

pub use error::{ApiError, Error, Result};
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
}

/// Largest compressed request body accepted on write endpoints.
pub const MAX_WRITE_BODY: usize = 64 << 20;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/targets", get(targets::targets))
        .route("/write", post(push::influx_write_v1))
        .route("/api/v2/write", post(push::influx_write_v2))
        .route("/ping", get(push::ping).head(push::ping))
        .route("/query", get(push::influx_query).post(push::influx_query))
        .route("/api/v1/push", post(push::json_push))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        )
        .layer(DefaultBodyLimit::max(MAX_WRITE_BODY))
        .with_state(state)
}
