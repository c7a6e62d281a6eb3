//! Errors of rule loading; every message names the file and, where known, the line.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// One or more problems in a rule file, each already formatted as `file:line: message`.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::NotFound,
            Error::Invalid(_) => ErrorKind::BadData,
        }
    }

    /// The individual problems (one for an I/O error).
    pub fn messages(&self) -> Vec<String> {
        match self {
            Error::Invalid(v) => v.clone(),
            other => vec![other.to_string()],
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
