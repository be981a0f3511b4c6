//! Motion detection for the NVR, in pure Rust.
//!
//! Input is GRAY8 frames of about 320 pixels wide at about 5 fps, decoded
//! at low resolution by a GStreamer branch (`reallive-encode`'s motion
//! decoder). Detection is frame differencing against a slowly adapting
//! background, with zones, sensitivity, a minimum area, hysteresis, and
//! rejection of global light changes. The detector is sans-IO: frames and
//! their timestamps in, events out.
//!
//! [`Detector`] takes a [`GrayFrame`] and its time, and answers with an
//! [`Observation`]: the score (the largest share of a zone that changed)
//! and any [`MotionEvent`] it started or ended. Its table tests cover a
//! still scene, a moving object, exclude and include zones, lights
//! switching on, an IR switch, and the minimum area.
//!
//! # Threading
//!
//! Pure computation; run it on a blocking thread, one detector per camera.

mod detector;

pub use detector::{Detector, MotionEvent, MotionSettings, Observation, Zone, ZoneKind};

use reallive_core::ErrorKind;

/// Errors from motion detection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MotionError {
    /// A frame whose buffer does not match its dimensions.
    #[error("GRAY8 frame of {width}x{height} (stride {stride}) needs {needed} bytes, got {got}")]
    BadFrame {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes per row.
        stride: u32,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// A setting out of range.
    #[error("{0}")]
    BadSettings(String),
}

impl MotionError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MotionError::BadFrame { .. } | MotionError::BadSettings(_) => {
                ErrorKind::InvalidArgument
            }
        }
    }
}

/// A borrowed 8-bit grayscale frame.
#[derive(Clone, Copy, Debug)]
pub struct GrayFrame<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: u32,
}

impl<'a> GrayFrame<'a> {
    /// Wraps `data`, checking it holds `height` rows of `stride` bytes.
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: u32) -> Result<Self, MotionError> {
        let needed = if height == 0 {
            0
        } else {
            stride as usize * (height as usize - 1) + width as usize
        };
        if stride < width || data.len() < needed {
            return Err(MotionError::BadFrame {
                width,
                height,
                stride,
                needed,
                got: data.len(),
            });
        }
        Ok(GrayFrame {
            data,
            width,
            height,
            stride,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row `y`, `width` bytes long.
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride as usize;
        &self.data[start..start + self.width as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_buffer_size() {
        let data = vec![7u8; 10 * 3 - 2];
        let f = GrayFrame::new(&data, 8, 3, 10).unwrap();
        assert_eq!(f.row(2).len(), 8);
        assert!(GrayFrame::new(&data, 8, 4, 10).is_err());
        assert!(GrayFrame::new(&data, 12, 1, 10).is_err());
    }
}
