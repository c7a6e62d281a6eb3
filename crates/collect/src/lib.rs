//! Everything that brings samples in: the Prometheus remote-write 1.0 protocol, the text exposition
//! formats a scrape returns (Prometheus text 0.0.4, OpenMetrics 1.0), relabelling of discovered
//! targets and scraped series.

pub mod error;
pub mod expfmt;
pub mod relabel;
pub mod remote_write;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
