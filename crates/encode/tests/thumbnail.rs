//! Keyframe thumbnails from real x264/x265 output, stored the way MP4 stores
//! it (length-prefixed samples, avcC/hvcC), checked by decoding the JPEG.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::Codec;
use reallive_encode::EncodeError;
use reallive_encode::thumbnail::jpeg_from_keyframe;

/// A recording's first samples: the decoder configuration (avcC/hvcC
/// body) and each access unit with 4-byte NAL lengths, keyframe flag.
struct Recorded {
    config: Vec<u8>,
    samples: Vec<(Vec<u8>, bool)>,
}

/// `n` frames of the SMPTE bars at `width`x`height`, encoded as the store
/// records them.
fn record(codec: Codec, n: u32, width: u32, height: u32) -> Recorded {
    record_pattern(codec, n, width, height, "smpte")
}

/// [`record`] of a `videotestsrc` pattern.
fn record_pattern(codec: Codec, n: u32, width: u32, height: u32, pattern: &str) -> Recorded {
    gst::init().unwrap();
    let encode = match codec {
        Codec::H264 => {
            // A low fixed quantizer: noise gives the largest keyframes.
            "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 pass=quant quantizer=12 ! h264parse \
             ! video/x-h264,stream-format=avc,alignment=au"
        }
        _ => {
            "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! h265parse \
             ! video/x-h265,stream-format=hvc1,alignment=au"
        }
    };
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={n} pattern={pattern} \
         ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 \
         ! {encode} ! appsink name=out sync=false"
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
    let mut config = Vec::new();
    let mut samples = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let caps = sample.caps().unwrap().structure(0).unwrap();
        config = caps
            .get::<gst::Buffer>("codec_data")
            .unwrap()
            .map_readable()
            .unwrap()
            .to_vec();
        let buf = sample.buffer().unwrap();
        samples.push((
            buf.map_readable().unwrap().to_vec(),
            !buf.flags().contains(gst::BufferFlags::DELTA_UNIT),
        ));
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(samples.len(), n as usize);
    assert!(samples[0].1, "the first sample is a keyframe");
    Recorded { config, samples }
}

/// The frame marker (`0xC0` baseline), width and height from a JPEG's SOF
/// segment.
fn sof(jpeg: &[u8]) -> (u8, u16, u16) {
    let mut i = 2;
    while i + 9 < jpeg.len() {
        assert_eq!(jpeg[i], 0xff, "marker at {i}");
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
            let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
            return (marker, w, h);
        }
        i += 2 + len;
    }
    panic!("no SOF marker");
}

/// Decodes `jpeg` with GStreamer's `jpegdec`: the picture's size and how
/// many distinct luma levels it has.
fn decode_jpeg(jpeg: &[u8]) -> (i32, i32, usize) {
    let pipeline = gst::parse::launch(
        "appsrc name=in caps=image/jpeg ! jpegdec ! videoconvert \
         ! video/x-raw,format=GRAY8 ! appsink name=out sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("in")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(gst::Buffer::from_slice(jpeg.to_vec()))
        .unwrap();
    src.end_of_stream().unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(5))
        .expect("jpegdec decoded the thumbnail");
    let s = sample.caps().unwrap().structure(0).unwrap();
    let (w, h) = (
        s.get::<i32>("width").unwrap(),
        s.get::<i32>("height").unwrap(),
    );
    let levels = sample
        .buffer()
        .unwrap()
        .map_readable()
        .unwrap()
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    pipeline.set_state(gst::State::Null).unwrap();
    (w, h, levels)
}

/// An H.264 sample without its in-band SPS and PPS, so that only the
/// decoder configuration's count.
fn without_parameter_sets(au: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = au;
    while rest.len() > 4 {
        let len = usize::try_from(u32::from_be_bytes(rest[..4].try_into().unwrap())).unwrap();
        let (unit, tail) = rest.split_at(4 + len);
        if !matches!(unit[4] & 0x1f, 7 | 8) {
            out.extend_from_slice(unit);
        }
        rest = tail;
    }
    out
}

