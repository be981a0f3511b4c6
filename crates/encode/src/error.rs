use reallive_core::ErrorKind;

/// Errors from choosing, probing and building encoders.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A GStreamer element is not installed.
    #[error("GStreamer element '{element}' is missing; install {package}")]
    MissingElement {
        /// The element factory name.
        element: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The hardware encoder's plugin is installed, but it found no device
    /// to drive (a Raspberry Pi 5, any PC): nothing to install.
    #[error(
        "no {element} here: no V4L2 memory-to-memory encoder device was found (a Raspberry Pi 5 has none)"
    )]
    NoDevice {
        /// The element factory name.
        element: &'static str,
    },
    /// The hardware encoder exists but its device does not open.
    #[error("hardware encoder {element} is present but its device does not open")]
    DeviceUnusable {
        /// The element factory name.
        element: &'static str,
    },
    /// No encoder in the `auto` list can run here.
    #[error("no H.264 encoder available: tried {tried}")]
    NoneAvailable {
        /// What was tried and why each failed.
        tried: String,
    },
    /// An unknown encoder name or an invalid setting.
    #[error("{0}")]
    InvalidArgument(String),
    /// There is nowhere to show a preview, or the preview stopped.
    #[error("{0}")]
    NoDisplay(String),
    /// Building the bin failed unexpectedly.
    #[error("building the {encoder} encoder failed: {detail}")]
    Build {
        /// The backend.
        encoder: &'static str,
        /// What failed.
        detail: String,
    },
}

impl EncodeError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EncodeError::MissingElement { .. } | EncodeError::NoneAvailable { .. } => {
                ErrorKind::Unavailable
            }
            EncodeError::DeviceUnusable { .. }
            | EncodeError::NoDevice { .. }
            | EncodeError::NoDisplay(_) => ErrorKind::Unavailable,
            EncodeError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            EncodeError::Build { .. } => ErrorKind::Internal,
        }
    }
}
