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

    fn eval_range_call(&mut self, name: &str, args: &[&Expr], ctx: Ctx) -> Result<Val> {
        // Scalar parameters come before or after the range argument depending on the function.
        let (range_arg, params): (&Expr, Vec<Vec<f64>>) = match name {
            "quantile_over_time" => {
                let p =
                    self.scalar_arg(args.first().copied().ok_or_else(|| missing(name))?, ctx)?;
                self.check_quantile_param(&p);
                (args.get(1).copied().ok_or_else(|| missing(name))?, vec![p])
            }
            "predict_linear" => {
                let p = self.scalar_arg(args.get(1).copied().ok_or_else(|| missing(name))?, ctx)?;
                (args.first().copied().ok_or_else(|| missing(name))?, vec![p])
            }
            "double_exponential_smoothing" | "holt_winters" => {
                let sf =
                    self.scalar_arg(args.get(1).copied().ok_or_else(|| missing(name))?, ctx)?;
                let tf =
                    self.scalar_arg(args.get(2).copied().ok_or_else(|| missing(name))?, ctx)?;
                (
                    args.first().copied().ok_or_else(|| missing(name))?,
                    vec![sf, tf],
                )
            }
            _ => (
                args.first().copied().ok_or_else(|| missing(name))?,
                Vec::new(),
            ),
        };
        let f: RangeFn = match name {
            "rate" => |w, win, _, _| extrapolated(w, win, true, true),
            "increase" => |w, win, _, _| extrapolated(w, win, true, false),
            "delta" => |w, win, _, _| extrapolated(w, win, false, false),
            "irate" => |w, _, _, _| instant_value(w, true),
            "idelta" => |w, _, _, _| instant_value(w, false),
            "deriv" => |w, _, _, _| {
                if w.len() < 2 {
                    return None;
                }
                Some(linear_regression(w, w[0].t).0)
            },
            "predict_linear" => |w, win, p, _| {
                if w.len() < 2 {
                    return None;
                }
                let (slope, intercept) = linear_regression(w, win.3);
                Some(slope * p[0] + intercept)
            },
            "double_exponential_smoothing" | "holt_winters" => |w, _, p, _| {
                if w.len() < 2 {
                    return None;
                }
                let (sf, tf) = (p[0], p[1]);
                let mut s0;
                let mut s1 = w[0].v;
                let mut b = w[1].v - w[0].v;
                s0 = 0.0;
                for (i, x) in w.iter().enumerate().skip(1) {
                    let xs = sf * x.v;
                    if i > 1 {
                        b = tf * (s1 - s0) + (1.0 - tf) * b;
                    }
                    let y = (1.0 - sf) * (s1 + b);
                    s0 = s1;
                    s1 = xs + y;
                }
                Some(s1)
            },
            "resets" => |w, _, _, _| Some(w.windows(2).filter(|p| p[1].v < p[0].v).count() as f64),
            "changes" => |w, _, _, _| {
                Some(
                    w.windows(2)
                        .filter(|p| !(p[1].v == p[0].v || (p[1].v.is_nan() && p[0].v.is_nan())))
                        .count() as f64,
                )
            },
            "avg_over_time" => |w, _, _, _| {
                if w.is_empty() {
                    return None;
                }
                Some(avg_over(w))
            },
            "sum_over_time" => |w, _, _, _| {
                if w.is_empty() {
                    return None;
                }
                let (mut s, mut c) = (0.0, 0.0);
                for x in w {
                    (s, c) = kahan_inc(x.v, s, c);
                }
                Some(if s.is_infinite() { s } else { s + c })
            },
            "count_over_time" => |w, _, _, _| (!w.is_empty()).then_some(w.len() as f64),
            "min_over_time" => |w, _, _, _| {
                let mut it = w.iter();
                let mut m = it.next()?.v;
                for x in it {
                    if m > x.v || m.is_nan() {
                        m = x.v;
                    }
                }
                Some(m)
            },
            "max_over_time" => |w, _, _, _| {
                let mut it = w.iter();
                let mut m = it.next()?.v;
                for x in it {
                    if m < x.v || m.is_nan() {
                        m = x.v;
                    }
                }
                Some(m)
            },
            "stddev_over_time" => |w, _, _, _| variance(w).map(f64::sqrt),
            "stdvar_over_time" => |w, _, _, _| variance(w),
            "last_over_time" => |w, _, _, _| w.last().map(|x| x.v),
            "first_over_time" => |w, _, _, _| w.first().map(|x| x.v),
            "ts_of_last_over_time" => |w, _, _, _| w.last().map(|x| x.t as f64 / 1000.0),
            "ts_of_first_over_time" => |w, _, _, _| w.first().map(|x| x.t as f64 / 1000.0),
            "ts_of_max_over_time" => |w, _, _, _| {
                let mut best: Option<Sample> = None;
                for x in w {
                    if best.is_none_or(|b| x.v >= b.v || b.v.is_nan()) {
                        best = Some(*x);
                    }
                }
                best.map(|b| b.t as f64 / 1000.0)
            },
            "ts_of_min_over_time" => |w, _, _, _| {
                let mut best: Option<Sample> = None;
                for x in w {
                    if best.is_none_or(|b| x.v <= b.v || b.v.is_nan()) {
                        best = Some(*x);
                    }
                }
                best.map(|b| b.t as f64 / 1000.0)
            },
            "present_over_time" => |w, _, _, _| (!w.is_empty()).then_some(1.0),
            "quantile_over_time" => |w, _, p, buf| {
                if w.is_empty() {
                    return None;
                }
                buf.clear();
                buf.extend(w.iter().map(|x| x.v));
                Some(quantile(p[0], buf))
            },
            "mad_over_time" => |w, _, _, buf| {
                if w.is_empty() {
                    return None;
                }
                if w.iter().any(|x| x.v.is_nan()) {
                    return Some(f64::NAN);
                }
                buf.clear();
                buf.extend(w.iter().map(|x| x.v));
                let median = quantile(0.5, buf);
                buf.clear();
                buf.extend(w.iter().map(|x| (x.v - median).abs()));
                Some(quantile(0.5, buf))
            },
            _ => {
                return Err(Error::Execution(format!(
                    "function {name}() is not supported"
                )))
            }
        };
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        let smoothing = matches!(name, "double_exponential_smoothing" | "holt_winters");
        let range = match unparen(range_arg) {
            Expr::MatrixSelector(ms) => ms.range.as_millis() as i64,
            Expr::Subquery(sq) => sq.range.as_millis() as i64,
            _ => 0,
        };
        let mut out: Vec<Ser> = Vec::new();
        let mut buf: Vec<f64> = Vec::new();
        let mut held = 0usize;
        let max_samples = self.opts.max_samples;
        let mut pvals = Vec::with_capacity(params.len());
        let stop = self.stop.clone();
        let mut tick = stop.ticker();
        self.for_each_range_series(range_arg, ctx, |labels, samples, w: &Windows| {
            let mut pts = Vec::with_capacity(ctx.n.min(samples.len()));
            for i in 0..ctx.n {
                let win = w.window(samples, i);
                // Steps times window length is the cost: overlapping windows over a long range
                // can be billions of samples for a small result.
                tick.tick(win.len())?;
                if win.is_empty() {
                    continue;
                }
                if smoothing {
                    // Checked per series with data, as Prometheus does: no data, no error.
                    let (sf, tf) = (params[0][i], params[1][i]);
                    if !(sf > 0.0 && sf < 1.0) {
                        return Err(Error::Execution(format!(
                            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                        )));
                    }
                    if !(tf > 0.0 && tf < 1.0) {
                        return Err(Error::Execution(format!(
                            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                        )));
                    }
                }
                pvals.clear();
                pvals.extend(params.iter().map(|p| p[i]));
                let Some(v) = f(
                    win,
                    (w.eff[i], w.eff[i] - range, range, ctx.t(i)),
                    &pvals,
                    &mut buf,
                ) else {
                    continue;
                };
                pts.push(Pt { i: i as u32, v });
            }
            if !pts.is_empty() {
                held += pts.len();
                if held > max_samples {
                    return Err(Error::TooManySamples("query execution"));
                }
                out.push(Ser {
                    labels: labels.clone(),
                    pts,
                    drop_name: !keep_name,
                });
            }
            Ok(())
        })?;
        Ok(Val::Vector(out))
    }

    /// `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over classic
    /// buckets: series grouped by their labels without `le`, one bucket list per step.
    fn classic_histogram(&mut self, kind: ClassicKind, v: Vec<Ser>, ctx: Ctx) -> Result<Val> {
        let mut groups: HashMap<Labels, usize> = HashMap::new();
        let mut members: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
        for (j, s) in v.iter().enumerate() {
            let Some(le) = s.labels.get("le").and_then(parse_le) else {
                self.warn(format!(
                    "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                    s.labels.get("le").unwrap_or(""),
                    s.labels.metric_name().unwrap_or("")
                ));
                continue;
            };
            // The name stays in the group key so that buckets of two metrics never mix; the
            // output drops it, and two such groups then collide as Prometheus reports.
            let mut b = s.labels.builder();
            b.del("le");
            let gl = b.build();
            let g = *groups.entry(gl.clone()).or_insert_with(|| {
                members.push((gl, Vec::new()));
                members.len() - 1
            });
            members[g].1.push((le, j));
        }
        let quantiles: Vec<&Vec<f64>> = match &kind {
            ClassicKind::Quantile(q) => vec![q],
            ClassicKind::Quantiles(_, qs) => qs.iter().map(|(q, _)| q).collect(),
            ClassicKind::Fraction(..) => Vec::new(),
        };
        for q in quantiles {
            if let Some(x) = q.iter().find(|x| !(0.0..=1.0).contains(*x)) {
                self.warn(format!(
                    "quantile value should be between 0 and 1, got {}",
                    format_float(*x)
                ));
            }
        }
        let mut out = Builder::new();
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        let mut cursors = vec![0usize; v.len()];
        let mut non_monotonic = false;
        let mut out_labels: HashMap<(usize, usize), usize> = HashMap::new();
        for i in 0..ctx.n {
            for (g, (gl, mem)) in members.iter().enumerate() {
                buckets.clear();
                for &(le, j) in mem {
                    let s = &v[j];
                    let c = &mut cursors[j];
                    while *c < s.pts.len() && (s.pts[*c].i as usize) < i {
                        *c += 1;
                    }
                    if let Some(p) = s.pts.get(*c) {
                        if p.i as usize == i {
                            buckets.push((le, p.v));
                        }
                    }
                }
                if buckets.is_empty() {
                    continue;
                }
                let mut emit = |k: usize, val: f64, labels: &dyn Fn() -> Labels| -> Result<()> {
                    let slot = match out_labels.get(&(g, k)) {
                        Some(&s) => s,
                        None => {
                            let s = out.slot(labels(), false);
                            out_labels.insert((g, k), s);
                            s
                        }
                    };
                    out.push(slot, i as u32, val)
                };
                match &kind {
                    ClassicKind::Quantile(q) => {
                        let (val, nm) = bucket_quantile(q[i], &mut buckets);
                        non_monotonic |= nm;
                        emit(0, val, &|| drop_name(gl))?;
                    }
                    ClassicKind::Quantiles(label, qs) => {
                        for (k, (q, text)) in qs.iter().enumerate() {
                            let mut bs = buckets.clone();
                            let (val, nm) = bucket_quantile(q[i], &mut bs);
                            non_monotonic |= nm;
                            emit(k, val, &|| {
                                let mut b = drop_name(gl).builder();
                                b.set(label, text);
                                b.build()
                            })?;
                        }
                    }
                    ClassicKind::Fraction(lo, hi) => {
                        let (val, nm) = bucket_fraction(lo[i], hi[i], &mut buckets);
                        non_monotonic |= nm;
                        emit(0, val, &|| drop_name(gl))?;
                    }
                }
            }
        }
        if non_monotonic {
            self.info("input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)");
        }
        Ok(Val::Vector(out.finish()))
    }
}

