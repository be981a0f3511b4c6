//! Subscribe to a camera on a RealLive server and record it through your
//! own `Storage`: here one that keeps no video, only counts frames and
//! logs each keyframe, to show what `reallive_record::camera::record` hands it.
//!
//! `record-custom-storage --server http://127.0.0.1:8080 --camera 1 --user u`
//! (password in `REALLIVE_PASSWORD`). Failing to sign in ends it with one
//! line on stderr; after that the subscriber reconnects on its own.

#![allow(clippy::print_stdout)] // The log is this program's output.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use clap::Parser;
use reallive_core::{EncodedFrame, frame_channel};
use reallive_store::{Recording, RecordingWriter, Storage, StoreError, TimeRange};
use reallive_stream::{Credential, Network, Receiver, SubscribeConfig, WebRtcSubscriber, login};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    server: String,
    #[arg(long)]
    camera: i64,
    #[arg(long)]
    user: String,
    #[arg(long, env = "REALLIVE_PASSWORD", hide_env_values = true)]
    password: String,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// Keeps no video, so there is nothing to list, lock or delete: it counts
/// frames and logs each keyframe. One per recording; `Default` is the store.
#[derive(Debug, Default)]
struct KeyframeLog {
    frames: u64,
    keyframes: u64,
}

#[async_trait]
impl Storage for KeyframeLog {
    async fn start_recording(&self, camera: &str) -> Result<Box<dyn RecordingWriter>, StoreError> {
        println!("recording {camera}");
        Ok(Box::new(KeyframeLog::default()))
    }
    async fn recordings(&self, _: &str, _: TimeRange) -> Result<Vec<Recording>, StoreError> {
        Ok(Vec::new())
    }
    async fn lock(&self, _: &str, _: TimeRange, _: &str) -> Result<i64, StoreError> {
        Err(StoreError::InvalidInput("no video to lock".into()))
    }
    async fn unlock(&self, _: i64) -> Result<(), StoreError> {
        Err(StoreError::NotFound("lock".into()))
    }
    async fn delete(&self, _: i64) -> Result<u64, StoreError> {
        Err(StoreError::NotFound("recording".into()))
    }
}

#[async_trait]
impl RecordingWriter for KeyframeLog {
    async fn write_at(&mut self, frame: EncodedFrame, now_utc_ns: i64) -> Result<(), StoreError> {
        self.frames += 1;
        if frame.keyframe {
            self.keyframes += 1;
            println!("keyframe pts_90k={} at {now_utc_ns} ns", frame.pts_90k);
        }
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        println!("{} frames, {} keyframes", self.frames, self.keyframes);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let Err(e) = run(Cli::parse()).await else {
        return ExitCode::SUCCESS;
    };
    eprintln!("record-custom-storage: {e:#}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The system's roots for https://; see `Network` for a CA or a pin.
    let network = Network::default();
    let token = login(&network, &cli.server, &cli.user, &cli.password)
        .await
        .with_context(|| format!("cannot sign in at {}", cli.server))?;
    let receiver: Box<dyn Receiver> = Box::new(WebRtcSubscriber::new(SubscribeConfig {
        server: cli.server,
        camera: cli.camera,
        token: Credential::new(token.token),
        whep: None,
        network,
    }));
    let (tx, rx) = frame_channel(64);
    let _session = receiver.start(tx)?;
    let stop = CancellationToken::new();
    let timer = async {
        tokio::time::sleep(Duration::from_secs(cli.seconds)).await;
        stop.cancel();
    };
    // `record` closes the writer cleanly once `stop` fires.
    let (storage, name) = (KeyframeLog::default(), cli.camera.to_string());
    tokio::join!(
        reallive_record::camera::record(&storage, &name, rx, None, &stop),
        timer
    );
    Ok(())
}
