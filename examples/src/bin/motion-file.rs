//! Motion detection on a video file, as the NVR does it on a camera:
//! H.264 access units are decoded small (GRAY8, 320 px wide, 5 fps) and
//! each picture goes through a [`Detector`]. Prints one line per event and
//! a count at the end.
//!
//! `motion-file clip.h264` (or an MP4 or MKV). The file plays in real time.

#![allow(clippy::print_stdout)] // The events are this program's output.

use std::time::Duration;

use anyhow::Context;
use reallive_capture::{CaptureOptions, Source, open};
use reallive_core::frame_channel;
use reallive_encode::motion::{GrayDecoder, GrayPicture};
use reallive_motion::{Detector, GrayFrame, MotionEvent, MotionSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: motion-file <file>")?;
    gstreamer::init()?;
    let source: Source = format!("file:{path}").parse()?;
    let capture = open(&source, &CaptureOptions::default())?;
    let (tx, mut rx) = frame_channel(64);
    let mut running = capture.start(tx)?;
    // Decoding and detecting are CPU work: off the runtime, on one thread.
    let detect = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let decoder = GrayDecoder::start(320, 5)?;
        let mut detector = Detector::new(MotionSettings::default())?;
        let mut events = 0;
        let mut look = |p: GrayPicture| -> anyhow::Result<()> {
            let frame = GrayFrame::new(&p.data, p.width, p.height, p.stride)?;
            let seen = detector.process(&frame, p.pts_ms).events;
            events += seen.iter().map(report).sum::<usize>();
            Ok(())
        };
        while let Some(frame) = rx.blocking_recv() {
            decoder.push(&frame);
            while let Some(picture) = decoder.pull(Duration::ZERO) {
                look(picture)?;
            }
        }
        // The decoder lags by a few frames; let it finish.
        while let Some(picture) = decoder.pull(Duration::from_millis(500)) {
            look(picture)?;
        }
        Ok(events + detector.flush().iter().map(report).sum::<usize>())
    });
    running.wait().await?;
    running.stop().await;
    let events = detect.await.context("the detector panicked")??;
    println!("{events} motion events");
    Ok(())
}

/// Prints an event; counts the ones that started.
fn report(event: &MotionEvent) -> usize {
    match event {
        MotionEvent::Started { at_ms, zone, score } => {
            println!("motion started at {at_ms} ms in {zone} ({score:.1} %)");
            1
        }
        MotionEvent::Ended {
            start_ms,
            end_ms,
            peak_score,
            ..
        } => {
            println!("motion ended: {start_ms}..{end_ms} ms, peak {peak_score:.1} %");
            0
        }
    }
}
