//! The evaluator core: every expression is evaluated over a whole grid of steps at once (an
//! instant query is a grid of one step), series by series where possible, so label work is done
//! once per series rather than once per step. Selectors, subqueries, `offset` and `@` live here;
//! binary operators, aggregations and functions have their own modules.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{
    AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector,
};
use tocsin_model::{is_stale_nan, Labels, MatchOp, Matcher, Sample};
use tocsin_storage::{Queryable, SelectHints};

use crate::cancel::Stop;
use crate::{EngineOptions, Error, Result};

/// One point of an evaluated series: the index of its step in the grid and its value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pt {
    pub i: u32,
    pub v: f64,
}

/// A series over the grid; `pts` are in step order, at most one per step.
///
/// `drop_name` marks a series whose metric name an operation removed. The name is only taken
/// off when the result is returned (Prometheus 3's delayed name removal), which also spares
/// rebuilding the labels of every series that a function or arithmetic passes through.
#[derive(Debug, Clone)]
pub(crate) struct Ser {
    pub labels: Labels,
    pub pts: Vec<Pt>,
    pub drop_name: bool,
}

impl Ser {
    pub fn new(labels: Labels, pts: Vec<Pt>) -> Ser {
        Ser {
            labels,
            pts,
            drop_name: false,
        }
    }

    /// The labels as the user sees them.
    pub fn visible_labels(&self) -> Labels {
        if self.drop_name {
            drop_name(&self.labels)
        } else {
            self.labels.clone()
        }
    }

    /// A label's value as the user sees it (the name is absent once dropped).
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.drop_name && name == "__name__" {
            return None;
        }
        self.labels.get(name)
    }
}

/// An evaluated expression over a grid.
#[derive(Debug)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<Ser>),
}

/// The grid of evaluation times: `start + i*step` for `i < n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Ctx {
    pub fn new(start: i64, end: i64, step: i64) -> Ctx {
        let step = step.max(1);
        let n = if end < start {
            0
        } else {
            ((end - start) / step) as usize + 1
        };
        Ctx { start, step, n }
    }
    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// A source of range-vector data for functions: series with their samples, and the window
/// end and length per step.
pub(crate) struct Windows {
    /// Effective evaluation time per step (after `@` and `offset`).
    pub eff: Vec<i64>,
    /// Window length in ms; windows are (eff - range, eff].
    pub range: i64,
}

impl Windows {
    /// The part of `samples` inside step `i`'s window.
    pub fn window<'s>(&self, samples: &'s [Sample], i: usize) -> &'s [Sample] {
        let end = self.eff[i];
        let start = end - self.range;
        let lo = samples.partition_point(|s| s.t <= start);
        let hi = samples.partition_point(|s| s.t <= end);
        &samples[lo..hi.max(lo)]
    }
}

/// A series as labels and samples.
pub(crate) type RawSeries = (Labels, Vec<Sample>);
/// Called per series of a range-vector argument.
pub(crate) type RangeVisitor<'f> = dyn FnMut(&Labels, &[Sample], &Windows) -> Result<()> + 'f;

pub(crate) struct Evaluator<'a> {
    pub queryable: &'a dyn Queryable,
    pub opts: &'a EngineOptions,
    /// Deadline and cancellation, checked per node and every so much work inside nodes.
    pub stop: Stop,
    pub query_start: i64,
    pub query_end: i64,
    /// The range query's step (0 for instant queries), for `step()`.
    pub query_step: i64,
    pub samples_loaded: u64,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Strips parentheses, which carry no meaning for evaluation.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Converts the parser's matchers to ours; the metric name becomes a `__name__` matcher.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(Error::Execution(
            "selectors with 'or' matchers are not supported".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal("__name__", name.clone()));
    }
    for m in &vs.matchers.matchers {
        let (op, value) = match &m.op {
            PMatchOp::Equal => (MatchOp::Equal, m.value.clone()),
            PMatchOp::NotEqual => (MatchOp::NotEqual, m.value.clone()),
            PMatchOp::Re(_) => (MatchOp::Regex, m.value.clone()),
            PMatchOp::NotRe(_) => (MatchOp::NotRegex, m.value.clone()),
        };
        if vs.name.is_some()
            && m.name == "__name__"
            && op == MatchOp::Equal
            && Some(&value) == vs.name.as_ref()
        {
            continue;
        }
        out.push(Matcher::new(op, m.name.clone(), value).map_err(|e| Error::Parse(e.to_string()))?);
    }
    Ok(out)
}

