//! Rules about the time-series database: disk, cardinality, churn.

pub mod warn_101;
pub mod warn_102;
pub mod warn_103;
