//! The server's own routes and the process lifecycle: the probes (`/-/healthy`, `/-/ready`), the
//! self-metrics (`/metrics`), configuration reload (`/-/reload` and SIGHUP) and shutdown
//! (`/-/quit`, SIGTERM, SIGINT). `/-/reload` and `/-/quit` answer 403 unless the server runs with
//! `--web.enable-lifecycle`, as Prometheus's do; SIGHUP needs no flag. `route_table()` is the
//! whole application's route list (the API's and these), which the route tests read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tocsin_api::class::Class;
use tocsin_api::routes::{self, route as r, Route, RouteInfo, M};

use crate::{expo, AppState, Reloader};

/// Every route the server answers, with its method and intended class: the API's and the
/// server's own. The application is built from the same two tables, so it has no route this
/// list lacks.
pub fn route_table() -> Vec<RouteInfo> {
    let mut all = tocsin_api::routes();
    all.extend(routes::infos(&own_table()));
    all
}

fn own_table() -> Vec<Route<AppState>> {
    use Class::{Admin, Public, Read};
    use M::{Get, Head, Post, Put};
    vec![
        r("/-/healthy", Get, Public, healthy),
        r("/-/healthy", Head, Public, healthy),
        r("/-/ready", Get, Public, ready),
        r("/-/ready", Head, Public, ready),
        r("/metrics", Get, Read, expo::handler),
        r("/-/reload", Post, Admin, reload_handler),
        r("/-/reload", Put, Admin, reload_handler),
        r("/-/quit", Post, Admin, quit_handler),
        r("/-/quit", Put, Admin, quit_handler),
    ]
}

/// The server's own routes, with their state.
pub(crate) fn own_router(state: AppState) -> Router {
    routes::build(own_table()).with_state(state)
}

/// A shutdown asked for over HTTP; the run loop waits on it beside the signals.
pub(crate) struct Quit {
    requested: AtomicBool,
    tx: tokio::sync::watch::Sender<bool>,
}

impl Quit {
    pub(crate) fn new() -> Arc<Quit> {
        Arc::new(Quit {
            requested: AtomicBool::new(false),
            tx: tokio::sync::watch::channel(false).0,
        })
    }

    /// True for the first request only.
    fn request(&self) -> bool {
        let first = !self.requested.swap(true, Ordering::SeqCst);
        if first {
            self.tx.send_replace(true);
        }
        first
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// Prometheus's answer while the lifecycle endpoints are off.
fn lifecycle_disabled() -> Response {
    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response()
}

async fn reload_handler(State(st): State<AppState>) -> Response {
    if !st.lifecycle {
        return lifecycle_disabled();
    }
    match st.reloader.reload().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

/// Graceful shutdown, as SIGTERM: the answer goes out before the listener closes, since
/// in-flight requests finish.
async fn quit_handler(State(st): State<AppState>) -> Response {
    if !st.lifecycle {
        return lifecycle_disabled();
    }
    if st.quit.request() {
        tracing::info!("shutdown requested over HTTP (/-/quit)");
        (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
    } else {
        (StatusCode::OK, "Termination already in progress.").into_response()
    }
}

pub(crate) async fn sighup_loop(reloader: Arc<Reloader>) {
    let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while s.recv().await.is_some() {
        tracing::info!("SIGHUP received; reloading the configuration");
        let _ = reloader.reload().await;
    }
}

async fn healthy() -> &'static str {
    "Tocsin is Healthy.\n"
}

async fn ready(State(st): State<AppState>) -> Response {
    if st.db.get().is_some() {
        (StatusCode::OK, "Tocsin is Ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: WAL replay in progress\n",
        )
            .into_response()
    }
}

/// Resolves on SIGTERM, SIGINT or `/-/quit`.
pub(crate) async fn shutdown_signal(quit: Arc<Quit>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let mut rx = quit.subscribe();
    let http = async move {
        // An error means the sender is gone, which never happens while the server runs.
        if rx.wait_for(|q| *q).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received; stopping"),
        _ = term => tracing::info!("shutdown signal received; stopping"),
        _ = http => tracing::info!("stopping as asked over HTTP"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_routes_are_classified_as_declared() {
        for r in routes::infos(&own_table()) {
            assert_eq!(
                tocsin_api::class::classify(&r.method.method(), r.path),
                r.class,
                "{r:?}"
            );
        }
    }

    #[test]
    fn quit_is_requested_once() {
        let q = Quit::new();
        let rx = q.subscribe();
        assert!(q.request());
        assert!(!q.request());
        assert!(*rx.borrow());
    }
}
