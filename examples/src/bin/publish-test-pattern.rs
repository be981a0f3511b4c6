//! Publish the test pattern to a RealLive server as a camera, the way
//! `reallive-pusher` does, through the `Streamer` trait.
//!
//! `publish-test-pattern --server http://127.0.0.1:8080 --camera 1 --key rl_...`
//!
//! Once started, the publisher reconnects on its own, so a server that
//! restarts is no error; a server that cannot be reached at start is, and
//! ends the program with one line on stderr.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use reallive_capture::{CaptureOptions, open};
use reallive_core::frame_channel;
use reallive_stream::{PublishConfig, Streamer, WebRtcPublisher};

#[derive(Parser)]
struct Cli {
    /// The server, `http://host:port`.
    #[arg(long)]
    server: String,
    /// The camera's id on the server.
    #[arg(long)]
    camera: i64,
    /// The camera's stream key.
    #[arg(long, env = "REALLIVE_STREAM_KEY", hide_env_values = true)]
    key: String,
    /// How long to publish.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match publish(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("publish-test-pattern: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn publish(cli: Cli) -> anyhow::Result<()> {
    let host = cli
        .server
        .trim_start_matches("http://")
        .trim_end_matches('/');
    tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("cannot reach the server at {}", cli.server))?;
    gstreamer::init()?;
    let capture = open(&"test:ball".parse()?, &CaptureOptions::default())?;
    let (tx, rx) = frame_channel(64);
    let mut running = capture.start(tx)?;
    let streamer: Box<dyn Streamer> = Box::new(WebRtcPublisher::new(PublishConfig {
        server: cli.server.clone(),
        camera: cli.camera,
        key: cli.key,
        whip: None,
        // The system's roots for https://.
        network: reallive_stream::Network::default(),
        // A new viewer asks for a keyframe through the relay.
        keyframe: running.keyframe_requester(),
    }));
    let session = streamer.start(rx)?;
    eprintln!("publishing camera {} to {}", cli.camera, cli.server);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(cli.seconds)) => {}
        r = running.wait() => r?,
    }
    drop(session); // Leaves the room before the capture stops.
    running.stop().await;
    Ok(())
}
