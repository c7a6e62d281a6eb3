//! Running a parsed script: loading data into a `MemoryStore`, deciding which evals we cannot run
//! (native histograms, start timestamps), evaluating the rest with the engine and checking the
//! results, annotations and the optional `@`-variant and range-mode checks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, VectorSelector};
use tocsin_model::{Labels, METRIC_NAME};
use tocsin_storage::{AppendOptions, Appendable, MemoryStore};

use super::compare::{check_result, check_scalar, check_vector, describe_expected, describe_value};
use super::notation::SeqValue;
use super::report::{Failure, FailureCategory, FileReport};
use super::script::{
    AnnotationExpect, Command, Eval, EvalKind, Expected, Load, Script, ScriptError,
};
use crate::{Engine, EngineOptions, QueryOutput, Value};

/// What the runner does beyond the main check of each eval.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Also run the `@`-variant and range-mode checks for instant evals that passed.
    pub extra_checks: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { extra_checks: true }
    }
}

/// Why an eval is not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    NativeHistograms,
    StartTimestamps,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unsupported::NativeHistograms => "native histograms",
            Unsupported::StartTimestamps => "start timestamps",
        })
    }
}

/// The engine settings the reference test engine uses.
pub fn test_engine() -> Engine {
    Engine::new(EngineOptions {
        lookback_delta: 5 * 60 * 1000,
        max_samples: 10_000,
        timeout: Duration::from_secs(30),
        default_subquery_step: 60 * 1000,
    })
}

/// Storage plus what we know about the series that cannot be represented.
struct State {
    store: MemoryStore,
    special: Vec<(Labels, Unsupported)>,
}

impl State {
    fn new() -> Self {
        State {
            store: MemoryStore::new(),
            special: Vec::new(),
        }
    }
}

/// Runs every command of a script in order and reports the outcome of each eval.
pub fn run_script(name: &str, script: &Script, opts: &RunOptions) -> FileReport {
    let engine = test_engine();
    let mut report = FileReport {
        name: name.to_string(),
        script_errors: script.errors.clone(),
        ..FileReport::default()
    };
    let mut state = State::new();
    for cmd in &script.commands {
        match cmd {
            Command::Clear { .. } => state = State::new(),
            Command::Load(l) => load(&mut state, l, &mut report),
            Command::BrokenEval { line, query } => {
                report.evals += 1;
                report.record_failure(Failure {
                    line: *line,
                    query: query.clone(),
                    category: FailureCategory::Script,
                    detail: "the eval's header or body did not parse (see script errors)".into(),
                });
            }
            Command::Eval(e) => {
                report.evals += 1;
                run_eval(&engine, &state, e, opts, &mut report);
            }
        }
    }
    report
}

fn load(state: &mut State, l: &Load, report: &mut FileReport) {
    for s in &l.series {
        if s.values.iter().any(|v| matches!(v, SeqValue::Histogram(_))) {
            state
                .special
                .push((s.labels.clone(), Unsupported::NativeHistograms));
        }
        // One batch per series, so a rejected sample costs only its own series.
        let mut app = state.store.appender();
        let mut t = 0i64;
        let mut err = None;
        for v in &s.values {
            if let SeqValue::Float(f) = v {
                if let Err(e) = app.append(&s.labels, t, *f, &AppendOptions::default()) {
                    err.get_or_insert(e.to_string());
                }
            }
            t += l.interval_ms;
        }
        if let Err(e) = app.commit() {
            err.get_or_insert(e.to_string());
        }
        if let Some(message) = err {
            report.load_errors.push(ScriptError {
                line: s.line,
                message,
            });
        }
    }
    if l.with_nhcb {
        // Each classic family becomes a native histogram series named after it, without `le`.
        for s in &l.series {
            let Some(base) = s
                .labels
                .metric_name()
                .and_then(|n| n.strip_suffix("_bucket"))
            else {
                continue;
            };
            let le_ok = s
                .labels
                .get("le")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| !v.is_nan());
            if !le_ok {
                continue;
            }
            let mut b = s.labels.builder();
            b.set(METRIC_NAME, base);
            b.del("le");
            state
                .special
                .push((b.build(), Unsupported::NativeHistograms));
        }
    }
    for labels in &l.start_timestamp_series {
        state
            .special
            .push((labels.clone(), Unsupported::StartTimestamps));
    }
}

