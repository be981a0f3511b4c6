//! `reallive-fake-camera`: one fake RTSP IP camera in its own process.
//!
//! It serves [`RtspCameraServer`] (a live `videotestsrc` pattern, encoded
//! and payloaded by gstreamer-rtsp-server) on 127.0.0.1, one mount. Being a
//! process of its own is the point: a test can SIGKILL one camera, as a
//! power cut would, and leave the others running.
//!
//! Contract with `reallive_test_support::camera_process::FakeCamera`:
//!
//! - once serving, it prints exactly one line to stdout,
//!   `rtsp://127.0.0.1:PORT/PATH` (never the credentials), and flushes;
//! - it serves until SIGTERM or SIGINT, then exits 0; with
//!   `--exit-on-stdin-eof` also when stdin closes, so a test runner that
//!   dies, even by SIGKILL, never leaves cameras encoding;
//! - a fixed `--port` that is taken exits 98 (`EADDRINUSE`) with the reason
//!   on stderr, so a restart knows to retry; other start failures exit 1,
//!   bad flags 2.
//!
//! # Scripted scenes
//!
//! `--source FRAGMENT` replaces the test pattern with a gst-launch fragment
//! producing raw video, and each `--at SECS:ELEMENT:PROPERTY=VALUE` sets a
//! property of a named element SECS after the media starts playing (its
//! first client connected); see `RtspCameraConfig::source` and
//! `RtspCameraConfig::script`. The default source is `videotestsrc
//! name=scene`, so `--pattern black --at 10:scene:pattern=ball` is a still
//! picture that starts moving 10 s after the first client came. After the
//! URL line, each change applied prints one more stdout line,
//! `applied INDEX UTC_NS SECS:ELEMENT:PROPERTY=VALUE` (INDEX: the change's
//! position among the `--at` flags; UTC_NS: when it was applied, Unix
//! nanoseconds), flushed at once.
//!
//! # Quirks
//!
//! `--audio-codec pcma|aac` sends A-law or AAC audio in place of µ-law,
//! `--digest` asks for the credentials by Digest auth only,
//! `--sdp-only-parameters` keeps H.264's SPS and PPS out of band (in the
//! SDP alone), `--resizable` lets a script change the resolution
//! (`--at 5:size:caps=video/x-raw,width=320,height=180`) and `--slices N`
//! cuts each picture into N slices.
//!
//! For load tests, `--clip FILE` serves a pre-encoded H.264 elementary
//! stream in a loop instead, paced in real time and never encoded
//! ([`RtspCameraServer::try_start_clip`]): many 1080p cameras at a small
//! cost. With `--mounts N` it serves N mounts, `--path` followed by 0..N-1,
//! each its own shared pipeline, and prints one URL line per mount.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use reallive_test_support::{
    RtspAudio, RtspAuthScheme, RtspCameraConfig, RtspCameraServer, RtspCodec, SceneChange,
};
use tokio::signal::unix::{SignalKind, signal};

/// Exit status when the fixed port is taken: Linux's `EADDRINUSE`.
const EXIT_ADDR_IN_USE: u8 = 98;

/// A fake RTSP IP camera on 127.0.0.1 playing a live test pattern.
#[derive(Debug, Parser)]
#[command(name = "reallive-fake-camera")]
struct Args {
    /// TCP port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Mount path.
    #[arg(long, default_value = "/stream", value_parser = parse_path)]
    path: String,
    /// Picture width.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Picture height.
    #[arg(long, default_value_t = 360)]
    height: u32,
    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Frames between keyframes.
    #[arg(long, default_value_t = 30)]
    keyframe_interval: u32,
    /// `h264` or `h265`.
    #[arg(long, default_value = "h264", value_parser = parse_codec)]
    codec: RtspCodec,
    /// Require Basic auth with this user (needs --password).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// Password for --user.
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Ask for --user and --password by Digest auth only, not Basic.
    #[arg(long, requires = "user")]
    digest: bool,
    /// `videotestsrc` pattern: ball, smpte, snow, solid-color, ...
    #[arg(long, default_value = "ball")]
    pattern: String,
    /// Target encoder bitrate, kbit/s.
    #[arg(long, default_value_t = 2048)]
    bitrate_kbps: u32,
    /// H.264 slices per picture.
    #[arg(long, default_value_t = 1)]
    slices: u32,
    /// H.264 B-frames between references (0: none, as browsers need).
    #[arg(long, default_value_t = 0)]
    bframes: u32,
    /// Also send an audio track (G.711 µ-law unless --audio-codec says).
    #[arg(long)]
    audio: bool,
    /// The audio track's codec: `pcmu`, `pcma` or `aac`; implies --audio.
    #[arg(long, value_name = "CODEC")]
    audio_codec: Option<RtspAudio>,
    /// Send H.264's SPS and PPS only in the SDP, never in band.
    #[arg(long)]
    sdp_only_parameters: bool,
    /// Put the picture size in a capsfilter named `size`, so that
    /// `--at SECS:size:caps=video/x-raw,width=W,height=H` changes the
    /// resolution mid-stream.
    #[arg(long, conflicts_with = "clip")]
    resizable: bool,
    /// A gst-launch fragment producing raw video, in place of
    /// `videotestsrc name=scene is-live=true pattern=PATTERN`.
    #[arg(long, value_name = "FRAGMENT", conflicts_with = "clip")]
    source: Option<String>,
    /// Repeatable: set PROPERTY of the element named ELEMENT to VALUE,
    /// SECS after the media starts playing; prints an `applied` line.
    #[arg(
        long = "at",
        value_name = "SECS:ELEMENT:PROPERTY=VALUE",
        value_parser = parse_change,
        conflicts_with = "clip"
    )]
    script: Vec<SceneChange>,
    /// Serve this H.264 Annex-B file (no B-frames) in a loop at --fps
    /// instead of encoding a test pattern; the picture and encoder flags
    /// do not apply.
    #[arg(long, value_name = "FILE")]
    clip: Option<std::path::PathBuf>,
    /// With --clip: serve N mounts, --path followed by 0..N-1.
    #[arg(long, default_value_t = 1, requires = "clip")]
    mounts: u32,
    /// Exit 0 when stdin reaches end of file: when the parent that holds
    /// the other end dies.
    #[arg(long)]
    exit_on_stdin_eof: bool,
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && s.len() > 1 {
        Ok(s.to_owned())
    } else {
        Err("a mount path starts with `/`, e.g. /stream".to_owned())
    }
}

