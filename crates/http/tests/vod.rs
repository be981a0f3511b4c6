//! A VOD playlist over two files and a gap, served over loopback HTTP and
//! played by ffmpeg, as a browser or VLC would fetch it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use reallive_core::Codec;
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{Store, StoreConfig, TimeRange};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;

#[derive(Clone)]
struct App {
    store: Store,
    range: TimeRange,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_a_vod_range_across_files_and_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 30_000,
            file_90k: 2 * 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir.path())
    };
    let (store, _) = Store::open(cfg).await.unwrap();
    let clip =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store/testdata/ball-160x120-30f.h264");
    let clip = reallive_test_support::clip::annex_b_frames(&clip, Codec::H264, 0, 3000);
    // 5 s of video, a 10 s outage, then 3 s more: four files and a gap.
    let mut session = store.session("front").unwrap();
    // (frame numbers, seconds added to media and wall time)
    for (frames, offset_s) in [(0..150usize, 0i64), (150..240, 10)] {
        for n in frames {
            let mut f = clip[n % 30].clone();
            let t = n as i64 * 3000 + offset_s * 90_000;
            f.pts_90k = t;
            f.dts_90k = t;
            session.write_at(f, T0 + t * SEC / 90_000).await.unwrap();
        }
    }
    session.finish().await.unwrap();
    let recs = store.recordings("front", TimeRange::all()).await.unwrap();
    assert!(recs.len() >= 4, "{} files", recs.len());

    // 1 s .. 17 s: the end of the first stretch, the gap, the second stretch.
    let range = TimeRange::new(T0 + SEC, T0 + 17 * SEC).unwrap();
    let app = Router::new()
        .route(
            "/vod.m3u8",
            get(|State(a): State<App>| async move {
                a.store
                    .vod_playlist("front", a.range, "/recordings/")
                    .await
                    .unwrap()
            }),
        )
        .route(
            "/recordings/{*path}",
            get(
                |State(a): State<App>,
                 Path(p): Path<String>,
                 Query(q): Query<std::collections::HashMap<String, u64>>,
                 h: HeaderMap| async move {
                    reallive_http::files::serve_recording(
                        a.store.root(),
                        &p,
                        q.get("t").copied(),
                        &h,
                    )
                    .await
                },
            ),
        )
        .with_state(App {
            store: store.clone(),
            range,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = format!("http://{addr}/vod.m3u8");
    if std::env::var("VOD_DEBUG").is_ok() {
        eprintln!(
            "{}",
            store
                .vod_playlist("front", range, "/recordings/")
                .await
                .unwrap()
        );
        let o = tokio::process::Command::new("ffmpeg")
            .args(["-v", "info", "-i", &url, "-map", "0:v:0", "-f", "null", "-"])
            .output()
            .await
            .unwrap();
        eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    }
    let out = tokio::process::Command::new("ffmpeg")
        .args([
            "-v", "error", "-i", &url, "-map", "0:v:0", "-f", "null", "-",
        ])
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            &url,
        ])
        .output()
        .await
        .unwrap();
    // HLS shows the stream twice (program and streams): take the first count.
    let stdout = String::from_utf8_lossy(&probe.stdout);
    let frames: i64 = stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(-1);
    // In range: 1..5 s of the first stretch (120 frames) and 15..17 s of the
    // second (60 frames); whole GOPs of 10 at the edges.
    let expected = 120 + 60;
    assert!(
        (frames - expected).abs() <= 10,
        "ffprobe counted {frames}, expected {expected} ± one GOP"
    );
}
