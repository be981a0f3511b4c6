//! Frames from real encoder output, without running a pipeline.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use reallive_core::{Codec, CodecParameters, EncodedFrame, nal};

/// Reads an Annex-B elementary stream and returns its access units as
/// frames: the first at `first_pts_90k`, each `step_90k` later, with the
/// parameter sets of the latest keyframe. Panics if the file is missing or
/// does not start with parameter sets.
pub fn annex_b_frames(
    path: &Path,
    codec: Codec,
    first_pts_90k: i64,
    step_90k: u32,
) -> Vec<EncodedFrame> {
    let data = Bytes::from(
        std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
    );
    let mut params: Option<Arc<CodecParameters>> = None;
    nal::access_units(codec, &data)
        .into_iter()
        .enumerate()
        .map(|(i, au)| {
            let keyframe = nal::is_keyframe(codec, &au);
            if keyframe {
                params = CodecParameters::from_annex_b(codec, &au).map(Arc::new);
            }
            let pts = first_pts_90k + i as i64 * i64::from(step_90k);
            EncodedFrame {
                pts_90k: pts,
                dts_90k: pts,
                duration_90k: Some(step_90k),
                keyframe,
                params: params
                    .clone()
                    .unwrap_or_else(|| panic!("{} must start with parameter sets", path.display())),
                data: au,
            }
        })
        .collect()
}

/// `n` frames cycled from `clip` (which must start on a keyframe), re-stamped
/// `step_90k` apart from zero: a long stream from a short real clip.
pub fn cycled(clip: &[EncodedFrame], n: usize, step_90k: u32) -> Vec<EncodedFrame> {
    (0..n)
        .map(|i| {
            let mut f = clip[i % clip.len()].clone();
            f.pts_90k = i as i64 * i64::from(step_90k);
            f.dts_90k = f.pts_90k;
            f
        })
        .collect()
}

/// The workspace's small real x264 clip: 160x120, 30 frames, constrained
/// baseline, a keyframe every 10 frames.
pub const BALL_160X120: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../store/testdata/ball-160x120-30f.h264"
);

/// `n` frames of [`BALL_160X120`] at 30 fps, cycled from pts 0.
pub fn ball_frames(n: usize) -> Vec<EncodedFrame> {
    let clip = annex_b_frames(Path::new(BALL_160X120), Codec::H264, 0, 3000);
    cycled(&clip, n, 3000)
}
