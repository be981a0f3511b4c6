//! Fake RTSP cameras as child processes (feature `gst`): a test can SIGKILL
//! one camera, as a power cut would, and leave the others serving.
//!
//! [`FakeCamera`] runs the `reallive-fake-camera` binary of this crate,
//! which serves one [`RtspCameraServer`](crate::RtspCameraServer) mount on
//! 127.0.0.1. In-process cameras share the test's fate; these don't.
//!
//! # The binary must be built first
//!
//! Cargo builds a package's binaries only for that package's own
//! integration tests, so tests of other crates (say `apps/nvr`) need:
//!
//! ```text
//! cargo build -p reallive-test-support --bin reallive-fake-camera
//! ```
//!
//! (with `--release` for release test runs). [`fake_camera_bin`] looks for
//! it next to the running test binary: tests live in `target/<profile>/deps/`
//! and the binary in `target/<profile>/`. Set [`FakeCameraOptions::bin`]
//! where that layout does not hold.
//!
//! # Async contract
//!
//! Every method runs on any tokio runtime and bounds its waits: 10 s for a
//! camera to print its URL, 5 s to reap a killed one, 5 s for a restarted
//! one to get its port back. A camera is SIGKILLed when its [`FakeCamera`]
//! is dropped, and exits on its own when the test process dies (it watches
//! its stdin, which only the test holds).
//!
//! # Example
//!
//! ```no_run
//! use reallive_test_support::RtspCameraConfig;
//! use reallive_test_support::camera_process::FakeCamera;
//!
//! # async fn f() {
//! let mut cams = Vec::new();
//! for pattern in ["ball", "smpte", "snow", "pinwheel"] {
//!     let config = RtspCameraConfig { pattern: pattern.into(), ..Default::default() };
//!     cams.push(FakeCamera::spawn(config.into()).await);
//! }
//! cams[2].kill().await; // SIGKILL: its clients see the connection drop.
//! // ... the NVR notices; the other three keep recording ...
//! cams[2].restart().await; // Same port, so the same URL works again.
//! # }
//! ```
//!
//! # Scripted scenes
//!
//! A camera with a [`script`](RtspCameraConfig::script) reports each change
//! as it applies it; [`FakeCamera::wait_scene_change`] returns when (UTC),
//! so a test knows when its camera's picture started moving:
//!
//! ```no_run
//! use std::time::Duration;
//! use reallive_test_support::{RtspCameraConfig, SceneChange};
//! use reallive_test_support::camera_process::FakeCamera;
//!
//! # async fn f() {
//! let cam = FakeCamera::spawn(RtspCameraConfig {
//!     pattern: "black".into(),
//!     // The default source is `videotestsrc name=scene`.
//!     script: vec![
//!         SceneChange::new(10.0, "scene", "pattern", "ball"),
//!         SceneChange::new(20.0, "scene", "pattern", "black"),
//!     ],
//!     ..Default::default()
//! }.into()).await;
//! // ... a client connects: the media starts playing, the clock starts ...
//! let moving = cam.wait_scene_change(0, Duration::from_secs(30)).await;
//! println!("the ball appeared at {} ns UTC", moving.utc_ns);
//! # }
//! ```
#![cfg(feature = "gst")]

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use crate::{AppliedChange, RtspCameraConfig, RtspCodec};

/// The binary's name in `target/<profile>/`.
pub const BIN_NAME: &str = "reallive-fake-camera";

/// How long a camera has to print its URL.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted camera may retry a port that is still held.
const REBIND_TIMEOUT: Duration = Duration::from_secs(5);
const REBIND_BACKOFF: Duration = Duration::from_millis(100);
/// How long a SIGKILLed camera may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// The binary's exit status when its fixed port is taken (`EADDRINUSE`).
const EXIT_ADDR_IN_USE: i32 = 98;
/// How much of a failed camera's stderr a panic message quotes.
const MAX_STDERR_BYTES: usize = 16 * 1024;

/// What [`FakeCamera::spawn`] starts.
#[derive(Clone, Debug, Default)]
pub struct FakeCameraOptions {
    /// The camera: mount path, size, codec, pattern, credentials... With
    /// `port: None` it picks a free port, which a restart then keeps.
    pub camera: RtspCameraConfig,
    /// The `reallive-fake-camera` binary; `None` finds it with
    /// [`fake_camera_bin`].
    pub bin: Option<PathBuf>,
}

