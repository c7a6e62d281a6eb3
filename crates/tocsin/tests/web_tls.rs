//! TLS from `--web.config.file` with certificates made in the test: the handshake, mutual TLS
//! (required and refused without a client certificate), the minimum version, certificate rotation
//! without a restart (and a broken new pair keeping the old one), and Debian's `prometheus`
//! (scraping and remote-writing) and `amtool` (listing alerts, adding a silence) against a TLS +
//! basic-auth Tocsin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod web_common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tocsin_testkit::TestServer;
use web_common::{bin, eventually, hash, have, Pki, WebDir};

const TLS_WEB: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

#[test]
fn tls_handshake_and_basic_auth_over_it() {
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let cfg = dir.config(&format!(
        "{TLS_WEB}basic_auth_users:\n  u: {}\nhttp_server_config:\n  http2: false\n",
        hash("pw")
    ));
    let srv = TestServer::start_tls(bin(), &["--web.config.file", &cfg], pki.client_tls(None));
    let c = srv.client();
    let q = srv.url("/api/v1/query?query=1");
    assert!(q.starts_with("https://"));
    assert_eq!(c.get(&q).send().unwrap().status(), 401);
    assert_eq!(
        c.get(&q)
            .basic_auth("u", Some("pw"))
            .send()
            .unwrap()
            .status(),
        200
    );
    // Plain HTTP to the TLS port gets no answer.
    let plain = tocsin_testkit::client()
        .get(format!("http://{}/-/healthy", srv.addr))
        .send();
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP was served on the TLS port"
    );
    // A client that does not trust the CA refuses the certificate.
    let other = Pki::new("other CA");
    assert!(other
        .client_tls(None)
        .client()
        .get(srv.url("/-/healthy"))
        .send()
        .is_err());
}

#[test]
fn mutual_tls_required_and_refused_without_a_client_certificate() {
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let cfg = dir.config(&format!(
        "{TLS_WEB}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
    ));
    let me = pki.client("me");
    let srv = TestServer::start_tls(
        bin(),
        &["--web.config.file", &cfg],
        pki.client_tls(Some(&me)),
    );
    let ok = srv
        .client()
        .get(srv.url("/api/v1/query?query=1"))
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    // No client certificate.
    let none = pki.client_tls(None).client();
    assert!(none.get(srv.url("/-/healthy")).send().is_err());
    // A certificate from a CA the server does not trust.
    let other = Pki::new("other CA");
    let stranger = other.client("stranger");
    let mut t = pki.client_tls(None);
    t.identity_pem = Some(format!("{}{}", stranger.cert_pem, stranger.key_pem).into_bytes());
    assert!(t.client().get(srv.url("/-/healthy")).send().is_err());
}

