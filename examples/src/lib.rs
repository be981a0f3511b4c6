//! Small programs that show how to link RealLive's crates into your own.
//!
//! - `record-test-pattern`: capture the test pattern and write a
//!   fragmented MP4 with the store's file sink.
//! - `record`: record the test pattern into a recording store (index,
//!   rotation, recovery), printing one JSON line per finished recording.
//! - `check-token`: issue a session token, verify it and check a camera
//!   grant, with no server.
//! - `signaling-hub`: the sans-IO signaling hub behind a small axum `/ws`
//!   route.
//! - `motion-file`: decode a video file small and run motion detection on
//!   it, printing the events.
//! - `publish-test-pattern`: publish the test pattern to a server as a
//!   camera, through the `Streamer` trait.
//! - `record-custom-storage`: subscribe to a camera and record it through
//!   your own `Storage` (a keyframe log).
//!
//! Run one with `cargo run -p reallive-examples --bin record-test-pattern`.
