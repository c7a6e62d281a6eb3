//! Integration tests of the Prometheus query API against the real binary: the requests Grafana's
//! Prometheus data source makes (label browser, metric autocomplete, Grafana-aligned range queries
//! and instant queries, as GET and as form POST), the answers to bad parameters, the status
//! endpoints, federation and the `tocsin query` CLI.
//!
//! Tests named `eval_*` need the PromQL evaluator (crates/promql) to answer queries; every other
//! test only needs the index, the parameter checks and the status views.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin_collect::remote_write::encode;
use tocsin_testkit::expo::{ExpoOptions, ExpoServer};
use tocsin_testkit::{client, now_ms, TestServer};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

const STEP_MS: i64 = 15_000;

/// A server with a scrape job (for metadata) and two remote-written metrics ending at `end_ms`
/// (the newest multiple of 15 s): `http_requests_total` (instance a: 10 per step, b: 5 per step,
/// 41 samples from `end_ms - 10m`) and `node_load1` (0.5).
struct Fixture {
    _dir: tempfile::TempDir,
    _expo: ExpoServer,
    srv: TestServer,
    end_ms: i64,
}

const EXPO_BODY: &str = "# HELP app_requests_total Requests served.\n# TYPE app_requests_total counter\napp_requests_total{path=\"/a\"} 10\n# TYPE app_temp gauge\napp_temp 21.5\n";

