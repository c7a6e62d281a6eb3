//! `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over classic
//! (`le`-bucketed) histograms: buckets gathered per series group, made monotonic, interpolated.

use super::*;

impl Evaluator<'_> {
    /// `histogram_quantile`, `histogram_quantiles` and `histogram_fraction` over classic
    /// buckets: series grouped by their labels without `le`, one bucket list per step.
    pub(super) fn classic_histogram(
        &mut self,
        kind: ClassicKind,
        v: Vec<Ser>,
        ctx: Ctx,
    ) -> Result<Val> {
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
pub(super) enum ClassicKind {
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
