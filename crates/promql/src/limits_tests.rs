//! Tests of the query limits: expression depth (text bound, refusal, deep evaluation from a small
//! stack), the sample limit on subquery grids, and cancellation and timeouts stopping a query.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use tocsin_storage::MemoryStore;

use crate::{
    ast_depth, depth_bound, parse, Cancel, Engine, EngineOptions, Error, Value, MAX_DEPTH,
};

fn chain(op: &str, n: usize) -> String {
    let mut s = String::from("1");
    for _ in 1..n {
        s.push_str(op);
        s.push('1');
    }
    s
}

fn nested(open: &str, leaf: &str, close: &str, n: usize) -> String {
    format!("{}{leaf}{}", open.repeat(n), close.repeat(n))
}

/// Runs `f` on a thread with a 256 KiB stack, far less than any caller's: whatever the engine
/// needs beyond that it must find elsewhere.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn depth_bound_is_exact_for_chains_and_nesting_and_never_below_the_tree() {
    assert_eq!(depth_bound(&chain("+", 5)), 5);
    assert_eq!(depth_bound(&nested("abs(", "x", ")", 4)), 5);
    assert_eq!(depth_bound(&nested("-(", "x", ")", 3)), 7);
    for q in [
        "1",
        "up",
        "sum by (job) (rate(http_requests_total{code=~\"5..\", path!=\"(a+b)\"}[5m]))",
        "a == bool b >= c != d <= e",
        "1e-3 - 0x1e - 2 * -x ^ 2 ^ -3",
        "max_over_time(sum_over_time(x[5m:1m] offset -5m)[1h:5m] @ start())",
        "a and b or c unless d atan2 e",
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m]))) > 0.5 # (((((",
        "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\") + on (x) group_left (y) z",
        "topk(3, -count_values(\"v\", x))",
        "count_values(`raw(((`, x) + count_values('q\\'((', x) / count_values(\"\\\"((\", x)",
        "(((a))) + -(-(b)) * (c - (d - (e - f)))",
    ] {
        let e = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let (bound, depth) = (depth_bound(q), ast_depth(&e));
        assert!(bound >= depth, "{q}: bound {bound} < depth {depth}");
        assert_eq!(depth, e.depth(), "{q}");
    }
}

