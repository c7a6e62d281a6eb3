//! The query-limits suite against the real binary: no query can crash the server or outgrow its
//! limits. Deep expressions of every shape are answered up to the depth limit and refused with a
//! 400 naming it beyond; subquery bombs are refused by `max_samples` or stopped at their timeout;
//! a query whose client disconnects stops; memory, read from `/proc/<pid>/status`, stays under a
//! stated bound; and a query storm does not keep writes from being acknowledged.
//!
//! Lines starting `FIGURE` are the figures of the closing note; run with `--nocapture` to see them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tocsin_testkit::{client, TestServer};

/// Must match `tocsin_promql::MAX_DEPTH`.
const MAX_DEPTH: usize = 25_000;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tocsin"))
}

struct Server {
    _dir: tempfile::TempDir,
    srv: TestServer,
}

/// A server whose config has `query_yaml` as its `query:` section.
fn start(query_yaml: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = dir.path().join("tocsin.yml");
    std::fs::write(&cfg, format!("query:\n{query_yaml}")).unwrap();
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    Server { _dir: dir, srv }
}

/// POSTs a query as a form (long queries do not fit a URL); returns status, body JSON and time.
fn query(srv: &TestServer, path: &str, form: &[(&str, &str)]) -> (u16, Value, Duration) {
    let t = Instant::now();
    let r = client()
        .post(srv.url(path))
        .timeout(Duration::from_secs(120))
        .form(form)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let text = r.text().unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, v, t.elapsed())
}

fn instant(srv: &TestServer, q: &str) -> (u16, Value, Duration) {
    query(srv, "/api/v1/query", &[("query", q), ("time", "1000")])
}

/// A field of `/proc/<pid>/status` in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User plus system CPU time of the process in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// `tocsin_engine_queries` from `/metrics`.
fn running(srv: &TestServer) -> f64 {
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tocsin_engine_queries "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tocsin_engine_queries in /metrics"))
}

/// Waits until no query runs; returns how long that took.
fn wait_idle(srv: &TestServer, bound: Duration) -> Duration {
    let t = Instant::now();
    while running(srv) > 0.0 {
        assert!(
            t.elapsed() < bound,
            "a query still runs {bound:?} after it should have stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn assert_alive(srv: &TestServer) {
    let (code, v, _) = instant(srv, "1+1");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][1], "2", "{v}");
}

fn chain(op: &str, leaf: &str, n: usize) -> String {
    let mut s = String::from(leaf);
    for _ in 1..n {
        s.push_str(op);
        s.push_str(leaf);
    }
    s
}

fn nested(open: &str, leaf: &str, close: &str, n: usize) -> String {
    format!("{}{leaf}{}", open.repeat(n), close.repeat(n))
}

/// The scalar or single-sample value of an instant query's answer.
fn value_of(v: &Value) -> String {
    let r = &v["data"]["result"];
    match v["data"]["resultType"].as_str() {
        Some("scalar") => r[1].as_str().unwrap_or_default().to_string(),
        Some("vector") => r[0]["value"][1].as_str().unwrap_or_default().to_string(),
        _ => panic!("unexpected answer {v}"),
    }
}

