//! The server's own `/metrics`: the text format 0.0.4 output passes `promtool check metrics`
//! with TYPE lines naming the sample names, OpenMetrics is served when asked for, and the
//! self-metrics Prometheus's and Alertmanager's mixins query exist under their names and types.

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
    if Path::new("/usr/bin/promtool").exists() {
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
    let (ct, om) = scrape(
        &srv,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE tocsin_tsdb_head_samples_appended counter\n"));
}
