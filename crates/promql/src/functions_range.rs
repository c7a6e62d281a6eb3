//! The range-vector functions (`rate`, `increase`, `delta`, `deriv`, `predict_linear`,
//! `*_over_time`, ...): each is a function of one window's samples, applied per series and step.

use super::*;

impl Evaluator<'_> {
    pub(super) fn eval_range_call(&mut self, name: &str, args: &[&Expr], ctx: Ctx) -> Result<Val> {
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
}

/// A range function: window samples, (window end, window start, range, evaluation time),
/// scalar params, scratch.
pub(super) type RangeFn = fn(&[Sample], (i64, i64, i64, i64), &[f64], &mut Vec<f64>) -> Option<f64>;

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
