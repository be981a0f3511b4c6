#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attacks on `reallive-puller`'s token-less local playback, and on what
//! the programs leave on disk. Each test runs its own real processes.

use reallive_hostile::http::request;
use std::time::Duration;

use reallive_hostile::{Program, add_camera, mode, slowloris};

/// Finding 6. DNS rebinding against the puller's playback: without
/// `--listen-token` it trusts loopback, so a page on evil.example that
/// re-points its name at 127.0.0.1 would read the recordings. It gets a
/// 421; `localhost` and IP literals still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_host_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Program::server(&dir.path().join("srv"), &[]).await;
    let (cam, _) = add_camera(&srv.admin().await, "yard").await;
    let puller = Program::puller(srv.addr(), cam, &dir.path().join("puller")).await;
    let addr = puller.addr();
    let port = addr.port();
    for (host, want) in [
        (format!("evil.example:{port}"), 421),
        ("evil.example".to_string(), 421),
        (format!("127.0.0.1.evil.example:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        (format!("[::1]:{port}"), 200),
    ] {
        for path in [
            format!("/api/recordings?camera={cam}"),
            format!("/api/cameras/{cam}/vod.m3u8"),
            format!("/api/cameras/{cam}/export.mp4?start=0&end=1000"),
        ] {
            let r = request(addr, "GET", &path, &[("Host", &host)], b"")
                .await
                .unwrap();
            if want == 421 {
                assert_eq!(r.status, 421, "Host: {host} {path}: {}", r.text());
            } else {
                assert_ne!(r.status, 421, "Host: {host} {path}: {}", r.text());
                assert!(r.status < 500, "Host: {host} {path}: {}", r.status);
            }
        }
    }
    // The list itself is served to the right names.
    let r = request(
        addr,
        "GET",
        &format!("/api/recordings?camera={cam}"),
        &[("Host", &format!("localhost:{port}"))],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Finding 4, at the puller's playback: a client dripping a request head
/// is cut off at 10 s. (Beyond loopback, with `--listen-token`, anyone on
/// the network can open connections before any token is checked.) It held
/// the connection for ever while the playback used `axum::serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_request_head_is_cut_off_after_10s() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Program::server(&dir.path().join("srv"), &[]).await;
    let (cam, _) = add_camera(&srv.admin().await, "yard").await;
    let puller = Program::puller(srv.addr(), cam, &dir.path().join("puller")).await;
    let path = format!("/api/recordings?camera={cam}");
    let cut = slowloris(puller.addr(), &path, Duration::from_secs(15)).await;
    assert!(
        !cut.answer.starts_with("HTTP/1.1 2"),
        "the incomplete request was served: {cut:?}"
    );
    assert!(cut.after >= Duration::from_secs(8), "{cut:?}");
}

/// Low. Another local user reads the recordings, the accounts database or
/// the token secret: the data directories the programs create, and their
/// recordings, are the owner's alone (0700), whatever the umask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dirs_are_private() {
    let dir = tempfile::tempdir().unwrap();
    // Paths that do not exist yet: each program creates its own.
    let (srv_data, nvr_data, puller_data) = (
        dir.path().join("server/data"),
        dir.path().join("nvr/data"),
        dir.path().join("puller/data"),
    );
    let srv = Program::server(&srv_data, &[]).await;
    let nvr = Program::nvr(None, &nvr_data).await;
    let (cam, _) = add_camera(&srv.admin().await, "yard").await;
    let puller = Program::puller(srv.addr(), cam, &puller_data).await;
    for d in [
        srv_data.clone(),
        nvr_data.clone(),
        nvr_data.join("recordings"),
        puller_data.clone(),
        puller_data.join("recordings"),
    ] {
        assert_eq!(
            mode(&d),
            0o700,
            "{} is {:o}: others can read it",
            d.display(),
            mode(&d)
        );
    }
    // The token secret is the owner's alone too.
    for d in [&srv_data, &nvr_data] {
        let secret = d.join("jwt.secret");
        assert_eq!(mode(&secret) & 0o077, 0, "{}", secret.display());
    }
    drop((srv, nvr, puller));
}
