//! OAuth2 and proxy_connect_header against a loopback HTTP server that records what it got.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::HttpClientConfig;

#[derive(Debug, Clone)]
struct Req {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Req>>>;

/// Serves one request per connection; `answer` gives status and body for each request.
async fn server(
    answer: impl Fn(&Req, usize) -> (u16, String) + Send + Sync + 'static,
) -> (String, Log) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = log.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(p);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let mut lines = head.split("\r\n");
            let line = lines.next().unwrap_or_default().to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = buf[head_end + 4..].to_vec();
            while body.len() < len {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            let req = Req {
                line,
                headers,
                body: String::from_utf8_lossy(&body).to_string(),
            };
            let n = {
                let mut g = log2.lock().unwrap();
                g.push(req.clone());
                g.len()
            };
            let (status, body) = answer(&req, n);
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    (format!("http://{addr}"), log)
}

fn config(yaml: &str) -> HttpClientConfig {
    let c: HttpClientConfig = serde_norway::from_str(yaml).unwrap();
    c.validate().unwrap();
    c
}

fn client(c: &HttpClientConfig) -> crate::Client {
    c.build_client(std::path::Path::new("."), Duration::from_secs(5), false)
        .unwrap()
}

/// A token server numbering its tokens, with the lifetime given.
async fn token_server(expires_in: u64) -> (String, Log) {
    server(move |_, n| {
        (
            200,
            format!(
                r#"{{"access_token":"tok{n}","token_type":"bearer","expires_in":{expires_in}}}"#
            ),
        )
    })
    .await
}

#[tokio::test]
async fn client_credentials_token_is_fetched_once_and_sent_as_bearer() {
    let (tok_url, tokens) = token_server(3600).await;
    let (res_url, resources) = server(|_, _| (200, "{}".into())).await;
    let c = client(&config(&format!(
        "oauth2: {{client_id: my id, client_secret: s3cr&t, scopes: [a, b], token_url: '{tok_url}/token', endpoint_params: {{audience: x}}}}"
    )));
    for _ in 0..3 {
        let r = c.get(format!("{res_url}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let t = tokens.lock().unwrap().clone();
    assert_eq!(t.len(), 1, "one token fetch for three requests: {t:?}");
    assert!(t[0].line.starts_with("POST /token "), "{}", t[0].line);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("my+id:s3cr%26t");
    assert_eq!(
        t[0].header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        t[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        t[0].body,
        "grant_type=client_credentials&scope=a+b&audience=x"
    );
    let r = resources.lock().unwrap().clone();
    assert_eq!(r.len(), 3);
    for q in &r {
        assert_eq!(q.header("authorization"), Some("Bearer tok1"));
    }
}

#[tokio::test]
async fn token_about_to_expire_is_renewed() {
    // 5 s is inside the renewal margin, so every request needs a new token.
    let (tok_url, tokens) = token_server(5).await;
    let (res_url, resources) = server(|_, _| (200, "{}".into())).await;
    let c = client(&config(&format!(
        "oauth2: {{client_id: id, client_secret: s, token_url: '{tok_url}/t'}}"
    )));
    c.get(&res_url).send().await.unwrap();
    c.get(&res_url).send().await.unwrap();
    assert_eq!(tokens.lock().unwrap().len(), 2);
    let r = resources.lock().unwrap().clone();
    assert_eq!(r[0].header("authorization"), Some("Bearer tok1"));
    assert_eq!(r[1].header("authorization"), Some("Bearer tok2"));
}

#[tokio::test]
async fn refused_token_is_replaced_on_the_next_request() {
    let (tok_url, tokens) = token_server(3600).await;
    let (res_url, _) = server(|_, n| {
        if n == 1 {
            (401, "{}".into())
        } else {
            (200, "{}".into())
        }
    })
    .await;
    let c = client(&config(&format!(
        "oauth2: {{client_id: id, client_secret: s, token_url: '{tok_url}/t'}}"
    )));
    assert_eq!(c.get(&res_url).send().await.unwrap().status(), 401);
    assert_eq!(c.get(&res_url).send().await.unwrap().status(), 200);
    assert_eq!(tokens.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn token_endpoint_error_fails_the_request_with_its_status() {
    let (tok_url, _) = server(|_, _| (400, r#"{"error":"invalid_client"}"#.into())).await;
    let (res_url, resources) = server(|_, _| (200, "{}".into())).await;
    let c = client(&config(&format!(
        "oauth2: {{client_id: id, client_secret: s, token_url: '{tok_url}/t'}}"
    )));
    let e = c.get(&res_url).send().await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert!(
        resources.lock().unwrap().is_empty(),
        "no unauthenticated request"
    );
}

#[test]
fn oauth2_settings_are_checked() {
    let bad = |y: &str| {
        let c: HttpClientConfig = serde_norway::from_str(y).unwrap();
        c.validate().unwrap_err().to_string()
    };
    assert!(
        bad("oauth2: {client_id: a, token_url: 'http://x/t'}\nbasic_auth: {username: u}")
            .contains("at most one of")
    );
    assert!(bad("oauth2: {client_id: a}").contains("oauth2.token_url: missing"));
    assert!(bad("oauth2: {token_url: 'http://x/t'}").contains("oauth2.client_id: missing"));
    assert!(bad("oauth2: {client_id: a, token_url: 'ftp://x/t'}").contains("http or https"));
    assert!(bad(
        "oauth2: {client_id: a, token_url: 'http://x/t', client_secret: a, client_secret_file: b}"
    )
    .contains("client_secret_file"));
    assert!(
        bad("oauth2: {client_id: a, token_url: 'http://x/t', proxy_url: '::'}")
            .contains("oauth2.proxy_url")
    );
    let unknown: Result<HttpClientConfig, _> =
        serde_norway::from_str("oauth2: {client_id: a, token_url: 'http://x/t', scope: [x]}");
    assert!(unknown.unwrap_err().to_string().contains("scope"));
}

#[tokio::test]
async fn proxy_connect_header_is_sent_with_connect() {
    // The proxy refuses the tunnel; what matters is what the CONNECT carried.
    let (proxy, log) = server(|_, _| (403, String::new())).await;
    let c = client(&config(&format!(
        "proxy_url: '{proxy}'\nproxy_connect_header: {{Proxy-Authorization: ['Basic cHJveHk6cHc=']}}"
    )));
    let _ = c.get("https://target.invalid:8443/metrics").send().await;
    let r = log.lock().unwrap().clone();
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].line.starts_with("CONNECT target.invalid:8443 "),
        "{}",
        r[0].line
    );
    assert_eq!(
        r[0].header("proxy-authorization"),
        Some("Basic cHJveHk6cHc=")
    );
}

#[test]
fn proxy_connect_header_needs_a_proxy_url() {
    let c: HttpClientConfig =
        serde_norway::from_str("proxy_connect_header: {X: [y]}\nproxy_from_environment: true")
            .unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("needs proxy_url"));
}
