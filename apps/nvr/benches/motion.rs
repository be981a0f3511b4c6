#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! What motion detection costs per camera, for `docs/benchmarks.md`: the
//! NVR's analysis path (`encode::motion::GrayDecoder`, GStreamer's H.264
//! decoder to 320-pixel GRAY8 at 5 fps, then `motion::Detector`) on a
//! camera's sub-stream, decode included, and the memory of a motion-mode
//! pre-roll.
//!
//! - Detection: a moving test picture (ffmpeg's `testsrc2`) encoded once
//!   as a sub-stream would be (H.264 baseline, a keyframe a second), at
//!   320x180 and each `--fps-in` rate. For each N in `--cameras`, N
//!   decoders and detectors run in this process, each on its own thread as
//!   in the NVR, fed in real time for `--seconds`; the process's CPU time
//!   over wall time, divided by N, is the cost per camera. Pictures
//!   analysed are counted against the 5 fps asked for.
//! - Main-stream keyframes (`--main 1080`): what a camera without a
//!   sub-stream costs with motion on. The benchmarks' 1080p30 4 Mbit/s
//!   clip (`reallive_test_support::bench::make_clip`, a keyframe every 30
//!   frames) is cut to its keyframes, and N cameras each get one a second,
//!   in real time and staggered (what `record::run::DecodeFilter` passes
//!   from a stream above 720p), with a detector thread each as in the NVR.
//!   Per `--decoders` (`own`: a `GrayDecoder` per camera, as every
//!   camera had before; `shared`: the one `KeyframeDecoder` the NVR's
//!   factory gives every camera's keyframes to), each N of
//!   `--cameras` runs in a child process of its own, so its memory is its
//!   own: CPU per camera (the process's CPU time over wall time, over N),
//!   pictures analysed per camera per second, and memory at the end (VmRSS
//!   and Pss), with the margin per camera (RSS(N) - RSS(1)) / (N - 1).
//! - Pre-roll: `record::run::CameraRun` in events mode with a 5 s pre-roll fed 60 s
//!   of a simulated 4 Mbit/s, 30 fps, 1 s GOP stream; the most it held at
//!   once, against its byte bound.
//!
//! `cargo bench -p reallive-nvr --bench motion [-- --seconds 30 --cameras 1,8 --fps-in 5,15]`
//! runs the sub-stream rows and the pre-roll;
//! `cargo bench -p reallive-nvr --bench motion -- --main 1080 [--cameras 1,8,16 --decoders own,shared]`
//! the main-stream keyframe rows instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reallive_core::decode::{DecodeKind, GrayDecode, StartGrayDecoder};
use reallive_core::{Codec, CodecParameters, EncodedFrame};
use reallive_encode::motion::GrayDecoder;
use reallive_motion::{Detector, GrayFrame, MotionSettings};
use reallive_record::run::{CameraRun, Now, RunConfig, RunMode};
use reallive_test_support::bench::{Container, make_clip, mib, proc_field};
use reallive_test_support::process::cpu_time;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn list(name: &str, default: &str) -> Vec<u32> {
    arg(name)
        .unwrap_or_else(|| default.into())
        .split(',')
        .map(|n| n.trim().parse().expect("a number"))
        .collect()
}

