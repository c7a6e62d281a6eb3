//! Errors of the collect crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadData(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