fn parse_codec(s: &str) -> Result<RtspCodec, String> {
    match s {
        "h264" => Ok(RtspCodec::H264),
        "h265" => Ok(RtspCodec::H265),
        _ => Err("h264 or h265".to_owned()),
    }
}

fn parse_change(s: &str) -> Result<SceneChange, String> {
    s.parse()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = RtspCameraConfig {
        path: args.path,
        width: args.width,
        height: args.height,
        fps: args.fps,
        keyframe_interval: args.keyframe_interval,
        codec: args.codec,
        credentials: args.user.zip(args.password),
        auth_scheme: if args.digest {
            RtspAuthScheme::Digest
        } else {
            RtspAuthScheme::Basic
        },
        audio: args.audio || args.audio_codec.is_some(),
        audio_codec: args.audio_codec.unwrap_or_default(),
        pattern: args.pattern,
        bitrate_kbps: args.bitrate_kbps,
        slices: args.slices,
        bframes: args.bframes,
        sdp_only_parameters: args.sdp_only_parameters,
        resizable: args.resizable,
        port: Some(args.port),
        source: args.source,
        script: args.script,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reallive-fake-camera: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Handlers go in before the URL line: a SIGTERM right after it must
    // still exit 0, not die of the default action.
    let signals = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    });
    let (mut term, mut int) = match signals {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reallive-fake-camera: signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = match &args.clip {
        Some(clip) => RtspCameraServer::try_start_clip(
            clip,
            config.fps,
            &config.path,
            args.mounts,
            config.port,
        ),
        None => RtspCameraServer::try_start(config),
    };
    let camera = match started {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reallive-fake-camera: {e}");
            return if e.kind() == std::io::ErrorKind::AddrInUse {
                ExitCode::from(EXIT_ADDR_IN_USE)
            } else {
                ExitCode::FAILURE
            };
        }
    };
    let mut stdout = std::io::stdout().lock();
    let urls = camera.mount_urls().join("\n");
    if let Err(e) = writeln!(stdout, "{urls}").and_then(|()| stdout.flush()) {
        eprintln!("reallive-fake-camera: writing the URL: {e}");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    let stdin_closed = args.exit_on_stdin_eof.then(watch_stdin).flatten();
    let mut changes = camera.scene_changes();
    let mut reported = 0;
    runtime.block_on(async {
        let report = async {
            // Ends only if the server's side is gone, which it is not
            // while `camera` lives.
            while changes.changed().await.is_ok() {
                let applied = changes.borrow_and_update().clone();
                let mut stdout = std::io::stdout().lock();
                for a in applied.iter().skip(reported) {
                    // A test that stopped reading is no reason to stop.
                    let _ = writeln!(stdout, "{a}").and_then(|()| stdout.flush());
                }
                reported = applied.len();
            }
            std::future::pending::<()>().await;
        };
        let stdin_closed = async {
            match stdin_closed {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = stdin_closed => {}
            () = report => {}
        }
    });
    drop(camera);
    ExitCode::SUCCESS
}

/// Fires when stdin reaches end of file (or fails). A plain thread, not
/// `tokio::io::stdin`: the runtime would wait for its blocking read on
/// shutdown.
fn watch_stdin() -> Option<tokio::sync::oneshot::Receiver<()>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            // Without the watch the camera still stops on SIGTERM or SIGKILL.
            eprintln!("reallive-fake-camera: stdin watch thread: {e}");
            None
        }
    }
}
