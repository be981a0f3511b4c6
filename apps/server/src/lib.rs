//! `reallive-server` as a library: [`run`] serves until the shutdown token
//! fires; [`user_add`], [`user_passwd`] and [`user_list`] are the admin
//! subcommands. All domain logic lives in `reallive-http` and
//! `reallive-auth`; this only wires them from config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use reallive_auth::{
    NewUser, PasswordHasher, PasswordParams, Role, Secret, User, UserUpdate, random_token, validate,
};
use reallive_http::{ApiOptions, Server, ServerOptions, open_accounts};
use reallive_record::config::ServerSection;
use reallive_relay::RelayConfig;
use reallive_signaling::IceServer;
use tokio_util::sync::CancellationToken;

/// Defaults when neither the CLI, the environment nor the file says.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Loopback only, unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The live path's flags, over the file's values.
#[derive(Debug, Clone, Default)]
pub struct LiveFlags {
    /// `--rtc-port`.
    pub rtc_port: Option<u16>,
    /// `--public-ip`, repeated.
    pub public_ips: Vec<std::net::IpAddr>,
    /// `--ice-server`, repeated: STUN/TURN URLs handed to clients.
    pub ice_servers: Vec<String>,
}

/// Resolved options: CLI over environment over file over defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's options.
    pub server: ServerOptions,
}

impl ServerConfig {
    /// Merges the file's `[server]` section under explicit values.
    pub fn resolve(
        file: ServerSection,
        data_dir: Option<PathBuf>,
        listen: Option<SocketAddr>,
        admin_password: Option<Secret>,
        live: LiveFlags,
    ) -> anyhow::Result<Self> {
        let data_dir = data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen = match listen.or(file.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let mut api = ApiOptions::default();
        if let Some(ttl) = file.token_ttl_secs {
            anyhow::ensure!(ttl >= 60, "token_ttl_secs must be at least 60");
            api.token_ttl = Duration::from_secs(ttl);
        }
        if let Some(r) = file.allow_registration {
            api.allow_registration = r;
        }
        api.cors_origins = file.cors_origins;
        api.ice_servers = file.ice_servers;
        for url in live.ice_servers {
            api.ice_servers.push(IceServer {
                urls: vec![url],
                username: None,
                credential: None,
            });
        }
        let rtc_port = live
            .rtc_port
            .or(file.rtc_port)
            .unwrap_or(reallive_relay::DEFAULT_RTC_PORT);
        let mut public_ips = file.public_ips;
        public_ips.extend(live.public_ips);
        let mut server = ServerOptions::new(data_dir, listen);
        server.relay = Some(RelayConfig {
            bind: SocketAddr::new(listen.ip(), rtc_port),
            public_ips,
        });
        server.admin_password = admin_password.or(file.admin_password);
        server.jwt_secret = file.jwt_secret;
        server.api = api;
        Ok(ServerConfig { server })
    }
}

/// Serves until `shutdown` fires. `on_ready` gets the bound address and,
/// on first start without a given password, the generated admin password
/// (to show once, never to log).
pub async fn run(
    config: ServerConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(SocketAddr, Option<SocketAddr>, Option<&Secret>),
) -> anyhow::Result<()> {
    let data_dir = config.server.data_dir.clone();
    let server = Server::bind(config.server)
        .await
        .with_context(|| format!("starting the server in {}", data_dir.display()))?;
    let rtc = server.live().map(|l| l.relay().local_addr());
    on_ready(server.local_addr()?, rtc, server.first_admin_password());
    server.run(shutdown).await?;
    Ok(())
}

fn hasher() -> anyhow::Result<PasswordHasher> {
    Ok(PasswordHasher::new(PasswordParams::default())?)
}

/// A password given, or a generated one (returned so it can be shown).
fn password_or_generated(password: Option<Secret>) -> anyhow::Result<(Secret, bool)> {
    match password {
        Some(p) => {
            validate::password(p.expose())?;
            Ok((p, false))
        }
        None => Ok((random_token::<12>(), true)),
    }
}

/// Adds a user. Returns the user and, if none was given, the generated
/// password.
pub async fn user_add(
    data_dir: PathBuf,
    username: String,
    email: String,
    role: Role,
    password: Option<Secret>,
) -> anyhow::Result<(User, Option<Secret>)> {
    validate::username(&username)?;
    validate::email(&email)?;
    let (password, generated) = password_or_generated(password)?;
    let hash = hasher()?.hash(password.expose())?;
    let accounts = open_accounts(&data_dir).await?;
    let result = accounts
        .create_user(NewUser {
            username,
            email,
            password_hash: hash,
            role,
        })
        .await;
    accounts.close().await;
    Ok((result?, generated.then_some(password)))
}

/// Sets a user's password, revoking their tokens. Returns the generated
/// password if none was given.
pub async fn user_passwd(
    data_dir: PathBuf,
    username: String,
    password: Option<Secret>,
) -> anyhow::Result<Option<Secret>> {
    let (password, generated) = password_or_generated(password)?;
    let hash = hasher()?.hash(password.expose())?;
    let accounts = open_accounts(&data_dir).await?;
    let id = accounts
        .snapshot()
        .user_by_name(&username)
        .map(|(u, _)| u.id);
    let result = match id {
        Some(id) => accounts
            .update_user(
                id,
                UserUpdate {
                    password_hash: Some(hash),
                    ..Default::default()
                },
            )
            .await
            .map_err(anyhow::Error::from),
        None => Err(anyhow::anyhow!("no user named '{username}'")),
    };
    accounts.close().await;
    result?;
    Ok(generated.then_some(password))
}

/// Every user.
pub async fn user_list(data_dir: PathBuf) -> anyhow::Result<Vec<User>> {
    let accounts = open_accounts(&data_dir).await?;
    let users = accounts.snapshot().users().cloned().collect();
    accounts.close().await;
    Ok(users)
}
