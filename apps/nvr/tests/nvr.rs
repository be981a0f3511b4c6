//! `reallive-nvr` against real RTSP cameras (one process each):
//! continuous recording, a failing camera under supervision, a crash,
//! and bad configs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{PASSWORD, next_sse, open_sse, recorded, start_nvr, state_of, wait_status};
use reallive_test_support::RtspCameraConfig;
use reallive_test_support::camera_process::FakeCamera;
use reallive_test_support::http::Api;
use reallive_test_support::process::signal;
use tokio::process::Command;

/// Four fake cameras at 640x360, keyframe every second.
async fn cameras(n: usize) -> Vec<FakeCamera> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            FakeCamera::spawn(
                RtspCameraConfig {
                    path: format!("/cam{i}"),
                    width: 640,
                    height: 360,
                    fps: 30,
                    keyframe_interval: 30,
                    ..RtspCameraConfig::default()
                }
                .into(),
            )
            .await,
        );
    }
    out
}

fn write_config(dir: &Path, cams: &[FakeCamera], extra: &str) -> PathBuf {
    let mut text = String::from(extra);
    for (i, c) in cams.iter().enumerate() {
        text.push_str(&format!(
            "\n[[cameras]]\nname = \"cam{i}\"\nurl = \"{}\"\n",
            c.url()
        ));
    }
    let path = dir.join("nvr.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Four cameras for 60 s: each has 60 s ± 2 s across its files and its
/// VOD playlist plays in ffmpeg. Meanwhile one camera's process is killed:
/// it shows `unhealthy` or `backoff` within 15 s, its restarts wait 1, 2,
/// 4 s and growing, it is `running` again soon after the camera returns,
/// and the other three record without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_cameras_record_and_a_failing_one_is_supervised() {
    let dir = tempfile::tempdir().unwrap();
    let mut cams = cameras(4).await;
    let config = write_config(dir.path(), &cams, "");
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    // Recording is 60 s from here to the SIGTERM.
    let started = Instant::now();
    assert_eq!(nvr.cameras.len(), 4, "{}", nvr.log());
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    let ids: Vec<i64> = nvr.cameras.iter().map(|c| c.0).collect();

    common::wait_running(&api, &ids).await;

    // Health counts them, for a signed-in user; a stranger learns only ok.
    let h = api.get("/api/health").await.json();
    assert_eq!(h["cameras_total"], 4, "{h}");
    assert_eq!(h["cameras_running"], 4, "{h}");

    // Kill the last camera 10 s in.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let victim = ids[3];
    cams[3].kill().await;
    let killed = Instant::now();
    wait_status(
        &api,
        15,
        "the killed camera is unhealthy or in backoff",
        |s| matches!(state_of(s, victim).as_str(), "unhealthy" | "backoff"),
    )
    .await;
    eprintln!(
        "camera {victim} left running {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    // Let it fail a few times, then bring it back.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let w = api.get(&format!("/api/workers/{victim}")).await.json();
    let waits: Vec<String> = w["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "backoff")
        .map(|c| {
            let r = c["reason"].as_str().unwrap();
            r.rsplit("retrying in ").next().unwrap().to_string()
        })
        .collect();
    assert!(
        waits.len() >= 3 && waits[..3] == ["1 s", "2 s", "4 s"],
        "backoff grows 1, 2, 4 s: {w:#}"
    );
    assert!(w["restarts"].as_u64().unwrap() >= 2, "{w:#}");
    assert!(w["last_error"].is_string(), "{w:#}");
    cams[3].restart().await;
    let back = Instant::now();
    // The next start comes within the current backoff (at most 16 s
    // here), then frames.
    wait_status(&api, 25, "the camera is running again", |s| {
        state_of(s, victim) == "running"
    })
    .await;
    eprintln!(
        "camera {victim} running again {:.1} s after it came back",
        back.elapsed().as_secs_f64()
    );

    tokio::time::sleep(Duration::from_secs(50).saturating_sub(started.elapsed())).await;

    // Their VOD playlists play in ffmpeg, with the admin's token.
    for id in &ids[..3] {
        let url = format!("http://{}/api/cameras/{id}/vod.m3u8", nvr.addr);
        let ff = Command::new("ffmpeg")
            .args(["-v", "error"])
            .args([
                "-headers",
                &format!("Authorization: Bearer {}\r\n", api.token.clone().unwrap()),
            ])
            .args(["-i", &url, "-map", "0:v:0", "-f", "null", "-"])
            .output()
            .await
            .unwrap();
        assert!(
            ff.status.success(),
            "camera {id}: {}",
            String::from_utf8_lossy(&ff.stderr)
        );
    }
    // Metrics carry each camera.
    let m = api.get("/metrics").await.text();
    assert!(
        m.contains(&format!(
            "reallive_nvr_camera_state{{camera_id=\"{}\",camera=\"cam0\"}} 2",
            ids[0]
        )),
        "{m}"
    );
    assert!(
        m.contains("reallive_nvr_segment_write_seconds_count{camera_id=")
            && m.contains("reallive_nvr_camera_bytes_written_total{camera_id="),
        "{m}"
    );

    // Sixty seconds for the healthy three.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(started.elapsed())).await;
    let status = signal(&mut nvr.child, "-TERM").await;
    assert!(status.success(), "{}", nvr.log());
    for id in &ids[..3] {
        let (secs, files, gap) = recorded(&data, *id).await;
        eprintln!("camera {id}: {secs:.2} s in {files} files, largest gap {gap} ms");
        assert!((secs - 60.0).abs() <= 2.0, "camera {id}: {secs:.2} s");
        assert!(gap <= 100, "camera {id}: a gap of {gap} ms");
    }
    let (secs, files, gap) = recorded(&data, victim).await;
    eprintln!("victim {victim}: {secs:.2} s in {files} files, gap {gap} ms");
    assert!(files >= 2 && gap >= 10_000, "the outage is a gap");
}

/// `kill -9` mid-recording, then a restart: recovery repairs the open
/// file, every committed fragment is still there, and recording goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_committed_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let cams = cameras(1).await;
    let config = write_config(dir.path(), &cams, "");
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let id = nvr.cameras[0].0;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "running", |s| state_of(s, id) == "running").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // What is committed now, as the API lists it.
    let before = api
        .get(&format!("/api/recordings?camera={id}"))
        .await
        .json();
    let before = before.as_array().unwrap().clone();
    assert_eq!(before.len(), 1, "{before:?}");
    let status = signal(&mut nvr.child, "-KILL").await;
    assert!(!status.success());

    let mut nvr = start_nvr(&config, &data).await;
    assert!(nvr.log().contains("recordings open"), "{}", nvr.log());
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "running again", |s| state_of(s, id) == "running").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = api
        .get(&format!("/api/recordings?camera={id}"))
        .await
        .json();
    let after = after.as_array().unwrap().clone();
    let first = after.iter().find(|r| r["id"] == before[0]["id"]).unwrap();
    assert!(
        first["end_ms"].as_i64() >= before[0]["end_ms"].as_i64()
            && first["bytes"].as_u64() >= before[0]["bytes"].as_u64(),
        "the killed file kept what was committed: {before:?} -> {first}"
    );
    assert!(
        after.len() >= 2,
        "recording went on in a new file: {after:?}"
    );
    assert!(signal(&mut nvr.child, "-TERM").await.success());
}

