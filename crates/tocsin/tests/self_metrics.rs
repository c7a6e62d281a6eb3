//! The server's own `/metrics`: the text format 0.0.4 output passes `promtool check metrics`
//! with TYPE lines naming the sample names, OpenMetrics is served when asked for, and the
//! self-metrics Prometheus's and Alertmanager's mixins query exist under their names and types.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use tocsin_testkit::{client, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn scrape(srv: &TestServer, accept: Option<&str>) -> (String, String) {
    let mut r = client().get(srv.url("/metrics"));
    if let Some(a) = accept {
        r = r.header("Accept", a);
    }
    let r = r.send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (ct, r.text().unwrap())
}

/// `# TYPE` of each family in the text, by the name the line carries.
fn types(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// `promtool check metrics` (Debian's prometheus package) must accept the text silently.
fn promtool_check(text: &str) {
    if !Path::new("/usr/bin/promtool").exists() {
        assert!(
            std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_none(),
            "/usr/bin/promtool is not installed (scripts/test installs Debian's prometheus)"
        );
        eprintln!("SKIPPED: promtool check metrics (no /usr/bin/promtool)");
        return;
    }
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics: {said}");
    assert!(said.trim().is_empty(), "promtool check metrics: {said}");
}

#[test]
fn text_004_type_lines_named_the_family_not_the_samples() {
    let srv = TestServer::start(bin(), &[]);
    let (ct, text) = scrape(&srv, None);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"), "{text}");
    let t = types(&text);
    assert_eq!(
        t.get("tocsin_tsdb_head_samples_appended_total")
            .map(String::as_str),
        Some("counter"),
        "{text}"
    );
    assert!(
        !t.contains_key("tocsin_tsdb_head_samples_appended"),
        "{text}"
    );
    // Every sample belongs to the family its TYPE line names.
    let mut family = String::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap_or("").to_string();
            continue;
        }
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let name = l.split(['{', ' ']).next().unwrap_or("");
        let kind = &t[&family];
        let ok = name == family
            || (kind == "histogram"
                && [
                    format!("{family}_bucket"),
                    format!("{family}_sum"),
                    format!("{family}_count"),
                ]
                .contains(&name.to_string()));
        assert!(ok, "sample {name} under TYPE {family} {kind}");
    }
    promtool_check(&text);
    let (ct, om) = scrape(
        &srv,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE tocsin_tsdb_head_samples_appended counter\n"));
}

/// Names and types the prometheus-mixin and alertmanager-mixin alerts and dashboards query.
const COMPAT: &[(&str, &str)] = &[
    ("prometheus_tsdb_head_series", "gauge"),
    ("prometheus_tsdb_head_samples_appended_total", "counter"),
    ("prometheus_tsdb_wal_corruptions_total", "counter"),
    ("prometheus_tsdb_compactions_total", "counter"),
    ("prometheus_tsdb_compactions_failed_total", "counter"),
    ("prometheus_tsdb_head_truncations_failed_total", "counter"),
    (
        "prometheus_tsdb_checkpoint_creations_failed_total",
        "counter",
    ),
    ("prometheus_tsdb_storage_blocks_bytes", "gauge"),
    ("prometheus_tsdb_lowest_timestamp", "gauge"),
    ("prometheus_tsdb_head_min_time", "gauge"),
    ("prometheus_tsdb_head_max_time", "gauge"),
    ("prometheus_config_last_reload_successful", "gauge"),
    (
        "prometheus_config_last_reload_success_timestamp_seconds",
        "gauge",
    ),
    ("prometheus_notifications_dropped_total", "counter"),
    ("prometheus_notifications_queue_length", "gauge"),
    ("prometheus_notifications_queue_capacity", "gauge"),
    ("prometheus_notifications_alertmanagers_discovered", "gauge"),
    ("prometheus_engine_queries", "gauge"),
    (
        "prometheus_target_scrapes_exceeded_sample_limit_total",
        "counter",
    ),
    ("alertmanager_alerts", "gauge"),
    ("alertmanager_silences", "gauge"),
    ("alertmanager_config_last_reload_successful", "gauge"),
    (
        "alertmanager_config_last_reload_success_timestamp_seconds",
        "gauge",
    ),
    ("alertmanager_dispatcher_aggregation_groups", "gauge"),
    ("process_start_time_seconds", "gauge"),
];

