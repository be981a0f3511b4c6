#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Live video end to end, as a user sees it: the pusher publishes the test
//! pattern to a real reallive-server, and headless Chromium logs in through
//! the web UI and decodes it over WebRTC through the relay
//! (`scripts/e2e-live`, in a private network namespace). Then the server
//! restarts under them, and both must come back on their own.

use std::path::Path;
use std::process::Command;

#[test]
fn a_browser_decodes_the_pusher_through_the_relay_and_survives_a_server_restart() {
    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    assert!(
        server.exists(),
        "{} is missing: run the tests with --workspace so it is built",
        server.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/e2e-live"))
        .arg(&server)
        .arg(pusher)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["ok"], true, "{line}");
    assert!(v["framesDecoded"].as_u64().unwrap() > 60, "{line}");
    assert!(v["ms"].as_u64().unwrap() <= 10_000, "{line}");
    // After the restart: a new connection decoding again within 10 s of
    // the server's return.
    assert!(v["resumedFrames"].as_u64().unwrap() >= 30, "{line}");
    assert!(v["resumeMs"].as_u64().unwrap() <= 10_000, "{line}");
}

/// A second WebRTC stack (the `webrtc` crate's subscriber, not a browser)
/// watches the camera through the relay and gets at least 90% of the frames
/// the pusher sent. Both signal over `/ws/signaling`; the viewer joins
/// before the publisher and waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_rs_subscriber_gets_the_frames_the_pusher_sent() {
    relay_round_trip(false).await;
}

/// The same over HTTP: the pusher publishes with WHIP and the subscriber
/// watches with WHEP. WHEP answers 503 while nobody publishes, so the
/// subscriber starts once the camera is online; every frame sent before
/// then still counts as one it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_reaches_a_whep_subscriber() {
    relay_round_trip(true).await;
}

async fn relay_round_trip(http: bool) {
    use reallive_stream::{SubscribeConfig, WebRtcSubscriber};
    use reallive_test_support::http::Api;
    use reallive_test_support::process::spawn_server;

    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, addr) = spawn_server(&server, dir.path(), "live-admin-password").await;
    let admin = Api::new(addr).login("admin", "live-admin-password").await;
    let created = admin
        .post("/api/cameras", serde_json::json!({"name": "cam"}))
        .await
        .json();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();

    let mut args: Vec<String> = [
        "--source",
        "test",
        "--width",
        "640",
        "--height",
        "360",
        "--key",
        &key,
        "--seconds",
        // Over WHEP the viewer can only start once the publisher is online,
        // and every frame before its first keyframe counts as missed: a
        // longer run keeps that start-up from deciding the ratio.
        if http { "20" } else { "8" },
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if http {
        args.extend(["--whip".into(), format!("http://{addr}/whip/{cam}")]);
    } else {
        args.extend([
            "--server".into(),
            format!("http://{addr}"),
            "--camera".into(),
            cam.to_string(),
        ]);
    }
    let start_viewer = || {
        let (tx, mut rx) = reallive_core::frame_channel(1024);
        let sub = WebRtcSubscriber::new(SubscribeConfig {
            server: format!("http://{addr}"),
            camera: cam,
            token: reallive_stream::Credential::new(admin.token.clone().unwrap()),
            whep: http.then(|| format!("http://{addr}/whep/{cam}")),
        })
        .start_session(tx)
        .unwrap();
        let counter = tokio::spawn(async move {
            let mut n = 0u64;
            let mut first_keyframe = None;
            while let Some(f) = rx.recv().await {
                first_keyframe.get_or_insert(f.keyframe);
                n += 1;
            }
            (n, first_keyframe)
        });
        (sub, counter)
    };
    let mut viewer = None;
    if !http {
        // The viewer joins first: its video starts with the publisher's
        // first keyframe, no renegotiation.
        viewer = Some(start_viewer());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let pushing = tokio::process::Command::new(pusher)
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if http {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let status = admin.get(&format!("/api/cameras/{cam}")).await.json()["status"].clone();
            if status != "offline" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the WHIP publisher never came online"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        viewer = Some(start_viewer());
    }
    let (sub, counter) = viewer.unwrap();
    let out = pushing.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let sent: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("reallive-pusher: published "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    // Let the last frames arrive, then stop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sub.stop();
    drop(sub);
    let (received, first_keyframe) =
        tokio::time::timeout(std::time::Duration::from_secs(10), counter)
            .await
            .unwrap()
            .unwrap();
    assert!(sent >= 200, "8 s at 30 fps: {sent}");
    assert_eq!(first_keyframe, Some(true), "the first frame is a keyframe");
    assert!(
        received * 100 >= sent * 90,
        "received {received} of {sent} frames"
    );
    eprintln!("received {received} of {sent} frames");
    srv.kill().await.unwrap();
}
