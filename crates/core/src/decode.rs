//! Decoding for analysis: [`GrayDecode`] turns a stream's encoded frames
//! into small gray pictures (motion detection). `reallive-encode`
//! implements it with GStreamer, so the crates that decide what to decode
//! (`reallive-record`) build without it.

use std::fmt::Debug;
use std::time::Duration;

use crate::EncodedFrame;
use crate::reencode::BoxError;

/// One decoded GRAY8 picture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrayPicture {
    /// Rows of `stride` bytes.
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    /// Presentation time, in milliseconds of the frames' own pts.
    pub pts_ms: i64,
}

/// A running decoder: frames in, never blocking the caller; pictures out
/// at its own pace.
pub trait GrayDecode: Send + Sync + Debug {
    /// Hands over one access unit, timed by its own pts. Never blocks.
    fn push(&self, frame: &EncodedFrame);

    /// The next decoded picture, waiting at most `timeout`; `None` when
    /// none came in time. Blocks the calling thread.
    fn pull(&self, timeout: Duration) -> Option<GrayPicture>;
}

/// Which frames of a stream a [`GrayDecode`] is given, so that a
/// [`StartGrayDecoder`] can pick the cheapest decoder that will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeKind {
    /// Every frame of one stream (a sub-stream, a main stream up to 720p).
    /// The decoder keeps the stream's reference pictures, so it is the
    /// stream's own, and its pictures come at the rate asked for.
    Stream,
    /// Keyframes only, each decodable on its own (its parameter sets in
    /// band or in its `params`); other frames are ignored. At most one
    /// picture per keyframe, and no more often than the rate asked for:
    /// a keyframe a second gives a picture a second. The factory may decode
    /// many cameras' keyframes in turn on one shared decoder, so memory
    /// does not grow with cameras.
    Keyframes,
}

/// Starts a [`GrayDecode`] giving pictures `width` pixels wide, at most
/// `fps` a second, for the frames [`DecodeKind`] says it will be given.
pub type StartGrayDecoder = std::sync::Arc<
    dyn Fn(u32, u32, DecodeKind) -> Result<Box<dyn GrayDecode>, BoxError> + Send + Sync,
>;

/// Makes small JPEG pictures of single keyframes (timeline thumbnails).
/// `reallive-encode` implements it with GStreamer; one value is used by
/// one thread at a time, and may keep decoders warm between calls.
pub trait Thumbnailer: Send + Debug {
    /// A JPEG at most `max_width` pixels wide of the keyframe
    /// `access_unit` (NAL units with 4-byte length prefixes, as MP4 stores
    /// them), decoded with `codec_config` (the `avcC` / `hvcC` body).
    /// Blocks the calling thread; never for more than a few seconds.
    fn jpeg(
        &mut self,
        codec: crate::Codec,
        codec_config: &[u8],
        access_unit: &[u8],
        max_width: u32,
    ) -> Result<Vec<u8>, BoxError>;
}

/// Starts a [`Thumbnailer`].
pub type StartThumbnailer =
    std::sync::Arc<dyn Fn() -> Result<Box<dyn Thumbnailer>, BoxError> + Send + Sync>;
