//! The request guards on the real binary, driven by the server's own route table
//! (`tocsin_server::route_table()`): every route's access class, the cross-origin refusal, the
//! per-class body limits, the admin and lifecycle endpoints being off by default, and the route
//! table covering the router. A route added to the table is checked here without anyone listing
//! it; one added to the router outside the table cannot exist, since the router is built from it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::blocking::Response;
use reqwest::Method;
use tocsin_api::class::{classify, Class};
use tocsin_api::routes::{RouteInfo, M};
use tocsin_testkit::{client, TestServer, ADMIN_FLAGS};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

/// The class each route must have, stated here independently of `class.rs` and of the table: a
/// new route fails this test until someone decides its class on purpose.
fn intended(r: &RouteInfo) -> Class {
    let p = r.path;
    let safe = matches!(r.method, M::Get | M::Head);
    // Alerta's client reads its alarm model from /api/config without credentials.
    if p == "/-/healthy" || p == "/-/ready" || (p == "/api/config" && r.method == M::Get) {
        return Class::Public;
    }
    if p.starts_with("/api/v1/admin/") || p == "/-/reload" || p == "/-/quit" {
        return Class::Admin;
    }
    const INGEST: &[&str] = &[
        "/api/v1/write",
        "/write",
        "/api/v2/write",
        "/api/v1/push",
        "/v3/projects/{project}/timeSeries",
    ];
    if INGEST.contains(&p) {
        return Class::Write;
    }
    if safe {
        return Class::Read;
    }
    const POST_READS: &[&str] = &[
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/format_query",
        "/api/v1/query_exemplars",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/rules",
        // The read protocol (remote_read of another server).
        "/api/v1/read",
        "/query",
    ];
    if r.method == M::Post && POST_READS.contains(&p) {
        return Class::Read;
    }
    const ALERT_STATE: &[&str] = &[
        "/api/v2/alerts",
        "/api/v2/silences",
        "/api/v2/silence/{id}",
        "/api/v1/heartbeat/{name}",
        "/api/v1/pubsub/push",
        // Alerta's API: sends, actions, deletes, heartbeats.
        "/api/alert",
        "/api/alert/{id}",
        "/api/alert/{id}/action",
        "/api/alert/{id}/status",
        "/api/heartbeat",
        // Acknowledging, shelving and annotating an alert.
        "/api/v1/alerts/{fingerprint}/ack",
        "/api/v1/alerts/{fingerprint}/unack",
        "/api/v1/alerts/{fingerprint}/shelve",
        "/api/v1/alerts/{fingerprint}/unshelve",
        "/api/v1/alerts/{fingerprint}/note",
    ];
    if ALERT_STATE.contains(&p) {
        return Class::Alert;
    }
    // Deciding on remediation actions (approve, deny, reset a tripped policy) is for admins.
    const ACTION_DECISIONS: &[&str] = &[
        "/api/v1/actions/{id}/approve",
        "/api/v1/actions/{id}/deny",
        "/api/v1/actions/policies/{name}/reset",
    ];
    if r.method == M::Post && ACTION_DECISIONS.contains(&p) {
        return Class::Admin;
    }
    panic!(
        "{:?} {p}: no intended class in tests/guards.rs; decide it here and in crates/api/src/class.rs",
        r.method
    )
}

