//! Receivers against loopback HTTP servers, programs and files: exact payloads, authentication,
//! status handling, retries and the heartbeat's timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use serde_json::{json, Value};
use tocsin_model::{Alert, Labels};

use super::*;

pub(super) type R = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone)]
pub(super) struct Req {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Req {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub(super) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

#[derive(Default)]
struct ServerState {
    reqs: parking_lot::Mutex<Vec<Req>>,
    /// Statuses to answer with, in order; 200 once exhausted.
    statuses: parking_lot::Mutex<VecDeque<u16>>,
}

pub(super) struct Server {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl Server {
    pub(super) async fn start(statuses: &[u16]) -> Server {
        let state = Arc::new(ServerState::default());
        state.statuses.lock().extend(statuses.iter().copied());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, state }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(super) fn reqs(&self) -> Vec<Req> {
        self.state.reqs.lock().clone()
    }
}

async fn record(
    State(s): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    s.reqs.lock().push(Req {
        method,
        path: uri.path().to_string(),
        headers,
        body,
    });
    let code = s.statuses.lock().pop_front().unwrap_or(200);
    (
        StatusCode::from_u16(code).unwrap(),
        if code >= 300 { "nope" } else { "" },
    )
}

pub(super) const NOW: i64 = 1_700_000_100_000;
pub(super) const STARTS: i64 = 1_700_000_000_120;
pub(super) const GEN: &str = "http://prom.example:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1";

pub(super) fn alert(labels: &[(&str, &str)], ann: &[(&str, &str)], ends_at: i64) -> Alert {
    Alert {
        labels: Labels::from_pairs(labels),
        annotations: ann
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        starts_at: STARTS,
        ends_at,
        generator_url: GEN.to_string(),
        updated_at: STARTS,
        timeout: false,
    }
}

pub(super) fn cx() -> NotifyCx {
    NotifyCx {
        receiver: "team-x".into(),
        group_key: "{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}".into(),
        group_labels: Labels::from_pairs(&[("alertname", "ProbeFailure")]),
        now_ms: NOW,
        external_url: "http://am.example:9093".into(),
        group_interval_ms: 0,
        notification_id: String::new(),
    }
}

/// Two alerts of one group: `a` firing with a future end, `b` resolved.
pub(super) fn group() -> (Alert, Alert) {
    let a = alert(
        &[
            ("alertname", "ProbeFailure"),
            ("instance", "web-1"),
            ("severity", "critical"),
        ],
        &[("summary", "web-1 down"), ("runbook", "http://rb/1")],
        NOW + 240_000,
    );
    let b = alert(
        &[
            ("alertname", "ProbeFailure"),
            ("instance", "web-2"),
            ("severity", "critical"),
        ],
        &[("summary", "web-2 down"), ("runbook", "http://rb/1")],
        1_700_000_050_000,
    );
    (a, b)
}

pub(super) fn receiver(yaml: &str) -> ReceiverConfig {
    serde_norway::from_str(yaml).unwrap()
}

pub(super) fn build_one(yaml: &str, base: &Path) -> Arc<dyn Notifier> {
    let mut v = build_receiver(&receiver(yaml), base).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

// ---------------------------------------------------------------- webhook

#[tokio::test]
async fn webhook_sends_alertmanager_v4_message() -> R {
    let srv = Server::start(&[]).await;
    let n = build_one(
        &format!(
            "name: team-x\nwebhook_configs:\n- url: {}\n",
            srv.url("/hook")
        ),
        Path::new("."),
    );
    assert_eq!(n.integration(), "webhook");
    assert!(n.send_resolved());
    let (a, b) = group();
    n.notify(&cx(), &[a.clone(), b.clone()]).await?;
    let reqs = srv.reqs();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/hook");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let expected = json!({
        "receiver": "team-x",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ProbeFailure", "instance": "web-1", "severity": "critical"},
                "annotations": {"runbook": "http://rb/1", "summary": "web-1 down"},
                "startsAt": "2023-11-14T22:13:20.12Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": GEN,
                "fingerprint": a.fingerprint_hex(),
            },
            {
                "status": "resolved",
                "labels": {"alertname": "ProbeFailure", "instance": "web-2", "severity": "critical"},
                "annotations": {"runbook": "http://rb/1", "summary": "web-2 down"},
                "startsAt": "2023-11-14T22:13:20.12Z",
                "endsAt": "2023-11-14T22:14:10Z",
                "generatorURL": GEN,
                "fingerprint": b.fingerprint_hex(),
            }
        ],
        "groupLabels": {"alertname": "ProbeFailure"},
        "commonLabels": {"alertname": "ProbeFailure", "severity": "critical"},
        "commonAnnotations": {"runbook": "http://rb/1"},
        "externalURL": "http://am.example:9093",
        "version": "4",
        "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}",
        "truncatedAlerts": 0
    });
    assert_eq!(r.json(), expected);
    // Wire details of Go's encoder: key order, HTML escaping, trailing newline.
    let raw = String::from_utf8(r.body.to_vec())?;
    assert!(raw.starts_with("{\"receiver\":\"team-x\",\"status\":\"firing\",\"alerts\":["));
    assert!(raw.ends_with("\"version\":\"4\",\"groupKey\":\"{}/{severity=\\\"critical\\\"}:{alertname=\\\"ProbeFailure\\\"}\",\"truncatedAlerts\":0}\n"));
    assert!(raw.contains("up+%3D%3D+0\\u0026g0.tab=1"));
    Ok(())
}