/// `--check` names the line and key of every mistake.
#[test]
fn bad_configs_get_clear_check_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "[[cameras]]\nname = \"front\"\n",
            &["nvr.toml:1: cameras[0].url"],
        ),
        (
            "[[cameras]]\nname = \"front\"\nurl = \"rtsp://127.0.0.1/s\"\nurll = \"x\"\n",
            &["nvr.toml:4: cameras[0].urll"],
        ),
        (
            "[[cameras]]\nname = \"front\"\nurl = \"rtsp://127.0.0.1/s\"\n[cameras.retention]\nmax_bytes = \"12 parsecs\"\n",
            &["nvr.toml:5: cameras[0].retention.max_bytes"],
        ),
        (
            "[[cameras]]\nname = \"front\"\nurl = \"rtsp://127.0.0.1/a\"\n[[cameras]]\nname = \"front\"\nurl = \"rtsp://u:hunter2@127.0.0.1/b\"\n",
            &["nvr.toml:5: cameras[1].name"],
        ),
    ];
    for (text, want) in cases {
        let path = dir.path().join("nvr.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reallive-nvr"))
            .arg("--config")
            .arg(&path)
            .arg("--check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        for w in *want {
            assert!(err.contains(w), "{text}: want {w}: {err}");
        }
        assert!(!err.contains("hunter2"), "{err}");
    }
    let path = dir.path().join("nvr.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[cameras]]\nname = \"front\"\nurl = \"rtsp://u:p@127.0.0.1/s\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reallive-nvr"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An NVR camera plays live through the relay, its RTSP H.264 as it came:
/// a WebRTC viewer (webrtc-rs, over WHEP with a token) decodes-ready
/// frames from a keyframe on, at the camera's rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_h264_plays_live_through_the_relay() {
    use reallive_stream::{Credential, SubscribeConfig, WebRtcSubscriber};

    let dir = tempfile::tempdir().unwrap();
    let cams = cameras(1).await;
    let config = write_config(dir.path(), &cams, "");
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let id = nvr.cameras[0].0;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "running", |s| state_of(s, id) == "running").await;
    let status = api.get("/api/status").await.json();
    assert_eq!(status[0]["codec"], "h264", "{status:#}");
    assert_eq!(status[0]["b_frames"], false, "{status:#}");
    assert_eq!(status[0]["browser_playable"], true, "{status:#}");

    let (tx, mut rx) = reallive_core::frame_channel(1024);
    let viewer = WebRtcSubscriber::new(SubscribeConfig {
        server: format!("http://{}", nvr.addr),
        camera: id,
        token: Credential::new(api.token.clone().unwrap()),
        whep: Some(format!("http://{}/whep/{id}", nvr.addr)),
        network: reallive_stream::Network::default(),
    })
    .start_session(tx)
    .unwrap();
    let watch = tokio::spawn(async move {
        let mut frames = Vec::new();
        while let Some(f) = rx.recv().await {
            frames.push((f.keyframe, f.data.len(), f.params.stream_info().ok()));
        }
        frames
    });
    tokio::time::sleep(Duration::from_secs(8)).await;
    viewer.stop();
    drop(viewer);
    let frames = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .unwrap()
        .unwrap();
    eprintln!("the viewer got {} frames in 8 s", frames.len());
    assert!(
        frames.first().is_some_and(|f| f.0),
        "starts at a keyframe; {}",
        nvr.log()
    );
    // 30 fps for 8 s, less the join (up to a second's GOP).
    assert!(frames.len() >= 150, "{} frames", frames.len());
    let info = frames[0].2.clone().unwrap();
    assert_eq!((info.width, info.height), (640, 360));
    assert!(signal(&mut nvr.child, "-TERM").await.success());
}

