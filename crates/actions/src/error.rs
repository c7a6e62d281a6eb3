//! Errors of the actions engine: configuration, templates, the journal.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem; the message names the field (`policies[0].http.url: ...`).
    #[error("{0}")]
    Config(String),
    /// A template failed to render for one alert; the message names the field.
    #[error("{0}")]
    Render(String),
    /// Bad input from an API client (unknown policy, approving a finished execution).
    #[error("{0}")]
    BadData(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The state database refused a journal write or read.
    #[error(transparent)]
    State(#[from] tocsin_alerts::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config(_) | Error::Render(_) | Error::BadData(_) => ErrorKind::BadData,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::State(e) => e.kind(),
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
