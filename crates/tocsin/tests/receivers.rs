//! The templated receivers in the real server: Debian's stock `/etc/prometheus/alertmanager.yml`
//! (installed by `scripts/test` with prometheus-alertmanager) loaded as the alert manager's
//! configuration with only its SMTP smarthost (plus TLS trust for the test server's certificate)
//! and the PagerDuty URL pointed at loopback servers; alerts posted to `/api/v2/alerts` arrive as
//! mails and PagerDuty events at the receivers its routing tree names. Also: an unsupported
//! integration stops `tocsin check config` and the server. And the Pub/Sub receiver's Google
//! modes against the fake Google server: publishing to a topic and pushing with an ID token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tocsin_testkit::fake_gcp::FakeGcp;
use tocsin_testkit::smtp::{SmtpOptions, SmtpServer, SmtpTls};
use tocsin_testkit::webhook::WebhookCollector;
use tocsin_testkit::{client, now_ms, TestServer};

const DEBIAN_AM_CONFIG: &str = "/etc/prometheus/alertmanager.yml";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn have(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("{path} is not installed (scripts/test installs it)");
    }
    eprintln!("SKIPPED: {path} not installed; scripts/test installs it");
    false
}

/// Debian's file with the smarthost, its TLS trust and the PagerDuty URL rewritten.
fn rewrite(stock: &str, smarthost: &str, pd_url: &str) -> String {
    let mut out = String::new();
    let mut replaced = false;
    for line in stock.lines() {
        if line.trim_start().starts_with("smtp_smarthost:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}smtp_smarthost: '{smarthost}'\n"));
            out.push_str(&format!(
                "{indent}smtp_tls_config: {{ca_file: ca.pem, server_name: localhost}}\n"
            ));
            out.push_str(&format!("{indent}pagerduty_url: '{pd_url}'\n"));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(replaced, "no smtp_smarthost in {DEBIAN_AM_CONFIG}");
    out
}