impl From<RtspCameraConfig> for FakeCameraOptions {
    fn from(camera: RtspCameraConfig) -> Self {
        FakeCameraOptions { camera, bin: None }
    }
}

/// One fake RTSP camera in a child process, on 127.0.0.1.
///
/// SIGKILLed when dropped.
pub struct FakeCamera {
    camera: RtspCameraConfig,
    bin: PathBuf,
    port: u16,
    url: String,
    running: Option<Running>,
}

struct Running {
    child: Child,
    /// Held, never written: the camera exits when this closes, so it
    /// cannot outlive the test process.
    _stdin: ChildStdin,
    /// Its scene changes so far, from its `applied` lines.
    applied: watch::Receiver<Vec<AppliedChange>>,
}

impl std::fmt::Debug for FakeCamera {
    // Not derived: the config holds the camera's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCamera")
            .field("url", &self.url)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl FakeCamera {
    /// Starts a camera and waits (at most 10 s) for it to serve.
    ///
    /// Panics with the camera's stderr if it does not, and if the binary
    /// is missing (see the [module docs](self)).
    pub async fn spawn(opts: FakeCameraOptions) -> FakeCamera {
        let bin = opts.bin.unwrap_or_else(fake_camera_bin);
        let requested = opts.camera.port.unwrap_or(0);
        match launch(&bin, &opts.camera, requested).await {
            Ok((running, url, port)) => FakeCamera {
                camera: opts.camera,
                bin,
                port,
                url,
                running: Some(running),
            },
            Err(f) => panic!("fake camera on 127.0.0.1:{requested} did not start: {f}"),
        }
    }

    /// The stream URL, `rtsp://127.0.0.1:PORT/PATH`, without credentials.
    /// It stays the same across [`restart`](Self::restart).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The stream URL with `user:password@` when the camera requires auth.
    pub fn url_with_credentials(&self) -> String {
        match &self.camera.credentials {
            Some((u, p)) => format!("rtsp://{u}:{p}@127.0.0.1:{}{}", self.port, self.camera.path),
            None => self.url.clone(),
        }
    }

    /// The TCP port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The camera process's id; `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(|r| r.child.id())
    }

    /// The [`script`](RtspCameraConfig::script)'s changes this camera
    /// process has applied so far, in order. Empty after
    /// [`kill`](Self::kill); a [`restart`](Self::restart)ed camera plays
    /// its script again, from its new media's start.
    pub fn scene_changes(&self) -> Vec<AppliedChange> {
        self.running
            .as_ref()
            .map(|r| r.applied.borrow().clone())
            .unwrap_or_default()
    }

    /// Waits, at most `within`, for the change at `index` in the script to
    /// be applied, and returns it with its UTC time. The script's clock
    /// starts when the first client starts playing the stream.
    ///
    /// Panics if it is not applied in time or the camera is not running.
    pub async fn wait_scene_change(&self, index: usize, within: Duration) -> AppliedChange {
        let Some(running) = self.running.as_ref() else {
            panic!("fake camera {} is not running", self.url);
        };
        let mut rx = running.applied.clone();
        let found = timeout(within, rx.wait_for(|v| v.iter().any(|a| a.index == index)))
            .await
            .map(|r| {
                r.ok()
                    .and_then(|v| v.iter().find(|a| a.index == index).cloned())
            });
        match found {
            Ok(Some(a)) => a,
            Ok(None) => panic!(
                "fake camera {} exited before scene change {index}; applied: {:?}",
                self.url,
                running.applied.borrow()
            ),
            Err(_) => panic!(
                "fake camera {}: scene change {index} not applied within {within:?}; \
                 applied: {:?} (its clock starts when a client plays the stream)",
                self.url,
                running.applied.borrow()
            ),
        }
    }

    /// SIGKILLs the camera and reaps it (at most 5 s). Its port is closed
    /// when this returns; its clients see their connections reset. Does
    /// nothing if it is already killed.
    pub async fn kill(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        // An error means it has already exited; `wait` still reaps it.
        let _ = running.child.start_kill();
        match timeout(REAP_TIMEOUT, running.child.wait()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("reaping fake camera {}: {e}", self.url),
            Err(_) => panic!(
                "fake camera {} still not reaped {REAP_TIMEOUT:?} after SIGKILL",
                self.url
            ),
        }
    }