/// A 320x180 sub-stream clip at `fps`, 20 s, as frames.
fn clip(dir: &Path, fps: u32) -> Vec<EncodedFrame> {
    let path = dir.join(format!("sub-{fps}.h264"));
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x180:rate={fps}"))
        .args([
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-bf",
            "0",
        ])
        .args(["-g", &fps.to_string(), "-b:v", "256k", "-f", "h264"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(ok.success(), "ffmpeg made the clip");
    reallive_test_support::clip::annex_b_frames(&path, Codec::H264, 0, 90_000 / fps)
}

struct Round {
    cpu_per_camera_pct: f64,
    pictures_per_sec: f64,
}

fn detection(frames: &[EncodedFrame], fps_in: u32, cameras: u32, seconds: u64) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let pictures = Arc::new(AtomicU64::new(0));
    let mut decoders = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..cameras {
        let d = Arc::new(GrayDecoder::start(320, 5).expect("decoder"));
        let (d2, stop2, pictures2) = (d.clone(), stop.clone(), pictures.clone());
        threads.push(std::thread::spawn(move || {
            let mut detector = Detector::new(MotionSettings::default()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                let Some(p) = d2.pull(Duration::from_millis(200)) else {
                    continue;
                };
                let f = GrayFrame::new(&p.data, p.width, p.height, p.stride).unwrap();
                let _ = detector.process(&f, p.pts_ms);
                pictures2.fetch_add(1, Ordering::Relaxed);
            }
        }));
        decoders.push(d);
    }
    // Paced by a timer on a runtime of its own, as a camera would send.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let warmup = Duration::from_secs(3);
    let measured = runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / fps_in);
        let begin = Instant::now();
        let mut measured: Option<(Instant, Duration, u64)> = None;
        for i in 0usize.. {
            tick.tick().await;
            if measured.is_none() && begin.elapsed() >= warmup {
                measured = Some((
                    Instant::now(),
                    cpu_time(None),
                    pictures.load(Ordering::Relaxed),
                ));
            }
            if let Some((t0, _, _)) = measured
                && t0.elapsed() >= Duration::from_secs(seconds)
            {
                break;
            }
            let mut f = frames[i % frames.len()].clone();
            f.pts_90k = i as i64 * i64::from(90_000 / fps_in);
            f.dts_90k = f.pts_90k;
            for d in &decoders {
                d.push(&f);
            }
        }
        measured
    });
    let (t0, cpu0, pics0) = measured.unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time(None) - cpu0).as_secs_f64();
    let pics = pictures.load(Ordering::Relaxed) - pics0;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    Round {
        cpu_per_camera_pct: cpu / wall / f64::from(cameras) * 100.0,
        pictures_per_sec: pics as f64 / wall / f64::from(cameras),
    }
}

/// A 4 Mbit/s, 30 fps stream with a keyframe a second: the keyframe 4x a
/// delta frame's size.
fn synthetic_frame(i: u64, params: &Arc<CodecParameters>) -> EncodedFrame {
    let per_sec = 4_000_000 / 8;
    let delta = per_sec / (29 + 4);
    let key = i.is_multiple_of(30);
    let len = if key { delta * 4 } else { delta };
    let mut data = vec![0u8; len];
    data[..4].copy_from_slice(&[0, 0, 0, 1]);
    data[4] = if key { 0x65 } else { 0x41 };
    EncodedFrame {
        data: Bytes::from(data),
        pts_90k: i as i64 * 3000,
        dts_90k: i as i64 * 3000,
        duration_90k: Some(3000),
        keyframe: key,
        params: params.clone(),
    }
}

fn pre_roll() -> (usize, usize) {
    let config = RunConfig {
        mode: RunMode::Events,
        pre_roll: Duration::from_secs(5),
        post_roll: Duration::from_secs(5),
        ..RunConfig::default()
    };
    let mut t = CameraRun::new(config);
    let params = Arc::new(CodecParameters::new(Codec::H264));
    let clock = reallive_core::SystemClock;
    let mut peak = 0;
    for i in 0..60 * 30 {
        t.frame(synthetic_frame(i, &params), Now::of(&clock));
        while t.poll().is_some() {}
        peak = peak.max(t.pre_roll_bytes());
    }
    (peak, config.max_pre_roll_bytes)
}

/// One child's figures for the main-stream keyframe rows.
struct MainRound {
    cpu_per_camera_pct: f64,
    pictures_per_sec: f64,
    rss_kib: u64,
    pss_kib: u64,
}