#[test]
fn minimum_version_tls13_refuses_a_tls12_client() {
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let cfg = dir.config(&format!("{TLS_WEB}  min_version: TLS13\n"));
    let srv = TestServer::start_tls(bin(), &["--web.config.file", &cfg], pki.client_tls(None));
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let client = |max: reqwest::tls::Version| {
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone())
            .max_tls_version(max)
            .no_proxy()
            .build()
            .unwrap()
    };
    assert!(client(reqwest::tls::Version::TLS_1_2)
        .get(srv.url("/-/healthy"))
        .send()
        .is_err());
    assert_eq!(
        client(reqwest::tls::Version::TLS_1_3)
            .get(srv.url("/-/healthy"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn certificate_rotation_without_restart() {
    let old = Pki::new("old CA");
    let dir = WebDir::new();
    dir.write_server_cert(&old, &old.server("tocsin"));
    let cfg = dir.config(TLS_WEB);
    let srv = TestServer::start_tls(bin(), &["--web.config.file", &cfg], old.client_tls(None));
    let new = Pki::new("new CA");
    // A new client each time: a pooled connection would keep its old handshake.
    let trusts_old = || old.client_tls(None).client();
    let trusts_new = || new.client_tls(None).client();
    let works = |c: reqwest::blocking::Client| c.get(srv.url("/-/healthy")).send().is_ok();
    assert!(works(trusts_old()));
    assert!(!works(trusts_new()));

    // A broken pair (a certificate without its key) keeps the old one in force.
    let leaf = new.server("tocsin");
    dir.write("server.crt", &leaf.cert_pem);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        works(trusts_old()),
        "a broken pair replaced the working one"
    );
    eventually(10, "the failed reload to be logged", || {
        srv.log_text().contains("web configuration reload failed")
    });

    // The matching key arrives: new handshakes see the new certificate.
    dir.write("server.key", &leaf.key_pem);
    eventually(15, "the new certificate to be served", || {
        works(trusts_new())
    });
    assert!(!works(trusts_old()));
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the first sample of an instant query, if any.
fn query_first(srv: &TestServer, user: &str, pw: &str, q: &str) -> Option<String> {
    let r = srv
        .client()
        .get(srv.url("/api/v1/query"))
        .query(&[("query", q)])
        .basic_auth(user, Some(pw))
        .send()
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.text().ok()?).ok()?;
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map(str::to_string)
}

#[test]
fn debian_prometheus_scrapes_and_remote_writes_over_tls_with_basic_auth() {
    if !have("/usr/bin/prometheus") {
        return;
    }
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let cfg = dir.config(&format!(
        "{TLS_WEB}basic_auth_users:\n  prom: {}\n  viewer: {}\nbasic_auth_roles:\n  prom: [read, write]\n  viewer: [read]\n",
        hash("prompw"),
        hash("viewpw")
    ));
    let srv = TestServer::start_tls(bin(), &["--web.config.file", &cfg], pki.client_tls(None));
    let ca = dir.path("ca.crt").display().to_string();
    let prom_yml = dir.write(
        "prometheus.yml",
        &format!(
            r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: tocsin-tls
    scheme: https
    tls_config:
      ca_file: {ca}
    basic_auth:
      username: prom
      password: prompw
    static_configs:
      - targets: ["{addr}"]
remote_write:
  - url: https://{addr}/api/v1/write
    tls_config:
      ca_file: {ca}
    basic_auth:
      username: prom
      password: prompw
    queue_config:
      batch_send_deadline: 1s
"#,
            addr = srv.addr
        ),
    );
    let port = free_port();
    let log = std::fs::File::create(dir.path("prometheus.log")).unwrap();
    let _prom = Proc(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", prom_yml.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // `up` is 1 only if the scrape over TLS with basic auth worked, and it is in Tocsin only if
    // the remote write over TLS with basic auth worked.
    let plog = || std::fs::read_to_string(dir.path("prometheus.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let v = query_first(&srv, "viewer", "viewpw", "up{job=\"tocsin-tls\"}");
        if v.as_deref() == Some("1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no up=1 from prometheus; last {v:?}\nprometheus log:\n{}\ntocsin log:\n{}",
            plog(),
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The scraped series came too, with Tocsin's own metrics in them.
    assert!(query_first(
        &srv,
        "viewer",
        "viewpw",
        "tocsin_http_connections{job=\"tocsin-tls\"}"
    )
    .is_some());
}

fn amtool(dir: &WebDir, url: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("/usr/bin/amtool")
        .arg(format!("--alertmanager.url={url}"))
        .arg(format!(
            "--http.config.file={}",
            dir.path("http.yml").display()
        ))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn debian_amtool_with_basic_auth_lists_alerts_and_adds_a_silence() {
    if !have("/usr/bin/amtool") {
        return;
    }
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let cfg = dir.config(&format!(
        "{TLS_WEB}basic_auth_users:\n  ops: {}\nbasic_auth_roles:\n  ops: [read, alert]\n",
        hash("opspw")
    ));
    let srv = TestServer::start_tls(bin(), &["--web.config.file", &cfg], pki.client_tls(None));
    let ca = dir.path("ca.crt").display().to_string();
    let url = format!("https://{}", srv.addr);
    // An alert to list.
    let r = srv
        .client()
        .post(srv.url("/api/v2/alerts"))
        .basic_auth("ops", Some("opspw"))
        .header("Content-Type", "application/json")
        .body(r#"[{"labels": {"alertname": "DiskFull", "team": "ops"}}]"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());

    dir.write(
        "http.yml",
        &format!("basic_auth:\n  username: ops\n  password: wrong\ntls_config:\n  ca_file: {ca}\n"),
    );
    let (ok, out) = amtool(&dir, &url, &["alert", "query"]);
    assert!(!ok, "amtool with a wrong password succeeded: {out}");

    dir.write(
        "http.yml",
        &format!("basic_auth:\n  username: ops\n  password: opspw\ntls_config:\n  ca_file: {ca}\n"),
    );
    let mut listed = String::new();
    eventually(20, "amtool to list the alert", || {
        let (ok, out) = amtool(&dir, &url, &["alert", "query"]);
        listed = out;
        ok && listed.contains("DiskFull")
    });
    let (ok, out) = amtool(
        &dir,
        &url,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "--comment=maintenance",
            "--author=ops",
            "--duration=1h",
        ],
    );
    assert!(ok, "amtool silence add: {out}\n{}", srv.log_text());
    let (ok, out) = amtool(&dir, &url, &["silence", "query"]);
    assert!(ok && out.contains("maintenance"), "silence query: {out}");
}

/// Reads until the server closes the connection; how long that took (panics past `limit`).
fn time_to_close(s: &mut std::net::TcpStream, limit: Duration) -> Duration {
    use std::io::Read;
    s.set_read_timeout(Some(limit)).unwrap();
    let start = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("connection still open after {:?}: {e}", start.elapsed()),
        }
    }
}

#[test]
fn tls_handshake_never_started_is_bounded_and_counts_against_the_connection_limit() {
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let web = dir.config(TLS_WEB);
    let cfg = dir.write(
        "tocsin.yml",
        "web:\n  header_read_timeout: 1s\n  max_connections: 3\n",
    );
    let cfg = cfg.display().to_string();
    let srv = TestServer::start_tls(
        bin(),
        &["--config", &cfg, "--web.config.file", &web],
        pki.client_tls(None),
    );
    // Let the readiness probe's connection close.
    std::thread::sleep(Duration::from_millis(300));
    // Clients that connect and never start the handshake hold slots until the timeout.
    let mut silent: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(&srv.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(&srv.addr).unwrap();
    let took = time_to_close(&mut extra, Duration::from_secs(1));
    assert!(
        took < Duration::from_millis(900),
        "the 4th connection was kept: {took:?}"
    );
    for s in &mut silent {
        let took = time_to_close(s, Duration::from_secs(10));
        assert!(
            took < Duration::from_secs(5),
            "handshake not bounded: {took:?}"
        );
    }
    // Slots are free again.
    eventually(10, "a TLS request to succeed", || {
        srv.client().get(srv.url("/-/healthy")).send().is_ok()
    });
}

#[test]
fn client_auth_types_any_certificate_and_verify_if_given() {
    let pki = Pki::new("test CA");
    let other = Pki::new("other CA");
    let mine = pki.client("mine");
    let stranger = other.client("stranger");
    let with = |id: Option<&web_common::Leaf>| {
        let mut t = pki.client_tls(None);
        t.identity_pem = id.map(|l| format!("{}{}", l.cert_pem, l.key_pem).into_bytes());
        t.client()
    };
    for (auth, none_ok, stranger_ok) in [
        ("RequireAnyClientCert", false, true),
        ("RequestClientCert", true, true),
        ("VerifyClientCertIfGiven", true, false),
    ] {
        let dir = WebDir::new();
        dir.write_server_cert(&pki, &pki.server("tocsin"));
        let ca = if auth.starts_with("Verify") {
            "  client_ca_file: ca.crt\n"
        } else {
            ""
        };
        let cfg = dir.config(&format!("{TLS_WEB}  client_auth_type: {auth}\n{ca}"));
        let srv = TestServer::start_tls(
            bin(),
            &["--web.config.file", &cfg],
            pki.client_tls(Some(&mine)),
        );
        let get = |c: reqwest::blocking::Client| c.get(srv.url("/-/healthy")).send().is_ok();
        assert!(
            get(with(Some(&mine))),
            "{auth}: the CA's own client certificate"
        );
        assert_eq!(get(with(None)), none_ok, "{auth}: no client certificate");
        assert_eq!(
            get(with(Some(&stranger))),
            stranger_ok,
            "{auth}: a certificate from another CA"
        );
    }
}

#[test]
fn default_config_self_scrape_passes_its_own_tls_and_auth() {
    let pki = Pki::new("test CA");
    let dir = WebDir::new();
    dir.write_server_cert(&pki, &pki.server("tocsin"));
    let cfg = dir.config(&format!(
        "{TLS_WEB}basic_auth_users:\n  u: {}\n",
        hash("pw")
    ));
    let srv = TestServer::start_tls(bin(), &["--web.config.file", &cfg], pki.client_tls(None));
    eventually(60, "the self-scrape to report up=1", || {
        query_first(&srv, "u", "pw", "up{job=\"tocsin\"}").as_deref() == Some("1")
    });
    // The process's own token is nowhere a user can read it.
    let conf = srv
        .client()
        .get(srv.url("/api/v1/status/config"))
        .basic_auth("u", Some("pw"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!conf.contains("credentials"), "{conf}");
}
