//! Everything that brings samples in: Prometheus remote write 1.0, the text exposition formats a
//! scrape returns (Prometheus text 0.0.4, OpenMetrics 1.0), InfluxDB line protocol, the JSON
//! custom-metric push API, Graphite plaintext (with its TCP listener), relabelling, service
//! discovery, the scrape manager and its loops, and the HTTP client settings they share.

pub mod discovery;
pub mod error;
pub mod expfmt;
pub mod graphite;
pub use tocsin_httpclient as httpclient;
pub mod jsonpush;
pub mod lineproto;
pub mod names;
pub mod relabel;
pub mod remote_read;
pub mod remote_write;
pub mod scrape;

pub use error::{Error, Result};
pub use remote_write::{decode, DecodedWrite, SeriesRef, WriteRequestBuilder};
