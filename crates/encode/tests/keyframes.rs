//! The shared keyframe decoder: many cameras' keyframes on one decoder,
//! each picture back to its own camera, never blocking the pusher.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// The tests pace their pushes and wait for the decoder's thread.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reallive_core::decode::{DecodeKind, GrayPicture};
use reallive_core::{Codec, EncodedFrame, h264, nal};
use reallive_encode::motion::{KeyframeDecoder, MAX_QUEUED_KEYFRAMES, start_gray_decoder};

const WAIT: Duration = Duration::from_secs(10);

/// The keyframes of `n` frames of x264 High profile with two B-frames
/// between references (a camera's main stream that reorders), 640x360.
fn reordering_keyframes(n: u32) -> Vec<EncodedFrame> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={n} pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc bframes=2 b-adapt=false key-int-max=15 ! video/x-h264,profile=high \
         ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au \
         ! appsink name=out sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buf = sample.buffer().unwrap();
        if buf.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            continue;
        }
        let data = Bytes::copy_from_slice(&buf.map_readable().unwrap());
        let params = reallive_core::CodecParameters::from_annex_b(Codec::H264, &data).unwrap();
        let pts = buf.pts().unwrap().nseconds() as i64 * 9 / 100_000;
        out.push(EncodedFrame {
            data,
            pts_90k: pts,
            dts_90k: pts,
            duration_90k: Some(3000),
            keyframe: true,
            params: std::sync::Arc::new(params),
        });
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

fn keyframes(n: u32, width: u32, height: u32, pts_offset: i64) -> Vec<EncodedFrame> {
    common::encoded(n, width, height)
        .into_iter()
        .filter(|f| f.keyframe)
        .map(|mut f| {
            f.pts_90k += pts_offset;
            f.dts_90k = f.pts_90k;
            f
        })
        .collect()
}

/// The picture is a picture: the test pattern has structure.
fn assert_not_blank(p: &GrayPicture) {
    let distinct = p
        .data
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(distinct > 8, "{distinct} gray levels");
    assert!(p.data.len() >= (p.stride * (p.height - 1) + p.width) as usize);
}

#[test]
fn two_cameras_of_different_sizes_pushed_alternately_get_their_own_pictures() {
    // A keyframe every 15 frames: 6 each, half a second apart.
    let wide = keyframes(90, 640, 360, 0);
    // The other camera's clock is elsewhere, so a mix-up shows.
    let square = keyframes(90, 320, 240, 10_000_000);
    assert_eq!((wide.len(), square.len()), (6, 6));
    let decoder = KeyframeDecoder::start(320).unwrap();
    let a = decoder.handle(5).unwrap();
    let b = decoder.handle(5).unwrap();
    for (fa, fb) in wide.iter().zip(&square) {
        // Both queued before either is decoded: the decoder changes size
        // between every two keyframes.
        a.push(fa);
        b.push(fb);
        let pa = a.pull(WAIT).expect("camera a's picture");
        let pb = b.pull(WAIT).expect("camera b's picture");
        assert_eq!((pa.width, pa.height), (320, 180), "camera a");
        assert_eq!((pb.width, pb.height), (320, 240), "camera b");
        assert_eq!(pa.pts_ms, fa.pts_90k / 90, "camera a's pts");
        assert_eq!(pb.pts_ms, fb.pts_90k / 90, "camera b's pts");
        assert_not_blank(&pa);
        assert_not_blank(&pb);
    }
    // Nothing extra for either.
    assert!(a.pull(Duration::from_millis(300)).is_none());
    assert!(b.pull(Duration::from_millis(300)).is_none());
    let stats = decoder.stats();
    assert_eq!((stats.decoded, stats.dropped, stats.failed), (12, 0, 0));
}

#[test]
fn a_full_queue_drops_the_oldest_rather_than_blocking() {
    let key = keyframes(1, 1920, 1080, 0).remove(0);
    let decoder = KeyframeDecoder::start(320).unwrap();
    let cameras = 3 * MAX_QUEUED_KEYFRAMES;
    let handles: Vec<_> = (0..cameras).map(|_| decoder.handle(5).unwrap()).collect();
    // Every camera's 1080p keyframe at once: far more than one decoder
    // takes in the time it takes to push them.
    let began = Instant::now();
    for h in &handles {
        h.push(&key);
    }
    let pushing = began.elapsed();
    assert!(
        pushing < Duration::from_millis(50),
        "pushing took {pushing:?}"
    );
    // Wait until every keyframe is decoded or dropped.
    let deadline = Instant::now() + WAIT;
    let stats = loop {
        let s = decoder.stats();
        if s.decoded + s.dropped + s.failed == cameras as u64 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let got: Vec<bool> = handles
        .iter()
        .map(|h| match h.pull(Duration::ZERO) {
            Some(p) => {
                assert_eq!((p.width, p.height, p.pts_ms), (320, 180, 0));
                true
            }
            None => false,
        })
        .collect();
    let pictures = got.iter().filter(|g| **g).count() as u64;
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.decoded, pictures);
    assert_eq!(stats.dropped + stats.decoded, cameras as u64);
    // The queue's worth, and the one being decoded when it filled.
    assert!(
        (1..=MAX_QUEUED_KEYFRAMES as u64 + 1).contains(&pictures),
        "{pictures} pictures"
    );
    // The oldest went: the last cameras to push got their pictures.
    assert!(got[cameras - 1], "{got:?}");
}

