//! Files from the muxer, read back by ffprobe as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use reallive_core::{Codec, EncodedFrame};
use reallive_store::mp4::Fmp4Muxer;
use reallive_test_support::ffprobe;

fn clip(file: &str, codec: Codec) -> Vec<EncodedFrame> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(file);
    // duration_90k set on every frame; the muxer uses it only for the last.
    reallive_test_support::clip::annex_b_frames(&path, codec, 500, 3000)
}

fn write(frames: Vec<EncodedFrame>, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let mut muxer = Fmp4Muxer::new(90_000 / 3);
    let mut out = BytesMut::new();
    for f in frames {
        let o = muxer.push(f).unwrap();
        out.extend(o.init);
        out.extend(o.fragment.map(|f| f.data));
    }
    out.extend(muxer.finish(None).map(|f| f.data));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, &out).unwrap();
    (dir, path)
}

#[test]
fn h264_file_plays_with_every_frame() {
    let (_dir, path) = write(clip("ball-160x120-30f.h264", Codec::H264), "clip.mp4");
    let p = ffprobe::probe(&path);
    assert_eq!(p.codec_name, "h264");
    assert_eq!(p.profile, "Constrained Baseline");
    assert_eq!((p.width, p.height), (160, 120));
    assert_eq!(p.frames, 30);
    assert_eq!(p.has_b_frames, 0);
    let duration = p.duration_secs.expect("a duration");
    assert!((duration - 1.0).abs() < 0.01, "duration {duration}");
    let keys: Vec<usize> = p
        .keyframes
        .iter()
        .enumerate()
        .filter(|(_, k)| **k)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keys, vec![0, 10, 20]);
    // Times start at zero in the file, whatever the source clock said.
    assert_eq!(p.frame_pts.first().copied(), Some(0.0));
}

#[test]
fn h265_file_plays_with_every_frame() {
    let (_dir, path) = write(clip("ball-160x120-10f.h265", Codec::H265), "clip.mp4");
    let p = ffprobe::probe(&path);
    assert_eq!(p.codec_name, "hevc");
    assert_eq!((p.width, p.height), (160, 120));
    assert_eq!(p.frames, 10);
}

#[test]
fn truncated_file_plays_up_to_its_last_fragment() {
    let (_dir, path) = write(clip("ball-160x120-30f.h264", Codec::H264), "clip.mp4");
    let data = std::fs::read(&path).unwrap();
    // A crash in the middle of the last fragment: the first two still play.
    std::fs::write(&path, &data[..data.len() - 200]).unwrap();
    let p = ffprobe::try_probe(&path);
    let frames = p.map(|p| p.frames).unwrap_or(0);
    assert!(frames >= 20, "only {frames} frames survive");
}
