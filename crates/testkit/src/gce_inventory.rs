//! `GceInventory`: Compute Engine's `instances.list`
//! (`GET /compute/v1/projects/{p}/zones/{z}/instances`, paged with `maxResults` and
//! `pageToken`) answered from a [`FakeGcp`]'s instances, on a loopback port of its own. The fake
//! serves only the calls Tocsin makes; the fleet simulator (`tocsin bench fleet
//! --compute-url`) also needs to see which VMs are gone, and asks this.
//!
//! The fake has no way to list a zone, so the inventory is told every instance the test
//! created and asks the fake whether each still exists.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::fake_gcp::FakeGcp;

struct Inv {
    fake: Arc<FakeGcp>,
    /// (project, zone, name), in creation order.
    known: Vec<(String, String, String)>,
}

pub struct GceInventory {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GceInventory {
    pub fn start(fake: Arc<FakeGcp>, known: Vec<(String, String, String)>) -> GceInventory {
        let inv = Arc::new(Inv { fake, known });
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .unwrap_or_else(|e| panic!("listener: {e}"));
                let app = axum::Router::new()
                    .route(
                        "/compute/v1/projects/{project}/zones/{zone}/instances",
                        axum::routing::get(list),
                    )
                    .with_state(inv);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_background();
        });
        GceInventory {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, the `--compute-url` of the simulator.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for GceInventory {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn list(
    State(inv): State<Arc<Inv>>,
    Path((project, zone)): Path<(String, String)>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let max = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(500usize)
        .clamp(1, 500);
    let skip: usize = match q.get("pageToken").map(|t| t.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"code": 400, "message": "Invalid page token"}})),
            )
                .into_response()
        }
    };
    let all: Vec<serde_json::Value> = inv
        .known
        .iter()
        .filter(|(p, z, _)| *p == project && *z == zone)
        .filter_map(|(p, z, n)| {
            inv.fake.instance_status(p, z, n).map(|st| {
                json!({"kind": "compute#instance", "name": n, "status": st,
                       "zone": format!("projects/{p}/zones/{z}")})
            })
        })
        .collect();
    let items: Vec<_> = all.iter().skip(skip).take(max).cloned().collect();
    let mut body = json!({"kind": "compute#instanceList", "items": items});
    if skip + max < all.len() {
        body["nextPageToken"] = json!((skip + max).to_string());
    }
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_a_zone_in_pages() {
        let fake = Arc::new(FakeGcp::start());
        let mut known = Vec::new();
        for n in ["a", "b", "c"] {
            fake.add_instance("p", "z1", n);
            known.push(("p".to_string(), "z1".to_string(), n.to_string()));
        }
        fake.add_instance("p", "z2", "d");
        known.push(("p".into(), "z2".into(), "d".into()));
        let inv = GceInventory::start(fake, known);
        let get = |q: &str| -> serde_json::Value {
            reqwest::blocking::get(format!(
                "{}/compute/v1/projects/p/zones/z1/instances{q}",
                inv.url()
            ))
            .unwrap()
            .text()
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap()
        };
        let names = |v: &serde_json::Value| -> Vec<String> {
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect()
        };
        let first = get("?maxResults=2");
        assert_eq!(names(&first), ["a", "b"]);
        let tok = first["nextPageToken"].as_str().unwrap();
        let second = get(&format!("?maxResults=2&pageToken={tok}"));
        assert_eq!(names(&second), ["c"]);
        assert!(second.get("nextPageToken").is_none());
        assert_eq!(names(&get("")), ["a", "b", "c"]);
    }
}
