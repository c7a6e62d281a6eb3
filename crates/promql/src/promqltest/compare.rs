//! Comparing a query's result with an eval's expectation: float equality with a relative epsilon
//! and exact stale-marker handling, label-set matching of vectors and matrices, order checks.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use tocsin_model::{is_stale_nan, Labels, Sample};

use super::notation::SeqValue;
use super::script::{Eval, EvalKind, Expected, ExpectedSeries};
use crate::{RangeSeries, Value};

const EPSILON: f64 = 1e-6;
/// The smallest positive normal f64; differences against zero are compared against a tiny
/// multiple of it, so a zero expectation is practically exact.
const MIN_NORMAL: f64 = 2.2250738585072014e-308;

/// Float equality as the reference runner defines it: stale markers only equal each other, any two
/// other NaNs are equal, otherwise a relative epsilon of 1e-6.
pub fn float_eq(a: f64, b: f64) -> bool {
    match (is_stale_nan(a), is_stale_nan(b)) {
        (true, true) => return true,
        (true, false) | (false, true) => return false,
        _ => {}
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || a.abs() + b.abs() < MIN_NORMAL {
        return diff < EPSILON * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < EPSILON
}

fn fmt_f(v: f64) -> String {
    if is_stale_nan(v) {
        "stale".into()
    } else {
        format!("{v}")
    }
}

/// A short rendering of a result for failure reports.
pub fn describe_value(v: &Value) -> String {
    const MAX: usize = 12;
    let mut s = String::new();
    match v {
        Value::Scalar { v, .. } => s.push_str(&format!("scalar {}", fmt_f(*v))),
        Value::String { v, .. } => s.push_str(&format!("string {v:?}")),
        Value::Vector(vs) => {
            let _ = write!(s, "vector ({} samples)", vs.len());
            for x in vs.iter().take(MAX) {
                let _ = write!(s, "\n      {} {}", x.labels, fmt_f(x.v));
            }
            if vs.len() > MAX {
                s.push_str("\n      ...");
            }
        }
        Value::Matrix(ms) => {
            let _ = write!(s, "matrix ({} series)", ms.len());
            for x in ms.iter().take(MAX) {
                let pts: Vec<String> = x
                    .samples
                    .iter()
                    .take(MAX)
                    .map(|p| format!("{}@{}", fmt_f(p.v), p.t))
                    .collect();
                let more = if x.samples.len() > MAX { " ..." } else { "" };
                let _ = write!(s, "\n      {} {}{more}", x.labels, pts.join(" "));
            }
            if ms.len() > MAX {
                s.push_str("\n      ...");
            }
        }
    }
    s
}

/// A short rendering of what an eval expects.
pub fn describe_expected(e: &Eval) -> String {
    if let Some(s) = &e.string {
        return format!("string {s:?}");
    }
    match &e.expected {
        Expected::Scalar(v) => format!("scalar {}", fmt_f(*v)),
        Expected::Series(ss) if ss.is_empty() => "empty result".into(),
        Expected::Series(ss) => {
            let mut s = format!("{} series", ss.len());
            for x in ss.iter().take(12) {
                let vals: Vec<String> = x
                    .values
                    .iter()
                    .take(12)
                    .map(|v| match v {
                        SeqValue::Float(f) => fmt_f(*f),
                        SeqValue::Missing => "_".into(),
                        SeqValue::Histogram(h) => h.clone(),
                    })
                    .collect();
                let _ = write!(s, "\n      {} {}", x.labels, vals.join(" "));
            }
            if ss.len() > 12 {
                s.push_str("\n      ...");
            }
            s
        }
    }
}

/// Checks a result against the eval's expectation (at the eval's own times).
pub fn check_result(e: &Eval, value: &Value) -> Result<(), String> {
    if let Some(want) = &e.string {
        return match value {
            Value::String { v, .. } if v == want => Ok(()),
            Value::String { v, .. } => Err(format!("expected string {want:?}, got {v:?}")),
            other => Err(format!("expected a string, got a {}", other.type_name())),
        };
    }
    let window = match (e.kind, e.range_vector) {
        (EvalKind::Range { start, step, .. }, _) => Some((start, step)),
        (EvalKind::Instant { .. }, Some(rv)) => Some((rv.start, rv.step)),
        (EvalKind::Instant { .. }, None) => None,
    };
    match (window, &e.expected, value) {
        (Some((start, step)), Expected::Series(exp), Value::Matrix(got)) => {
            check_matrix(exp, start, step, got)
        }
        (Some(_), Expected::Scalar(_), _) => Err("a scalar expectation for a range result".into()),
        (Some(_), _, other) => Err(format!("expected a matrix, got a {}", other.type_name())),
        (None, Expected::Scalar(want), Value::Scalar { v, .. }) => check_scalar(*want, *v),
        (None, Expected::Scalar(_), other) => {
            Err(format!("expected a scalar, got a {}", other.type_name()))
        }
        (None, Expected::Series(exp), Value::Vector(got)) => {
            let got: Vec<(&Labels, f64)> = got.iter().map(|s| (&s.labels, s.v)).collect();
            check_vector(exp, &got, e.ordered)
        }
        (None, Expected::Series(_), other) => {
            Err(format!("expected a vector, got a {}", other.type_name()))
        }
    }
}

pub fn check_scalar(want: f64, got: f64) -> Result<(), String> {
    if float_eq(want, got) {
        Ok(())
    } else {
        Err(format!(
            "expected scalar {}, got {}",
            fmt_f(want),
            fmt_f(got)
        ))
    }
}

/// Compares an instant vector; `ordered` also requires the expected lines' order.
pub fn check_vector(
    exp: &[ExpectedSeries],
    got: &[(&Labels, f64)],
    ordered: bool,
) -> Result<(), String> {
    let want: HashMap<&Labels, (usize, Option<f64>)> = exp
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = match s.values.first() {
                Some(SeqValue::Float(f)) => Some(*f),
                _ => None,
            };
            (&s.labels, (i, v))
        })
        .collect();
    let mut seen = HashSet::new();
    for (pos, (labels, v)) in got.iter().enumerate() {
        let Some(&(i, w)) = want.get(labels) else {
            return Err(format!("unexpected series {labels} {}", fmt_f(*v)));
        };
        if !seen.insert(*labels) {
            return Err(format!("series {labels} returned twice"));
        }
        let Some(w) = w else {
            return Err(format!(
                "series {labels} expected absent ('_'), got {}",
                fmt_f(*v)
            ));
        };
        if ordered && i != pos {
            return Err(format!(
                "ordered: series {labels} expected at position {}, got at {}",
                i + 1,
                pos + 1
            ));
        }
        if !float_eq(w, *v) {
            return Err(format!(
                "series {labels}: expected {}, got {}",
                fmt_f(w),
                fmt_f(*v)
            ));
        }
    }
    for s in exp {
        let present = matches!(s.values.first(), Some(SeqValue::Float(_)));
        if present && !seen.contains(&s.labels) {
            return Err(format!("expected series {} not returned", s.labels));
        }
    }
    Ok(())
}