/// Starts the decoder a camera's keyframes go to, through the NVR's
/// factory: `own` is a decoder per camera (what every camera had before
/// the shared one), `shared` a handle on the one shared keyframe decoder.
fn main_decoder(start: &StartGrayDecoder, kind: &str) -> Arc<dyn GrayDecode> {
    let kind = match kind {
        "own" => DecodeKind::Stream,
        "shared" => DecodeKind::Keyframes,
        other => panic!("--decoders: unknown decoder {other} (own, shared)"),
    };
    Arc::from(start(320, 5, kind).expect("decoder"))
}

/// In a child process: `cameras` decoders and detectors, each camera given
/// one of `keyframes` a second (staggered across the second), for
/// `seconds` after a warm-up. Prints one `ROUND` line for the parent.
fn main_child(clip: &Path, kind: &str, cameras: u32, seconds: u64) {
    let frames = reallive_test_support::clip::annex_b_frames(clip, Codec::H264, 0, 3000);
    let keyframes: Vec<EncodedFrame> = frames.into_iter().filter(|f| f.keyframe).collect();
    assert!(!keyframes.is_empty(), "the clip has keyframes");
    let stop = Arc::new(AtomicBool::new(false));
    let pictures = Arc::new(AtomicU64::new(0));
    let start = reallive_encode::motion::start_gray_decoder();
    let mut decoders = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..cameras {
        let d = main_decoder(&start, kind);
        let (d2, stop2, pictures2) = (d.clone(), stop.clone(), pictures.clone());
        threads.push(std::thread::spawn(move || {
            let mut detector = Detector::new(MotionSettings::default()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                let Some(p) = d2.pull(Duration::from_millis(200)) else {
                    continue;
                };
                let f = GrayFrame::new(&p.data, p.width, p.height, p.stride).unwrap();
                let _ = detector.process(&f, p.pts_ms);
                pictures2.fetch_add(1, Ordering::Relaxed);
            }
        }));
        decoders.push(d);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let warmup = Duration::from_secs(5);
    let measured = runtime.block_on(async {
        // One camera's keyframe per tick: each camera's a second apart.
        let mut tick = tokio::time::interval(Duration::from_secs(1) / cameras);
        let begin = Instant::now();
        let mut measured: Option<(Instant, Duration, u64)> = None;
        for i in 0usize.. {
            tick.tick().await;
            if measured.is_none() && begin.elapsed() >= warmup {
                measured = Some((
                    Instant::now(),
                    cpu_time(None),
                    pictures.load(Ordering::Relaxed),
                ));
            }
            if let Some((t0, _, _)) = measured
                && t0.elapsed() >= Duration::from_secs(seconds)
            {
                break;
            }
            let camera = i % cameras as usize;
            let second = i / cameras as usize;
            let mut f = keyframes[(second + camera) % keyframes.len()].clone();
            f.pts_90k = second as i64 * 90_000;
            f.dts_90k = f.pts_90k;
            decoders[camera].push(&f);
        }
        measured
    });
    let (t0, cpu0, pics0) = measured.unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time(None) - cpu0).as_secs_f64();
    let pics = pictures.load(Ordering::Relaxed) - pics0;
    let me = std::process::id();
    let rss = proc_field(me, "status", "VmRSS:");
    let pss = proc_field(me, "smaps_rollup", "Pss:");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "ROUND {} {} {rss} {pss}",
        cpu / wall / f64::from(cameras) * 100.0,
        pics as f64 / wall / f64::from(cameras),
    );
}

/// Runs one main-stream round in a child process of this bench.
fn main_round(clip: &Path, kind: &str, cameras: u32, seconds: u64) -> MainRound {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--main-child",
            kind,
            &cameras.to_string(),
            &seconds.to_string(),
        ])
        .arg("--clip")
        .arg(clip)
        .output()
        .expect("the bench runs itself");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{kind} x{cameras}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ROUND "))
        .unwrap_or_else(|| panic!("{kind} x{cameras} printed no ROUND line: {stdout}"));
    let v: Vec<f64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    MainRound {
        cpu_per_camera_pct: v[0],
        pictures_per_sec: v[1],
        rss_kib: v[2] as u64,
        pss_kib: v[3] as u64,
    }
}

