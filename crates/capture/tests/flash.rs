//! The test pattern's flash for sync measurements (`--audio test`): the
//! encoded stream, decoded by ffmpeg, is white for the first 100 ms of every
//! second of running time, on the test tone's tick, and only then.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{assert_well_formed, collect};
use reallive_capture::{AudioInput, CaptureOptions, TestPattern};
use reallive_core::{Codec, EncodedFrame};
use reallive_encode::EncoderKind;
use reallive_test_support::require_elements;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
const FPS: u32 = 30;

fn options(audio: AudioInput, frames: u32) -> CaptureOptions {
    CaptureOptions {
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        encoder: EncoderKind::X264,
        live: false,
        num_buffers: Some(frames),
        audio,
        ..CaptureOptions::default()
    }
}

/// Each frame's mean luma, as ffmpeg decodes the Annex B stream.
fn decoded_luma(frames: &[EncodedFrame]) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.h264");
    let mut file = std::fs::File::create(&path).unwrap();
    for f in frames {
        file.write_all(&f.data).unwrap();
    }
    drop(file);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "h264", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg runs (apt install ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (WIDTH * HEIGHT) as usize;
    assert_eq!(out.stdout.len() % size, 0, "whole {WIDTH}x{HEIGHT} frames");
    out.stdout
        .chunks(size)
        .map(|y| y.iter().map(|&v| f64::from(v)).sum::<f64>() / size as f64)
        .collect()
}

async fn encoded(audio: AudioInput, n: u32) -> Vec<EncodedFrame> {
    require_elements(&["videotestsrc", "x264enc", "h264parse"]);
    let capture = TestPattern::new("smpte".into(), options(audio, n));
    let (frames, mut running) = collect(&capture, n as usize, Duration::from_secs(30)).await;
    running.wait().await.expect("clean end of stream");
    assert_eq!(frames.len(), n as usize);
    assert_well_formed(&frames, Codec::H264);
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pattern_flashes_white_on_every_tick_of_the_test_tone() {
    // 2.5 s: the flashes at 0, 1 and 2 s.
    let frames = encoded(AudioInput::Test, 75).await;
    let luma = decoded_luma(&frames);
    assert_eq!(luma.len(), frames.len(), "ffmpeg decodes every frame");
    let bright: Vec<i64> = frames
        .iter()
        .zip(&luma)
        .filter(|&(_, &y)| y > 220.0)
        .map(|(f, _)| f.pts_90k)
        .collect();
    // [k s, k s + 100 ms) at 30 fps: the frames at 0, 33.3 and 66.7 ms past
    // each whole second.
    let expected: Vec<i64> = [0, 1, 2]
        .iter()
        .flat_map(|s| (0..3).map(move |i| s * 90_000 + i * 3_000))
        .collect();
    assert_eq!(
        bright, expected,
        "bright frames' pts (90 kHz); luma {luma:?}"
    );
    for (f, y) in frames.iter().zip(&luma) {
        if !expected.contains(&f.pts_90k) {
            assert!(*y < 200.0, "frame at {} is bright ({y})", f.pts_90k);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_test_tone_the_pattern_never_flashes() {
    let frames = encoded(AudioInput::None, 35).await;
    let luma = decoded_luma(&frames);
    assert_eq!(luma.len(), frames.len(), "ffmpeg decodes every frame");
    assert!(luma.iter().all(|&y| y < 200.0), "luma {luma:?}");
}
