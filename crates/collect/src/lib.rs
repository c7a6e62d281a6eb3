//! Decoding of everything that brings samples in: Prometheus remote write 1.0, InfluxDB line
//! protocol, the JSON custom-metric push API, and Graphite plaintext (with its TCP listener).

pub mod error;
pub mod graphite;
pub mod jsonpush;
pub mod lineproto;
pub mod names;
pub mod remote_write;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
