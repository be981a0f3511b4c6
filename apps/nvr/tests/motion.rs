#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Motion mode acceptance: `reallive-nvr` against real RTSP cameras (one
//! process each) whose pictures are scripted, all four in one NVR at once
//! for a minute:
//!
//! - a still picture records nothing and has no event;
//! - a still picture where a ball moves from a known time to a known later
//!   time records exactly once, around the motion with its pre- and
//!   post-roll, and the event is listed with those times;
//! - a ball that moves only inside an exclude zone records nothing;
//! - a textured picture whose light steps up and back down records nothing.
//!
//! The cameras report when (UTC) each scripted change was applied, so the
//! recording and the event are checked against the real switch times.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{PASSWORD, recorded, start_nvr, state_of};
use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::camera_process::FakeCamera;
use reallive_test_support::http::Api;
use reallive_test_support::process::signal;
use reallive_test_support::{RtspCameraConfig, SceneChange};

/// The cameras' picture: small and 15 fps, to keep four encoders, four
/// decoders and the detectors light on two cores.
const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
const FPS: u32 = 15;
/// A keyframe every second: a GOP is 1 s.
const GOP_MS: i64 = 1000;

/// `[cameras]` and `[cameras.motion]`, the same for every camera.
const PRE_ROLL_SECS: i64 = 2;
const POST_ROLL_SECS: i64 = 2;
const DETECT_FPS: i64 = 5;
const FRAMES_TO_START: i64 = 2;
const SECS_TO_END_MS: i64 = 1000;

/// The burst: the ball appears and disappears at these seconds after the
/// camera's stream started playing (the NVR connected).
const BURST_ON_SECS: f64 = 8.0;
const BURST_OFF_SECS: f64 = 18.0;
/// The light change: brightness up at, and back down at.
const LIGHT_UP_SECS: f64 = 10.0;
const LIGHT_DOWN_SECS: f64 = 25.0;
/// How long every camera is watched.
const WATCH: Duration = Duration::from_secs(60);

/// What may lie between a frame leaving the camera and the detector seeing
/// it (RTP over loopback, the NVR's queues, the low-rate decoder), and
/// between the camera's clock and the NVR's mapping of frame times to UTC.
const LATENCY_MS: i64 = 500;

/// The ball of `videotestsrc pattern=ball` (a 20-pixel radius) moving in
/// a 96x52 tile composited into the bottom-right corner of a still SMPTE
/// picture, at x 224..320 and y 128..180 (0.70..1 and 0.71..1 of the
/// picture); the tile also hides the SMPTE picture's patch of snow. Tile
/// edges on 16-pixel macroblocks keep the encoder's changes inside them.
/// Without the exclude zone this ball is motion (an event at once, score
/// about 1.3 %).
const CORNER_SOURCE: &str = "videotestsrc is-live=true pattern=smpte \
     ! video/x-raw,width=320,height=180 ! mix. \
     videotestsrc is-live=true pattern=ball ! video/x-raw,width=96,height=52 ! mix. \
     compositor name=mix sink_1::xpos=224 sink_1::ypos=128";
/// The SMPTE picture through `videobalance`, whose brightness the script
/// steps. Without its bottom quarter: `videotestsrc`'s SMPTE has a patch
/// of snow there, new noise in every frame, which is motion.
const LIGHT_SOURCE: &str = "videotestsrc is-live=true pattern=smpte \
     ! video/x-raw,width=320,height=240 ! videocrop bottom=60 ! videobalance name=light";
/// The exclude zone over that corner, with a margin of 0.1 of the picture
/// (32 and 18 pixels) for the encoder's deblocking.
const CORNER_ZONE: &str = "[[0.6, 0.6], [1.0, 0.6], [1.0, 1.0], [0.6, 1.0]]";

