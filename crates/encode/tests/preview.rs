//! The preview decodes what it is given, and a bad sink is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use reallive_encode::{EncodeError, Preview};

#[test]
fn every_pushed_frame_is_decoded() {
    let frames = common::encoded(45, 320, 240);
    assert_eq!(frames.len(), 45);
    let preview = Preview::start("fakesink").unwrap();
    for f in &frames {
        preview.push(f).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while preview.decoded_frames() < 45 && Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_millis(20));
    }
    assert_eq!(preview.decoded_frames(), 45);
}

#[test]
fn a_missing_sink_is_a_clear_error() {
    let e = Preview::start("no-such-sink").unwrap_err();
    assert!(matches!(e, EncodeError::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("no-such-sink"), "{e}");
}
