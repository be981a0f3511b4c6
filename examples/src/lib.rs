//! Small programs that show how to link RealLive's crates into your own.
//!
//! - `record-test-pattern`: capture the test pattern and write a
//!   fragmented MP4 with the store's file sink.
//!
//! Run one with `cargo run -p reallive-examples --bin record-test-pattern`.
