//! Aggregation operators (`sum avg min max count group stddev stdvar topk bottomk quantile
//! count_values limitk limit_ratio`, with `by`/`without`), evaluated step by step with each
//! series' group worked out once.

use std::cmp::Ordering;
use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMITK, T_LIMIT_RATIO, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use tocsin_model::Labels;

use crate::engine::{Builder, Ctx, Evaluator, Ser, Val};
use crate::{Error, Result};

/// Neumaier's compensated summation step, as Prometheus uses for sums and means.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's quantile over unsorted values: linear interpolation between closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if q.is_nan() || values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(float_order);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's float64 sort order: NaN before everything.
pub(crate) fn float_order(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// Formats like Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// The labels a series contributes to its group, as (name, value) pairs.
fn group_pairs<'a>(
    s: &'a Ser,
    m: Option<&'a LabelModifier>,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    s.labels
        .iter()
        .filter(move |x| {
            // `by (__name__)` still sees a name an earlier function marked for removal; the
            // group then carries the mark (Prometheus 3's delayed name removal).
            match m {
                None => false,
                Some(LabelModifier::Include(by)) => by.labels.iter().any(|n| n == &x.name),
                Some(LabelModifier::Exclude(without)) => {
                    x.name != "__name__" && !without.labels.iter().any(|n| n == &x.name)
                }
            }
        })
        .map(|x| (x.name.as_str(), x.value.as_str()))
}

/// Running state of one group at one step.
#[derive(Clone, Default)]
struct Acc {
    n: f64,
    sum: f64,
    c: f64,
    mean: f64,
    incremental: bool,
    ext: f64,
    values: Vec<(f64, u32)>,
}

