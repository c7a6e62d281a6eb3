//! A TCP server on 127.0.0.1 with a thread and runtime of its own, stopped and joined when
//! dropped: the skeleton every stand-in for a far side in testkit shares (webhook collector,
//! exposition server, SMTP server). Each accepted connection is served on a task of its own.

use std::future::Future;
use std::net::SocketAddr;

pub struct Loopback {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Listens on a free port and hands every connection to `serve`.
    pub fn start<F, Fut>(serve: F) -> Loopback
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        std_listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let addr = std_listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"));
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)
                    .unwrap_or_else(|e| panic!("listener: {e}"));
                loop {
                    let conn = tokio::select! {
                        c = listener.accept() => c,
                        _ = &mut stop_rx => return,
                    };
                    let Ok((sock, _)) = conn else { continue };
                    tokio::spawn(serve(sock));
                }
            });
        });
        Loopback {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