fn assert_thumbnail(jpeg: &[u8], width: u16, height: u16) {
    assert_eq!(&jpeg[..2], &[0xff, 0xd8], "starts with SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "ends with EOI");
    assert_eq!(
        sof(jpeg),
        (0xc0, width, height),
        "baseline, {width}x{height}"
    );
    let (w, h, levels) = decode_jpeg(jpeg);
    assert_eq!((w, h), (i32::from(width), i32::from(height)));
    // The SMPTE bars, not a blank or green picture.
    assert!(levels > 8, "{levels} grey levels");
}

#[test]
fn h264_1080p_keyframe_gives_a_320x180_thumbnail() {
    let rec = record(Codec::H264, 1, 1920, 1080);
    let jpeg = jpeg_from_keyframe(Codec::H264, &rec.config, &rec.samples[0].0, 320).unwrap();
    assert_thumbnail(&jpeg, 320, 180);
    assert!(jpeg.len() < 64 << 10, "{} bytes", jpeg.len());
}

#[test]
fn h265_1080p_keyframe_gives_a_320x180_thumbnail() {
    let rec = record(Codec::H265, 1, 1920, 1080);
    // Through the factory the NVR's thumbnail worker uses.
    let mut maker = reallive_encode::thumbnail::start_thumbnailer()().unwrap();
    let jpeg = maker
        .jpeg(Codec::H265, &rec.config, &rec.samples[0].0, 320)
        .unwrap();
    assert_thumbnail(&jpeg, 320, 180);
}

#[test]
fn thumbnail_keeps_the_aspect_with_even_sides_and_never_upscales() {
    let rec = record(Codec::H264, 1, 720, 480);
    let jpeg = jpeg_from_keyframe(Codec::H264, &rec.config, &rec.samples[0].0, 320).unwrap();
    // 320 x 213.3: the nearest even height.
    assert_thumbnail(&jpeg, 320, 214);
    let rec = record(Codec::H264, 1, 160, 120);
    let jpeg = jpeg_from_keyframe(Codec::H264, &rec.config, &rec.samples[0].0, 320).unwrap();
    assert_thumbnail(&jpeg, 160, 120);
}

#[test]
fn thumbnail_of_a_delta_frame_is_refused() {
    let rec = record(Codec::H264, 2, 320, 240);
    assert!(!rec.samples[1].1);
    let e = jpeg_from_keyframe(Codec::H264, &rec.config, &rec.samples[1].0, 320).unwrap_err();
    assert!(matches!(e, EncodeError::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("not a keyframe"), "{e}");
}

#[test]
fn thumbnail_of_garbage_is_an_error_in_bounded_time() {
    let h264 = record(Codec::H264, 1, 320, 240);
    let h265 = record(Codec::H265, 1, 320, 240);
    let key = &h264.samples[0].0;
    // A well-formed IDR NAL unit full of noise.
    let mut noise = vec![0, 0, 4, 4, 0x65];
    let mut x = 0x2545_f491_u32;
    noise.extend((0..1027).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    // avcC whose SPS is noise after its NAL header (the structure is whole).
    let mut bad_sps = h264.config.clone();
    let sps_len = usize::from(u16::from_be_bytes([bad_sps[6], bad_sps[7]]));
    for b in &mut bad_sps[9..8 + sps_len] {
        *b = !*b;
    }
    let cases: Vec<(&str, Codec, Vec<u8>, Vec<u8>)> = vec![
        ("noise IDR", Codec::H264, h264.config.clone(), noise.clone()),
        ("noise IRAP", Codec::H265, h265.config.clone(), {
            let mut n = noise.clone();
            n[4] = 19 << 1;
            n[5] = 1;
            n
        }),
        (
            "noisy SPS",
            Codec::H264,
            bad_sps,
            without_parameter_sets(key),
        ),
        (
            "truncated avcC",
            Codec::H264,
            h264.config[..h264.config.len() / 2].to_vec(),
            key.clone(),
        ),
        (
            "truncated hvcC",
            Codec::H265,
            h265.config[..h265.config.len() - 3].to_vec(),
            h265.samples[0].0.clone(),
        ),
        ("empty config", Codec::H264, Vec::new(), key.clone()),
        (
            "truncated keyframe",
            Codec::H264,
            h264.config.clone(),
            key[..key.len() / 2].to_vec(),
        ),
        (
            "H.264 given as H.265",
            Codec::H265,
            h265.config.clone(),
            key.clone(),
        ),
        (
            "hvcC given as avcC",
            Codec::H264,
            h265.config.clone(),
            key.clone(),
        ),
    ];
    // A keyframe cut short, its length prefix fixed: the decoder may
    // conceal the rest, so either outcome is fine, but quickly.
    let mut cut = key[..key.len() * 2 / 3].to_vec();
    let mut at = 0;
    while at + 4 + usize::try_from(u32::from_be_bytes(cut[at..at + 4].try_into().unwrap())).unwrap()
        <= cut.len()
    {
        at += 4 + usize::try_from(u32::from_be_bytes(cut[at..at + 4].try_into().unwrap())).unwrap();
    }
    let len = u32::try_from(cut.len() - at - 4).unwrap();
    cut[at..at + 4].copy_from_slice(&len.to_be_bytes());
    let started = Instant::now();
    let result = jpeg_from_keyframe(Codec::H264, &h264.config, &cut, 320);
    eprintln!(
        "keyframe cut short: {:?} in {:?}",
        result.map(|j| j.len()),
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    for (what, codec, config, au) in cases {
        let started = Instant::now();
        let result = jpeg_from_keyframe(codec, &config, &au, 320).map(|j| j.len());
        let took = started.elapsed();
        eprintln!("{what}: {result:?} in {took:?}");
        assert!(result.is_err(), "{what} made a picture");
        assert!(took < Duration::from_secs(3), "{what} took {took:?}");
    }
}

/// One maker, as the NVR's worker keeps it: cameras of other codecs, sizes
/// and configurations in turn, a corrupt keyframe between them, and
/// another width; every picture is its own keyframe's, at its own size.
#[test]
fn a_warm_maker_serves_cameras_in_turn_and_survives_garbage() {
    let wide = record(Codec::H264, 1, 1920, 1080);
    let narrow = record_pattern(Codec::H264, 1, 720, 480, "ball");
    let h265 = record(Codec::H265, 1, 1280, 720);
    let mut maker = reallive_encode::thumbnail::ThumbnailMaker::new().unwrap();
    for round in 0..3 {
        let jpeg = maker
            .make(Codec::H264, &wide.config, &wide.samples[0].0, 320)
            .unwrap();
        assert_thumbnail(&jpeg, 320, 180);
        let jpeg = maker
            .make(Codec::H264, &narrow.config, &narrow.samples[0].0, 320)
            .unwrap();
        assert_eq!(sof(&jpeg), (0xc0, 320, 214), "round {round}");
        let jpeg = maker
            .make(Codec::H265, &h265.config, &h265.samples[0].0, 320)
            .unwrap();
        assert_thumbnail(&jpeg, 320, 180);
        // A keyframe whose slices are noise: refused or concealed, but
        // the next camera's picture is still right.
        let mut noise = wide.samples[0].0.clone();
        let len = noise.len();
        for (i, b) in noise[len / 2..].iter_mut().enumerate() {
            *b ^= (i * 151 % 251) as u8;
        }
        let _ = maker.make(Codec::H264, &wide.config, &noise, 320);
    }
    // Another width: a new pipeline, the same picture.
    let jpeg = maker
        .make(Codec::H264, &wide.config, &wide.samples[0].0, 160)
        .unwrap();
    assert_thumbnail(&jpeg, 160, 90);
}

#[test]
fn thumbnail_of_1080p_is_fast_cold_and_warm() {
    for codec in [Codec::H264, Codec::H265] {
        let rec = record(codec, 1, 1920, 1080);
        let key = &rec.samples[0].0;
        let started = Instant::now();
        jpeg_from_keyframe(codec, &rec.config, key, 320).unwrap();
        let cold = started.elapsed();
        let mut maker = reallive_encode::thumbnail::ThumbnailMaker::new().unwrap();
        maker.make(codec, &rec.config, key, 320).unwrap();
        let mut warm: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                maker.make(codec, &rec.config, key, 320).unwrap();
                started.elapsed()
            })
            .collect();
        warm.sort();
        eprintln!(
            "{codec} 1080p keyframe ({} KiB) -> 320x180 JPEG: first call {cold:?}, \
             then min {:?} median {:?} max {:?}",
            key.len() >> 10,
            warm[0],
            warm[2],
            warm[4]
        );
        // The budget is 150 ms; generous here because the test box is shared.
        assert!(warm[2] < Duration::from_millis(600), "{warm:?}");
    }
    // Noise: the largest keyframe a 1080p encoder makes.
    let rec = record_pattern(Codec::H264, 1, 1920, 1080, "snow");
    let started = Instant::now();
    let jpeg = jpeg_from_keyframe(Codec::H264, &rec.config, &rec.samples[0].0, 320).unwrap();
    let took = started.elapsed();
    eprintln!(
        "h264 1080p noise keyframe ({} KiB) -> {} KiB JPEG in {took:?}",
        rec.samples[0].0.len() >> 10,
        jpeg.len() >> 10
    );
    assert_eq!(sof(&jpeg), (0xc0, 320, 180));
    assert!(took < Duration::from_secs(1), "{took:?}");
}
