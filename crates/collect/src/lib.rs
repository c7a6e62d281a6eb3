//! Everything that brings samples in: the Prometheus remote-write 1.0 protocol, the text exposition
//! formats a scrape returns (Prometheus text 0.0.4, OpenMetrics 1.0), relabelling, service
//! discovery, the scrape manager and its loops, and the HTTP client settings they share.

pub mod discovery;
pub mod error;
pub mod expfmt;
pub mod httpclient;
pub mod relabel;
pub mod remote_write;
pub mod scrape;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
