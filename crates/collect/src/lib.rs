//! Decoding of everything that brings samples in: for now the Prometheus remote-write 1.0 protocol.

pub mod error;
pub mod remote_write;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
