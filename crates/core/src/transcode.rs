//! [`VideoTranscoder`]: the seam where the relay's live transcoding meets
//! an encoder.
//!
//! Browsers play H.264 without B-frames over WebRTC
//! ([`Codec::browser_playable`](crate::Codec::browser_playable)); many IP
//! cameras send H.265, or H.264 with B-frames. While such a camera has live
//! viewers the relay runs one [`VideoTranscoder`] for it, shared by all of
//! them: the camera's access units in, constrained-baseline H.264 out.
//! `reallive-encode` implements it with GStreamer
//! (`docs/design/live-transcode.md`), so the relay never links GStreamer;
//! a test can plug in its own.

use std::sync::Arc;

use crate::reencode::BoxError;
use crate::{Codec, EncodedFrame, FrameSender};

/// A running live video transcoder: a camera's access units in, H.264
/// that browsers play out.
///
/// The output frames go to the [`FrameSender`] it was started with, from
/// the implementation's own thread: Annex-B access units of constrained
/// baseline H.264 without B-frames (`pts_90k == dts_90k`), parameter sets
/// in band before every keyframe and out of band in
/// [`EncodedFrame::params`], each carrying the pts of the input frame it
/// encodes (the input's clock). Dropping it stops its work and releases the
/// sender.
pub trait VideoTranscoder: Send {
    /// Hands over one access unit, Annex-B, in decode order, of the codec
    /// the transcoder was started for. Never blocks: when the transcoder is
    /// behind (its bounded queue is full) the frame is dropped, and so is
    /// every later one until a keyframe, each counted in
    /// [`dropped`](Self::dropped). Frames before the first keyframe are
    /// dropped and counted too. An error means the transcoder has failed
    /// for good (or the frame is of another codec).
    fn push(&mut self, frame: &EncodedFrame) -> Result<(), BoxError>;

    /// Asks for the next output picture to be a keyframe (a viewer joined,
    /// or lost packets). Never blocks.
    fn request_keyframe(&self);

    /// Input frames dropped so far: queue full, waiting for a keyframe, or
    /// not decodable.
    fn dropped(&self) -> u64;
}

/// Starts a [`VideoTranscoder`] for input of `codec`, its H.264 offered to
/// the sender.
pub type StartVideoTranscoder =
    Arc<dyn Fn(Codec, FrameSender) -> Result<Box<dyn VideoTranscoder>, BoxError> + Send + Sync>;
