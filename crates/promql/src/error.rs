//! Errors of the PromQL engine, mapped onto the closed set of error kinds.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The expression does not parse (or fails a static check such as types).
    #[error("{0}")]
    Parse(String),
    /// A runtime error of the query itself (many-to-one matching, duplicate label sets, ...).
    #[error("{0}")]
    Execution(String),
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    #[error("query was canceled")]
    Canceled,
    #[error(transparent)]
    Storage(#[from] tocsin_storage::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Parse(_) => ErrorKind::BadData,
            Error::Execution(_) | Error::TooManySamples(_) => ErrorKind::Execution,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Canceled => ErrorKind::Canceled,
            Error::Storage(e) => e.kind(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