impl Evaluator<'_> {
    /// Warns, as Prometheus does, when a quantile parameter is outside [0, 1].
    pub fn check_quantile_param(&mut self, q: &[f64]) {
        if let Some(x) = q.iter().find(|x| !(0.0..=1.0).contains(*x)) {
            self.warn(format!(
                "quantile value should be between 0 and 1, got {}",
                format_float(*x)
            ));
        }
    }

    pub fn eval_aggregate(&mut self, a: &AggregateExpr, ctx: Ctx) -> Result<Val> {
        let op = a.op.id();
        let mut param_scalar: Option<Vec<f64>> = None;
        let mut param_str: Option<String> = None;
        if let Some(p) = &a.param {
            match self.eval(p, ctx)? {
                Val::Scalar(v) => param_scalar = Some(v),
                Val::Str(s) => param_str = Some(s),
                Val::Vector(_) => {
                    return Err(Error::Execution(
                        "aggregation parameter must be a scalar or string".into(),
                    ))
                }
            }
        }
        let input = match self.eval(&a.expr, ctx)? {
            Val::Vector(v) => v,
            _ => return Err(Error::Execution("aggregation over a non-vector".into())),
        };
        let m = a.modifier.as_ref();
        // Group index per input series, found by hashing the grouping labels in place so that
        // a group's labels are only built once.
        let mut gindex: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut glabels: Vec<Labels> = Vec::new();
        let mut group_of: Vec<u32> = Vec::with_capacity(input.len());
        let mut gdrop: Vec<bool> = Vec::new();
        for s in &input {
            let h = tocsin_model::hash_label_pairs(group_pairs(s, m));
            let cands = gindex.entry(h).or_default();
            let found = cands.iter().copied().find(|&g| {
                glabels[g as usize]
                    .iter()
                    .map(|x| (x.name.as_str(), x.value.as_str()))
                    .eq(group_pairs(s, m))
            });
            let g = match found {
                Some(g) => g,
                None => {
                    let pairs: Vec<(&str, &str)> = group_pairs(s, m).collect();
                    glabels.push(Labels::from_pairs(&pairs));
                    gdrop.push(false);
                    let g = (glabels.len() - 1) as u32;
                    cands.push(g);
                    g
                }
            };
            gdrop[g as usize] |= s.drop_name;
            group_of.push(g);
        }
        if op == T_COUNT_VALUES {
            let name = param_str
                .ok_or_else(|| Error::Execution("count_values needs a label name".into()))?;
            if tocsin_model::labels::validate_label_name(&name).is_err() {
                return Err(Error::Execution(format!("invalid label name {name:?}")));
            }
            return self.count_values(&input, &group_of, &glabels, &name, ctx);
        }
        let ks = param_scalar.unwrap_or_default();
        if matches!(op, T_TOPK | T_BOTTOMK | T_LIMITK) {
            for &k in &ks {
                if k.is_nan() {
                    return Err(Error::Execution("Parameter value is NaN".into()));
                }
                param_to_k(k)?;
            }
        }
        if op == T_QUANTILE {
            self.check_quantile_param(&ks);
        }
        if op == T_LIMIT_RATIO && ks.iter().any(|k| k.is_nan()) {
            return Err(Error::Execution("Ratio value is NaN".into()));
        }
        let mut accs: Vec<Acc> = vec![Acc::default(); glabels.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut cur = vec![0usize; input.len()];
        let mut out = Builder::new();
        let mut gslots: Vec<Option<usize>> = vec![None; glabels.len()];
        let mut sslots: Vec<Option<usize>> = vec![None; input.len()];
        for i in 0..ctx.n as u32 {
            self.check_deadline()?;
            touched.clear();
            for (j, s) in input.iter().enumerate() {
                let c = &mut cur[j];
                let Some(p) = s.pts.get(*c) else { continue };
                if p.i != i {
                    continue;
                }
                *c += 1;
                let v = p.v;
                let g = group_of[j] as usize;
                let acc = &mut accs[g];
                let first = acc.n == 0.0;
                if first {
                    touched.push(g as u32);
                }
                acc.n += 1.0;
                match op {
                    T_SUM => {
                        (acc.sum, acc.c) = kahan_inc(v, acc.sum, acc.c);
                    }
                    T_AVG => avg_add(acc, v, first),
                    T_MIN if (first || acc.ext > v || acc.ext.is_nan()) => {
                        acc.ext = v;
                    }
                    T_MAX if (first || acc.ext < v || acc.ext.is_nan()) => {
                        acc.ext = v;
                    }
                    T_STDDEV | T_STDVAR => {
                        if first {
                            acc.mean = v;
                            acc.ext = if v.is_finite() { 0.0 } else { f64::NAN };
                            acc.c = 0.0;
                        } else {
                            let delta = v - (acc.mean + acc.c);
                            (acc.mean, acc.c) = kahan_inc(delta / acc.n, acc.mean, acc.c);
                            acc.ext += delta * (v - (acc.mean + acc.c));
                        }
                    }
                    T_TOPK | T_BOTTOMK | T_QUANTILE | T_LIMITK | T_LIMIT_RATIO => {
                        acc.values.push((v, j as u32))
                    }
                    _ => {}
                }
            }
            let k_param = ks.get(i as usize).copied();
            for &g in &touched {
                let g = g as usize;
                let acc = std::mem::take(&mut accs[g]);
                let value = match op {
                    T_SUM => Some(if acc.sum.is_infinite() {
                        acc.sum
                    } else {
                        acc.sum + acc.c
                    }),
                    T_AVG => Some(avg_result(&acc)),
                    T_COUNT => Some(acc.n),
                    T_GROUP => Some(1.0),
                    T_MIN | T_MAX => Some(acc.ext),
                    T_STDVAR => Some(if acc.n > 0.0 {
                        acc.ext / acc.n
                    } else {
                        f64::NAN
                    }),
                    T_STDDEV => Some(if acc.n > 0.0 {
                        (acc.ext / acc.n).sqrt()
                    } else {
                        f64::NAN
                    }),
                    T_QUANTILE => {
                        let mut vals: Vec<f64> = acc.values.iter().map(|x| x.0).collect();
                        Some(quantile(k_param.unwrap_or(f64::NAN), &mut vals))
                    }
                    _ => None,
                };
                if let Some(v) = value {
                    let slot = match gslots[g] {
                        Some(s) => s,
                        None => {
                            let s = out.slot(glabels[g].clone(), gdrop[g]);
                            gslots[g] = Some(s);
                            s
                        }
                    };
                    out.push(slot, i, v)?;
                    continue;
                }
                // Selections keep the input series.
                let kf = k_param.unwrap_or(f64::NAN);
                let mut sel: Vec<(f64, u32)> = acc.values;
                match op {
                    T_TOPK | T_BOTTOMK | T_LIMITK => {
                        let k = param_to_k(kf)?;
                        if k < 1 {
                            continue;
                        }
                        let k = (k as usize).min(sel.len());
                        if op == T_TOPK {
                            sel.sort_by(|a, b| float_order(&b.0, &a.0));
                        } else if op == T_BOTTOMK {
                            sel.sort_by(|a, b| bottom_order(&a.0, &b.0));
                        }
                        sel.truncate(k);
                    }
                    T_LIMIT_RATIO => {
                        if kf.is_nan() {
                            return Err(Error::Execution("Ratio value is NaN".into()));
                        }
                        let r = kf.clamp(-1.0, 1.0);
                        sel.retain(|&(_, j)| {
                            let h = input[j as usize].labels.hash() as f64 / u64::MAX as f64;
                            if r >= 0.0 {
                                h < r
                            } else {
                                h >= 1.0 + r
                            }
                        });
                    }
                    _ => continue,
                }
                for (v, j) in sel {
                    let slot = match sslots[j as usize] {
                        Some(s) => s,
                        None => {
                            let s = out.slot(
                                input[j as usize].labels.clone(),
                                input[j as usize].drop_name,
                            );
                            sslots[j as usize] = Some(s);
                            s
                        }
                    };
                    out.push(slot, i, v)?;
                }
            }
        }
        Ok(Val::Vector(out.finish()))
    }

    fn count_values(
        &mut self,
        input: &[Ser],
        group_of: &[u32],
        glabels: &[Labels],
        name: &str,
        ctx: Ctx,
    ) -> Result<Val> {
        let mut cur = vec![0usize; input.len()];
        let mut out = Builder::new();
        let mut counts: Vec<(u32, String, f64)> = Vec::new();
        let mut index: HashMap<(u32, String), usize> = HashMap::new();
        for i in 0..ctx.n as u32 {
            counts.clear();
            index.clear();
            for (j, s) in input.iter().enumerate() {
                let c = &mut cur[j];
                let Some(p) = s.pts.get(*c) else { continue };
                if p.i != i {
                    continue;
                }
                *c += 1;
                let key = (group_of[j], format_float(p.v));
                match index.get(&key) {
                    Some(&k) => counts[k].2 += 1.0,
                    None => {
                        index.insert(key.clone(), counts.len());
                        counts.push((key.0, key.1, 1.0));
                    }
                }
            }
            for (g, vs, n) in &counts {
                let mut b = glabels[*g as usize].builder();
                b.set(name, vs);
                let slot = out.slot(b.build(), false);
                out.push(slot, i, *n)?;
            }
        }
        Ok(Val::Vector(out.finish()))
    }
}