/// Alert expressions of the mixins whose metrics Tocsin has (with their selectors dropped).
const MIXIN_EXPRS: &[&str] = &[
    "max_over_time(prometheus_config_last_reload_successful[5m]) == 0",
    "(predict_linear(prometheus_notifications_queue_length[5m], 60 * 30) > min_over_time(prometheus_notifications_queue_capacity[5m]))",
    "(rate(prometheus_notifications_errors_total[5m]) / rate(prometheus_notifications_sent_total[5m])) * 100 > 1",
    "prometheus_notifications_alertmanagers_discovered < 1",
    "increase(prometheus_tsdb_compactions_failed_total[3h]) > 0",
    "increase(prometheus_tsdb_head_truncations_failed_total[3h]) > 0",
    "rate(prometheus_tsdb_head_samples_appended_total[5m]) <= 0",
    "increase(prometheus_rule_evaluation_failures_total[5m]) > 0",
    "increase(prometheus_rule_group_iterations_missed_total[5m]) > 0",
    "increase(prometheus_notifications_dropped_total[5m]) > 0",
    "max_over_time(alertmanager_config_last_reload_successful[5m]) == 0",
    "(rate(alertmanager_notifications_failed_total[5m]) / ignoring (reason) group_left rate(alertmanager_notifications_total[5m])) > 0.01",
    "changes(process_start_time_seconds[10m]) > 4",
];

#[test]
fn prometheus_and_alertmanager_names_were_not_exported() {
    let srv = TestServer::start(bin(), &[]);
    let (_, text) = scrape(&srv, None);
    let t = types(&text);
    for (name, kind) in COMPAT {
        assert_eq!(
            t.get(*name).map(String::as_str),
            Some(*kind),
            "{name} missing or mistyped in\n{text}"
        );
    }
    assert!(
        text.contains("prometheus_tsdb_head_samples_appended_total{type=\"float\"}"),
        "{text}"
    );
    assert!(
        text.contains("alertmanager_alerts{state=\"active\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("alertmanager_silences{state=\"active\"} 0"),
        "{text}"
    );
    for q in MIXIN_EXPRS {
        let r = client()
            .get(srv.url("/api/v1/query"))
            .query(&[("query", *q)])
            .send()
            .unwrap();
        let code = r.status().as_u16();
        let body = r.text().unwrap();
        assert_eq!(code, 200, "{q}: {body}");
        assert!(body.contains("\"status\":\"success\""), "{q}: {body}");
    }
}

#[test]
fn alertmanager_notification_metrics_were_not_exported() {
    let hook = tocsin_testkit::webhook::WebhookCollector::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "alertmanager:\n  route:\n    receiver: hook\n    group_wait: 100ms\n  receivers:\n    - name: hook\n      webhook_configs:\n        - url: {}\n",
            hook.url("/hook")
        ),
    )
    .unwrap();
    let srv = TestServer::start(bin(), &["--config", cfg.to_str().unwrap()]);
    // Configured integrations are counted from the start, before anything was sent.
    let (_, text) = scrape(&srv, None);
    assert!(
        text.contains("alertmanager_notifications_total{integration=\"webhook\"} 0"),
        "{text}"
    );
    let now = tocsin_model::time::format_rfc3339_ms(tocsin_testkit::now_ms());
    let r = client()
        .post(srv.url("/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(format!(
            r#"[{{"labels":{{"alertname":"M"}},"startsAt":"{now}"}}]"#
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    hook.wait_for(std::time::Duration::from_secs(20), "notification", |r| {
        !r.is_empty()
    });
    // The webhook has the request before the sender has its answer and counts it.
    let text = tocsin_testkit::wait_until(
        std::time::Duration::from_secs(20),
        "the notification counted",
        || {
            let (_, text) = scrape(&srv, None);
            text.contains("alertmanager_notifications_total{integration=\"webhook\"} 1")
                .then_some(text)
        },
    );
    let t = types(&text);
    for (name, kind) in [
        ("alertmanager_notifications_total", "counter"),
        ("alertmanager_notifications_failed_total", "counter"),
        ("alertmanager_notification_requests_total", "counter"),
        ("alertmanager_notification_requests_failed_total", "counter"),
        ("alertmanager_notification_latency_seconds", "histogram"),
        ("tocsin_alertmanager_notifications_total", "counter"),
        ("tocsin_alertmanager_notifications_failed_total", "counter"),
    ] {
        assert_eq!(
            t.get(name).map(String::as_str),
            Some(kind),
            "{name} in\n{text}"
        );
    }
    for line in [
        "alertmanager_notifications_total{integration=\"webhook\"} 1",
        "alertmanager_notifications_failed_total{integration=\"webhook\",reason=\"other\"} 0",
        "alertmanager_notification_requests_total{integration=\"webhook\"} 1",
        "alertmanager_notification_latency_seconds_count{integration=\"webhook\"} 1",
        "alertmanager_notification_latency_seconds_bucket{le=\"+Inf\",integration=\"webhook\"} 1",
        "tocsin_alertmanager_notifications_total{receiver=\"hook\",integration=\"webhook\"} 1",
        "alertmanager_alerts{state=\"active\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    promtool_check(&text);
}
