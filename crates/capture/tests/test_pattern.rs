//! The test pattern through each software encoder, as a real pipeline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{assert_well_formed, collect};
use reallive_capture::{CaptureOptions, TestPattern, open};
use reallive_core::Codec;
use reallive_encode::{EncoderKind, EncoderSettings};
use reallive_test_support::require_elements;

fn options(encoder: EncoderKind, frames: u32) -> CaptureOptions {
    CaptureOptions {
        width: 640,
        height: 360,
        fps: 30,
        encoder,
        encoder_settings: EncoderSettings {
            keyframe_interval: 15,
            ..EncoderSettings::default()
        },
        live: false,
        num_buffers: Some(frames),
        ..CaptureOptions::default()
    }
}

async fn check_encoder(encoder: EncoderKind, element: &str) {
    require_elements(&["videotestsrc", element, "h264parse"]);
    let capture = TestPattern::new("ball".into(), options(encoder, 45));
    // Ask for more than the source makes: the channel must close at EOS.
    let (frames, mut running) = collect(&capture, 1000, Duration::from_secs(30)).await;
    assert_eq!(frames.len(), 45, "{encoder}: exact frame count");
    running.wait().await.expect("clean end of stream");
    assert_eq!(running.stats().frames(), 45);
    assert_eq!(running.encoder(), encoder.name());
    assert_well_formed(&frames, Codec::H264);
    let keyframes: Vec<usize> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframes, vec![0, 15, 30], "{encoder}: keyframe interval");
    let info = frames[0].params.stream_info().unwrap();
    assert_eq!((info.width, info.height), (640, 360));
    assert_eq!(info.profile_name(), "Constrained Baseline");
    assert!(!info.may_reorder, "{encoder}: stream may contain B-frames");
    // 30 fps, no gaps: pts advance by exactly one frame.
    for w in frames.windows(2) {
        assert_eq!(w[1].pts_90k - w[0].pts_90k, 3000, "{encoder}: pts step");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x264_test_pattern() {
    check_encoder(EncoderKind::X264, "x264enc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openh264_test_pattern() {
    check_encoder(EncoderKind::OpenH264, "openh264enc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_pattern_with_overlay_measures_latency() {
    require_elements(&["videotestsrc", "timeoverlay", "x264enc"]);
    let opts = CaptureOptions {
        timestamp_overlay: true,
        live: true,
        num_buffers: Some(20),
        ..options(EncoderKind::X264, 20)
    };
    let capture = open(&"test:smpte".parse().unwrap(), &opts).unwrap();
    let (frames, running) = collect(capture.as_ref(), 20, Duration::from_secs(10)).await;
    assert_eq!(frames.len(), 20);
    let latency = running.stats().latency();
    assert_eq!(latency.count(), 20);
    // A live 640x360 ultrafast encode is a few ms; a second would mean the
    // measurement is broken, not slow.
    let p50 = latency.percentile(50.0).unwrap();
    assert!(
        p50 > Duration::ZERO && p50 < Duration::from_secs(1),
        "p50 {p50:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_loses_whole_gops_only() {
    require_elements(&["videotestsrc", "x264enc"]);
    let capture = TestPattern::new("ball".into(), options(EncoderKind::X264, 90));
    // A 4-frame channel read by nobody until the source has finished.
    let (tx, mut rx) = reallive_core::frame_channel(4);
    let mut running = reallive_capture::CameraCapture::start(&capture, tx).unwrap();
    running.wait().await.unwrap();
    let mut frames = Vec::new();
    while let Some(f) = rx.recv().await {
        frames.push(f);
    }
    assert_eq!(frames.len(), 4, "exactly what the channel held");
    assert!(frames[0].keyframe);
    let stats = rx.stats();
    assert_eq!(stats.sent + stats.dropped, 90);
    assert_eq!(running.stats().dropped(), stats.dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pattern_and_passthrough_are_refused() {
    require_elements(&["videotestsrc"]);
    let (tx, _rx) = reallive_core::frame_channel(4);
    let err = reallive_capture::CameraCapture::start(
        &TestPattern::new("plaid".into(), options(EncoderKind::X264, 1)),
        tx.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown pattern 'plaid'"), "{err}");
    let err = reallive_capture::CameraCapture::start(
        &TestPattern::new("ball".into(), options(EncoderKind::Passthrough, 1)),
        tx,
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs an encoder"), "{err}");
}
