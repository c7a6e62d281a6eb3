//! The HTTP accept loop. It replaces `axum::serve` to hold the connection limits: at most
//! `web.max_connections` open at once (more are closed as soon as they are accepted, counted in
//! `tocsin_http_connections_refused_total` and logged once per burst), a client that does not
//! finish its request headers within `web.header_read_timeout` is disconnected (this also closes
//! idle keep-alive connections, which wait for the next request's headers), and headers larger
//! than `web.max_header_size` are answered 431. HTTP/1.1 only (see `builder`). On stop, the listener closes, idle connections
//! are closed and in-flight requests finish. With TLS in the web config file, each connection's
//! handshake runs in its own task, bounded by the same header-read timeout, under the same
//! connection limit; the peer address goes into each request (`ConnectInfo`) for the auth layer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::limits::WebSettings;
use crate::metrics::ServerMetrics;
use crate::web::WebRuntime;

/// Decrements the open-connections gauge when a connection's task ends, however it ends.
struct Open(Arc<ServerMetrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// HTTP/1.1 only, as Prometheus serves without TLS. hyper-util's HTTP/1-or-2 detection reads the
/// first bytes before any timer runs, so a client that connects and sends nothing would hold its
/// connection forever; plain HTTP/1 starts the header timer at once.
fn builder(web: &WebSettings) -> Builder {
    let mut b = Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(web.header_read_timeout)
        .max_header_size(web.max_header_bytes);
    b
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    web: WebSettings,
    metrics: Arc<ServerMetrics>,
    tls: Arc<WebRuntime>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let handshake_timeout = web.header_read_timeout;
    let builder = builder(&web);
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    // True from the first refused connection until one is accepted again: one log line a burst.
    let mut refusing = false;
    loop {
        let (stream, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: the error is per connection, and
                    // retrying at once would spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        if metrics.connections_open.load(Ordering::Relaxed) >= web.max_connections as u64 {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            if !refusing {
                refusing = true;
                tracing::warn!(
                    %peer,
                    max_connections = web.max_connections,
                    "connection limit reached (web.max_connections); new connections are closed \
                     until some end (counted in tocsin_http_connections_refused_total)"
                );
            }
            drop(stream);
            continue;
        }
        if refusing {
            refusing = false;
            tracing::info!("below the connection limit again; accepting connections");
        }
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let open = Open(metrics.clone());
        let _ = stream.set_nodelay(true);
        let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        ));
        let watcher = graceful.watcher();
        let builder = builder.clone();
        // Looked up per connection: a reloaded web config or a rotated certificate applies to
        // the next handshake.
        let tls = tls.current().tls.clone();
        tokio::spawn(async move {
            let res = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), svc))
                        .await
                }
                Some(cfg) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    let io = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(io)) => io,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(io), svc))
                        .await
                }
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
