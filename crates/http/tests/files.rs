//! Byte-range serving and path containment, through a real router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn router(root: PathBuf) -> Router {
    Router::new()
        .route(
            "/files/{*path}",
            get(
                |State(root): State<PathBuf>, Path(p): Path<String>, h: HeaderMap| async move {
                    reallive_http::files::serve(&root, &p, &h).await
                },
            ),
        )
        .with_state(root)
}

async fn get_raw(app: &Router, uri: &str, range: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    if let Some(r) = range {
        req = req.header(header::RANGE, r);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn ranges_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("cam")).unwrap();
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    std::fs::write(root.join("cam/a.mp4"), &data).unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"TOP-SECRET-CONTENT").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("cam/link.mp4")).unwrap();
    let app = router(root);

    let (s, h, b) = get_raw(&app, "/files/cam/a.mp4", None).await;
    assert_eq!((s, b.len()), (StatusCode::OK, 1000));
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CONTENT_TYPE], "video/mp4");

    let (s, h, b) = get_raw(&app, "/files/cam/a.mp4", Some("bytes=100-199")).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h[header::CONTENT_RANGE], "bytes 100-199/1000");
    assert_eq!(b, data[100..200]);

    let (s, _, b) = get_raw(&app, "/files/cam/a.mp4", Some("bytes=-10")).await;
    assert_eq!(
        (s, b.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &data[990..])
    );

    let (s, h, _) = get_raw(&app, "/files/cam/a.mp4", Some("bytes=5000-")).await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(h[header::CONTENT_RANGE], "bytes */1000");

    let (s, _, b) = get_raw(&app, "/files/cam/missing.mp4", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let err: serde_json::Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(err["error"]["code"], "not_found");

    for escape in [
        "/files/../secret.txt",
        "/files/cam/..%2F..%2Fsecret.txt",
        "/files/cam/link.mp4",
        "/files/%2Fetc%2Fpasswd",
    ] {
        let (s, _, b) = get_raw(&app, escape, None).await;
        assert!(
            s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND,
            "{escape}: {s}"
        );
        assert!(
            !String::from_utf8_lossy(&b).contains("TOP-SECRET"),
            "{escape} leaked"
        );
        assert!(
            !String::from_utf8_lossy(&b).contains(dir.path().to_str().unwrap()),
            "{escape} echoed a path"
        );
    }
    // The symlink escape is refused as such, not merely missing.
    let (s, _, _) = get_raw(&app, "/files/cam/link.mp4", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// `?t=` on a recording bigger than the 64 MiB the shift once read into
/// memory: it streams, shifted, instead of a 400 (or 64 MiB per request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_shift_streams_a_file_of_any_size() {
    use reallive_store::mp4::{Sample, media_segment, shift_decode_times};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cam")).unwrap();
    // Two fragments around a 70 MiB one: moof + mdat each.
    let sample = |size: usize| Sample {
        data: [&[0, 0, 0, 1, 0x65][..], &vec![0x88; size]].concat().into(),
        duration_90k: 3000,
        composition_offset_90k: 0,
        keyframe: true,
    };
    let mut file = Vec::new();
    for (seq, size) in [(1u32, 1000usize), (2, 70 << 20), (3, 1000)] {
        file.extend_from_slice(&media_segment(seq, u64::from(seq) * 3000, &[sample(size)]));
    }
    std::fs::write(dir.path().join("cam/big.mp4"), &file).unwrap();
    let mut want = file.clone();
    let shift = 90_000 * 86_400;
    assert_eq!(shift_decode_times(&mut want, shift), 3);

    let app = Router::new()
        .route(
            "/recordings/{*path}",
            get(
                |State(root): State<PathBuf>,
                 Path(p): Path<String>,
                 axum::extract::Query(q): axum::extract::Query<
                    std::collections::HashMap<String, u64>,
                >,
                 h: HeaderMap| async move {
                    reallive_http::files::serve_recording(&root, &p, q.get("t").copied(), &h).await
                },
            ),
        )
        .with_state(dir.path().to_path_buf());
    let uri = format!("/recordings/cam/big.mp4?t={shift}");
    let (status, headers, body) = get_raw(&app, &uri, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_LENGTH], file.len().to_string());
    assert!(body == want, "the whole file, every moof shifted");
    // A range that starts inside the big mdat and ends in the last moof.
    let (a, b) = (file.len() - 5000, file.len() - 100);
    let (status, _, body) = get_raw(&app, &uri, Some(&format!("bytes={a}-{b}"))).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body == want[a..=b]);
}
