#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The retina ingest against a real RTSP server (gst-rtsp-server's fake
//! camera): frames start at a keyframe carrying its parameter sets, and
//! are spaced by the camera's RTP clock, exactly.

use std::time::Duration;

use reallive_core::source::FrameSource;
use reallive_core::{Codec, RtspUrl, frame_channel};
use reallive_rtsp::{IngestOptions, RtspSource, Transport};
use reallive_test_support::{RtspCameraConfig, RtspCameraServer, require_elements};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_carry_the_cameras_own_spacing_over_tcp_and_udp() {
    require_elements(&["x264enc", "rtph264pay"]);
    for transport in [Transport::Tcp, Transport::Udp] {
        let camera = RtspCameraServer::start(RtspCameraConfig {
            fps: 30,
            keyframe_interval: 30,
            ..RtspCameraConfig::default()
        });
        let source = RtspSource::new(
            RtspUrl::parse(&camera.url()).unwrap(),
            IngestOptions {
                transport,
                ..IngestOptions::default()
            },
        );
        let (tx, mut rx) = frame_channel(256);
        let run = source.start_frames(tx).unwrap();
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while frames.len() < 75 {
            let f = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{transport:?}: {} frames in 15 s", frames.len()))
                .expect("the session ended early");
            frames.push(f);
        }
        run.stop().await;
        let first = &frames[0];
        assert!(
            first.keyframe,
            "{transport:?}: the first frame is a keyframe"
        );
        assert_eq!(first.codec(), Codec::H264);
        let info = first.params.stream_info().unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        // Annex-B, with the SPS in front of the IDR.
        assert!(first.data.starts_with(&[0, 0, 0, 1]) || first.data.starts_with(&[0, 0, 1]));
        for w in frames.windows(2) {
            let step = w[1].pts_90k - w[0].pts_90k;
            assert_eq!(
                step, 3000,
                "{transport:?}: every step is the camera's 1/30 s"
            );
        }
        let keyframes = frames.iter().filter(|f| f.keyframe).count();
        assert!((2..=4).contains(&keyframes), "{transport:?}: {keyframes}");
        assert_eq!(source.stats().holes(), 0, "{transport:?}");
        assert_eq!(source.stats().sessions(), 1, "{transport:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_ends_the_run_with_a_clear_error() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let source = RtspSource::new(
        RtspUrl::parse(&format!("rtsp://admin:s3cret-pw@127.0.0.1:{port}/x")).unwrap(),
        IngestOptions::default(),
    );
    let (tx, _rx) = frame_channel(4);
    let mut run = source.start_frames(tx).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), run.wait())
        .await
        .expect("fails at once")
        .unwrap_err()
        .to_string();
    assert!(e.contains("connection refused"), "{e}");
    assert!(!e.contains("s3cret-pw"), "{e}");
    // Asked again, it answers the same.
    assert_eq!(run.wait().await.unwrap_err().to_string(), e);
}