fn send(
    srv: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = client().request(method, srv.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r: Response = req.body(body).send().unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// The router's own 404 and 405 have empty bodies; a handler's "not found" (an unknown silence)
/// says what it did not find.
fn served(code: u16, body: &str) -> bool {
    code != 405 && !(code == 404 && body.is_empty())
}

fn setting(class: Class) -> &'static str {
    match class {
        Class::Public | Class::Read => "web.max_body_size.read",
        Class::Write => "web.max_body_size.write",
        Class::Alert => "web.max_body_size.alert",
        Class::Admin => "web.max_body_size.admin",
    }
}

#[test]
fn every_route_is_classified_and_guarded() {
    let table = tocsin_server::route_table();
    assert!(table.len() > 50, "{} routes", table.len());
    let small =
        "web:\n  max_body_size:\n    read: 4KB\n    write: 4KB\n    alert: 4KB\n    admin: 4KB\n";
    let srv = TestServer::start_with_config(bin(), small, &[]);
    // Over the 4KB limit, and with the headers within one read of the server, so the early 413
    // reaches the client before the connection closes.
    let big = vec![b'x'; 6 << 10];
    for r in &table {
        let path = r.example_path("x");
        let m = r.method.method();
        let what = format!("{m} {path}");
        assert_eq!(r.class, intended(r), "{what}: the table's class");
        assert_eq!(classify(&m, &path), r.class, "{what}: classify()");

        if !matches!(r.method, M::Get | M::Head) {
            let (code, body) = send(
                &srv,
                m.clone(),
                &path,
                &[
                    ("Origin", "http://evil.example"),
                    ("Content-Type", "text/plain"),
                ],
                b"{}".to_vec(),
            );
            assert_eq!(code, 403, "{what} from another origin: {body}");
            assert!(body.contains("cross-origin"), "{what}: {body}");
            let (code, body) = send(
                &srv,
                m.clone(),
                &path,
                &[("Sec-Fetch-Site", "cross-site")],
                Vec::new(),
            );
            assert_eq!(code, 403, "{what} cross-site: {body}");
        }
        if r.method != M::Head {
            let (code, body) = send(&srv, m.clone(), &path, &[], big.clone());
            assert_eq!(code, 413, "{what} with 6KB: {body}");
            assert!(
                body.contains(setting(r.class)) && body.contains("4KB"),
                "{what}: {body}"
            );
        }

        let (code, body) = send(&srv, m.clone(), &path, &[], Vec::new());
        // Action decisions are admin-class by role, but not behind the TSDB admin flag.
        if r.class == Class::Admin && !path.starts_with("/api/v1/actions/") {
            if path.starts_with("/api/") {
                assert_eq!(code, 503, "{what} without --web.enable-admin-api: {body}");
                assert!(body.contains("admin APIs disabled"), "{what}: {body}");
            } else {
                assert_eq!(code, 403, "{what} without --web.enable-lifecycle: {body}");
                assert_eq!(body, "Lifecycle API is not enabled.", "{what}");
            }
        } else {
            assert!(served(code, &body), "{what}: {code} {body:?}");
        }

        // The path answers exactly the listed methods (GET brings HEAD).
        for other in [M::Get, M::Post, M::Put, M::Delete] {
            if !table.iter().any(|t| t.path == r.path && t.method == other) {
                let (code, _) = send(&srv, other.method(), &path, &[], Vec::new());
                assert_eq!(code, 405, "{:?} {path}: not in the table", other);
            }
        }
    }
    assert_eq!(
        send(&srv, Method::GET, "/api/v1/not-a-route", &[], Vec::new()).0,
        404
    );
    drop(srv);

    // With the flags, the admin and lifecycle routes are served; /-/quit goes last.
    let mut srv = TestServer::start(bin(), &ADMIN_FLAGS);
    for r in table.iter().filter(|r| r.class == Class::Admin) {
        if r.path == "/-/quit" {
            continue;
        }
        let path = r.example_path("x");
        let (code, body) = send(&srv, r.method.method(), &path, &[], Vec::new());
        let what = format!("{:?} {path}", r.method);
        assert!(served(code, &body), "{what}: {code} {body}");
        assert!(
            code != 503 && code != 403,
            "{what} refused with the flags: {code} {body}"
        );
    }
    let (code, body) = send(&srv, Method::POST, "/-/quit", &[], Vec::new());
    assert_eq!(
        (code, body.as_str()),
        (200, "Requesting termination... Goodbye!")
    );
    assert_eq!(srv.wait_exit(Duration::from_secs(30)), Some(0));
}

/// A POST with `Transfer-Encoding: chunked` over a plain socket; returns the status and body.
fn chunked_post(srv: &TestServer, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        srv.addr
    )
    .into_bytes();
    for c in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (code, body)
}

