//! The embedded time-series database: an in-memory head of compressed chunks with an inverted index,
//! a write-ahead log, immutable on-disk blocks with compaction, retention and deletion, all served to
//! readers through the storage crate's `Querier` seam. `docs/format.md` describes the on-disk format.

pub mod block;
pub mod check;
pub mod chunkenc;
pub mod error;
mod fault;
pub mod index;
pub mod wal;

pub use error::{Error, Result};
#[cfg(test)]
mod corruption_tests;
pub mod db;
mod db_metrics;
pub mod head;
pub mod lock;
pub mod quarantine;
mod query;
pub mod spill;

pub use db::{Db, DbMetrics, DbOptions, DbStats};
