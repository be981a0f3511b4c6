//! `reallive-nvr` recording RTSP cameras' audio with their video: an AAC
//! camera and a G.711 (A-law) one, whose audio is transcoded to AAC, each
//! give files in which ffprobe finds an H.264 and an AAC stream of about
//! the same length, and which ffmpeg decodes without an error; a camera
//! with `audio = false` records video only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{PASSWORD, start_nvr};
use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::http::Api;
use reallive_test_support::process::signal;
use reallive_test_support::{RtspAudio, RtspCameraConfig, RtspCameraServer, require_elements};

/// One stream of a file, as ffprobe reads it.
#[derive(Debug)]
struct Stream {
    kind: String,
    codec: String,
    secs: f64,
}

/// ffprobe's streams of `path`, each with the duration of its packets.
fn streams(path: &Path) -> Vec<Stream> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=index,codec_type,codec_name:packet=stream_index,pts_time,duration_time"])
        .args(["-show_packets", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs (install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let num = |p: &serde_json::Value, k: &str| {
        p[k].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let index = s["index"].as_i64().unwrap();
            let packets: Vec<&serde_json::Value> = v["packets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["stream_index"].as_i64() == Some(index))
                .collect();
            let start = packets
                .iter()
                .map(|p| num(p, "pts_time"))
                .fold(f64::INFINITY, f64::min);
            let end = packets
                .iter()
                .map(|p| num(p, "pts_time") + num(p, "duration_time"))
                .fold(f64::NEG_INFINITY, f64::max);
            Stream {
                kind: s["codec_type"].as_str().unwrap().to_string(),
                codec: s["codec_name"].as_str().unwrap().to_string(),
                secs: if packets.is_empty() { 0.0 } else { end - start },
            }
        })
        .collect()
}

/// `ffmpeg -v error -i path -f null -`: what it complained about.
fn decode_errors(path: &Path) -> String {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg {}", path.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn camera(path: &str, codec: RtspAudio) -> RtspCameraServer {
    RtspCameraServer::start(RtspCameraConfig {
        path: path.into(),
        width: 320,
        height: 240,
        fps: 15,
        keyframe_interval: 15,
        audio: true,
        audio_codec: codec,
        ..RtspCameraConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_and_g711_cameras_record_aac_beside_their_video() {
    require_elements(&["x264enc", "avenc_aac", "alawdec", "rtpmp4gpay"]);
    let dir = tempfile::tempdir().unwrap();
    let cams = [
        camera("/aac", RtspAudio::Aac),
        camera("/pcma", RtspAudio::Pcma),
        camera("/muted", RtspAudio::Pcma),
    ];
    let config = dir.path().join("nvr.toml");
    std::fs::write(
        &config,
        format!(
            "[[cameras]]\nname = \"aac\"\nurl = \"{}\"\n\n\
             [[cameras]]\nname = \"pcma\"\nurl = \"{}\"\n\n\
             [[cameras]]\nname = \"muted\"\nurl = \"{}\"\naudio = false\n",
            cams[0].url(),
            cams[1].url(),
            cams[2].url()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    assert_eq!(nvr.cameras.len(), 3, "{}", nvr.log());
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    let ids: Vec<i64> = nvr.cameras.iter().map(|c| c.0).collect();
    common::wait_running(&api, &ids).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        signal(&mut nvr.child, "-TERM").await.success(),
        "{}",
        nvr.log()
    );

    let (store, _) = Store::open(StoreConfig::new(&data)).await.unwrap();
    for ((id, name), want_audio) in nvr.cameras.iter().zip([true, true, false]) {
        let recs = store
            .recordings(&reallive_core::CameraId(*id).store_key(), TimeRange::all())
            .await
            .unwrap();
        // The first file waits for the audio, so one file holds it all.
        assert_eq!(recs.len(), 1, "{name}: {recs:#?}\n{}", nvr.log());
        let path = store.root().join(&recs[0].path);
        let s = streams(&path);
        eprintln!("{name}: {s:?}");
        let video: Vec<&Stream> = s.iter().filter(|s| s.kind == "video").collect();
        let audio: Vec<&Stream> = s.iter().filter(|s| s.kind == "audio").collect();
        assert_eq!(video.len(), 1, "{name}: {s:?}");
        assert_eq!(video[0].codec, "h264", "{name}");
        assert!(video[0].secs > 7.0, "{name}: {s:?}");
        if want_audio {
            assert_eq!(audio.len(), 1, "{name}: {s:?}\n{}", nvr.log());
            assert_eq!(audio[0].codec, "aac", "{name}");
            assert!(
                (audio[0].secs - video[0].secs).abs() < 0.5,
                "{name}: audio {:.2} s, video {:.2} s",
                audio[0].secs,
                video[0].secs
            );
        } else {
            assert!(audio.is_empty(), "{name}: audio = false: {s:?}");
        }
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{name}: ffmpeg: {errors}");
    }
    store.close().await;
}

/// Live sound from RTSP cameras (issue 22): Chromium, on the live page of
/// an AAC camera and then of a G.711 one, receives their sound as Opus
/// (transcoded while it listens), decodes it and unmutes it with a click;
/// once the page is gone, the NVR stops the transcoder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_hears_aac_and_g711_cameras_live_as_opus() {
    require_elements(&["x264enc", "avenc_aac", "alawdec", "opusenc", "avdec_aac"]);
    let browser = common::browser_setup();
    let dir = tempfile::tempdir().unwrap();
    let cams = [
        camera("/aac", RtspAudio::Aac),
        camera("/pcma", RtspAudio::Pcma),
    ];
    let config = dir.path().join("nvr.toml");
    std::fs::write(
        &config,
        format!(
            "[[cameras]]\nname = \"aac\"\nurl = \"{}\"\n[cameras.motion]\nenabled = false\n\n\
             [[cameras]]\nname = \"pcma\"\nurl = \"{}\"\n[cameras.motion]\nenabled = false\n",
            cams[0].url(),
            cams[1].url(),
        ),
    )
    .unwrap();
    let nvr = start_nvr(&config, &dir.path().join("data")).await;
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    let ids: Vec<i64> = nvr.cameras.iter().map(|c| c.0).collect();
    common::wait_running(&api, &ids).await;
    for name in ["aac", "pcma"] {
        let env = [
            ("RL_USERNAME", "admin"),
            ("RL_PASSWORD", PASSWORD),
            ("RL_CAMERA_NAME", name),
            ("MIN_FRAMES", "30"),
            // Half a second of 48 kHz sound decoded.
            ("MIN_AUDIO_SAMPLES", "24000"),
            ("TIMEOUT_MS", "20000"),
        ];
        let v = common::run_e2e(
            &browser,
            "live.mjs",
            nvr.addr,
            &env,
            Duration::from_secs(120),
        )
        .await;
        assert_eq!(v["ok"], true, "{name}: {v}\nNVR log:\n{}", nvr.log());
        assert_eq!(v["audioCodec"], "audio/opus", "{name}: {v}");
        assert_eq!(v["unmuted"], true, "{name}: {v}");
    }
    // Nobody listens any more: each camera's transcoder stops once the
    // relay has seen the viewer go (a closed session, or ICE gone quiet),
    // at the camera's next packet.
    let left = std::time::Instant::now();
    let mut stopped = 0;
    for _ in 0..600 {
        stopped = nvr
            .log()
            .matches("live sound: nobody listens; transcoder stopped")
            .count();
        if stopped >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{stopped} transcoders stopped {:?} after the last page closed",
        left.elapsed()
    );
    let log = nvr.log();
    assert_eq!(
        log.matches("live sound: transcoding the camera's AAC to Opus")
            .count(),
        2,
        "one transcoder per camera: {log}"
    );
    assert_eq!(stopped, 2, "both transcoders stopped: {log}");
}
