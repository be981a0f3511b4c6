use reallive_core::ErrorKind;

/// Errors from the recording store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The frames cannot be recorded as given.
    #[error("{0}")]
    InvalidInput(String),
    /// The codec parameters are malformed.
    #[error(transparent)]
    Bitstream(#[from] reallive_core::Error),
    /// A recording or the index holds something that cannot be right.
    #[error("corrupt recording data: {0}")]
    Corrupt(String),
    /// Reading or writing a recording failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. the file.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::InvalidInput(_) | StoreError::Bitstream(_) => ErrorKind::InvalidArgument,
            StoreError::Corrupt(_) => ErrorKind::Internal,
            StoreError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    ErrorKind::ResourceExhausted
                }
                _ => ErrorKind::Unavailable,
            },
        }
    }
}
