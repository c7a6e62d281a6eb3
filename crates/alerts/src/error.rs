//! Errors of the alert manager: configuration, state store and delivery.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem; the message names the file:line or field.
    #[error("{0}")]
    Config(String),
    /// Bad input from an API client (alert or silence body); the message names the field.
    #[error("{0}")]
    BadData(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is valid but the target is not in a state that allows it (acknowledging
    /// an alert that has resolved). Its kind is `BadData`; HTTP handlers answer 409.
    #[error("{0}")]
    Conflict(String),
    #[error("state store: {0}")]
    State(#[from] rusqlite::Error),
    /// A failure of the state database, naming its file so the operator knows which one.
    #[error("state db {path}: {source}")]
    Db {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The state database failed its integrity check.
    #[error("state db {path} is damaged: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::BadData(_) | Error::Conflict(_) => ErrorKind::BadData,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::State(_) | Error::Db { .. } | Error::Corrupt { .. } | Error::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }
}

impl Error {
    /// Whether this says the state file is damaged (not a database, a corrupt page, a failed
    /// integrity check), as opposed to a file that cannot be reached or a bad request.
    pub fn is_corruption(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match self {
            Error::State(e) | Error::Db { source: e, .. } => matches!(
                e.sqlite_error_code(),
                Some(DatabaseCorrupt) | Some(NotADatabase)
            ),
            Error::Corrupt { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
