#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! The NVR's acceptance benchmark (issue 21) for `docs/benchmarks.md`: CPU
//! and memory of one `reallive-nvr` recording N simulated 1080p30 4 Mbit/s
//! RTSP cameras on loopback, per backend and motion setting, side by side
//! with `ffmpeg -c copy -f segment` doing the same job in the same run.
//!
//! - One constrained-baseline H.264 clip (10 s, 1080p30, ~4 Mbit/s, a
//!   keyframe every 30 frames, no B-frames) is made once with ffmpeg:
//!   `testsrc2`, which moves everywhere, or with `--scene still` its first
//!   picture held still under sensor noise (the motion detector's usual
//!   view, where it decodes fewer keyframes).
//! - The cameras are one `reallive-fake-camera --clip` process serving
//!   that clip in a loop, paced in real time and never encoded, on N
//!   mounts, each its own pipeline (`--shared-source`: one mount that every
//!   camera opens, so one pipeline for all). Each recorder's camera is its
//!   own RTSP session over TCP. A fresh source per round; it is measured on
//!   its own, so the recorder's figure is the recorder's.
//! - The rows, each at every N of `--cameras`:
//!   - the NVR per `--backend` (a comma list written as `backend = "…"` in
//!     every `[[cameras]]`; without the flag the key is omitted and the
//!     NVR's default backend runs) and per `--motion` (`off`:
//!     `[cameras.motion] enabled = false`; `default`: `[cameras.motion]`
//!     omitted, so motion is on at 5 fps and, with no `sub_url`, the main
//!     stream's keyframes are decoded); `--motion off,default` unless given;
//!   - with `--ffmpeg`, N `ffmpeg -c copy -f segment` processes (their CPU
//!     and memory summed; frames from `-progress`). `--ffmpeg-only` skips
//!     the NVR rows.
//! - Per round: a fresh data dir and recorder; once every camera records
//!   (60 s at most) and `--warmup` has passed, over `--seconds` (or
//!   `--long-seconds` at `--long-n`, the largest N if only
//!   `--long-seconds` is given): CPU time (utime + stime over wall time),
//!   resident memory (VmRSS every second; VmHWM, Pss and threads at the
//!   end), and context switches (voluntary + involuntary, summed over
//!   `/proc/PID/task/*/status` every second, so a thread that exits loses
//!   at most a second of them); `/api/status` before and after: frames
//!   received against 30 fps × the time between the two reads, and bytes.
//! - After SIGTERM, every recorded file is read with ffprobe (packets, not
//!   decoded): frames, each frame interval against 33.333 ms ± 0.5 ms,
//!   the worst interval, and holes (an interval over 1.5 frames); for the
//!   NVR also holes between one file's end and the next one's start.
//! - Printed: the acceptance table in markdown, every cell with a target
//!   marked PASS or FAIL (targets from issue 21: motion off ≤ 0.35 % of a
//!   core per camera and ≤ 0.6× ffmpeg's; default config ≤ 0.7 %; RSS per
//!   camera at the margin, (RSS(N) − RSS(N0)) / (N − N0) from the smallest
//!   N, ≤ 2 MiB motion off and ≤ 4 MiB default; 32 cameras < 200 MiB in
//!   all; frames received within a second's worth per camera; no interval
//!   off, no hole), then the detailed table. A round that fails (a recorder
//!   that does not start or dies) is reported as such and the run goes on;
//!   every wait is bounded and every child is killed when its round ends.
//!
//! `cargo bench -p reallive-nvr --bench nvr [-- --seconds 60 --cameras 8,16,32
//! --warmup 10 --backend retina,gstreamer --motion off,default --ffmpeg
//! --long-n 32 --long-seconds 600 --shared-source --scene moving|still]`
//!
//! The camera binary must be built in the same profile first:
//! `cargo build --release -p reallive-test-support --bin reallive-fake-camera`
//! (`make bench` does).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::bench::{
    Clip, Container, Scene, arg, cpu_of, dir_bytes, flag, make_clip_of, mib, output, proc_field,
    thread_context_switches,
};
use reallive_test_support::http::Api;
use reallive_test_support::process::{cpu_time, peak_rss_kib, rss_kib};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};

const FPS: f64 = 30.0;
/// A frame interval further than this from 1 / `FPS` is off.
const INTERVAL_TOLERANCE_S: f64 = 0.0005;
const PASSWORD: &str = "nvr-bench-admin-password";
/// Every wait for a child is bounded by this.
const WAIT: Duration = Duration::from_secs(30);
/// How long N cameras have to reach `running`.
const RUNNING_WAIT: Duration = Duration::from_secs(60);
/// Issue 21: an NVR with this many cameras stays under `TOTAL_MIB`.
const TOTAL_AT: usize = 32;
const TOTAL_MIB: f64 = 200.0;

/// `reallive-fake-camera`, beside the NVR binary in `target/release/`.
fn camera_bin() -> PathBuf {
    let b = Path::new(env!("CARGO_BIN_EXE_reallive-nvr")).with_file_name("reallive-fake-camera");
    assert!(
        b.exists(),
        "{} is missing: run `cargo build --release -p reallive-test-support --bin \
         reallive-fake-camera` first (`make bench` does)",
        b.display()
    );
    b
}

/// Collects a child's output lines into a shared string, and keeps the
/// pipe drained so the child never blocks on it.
fn collect(out: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    let mut lines = BufReader::new(out).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let mut log = log2.lock().unwrap();
            // A runaway logger must not grow the bench without bound.
            if log.len() < 1 << 20 {
                log.push_str(&l);
                log.push('\n');
            }
        }
    });
    log
}

fn text_of(log: &Mutex<String>) -> String {
    log.lock().unwrap().clone()
}

