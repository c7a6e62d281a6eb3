//! PromQL functions over float samples: the range-vector family (`rate`, `*_over_time`, ...),
//! element-wise math, label manipulation, sorting, `absent`, `histogram_quantile` over classic
//! buckets, and the time functions.

use std::collections::HashMap;

use promql_parser::parser::{Call, Expr};
use regex::Regex;
use tocsin_model::labels::validate_label_name;
use tocsin_model::{Labels, MatchOp, Sample};

use crate::aggregate::{float_order, format_float, kahan_inc, quantile};
use crate::engine::{
    drop_name, selector_matchers, unparen, Builder, Ctx, Evaluator, Pt, Ser, Val, Windows,
};
use crate::{Error, Result};

#[path = "functions_histogram.rs"]
mod histogram;
use histogram::ClassicKind;

#[path = "functions_range.rs"]
mod range;

impl Evaluator<'_> {
    fn warn_sort_in_range(&mut self) {
        if self.query_step > 0 {
            self.warn(
                "sort is ineffective for range queries since results are always ordered by labels",
            );
        }
    }

    fn scalar_arg(&mut self, e: &Expr, ctx: Ctx) -> Result<Vec<f64>> {
        match self.eval(e, ctx)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(Error::Execution("expected a scalar argument".into())),
        }
    }

    fn vector_arg(&mut self, e: &Expr, ctx: Ctx) -> Result<Vec<Ser>> {
        match self.eval(e, ctx)? {
            Val::Vector(v) => Ok(v),
            _ => Err(Error::Execution(
                "expected an instant vector argument".into(),
            )),
        }
    }

    fn string_arg(&mut self, e: &Expr, ctx: Ctx) -> Result<String> {
        match self.eval(e, ctx)? {
            Val::Str(s) => Ok(s),
            _ => Err(Error::Execution("expected a string argument".into())),
        }
    }

    pub fn eval_call(&mut self, c: &Call, ctx: Ctx) -> Result<Val> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
        let arg = |k: usize| -> Result<&Expr> {
            args.get(k)
                .copied()
                .ok_or_else(|| Error::Parse(format!("missing argument {} of {name}", k + 1)))
        };
        if let Some(f) = math_fn(name) {
            let v = self.vector_arg(arg(0)?, ctx)?;
            return Ok(Val::Vector(crate::engine::map_series(v, false, |_, x| {
                Some(f(x))
            })?));
        }
        match name {
            "time" => Ok(Val::Scalar(
                (0..ctx.n).map(|i| ctx.t(i) as f64 / 1000.0).collect(),
            )),
            "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; ctx.n])),
            "start" => Ok(Val::Scalar(vec![self.query_start as f64 / 1000.0; ctx.n])),
            "end" => Ok(Val::Scalar(vec![self.query_end as f64 / 1000.0; ctx.n])),
            "range" => Ok(Val::Scalar(vec![
                (self.query_end - self.query_start) as f64
                    / 1000.0;
                ctx.n
            ])),
            "step" => Ok(Val::Scalar(vec![self.query_step as f64 / 1000.0; ctx.n])),
            "min_of" | "max_of" => {
                let a = self.scalar_arg(arg(0)?, ctx)?;
                let b = self.scalar_arg(arg(1)?, ctx)?;
                let f = if name == "min_of" { go_min } else { go_max };
                Ok(Val::Scalar(
                    a.iter().zip(b.iter()).map(|(&x, &y)| f(x, y)).collect(),
                ))
            }
            "vector" => {
                let s = self.scalar_arg(arg(0)?, ctx)?;
                let pts = s
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Pt { i: i as u32, v })
                    .collect();
                Ok(Val::Vector(vec![Ser::new(Labels::empty(), pts)]))
            }
            "scalar" => {
                let v = self.vector_arg(arg(0)?, ctx)?;
                let mut out = vec![f64::NAN; ctx.n];
                let mut count = vec![0u32; ctx.n];
                for s in &v {
                    for p in &s.pts {
                        count[p.i as usize] += 1;
                        out[p.i as usize] = p.v;
                    }
                }
                for (o, c) in out.iter_mut().zip(count) {
                    if c != 1 {
                        *o = f64::NAN;
                    }
                }
                Ok(Val::Scalar(out))
            }
            "round" => {
                let v = self.vector_arg(arg(0)?, ctx)?;
                let to = match args.get(1) {
                    Some(e) => self.scalar_arg(e, ctx)?,
                    None => vec![1.0; ctx.n],
                };
                Ok(Val::Vector(crate::engine::map_series(v, false, |i, x| {
                    let inv = 1.0 / to[i as usize];
                    Some((x * inv + 0.5).floor() / inv)
                })?))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let v = self.vector_arg(arg(0)?, ctx)?;
                let (lo, hi) = match name {
                    "clamp" => (
                        Some(self.scalar_arg(arg(1)?, ctx)?),
                        Some(self.scalar_arg(arg(2)?, ctx)?),
                    ),
                    "clamp_min" => (Some(self.scalar_arg(arg(1)?, ctx)?), None),
                    _ => (None, Some(self.scalar_arg(arg(1)?, ctx)?)),
                };
                Ok(Val::Vector(crate::engine::map_series(v, false, |i, x| {
                    let i = i as usize;
                    let lo = lo.as_ref().map(|l| l[i]);
                    let hi = hi.as_ref().map(|h| h[i]);
                    if let (Some(l), Some(h)) = (lo, hi) {
                        if h < l {
                            return None;
                        }
                    }
                    let mut x = x;
                    if let Some(l) = lo {
                        x = go_max(l, x);
                    }
                    if let Some(h) = hi {
                        x = go_min(h, x);
                    }
                    Some(x)
                })?))
            }
            "timestamp" => {
                let a = unparen(arg(0)?);
                let v = if let Expr::VectorSelector(vs) = a {
                    self.eval_vector_selector(vs, ctx, true)?
                } else {
                    let v = self.vector_arg(a, ctx)?;
                    v.into_iter()
                        .map(|mut s| {
                            for p in &mut s.pts {
                                p.v = ctx.t(p.i as usize) as f64 / 1000.0;
                            }
                            s
                        })
                        .collect()
                };
                Ok(Val::Vector(crate::engine::map_series(v, false, |_, x| {
                    Some(x)
                })?))
            }
            "absent" => {
                let a = arg(0)?;
                let v = self.vector_arg(a, ctx)?;
                let mut present = vec![false; ctx.n];
                for s in &v {
                    for p in &s.pts {
                        present[p.i as usize] = true;
                    }
                }
                let labels = absent_labels(a)?;
                Ok(absent_result(&present, labels))
            }
            "absent_over_time" => {
                let a = arg(0)?;
                let mut present = vec![false; ctx.n];
                let stop = self.stop.clone();
                let mut tick = stop.ticker();
                self.for_each_range_series(a, ctx, |_, samples, w| {
                    tick.tick(ctx.n)?;
                    for (i, p) in present.iter_mut().enumerate() {
                        if !*p && !w.window(samples, i).is_empty() {
                            *p = true;
                        }
                    }
                    Ok(())
                })?;
                let labels = match unparen(a) {
                    Expr::MatrixSelector(ms) => {
                        absent_labels(&Expr::VectorSelector(ms.vs.clone()))?
                    }
                    _ => Labels::empty(),
                };
                Ok(absent_result(&present, labels))
            }
            "label_replace" => {
                let v = self.vector_arg(arg(0)?, ctx)?;
                let dst = self.string_arg(arg(1)?, ctx)?;
                let repl = self.string_arg(arg(2)?, ctx)?;
                let src = self.string_arg(arg(3)?, ctx)?;
                let re_s = self.string_arg(arg(4)?, ctx)?;
                let re = Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                    Error::Execution(format!(
                        "invalid regular expression in label_replace(): {re_s}: {e}"
                    ))
                })?;
                if validate_label_name(&dst).is_err() {
                    return Err(Error::Execution(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                relabel_series(v, dst == "__name__", |l| {
                    let sv = l.get(&src).unwrap_or("");
                    let caps = re.captures(sv)?;
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    let mut b = l.builder();
                    if res.is_empty() {
                        b.del(&dst);
                    } else {
                        b.set(&dst, &res);
                    }
                    Some(b.build())
                })
            }
            "label_join" => {
                let v = self.vector_arg(arg(0)?, ctx)?;
                let dst = self.string_arg(arg(1)?, ctx)?;
                let sep = self.string_arg(arg(2)?, ctx)?;
                let mut srcs = Vec::new();
                for a in args.iter().skip(3) {
                    srcs.push(self.string_arg(a, ctx)?);
                }
                if validate_label_name(&dst).is_err() {
                    return Err(Error::Execution(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                for s in &srcs {
                    if validate_label_name(s).is_err() {
                        return Err(Error::Execution(format!(
                            "invalid source label name in label_join(): {s}"
                        )));
                    }
                }
                relabel_series(v, dst == "__name__", |l| {
                    let joined: Vec<&str> = srcs.iter().map(|s| l.get(s).unwrap_or("")).collect();
                    let res = joined.join(&sep);
                    let mut b = l.builder();
                    if res.is_empty() {
                        b.del(&dst);
                    } else {
                        b.set(&dst, &res);
                    }
                    Some(b.build())
                })
            }
            "sort" | "sort_desc" => {
                let mut v = self.vector_arg(arg(0)?, ctx)?;
                self.warn_sort_in_range();
                if ctx.n == 1 {
                    let val = |s: &Ser| s.pts.first().map(|p| p.v).unwrap_or(f64::NAN);
                    if name == "sort" {
                        v.sort_by(|a, b| sort_asc(val(a), val(b)));
                    } else {
                        v.sort_by(|a, b| sort_asc(val(b), val(a)).then(nan_last(val(a), val(b))));
                    }
                }
                Ok(Val::Vector(v))
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut v = self.vector_arg(arg(0)?, ctx)?;
                self.warn_sort_in_range();
                let mut names = Vec::new();
                for a in args.iter().skip(1) {
                    names.push(self.string_arg(a, ctx)?);
                }
                v.sort_by(|a, b| {
                    for n in &names {
                        let o = natural_cmp(
                            a.labels.get(n).unwrap_or(""),
                            b.labels.get(n).unwrap_or(""),
                        );
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    a.labels.cmp(&b.labels)
                });
                if name == "sort_by_label_desc" {
                    v.reverse();
                }
                Ok(Val::Vector(v))
            }
            "histogram_quantile" => {
                let q = self.scalar_arg(arg(0)?, ctx)?;
                let v = self.vector_arg(arg(1)?, ctx)?;
                self.classic_histogram(ClassicKind::Quantile(q), v, ctx)
            }
            "histogram_quantiles" => {
                let v = self.vector_arg(arg(0)?, ctx)?;
                let label = self.string_arg(arg(1)?, ctx)?;
                let mut qs = Vec::new();
                for a in args.iter().skip(2) {
                    let q = self.scalar_arg(a, ctx)?;
                    let text = quantile_label(q.first().copied().unwrap_or(f64::NAN));
                    qs.push((q, text));
                }
                self.classic_histogram(ClassicKind::Quantiles(label, qs), v, ctx)
            }
            "histogram_fraction" => {
                let lo = self.scalar_arg(arg(0)?, ctx)?;
                let hi = self.scalar_arg(arg(1)?, ctx)?;
                let v = self.vector_arg(arg(2)?, ctx)?;
                self.classic_histogram(ClassicKind::Fraction(lo, hi), v, ctx)
            }
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
            | "histogram_stdvar" => {
                // Native histograms only: float samples are ignored.
                for a in &args {
                    let _ = self.eval(a, ctx)?;
                }
                Ok(Val::Vector(Vec::new()))
            }
            "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour"
            | "minute" | "month" | "year" => {
                let v = match args.first() {
                    Some(a) => self.vector_arg(a, ctx)?,
                    None => vec![Ser::new(
                        Labels::empty(),
                        (0..ctx.n)
                            .map(|i| Pt {
                                i: i as u32,
                                v: ctx.t(i) as f64 / 1000.0,
                            })
                            .collect(),
                    )],
                };
                Ok(Val::Vector(crate::engine::map_series(v, false, |_, x| {
                    Some(date_fn(name, x))
                })?))
            }
            _ => self.eval_range_call(name, &args, ctx),
        }
    }
}

fn missing(name: &str) -> Error {
    Error::Parse(format!("missing argument of {name}"))
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        "deg" => |x: f64| x * 180.0 / std::f64::consts::PI,
        "rad" => |x: f64| x * std::f64::consts::PI / 180.0,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        _ => return None,
    })
}

/// The label value `histogram_quantiles` gives a quantile: always with a decimal point.
fn quantile_label(q: f64) -> String {
    if q.is_finite() && q.fract() == 0.0 {
        format!("{q:.1}")
    } else {
        format_float(q)
    }
}

/// Go's math.Max / math.Min: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn sort_asc(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => std::cmp::Ordering::Equal,
    }
}

