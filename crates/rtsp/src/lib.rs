//! RealLive's RTSP client, on the caller's tokio runtime, over
//! [`retina`](https://crates.io/crates/retina) (Moonfire NVR's client). It
//! needs no GStreamer, so the API crates can use it.
//!
//! - [`probe()`]: "Test connection": what a camera sends, or why it cannot
//!   be recorded, in at most a few seconds.

#![warn(missing_docs)]

pub mod probe;

pub use probe::{Probe, ProbeAudio, ProbeError, ProbeKeyframe, ProbeTransport, probe};
