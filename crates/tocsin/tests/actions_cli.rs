//! `tocsin actions ...` against a loopback stand-in for the actions API: the requests the CLI
//! makes (paths, filters, comment, basic and bearer credentials read from files), its tables
//! and JSON output, and a server error turning into a non-zero exit with the server's message.
//! The real server's handlers are tested in the api crate; the engine behind them by the lead's
//! tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::json;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    auth: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves canned answers on a thread of its own; returns its address and the request log.
fn fake_api() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let l2 = log.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(
                move |m: Method, uri: Uri, h: HeaderMap, body: Bytes| {
                    let log = l2.clone();
                    async move {
                        log.lock().unwrap().push(Seen {
                            method: m.to_string(),
                            uri: uri.to_string(),
                            auth: h
                                .get("authorization")
                                .map(|v| v.to_str().unwrap().to_string())
                                .unwrap_or_default(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        answer(uri.path()).into_response()
                    }
                },
            );
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    (rx.recv().unwrap(), log)
}

fn answer(path: &str) -> (StatusCode, String) {
    let ok = |data: serde_json::Value| {
        (
            StatusCode::OK,
            json!({"status": "success", "data": data}).to_string(),
        )
    };
    match path {
        "/api/v1/actions" => ok(json!([
            {"id": 12, "created_at": 1_767_225_600_000i64, "policy": "delete-vm",
             "target": "vm-1", "mode": "auto", "outcome": "succeeded", "guard": null,
             "detail": "HTTP 200 OK"},
        ])),
        "/api/v1/actions/12" => ok(json!({"id": 12, "policy": "delete-vm",
            "events": [{"at": 1_767_225_600_000i64, "event": "sent"}]})),
        "/api/v1/actions/12/approve" => ok(json!({"id": 12, "outcome": "approved"})),
        "/api/v1/actions/policies/delete-vm/reset" => ok(json!({"name": "delete-vm"})),
        "/api/v1/actions/policies" => ok(json!([
            {"name": "delete-vm", "kind": "gce_instance", "mode": "auto", "tripped": null}
        ])),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"status": "error", "errorType": "not_found",
                   "error": "execution 99 not found"})
            .to_string(),
        ),
    }
}

fn tocsin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .args(args)
        .env_remove("TOCSIN_SERVER")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn list_sends_filters_and_basic_auth_and_prints_a_table() {
    let (addr, log) = fake_api();
    let d = tempfile::tempdir().unwrap();
    let pw = file(d.path(), "pw", "s3cret\n");
    let server = format!("http://{addr}");
    let (ok, out, err) = tocsin(&[
        "actions",
        "list",
        "--server",
        &server,
        "--user",
        "alice",
        "--password-file",
        &pw,
        "--policy",
        "delete-vm",
        "--outcome",
        "succeeded",
        "--target",
        "vm-1",
        "--start",
        "2026-01-01T00:00:00Z",
        "--limit",
        "5",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "ID  CREATED                   POLICY     TARGET  MODE  OUTCOME    GUARD  DETAIL\n\
         12  2026-01-01T00:00:00.000Z  delete-vm  vm-1    auto  succeeded  -      HTTP 200 OK\n"
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(
        seen[0].uri,
        "/api/v1/actions?limit=5&policy=delete-vm&outcome=succeeded&target=vm-1&start=2026-01-01T00%3A00%3A00Z"
    );
    // base64("alice:s3cret")
    assert_eq!(seen[0].auth, "Basic YWxpY2U6czNjcmV0");
}

#[test]
fn approve_posts_the_comment_with_a_bearer_token() {
    let (addr, log) = fake_api();
    let d = tempfile::tempdir().unwrap();
    let tok = file(d.path(), "tok", "tok-9\n");
    let server = format!("http://{addr}");
    let (ok, out, err) = tocsin(&[
        "actions",
        "approve",
        "12",
        "--comment",
        "looks right",
        "--server",
        &server,
        "--bearer-token-file",
        &tok,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "execution 12: approved\n");
    let s = log.lock().unwrap()[0].clone();
    assert_eq!(
        (
            s.method.as_str(),
            s.uri.as_str(),
            s.auth.as_str(),
            s.body.as_str()
        ),
        (
            "POST",
            "/api/v1/actions/12/approve",
            "Bearer tok-9",
            "comment=looks+right"
        )
    );
}

#[test]
fn show_reset_and_policies() {
    let (addr, log) = fake_api();
    let server = format!("http://{addr}");
    let (ok, out, err) = tocsin(&["actions", "show", "12", "--server", &server]);
    assert!(ok, "{err}");
    assert!(out.contains("id: 12\n"), "{out}");
    assert!(
        out.contains("events:\n  2026-01-01T00:00:00.000Z sent\n"),
        "{out}"
    );
    let (ok, out, err) = tocsin(&["actions", "reset", "delete-vm", "--server", &server]);
    assert!(ok, "{err}");
    assert_eq!(out, "policy delete-vm reset\n");
    let (ok, out, err) = tocsin(&["actions", "policies", "--server", &server, "-o", "json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["kind"], "gce_instance");
    let methods: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    assert_eq!(
        methods,
        vec![
            "GET /api/v1/actions/12",
            "POST /api/v1/actions/policies/delete-vm/reset",
            "GET /api/v1/actions/policies",
        ]
    );
}

#[test]
fn a_server_error_exits_non_zero_with_its_message() {
    let (addr, _log) = fake_api();
    let server = format!("http://{addr}");
    let (ok, out, err) = tocsin(&["actions", "deny", "99", "--server", &server]);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(err.contains("not_found: execution 99 not found"), "{err}");
    // A missing credentials file is named.
    let (ok, _, err) = tocsin(&[
        "actions",
        "list",
        "--server",
        &server,
        "--bearer-token-file",
        "/nonexistent/tok",
    ]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/tok"), "{err}");
}