/// The main-stream keyframe rows.
fn main_stream(height: u32, cameras: &[u32], seconds: u64) {
    assert_eq!(height, 1080, "--main: only the 1080p clip is made");
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let clip = runtime.block_on(make_clip(dir.path(), Container::AnnexB));
    let path: PathBuf = clip.path.clone();
    let kinds: Vec<String> = arg("--decoders")
        .unwrap_or_else(|| "own,shared".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let mut ns: Vec<u32> = cameras.to_vec();
    if !ns.contains(&1) {
        ns.insert(0, 1);
    }
    println!("motion on main-stream keyframes: {}", clip.summary);
    println!("each camera: one keyframe a second, to 320 px GRAY8, and a detector");
    println!(
        "| decoder | cameras | CPU per camera (% of a core) | pictures per camera per s \
         | RSS, MiB | Pss, MiB | RSS per camera at the margin, MiB | Pss at the margin, MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for kind in &kinds {
        let mut one: Option<MainRound> = None;
        for n in &ns {
            let r = main_round(&path, kind, *n, seconds);
            let margin = |f: fn(&MainRound) -> u64| match &one {
                Some(o) if *n > 1 => format!(
                    "{:.2}",
                    mib((f(&r) as f64 - f(o) as f64) / f64::from(n - 1))
                ),
                _ => "-".into(),
            };
            println!(
                "| {kind} | {n} | {:.2} % | {:.2} | {:.1} | {:.1} | {} | {} |",
                r.cpu_per_camera_pct,
                r.pictures_per_sec,
                mib(r.rss_kib as f64),
                mib(r.pss_kib as f64),
                margin(|r| r.rss_kib),
                margin(|r| r.pss_kib),
            );
            if *n == 1 {
                one = Some(r);
            }
        }
    }
}

fn main() {
    let seconds: u64 = arg("--seconds").map_or(30, |s| s.parse().unwrap());
    if let Some(kind) = arg("--main-child") {
        let args: Vec<String> = std::env::args().collect();
        let at = args.iter().position(|a| a == "--main-child").unwrap();
        let cameras: u32 = args[at + 2].parse().unwrap();
        let seconds: u64 = args[at + 3].parse().unwrap();
        let clip = PathBuf::from(arg("--clip").expect("--clip"));
        main_child(&clip, &kind, cameras, seconds);
        return;
    }
    if let Some(height) = arg("--main") {
        main_stream(
            height.parse().expect("--main HEIGHT"),
            &list("--cameras", "1,8"),
            seconds,
        );
        return;
    }
    let cameras = list("--cameras", "1,8");
    let rates = list("--fps-in", "5,15");
    let dir = tempfile::tempdir().unwrap();
    println!("motion detection, 320x180 sub-stream analysed at 5 fps, decode included");
    println!(
        "| stream | cameras | CPU per camera (% of a core) | pictures analysed per camera per s |"
    );
    println!("|---|---|---|---|");
    for fps in &rates {
        let frames = clip(dir.path(), *fps);
        for n in &cameras {
            let r = detection(&frames, *fps, *n, seconds);
            println!(
                "| 320x180@{fps} | {n} | {:.2} % | {:.2} |",
                r.cpu_per_camera_pct, r.pictures_per_sec
            );
        }
    }
    let (peak, bound) = pre_roll();
    println!(
        "pre-roll at 5 s of 4 Mbit/s: peak {:.2} MB held, bound {:.2} MB",
        peak as f64 / 1e6,
        bound as f64 / 1e6
    );
    assert!(peak <= bound, "the pre-roll went past its bound");
}
