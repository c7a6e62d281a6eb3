//! The `http` kind against a loopback axum server that records every request and answers as
//! each test scripts it: the exact request (method, path, query, headers, body, `http_config`
//! credentials), success codes, `already_done`, retry classification, Retry-After, timeouts,
//! and config errors naming their field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method as AxMethod, StatusCode as AxStatus, Uri};
use axum::response::IntoResponse;
use tocsin_model::{Alert, Labels};

use super::*;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: String,
}

/// One scripted answer: status, extra headers, body, delay before answering.
#[derive(Clone)]
struct Answer(
    u16,
    Vec<(&'static str, &'static str)>,
    &'static str,
    Duration,
);

fn ok() -> Answer {
    Answer(200, vec![], "done", Duration::ZERO)
}

#[derive(Clone, Default)]
struct Far {
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

impl Far {
    /// Starts the server; answers are used in order, the last one repeats.
    async fn start(answers: Vec<Answer>) -> (Far, SocketAddr) {
        let far = Far {
            seen: Arc::default(),
            answers: Arc::new(Mutex::new(answers)),
        };
        let f = far.clone();
        let app = axum::Router::new().fallback(
            move |m: AxMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
                let f = f.clone();
                async move {
                    f.seen.lock().unwrap().push(Seen {
                        method: m.to_string(),
                        uri: uri.to_string(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let a = {
                        let mut q = f.answers.lock().unwrap();
                        if q.len() > 1 {
                            q.remove(0)
                        } else {
                            q[0].clone()
                        }
                    };
                    tokio::time::sleep(a.3).await;
                    let mut h = HeaderMap::new();
                    for (k, v) in a.1 {
                        h.insert(k, v.parse().unwrap());
                    }
                    (AxStatus::from_u16(a.0).unwrap(), h, a.2).into_response()
                }
            },
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        (far, addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn alert() -> Alert {
    let mut a = Alert {
        labels: Labels::from_pairs(&[
            ("alertname", "HighCpu"),
            ("instance_id", "4711"),
            ("zone", "europe-west1-b"),
        ]),
        annotations: Default::default(),
        starts_at: 1_700_000_000_000,
        ends_at: 0,
        generator_url: String::new(),
        updated_at: 0,
        timeout: false,
    };
    a.annotations.insert("value".into(), "0.97".into());
    a
}

fn cx(a: &Alert) -> RenderCx<'_> {
    RenderCx {
        alert: a,
        policy: "delete-vm",
        target: "4711",
        request_id: "5f0c-req",
        now_ms: 1_700_000_060_000,
    }
}

fn exec_cx(timeout_ms: u64) -> ExecCx {
    ExecCx {
        timeout: Duration::from_millis(timeout_ms),
        attempt: 1,
    }
}

fn kind(yaml: &str) -> Result<HttpKind> {
    let cfg: HttpActionConfig = serde_norway::from_str(yaml).unwrap();
    HttpKind::new(&cfg, Path::new("/nonexistent"), "actions.policies[0].http")
}

async fn run(k: &HttpKind, timeout_ms: u64) -> Attempt {
    let a = alert();
    let p = k.prepare(&cx(&a)).unwrap();
    k.execute(&p, &exec_cx(timeout_ms)).await
}

#[tokio::test]
async fn sends_the_exact_templated_request_with_basic_auth() {
    let (far, addr) = Far::start(vec![Answer(
        202,
        vec![],
        "{\"operation\":\"op-1\"}",
        Duration::ZERO,
    )])
    .await;
    let k = kind(&format!(
        r#"
method: put
url: "http://127.0.0.1:{}/vms/{{{{ $labels.zone }}}}/{{{{ .Labels.instance_id }}}}?reason={{{{ .Labels.alertname }}}}"
headers:
  Content-Type: application/json
  X-Policy: "{{{{ .Policy }}}}"
  X-Api-Key: s3cr3t
body: '{{"id":"{{{{ $labels.instance_id }}}}","value":"{{{{ $value }}}}","request":"{{{{ .RequestID }}}}"}}'
http_config:
  basic_auth: {{username: robot, password: hunter2}}
"#,
        addr.port()
    ))
    .unwrap();
    let a = alert();
    let p = k.prepare(&cx(&a)).unwrap();
    // The audit: secrets redacted, the client's credentials absent.
    assert_eq!(
        p.request,
        json!({
            "method": "PUT",
            "url": format!("http://127.0.0.1:{}/vms/europe-west1-b/4711?reason=HighCpu", addr.port()),
            "headers": {
                "content-type": "application/json",
                "x-api-key": "<secret>",
                "x-policy": "delete-vm",
            },
            "body": r#"{"id":"4711","value":"0.97","request":"5f0c-req"}"#,
        })
    );
    let got = k.execute(&p, &exec_cx(5_000)).await;
    assert_eq!(
        got,
        Attempt::Done {
            status: Some(202),
            detail: "HTTP 202 Accepted: {\"operation\":\"op-1\"}".into(),
            already_done: false,
        }
    );
    let seen = far.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "PUT");
    assert_eq!(s.uri, "/vms/europe-west1-b/4711?reason=HighCpu");
    assert_eq!(s.headers["content-type"], "application/json");
    assert_eq!(s.headers["x-policy"], "delete-vm");
    assert_eq!(s.headers["x-api-key"], "s3cr3t");
    // base64("robot:hunter2")
    assert_eq!(s.headers["authorization"], "Basic cm9ib3Q6aHVudGVyMg==");
    assert_eq!(
        s.body,
        r#"{"id":"4711","value":"0.97","request":"5f0c-req"}"#
    );
}

#[tokio::test]
async fn bearer_credentials_from_http_config_and_default_post() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "tok-123\n").unwrap();
    let (far, addr) = Far::start(vec![ok()]).await;
    let cfg: HttpActionConfig = serde_norway::from_str(&format!(
        "url: http://127.0.0.1:{}/hook\nhttp_config:\n  authorization: {{credentials_file: token}}\n",
        addr.port()
    ))
    .unwrap();
    // The credentials file is relative to the config file's directory.
    let k = HttpKind::new(&cfg, dir.path(), "actions.policies[0].http").unwrap();
    let a = alert();
    let p = k.prepare(&cx(&a)).unwrap();
    assert_eq!(p.request["headers"], json!({}));
    assert!(matches!(
        k.execute(&p, &exec_cx(5_000)).await,
        Attempt::Done {
            status: Some(200),
            ..
        }
    ));
    let s = &far.seen()[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.headers["authorization"], "Bearer tok-123");
    assert_eq!(s.body, "");
}

#[tokio::test]
async fn success_codes_decide_success() {
    let (_far, addr) = Far::start(vec![
        Answer(200, vec![], "ok", Duration::ZERO),
        Answer(204, vec![], "", Duration::ZERO),
    ])
    .await;
    let k = kind(&format!(
        "url: http://127.0.0.1:{}/x\nsuccess_codes: [204]\n",
        addr.port()
    ))
    .unwrap();
    match run(&k, 5_000).await {
        Attempt::Failed {
            retryable, status, ..
        } => assert_eq!((retryable, status), (false, Some(200))),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run(&k, 5_000).await,
        Attempt::Done {
            status: Some(204),
            detail: "HTTP 204 No Content".into(),
            already_done: false
        }
    );
}

#[tokio::test]
async fn already_done_needs_status_and_body_match() {
    let (_far, addr) = Far::start(vec![
        Answer(404, vec![], "instance 4711 not found", Duration::ZERO),
        Answer(404, vec![], "no route", Duration::ZERO),
    ])
    .await;
    let k = kind(&format!(
        "url: http://127.0.0.1:{}/x\nalready_done: {{status: 404, body: 'instance \\d+ not found'}}\n",
        addr.port()
    ))
    .unwrap();
    assert_eq!(
        run(&k, 5_000).await,
        Attempt::Done {
            status: Some(404),
            detail: "HTTP 404 Not Found: instance 4711 not found".into(),
            already_done: true
        }
    );
    match run(&k, 5_000).await {
        Attempt::Failed {
            retryable,
            status,
            message,
            ..
        } => {
            assert_eq!((retryable, status), (false, Some(404)));
            assert!(message.contains("no route"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn server_errors_and_429_are_retryable_with_retry_after() {
    let (_far, addr) = Far::start(vec![
        Answer(503, vec![("retry-after", "7")], "busy", Duration::ZERO),
        Answer(429, vec![], "slow down", Duration::ZERO),
        Answer(400, vec![("retry-after", "7")], "bad", Duration::ZERO),
    ])
    .await;
    let k = kind(&format!("url: http://127.0.0.1:{}/x\n", addr.port())).unwrap();
    let classify = |a: Attempt| match a {
        Attempt::Failed {
            retryable,
            status,
            retry_after,
            ..
        } => (retryable, status, retry_after),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        classify(run(&k, 5_000).await),
        (true, Some(503), Some(Duration::from_secs(7)))
    );
    assert_eq!(classify(run(&k, 5_000).await), (true, Some(429), None));
    assert_eq!(classify(run(&k, 5_000).await), (false, Some(400), None));
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let k = kind(&format!("url: http://user:pw@127.0.0.1:{port}/x\n")).unwrap();
    match run(&k, 5_000).await {
        Attempt::Failed {
            retryable,
            status,
            message,
            ..
        } => {
            assert!(retryable);
            assert_eq!(status, None);
            assert!(!message.contains("pw"), "{message}");
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_retryably() {
    let (_far, addr) = Far::start(vec![Answer(200, vec![], "late", Duration::from_secs(5))]).await;
    let k = kind(&format!("url: http://127.0.0.1:{}/x\n", addr.port())).unwrap();
    let t = Instant::now();
    match run(&k, 300).await {
        Attempt::Failed {
            retryable, message, ..
        } => {
            assert!(retryable);
            assert!(message.contains("timeout of 300ms"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        (
            "url: http://x/\nmethod: FETCH\n",
            "actions.policies[0].http.method: ",
        ),
        ("url: /relative\n", "actions.policies[0].http.url: "),
        ("url: ''\n", "actions.policies[0].http.url: must be set"),
        (
            "url: 'http://x/{{ nosuch }}'\n",
            "actions.policies[0].http.url: ",
        ),
        (
            "url: http://x/\nbody: '{{ .Labels.x '\n",
            "actions.policies[0].http.body: ",
        ),
        (
            "url: http://x/\nheaders: {'bad name': v}\n",
            "actions.policies[0].http.headers.bad name: ",
        ),
        (
            "url: http://x/\nheaders: {X-A: '{{ end }}'}\n",
            "actions.policies[0].http.headers.X-A: ",
        ),
        (
            "url: http://x/\nsuccess_codes: [200, 700]\n",
            "actions.policies[0].http.success_codes[1]: 700 is not an HTTP status",
        ),
        (
            "url: http://x/\nalready_done: {status: 404, body: '('}\n",
            "actions.policies[0].http.already_done.body: ",
        ),
        (
            "url: http://x/\nalready_done: {status: 99}\n",
            "actions.policies[0].http.already_done.status: ",
        ),
        (
            "url: http://x/\nhttp_config: {bearer_token_file: missing-file}\n",
            "actions.policies[0].http.http_config: ",
        ),
    ];
    for (yaml, want) in cases {
        let e = match kind(yaml) {
            Ok(_) => panic!("{yaml}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.starts_with(want), "{yaml}: {e}");
    }
    // A typo inside http_config is refused, not ignored.
    let e = serde_norway::from_str::<HttpActionConfig>(
        "url: http://x/\nhttp_config: {basic_auht: {username: u}}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("basic_auht"), "{e}");
}

#[test]
fn rendered_url_must_be_absolute_http() {
    let k = kind("url: '{{ .Labels.alertname }}/x'\n").unwrap();
    let a = alert();
    let e = k.prepare(&cx(&a)).unwrap_err();
    assert!(matches!(e, Error::Render(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("actions.policies[0].http.url: \"HighCpu/x\""),
        "{e}"
    );
    let k = kind("url: 'ftp://{{ .Labels.zone }}/x'\n").unwrap();
    let e = k.prepare(&cx(&a)).unwrap_err().to_string();
    assert!(e.contains("not an absolute http or https URL"), "{e}");
}

#[test]
fn audit_strips_userinfo_and_secret_query_values() {
    let k = kind(
        "url: 'https://user:pw@api.example/v1/x?api_key=abc&zone={{ $labels.zone }}'\nheaders: {Authorization: 'Bearer x', X-Auth-Token: t, X-Trace: keep}\n",
    )
    .unwrap();
    let a = alert();
    let p = k.prepare(&cx(&a)).unwrap();
    assert_eq!(
        p.request["url"],
        "https://api.example/v1/x?api_key=%3Csecret%3E&zone=europe-west1-b"
    );
    assert_eq!(p.request["headers"]["authorization"], "<secret>");
    assert_eq!(p.request["headers"]["x-auth-token"], "<secret>");
    assert_eq!(p.request["headers"]["x-trace"], "keep");
}

#[test]
fn idempotent_comes_from_config_and_retry_after_dates_parse() {
    assert!(kind("url: http://x/\nidempotent: true\n")
        .unwrap()
        .idempotent());
    assert!(!kind("url: http://x/\n").unwrap().idempotent());
    let at = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    assert_eq!(at, 784_111_777_000);
    let mut h = HeaderMap::new();
    h.insert(
        "retry-after",
        "Sun, 06 Nov 1994 08:49:47 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&h, at), Some(Duration::from_secs(10)));
}
