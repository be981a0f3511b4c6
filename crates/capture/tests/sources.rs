//! File, RTSP, V4L2 and libcamera sources, against real files, a real RTSP
//! server and the real (absent) devices of a CI machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{assert_well_formed, collect, expect_failure};
use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_capture::{
    CaptureError, CaptureOptions, FileSource, LibcameraCamera, RtspBackend, RtspTransport,
    V4l2Camera, V4l2Format, open,
};
use reallive_core::{Codec, ErrorKind};
use reallive_encode::EncoderKind;
use reallive_test_support::{
    RtspCameraConfig, RtspCameraServer, RtspCodec, ffprobe, free_port, require_elements,
};

/// Encodes `frames` of the test pattern at 30 fps into `path` with a
/// GStreamer pipeline (`tail` is the muxer/parser part).
fn make_clip(path: &Path, frames: u32, encoder: &str, tail: &str) {
    require_elements(&[
        "videotestsrc",
        "x264enc",
        "openh264enc",
        "mp4mux",
        "matroskamux",
    ]);
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! {encoder} ! h264parse ! {tail} ! filesink location={}",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("clip pipeline finishes");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    pipeline.set_state(gst::State::Null).unwrap();
}

const X264: &str = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15";

fn file_opts() -> CaptureOptions {
    CaptureOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp4_and_mkv_files_play_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mux) in [("clip.mp4", "mp4mux"), ("clip.mkv", "matroskamux")] {
        let path = dir.path().join(name);
        make_clip(&path, 30, X264, mux);
        let capture = FileSource::new(path, file_opts());
        let started = Instant::now();
        let (frames, mut running) = collect(&capture, 1000, Duration::from_secs(20)).await;
        let elapsed = started.elapsed();
        running.wait().await.unwrap();
        assert_eq!(frames.len(), 30, "{name}");
        assert_eq!(running.encoder(), "passthrough");
        assert_well_formed(&frames, Codec::H264);
        // 30 frames at 30 fps: about a second when paced, not milliseconds.
        assert!(
            elapsed >= Duration::from_millis(900),
            "{name}: not paced ({elapsed:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_h264_without_timing_uses_fps() {
    let dir = tempfile::tempdir().unwrap();
    // openh264 writes no VUI timing, so only --fps can time this stream.
    let path = dir.path().join("clip.h264");
    make_clip(
        &path,
        20,
        "openh264enc gop-size=10",
        "video/x-h264,stream-format=byte-stream",
    );
    let opts = CaptureOptions {
        fps: 25,
        ..file_opts()
    };
    let (frames, _running) =
        collect(&FileSource::new(path, opts), 1000, Duration::from_secs(20)).await;
    assert_eq!(frames.len(), 20);
    assert_well_formed(&frames, Codec::H264);
    for w in frames.windows(2) {
        assert_eq!(w[1].pts_90k - w[0].pts_90k, 3600, "25 fps steps");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looped_file_keeps_timestamps_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.mp4");
    make_clip(&path, 15, X264, "mp4mux");
    let opts = CaptureOptions {
        loop_file: true,
        ..file_opts()
    };
    let (frames, _running) =
        collect(&FileSource::new(path, opts), 40, Duration::from_secs(20)).await;
    assert_eq!(frames.len(), 40, "more frames than the file holds");
    assert_well_formed(&frames, Codec::H264);
    assert!(
        frames[15].keyframe && frames[30].keyframe,
        "each loop restarts on the keyframe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_with_b_frames_is_reencoded_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bframes.mp4");
    make_clip(&path, 30, "x264enc bframes=2 key-int-max=30", "mp4mux");
    assert!(
        ffprobe::probe(&path).has_b_frames > 0,
        "fixture has B-frames"
    );
    let opts = CaptureOptions {
        encoder: EncoderKind::X264,
        ..file_opts()
    };
    let (frames, running) =
        collect(&FileSource::new(path, opts), 1000, Duration::from_secs(20)).await;
    assert_eq!(running.encoder(), "x264");
    assert_eq!(frames.len(), 30);
    assert_well_formed(&frames, Codec::H264);
    assert!(!frames[0].params.stream_info().unwrap().may_reorder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_is_not_found() {
    let err = expect_failure(
        &FileSource::new("/nonexistent/clip.mp4".into(), file_opts()),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "file:/nonexistent/clip.mp4: no such file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_camera_over_tcp_and_udp() {
    require_elements(&["rtspsrc", "rtph264depay"]);
    let both = [RtspBackend::Retina, RtspBackend::Gstreamer];
    for (transport, backend) in [RtspTransport::Tcp, RtspTransport::Udp]
        .into_iter()
        .flat_map(|t| both.map(|b| (t, b)))
    {
        // A camera each: a session joining gst-rtsp-server's shared media
        // while the last one's is torn down can get nothing (the fake
        // camera's race, not the client's).
        let camera = RtspCameraServer::start(RtspCameraConfig {
            audio: true,
            ..RtspCameraConfig::default()
        });
        let opts = CaptureOptions {
            rtsp_transport: transport,
            rtsp_backend: backend,
            ..CaptureOptions::default()
        };
        let capture = open(&camera.url().parse().unwrap(), &opts).unwrap();
        let (frames, running) = collect(capture.as_ref(), 45, Duration::from_secs(20)).await;
        assert_eq!(frames.len(), 45, "{transport:?} {backend:?}");
        assert_eq!(running.encoder(), "passthrough");
        assert_well_formed(&frames, Codec::H264);
        let info = frames[0].params.stream_info().unwrap();
        assert_eq!((info.width, info.height), (640, 360));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_pictures_sent_as_several_slices_arrive_whole() {
    require_elements(&["rtspsrc", "rtph264depay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        slices: 2,
        ..RtspCameraConfig::default()
    });
    let capture = open(&camera.url().parse().unwrap(), &CaptureOptions::default()).unwrap();
    let (frames, running) = collect(capture.as_ref(), 75, Duration::from_secs(20)).await;
    assert_eq!(frames.len(), 75);
    assert_well_formed(&frames, Codec::H264);
    // Every picture has both its slices, keyframes included, and nothing
    // was dropped for want of a timestamp.
    for (i, f) in frames.iter().enumerate() {
        let slices = reallive_core::nal::split_annex_b(&f.data)
            .filter(|n| matches!(n.first().map(|b| b & 0x1f), Some(1 | 5)))
            .count();
        assert_eq!(slices, 2, "frame {i} (keyframe: {})", f.keyframe);
    }
    assert!(frames.iter().filter(|f| f.keyframe).count() >= 2);
    assert_eq!(
        running.stats().skipped(),
        0,
        "access units dropped without a timestamp"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_h265_camera_is_passed_through() {
    require_elements(&["rtspsrc", "rtph265depay", "h265parse"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        codec: RtspCodec::H265,
        width: 320,
        height: 240,
        ..RtspCameraConfig::default()
    });
    let capture = open(&camera.url().parse().unwrap(), &CaptureOptions::default()).unwrap();
    let (frames, _running) = collect(capture.as_ref(), 20, Duration::from_secs(20)).await;
    assert_well_formed(&frames, Codec::H265);
    let info = frames[0].params.stream_info().unwrap();
    assert_eq!((info.width, info.height), (320, 240));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_credentials_work_and_never_leak() {
    require_elements(&["rtspsrc"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        credentials: Some(("admin".into(), "hunter2-secret".into())),
        ..RtspCameraConfig::default()
    });
    for backend in [RtspBackend::Retina, RtspBackend::Gstreamer] {
        let opts = CaptureOptions {
            rtsp_backend: backend,
            ..CaptureOptions::default()
        };
        let good = open(&camera.url_with_credentials().parse().unwrap(), &opts).unwrap();
        assert!(!good.describe().contains("hunter2"), "{}", good.describe());
        let (frames, _running) = collect(good.as_ref(), 10, Duration::from_secs(20)).await;
        assert_eq!(frames.len(), 10, "{backend:?}");

        let bad_url = camera
            .url_with_credentials()
            .replace("hunter2-secret", "wrong-password-x");
        let bad = open(&bad_url.parse().unwrap(), &opts).unwrap();
        let err = expect_failure(bad.as_ref(), Duration::from_secs(20)).await;
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("wrong-password-x"),
            "{backend:?}: password leaked: {text}"
        );
        assert!(text.contains(":***@127.0.0.1"), "{backend:?}: {text}");
        assert_eq!(
            err.kind(),
            ErrorKind::PermissionDenied,
            "{backend:?}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_connection_refused_is_a_clear_error() {
    require_elements(&["rtspsrc"]);
    let url = format!("rtsp://user:pw-xyz@127.0.0.1:{}/stream", free_port());
    let capture = open(&url.parse().unwrap(), &CaptureOptions::default()).unwrap();
    let err = expect_failure(capture.as_ref(), Duration::from_secs(20)).await;
    let text = err.to_string();
    assert!(text.starts_with("rtsp://user:***@127.0.0.1:"), "{text}");
    assert!(!text.contains("pw-xyz"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4l2_missing_device_is_not_found() {
    require_elements(&["v4l2src"]);
    let capture = V4l2Camera::new("/dev/video99".into(), CaptureOptions::default());
    let err = expect_failure(&capture, Duration::from_secs(5)).await;
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with("v4l2:/dev/video99: no such device"),
        "{err}"
    );
}

#[test]
fn v4l2_picks_a_format_from_what_the_camera_offers() {
    require_elements(&["v4l2src", "jpegdec", "x264enc"]);
    let caps = |s: &str| s.parse::<gst::Caps>().unwrap();
    // A typical UVC webcam: YUY2 only up to 640x480@30, MJPEG up to 1080p.
    let webcam = caps(
        "video/x-raw, format=YUY2, width=640, height=480, framerate=30/1; \
         image/jpeg, width=1280, height=720, framerate=30/1",
    );
    // A camera with an on-board H.264 encoder.
    let h264_cam = caps(
        "video/x-h264, stream-format=byte-stream, width=1280, height=720, framerate=30/1; \
         video/x-raw, format=YUY2, width=1280, height=720, framerate=10/1",
    );
    let cam = |w, h, encoder| {
        V4l2Camera::new(
            "/dev/video0".into(),
            CaptureOptions {
                width: w,
                height: h,
                encoder,
                ..CaptureOptions::default()
            },
        )
    };
    let cases = [
        (&webcam, 640, 480, EncoderKind::Auto, Some(V4l2Format::Raw)),
        (
            &webcam,
            1280,
            720,
            EncoderKind::Auto,
            Some(V4l2Format::Mjpeg),
        ),
        (&webcam, 1280, 720, EncoderKind::Passthrough, None),
        (&webcam, 1920, 1080, EncoderKind::Auto, None),
        (
            &h264_cam,
            1280,
            720,
            EncoderKind::Auto,
            Some(V4l2Format::H264),
        ),
        (
            &h264_cam,
            1280,
            720,
            EncoderKind::Passthrough,
            Some(V4l2Format::H264),
        ),
        (&h264_cam, 1280, 720, EncoderKind::X264, None), // raw is only 10 fps
    ];
    for (caps, w, h, enc, want) in cases {
        let got = cam(w, h, enc).choose_format(caps);
        match want {
            Some(f) => assert_eq!(got.unwrap(), f, "{w}x{h} {enc}"),
            None => {
                let err = got.unwrap_err();
                assert!(matches!(err, CaptureError::Unsupported { .. }), "{err}");
                assert!(err.to_string().contains("it offers:"), "{err}");
            }
        }
    }
}

#[test]
fn v4l2_pipelines_build_for_every_format() {
    require_elements(&["v4l2src", "jpegdec", "x264enc", "h264parse"]);
    let cam = V4l2Camera::new(
        "/dev/video0".into(),
        CaptureOptions {
            encoder: EncoderKind::X264,
            ..CaptureOptions::default()
        },
    );
    let factories = |p: &gst::Pipeline| -> Vec<String> {
        p.iterate_recurse()
            .into_iter()
            .filter_map(|e| e.ok()?.factory().map(|f| f.name().to_string()))
            .collect()
    };
    let raw = factories(&cam.build(V4l2Format::Raw).unwrap());
    assert!(
        raw.contains(&"x264enc".into()) && !raw.contains(&"jpegdec".into()),
        "{raw:?}"
    );
    let mjpeg = factories(&cam.build(V4l2Format::Mjpeg).unwrap());
    assert!(
        mjpeg.contains(&"jpegdec".into()) && mjpeg.contains(&"x264enc".into()),
        "{mjpeg:?}"
    );
    let h264 = factories(&cam.build(V4l2Format::H264).unwrap());
    assert!(
        h264.contains(&"h264parse".into()) && !h264.contains(&"x264enc".into()),
        "{h264:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcamera_builds_and_reports_a_missing_camera() {
    require_elements(&["libcamerasrc", "x264enc"]);
    let cam = LibcameraCamera::new(
        Some("imx708".into()),
        CaptureOptions {
            encoder: EncoderKind::X264,
            ..CaptureOptions::default()
        },
    );
    let pipeline = cam.build().unwrap();
    let src = pipeline
        .iterate_recurse()
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.factory().is_some_and(|f| f.name() == "libcamerasrc"))
        .expect("libcamerasrc in the pipeline");
    assert_eq!(
        src.property::<Option<String>>("camera-name").as_deref(),
        Some("imx708")
    );
    drop(pipeline);
    // This machine has no CSI camera: the error names the source.
    let err = expect_failure(&cam, Duration::from_secs(10)).await;
    assert!(err.to_string().starts_with("libcamera:imx708: "), "{err}");
}