/// Each shape accepted and one level beyond the limit. The limit is the same for every shape;
/// the shapes whose parse is quadratic in promql-parser (operator chains, where each level
/// re-derives its operands' types, and aggregations, whose argument is cloned per level) are
/// checked below the limit to keep a debug build's test short; the 20,000-term sum is the one
/// Prometheus is known to evaluate. Unit tests in crates/promql evaluate calls and unary minus at
/// the limit.
fn shapes() -> Vec<(&'static str, String, String, &'static str)> {
    let m = MAX_DEPTH;
    vec![
        // name, accepted query, refused query, accepted value
        (
            "left-assoc sum, 20,000 terms",
            chain("+", "1", 20_000),
            chain("+", "1", 2 * m),
            "20000",
        ),
        (
            "right-assoc power chain, 5,000 terms",
            chain("^", "1", 5_000),
            chain("^", "1", 2 * m),
            "1",
        ),
        (
            "vector chain, 5,000 terms",
            chain(" + ", "vector(1)", 5_000),
            chain(" + ", "vector(1)", 2 * m),
            "5000",
        ),
        (
            "nested parentheses at the limit",
            nested("(", "1", ")", m - 1),
            nested("(", "1", ")", m),
            "1",
        ),
        (
            "nested calls at the limit",
            nested("abs(", "vector(1)", ")", m - 2),
            nested("abs(", "vector(1)", ")", m - 1),
            "1",
        ),
        (
            "nested unary minus at the limit",
            nested("-(", "vector(1)", ")", m / 2 - 1),
            nested("-(", "vector(1)", ")", m / 2),
            "-1",
        ),
        (
            "unary minus chain without parentheses, 5,000 deep",
            format!("{}vector(1)", "-".repeat(5_000)),
            format!("{}vector(1)", "-".repeat(2 * m)),
            "1",
        ),
        (
            "nested aggregations, 2,000 deep",
            nested("sum(", "vector(1)", ")", 2_000),
            nested("sum(", "vector(1)", ")", 2 * m),
            "1",
        ),
        (
            "nested subqueries, 1,000 deep",
            nested("max_over_time(", "vector(1)", "[1m:1m])", 1_000),
            nested("max_over_time(", "vector(1)", "[1m:1m])", m / 2),
            "1",
        ),
    ]
}

/// The probe's queries that aborted the whole process with a stack overflow on main: a 5.5 KB
/// `1+1+...+1`, 1,100 nested calls, 3,100 nested unary minus (with and without parentheses).
#[test]
fn queries_that_overflowed_the_stack_are_answered() {
    let s = start("  timeout: 1m\n");
    for (q, want) in [
        (chain("+", "1", 2_750), "2750"),
        (nested("abs(", "vector(1)", ")", 1_100), "1"),
        (nested("-(", "vector(1)", ")", 3_100), "1"),
        (format!("{}vector(1)", "-".repeat(3_100)), "1"),
    ] {
        let (code, v, _) = instant(&s.srv, &q);
        assert_eq!(code, 200, "{}...: {v}", &q[..20]);
        assert_eq!(value_of(&v), want, "{}...", &q[..20]);
    }
    assert_alive(&s.srv);
}

#[test]
fn deep_expressions_are_answered_up_to_the_limit_and_refused_beyond_it_without_crashing() {
    let s = start("  timeout: 2m\n");
    let srv = &s.srv;
    for (name, ok, bad, want) in shapes() {
        let (code, v, took) = instant(srv, &ok);
        assert_eq!(code, 200, "{name}: {v}");
        assert_eq!(value_of(&v), want, "{name}");
        let (code, v, _) = instant(srv, &bad);
        let msg = v["error"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            (code, v["errorType"].as_str()),
            (400, Some("bad_data")),
            "{name}: {v}"
        );
        assert!(
            msg.contains(&format!("exceeds the limit of {MAX_DEPTH}"))
                && msg.contains("expression nesting depth"),
            "{name}: {msg}"
        );
        println!(
            "FIGURE depth shape={name:?} accepted_depth={} accepted_bytes={} answered_in={took:?} refused_bytes={} refusal={msg:?}",
            tocsin_promql::depth_bound(&ok),
            ok.len(),
            bad.len()
        );
    }
    // The exact refusal of one term too many.
    let (code, v, _) = instant(srv, &chain("+", "1", MAX_DEPTH + 1));
    let msg = v["error"].as_str().unwrap_or_default();
    assert_eq!(code, 400, "{v}");
    assert!(
        msg.ends_with(&format!(
            "expression nesting depth {} exceeds the limit of {MAX_DEPTH}",
            MAX_DEPTH + 1
        )),
        "{msg}"
    );
    println!("FIGURE depth one_term_beyond={:?}", msg);
    // Range queries, formatting and series selectors take the same text.
    let deep = chain("+", "1", 2 * MAX_DEPTH);
    for (path, form) in [
        (
            "/api/v1/query_range",
            vec![
                ("query", deep.as_str()),
                ("start", "0"),
                ("end", "60"),
                ("step", "15"),
            ],
        ),
        ("/api/v1/format_query", vec![("query", deep.as_str())]),
        ("/api/v1/series", vec![("match[]", deep.as_str())]),
        ("/api/v1/labels", vec![("match[]", deep.as_str())]),
    ] {
        let (code, v, _) = query(srv, path, &form);
        assert_eq!(code, 400, "{path}: {v}");
    }
    let ok = chain("+", "1", 5_000);
    let (code, v, _) = query(
        srv,
        "/api/v1/query_range",
        &[
            ("query", ok.as_str()),
            ("start", "0"),
            ("end", "60"),
            ("step", "15"),
        ],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["values"][4][1], "5000");
    // Pretty-printing is cubic in the depth (and its output quadratic): it has a lower limit.
    let (code, v, _) = query(srv, "/api/v1/format_query", &[("query", ok.as_str())]);
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        v["error"],
        "expression nesting depth 5000 exceeds the limit of 256 for formatting"
    );
    let (code, v, _) = query(
        srv,
        "/api/v1/format_query",
        &[("query", chain("+", "1", 256).as_str())],
    );
    assert_eq!(code, 200, "{v}");
    assert_alive(srv);
}