/// The free-space floor above the free space there is: retention deletes
/// the oldest finished recordings, `/api/health` warns, and recording
/// never stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_free_space_floor_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cams = cameras(1).await;
    let config = write_config(dir.path(), &cams, "[storage]\nmin_free = \"1000TiB\"\n");
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let id = nvr.cameras[0].0;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "running", |s| state_of(s, id) == "running").await;
    // Three runs, so three files: stop and start by request.
    let mut first_ids = Vec::new();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let list = api
            .get(&format!("/api/recordings?camera={id}"))
            .await
            .json();
        first_ids.extend(
            list.as_array()
                .unwrap()
                .iter()
                .map(|r| r["start_ms"].as_i64().unwrap()),
        );
        assert_eq!(
            api.post(&format!("/api/cameras/{id}/stop"), serde_json::json!({}))
                .await
                .status,
            202
        );
        wait_status(&api, 10, "stopped", |s| state_of(s, id) == "stopped").await;
        api.post(&format!("/api/cameras/{id}/start"), serde_json::json!({}))
            .await;
        wait_status(&api, 20, "running again", |s| state_of(s, id) == "running").await;
    }
    first_ids.sort_unstable();
    first_ids.dedup();
    assert!(!first_ids.is_empty());
    // The watcher runs every 5 s.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let anon = Api::new(nvr.addr).get("/api/health").await.json();
    assert_eq!(
        anon,
        serde_json::json!({"status": "degraded"}),
        "no details for strangers"
    );
    let h = api.get("/api/health").await.json();
    assert_eq!(h["status"], "degraded", "{h:#}");
    assert!(
        h["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("under the floor")),
        "{h:#}"
    );
    let list = api
        .get(&format!("/api/recordings?camera={id}"))
        .await
        .json();
    let now: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["start_ms"].as_i64().unwrap())
        .collect();
    // (Recordings are compared by start: the index may reuse a deleted
    // recording's id.)
    assert!(
        first_ids.iter().all(|old| !now.contains(old)),
        "the oldest recordings were deleted: {first_ids:?} -> {list:#}"
    );
    // The one being written stays, and grows.
    assert_eq!(now.len(), 1, "{list:#}");
    let storage = api.get("/api/storage").await.json();
    assert!(storage["floor_bytes"].as_u64().unwrap() > storage["free_bytes"].as_u64().unwrap());
    assert_eq!(
        state_of(&api.get("/api/status").await.json(), id),
        "running"
    );
    assert!(signal(&mut nvr.child, "-TERM").await.success());
    let (secs, files, _) = recorded(&data, id).await;
    assert_eq!(files, 1);
    assert!(secs >= 5.0, "the last run was recorded: {secs:.1} s");
}