#[test]
fn a_camera_behind_keeps_only_its_newest_keyframe() {
    let keys = keyframes(150, 640, 360, 0);
    assert_eq!(keys.len(), 10);
    let decoder = KeyframeDecoder::start(320).unwrap();
    let h = decoder.handle(5).unwrap();
    for k in &keys {
        h.push(k);
    }
    let mut got = Vec::new();
    while let Some(p) = h.pull(Duration::from_secs(2)) {
        got.push(p.pts_ms);
    }
    // The one being decoded, then the last one pushed; at most two
    // pictures wait, so a slow reader also sees the newest last.
    assert!(!got.is_empty() && got.len() <= 2, "{got:?}");
    assert_eq!(got.last(), Some(&(keys[9].pts_90k / 90)), "{got:?}");
}

#[test]
fn keyframes_come_no_faster_than_the_rate_and_other_frames_are_ignored() {
    // 30 fps, a keyframe every 15 frames: two a second, at 1 fps.
    let frames = common::encoded(60, 320, 180);
    let decoder = KeyframeDecoder::start(320).unwrap();
    let h = decoder.handle(1).unwrap();
    for f in &frames {
        h.push(f);
        // Pushed in real time, so none is dropped for being behind.
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = Vec::new();
    while let Some(p) = h.pull(Duration::from_secs(2)) {
        got.push(p.pts_ms);
    }
    assert_eq!(got, vec![0, 1000], "pictures at");
}

#[test]
fn a_keyframe_without_parameter_sets_in_band_decodes_with_its_params() {
    let mut key = keyframes(1, 640, 360, 0).remove(0);
    let mut bare = BytesMut::new();
    for unit in nal::split_annex_b(&key.data) {
        let ty = nal::nal_type(Codec::H264, &unit);
        if ty != Some(h264::NAL_SPS) && ty != Some(h264::NAL_PPS) {
            bare.extend_from_slice(&[0, 0, 0, 1]);
            bare.extend_from_slice(&unit);
        }
    }
    key.data = Bytes::from(bare);
    assert!(key.params.is_complete());
    let decoder = KeyframeDecoder::start(320).unwrap();
    let h = decoder.handle(5).unwrap();
    h.push(&key);
    let p = h.pull(WAIT).expect("a picture");
    assert_eq!((p.width, p.height), (320, 180));
    assert_not_blank(&p);
}

#[test]
fn the_factory_shares_one_keyframe_decoder_and_gives_streams_their_own() {
    let start = start_gray_decoder();
    let a = start(320, 5, DecodeKind::Keyframes).unwrap();
    let b = start(320, 5, DecodeKind::Keyframes).unwrap();
    let s = start(320, 5, DecodeKind::Stream).unwrap();
    assert!(format!("{a:?}").contains("KeyframeHandle"));
    assert!(format!("{s:?}").contains("GrayDecoder"));
    // Two cameras' keyframes, one decoder: both pictures come back.
    let key = keyframes(1, 640, 360, 0).remove(0);
    a.push(&key);
    b.push(&key);
    assert!(a.pull(WAIT).is_some());
    assert!(b.pull(WAIT).is_some());
    assert!(start(320, 0, DecodeKind::Keyframes).is_err());
    assert!(start(8, 5, DecodeKind::Keyframes).is_err());
}

#[test]
fn garbage_from_one_camera_does_not_stop_the_others() {
    let good = keyframes(1, 640, 360, 0).remove(0);
    let mut garbage = good.clone();
    // A keyframe's header and parameter sets, then noise.
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut data = BytesMut::from(&good.data[..64]);
    data.extend_from_slice(&noise);
    garbage.data = data.freeze();
    let decoder = KeyframeDecoder::start(320).unwrap();
    let bad = decoder.handle(5).unwrap();
    let fine = decoder.handle(5).unwrap();
    for round in 0..3i64 {
        let mut g = garbage.clone();
        g.pts_90k = round * 90_000;
        bad.push(&g);
        let mut f = good.clone();
        f.pts_90k = round * 90_000;
        fine.push(&f);
        let p = fine.pull(WAIT).expect("the good camera's picture");
        assert_eq!((p.width, p.height, p.pts_ms), (320, 180, round * 1000));
    }
    // The bad camera's last keyframe may still be in the decoder when the
    // good one's picture comes out: every one of the six is accounted for
    // within the same wait.
    let deadline = std::time::Instant::now() + WAIT;
    let mut stats = decoder.stats();
    while stats.decoded + stats.failed < 6 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        stats = decoder.stats();
    }
    assert_eq!(stats.decoded + stats.failed, 6, "{stats:?}");
}

#[test]
fn a_stream_that_reorders_gives_each_keyframe_its_picture_at_once() {
    let keys = reordering_keyframes(60);
    assert!(keys.len() >= 3, "{} keyframes", keys.len());
    let info = keys[0].params.stream_info().unwrap();
    assert!(
        info.may_reorder,
        "the clip must announce B-frames: {info:?}"
    );
    let decoder = KeyframeDecoder::start(320).unwrap();
    let h = decoder.handle(1).unwrap();
    for (i, k) in keys.iter().enumerate() {
        let mut k = k.clone();
        k.pts_90k = i as i64 * 90_000;
        h.push(&k);
        // Not one keyframe late: the decoder drains after each.
        let p = h.pull(WAIT).expect("its picture");
        assert_eq!((p.width, p.height, p.pts_ms), (320, 180, i as i64 * 1000));
    }
}
