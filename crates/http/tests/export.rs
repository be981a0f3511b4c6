//! `export.mp4` over loopback HTTP against a real store: streamed without
//! a file, resumable from a kept file, and refusing ranges that would
//! wrap around the cap (hostile: a playback user forcing a huge export).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reallive_http::recordings::LocalPlayback;
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{Store, StoreConfig};
use reallive_test_support::{ffprobe, http::request};
use tokio_util::sync::CancellationToken;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;
const T0_MS: i64 = T0 / 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_resume_and_refuse_wrapping_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 30_000,
            file_90k: 4 * 90_000,
            ..SegmenterConfig::default()
        },
        ..StoreConfig::new(dir.path().join("data"))
    };
    let (store, _) = Store::open(cfg).await.unwrap();
    // 10 s of camera 7.
    let mut session = store.session("camera-7").unwrap();
    for f in reallive_test_support::clip::ball_frames(300) {
        let at = T0 + f.pts_90k * SEC / 90_000;
        session.write_at(f, at).await.unwrap();
    }
    session.finish().await.unwrap();
    let exports = dir.path().join("exports");
    let playback = LocalPlayback::bind(
        "127.0.0.1:0".parse().unwrap(),
        store.clone(),
        &[7],
        None,
        exports.clone(),
    )
    .await
    .unwrap();
    let addr = playback.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = playback.spawn(stop.clone());
    let get = |path: String, headers: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(addr, "GET", &path, &h, b"").await.unwrap()
    };

    // Streamed: plays, 2 s to 8 s from the keyframe at or before 2 s.
    let path = format!(
        "/api/cameras/7/export.mp4?start={}&end={}",
        T0_MS + 2000,
        T0_MS + 8000
    );
    let whole = get(path.clone(), vec![]).await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert!(
        whole
            .header("content-disposition")
            .unwrap()
            .contains("attachment")
    );
    let file = dir.path().join("streamed.mp4");
    std::fs::write(&file, &whole.body).unwrap();
    let probe = ffprobe::probe(&file);
    assert!((180..=200).contains(&probe.frames), "{probe:?}");
    assert!(
        !exports.exists() || std::fs::read_dir(&exports).unwrap().next().is_none(),
        "a streamed export writes no file"
    );

    // Resumed: the same bytes, from a kept file.
    let tail = get(path.clone(), vec![("Range", "bytes=1000-".into())]).await;
    assert_eq!(tail.status, 206, "{}", tail.text());
    assert_eq!(tail.body, whole.body[1000..]);
    assert_eq!(std::fs::read_dir(&exports).unwrap().count(), 1);
    {
        use std::os::unix::fs::PermissionsExt as _;
        for d in [&exports, &dir.path().join("data/recordings")] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{} is the owner's alone", d.display());
        }
    }

    // Ranges that wrap, overflow or exceed the cap are a 400, not an export.
    for (start, end) in [
        (i64::MIN, T0_MS),
        (i64::MIN, i64::MAX),
        (T0_MS, i64::MAX),
        (i64::MAX - 1, i64::MAX),
        (T0_MS, T0_MS + 6 * 3600 * 1000 + 1),
        (T0_MS + 10, T0_MS),
    ] {
        let r = get(
            format!("/api/cameras/7/export.mp4?start={start}&end={end}"),
            vec![],
        )
        .await;
        assert_eq!(r.status, 400, "{start}..{end}: {}", r.text());
    }
    // Hostile: DNS rebinding. This listener has no token, so a rebound
    // name must not reach it.
    let r = get(path.clone(), vec![("Host", "evil.example".into())]).await;
    assert_eq!(r.status, 421, "{}", r.text());

    // Nothing recorded there: 404, not an empty file.
    let r = get(
        format!(
            "/api/cameras/7/export.mp4?start={}&end={}",
            T0_MS + 3_600_000,
            T0_MS + 3_700_000
        ),
        vec![],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(std::fs::read_dir(&exports).unwrap().count(), 1);

    stop.cancel();
    task.await.unwrap();
    store.close().await;
}
