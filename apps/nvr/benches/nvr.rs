#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! The NVR's cost per camera for `docs/benchmarks.md`: CPU and memory of
//! one `reallive-nvr` recording N simulated 1080p30 4 Mbit/s RTSP cameras
//! on loopback, and of `ffmpeg -c copy -f segment` doing the same job.
//!
//! - One constrained-baseline H.264 clip (10 s, 1080p30, ~4 Mbit/s, a
//!   keyframe every 30 frames, no B-frames) is made once with ffmpeg.
//! - The cameras are one `reallive-fake-camera --clip` process serving
//!   that clip in a loop, paced in real time and never encoded, on N
//!   mounts, each its own pipeline (`--shared-source`: one mount that every
//!   camera opens, so one pipeline for all). Each NVR camera is its own
//!   RTSP session over TCP. The source process is measured on its own, so
//!   the NVR's figure is the NVR's.
//! - Per N: a fresh data dir and a `reallive-nvr` with N cameras; once
//!   every camera is `running` (60 s at most) and `--warmup` has passed,
//!   its CPU time (utime + stime over wall time) and resident memory
//!   (VmRSS every second, VmHWM and Pss at the end) are read over
//!   `--seconds`, with `/api/status` before and after: frames received
//!   against 30 fps × the time between the two reads, and bytes.
//! - After SIGTERM, the recorded files are read with ffprobe (packets, not
//!   decoded): frames in them, and holes (steps over 1.5 frame intervals).
//! - `--ffmpeg`: for each N, also a round with N `ffmpeg -c copy -f
//!   segment` processes instead of the NVR, measured the same way (their
//!   CPU and memory summed; frames from `-progress`). `--ffmpeg-only`
//!   skips the NVR rounds.
//!
//! `cargo bench -p reallive-nvr --bench nvr [-- --seconds 60 --cameras 8,16,32
//! --warmup 10 --ffmpeg --shared-source]`
//!
//! The camera binary must be built in the same profile first:
//! `cargo build --release -p reallive-test-support --bin reallive-fake-camera`
//! (`make bench` does).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::bench::{
    Clip, Container, arg, cpu_of, dir_bytes, flag, make_clip, mib, output, proc_field,
};
use reallive_test_support::http::Api;
use reallive_test_support::process::{cpu_time, peak_rss_kib, rss_kib};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};

const FPS: f64 = 30.0;
const PASSWORD: &str = "nvr-bench-admin-password";
/// Every wait for a child is bounded by this.
const WAIT: Duration = Duration::from_secs(30);
/// How long N cameras have to reach `running`.
const RUNNING_WAIT: Duration = Duration::from_secs(60);

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

/// SIGTERM to `child`, then its exit within `WAIT`; whether it exited 0.
async fn terminate(child: &mut Child) -> bool {
    let Some(pid) = child.id() else {
        return false;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
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
    /// One URL per NVR camera.
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
            .unwrap_or_else(|| panic!("the camera process exited: {}", err.lock().unwrap()));
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

/// A running NVR: its API address, and everything it printed.
struct Nvr {
    child: Child,
    pid: u32,
    api: Api,
    ids: Vec<i64>,
    log: Arc<Mutex<String>>,
}

async fn start_nvr(dir: &Path, urls: &[String]) -> Nvr {
    let mut text = String::new();
    for (i, u) in urls.iter().enumerate() {
        text.push_str(&format!(
            "[[cameras]]\nname = \"cam{i}\"\nurl = \"{u}\"\n\n"
        ));
    }
    let config = dir.join("nvr.toml");
    std::fs::write(&config, text).unwrap();
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
        let text = log.lock().unwrap().clone();
        if let Some(a) = text
            .lines()
            .find_map(|l| l.strip_prefix("reallive-nvr: listening on http://"))
        {
            break a.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline && child.try_wait().unwrap().is_none(),
            "the NVR did not start:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ids: Vec<i64> = log
        .lock()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("reallive-nvr: camera "))
        .map(|c| c.split_once(": ").unwrap().0.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), urls.len(), "{}", log.lock().unwrap());
    let api = Api::new(addr).login("admin", PASSWORD).await;
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
}

async fn status(nvr: &Nvr) -> Vec<CamStatus> {
    let s = nvr.api.get("/api/status").await;
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
}

/// Measures `pids` and the source over `seconds`; panics when one of
/// `pids` dies meanwhile.
async fn measure(pids: &[u32], source: Option<u32>, seconds: Duration) -> Window {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
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
    }
    let wall = t0.elapsed().as_secs_f64();
    let (c1, s1, m1) = (
        cpu_of(pids),
        source.map_or(Duration::ZERO, |p| cpu_time(Some(p))),
        machine_jiffies(),
    );
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
    }
}

