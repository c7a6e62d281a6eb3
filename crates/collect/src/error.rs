//! Errors of the collect crate. Every one of them means the client sent something we cannot use,
//! so they all map to `BadData`; the messages are written for the person who operates the sender.

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
    /// A JSON push body that is not JSON or lacks the `timeSeries` array.
    #[error("JSON push body: {0}")]
    Json(String),
    /// Invalid configuration of a collector, naming the field.
    #[error("{0}")]
    Config(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadData
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
