//! Join-time figures (issue 22, `docs/benchmarks.md`): how long a viewer
//! waits for a camera's first picture, with and without the relay's GOP
//! cache, and what the browser holds back once it plays.
//!
//! `cargo bench -p reallive-nvr --bench join` (part of `make bench`; needs
//! `target/release/reallive-pusher`, `web-ui/dist`, `web-ui/node_modules`
//! and Debian's chromium).
//!
//! For each source, a release `reallive-nvr` twice (`gop_cache_mib` 8 and
//! 0), and headless Chromium (`web-ui/e2e/join.mjs`) opening the camera's
//! live page `--joins` times, 1.3 s apart, holding each for 4 s:
//!
//! - **RTSP, 4 s GOP:** a fake 720p30 camera (gst-rtsp-server, x264, a
//!   keyframe every 4 s, 2 Mbit/s), which nobody can ask for a keyframe;
//! - **pusher:** `reallive-pusher --source test` at 720p30, which answers
//!   a keyframe request;
//! - **RTSP H.265, 4 s GOP, transcoded:** the same camera in H.265, which
//!   Chromium cannot decode: every join goes through the NVR's live
//!   transcode to H.264 (cache on only). join.mjs opens the live grid
//!   first, which starts the transcode; every join then finds it running
//!   (it lingers 10 s between pages), and its NVR CPU is the transcode's.
//!
//! Per run: join (RTCPeerConnection made to first frame presented) median
//! and worst, page load to first frame median, the jitter buffer's mean
//! delay over the second half of each hold (after any catch-up), and the
//! NVR's CPU over the run. Targets: join ≤ 400 ms (RTSP) and ≤ 300 ms
//! (pusher); the jitter buffer's delay no worse with the cache.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reallive_test_support::bench::{arg, cpu_of};
use reallive_test_support::camera_process::FakeCamera;
use reallive_test_support::http::Api;
use reallive_test_support::{RtspCameraConfig, RtspCodec};
use serde_json::json;
use tokio::process::Command;

#[path = "../tests/common/mod.rs"]
mod common;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The NVR as the process tests start it, with the GOP cache at
/// `cache_mib` and, for an RTSP source, the camera.
async fn start_nvr(dir: &Path, camera_url: Option<&str>, cache_mib: u32) -> common::Nvr {
    let config = dir.join("nvr.toml");
    let mut text = format!("[server]\ngop_cache_mib = {cache_mib}\n");
    if let Some(url) = camera_url {
        text.push_str(&format!(
            "[[cameras]]\nname = \"gate\"\nurl = \"{url}\"\n[cameras.motion]\nenabled = false\n"
        ));
    }
    std::fs::write(&config, text).unwrap();
    common::start_nvr(&config, &dir.join("data")).await
}

/// One run of join.mjs: its JSON line.
async fn joins(nvr: &common::Nvr, camera: i64, n: usize) -> serde_json::Value {
    let web = root().join("web-ui");
    let out = Command::new("node")
        .arg(web.join("e2e/join.mjs"))
        .current_dir(&web)
        .env("BASE_URL", format!("http://{}", nvr.addr))
        .env("RL_USERNAME", "admin")
        .env("RL_PASSWORD", common::PASSWORD)
        .env("RL_CAMERA_ID", camera.to_string())
        .env("JOINS", n.to_string())
        .env("HOLD_MS", "4000")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs web-ui/e2e/join.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "join.mjs printed no JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["ok"], true, "{v}");
    v
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

fn nums(v: &serde_json::Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--joins").map_or(10, |s| s.parse().unwrap());
    let pusher_bin = root().join("target/release/reallive-pusher");
    assert!(
        pusher_bin.is_file(),
        "{} is missing: cargo build --release -p reallive-pusher",
        pusher_bin.display()
    );
    let camera_of = |path: &str, codec| {
        FakeCamera::spawn(
            RtspCameraConfig {
                path: path.into(),
                width: 1280,
                height: 720,
                fps: 30,
                keyframe_interval: 120,
                bitrate_kbps: 2000,
                pattern: "ball".into(),
                codec,
                ..RtspCameraConfig::default()
            }
            .into(),
        )
    };
    let camera = camera_of("/gate", RtspCodec::H264).await;
    let hevc = camera_of("/hevc", RtspCodec::H265).await;
    println!(
        "{n} joins per run, 1.3 s apart, each held 4 s; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| source | GOP cache | join median, ms | join worst, ms | page load to first frame, median ms | jitter buffer delay after 2 s, mean ms | NVR CPU, % of a core |"
    );
    println!("|---|---|---|---|---|---|---|");
    for source in ["rtsp", "pusher", "h265"] {
        let caches: &[u32] = if source == "h265" { &[8] } else { &[8, 0] };
        for &cache_mib in caches {
            let dir = tempfile::tempdir().unwrap();
            let url = match source {
                "rtsp" => Some(camera.url().to_string()),
                "h265" => Some(hevc.url().to_string()),
                _ => None,
            };
            let nvr = start_nvr(dir.path(), url.as_deref(), cache_mib).await;
            let pid = nvr.child.id().unwrap();
            let api = Api::new(nvr.addr).login("admin", common::PASSWORD).await;
            let mut pusher = None;
            let id = if url.is_some() {
                nvr.cameras[0].0
            } else {
                let made = api
                    .post(
                        "/api/cameras",
                        json!({"name": "pi", "resolution": "1280x720"}),
                    )
                    .await
                    .json();
                let id = made["camera"]["id"].as_i64().expect("a pusher camera");
                let key = made["stream_key"].as_str().unwrap().to_string();
                pusher = Some(
                    Command::new(&pusher_bin)
                        .args(["--source", "test", "--width", "1280", "--height", "720"])
                        .arg("--server")
                        .arg(format!("http://{}", nvr.addr))
                        .args(["--camera", &id.to_string(), "--key", &key])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .kill_on_drop(true)
                        .spawn()
                        .expect("starting reallive-pusher"),
                );
                id
            };
            // Let a GOP or two pass through.
            tokio::time::sleep(Duration::from_secs(6)).await;
            let cpu0 = cpu_of(&[pid]);
            let t0 = Instant::now();
            let v = joins(&nvr, id, n).await;
            let cpu = cpu_of(&[pid]).saturating_sub(cpu0).as_secs_f64()
                / t0.elapsed().as_secs_f64()
                * 100.0;
            let j = nums(&v, "joins");
            let worst = j.iter().copied().fold(0.0, f64::max);
            let jitter = nums(&v, "jitterMs");
            let jitter_mean = jitter.iter().sum::<f64>() / jitter.len().max(1) as f64;
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} % |",
                match source {
                    "rtsp" => "RTSP camera, 720p30, 4 s GOP".to_string(),
                    "pusher" => "pusher, 720p30 (answers keyframe requests)".to_string(),
                    _ => format!(
                        "RTSP H.265 camera, 720p30, 4 s GOP, transcoded (first join {:.0} ms; the live grid, opened first, started the transcode)",
                        j.first().copied().unwrap_or(f64::NAN)
                    ),
                },
                if cache_mib > 0 { "on (8 MiB)" } else { "off" },
                median(j.clone()),
                worst,
                median(nums(&v, "fromLoadMs")),
                jitter_mean,
                cpu,
            );
            eprintln!("  joins: {j:?}; jitter buffer: {jitter:?}");
            drop(pusher);
        }
    }
}
