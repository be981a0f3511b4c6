#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use reallive_capture::{CameraCapture, CaptureError, Running};
use reallive_core::{Codec, EncodedFrame, frame_channel, h264, h265, nal};

/// Starts `capture` and collects up to `n` frames (fewer if the stream ends),
/// failing the test if that takes longer than `timeout`.
pub async fn collect(
    capture: &dyn CameraCapture,
    n: usize,
    timeout: Duration,
) -> (Vec<EncodedFrame>, Running) {
    let (tx, mut rx) = frame_channel(256);
    let running = capture.start(tx).expect("capture starts");
    let mut frames = Vec::new();
    let read = async {
        while frames.len() < n {
            match rx.recv().await {
                Some(f) => frames.push(f),
                None => break,
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{}: timed out with {} frames",
                capture.describe(),
                frames.len()
            )
        });
    (frames, running)
}

/// Starts `capture` and returns the error it fails with.
pub async fn expect_failure(capture: &dyn CameraCapture, timeout: Duration) -> CaptureError {
    let (tx, _rx) = frame_channel(16);
    let mut running = match capture.start(tx) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match tokio::time::timeout(timeout, running.wait()).await {
        Ok(Err(e)) => e,
        Ok(Ok(())) => panic!("{}: ended cleanly, expected an error", capture.describe()),
        Err(_) => panic!("{}: no error within {timeout:?}", capture.describe()),
    }
}

fn nal_types(codec: Codec, au: &Bytes) -> Vec<u8> {
    nal::split_annex_b(au)
        .filter_map(|u| nal::nal_type(codec, &u))
        .collect()
}

/// Number of pictures in an access unit: VCL NAL units that start a picture
/// (`first_mb_in_slice == 0`, or `first_slice_segment_in_pic_flag`).
fn pictures_in(codec: Codec, au: &Bytes) -> usize {
    nal::split_annex_b(au)
        .filter(|u| match codec {
            Codec::H264 => matches!(u[0] & 0x1f, 1..=5) && u.len() > 1 && u[1] & 0x80 != 0,
            _ => ((u[0] >> 1) & 0x3f) < 32 && u.len() > 2 && u[2] & 0x80 != 0,
        })
        .count()
}

/// What every capture must deliver: starts on a keyframe, keyframes carry
/// their parameter sets in band, exactly one picture per frame, and
/// monotonic timestamps.
pub fn assert_well_formed(frames: &[EncodedFrame], codec: Codec) {
    assert!(!frames.is_empty(), "no frames");
    assert!(frames[0].keyframe, "the first frame must be a keyframe");
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.codec(), codec, "frame {i}");
        assert!(
            f.params.is_complete(),
            "frame {i}: incomplete parameter sets"
        );
        assert_eq!(
            pictures_in(codec, &f.data),
            1,
            "frame {i}: not exactly one picture"
        );
        assert_eq!(
            nal::is_keyframe(codec, &f.data),
            f.keyframe,
            "frame {i}: keyframe flag (NAL types {:?})",
            nal_types(codec, &f.data)
        );
        if f.keyframe {
            let types = nal_types(codec, &f.data);
            let (sps, pps) = match codec {
                Codec::H264 => (h264::NAL_SPS, h264::NAL_PPS),
                _ => (h265::NAL_SPS, h265::NAL_PPS),
            };
            assert!(
                types.contains(&sps) && types.contains(&pps),
                "keyframe {i} lacks SPS/PPS: {types:?}"
            );
        }
    }
    for w in frames.windows(2) {
        assert!(
            w[1].pts_90k > w[0].pts_90k,
            "pts not increasing: {} then {}",
            w[0].pts_90k,
            w[1].pts_90k
        );
        assert!(w[1].dts_90k >= w[0].dts_90k, "dts going backwards");
    }
}
