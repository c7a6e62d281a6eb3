//! HTTP handlers, translation only: requests are decoded, handed to the seams (`Appendable` for
//! writes) and answered in the peers' formats. Error kinds map to HTTP codes in `error.rs`.

pub mod admin;
pub mod error;
pub mod targets;
pub mod write;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tocsin_collect::scrape::TargetsView;
use tocsin_storage::{Appendable, Deletable};

pub use error::{ApiError, Error, Result};
pub use write::WriteMetrics;

/// What the handlers need; the server fills it in.
#[derive(Clone)]
pub struct ApiState {
    pub appendable: Arc<dyn Appendable>,
    pub write_metrics: Arc<WriteMetrics>,
    pub deletable: Arc<dyn Deletable>,
    pub targets: Arc<dyn TargetsView>,
}

/// Largest compressed request body accepted on write endpoints.
pub const MAX_WRITE_BODY: usize = 64 << 20;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/targets", get(targets::targets))
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(admin::delete_series).put(admin::delete_series),
        )
        .layer(DefaultBodyLimit::max(MAX_WRITE_BODY))
        .with_state(state)
}