fn start() -> Fixture {
    let expo = ExpoServer::start(EXPO_BODY, ExpoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = dir.path().join("tocsin.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  external_labels: {{region: test}}\n\
             query:\n  timeout: 1m\n  max_concurrency: 4\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [\"{}\"]\n",
            expo.addr
        ),
    )
    .unwrap();
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let end_ms = now_ms() / STEP_MS * STEP_MS;
    let base = end_ms - 40 * STEP_MS;
    let a: Vec<(i64, f64)> = (0..=40)
        .map(|k| (base + k * STEP_MS, 10.0 * k as f64))
        .collect();
    let b: Vec<(i64, f64)> = (0..=40)
        .map(|k| (base + k * STEP_MS, 5.0 * k as f64))
        .collect();
    let load: Vec<(i64, f64)> = (0..=40).map(|k| (base + k * STEP_MS, 0.5)).collect();
    let la = [
        ("__name__", "http_requests_total"),
        ("instance", "a:1"),
        ("job", "api"),
        ("method", "GET"),
    ];
    let lb = [
        ("__name__", "http_requests_total"),
        ("instance", "b:1"),
        ("job", "api"),
        ("method", "POST"),
    ];
    let ll = [
        ("__name__", "node_load1"),
        ("instance", "n1:9100"),
        ("job", "node"),
    ];
    let body = encode([(&la[..], &a[..]), (&lb[..], &b[..]), (&ll[..], &load[..])]);
    let (code, text) = tocsin_testkit::remote_write(&srv, body);
    assert_eq!(code, 204, "{text}");
    Fixture {
        _dir: dir,
        _expo: expo,
        srv,
        end_ms,
    }
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// GET `path`; returns status, content type and the JSON body.
fn get(srv: &TestServer, path: &str) -> (u16, String, Value) {
    let r = client().get(srv.url(path)).send().unwrap();
    decode(r)
}

/// POST `path` with a form body.
fn post(srv: &TestServer, path: &str, form: &[(&str, &str)]) -> (u16, String, Value) {
    let r = client().post(srv.url(path)).form(form).send().unwrap();
    decode(r)
}

fn decode(r: reqwest::blocking::Response) -> (u16, String, Value) {
    let code = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (code, ct, v)
}

/// A success envelope: status "success", `data` present, no error keys.
fn ok_data(res: (u16, String, Value)) -> Value {
    let (code, ct, v) = res;
    assert_eq!(code, 200, "{v}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(v["status"], "success", "{v}");
    assert!(
        v.get("errorType").is_none() && v.get("error").is_none(),
        "{v}"
    );
    v["data"].clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| {
            x.as_str()
                .unwrap_or_else(|| panic!("not a string: {x}"))
                .to_string()
        })
        .collect()
}

/// A 400 with errorType bad_data whose message contains `needle`.
fn assert_bad(res: (u16, String, Value), needle: &str) {
    let (code, ct, v) = res;
    assert_eq!(code, 400, "{v}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], "bad_data", "{v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    assert!(v.get("data").is_none(), "{v}");
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn grafana_label_browser_and_metric_autocomplete() {
    let f = start();
    let srv = &f.srv;
    let (s, e) = (secs(f.end_ms - 3_600_000), secs(f.end_ms + 60_000));

    // Label browser: names over the dashboard's range, GET and POST.
    let names = strings(&ok_data(get(
        srv,
        &format!("/api/v1/labels?start={s}&end={e}"),
    )));
    for n in ["__name__", "instance", "job", "method"] {
        assert!(names.contains(&n.to_string()), "{n} missing in {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let posted = strings(&ok_data(post(
        srv,
        "/api/v1/labels",
        &[("start", s.as_str()), ("end", e.as_str())],
    )));
    assert_eq!(posted, names);
    let matched = strings(&ok_data(get(srv, "/api/v1/labels?match[]=node_load1")));
    assert_eq!(matched, ["__name__", "instance", "job"]);

    // Metric names and label values, with Grafana's match[] and limit.
    let metrics = strings(&ok_data(get(
        srv,
        &format!("/api/v1/label/__name__/values?start={s}&end={e}"),
    )));
    assert!(
        metrics.contains(&"http_requests_total".to_string()),
        "{metrics:?}"
    );
    assert!(metrics.contains(&"node_load1".to_string()), "{metrics:?}");
    let jobs = strings(&ok_data(get(
        srv,
        "/api/v1/label/job/values?match[]=%7B__name__%3D%22http_requests_total%22%7D",
    )));
    assert_eq!(jobs, ["api"]);
    let (_, _, v) = get(srv, "/api/v1/label/instance/values?limit=1");
    assert_eq!(strings(&v["data"]).len(), 1);
    assert_eq!(strings(&v["warnings"]), ["results truncated due to limit"]);
    let (_, _, v) = get(srv, "/api/v1/label/method/values?limit=5");
    assert_eq!(strings(&v["data"]), ["GET", "POST"]);
    assert!(v.get("warnings").is_none(), "{v}");
    let none = ok_data(get(srv, "/api/v1/label/nosuchlabel/values"));
    assert_eq!(none, Value::Array(vec![]));

    // Series for autocomplete, GET and POST.
    let series = ok_data(get(
        srv,
        &format!("/api/v1/series?match[]=http_requests_total&start={s}&end={e}"),
    ));
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 2, "{series:?}");
    assert_eq!(
        series[0],
        serde_json::json!({"__name__": "http_requests_total", "instance": "a:1", "job": "api", "method": "GET"})
    );
    let posted = ok_data(post(
        srv,
        "/api/v1/series",
        &[
            ("match[]", "http_requests_total{method=\"POST\"}"),
            ("match[]", "node_load1"),
            ("start", s.as_str()),
            ("end", e.as_str()),
        ],
    ));
    let names: Vec<&str> = posted
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["__name__"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http_requests_total", "node_load1"]);
    let (_, _, v) = get(srv, "/api/v1/series?match[]=http_requests_total&limit=1");
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(strings(&v["warnings"]), ["results truncated due to limit"]);
    // Series outside the range are not returned.
    let old = ok_data(get(
        srv,
        "/api/v1/series?match[]=http_requests_total&start=0&end=1000",
    ));
    assert_eq!(old, Value::Array(vec![]));

    // Metadata from the scrape job's # TYPE and # HELP lines.
    let md = wait_for("scraped metadata", Duration::from_secs(20), || {
        let d = ok_data(get(srv, "/api/v1/metadata"));
        d.get("app_requests_total").is_some().then_some(d)
    });
    assert_eq!(
        md["app_requests_total"],
        serde_json::json!([{"type": "counter", "help": "Requests served.", "unit": ""}])
    );
    assert_eq!(md["app_temp"][0]["type"], "gauge");
    let one = ok_data(get(srv, "/api/v1/metadata?metric=app_temp"));
    assert_eq!(one.as_object().unwrap().len(), 1, "{one}");
    let limited = ok_data(get(srv, "/api/v1/metadata?limit=1"));
    assert_eq!(limited.as_object().unwrap().len(), 1, "{limited}");
    let empty = ok_data(get(srv, "/api/v1/metadata?metric=nope"));
    assert_eq!(empty, serde_json::json!({}));
}

#[test]
fn bad_parameters_are_400_bad_data_naming_the_parameter() {
    let f = start();
    let srv = &f.srv;
    assert_bad(get(srv, "/api/v1/query"), "invalid parameter \"query\"");
    assert_bad(
        post(srv, "/api/v1/query", &[("query", "sum(")]),
        "invalid parameter \"query\"",
    );
    assert_bad(
        get(srv, "/api/v1/query?query=up&time=yesterday"),
        "invalid parameter \"time\"",
    );
    assert_bad(
        post(
            srv,
            "/api/v1/query",
            &[("query", "up"), ("time", "2024-13-01T00:00:00Z")],
        ),
        "invalid parameter \"time\"",
    );
    assert_bad(
        get(srv, "/api/v1/query?query=up&timeout=soon"),
        "invalid parameter \"timeout\"",
    );
    assert_bad(
        get(srv, "/api/v1/query?query=up&limit=-1"),
        "invalid parameter \"limit\"",
    );
    assert_bad(
        get(srv, "/api/v1/query_range?query=up&end=10&step=1"),
        "invalid parameter \"start\"",
    );
    assert_bad(
        get(
            srv,
            "/api/v1/query_range?query=up&start=0&end=10&step=often",
        ),
        "invalid parameter \"step\"",
    );
    assert_bad(
        post(
            srv,
            "/api/v1/query_range",
            &[("query", "up"), ("start", "0"), ("end", "10")],
        ),
        "invalid parameter \"step\"",
    );
    assert_bad(
        get(srv, "/api/v1/query_range?query=up&start=0&end=10&step=0"),
        "zero or negative query resolution step",
    );
    assert_bad(
        get(srv, "/api/v1/query_range?query=up&start=100&end=10&step=1"),
        "end timestamp must not be before start time",
    );
    assert_bad(
        get(srv, "/api/v1/query_range?query=up&start=0&end=86400&step=1"),
        "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
    );
    assert_bad(
        get(srv, "/api/v1/query_range?start=0&end=10&step=1"),
        "invalid parameter \"query\"",
    );
    assert_bad(get(srv, "/api/v1/series"), "no match[] parameter provided");
    assert_bad(
        get(srv, "/api/v1/series?match[]=up%7B"),
        "invalid parameter \"match[]\"",
    );
    assert_bad(
        get(srv, "/api/v1/series?match[]=%7Bjob%3D~%22.*%22%7D"),
        "empty string",
    );
    assert_bad(
        get(srv, "/api/v1/labels?start=x"),
        "invalid parameter \"start\"",
    );
    assert_bad(
        get(srv, "/api/v1/label/job/values?end=x"),
        "invalid parameter \"end\"",
    );
    assert_bad(get(srv, "/api/v1/label/a-b/values"), "invalid label name");
    assert_bad(
        get(srv, "/api/v1/metadata?limit=x"),
        "limit must be a number",
    );
    assert_bad(get(srv, "/api/v1/status/tsdb?limit=0"), "limit");
    assert_bad(
        get(srv, "/api/v1/format_query?query=sum("),
        "invalid parameter \"query\"",
    );
    assert_bad(
        get(srv, "/api/v1/query_exemplars?query=up&start=x"),
        "invalid parameter \"start\"",
    );
    // A bad federation selector is a plain-text 400, as in Prometheus.
    let r = client()
        .get(srv.url("/federate?match[]=up%7B"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn status_format_query_exemplars_and_federation() {
    let f = start();
    let srv = &f.srv;
    let bi = ok_data(get(srv, "/api/v1/status/buildinfo"));
    for k in [
        "version",
        "revision",
        "branch",
        "buildUser",
        "buildDate",
        "goVersion",
    ] {
        assert!(bi[k].is_string(), "{k} in {bi}");
    }
    // Stamped by build.rs: a 12-digit revision in a checkout, and the build time.
    assert_eq!(bi["revision"].as_str().unwrap().len(), 12, "{bi}");
    assert!(bi["buildDate"].as_str().unwrap().ends_with('Z'), "{bi}");
    let rt = ok_data(get(srv, "/api/v1/status/runtimeinfo"));
    assert!(rt["startTime"].as_str().unwrap().ends_with('Z'), "{rt}");
    assert_eq!(rt["reloadConfigSuccess"], true);
    assert_eq!(rt["storageRetention"], "15d");
    assert!(
        rt["corruptionCount"].is_u64() && rt["GOMAXPROCS"].is_u64(),
        "{rt}"
    );
    let flags = ok_data(get(srv, "/api/v1/status/flags"));
    assert_eq!(flags["query.timeout"], "1m");
    assert_eq!(flags["query.max-concurrency"], "4");
    assert!(flags["storage.tsdb.path"]
        .as_str()
        .unwrap()
        .ends_with("data"));
    let cfg = ok_data(get(srv, "/api/v1/status/config"));
    assert!(
        cfg["yaml"].as_str().unwrap().contains("job_name: app"),
        "{cfg}"
    );

    let ts = ok_data(get(srv, "/api/v1/status/tsdb"));
    let head = &ts["headStats"];
    assert!(head["numSeries"].as_u64().unwrap() >= 3, "{ts}");
    assert!(head["numLabelPairs"].as_u64().unwrap() >= 7, "{ts}");
    assert!(head["chunkCount"].as_u64().unwrap() >= 3, "{ts}");
    assert!(
        head["minTime"].as_i64().unwrap() <= f.end_ms - 40 * STEP_MS,
        "{ts}"
    );
    assert!(head["maxTime"].as_i64().unwrap() >= f.end_ms, "{ts}");
    assert!(ts["seriesCountByMetricName"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"name": "http_requests_total", "value": 2})));
    for k in [
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        let list = ts[k].as_array().unwrap();
        assert!(!list.is_empty() && list.len() <= 10, "{k}: {ts}");
        assert!(
            list[0]["name"].is_string() && list[0]["value"].is_u64(),
            "{k}"
        );
    }
    let ts = ok_data(get(srv, "/api/v1/status/tsdb?limit=1"));
    assert_eq!(
        ts["seriesCountByLabelValuePair"].as_array().unwrap().len(),
        1
    );

    let fq = ok_data(get(
        srv,
        "/api/v1/format_query?query=sum(rate(http_requests_total%5B5m%5D))by(job)",
    ));
    assert_eq!(fq, "sum by (job) (rate(http_requests_total[5m]))");
    let fq = ok_data(post(srv, "/api/v1/format_query", &[("query", "up  ==  1")]));
    assert_eq!(fq, "up == 1");
    let ex = ok_data(post(
        srv,
        "/api/v1/query_exemplars",
        &[
            ("query", "http_requests_total"),
            ("start", "0"),
            ("end", "10"),
        ],
    ));
    assert_eq!(ex, Value::Array(vec![]));

    let r = client()
        .get(srv.url(
            "/federate?match[]=node_load1&match[]=http_requests_total%7Bmethod%3D%22GET%22%7D",
        ))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().unwrap();
    assert_eq!(
        text,
        format!(
            "# TYPE http_requests_total untyped\n\
             http_requests_total{{instance=\"a:1\",job=\"api\",method=\"GET\",region=\"test\"}} 400 {t}\n\
             # TYPE node_load1 untyped\n\
             node_load1{{instance=\"n1:9100\",job=\"node\",region=\"test\"}} 0.5 {t}\n",
            t = f.end_ms
        )
    );
}

#[test]
fn cli_reports_api_errors() {
    let f = start();
    let out = Command::new(bin())
        .args(["query", "--server", &f.srv.url(""), "sum("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad_data") && err.contains("invalid parameter \"query\""),
        "{err}"
    );
    let out = Command::new(bin())
        .args([
            "query",
            "range",
            "--server",
            &f.srv.url(""),
            "up",
            "--start",
            "0",
            "--end",
            "10",
            "--step",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zero or negative"), "{err}");
    // --json prints the API's answer as it is, error or not.
    let out = Command::new(bin())
        .args(["query", "--json", "--server", &f.srv.url(""), "sum("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errorType"], "bad_data");
}

// ---- Tests that need the PromQL evaluator ----

/// Needs the evaluator. Grafana's instant query (POST form, as Grafana sends it) and GET.
#[test]
fn eval_instant_query_get_and_post() {
    let f = start();
    let srv = &f.srv;
    let t = secs(f.end_ms);
    for res in [
        get(
            srv,
            &format!("/api/v1/query?query=http_requests_total&time={t}"),
        ),
        post(
            srv,
            "/api/v1/query",
            &[("query", "http_requests_total"), ("time", t.as_str())],
        ),
    ] {
        let d = ok_data(res);
        assert_eq!(d["resultType"], "vector", "{d}");
        let r = d["result"].as_array().unwrap();
        assert_eq!(r.len(), 2, "{d}");
        let mut got: Vec<(String, String)> = r
            .iter()
            .map(|s| {
                let v = s["value"].as_array().unwrap();
                assert_eq!(v.len(), 2);
                assert_eq!(v[0].as_f64().unwrap(), f.end_ms as f64 / 1000.0);
                (
                    s["metric"]["instance"].as_str().unwrap().to_string(),
                    v[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a:1".to_string(), "400".to_string()),
                ("b:1".into(), "200".into())
            ]
        );
        assert_eq!(r[0]["metric"]["__name__"], "http_requests_total");
    }
    // RFC 3339 time, a float value, a scalar and a string.
    let rfc = humantime_rfc3339(f.end_ms);
    let d = ok_data(get(
        srv,
        &format!("/api/v1/query?query=node_load1&time={rfc}"),
    ));
    assert_eq!(d["result"][0]["value"][1], "0.5", "{d}");
    let d = ok_data(get(srv, "/api/v1/query?query=1%2B1&time=1500.5"));
    assert_eq!(
        d,
        serde_json::json!({"resultType": "scalar", "result": [1500.5, "2"]})
    );
    let d = ok_data(get(srv, "/api/v1/query?query=%22hi%22&time=1"));
    assert_eq!(
        d,
        serde_json::json!({"resultType": "string", "result": [1, "hi"]})
    );
    let d = ok_data(get(srv, "/api/v1/query?query=1%2F0&time=1"));
    assert_eq!(d["result"][1], "+Inf");
    // limit cuts the vector and says so.
    let (_, _, v) = get(
        srv,
        &format!("/api/v1/query?query=http_requests_total&time={t}&limit=1"),
    );
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(strings(&v["warnings"]), ["results truncated due to limit"]);
    // An execution error is a 422.
    let (code, _, v) = get(
        srv,
        &format!(
            "/api/v1/query?query=http_requests_total%20%2B%20on()%20http_requests_total&time={t}"
        ),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
}

/// Needs the evaluator. Grafana aligns start and end to multiples of the step.
#[test]
fn eval_range_query_with_grafana_step_alignment() {
    let f = start();
    let srv = &f.srv;
    let start_ms = f.end_ms - 20 * STEP_MS;
    let (s, e) = (secs(start_ms), secs(f.end_ms));
    for res in [
        get(
            srv,
            &format!("/api/v1/query_range?query=http_requests_total&start={s}&end={e}&step=15"),
        ),
        post(
            srv,
            "/api/v1/query_range",
            &[
                ("query", "http_requests_total"),
                ("start", s.as_str()),
                ("end", e.as_str()),
                ("step", "15s"),
            ],
        ),
    ] {
        let d = ok_data(res);
        assert_eq!(d["resultType"], "matrix", "{d}");
        let r = d["result"].as_array().unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["metric"]["instance"], "a:1");
        let values = r[0]["values"].as_array().unwrap();
        assert_eq!(values.len(), 21);
        for (i, p) in values.iter().enumerate() {
            let ts_ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            assert_eq!(ts_ms, start_ms + i as i64 * STEP_MS);
            assert_eq!(p[1], Value::String(format!("{}", 10 * (20 + i))));
        }
    }
    let d = ok_data(get(
        srv,
        &format!("/api/v1/query_range?query=sum%20by%20(job)%20(rate(http_requests_total%5B1m%5D))&start={s}&end={e}&step=60"),
    ));
    let r = d["result"].as_array().unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["metric"], serde_json::json!({"job": "api"}));
    // (10 + 5) per 15 s = 1 per second.
    let v: f64 = r[0]["values"][1][1].as_str().unwrap().parse().unwrap();
    assert!((v - 1.0).abs() < 1e-9, "{v}");
}

/// Needs the evaluator. `tocsin query` and `tocsin query range` against the server.
#[test]
fn eval_cli_prints_tables_and_json() {
    let f = start();
    let url = f.srv.url("");
    let t = secs(f.end_ms);
    let out = Command::new(bin())
        .args([
            "query",
            "--server",
            &url,
            "http_requests_total",
            "--time",
            &t,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("LABELS"), "{stdout}");
    assert!(
        stdout.contains("http_requests_total{instance=\"a:1\", job=\"api\", method=\"GET\"}"),
        "{stdout}"
    );
    assert!(stdout.contains("400"), "{stdout}");
    let out = Command::new(bin())
        .args([
            "query",
            "--json",
            "--server",
            &url,
            "node_load1",
            "--time",
            &t,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "0.5");
    let out = Command::new(bin())
        .args([
            "query",
            "range",
            "--server",
            &url,
            "node_load1",
            "--start",
            &secs(f.end_ms - 4 * STEP_MS),
            "--end",
            &t,
            "--step",
            "15s",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The step line, the column header and one row with the series' five points.
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(stdout.starts_with("5 steps from "), "{stdout}");
    assert!(stdout.contains("  0.5 0.5 0.5 0.5 0.5\n"), "{stdout}");
}

/// RFC 3339 with milliseconds, UTC.
fn humantime_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Clients that accept gzip (Grafana, browsers, promtool) get compressed answers, as from
/// Prometheus; the body decompresses to the same JSON. Others get plain JSON.
#[test]
fn answers_are_gzipped_for_clients_that_accept_it() {
    use std::io::Read as _;
    let f = start();
    let url = f.srv.url(&format!(
        "/api/v1/query_range?query=http_requests_total&start={}&end={}&step=15",
        secs(f.end_ms - 600_000),
        secs(f.end_ms)
    ));
    // The test client would ask for gzip itself and hide the encoding; this one asks only when
    // told to.
    let raw = reqwest::blocking::Client::builder()
        .no_gzip()
        .build()
        .unwrap();
    let plain = raw.get(&url).send().unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().unwrap();
    let r = raw
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let zipped = r.bytes().unwrap();
    let mut out = String::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_string(&mut out)
        .unwrap();
    let a: Value = serde_json::from_str(&plain).unwrap();
    let b: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["data"], b["data"]);
    assert!(zipped.len() < plain.len());
}
