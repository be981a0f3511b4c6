//! Capture/encode cost and latency on this machine.
//!
//! `cargo bench -p reallive-capture --bench capture -- [--seconds N] [--audio-only]`
//! (or `make bench`). For each scenario it runs a live test-pattern
//! pipeline, lets it warm up for two seconds, then measures over N seconds:
//!
//! - cores: process CPU time (all threads, from /proc/self/stat) / wall time;
//! - source-only cores: the same `videotestsrc` into a fakesink, so the
//!   encoder's share is the difference;
//! - capture-to-appsink latency per frame, p50 and p99, from the pipeline
//!   clock (see `CaptureStats::latency`);
//! - memory: the process's VmRSS at the end of the window minus before the
//!   pipeline started. Scenarios run one after another in this process,
//!   and a later one may reuse memory an earlier one freed, so only the
//!   first row is a clean figure; the others are lower bounds.
//!
//! A second table prices the microphone (`--audio test`: `audiotestsrc`
//! through `opusenc` in the same pipeline): the 720p scenario without and
//! with it, back to back, and the Opus packets and bitrate that came out.
//! `--audio-only` runs that table alone.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_capture::{AudioInput, CameraCapture, CaptureOptions, TestPattern};
use reallive_core::{audio_channel, frame_channel};
use reallive_encode::{EncoderKind, EncoderSettings, X264Preset};

use reallive_test_support::process::rss_kib;
use reallive_test_support::process_cpu_time as cpu_time;

/// Cores used by the test source alone, to separate its cost from the encoder's.
async fn source_only(pattern: &str, width: u32, height: u32, secs: u64) -> f64 {
    let p = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,format=I420,width={width},height={height},framerate=30/1 ! fakesink"
    ))
    .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cores = (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    p.set_state(gst::State::Null).unwrap();
    cores
}

struct Row {
    name: String,
    cores: f64,
    source_cores: f64,
    fps: f64,
    p50_ms: f64,
    p99_ms: f64,
    kbps: f64,
    rss_mib: f64,
    /// Opus packets per second and kbit/s, with audio.
    audio: Option<(f64, f64)>,
}

