//! Small programs that show how to link RealLive's crates into your own.
//!
//! - `record-test-pattern`: capture the test pattern and write a
//!   fragmented MP4 with the store's file sink.
//! - `record`: record the test pattern into a recording store (index,
//!   rotation, recovery), printing one JSON line per finished recording.
//!
//! Run one with `cargo run -p reallive-examples --bin record-test-pattern`.
