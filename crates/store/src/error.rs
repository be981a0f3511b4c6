use reallive_core::ErrorKind;

/// Errors from the recording store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A recording, lock or camera that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The frames cannot be recorded as given.
    #[error("{0}")]
    InvalidInput(String),
    /// The codec parameters are malformed.
    #[error(transparent)]
    Bitstream(#[from] reallive_core::Error),
    /// A recording or the index holds something that cannot be right.
    #[error("corrupt recording data: {0}")]
    Corrupt(String),
    /// The SQLite index failed.
    #[error("recording index: {0}")]
    Index(#[from] sqlx::Error),
    /// The index schema could not be brought up to date.
    #[error("recording index migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A limit on work at once was hit (exports running for one user);
    /// the message says which, and what to do.
    #[error("{0}")]
    Busy(String),
    /// An export does not fit in what is left of the exports' share of
    /// the disk.
    #[error(
        "this export needs about {} MB but only {} MB of the {} MB kept for exports is free; delete finished exports or choose a shorter range",
        mb(*needed_bytes), mb(*free_bytes), mb(*budget_bytes)
    )]
    NoRoom {
        /// What the export needs (an estimate from its fragments).
        needed_bytes: u64,
        /// What is left of the budget.
        free_bytes: u64,
        /// The whole budget.
        budget_bytes: u64,
    },
    /// What was waited for did not happen in time (a blocking live
    /// playlist reload); asking again may succeed.
    #[error("{0}")]
    NotYet(String),
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
            StoreError::Corrupt(_) | StoreError::Migrate(_) => ErrorKind::Internal,
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Busy(_) | StoreError::NoRoom { .. } => ErrorKind::ResourceExhausted,
            StoreError::Index(_) | StoreError::NotYet(_) => ErrorKind::Unavailable,
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

/// Bytes in MB, rounded up, for messages.
fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1_000_000)
}

impl StoreError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether this is the disk running out of space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. }
            if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded))
    }
}
