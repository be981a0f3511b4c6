//! `reallive-puller`: records a server's cameras locally, with local
//! playback. All the work is in `reallive_puller::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use reallive_core::app::{LogArgs, run_until_signalled, systemd};
use reallive_puller::{PullerConfig, run};
use reallive_store::retention::RetentionFlags;
use reallive_stream::{LoginFlags, NetworkFlags};

/// Records cameras from a RealLive server into a local, crash-safe store,
/// and serves them back (recordings list, HLS, MP4 export) on --listen.
#[derive(Debug, Parser)]
#[command(name = "reallive-puller", version, about, long_about = None)]
struct Cli {
    /// The server, http://host:port or https://host:port.
    #[arg(long, env = "REALLIVE_SERVER", value_name = "URL")]
    server: String,

    #[command(flatten)]
    login: LoginFlags,

    #[command(flatten)]
    network: NetworkFlags,

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

    /// A file (mode 0600) whose first line is the playback token.
    #[arg(long, value_name = "FILE", conflicts_with = "listen_token")]
    listen_token_file: Option<PathBuf>,

    /// Subscribe with WHEP instead of WS signaling.
    #[arg(long)]
    whep: bool,

    #[command(flatten)]
    retention: RetentionFlags,

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
    let login = cli.login.login()?;
    let retention = cli.retention.policy()?;
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
        network: cli.network.network()?,
        server: cli.server,
        login,
        cameras: cli.cameras,
        data_dir: cli.data_dir,
        listen: cli.listen,
        listen_token: match &cli.listen_token_file {
            Some(path) => Some(
                reallive_core::fs::read_secret_file(path)
                    .with_context(|| format!("--listen-token-file {}", path.display()))?,
            ),
            None => cli.listen_token,
        },
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
    let mut secret_flags = reallive_stream::SECRET_FLAGS.to_vec();
    secret_flags.push(("--listen-token", "--listen-token-file"));
    reallive_core::app::warn_secret_flags(&secret_flags);
    // A failure is one line, `reallive-puller: error: …`, as the pusher's.
    run_until_signalled("reallive-puller: error", |shutdown| async move {
        let summary = run(config(cli)?, shutdown, |addr| {
            if let Some(a) = addr {
                eprintln!("reallive-puller: playback on http://{a}");
            }
            systemd::ready("recording");
        })
        .await?;
        for (camera, frames) in summary.frames {
            eprintln!("reallive-puller: camera {camera}: recorded {frames} frames");
        }
        for (camera, frames) in summary.previewed {
            eprintln!("reallive-puller: camera {camera}: preview decoded {frames} frames");
        }
        Ok::<(), anyhow::Error>(())
    })
}