/// Removes the metric name, and with it the reserved `__type__` and `__unit__` labels that
/// describe it (as Prometheus 3 does).
pub(crate) fn drop_name(l: &Labels) -> Labels {
    if l.get("__name__").is_none() && l.get("__type__").is_none() && l.get("__unit__").is_none() {
        return l.clone();
    }
    let mut b = l.builder();
    b.del("__name__");
    b.del("__type__");
    b.del("__unit__");
    b.build()
}

/// Collects output series by label set, refusing two values for one label set at one step.
pub(crate) struct Builder {
    index: HashMap<u64, Vec<usize>>,
    pub out: Vec<Ser>,
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            index: HashMap::new(),
            out: Vec::new(),
        }
    }
    /// The output slot of a label set (created when new).
    pub fn slot(&mut self, labels: Labels, drop_name: bool) -> usize {
        let h = labels.hash() ^ u64::from(drop_name);
        let e = self.index.entry(h).or_default();
        for &i in e.iter() {
            if self.out[i].drop_name == drop_name && self.out[i].labels == labels {
                return i;
            }
        }
        let i = self.out.len();
        e.push(i);
        self.out.push(Ser {
            labels,
            pts: Vec::new(),
            drop_name,
        });
        i
    }
    pub fn push(&mut self, slot: usize, i: u32, v: f64) -> Result<()> {
        let s = &mut self.out[slot];
        if let Some(last) = s.pts.last() {
            if last.i == i {
                return Err(dup_labelset());
            }
            if last.i > i {
                // Rare (outputs produced out of step order): keep order and still catch duplicates.
                let pos = s.pts.partition_point(|p| p.i < i);
                if s.pts.get(pos).is_some_and(|p| p.i == i) {
                    return Err(dup_labelset());
                }
                s.pts.insert(pos, Pt { i, v });
                return Ok(());
            }
        }
        s.pts.push(Pt { i, v });
        Ok(())
    }
    pub fn finish(self) -> Vec<Ser> {
        self.out.into_iter().filter(|s| !s.pts.is_empty()).collect()
    }
}

pub(crate) fn dup_labelset() -> Error {
    Error::Execution("vector cannot contain metrics with the same labelset".into())
}

/// Maps each series' points through `f` (`None` drops the point); the name is marked dropped
/// unless `keep_name`.
pub(crate) fn map_series(
    input: Vec<Ser>,
    keep_name: bool,
    mut f: impl FnMut(u32, f64) -> Option<f64>,
) -> Result<Vec<Ser>> {
    let mut out = Vec::with_capacity(input.len());
    for mut s in input {
        s.pts.retain_mut(|p| match f(p.i, p.v) {
            Some(v) => {
                p.v = v;
                true
            }
            None => false,
        });
        if s.pts.is_empty() {
            continue;
        }
        s.drop_name |= !keep_name;
        out.push(s);
    }
    Ok(out)
}

