//! A camera's streams, made with GStreamer, for the live transcoder tests
//! and bench: H.265, H.264 with B-frames, AAC and G.711.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::time::ns_to_90k;
use reallive_core::{AudioParameters, Codec, CodecParameters, EncodedFrame};

/// Where the camera's clock starts, 90 kHz: far from zero, so a
/// transcoder that restarts time at zero is caught.
pub const START_90K: i64 = 9_000_000;

/// Runs `launch` (ending in `appsink name=out`) to the end and returns its
/// buffers and the appsink's caps.
fn run(launch: &str) -> (Vec<gst::Buffer>, gst::Caps) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(launch)
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
    let mut caps = None;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(120)) {
        caps = sample.caps_owned();
        out.push(sample.buffer_owned().unwrap());
    }
    assert!(sink.is_eos(), "{launch} stalled");
    pipeline.set_state(gst::State::Null).unwrap();
    (out, caps.expect("no buffers"))
}

/// `n` frames of a `width`x`height` test pattern at `fps`, encoded by
/// `encoder` (a gst-launch fragment, e.g. `x265enc speed-preset=ultrafast`)
/// to `codec`, as a camera would send them: Annex-B access units in decode
/// order with parameter sets before every keyframe, pts and dts on a clock
/// starting at [`START_90K`].
pub fn video(
    codec: Codec,
    encoder: &str,
    n: u32,
    width: u32,
    height: u32,
    fps: u32,
) -> Vec<EncodedFrame> {
    video_of("pattern=ball", codec, encoder, n, width, height, fps)
}

/// Like [`video`], of `videotestsrc` with `pattern` (its properties, e.g.
/// `pattern=smpte horizontal-speed=4`, a picture with detail that moves).
pub fn video_of(
    pattern: &str,
    codec: Codec,
    encoder: &str,
    n: u32,
    width: u32,
    height: u32,
    fps: u32,
) -> Vec<EncodedFrame> {
    let (parse, caps) = match codec {
        Codec::H265 => ("h265parse", "video/x-h265"),
        _ => ("h264parse", "video/x-h264"),
    };
    let (buffers, _) = run(&format!(
        "videotestsrc num-buffers={n} {pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 \
         ! {encoder} ! {parse} config-interval=-1 \
         ! {caps},stream-format=byte-stream,alignment=au ! appsink name=out sync=false"
    ));
    let first_dts = buffers
        .iter()
        .filter_map(|b| b.dts().or(b.pts()))
        .map(gst::ClockTime::nseconds)
        .min()
        .unwrap();
    let first_pts = buffers
        .iter()
        .filter_map(|b| b.pts())
        .map(gst::ClockTime::nseconds)
        .min()
        .unwrap();
    let origin = first_dts.min(first_pts);
    let mut params: Option<Arc<CodecParameters>> = None;
    buffers
        .iter()
        .map(|b| {
            let data = Bytes::copy_from_slice(&b.map_readable().unwrap());
            let keyframe = !b.flags().contains(gst::BufferFlags::DELTA_UNIT);
            if keyframe {
                params = CodecParameters::from_annex_b(codec, &data).map(Arc::new);
            }
            let pts = b.pts().unwrap().nseconds();
            let dts = b.dts().map_or(pts, gst::ClockTime::nseconds);
            EncodedFrame {
                data,
                pts_90k: START_90K + ns_to_90k(pts - origin),
                dts_90k: START_90K + ns_to_90k(dts - origin),
                duration_90k: Some(90_000 / fps),
                keyframe,
                params: params.clone().expect("the stream starts with a keyframe"),
            }
        })
        .collect()
}

/// One audio packet as a camera sends it.
#[derive(Clone, Debug)]
pub struct Packet {
    /// The payload (raw AAC frame, or G.711 bytes).
    pub data: Bytes,
    /// When its first sample plays, 90 kHz.
    pub pts_90k: i64,
    /// How long it plays, 90 kHz.
    pub duration_90k: i64,
}

/// `secs` seconds of a 440 Hz tone as 16 kHz mono AAC (avenc_aac), one raw
/// frame per packet, and its parameters.
pub fn aac(secs: u32) -> (Vec<Packet>, Arc<AudioParameters>) {
    let rate = 16_000;
    let buffers_n = secs * rate / 1024;
    let (buffers, caps) = run(&format!(
        "audiotestsrc num-buffers={buffers_n} samplesperbuffer=1024 wave=sine \
         ! audio/x-raw,rate={rate},channels=1 ! avenc_aac ! aacparse \
         ! audio/mpeg,mpegversion=4,stream-format=raw ! appsink name=out sync=false"
    ));
    let config = caps
        .structure(0)
        .unwrap()
        .get::<gst::Buffer>("codec_data")
        .unwrap();
    let params = Arc::new(
        AudioParameters::aac(Bytes::copy_from_slice(&config.map_readable().unwrap())).unwrap(),
    );
    let packets = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| Packet {
            data: Bytes::copy_from_slice(&b.map_readable().unwrap()),
            // 1024 samples at 16 kHz = 5760 ticks.
            pts_90k: START_90K + i as i64 * 5760,
            duration_90k: 5760,
        })
        .collect();
    (packets, params)
}

/// `secs` seconds of a 440 Hz tone as 8 kHz mono A-law in 20 ms packets
/// (160 bytes), as RTP carries PCMA.
pub fn pcma(secs: u32) -> Vec<Packet> {
    let (buffers, _) = run(&format!(
        "audiotestsrc num-buffers={} samplesperbuffer=160 wave=sine \
         ! audio/x-raw,rate=8000,channels=1 ! alawenc ! appsink name=out sync=false",
        secs * 50
    ));
    buffers
        .iter()
        .enumerate()
        .map(|(i, b)| Packet {
            data: Bytes::copy_from_slice(&b.map_readable().unwrap()),
            pts_90k: START_90K + i as i64 * 1800,
            duration_90k: 1800,
        })
        .collect()
}
