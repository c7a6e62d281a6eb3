//! The integrations that render notification templates, against loopback servers (HTTP and
//! SMTP): exact requests for a firing and a resolved notification, retry classification, render
//! failures, and the load-time errors (unsupported kinds, missing secret files, templates that
//! do not parse).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;
use tocsin_testkit::smtp::{SmtpOptions, SmtpServer, SmtpTls};

use super::tests::{alert, build_one, cx, group, Server, GEN, NOW};
use super::*;
use crate::config::AmConfig;

fn list_a() -> String {
    format!("Labels:\n - alertname = ProbeFailure\n - instance = web-1\n - severity = critical\nAnnotations:\n - runbook = http://rb/1\n - summary = web-1 down\nSource: {GEN}\n")
}

fn list_b() -> String {
    format!("Labels:\n - alertname = ProbeFailure\n - instance = web-2\n - severity = critical\nAnnotations:\n - runbook = http://rb/1\n - summary = web-2 down\nSource: {GEN}\n")
}

/// Both alerts of `group()` resolved.
fn resolved_group() -> Vec<Alert> {
    let (mut a, b) = group();
    a.ends_at = NOW - 1000;
    vec![a, b]
}

fn dedup_key() -> String {
    shared::group_key_hash(&cx().group_key)
}

const SUBJECT: &str = "[FIRING:1] ProbeFailure (critical)";
const SUBJECT_RESOLVED: &str = "[RESOLVED] ProbeFailure (critical)";
const AM_LINK: &str = "http://am.example:9093/#/alerts?receiver=team-x";

#[tokio::test]
async fn pagerduty_v2_triggers_then_resolves_with_the_group_key_hash() {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &format!(
            "name: pd\npagerduty_configs:\n- routing_key: rk-1\n  url: {}\n  class: cls\n  links: [{{href: 'http://l', text: 'L {{{{ .Status }}}}'}}]\n",
            srv.url("/v2/enqueue")
        ),
        dir.path(),
    );
    assert_eq!(n.integration(), "pagerduty");
    assert!(n.send_resolved());
    let (a, b) = group();
    n.notify(&cx(), &[a, b]).await.unwrap();
    n.notify(&cx(), &resolved_group()).await.unwrap();
    let reqs = srv.reqs();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v2/enqueue");
    assert_eq!(
        reqs[0].header("content-type").as_deref(),
        Some("application/json")
    );
    let details = json!({
        "firing": list_a(),
        "num_firing": "1",
        "num_resolved": "1",
        "resolved": list_b(),
    });
    assert_eq!(
        reqs[0].json(),
        json!({
            "routing_key": "rk-1",
            "dedup_key": dedup_key(),
            "event_action": "trigger",
            "payload": {
                "summary": SUBJECT,
                "source": "Alertmanager",
                "severity": "error",
                "class": "cls",
                "custom_details": details,
            },
            "client": "Alertmanager",
            "client_url": AM_LINK,
            "links": [{"href": "http://l", "text": "L firing"}],
        })
    );
    let r = reqs[1].json();
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(r["dedup_key"], dedup_key());
    assert_eq!(r["payload"]["summary"], SUBJECT_RESOLVED);
    assert_eq!(r["payload"]["custom_details"]["num_firing"], "0");
}

