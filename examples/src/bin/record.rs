//! Record the test pattern into a RealLive store.
//!
//! `cargo run --release -p reallive-examples --bin record -- --data-dir DIR --seconds N [--camera NAME]`
//!
//! Opening the store runs crash recovery, so `--seconds 0` only recovers
//! and lists. Prints one JSON line per finished recording on stdout (with
//! `--seconds 0`, one per recording in the store), and recovery's summary
//! on stderr.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use reallive_capture::{CaptureOptions, open};
use reallive_core::frame_channel;
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{Recording, Store, StoreConfig, TimeRange};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "Record the test pattern into a RealLive store")]
struct Cli {
    /// Store directory (index.sqlite and recordings/).
    #[arg(long)]
    data_dir: PathBuf,
    /// Seconds to record; 0 only recovers and lists.
    #[arg(long)]
    seconds: u64,
    /// Camera name.
    #[arg(long, default_value = "test")]
    camera: String,
    /// Target fragment length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    fragment_ms: u64,
    /// Target file length in seconds.
    #[arg(long, default_value_t = 60)]
    file_secs: i64,
    /// Segments (about a second of fragments each) per fdatasync and index
    /// commit; with 1 s fragments, fragments.
    #[arg(long, default_value_t = 1)]
    flush_interval: u32,
}

#[allow(clippy::print_stdout)]
fn print(rec: &Recording) {
    let frames: u64 = rec.fragments.iter().map(|f| u64::from(f.frames)).sum();
    println!(
        "{}",
        serde_json::json!({
            "id": rec.id,
            "camera": rec.camera,
            "path": rec.path,
            "start_utc_ns": rec.start_utc_ns,
            "end_utc_ns": rec.end_utc_ns,
            "bytes": rec.bytes,
            "fragments": rec.fragments.len(),
            "frames": frames,
        })
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let cfg = StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: cli.fragment_ms * 90,
            file_90k: cli.file_secs * 90_000,
            ..SegmenterConfig::default()
        },
        flush_interval: cli.flush_interval,
        ..StoreConfig::new(&cli.data_dir)
    };
    let (store, report) = Store::open(cfg).await.context("opening the store")?;
    eprintln!("recovery: {report:?}");
    if cli.seconds == 0 {
        for camera in store.cameras().await? {
            for rec in store.recordings(&camera, TimeRange::all()).await? {
                print(&rec);
            }
        }
        store.close().await;
        return Ok(());
    }
    gstreamer::init()?;
    let opts = CaptureOptions {
        width: 640,
        height: 360,
        ..CaptureOptions::default()
    };
    let capture = open(&"test:ball".parse()?, &opts)?;
    let (tx, mut rx) = frame_channel(128);
    let mut running = capture.start(tx)?;
    let mut session = store.session(&cli.camera)?;
    let stop = CancellationToken::new();
    let timer = stop.clone();
    let seconds = cli.seconds;
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        timer.cancel();
    });
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                session.write(frame).await?;
                for id in session.drain_finished() {
                    if let Some(rec) = store.recording(id).await? {
                        print(&rec);
                    }
                }
            }
            result = running.wait() => { result?; break; }
            () = stop.cancelled() => break,
        }
    }
    running.stop().await;
    for id in session.finish().await? {
        if let Some(rec) = store.recording(id).await? {
            print(&rec);
        }
    }
    store.close().await;
    Ok(())
}