impl Evaluator<'_> {
    pub fn check_deadline(&self) -> Result<()> {
        self.stop.check()
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        let m = format!("PromQL warning: {}", msg.into());
        if !self.warnings.contains(&m) {
            self.warnings.push(m);
        }
    }

    pub fn info(&mut self, msg: impl Into<String>) {
        let m = format!("PromQL info: {}", msg.into());
        if !self.infos.contains(&m) {
            self.infos.push(m);
        }
    }

    /// Effective evaluation time of each step for a node with these modifiers.
    pub fn eff_times(
        &self,
        ctx: Ctx,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
    ) -> Vec<i64> {
        let off = offset_ms(offset);
        let fixed = match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        };
        (0..ctx.n)
            .map(|i| fixed.unwrap_or_else(|| ctx.t(i)) - off)
            .collect()
    }

    pub fn eval(&mut self, e: &Expr, ctx: Ctx) -> Result<Val> {
        self.check_deadline()?;
        let v = self.eval_node(e, ctx)?;
        // Every node's result is held in memory at once: that is what the limit bounds.
        if let Val::Vector(series) = &v {
            let points: usize = series.iter().map(|s| s.pts.len()).sum();
            if points > self.opts.max_samples {
                return Err(Error::TooManySamples("query execution"));
            }
        }
        Ok(v)
    }

    fn eval_node(&mut self, e: &Expr, ctx: Ctx) -> Result<Val> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; ctx.n])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, ctx),
            Expr::Unary(u) => match self.eval(&u.expr, ctx)? {
                Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
                Val::Vector(v) => Ok(Val::Vector(map_series(v, false, |_, x| Some(-x))?)),
                Val::Str(_) => Err(Error::Execution("unary minus on a string".into())),
            },
            Expr::Binary(b) => self.eval_binary(b, ctx),
            Expr::Aggregate(a) => self.eval_aggregate(a, ctx),
            Expr::Call(c) => self.eval_call(c, ctx),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, ctx, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => Err(Error::Execution(
                "range vector can only be used as a function argument or at the top level of an instant query".into(),
            )),
            Expr::Extension(_) => Err(Error::Execution("unsupported expression".into())),
        }
    }

    /// Instant-vector selector with the lookback: the newest sample in (T - lookback, T] that is
    /// not a stale marker. With `timestamps`, the value is the sample's time in seconds.
    pub fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        ctx: Ctx,
        timestamps: bool,
    ) -> Result<Vec<Ser>> {
        let matchers = selector_matchers(vs)?;
        let eff = self.eff_times(ctx, &vs.at, &vs.offset);
        let (Some(&min), Some(&max)) = (eff.iter().min(), eff.iter().max()) else {
            return Ok(Vec::new());
        };
        let lookback = self.opts.lookback_delta;
        let mint = min - lookback + 1;
        let q = self.queryable.querier(mint, max)?;
        let hints = SelectHints {
            start: mint,
            end: max,
            step: ctx.step,
            func: None,
            range: 0,
        };
        let set = q.select(&hints, &matchers)?;
        let mut out = Vec::new();
        let mut buf: Vec<Sample> = Vec::new();
        let mut total: usize = 0;
        let mut tick = self.stop.ticker();
        for s in set {
            let s = s?;
            self.stop.check()?;
            buf.clear();
            let mut it = s.samples;
            while let Some(x) = it.next() {
                buf.push(x);
                if buf.len() > self.opts.max_samples {
                    return Err(Error::TooManySamples("query execution"));
                }
                tick.tick(0)?;
            }
            self.samples_loaded += buf.len() as u64;
            tick.tick(eff.len())?;
            let mut pts = Vec::new();
            for (i, &t) in eff.iter().enumerate() {
                let hi = buf.partition_point(|x| x.t <= t);
                if hi == 0 {
                    continue;
                }
                let x = buf[hi - 1];
                if x.t <= t - lookback || is_stale_nan(x.v) {
                    continue;
                }
                let v = if timestamps { x.t as f64 / 1000.0 } else { x.v };
                pts.push(Pt { i: i as u32, v });
            }
            if !pts.is_empty() {
                total += pts.len();
                if total > self.opts.max_samples {
                    return Err(Error::TooManySamples("query execution"));
                }
                out.push(Ser::new(s.labels, pts));
            }
        }
        for w in q.warnings() {
            self.warn(w);
        }
        Ok(out)
    }

    /// Runs `f` for every series of a range-vector argument (matrix selector or subquery) with
    /// its samples (stale markers removed) and the per-step windows. `f` is called with the
    /// series' labels, samples and windows, and returns the points to output.
    pub fn for_each_range_series(
        &mut self,
        arg: &Expr,
        ctx: Ctx,
        mut f: impl FnMut(&Labels, &[Sample], &Windows) -> Result<()>,
    ) -> Result<()> {
        match unparen(arg) {
            Expr::MatrixSelector(ms) => self.for_each_matrix_selector(ms, ctx, &mut f),
            Expr::Subquery(sq) => {
                let (series, w) = self.eval_subquery(sq, ctx)?;
                for (labels, samples) in series {
                    f(&labels, &samples, &w)?;
                }
                Ok(())
            }
            other => Err(Error::Execution(format!(
                "expected a range vector argument, got {}",
                other.value_type()
            ))),
        }
    }

    fn for_each_matrix_selector(
        &mut self,
        ms: &MatrixSelector,
        ctx: Ctx,
        f: &mut RangeVisitor<'_>,
    ) -> Result<()> {
        let matchers = selector_matchers(&ms.vs)?;
        let eff = self.eff_times(ctx, &ms.vs.at, &ms.vs.offset);
        let range = ms.range.as_millis() as i64;
        let (Some(&min), Some(&max)) = (eff.iter().min(), eff.iter().max()) else {
            return Ok(());
        };
        let mint = min - range + 1;
        let q = self.queryable.querier(mint, max)?;
        let hints = SelectHints {
            start: mint,
            end: max,
            step: ctx.step,
            func: None,
            range,
        };
        let set = q.select(&hints, &matchers)?;
        let w = Windows { eff, range };
        let mut buf: Vec<Sample> = Vec::new();
        let mut tick = self.stop.ticker();
        for s in set {
            let s = s?;
            self.stop.check()?;
            buf.clear();
            let mut it = s.samples;
            while let Some(x) = it.next() {
                if !is_stale_nan(x.v) {
                    buf.push(x);
                    // Checked as the samples arrive, so one huge series cannot fill memory first.
                    if buf.len() > self.opts.max_samples {
                        return Err(Error::TooManySamples("query execution"));
                    }
                }
                tick.tick(0)?;
            }
            self.samples_loaded += buf.len() as u64;
            f(&s.labels, &buf, &w)?;
        }
        for w in q.warnings() {
            self.warn(w);
        }
        Ok(())
    }

    /// Evaluates a subquery's inner expression on its own grid (multiples of its step) covering
    /// every window of the outer steps; returns its series as samples and the windows.
    pub fn eval_subquery(
        &mut self,
        sq: &SubqueryExpr,
        ctx: Ctx,
    ) -> Result<(Vec<RawSeries>, Windows)> {
        let eff = self.eff_times(ctx, &sq.at, &sq.offset);
        let range = sq.range.as_millis() as i64;
        let step = match &sq.step {
            Some(d) if !d.is_zero() => d.as_millis() as i64,
            _ => self.opts.default_subquery_step,
        }
        .max(1);
        let w = Windows { eff, range };
        let (Some(&min), Some(&max)) = (w.eff.iter().min(), w.eff.iter().max()) else {
            return Ok((Vec::new(), w));
        };
        // First multiple of step strictly after min - range (windows are left-open).
        let lo = min - range;
        let mut start = lo.div_euclid(step) * step;
        if start <= lo {
            start += step;
        }
        let end = max.div_euclid(step) * step;
        let inner = Ctx::new(start, end, step);
        let mut series = Vec::new();
        if inner.n == 0 {
            return Ok((series, w));
        }
        // The inner grid is allocated per node before any result exists (`[30d:1ms]` is 2.6
        // billion steps): refuse it before, since even one series over it is over the limit.
        if inner.n > self.opts.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        match self.eval(&sq.expr, inner)? {
            Val::Scalar(vals) => {
                let samples = vals
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Sample::new(inner.t(i), v))
                    .collect();
                series.push((Labels::empty(), samples));
            }
            Val::Vector(v) => {
                for s in v {
                    let samples = s
                        .pts
                        .iter()
                        .map(|p| Sample::new(inner.t(p.i as usize), p.v))
                        .collect();
                    series.push((s.visible_labels(), samples));
                }
            }
            Val::Str(_) => return Err(Error::Execution("subquery over a string".into())),
        }
        Ok((series, w))
    }
}
