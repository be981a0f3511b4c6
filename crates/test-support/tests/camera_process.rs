//! Fake cameras as processes: each serves what it was configured with, one
//! can be killed without touching the others, and it comes back on its old
//! URL. Checked with ffprobe, as a user would check a camera.
#![cfg(feature = "gst")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use reallive_test_support::camera_process::{FakeCamera, FakeCameraOptions, fake_camera_bin};
use reallive_test_support::{RtspCameraConfig, SceneChange};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

/// A live camera answers ffprobe in about 1.5 s on two busy cores.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// A killed camera's port refuses at once; anything slower is a hang.
const DEAD_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, PartialEq)]
struct Stream {
    codec_name: String,
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<Stream>,
}

/// The streams ffprobe finds at `url` over RTSP/TCP, or its stderr.
async fn ffprobe(url: &str) -> Result<Vec<Stream>, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", "tcp"])
        .args(["-show_entries", "stream=codec_name,width,height"])
        .args(["-of", "json", url])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run ffprobe (apt install ffmpeg)");
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice::<Probe>(&out.stdout)
        .map(|p| p.streams)
        .map_err(|e| format!("ffprobe JSON: {e}"))
}

async fn assert_serves_h264(camera: &FakeCamera, width: u32, height: u32) {
    let started = Instant::now();
    let streams = timeout(PROBE_TIMEOUT, ffprobe(camera.url()))
        .await
        .unwrap_or_else(|_| panic!("ffprobe {} hung for {PROBE_TIMEOUT:?}", camera.url()))
        .unwrap_or_else(|e| panic!("ffprobe {}: {e}", camera.url()));
    assert_eq!(
        streams,
        [Stream {
            codec_name: "h264".into(),
            width,
            height
        }],
        "{}",
        camera.url()
    );
    eprintln!("probed {} in {:?}", camera.url(), started.elapsed());
}

