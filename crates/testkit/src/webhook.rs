//! `WebhookCollector`: a loopback HTTP server that records every request (method, path, headers,
//! body, arrival time) and answers with a settable status, for tests of anything that sends
//! notifications: Alertmanager clients, webhook receivers, heartbeat pings.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wall-clock arrival, for latency figures.
    pub at: SystemTime,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    status: u16,
    requests: Vec<Recorded>,
    /// How long answers are held back (a far side that is slow, or a call to catch in flight).
    hold: Option<Duration>,
}

pub struct WebhookCollector {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _server: crate::loopback::Loopback,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WebhookCollector {
    pub fn start() -> WebhookCollector {
        let shared = Arc::new(Mutex::new(Shared {
            status: 200,
            requests: Vec::new(),
            hold: None,
        }));
        let sh = shared.clone();
        let server = crate::loopback::Loopback::start(move |sock| {
            let sh = sh.clone();
            async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let sh = sh.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        let rec = Recorded {
                            method: parts.method.to_string(),
                            path: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| {
                                    (
                                        n.as_str().to_ascii_lowercase(),
                                        v.to_str().unwrap_or("").to_string(),
                                    )
                                })
                                .collect(),
                            body,
                            at: SystemTime::now(),
                        };
                        let (status, hold) = {
                            let mut g = lock(&sh);
                            g.requests.push(rec);
                            (g.status, g.hold)
                        };
                        if let Some(h) = hold {
                            tokio::time::sleep(h).await;
                        }
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(sock), svc).await;
            }
        });
        WebhookCollector {
            shared,
            addr: server.addr,
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The status later requests are answered with.
    pub fn set_status(&self, status: u16) {
        lock(&self.shared).status = status;
    }

    /// Holds every answer back this long (the request is recorded when it arrives).
    pub fn set_hold(&self, hold: Option<Duration>) {
        lock(&self.shared).hold = hold;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    pub fn clear(&self) {
        lock(&self.shared).requests.clear();
    }

    /// Polls until `pred` holds over the requests so far, or panics after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if pred(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {} requests so far: {:?}",
                r.len(),
                r.iter()
                    .map(|x| format!(
                        "{} {} {}",
                        x.method,
                        x.path,
                        String::from_utf8_lossy(&x.body)
                    ))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