/// Compares strings with digit runs ordered by number, as sort_by_label does.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

/// Applies a label rewrite per series (once per series), keeping the metric name.
fn relabel_series(
    v: Vec<Ser>,
    sets_name: bool,
    mut f: impl FnMut(&Labels) -> Option<Labels>,
) -> Result<Val> {
    let mut b = Builder::new();
    for s in v {
        let (labels, drop) = match f(&s.labels) {
            // Writing `__name__` gives the series a name that stays.
            Some(l) => (l, s.drop_name && !sets_name),
            None => (s.labels, s.drop_name),
        };
        let slot = b.slot(labels, drop);
        for p in s.pts {
            b.push(slot, p.i, p.v)?;
        }
    }
    Ok(Val::Vector(b.finish()))
}

/// `absent`'s output: 1 with `labels` at every step where nothing was present.
fn absent_result(present: &[bool], labels: Labels) -> Val {
    let pts: Vec<Pt> = (0..present.len())
        .filter(|&i| !present[i])
        .map(|i| Pt {
            i: i as u32,
            v: 1.0,
        })
        .collect();
    Val::Vector(if pts.is_empty() {
        vec![]
    } else {
        vec![Ser::new(labels, pts)]
    })
}

/// Labels `absent()` gives its output: the selector's equality matchers (not the name).
fn absent_labels(e: &Expr) -> Result<Labels> {
    let Expr::VectorSelector(vs) = unparen(e) else {
        return Ok(Labels::empty());
    };
    let ms = selector_matchers(vs)?;
    let mut b = tocsin_model::LabelsBuilder::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &ms {
        if m.name == "__name__" {
            continue;
        }
        if m.op == MatchOp::Equal && !seen.contains(&m.name.as_str()) {
            b.set(&m.name, &m.value);
        } else {
            b.del(&m.name);
        }
        seen.push(&m.name);
    }
    Ok(b.build())
}

/// Civil date from days since the epoch (proleptic Gregorian), as (year, month, day).
fn civil(days: i64) -> (i64, u32, u32) {
    tocsin_model::time::civil_from_days(days)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_fn(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let month_days = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => ((days + 4).rem_euclid(7)) as f64,
        "day_of_year" => (month_days[..(m - 1) as usize].iter().sum::<u32>() + d) as f64,
        "days_in_month" => month_days[(m - 1) as usize] as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}