/// SIGTERM to `child`, then its exit within `WAIT`; whether it exited 0.
async fn terminate(child: &mut Child) -> bool {
    let Some(pid) = child.id() else {
        return false;
    };
    let _ = tokio::time::timeout(
        WAIT,
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status(),
    )
    .await;
    match tokio::time::timeout(WAIT, child.wait()).await {
        Ok(Ok(s)) => s.success(),
        _ => {
            let _ = child.kill().await;
            false
        }
    }
}

/// The simulated cameras: one `reallive-fake-camera --clip` process.
struct Source {
    child: Child,
    pid: u32,
    /// One URL per camera.
    urls: Vec<String>,
    /// Held, never written: the camera process exits when it closes.
    _stdin: ChildStdin,
}

async fn start_source(clip: &Clip, n: usize, shared: bool) -> Source {
    let mounts = if shared { 1 } else { n };
    let mut child = Command::new(camera_bin())
        .arg("--clip")
        .arg(&clip.path)
        .args(["--fps", "30", "--path", "/cam"])
        .args(["--mounts", &mounts.to_string(), "--exit-on-stdin-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting reallive-fake-camera");
    let pid = child.id().unwrap();
    let stdin = child.stdin.take().unwrap();
    let err = collect(child.stderr.take().unwrap());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut mount_urls = Vec::new();
    while mount_urls.len() < mounts {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no camera URLs within {WAIT:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the camera process exited: {}", text_of(&err)));
        mount_urls.push(line);
    }
    let urls = (0..n)
        .map(|i| mount_urls[i % mount_urls.len()].clone())
        .collect();
    Source {
        child,
        pid,
        urls,
        _stdin: stdin,
    }
}

/// Whether the NVR detects motion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Motion {
    /// `[cameras.motion] enabled = false`: recording only.
    Off,
    /// `[cameras.motion]` omitted: on, at 5 fps; with no `sub_url` the main
    /// stream's keyframes are decoded.
    Default,
}

/// What records the cameras: one row of the acceptance table.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Recorder {
    Nvr {
        /// `backend = "…"` in every `[[cameras]]`; `None` omits the key.
        backend: Option<String>,
        motion: Motion,
    },
    Ffmpeg,
}

impl Recorder {
    fn label(&self) -> String {
        match self {
            Recorder::Nvr { backend, motion } => format!(
                "reallive-nvr{}, {}",
                backend
                    .as_ref()
                    .map(|b| format!(" {b}"))
                    .unwrap_or_default(),
                match motion {
                    Motion::Off => "motion off",
                    Motion::Default => "default config",
                }
            ),
            Recorder::Ffmpeg => "ffmpeg -c copy -f segment".into(),
        }
    }
}

/// The NVR's config for `urls`.
fn nvr_config(urls: &[String], backend: Option<&str>, motion: Motion) -> String {
    let mut text = String::new();
    for (i, u) in urls.iter().enumerate() {
        text.push_str(&format!("[[cameras]]\nname = \"cam{i}\"\nurl = \"{u}\"\n"));
        if let Some(b) = backend {
            text.push_str(&format!("backend = \"{b}\"\n"));
        }
        if motion == Motion::Off {
            text.push_str("\n[cameras.motion]\nenabled = false\n");
        }
        text.push('\n');
    }
    text
}

/// A running NVR: its API address, and everything it printed.
struct Nvr {
    child: Child,
    pid: u32,
    api: Api,
    ids: Vec<i64>,
    log: Arc<Mutex<String>>,
}

async fn start_nvr(dir: &Path, urls: &[String], backend: Option<&str>, motion: Motion) -> Nvr {
    let config = dir.join("nvr.toml");
    std::fs::write(&config, nvr_config(urls, backend, motion)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_reallive-nvr"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--rtc-port", "0"])
        .env("REALLIVE_ADMIN_PASSWORD", PASSWORD)
        // As deployed: the default level.
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting reallive-nvr");
    let pid = child.id().unwrap();
    let log = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        let text = text_of(&log);
        if let Some(a) = text
            .lines()
            .find_map(|l| l.strip_prefix("reallive-nvr: listening on http://"))
        {
            break a.parse().unwrap();
        }
        if Instant::now() >= deadline || child.try_wait().unwrap().is_some() {
            // The first line is what the table shows: the reason, if the
            // log names one.
            let hint = if backend.is_some() && text.contains("backend") {
                " (does this NVR take `backend` in [[cameras]] yet? Try without --backend)"
            } else {
                ""
            };
            let reason = text
                .lines()
                .find(|l| l.to_ascii_lowercase().contains("error"))
                .unwrap_or("");
            panic!("the NVR did not start{hint}: {reason}\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ids: Vec<i64> = text_of(&log)
        .lines()
        .filter_map(|l| l.strip_prefix("reallive-nvr: camera "))
        .map(|c| c.split_once(": ").unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), urls.len(), "{}", text_of(&log));
    let api = tokio::time::timeout(WAIT, Api::new(addr).login("admin", PASSWORD))
        .await
        .unwrap_or_else(|_| panic!("no login within {WAIT:?}"));
    Nvr {
        child,
        pid,
        api,
        ids,
        log,
    }
}

/// One camera in `/api/status`.
#[derive(Clone, Debug, Default)]
struct CamStatus {
    state: String,
    frames: u64,
    bytes: u64,
    restarts: u64,
    last_error: Option<String>,
}

