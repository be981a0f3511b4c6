#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The probe against real RTSP servers (gst-rtsp-server's fake cameras)
//! and against sockets that misbehave: each failure a user can fix gets
//! its own error, within the time allowed, and never shows the password.

use std::time::{Duration, Instant};

use reallive_core::{Codec, RtspUrl};
use reallive_rtsp::{ProbeError, ProbeTransport, probe};
use reallive_test_support::{RtspCameraConfig, RtspCameraServer, RtspCodec, require_elements};

const TIMEOUT: Duration = Duration::from_secs(10);

fn url(s: &str) -> RtspUrl {
    RtspUrl::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_tells_its_codec_size_rate_audio_and_first_picture() {
    require_elements(&["x264enc", "rtph264pay"]);
    for transport in [ProbeTransport::Tcp, ProbeTransport::Udp] {
        // A camera each: gst-rtsp-server answers 503 to a DESCRIBE that
        // comes while the last client's shared media is still being torn
        // down, a race of the fake camera, not of the probe (CI saw it).
        let camera = RtspCameraServer::start(RtspCameraConfig {
            audio: true,
            fps: 15,
            keyframe_interval: 15,
            ..RtspCameraConfig::default()
        });
        let started = Instant::now();
        let p = probe(&url(&camera.url()), transport, TIMEOUT)
            .await
            .unwrap();
        assert_eq!(p.codec, Codec::H264, "{transport:?}");
        assert_eq!((p.width, p.height), (640, 360), "{transport:?}");
        let fps = p.fps.expect("a frame rate");
        assert!((fps - 15.0).abs() < 1.5, "{transport:?}: {fps} fps");
        assert_eq!(p.audio.len(), 1, "{transport:?}: {:?}", p.audio);
        assert!(p.audio[0].sample_rate.is_some());
        // The keyframe is an IDR with its decoder configuration.
        assert_eq!(p.keyframe.codec_config[0], 1, "avcC version");
        let nal_types: Vec<u8> = nals(&p.keyframe.access_unit).map(|n| n[0] & 0x1f).collect();
        assert!(nal_types.contains(&5), "an IDR slice: {nal_types:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h265_camera_is_told_apart() {
    require_elements(&["x265enc", "rtph265pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        codec: RtspCodec::H265,
        ..RtspCameraConfig::default()
    });
    let p = probe(&url(&camera.url()), ProbeTransport::Tcp, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(p.codec, Codec::H265);
    assert_eq!((p.width, p.height), (640, 360));
    assert!(p.audio.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_a_wrong_path_and_a_closed_port_each_say_so() {
    require_elements(&["x264enc", "rtph264pay"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        credentials: Some(("admin".into(), "right-horse".into())),
        ..RtspCameraConfig::default()
    });
    let good = camera.url_with_credentials();
    let p = probe(&url(&good), ProbeTransport::Tcp, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(p.codec, Codec::H264);

    let wrong = good.replace("right-horse", "wrong-battery");
    let e = probe(&url(&wrong), ProbeTransport::Tcp, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(e, ProbeError::Auth);
    let none = probe(&url(&camera.url()), ProbeTransport::Tcp, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(none, ProbeError::Auth, "no credentials at all");

    let path = format!(
        "rtsp://admin:right-horse@127.0.0.1:{}/nothing-here",
        camera.port()
    );
    let e = probe(&url(&path), ProbeTransport::Tcp, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(e, ProbeError::NotFound, "{e}");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = probe(
        &url(&format!("rtsp://admin:s3cret-pw@127.0.0.1:{closed}/x")),
        ProbeTransport::Tcp,
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "unreachable", "{e}");
    assert!(!e.to_string().contains("s3cret-pw"), "{e}");

    let e = probe(
        &url("rtsp://no-such-camera.invalid/x"),
        ProbeTransport::Tcp,
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "unreachable", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_never_answers_times_out_on_time() {
    // Accepts, reads, and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let tx = closed_tx.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = [0u8; 1024];
                // Until the client hangs up.
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = tx.send(()).await;
            });
        }
    });
    let started = Instant::now();
    let limit = Duration::from_secs(2);
    let e = probe(
        &url(&format!("rtsp://127.0.0.1:{port}/x")),
        ProbeTransport::Tcp,
        limit,
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.code(), "timeout", "{e}");
    assert!(
        took >= limit && took < limit + Duration::from_secs(1),
        "{took:?}"
    );
    // Nothing is left connected: the reachability check and the RTSP
    // connection both hung up.
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(2), closed_rx.recv())
            .await
            .expect("the probe left a connection open")
            .unwrap();
    }
}

#[tokio::test]
async fn urls_it_cannot_use_are_refused_at_once() {
    let e = probe(&url("rtsps://127.0.0.1/x"), ProbeTransport::Tcp, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "bad_url");
}

/// NAL units of a 4-byte length-prefixed access unit.
fn nals(mut au: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if au.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([au[0], au[1], au[2], au[3]]) as usize;
        let nal = au.get(4..4 + n)?;
        au = &au[4 + n..];
        Some(nal)
    })
}