#[tokio::test]
async fn pagerduty_v1_reads_the_service_key_file_at_load() {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pd.key"), "sk-9\n").unwrap();
    let n = build_one(
        &format!(
            "name: pd\npagerduty_configs:\n- service_key_file: pd.key\n  url: {}\n  details: {{team: '{{{{ .CommonLabels.severity }}}}'}}\n",
            srv.url("/generic")
        ),
        dir.path(),
    );
    n.notify(&cx(), &resolved_group()).await.unwrap();
    assert_eq!(
        srv.reqs()[0].json(),
        json!({
            "service_key": "sk-9",
            "incident_key": dedup_key(),
            "event_type": "resolve",
            "description": SUBJECT_RESOLVED,
            "client": "Alertmanager",
            "client_url": AM_LINK,
            "details": {"team": "critical"},
        })
    );
    let e = build_receiver(
        &super::tests::receiver("name: pd\npagerduty_configs:\n- service_key_file: nope.key\n"),
        dir.path(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("pagerduty_configs[0]: service_key_file") && e.contains("nope.key"),
        "{e}"
    );
}

#[tokio::test]
async fn http_integrations_retry_429_and_5xx_but_not_other_4xx() {
    let srv = Server::start(&[429, 503, 400]).await;
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &format!(
            "name: d\ndiscord_configs:\n- webhook_url: {}\n",
            srv.url("/hook")
        ),
        dir.path(),
    );
    let (a, _) = group();
    let alerts = [a];
    let e = n.notify(&cx(), &alerts).await.unwrap_err();
    assert!(e.retryable && e.reason == Reason::ClientError, "{e:?}");
    let e = n.notify(&cx(), &alerts).await.unwrap_err();
    assert!(e.retryable && e.reason == Reason::ServerError, "{e:?}");
    let e = n.notify(&cx(), &alerts).await.unwrap_err();
    assert!(!e.retryable, "{e:?}");
    n.notify(&cx(), &alerts).await.unwrap();
}

#[tokio::test]
async fn a_field_that_fails_to_render_fails_the_notification_with_the_field_named() {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &format!(
            "name: d\ndiscord_configs:\n- webhook_url: {}\n  title: '{{{{ .Alerts.Nope }}}}'\n",
            srv.url("/hook")
        ),
        dir.path(),
    );
    let (a, _) = group();
    let e = n.notify(&cx(), &[a]).await.unwrap_err();
    assert!(!e.retryable);
    assert!(
        e.message.starts_with("rendering title: template:") && e.message.contains("Nope"),
        "{}",
        e.message
    );
    assert!(srv.reqs().is_empty());
}

#[tokio::test]
async fn slack_sends_one_attachment() {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &format!(
            r#"name: s
slack_configs:
- api_url: {}
  send_resolved: true
  channel: '#ops'
  text: '{{{{ range .Alerts }}}}{{{{ .Annotations.summary }}}}; {{{{ end }}}}'
  short_fields: true
  fields:
  - title: sev
    value: '{{{{ .CommonLabels.severity }}}}'
  - title: long
    value: x
    short: false
  actions:
  - type: button
    text: Runbook
    url: 'http://rb/1'
"#,
            srv.url("/services/T/B/X")
        ),
        dir.path(),
    );
    assert_eq!(n.integration(), "slack");
    let (a, b) = group();
    n.notify(&cx(), &[a, b]).await.unwrap();
    n.notify(&cx(), &resolved_group()).await.unwrap();
    let reqs = srv.reqs();
    assert_eq!(reqs[0].path, "/services/T/B/X");
    assert_eq!(
        reqs[0].json(),
        json!({
            "channel": "#ops",
            "username": "Alertmanager",
            "attachments": [{
                "title": SUBJECT,
                "title_link": AM_LINK,
                "text": "web-1 down; web-2 down; ",
                "fallback": format!("{SUBJECT} | {AM_LINK}"),
                "callback_id": "",
                "fields": [
                    {"title": "sev", "value": "critical", "short": true},
                    {"title": "long", "value": "x", "short": false},
                ],
                "actions": [{"type": "button", "text": "Runbook", "url": "http://rb/1"}],
                "footer": "",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }],
        })
    );
    let r = reqs[1].json();
    assert_eq!(r["attachments"][0]["color"], "good");
    assert_eq!(r["attachments"][0]["title"], SUBJECT_RESOLVED);
}

