//! What live transcoding costs on this machine, per camera.
//!
//! `cargo bench -p reallive-encode --bench live_transcode -- [--seconds N]`
//! (or `make bench`). Each scenario feeds its transcoders a camera's
//! stream in real time (made beforehand with GStreamer and looped), lets
//! them warm up for two seconds, then measures over N seconds:
//!
//! - cores: process CPU time (all threads, from /proc/self/stat) / wall
//!   time, divided by the cameras transcoded at once (one for video, ten
//!   for audio, whose single cost is too small to read well);
//! - what came out: frames or packets per second and bitrate per camera,
//!   and input frames dropped.
//!
//! Scenarios: a 1080p30 H.265 camera (4 Mbit/s of a scrolling SMPTE
//! pattern) to browser H.264 ([`LiveH264Transcoder`]), and the same
//! camera only decoded, which gives the decoder's share; AAC (16 kHz mono) and PCMA (8 kHz) to Opus
//! ([`OpusTranscoder`]); and, for comparison, the ingest's G.711 to AAC
//! ([`G711Transcoder`]).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/live_support/mod.rs"]
mod live_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use live_support::{Packet, aac, pcma, video_of};
use reallive_core::{
    AudioTranscoder, CameraAudio, Codec, EncodedFrame, G711, audio_channel, frame_channel,
};
use reallive_encode::audio::{G711Transcoder, OpusTranscoder};
use reallive_encode::live::LiveH264Transcoder;
use reallive_test_support::bench::arg;
use reallive_test_support::process_cpu_time as cpu_time;

/// Audio transcoders run at once, so that their cost reads above noise.
const AUDIO_CAMERAS: usize = 10;

const WARM_UP: Duration = Duration::from_secs(2);

struct Row {
    scenario: String,
    cameras: usize,
    cores_per_camera: f64,
    out: String,
    kbps_per_camera: f64,
    dropped: u64,
}

/// Output counted by a receiving task: items and bytes.
#[derive(Default)]
struct Counter {
    items: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    fn read(&self) -> (u64, u64) {
        (
            self.items.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// The measuring window: CPU and output over `secs`, while `feed` runs.
struct Window {
    cpu: Duration,
    wall: Instant,
    out: (u64, u64),
}

impl Window {
    fn start(counter: &Counter) -> Self {
        Window {
            cpu: cpu_time(),
            wall: Instant::now(),
            out: counter.read(),
        }
    }

    /// Cores, items per second and kbit/s since the start.
    fn end(&self, counter: &Counter) -> (f64, f64, f64) {
        let wall = self.wall.elapsed().as_secs_f64();
        let cores = (cpu_time() - self.cpu).as_secs_f64() / wall;
        let (items, bytes) = counter.read();
        (
            cores,
            (items - self.out.0) as f64 / wall,
            (bytes - self.out.1) as f64 * 8.0 / wall / 1e3,
        )
    }
}

/// Five seconds of a 1080p30 H.265 camera (a keyframe every two seconds,
/// 4 Mbit/s of a picture with detail that moves), to be looped.
fn camera_clip() -> Vec<EncodedFrame> {
    video_of(
        "pattern=smpte horizontal-speed=4",
        Codec::H265,
        "x265enc speed-preset=ultrafast key-int-max=60 bitrate=4000",
        150,
        1920,
        1080,
        30,
    )
}

/// Feeds `clip` to `push` in real time, looped, for the warm-up and
/// `secs`; the window measured after the warm-up.
async fn feed_video(
    clip: &[EncodedFrame],
    counter: &Counter,
    secs: u64,
    mut push: impl FnMut(&EncodedFrame),
) -> (f64, f64, f64) {
    let n_clip = clip.len() as i64;
    let loop_90k = n_clip * 3000;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / 30);
    let started = Instant::now();
    let mut window = None;
    let mut n = 0i64;
    loop {
        tick.tick().await;
        if window.is_none() && started.elapsed() >= WARM_UP {
            window = Some(Window::start(counter));
        }
        if started.elapsed() >= WARM_UP + Duration::from_secs(secs) {
            break;
        }
        let mut f = clip[(n % n_clip) as usize].clone();
        f.pts_90k += n / n_clip * loop_90k;
        f.dts_90k += n / n_clip * loop_90k;
        push(&f);
        n += 1;
    }
    window.unwrap().end(counter)
}

async fn video_row(clip: &[EncodedFrame], secs: u64) -> Row {
    let (tx, mut rx) = frame_channel(64);
    let counter = Arc::new(Counter::default());
    let c = counter.clone();
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            c.items.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
        }
    });
    let mut t = LiveH264Transcoder::new(Codec::H265, tx).unwrap();
    let (cores, fps, kbps) = feed_video(clip, &counter, secs, |f| t.push(f).unwrap()).await;
    let ((w, h), _) = t.output().unwrap();
    Row {
        scenario: "1080p30 H.265 → H.264".into(),
        cameras: 1,
        cores_per_camera: cores,
        out: format!("{w}x{h} {fps:.1} fps"),
        kbps_per_camera: kbps,
        dropped: t.dropped(),
    }
}

