//! Helpers shared by the benchmark binaries (`apps/*/benches/*.rs`):
//! their command line, the test clip, and what `/proc` says of a process.
//!
//! Everything here panics on failure, with the reason: a benchmark that
//! cannot measure must not print figures.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::process::cpu_time;

/// The clip's frame rate, and the rate the benchmarks expect of a camera.
const FPS: f64 = 30.0;

/// How long [`output`] waits for its command.
const OUTPUT_WAIT: Duration = Duration::from_secs(120);

/// The value after `name` on the command line (`--seconds 60`), if any.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Whether `name` (`--ffmpeg`) is on the command line.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Runs `cmd` to completion, for two minutes at the most (it is killed
/// then); its stdout on success. Panics with its stderr when it fails, or
/// when it cannot start (naming ffmpeg, the usual cause).
pub async fn output(cmd: &mut Command) -> String {
    let out = tokio::time::timeout(OUTPUT_WAIT, cmd.kill_on_drop(true).output())
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} took over {OUTPUT_WAIT:?}"))
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}; is ffmpeg installed? (scripts/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How [`make_clip`] stores the clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// An Annex-B elementary stream (`.h264`), each keyframe with its
    /// parameter sets: what `reallive-fake-camera --clip` serves.
    AnnexB,
    /// MP4 with the index at the front (`-movflags +faststart`): what
    /// `reallive-pusher --source file:` reads.
    Mp4,
}

/// The test clip, and what ffprobe says of it.
#[derive(Clone, Debug)]
pub struct Clip {
    /// The file, in the directory given to [`make_clip`].
    pub path: PathBuf,
    /// How it is stored.
    pub container: Container,
    /// Frames (packets) ffprobe counts in it; 0 if it counts none.
    pub frames: u64,
    /// The stream's bit rate in kbit/s: ffprobe's where the container
    /// records one (MP4), else the file's size over its frames at 30 fps
    /// (Annex-B).
    pub kbit_s: f64,
    /// One line for the benchmark's output: size, frame rate, profile,
    /// frames, B-frames and bit rate.
    pub summary: String,
}

/// Makes the benchmarks' clip in `dir` with ffmpeg: 10 s of 1080p30
/// constrained-baseline H.264 at ~4 Mbit/s, a keyframe every 30 frames, no
/// B-frames (what a camera set up for WebRTC sends), stored as
/// `container`. `testsrc2` moves everywhere, so x264 actually spends the
/// bitrate. Then reads it back with ffprobe, and panics unless the profile
/// is Constrained Baseline without B-frames.
pub async fn make_clip(dir: &Path, container: Container) -> Clip {
    make_clip_of(dir, container, Scene::Moving).await
}

/// What the benchmarks' clip shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scene {
    /// `testsrc2`: moves everywhere, all the time (motion never ends).
    Moving,
    /// `testsrc2`'s first picture held still, with temporal noise (a
    /// sensor's at night) that keeps x264 spending the bitrate: what a
    /// motion detector watches most of the time.
    Still,
}

/// [`make_clip`] of `scene`.
pub async fn make_clip_of(dir: &Path, container: Container, scene: Scene) -> Clip {
    let (name, format): (&str, &[&str]) = match container {
        Container::AnnexB => ("clip-1080p30-4M.h264", &["-f", "h264"]),
        Container::Mp4 => ("clip-1080p30-4M.mp4", &["-movflags", "+faststart"]),
    };
    let source = match scene {
        Scene::Moving => "testsrc2=size=1920x1080:rate=30",
        Scene::Still => {
            "testsrc2=size=1920x1080:rate=30,trim=end_frame=1,loop=loop=-1:size=1,\
             setpts=N/30/TB,noise=alls=6:allf=t"
        }
    };
    let path = dir.join(name);
    output(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi"])
            .args(["-i", source, "-t", "10"])
            .args(["-pix_fmt", "yuv420p", "-c:v", "libx264"])
            .args(["-profile:v", "baseline", "-preset", "ultrafast"])
            .args(["-b:v", "4M", "-maxrate", "4M", "-bufsize", "2M"])
            .args(["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"])
            .args(["-bf", "0", "-an"])
            .args(format)
            .arg(&path),
    )
    .await;
    let probe = output(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
            .args([
                "-show_entries",
                "stream=profile,width,height,avg_frame_rate,nb_read_packets,has_b_frames,bit_rate",
            ])
            .args(["-of", "default=noprint_wrappers=1"])
            .arg(&path),
    )
    .await;
    let field = |k: &str| {
        probe
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("?")
            .to_string()
    };
    let frames: u64 = field("nb_read_packets").parse().unwrap_or(0);
    let kbit_s = match field("bit_rate").parse::<f64>() {
        Ok(b) => b / 1000.0,
        Err(_) => {
            let bytes = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .len();
            bytes as f64 * 8.0 / 1000.0 / (frames as f64 / FPS).max(1.0)
        }
    };
    // An elementary stream has no frame rate of its own: it is made at 30.
    let rate = match container {
        Container::AnnexB => "@ 30".to_string(),
        Container::Mp4 => field("avg_frame_rate"),
    };
    let summary = format!(
        "{}x{} {rate} fps, {}, {frames} frames, has_b_frames={}, {kbit_s:.0} kbit/s",
        field("width"),
        field("height"),
        field("profile"),
        field("has_b_frames"),
    );
    assert_eq!(field("profile"), "Constrained Baseline", "{summary}");
    assert_eq!(field("has_b_frames"), "0", "{summary}");
    Clip {
        path,
        container,
        frames,
        kbit_s,
        summary,
    }
}

/// Bytes of every file under `dir`, recursively; 0 for what cannot be
/// read (a file removed meanwhile, a missing `dir`).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// A numeric field of `/proc/{pid}/{file}` (`status`: `Threads:`,
/// `RssAnon:`, …; `smaps_rollup`: `Pss:`, …), without its `kB` unit; 0 if
/// the process or the field is gone.
pub fn proc_field(pid: u32, file: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) of all of `pids` together, as
/// [`cpu_time`] reads it.
pub fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|p| cpu_time(Some(*p))).sum()
}

/// KiB in MiB.
pub fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

/// The `p` quantile (0 to 1) of `sorted`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints `name: n=… p50=… ms p99=… ms max=… ms` for `times`.
#[allow(clippy::print_stdout)]
pub fn report_latencies(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
    );
}

/// Context switches (voluntary + involuntary) of each thread of process
/// `pid` alive now, as `(thread id, count)`, from
/// `/proc/{pid}/task/*/status`; empty if the process is gone. A process's
/// own `status` counts its main thread only, and a thread that exited
/// takes its count with it: sample often and add up the increases
/// (`apps/nvr/benches/nvr.rs` does, every second).
pub fn thread_context_switches(pid: u32) -> Vec<(u32, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid: u32 = t.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(t.path().join("status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Some((
                tid,
                field("voluntary_ctxt_switches:") + field("nonvoluntary_ctxt_switches:"),
            ))
        })
        .collect()
}
