//! Core types shared by every RealLive crate.
//!
//! Every other crate depends on this one and it depends on none of them, nor
//! on GStreamer, axum or sqlx: a type or helper two crates need lives here.
//! RealLive moves video around as encoded access units, and this crate owns
//! the vocabulary for that:
//!
//! - [`EncodedFrame`]: one access unit in Annex-B, with 90 kHz pts/dts, a
//!   keyframe flag and the [`CodecParameters`] (SPS/PPS, and VPS for H.265) it
//!   depends on;
//! - [`AudioParameters`] ([`AudioCodec`] Opus or AAC): an audio track's
//!   decoder configuration, as [`CodecParameters`] is a video track's;
//! - [`Codec`] and [`StreamInfo`] (codec, size, frame rate, profile, level),
//!   the latter parsed from the parameter sets by [`h264`] and [`h265`];
//!   [`nal`] splits Annex-B and rewrites it length-prefixed for MP4;
//! - [`frame_channel`]: a bounded channel whose [`FrameSender::offer`] never
//!   blocks, and on overflow drops frames until the next keyframe, counting
//!   what it dropped;
//! - [`time`]: 90 kHz media time and UTC wall-clock helpers
//!   ([`UtcNs::now`](time::UtcNs::now) is the one wall clock), and [`Clock`]
//!   ([`SystemClock`], [`SimulatedClock`]) for the code that reads the time;
//! - [`CameraId`]: a camera's one id, and its one store key (`camera-<id>`);
//! - [`RtspUrl`]: the one camera URL type, and [`redact`], the one
//!   redactor of credentials in text;
//! - [`Backoff`]: the one retry delay (doubling, optionally jittered);
//! - [`source::FrameSource`]: a camera as GStreamer-free code starts it;
//! - [`supervise::Supervisor`]: the sans-IO state machine that restarts a
//!   stalled or failed source;
//! - [`reencode::Reencoder`]: the seam where the store's transcoder meets an
//!   encoder;
//! - [`VideoTranscoder`] and [`AudioTranscoder`]: the seams where live
//!   transcoding (H.265 or B-frames to browser H.264, camera audio to
//!   Opus; G.711 to AAC at ingest) meets GStreamer;
//! - [`LatencyHistogram`]: a lock-free histogram for per-frame latencies;
//! - [`ErrorKind`]: the error categories every crate's error maps onto;
//!   [`Error`] is this crate's own (bitstreams and URLs);
//! - [`logring::LogRing`]: the last 2,000 log lines of the process, for
//!   `/api/logs` (fed by `app`'s logging);
//! - `app` (feature `app`): what every program's `main` shares: `-v` and
//!   logging (to stderr and the log ring), shutdown on SIGINT/SIGTERM.
//!
//! # Threading
//!
//! Nothing here spawns a thread or a task, or reads the clock behind the
//! caller's back: the supervisor takes `now` as an argument. The frame
//! channel's sending side and [`LatencyHistogram::record`] never block, so a
//! GStreamer streaming thread can call [`FrameSender::offer`] directly.
//! The exception is a [`reencode::Reencoder`], whose calls block while it
//! encodes: run it off the async runtime.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use reallive_core::{frame_channel, Codec, CodecParameters, EncodedFrame, Offer};
//! use std::sync::Arc;
//!
//! let (tx, mut rx) = frame_channel(8);
//! let params = Arc::new(CodecParameters::new(Codec::H264));
//! let frame = EncodedFrame {
//!     data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88]),
//!     pts_90k: 0,
//!     dts_90k: 0,
//!     duration_90k: Some(3000),
//!     keyframe: true,
//!     params,
//! };
//! assert_eq!(tx.offer(frame), Offer::Sent);
//! assert!(rx.try_recv().is_some());
//! ```
//!
//! A camera URL keeps its password out of every log line:
//!
//! ```
//! use reallive_core::{RtspUrl, redact};
//!
//! let url: RtspUrl = "rtsp://admin:s3cret@192.0.2.10/stream1".parse()?;
//! assert_eq!(url.to_string(), "rtsp://admin:***@192.0.2.10/stream1");
//! assert_eq!(url.location(), "rtsp://192.0.2.10/stream1");
//! let gst_error = format!("could not open {}", url.expose());
//! assert!(!redact(&gst_error, &url.secrets()).contains("s3cret"));
//! # Ok::<(), reallive_core::Error>(())
//! ```

#![warn(missing_docs)]

#[cfg(feature = "app")]
pub mod app;
pub mod audio;
mod backoff;
mod camera;
mod channel;
mod clock;
pub mod decode;
mod error;
mod frame;
pub mod fs;
pub mod h264;
pub mod h265;
mod histogram;
mod logformat;
#[cfg(feature = "app")]
pub mod logjson;
pub mod logring;
pub mod nal;
pub mod reencode;
mod rtsp;
pub mod source;
pub mod supervise;
pub mod time;
pub mod transcode;

pub use audio::{
    AudioCodec, AudioFrame, AudioParameters, AudioTranscoder, CameraAudio, G711,
    StartAudioTranscoder, StartOpusTranscoder,
};
pub use backoff::Backoff;
pub use camera::CameraId;
pub use channel::{
    AudioReceiver, AudioSender, ChannelStats, FrameReceiver, FrameSender, Offer, audio_channel,
    frame_channel,
};
pub use clock::{Clock, SimulatedClock, SystemClock};
pub use error::{Error, ErrorKind};
pub use frame::{Codec, CodecParameters, EncodedFrame, Fps, StreamInfo};
pub use histogram::LatencyHistogram;
pub use logformat::LogFormat;
pub use rtsp::{RtspUrl, redact};
pub use transcode::{StartVideoTranscoder, VideoTranscoder};
