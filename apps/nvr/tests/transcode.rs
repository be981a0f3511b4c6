//! `[transcoding]` with the real NVR, a real RTSP camera, x265 and
//! ffprobe: an old recording is replaced by a smaller H.265 file that
//! plays the same, and a transcode killed with SIGKILL (the job, or the
//! whole NVR) leaves the original as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Nvr, PASSWORD, start_nvr, state_of, wait_json, wait_status};
use reallive_test_support::RtspCameraConfig;
use reallive_test_support::camera_process::FakeCamera;
use reallive_test_support::ffprobe;
use reallive_test_support::http::Api;
use reallive_test_support::process::signal;

/// Recordings become candidates 0.0001 days (8.6 s) after they end: time
/// to probe the original first.
fn config(dir: &Path, url: &str, preset: &str, enabled: bool) -> PathBuf {
    let text = format!(
        "[[cameras]]\nname = \"yard\"\nurl = \"{url}\"\n\n\
         [transcoding]\nenabled = {enabled}\nolder_than_days = 0.0001\nwindow = \"00:00-24:00\"\n\
         max_jobs = 1\npoll_secs = 1\npreset = \"{preset}\"\n"
    );
    let path = dir.join(format!("nvr-{preset}-{enabled}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

async fn camera() -> FakeCamera {
    FakeCamera::spawn(
        RtspCameraConfig {
            path: "/yard".into(),
            pattern: "ball".into(),
            ..RtspCameraConfig::default()
        }
        .into(),
    )
    .await
}

/// Records about `secs` seconds, then stops the camera's recorder, which
/// closes the file. Returns the finished recording's JSON.
async fn record_one(api: &Api, id: i64, secs: u64, already: usize) -> serde_json::Value {
    api.post(&format!("/api/cameras/{id}/start"), serde_json::json!({}))
        .await;
    wait_status(api, 20, "running", |s| state_of(s, id) == "running").await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let r = api
        .post(&format!("/api/cameras/{id}/stop"), serde_json::json!({}))
        .await;
    assert!(r.status < 300, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let recs = api
            .get(&format!("/api/recordings?camera={id}"))
            .await
            .json();
        let recs = recs.as_array().unwrap();
        if recs.len() > already && recs[already]["state"] == "complete" {
            return recs[already].clone();
        }
        assert!(Instant::now() < deadline, "no closed recording: {recs:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn transcoding(api: &Api) -> serde_json::Value {
    api.get("/api/transcoding/status").await.json()
}

async fn wait_transcoding(
    api: &Api,
    nvr: &Nvr,
    secs: u64,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let what = format!("{what}\n{}", nvr.log());
    wait_json(api, "/api/transcoding/status", secs, &what, done).await
}

/// The recording file of `rec` (the JSON from `/api/recordings`), looked
/// up in the index.
async fn file_of(data: &Path, id: i64) -> PathBuf {
    let (store, _) = reallive_store::Store::open(reallive_store::StoreConfig::new(data))
        .await
        .unwrap();
    let rec = store.recording(id).await.unwrap().unwrap();
    let p = store.root().join(&rec.path);
    store.close().await;
    p
}

fn mp4s_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(mp4s_under(&p));
        } else if p.extension().is_some_and(|e| e == "mp4") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The `transcode-file` child working on a file under `data`.
fn transcode_child(data: &Path) -> Option<u32> {
    let needle = data.to_str().unwrap();
    for e in std::fs::read_dir("/proc").ok()? {
        let e = e.ok()?;
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(" transcode-file ") && cmd.contains(needle) {
            return Some(pid);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_recording_is_replaced_by_a_smaller_h265_file_that_plays_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let cam = camera().await;
    let data = dir.path().join("data");
    let nvr = start_nvr(&config(dir.path(), cam.url(), "ultrafast", true), &data).await;
    let id = nvr.cameras[0].0;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    let s = transcoding(&api).await;
    assert_eq!(s["enabled"], true, "{s:#}");
    assert_eq!(s["window"], "00:00-24:00", "{s:#}");

    let rec = record_one(&api, id, 6, 0).await;
    assert_eq!(rec["codec"], "h264");
    let original = file_of(&data, rec["id"].as_i64().unwrap()).await;
    let before = ffprobe::probe(&original);
    let before_bytes = std::fs::metadata(&original).unwrap().len();
    assert_eq!(before.codec_name, "h264");
    // A thumbnail of it, kept beside the file.
    let thumb = format!(
        "/api/cameras/{id}/thumbnail.jpg?at={}",
        rec["start_ms"].as_i64().unwrap() + 1000
    );
    let t = api.get(&thumb).await;
    assert_eq!(t.status, 200, "{}", t.text());

    let s = wait_transcoding(&api, &nvr, 60, "one recording transcoded", |s| {
        s["completed"] == 1
    })
    .await;
    let after_rec = api
        .get(&format!("/api/recordings?camera={id}"))
        .await
        .json()[0]
        .clone();
    assert_eq!(after_rec["id"], rec["id"]);
    assert_eq!(after_rec["codec"], "h265", "{after_rec:#}");
    assert_eq!(after_rec["start_ms"], rec["start_ms"]);
    assert_eq!(after_rec["end_ms"], rec["end_ms"]);
    let new = file_of(&data, rec["id"].as_i64().unwrap()).await;
    assert!(!original.exists(), "the original is deleted after the swap");
    // Its thumbnails followed it: served from the sidecar beside the new
    // file, none left beside the old.
    let sidecar = |p: &Path| PathBuf::from(format!("{}.thumbs", p.display()));
    assert!(sidecar(&new).exists() && !sidecar(&original).exists());
    let t = api.get(&thumb).await;
    assert_eq!(t.status, 200, "{}", t.text());
    let after = ffprobe::probe(&new);
    let after_bytes = std::fs::metadata(&new).unwrap().len();
    eprintln!(
        "transcoded: {} frames, {:.3} s, {before_bytes} bytes (h264) -> {} frames, {:.3} s, \
         {after_bytes} bytes (hevc); status {s:#}",
        before.frames,
        before.duration_secs.unwrap(),
        after.frames,
        after.duration_secs.unwrap()
    );
    assert_eq!(after.codec_name, "hevc");
    assert_eq!(after.frames, before.frames);
    let frame = 1.0 / 30.0;
    assert!(
        (after.duration_secs.unwrap() - before.duration_secs.unwrap()).abs() <= frame,
        "durations differ by more than a frame"
    );
    assert!(after_bytes < before_bytes);
    assert_eq!(
        s["bytes_saved"].as_u64().unwrap(),
        before_bytes - after_bytes,
        "{s:#}"
    );
    // Playback still works: the VOD playlist of the new file plays.
    let m3u8 = format!("http://{}/api/cameras/{id}/vod.m3u8", nvr.addr);
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-headers"])
        .arg(format!(
            "Authorization: Bearer {}\r\n",
            api.token.clone().unwrap()
        ))
        .args(["-i", &m3u8, "-map", "0:v:0", "-f", "null", "-"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcode_killed_with_sigkill_leaves_the_original_intact() {
    let dir = tempfile::tempdir().unwrap();
    let cam = camera().await;
    let data = dir.path().join("data");
    // A slow preset, so there is time to kill the job.
    let mut nvr = start_nvr(&config(dir.path(), cam.url(), "veryslow", true), &data).await;
    let id = nvr.cameras[0].0;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;

    // 1. The job's process dies.
    let rec = record_one(&api, id, 5, 0).await;
    let original = file_of(&data, rec["id"].as_i64().unwrap()).await;
    let bytes = std::fs::read(&original).unwrap();
    wait_transcoding(&api, &nvr, 30, "a job running", |s| {
        s["running"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let child = wait_for_child(&data).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &child.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let s = wait_transcoding(&api, &nvr, 30, "the job failed", |s| s["failed"] == 1).await;
    eprintln!("after killing the job: {s:#}");
    assert!(
        s["last_error"].as_str().unwrap().contains("failed"),
        "{s:#}"
    );
    assert_eq!(
        std::fs::read(&original).unwrap(),
        bytes,
        "the original is untouched"
    );
    assert_eq!(mp4s_under(&data.join("recordings")), vec![original.clone()]);
    let listed = api
        .get(&format!("/api/recordings?camera={id}"))
        .await
        .json();
    assert_eq!(listed[0]["codec"], "h264");
    assert_eq!(listed[0]["bytes"].as_u64().unwrap(), bytes.len() as u64);

    // 2. The whole NVR dies in the middle of the next job.
    let rec2 = record_one(&api, id, 5, 1).await;
    let original2 = file_of(&data, rec2["id"].as_i64().unwrap()).await;
    let bytes2 = std::fs::read(&original2).unwrap();
    wait_transcoding(&api, &nvr, 30, "the second job running", |s| {
        s["running"]
            .as_array()
            .is_some_and(|r| r.iter().any(|j| j["recording_id"] == rec2["id"]))
    })
    .await;
    let child = wait_for_child(&data).await;
    assert!(!signal(&mut nvr.child, "-KILL").await.success());
    // Its job goes with it (its stdin closes).
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{child}")).exists()
        && std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "the job outlived the NVR");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Restarted (transcoding off), recovery deletes the partial file.
    let nvr = start_nvr(&config(dir.path(), cam.url(), "veryslow", false), &data).await;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    assert_eq!(transcoding(&api).await["enabled"], false);
    assert_eq!(std::fs::read(&original2).unwrap(), bytes2);
    assert_eq!(std::fs::read(&original).unwrap(), bytes);
    let files = mp4s_under(&data.join("recordings"));
    assert!(
        files.iter().all(|f| !f.to_string_lossy().contains("-h265")),
        "{files:?}\n{}",
        nvr.log()
    );
    assert!(files.contains(&original) && files.contains(&original2));
    for f in [&original, &original2] {
        let p = ffprobe::probe(f);
        assert_eq!(p.codec_name, "h264");
        assert!(p.frames > 100, "{p:?}");
    }
}

/// Waits until the job's process is up and writing.
async fn wait_for_child(data: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = transcode_child(data) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no transcode-file process");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
