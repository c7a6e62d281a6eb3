//! The PromQL evaluator: parses with `promql-parser`, evaluates over the storage `Querier` seam, and
//! returns scalars, strings, vectors and matrices with Prometheus's semantics.

mod aggregate;
mod binary;
mod cancel;
mod depth;
mod engine;
mod error;
mod errpos;
mod functions;
pub mod promqltest;
mod value;

use std::time::{Duration, Instant};

use cancel::{Running, Stop};

use engine::{unparen, Ctx, Evaluator, Val};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;

pub use cancel::{running_queries, Cancel, CancelOnDrop};
pub use depth::{ast_depth, depth_bound, parse_if_shallow, Parsed, MAX_DEPTH, MAX_PRETTY_DEPTH};
pub use error::{Error, Result};
pub use value::{InstantSample, QueryOutput, RangeSeries, Value};

use tocsin_model::Sample;
use tocsin_storage::Queryable;

/// Engine settings; the defaults are Prometheus's.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (ms).
    pub lookback_delta: i64,
    /// The most samples a query may hold in memory at once.
    pub max_samples: usize,
    /// Wall-clock limit per query.
    pub timeout: Duration,
    /// Step of a subquery written without one (`[5m:]`), in ms: Prometheus uses the global
    /// evaluation interval.
    pub default_subquery_step: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: 60 * 1000,
        }
    }
}

/// The query engine. Cheap to share; holds only settings (and the flag that cancels its queries).
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
    cancel: Option<Cancel>,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts, cancel: None }
    }

    /// Queries of this engine stop (with [`Error::Canceled`]) once `cancel` is raised.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at `t` (ms since the epoch).
    pub fn instant(&self, q: &dyn Queryable, expr: &str, t: i64) -> Result<QueryOutput> {
        let _running = Running::enter();
        let e = parse(expr)?;
        e.with(|e| self.instant_expr(q, e, t))?
    }

    /// Evaluates a parsed expression at `t`. The evaluator recurses through the tree: callers
    /// with a tree deeper than a few hundred nodes use [`Engine::instant`] or [`Parsed::with`].
    pub fn instant_expr(&self, q: &dyn Queryable, e: &Expr, t: i64) -> Result<QueryOutput> {
        let mut ev = self.evaluator(q, t, t, 0);
        let ctx = Ctx::new(t, t, 1);
        let value = match unparen(e) {
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                let mut out = Vec::new();
                ev.for_each_range_series(e, ctx, |labels, samples, w| {
                    let win = w.window(samples, 0);
                    if !win.is_empty() {
                        out.push(RangeSeries {
                            labels: labels.clone(),
                            samples: win.to_vec(),
                        });
                    }
                    Ok(())
                })?;
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
            other => match ev.eval(other, ctx)? {
                Val::Scalar(v) => Value::Scalar {
                    t,
                    v: v.first().copied().unwrap_or(f64::NAN),
                },
                Val::Str(s) => Value::String { t, v: s },
                Val::Vector(v) => Value::Vector(
                    finish_names(v)?
                        .into_iter()
                        .filter_map(|s| {
                            s.pts.first().map(|p| InstantSample {
                                labels: s.labels,
                                t,
                                v: p.v,
                            })
                        })
                        .collect(),
                ),
            },
        };
        Ok(QueryOutput {
            value,
            warnings: ev.warnings,
            infos: ev.infos,
            samples_loaded: ev.samples_loaded,
        })
    }

    /// Evaluates `expr` at every step from `start` to `end` (ms, inclusive); returns a matrix.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryOutput> {
        let _running = Running::enter();
        let e = parse(expr)?;
        e.with(|e| self.range_expr(q, e, start, end, step))?
    }

    /// Evaluates a parsed expression over a range (see [`Engine::instant_expr`] on depth).
    pub fn range_expr(
        &self,
        q: &dyn Queryable,
        e: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryOutput> {
        if step <= 0 {
            return Err(Error::Parse(
                "zero or negative query resolution step widths are not accepted".into(),
            ));
        }
        if end < start {
            return Err(Error::Parse(
                "end timestamp must not be before start time".into(),
            ));
        }
        match e.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                return Err(Error::Parse(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                type_name(other)
            )))
            }
        }
        let ctx = Ctx::new(start, end, step);
        if ctx.n > self.opts.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        let mut ev = self.evaluator(q, start, end, step);
        let mut series = match ev.eval(e, ctx)? {
            Val::Scalar(v) => vec![RangeSeries {
                labels: tocsin_model::Labels::empty(),
                samples: v.iter().enumerate().map(|(i, &x)| Sample::new(ctx.t(i), x)).collect(),
            }],
            Val::Vector(v) => finish_names(v)?
                .into_iter()
                .map(|s| RangeSeries {
                    labels: s.labels,
                    samples: s.pts.iter().map(|p| Sample::new(ctx.t(p.i as usize), p.v)).collect(),
                })
                .collect(),
            Val::Str(_) => return Err(Error::Parse("invalid expression type \"string\" for range query, must be Scalar or instant Vector".into())),
        };
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(QueryOutput {
            value: Value::Matrix(series),
            warnings: ev.warnings,
            infos: ev.infos,
            samples_loaded: ev.samples_loaded,
        })
    }

    fn evaluator<'a>(
        &'a self,
        q: &'a dyn Queryable,
        start: i64,
        end: i64,
        step: i64,
    ) -> Evaluator<'a> {
        Evaluator {
            queryable: q,
            opts: &self.opts,
            stop: Stop::new(Instant::now() + self.opts.timeout, self.cancel.clone()),
            query_start: start,
            query_end: end,
            query_step: step,
            samples_loaded: 0,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }
}

/// Takes dropped metric names off and refuses a result in which two series then share their
/// labels, as Prometheus does at the end of an evaluation.
fn finish_names(v: Vec<engine::Ser>) -> Result<Vec<engine::Ser>> {
    if !v.iter().any(|s| s.drop_name) {
        return Ok(v);
    }
    // Series that only differed by name merge, unless they have values at the same step.
    let mut b = engine::Builder::new();
    for s in v {
        let slot = b.slot(s.visible_labels(), false);
        for p in s.pts {
            b.push(slot, p.i, p.v)?;
        }
    }
    Ok(b.finish())
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

/// Parses an expression; errors carry the parser's message (for `/api/v1/format_query`, rule
/// checks and the API's 400 answers). An expression nested deeper than [`MAX_DEPTH`] is refused
/// naming the limit; any input is safe to give, from any thread.
pub fn parse(expr: &str) -> Result<Parsed> {
    depth::parse_limited(expr)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod limits_tests;