/// Refused by the sample limit at once, or cut at the timeout; either way memory stays bounded.
#[test]
fn subquery_bombs_are_refused_or_stopped_and_memory_stays_bounded() {
    let s = start("  timeout: 2s\n  max_samples: 5000000\n");
    let srv = &s.srv;
    let pid = srv.pid();
    let base_kb = proc_kb(pid, "VmRSS");
    let range = |q: &str| {
        query(
            srv,
            "/api/v1/query_range",
            &[
                ("query", q),
                ("start", "0"),
                ("end", "86400"),
                ("step", "60"),
            ],
        )
    };
    let bombs: [(&str, bool, &str); 10] = [
        // name, as a range query (0 to 1 day, step 1m), query
        ("30d:1ms", false, "sum_over_time(vector(1)[30d:1ms])"),
        ("top-level 30d:1ms", false, "vector(1)[30d:1ms]"),
        ("1y:1ms count", false, "count_over_time(vector(1)[1y:1ms])"),
        (
            "nested",
            false,
            "max_over_time(sum_over_time(vector(1)[30d:1s])[30d:1s])",
        ),
        ("range 1d:10ms", true, "sum_over_time(vector(1)[1d:10ms])"),
        (
            "step-invariant @",
            true,
            "sum_over_time(vector(1)[1d:1s] @ 86400)",
        ),
        (
            "binary of subqueries",
            true,
            "sum_over_time(vector(1)[1d:1s]) * sum_over_time(vector(1)[1d:1s])",
        ),
        (
            "just under max_samples",
            false,
            "count_over_time(vector(1)[56d:1s])",
        ),
        (
            "aggregation over a subquery",
            false,
            "sum(count_over_time(vector(1)[2d:1s]))",
        ),
        (
            "CPU: overlapping windows",
            false,
            "sum_over_time(sum_over_time(vector(1)[1d:1s])[1d:1s])",
        ),
    ];
    for (name, is_range, q) in bombs {
        let (code, v, took) = if is_range { range(q) } else { instant(srv, q) };
        let msg = v["error"].as_str().unwrap_or_default().to_string();
        assert!(
            (code == 422 && msg.contains("too many samples"))
                || (code == 503 && msg.contains("timed out"))
                || code == 200,
            "{name}: {code} {v}"
        );
        assert!(
            took < Duration::from_secs(4),
            "{name}: answered in {took:?}"
        );
        let stopped = wait_idle(srv, Duration::from_secs(1));
        let hwm = proc_kb(pid, "VmHWM");
        println!(
            "FIGURE bomb shape={name:?} status={code} answered_in={took:?} stopped_after_answer={stopped:?} VmHWM_kB={hwm} error={msg:?}"
        );
    }
    // 5 M samples of 16 bytes held at most twice over (inner result and its windows), plus the
    // process's own footprint.
    let hwm = proc_kb(pid, "VmHWM");
    let bound_kb = base_kb + 600 * 1024;
    assert!(
        hwm < bound_kb,
        "peak RSS {hwm} kB over the bound {bound_kb} kB"
    );
    assert_alive(srv);
}

