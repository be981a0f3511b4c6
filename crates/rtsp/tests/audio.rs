#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A camera's audio through the retina ingest, against a real RTSP server
//! (gst-rtsp-server's fake camera, its audio and video from one pipeline
//! clock): AAC as it is and G.711 transcoded to AAC (a real GStreamer
//! transcoder), both on the video's clock.

use std::time::Duration;

use reallive_core::source::FrameSource;
use reallive_core::{AudioCodec, AudioFrame, EncodedFrame, RtspUrl, audio_channel, frame_channel};
use reallive_rtsp::{IngestOptions, RtspSource};
use reallive_test_support::{RtspAudio, RtspCameraConfig, RtspCameraServer, require_elements};
use tokio::time::Instant;

/// What a session delivered in `secs`, each item with when it came out of
/// its channel.
struct Session {
    video: Vec<(Instant, EncodedFrame)>,
    audio: Vec<(Instant, AudioFrame)>,
    synced_by_sender_reports: u64,
    offset_ms: i64,
}

async fn record(codec: RtspAudio, secs: u64) -> Session {
    require_elements(&["x264enc", "rtph264pay", "avenc_aac", "alawdec"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        fps: 30,
        keyframe_interval: 30,
        audio: true,
        audio_codec: codec,
        ..RtspCameraConfig::default()
    });
    let source = RtspSource::new(
        RtspUrl::parse(&camera.url()).unwrap(),
        IngestOptions::default(),
    )
    .with_audio_transcoder(reallive_encode::audio::start_audio_transcoder());
    let (tx, mut rx) = frame_channel(512);
    let (audio_tx, mut audio_rx) = audio_channel(512);
    let run = source.start_with_audio(tx, audio_tx).unwrap();
    let mut s = Session {
        video: Vec::new(),
        audio: Vec::new(),
        synced_by_sender_reports: 0,
        offset_ms: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            f = rx.recv() => s.video.push((Instant::now(), f.expect("the session ended early"))),
            Some(a) = audio_rx.recv() => s.audio.push((Instant::now(), a)),
        }
    }
    run.stop().await;
    s.synced_by_sender_reports = source.stats().audio_synced_by_sender_reports();
    s.offset_ms = source.stats().audio_offset_ms();
    s
}

/// How far the audio is off the video's timeline by delivery, in ms: each
/// track's earliest delivery against its pts (the least delayed packet,
/// over seconds of them, is its capture-to-delivery path). The AAC
/// encoders' lookahead (64 ms at 16 kHz, in the camera or in the
/// transcoder) is in that path, so this only catches gross errors.
fn skew_ms(s: &Session, skip: usize) -> f64 {
    let t0 = s.video[0].0;
    let at = |t: Instant| t.duration_since(t0).as_secs_f64() * 1000.0;
    let video = s
        .video
        .iter()
        .map(|(t, f)| at(*t) - f.pts_90k as f64 / 90.0)
        .fold(f64::INFINITY, f64::min);
    let audio = s.audio[skip..]
        .iter()
        .map(|(t, a)| at(*t) - (a.pts_90k + i64::from(a.duration_90k)) as f64 / 90.0)
        .fold(f64::INFINITY, f64::min);
    audio - video
}

/// Checks one session: AAC frames of `rate`, evenly spaced on one clock
/// once sender reports set it, and on the video's timeline.
fn check(s: &Session, rate: u32) {
    assert!(s.video.len() > 150, "{} video frames", s.video.len());
    let frames_per_sec = rate as usize / 1024;
    assert!(
        s.audio.len() > 5 * frames_per_sec,
        "{} audio frames in 8 s",
        s.audio.len()
    );
    let p = &s.audio[0].1.params;
    assert_eq!(
        (p.codec, p.sample_rate, p.channels),
        (AudioCodec::Aac, rate, 1)
    );
    assert_eq!(s.synced_by_sender_reports, 1, "the camera sends RTCP SRs");
    // The mapping changes at most once (from arrival to the sender
    // reports); after that every packet follows the last.
    let steps: Vec<i64> = s
        .audio
        .windows(2)
        .map(|w| w[1].1.pts_90k - w[0].1.pts_90k - i64::from(w[0].1.duration_90k))
        .collect();
    let jumps: Vec<usize> = (0..steps.len()).filter(|&i| steps[i].abs() > 2).collect();
    assert!(jumps.len() <= 1, "steps {steps:?}");
    let synced = jumps.first().map_or(0, |i| i + 1);
    assert!(
        s.audio.len() - synced > 2 * frames_per_sec,
        "synced after {synced} of {} packets",
        s.audio.len()
    );
    // The fake camera's tracks come from one pipeline clock, and PLAY's
    // RTP-Info gives both tracks' RTP time at the same instant: the
    // sender reports (through which the audio was mapped) must agree.
    assert!(
        s.offset_ms.abs() <= 50,
        "the sender reports put the audio {} ms from its RTP-Info start",
        s.offset_ms
    );
    let skew = skew_ms(s, synced);
    assert!(
        (-120.0..=120.0).contains(&skew),
        "audio is delivered {skew:.0} ms off the video"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_audio_comes_on_the_videos_clock() {
    let s = record(RtspAudio::Aac, 8).await;
    check(&s, 16_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_audio_is_transcoded_to_aac_on_the_videos_clock() {
    let s = record(RtspAudio::Pcma, 8).await;
    check(&s, 16_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_frames_sets_up_no_audio() {
    require_elements(&["x264enc", "rtph264pay", "avenc_aac"]);
    let camera = RtspCameraServer::start(RtspCameraConfig {
        audio: true,
        audio_codec: RtspAudio::Aac,
        ..RtspCameraConfig::default()
    });
    let source = RtspSource::new(
        RtspUrl::parse(&camera.url()).unwrap(),
        IngestOptions::default(),
    );
    let (tx, mut rx) = frame_channel(256);
    let run = source.start_frames(tx).unwrap();
    for _ in 0..30 {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
    }
    run.stop().await;
    assert_eq!(source.stats().audio_frames(), 0);
}