#[tokio::test]
async fn discord_telegram_and_teams_payloads() {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bot"), "123:abc\n").unwrap();
    let (a, b) = group();
    let firing = [a.clone()];

    let d = build_one(
        &format!(
            "name: d\ndiscord_configs:\n- webhook_url: {}\n  username: bot\n",
            srv.url("/discord")
        ),
        dir.path(),
    );
    assert_eq!(d.integration(), "discord");
    d.notify(&cx(), &firing).await.unwrap();
    let lists = format!("\n\nAlerts Firing:\n{}\n\n\n", list_a());
    assert_eq!(
        srv.reqs()[0].json(),
        json!({
            "embeds": [{"title": "[FIRING:1] ProbeFailure (web-1 critical)", "description": lists, "color": 0x992D22}],
            "username": "bot",
        })
    );

    let t = build_one(
        &format!(
            "name: t\ntelegram_configs:\n- api_url: {}\n  bot_token_file: bot\n  chat_id: -100\n  message_thread_id: 7\n  disable_notifications: true\n  message: '{{{{ .Status }}}} <b>x</b>'\n",
            srv.url("/tg")
        ),
        dir.path(),
    );
    assert_eq!(t.integration(), "telegram");
    t.notify(&cx(), &resolved_group()).await.unwrap();
    let r = &srv.reqs()[1];
    assert_eq!(r.path, "/tg/bot123:abc/sendMessage");
    assert_eq!(
        r.json(),
        json!({"chat_id": -100, "message_thread_id": 7, "text": "resolved <b>x</b>", "parse_mode": "HTML", "disable_notification": true, "disable_web_page_preview": true})
    );

    let m = build_one(
        &format!(
            "name: m\nmsteams_configs:\n- webhook_url: {}\n  text: 'n={{{{ len .Alerts }}}}'\n",
            srv.url("/teams")
        ),
        dir.path(),
    );
    assert_eq!(m.integration(), "msteams");
    m.notify(&cx(), &[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(
        srv.reqs()[2].json(),
        json!({
            "@context": "http://schema.org/extensions",
            "type": "MessageCard",
            "title": SUBJECT,
            "summary": SUBJECT,
            "text": "n=2",
            "themeColor": "8C1A1A",
        })
    );

    let m2 = build_one(
        &format!(
            "name: m\nmsteamsv2_configs:\n- webhook_url: {}\n  text: 'hello'\n",
            srv.url("/flow")
        ),
        dir.path(),
    );
    assert_eq!(m2.integration(), "msteamsv2");
    m2.notify(&cx(), &resolved_group()).await.unwrap();
    let v = srv.reqs()[3].json();
    assert_eq!(v["type"], "message");
    let card = &v["attachments"][0]["content"];
    assert_eq!(
        v["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert!(v["attachments"][0]["contentUrl"].is_null());
    assert!(v["attachments"][0]
        .as_object()
        .unwrap()
        .contains_key("contentUrl"));
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["body"][0]["text"], SUBJECT_RESOLVED);
    assert_eq!(card["body"][0]["color"], "Good");
    assert_eq!(card["body"][1]["text"], "hello");
}

#[tokio::test]
async fn opsgenie_creates_then_closes_by_alias() {
    let srv = Server::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &format!(
            "name: o\nopsgenie_configs:\n- api_key: gk\n  api_url: {}\n  tags: 'a, {{{{ .CommonLabels.severity }}}}'\n  priority: P2\n  responders: [{{name: ops, type: team}}]\n  details: {{x: y}}\n",
            srv.url("/")
        ),
        dir.path(),
    );
    assert_eq!(n.integration(), "opsgenie");
    let (a, _) = group();
    n.notify(&cx(), &[a]).await.unwrap();
    n.notify(&cx(), &resolved_group()).await.unwrap();
    let reqs = srv.reqs();
    assert_eq!(reqs[0].path, "/v2/alerts");
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some("GenieKey gk")
    );
    assert_eq!(
        reqs[0].json(),
        json!({
            "alias": dedup_key(),
            "message": "[FIRING:1] ProbeFailure (web-1 critical)",
            "description": format!("http://rb/1 web-1 down\nAlerts Firing:\n{}\n", list_a()),
            "details": {"alertname": "ProbeFailure", "instance": "web-1", "severity": "critical", "x": "y"},
            "source": AM_LINK,
            "responders": [{"name": "ops", "type": "team"}],
            "tags": ["a", "critical"],
            "priority": "P2",
        })
    );
    assert_eq!(reqs[1].path, format!("/v2/alerts/{}/close", dedup_key()));
    assert_eq!(reqs[1].json(), json!({"source": AM_LINK}));
}

fn smtp_cfg(srv: &SmtpServer, dir: &std::path::Path, extra: &str) -> String {
    std::fs::write(dir.join("ca.pem"), &srv.cert_pem).unwrap();
    format!(
        "name: mail\nemail_configs:\n- to: 'a@example.org, b@example.org'\n  from: 'Tocsin <am@example.org>'\n  smarthost: '{}'\n  hello: tocsin.test\n  tls_config: {{ca_file: ca.pem, server_name: localhost}}\n{extra}",
        srv.smarthost()
    )
}

#[tokio::test]
async fn email_over_starttls_with_auth_plain() {
    let srv = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        auth: Some(("user".into(), "pw".into())),
        login_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "pw\n").unwrap();
    let n = build_one(
        &smtp_cfg(&srv, dir.path(), "  auth_username: user\n  auth_password_file: pw\n  headers: {x-team: '{{ .CommonLabels.severity }}'}\n  send_resolved: true\n"),
        dir.path(),
    );
    assert_eq!(n.integration(), "email");
    assert!(n.send_resolved());
    let (a, b) = group();
    n.notify(&cx(), &[a, b]).await.unwrap();
    let m = srv.wait_for(Duration::from_secs(5), "one mail", |m| m.len() == 1);
    let m = &m[0];
    assert!(m.tls, "sent without STARTTLS");
    assert_eq!(m.auth, Some(("PLAIN".into(), "user".into())));
    assert_eq!(m.hello, "tocsin.test");
    assert_eq!(m.mail_from, "am@example.org");
    assert_eq!(m.rcpt_to, ["a@example.org", "b@example.org"]);
    assert_eq!(m.header("Subject").as_deref(), Some(SUBJECT));
    assert_eq!(
        m.header("To").as_deref(),
        Some("a@example.org, b@example.org")
    );
    assert_eq!(m.header("From").as_deref(), Some("Tocsin <am@example.org>"));
    assert_eq!(m.header("X-Team").as_deref(), Some("critical"));
    assert!(m.header("Message-ID").is_some() && m.header("Date").is_some());
    assert!(
        m.header("Content-Type").unwrap().starts_with("text/html"),
        "{:?}",
        m.headers()
    );
    let body = m.body();
    assert!(body.contains("web-1") && body.contains("web-2"), "{body}");
}