/// The bomb from the issue against the default limits (only the timeout lowered): its peak RSS,
/// and how long after the timeout answer a CPU-bound bomb stops.
#[test]
fn the_subquery_bomb_of_the_issue_is_refused_and_a_timed_out_query_stops() {
    let s = start("  timeout: 2s\n");
    let srv = &s.srv;
    let pid = srv.pid();
    let (code, v, took) = instant(srv, "sum_over_time(vector(1)[30d:1ms])");
    assert_eq!(code, 422, "{v}");
    let stopped = wait_idle(srv, Duration::from_secs(1));
    println!(
        "FIGURE issue_bomb query=\"sum_over_time(vector(1)[30d:1ms])\" status={code} answered_in={took:?} stopped_after_answer={stopped:?} VmHWM_kB={} error={}",
        proc_kb(pid, "VmHWM"),
        v["error"]
    );
    let (code, v, took) = instant(srv, "sum_over_time(sum_over_time(vector(1)[1d:1s])[1d:1s])");
    assert_eq!(code, 503, "{v}");
    let stopped = wait_idle(srv, Duration::from_millis(500));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    let busy = cpu_ticks(pid) - before;
    println!(
        "FIGURE timeout_bomb query=\"sum_over_time(sum_over_time(vector(1)[1d:1s])[1d:1s])\" status={code} answered_in={took:?} stopped_after_answer={stopped:?} cpu_ticks_next_500ms={busy} VmHWM_kB={}",
        proc_kb(pid, "VmHWM")
    );
    // At 100 ticks a second, an idle server uses well under a fifth of a core.
    assert!(
        busy < 10,
        "{busy} ticks of CPU in 500 ms after the query stopped"
    );
    assert_alive(srv);
}