fn post_alerts(srv: &TestServer, alerts: &[Value]) {
    let r = client()
        .post(srv.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(Value::Array(alerts.to_vec()).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
}

fn alert(labels: Value) -> Value {
    json!({
        "labels": labels,
        "annotations": {"summary": "something is wrong"},
        "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms() - 60_000),
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
        "generatorURL": "http://prom/graph"
    })
}

#[test]
fn debian_stock_alertmanager_config_routes_mail_and_pagerduty() {
    if !have(DEBIAN_AM_CONFIG) {
        return;
    }
    let stock = std::fs::read_to_string(DEBIAN_AM_CONFIG).unwrap();
    let smtp = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        // The stock file's credentials.
        auth: Some(("alertmanager".into(), "password".into())),
        login_only: false,
    });
    let pd = WebhookCollector::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &smtp.cert_pem).unwrap();
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        rewrite(&stock, &smtp.smarthost(), &pd.url("/v2/enqueue")),
    )
    .unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(&cfg, "alertmanager:\n  file: alertmanager.yml\n").unwrap();
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    post_alerts(
        &srv,
        &[
            alert(json!({"alertname": "A1", "service": "foo1", "severity": "warning"})),
            alert(json!({"alertname": "A2", "service": "foo2", "severity": "critical"})),
            alert(json!({"alertname": "A3", "service": "files", "severity": "critical"})),
            alert(json!({"alertname": "A4", "service": "database", "owner": "team-Y"})),
            alert(json!({"alertname": "A5", "service": "database"})),
            alert(json!({"alertname": "A6", "service": "other"})),
        ],
    );
    // The stock group_wait is 30s.
    let mails = smtp.wait_for(Duration::from_secs(90), "three mails", |m| m.len() >= 3);
    let events = pd.wait_for(Duration::from_secs(30), "four PagerDuty events", |r| {
        r.len() >= 4
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(smtp.messages().len(), 3, "server log:\n{}", srv.log_text());
    assert_eq!(pd.requests().len(), 4);

    let mut by_rcpt: Vec<(String, String)> = mails
        .iter()
        .map(|m| {
            assert!(m.tls, "mail sent without STARTTLS");
            assert_eq!(m.auth, Some(("PLAIN".into(), "alertmanager".into())));
            assert_eq!(m.mail_from, "alertmanager@example.org");
            assert_eq!(m.rcpt_to.len(), 1);
            assert_eq!(
                m.header("From").as_deref(),
                Some("alertmanager@example.org")
            );
            assert_eq!(m.header("To").as_deref(), Some(m.rcpt_to[0].as_str()));
            (
                m.rcpt_to[0].clone(),
                m.header("Subject").unwrap_or_default(),
            )
        })
        .collect();
    by_rcpt.sort();
    assert_eq!(
        by_rcpt,
        [
            (
                "team-X+alerts-critical@example.org".to_string(),
                "[FIRING:1] A2 foo2 (critical)".to_string()
            ),
            (
                "team-X+alerts@example.org".to_string(),
                "[FIRING:1] A1 foo1 (warning)".to_string()
            ),
            // The subject's trailing space (no extra common labels) is not kept by the header.
            (
                "team-X+alerts@example.org".to_string(),
                "[FIRING:1] A6 other".to_string()
            ),
        ]
    );

    let mut pd_events: Vec<(String, String, String)> = events
        .iter()
        .map(|r| {
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/v2/enqueue");
            let b = r.json();
            assert_eq!(b["event_type"], "trigger");
            assert_eq!(b["client"], "Alertmanager");
            assert_eq!(b["incident_key"].as_str().unwrap().len(), 64);
            (
                b["service_key"].as_str().unwrap().to_string(),
                b["description"].as_str().unwrap().to_string(),
                b["details"]["num_firing"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pd_events.sort();
    let ev = |k: &str, d: &str| (k.to_string(), d.to_string(), "1".to_string());
    assert_eq!(
        pd_events,
        [
            // The database route groups by [alertname, cluster, database]: `service` is only a
            // common label.
            ev("<team-DB-key>", "[FIRING:1] A5 (database)"),
            ev("<team-X-key>", "[FIRING:1] A2 foo2 (critical)"),
            ev("<team-Y-key>", "[FIRING:1] A3 files (critical)"),
            ev("<team-Y-key>", "[FIRING:1] A4 (team-Y database)"),
        ]
    );
}

#[test]
fn an_unsupported_integration_fails_check_config_and_startup() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "alertmanager:\n  route:\n    receiver: r\n  receivers:\n    - name: r\n      victorops_configs:\n        - api_key: k\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(":5:") && text.contains("receiver \"r\": victorops_configs is not supported"),
        "{text}"
    );
    let out = Command::new(bin())
        .args([
            "server",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("victorops_configs is not supported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pubsub_receiver_publishes_to_a_topic_and_pushes_with_an_id_token() {
    let google = FakeGcp::start();
    google.add_topic("projects/fleet/topics/incidents");
    let handler = WebhookCollector::start();
    let dir = tempfile::tempdir().unwrap();
    google.write_key(dir.path(), "sa.json");
    let push_url = handler.url("/push");
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "alertmanager:
  route:
    receiver: google
    group_wait: 0s
  receivers:
    - name: google
      pubsub_configs:
        - topic: projects/fleet/topics/incidents
          google:
{g1}            service_account_key_file: sa.json
        - url: {push_url}
          id_token: {{}}
          google:
{g2}",
            g1 = google.google_yaml(12, None),
            g2 = google.google_yaml(12, None),
        ),
    )
    .unwrap();
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    post_alerts(
        &srv,
        &[alert(
            json!({"alertname": "HighCpu", "instance_id": "42", "zone": "europe-west1-b"}),
        )],
    );
    google.wait_until(Duration::from_secs(30), "a published incident", |g| {
        !g.published().is_empty()
    });
    let p = google.published();
    let inc = &p[0].json()["incident"];
    assert_eq!(inc["policy_name"], "HighCpu");
    assert_eq!(inc["state"], "open");
    assert_eq!(p[0].attributes["state"], "open");
    // The key flow served the publish; the metadata server the push's ID token.
    assert_eq!(google.requests_to("/token").len(), 1);
    let pushes = handler.wait_for(Duration::from_secs(30), "a push", |r| !r.is_empty());
    let auth = pushes[0].header("authorization").unwrap();
    let claims = FakeGcp::verify_id_token(auth.strip_prefix("Bearer ").unwrap()).unwrap();
    assert_eq!(claims["aud"], Value::from(push_url));
}

#[test]
fn pubsub_receiver_with_an_unreadable_key_fails_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        "alertmanager:\n  route:\n    receiver: r\n  receivers:\n    - name: r\n      pubsub_configs:\n        - topic: projects/p/topics/t\n          google: {service_account_key_file: missing-key.json}\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["check", "config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("pubsub_configs[0].google.service_account_key_file")
            && text.contains("missing-key.json"),
        "{text}"
    );
}
