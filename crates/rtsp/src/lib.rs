//! RealLive's RTSP client, on the caller's tokio runtime, over
//! [`retina`](https://crates.io/crates/retina) (Moonfire NVR's client). It
//! needs no GStreamer, so the API crates can use it.
//!
//! - [`probe()`]: "Test connection": what a camera sends, or why it cannot
//!   be recorded, in at most a few seconds.
//! - [`RtspSource`]: a camera's H.264 or H.265 as access units with RTP
//!   timestamps, for recording and live viewing: the NVR's default
//!   capture backend (`docs/design/ingest.md`); with
//!   `start_with_audio`, its AAC or G.711 audio too, on the video's
//!   clock ([`AudioSync`], `docs/design/audio.md`).

#![warn(missing_docs)]

pub mod ingest;
pub mod probe;

pub use ingest::{
    AccessUnits, AudioSync, IngestError, IngestOptions, IngestStats, RtspRun, RtspSource,
    SyncSource, Transport,
};
pub use probe::{Probe, ProbeAudio, ProbeError, ProbeKeyframe, ProbeTransport, probe};
