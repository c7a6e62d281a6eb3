//! The web console in a real browser: Debian's Chromium driven by playwright-core (both installed
//! by scripts/test) through the scenarios in `tests/browser/console.mjs`, against the real server.
//! Every page loads without console errors, a rule's alert appears live, a silence made in the
//! form mutes the alert (and `amtool` sees it), a graph draws, a PromQL error shows where it is,
//! big lists stay responsive, the console works under an external-URL prefix and behind basic
//! auth. Screenshots land in target/browser-screens/.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tocsin_testkit::expo::{ExpoOptions, ExpoServer};
use tocsin_testkit::TestServer;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where playwright-core was installed (`npm install --prefix <dir> playwright-core@1`).
fn deps_dir() -> PathBuf {
    std::env::var_os("TOCSIN_BROWSER_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/browser-deps"))
}

/// True when Chromium, node and playwright-core are there; otherwise says so loudly, and fails
/// when scripts/test should have installed them.
fn browser_available() -> bool {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("/usr/bin/chromium (apt: chromium)".to_string());
    }
    if !deps_dir().join("node_modules/playwright-core").is_dir() {
        missing.push(format!(
            "playwright-core in {} (npm install --prefix {} playwright-core@1)",
            deps_dir().display(),
            deps_dir().display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "browser tests need {}; scripts/test installs them",
        missing.join(", ")
    );
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

fn screens() -> PathBuf {
    workspace().join("target/browser-screens")
}

/// Runs one scenario; returns its result object. Fails the test on a scenario failure or on any
/// browser console error the scenario did not expect.
fn scenario(name: &str, base: &str, args: Value) -> Value {
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs"))
        .arg(name)
        .arg(base)
        .arg(args.to_string())
        .env("PLAYWRIGHT_DEPS", deps_dir())
        .env("SCREENS", screens())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("scenario {name} printed no result:\n{stdout}\n{stderr}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert!(
        v.get("failure").is_none() && out.status.success(),
        "scenario {name} failed: {}\nstderr: {stderr}",
        v["failure"].as_str().unwrap_or("(exit status)")
    );
    assert_eq!(
        v["errors"],
        json!([]),
        "scenario {name}: browser errors (screenshots in {})",
        screens().display()
    );
    v
}

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const RULES: &str = r#"groups:
  - name: console
    interval: 1s
    rules:
      - alert: UiTriggered
        expr: ui_trigger_value > 0
        labels:
          severity: critical
        annotations:
          summary: "trigger is {{ $value }}"
          runbook_url: https://runbooks.example/ui-triggered
      - alert: UiAlwaysOn
        expr: vector(1)
        labels:
          severity: warning
          team: web
      - record: ui:graph:sum
        expr: sum(ui_graph_value)
"#;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(extra_cfg: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
        std::fs::write(
            dir.path().join("tocsin.yml"),
            format!("global:\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\n{extra_cfg}"),
        )
        .unwrap();
        Setup { dir }
    }

    fn start(&self, extra: &[&str]) -> TestServer {
        let cfg = self.dir.path().join("tocsin.yml");
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend_from_slice(extra);
        TestServer::start_on(bin(), &self.dir.path().join("data"), &args)
    }
}

/// Line protocol into the server: `ui_graph_value` series with a minute of history each.
fn push_graph_data(srv: &TestServer, series: usize, points: usize) {
    let now = now_s();
    let mut body = String::new();
    for p in 0..points {
        let t = now - (points - p) as u64 * 15;
        for s in 0..series {
            body.push_str(&format!(
                "ui_graph,series=s{s} value={} {t}\n",
                (s * 10 + p % 17) as f64
            ));
        }
    }
    let r = srv
        .client()
        .post(srv.url("/write?precision=s"))
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
}

