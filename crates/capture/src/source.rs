use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::CaptureError;
use reallive_core::{RtspUrl, redact};

/// A camera or media source, as given to `--source`.
///
/// | form | source |
/// |---|---|
/// | `test`, `test:<pattern>` | GStreamer test pattern (`smpte`, `ball`, `snow`, ...) |
/// | `v4l2:/dev/videoN` | a USB/UVC camera |
/// | `libcamera`, `libcamera:<name>` | a Raspberry Pi CSI camera |
/// | `rtsp://[user:pass@]host[:port]/path` | an IP camera, passed through |
/// | `file:<path>` | an MP4, MKV or raw H.264 file, paced in real time |
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// `videotestsrc` with the named pattern.
    Test {
        /// A `videotestsrc` pattern nick.
        pattern: String,
    },
    /// A V4L2 capture device.
    V4l2 {
        /// The device node.
        device: PathBuf,
    },
    /// A libcamera camera, the first one when `name` is `None`.
    Libcamera {
        /// libcamera's camera id.
        name: Option<String>,
    },
    /// An RTSP camera.
    Rtsp(RtspUrl),
    /// A media file.
    File {
        /// Its path.
        path: PathBuf,
    },
}

impl Source {
    /// Short backend name: `test`, `v4l2`, `libcamera`, `rtsp` or `file`.
    pub fn backend(&self) -> &'static str {
        match self {
            Source::Test { .. } => "test",
            Source::V4l2 { .. } => "v4l2",
            Source::Libcamera { .. } => "libcamera",
            Source::Rtsp(_) => "rtsp",
            Source::File { .. } => "file",
        }
    }

    /// Whether the source delivers H.264 already, so `auto` means passthrough.
    pub fn is_encoded(&self) -> bool {
        matches!(self, Source::Rtsp(_) | Source::File { .. })
    }
}

const FORMS: &str =
    "expected test[:pattern], v4l2:/dev/videoN, libcamera[:name], rtsp://host/path or file:<path>";

impl FromStr for Source {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| CaptureError::InvalidSource {
            input: redact(s, &[]),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if s == "test" {
            return Ok(Source::Test {
                pattern: "smpte".into(),
            });
        }
        if let Some(p) = s.strip_prefix("test:") {
            if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid("a test pattern is a videotestsrc pattern name"));
            }
            return Ok(Source::Test { pattern: p.into() });
        }
        if let Some(dev) = s.strip_prefix("v4l2:") {
            if !dev.starts_with('/') {
                return Err(invalid("v4l2 needs a device path, e.g. v4l2:/dev/video0"));
            }
            return Ok(Source::V4l2 { device: dev.into() });
        }
        if s == "libcamera" {
            return Ok(Source::Libcamera { name: None });
        }
        if let Some(name) = s.strip_prefix("libcamera:") {
            if name.is_empty() {
                return Err(invalid("libcamera: needs a camera name"));
            }
            return Ok(Source::Libcamera {
                name: Some(name.into()),
            });
        }
        if s.starts_with("rtsp://") || s.starts_with("rtsps://") {
            return RtspUrl::parse(s)
                .map(Source::Rtsp)
                .map_err(|e| CaptureError::InvalidSource {
                    input: redact(s, &[]),
                    reason: e.to_string(),
                });
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(invalid("file: needs a path"));
            }
            return Ok(Source::File { path: path.into() });
        }
        Err(invalid(FORMS))
    }
}

/// Displays the source with RTSP credentials redacted.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Test { pattern } => write!(f, "test:{pattern}"),
            Source::V4l2 { device } => write!(f, "v4l2:{}", device.display()),
            Source::Libcamera { name: None } => f.write_str("libcamera"),
            Source::Libcamera { name: Some(n) } => write!(f, "libcamera:{n}"),
            Source::Rtsp(url) => url.fmt(f),
            Source::File { path } => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let ok = [
            ("test", "test:smpte", "test"),
            ("test:ball", "test:ball", "test"),
            ("v4l2:/dev/video2", "v4l2:/dev/video2", "v4l2"),
            ("libcamera", "libcamera", "libcamera"),
            (
                "libcamera:/base/soc/i2c0mux/i2c@1/imx708@1a",
                "libcamera:/base/soc/i2c0mux/i2c@1/imx708@1a",
                "libcamera",
            ),
            (
                "rtsp://cam.local:8554/live",
                "rtsp://cam.local:8554/live",
                "rtsp",
            ),
            (
                "rtsp://admin:s%40cret@10.0.0.9/h264",
                "rtsp://admin:***@10.0.0.9/h264",
                "rtsp",
            ),
            ("file:/tmp/clip.mp4", "file:/tmp/clip.mp4", "file"),
        ];
        for (input, shown, backend) in ok {
            let src: Source = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(src.to_string(), shown);
            assert_eq!(format!("{src:?}"), format!("Source({shown})"));
            assert_eq!(src.backend(), backend);
        }
    }

    #[test]
    fn rejects_malformed_sources_without_echoing_secrets() {
        for bad in [
            "",
            "webcam",
            "v4l2:video0",
            "test:",
            "test:ba ll",
            "libcamera:",
            "file:",
            "rtsp://user:pw@",
        ] {
            let err = bad.parse::<Source>().unwrap_err();
            assert!(!err.to_string().contains(":pw"), "{err}");
        }
    }
}
