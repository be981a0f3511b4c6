use reallive_core::ErrorKind;
use reallive_encode::EncodeError;

/// Errors from opening and running a camera source.
///
/// Every message names the source in its redacted form: credentials in RTSP
/// URLs never appear in an error.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The source string does not parse.
    #[error("invalid source '{input}': {reason}")]
    InvalidSource {
        /// The source as given (redacted).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A capture option is out of range.
    #[error("invalid capture options: {0}")]
    InvalidOptions(String),
    /// A GStreamer element the source needs is not installed.
    #[error("{source_name}: GStreamer element '{element}' is missing; install {package}")]
    MissingElement {
        /// The source (redacted).
        source_name: String,
        /// The element factory.
        element: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The device or file does not exist.
    #[error("{source_name}: {detail}")]
    NotFound {
        /// The source (redacted).
        source_name: String,
        /// What is missing.
        detail: String,
    },
    /// The source and the options cannot work together.
    #[error("{source_name}: {detail}")]
    Unsupported {
        /// The source (redacted).
        source_name: String,
        /// Why.
        detail: String,
    },
    /// Choosing or building the encoder failed.
    #[error("{source_name}: {error}")]
    Encoder {
        /// The source (redacted).
        source_name: String,
        /// The encoder error.
        error: EncodeError,
    },
    /// The running pipeline failed: a refused connection, a device that
    /// vanished, a corrupt file.
    #[error("{source_name}: {message}")]
    Stream {
        /// The source (redacted).
        source_name: String,
        /// GStreamer's message and detail, redacted.
        message: String,
        /// The category, from GStreamer's error domain.
        kind: ErrorKind,
    },
    /// Capture needs a tokio runtime to watch the pipeline's bus.
    #[error("capture must be started inside a tokio runtime")]
    NoRuntime,
    /// An unexpected GStreamer failure.
    #[error("{source_name}: internal error: {detail}")]
    Internal {
        /// The source (redacted).
        source_name: String,
        /// What failed.
        detail: String,
    },
}

impl CaptureError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CaptureError::InvalidSource { .. }
            | CaptureError::InvalidOptions(_)
            | CaptureError::Unsupported { .. } => ErrorKind::InvalidArgument,
            CaptureError::MissingElement { .. } => ErrorKind::Unavailable,
            CaptureError::NotFound { .. } => ErrorKind::NotFound,
            CaptureError::Encoder { error, .. } => error.kind(),
            CaptureError::Stream { kind, .. } => *kind,
            CaptureError::NoRuntime | CaptureError::Internal { .. } => ErrorKind::Internal,
        }
    }
}
