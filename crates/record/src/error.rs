//! [`RecordError`]: what goes wrong in the recording domain.

use reallive_core::ErrorKind;
use reallive_store::StoreError;

/// Why a recording-domain operation failed. Messages are safe to show a
/// user: they never hold a camera password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A setting or request breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// No such camera (or other thing, named).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The name or thing exists already.
    #[error("{0}")]
    Conflict(String),
    /// A job (a transcode) failed; the message says how.
    #[error("{0}")]
    JobFailed(String),
    /// The thing changed since the caller read it (a stale `If-Match`).
    #[error("{0}")]
    Stale(String),
    /// The recordings store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file the NVR keeps could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A bug or an unexpected state; for the log.
    #[error("{0}")]
    Internal(String),
}

impl RecordError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RecordError::Invalid(_) => ErrorKind::InvalidArgument,
            RecordError::NotFound(_) => ErrorKind::NotFound,
            RecordError::Conflict(_) => ErrorKind::AlreadyExists,
            RecordError::JobFailed(_) => ErrorKind::Unavailable,
            RecordError::Stale(_) => ErrorKind::InvalidArgument,
            RecordError::Store(e) => e.kind(),
            RecordError::Io { .. } | RecordError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The field an [`Invalid`](Self::Invalid) or
    /// [`Conflict`](Self::Conflict) message names first (`url: ...` gives
    /// `url`), for forms that show the message beside it.
    pub fn field(&self) -> Option<&str> {
        let (RecordError::Invalid(m) | RecordError::Conflict(m)) = self else {
            return None;
        };
        let (head, _) = m.split_once(": ")?;
        let field = head.split(['.', '[']).next()?;
        (!field.is_empty() && field.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .then_some(field)
    }

    /// An [`RecordError::Io`] maker for `map_err`, naming what was done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RecordError {
        let what = what.into();
        move |source| RecordError::Io { what, source }
    }
}
