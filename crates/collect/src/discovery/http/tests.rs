//! http_sd tests against a loopback HTTP server whose answer the test changes as it goes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

#[derive(Clone)]
struct Answer {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

/// A one-request-per-connection HTTP/1.1 server on 127.0.0.1 that records the request heads.
struct Server {
    url: String,
    answer: Arc<Mutex<Answer>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(body: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sd", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new(Answer {
            status: "200 OK",
            content_type: "application/json; charset=utf-8",
            body: body.to_string(),
        }));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (Arc::clone(&answer), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (a, r) = (Arc::clone(&a), Arc::clone(&r));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    r.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf).into_owned());
                    let ans = a.lock().unwrap().clone();
                    let resp = format!(
                        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        ans.status,
                        ans.content_type,
                        ans.body.len(),
                        ans.body
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self {
            url,
            answer,
            requests,
        }
    }

    fn set(&self, status: &'static str, content_type: &'static str, body: &str) {
        *self.answer.lock().unwrap() = Answer {
            status,
            content_type,
            body: body.to_string(),
        };
    }

    fn last_request(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn config(yaml: &str) -> HttpSdConfig {
    let c: HttpSdConfig = serde_norway::from_str(yaml).unwrap();
    c.validate().unwrap();
    c
}

fn start(
    cfg: &HttpSdConfig,
) -> (
    mpsc::Receiver<Vec<TargetGroup>>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(16);
    let (stop, stop_rx) = watch::channel(false);
    let d = HttpDiscoverer::new(cfg).unwrap();
    (rx, stop, tokio::spawn(Box::new(d).run(tx, stop_rx)))
}

async fn next(rx: &mut mpsc::Receiver<Vec<TargetGroup>>) -> Vec<TargetGroup> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no update within 10s")
        .expect("discoverer ended")
}

const TWO_GROUPS: &str =
    r#"[{"targets": ["a:1", "b:1"], "labels": {"env": "prod"}}, {"targets": ["c:1"]}]"#;

#[tokio::test]
async fn fetches_groups_with_url_label_and_basic_auth() {
    let srv = Server::start(TWO_GROUPS).await;
    let cfg = config(&format!(
        "url: {}\nrefresh_interval: 1h\nbasic_auth: {{username: user, password: pass}}",
        srv.url
    ));
    let (mut rx, stop, task) = start(&cfg);
    let groups = next(&mut rx).await;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].source, format!("{}:0", srv.url));
    assert_eq!(groups[0].targets[1]["__address__"], "b:1");
    assert_eq!(groups[0].labels["env"], "prod");
    assert_eq!(groups[0].labels["__meta_url"], srv.url);
    assert_eq!(groups[1].source, format!("{}:1", srv.url));
    let req = srv.last_request().to_ascii_lowercase();
    assert!(req.starts_with("get /sd http/1.1"), "{req}");
    // base64("user:pass")
    assert!(req.contains("authorization: basic dxnlcjpwyxnz"), "{req}");
    assert!(
        req.contains("x-prometheus-refresh-interval-seconds: 3600"),
        "{req}"
    );
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn bearer_credentials_from_file() {
    let srv = Server::start("[]").await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("token");
    std::fs::write(&f, "s3cret\n").unwrap();
    let cfg = config(&format!(
        "url: {}\nauthorization: {{credentials_file: {}}}",
        srv.url,
        f.display()
    ));
    let d = HttpDiscoverer::new(&cfg).unwrap();
    assert!(d.fetch().await.unwrap().is_empty());
    let req = srv.last_request().to_ascii_lowercase();
    assert!(req.contains("authorization: bearer s3cret\r\n"), "{req}");
}

#[tokio::test]
async fn failures_keep_previous_targets_and_shrinking_empties_sources() {
    let srv = Server::start(TWO_GROUPS).await;
    let cfg = config(&format!("url: {}\nrefresh_interval: 100ms", srv.url));
    let (mut rx, stop, task) = start(&cfg);
    assert_eq!(next(&mut rx).await.len(), 2);

    // Each of these is a failed refresh: nothing may be sent, in particular no empty groups.
    for (status, ctype, body) in [
        ("500 Internal Server Error", "application/json", TWO_GROUPS),
        ("200 OK", "text/plain", TWO_GROUPS),
        ("200 OK", "application/json", "{not json"),
        (
            "200 OK",
            "application/json",
            r#"[{"targets": ["x:1"], "labels": {"a-b": "c"}}]"#,
        ),
    ] {
        srv.set(status, ctype, body);
        // Drain an update that may have been in flight before the switch.
        let _ = tokio::time::timeout(Duration::from_millis(150), rx.recv()).await;
        let n = srv.requests.lock().unwrap().len();
        let got = tokio::time::timeout(Duration::from_millis(1000), rx.recv()).await;
        assert!(got.is_err(), "{status} {ctype} {body}: sent {got:?}");
        assert!(
            srv.requests.lock().unwrap().len() > n,
            "no refresh happened"
        );
    }

    srv.set("200 OK", "application/json", r#"[{"targets": ["z:1"]}]"#);
    let groups = next(&mut rx).await;
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].targets[0]["__address__"], "z:1");
    assert_eq!(groups[1], TargetGroup::empty(format!("{}:1", srv.url)));
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    // Bind then drop, so the port is (almost certainly) closed.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = config(&format!("url: http://127.0.0.1:{port}/sd"));
    let e = HttpDiscoverer::new(&cfg)
        .unwrap()
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), tocsin_model::ErrorKind::Unavailable);
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[test]
fn config_parsing_and_validation() {
    let c = config("url: https://sd.example/targets");
    assert_eq!(c.refresh_interval, Duration::from_secs(60));
    assert!(c.follow_redirects);
    let c = config(
        "url: https://sd.example/t\nrefresh_interval: 1m30s\ntls_config: {insecure_skip_verify: true}\nauthorization: {type: Token, credentials: abc}",
    );
    assert_eq!(c.refresh_interval, Duration::from_secs(90));
    assert_eq!(c.authorization.as_ref().unwrap().kind, "Token");
    assert!(HttpDiscoverer::new(&c).is_ok());

    assert!(serde_norway::from_str::<HttpSdConfig>("url: http://a/\nbogus: 1").is_err());
    for (yaml, want) in [
        ("url: ftp://a/", "http or https"),
        ("url: not a url", "invalid 'url'"),
        ("url: http://a/\nrefresh_interval: 0s", "refresh_interval"),
        (
            "url: http://a/\noauth2: {client_id: x}",
            "'oauth2' is not supported",
        ),
        (
            "url: http://a/\nbasic_auth: {username: u}\nauthorization: {credentials: x}",
            "at most one of 'basic_auth' and 'authorization'",
        ),
        (
            "url: http://a/\nauthorization: {type: Basic, credentials: x}",
            "use 'basic_auth'",
        ),
        (
            "url: http://a/\nbasic_auth: {username: u, password: p, password_file: f}",
            "'password' and 'password_file'",
        ),
        (
            "url: http://a/\ntls_config: {cert_file: c}",
            "needs both a cert and a key",
        ),
        (
            "url: http://a/\ntls_config: {min_version: TLS10}",
            "min_version \"TLS10\"",
        ),
    ] {
        let c: HttpSdConfig = serde_norway::from_str(yaml).unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.contains(want), "{yaml}: {e}");
    }
    let c = config("url: http://a/\ntls_config: {ca_file: /nonexistent/ca.pem}");
    let e = HttpDiscoverer::new(&c).unwrap_err().to_string();
    assert!(
        e.contains("tls_config.ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
}
