//! Errors of the time-series database.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("data directory {path} is locked by another process (pid {pid}); stop it first or use another --data-dir")]
    Locked { path: String, pid: String },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error(transparent)]
    Storage(#[from] tocsin_storage::Error),
    #[error(transparent)]
    Model(#[from] tocsin_model::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::Corrupt { .. } => ErrorKind::Internal,
            Error::Locked { .. } => ErrorKind::Unavailable,
            Error::InvalidOption(_) | Error::Model(_) => ErrorKind::BadData,
            Error::Storage(e) => e.kind(),
        }
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub fn corrupt(path: impl AsRef<std::path::Path>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.as_ref().display().to_string(),
            reason: reason.into(),
        }
    }
}

impl From<Error> for tocsin_storage::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Storage(s) => s,
            Error::Io { path, source } => tocsin_storage::Error::Io { path, source },
            Error::Corrupt { path, reason } => tocsin_storage::Error::Corrupt { path, reason },
            other => tocsin_storage::Error::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