fn small_camera(width: u32, height: u32, pattern: &str) -> FakeCameraOptions {
    RtspCameraConfig {
        width,
        height,
        fps: 15,
        keyframe_interval: 15,
        bitrate_kbps: 300,
        pattern: pattern.into(),
        ..RtspCameraConfig::default()
    }
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_camera_goes_dark_alone_and_restarts_on_its_url() {
    let started = Instant::now();
    let mut a = FakeCamera::spawn(small_camera(320, 240, "ball")).await;
    let b = FakeCamera::spawn(small_camera(352, 288, "smpte")).await;
    eprintln!("two cameras up in {:?}", started.elapsed());
    assert_ne!(a.port(), b.port());
    tokio::join!(
        assert_serves_h264(&a, 320, 240),
        assert_serves_h264(&b, 352, 288)
    );

    // A client mid-session when the camera dies, as an NVR would be: the
    // camera's side of it lingers in the kernel after the process is gone.
    let mut client = timeout(PROBE_TIMEOUT, TcpStream::connect(("127.0.0.1", a.port())))
        .await
        .expect("connect in time")
        .expect("connect to camera a");
    let (url_a, old_pid) = (a.url().to_owned(), a.pid().expect("a is running"));
    a.kill().await;
    assert_eq!(a.pid(), None);
    let mut buf = [0u8; 64];
    let read = timeout(DEAD_PROBE_TIMEOUT, client.read(&mut buf))
        .await
        .expect("the dead camera's connection closes at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let probe_started = Instant::now();
    let dead = timeout(DEAD_PROBE_TIMEOUT, ffprobe(&url_a))
        .await
        .expect("ffprobe of a killed camera fails fast, not hangs");
    assert!(dead.is_err(), "killed camera still serves: {dead:?}");
    eprintln!(
        "ffprobe of the killed camera failed in {:?}",
        probe_started.elapsed()
    );
    assert_serves_h264(&b, 352, 288).await;

    let restart_started = Instant::now();
    a.restart().await;
    eprintln!("restarted in {:?}", restart_started.elapsed());
    assert_eq!(a.url(), url_a);
    assert_ne!(a.pid(), Some(old_pid));
    tokio::join!(
        assert_serves_h264(&a, 320, 240),
        assert_serves_h264(&b, 352, 288)
    );
    drop(client);
    eprintln!("whole test {:?}", started.elapsed());
}

/// Starts the binary itself with `args`, returning it once it printed its
/// URL.
async fn start_binary(args: &[&str]) -> tokio::process::Child {
    let mut child = Command::new(fake_camera_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start reallive-fake-camera");
    let stdout = child.stdout.take().expect("stdout pipe");
    let line = timeout(EXIT_TIMEOUT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("URL line in time")
        .expect("read stdout")
        .expect("a URL line");
    assert!(line.starts_with("rtsp://127.0.0.1:"), "{line}");
    assert!(line.ends_with("/front"), "{line}");
    child
}

#[tokio::test]
async fn binary_refuses_a_taken_port_and_exits_zero_when_asked_to_stop() {
    // A fixed port someone else holds: a clear message and the
    // "address in use" status that FakeCamera::restart retries on.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let taken = holder.local_addr().expect("its address").port();
    let out = timeout(
        EXIT_TIMEOUT,
        Command::new(fake_camera_bin())
            .args(["--port", &taken.to_string()])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("exits in time")
    .expect("run reallive-fake-camera");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(98), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&format!("127.0.0.1:{taken}")) && stderr.contains("Address already in use"),
        "{stderr}"
    );

    // SIGTERM, as a service manager would stop it.
    let mut child = start_binary(&["--path", "/front"]).await;
    let pid = child.id().expect("running").to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(kill.success());
    let status = timeout(EXIT_TIMEOUT, child.wait())
        .await
        .expect("exits in time after SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status}");

    // Its parent gone: stdin closes, and it stops rather than encode on.
    let mut child = start_binary(&["--path", "/front", "--exit-on-stdin-eof"]).await;
    drop(child.stdin.take());
    let status = timeout(EXIT_TIMEOUT, child.wait())
        .await
        .expect("exits in time after stdin closed")
        .expect("wait");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn restart_waits_for_its_port_to_come_free() {
    let mut camera = FakeCamera::spawn(small_camera(160, 120, "snow")).await;
    let port = camera.port();
    camera.kill().await;
    // Someone else holds the port for a while, as a lingering socket might.
    let holder = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        drop(holder);
    });
    let started = Instant::now();
    timeout(Duration::from_secs(20), camera.restart())
        .await
        .expect("restart in time");
    let waited = started.elapsed();
    eprintln!("restart waited {waited:?} for its port");
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    release.await.expect("release task");
    assert_eq!(camera.port(), port);
    assert_serves_h264(&camera, 160, 120).await;
}

/// A scripted camera: its picture changes when its script says, counted
/// from when the first client plays it, and it reports when (UTC).
#[tokio::test]
async fn a_scripted_scene_changes_on_time_and_says_when() {
    let camera = FakeCamera::spawn(
        RtspCameraConfig {
            script: vec![SceneChange::new(1.0, "scene", "pattern", "white")],
            ..small_camera(160, 120, "black").camera
        }
        .into(),
    )
    .await;
    // No client, no clock.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(camera.scene_changes(), []);
    let utc_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as i64
    };
    let before = utc_ns();
    // Each frame's time and mean brightness, for 2.5 s.
    let out = timeout(
        PROBE_TIMEOUT,
        Command::new("ffmpeg")
            .args(["-v", "error", "-rtsp_transport", "tcp", "-i", camera.url()])
            .args(["-t", "2.5", "-vf"])
            .arg("signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=/dev/stdout")
            .args(["-f", "null", "-"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffmpeg in time")
    .expect("run ffmpeg (apt install ffmpeg)");
    let change = camera.wait_scene_change(0, Duration::from_secs(5)).await;
    let after = utc_ns();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut frames = Vec::new();
    let mut pts = None;
    for line in text.lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            pts = t.trim().parse::<f64>().ok();
        } else if let (Some(t), Some(y)) = (pts, line.strip_prefix("lavfi.signalstats.YAVG=")) {
            frames.push((t, y.parse::<f64>().expect("a mean")));
        }
    }
    let first_white = frames.iter().find(|f| f.1 > 200.0).map(|f| f.0);
    eprintln!(
        "applied {:.3} s after the client started; first white frame at {first_white:?} s of {} frames",
        (change.utc_ns - before) as f64 / 1e9,
        frames.len()
    );
    assert_eq!(change.index, 0);
    assert_eq!(change.change.to_string(), "1:scene:pattern=white");
    assert!(
        change.utc_ns >= before + 1_000_000_000 && change.utc_ns <= after,
        "applied at {} ns, the client played from {before} to {after}",
        change.utc_ns
    );
    assert!(frames.first().is_some_and(|f| f.1 < 30.0), "{text}");
    assert!(
        first_white.is_some_and(|t| (0.8..=1.6).contains(&t)),
        "the picture turns white about 1 s into the stream: {text}"
    );
}
