//! Everything that brings samples in: the Prometheus remote-write 1.0 protocol, target discovery
//! (static, file, HTTP) and relabelling of discovered targets and scraped series.

pub mod discovery;
pub mod error;
pub mod relabel;
pub mod remote_write;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