#[tokio::test]
async fn email_uses_auth_login_when_the_server_offers_only_login() {
    let srv = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        auth: Some(("user".into(), "pw".into())),
        login_only: true,
    });
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &smtp_cfg(
            &srv,
            dir.path(),
            "  auth_username: user\n  auth_password: pw\n",
        ),
        dir.path(),
    );
    let (a, _) = group();
    n.notify(&cx(), std::slice::from_ref(&a)).await.unwrap();
    let m = &srv.wait_for(Duration::from_secs(5), "one mail", |m| m.len() == 1)[0];
    assert_eq!(m.auth, Some(("LOGIN".into(), "user".into())));
    // A wrong password is a permanent SMTP error: not retried.
    let n = build_one(
        &smtp_cfg(
            &srv,
            dir.path(),
            "  auth_username: user\n  auth_password: wrong\n",
        ),
        dir.path(),
    );
    let e = n.notify(&cx(), &[a]).await.unwrap_err();
    assert!(!e.retryable, "{e:?}");
}

#[tokio::test]
async fn email_with_text_and_html_is_multipart_alternative_over_implicit_tls() {
    let srv = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::Implicit,
        auth: None,
        login_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(
        &smtp_cfg(&srv, dir.path(), "  force_implicit_tls: true\n  text: 'T {{ .Status }} {{ .CommonLabels.x }}'\n  html: '<b>H {{ len .Alerts }}</b> {{ .CommonLabels.x }}'\n"),
        dir.path(),
    );
    let a = alert(&[("alertname", "A"), ("x", "<i>&")], &[], 0);
    n.notify(&cx(), &[a]).await.unwrap();
    let m = &srv.wait_for(Duration::from_secs(5), "one mail", |m| m.len() == 1)[0];
    assert!(m.tls && m.auth.is_none());
    assert!(
        m.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{:?}",
        m.headers()
    );
    let body = m.body();
    let t = body.find("T firing <i>&").expect("text part, data as is");
    let h = body
        .find("<b>H 1</b> &lt;i&gt;&amp;")
        .expect("html part, data escaped");
    assert!(t < h, "text before html: {body}");
}

