//! Errors of the collect crate. Most mean a client or a discovery source sent something we cannot
//! use (`BadData`); an HTTP discovery endpoint that cannot be reached is `Unavailable`. Messages
//! are written for the person who operates the sender and name the file, URL or field at fault.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("remote write body is not valid snappy block-format data: {0}")]
    Snappy(String),
    #[error(
        "remote write body decompresses to {size} bytes, more than the limit of {limit} bytes"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("remote write body is not a valid protobuf WriteRequest: {reason} (at byte {offset} of the decompressed body)")]
    Protobuf { offset: usize, reason: &'static str },
    /// One series of a request is unusable; `labels` is rendered leniently so the sender can find it.
    #[error("series {index} {labels}: {reason}")]
    InvalidSeries {
        index: usize,
        labels: String,
        reason: String,
    },
    /// A scrape body in the text exposition format or OpenMetrics is malformed.
    #[error(transparent)]
    Exposition(#[from] crate::expfmt::ExpfmtError),
    /// A file_sd target file that cannot be read or parsed.
    #[error("target file {path}: {reason}")]
    TargetFile { path: String, reason: String },
    /// An http_sd endpoint answered with something other than a JSON list of target groups.
    #[error("HTTP service discovery {url}: {reason}")]
    HttpSdResponse { url: String, reason: String },
    /// An http_sd endpoint could not be reached or did not answer in time.
    #[error("HTTP service discovery {url}: request failed: {reason}")]
    HttpSdUnavailable { url: String, reason: String },
    /// A discovery configuration that cannot be put to work, e.g. an unreadable `ca_file`.
    #[error("{field}: {reason}")]
    DiscoveryConfig { field: String, reason: String },
    /// A JSON push body that is not JSON or lacks the `timeSeries` array.
    #[error("JSON push body: {0}")]
    Json(String),
    /// Invalid configuration of a collector, naming the field.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::HttpSdUnavailable { .. } => ErrorKind::Unavailable,
            _ => ErrorKind::BadData,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
