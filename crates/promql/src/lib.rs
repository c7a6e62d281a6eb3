//! The PromQL evaluator: parses with `promql-parser`, evaluates over the storage `Querier` seam, and
//! returns scalars, strings, vectors and matrices with Prometheus's semantics.

mod error;
pub mod promqltest;
mod value;

use std::time::Duration;

pub use error::{Error, Result};
pub use value::{InstantSample, QueryOutput, RangeSeries, Value};

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

/// The query engine. Cheap to share; holds only settings.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at `t` (ms since the epoch).
    pub fn instant(&self, q: &dyn Queryable, expr: &str, t: i64) -> Result<QueryOutput> {
        let _ = (q, expr, t);
        Err(Error::Execution("not implemented yet".into()))
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
        let _ = (q, expr, start, end, step);
        Err(Error::Execution("not implemented yet".into()))
    }
}

/// Parses an expression; errors carry the parser's message (for `/api/v1/format_query`, rule
/// checks and the API's 400 answers).
pub fn parse(expr: &str) -> Result<promql_parser::parser::Expr> {
    promql_parser::parser::parse(expr).map_err(Error::Parse)
}