#[tokio::test]
async fn webhook_resolved_group_and_truncation() -> R {
    let srv = Server::start(&[]).await;
    let n = build_one(
        &format!(
            "name: team-x\nwebhook_configs:\n- url: {}\n  max_alerts: 2\n",
            srv.url("/")
        ),
        Path::new("."),
    );
    let (_, b) = group();
    let mut c = b.clone();
    c.labels = Labels::from_pairs(&[("alertname", "ProbeFailure"), ("instance", "web-3")]);
    let mut d = b.clone();
    d.labels = Labels::from_pairs(&[("alertname", "Other")]);
    n.notify(&cx(), &[b.clone(), c.clone(), d]).await?;
    let body = srv.reqs()[0].json();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["truncatedAlerts"], 1);
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["alerts"][1]["fingerprint"], json!(c.fingerprint_hex()));
    // Common labels come from the alerts kept, not from the dropped one.
    assert_eq!(body["commonLabels"], json!({"alertname": "ProbeFailure"}));
    assert_eq!(
        body["commonAnnotations"],
        json!({"runbook": "http://rb/1", "summary": "web-2 down"})
    );
    Ok(())
}

#[tokio::test]
async fn webhook_authentication_headers() -> R {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("token"), "s3cret\n")?;
    let yaml = format!(
        "name: team-x
webhook_configs:
- url: {u}
  http_config:
    basic_auth: {{username: alice, password: pw}}
- url: {u}
  http_config:
    bearer_token_file: token
- url: {u}
  http_config:
    authorization: {{type: Token, credentials: abc}}
",
        u = srv.url("/")
    );
    let ns = build_receiver(&receiver(&yaml), dir.path())?;
    assert_eq!(ns.len(), 3);
    let (a, _) = group();
    for n in &ns {
        n.notify(&cx(), std::slice::from_ref(&a)).await?;
    }
    let auths: Vec<_> = srv
        .reqs()
        .iter()
        .map(|r| r.header("authorization"))
        .collect();
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:pw");
    assert_eq!(
        auths,
        vec![
            Some(format!("Basic {basic}")),
            Some("Bearer s3cret".to_string()),
            Some("Token abc".to_string()),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn webhook_status_codes_classify_errors() -> R {
    let srv = Server::start(&[400, 503, 302, 204]).await;
    let n = build_one(
        &format!(
            "name: r\nwebhook_configs:\n- url: {}\n  http_config: {{follow_redirects: false}}\n",
            srv.url("/")
        ),
        Path::new("."),
    );
    let (a, _) = group();
    let alerts = std::slice::from_ref(&a);
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert_eq!((e.retryable, e.reason), (false, Reason::ClientError));
    assert!(e.message.contains("400"), "{}", e.message);
    assert!(e.message.contains("nope"), "{}", e.message);
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert_eq!((e.retryable, e.reason), (true, Reason::ServerError));
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert_eq!((e.retryable, e.reason), (false, Reason::Other));
    n.notify(&cx(), alerts).await?;

    // Nothing listens on a port we just released: a retryable transport error.
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    drop(l);
    let n = build_one(
        &format!("name: r\nwebhook_configs:\n- url: http://127.0.0.1:{port}/x?token=secret\n"),
        Path::new("."),
    );
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert_eq!((e.retryable, e.reason), (true, Reason::Other));
    assert!(!e.message.contains("secret"), "{}", e.message);
    Ok(())
}

#[tokio::test]
async fn webhook_url_file_is_read_per_notification() -> R {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("url"), format!("{}\n", srv.url("/one")))?;
    let n = build_one("name: r\nwebhook_configs:\n- url_file: url\n", dir.path());
    let (a, _) = group();
    n.notify(&cx(), std::slice::from_ref(&a)).await?;
    std::fs::write(dir.path().join("url"), srv.url("/two"))?;
    n.notify(&cx(), std::slice::from_ref(&a)).await?;
    let paths: Vec<_> = srv.reqs().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/one", "/two"]);
    Ok(())
}

// ---------------------------------------------------------------- config

#[test]
fn receiver_config_types_defaults_and_unsupported() {
    let r = receiver(
        "name: all
webhook_configs:
- url: http://127.0.0.1:1/
  send_resolved: false
  max_alerts: 5
  timeout: 10s
pubsub_configs:
- url: http://127.0.0.1:1/push
alerta_configs:
- url: http://127.0.0.1:1/api
  api_key: k
exec_configs:
- command: ./notify.sh
file_configs:
- path: out/alerts.jsonl
heartbeat_configs:
- url: http://127.0.0.1:1/ping
  method: GET
  interval: 30s
slack_configs:
- channel: '#x'
email_configs: []
sns_configs: []
victorops_configs: []
",
    );
    assert_eq!(
        r.unsupported_integrations(),
        vec!["sns_configs", "victorops_configs"]
    );
    assert_eq!(r.integration_count(), 7);
    let w = &r.webhook_configs[0];
    assert!(!w.send_resolved);
    assert_eq!(w.max_alerts, 5);
    assert_eq!(w.timeout, Some(Duration::from_secs(10)));
    let p = &r.pubsub_configs[0];
    assert!(p.send_resolved);
    assert_eq!(p.subscription(), "projects/tocsin/subscriptions/tocsin");
    let a = &r.alerta_configs[0];
    assert_eq!(a.environment, "Production");
    assert_eq!(a.origin, "tocsin");
    assert_eq!(a.alert_timeout, Duration::from_secs(86_400));
    let e = &r.exec_configs[0];
    assert_eq!(e.timeout, Duration::from_secs(30));
    assert!(e.send_resolved);
    assert!(r.file_configs[0].send_resolved);
    let h = &r.heartbeat_configs[0];
    assert_eq!(h.method, HeartbeatMethod::Get);
    assert_eq!(h.interval, Duration::from_secs(30));
    assert!(!h.send_resolved);
}

#[test]
fn receiver_config_rejects_unknown_fields() {
    let e = serde_norway::from_str::<ReceiverConfig>(
        "name: r\nwebhook_configs:\n- url: http://x/\n  max_alert: 1\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_alert"), "{e}");
    let e = serde_norway::from_str::<ReceiverConfig>(
        "name: r\nwebhook_configs:\n- url: http://x/\n  http_config: {bearer_tokn: x}\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("bearer_tokn"), "{e}");
}

#[test]
fn build_receiver_reports_bad_configs() {
    let bad = [
        ("name: r\nwebhook_configs:\n- send_resolved: true\n", "one of url or url_file"),
        (
            "name: r\nwebhook_configs:\n- url: http://x/\n  url_file: f\n",
            "at most one of url and url_file",
        ),
        ("name: r\npubsub_configs:\n- url: ftp://x/\n", "scheme"),
        (
            "name: r\nwebhook_configs:\n- url: http://x/\n  http_config: {bearer_token: a, basic_auth: {username: u}}\n",
            "http_config",
        ),
        (
            "name: r\nalerta_configs:\n- url: http://x/\n  api_key: k\n  http_config: {bearer_token: a}\n",
            "api_key",
        ),
    ];
    for (yaml, want) in bad {
        let e = build_receiver(&receiver(yaml), Path::new("."))
            .err()
            .unwrap_or_else(|| panic!("{yaml} should fail"));
        let msg = e.to_string();
        assert!(msg.contains("receiver \"r\""), "{msg}");
        assert!(msg.contains(want), "{yaml}: {msg}");
    }
}

// ---------------------------------------------------------------- heartbeat

fn heartbeat(url: &str, method: &str) -> Heartbeat {
    let cfg: HeartbeatConfig =
        serde_norway::from_str(&format!("url: {url}\ninterval: 50ms\nmethod: {method}\n")).unwrap();
    Heartbeat::new(&cfg, Path::new("."), "heartbeat").unwrap()
}

fn watchdog(ends_at: i64) -> Alert {
    let mut a = alert(&[("alertname", "Watchdog")], &[], ends_at);
    a.starts_at = common::wall_ms() - 60_000;
    a
}

fn live_cx() -> NotifyCx {
    NotifyCx {
        now_ms: common::wall_ms(),
        ..cx()
    }
}

#[tokio::test]
async fn heartbeat_pings_while_the_watchdog_lives_then_stops() -> R {
    let srv = Server::start(&[]).await;
    let hb = heartbeat(&srv.url("/ping"), "GET");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(hb.pings_sent(), 0, "no pings before the watchdog arrives");

    let until = common::wall_ms() + 600;
    hb.notify(&live_cx(), &[watchdog(until)]).await?;
    assert_eq!(hb.active_until_ms(), until);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hb.pings_sent() >= 2, "pings: {}", hb.pings_sent());

    // Past the watchdog's end, pings stop.
    while common::wall_ms() < until + 150 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = hb.pings_sent();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hb.pings_sent(), stopped);
    assert!(stopped <= 16, "pings: {stopped}");
    assert_eq!(hb.pings_failed(), 0);
    let reqs = srv.reqs();
    assert_eq!(reqs.len() as u64, stopped);
    assert!(reqs
        .iter()
        .all(|r| r.method == Method::GET && r.path == "/ping"));
    Ok(())
}