    /// Starts the camera again on the same port, so the same URL works
    /// again; SIGKILLs it first if it is still running. Retries for up to
    /// 5 s while the port is still held, then panics with the camera's
    /// stderr.
    pub async fn restart(&mut self) {
        self.kill().await;
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match launch(&self.bin, &self.camera, self.port).await {
                Ok((running, url, port)) => {
                    assert_eq!(port, self.port, "restarted camera moved port");
                    self.url = url;
                    self.running = Some(running);
                    return;
                }
                Err(f) if f.addr_in_use() && Instant::now() < deadline => {
                    sleep(REBIND_BACKOFF).await;
                }
                Err(f) => panic!("fake camera {} did not restart: {f}", self.url),
            }
        }
    }
}

/// Where [`FakeCamera::spawn`] finds `reallive-fake-camera`: next to the
/// running executable or one directory up, so a test binary in
/// `target/<profile>/deps/` finds `target/<profile>/reallive-fake-camera`.
///
/// Panics, saying how to build it, if it is not there.
pub fn fake_camera_bin() -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("locating the test executable to find {BIN_NAME}: {e}"));
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(BIN_NAME))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no {BIN_NAME} beside {} or its parent directory; \
                 build it: cargo build -p reallive-test-support --bin {BIN_NAME} \
                 (add --release for a release test run)",
                exe.display()
            )
        })
}

/// Why a camera process did not start.
#[derive(Debug)]
struct StartFailure {
    reason: String,
    status: Option<ExitStatus>,
    stderr: String,
}

impl StartFailure {
    /// The fixed port was still held, by a camera's lingering socket or
    /// anyone else.
    fn addr_in_use(&self) -> bool {
        self.status.and_then(|s| s.code()) == Some(EXIT_ADDR_IN_USE)
    }
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it {}", self.reason)?;
        if let Some(s) = self.status {
            write!(f, " ({s})")?;
        }
        write!(f, "; its stderr:\n{}", self.stderr)
    }
}

/// Starts the binary on `port` (0: a free one) and waits for its URL line.
/// Returns the process, its URL and its port.
async fn launch(
    bin: &Path,
    camera: &RtspCameraConfig,
    port: u16,
) -> Result<(Running, String, u16), StartFailure> {
    let mut child = Command::new(bin)
        .args(camera_args(camera, port))
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        panic!("{BIN_NAME} spawned without its pipes");
    };
    let pid = child.id().unwrap_or(0);
    let stderr_task = tokio::spawn(forward_stderr(stderr, pid));
    let mut lines = BufReader::new(stdout).lines();
    let (reason, exited) = match timeout(STARTUP_TIMEOUT, lines.next_line()).await {
        Ok(Ok(Some(line))) => match url_port(&line) {
            Some(port) => {
                let (tx, applied) = watch::channel(Vec::new());
                tokio::spawn(read_applied(lines, tx, pid));
                let running = Running {
                    child,
                    _stdin: stdin,
                    applied,
                };
                return Ok((running, line, port));
            }
            None => (
                format!("printed {line:?}, not rtsp://127.0.0.1:PORT/PATH"),
                false,
            ),
        },
        Ok(Ok(None)) => ("exited before printing its URL".to_owned(), true),
        Ok(Err(e)) => (format!("could not be read: {e}"), false),
        Err(_) => (format!("printed no URL within {STARTUP_TIMEOUT:?}"), false),
    };
    if !exited {
        let _ = child.start_kill();
    }
    let status = timeout(REAP_TIMEOUT, child.wait())
        .await
        .ok()
        .and_then(Result::ok);
    // Its stderr closes when it exits; a grandchild could hold it open.
    let stderr = timeout(Duration::from_secs(2), stderr_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| "(unavailable)".to_owned());
    Err(StartFailure {
        reason,
        status,
        stderr,
    })
}

/// Reads the camera's stdout after its URL line: its `applied` lines, until
/// it exits. Reading on also keeps its writes from failing.
async fn read_applied(
    mut lines: Lines<BufReader<ChildStdout>>,
    tx: watch::Sender<Vec<AppliedChange>>,
    pid: u32,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        match line.parse::<AppliedChange>() {
            Ok(a) => tx.send_modify(|v| v.push(a)),
            Err(e) => eprintln!("{BIN_NAME}[{pid}]: unexpected stdout line: {e}"),
        }
    }
}

