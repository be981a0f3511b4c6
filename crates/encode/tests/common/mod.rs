//! Encoded frames for the decoder tests.

use std::sync::Arc;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::{Codec, CodecParameters, EncodedFrame};

/// `n` access units of x264 at `width`x`height`, 30 fps, a keyframe
/// every 15 frames.
pub fn encoded(n: u32, width: u32, height: u32) -> Vec<EncodedFrame> {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={n} pattern=ball ! video/x-raw,width={width},height={height},framerate=30/1 \
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