#[tokio::test]
async fn email_requiring_tls_fails_against_a_server_without_starttls() {
    let srv = SmtpServer::start(SmtpOptions {
        tls: SmtpTls::None,
        auth: None,
        login_only: false,
    });
    let dir = tempfile::tempdir().unwrap();
    let n = build_one(&smtp_cfg(&srv, dir.path(), ""), dir.path());
    let (a, _) = group();
    let e = n.notify(&cx(), std::slice::from_ref(&a)).await.unwrap_err();
    assert!(e.message.contains("sending mail via"), "{}", e.message);
    assert!(srv.messages().is_empty());
    let n = build_one(
        &smtp_cfg(&srv, dir.path(), "  require_tls: false\n"),
        dir.path(),
    );
    n.notify(&cx(), &[a]).await.unwrap();
    let m = &srv.wait_for(Duration::from_secs(5), "one mail", |m| m.len() == 1)[0];
    assert!(!m.tls);
}

#[test]
fn load_refuses_unsupported_kinds_missing_secrets_and_bad_templates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("am.yml");
    let file = file.to_str().unwrap();
    let text = "route:\n  receiver: a\nreceivers:\n- name: a\n  sns_configs:\n  - topic_arn: x\n- name: b\n  pagerduty_configs:\n  - routing_key_file: missing.key\n- name: c\n  slack_configs:\n  - api_url: http://127.0.0.1:1/\n    title: '{{ nosuch }}'\n- name: d\n  email_configs:\n  - to: x@y\n    smarthost: 'h:25'\n    from: a@b\n    auth_secret: s\n";
    let e = AmConfig::parse(text, file).unwrap_err().to_string();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:4:3: receivers[0]: receiver \"a\": sns_configs is not supported"
        )),
        "{e}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:7:3: receivers[1]: receiver \"b\": pagerduty_configs[0]: routing_key_file"
        )),
        "{e}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:10:3: receivers[2]: receiver \"c\": slack_configs[0]: title: template:"
        )) && lines[2].contains("nosuch"),
        "{e}"
    );
    assert!(
        lines[3].contains("auth_secret (CRAM-MD5) is not supported"),
        "{e}"
    );

    std::fs::create_dir(dir.path().join("t")).unwrap();
    std::fs::write(
        dir.path().join("t/x.tmpl"),
        "{{ define \"a\" }}\n{{ end }}{{ end }}",
    )
    .unwrap();
    let e = AmConfig::parse(
        "templates: ['t/*.tmpl']\nroute:\n  receiver: a\nreceivers:\n- name: a\n",
        file,
    )
    .unwrap_err()
    .to_string();
    let want = format!(
        "{file}: templates: {}:2: ",
        dir.path().join("t/x.tmpl").display()
    );
    assert!(e.starts_with(&want), "{e}");
}

#[test]
fn global_defaults_reach_the_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("am.yml");
    std::fs::write(dir.path().join("slack.url"), "http://127.0.0.1:9/slack\n").unwrap();
    let text = "global:\n  smtp_smarthost: 'localhost:25'\n  smtp_from: 'am@example.org'\n  slack_api_url_file: slack.url\n  pagerduty_url: 'http://127.0.0.1:9/pd'\nroute:\n  receiver: a\nreceivers:\n- name: a\n  email_configs:\n  - to: x@example.org\n  slack_configs:\n  - channel: '#x'\n  pagerduty_configs:\n  - service_key: k\n";
    let c = AmConfig::parse(text, file.to_str().unwrap()).unwrap();
    let n = build_receiver(&c.receivers[0], dir.path()).unwrap();
    let kinds: Vec<&str> = n.iter().map(|n| n.integration()).collect();
    assert_eq!(kinds, ["email", "pagerduty", "slack"]);
    assert!(
        !n[0].send_resolved(),
        "email does not send resolved by default"
    );
    assert!(
        !n[2].send_resolved(),
        "slack does not send resolved by default"
    );
    let e = AmConfig::parse(
        "route:\n  receiver: a\nreceivers:\n- name: a\n  email_configs:\n  - to: x@example.org\n",
        file.to_str().unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no global SMTP from set"), "{e}");
    let _ = alert(&[("a", "b")], &[], 0);
}
