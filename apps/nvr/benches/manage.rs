//! Camera-management figures (issue 18, `docs/benchmarks.md`): how long
//! "Test connection" takes, and how long a live snapshot takes.
//!
//! `cargo bench -p reallive-nvr --bench manage` (part of `make bench`).
//!
//! - **Probe:** a fake 1080p30 camera (gst-rtsp-server, x264, a keyframe
//!   every second) on loopback; `reallive_rtsp::probe` over TCP, 20 times:
//!   connect, `DESCRIBE`, `SETUP`, `PLAY`, wait for a keyframe, measure the
//!   rate over 16 frames. It waits for the camera's next keyframe, so half
//!   a GOP on average is the camera's, not the probe's. Target: p99 ≤ 10 s
//!   (the API's limit); a user should wait about 1 s on a LAN.
//! - **Snapshot:** 30 different 1080p keyframes (ffmpeg's testsrc2, x264
//!   baseline) through `Thumbnails::of_frame` at 1280 px, as
//!   `/api/cameras/{id}/snapshot.jpg` does: the decoder is warm, each
//!   frame is new (no sharing). Target: p99 ≤ 150 ms.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reallive_core::{Codec, RtspUrl};
use reallive_record::thumbnails::{ThumbnailConfig, Thumbnails};
use reallive_store::{Store, StoreConfig};
use reallive_test_support::bench::report_latencies;
use reallive_test_support::clip;
use reallive_test_support::{RtspCameraConfig, RtspCameraServer};
use tokio_util::sync::CancellationToken;

async fn probes() {
    let camera = RtspCameraServer::start(RtspCameraConfig {
        width: 1920,
        height: 1080,
        fps: 30,
        keyframe_interval: 30,
        bitrate_kbps: 4000,
        ..RtspCameraConfig::default()
    });
    let url = RtspUrl::parse(&camera.url()).unwrap();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let p = reallive_rtsp::probe(
            &url,
            reallive_rtsp::ProbeTransport::Tcp,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        times.push(t.elapsed());
        assert_eq!((p.width, p.height), (1920, 1080));
    }
    report_latencies("probe (1080p30, 1 s GOP, loopback)", times);
}

async fn snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let es = dir.path().join("1080p.h264");
    reallive_test_support::bench::output(
        tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=1920x1080:rate=30")
            .args(["-t", "32", "-c:v", "libx264", "-preset", "veryfast"])
            .args(["-profile:v", "baseline", "-g", "30", "-bf", "0", "-y"])
            .arg(&es),
    )
    .await;
    let keyframes: Vec<_> = clip::annex_b_frames(&es, Codec::H264, 0, 3000)
        .into_iter()
        .filter(|f| f.keyframe)
        .collect();
    assert!(keyframes.len() >= 31, "{} keyframes", keyframes.len());
    let (store, _) = Store::open(StoreConfig::new(dir.path().join("store")))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let thumbs = Thumbnails::start(
        store,
        reallive_encode::thumbnail::start_thumbnailer(),
        ThumbnailConfig::default(),
        stop.clone(),
    );
    // Warm the decoder once, as a running NVR has.
    thumbs.of_frame(1, &keyframes[0], 1280).await.unwrap();
    let mut times = Vec::new();
    for k in &keyframes[1..31] {
        let t = Instant::now();
        let j = thumbs.of_frame(1, k, 1280).await.unwrap();
        times.push(t.elapsed());
        assert!(j.starts_with(&[0xFF, 0xD8]) && j.len() > 10_000);
    }
    report_latencies("snapshot (1080p keyframe to a 1280 px JPEG)", times);
    stop.cancel();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        probes().await;
        snapshots().await;
    });
}
