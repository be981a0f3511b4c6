//! Core types shared by every RealLive crate.
//!
//! RealLive moves video around as encoded access units. This crate owns the
//! vocabulary for that:
//!
//! - [`EncodedFrame`]: one access unit in Annex-B, with 90 kHz pts/dts, a
//!   keyframe flag and the [`CodecParameters`] (SPS/PPS, and VPS for H.265) it
//!   depends on;
//! - [`Codec`] and [`StreamInfo`] (codec, size, frame rate, profile, level),
//!   the latter parsed from the parameter sets by [`h264`] and [`h265`];
//! - [`frame_channel`]: a bounded channel whose [`FrameSender::offer`] never
//!   blocks, and on overflow drops frames until the next keyframe, counting
//!   what it dropped;
//! - [`time`]: 90 kHz media time and UTC wall-clock helpers, and [`Clock`]
//!   (real and simulated) for the code that reads the time;
//! - [`CameraId`]: a camera's one id, and its one store key;
//! - [`RtspUrl`]: the one camera URL type, and [`redact`], the one
//!   redactor of credentials in text;
//! - [`Backoff`]: the one retry delay (doubling, optionally jittered);
//! - [`reencode::Reencoder`]: the seam where the store's transcoder meets an
//!   encoder;
//! - [`LatencyHistogram`]: a lock-free histogram for per-frame latencies;
//! - [`ErrorKind`]: the error categories every crate's error maps onto;
//! - `app` (feature `app`): what every program's `main` shares: `-v` and
//!   logging, shutdown on SIGINT/SIGTERM.
//!
//! # Threading
//!
//! Everything here is `Send + Sync` and non-blocking on the sending side, so a
//! GStreamer streaming thread can call [`FrameSender::offer`] and
//! [`LatencyHistogram::record`] directly.
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

#[cfg(feature = "app")]
pub mod app;
mod backoff;
mod camera;
mod channel;
mod clock;
mod error;
mod frame;
pub mod h264;
pub mod h265;
mod histogram;
pub mod nal;
pub mod reencode;
mod rtsp;
pub mod supervise;
pub mod time;

pub use backoff::Backoff;
pub use camera::CameraId;
pub use channel::{ChannelStats, FrameReceiver, FrameSender, Offer, frame_channel};
pub use clock::{Clock, SimulatedClock, SystemClock};
pub use error::{Error, ErrorKind};
pub use frame::{Codec, CodecParameters, EncodedFrame, Fps, StreamInfo};
pub use histogram::LatencyHistogram;
pub use rtsp::{RtspUrl, redact};
