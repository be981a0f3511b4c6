//! `restream-rtsp` against a real RTSP server (gstreamer-rtsp-server): the
//! embedded node serves the API, and the camera it made is streaming (the
//! relay has its frames) while the RTSP feed runs; the program ends on time
//! and exits 0.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reallive_test_support::http::Api;
use reallive_test_support::require_elements;
use reallive_test_support::{RtspCameraConfig, RtspCameraServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtsp_camera_streams_through_the_embedded_relay() {
    require_elements(&["rtspsrc", "x264enc"]);
    let camera = RtspCameraServer::start(RtspCameraConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_restream-rtsp"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--rtc-port",
            "0",
            "--seconds",
            "8",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CAMERA_URL", camera.url())
        .env("REALLIVE_ADMIN_PASSWORD", "correct horse battery")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    let id: i64 = first.rsplit(' ').next().unwrap().parse().unwrap();

    let api = Api::new(addr).login("admin", "correct horse battery").await;
    let started = Instant::now();
    let status = loop {
        let view = api.get(&format!("/api/cameras/{id}")).await;
        let status = view.json()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if status == "streaming" || started.elapsed() > Duration::from_secs(6) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        matches!(status.as_str(), "online" | "streaming"),
        "{status}"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit}");
}
