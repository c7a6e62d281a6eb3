//! The console's server-side lists in the real server: the alert list over 20,000 alerts posted
//! through `/api/v2/alerts` (filters, free text, states, grouping, paging, totals, with the time
//! of each request printed), the live event stream (a new alert arrives within 2 s; shutdown is
//! not held up by an open stream), targets paged and filtered over a file_sd of 50,000 targets
//! most of them dropped by relabelling, and label values capped at 100,000 values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tocsin_testkit::{client, get_json, now_ms, wait_until, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

const AM: &str = "alertmanager:
  route:
    receiver: nobody
    group_by: [alertname]
    group_wait: 1h
  receivers:
    - name: nobody
";

fn post(srv: &TestServer, path: &str, body: String) -> (u16, String) {
    let r = client()
        .post(srv.url(path))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn post_alerts(srv: &TestServer, alerts: Vec<Value>) {
    let (code, text) = post(srv, "/api/v2/alerts", Value::Array(alerts).to_string());
    assert_eq!(code, 200, "{text}");
}

const SEVERITIES: [&str; 5] = ["critical", "error", "warning", "info", "none"];

fn fleet_alert(i: usize, start: i64) -> Value {
    json!({
        "labels": {
            "alertname": format!("A{}", i % 50),
            "instance": format!("host-{i}.example.com:9100"),
            "team": format!("t{}", i % 4),
            "severity": SEVERITIES[i % 5],
        },
        "annotations": {"summary": format!("host {i} needs attention")},
        "startsAt": tocsin_model::time::format_rfc3339_ms(start - (i as i64) * 1000),
        "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
    })
}

/// GET the list; prints how long the answer took.
fn list(srv: &TestServer, query: &str) -> Value {
    let path = format!("/api/v1/console/alerts?{query}");
    let t = Instant::now();
    let v = get_json(srv, &path);
    eprintln!("GET {path}: {:?}", t.elapsed());
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

#[test]
fn console_alert_list_at_twenty_thousand_alerts() {
    let srv = TestServer::start_with_config(bin(), AM, &[]);
    let start = now_ms() - 60_000;
    for chunk in (0..20_000).collect::<Vec<_>>().chunks(5_000) {
        post_alerts(&srv, chunk.iter().map(|&i| fleet_alert(i, start)).collect());
    }
    // One alert name of 50 silenced: 400 alerts.
    let (code, text) = post(
        &srv,
        "/api/v2/silences",
        json!({
            "matchers": [{"name": "alertname", "value": "A7", "isRegex": false}],
            "startsAt": tocsin_model::time::format_rfc3339_ms(now_ms() - 1000),
            "endsAt": tocsin_model::time::format_rfc3339_ms(now_ms() + 3_600_000),
            "createdBy": "test", "comment": "quiet",
        })
        .to_string(),
    );
    assert_eq!(code, 200, "{text}");

    let d = list(&srv, "");
    assert_eq!(d["total"], 20_000);
    assert_eq!(d["alerts"].as_array().unwrap().len(), 100);
    assert_eq!(d["states"]["firing"], 19_600);
    assert_eq!(d["states"]["silenced"], 400);
    assert_eq!(d["states"]["resolved"], 0);
    let first = &d["alerts"][0];
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["labels"]["severity"], "critical");
    assert_eq!(first["receivers"], json!(["nobody"]));
    assert_eq!(first["fingerprint"].as_str().unwrap().len(), 16);
    for k in [
        "annotations",
        "startsAt",
        "endsAt",
        "state",
        "silencedBy",
        "inhibitedBy",
    ] {
        assert!(first.get(k).is_some(), "{k} missing: {first}");
    }
    // Severity first, then newest first.
    let rows = d["alerts"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["severity"] == "critical"));
    let starts: Vec<&str> = rows
        .iter()
        .map(|r| r["startsAt"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "{starts:?}");

    let d = list(&srv, "filter=alertname%3D%22A1%22");
    assert_eq!(d["total"], 400);
    let d = list(
        &srv,
        "filter=alertname%3D~%22A1.*%22&filter=team%3D%22t1%22",
    );
    // A1 and A10..A19; team t1 needs i % 4 == 1, which only odd names reach (half their 400).
    assert_eq!(d["total"], 6 * 200);
    let d = list(&srv, "q=HOST-1999.example");
    assert_eq!(d["total"], 1);
    assert_eq!(
        d["alerts"][0]["labels"]["instance"],
        "host-1999.example.com:9100"
    );
    let d = list(&srv, "q=needs%20attention&limit=1");
    assert_eq!(d["total"], 20_000, "annotations are searched");
    let d = list(&srv, "state=silenced");
    assert_eq!(d["total"], 400);
    assert_eq!(d["alerts"][0]["state"], "silenced");
    assert_eq!(d["alerts"][0]["silencedBy"].as_array().unwrap().len(), 1);
    assert_eq!(
        d["states"]["firing"], 19_600,
        "state totals ignore the state filter"
    );

    let d = list(&srv, "group_by=route&group_limit=10");
    assert_eq!(d["groupsTotal"], 50);
    assert_eq!(d["groups"].as_array().unwrap().len(), 10);
    let g0 = &d["groups"][0];
    assert_eq!(g0["count"], 400);
    assert_eq!(g0["receiver"], "nobody");
    assert!(g0["key"].as_str().unwrap().contains("alertname="));
    assert_eq!(d["alerts"][0]["group"], g0["key"]);
    let key = g0["key"].as_str().unwrap().to_string();
    let enc: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let d = list(&srv, &format!("group_by=route&group={enc}&limit=1000"));
    assert_eq!(d["total"], 400);
    assert!(d["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["group"].as_str() == Some(key.as_str())));

    let d = list(&srv, "group_by=team");
    let counts: Vec<(String, u64)> = d["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key"].as_str().unwrap().into(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts.len(), 4);
    assert!(counts.iter().all(|(_, n)| *n == 5_000), "{counts:?}");

    // Paging: the last page is short, and pages do not overlap.
    let d = list(&srv, "offset=19950&limit=100");
    assert_eq!(d["alerts"].as_array().unwrap().len(), 50);
    let a = list(&srv, "offset=0&limit=1000");
    let b = list(&srv, "offset=1000&limit=1000");
    let fps = |d: &Value| -> Vec<String> {
        d["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap().to_string())
            .collect()
    };
    let (fa, fb) = (fps(&a), fps(&b));
    assert_eq!(fa.len(), 1_000);
    assert!(fa.iter().all(|f| !fb.contains(f)));

    // Resolving one lists it as resolved (recently), then not with resolved_within=0s.
    let mut gone = fleet_alert(3, start);
    gone["endsAt"] = json!(tocsin_model::time::format_rfc3339_ms(now_ms() - 1000));
    post_alerts(&srv, vec![gone]);
    let d = list(&srv, "state=resolved");
    assert_eq!(d["total"], 1);
    assert_eq!(
        d["alerts"][0]["labels"]["instance"],
        "host-3.example.com:9100"
    );
    assert_eq!(list(&srv, "resolved_within=0s")["states"]["resolved"], 0);

    for bad in [
        "limit=1001",
        "state=open",
        "group_by=0x",
        "filter=a%3D~%22(%22",
        "offset=x",
    ] {
        let r = client()
            .get(srv.url(&format!("/api/v1/console/alerts?{bad}")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let name = bad.split('=').next().unwrap();
        assert!(r.text().unwrap().contains(name), "{bad}");
    }
}

/// Reads an event stream in a thread, sending each event as (name, data).
fn subscribe(srv: &TestServer) -> mpsc::Receiver<(String, String)> {
    let resp = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(srv.url("/api/v1/events"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut name = String::new();
        for line in BufReader::new(resp).lines() {
            let Ok(line) = line else { return };
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                if tx.send((std::mem::take(&mut name), d.to_string())).is_err() {
                    return;
                }
            }
        }
        // The stream ended: tell the test.
        let _ = tx.send(("end".into(), String::new()));
    });
    rx
}

#[test]
fn event_stream_delivers_a_new_alert_within_two_seconds_and_ends_at_shutdown() {
    let mut srv = TestServer::start_with_config(bin(), AM, &[]);
    let rx = subscribe(&srv);
    let (name, _) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(name, "hello");
    let t = Instant::now();
    post_alerts(&srv, vec![fleet_alert(42, now_ms())]);
    let fp = get_json(&srv, "/api/v1/console/alerts")["data"]["alerts"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let (name, data) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    eprintln!("alert event after {:?}: {data}", t.elapsed());
    assert_eq!(name, "alert");
    let ev: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(ev["kind"], "firing");
    assert_eq!(ev["fingerprint"], fp);
    assert!(ev["time"].as_str().unwrap().ends_with('Z'));
    // Acknowledged through the API: an event, and the list shows who.
    let (code, text) = post(
        &srv,
        &format!("/api/v1/alerts/{fp}/ack"),
        json!({"comment": "on it"}).to_string(),
    );
    assert_eq!(code, 200, "{text}");
    let (_, data) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let ev: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(ev["kind"], "acknowledged", "{data}");
    let row =
        get_json(&srv, "/api/v1/console/alerts?state=acknowledged")["data"]["alerts"][0].clone();
    assert_eq!(row["fingerprint"], fp);
    assert_eq!(row["ack"]["comment"], "on it");
    // Sent again unchanged: no event; resolved: one.
    post_alerts(&srv, vec![fleet_alert(42, now_ms())]);
    let mut resolved = fleet_alert(42, now_ms());
    resolved["endsAt"] = json!(tocsin_model::time::format_rfc3339_ms(now_ms() - 1));
    post_alerts(&srv, vec![resolved]);
    let (_, data) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    let ev: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(ev["kind"], "resolved", "{data}");

    // A burst larger than the channel: the stream says reset instead of dropping silently.
    let burst: Vec<Value> = (1_000..11_000).map(|i| fleet_alert(i, now_ms())).collect();
    post_alerts(&srv, burst);
    let reset = wait_until(Duration::from_secs(10), "a reset event", || {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((n, _)) if n == "reset" => Some(true),
            _ => None,
        }
    });
    assert!(reset);

    // An open stream does not hold up a graceful stop.
    let t = Instant::now();
    srv.signal(libc::SIGTERM);
    let code = srv.wait_exit(Duration::from_secs(15));
    eprintln!("stopped with an open event stream in {:?}", t.elapsed());
    assert_eq!(code, Some(0));
}

/// GET `path`, returning the JSON, the time taken and the body size.
fn timed(srv: &TestServer, path: &str) -> Value {
    let t = Instant::now();
    let r = client().get(srv.url(path)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    let body = r.text().unwrap();
    eprintln!("GET {path}: {:?}, {} bytes", t.elapsed(), body.len());
    serde_json::from_str(&body).unwrap()
}

#[test]
fn targets_page_over_fifty_thousand_discovered_targets() {
    let dir = tempfile::tempdir().unwrap();
    // 10 racks of 5,000 targets on closed loopback ports; relabelling keeps ports 10000-14999.
    let groups: Vec<Value> = (0..10)
        .map(|k| {
            let targets: Vec<String> = (0..5_000)
                .map(|j| format!("127.0.0.1:{}", 10_000 + k * 5_000 + j))
                .collect();
            json!({"targets": targets, "labels": {"rack": format!("r{k}")}})
        })
        .collect();
    std::fs::write(
        dir.path().join("fleet.json"),
        Value::Array(groups).to_string(),
    )
    .unwrap();
    let srv = TestServer::start_with_config(
        bin(),
        &format!(
            r#"
global:
  scrape_interval: 1h
scrape_configs:
  - job_name: fleet
    file_sd_configs:
      - files: ["{}/*.json"]
    relabel_configs:
      - source_labels: [__address__]
        regex: '127\.0\.0\.1:1[0-4][0-9]{{3}}'
        action: keep
"#,
            dir.path().display()
        ),
        &[],
    );
    let pools = wait_until(Duration::from_secs(60), "50,000 targets discovered", || {
        let v = get_json(&srv, "/api/v1/targets/pools");
        let p = v["data"][0].clone();
        (p["active"] == 5_000 && p["dropped"] == 45_000).then_some(p)
    });
    assert_eq!(pools["scrapePool"], "fleet");
    let sum = pools["up"].as_u64().unwrap()
        + pools["down"].as_u64().unwrap()
        + pools["unknown"].as_u64().unwrap();
    assert_eq!(sum, 5_000);
    timed(&srv, "/api/v1/targets/pools");

    // The first view of a targets page: one page of active targets, counts of dropped ones.
    let v = timed(&srv, "/api/v1/targets?state=active&limit=100");
    let d = &v["data"];
    assert_eq!(d["activeTargets"].as_array().unwrap().len(), 100);
    assert_eq!(d["activeTotal"], 5_000);
    assert_eq!(d["droppedTargets"].as_array().unwrap().len(), 0);
    assert_eq!(d["droppedTargetCounts"]["fleet"], 45_000);
    let first = d["activeTargets"][0]["scrapeUrl"].clone();
    let v = timed(&srv, "/api/v1/targets?state=active&limit=100&offset=100");
    assert_ne!(v["data"]["activeTargets"][0]["scrapeUrl"], first);
    assert_eq!(
        timed(&srv, "/api/v1/targets?state=active&limit=100&offset=4950")["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .len(),
        50
    );

    let v = timed(&srv, "/api/v1/targets?droppedLimit=10&limit=0");
    let d = &v["data"];
    assert_eq!(d["droppedTargets"].as_array().unwrap().len(), 10);
    assert_eq!(d["droppedTotal"], 45_000);
    assert_eq!(d["activeTotal"], 5_000);
    assert_eq!(d["activeTargets"].as_array().unwrap().len(), 0);

    let v = timed(&srv, "/api/v1/targets?q=127.0.0.1:12345");
    assert_eq!(v["data"]["activeTotal"], 1);
    assert_eq!(v["data"]["droppedTotal"], 0);
    let v = timed(
        &srv,
        "/api/v1/targets?q=127.0.0.1:4999&state=dropped&droppedLimit=5",
    );
    assert_eq!(v["data"]["droppedTotal"], 10, "ports 49990-49999 only");
    let v = timed(&srv, "/api/v1/targets?q=R2&state=active&limit=1");
    assert_eq!(v["data"]["activeTotal"], 0, "rack r2 is all dropped");
    let v = timed(&srv, "/api/v1/targets?q=R0&state=active&limit=1");
    assert_eq!(v["data"]["activeTotal"], 5_000, "rack r0 is the kept one");

    let v = timed(
        &srv,
        "/api/v1/targets?health=up,down,unknown&state=active&limit=10",
    );
    assert_eq!(v["data"]["activeTotal"], 5_000);
    let r = client()
        .get(srv.url("/api/v1/targets?health=sick"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("health"));

    // Without the extras: Prometheus's answer, everything, no extra keys.
    let v = timed(&srv, "/api/v1/targets");
    let d = v["data"].as_object().unwrap();
    assert_eq!(d["activeTargets"].as_array().unwrap().len(), 5_000);
    assert_eq!(d["droppedTargets"].as_array().unwrap().len(), 45_000);
    assert!(!d.contains_key("activeTotal") && !d.contains_key("droppedTotal"));
}

#[test]
fn label_values_are_capped_at_a_hundred_thousand_values() {
    let srv = TestServer::start(bin(), &[]);
    let mut body = String::with_capacity(3_000_000);
    for i in 0..100_000 {
        body.push_str(&format!("fleet,id=v{i} up=1\n"));
    }
    let r = client()
        .post(srv.url("/write?precision=ms"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204, "{}", r.text().unwrap_or_default());

    let v = timed(&srv, "/api/v1/label/id/values");
    assert_eq!(v["data"].as_array().unwrap().len(), 100_000);
    assert!(v.get("warnings").is_none());
    let v = timed(&srv, "/api/v1/label/id/values?limit=1000");
    assert_eq!(v["data"].as_array().unwrap().len(), 1_000);
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    // Completion without match[]: values holding the typed text.
    let v = timed(&srv, "/api/v1/label/id/values?contains=V9999&limit=100");
    let vals: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(vals.len(), 11, "v9999 and v99990..v99999: {vals:?}");
    assert!(v.get("warnings").is_none());
    let v = timed(&srv, "/api/v1/series?match[]=fleet_up&limit=10");
    assert_eq!(v["data"].as_array().unwrap().len(), 10);
    assert_eq!(v["warnings"][0], "results truncated due to limit");
    let v = timed(&srv, "/api/v1/labels?limit=1");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"][0], "results truncated due to limit");

    // The status page: cardinality lists cut at `limit`, and this hour's creations counted.
    let v = timed(&srv, "/api/v1/status/tsdb?limit=3");
    let d = &v["data"];
    assert_eq!(d["seriesCountByMetricName"][0]["name"], "fleet_up");
    assert_eq!(d["seriesCountByMetricName"][0]["value"], 100_000);
    assert_eq!(d["labelValueCountByLabelName"][0]["name"], "id");
    assert!(d["seriesCountByLabelValuePair"].as_array().unwrap().len() <= 3);
    let hours = d["seriesCreatedPerHour"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert!(
        hours[23]["count"].as_u64().unwrap() >= 100_000,
        "{}",
        hours[23]
    );
    assert!(hours[23]["time"].as_str().unwrap().ends_with(":00:00.000Z"));
}