/// Passes the camera's stderr on to the test's, so its warnings show in
/// a failed test's output; returns the first [`MAX_STDERR_BYTES`] of it
/// for a panic message. Reading it also keeps a chatty camera from
/// blocking on a full pipe.
async fn forward_stderr(stderr: ChildStderr, pid: u32) -> String {
    let mut lines = BufReader::new(stderr).lines();
    let mut kept = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("{BIN_NAME}[{pid}]: {line}");
        if kept.len() < MAX_STDERR_BYTES {
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    kept
}

/// The port in the camera's `rtsp://127.0.0.1:PORT/PATH` line.
fn url_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("rtsp://127.0.0.1:")?;
    let (port, path) = rest.split_once('/')?;
    (!path.is_empty()).then_some(())?;
    port.parse().ok().filter(|&p| p != 0)
}

/// The binary's flags for `camera` on `port`.
fn camera_args(camera: &RtspCameraConfig, port: u16) -> Vec<String> {
    let mut args = vec![
        "--port".to_owned(),
        port.to_string(),
        "--path".to_owned(),
        camera.path.clone(),
        "--width".to_owned(),
        camera.width.to_string(),
        "--height".to_owned(),
        camera.height.to_string(),
        "--fps".to_owned(),
        camera.fps.to_string(),
        "--keyframe-interval".to_owned(),
        camera.keyframe_interval.to_string(),
        "--codec".to_owned(),
        match camera.codec {
            RtspCodec::H264 => "h264",
            RtspCodec::H265 => "h265",
        }
        .to_owned(),
        "--pattern".to_owned(),
        camera.pattern.clone(),
        "--bitrate-kbps".to_owned(),
        camera.bitrate_kbps.to_string(),
        "--slices".to_owned(),
        camera.slices.to_string(),
        "--bframes".to_owned(),
        camera.bframes.to_string(),
    ];
    if let Some((user, password)) = &camera.credentials {
        args.extend(["--user".to_owned(), user.clone()]);
        args.extend(["--password".to_owned(), password.clone()]);
    }
    if camera.audio {
        args.push("--audio".to_owned());
    }
    if let Some(source) = &camera.source {
        args.extend(["--source".to_owned(), source.clone()]);
    }
    for change in &camera.script {
        args.extend(["--at".to_owned(), change.to_string()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SceneChange;

    #[test]
    fn url_line_gives_the_port() {
        assert_eq!(url_port("rtsp://127.0.0.1:8554/stream"), Some(8554));
        assert_eq!(url_port("rtsp://127.0.0.1:8554/a/b"), Some(8554));
        assert_eq!(url_port("rtsp://127.0.0.1:0/stream"), None);
        assert_eq!(url_port("rtsp://127.0.0.1:8554/"), None);
        assert_eq!(url_port("rtsp://127.0.0.1:8554"), None);
        assert_eq!(url_port("rtsp://localhost:8554/stream"), None);
        assert_eq!(url_port("listening"), None);
    }

    #[test]
    fn every_option_becomes_a_flag() {
        let camera = RtspCameraConfig {
            path: "/cam2".into(),
            codec: RtspCodec::H265,
            credentials: Some(("admin".into(), "pw".into())),
            audio: true,
            pattern: "smpte".into(),
            bitrate_kbps: 500,
            bframes: 2,
            ..RtspCameraConfig::default()
        };
        assert_eq!(
            camera_args(&camera, 9000).join(" "),
            "--port 9000 --path /cam2 --width 640 --height 360 --fps 30 \
             --keyframe-interval 30 --codec h265 --pattern smpte --bitrate-kbps 500 \
             --slices 1 --bframes 2 --user admin --password pw --audio"
        );
        let scripted = RtspCameraConfig {
            source: Some("videotestsrc pattern=smpte ! videobalance name=light".into()),
            script: vec![
                SceneChange::new(10.0, "light", "brightness", "0.4"),
                SceneChange::new(20.5, "light", "brightness", "0"),
            ],
            ..RtspCameraConfig::default()
        };
        let args = camera_args(&scripted, 0);
        assert_eq!(
            args[args.len() - 6..],
            [
                "--source",
                "videotestsrc pattern=smpte ! videobalance name=light",
                "--at",
                "10:light:brightness=0.4",
                "--at",
                "20.5:light:brightness=0",
            ]
        );
    }
}
