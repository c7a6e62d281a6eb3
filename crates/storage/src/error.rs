//! Errors of the storage contract.

use tocsin_model::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("out of order sample for series {series}: timestamp {t} is before the newest accepted ({newest})")]
    OutOfOrder { series: String, t: i64, newest: i64 },
    #[error("sample for series {series} at {t} is too old: outside the out-of-order window (oldest accepted {min_t})")]
    TooOld { series: String, t: i64, min_t: i64 },
    #[error("duplicate sample for series {series} at {t} with a different value")]
    DuplicateSample { series: String, t: i64 },
    #[error("sample for series {series} at {t} ({when}) is too far in the future: more than storage.max_future ({max_future}) ahead of the server's clock")]
    TooFarInFuture {
        series: String,
        t: i64,
        when: String,
        max_future: String,
    },
    /// Older than time retention keeps: it would be acknowledged and then deleted by the next
    /// maintenance, so it is refused at write time instead.
    #[error("sample for series {series} at {t} ({when}) is older than storage.retention_time ({retention}) keeps: the oldest timestamp accepted now is {oldest} ({oldest_when})")]
    OlderThanRetention {
        series: String,
        t: i64,
        when: String,
        retention: String,
        oldest: i64,
        oldest_when: String,
    },
    /// A series over one of the ingest limits (label count, name or value length).
    #[error("{0}")]
    LimitExceeded(String),
    #[error(transparent)]
    Model(#[from] tocsin_model::Error),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::OutOfOrder { .. }
            | Error::TooOld { .. }
            | Error::DuplicateSample { .. }
            | Error::TooFarInFuture { .. }
            | Error::OlderThanRetention { .. }
            | Error::LimitExceeded(_)
            | Error::Model(_) => ErrorKind::BadData,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Io { .. } | Error::Corrupt { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether this rejects one sample only (the rest of a batch goes on).
    pub fn is_sample_rejection(&self) -> bool {
        matches!(
            self,
            Error::OutOfOrder { .. }
                | Error::TooOld { .. }
                | Error::DuplicateSample { .. }
                | Error::TooFarInFuture { .. }
                | Error::OlderThanRetention { .. }
                | Error::LimitExceeded(_)
        )
    }

    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
