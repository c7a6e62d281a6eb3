//! The values a query returns: scalar, string, instant vector and range matrix.

use tocsin_model::{Labels, Sample};

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Milliseconds since the epoch (the evaluation time for computed values).
    pub t: i64,
    pub v: f64,
}

/// One series of a range result, samples in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// A query's result. Range queries always return `Matrix` (sorted by labels), or `Scalar`-free
/// matrices for scalar expressions (one series with no labels), as Prometheus does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar {
        t: i64,
        v: f64,
    },
    String {
        t: i64,
        v: String,
    },
    /// In the order the last operation produced (meaningful for `sort`, `topk`, ...).
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The Prometheus API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A result with the annotations the evaluation raised; annotations are never errors.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub value: Value,
    /// "PromQL warning: ..." texts.
    pub warnings: Vec<String>,
    /// "PromQL info: ..." texts.
    pub infos: Vec<String>,
    /// Samples the evaluation loaded (for stats and the max-samples limit).
    pub samples_loaded: u64,
}
