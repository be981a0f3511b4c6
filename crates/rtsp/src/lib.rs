//! RealLive's RTSP client, on the caller's tokio runtime, over
//! [`retina`](https://crates.io/crates/retina) (Moonfire NVR's client). It
//! needs no GStreamer, so the API crates can use it.
//!
//! - [`probe()`]: "Test connection": what a camera sends, or why it cannot
//!   be recorded, in at most a few seconds.
//! - [`RtspSource`]: a camera's H.264 or H.265 as access units with RTP
//!   timestamps, for recording and live viewing: the NVR's default
//!   capture backend (`docs/design/ingest.md`).

#![warn(missing_docs)]

pub mod ingest;
pub mod probe;

pub use ingest::{
    AccessUnits, IngestError, IngestOptions, IngestStats, RtspRun, RtspSource, Transport,
};
pub use probe::{Probe, ProbeAudio, ProbeError, ProbeKeyframe, ProbeTransport, probe};