fn alerts(srv: &TestServer, filter: &str) -> Vec<Value> {
    srv.client()
        .get(srv.url("/api/v2/alerts"))
        .query(&[("filter", filter)])
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn console_pages_live_alert_silence_graph_and_promql_error() {
    if !browser_available() {
        return;
    }
    let setup = Setup::new("");
    let srv = setup.start(&[]);
    let base = srv.url("");
    push_graph_data(&srv, 5, 200);
    wait_until(30, "the always-on alert", || {
        !alerts(&srv, "alertname=\"UiAlwaysOn\"").is_empty()
    });
    let fp = alerts(&srv, "alertname=\"UiAlwaysOn\"")[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    let v = scenario("pages", &base, json!({ "fingerprint": fp }));
    assert_eq!(v["backTo"], "/rules", "{v}");
    assert!(v["ruleLinks"].as_u64().unwrap() >= 3, "{v}");

    // The page is open before the rule's input exists; the alert then shows up without a reload.
    let mut live = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console.mjs"))
        .args(["live", &base])
        .arg(json!({ "alertname": "UiTriggered" }).to_string())
        .env("PLAYWRIGHT_DEPS", deps_dir())
        .env("SCREENS", screens())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(live.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("READY") {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "live scenario ended before the page was ready");
    }
    let r = srv
        .client()
        .post(srv.url("/write"))
        .body("ui_trigger,env=test value=3\n")
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(live.wait().unwrap().success(), "live scenario: {rest}");
    let v: Value = serde_json::from_str(
        rest.lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(v["errors"], json!([]), "{v}");
    assert_eq!(v["sameDocument"], true, "the page reloaded: {v}");
    assert!(
        v["lagMs"].as_i64().unwrap() <= 2000,
        "the console showed the alert more than 2 s after the API listed it: {v}"
    );

    let v = scenario("graph", &base, json!({ "expr": "ui_graph_value" }));
    assert_eq!(v["series"], 5, "{v}");
    assert!(v["points"].as_u64().unwrap() > 10, "{v}");
    assert!(v["inkPixels"].as_u64().unwrap() > 500, "blank chart: {v}");
    assert!(v["url"].as_str().unwrap().contains("stacked=1"), "{v}");
    // The legend names the series and shows their values under the cursor.
    assert!(
        v["legend"].as_str().unwrap().contains("series=\"s4\""),
        "{v}"
    );

    let v = scenario("promqlError", &base, json!({ "expr": "sum(rate(x[5m])" }));
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("parse error"), "{msg}");
    // The caret sits under column 16 (the end, where the parenthesis is missing).
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines[0], "sum(rate(x[5m])", "{msg}");
    assert_eq!(lines[1].find('^'), Some(15), "caret misplaced: {msg}");

    let v = scenario(
        "silence",
        &base,
        json!({ "matchers": "{alertname=\"UiAlwaysOn\"}", "alertname": "UiAlwaysOn", "comment": "muted from the browser" }),
    );
    assert!(v["preview"].as_str().unwrap().starts_with("1 "), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let a = &alerts(&srv, "alertname=\"UiAlwaysOn\"")[0];
    assert_eq!(a["status"]["silencedBy"], json!([id]), "{a}");
    if amtool_available() {
        let out = Command::new("/usr/bin/amtool")
            .arg(format!("--alertmanager.url={base}"))
            .args(["silence", "query", "-o", "json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&id) && text.contains("muted from the browser"),
            "amtool silence query: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn amtool_available() -> bool {
    if Path::new("/usr/bin/amtool").exists() {
        return true;
    }
    if std::env::var_os("TOCSIN_REQUIRE_EXTERNAL").is_some() {
        panic!("/usr/bin/amtool is not installed (scripts/test installs prometheus-alertmanager)");
    }
    eprintln!("SKIPPED: the amtool check (no /usr/bin/amtool)");
    false
}

#[test]
fn console_works_under_the_external_url_prefix() {
    if !browser_available() {
        return;
    }
    let setup = Setup::new("");
    let srv = setup.start(&["--web.external-url", "http://127.0.0.1/tocsin/"]);
    wait_until(30, "the always-on alert", || {
        !alerts(&srv, "alertname=\"UiAlwaysOn\"").is_empty()
    });
    // The page names its assets under the prefix, and they are served there.
    let page = srv
        .client()
        .get(srv.url("/tocsin/graph"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(page.contains("/tocsin/assets/app."), "{page}");
    let v = scenario("pages", &srv.url("/tocsin"), json!({}));
    assert_eq!(v["backTo"], "/tocsin/rules", "{v}");
}

#[test]
fn console_behind_basic_auth_asks_for_credentials_and_names_the_missing_role() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = |pw: &str| bcrypt::hash(pw, 4).unwrap();
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  viewer: {}\n  ops: {}\nbasic_auth_roles:\n  viewer: [read]\n  ops: [read, alert]\n",
            hash("viewerpw"),
            hash("opspw")
        ),
    )
    .unwrap();
    let setup = Setup::new("");
    let srv = setup.start(&["--web.config.file", web.to_str().unwrap()]);
    let r = srv.client().get(srv.url("/")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().starts_with("Basic")),
        "no basic-auth challenge: {:?}",
        r.headers()
    );
    let v = scenario(
        "forbidden",
        &srv.url(""),
        json!({ "user": "viewer", "password": "viewerpw" }),
    );
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("needs the alert role"), "{msg}");
    // The same form with a user that has the role works.
    scenario(
        "pages",
        &srv.url(""),
        json!({ "user": "ops", "password": "opspw" }),
    );
}

/// 20,000 alerts and 50,000 targets (45,000 dropped by relabelling): the console's first view
/// and a search stay quick enough to use (bounds are loose: this is a debug build on a shared
/// machine; `bench/console/run` measures the release build).
#[test]
fn console_stays_responsive_with_20000_alerts_and_50000_targets() {
    if !browser_available() {
        return;
    }
    let expo = ExpoServer::start(
        "# TYPE fleet_up gauge\nfleet_up 1\n",
        ExpoOptions::default(),
    );
    let setup = Setup::new(
        "scrape_configs:\n  - job_name: fleet\n    scrape_interval: 2m\n    file_sd_configs:\n      - files: ['fleet.json']\n    relabel_configs:\n      - source_labels: [shard]\n        regex: '.*0'\n        action: keep\n",
    );
    let groups: Vec<Value> = (0..50_000)
        .map(|i| json!({ "targets": [expo.addr.clone()], "labels": { "shard": i.to_string(), "rack": format!("r{}", i % 97) } }))
        .collect();
    std::fs::write(
        setup.dir.path().join("fleet.json"),
        serde_json::to_vec(&groups).unwrap(),
    )
    .unwrap();
    let srv = setup.start(&[]);
    let end = "2099-01-01T00:00:00Z";
    // Alertmanager's rule: an alert posted with an end but no start starts at its end.
    let start = tocsin_model::time::format_rfc3339_millis(now_s() as i64 * 1000);
    for batch in 0..4 {
        let body: Vec<Value> = (0..5_000)
            .map(|i| {
                let n = batch * 5_000 + i;
                let severity = ["critical", "warning", "info"][n % 3];
                json!({
                    "labels": { "alertname": format!("Fleet{}", n % 50), "instance": format!("vm-{n}"), "severity": severity },
                    "annotations": { "summary": format!("vm-{n} is unhappy") },
                    "startsAt": start,
                    "endsAt": end,
                })
            })
            .collect();
        let r = srv
            .client()
            .post(srv.url("/api/v2/alerts"))
            .json(&body)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
    }
    wait_until(60, "50,000 targets discovered", || {
        let v: Value = srv
            .client()
            .get(srv.url("/api/v1/targets?state=dropped"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["data"]["droppedTargets"]
            .as_array()
            .is_some_and(|d| d.len() == 45_000)
    });
    let v = scenario(
        "big",
        &srv.url(""),
        json!({ "alertsSearch": "vm-12345", "targetsSearch": "4560", "timeout": 60000 }),
    );
    eprintln!("big lists: {}", v["big"]);
    for page in ["alerts", "targets"] {
        let b = &v["big"][page];
        assert!(b["firstView"].as_u64().unwrap() < 10_000, "{page}: {b}");
        assert!(b["filterMs"].as_u64().unwrap() < 5_000, "{page}: {b}");
        assert!(b["frameMs"].as_u64().unwrap() < 1_000, "{page}: {b}");
    }
}

/// Acknowledging by clicking on the alert's page is server state: after a restart on the same
/// data the alert's page and the list still show it acknowledged, and the timeline has it.
#[test]
fn console_ack_by_click_survives_a_restart() {
    if !browser_available() {
        return;
    }
    let setup = Setup::new("");
    let mut srv = setup.start(&[]);
    wait_until(30, "the always-on alert", || {
        !alerts(&srv, "alertname=\"UiAlwaysOn\"").is_empty()
    });
    let fp = alerts(&srv, "alertname=\"UiAlwaysOn\"")[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    scenario(
        "ack",
        &srv.url(""),
        json!({ "fingerprint": fp, "comment": "looking into it" }),
    );
    let detail: Value = srv
        .client()
        .get(srv.url(&format!("/api/v1/alerts/{fp}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        detail["data"]["ack"]["comment"], "looking into it",
        "{detail}"
    );
    srv.stop();
    let srv = setup.start(&[]);
    wait_until(30, "the alert after the restart", || {
        !alerts(&srv, "alertname=\"UiAlwaysOn\"").is_empty()
    });
    let v = scenario("acked", &srv.url(""), json!({ "fingerprint": fp }));
    assert_eq!(v["pageAcked"], true, "{v}");
    assert_eq!(v["listAcked"], true, "{v}");
    assert!(
        v["timeline"].as_str().unwrap().contains("looking into it"),
        "{v}"
    );
}