/// What one round measured.
struct Round {
    what: &'static str,
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
    files: Files,
}

/// What ffprobe finds in the recorded files.
#[derive(Default)]
struct Files {
    files: usize,
    frames: u64,
    secs: f64,
    /// `(camera, seconds into its recording, frames missing)`.
    holes: Vec<(usize, f64, u64)>,
}

/// Frames and holes in one file, from its packets' timestamps (nothing is
/// decoded): `(frames, seconds covered, holes as (at, missing))`.
async fn probe_packets(path: &Path) -> (u64, f64, Vec<(f64, u64)>) {
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
    let holes = pts
        .windows(2)
        .filter(|w| (w[1] - w[0]) * FPS > 1.5)
        .map(|w| (w[0], ((w[1] - w[0]) * FPS).round() as u64 - 1))
        .collect();
    let secs = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) => b - a + 1.0 / FPS,
        _ => 0.0,
    };
    (pts.len() as u64, secs, holes)
}

/// The NVR's recordings of each camera, through its store.
async fn probe_nvr(data: &Path, ids: &[i64]) -> Files {
    let (store, _) = Store::open(StoreConfig::new(data)).await.unwrap();
    let mut f = Files::default();
    for (cam, id) in ids.iter().enumerate() {
        let recs = store
            .recordings(&reallive_core::CameraId(*id).store_key(), TimeRange::all())
            .await
            .unwrap();
        let first_ns = recs.iter().map(|r| r.start_utc_ns).min().unwrap_or(0);
        for r in &recs {
            let (frames, secs, holes) = probe_packets(&store.root().join(&r.path)).await;
            let offset = (r.start_utc_ns - first_ns) as f64 / 1e9;
            f.files += 1;
            f.frames += frames;
            f.secs += secs;
            f.holes
                .extend(holes.into_iter().map(|(at, n)| (cam, offset + at, n)));
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
        for s in &segs {
            let (frames, secs, holes) = probe_packets(s).await;
            f.files += 1;
            f.frames += frames;
            f.secs += secs;
            f.holes
                .extend(holes.into_iter().map(|(at, n)| (cam, offset + at, n)));
            offset += secs;
        }
    }
    f
}

async fn nvr_round(
    clip: &Clip,
    n: usize,
    shared: bool,
    warmup: Duration,
    seconds: Duration,
) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let mut source = if n > 0 {
        Some(start_source(clip, n, shared).await)
    } else {
        None
    };
    let urls = source.as_ref().map(|s| s.urls.clone()).unwrap_or_default();
    let mut nvr = start_nvr(dir.path(), &urls).await;

    let deadline = Instant::now() + RUNNING_WAIT;
    loop {
        let s = status(&nvr).await;
        if s.iter().all(|c| c.state == "running" && c.frames > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all {n} cameras running within {RUNNING_WAIT:?}: {:?}\n{}",
            s.iter().map(|c| &c.state).collect::<Vec<_>>(),
            nvr.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("  {n} camera(s) running; warming up {warmup:?}");
    tokio::time::sleep(warmup).await;

    let data = dir.path().join("data");
    let (s0, b0) = (status(&nvr).await, dir_bytes(&data));
    let t0 = Instant::now();
    let w = measure(&[nvr.pid], source.as_ref().map(|s| s.pid), seconds).await;
    let (s1, b1) = (status(&nvr).await, dir_bytes(&data));
    let status_secs = t0.elapsed().as_secs_f64();

    let per: Vec<u64> = s0
        .iter()
        .zip(&s1)
        .map(|(a, b)| b.frames - a.frames)
        .collect();
    let bytes: u64 = s0.iter().zip(&s1).map(|(a, b)| b.bytes - a.bytes).sum();
    let restarts = s1.iter().map(|c| c.restarts).sum::<u64>();
    let not_running: Vec<_> = s1.iter().filter(|c| c.state != "running").collect();
    assert!(not_running.is_empty(), "{not_running:?}");

    assert!(
        terminate(&mut nvr.child).await,
        "the NVR did not exit cleanly:\n{}",
        nvr.log.lock().unwrap()
    );
    if let Some(s) = source.as_mut() {
        let _ = s.child.kill().await;
    }
    let log = nvr.log.lock().unwrap().clone();
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
        what: "reallive-nvr",
        cameras: n,
        received: per.iter().sum(),
        expected: FPS * status_secs * n as f64,
        per_camera: (
            per.iter().copied().min().unwrap_or(0),
            per.iter().copied().max().unwrap_or(0),
        ),
        kbit_s_per_camera: bytes as f64 * 8.0 / 1000.0 / status_secs / nf,
        written_kbit_s_per_camera: (b1 - b0) as f64 * 8.0 / 1000.0 / status_secs / nf,
        restarts,
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

async fn ffmpeg_round(
    clip: &Clip,
    n: usize,
    shared: bool,
    warmup: Duration,
    seconds: Duration,
) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let mut source = start_source(clip, n, shared).await;
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
                p.err.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not all {n} ffmpegs recording within {RUNNING_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("  {n} ffmpeg(s) recording; warming up {warmup:?}");
    tokio::time::sleep(warmup).await;

    let frames = |procs: &[Ffmpeg]| -> Vec<u64> {
        procs
            .iter()
            .map(|p| p.frames.load(Ordering::Relaxed))
            .collect()
    };
    let pids: Vec<u32> = procs.iter().map(|p| p.pid).collect();
    let (f0, b0) = (frames(&procs), dir_bytes(dir.path()));
    let t0 = Instant::now();
    let w = measure(&pids, Some(source.pid), seconds).await;
    let (f1, b1) = (frames(&procs), dir_bytes(dir.path()));
    let secs = t0.elapsed().as_secs_f64();
    let per: Vec<u64> = f0.iter().zip(&f1).map(|(a, b)| b - a).collect();

    for p in &mut procs {
        // ffmpeg finishes the open segment (its `moov`) on SIGTERM, then
        // exits 255 ("received signal 15"), so the status says nothing.
        terminate(&mut p.child).await;
        let err = p.err.lock().unwrap().clone();
        if !err.trim().is_empty() {
            eprintln!("  ffmpeg {}: {}", p.pid, err.trim());
        }
    }
    let _ = source.child.kill().await;
    let files = probe_ffmpeg(dir.path(), n).await;
    let written = (b1 - b0) as f64 * 8.0 / 1000.0 / secs / n as f64;
    Round {
        what: "ffmpeg -c copy -f segment",
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
        files,
        w,
    }
}

/// A round's headline figures (to stderr), as it ends.
fn print_round(r: &Round) {
    eprintln!(
        "  {:.1} s: {:.2} % of a core, {:.1} MiB; {} / {:.0} frames",
        r.w.wall_secs,
        r.w.cores * 100.0,
        mib(r.w.rss_mean_kib),
        r.received,
        r.expected
    );
}

fn print_table(rounds: &[&Round]) {
    println!(
        "| recorder | cameras | CPU, % of a core | per camera | RSS, MiB (mean) | per camera \
         | peak RSS, MiB (sampled / VmHWM) | Pss, MiB | anon RSS, MiB | threads | frames received / expected \
         | per camera min–max | kbit/s per camera (received / written) \
         | frames in files / 30 fps × their duration | holes | source CPU, % of a core \
         | other load, cores |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rounds {
        let n = (r.cameras as f64).max(1.0);
        let w = &r.w;
        println!(
            "| {} | {} | {:.2} % | {:.3} % | {:.1} | {:.2} | {:.1} / {:.1} | {:.1} | {:.1} | {} \
             | {} / {:.0} ({:+.2} %) | {}–{} | {:.0} / {:.0} | {} / {:.0} | {} | {:.1} % | {:.2} |",
            r.what,
            r.cameras,
            w.cores * 100.0,
            w.cores * 100.0 / n,
            mib(w.rss_mean_kib),
            mib(w.rss_mean_kib) / n,
            mib(w.rss_max_kib as f64),
            mib(w.hwm_kib as f64),
            mib(w.pss_kib as f64),
            mib(w.anon_kib as f64),
            w.threads,
            r.received,
            r.expected,
            (r.received as f64 - r.expected) * 100.0 / r.expected.max(1.0),
            r.per_camera.0,
            r.per_camera.1,
            r.kbit_s_per_camera,
            r.written_kbit_s_per_camera,
            r.files.frames,
            r.files.secs * FPS,
            r.files.holes.len(),
            w.source_cores * 100.0,
            w.other_cores,
        );
    }
}

/// The cost of each camera beyond the first round's, from the first and
/// last rounds of one recorder.
fn print_marginal(rounds: &[&Round]) {
    if let (Some(a), Some(b)) = (rounds.first(), rounds.last())
        && b.cameras > a.cameras
    {
        let dn = (b.cameras - a.cameras) as f64;
        println!(
            "{}: each camera from {} to {}: {:.3} % of a core, {:.2} MiB RSS, {:.2} MiB Pss",
            a.what,
            a.cameras,
            b.cameras,
            (b.w.cores - a.w.cores) * 100.0 / dn,
            mib(b.w.rss_mean_kib - a.w.rss_mean_kib) / dn,
            mib(b.w.pss_kib as f64 - a.w.pss_kib as f64) / dn,
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds = Duration::from_secs(arg("--seconds").map_or(60, |s| s.parse().unwrap()));
    let warmup = Duration::from_secs(arg("--warmup").map_or(10, |s| s.parse().unwrap()));
    let counts: Vec<usize> = arg("--cameras")
        .unwrap_or_else(|| "8,16,32".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--cameras 8,16,32"))
        .collect();
    let shared = flag("--shared-source");
    let ffmpeg_only = flag("--ffmpeg-only");
    let with_ffmpeg = flag("--ffmpeg") || ffmpeg_only;
    // Fail before any work when the camera binary is missing.
    camera_bin();

    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), Container::AnnexB).await;
    println!("clip: {}", clip.summary);
    println!(
        "measuring {seconds:?} after {warmup:?} of warm-up; {} cores; source: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if shared {
            "one shared mount for all cameras"
        } else {
            "one mount (and pipeline) per camera"
        }
    );

    let mut nvr = Vec::new();
    let mut ff = Vec::new();
    for &n in &counts {
        if !ffmpeg_only {
            eprintln!("reallive-nvr, {n} camera(s)…");
            let r = nvr_round(&clip, n, shared, warmup, seconds).await;
            print_round(&r);
            nvr.push(r);
        }
        if with_ffmpeg && n > 0 {
            eprintln!("ffmpeg, {n} camera(s)…");
            let r = ffmpeg_round(&clip, n, shared, warmup, seconds).await;
            print_round(&r);
            ff.push(r);
        }
    }

    println!();
    let all: Vec<&Round> = nvr.iter().chain(&ff).collect();
    print_table(&all);
    println!();
    print_marginal(&nvr.iter().collect::<Vec<_>>());
    print_marginal(&ff.iter().collect::<Vec<_>>());
    for r in &all {
        if !r.files.holes.is_empty() || r.restarts > 0 {
            println!(
                "{} × {}: {} restart(s); holes (camera, s, frames): {:?}",
                r.what, r.cameras, r.restarts, r.files.holes
            );
        }
    }
    println!(
        "clip {:.0} kbit/s; files: {}",
        clip.kbit_s,
        all.iter()
            .map(|r| format!("{} × {}: {}", r.what, r.cameras, r.files.files))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
