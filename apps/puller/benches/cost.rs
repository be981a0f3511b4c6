#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! The puller's cost for `docs/benchmarks.md`: CPU and memory of one
//! `reallive-puller` recording N cameras of 1080p30 at 4 Mbit/s, all real
//! processes on loopback.
//!
//! - One constrained-baseline H.264 clip (10 s, 1080p30, ~4 Mbit/s, a
//!   keyframe every 30 frames, no B-frames) is made once with ffmpeg.
//! - Per N: a fresh `reallive-server`, N cameras, one puller recording all
//!   of them, then one `reallive-pusher` per camera looping the clip with
//!   `--encoder passthrough`, so nothing is encoded anywhere.
//! - Once every camera is recording and a warm-up has passed, the puller's
//!   CPU time (utime + stime over wall time) and resident memory (VmRSS
//!   every second, VmHWM at the end) are read over `--seconds`. The server
//!   and the pushers are measured too, separately, so the puller's figure
//!   is its own.
//! - At the end the pushers stop first (each prints what it published),
//!   then the puller (each camera's recorded frames). ffprobe and ffmpeg
//!   then decode every recorded file: frames, duration, holes, errors.
//!
//! `cargo bench -p reallive-puller --bench cost [-- --seconds 60 --cameras 1,4 --warmup 10]`
//!
//! The server and pusher binaries must be built in the same profile first:
//! `cargo build --release -p reallive-server -p reallive-pusher` (`make
//! bench` does both).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::bench::{
    Clip, Container, arg, cpu_of, dir_bytes, make_clip, mib, proc_field,
};
use reallive_test_support::http::Api;
use reallive_test_support::process::{cpu_time, peak_rss_kib, rss_kib, spawn_server};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const FPS: f64 = 30.0;
const PASSWORD: &str = "puller-bench-admin-password";
/// Every wait for a child is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// A sibling of the puller binary, built by `cargo build --release`.
fn bin(name: &str) -> PathBuf {
    let puller = Path::new(env!("CARGO_BIN_EXE_reallive-puller"));
    let b = puller.with_file_name(name);
    assert!(
        b.exists(),
        "{} is missing: run `cargo build --release -p reallive-server -p reallive-pusher` \
         first (`make bench` does)",
        b.display()
    );
    b
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A child process (killed on drop) whose stderr is collected.
struct Logged {
    child: Child,
    pid: u32,
    log: Arc<Mutex<String>>,
}

impl Logged {
    fn spawn(cmd: &mut Command) -> Logged {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                let mut log = log2.lock().unwrap();
                log.push_str(&l);
                log.push('\n');
            }
        });
        Logged { child, pid, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The rest of the first line of the log that starts with `prefix`,
    /// waiting up to `within` for it.
    async fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut gone_since = None;
        loop {
            if let Some(rest) = self.log().lines().find_map(|l| l.strip_prefix(prefix)) {
                return rest.to_string();
            }
            // An exited child's last lines may still be in the pipe.
            if self.child.try_wait().unwrap().is_some() {
                let gone: &mut Instant = gone_since.get_or_insert_with(Instant::now);
                assert!(
                    gone.elapsed() < Duration::from_secs(1),
                    "no line `{prefix}…`; it exited:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no line `{prefix}…` within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, and the exit within `WAIT`.
    async fn terminate(&mut self) {
        let s = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .unwrap();
        assert!(s.success(), "kill -TERM {}", self.pid);
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("pid {} still running {WAIT:?} after SIGTERM", self.pid))
            .unwrap();
        assert!(status.success(), "{status}:\n{}", self.log());
    }
}

/// The recordings the puller lists for `camera`: `(start_ms, bytes)`.
async fn recordings(playback: SocketAddr, camera: i64) -> Vec<(i64, u64)> {
    let r = Api::new(playback)
        .get(&format!("/api/recordings?camera={camera}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["start_ms"].as_i64().unwrap(),
                v["bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What one round measured.
struct Round {
    cameras: usize,
    seconds: f64,
    puller_cores: f64,
    puller_rss_mean_kib: f64,
    puller_rss_max_kib: u64,
    puller_hwm_kib: u64,
    puller_threads: u64,
    /// Heap and other private memory, and mapped files (the binary), at
    /// the end of the window.
    puller_anon_kib: u64,
    puller_file_kib: u64,
    written_kbit_s: f64,
    server_cores: f64,
    pushers_cores: f64,
    recorded: u64,
    published: u64,
    /// Frames the pushers shed because publishing fell behind.
    pusher_dropped: u64,
    /// Frames ffprobe decodes in the recorded files, and their duration.
    in_files: u64,
    files_secs: f64,
    holes: Vec<Hole>,
    /// Lines ffmpeg printed at `-v error` decoding every file.
    decode_errors: Vec<String>,
    /// Per camera: first recording's start after its pusher started, ms.
    join_ms: Vec<i64>,
}

async fn round(clip: &Clip, n: usize, warmup: Duration, seconds: Duration) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) =
        spawn_server(&bin("reallive-server"), &dir.path().join("srv"), PASSWORD).await;
    let admin = Api::new(addr).login("admin", PASSWORD).await;
    let mut cams = Vec::new();
    for i in 0..n {
        let r = admin
            .post(
                "/api/cameras",
                serde_json::json!({ "name": format!("bench-{i}") }),
            )
            .await;
        assert!(r.status < 300, "creating a camera: {}", r.text());
        let j = r.json();
        cams.push((
            j["camera"]["id"].as_i64().unwrap(),
            j["stream_key"].as_str().unwrap().to_string(),
        ));
    }

    // The puller first: it waits for the publishers, so it sees every
    // camera from its first keyframe.
    let data = dir.path().join("puller");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reallive-puller"));
    cmd.args(["--server", &format!("http://{addr}")])
        .args(["--username", "admin", "--password", PASSWORD])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"]);
    for (id, _) in &cams {
        cmd.args(["--camera", &id.to_string()]);
    }
    let mut puller = Logged::spawn(&mut cmd);
    let playback: SocketAddr = puller
        .line("reallive-puller: playback on http://", WAIT)
        .await
        .parse()
        .unwrap();

    let mut pushers = Vec::new();
    for (id, key) in &cams {
        let started_ms = now_ms();
        let p = Logged::spawn(
            Command::new(bin("reallive-pusher"))
                .arg("--source")
                .arg(format!("file:{}", clip.path.display()))
                .args(["--loop", "--encoder", "passthrough"])
                .args(["--server", &format!("http://{addr}")])
                .args(["--camera", &id.to_string(), "--key", key]),
        );
        pushers.push((p, started_ms));
    }

    // Every camera recording, then the warm-up.
    let deadline = Instant::now() + WAIT;
    let mut join_ms = Vec::new();
    for ((id, _), (_, started_ms)) in cams.iter().zip(&pushers) {
        loop {
            let recs = recordings(playback, *id).await;
            if recs.iter().map(|r| r.1).sum::<u64>() > 0 {
                join_ms.push(recs.iter().map(|r| r.0).min().unwrap() - started_ms);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "camera {id} not recording within {WAIT:?}:\n{}",
                puller.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("  {n} camera(s) recording; warming up {warmup:?}");
    tokio::time::sleep(warmup).await;

    // The measurement.
    let pusher_pids: Vec<u32> = pushers.iter().map(|p| p.0.pid).collect();
    let server_pid = server.id().unwrap();
    let (c0, s0, p0, b0) = (
        cpu_time(Some(puller.pid)),
        cpu_time(Some(server_pid)),
        cpu_of(&pusher_pids),
        dir_bytes(&data),
    );
    let t0 = Instant::now();
    let mut rss = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while t0.elapsed() < seconds {
        tick.tick().await;
        let r = rss_kib(Some(puller.pid));
        assert!(r > 0, "the puller exited:\n{}", puller.log());
        rss.push(r);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cores = |d: Duration| d.as_secs_f64() / wall;
    let puller_cores = cores(cpu_time(Some(puller.pid)) - c0);
    let server_cores = cores(cpu_time(Some(server_pid)) - s0);
    let pushers_cores = cores(cpu_of(&pusher_pids) - p0);
    let written = dir_bytes(&data) - b0;
    let puller_hwm_kib = peak_rss_kib(Some(puller.pid));
    let puller_threads = proc_field(puller.pid, "status", "Threads:");
    let puller_anon_kib = proc_field(puller.pid, "status", "RssAnon:");
    let puller_file_kib = proc_field(puller.pid, "status", "RssFile:");

    // Pushers first, so the puller records everything they sent.
    let (mut published, mut pusher_dropped) = (0, 0);
    for (p, _) in &mut pushers {
        p.terminate().await;
        // `N frames (encoder passthrough)[; M frames dropped]`
        let line = p.line("reallive-pusher: published ", WAIT).await;
        published += line
            .split(' ')
            .next()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{line}"));
        pusher_dropped += line
            .split_once("; ")
            .and_then(|(_, d)| d.split(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    puller.terminate().await;
    let mut recorded = 0;
    for (id, _) in &cams {
        let line = puller
            .line(&format!("reallive-puller: camera {id}: recorded "), WAIT)
            .await;
        recorded += line
            .split(' ')
            .next()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{line}"));
    }
    server.kill().await.unwrap();
    let (in_files, files_secs, holes, decode_errors) = probe_recordings(&data, &cams).await;

    Round {
        cameras: n,
        seconds: wall,
        puller_cores,
        puller_rss_mean_kib: rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64,
        puller_rss_max_kib: rss.iter().copied().max().unwrap_or(0),
        puller_hwm_kib,
        puller_threads,
        puller_anon_kib,
        puller_file_kib,
        written_kbit_s: written as f64 * 8.0 / 1000.0 / wall / n as f64,
        server_cores,
        pushers_cores,
        recorded,
        published,
        pusher_dropped,
        in_files,
        decode_errors,
        files_secs,
        holes,
        join_ms,
    }
}

/// A stretch of a recorded file with no frames.
#[derive(Debug)]
struct Hole {
    camera: i64,
    /// Seconds after the camera's first recorded frame.
    at_secs: f64,
    missing_frames: u64,
}

/// What a user would check: frames ffprobe decodes in every recorded
/// file of `cams`, the files' total duration in seconds, the holes
/// inside them (steps between frames over 1.5 frame intervals), and the
/// errors ffmpeg reports decoding them.
async fn probe_recordings(
    data: &Path,
    cams: &[(i64, String)],
) -> (u64, f64, Vec<Hole>, Vec<String>) {
    let (store, _) = Store::open(StoreConfig::new(data)).await.unwrap();
    let (mut frames, mut secs, mut holes, mut errors) = (0, 0.0, Vec::new(), Vec::new());
    for (id, _) in cams {
        let recs = store
            .recordings(&reallive_core::CameraId(*id).store_key(), TimeRange::all())
            .await
            .unwrap();
        let first_ns = recs.iter().map(|r| r.start_utc_ns).min().unwrap_or(0);
        for r in &recs {
            let path = store.root().join(&r.path);
            let decode = tokio::time::timeout(
                WAIT * 4,
                Command::new("ffmpeg")
                    .args(["-v", "error", "-i"])
                    .arg(&path)
                    .args(["-f", "null", "-"])
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("ffmpeg decodes a file within 2 min")
            .unwrap();
            errors.extend(
                String::from_utf8_lossy(&decode.stderr)
                    .lines()
                    .map(|l| format!("camera {id}: {l}")),
            );
            let p = reallive_test_support::ffprobe::probe(&path);
            frames += p.frames;
            secs += p.duration_secs.unwrap_or(0.0);
            let offset = (r.start_utc_ns - first_ns) as f64 / 1e9;
            for w in p.frame_pts.windows(2) {
                let step = w[1] - w[0];
                if step * FPS > 1.5 {
                    holes.push(Hole {
                        camera: *id,
                        at_secs: offset + w[0],
                        missing_frames: (step * FPS).round() as u64 - 1,
                    });
                }
            }
        }
    }
    store.close().await;
    (frames, secs, holes, errors)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let seconds = Duration::from_secs(arg("--seconds").map_or(60, |s| s.parse().unwrap()));
    let warmup = Duration::from_secs(arg("--warmup").map_or(10, |s| s.parse().unwrap()));
    let counts: Vec<usize> = arg("--cameras")
        .unwrap_or_else(|| "1,4".into())
        .split(',')
        .map(|s| s.trim().parse().expect("--cameras 1,4"))
        .collect();
    // Fail before any work when a binary is missing.
    bin("reallive-server");
    bin("reallive-pusher");

    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), Container::Mp4).await;
    println!("clip: {}", clip.summary);
    println!(
        "measuring {seconds:?} after {warmup:?} of warm-up; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let mut rounds = Vec::new();
    for &n in &counts {
        eprintln!("{n} camera(s)…");
        let r = round(&clip, n, warmup, seconds).await;
        println!(
            "  {n} camera(s): {:.1} s measured; puller {} threads, RSS max {:.1} MiB \
             (at the end {:.1} MiB anonymous + {:.1} MiB of mapped files); \
             written {:.0} kbit/s per camera (clip {:.0}); \
             first recording {:?} ms after each pusher started; pushers dropped {} frames; \
             ffmpeg decoding the files printed {} error lines {:?}; holes in the files: {}",
            r.seconds,
            r.puller_threads,
            mib(r.puller_rss_max_kib as f64),
            mib(r.puller_anon_kib as f64),
            mib(r.puller_file_kib as f64),
            r.written_kbit_s,
            clip.kbit_s,
            r.join_ms,
            r.pusher_dropped,
            r.decode_errors.len(),
            r.decode_errors.iter().take(4).collect::<Vec<_>>(),
            if r.holes.is_empty() {
                "none".to_string()
            } else {
                r.holes
                    .iter()
                    .map(|h| {
                        format!(
                            "camera {} at {:.1} s, {} frames",
                            h.camera, h.at_secs, h.missing_frames
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        );
        rounds.push(r);
    }

    println!();
    println!(
        "| cameras | puller CPU, % of a core | per camera | puller RSS, MiB (mean) | per camera \
         | peak RSS (VmHWM), MiB | frames recorded / published | frames in files / 30 fps × files' duration \
         | written, kbit/s per camera | server CPU | pushers' CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rounds {
        let n = r.cameras as f64;
        println!(
            "| {} | {:.2} % | {:.2} % | {:.1} | {:.1} | {:.1} | {} / {} | {} / {:.0} ({:.1} %) | {:.0} | {:.1} % | {:.1} % |",
            r.cameras,
            r.puller_cores * 100.0,
            r.puller_cores * 100.0 / n,
            mib(r.puller_rss_mean_kib),
            mib(r.puller_rss_mean_kib) / n,
            mib(r.puller_hwm_kib as f64),
            r.recorded,
            r.published,
            r.in_files,
            r.files_secs * FPS,
            r.in_files as f64 * 100.0 / (r.files_secs * FPS).max(1.0),
            r.written_kbit_s,
            r.server_cores * 100.0,
            r.pushers_cores * 100.0,
        );
    }
    // The marginal cost of a camera, where two rounds allow it.
    if let (Some(a), Some(b)) = (rounds.first(), rounds.last())
        && b.cameras > a.cameras
    {
        let dn = (b.cameras - a.cameras) as f64;
        println!();
        println!(
            "each camera beyond the first {}: {:.2} % of a core, {:.1} MiB",
            a.cameras,
            (b.puller_cores - a.puller_cores) * 100.0 / dn,
            mib(b.puller_rss_mean_kib - a.puller_rss_mean_kib) / dn,
        );
    }
}