/// Calls `f` for every node of the expression tree.
fn walk<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, f);
            }
            walk(&a.expr, f);
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

fn selector_matches(vs: &VectorSelector, l: &Labels) -> bool {
    let get = |n: &str| l.get(n).unwrap_or("");
    if vs.name.as_deref().is_some_and(|n| n != get(METRIC_NAME)) {
        return false;
    }
    if !vs
        .matchers
        .matchers
        .iter()
        .all(|m| m.is_match(get(&m.name)))
    {
        return false;
    }
    vs.matchers.or_matchers.is_empty()
        || vs
            .matchers
            .or_matchers
            .iter()
            .any(|g| g.iter().all(|m| m.is_match(get(&m.name))))
}

/// Decides whether an eval touches data we cannot represent: its expected output holds a
/// histogram, or one of its selectors selects a series holding histograms (or start timestamps).
/// Unparsable queries fall back to looking for such a series' name in the query text.
fn classify(
    e: &Eval,
    expr: Option<&Expr>,
    special: &[(Labels, Unsupported)],
) -> Option<Unsupported> {
    if e.expects_histogram() {
        return Some(Unsupported::NativeHistograms);
    }
    let mut hits: Vec<Unsupported> = Vec::new();
    match expr {
        Some(expr) => walk(expr, &mut |n| {
            let vs = match n {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return,
            };
            hits.extend(
                special
                    .iter()
                    .filter(|(l, _)| selector_matches(vs, l))
                    .map(|(_, r)| *r),
            );
        }),
        None => hits.extend(
            special
                .iter()
                .filter(|(l, _)| l.metric_name().is_some_and(|n| e.query.contains(n)))
                .map(|(_, r)| *r),
        ),
    }
    if hits.contains(&Unsupported::NativeHistograms) {
        Some(Unsupported::NativeHistograms)
    } else {
        hits.first().copied()
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs the engine; a panic becomes an error so one bad query cannot stop the whole run.
fn query(
    engine: &Engine,
    store: &MemoryStore,
    q: &str,
    kind: EvalKind,
) -> Result<QueryOutput, String> {
    let r = catch_unwind(AssertUnwindSafe(|| match kind {
        EvalKind::Instant { t } => engine.instant(store, q, t),
        EvalKind::Range { start, end, step } => engine.range(store, q, start, end, step),
    }));
    match r {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!("engine panicked: {}", panic_message(p))),
    }
}

fn check_annotations(what: &str, exp: &AnnotationExpect, got: &[String]) -> Result<usize, String> {
    if !exp.is_checked() {
        return Ok(0);
    }
    if exp.none {
        return if got.is_empty() {
            Ok(0)
        } else {
            Err(format!("expected no {what}s, got {got:?}"))
        };
    }
    if got.is_empty() {
        return Err(format!("expected at least one {what}, got none"));
    }
    // Message texts are Go's; a mismatch is only counted as advisory.
    let unmatched_got = got
        .iter()
        .filter(|g| !exp.lines.iter().any(|l| l.matches(g)))
        .count();
    let unmatched_lines = exp
        .lines
        .iter()
        .filter(|l| !got.iter().any(|g| l.matches(g)))
        .count();
    Ok(unmatched_got + unmatched_lines)
}

fn run_eval(engine: &Engine, state: &State, e: &Eval, opts: &RunOptions, report: &mut FileReport) {
    let fail = |category: FailureCategory, detail: String| Failure {
        line: e.line,
        query: e.query.clone(),
        category,
        detail,
    };
    let parsed = crate::parse(&e.query).map(crate::Parsed::into_expr);
    let expr = parsed.as_ref().ok();
    if let Some(why) = classify(e, expr, &state.special) {
        match why {
            Unsupported::NativeHistograms => report.unsupported_nh += 1,
            Unsupported::StartTimestamps => report.unsupported_st += 1,
        }
        report.unsupported.push((e.line, e.query.clone(), why));
        return;
    }
    let expr = match parsed {
        Ok(expr) => expr,
        // A query our parser rejects has failed at creation time, which an expected failure
        // allows; it is still listed so parser gaps stay visible.
        Err(err) if e.fail.is_some() => {
            report.passed += 1;
            report.parse_rejected_expected_fail += 1;
            report.notes.push(fail(
                FailureCategory::QueryParse,
                format!("expected failure; parser: {err}"),
            ));
            return;
        }
        Err(err) => {
            report.record_failure(fail(FailureCategory::QueryParse, err.to_string()));
            return;
        }
    };
    let kind = match (e.kind, e.instant_time()) {
        (EvalKind::Instant { .. }, Some(t)) => EvalKind::Instant { t },
        (k, _) => k,
    };
    let out = match (query(engine, &state.store, &e.query, kind), &e.fail) {
        (Err(err), Some(m)) => {
            if !m.matches(&err) {
                report.advisory_message_mismatches += 1;
            }
            report.passed += 1;
            extra_checks(engine, state, e, &expr, opts, report);
            return;
        }
        (Ok(out), Some(_)) => {
            report.record_failure(fail(
                FailureCategory::UnexpectedSuccess,
                format!(
                    "expected the query to fail, got {}",
                    describe_value(&out.value)
                ),
            ));
            return;
        }
        (Err(err), None) => {
            report.record_failure(fail(FailureCategory::Engine, err));
            return;
        }
        (Ok(out), None) => out,
    };
    if let Err(d) = check_result(e, &out.value) {
        report.record_failure(fail(
            FailureCategory::Mismatch,
            format!(
                "{d}\n    expected: {}\n    got: {}",
                describe_expected(e),
                describe_value(&out.value)
            ),
        ));
        return;
    }
    let annotations = check_annotations("warning", &e.warn, &out.warnings)
        .and_then(|a| check_annotations("info", &e.info, &out.infos).map(|b| a + b));
    match annotations {
        Ok(advisory) => {
            report.advisory_message_mismatches += advisory;
            report.passed += 1;
            extra_checks(engine, state, e, &expr, opts, report);
        }
        Err(d) => report.record_failure(fail(FailureCategory::Annotations, d)),
    }
}

/// Functions whose value depends on the evaluation time, so pinning selectors with `@` would
/// change the answer.
const TIME_FUNCTIONS: &[&str] = &[
    "time",
    "timestamp",
    "predict_linear",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
    "start",
    "end",
    "range",
    "step",
];

fn system_time(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// Adds `@ t` to every selector and subquery without one; selectors inside a subquery are left
/// alone because the subquery's own `@` already pins them.
fn pin_at(e: &mut Expr, t: i64) {
    match e {
        Expr::VectorSelector(vs) => {
            if vs.at.is_none() {
                vs.at = Some(AtModifier::At(system_time(t)));
            }
        }
        Expr::MatrixSelector(ms) => {
            if ms.vs.at.is_none() {
                ms.vs.at = Some(AtModifier::At(system_time(t)));
            }
        }
        Expr::Subquery(s) => {
            if s.at.is_none() {
                s.at = Some(AtModifier::At(system_time(t)));
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                pin_at(p, t);
            }
            pin_at(&mut a.expr, t);
        }
        Expr::Unary(u) => pin_at(&mut u.expr, t),
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, t);
            pin_at(&mut b.rhs, t);
        }
        Expr::Paren(p) => pin_at(&mut p.expr, t),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| pin_at(a, t)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn uses_time_function(expr: &Expr) -> bool {
    let mut found = false;
    walk(expr, &mut |n| {
        if let Expr::Call(c) = n {
            found |= TIME_FUNCTIONS.contains(&c.func.name);
        }
    });
    found
}

/// The optional checks of an instant eval that passed: the `@`-pinned query at other evaluation
/// times, and the query as a short range query sampled at the eval time.
fn extra_checks(
    engine: &Engine,
    state: &State,
    e: &Eval,
    expr: &Expr,
    opts: &RunOptions,
    report: &mut FileReport,
) {
    let Some(t) = e.instant_time() else { return };
    if !opts.extra_checks {
        return;
    }
    let extra_fail = |what: &str, detail: String| Failure {
        line: e.line,
        query: e.query.clone(),
        category: FailureCategory::Extra,
        detail: format!("{what}: {detail}"),
    };
    let squashed: String = e.query.chars().filter(|c| !c.is_whitespace()).collect();
    let range_sensitive = ["start()", "end()", "range()", "step()"]
        .iter()
        .any(|f| squashed.contains(f));
    let mut pinned = expr.clone();
    pin_at(&mut pinned, t);
    let q = pinned.to_string();
    // The rewritten query goes back to the engine as text; when promql-parser's rendering does
    // not parse back to the same tree (or at least to the same rendering: it sorts matchers), a
    // failure would say nothing about the engine, so skip.
    let renders = crate::parse(&q).is_ok_and(|back| *back == pinned || back.to_string() == q);
    if !uses_time_function(expr) && !range_sensitive && renders {
        let times: Vec<i64> = if t == 0 {
            vec![-1000, 0, 1000]
        } else {
            vec![-10 * t, 0, t / 5, t, 10 * t]
        };
        report.at_check.run += 1;
        let mut problem = None;
        for at in times {
            let r = query(engine, &state.store, &q, EvalKind::Instant { t: at });
            let res = match (r, &e.fail) {
                (Err(_), Some(_)) => Ok(()),
                (Ok(_), Some(_)) => Err("expected a failure".to_string()),
                (Err(err), None) => Err(err),
                (Ok(out), None) => check_result(e, &out.value),
            };
            if let Err(d) = res {
                problem = Some(format!("`{q}` at {at}ms: {d}"));
                break;
            }
        }
        match problem {
            None => report.at_check.passed += 1,
            Some(d) => report.extra_failures.push(extra_fail("@ variant", d)),
        }
    }
    if e.range_vector.is_some()
        || e.string.is_some()
        || e.ordered
        || e.fail.is_some()
        || range_sensitive
    {
        return;
    }
    report.range_check.run += 1;
    let kind = EvalKind::Range {
        start: t - 60_000,
        end: t + 60_000,
        step: 60_000,
    };
    let res = match query(engine, &state.store, &e.query, kind) {
        Err(err) => Err(err),
        Ok(out) => match (&out.value, &e.expected) {
            (Value::Matrix(ms), Expected::Scalar(want)) => {
                match ms
                    .iter()
                    .find(|s| s.labels.is_empty())
                    .and_then(|s| s.samples.iter().find(|p| p.t == t))
                {
                    Some(p) => check_scalar(*want, p.v),
                    None => Err(format!("no point at {t} in {}", describe_value(&out.value))),
                }
            }
            (Value::Matrix(ms), Expected::Series(exp)) => {
                let at_t: Vec<(&Labels, f64)> = ms
                    .iter()
                    .filter_map(|s| {
                        s.samples
                            .iter()
                            .find(|p| p.t == t)
                            .map(|p| (&s.labels, p.v))
                    })
                    .collect();
                check_vector(exp, &at_t, false)
            }
            (other, _) => Err(format!("expected a matrix, got a {}", other.type_name())),
        },
    };
    match res {
        Ok(()) => report.range_check.passed += 1,
        Err(d) => report.extra_failures.push(extra_fail("range mode", d)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::promqltest::script::parse_script;

    fn first_eval(s: &Script) -> &Eval {
        s.commands
            .iter()
            .find_map(|c| match c {
                Command::Eval(e) => Some(&**e),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn classify_histogram_evals() {
        let text = r#"
load 5m
    h {{schema:0 sum:5 count:4 buckets:[1 2 1]}}
    f 1
    cls_bucket{le="1"} 1
    cls_bucket{le="+Inf"} 2
    cls_count 2
    cls_sum 3
"#;
        let s = parse_script(text);
        let Command::Load(l) = &s.commands[0] else {
            panic!("expected load")
        };
        let mut state = State::new();
        let mut report = FileReport::default();
        load(&mut state, l, &mut report);
        let script = parse_script("eval instant at 0 rate(h[5m]) + f\n");
        let e = first_eval(&script);
        let expr = crate::parse(&e.query).ok().map(crate::Parsed::into_expr);
        assert_eq!(
            classify(e, expr.as_ref(), &state.special),
            Some(Unsupported::NativeHistograms)
        );
        let script = parse_script("eval instant at 0 f\n  f 1\n");
        let e = first_eval(&script);
        let expr = crate::parse(&e.query).ok().map(crate::Parsed::into_expr);
        assert_eq!(classify(e, expr.as_ref(), &state.special), None);
        let script = parse_script("eval instant at 0 {__name__=~\"h|x\"}\n");
        let e = first_eval(&script);
        let expr = crate::parse(&e.query).ok().map(crate::Parsed::into_expr);
        assert_eq!(
            classify(e, expr.as_ref(), &state.special),
            Some(Unsupported::NativeHistograms)
        );
        // Without NHCB the classic family is plain floats.
        let script = parse_script("eval instant at 0 cls\n");
        let e = first_eval(&script);
        let expr = crate::parse(&e.query).ok().map(crate::Parsed::into_expr);
        assert_eq!(classify(e, expr.as_ref(), &state.special), None);
        let script = parse_script("eval instant at 0 f\n  f {{sum:1}}\n");
        assert!(first_eval(&script).expects_histogram());
    }

    #[test]
    fn nhcb_adds_histogram_series() {
        let s = parse_script(
            "load_with_nhcb 5m\n  cls_bucket{le=\"1\", j=\"a\"} 1\n  cls_bucket{le=\"+Inf\", j=\"a\"} 2\n",
        );
        let Command::Load(l) = &s.commands[0] else {
            panic!("expected load")
        };
        let mut state = State::new();
        let mut report = FileReport::default();
        load(&mut state, l, &mut report);
        let want = Labels::from_pairs(&[("__name__", "cls"), ("j", "a")]);
        assert!(state.special.iter().any(|(l, _)| *l == want));
        assert_eq!(state.store.snapshot().len(), 2);
    }

    #[test]
    fn loads_floats_with_gaps_and_stale_markers() {
        let s = parse_script("load 1m\n  m 1 _ stale 4\n");
        let Command::Load(l) = &s.commands[0] else {
            panic!("expected load")
        };
        let mut state = State::new();
        let mut report = FileReport::default();
        load(&mut state, l, &mut report);
        let snap = state.store.snapshot();
        let ts: Vec<i64> = snap[0].1.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![0, 120_000, 180_000]);
        assert!(tocsin_model::is_stale_nan(snap[0].1[1].v));
    }

    #[test]
    fn pins_selectors_but_not_inside_subqueries() {
        let mut e = crate::parse("rate(a[5m]) + b @ 10 + max_over_time(c[5m:1m])")
            .unwrap()
            .into_expr();
        pin_at(&mut e, 60_000);
        let s = e.to_string();
        assert!(s.contains("a[5m] @ 60.000"), "{s}");
        assert!(s.contains("b @ 10.000"), "{s}");
        assert!(s.contains("c[5m:1m] @ 60.000"), "{s}");
        assert!(!s.contains("c @"), "{s}");
        assert!(uses_time_function(&crate::parse("time() - a").unwrap()));
        assert!(!uses_time_function(&crate::parse("rate(a[1m])").unwrap()));
    }
}
