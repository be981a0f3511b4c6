//! `reallive-server`: users, cameras and grants behind a JSON API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reallive_auth::{Role, Secret};
use reallive_core::app::{LogArgs, systemd};
use reallive_node::accounts::{add_user, list_users, set_password};
use reallive_node::{NodeFlags, NodeOptions};
use reallive_record::config::ServerConfigFile;
use reallive_server::run;
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
    #[command(flatten)]
    node: NodeFlags,

    /// TOML config file with a [server] section.
    #[arg(long, env = "REALLIVE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    log: LogArgs,

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
        /// At least 10 characters [default: generated]. Prefer
        /// --password-file: the command line is visible to local users.
        #[arg(long, env = "REALLIVE_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// A file (mode 0600) whose first line is the password.
        #[arg(long, value_name = "FILE", conflicts_with = "password")]
        password_file: Option<PathBuf>,
    },
    /// Set a user's password and sign them out everywhere.
    Passwd {
        /// Whose password.
        #[arg(long)]
        username: String,
        /// At least 10 characters [default: generated]. Prefer
        /// --password-file: the command line is visible to local users.
        #[arg(long, env = "REALLIVE_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// A file (mode 0600) whose first line is the password.
        #[arg(long, value_name = "FILE", conflicts_with = "password")]
        password_file: Option<PathBuf>,
    },
    /// List users.
    List,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|e: reallive_auth::AuthError| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The config first: it may say how to log.
    let file = match load(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("reallive-server: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    cli.log.init_with(LogArgs::SERVER, file.server.log_format);
    reallive_core::app::warn_secret_flags(&[
        ("--admin-password", "--admin-password-file"),
        ("--password", "--password-file"),
    ]);
    reallive_core::app::run_until_signalled("reallive-server", |shutdown| {
        dispatch(cli, file, shutdown)
    })
}

/// The `--config` file, or the defaults without one.
fn load(path: Option<&Path>) -> anyhow::Result<ServerConfigFile> {
    let Some(path) = path else {
        return Ok(ServerConfigFile::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ServerConfigFile::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn dispatch(
    cli: Cli,
    file: ServerConfigFile,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli, file, shutdown).await,
        Some(Command::User(cmd)) => {
            let data_dir = (cli.node.data_dir)
                .unwrap_or_else(|| PathBuf::from(reallive_node::DEFAULT_DATA_DIR));
            user(cmd, &data_dir).await
        }
    }
}

async fn serve(
    cli: Cli,
    file: ServerConfigFile,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = NodeOptions::resolve(file.server, cli.node)?;
    run(config, shutdown, |node| {
        if let Some(file) = node.first_admin_password_file() {
            eprintln!(
                "reallive-server: created user 'admin'; its password is in {} (readable by you alone)\n\
                 reallive-server: sign in, change it, then delete that file",
                file.display()
            );
        }
        if let Some(sha) = node.new_self_signed_fingerprint() {
            eprintln!(
                "reallive-server: made a self-signed TLS certificate, SHA-256 {sha}\n\
                 reallive-server: give clients --pin-sha256 {sha}"
            );
        }
        if let Ok(addr) = node.local_addr() {
            eprintln!("reallive-server: listening on {}://{addr}", node.scheme());
            systemd::ready(&format!("listening on {}://{addr}", node.scheme()));
        }
        if let Some(rtc) = node.live().map(|l| l.relay().local_addr()) {
            eprintln!("reallive-server: WebRTC relay on udp://{rtc}");
        }
    })
    .await
}

/// `--password`, or the first line of `--password-file`.
fn given_password(flag: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Option<Secret>> {
    Ok(match file {
        Some(path) => Some(Secret::new(
            reallive_core::fs::read_secret_file(&path)
                .with_context(|| format!("--password-file {}", path.display()))?,
        )),
        None => flag.map(Secret::new),
    })
}

#[allow(clippy::print_stdout)]
async fn user(cmd: UserCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            email,
            role,
            password,
            password_file,
        } => {
            let password = given_password(password, password_file)?;
            let (u, generated) = add_user(data_dir, username, email, role, password).await?;
            println!("added user '{}' (id {}, {})", u.username, u.id, u.role);
            if let Some(pw) = generated {
                println!("password: {}", pw.expose());
            }
        }
        UserCommand::Passwd {
            username,
            password,
            password_file,
        } => {
            let password = given_password(password, password_file)?;
            let generated = set_password(data_dir, &username, password).await?;
            println!("password changed for '{username}'; their sessions are signed out");
            if let Some(pw) = generated {
                println!("password: {}", pw.expose());
            }
        }
        UserCommand::List => {
            println!("{:>5}  {:<32}  {:<9}  email", "id", "username", "role");
            for u in list_users(data_dir).await? {
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
