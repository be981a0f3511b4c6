use std::fmt;

/// What kind of failure an error is, independent of the crate that raised it.
///
/// Every library crate's error enum has a `kind()` returning one of these, so
/// the HTTP layer can map errors to status codes in one place and apps can
/// decide whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing asked for does not exist (a device, a file, a camera).
    NotFound,
    /// The caller passed something malformed or unsupported.
    InvalidArgument,
    /// A dependency is down or unreachable; retrying later may work.
    Unavailable,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// The caller did not prove who they are, or the proof is no longer
    /// valid (a missing, expired or revoked token; a wrong password).
    Unauthenticated,
    /// The thing to create exists already (a username, a camera name).
    AlreadyExists,
    /// A limit was hit: disk, memory, a queue, a rate limit.
    ResourceExhausted,
    /// A bug or an unexpected state inside RealLive.
    Internal,
}

impl ErrorKind {
    /// A stable lowercase code, used in JSON errors and metrics labels.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Errors from parsing bitstreams in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter set or NAL unit is truncated or malformed.
    #[error("malformed {what}: {detail}")]
    Bitstream {
        /// What was being parsed, e.g. "H.264 SPS".
        what: &'static str,
        /// Where it went wrong.
        detail: String,
    },
    /// The stream uses something RealLive does not handle.
    #[error("unsupported {what}")]
    Unsupported {
        /// What is unsupported.
        what: String,
    },
    /// A camera URL is unusable; the reason never quotes the URL, which may
    /// hold a password.
    #[error("the camera URL {reason}")]
    InvalidUrl {
        /// What is wrong, as a phrase ("has no host").
        reason: &'static str,
    },
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Bitstream { .. } | Error::Unsupported { .. } | Error::InvalidUrl { .. } => {
                ErrorKind::InvalidArgument
            }
        }
    }

    pub(crate) fn bitstream(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Bitstream {
            what,
            detail: detail.into(),
        }
    }
}