#[test]
fn a_query_whose_client_disconnects_stops_evaluating() {
    let s = start("  timeout: 5m\n");
    let srv = &s.srv;
    let pid = srv.pid();
    let q = "query=sum_over_time(sum_over_time(vector(1)%5B1d:1s%5D)%5B1d:1s%5D)&time=1000";
    let mut conn = TcpStream::connect(&srv.addr).unwrap();
    write!(
        conn,
        "POST /api/v1/query HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{q}",
        srv.addr,
        q.len()
    )
    .unwrap();
    let t = Instant::now();
    while running(srv) < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the query never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let hwm_running = proc_kb(pid, "VmHWM");
    drop(conn);
    let stopped = wait_idle(srv, Duration::from_secs(1));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(500));
    let busy = cpu_ticks(pid) - before;
    println!(
        "FIGURE disconnect stopped_after_disconnect={stopped:?} cpu_ticks_next_500ms={busy} VmHWM_kB={hwm_running} VmRSS_kB_after={}",
        proc_kb(pid, "VmRSS")
    );
    assert!(
        busy < 10,
        "{busy} ticks of CPU in 500 ms after the client left"
    );
    // The connection's answer is never read; a new one is served.
    let mut c2 = TcpStream::connect(&srv.addr).unwrap();
    write!(
        c2,
        "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c2.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[test]
fn a_query_storm_keeps_ingestion_acknowledged() {
    let s = start("  timeout: 3s\n  max_concurrency: 4\n");
    let srv = Arc::new(s.srv.addr.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let storm: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop) = (srv.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let _ = client()
                        .post(format!("http://{addr}/api/v1/query"))
                        .form(&[(
                            "query",
                            "sum_over_time(sum_over_time(vector(1)[1d:1s])[1d:1s])",
                        )])
                        .send();
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let srv = &s.srv;
    assert!(running(srv) >= 1.0, "the storm is not running");
    let mut worst = Duration::ZERO;
    let t0 = Instant::now();
    let mut k = 0i64;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    while t0.elapsed() < Duration::from_secs(4) {
        k += 1;
        let ts = base + k;
        let body = tocsin_collect::remote_write::encode([(
            &[("__name__", "storm_rw"), ("job", "t")][..],
            &[(ts, k as f64)][..],
        )]);
        let t = Instant::now();
        assert_eq!(tocsin_testkit::remote_write(srv, body).0, 204);
        worst = worst.max(t.elapsed());
        let t = Instant::now();
        let r = client()
            .post(srv.url("/write?precision=ms"))
            .body(format!("storm_lp,job=t value={k} {ts}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        worst = worst.max(t.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let queries: i32 = storm.into_iter().map(|h| h.join().unwrap()).sum();
    println!(
        "FIGURE storm writes={} queries_sent={queries} slowest_write_ack={worst:?}",
        2 * k
    );
    assert!(worst < Duration::from_secs(1), "a write took {worst:?}");
    wait_idle(srv, Duration::from_secs(5));
    let at = format!("{:.3}", (base + k) as f64 / 1000.0);
    for metric in ["storm_rw", "storm_lp_value"] {
        let q = format!("count_over_time({metric}[5m])");
        let (code, v, _) = query(srv, "/api/v1/query", &[("query", &q), ("time", &at)]);
        assert_eq!(code, 200, "{v}");
        assert_eq!(
            value_of(&v),
            k.to_string(),
            "{metric}: every acknowledged write is stored"
        );
    }
}

fn tocsin(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn deep_rule_expressions_are_refused_with_file_and_line_and_allowed_ones_evaluate() {
    let d = tempfile::tempdir().unwrap();
    let deep_ok = chain(" + ", "vector(1)", 3_000);
    let good = d.path().join("good.yml");
    std::fs::write(
        &good,
        format!(
            "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - record: deep:ok\n        expr: {deep_ok}\n      - alert: DeepNested\n        expr: {} > 0\n",
            nested("abs(", "vector(1)", ")", 5_000)
        ),
    )
    .unwrap();
    let (code, out) = tocsin(&["check", "rules", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");

    let bad = d.path().join("bad.yml");
    std::fs::write(
        &bad,
        format!(
            "groups:\n  - name: g\n    rules:\n      - record: deep:bad\n        expr: {}\n      - record: deeper:bad\n        expr: {}\n",
            nested("(", "1", ")", 30_000),
            chain("+", "1", 100_000)
        ),
    )
    .unwrap();
    let (code, out) = tocsin(&["check", "rules", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let f = bad.display();
    assert!(
        out.contains(&format!(
            "{f}:5:15: group \"g\", rule 1, \"deep:bad\": could not parse expression: expression nesting depth 30001 exceeds the limit of {MAX_DEPTH}"
        )) && out.contains(&format!(
            "{f}:7:15: group \"g\", rule 2, \"deeper:bad\": could not parse expression: expression nesting depth 100000 exceeds the limit of {MAX_DEPTH}"
        )),
        "{out}"
    );

    // Loaded by the server and evaluated every second.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tocsin.yml");
    std::fs::write(&cfg, format!("rule_files: [\"{}\"]\n", good.display())).unwrap();
    let srv = TestServer::start_on(
        bin(),
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let t = Instant::now();
    loop {
        let (code, v, _) = query(&srv, "/api/v1/query", &[("query", "deep:ok")]);
        assert_eq!(code, 200, "{v}");
        if v["data"]["result"][0]["value"][1] == "3000" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "deep:ok never recorded: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The alert's expression evaluates too: the rule is healthy and fires.
    loop {
        let text = client()
            .get(srv.url("/api/v1/rules"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let rules = &v["data"]["groups"][0]["rules"];
        if rules[1]["state"] == "firing" {
            assert_eq!(rules[0]["health"], "ok", "{}", rules[0]["lastError"]);
            assert_eq!(rules[1]["health"], "ok", "{}", rules[1]["lastError"]);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "DeepNested never fired: {}",
            rules[1]["lastError"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