/// What to compute from classic buckets.
enum ClassicKind {
    Quantile(Vec<f64>),
    /// Output label name and, per quantile, its values per step and its label text.
    Quantiles(String, Vec<(Vec<f64>, String)>),
    Fraction(Vec<f64>, Vec<f64>),
}

/// Sorts, merges equal bounds and fixes decreasing counts; returns whether a real (not float
/// noise) decrease was fixed, or None when the buckets are unusable (no +Inf bucket).
fn prepare_buckets(buckets: &mut Vec<(f64, f64)>) -> Option<bool> {
    buckets.sort_by(|a, b| float_order(&a.0, &b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    *buckets = merged;
    let mut fixed = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur < prev {
            if (prev - cur) / prev.abs().max(f64::MIN_POSITIVE) > 1e-12 {
                fixed = true;
            }
            b.1 = prev;
        } else {
            prev = cur;
        }
    }
    Some(fixed)
}

/// The fraction of observations in [lower, upper], interpolating linearly inside finite
/// buckets; infinite buckets count only when the range reaches the same infinity.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    let Some(fixed) = prepare_buckets(buckets) else {
        return (f64::NAN, false);
    };
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || total.is_nan() {
        return (f64::NAN, fixed);
    }
    if lower >= upper {
        return (0.0, fixed);
    }
    let mut sum = 0.0;
    let mut prev_count = 0.0;
    for (k, &(hi, c)) in buckets.iter().enumerate() {
        let lo = if k == 0 {
            if hi > 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            buckets[k - 1].0
        };
        let count = c - prev_count;
        prev_count = c;
        if lo.is_infinite() || hi.is_infinite() {
            // No interpolation in an infinitely wide bucket: all or nothing.
            if (lo == f64::NEG_INFINITY && lower == f64::NEG_INFINITY)
                || (hi == f64::INFINITY && upper == f64::INFINITY)
            {
                sum += count;
            }
            continue;
        }
        let overlap = hi.min(upper) - lo.max(lower);
        if overlap > 0.0 {
            sum += count * overlap / (hi - lo);
        }
    }
    (sum / total, fixed)
}