fn bottom_order(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

fn param_to_k(k: f64) -> Result<i64> {
    if k.is_nan() || !(-9.223372036854776e18..9.223372036854776e18).contains(&k) {
        return Err(Error::Execution(format!(
            "Scalar value {} overflows int64",
            format_float(k)
        )));
    }
    Ok(k as i64)
}

fn avg_add(acc: &mut Acc, v: f64, first: bool) {
    if first {
        acc.sum = v;
        acc.c = 0.0;
        acc.incremental = false;
        return;
    }
    if !acc.incremental {
        let (s, c) = kahan_inc(v, acc.sum, acc.c);
        if !s.is_infinite() {
            acc.sum = s;
            acc.c = c;
            return;
        }
        // The sum overflowed: continue with an incremental mean.
        acc.incremental = true;
        acc.mean = acc.sum / (acc.n - 1.0);
        acc.c /= acc.n - 1.0;
    }
    if acc.mean.is_infinite() {
        if v.is_infinite() && (acc.mean > 0.0) == (v > 0.0) {
            return;
        }
        if !v.is_infinite() && !v.is_nan() {
            return;
        }
    }
    let current = acc.mean + acc.c;
    (acc.mean, acc.c) = kahan_inc(v / acc.n - current / acc.n, acc.mean, acc.c);
}

fn avg_result(acc: &Acc) -> f64 {
    if acc.incremental {
        acc.mean + acc.c
    } else {
        let s = acc.sum / acc.n;
        if s.is_infinite() {
            s
        } else {
            s + acc.c / acc.n
        }
    }
}