async fn status(nvr: &Nvr) -> Vec<CamStatus> {
    let s = tokio::time::timeout(WAIT, nvr.api.get("/api/status"))
        .await
        .unwrap_or_else(|_| panic!("/api/status took over {WAIT:?}"));
    assert_eq!(s.status, 200, "{}", s.text());
    let s = s.json();
    nvr.ids
        .iter()
        .map(|id| {
            let c = s
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == *id)
                .unwrap_or_else(|| panic!("camera {id} not in {s}"));
            CamStatus {
                state: c["state"].as_str().unwrap_or("?").to_string(),
                frames: c["frames"].as_u64().unwrap_or(0),
                bytes: c["bytes"].as_u64().unwrap_or(0),
                restarts: c["restarts"].as_u64().unwrap_or(0),
                last_error: c["last_error"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// `(busy, total)` jiffies of the whole machine, from `/proc/stat`.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn rss_of(pids: &[u32]) -> u64 {
    pids.iter().map(|p| rss_kib(Some(*p))).sum()
}

/// Context switches of every thread of some processes, added up from
/// repeated samples: a thread seen before adds its increase, a thread
/// born since the last sample all of its count.
struct Switches {
    last: HashMap<(u32, u32), u64>,
    total: u64,
}

impl Switches {
    fn start(pids: &[u32]) -> Self {
        let mut s = Switches {
            last: HashMap::new(),
            total: 0,
        };
        s.sample(pids);
        s.total = 0;
        s
    }

    fn sample(&mut self, pids: &[u32]) {
        for &pid in pids {
            for (tid, n) in thread_context_switches(pid) {
                let before = self.last.insert((pid, tid), n).unwrap_or(0);
                self.total += n.saturating_sub(before);
            }
        }
    }
}

/// What one window measured, for the recorder under test (one NVR, or N
/// ffmpegs) and the source beside it.
#[derive(Default)]
struct Window {
    wall_secs: f64,
    cores: f64,
    source_cores: f64,
    /// Everything else the machine ran meanwhile (builds, this bench).
    other_cores: f64,
    rss_mean_kib: f64,
    rss_max_kib: u64,
    /// Summed over the processes at the end of the window.
    hwm_kib: u64,
    pss_kib: u64,
    anon_kib: u64,
    threads: u64,
    /// Voluntary + involuntary, all threads, over the window.
    context_switches: u64,
}

/// Measures `pids` and the source over `seconds`; panics when one of
/// `pids` dies meanwhile.
async fn measure(pids: &[u32], source: Option<u32>, seconds: Duration) -> Window {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut switches = Switches::start(pids);
    let (c0, s0, m0) = (
        cpu_of(pids),
        source.map_or(Duration::ZERO, |p| cpu_time(Some(p))),
        machine_jiffies(),
    );
    let t0 = Instant::now();
    let mut rss = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while t0.elapsed() < seconds {
        tick.tick().await;
        let r = rss_of(pids);
        assert!(
            pids.iter().all(|p| rss_kib(Some(*p)) > 0),
            "a recorder process exited"
        );
        rss.push(r);
        switches.sample(pids);
    }
    let wall = t0.elapsed().as_secs_f64();
    let (c1, s1, m1) = (
        cpu_of(pids),
        source.map_or(Duration::ZERO, |p| cpu_time(Some(p))),
        machine_jiffies(),
    );
    switches.sample(pids);
    let cores = (c1 - c0).as_secs_f64() / wall;
    let source_cores = (s1 - s0).as_secs_f64() / wall;
    let machine = (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64 * ncpu;
    let sum = |f: &dyn Fn(u32) -> u64| pids.iter().map(|p| f(*p)).sum::<u64>();
    Window {
        wall_secs: wall,
        cores,
        source_cores,
        other_cores: (machine - cores - source_cores).max(0.0),
        rss_mean_kib: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64,
        rss_max_kib: rss.iter().copied().max().unwrap_or(0),
        hwm_kib: sum(&|p| peak_rss_kib(Some(p))),
        pss_kib: sum(&|p| proc_field(p, "smaps_rollup", "Pss:")),
        anon_kib: sum(&|p| proc_field(p, "status", "RssAnon:")),
        threads: sum(&|p| proc_field(p, "status", "Threads:")),
        context_switches: switches.total,
    }
}

/// What one round measured.
struct Round {
    recorder: Recorder,
    cameras: usize,
    w: Window,
    /// Frames received in the window, against 30 fps × its length × N.
    received: u64,
    expected: f64,
    /// The fewest and most frames any one camera received.
    per_camera: (u64, u64),
    kbit_s_per_camera: f64,
    /// Bytes the recorder's files grew by in the window, per camera.
    written_kbit_s_per_camera: f64,
    restarts: u64,
    /// Lines the NVR logged at WARN or ERROR, and the first of them.
    warnings: usize,
    first_warning: Option<String>,
    files: Files,
}

impl Round {
    fn cpu_per_camera_pct(&self) -> f64 {
        self.w.cores * 100.0 / (self.cameras as f64).max(1.0)
    }
}

/// How many examples of each kind of defect a round keeps.
const EXAMPLES: usize = 10;

/// What ffprobe finds in the recorded files.
#[derive(Default)]
struct Files {
    files: usize,
    frames: u64,
    secs: f64,
    /// Frame intervals inside the files, and those off 1 / `FPS` by more
    /// than `INTERVAL_TOLERANCE_S`.
    intervals: u64,
    off: u64,
    /// Files with at least one interval off.
    files_off: usize,
    /// The interval furthest from 1 / `FPS`, in seconds.
    worst: Option<f64>,
    /// The first few intervals off: `(camera, its file, seconds into the
    /// file, interval in ms)`.
    off_examples: Vec<(usize, usize, f64, f64)>,
    /// `(camera, seconds into its recording, frames missing)`, inside a
    /// file.
    holes: Vec<(usize, f64, u64)>,
    /// The same between one file's end and the next one's start (the NVR
    /// only: its index has both; ffmpeg's segments restart at 0).
    gaps: Vec<(usize, f64, u64)>,
    /// The slowest and fastest file against 30 fps, in percent: its
    /// frames over their span (a file whose intervals are short runs
    /// fast, a positive figure).
    rate_pct: Option<(f64, f64)>,
}

impl Files {
    /// Adds camera `cam`'s file number `file`, starting `offset` seconds
    /// into its recording, with packet times `pts` (sorted).
    fn add(&mut self, cam: usize, file: usize, offset: f64, pts: &[f64]) {
        self.files += 1;
        self.frames += pts.len() as u64;
        if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
            self.secs += b - a + 1.0 / FPS;
            if pts.len() > 1 && b > a {
                let mean = (b - a) / (pts.len() - 1) as f64;
                let pct = (1.0 / FPS / mean - 1.0) * 100.0;
                let (lo, hi) = self.rate_pct.unwrap_or((pct, pct));
                self.rate_pct = Some((lo.min(pct), hi.max(pct)));
            }
        }
        let mut any_off = false;
        for w in pts.windows(2) {
            let dt = w[1] - w[0];
            self.intervals += 1;
            let dev = (dt - 1.0 / FPS).abs();
            if self.worst.is_none_or(|x| dev > (x - 1.0 / FPS).abs()) {
                self.worst = Some(dt);
            }
            if dev > INTERVAL_TOLERANCE_S {
                self.off += 1;
                any_off = true;
                if self.off_examples.len() < EXAMPLES {
                    self.off_examples.push((cam, file, w[0], dt * 1e3));
                }
            }
            if dt * FPS > 1.5 {
                self.holes
                    .push((cam, offset + w[0], (dt * FPS).round() as u64 - 1));
            }
        }
        if any_off {
            self.files_off += 1;
        }
    }

    fn lost_none(&self) -> bool {
        self.holes.is_empty() && self.gaps.is_empty()
    }
}

/// A file's packet times, sorted (nothing is decoded).
async fn probe_packets(path: &Path) -> Vec<f64> {
    let out = output(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
            .arg(path),
    )
    .await;
    let mut pts: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_by(f64::total_cmp);
    pts
}

/// The NVR's recordings of each camera, through its store.
async fn probe_nvr(data: &Path, ids: &[i64]) -> Files {
    let (store, _) = tokio::time::timeout(WAIT, Store::open(StoreConfig::new(data)))
        .await
        .unwrap_or_else(|_| panic!("opening the store took over {WAIT:?}"))
        .unwrap();
    let mut f = Files::default();
    for (cam, id) in ids.iter().enumerate() {
        let mut recs = store
            .recordings(&reallive_core::CameraId(*id).store_key(), TimeRange::all())
            .await
            .unwrap();
        recs.sort_by_key(|r| r.start_utc_ns);
        let first_ns = recs.first().map_or(0, |r| r.start_utc_ns);
        let mut prev_end: Option<i64> = None;
        for (file, r) in recs.iter().enumerate() {
            let pts = probe_packets(&store.root().join(&r.path)).await;
            let offset = (r.start_utc_ns - first_ns) as f64 / 1e9;
            f.add(cam, file, offset, &pts);
            if let Some(end) = prev_end {
                let missing = ((r.start_utc_ns - end) as f64 / 1e9 * FPS).round();
                if missing >= 1.0 {
                    f.gaps.push((cam, offset, missing as u64));
                }
            }
            prev_end = Some(r.end_utc_ns);
        }
    }
    store.close().await;
    f
}

/// ffmpeg's segments, `dir/camI/NNN.mp4`.
async fn probe_ffmpeg(dir: &Path, n: usize) -> Files {
    let mut f = Files::default();
    for cam in 0..n {
        let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join(format!("cam{cam}")))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        segs.sort();
        let mut offset = 0.0;
        for (file, s) in segs.iter().enumerate() {
            let pts = probe_packets(s).await;
            f.add(cam, file, offset, &pts);
            if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
                offset += b - a + 1.0 / FPS;
            }
        }
    }
    f
}

/// What a round is asked to do.
#[derive(Clone)]
struct Plan {
    clip: Clip,
    cameras: usize,
    shared: bool,
    warmup: Duration,
    seconds: Duration,
}

async fn nvr_round(plan: Plan, backend: Option<String>, motion: Motion) -> Round {
    let n = plan.cameras;
    let dir = tempfile::tempdir().unwrap();
    let mut source = if n > 0 {
        Some(start_source(&plan.clip, n, plan.shared).await)
    } else {
        None
    };
    let urls = source.as_ref().map(|s| s.urls.clone()).unwrap_or_default();
    let mut nvr = start_nvr(dir.path(), &urls, backend.as_deref(), motion).await;

    let deadline = Instant::now() + RUNNING_WAIT;
    loop {
        let s = status(&nvr).await;
        if s.iter().all(|c| c.state == "running" && c.frames > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all {n} cameras running within {RUNNING_WAIT:?}: {:?}\n{}",
            s.iter()
                .map(|c| (&c.state, &c.last_error))
                .collect::<Vec<_>>(),
            text_of(&nvr.log)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("  {n} camera(s) running; warming up {:?}", plan.warmup);
    tokio::time::sleep(plan.warmup).await;

    let data = dir.path().join("data");
    let (s0, b0) = (status(&nvr).await, dir_bytes(&data));
    let t0 = Instant::now();
    let w = measure(&[nvr.pid], source.as_ref().map(|s| s.pid), plan.seconds).await;
    let (s1, b1) = (status(&nvr).await, dir_bytes(&data));
    let status_secs = t0.elapsed().as_secs_f64();

    let per: Vec<u64> = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| b.frames.saturating_sub(a.frames))
        .collect();
    let bytes: u64 = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| b.bytes.saturating_sub(a.bytes))
        .sum();
    let restarts = s1.iter().map(|c| c.restarts).sum::<u64>();
    let not_running: Vec<_> = s1.iter().filter(|c| c.state != "running").collect();
    assert!(not_running.is_empty(), "{not_running:?}");

    assert!(
        terminate(&mut nvr.child).await,
        "the NVR did not exit cleanly:\n{}",
        text_of(&nvr.log)
    );
    if let Some(s) = source.as_mut() {
        let _ = s.child.kill().await;
    }
    let log = text_of(&nvr.log);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    if !warnings.is_empty() {
        eprintln!(
            "  the NVR warned {} time(s); the first: {}",
            warnings.len(),
            warnings[0]
        );
    }
    let files = probe_nvr(&data, &nvr.ids).await;
    let nf = (n as f64).max(1.0);
    Round {
        recorder: Recorder::Nvr { backend, motion },
        cameras: n,
        received: per.iter().sum(),
        expected: FPS * status_secs * n as f64,
        per_camera: (
            per.iter().copied().min().unwrap_or(0),
            per.iter().copied().max().unwrap_or(0),
        ),
        kbit_s_per_camera: bytes as f64 * 8.0 / 1000.0 / status_secs / nf,
        written_kbit_s_per_camera: b1.saturating_sub(b0) as f64 * 8.0 / 1000.0 / status_secs / nf,
        restarts,
        warnings: warnings.len(),
        first_warning: warnings.first().map(|w| w.to_string()),
        files,
        w,
    }
}

/// One `ffmpeg -c copy -f segment` per camera.
struct Ffmpeg {
    child: Child,
    pid: u32,
    /// The latest `frame=` of its `-progress` output.
    frames: Arc<AtomicU64>,
    err: Arc<Mutex<String>>,
}

fn start_ffmpeg(url: &str, out: &Path) -> Ffmpeg {
    std::fs::create_dir_all(out).unwrap();
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp"])
        .args([
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_time",
            "60",
        ])
        .args(["-reset_timestamps", "1", "-progress", "pipe:1"])
        .arg(out.join("%03d.mp4"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting ffmpeg");
    let pid = child.id().unwrap();
    let err = collect(child.stderr.take().unwrap());
    let frames = Arc::new(AtomicU64::new(0));
    let f2 = frames.clone();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(v) = l.strip_prefix("frame=").and_then(|v| v.trim().parse().ok()) {
                f2.store(v, Ordering::Relaxed);
            }
        }
    });
    Ffmpeg {
        child,
        pid,
        frames,
        err,
    }
}

