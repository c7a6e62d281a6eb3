//! Errors of the model crate and the closed set of error kinds every crate maps its errors onto.

/// The closed set of error kinds; the API maps them to HTTP status codes in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Unavailable,
    NotFound,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid label name {name:?}: {reason}")]
    InvalidLabelName { name: String, reason: &'static str },
    #[error("duplicate label name {0:?}")]
    DuplicateLabel(String),
    #[error("invalid regular expression {re:?}: {reason}")]
    InvalidRegex { re: String, reason: String },
    #[error("invalid selector {input:?}: {reason}")]
    InvalidSelector { input: String, reason: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadData
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