#[tokio::test]
async fn heartbeat_resolution_clears_and_failures_are_counted() -> R {
    let srv = Server::start(&[500]).await;
    let hb = heartbeat(&srv.url("/"), "POST");
    // No end: alive for two intervals after each notification.
    let c = live_cx();
    hb.notify(&c, &[watchdog(0)]).await?;
    assert_eq!(hb.active_until_ms(), c.now_ms + 100);
    // Keep it alive long enough for a retry to succeed whatever the machine's load.
    hb.notify(&live_cx(), &[watchdog(common::wall_ms() + 60_000)])
        .await?;
    for _ in 0..200 {
        if hb.pings_sent() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hb.pings_failed(), 1, "the first ping got a 500");
    assert!(hb.pings_sent() >= 1);
    assert_eq!(srv.reqs()[0].method, Method::POST);

    let resolved = watchdog(common::wall_ms() - 1);
    hb.notify(&live_cx(), &[resolved]).await?;
    assert_eq!(hb.active_until_ms(), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = hb.pings_sent();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hb.pings_sent(), n);
    Ok(())
}

#[tokio::test]
async fn heartbeat_stays_alive_until_the_next_flush_can_say_otherwise() -> R {
    let srv = Server::start(&[]).await;
    let hb = heartbeat(&srv.url("/"), "POST");
    assert!(
        hb.every_flush(),
        "the pipeline must not deduplicate the heartbeat"
    );
    // The pipeline hides a firing alert's end; the next flush is a group interval away.
    let c = NotifyCx {
        group_interval_ms: 60_000,
        notification_id: String::new(),
        ..live_cx()
    };
    hb.notify(&c, &[watchdog(0)]).await?;
    assert_eq!(hb.active_until_ms(), c.now_ms + 60_000 + 100);
    // A known end further out extends it; one closer in does not cut it short.
    hb.notify(&c, &[watchdog(c.now_ms + 120_000)]).await?;
    assert_eq!(hb.active_until_ms(), c.now_ms + 120_000);
    hb.notify(&c, &[watchdog(c.now_ms + 1_000)]).await?;
    assert_eq!(hb.active_until_ms(), c.now_ms + 60_000 + 100);
    // A flush with nothing firing clears it.
    hb.notify(&c, &[]).await?;
    assert_eq!(hb.active_until_ms(), 0);
    Ok(())
}

