//! The preview decodes what it is given, and a bad sink is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::{Codec, CodecParameters, EncodedFrame};
use reallive_encode::{EncodeError, Preview};

/// `n` access units of x264 at 320x240.
fn encoded(n: u32) -> Vec<EncodedFrame> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={n} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=15 ! h264parse config-interval=-1 \
         ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=out sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    let mut params = None;
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        let data = Bytes::copy_from_slice(&buf.map_readable().unwrap());
        let keyframe = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
        if keyframe {
            params = CodecParameters::from_annex_b(Codec::H264, &data).map(Arc::new);
        }
        let pts = i64::from(u32::try_from(out.len()).unwrap()) * 3000;
        out.push(EncodedFrame {
            data,
            pts_90k: pts,
            dts_90k: pts,
            duration_90k: Some(3000),
            keyframe,
            params: params.clone().unwrap(),
        });
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn every_pushed_frame_is_decoded() {
    let frames = encoded(45);
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