/// The decoder's share: the same camera into `h265parse ! avdec_h265 !
/// fakesink` alone.
async fn decode_row(clip: &[EncodedFrame], secs: u64) -> Row {
    let pipeline = gst::parse::launch(
        "appsrc name=src is-live=true format=time \
         caps=video/x-h265,stream-format=byte-stream,alignment=au \
         ! h265parse ! avdec_h265 ! fakesink name=sink sync=false signal-handoffs=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let counter = Arc::new(Counter::default());
    let c = counter.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .connect("handoff", false, move |_| {
            c.items.fetch_add(1, Ordering::Relaxed);
            None
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let base = clip[0].dts_90k;
    let ns = |t: i64| gst::ClockTime::from_nseconds((t - base) as u64 * 100_000 / 9);
    let (cores, fps, _) = feed_video(clip, &counter, secs, |f| {
        let mut b = gst::Buffer::from_slice(f.data.clone());
        let m = b.get_mut().unwrap();
        m.set_pts(ns(f.pts_90k));
        m.set_dts(ns(f.dts_90k));
        src.push_buffer(b).unwrap();
    })
    .await;
    pipeline.set_state(gst::State::Null).unwrap();
    Row {
        scenario: "1080p30 H.265 decode alone (its share)".into(),
        cameras: 1,
        cores_per_camera: cores,
        out: format!("{fps:.1} pictures/s"),
        kbps_per_camera: 0.0,
        dropped: 0,
    }
}

/// `AUDIO_CAMERAS` transcoders started by `start`, each fed `clip` in real
/// time.
async fn audio_row(
    scenario: &str,
    clip: &[Packet],
    start: impl Fn(reallive_core::AudioSender) -> Box<dyn AudioTranscoder>,
    secs: u64,
) -> Row {
    let counter = Arc::new(Counter::default());
    let mut transcoders = Vec::new();
    for _ in 0..AUDIO_CAMERAS {
        let (tx, mut rx) = audio_channel(64);
        let c = counter.clone();
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                c.items.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
            }
        });
        transcoders.push(start(tx));
    }
    let period_90k = clip[0].duration_90k;
    let mut tick = tokio::time::interval(Duration::from_micros(period_90k as u64 * 1000 / 90));
    let clip_90k = clip.len() as i64 * period_90k;
    let started = Instant::now();
    let mut window = None;
    let mut n = 0usize;
    loop {
        tick.tick().await;
        if window.is_none() && started.elapsed() >= WARM_UP {
            window = Some(Window::start(&counter));
        }
        if started.elapsed() >= WARM_UP + Duration::from_secs(secs) {
            break;
        }
        let p = &clip[n % clip.len()];
        let pts = p.pts_90k + (n / clip.len()) as i64 * clip_90k;
        for t in &mut transcoders {
            t.push(p.data.clone(), pts).unwrap();
        }
        n += 1;
    }
    let (cores, pps, kbps) = window.unwrap().end(&counter);
    let k = AUDIO_CAMERAS as f64;
    Row {
        scenario: scenario.into(),
        cameras: AUDIO_CAMERAS,
        cores_per_camera: cores / k,
        out: format!("{:.1} packets/s", pps / k),
        kbps_per_camera: kbps / k,
        dropped: 0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(10);
    reallive_test_support::require_elements(&[
        "x265enc",
        "avdec_h265",
        "x264enc",
        "avenc_aac",
        "avdec_aac",
        "alawenc",
        "opusenc",
    ]);
    let clip = camera_clip();
    let mut rows = vec![video_row(&clip, secs).await, decode_row(&clip, secs).await];
    let (aac_clip, params) = aac(5);
    let pcma_clip = pcma(5);
    rows.push(
        audio_row(
            "AAC 16 kHz → Opus",
            &aac_clip,
            |tx| Box::new(OpusTranscoder::start(&CameraAudio::Aac(params.clone()), tx).unwrap()),
            secs,
        )
        .await,
    );
    rows.push(
        audio_row(
            "PCMA 8 kHz → Opus",
            &pcma_clip,
            |tx| {
                let input = CameraAudio::G711 {
                    law: G711::ALaw,
                    sample_rate: 8000,
                    channels: 1,
                };
                Box::new(OpusTranscoder::start(&input, tx).unwrap())
            },
            secs,
        )
        .await,
    );
    rows.push(
        audio_row(
            "PCMA 8 kHz → AAC (ingest)",
            &pcma_clip,
            |tx| Box::new(G711Transcoder::start(G711::ALaw, 8000, 1, tx).unwrap()),
            secs,
        )
        .await,
    );
    println!("Live transcode, {secs} s per scenario after a 2 s warm-up:");
    println!();
    println!(
        "| scenario | cameras at once | cores per camera | out per camera | kbit/s per camera | input dropped |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.3} | {} | {:.0} | {} |",
            r.scenario, r.cameras, r.cores_per_camera, r.out, r.kbps_per_camera, r.dropped
        );
    }
}
