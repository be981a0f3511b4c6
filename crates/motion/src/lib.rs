//! Motion detection for the NVR, in pure Rust.
//!
//! A recorder in motion mode needs one question answered per camera, a few
//! times a second: is something moving here? Answering it from a decoded
//! main stream would cost a Pi most of its CPU, so the NVR decodes a
//! sub-stream (or only the keyframes) to GRAY8 at about 320 pixels wide and
//! 5 fps (`reallive-encode`'s `motion::GrayDecoder`) and hands those small
//! frames here. Keeping this crate free of GStreamer lets its decisions be
//! table-tested with synthetic pictures.
//!
//! Detection is frame differencing against a slowly adapting background.
//! Zones, sensitivity and a minimum area say what counts; hysteresis keeps
//! one walk across the yard one event; a change spread over most of the
//! picture (lights, an IR switch) is taken as light, not motion, and the
//! background is re-learnt.
//!
//! - [`Detector`]: one camera's state. It takes a [`GrayFrame`] and its
//!   time, and answers with an [`Observation`]: the score (the largest
//!   share of a zone that changed) and any [`MotionEvent`] it started or
//!   ended.
//! - [`MotionSettings`] and [`Zone`]: what counts as motion, checked by
//!   [`MotionSettings::validate`] so a bad config fails at load.
//! - [`GrayFrame`]: a borrowed GRAY8 picture with its stride, so a decoder's
//!   padded buffer is used without a copy.
//!
//! # Threading
//!
//! Sans-IO and synchronous: the caller supplies each frame's time, so tests
//! and replays need no clock. Each frame is a full pass over its pixels,
//! so it is CPU work: call it from a blocking thread or a dedicated task,
//! never from a GStreamer streaming thread, and keep one [`Detector`] per
//! camera (it is `Send`; nothing in it is shared).
//!
//! # Example
//!
//! ```
//! use reallive_motion::{Detector, GrayFrame, MotionEvent, MotionSettings};
//!
//! let (w, h) = (64u32, 48u32);
//! let mut detector = Detector::new(MotionSettings::default())?;
//! let mut events = Vec::new();
//! for i in 0..20u32 {
//!     // A bright 8 × 8 square crossing a dark picture, at 5 fps.
//!     let mut pixels = vec![16u8; (w * h) as usize];
//!     let x0 = i * 3;
//!     for y in 20..28 {
//!         for x in x0..(x0 + 8).min(w) {
//!             pixels[(y * w + x) as usize] = 235;
//!         }
//!     }
//!     let frame = GrayFrame::new(&pixels, w, h, w)?;
//!     events.extend(detector.process(&frame, i64::from(i) * 200).events);
//! }
//! events.extend(detector.flush());
//! assert!(matches!(events.first(), Some(MotionEvent::Started { .. })));
//! assert!(matches!(events.last(), Some(MotionEvent::Ended { .. })));
//! # Ok::<(), reallive_motion::MotionError>(())
//! ```

#![warn(missing_docs)]

mod detector;

pub use detector::{
    Detector, GRID_COLS, GRID_ROWS, MotionEvent, MotionSettings, Observation, Zone, ZoneKind,
};

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
