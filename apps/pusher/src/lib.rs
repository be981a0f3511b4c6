//! `reallive-pusher`: capture a camera, encode H.264, and publish it to a
//! RealLive server ([`publish`]), or write it to a file ([`run`], the "does
//! my camera work" check).
//!
//! The binary parses flags into a [`PusherConfig`] or a [`PublishTarget`]
//! and calls one of them; this library only wires `reallive-capture` to a
//! [`Streamer`] (built by [`streamer`]) or to `reallive-store`'s file sink.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use reallive_capture::{CaptureOptions, Source};
use reallive_core::{FrameReceiver, frame_channel};
use reallive_store::{FileSink, FileSummary};
use reallive_stream::{SessionState, Streamer};
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

    let stop = Arc::new(AtomicBool::new(false));
    let limit_90k = config.seconds.map(|s| i64::from(s) * 90_000);
    let writer_stop = stop.clone();
    let output = config.output.clone();
    let mut writer = tokio::task::spawn_blocking(move || {
        let result = write_frames(rx, sink, limit_90k, &writer_stop);
        if result.is_err() {
            // Leave no empty file behind a source that never delivered.
            if std::fs::metadata(&output).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(&output);
            }
        }
        result
    });

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
    stop.store(true, Ordering::Relaxed);
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

/// Media time kept: frames whose start lies within `limit` of the first,
/// allowing half a frame of rounding so 10 s at 30 fps is exactly 300.
fn within(limit_90k: Option<i64>, first_pts: i64, frame_pts: i64, duration_90k: u32) -> bool {
    limit_90k.is_none_or(|l| frame_pts - first_pts < l - i64::from(duration_90k / 2))
}

fn write_frames(
    mut rx: FrameReceiver,
    mut sink: FileSink,
    limit_90k: Option<i64>,
    stop: &AtomicBool,
) -> anyhow::Result<FileSummary> {
    let mut first_pts = None;
    while let Some(frame) = rx.blocking_recv() {
        let first = *first_pts.get_or_insert(frame.pts_90k);
        if !within(
            limit_90k,
            first,
            frame.pts_90k,
            frame.duration_90k.unwrap_or(3000),
        ) {
            break;
        }
        if let Err(e) = sink.write(frame) {
            // Keep what is already written playable.
            let _ = sink.finish();
            return Err(e.into());
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let summary = sink.finish()?;
    if summary.frames == 0 {
        bail!("the source produced no frames");
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::within;

    #[test]
    fn duration_limit_is_frame_exact() {
        // 30 fps: frames at 0, 3000, ... ; 10 s keeps indices 0..300.
        let kept = (0..400)
            .filter(|i| within(Some(900_000), 7, 7 + i * 3000, 3000))
            .count();
        assert_eq!(kept, 300);
        // 29.97 fps (3003 ticks): 10 s keeps 300 frames (0..=9.99 s).
        let kept = (0..400)
            .filter(|i| within(Some(900_000), 0, i * 3003, 3003))
            .count();
        assert_eq!(kept, 300);
        assert!(within(None, 0, i64::MAX / 2, 3000));
    }
}

/// Where to publish: a RealLive server's camera.
#[derive(Clone)]
pub struct PublishTarget {
    /// `http://host:port` of the server.
    pub server: String,
    /// The camera's id.
    pub camera: i64,
    /// Its stream key.
    pub key: String,
    /// Publish with WHIP at this URL instead of WS signaling.
    pub whip: Option<String>,
}

impl std::fmt::Debug for PublishTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishTarget")
            .field("server", &self.server)
            .field("camera", &self.camera)
            .field("key", &"***")
            .field("whip", &self.whip)
            .finish()
    }
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

/// The one place that picks the transport: a [`Streamer`] publishing to
/// `target`, calling `keyframe` when the server wants a keyframe.
pub fn streamer(
    target: &PublishTarget,
    keyframe: Arc<dyn Fn() + Send + Sync>,
) -> Box<dyn Streamer> {
    Box::new(reallive_stream::WebRtcPublisher::new(
        reallive_stream::PublishConfig {
            server: target.server.clone(),
            camera: target.camera,
            key: target.key.clone(),
            whip: target.whip.clone(),
            keyframe,
        },
    ))
}

/// Captures `source` and publishes it to `target` until `seconds` of media
/// went out, the source ends, or `shutdown` fires. Network trouble never
/// stops it: the publisher reconnects with backoff while the capture runs.
pub async fn publish(
    source: Source,
    capture: CaptureOptions,
    target: PublishTarget,
    seconds: Option<u32>,
    shutdown: CancellationToken,
) -> anyhow::Result<PublishSummary> {
    gstreamer::init().context("initialising GStreamer")?;
    let cap = reallive_capture::open(&source, &capture)?;
    let (tx, rx) = frame_channel(QUEUE_FRAMES);
    let mut running = cap.start(tx)?;
    let encoder = running.encoder();
    tracing::info!(source = %cap.describe(), encoder, server = %target.server, camera = target.camera, "publishing");
    let streamer = streamer(&target, running.keyframe_requester());
    let session = streamer.start(rx)?;
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
                return;
            }
            let s = state.borrow().clone();
            match s {
                SessionState::Live => tracing::info!("live"),
                SessionState::Refused(_) => {
                    tracing::error!("the server refused the stream key; check --camera and --key");
                }
                SessionState::Stopped => return,
                _ => {}
            }
        }
    };
    let result = tokio::select! {
        () = limit => Ok(()),
        r = running.wait() => r.map_err(anyhow::Error::from),
        () = shutdown.cancelled() => Ok(()),
        () = watch_state => Ok(()),
    };
    session.stop();
    // Let the session say goodbye (leave-room) before the capture stops.
    let mut st = session.state();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        st.wait_for(|s| *s == SessionState::Stopped),
    )
    .await;
    let dropped = running.stats().dropped();
    running.stop().await;
    result?;
    Ok(PublishSummary {
        frames_sent: session.frames(),
        encoder,
        dropped,
    })
}
