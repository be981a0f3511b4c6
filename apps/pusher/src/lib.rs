//! `reallive-pusher`: capture a camera, encode H.264, and publish it to a
//! RealLive server ([`publish`]), or write it to a file ([`run`], the "does
//! my camera work" check).
//!
//! The binary parses flags into a [`PusherConfig`] or a [`PublishConfig`]
//! and calls one of them; this library only wires `reallive-capture` to a
//! [`Streamer`] or to `reallive-store`'s file sink.

use std::path::PathBuf;

use anyhow::Context;
use reallive_capture::{CaptureOptions, Source};
use reallive_core::app::systemd;
use reallive_core::{audio_channel, frame_channel};
use reallive_store::{FileSink, FileSummary};
use reallive_stream::{PublishConfig, SessionState, Streamer, WebRtcPublisher};
use tokio_util::sync::CancellationToken;

/// Everything `run` needs, already validated by the CLI.
#[derive(Debug, Clone)]
pub struct PusherConfig {
    /// What to capture.
    pub source: Source,
    /// How to capture and encode it.
    pub capture: CaptureOptions,
    /// Where to write: `.mp4` or `.h264`.
    pub output: PathBuf,
    /// Stop after this much media time; `None` runs until shutdown.
    pub seconds: Option<u32>,
}

/// What `run` produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The file written.
    pub file: FileSummary,
    /// The encoder used (`passthrough` for encoded sources).
    pub encoder: &'static str,
    /// Frames dropped because the writer fell behind.
    pub dropped: u64,
}

/// Frames buffered between the capture thread and the file writer: about
/// four seconds at 30 fps, enough to ride out a slow SD card.
const QUEUE_FRAMES: usize = 128;

/// Opus packets buffered the same way: about two seconds of 20 ms packets.
const QUEUE_AUDIO: usize = 100;

/// Captures `config.source` into `config.output` until the duration is
/// reached, the source ends, or `shutdown` fires. The file is complete and
/// synced to disk when this returns `Ok`, and also when it returns an error
/// after the file was created.
pub async fn run(config: PusherConfig, shutdown: CancellationToken) -> anyhow::Result<RunSummary> {
    gstreamer::init().context("initialising GStreamer")?;
    let capture = reallive_capture::open(&config.source, &config.capture)?;
    let (tx, rx) = frame_channel(QUEUE_FRAMES);
    // Start first: a missing device or element fails before any file exists.
    let mut running = capture.start(tx)?;
    let sink = FileSink::create(&config.output)?;
    let encoder = running.encoder();
    tracing::info!(source = %capture.describe(), encoder, output = %config.output.display(), "capturing");

    let stop = CancellationToken::new();
    let limit_90k = config.seconds.map(|s| i64::from(s) * 90_000);
    let writer_stop = stop.clone();
    let mut writer =
        tokio::task::spawn_blocking(move || sink.write_from(rx, limit_90k, &writer_stop));

    let capture_result = tokio::select! {
        written = &mut writer => {
            // Enough media, or the source ended and closed the channel.
            let dropped = running.stats().dropped();
            running.stop().await;
            let summary = written.context("file writer panicked")??;
            return Ok(RunSummary { file: summary, encoder, dropped });
        }
        result = running.wait() => result,
        () = shutdown.cancelled() => Ok(()),
    };
    // The source failed or we were asked to stop: close the channel so the
    // writer finishes the file with what it has.
    stop.cancel();
    let dropped = running.stats().dropped();
    running.stop().await;
    let written = writer.await.context("file writer panicked")?;
    capture_result.map_err(anyhow::Error::from)?;
    Ok(RunSummary {
        file: written?,
        encoder,
        dropped,
    })
}

/// What [`publish`] did.
#[derive(Debug, Clone)]
pub struct PublishSummary {
    /// Frames handed to the WebRTC track.
    pub frames_sent: u64,
    /// The encoder used.
    pub encoder: &'static str,
    /// Frames the capture dropped because publishing fell behind.
    pub dropped: u64,
}

/// Captures `source` and publishes it to `target` until `seconds` of media
/// went out, the source ends, or `shutdown` fires. Network trouble never
/// stops it: the publisher reconnects with backoff while the capture runs.
/// The server's keyframe requests go to the capture (`target.keyframe` is
/// replaced).
pub async fn publish(
    source: Source,
    capture: CaptureOptions,
    target: PublishConfig,
    seconds: Option<u32>,
    shutdown: CancellationToken,
) -> anyhow::Result<PublishSummary> {
    gstreamer::init().context("initialising GStreamer")?;
    let cap = reallive_capture::open(&source, &capture)?;
    let (tx, rx) = frame_channel(QUEUE_FRAMES);
    let (mut running, audio) = if capture.audio.is_some() {
        let (atx, arx) = audio_channel(QUEUE_AUDIO);
        (cap.start_with_audio(tx, atx)?, Some(arx))
    } else {
        (cap.start(tx)?, None)
    };
    let encoder = running.encoder();
    tracing::info!(source = %cap.describe(), encoder, audio = %capture.audio, server = %target.server, camera = target.camera, "publishing");
    systemd::ready(&format!(
        "capturing {}; connecting to {}",
        cap.describe(),
        target.server
    ));
    let streamer: Box<dyn Streamer> = Box::new(WebRtcPublisher::new(PublishConfig {
        keyframe: running.keyframe_requester(),
        ..target
    }));
    let session = match audio {
        Some(a) => streamer.start_with_audio(rx, a)?,
        None => streamer.start(rx)?,
    };
    let mut state = session.state();
    let limit = async {
        match seconds {
            Some(s) => {
                // Count media time from the first frame that goes out.
                while session.frames() == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(s))).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let watch_state = async {
        loop {
            if state.changed().await.is_err() {
                return None;
            }
            let s = state.borrow().clone();
            match s {
                SessionState::Live => {
                    tracing::info!("live");
                    systemd::status("live");
                }
                SessionState::Refused(_) => {
                    tracing::error!("the server refused the stream key; check --camera and --key");
                    systemd::status("refused: check the camera id and stream key");
                }
                SessionState::Stopped => return None,
                SessionState::Failed(why) => return Some(why),
                _ => {}
            }
        }
    };
    let result = tokio::select! {
        () = limit => Ok(()),
        r = running.wait() => r.map_err(anyhow::Error::from),
        () = shutdown.cancelled() => Ok(()),
        // An untrusted certificate: one line, and the run fails.
        failed = watch_state => failed.map_or(Ok(()), |why| Err(anyhow::anyhow!(why))),
    };
    // Let the session say goodbye (leave-room) before the capture stops.
    session.close(std::time::Duration::from_secs(2)).await;
    let dropped = running.stats().dropped();
    running.stop().await;
    result?;
    Ok(PublishSummary {
        frames_sent: session.frames(),
        encoder,
        dropped,
    })
}