#[tokio::test]
async fn heartbeat_task_stops_when_dropped() -> R {
    let srv = Server::start(&[]).await;
    let hb = heartbeat(&srv.url("/"), "POST");
    hb.notify(&live_cx(), &[watchdog(common::wall_ms() + 60_000)])
        .await?;
    tokio::time::sleep(Duration::from_millis(120)).await;
    drop(hb);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let n = srv.reqs().len();
    assert!(n >= 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(srv.reqs().len(), n);
    Ok(())
}

// ---------------------------------------------------------------- deliver and metrics

fn counts(m: &NotifyMetrics, receiver: &str) -> NotifyCounts {
    m.snapshot()
        .into_iter()
        .find(|c| c.receiver == receiver)
        .unwrap()
}

fn failed(c: &NotifyCounts) -> BTreeMap<String, u64> {
    c.failed.clone()
}

#[tokio::test]
async fn deliver_retries_server_errors_until_success() -> R {
    let srv = Server::start(&[503, 503]).await;
    let n = build_one(
        &format!("name: team-x\nwebhook_configs:\n- url: {}\n", srv.url("/")),
        Path::new("."),
    );
    let m = NotifyMetrics::default();
    let (a, _) = group();
    let t = std::time::Instant::now();
    deliver(n.as_ref(), &cx(), &[a], &m, Duration::from_secs(30)).await?;
    // Two jittered waits: [100, 200] + [200, 400] ms.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(srv.reqs().len(), 3);
    let c = counts(&m, "team-x");
    assert_eq!(c.integration, "webhook");
    assert_eq!(c.sent, 1);
    assert_eq!(
        failed(&c),
        BTreeMap::from([
            ("clientError".to_string(), 0),
            ("serverError".to_string(), 2),
            ("other".to_string(), 0),
        ])
    );
    Ok(())
}

#[tokio::test]
async fn deliver_does_not_retry_client_errors() -> R {
    let srv = Server::start(&[400]).await;
    let n = build_one(
        &format!("name: team-x\nwebhook_configs:\n- url: {}\n", srv.url("/")),
        Path::new("."),
    );
    let m = NotifyMetrics::default();
    let (a, _) = group();
    let e = deliver(n.as_ref(), &cx(), &[a], &m, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert_eq!(e.reason, Reason::ClientError);
    assert_eq!(srv.reqs().len(), 1);
    let c = counts(&m, "team-x");
    assert_eq!((c.sent, c.failed["clientError"]), (0, 1));
    Ok(())
}

#[tokio::test]
async fn deliver_gives_up_at_the_deadline() -> R {
    let srv = Server::start(&[503; 100]).await;
    let n = build_one(
        &format!("name: team-x\nwebhook_configs:\n- url: {}\n", srv.url("/")),
        Path::new("."),
    );
    let m = NotifyMetrics::default();
    m.register("idle", "webhook");
    let (a, _) = group();
    let t = std::time::Instant::now();
    let e = deliver(n.as_ref(), &cx(), &[a], &m, Duration::from_millis(700))
        .await
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(e.retryable);
    let attempts = srv.reqs().len() as u64;
    assert!((2..=4).contains(&attempts), "{attempts}");
    let snap = m.snapshot();
    assert_eq!(snap.len(), 2);
    assert_eq!(snap[0].receiver, "idle");
    assert_eq!(snap[0].sent, 0);
    assert_eq!(snap[1].failed["serverError"], attempts);
    Ok(())
}

/// A notifier that never answers: the deadline cuts the attempt itself.
struct Hang;

impl Notifier for Hang {
    fn integration(&self) -> &'static str {
        "hang"
    }
    fn send_resolved(&self) -> bool {
        true
    }
    fn notify<'a>(
        &'a self,
        _cx: &'a NotifyCx,
        _alerts: &'a [Alert],
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn deliver_cuts_a_hanging_attempt_at_the_deadline() {
    let m = NotifyMetrics::default();
    let e = deliver(&Hang, &cx(), &[], &m, Duration::from_millis(150))
        .await
        .unwrap_err();
    assert_eq!((e.retryable, e.reason), (true, Reason::Other));
    assert_eq!(counts(&m, "team-x").failed["other"], 1);
}

#[tokio::test]
async fn exec_spawn_error_said_only_no_such_file_or_directory() -> R {
    let dir = tempfile::tempdir()?;
    let (a, _) = group();
    let alerts = std::slice::from_ref(&a);
    let n = build_one(
        "name: r\nexec_configs:\n- command: bin/missing.sh\n",
        dir.path(),
    );
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert!(!e.retryable);
    let want = format!(
        "program {} does not exist",
        dir.path().join("bin/missing.sh").display()
    );
    assert!(e.message.contains(&want), "{}", e.message);
    let n = build_one(
        "name: r\nexec_configs:\n- command: no-such-tocsin-cmd\n",
        dir.path(),
    );
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert!(
        e.message.contains("no-such-tocsin-cmd not found in PATH"),
        "{}",
        e.message
    );
    let gone = dir.path().join("gone");
    let n = build_one("name: r\nexec_configs:\n- command: /bin/true\n", &gone);
    let e = n.notify(&cx(), alerts).await.unwrap_err();
    assert!(
        e.message
            .contains(&format!("working directory {} ", gone.display())),
        "{}",
        e.message
    );
    Ok(())
}
