//! `reallive-puller`: records a server's cameras locally, with local
//! playback. All the work is in `reallive_puller::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use reallive_core::app::{LogArgs, cancel_on_signals};
use reallive_puller::{Login, PullerConfig, run};
use reallive_store::retention::{CameraRetention, RetentionPolicy, parse_bytes};
use tokio_util::sync::CancellationToken;

/// Records cameras from a RealLive server into a local, crash-safe store,
/// and serves them back (recordings list, HLS, MP4 export) on --listen.
#[derive(Debug, Parser)]
#[command(name = "reallive-puller", version, about, long_about = None)]
struct Cli {
    /// The server, http://host:port.
    #[arg(long, env = "REALLIVE_SERVER", value_name = "URL")]
    server: String,

    /// Sign in as this user (with --password).
    #[arg(
        long,
        env = "REALLIVE_USERNAME",
        requires = "password",
        conflicts_with = "token"
    )]
    username: Option<String>,

    /// The user's password.
    #[arg(
        long,
        env = "REALLIVE_PASSWORD",
        hide_env_values = true,
        requires = "username"
    )]
    password: Option<String>,

    /// A token that grants `view` on the cameras, instead of a password.
    #[arg(
        long,
        env = "REALLIVE_TOKEN",
        hide_env_values = true,
        required_unless_present = "username"
    )]
    token: Option<String>,

    /// A camera id on the server; repeat for more.
    #[arg(long = "camera", value_name = "ID", required = true)]
    cameras: Vec<i64>,

    /// Where recordings and their index live.
    #[arg(long, env = "REALLIVE_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,

    /// Serve local playback here (e.g. 127.0.0.1:8090).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// The bearer token playback requires; needed with a --listen address
    /// beyond loopback.
    #[arg(long, env = "REALLIVE_LISTEN_TOKEN", hide_env_values = true)]
    listen_token: Option<String>,

    /// Subscribe with WHEP instead of WS signaling.
    #[arg(long)]
    whep: bool,

    /// Delete recordings older than this many days.
    #[arg(long, value_name = "DAYS")]
    max_age_days: Option<u32>,

    /// Keep each camera's recordings under this size (e.g. 200GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    max_bytes: Option<u64>,

    /// Keep at least this much free on the disk (e.g. 5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    min_free: Option<u64>,

    /// Keep at least this share of the disk free, in percent.
    #[arg(long, value_name = "PERCENT")]
    min_free_percent: Option<f64>,

    /// Show each camera locally as it is recorded: in a window under X11
    /// or Wayland, or with kmssink on a console. Off by default.
    #[arg(long)]
    preview: bool,

    /// The GStreamer sink for --preview, instead of the one picked from the
    /// display (e.g. glimagesink, or fakesink to decode without showing).
    #[arg(long, value_name = "ELEMENT", requires = "preview")]
    preview_sink: Option<String>,

    #[command(flatten)]
    log: LogArgs,
}

fn config(cli: Cli) -> anyhow::Result<PullerConfig> {
    let login = match (cli.username, cli.password, cli.token) {
        (Some(username), Some(password), None) => Login::Password { username, password },
        (None, None, Some(t)) => Login::Token(t),
        _ => anyhow::bail!("give --username and --password, or --token"),
    };
    if let Some(p) = cli.min_free_percent {
        anyhow::ensure!(
            (0.0..=100.0).contains(&p),
            "--min-free-percent must be 0 to 100"
        );
    }
    let retention = RetentionPolicy {
        default: CameraRetention {
            max_age_ns: cli
                .max_age_days
                .map(|d| i64::from(d) * 86_400 * 1_000_000_000),
            max_bytes: cli.max_bytes,
        },
        min_free_bytes: cli
            .min_free
            .unwrap_or(RetentionPolicy::default().min_free_bytes),
        min_free_percent: cli
            .min_free_percent
            .unwrap_or(RetentionPolicy::default().min_free_percent),
        ..RetentionPolicy::default()
    };
    let preview = match (cli.preview, cli.preview_sink) {
        (false, _) => None,
        (true, Some(sink)) => Some(sink),
        (true, None) => Some(
            reallive_encode::preview_sink(reallive_encode::DisplayEnv::current())
                .context("--preview")?
                .to_string(),
        ),
    };
    Ok(PullerConfig {
        server: cli.server,
        login,
        cameras: cli.cameras,
        data_dir: cli.data_dir,
        listen: cli.listen,
        listen_token: cli.listen_token,
        whep: cli.whep,
        retention,
        preview,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init([
        "warn,reallive_puller=info,reallive_stream=info",
        "info",
        "debug",
    ]);
    let result = config(cli).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async {
            let token = CancellationToken::new();
            tokio::spawn(cancel_on_signals(token.clone()));
            let summary = run(config, token, |addr| {
                if let Some(a) = addr {
                    eprintln!("reallive-puller: playback on http://{a}");
                }
            })
            .await?;
            for (camera, frames) in summary.frames {
                eprintln!("reallive-puller: camera {camera}: recorded {frames} frames");
            }
            for (camera, frames) in summary.previewed {
                eprintln!("reallive-puller: camera {camera}: preview decoded {frames} frames");
            }
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reallive-puller: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
