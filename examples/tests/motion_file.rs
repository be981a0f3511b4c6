//! `motion-file` on clips written here by GStreamer: a moving ball is
//! motion, still colour bars are not. (Not `smpte`: videotestsrc draws
//! fresh noise in a corner of it on every frame, about 5 % of the picture,
//! which the detector rightly reports; `smpte100` is the same bars, still.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_test_support::require_elements;

/// Three seconds of `pattern` at 320x240, 30 fps, as raw H.264.
fn write_clip(pattern: &str, path: &Path) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern={pattern} num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc key-int-max=30 ! h264parse ! video/x-h264,stream-format=byte-stream \
         ! filesink location={}",
        path.display()
    ))
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the clip was written in time");
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
}

fn motion_file(pattern: &str) -> String {
    require_elements(&[
        "videotestsrc",
        "x264enc",
        "h264parse",
        "videoscale",
        "videorate",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join(format!("{pattern}.h264"));
    write_clip(pattern, &clip);
    let out = Command::new(env!("CARGO_BIN_EXE_motion-file"))
        .arg(&clip)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_moving_ball_is_motion() {
    let out = motion_file("ball");
    assert!(out.contains("motion started at "), "{out}");
    assert!(out.contains("motion ended: "), "{out}");
    let last = out.lines().last().unwrap();
    let events: usize = last
        .strip_suffix(" motion events")
        .unwrap()
        .parse()
        .unwrap();
    assert!(events >= 1, "{out}");
}

#[test]
fn still_colour_bars_are_not() {
    let out = motion_file("smpte100");
    assert_eq!(out, "0 motion events\n");
}