fn missing(name: &str) -> Error {
    Error::Parse(format!("missing argument of {name}"))
}

/// A range function: window samples, (window end, window start, range, evaluation time),
/// scalar params, scratch.
type RangeFn = fn(&[Sample], (i64, i64, i64, i64), &[f64], &mut Vec<f64>) -> Option<f64>;

fn parse_le(s: &str) -> Option<f64> {
    let v: f64 = match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => f64::INFINITY,
        "-Inf" | "-inf" => f64::NEG_INFINITY,
        t => t.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Classic-bucket quantile; returns the value and whether the buckets needed a monotonicity fix.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(fixed) = prepare_buckets(buckets) else {
        return (f64::NAN, false);
    };
    if buckets.len() < 2 {
        return (f64::NAN, fixed);
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return (f64::NAN, fixed);
    }
    let mut rank = q * observations;
    let b = buckets.partition_point(|x| x.1 < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].0, fixed);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, fixed);
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), fixed)
}

/// Prometheus's extrapolated rate/increase/delta over the window (start, end].
fn extrapolated(w: &[Sample], win: (i64, i64, i64, i64), counter: bool, rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (end, start, range, _) = win;
    let first = w[0];
    let last = w[w.len() - 1];
    let mut result = last.v - first.v;
    if counter {
        let mut prev = first.v;
        for x in &w[1..] {
            if x.v < prev {
                result += prev;
            }
            prev = x.v;
        }
    }
    let sampled = (last.t - first.t) as f64 / 1000.0;
    let mut to_start = (first.t - start) as f64 / 1000.0;
    let to_end = (end - last.t) as f64 / 1000.0;
    let avg = sampled / (w.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    // A counter cannot have been below zero: stop the extrapolation where it would cross it.
    if counter && result > 0.0 && first.v >= 0.0 {
        let to_zero = sampled * (first.v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let to_end = if to_end < threshold {
        to_end
    } else {
        avg / 2.0
    };
    let interval = sampled + to_start + to_end;
    let mut factor = interval / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_value(w: &[Sample], rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let last = w[w.len() - 1];
    let prev = w[w.len() - 2];
    let mut r = if rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    let dt = last.t - prev.t;
    if rate {
        if dt == 0 {
            return None;
        }
        r /= dt as f64 / 1000.0;
    }
    Some(r)
}

/// Least-squares slope and intercept at `intercept_t` (ms), x in seconds.
fn linear_regression(w: &[Sample], intercept_t: i64) -> (f64, f64) {
    let init = w[0].v;
    let const_y = w.iter().all(|x| x.v == init);
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for s in w {
        let x = (s.t - intercept_t) as f64 / 1000.0;
        n += 1.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(s.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * s.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y && init.is_finite() {
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

fn avg_over(w: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    let mut mean = 0.0;
    let mut incremental = false;
    for (k, x) in w.iter().enumerate() {
        let n = (k + 1) as f64;
        if k == 0 {
            sum = x.v;
            continue;
        }
        if !incremental {
            let (s, nc) = kahan_inc(x.v, sum, c);
            if !s.is_infinite() {
                sum = s;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (n - 1.0);
            c /= n - 1.0;
        }
        if mean.is_infinite() {
            if x.v.is_infinite() && (mean > 0.0) == (x.v > 0.0) {
                continue;
            }
            if !x.v.is_infinite() && !x.v.is_nan() {
                continue;
            }
        }
        let cur = mean + c;
        (mean, c) = kahan_inc(x.v / n - cur / n, mean, c);
    }
    if incremental {
        mean + c
    } else {
        let n = w.len() as f64;
        let s = sum / n;
        if s.is_infinite() {
            s
        } else {
            s + c / n
        }
    }
}

fn variance(w: &[Sample]) -> Option<f64> {
    if w.is_empty() {
        return None;
    }
    let (mut n, mut mean, mut c, mut aux) = (0.0, 0.0, 0.0, 0.0);
    for x in w {
        n += 1.0;
        let delta = x.v - (mean + c);
        (mean, c) = kahan_inc(delta / n, mean, c);
        aux += delta * (x.v - (mean + c));
    }
    Some(aux / n)
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