/// Started without cameras, the NVR takes them through its API: checked
/// like the config file, recorded at once, kept across a restart (in the
/// accounts database, not a file), passwords never shown, and removed on
/// request with their recordings kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_added_through_the_api_record_and_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cam = FakeCamera::spawn(
        RtspCameraConfig {
            path: "/door".into(),
            credentials: Some(("admin".into(), "hunter2-secret".into())),
            ..RtspCameraConfig::default()
        }
        .into(),
    )
    .await;
    let config = write_config(dir.path(), &[], "");
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    assert!(nvr.cameras.is_empty());
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;

    // Refused: a bad URL, an unknown field; then added.
    let bad = api
        .post(
            "/api/nvr/cameras",
            serde_json::json!({"name": "door", "url": "http://127.0.0.1/x"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("url"), "{}", bad.text());
    let unknown = api
        .post(
            "/api/nvr/cameras",
            serde_json::json!({"name": "door", "url": cam.url(), "urll": 1}),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.text());
    let url = cam.url_with_credentials();
    let added = api
        .post(
            "/api/nvr/cameras",
            serde_json::json!({"name": "door", "url": url, "retention": {"max_age_days": 3}}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text());
    assert!(!added.text().contains("hunter2-secret"), "{}", added.text());
    let id = added.json()["id"].as_i64().unwrap();
    let again = api
        .post(
            "/api/nvr/cameras",
            serde_json::json!({"name": "DOOR", "url": url}),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text());
    wait_status(&api, 20, "the added camera records", |s| {
        state_of(s, id) == "running"
    })
    .await;
    assert!(!data.join("cameras.toml").exists());
    let listed = api.get("/api/nvr/cameras").await;
    assert!(
        !listed.text().contains("hunter2-secret"),
        "{}",
        listed.text()
    );
    assert_eq!(listed.json()[0]["from"], "api", "{}", listed.text());
    assert!(!nvr.log().contains("hunter2-secret"), "{}", nvr.log());

    // A restart keeps it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(signal(&mut nvr.child, "-TERM").await.success());
    let mut nvr = start_nvr(&config, &data).await;
    assert_eq!(nvr.cameras, [(id, "door".to_string())], "{}", nvr.log());
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "running after the restart", |s| {
        state_of(s, id) == "running"
    })
    .await;

    // Removed: no longer recorded; what it recorded stays.
    let removed = api.delete(&format!("/api/nvr/cameras/{id}")).await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(removed.json()["recordings_deleted"], 0, "kept by default");
    let s = api.get("/api/status").await.json();
    assert_eq!(state_of(&s, id), "", "{s:#}");
    let recs = api
        .get(&format!("/api/recordings?camera={id}"))
        .await
        .json();
    assert!(recs.as_array().unwrap().len() >= 2, "{recs:#}");
    assert!(!nvr.log().contains("hunter2-secret"), "{}", nvr.log());
    assert!(signal(&mut nvr.child, "-TERM").await.success());
}

/// Motion mode: a moving scene records around its motion with the event
/// listed; a manual trigger records a still camera for its seconds. (That
/// a still scene records nothing, and the timing of a motion burst, are
/// `tests/motion.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_mode_records_what_moves_and_what_is_triggered() {
    let dir = tempfile::tempdir().unwrap();
    let mut cams = Vec::new();
    for (path, pattern) in [("/still", "solid-color"), ("/ball", "ball")] {
        cams.push(
            FakeCamera::spawn(
                RtspCameraConfig {
                    path: path.into(),
                    pattern: pattern.into(),
                    ..RtspCameraConfig::default()
                }
                .into(),
            )
            .await,
        );
    }
    let mut text = String::new();
    for (name, c) in ["still", "ball"].iter().zip(&cams) {
        text.push_str(&format!(
            "[[cameras]]\nname = \"{name}\"\nurl = \"{}\"\nmode = \"motion\"\npre_roll_secs = 2\npost_roll_secs = 2\n",
            c.url()
        ));
    }
    let config = dir.path().join("nvr.toml");
    std::fs::write(&config, text).unwrap();
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let (still, ball) = (nvr.cameras[0].0, nvr.cameras[1].0);
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "both running", |s| {
        state_of(s, still) == "running" && state_of(s, ball) == "running"
    })
    .await;
    let running = Instant::now();
    // The moving one: recording, with a motion event, within seconds.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let recs = api
            .get(&format!("/api/recordings?camera={ball}"))
            .await
            .json();
        let evs = api.get(&format!("/api/events?camera={ball}")).await.json();
        if !recs.as_array().unwrap().is_empty() && !evs.as_array().unwrap().is_empty() {
            assert_eq!(evs[0]["kind"], "motion", "{evs:#}");
            assert_eq!(evs[0]["zone"], "frame", "{evs:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ball is recorded with its event: {recs:#} {evs:#}\n{}",
            nvr.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A manual trigger records the still camera, once its pre-roll ring
    // holds the 2 s and more.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(running.elapsed())).await;
    let t = api
        .post(
            &format!("/api/cameras/{still}/trigger"),
            serde_json::json!({"seconds": 3}),
        )
        .await;
    assert_eq!(t.status, 202, "{}", t.text());
    tokio::time::sleep(Duration::from_secs(8)).await;
    let evs = api.get(&format!("/api/events?camera={still}")).await.json();
    assert_eq!(evs[0]["kind"], "trigger", "{evs:#}");
    assert!(signal(&mut nvr.child, "-TERM").await.success());
    let (secs, files, _) = recorded(&data, still).await;
    eprintln!("the trigger recorded {secs:.1} s in {files} file(s)");
    assert_eq!(files, 1);
    // The 2 s pre-roll (to the keyframe before it: up to a GOP more), the
    // 3 s, and the 2 s post-roll.
    assert!((6.5..=8.5).contains(&secs), "{secs:.1} s");
}

/// Motion settings through the API: read, refused when wrong, applied to
/// the live run at once, and kept across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_settings_change_through_the_api_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cam = FakeCamera::spawn(
        RtspCameraConfig {
            path: "/ball".into(),
            pattern: "ball".into(),
            width: 320,
            height: 180,
            fps: 15,
            keyframe_interval: 15,
            ..RtspCameraConfig::default()
        }
        .into(),
    )
    .await;
    let config = dir.path().join("nvr.toml");
    std::fs::write(
        &config,
        format!(
            "[[cameras]]\nname = \"yard\"\nurl = \"{}\"\nmode = \"continuous\"\n\
             [cameras.motion]\nsecs_to_end = 1.0\n",
            cam.url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let id = nvr.cameras[0].0;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&api, 20, "running", |s| state_of(s, id) == "running").await;
    let path = format!("/api/cameras/{id}/motion");
    let got = api.get(&path).await.json();
    assert_eq!(got["enabled"], true, "{got:#}");
    assert_eq!(got["secs_to_end"], 1.0, "{got:#}");

    // The ball moves: an event opens.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let evs = api.get(&format!("/api/events?camera={id}")).await.json();
        if !evs.as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no motion event\n{}", nvr.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Wrong settings are refused, naming what is wrong.
    let mut bad = got.clone();
    bad["sensitivity"] = 0.into();
    let r = api.put(&path, bad).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("sensitivity"), "{}", r.text());
    let r = api
        .put(
            &path,
            serde_json::json!({"zones": [{"name": "x", "points": [[0, 0]]}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // Exclude the whole picture: the open event ends, and no new one starts.
    let mut quiet = got.clone();
    quiet["zones"] = serde_json::json!([
        {"name": "all", "kind": "exclude", "points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]}
    ]);
    let changed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = api.put(&path, quiet.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let evs = api.get(&format!("/api/events?camera={id}")).await.json();
    let evs = evs.as_array().unwrap();
    assert!(
        evs.iter().all(|e| e["end_ms"].is_i64()),
        "the open event ended: {evs:#?}"
    );
    assert!(
        evs.iter()
            .all(|e| e["start_ms"].as_i64().unwrap() < changed_ms + 1000),
        "no event after the change: {evs:#?}"
    );
    assert_eq!(api.get(&path).await.json()["zones"], quiet["zones"]);

    // A restart brings the API's settings back, over the config file's.
    assert!(signal(&mut nvr.child, "-TERM").await.success());
    let nvr = start_nvr(&config, &data).await;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    let got = api.get(&path).await.json();
    assert_eq!(got["zones"], quiet["zones"], "{got:#}\n{}", nvr.log());
}

/// The review routes on a real NVR: the timeline draws what was recorded
/// and the trigger's event; thumbnails are JPEGs of at most 320 px; an
/// event is marked reviewed; a range is locked and unlocked; the event
/// stream announces a new event. A `view`-only user is refused every
/// recorded thing (403) yet may follow the stream; a user with no grant
/// sees no camera (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_routes_serve_the_footage_and_refuse_who_lacks_playback() {
    let dir = tempfile::tempdir().unwrap();
    let cams = cameras(1).await;
    let config = write_config(dir.path(), &cams, "");
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let id = nvr.cameras[0].0;
    let admin = Api::new(nvr.addr).login("admin", PASSWORD).await;
    wait_status(&admin, 20, "running", |s| state_of(s, id) == "running").await;
    for (name, grant) in [("watcher", Some("view")), ("stranger", None)] {
        let r = admin
            .post(
                "/api/users",
                serde_json::json!({"username": name, "email": format!("{name}@example.com"),
                    "password": "a-long-password-1"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        if let Some(p) = grant {
            let r = admin
                .post(
                    &format!("/api/cameras/{id}/grants"),
                    serde_json::json!({"username": name, "permission": p}),
                )
                .await;
            assert!(r.status < 300, "{}", r.text());
        }
    }
    let watcher = Api::new(nvr.addr)
        .login("watcher", "a-long-password-1")
        .await;
    let stranger = Api::new(nvr.addr)
        .login("stranger", "a-long-password-1")
        .await;

    // Follow the stream as the view-only user, then trigger an event.
    let (code, mut sse) = open_sse(
        nvr.addr,
        "/api/events/stream",
        watcher.token.as_deref().unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let t = admin
        .post(
            &format!("/api/cameras/{id}/trigger"),
            serde_json::json!({"seconds": 2}),
        )
        .await;
    assert_eq!(t.status, 202, "{}", t.text());
    let started = next_sse(&mut sse, "started", Duration::from_secs(10))
        .await
        .expect("the stream announces the trigger");
    assert_eq!(started["camera_id"], id);
    assert_eq!(started["kind"], "trigger");
    let event = started["id"].as_i64().unwrap();
    let (code, _) = open_sse(nvr.addr, "/api/events/stream", "not-a-token").await;
    assert_eq!(code, 401);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The timeline of the last minute: footage and the event.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let path = format!(
        "/api/cameras/{id}/timeline?start={}&end={}&resolution_ms=100",
        now - 60_000,
        now + 1000
    );
    let tl = admin.get(&path).await;
    assert_eq!(tl.status, 200, "{}", tl.text());
    let tl = tl.json();
    let spans = tl["spans"].as_array().unwrap();
    assert!(!spans.is_empty(), "{tl:#}");
    let recorded_ms: i64 = spans
        .iter()
        .map(|s| s["end"].as_i64().unwrap() - s["start"].as_i64().unwrap())
        .sum();
    assert!(recorded_ms >= 5000, "{tl:#}");
    assert!(
        tl["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == event && e["reviewed"] == false),
        "{tl:#}"
    );

    // A thumbnail at a recorded instant: a JPEG of at most 320 px, then
    // the same picture again from the store.
    let at = spans[0]["start"].as_i64().unwrap() + 1500;
    let first = Instant::now();
    let j = admin
        .get(&format!("/api/cameras/{id}/thumbnail.jpg?at={at}"))
        .await;
    let made_in = first.elapsed();
    assert_eq!(j.status, 200, "{}", j.text());
    assert_eq!(j.header("content-type"), Some("image/jpeg"));
    let jpg = dir.path().join("t.jpg");
    std::fs::write(&jpg, &j.body).unwrap();
    let probe = reallive_test_support::ffprobe::probe(&jpg);
    assert_eq!(probe.codec_name, "mjpeg");
    assert_eq!((probe.width, probe.height), (320, 180), "640x360 scaled");
    let again = Instant::now();
    let j2 = admin
        .get(&format!("/api/cameras/{id}/thumbnail.jpg?at={at}"))
        .await;
    eprintln!(
        "thumbnail: made in {made_in:?}, then kept: {:?}",
        again.elapsed()
    );
    assert_eq!(j2.body, j.body);
    let e = admin
        .get(&format!("/api/events/{event}/thumbnail.jpg"))
        .await;
    assert_eq!(e.status, 200, "{}", e.text());
    let gap = admin
        .get(&format!(
            "/api/cameras/{id}/thumbnail.jpg?at={}",
            now - 3_600_000
        ))
        .await;
    assert_eq!(gap.status, 404, "nothing recorded an hour ago");

    // Reviewed: the view-only user changes nothing; the admin does.
    let body = serde_json::json!({"ids": [event], "reviewed": true});
    let r = watcher.post("/api/events/reviewed", body.clone()).await;
    assert_eq!((r.status, r.json()["updated"].as_i64()), (200, Some(0)));
    let r = admin.post("/api/events/reviewed", body.clone()).await;
    assert_eq!((r.status, r.json()["updated"].as_i64()), (200, Some(1)));
    let r = Api::new(nvr.addr).post("/api/events/reviewed", body).await;
    assert_eq!(r.status, 401);
    let listed = admin
        .get(&format!("/api/events?camera={id}&reviewed=true"))
        .await
        .json();
    assert_eq!(listed[0]["id"], event, "{listed:#}");
    let listed = admin
        .get(&format!("/api/events?camera={id}&reviewed=false"))
        .await
        .json();
    assert!(listed.as_array().unwrap().iter().all(|e| e["id"] != event));

    // Locks: made, listed, refused to the view-only user, removed.
    let lock = admin
        .post(
            &format!("/api/cameras/{id}/locks"),
            serde_json::json!({"start": at - 1000, "end": at + 1000, "note": "gate"}),
        )
        .await;
    assert_eq!(lock.status, 201, "{}", lock.text());
    let lock_id = lock.json()["id"].as_i64().unwrap();
    let list = admin.get(&format!("/api/cameras/{id}/locks")).await.json();
    assert_eq!(list[0]["note"], "gate", "{list:#}");
    assert_eq!(list[0]["start"], at - 1000);

    // The refusals: view-only is 403 on everything recorded; no grant is 404.
    for (who, want) in [(&watcher, 403), (&stranger, 404)] {
        for path in [
            path.clone(),
            format!("/api/cameras/{id}/thumbnail.jpg?at={at}"),
            format!("/api/events/{event}/thumbnail.jpg"),
            format!("/api/cameras/{id}/locks"),
        ] {
            let r = who.get(&path).await;
            assert_eq!(r.status, want, "{path}: {}", r.text());
        }
        let r = who
            .post(
                &format!("/api/cameras/{id}/locks"),
                serde_json::json!({"start": 1, "end": 2}),
            )
            .await;
        assert_eq!(r.status, want, "{}", r.text());
        let r = who
            .delete(&format!("/api/cameras/{id}/locks/{lock_id}"))
            .await;
        assert_eq!(r.status, want, "{}", r.text());
    }
    let r = admin
        .delete(&format!("/api/cameras/{id}/locks/{lock_id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(
        admin
            .get(&format!("/api/cameras/{id}/locks"))
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The web UI's pages answer with the app.
    for page in ["/review", "/exports", &format!("/cameras/{id}/timeline")] {
        let r = Api::new(nvr.addr).get(page).await;
        assert_eq!(r.status, 200, "{page}");
    }
    assert!(signal(&mut nvr.child, "-TERM").await.success());
}
