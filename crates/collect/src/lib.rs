//! Decoding of everything that brings samples in: the Prometheus remote-write 1.0 protocol and the
//! text exposition formats a scrape returns (Prometheus text 0.0.4, OpenMetrics 1.0).

pub mod error;
pub mod expfmt;
pub mod remote_write;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