/// One NVR, four scripted cameras and one with a sub-stream, one minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_mode_records_motion_and_ignores_stillness_excluded_zones_and_light() {
    let test_started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let base = RtspCameraConfig {
        width: WIDTH,
        height: HEIGHT,
        fps: FPS,
        keyframe_interval: FPS,
        bitrate_kbps: 600,
        ..RtspCameraConfig::default()
    };
    // (name, camera, extra config lines)
    let specs: Vec<(&str, RtspCameraConfig, String)> = vec![
        (
            "still",
            RtspCameraConfig {
                path: "/still".into(),
                pattern: "solid-color".into(),
                ..base.clone()
            },
            String::new(),
        ),
        (
            "burst",
            RtspCameraConfig {
                path: "/burst".into(),
                // Black, then the ball (white on black), then black again.
                pattern: "black".into(),
                script: vec![
                    SceneChange::new(BURST_ON_SECS, "scene", "pattern", "ball"),
                    SceneChange::new(BURST_OFF_SECS, "scene", "pattern", "black"),
                ],
                ..base.clone()
            },
            String::new(),
        ),
        (
            "corner",
            RtspCameraConfig {
                path: "/corner".into(),
                source: Some(CORNER_SOURCE.into()),
                ..base.clone()
            },
            format!(
                "[[cameras.motion.zones]]\nname = \"corner\"\nkind = \"exclude\"\npoints = {CORNER_ZONE}\n"
            ),
        ),
        (
            "light",
            RtspCameraConfig {
                path: "/light".into(),
                source: Some(LIGHT_SOURCE.into()),
                script: vec![
                    SceneChange::new(LIGHT_UP_SECS, "light", "brightness", "0.4"),
                    SceneChange::new(LIGHT_DOWN_SECS, "light", "brightness", "0"),
                ],
                ..base.clone()
            },
            String::new(),
        ),
    ];
    // A fifth camera whose main stream is still but whose sub-stream (a
    // camera of its own, at 5 fps) has the ball: motion is detected on
    // the sub-stream, and the main stream is recorded.
    let sub_stream = FakeCamera::spawn(
        RtspCameraConfig {
            path: "/sub".into(),
            pattern: "ball".into(),
            fps: 5,
            keyframe_interval: 5,
            ..base.clone()
        }
        .into(),
    )
    .await;
    let mut specs = specs;
    specs.push((
        "sub",
        RtspCameraConfig {
            path: "/sub-main".into(),
            pattern: "solid-color".into(),
            ..base.clone()
        },
        String::new(),
    ));
    let mut cams = Vec::new();
    let mut text = String::new();
    for (name, config, extra) in specs {
        let cam = FakeCamera::spawn(config.into()).await;
        if name == "sub" {
            text.push_str(&format!(
                "[[cameras]]\nname = \"sub\"\nurl = \"{}\"\nsub_url = \"{}\"\nmode = \"motion\"\n\
                 [cameras.motion]\nenabled = true\n",
                cam.url(),
                sub_stream.url()
            ));
            cams.push(cam);
            continue;
        }
        text.push_str(&format!(
            "[[cameras]]\nname = \"{name}\"\nurl = \"{}\"\nmode = \"motion\"\n\
             pre_roll_secs = {PRE_ROLL_SECS}\npost_roll_secs = {POST_ROLL_SECS}\n\
             [cameras.motion]\nenabled = true\nsensitivity = 60\nmin_area_percent = 0.5\n\
             fps = {DETECT_FPS}\nframes_to_start = {FRAMES_TO_START}\nsecs_to_end = {:.1}\n{extra}\n",
            cam.url(),
            SECS_TO_END_MS as f64 / 1000.0
        ));
        cams.push(cam);
    }
    let config = dir.path().join("nvr.toml");
    std::fs::write(&config, &text).unwrap();
    let data = dir.path().join("data");
    let mut nvr = start_nvr(&config, &data).await;
    let id = |name: &str| {
        nvr.cameras
            .iter()
            .find(|c| c.1 == name)
            .unwrap_or_else(|| panic!("camera {name}: {:?}", nvr.cameras))
            .0
    };
    let (still, burst, corner, light) = (id("still"), id("burst"), id("corner"), id("light"));
    let sub = id("sub");
    let ids = [still, burst, corner, light, sub];
    let api = Api::new(nvr.addr).login("admin", PASSWORD).await;
    common::wait_running(&api, &ids).await;
    let watching = Instant::now();

    // The scripted switches, when the cameras applied them.
    let script_wait = Duration::from_secs(40);
    let on = cams[1].wait_scene_change(0, script_wait).await.utc_ns / 1_000_000;
    let off = cams[1].wait_scene_change(1, script_wait).await.utc_ns / 1_000_000;
    let up = cams[3].wait_scene_change(0, script_wait).await.utc_ns / 1_000_000;
    let down = cams[3].wait_scene_change(1, script_wait).await.utc_ns / 1_000_000;
    eprintln!(
        "ball on {on} off {off} ({} ms), light up {up} down {down} ({} ms) [Unix ms]",
        off - on,
        down - up
    );

    tokio::time::sleep(WATCH.saturating_sub(watching.elapsed())).await;
    // Still all running: nothing below passes because a camera died.
    let status = api.get("/api/status").await.json();
    for id in ids {
        assert_eq!(
            state_of(&status, id),
            "running",
            "{status:#}\n{}",
            nvr.log()
        );
    }
    let list = |what: &'static str, id: i64| {
        let api = &api;
        async move {
            api.get(&format!("/api/{what}?camera={id}"))
                .await
                .json()
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let secs = |ms: i64| format!("{:+.2} s", ms as f64 / 1000.0);
    // Every check is made and reported, not only the first that fails.
    let mut failures = Vec::new();

    // Still, corner and light: nothing at all.
    for (name, id, since) in [
        ("still", still, None),
        ("corner", corner, None),
        ("light", light, Some(("the light up", up))),
    ] {
        let (recs, evs) = (list("recordings", id).await, list("events", id).await);
        eprintln!(
            "{name}: {} recordings, {} events over {:.0} s",
            recs.len(),
            evs.len(),
            watching.elapsed().as_secs_f64()
        );
        if !recs.is_empty() || !evs.is_empty() {
            let times: Vec<String> = evs
                .iter()
                .map(|e| {
                    let at = |k: &str| e[k].as_i64().map(|ms| since.map_or(ms, |s| ms - s.1));
                    format!(
                        "{} {} to {} score {}",
                        e["kind"].as_str().unwrap_or("?"),
                        at("start_ms").map_or("?".into(), secs),
                        at("end_ms").map_or("open".into(), secs),
                        e["score"]
                    )
                })
                .collect();
            failures.push(format!(
                "{name}: no recording and no event, got {} recordings, events (from {}): {times:?}",
                recs.len(),
                since.map_or("the Unix epoch", |s| s.0)
            ));
        }
    }

    // The sub-stream camera: its motion, seen on the sub-stream, records
    // the still main stream.
    let (recs, evs) = (list("recordings", sub).await, list("events", sub).await);
    eprintln!("sub: {} recordings, {} events", recs.len(), evs.len());
    if recs.is_empty() || evs.first().is_none_or(|e| e["kind"] != "motion") {
        failures.push(format!(
            "sub: motion on the sub-stream records the main stream: {recs:#?} {evs:#?}"
        ));
    }

    // The burst: one event, one recording.
    let recs = list("recordings", burst).await;
    let evs = list("events", burst).await;
    let log = nvr.log();
    assert!(signal(&mut nvr.child, "-TERM").await.success(), "{log}");
    let (file_secs, files, _) = recorded(&data, burst).await;
    let sample_ms = 1000 / DETECT_FPS;

    // The event: from the first picture the detector sampled with the ball
    // (at most one sample, 200 ms, after `on`) to the last (at most one
    // sample before `off`), give or take LATENCY.
    if let [ev] = evs.as_slice() {
        let ev_start = ev["start_ms"].as_i64().unwrap();
        let ev_end = ev["end_ms"].as_i64();
        eprintln!(
            "burst event: {} in {}, score {}, from {} after the ball came to {} after it went",
            ev["kind"],
            ev["zone"],
            ev["score"],
            secs(ev_start - on),
            ev_end.map_or("open".into(), |e| secs(e - off)),
        );
        if ev["kind"] != "motion" || ev["zone"] != "frame" {
            failures.push(format!("burst: a motion event in zone frame: {ev}"));
        }
        if !ev["score"].as_f64().is_some_and(|s| s >= 0.5) {
            failures.push(format!("burst: a score of min_area_percent or more: {ev}"));
        }
        if !(on - LATENCY_MS..=on + sample_ms + LATENCY_MS).contains(&ev_start) {
            failures.push(format!(
                "burst: the event starts with the ball, not {} after it came",
                secs(ev_start - on)
            ));
        }
        if !ev_end.is_some_and(|e| (off - sample_ms - LATENCY_MS..=off + LATENCY_MS).contains(&e)) {
            failures.push(format!(
                "burst: the event ends with the ball, not {} after it went",
                ev_end.map_or("never".into(), |e| secs(e - off))
            ));
        }
    } else {
        failures.push(format!("burst: exactly one event, got {evs:#?}"));
    }

    // The recording covers [on - PRE_ROLL, off + POST_ROLL]:
    //
    // - Its start. The first picture the detector samples with the ball is
    //   at most 1/DETECT_FPS (200 ms) after `on`; FRAMES_TO_START (2) such
    //   pictures start the event, so it is noticed at most 2/5 s = 400 ms
    //   after `on`, plus LATENCY. The pre-roll ring then holds at least
    //   PRE_ROLL before that, and at most one GOP more (it starts at a
    //   keyframe). So the start is within
    //   [on - PRE_ROLL - GOP - LATENCY, on - PRE_ROLL + 400 ms + LATENCY]
    //   = [on - 3.5 s, on - 1.1 s].
    // - Its end. The last picture with the ball is at most 1/DETECT_FPS
    //   before `off`; the event ends SECS_TO_END (1 s) after it, noticed
    //   at the next sample; the post-roll follows. An NVR that counted the
    //   post-roll from the last motion would end sooner, one that counts
    //   from the end of the event later, so the end is within
    //   [off + POST_ROLL - 200 ms - LATENCY,
    //    off + POST_ROLL + SECS_TO_END + 200 ms + LATENCY]
    //   = [off + 1.3 s, off + 3.7 s].
    //
    // Checked twice: the recording's times in the API, and the video in
    // its file (where the ball first shows, so when the file starts).
    let start_window = (
        on - PRE_ROLL_SECS * 1000 - GOP_MS - LATENCY_MS,
        on - PRE_ROLL_SECS * 1000 + FRAMES_TO_START * sample_ms + LATENCY_MS,
    );
    let end_window = (
        off + POST_ROLL_SECS * 1000 - sample_ms - LATENCY_MS,
        off + POST_ROLL_SECS * 1000 + SECS_TO_END_MS + sample_ms + LATENCY_MS,
    );
    eprintln!(
        "burst: the recording should start {}..{} from the ball coming and end {}..{} from it going",
        secs(start_window.0 - on),
        secs(start_window.1 - on),
        secs(end_window.0 - off),
        secs(end_window.1 - off),
    );
    let mut check_span = |what: &str, start: i64, end: i64| {
        eprintln!(
            "burst {what}: starts {} from the ball coming, ends {} from it going, {:.2} s long",
            secs(start - on),
            secs(end - off),
            (end - start) as f64 / 1000.0
        );
        if !(start_window.0..=start_window.1).contains(&start) {
            failures.push(format!(
                "burst {what}: starts PRE_ROLL before the ball, not {} from it",
                secs(start - on)
            ));
        }
        if !(end_window.0..=end_window.1).contains(&end) {
            failures.push(format!(
                "burst {what}: ends POST_ROLL after the ball, not {} from its going",
                secs(end - off)
            ));
        }
    };
    if let [rec] = recs.as_slice() {
        let (start, end) = (
            rec["start_ms"].as_i64().unwrap(),
            rec["end_ms"].as_i64().unwrap(),
        );
        check_span("recording (API)", start, end);
        let video = ball_in_file(&data, burst).await;
        let video_start = on - (video.first_ball_secs * 1000.0) as i64;
        let video_end = video_start + (video.secs * 1000.0) as i64;
        eprintln!(
            "burst file: {:.2} s (ffprobe {file_secs:.2} s), the ball from {:.2} s to {:.2} s in it",
            video.secs, video.first_ball_secs, video.last_ball_secs
        );
        check_span("recording (its video)", video_start, video_end);
        if (video.last_ball_secs - video.first_ball_secs - (off - on) as f64 / 1000.0).abs() > 0.5 {
            failures.push(format!(
                "burst file: the ball shows for the {:.2} s it moved, not {:.2} s",
                (off - on) as f64 / 1000.0,
                video.last_ball_secs - video.first_ball_secs
            ));
        }
        if files != 1 || ((end - start) as f64 / 1000.0 - file_secs).abs() > 0.25 {
            failures.push(format!(
                "burst: one file as long as its recording: {files} files, {file_secs:.2} s, \
                 {:.2} s in the API",
                (end - start) as f64 / 1000.0
            ));
        }
    } else {
        failures.push(format!("burst: exactly one recording, got {recs:#?}"));
    }
    eprintln!("whole test {:.1} s", test_started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{failures:#?}\n{log}");
}

/// Where the ball shows in a camera's one recorded file.
struct BallInFile {
    /// The file's length.
    secs: f64,
    /// The first and the last frame with the ball, from the file's start.
    first_ball_secs: f64,
    last_ball_secs: f64,
}

/// Decodes the camera's recording (ffmpeg, to GRAY8) and finds the frames
/// with the ball: the white ball is about 1200 of the 320x180 pixels, the
/// rest is black.
async fn ball_in_file(data: &Path, id: i64) -> BallInFile {
    let (store, _) = Store::open(StoreConfig::new(data)).await.unwrap();
    let recs = store
        .recordings(&reallive_core::CameraId(id).store_key(), TimeRange::all())
        .await
        .unwrap();
    let path = store.root().join(&recs[0].path);
    store.close().await;
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-vf", "format=gray", "-f", "rawvideo", "-"])
        .output()
        .await
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = (WIDTH * HEIGHT) as usize;
    let with_ball: Vec<bool> = out
        .stdout
        .chunks_exact(frame)
        .map(|f| f.iter().filter(|&&p| p > 100).count() > 300)
        .collect();
    let at = |i: usize| i as f64 / f64::from(FPS);
    BallInFile {
        secs: at(with_ball.len()),
        first_ball_secs: with_ball.iter().position(|&b| b).map_or(f64::NAN, at),
        last_ball_secs: with_ball.iter().rposition(|&b| b).map_or(f64::NAN, at),
    }
}