/// Compares a matrix whose expected slot `i` is at `start + i*step`; it must also be sorted by
/// labels.
pub fn check_matrix(
    exp: &[ExpectedSeries],
    start: i64,
    step: i64,
    got: &[RangeSeries],
) -> Result<(), String> {
    for w in got.windows(2) {
        if w[0].labels >= w[1].labels {
            return Err(format!(
                "matrix not sorted by labels: {} before {}",
                w[0].labels, w[1].labels
            ));
        }
    }
    let want: HashMap<&Labels, Vec<Sample>> = exp
        .iter()
        .map(|s| {
            let pts = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    SeqValue::Float(f) => Some(Sample::new(start + i as i64 * step, *f)),
                    _ => None,
                })
                .collect();
            (&s.labels, pts)
        })
        .collect();
    let mut seen = HashSet::new();
    for s in got {
        let Some(pts) = want.get(&s.labels) else {
            if s.samples.is_empty() {
                continue;
            }
            return Err(format!(
                "unexpected series {} ({} points)",
                s.labels,
                s.samples.len()
            ));
        };
        seen.insert(&s.labels);
        if pts.len() != s.samples.len() {
            return Err(format!(
                "series {}: expected {} points, got {}",
                s.labels,
                pts.len(),
                s.samples.len()
            ));
        }
        for (w, g) in pts.iter().zip(&s.samples) {
            if w.t != g.t || !float_eq(w.v, g.v) {
                return Err(format!(
                    "series {}: expected {} at {}, got {} at {}",
                    s.labels,
                    fmt_f(w.v),
                    w.t,
                    fmt_f(g.v),
                    g.t
                ));
            }
        }
    }
    for (labels, pts) in &want {
        if !pts.is_empty() && !seen.contains(labels) {
            return Err(format!("expected series {labels} not returned"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use tocsin_model::STALE_NAN;

    #[test]
    fn floats() {
        assert!(float_eq(1.0, 1.0 + 1e-9));
        assert!(!float_eq(1.0, 1.0001));
        assert!(float_eq(f64::NAN, -f64::NAN));
        assert!(float_eq(STALE_NAN, STALE_NAN));
        assert!(!float_eq(STALE_NAN, f64::NAN));
        assert!(!float_eq(f64::NAN, STALE_NAN));
        assert!(float_eq(f64::INFINITY, f64::INFINITY));
        assert!(!float_eq(f64::INFINITY, f64::NEG_INFINITY));
        assert!(!float_eq(0.0, 1e-300));
        assert!(float_eq(0.0, -0.0));
        assert!(float_eq(1e308, 1e308 * (1.0 + 1e-9)));
    }

    fn es(labels: Labels, values: Vec<SeqValue>) -> ExpectedSeries {
        ExpectedSeries {
            line: 1,
            labels,
            values,
        }
    }

    #[test]
    fn vectors() {
        let a = Labels::from_pairs(&[("a", "1")]);
        let b = Labels::from_pairs(&[("a", "2")]);
        let exp = vec![
            es(a.clone(), vec![SeqValue::Float(1.0)]),
            es(b.clone(), vec![SeqValue::Float(2.0)]),
        ];
        assert!(check_vector(&exp, &[(&b, 2.0), (&a, 1.0)], false).is_ok());
        assert!(check_vector(&exp, &[(&b, 2.0), (&a, 1.0)], true).is_err());
        assert!(check_vector(&exp, &[(&a, 1.0), (&b, 2.0)], true).is_ok());
        assert!(check_vector(&exp, &[(&a, 1.0)], false).is_err());
        assert!(check_vector(&exp, &[(&a, 1.0), (&b, 3.0)], false).is_err());
        assert!(check_vector(&[], &[], false).is_ok());
        assert!(check_vector(&[], &[(&a, 1.0)], false).is_err());
    }

    #[test]
    fn matrices() {
        let a = Labels::from_pairs(&[("a", "1")]);
        let b = Labels::from_pairs(&[("a", "2")]);
        let exp = vec![es(
            a.clone(),
            vec![
                SeqValue::Float(1.0),
                SeqValue::Missing,
                SeqValue::Float(3.0),
            ],
        )];
        let good = vec![RangeSeries {
            labels: a.clone(),
            samples: vec![Sample::new(0, 1.0), Sample::new(120, 3.0)],
        }];
        assert!(check_matrix(&exp, 0, 60, &good).is_ok());
        let shifted = vec![RangeSeries {
            labels: a.clone(),
            samples: vec![Sample::new(0, 1.0), Sample::new(60, 3.0)],
        }];
        assert!(check_matrix(&exp, 0, 60, &shifted).is_err());
        let unsorted = vec![
            RangeSeries {
                labels: b.clone(),
                samples: vec![],
            },
            good[0].clone(),
        ];
        assert!(check_matrix(&exp, 0, 60, &unsorted).is_err());
    }

    fn eval_of(text: &str) -> Eval {
        use crate::promqltest::script::{parse_script, Command};
        let s = parse_script(text);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        match s.commands.into_iter().next() {
            Some(Command::Eval(e)) => *e,
            other => panic!("expected an eval, got {other:?}"),
        }
    }

    #[test]
    fn results_against_parsed_evals() {
        let l = |n: &str| Labels::from_pairs(&[("__name__", n)]);
        let e = eval_of("eval range from 0 to 2m step 1m m\n  m 1 _ 3\n");
        let ok = Value::Matrix(vec![RangeSeries {
            labels: l("m"),
            samples: vec![Sample::new(0, 1.0), Sample::new(120_000, 3.0)],
        }]);
        assert!(check_result(&e, &ok).is_ok());
        assert!(check_result(&e, &Value::Vector(vec![])).is_err());

        let e = eval_of(
            "eval instant at 1m m[1m]\n  expect range vector from 0 to 1m step 30s\n  m 1 2 3\n",
        );
        let got = Value::Matrix(vec![RangeSeries {
            labels: l("m"),
            samples: vec![
                Sample::new(0, 1.0),
                Sample::new(30_000, 2.0),
                Sample::new(60_000, 3.0),
            ],
        }]);
        assert!(check_result(&e, &got).is_ok());

        let e = eval_of("eval instant at 1m 1\n  1.0000000001\n");
        assert!(check_result(&e, &Value::Scalar { t: 60_000, v: 1.0 }).is_ok());
        assert!(check_result(&e, &Value::Vector(vec![])).is_err());

        let e = eval_of("eval instant at 1m \"a\"\n  expect string \"a\"\n");
        let s = |v: &str| Value::String {
            t: 0,
            v: v.to_string(),
        };
        assert!(check_result(&e, &s("a")).is_ok());
        assert!(check_result(&e, &s("b")).is_err());

        let e = eval_of("eval instant at 1m m\n  m stale\n");
        let v = |x: f64| {
            Value::Vector(vec![crate::InstantSample {
                labels: l("m"),
                t: 60_000,
                v: x,
            }])
        };
        assert!(check_result(&e, &v(STALE_NAN)).is_ok());
        assert!(check_result(&e, &v(f64::NAN)).is_err());
        // An empty expectation needs an empty vector; a scalar is a different type.
        let e = eval_of("eval instant at 1m m\n");
        assert!(check_result(&e, &Value::Vector(vec![])).is_ok());
        assert!(check_result(&e, &Value::Scalar { t: 0, v: 1.0 }).is_err());
    }
}