fn get_json(srv: &TestServer, path: &str) -> serde_json::Value {
    let (code, body) = send(srv, Method::GET, path, &[], Vec::new());
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn admin_and_lifecycle_are_off_by_default_and_sighup_still_reloads() {
    let srv = TestServer::start_with_config(bin(), "global:\n  scrape_interval: 1m\n", &[]);
    let (code, body) = send(
        &srv,
        Method::POST,
        "/api/v1/admin/tsdb/delete_series?match[]=up",
        &[],
        Vec::new(),
    );
    assert_eq!(code, 503);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"})
    );
    for path in ["/-/reload", "/-/quit"] {
        let (code, body) = send(&srv, Method::PUT, path, &[], Vec::new());
        assert_eq!(
            (code, body.as_str()),
            (403, "Lifecycle API is not enabled.")
        );
    }
    let flags = get_json(&srv, "/api/v1/status/flags");
    assert_eq!(flags["data"]["web.enable-admin-api"], "false");
    assert_eq!(flags["data"]["web.enable-lifecycle"], "false");

    let cfg = srv.data_dir.parent().unwrap().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "global:\n  scrape_interval: 1m\n  external_labels:\n    site: hup\n",
    )
    .unwrap();
    srv.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(&srv, "/api/v1/status/config");
        if v["data"]["yaml"].as_str().unwrap().contains("site: hup") {
            break;
        }
        assert!(Instant::now() < deadline, "SIGHUP did not reload: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn snapshot_and_clean_tombstones_with_the_admin_flag() {
    let mut srv = TestServer::start(bin(), &ADMIN_FLAGS);
    let flags = get_json(&srv, "/api/v1/status/flags");
    assert_eq!(flags["data"]["web.enable-admin-api"], "true");
    assert_eq!(flags["data"]["web.enable-lifecycle"], "true");
    let t = tocsin_testkit::now_ms() / 1000 - 60;
    let (code, body) = send(
        &srv,
        Method::POST,
        "/write?precision=s",
        &[],
        format!("snap v=7 {t}\n").into_bytes(),
    );
    assert_eq!(code, 204, "{body}");
    let (code, body) = send(
        &srv,
        Method::POST,
        "/api/v1/admin/tsdb/snapshot",
        &[],
        Vec::new(),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success");
    let name = v["data"]["name"].as_str().unwrap().to_string();
    let (code, body) = send(
        &srv,
        Method::PUT,
        "/api/v1/admin/tsdb/snapshot?skip_head=maybe",
        &[],
        Vec::new(),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = send(
        &srv,
        Method::POST,
        "/api/v1/admin/tsdb/clean_tombstones",
        &[],
        Vec::new(),
    );
    assert_eq!(code, 204, "{body}");
    assert_eq!(srv.stop(), Some(0));
    // The snapshot opens as a data directory of its own and holds the head's sample.
    let snap = srv.data_dir.join("snapshots").join(&name);
    let lines = tocsin_testkit::dump_lines(bin(), &snap, &[]);
    assert_eq!(lines, [format!("{{__name__=\"snap_v\"}} 7 {}", t * 1000)]);
}

#[test]
fn cross_origin_posts_are_refused_and_tools_pass() {
    let srv =
        TestServer::start_with_config(bin(), "web:\n  max_body_size:\n    write: 16KB\n", &[]);
    let silence = |comment: &str| {
        serde_json::json!({
            "matchers": [{"name": "alertname", "value": "X", "isRegex": false}],
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "2099-01-01T00:00:00Z",
            "createdBy": "t",
            "comment": comment,
        })
        .to_string()
        .into_bytes()
    };
    // The attack the issue describes: a form on another site posting text/plain, no preflight.
    let (code, body) = send(
        &srv,
        Method::POST,
        "/api/v2/silences",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ],
        silence("evil"),
    );
    assert_eq!(code, 403, "{body}");
    let own = format!("http://{}", srv.addr);
    let (code, body) = send(
        &srv,
        Method::POST,
        "/api/v2/silences",
        &[("Origin", &own), ("Content-Type", "application/json")],
        silence("console"),
    );
    assert_eq!(code, 200, "same origin: {body}");
    let (code, body) = send(
        &srv,
        Method::POST,
        "/api/v2/silences",
        &[("Content-Type", "application/json")],
        silence("amtool"),
    );
    assert_eq!(code, 200, "no Origin (a tool): {body}");
    let list = get_json(&srv, "/api/v2/silences").to_string();
    assert!(
        list.contains("console") && list.contains("amtool") && !list.contains("evil"),
        "{list}"
    );
    // Reads stay open to other origins.
    let (code, _) = send(
        &srv,
        Method::GET,
        "/api/v1/query?query=1",
        &[("Origin", "http://grafana.example:3000")],
        Vec::new(),
    );
    assert_eq!(code, 200);

    // A chunked body (no Content-Length) is cut at the limit too. Written whole before the
    // answer is read, as a sender that does not watch for early answers would.
    let (code, msg) = chunked_post(&srv, "/write", &[b'a'; 20 << 10]);
    assert_eq!(code, 413, "{msg}");
    assert!(
        msg.contains("16KB") && msg.contains("web.max_body_size.write"),
        "{msg}"
    );
    let (_, metrics) = send(&srv, Method::GET, "/metrics", &[], Vec::new());
    for line in [
        "tocsin_http_requests_refused_total{reason=\"origin\"} 1",
        "tocsin_http_requests_refused_total{reason=\"body_size\"} 1",
        "tocsin_http_requests_refused_total{reason=\"host\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[test]
fn requests_naming_a_host_not_in_allowed_hosts_are_refused() {
    let srv = TestServer::start_with_config(
        bin(),
        "web:\n  allowed_hosts: [localhost, Tocsin.Example]\n",
        &[],
    );
    let port = srv.addr.rsplit(':').next().unwrap().to_string();
    let (code, body) = send(&srv, Method::GET, "/api/v1/query?query=1", &[], Vec::new());
    assert_eq!(code, 403, "127.0.0.1 is not listed: {body}");
    assert!(body.contains("web.allowed_hosts"), "{body}");
    for host in [format!("localhost:{port}"), "tocsin.example".to_string()] {
        let (code, body) = send(
            &srv,
            Method::GET,
            "/api/v1/query?query=1",
            &[("Host", &host)],
            Vec::new(),
        );
        assert_eq!(code, 200, "{host}: {body}");
    }
    // Probes answer whatever the Host.
    let (code, _) = send(&srv, Method::GET, "/-/healthy", &[], Vec::new());
    assert_eq!(code, 200);
}
