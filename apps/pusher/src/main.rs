use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use reallive_capture::{CaptureOptions, RtspTransport, Source};
use reallive_core::app::{LogArgs, cancel_on_signals};
use reallive_encode::{EncoderKind, EncoderSettings, X264Preset};
use reallive_pusher::{PublishTarget, PusherConfig, publish, run};
use tokio_util::sync::CancellationToken;

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

    /// Publish to this RealLive server (http://host:port) over WebRTC.
    #[arg(long, env = "REALLIVE_SERVER", value_name = "URL", requires_all = ["camera", "key"])]
    server: Option<String>,

    /// Publish with WHIP to this URL (http://host:port/whip/ID) instead of
    /// WS signaling; needs --key.
    #[arg(long, value_name = "URL", requires = "key", conflicts_with = "server")]
    whip: Option<String>,

    /// The camera's id on the server.
    #[arg(long, env = "REALLIVE_CAMERA", value_name = "ID")]
    camera: Option<i64>,

    /// The camera's stream key.
    #[arg(
        long,
        env = "REALLIVE_STREAM_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    key: Option<String>,

    /// Stop after this many seconds of video [default: until Ctrl-C].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=86_400))]
    seconds: Option<u32>,

    /// H.264 encoder: auto, x264, openh264, v4l2m2m or passthrough.
    #[arg(long, default_value = "auto", value_parser = parse_encoder)]
    encoder: EncoderKind,

    /// Picture width (sources that are encoded here).
    #[arg(long, default_value_t = 1280)]
    width: u32,

    /// Picture height.
    #[arg(long, default_value_t = 720)]
    height: u32,

    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,

    /// Target bitrate in kbit/s.
    #[arg(long, default_value_t = 2000)]
    bitrate_kbps: u32,

    /// Frames between keyframes [default: one second's worth].
    #[arg(long, value_name = "FRAMES")]
    keyframe_interval: Option<u32>,

    /// x264 speed preset: ultrafast, superfast, veryfast, faster, fast, medium.
    #[arg(long, default_value = "ultrafast", value_parser = parse_preset)]
    x264_preset: X264Preset,

    /// RTSP transport: tcp or udp.
    #[arg(long, default_value = "tcp", value_parser = parse_transport)]
    rtsp_transport: RtspTransport,

    /// Loop file sources forever.
    #[arg(long = "loop")]
    loop_file: bool,

    /// Draw the running time on the test pattern.
    #[arg(long)]
    timestamp_overlay: bool,

    /// List V4L2 and libcamera cameras with their formats, then exit.
    #[arg(long)]
    list_devices: bool,

    #[command(flatten)]
    log: LogArgs,
}

fn parse_encoder(s: &str) -> Result<EncoderKind, String> {
    s.parse()
        .map_err(|e: reallive_encode::EncodeError| e.to_string())
}

fn parse_preset(s: &str) -> Result<X264Preset, String> {
    s.parse()
        .map_err(|e: reallive_encode::EncodeError| e.to_string())
}

fn parse_transport(s: &str) -> Result<RtspTransport, String> {
    s.parse().map_err(|_| "expected tcp or udp".to_string())
}

#[allow(clippy::print_stdout)]
fn list_devices() -> anyhow::Result<()> {
    gstreamer::init().context("initialising GStreamer")?;
    let devices = reallive_capture::list_devices();
    if devices.is_empty() {
        println!("no cameras found (V4L2 or libcamera)");
    }
    for d in devices {
        println!(
            "{}\n  source:  {}\n  formats: {}",
            d.name,
            d.source.as_deref().unwrap_or("(not usable as a source)"),
            d.formats
        );
    }
    Ok(())
}

fn config(cli: Cli) -> anyhow::Result<Mode> {
    let source: Source = cli.source.parse()?;
    let capture = CaptureOptions {
        width: cli.width,
        height: cli.height,
        fps: cli.fps,
        encoder: cli.encoder,
        encoder_settings: EncoderSettings {
            bitrate_kbps: cli.bitrate_kbps,
            keyframe_interval: cli.keyframe_interval.unwrap_or(cli.fps),
            x264_preset: cli.x264_preset,
            ..EncoderSettings::default()
        },
        rtsp_transport: cli.rtsp_transport,
        loop_file: cli.loop_file,
        timestamp_overlay: cli.timestamp_overlay,
        ..CaptureOptions::default()
    };
    capture.validate()?;
    if let Some(server) = cli.server {
        return Ok(Mode::Publish {
            source,
            capture,
            target: PublishTarget {
                server,
                camera: cli.camera.context("--camera is required with --server")?,
                key: cli.key.context("--key is required with --server")?,
                whip: None,
            },
            seconds: cli.seconds,
        });
    }
    if let Some(whip) = cli.whip {
        // The camera id is the URL's last segment, for logs.
        let camera = whip
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        return Ok(Mode::Publish {
            source,
            capture,
            target: PublishTarget {
                server: String::new(),
                camera,
                key: cli.key.context("--key is required with --whip")?,
                whip: Some(whip),
            },
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
        target: PublishTarget,
        seconds: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init(["warn", "info", "debug"]);
    let result = if cli.list_devices {
        list_devices()
    } else {
        config(cli).and_then(|config| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async {
                let token = CancellationToken::new();
                tokio::spawn(cancel_on_signals(token.clone()));
                let config = match config {
                    Mode::File(c) => c,
                    Mode::Publish {
                        source,
                        capture,
                        target,
                        seconds,
                    } => {
                        let s = publish(source, capture, target, seconds, token).await?;
                        eprintln!(
                            "reallive-pusher: published {} frames (encoder {}){}",
                            s.frames_sent,
                            s.encoder,
                            if s.dropped > 0 {
                                format!("; {} frames dropped", s.dropped)
                            } else {
                                String::new()
                            }
                        );
                        return Ok(());
                    }
                };
                let output = config.output.clone();
                let summary = run(config, token).await?;
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
                    if summary.dropped > 0 {
                        format!("; {} frames dropped", summary.dropped)
                    } else {
                        String::new()
                    }
                );
                Ok(())
            })
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reallive-pusher: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
