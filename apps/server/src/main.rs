//! `reallive-server`: users, cameras and grants behind a JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reallive_auth::{Role, Secret};
use reallive_record::config::ServerConfigFile;
use reallive_server::{LiveFlags, ServerConfig, run, user_add, user_list, user_passwd};
use tokio_util::sync::CancellationToken;

// The relay allocates and frees per packet per viewer; glibc malloc cost a
// quarter of its CPU in the fan-out bench, mimalloc a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The RealLive hub: users, cameras, stream keys and grants behind a JSON
/// API (see /api/openapi.json).
///
/// Precedence: flags, then REALLIVE_* environment variables, then the
/// config file, then defaults.
#[derive(Debug, Parser)]
#[command(name = "reallive-server", version, about, long_about = None)]
struct Cli {
    /// Databases and secrets [default: ./data].
    #[arg(long, env = "REALLIVE_DATA_DIR", global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "REALLIVE_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Password for the first admin, used only on first start [default:
    /// random, printed once].
    #[arg(
        long,
        env = "REALLIVE_ADMIN_PASSWORD",
        value_name = "PW",
        hide_env_values = true
    )]
    admin_password: Option<String>,

    /// UDP port of the WebRTC relay, shared by every peer [default: 8189].
    #[arg(long, env = "REALLIVE_RTC_PORT", value_name = "PORT")]
    rtc_port: Option<u16>,

    /// A public address to advertise for the relay (repeatable), when the
    /// server sits behind NAT with the RTC port forwarded.
    #[arg(long = "public-ip", value_name = "IP")]
    public_ips: Vec<std::net::IpAddr>,

    /// A STUN or TURN URL handed to clients (repeatable), e.g.
    /// stun:stun.example.org:3478.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,

    /// TOML config file with a [server] section.
    #[arg(long, env = "REALLIVE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// More logging: -v for debug, -vv for trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage users directly in the data dir (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; prints a generated password if none is given.
    Add {
        /// `^[A-Za-z0-9_.-]{3,32}$`.
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        /// admin, operator or viewer.
        #[arg(long, default_value = "viewer", value_parser = parse_role)]
        role: Role,
        /// At least 10 characters [default: generated].
        #[arg(long, env = "REALLIVE_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Set a user's password and sign them out everywhere.
    Passwd {
        /// Whose password.
        #[arg(long)]
        username: String,
        /// At least 10 characters [default: generated].
        #[arg(long, env = "REALLIVE_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List users.
    List,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: reallive_auth::AuthError| e.to_string())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reallive-server: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reallive-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir.clone();
    match cli.command {
        None => serve(cli).await,
        Some(Command::User(cmd)) => {
            let data_dir =
                data_dir.unwrap_or_else(|| PathBuf::from(reallive_server::DEFAULT_DATA_DIR));
            user(cmd, data_dir).await
        }
    }
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ServerConfigFile::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => ServerConfigFile::default(),
    };
    let config = ServerConfig::resolve(
        file.server,
        cli.data_dir,
        cli.listen,
        cli.admin_password.map(Secret::new),
        LiveFlags {
            rtc_port: cli.rtc_port,
            public_ips: cli.public_ips,
            ice_servers: cli.ice_servers,
        },
    )?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    run(config, shutdown, |addr, rtc, admin_password| {
        if let Some(pw) = admin_password {
            // Straight to the terminal, once: never through the logger.
            eprintln!(
                "reallive-server: created user 'admin' with password: {}\n\
                 reallive-server: it is not shown again; change it with `reallive-server user passwd --username admin`",
                pw.expose()
            );
        }
        eprintln!("reallive-server: listening on http://{addr}");
        if let Some(rtc) = rtc {
            eprintln!("reallive-server: WebRTC relay on udp://{rtc}");
        }
    })
    .await
}

fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    Ok(())
}

#[allow(clippy::print_stdout)]
async fn user(cmd: UserCommand, data_dir: PathBuf) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            email,
            role,
            password,
        } => {
            let (u, generated) =
                user_add(data_dir, username, email, role, password.map(Secret::new)).await?;
            println!("added user '{}' (id {}, {})", u.username, u.id, u.role);
            if let Some(pw) = generated {
                println!("password: {}", pw.expose());
            }
        }
        UserCommand::Passwd { username, password } => {
            let generated =
                user_passwd(data_dir, username.clone(), password.map(Secret::new)).await?;
            println!("password changed for '{username}'; their sessions are signed out");
            if let Some(pw) = generated {
                println!("password: {}", pw.expose());
            }
        }
        UserCommand::List => {
            println!("{:>5}  {:<32}  {:<9}  email", "id", "username", "role");
            for u in user_list(data_dir).await? {
                println!(
                    "{:>5}  {:<32}  {:<9}  {}",
                    u.id,
                    u.username,
                    u.role.as_str(),
                    u.email
                );
            }
        }
    }
    Ok(())
}