async fn ffmpeg_round(plan: Plan) -> Round {
    let n = plan.cameras;
    let dir = tempfile::tempdir().unwrap();
    let mut source = start_source(&plan.clip, n, plan.shared).await;
    let mut procs: Vec<Ffmpeg> = source
        .urls
        .iter()
        .enumerate()
        .map(|(i, u)| start_ffmpeg(u, &dir.path().join(format!("cam{i}"))))
        .collect();
    let deadline = Instant::now() + RUNNING_WAIT;
    while !procs.iter().all(|p| p.frames.load(Ordering::Relaxed) > 0) {
        for p in &mut procs {
            assert!(
                p.child.try_wait().unwrap().is_none(),
                "ffmpeg exited: {}",
                text_of(&p.err)
            );
        }
        assert!(
            Instant::now() < deadline,
            "not all {n} ffmpegs recording within {RUNNING_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("  {n} ffmpeg(s) recording; warming up {:?}", plan.warmup);
    tokio::time::sleep(plan.warmup).await;

    let frames = |procs: &[Ffmpeg]| -> Vec<u64> {
        procs
            .iter()
            .map(|p| p.frames.load(Ordering::Relaxed))
            .collect()
    };
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let (f0, b0) = (frames(&procs), dir_bytes(dir.path()));
    let t0 = Instant::now();
    let w = measure(&pids, Some(source.pid), plan.seconds).await;
    let (f1, b1) = (frames(&procs), dir_bytes(dir.path()));
    let secs = t0.elapsed().as_secs_f64();
    let per: Vec<u64> = f0.iter().zip(&f1).map(|(a, b)| b - a).collect();

    // ffmpeg finishes the open segment (its `moov`) on SIGTERM, then exits
    // 255 ("received signal 15"), so the status says nothing. All at once,
    // and `WAIT` for all of them.
    let _ = tokio::time::timeout(
        WAIT,
        Command::new("kill")
            .arg("-TERM")
            .args(pids.iter().map(|p| p.to_string()))
            .status(),
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    for p in &mut procs {
        if tokio::time::timeout_at(deadline, p.child.wait())
            .await
            .is_err()
        {
            eprintln!("  ffmpeg {} did not exit within {WAIT:?}; killed", p.pid);
            let _ = p.child.kill().await;
        }
        let err = text_of(&p.err);
        if !err.trim().is_empty() {
            eprintln!("  ffmpeg {}: {}", p.pid, err.trim());
        }
    }
    let _ = source.child.kill().await;
    let files = probe_ffmpeg(dir.path(), n).await;
    let written = b1.saturating_sub(b0) as f64 * 8.0 / 1000.0 / secs / n as f64;
    Round {
        recorder: Recorder::Ffmpeg,
        cameras: n,
        received: per.iter().sum(),
        expected: FPS * secs * n as f64,
        per_camera: (
            per.iter().copied().min().unwrap_or(0),
            per.iter().copied().max().unwrap_or(0),
        ),
        // ffmpeg reports no received bytes; the files' growth stands in.
        kbit_s_per_camera: written,
        written_kbit_s_per_camera: written,
        restarts: 0,
        warnings: 0,
        first_warning: None,
        files,
        w,
    }
}

/// A round's outcome: its figures, or why it failed.
struct Outcome {
    recorder: Recorder,
    cameras: usize,
    round: Result<Round, String>,
}

/// Runs one round as its own task, so that a failure (a panic: the NVR
/// did not start, a process died) ends that round only. Its children are
/// killed as the task drops them.
async fn run_round(recorder: Recorder, plan: Plan) -> Outcome {
    let cameras = plan.cameras;
    let task = match recorder.clone() {
        Recorder::Nvr { backend, motion } => tokio::spawn(nvr_round(plan, backend, motion)),
        Recorder::Ffmpeg => tokio::spawn(ffmpeg_round(plan)),
    };
    let round = match task.await {
        Ok(r) => {
            print_round(&r);
            Ok(r)
        }
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            // The first line: the rest (a whole log) was printed by the panic hook.
            let first = msg.lines().next().unwrap_or_default().to_string();
            eprintln!("  FAILED: {first}");
            Err(first)
        }
        Err(e) => Err(e.to_string()),
    };
    Outcome {
        recorder,
        cameras,
        round,
    }
}

/// A round's headline figures (to stderr), as it ends.
fn print_round(r: &Round) {
    let n = (r.cameras as f64).max(1.0);
    eprintln!(
        "  {:.1} s: {:.2} % of a core ({:.3} % per camera), {:.1} MiB; {} / {:.0} frames; \
         {:.1} context switches per camera per s; intervals off: {} / {}; holes: {} + {}",
        r.w.wall_secs,
        r.w.cores * 100.0,
        r.cpu_per_camera_pct(),
        mib(r.w.rss_mean_kib),
        r.received,
        r.expected,
        r.w.context_switches as f64 / n / r.w.wall_secs.max(1e-9),
        r.files.off,
        r.files.intervals,
        r.files.holes.len(),
        r.files.gaps.len(),
    );
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// Issue 21's targets for an NVR row.
struct Targets {
    cpu_pct: f64,
    /// Against ffmpeg's per camera, in the same run.
    ratio: Option<f64>,
    rss_margin_mib: f64,
}

fn targets(motion: Motion) -> Targets {
    match motion {
        Motion::Off => Targets {
            cpu_pct: 0.35,
            ratio: Some(0.6),
            rss_margin_mib: 2.0,
        },
        Motion::Default => Targets {
            cpu_pct: 0.7,
            ratio: None,
            rss_margin_mib: 4.0,
        },
    }
}

/// The round of `recorder` with the fewest cameras, if it is not `r`.
fn base_of<'a>(outcomes: &'a [Outcome], r: &Round) -> Option<&'a Round> {
    outcomes
        .iter()
        .filter(|o| o.recorder == r.recorder)
        .filter_map(|o| o.round.as_ref().ok())
        .min_by_key(|b| b.cameras)
        .filter(|b| b.cameras < r.cameras)
}

fn ffmpeg_at(outcomes: &[Outcome], n: usize) -> Option<&Round> {
    outcomes
        .iter()
        .filter(|o| o.recorder == Recorder::Ffmpeg && o.cameras == n)
        .find_map(|o| o.round.as_ref().ok())
}

/// The acceptance table, grouped by N so each recorder stands beside
/// ffmpeg at the same N.
fn print_acceptance(outcomes: &[Outcome], counts: &[usize]) {
    println!(
        "Targets (issue 21): motion off ≤ {:.2} % of a core per camera and ≤ {:.1}× ffmpeg's; \
         default config ≤ {:.2} %; RSS per camera at the margin ≤ {:.0} MiB motion off, \
         ≤ {:.0} MiB default; {TOTAL_AT} cameras < {TOTAL_MIB:.0} MiB in all (the largest RSS \
         sampled); frames received within a second's worth per camera; every interval within \
         33.333 ± {:.1} ms; no hole. The ffmpeg rows are the reference, not judged.",
        targets(Motion::Off).cpu_pct,
        targets(Motion::Off).ratio.unwrap_or(0.0),
        targets(Motion::Default).cpu_pct,
        targets(Motion::Off).rss_margin_mib,
        targets(Motion::Default).rss_margin_mib,
        INTERVAL_TOLERANCE_S * 1e3,
    );
    println!();
    println!(
        "| recorder | cameras | CPU per camera, % of a core | × ffmpeg | RSS per camera at the \
         margin, MiB (Pss) | RSS in all, MiB, mean / max (Pss) | threads | context switches per \
         camera per s (per frame) | frames received / expected | intervals off 33.333 ± 0.5 ms \
         (files) | worst interval, ms | holes in / between files |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut order: Vec<&Outcome> = outcomes.iter().collect();
    order.sort_by_key(|o| {
        (
            counts.iter().position(|&c| c == o.cameras),
            o.recorder == Recorder::Ffmpeg,
        )
    });
    for o in order {
        let r = match &o.round {
            Ok(r) => r,
            Err(e) => {
                println!(
                    "| {} | {} | FAIL: {} | | | | | | | | | |",
                    o.recorder.label(),
                    o.cameras,
                    e.replace('|', "\\|")
                );
                continue;
            }
        };
        let t = match &r.recorder {
            Recorder::Nvr { motion, .. } => Some(targets(*motion)),
            Recorder::Ffmpeg => None,
        };
        let judge = |value: String, ok: Option<bool>| match (t.is_some(), ok) {
            (true, Some(ok)) => format!("{value} {}", pass(ok)),
            _ => value,
        };
        let n = (r.cameras as f64).max(1.0);
        let cpu = r.cpu_per_camera_pct();
        let cpu_cell = judge(format!("{cpu:.3} %"), t.as_ref().map(|t| cpu <= t.cpu_pct));
        let ratio_cell = match ffmpeg_at(outcomes, r.cameras) {
            Some(f) if r.recorder != Recorder::Ffmpeg && f.w.cores > 0.0 => {
                let ratio = cpu / f.cpu_per_camera_pct();
                judge(
                    format!("{ratio:.2}×"),
                    t.as_ref().and_then(|t| t.ratio).map(|max| ratio <= max),
                )
            }
            _ => "—".into(),
        };
        let margin_cell = match base_of(outcomes, r) {
            Some(b) => {
                let dn = (r.cameras - b.cameras) as f64;
                let rss = mib(r.w.rss_mean_kib - b.w.rss_mean_kib) / dn;
                let pss = mib(r.w.pss_kib as f64 - b.w.pss_kib as f64) / dn;
                judge(
                    format!("{rss:.2} ({pss:.2}) from {}", b.cameras),
                    t.as_ref().map(|t| rss <= t.rss_margin_mib),
                )
            }
            None => "— (the base)".into(),
        };
        let max_mib = mib(r.w.rss_max_kib as f64);
        let total_cell = judge(
            format!(
                "{:.0} / {max_mib:.0} ({:.0})",
                mib(r.w.rss_mean_kib),
                mib(r.w.pss_kib as f64)
            ),
            (r.cameras == TOTAL_AT).then_some(max_mib < TOTAL_MIB),
        );
        let switches_cell = format!(
            "{:.1} ({:.2})",
            r.w.context_switches as f64 / n / r.w.wall_secs.max(1e-9),
            r.w.context_switches as f64 / (r.received as f64).max(1.0)
        );
        let slack = FPS + 1.0;
        let per_expected = r.expected / n;
        let frames_ok = (r.received as f64 - r.expected).abs() <= slack * n
            && r.per_camera.0 as f64 >= per_expected - slack
            && r.per_camera.1 as f64 <= per_expected + slack;
        let frames_cell = judge(
            format!(
                "{} / {:.0} ({:+.2} %; per camera {}–{})",
                r.received,
                r.expected,
                (r.received as f64 - r.expected) * 100.0 / r.expected.max(1.0),
                r.per_camera.0,
                r.per_camera.1
            ),
            Some(frames_ok),
        );
        let f = &r.files;
        let off_cell = judge(
            format!(
                "{} / {} ({} / {})",
                f.off, f.intervals, f.files_off, f.files
            ),
            Some(f.off == 0 && f.intervals > 0),
        );
        let worst_cell = f
            .worst
            .map_or_else(|| "—".into(), |w| format!("{:.3}", w * 1e3));
        let holes_cell = judge(
            format!("{} / {}", f.holes.len(), f.gaps.len()),
            Some(f.lost_none()),
        );
        println!(
            "| {} | {} | {cpu_cell} | {ratio_cell} | {margin_cell} | {total_cell} | {} \
             | {switches_cell} | {frames_cell} | {off_cell} | {worst_cell} | {holes_cell} |",
            r.recorder.label(),
            r.cameras,
            r.w.threads,
        );
    }
}

/// Every figure of each round, for the record.
fn print_details(rounds: &[&Round]) {
    println!(
        "| recorder | cameras | seconds | CPU, % of a core | per camera | RSS, MiB (mean) | per camera \
         | peak RSS, MiB (sampled / VmHWM) | Pss, MiB | anon RSS, MiB | threads | context switches \
         | frames received / expected | per camera min–max | kbit/s per camera (received / written) \
         | frames in files / 30 fps × their duration | files | holes | files' rate against 30 fps, \
         % (slowest / fastest) | source CPU, % of a core | other load, cores |"
    );
    println!(
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rounds {
        let n = (r.cameras as f64).max(1.0);
        let w = &r.w;
        println!(
            "| {} | {} | {:.0} | {:.2} % | {:.3} % | {:.1} | {:.2} | {:.1} / {:.1} | {:.1} | {:.1} \
             | {} | {} | {} / {:.0} ({:+.2} %) | {}–{} | {:.0} / {:.0} | {} / {:.0} | {} | {} \
             | {} | {:.1} % | {:.2} |",
            r.recorder.label(),
            r.cameras,
            w.wall_secs,
            w.cores * 100.0,
            w.cores * 100.0 / n,
            mib(w.rss_mean_kib),
            mib(w.rss_mean_kib) / n,
            mib(w.rss_max_kib as f64),
            mib(w.hwm_kib as f64),
            mib(w.pss_kib as f64),
            mib(w.anon_kib as f64),
            w.threads,
            w.context_switches,
            r.received,
            r.expected,
            (r.received as f64 - r.expected) * 100.0 / r.expected.max(1.0),
            r.per_camera.0,
            r.per_camera.1,
            r.kbit_s_per_camera,
            r.written_kbit_s_per_camera,
            r.files.frames,
            r.files.secs * FPS,
            r.files.files,
            r.files.holes.len() + r.files.gaps.len(),
            r.files
                .rate_pct
                .map_or_else(|| "—".into(), |(lo, hi)| format!("{lo:+.3} / {hi:+.3}")),
            w.source_cores * 100.0,
            w.other_cores,
        );
    }
}

/// The cost of each camera beyond the smallest round's, per recorder.
fn print_marginal(rounds: &[&Round]) {
    for r in rounds {
        let base = rounds
            .iter()
            .filter(|b| b.recorder == r.recorder)
            .min_by_key(|b| b.cameras)
            .filter(|b| b.cameras < r.cameras);
        if let Some(b) = base {
            let dn = (r.cameras - b.cameras) as f64;
            println!(
                "{}: each camera from {} to {}: {:.3} % of a core, {:.2} MiB RSS, {:.2} MiB Pss",
                r.recorder.label(),
                b.cameras,
                r.cameras,
                (r.w.cores - b.w.cores) * 100.0 / dn,
                mib(r.w.rss_mean_kib - b.w.rss_mean_kib) / dn,
                mib(r.w.pss_kib as f64 - b.w.pss_kib as f64) / dn,
            );
        }
    }
}

/// Where the defects are: restarts, warnings, holes and intervals off.
fn print_defects(rounds: &[&Round]) {
    for r in rounds {
        let what = format!("{} × {}", r.recorder.label(), r.cameras);
        let f = &r.files;
        if r.restarts > 0 {
            println!("{what}: {} restart(s)", r.restarts);
        }
        if let Some(w) = &r.first_warning {
            println!("{what}: {} warning(s); the first: {w}", r.warnings);
        }
        if !f.holes.is_empty() {
            println!(
                "{what}: holes in files (camera, s, frames missing): {:?}{}",
                &f.holes[..f.holes.len().min(EXAMPLES)],
                if f.holes.len() > EXAMPLES { " …" } else { "" }
            );
        }
        if !f.gaps.is_empty() {
            println!(
                "{what}: holes between files (camera, s, frames missing): {:?}{}",
                &f.gaps[..f.gaps.len().min(EXAMPLES)],
                if f.gaps.len() > EXAMPLES { " …" } else { "" }
            );
        }
        if !f.off_examples.is_empty() {
            let ex: Vec<String> = f
                .off_examples
                .iter()
                .map(|(cam, file, at, ms)| format!("cam{cam} file {file} at {at:.3} s: {ms:.3} ms"))
                .collect();
            println!(
                "{what}: the first intervals off: {}{}",
                ex.join("; "),
                if f.off as usize > ex.len() {
                    " …"
                } else {
                    ""
                }
            );
        }
    }
}

/// A comma list of the command line, or `default`.
fn list(name: &str, default: &str) -> Vec<String> {
    arg(name)
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn secs(name: &str) -> Option<Duration> {
    arg(name).map(|s| {
        Duration::from_secs(
            s.parse()
                .unwrap_or_else(|_| panic!("{name} takes whole seconds, not {s:?}")),
        )
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds = secs("--seconds").unwrap_or(Duration::from_secs(60));
    let warmup = secs("--warmup").unwrap_or(Duration::from_secs(10));
    let counts: Vec<usize> = list("--cameras", "8,16,32")
        .iter()
        .map(|s| s.parse().expect("--cameras 8,16,32"))
        .collect();
    let long_seconds = secs("--long-seconds");
    let long_n: Option<usize> = match arg("--long-n") {
        Some(s) => Some(s.parse().expect("--long-n 32")),
        None => long_seconds.and(counts.iter().copied().max()),
    };
    let seconds_at = |n: usize| match (long_n, long_seconds) {
        (Some(l), Some(s)) if l == n => s,
        _ => seconds,
    };
    // Without --backend the key is omitted: the NVR's default backend.
    let backends: Vec<Option<String>> = match arg("--backend") {
        Some(_) => list("--backend", "").into_iter().map(Some).collect(),
        None => vec![None],
    };
    for b in backends.iter().flatten() {
        assert!(
            b == "retina" || b == "gstreamer",
            "--backend takes retina and/or gstreamer, not {b:?}"
        );
    }
    let motions: Vec<Motion> = list("--motion", "off,default")
        .iter()
        .map(|m| match m.as_str() {
            "off" => Motion::Off,
            "default" => Motion::Default,
            _ => panic!("--motion takes off and/or default, not {m:?}"),
        })
        .collect();
    let shared = flag("--shared-source");
    let ffmpeg_only = flag("--ffmpeg-only");
    let with_ffmpeg = flag("--ffmpeg") || ffmpeg_only;
    let mut recorders: Vec<Recorder> = Vec::new();
    if !ffmpeg_only {
        for b in &backends {
            for &motion in &motions {
                recorders.push(Recorder::Nvr {
                    backend: b.clone(),
                    motion,
                });
            }
        }
    }
    if with_ffmpeg {
        recorders.push(Recorder::Ffmpeg);
    }
    // Fail before any work when the camera binary is missing.
    camera_bin();

    let dir = tempfile::tempdir().unwrap();
    let scene = match arg("--scene").as_deref() {
        None | Some("moving") => Scene::Moving,
        Some("still") => Scene::Still,
        Some(other) => panic!("--scene takes moving or still, not {other:?}"),
    };
    let clip = make_clip_of(dir.path(), Container::AnnexB, scene).await;
    println!("clip: {} ({scene:?} scene)", clip.summary);
    println!(
        "measuring {seconds:?}{} after {warmup:?} of warm-up; {} cores; source: {}",
        match (long_n, long_seconds) {
            (Some(n), Some(s)) => format!(" ({s:?} at {n} cameras)"),
            _ => String::new(),
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if shared {
            "one shared mount for all cameras"
        } else {
            "one mount (and pipeline) per camera"
        }
    );

    let mut outcomes = Vec::new();
    for &n in &counts {
        for recorder in &recorders {
            if n == 0 && *recorder == Recorder::Ffmpeg {
                continue;
            }
            eprintln!("{}, {n} camera(s)…", recorder.label());
            let plan = Plan {
                clip: clip.clone(),
                cameras: n,
                shared,
                warmup,
                seconds: seconds_at(n),
            };
            outcomes.push(run_round(recorder.clone(), plan).await);
        }
    }

    println!();
    print_acceptance(&outcomes, &counts);
    println!();
    let rounds: Vec<&Round> = outcomes
        .iter()
        .filter_map(|o| o.round.as_ref().ok())
        .collect();
    print_details(&rounds);
    println!();
    print_marginal(&rounds);
    print_defects(&rounds);
    println!(
        "clip {:.0} kbit/s; files: {}",
        clip.kbit_s,
        rounds
            .iter()
            .map(|r| format!("{} × {}: {}", r.recorder.label(), r.cameras, r.files.files))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
