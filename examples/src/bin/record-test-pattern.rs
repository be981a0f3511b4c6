//! Capture five seconds of the test pattern and write `test-pattern.mp4`,
//! linking `reallive-capture` and `reallive-store` directly.

use anyhow::Context;
use reallive_capture::{CaptureOptions, open};
use reallive_core::frame_channel;
use reallive_store::FileSink;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gstreamer::init()?;
    let source = "test:ball".parse()?;
    let capture = open(
        &source,
        &CaptureOptions {
            num_buffers: Some(150),
            ..CaptureOptions::default()
        },
    )?;
    let (tx, mut rx) = frame_channel(64);
    let mut running = capture.start(tx)?;
    // The file is written on a blocking thread; frames cross a bounded channel.
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut sink = FileSink::create("test-pattern.mp4".as_ref())?;
        while let Some(frame) = rx.blocking_recv() {
            sink.write(frame)?;
        }
        Ok(sink.finish()?)
    });
    running.wait().await?;
    let summary = writer.await.context("writer panicked")??;
    eprintln!(
        "wrote {} frames, {} bytes to test-pattern.mp4",
        summary.frames, summary.bytes
    );
    Ok(())
}