async fn scenario(
    encoder: EncoderKind,
    pattern: &str,
    width: u32,
    height: u32,
    secs: u64,
    audio: AudioInput,
) -> Row {
    let opts = CaptureOptions {
        width,
        height,
        fps: 30,
        encoder,
        encoder_settings: EncoderSettings {
            bitrate_kbps: if height >= 1080 { 4000 } else { 2000 },
            keyframe_interval: 30,
            x264_preset: X264Preset::Ultrafast,
            ..EncoderSettings::default()
        },
        audio: audio.clone(),
        ..CaptureOptions::default()
    };
    let rss0 = rss_kib(None);
    let capture = TestPattern::new(pattern.into(), opts);
    let (tx, mut rx) = frame_channel(256);
    let (atx, mut arx) = audio_channel(256);
    let running = if audio.is_some() {
        capture.start_with_audio(tx, atx).expect("pipeline starts")
    } else {
        drop(atx);
        capture.start(tx).expect("pipeline starts")
    };
    let sound = tokio::spawn(async move {
        let mut marks = Vec::new();
        let mut bytes = 0u64;
        while let Some(a) = arx.recv().await {
            bytes += a.data.len() as u64;
            marks.push((Instant::now(), bytes));
        }
        marks
    });
    let reader = tokio::spawn(async move {
        let mut frames = 0u64;
        let mut bytes = 0u64;
        let mut marks = Vec::new();
        while let Some(f) = rx.recv().await {
            frames += 1;
            bytes += f.data.len() as u64;
            marks.push((Instant::now(), frames, bytes));
        }
        marks
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warm = Instant::now();
    let latency_before = running.stats().latency().count();
    let (c0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cores = (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss_mib = rss_kib(None).saturating_sub(rss0) as f64 / 1024.0;
    let latency = running.stats().latency();
    let (p50, p99) = (
        latency.percentile(50.0).unwrap(),
        latency.percentile(99.0).unwrap(),
    );
    assert!(latency.count() > latency_before, "no frames measured");
    let name = format!("{} {width}x{height}@30, {pattern}", running.encoder());
    running.stop().await;
    let marks = reader.await.unwrap();
    let sound: Vec<_> = sound
        .await
        .unwrap()
        .into_iter()
        .filter(|(t, _)| *t >= warm)
        .collect();
    let audio = match (sound.first(), sound.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => {
            let dt = b.0.duration_since(a.0).as_secs_f64();
            Some((
                (sound.len() - 1) as f64 / dt,
                (b.1 - a.1) as f64 * 8.0 / dt / 1e3,
            ))
        }
        _ => None,
    };
    let window: Vec<_> = marks.iter().filter(|(t, _, _)| *t >= warm).collect();
    let (first, last) = (window.first().unwrap(), window.last().unwrap());
    let dt = last.0.duration_since(first.0).as_secs_f64();
    let source_cores = source_only(pattern, width, height, secs).await;
    Row {
        name,
        cores,
        source_cores,
        fps: (last.1 - first.1) as f64 / dt,
        p50_ms: p50.as_secs_f64() * 1e3,
        p99_ms: p99.as_secs_f64() * 1e3,
        kbps: (last.2 - first.2) as f64 * 8.0 / dt / 1e3,
        rss_mib,
        audio,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    gst::init().unwrap();
    if !args.iter().any(|a| a == "--audio-only") {
        video_table(secs).await;
    }
    audio_table(secs).await;
}

/// The microphone's price: the same 720p capture without and with
/// `--audio test`, back to back.
async fn audio_table(secs: u64) {
    println!();
    println!(
        "| scenario | audio | cores (total) | cores added by audio | Opus packets/s | Opus kbit/s |"
    );
    println!("|---|---|---|---|---|---|");
    let without = scenario(
        EncoderKind::X264,
        "smpte",
        1280,
        720,
        secs,
        AudioInput::None,
    )
    .await;
    let with = scenario(
        EncoderKind::X264,
        "smpte",
        1280,
        720,
        secs,
        AudioInput::Test,
    )
    .await;
    let (pps, kbps) = with.audio.expect("the audio branch produced packets");
    for (r, audio) in [(&without, "none"), (&with, "test")] {
        println!(
            "| {} | {audio} | {:.3} | {} | {} | {} |",
            r.name,
            r.cores,
            if r.audio.is_some() {
                format!("{:.3}", with.cores - without.cores)
            } else {
                "—".into()
            },
            if r.audio.is_some() {
                format!("{pps:.1}")
            } else {
                "—".into()
            },
            if r.audio.is_some() {
                format!("{kbps:.1}")
            } else {
                "—".into()
            },
        );
    }
}

async fn video_table(secs: u64) {
    println!(
        "| scenario | cores (total) | cores (source only) | cores (encode+parse) | fps | latency p50 | latency p99 | kbit/s | RSS added |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // smpte is `--source test`'s default; ball moves, so the encoder has work.
    for (enc, pattern, w, h) in [
        (EncoderKind::X264, "smpte", 1280, 720),
        (EncoderKind::X264, "smpte", 1920, 1080),
        (EncoderKind::X264, "ball", 1280, 720),
        (EncoderKind::X264, "ball", 1920, 1080),
        (EncoderKind::OpenH264, "smpte", 1920, 1080),
        (EncoderKind::OpenH264, "ball", 1920, 1080),
    ] {
        let r = scenario(enc, pattern, w, h, secs, AudioInput::None).await;
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} ms | {:.1} ms | {:.0} | {:.1} MiB |",
            r.name,
            r.cores,
            r.source_cores,
            r.cores - r.source_cores,
            r.fps,
            r.p50_ms,
            r.p99_ms,
            r.kbps,
            r.rss_mib
        );
    }
}
