use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use reallive_capture::{CaptureFlags, CaptureOptions, Source};
use reallive_core::app::{LogArgs, run_until_signalled};
use reallive_pusher::{PusherConfig, publish, run};
use reallive_stream::{NetworkFlags, PublishConfig, PublishFlags};

/// Capture a camera and encode browser-ready H.264.
///
/// Sources: test[:pattern], v4l2:/dev/videoN, libcamera[:name],
/// rtsp://[user:pass@]host/path, file:<path>.
#[derive(Debug, Parser)]
#[command(name = "reallive-pusher", version, about, long_about = None)]
struct Cli {
    /// What to capture.
    #[arg(long, env = "REALLIVE_SOURCE", default_value = "test")]
    source: String,

    /// Write the stream to this file (.mp4 or .h264) instead of publishing.
    #[arg(long, value_name = "FILE", required_unless_present_any = ["list_devices", "server", "whip"], conflicts_with_all = ["server", "whip"])]
    output: Option<PathBuf>,

    #[command(flatten)]
    publish: PublishFlags,

    #[command(flatten)]
    network: NetworkFlags,

    /// Stop after this many seconds of video [default: until Ctrl-C].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    seconds: Option<u32>,

    #[command(flatten)]
    capture: CaptureFlags,

    /// List V4L2 and libcamera cameras with their formats, then exit.
    #[arg(long)]
    list_devices: bool,

    #[command(flatten)]
    log: LogArgs,
}

#[allow(clippy::print_stdout)]
fn list_devices() -> anyhow::Result<()> {
    gstreamer::init().context("initialising GStreamer")?;
    let devices = reallive_capture::list_devices();
    if devices.is_empty() {
        println!("no cameras found (V4L2 or libcamera)");
    }
    for d in devices {
        println!("{d}");
    }
    Ok(())
}

fn config(cli: Cli) -> anyhow::Result<Mode> {
    let source: Source = cli.source.parse()?;
    let capture = cli.capture.options_for(&source);
    capture.validate()?;
    if let Some(target) = cli.publish.config(cli.network.network()?)? {
        return Ok(Mode::Publish {
            source,
            capture,
            target,
            seconds: cli.seconds,
        });
    }
    Ok(Mode::File(PusherConfig {
        source,
        capture,
        output: cli.output.context("--output is required")?,
        seconds: cli.seconds,
    }))
}

enum Mode {
    File(PusherConfig),
    Publish {
        source: Source,
        capture: CaptureOptions,
        target: PublishConfig,
        seconds: Option<u32>,
    },
}

/// The summary line's note on frames shed because the output fell behind.
fn dropped(frames: u64) -> String {
    if frames > 0 {
        format!("; {frames} frames dropped")
    } else {
        String::new()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init(["warn", "info", "debug"]);
    reallive_core::app::warn_secret_flags(&reallive_stream::SECRET_FLAGS);
    // A failure is one line, `reallive-pusher: error: …` (docs/ref/cli.md).
    run_until_signalled("reallive-pusher: error", |shutdown| async move {
        if cli.list_devices {
            return list_devices();
        }
        match config(cli)? {
            Mode::Publish {
                source,
                capture,
                target,
                seconds,
            } => {
                let s = publish(source, capture, target, seconds, shutdown).await?;
                eprintln!(
                    "reallive-pusher: published {} frames (encoder {}){}",
                    s.frames_sent,
                    s.encoder,
                    dropped(s.dropped)
                );
            }
            Mode::File(config) => {
                let output = config.output.clone();
                let summary = run(config, shutdown).await?;
                let f = &summary.file;
                let what = f
                    .info
                    .as_ref()
                    .map(|i| format!("{}x{} {} {}", i.width, i.height, i.codec, i.profile_name()))
                    .unwrap_or_default();
                eprintln!(
                    "reallive-pusher: wrote {} frames ({:.2} s, {what}, encoder {}) to {}{}",
                    f.frames,
                    f.duration_90k as f64 / 90_000.0,
                    summary.encoder,
                    output.display(),
                    dropped(summary.dropped)
                );
            }
        }
        Ok(())
    })
}