#[test]
fn deep_expressions_beyond_the_limit_are_refused_naming_it() {
    let msg = |q: String| on_small_stack(move || parse(&q).unwrap_err().to_string());
    let over = MAX_DEPTH + 1;
    let want = format!("expression nesting depth {over} exceeds the limit of {MAX_DEPTH}");
    assert_eq!(msg(chain("+", over)), want);
    assert_eq!(msg(chain("^", over)), want);
    assert_eq!(msg(nested("abs(", "x", ")", over - 1)), want);
    assert_eq!(msg(nested("(", "x", ")", over - 1)), want);
    // Text far beyond the limit is refused from the scan, before the parser sees it.
    let t = Instant::now();
    let huge = msg(chain("+", 20 * MAX_DEPTH));
    assert!(
        huge.contains(&format!("exceeds the limit of {MAX_DEPTH}")),
        "{huge}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_twenty_thousand_term_sum_is_evaluated_from_a_small_stack() {
    let v = on_small_stack(|| {
        let q = chain("+", 20_000);
        let e = Engine::default();
        e.instant(&MemoryStore::new(), &q, 0).unwrap().value
    });
    assert_eq!(v, Value::Scalar { t: 0, v: 20_000.0 });
}

#[test]
fn deep_nesting_at_the_limit_is_evaluated_and_dropped_from_a_small_stack() {
    for (q, want) in [
        // The bound counts the folded sign of `-2`: the tree is measured exactly.
        (nested("abs(", "vector(-2)", ")", MAX_DEPTH - 2), 2.0),
        (nested("-(", "vector(2)", ")", MAX_DEPTH / 2 - 2), 2.0),
        // promql-parser clones an aggregation's argument (a quadratic parse), so not at the
        // limit here: a debug build takes minutes there.
        (nested("sum(", "vector(2)", ")", 2_000), 2.0),
    ] {
        let v = on_small_stack(move || {
            let p = parse(&q).unwrap();
            assert!(p.depth() <= MAX_DEPTH);
            drop(p);
            Engine::default()
                .instant(&MemoryStore::new(), &q, 0)
                .unwrap()
                .value
        });
        match v {
            Value::Vector(v) => assert_eq!(v[0].v, want),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_subquery_grid_over_the_sample_limit_is_refused_before_allocation() {
    let t = Instant::now();
    let e = Engine::default()
        .instant(&MemoryStore::new(), "sum_over_time(vector(1)[30d:1ms])", 0)
        .unwrap_err();
    assert!(matches!(e, Error::TooManySamples(_)), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1));
    let small = Engine::new(EngineOptions {
        max_samples: 1000,
        ..Default::default()
    });
    let e = small
        .range(&MemoryStore::new(), "vector(1)", 0, 10_000_000, 1)
        .unwrap_err();
    assert!(matches!(e, Error::TooManySamples(_)), "{e}");
}

/// Overlapping windows: a billion-sample sum for a one-point answer.
const CPU_BOMB: &str = "sum_over_time(sum_over_time(vector(1)[1d:1s])[1d:1s])";

#[test]
fn a_canceled_query_stops_within_milliseconds() {
    let cancel = Cancel::new();
    let engine = Engine::default().with_cancel(cancel.clone());
    let h = std::thread::spawn(move || {
        let r = engine.instant(&MemoryStore::new(), CPU_BOMB, 0);
        (r.map(|_| ()).unwrap_err(), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(300));
    let raised = Instant::now();
    cancel.cancel();
    let (e, stopped) = h.join().unwrap();
    assert!(matches!(e, Error::Canceled), "{e}");
    let lag = stopped.saturating_duration_since(raised);
    assert!(
        lag < Duration::from_millis(300),
        "stopped {lag:?} after cancel"
    );
}

#[test]
fn a_timed_out_query_stops_at_its_deadline() {
    let engine = Engine::new(EngineOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let t = Instant::now();
    let e = engine
        .instant(&MemoryStore::new(), CPU_BOMB, 0)
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn every_shape_around_the_inline_depth_fits_a_tokio_worker_stack() {
    // Tokio's workers and blocking threads have 2 MiB stacks.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            for n in 1..=40 {
                for q in [
                    chain("+", n),
                    nested("abs(", "vector(1)", ")", n),
                    nested("-(", "vector(1)", ")", n),
                    nested("sum(", "vector(1)", ")", n),
                    nested("round(", "vector(1)", ")", n),
                    nested("max_over_time(", "vector(1)", "[1m:1m])", n),
                ] {
                    let e = Engine::default();
                    e.instant(&MemoryStore::new(), &q, 60_000)
                        .unwrap_or_else(|e| panic!("{q}: {e}"));
                    e.range(&MemoryStore::new(), &q, 0, 600_000, 60_000)
                        .unwrap_or_else(|e| panic!("{q}: {e}"));
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Found by the promql fuzz target: the parser panicked on a duration overflowing `Duration`,
/// also while the error position was being searched for. Both are parse errors now.
#[test]
fn out_of_range_durations_are_parse_errors_not_panics() {
    for q in [
        "x[1e3085]",
        "geugr_lef[1e3085",
        "rate(x[5m] offset 1e400)",
        "x offset -1e400",
        "x[Inf]",
        "x[5m:NaN]",
        "x[-5]",
        "x offset Inf",
    ] {
        match crate::parse_if_shallow(q) {
            Err(crate::Error::Parse(m)) => assert!(!m.is_empty(), "{q}"),
            other => panic!("{q}: {:?}", other.map(|_| ())),
        }
    }
}

/// The guard only looks where the grammar reads a duration: huge numbers elsewhere are values.
#[test]
fn huge_numbers_outside_durations_still_parse() {
    for q in [
        "x > 1e300",
        "x > Inf",
        "x * -1e400",
        "vector(NaN)",
        "x[5m] offset 1h",
        "x[1h:5m]",
    ] {
        assert!(crate::parse_if_shallow(q).is_ok(), "{q}");
    }
}
