//! [`Node`]: the API, the relay and the live sessions on one socket, over
//! the accounts in a data dir.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use reallive_auth::{
    Accounts, AuthError, MIN_SECRET_BYTES, NewUser, Role, Secret, TokenKeys, random_token,
};
use reallive_core::ErrorKind;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use reallive_relay::Relay;

use crate::live::LiveState;
use reallive_http::{ApiOptions, ApiState};

/// File holding the generated token secret, mode 0600.
pub const JWT_SECRET_FILE: &str = "jwt.secret";

/// The first admin's username.
pub const FIRST_ADMIN: &str = "admin";

/// Where a generated first-admin password is written (mode 0600) in the
/// data directory: never to a log or a terminal.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path or address.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The accounts database or a secret was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The relay could not start (its UDP port is taken).
    #[error(transparent)]
    Relay(#[from] reallive_relay::RelayError),
    /// An option is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl NodeError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            NodeError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::AddrInUse | std::io::ErrorKind::AddrNotAvailable => {
                    ErrorKind::Unavailable
                }
                std::io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
                _ => ErrorKind::Internal,
            },
            NodeError::Auth(e) => e.kind(),
            NodeError::Relay(e) => e.kind(),
            NodeError::Invalid(_) => ErrorKind::InvalidArgument,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}

/// What a server needs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Databases and secrets.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks one.
    pub listen: SocketAddr,
    /// The first admin's password; random (and reported once) if `None`.
    pub admin_password: Option<Secret>,
    /// Token secret; generated into the data dir if `None`.
    pub jwt_secret: Option<Secret>,
    /// API behaviour.
    pub api: ApiOptions,
    /// The WebRTC relay, signaling and WHIP/WHEP; `None` serves the API
    /// only.
    pub relay: Option<reallive_relay::RelayConfig>,
    /// Limits on the live path.
    pub live: crate::live::LiveLimits,
    /// Limits on the HTTP listener.
    pub serve: reallive_http::ServeLimits,
    /// The names clients reach this server by. With names, or on a
    /// loopback listener, requests for another `Host` (but `localhost`
    /// and IP literals) get a 421: DNS rebinding.
    pub host_names: Vec<String>,
    /// HTTPS, when set (`docs/design/remote.md`).
    pub tls: Option<TlsSetting>,
    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto`
    /// are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetting {
    /// PEM files, read again when they change.
    Files(reallive_http::tls::TlsFiles),
    /// A self-signed certificate kept in `<data-dir>/tls`, for `localhost`,
    /// the host names and the listen and public addresses.
    SelfSigned,
}

impl NodeOptions {
    /// The defaults, in `data_dir` on `listen`.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        NodeOptions {
            data_dir: data_dir.into(),
            listen,
            admin_password: None,
            jwt_secret: None,
            api: ApiOptions::default(),
            relay: None,
            live: crate::live::LiveLimits::default(),
            serve: reallive_http::ServeLimits::default(),
            host_names: Vec::new(),
            tls: None,
            trusted_proxies: Vec::new(),
        }
    }

    /// The names a self-signed certificate is made for.
    fn certificate_names(&self) -> Vec<String> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        names.extend(self.host_names.iter().cloned());
        if !self.listen.ip().is_unspecified() {
            names.push(self.listen.ip().to_string());
        }
        if let Some(relay) = &self.relay {
            names.extend(relay.public_ips.iter().map(ToString::to_string));
        }
        names.sort();
        names.dedup();
        names
    }
}

/// A bound, ready server.
#[derive(Debug)]
pub struct Node {
    listener: TcpListener,
    state: ApiState,
    extra: Router,
    first_admin_password: Option<(Secret, PathBuf)>,
    live: Option<LiveState>,
    serve: reallive_http::ServeLimits,
    host_names: Vec<String>,
    /// The certificate, with TLS on.
    tls: Option<Arc<reallive_http::tls::ReloadingCert>>,
    trusted_proxies: Vec<ipnet::IpNet>,
    /// A self-signed certificate's fingerprint, when it was made at this
    /// start.
    new_fingerprint: Option<String>,
    /// Stops the relay and the live event pump when serving ends.
    stop: CancellationToken,
}

/// Opens the accounts in `data_dir`, for tools that manage users without
/// serving (the `user` subcommands).
pub async fn open_accounts(data_dir: &Path) -> Result<Accounts, NodeError> {
    Ok(Accounts::open(data_dir).await?)
}

impl Node {
    /// Opens the data dir (creating it, the accounts database, the token
    /// secret and the first admin as needed), starts the relay and binds
    /// the listener. [`crate::start`] is the same.
    pub async fn bind(opts: NodeOptions) -> Result<Node, NodeError> {
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(reallive_core::fs::PRIVATE_DIR_MODE)
            .create(&opts.data_dir)
            .await
            .map_err(io(format!("creating {}", opts.data_dir.display())))?;
        let secret = match &opts.jwt_secret {
            Some(s) => s.clone(),
            None => {
                let dir = opts.data_dir.clone();
                tokio::task::spawn_blocking(move || load_or_create_secret(&dir))
                    .await
                    .map_err(|e| AuthError::Internal(format!("secret task: {e}")))??
            }
        };
        let keys = TokenKeys::new(secret.expose().as_bytes())?;
        let accounts = Accounts::open(&opts.data_dir).await?;
        let state = ApiState::new(accounts.clone(), keys, opts.api.clone())
            .map_err(|e| AuthError::Internal(e.message))?;
        let first_admin_password = if accounts.is_empty() {
            match create_first_admin(&state, opts.admin_password.clone()).await? {
                Some(pw) => {
                    let path = opts.data_dir.join(ADMIN_PASSWORD_FILE);
                    let (p, secret) = (path.clone(), pw.clone());
                    tokio::task::spawn_blocking(move || {
                        // A file from an earlier first start is stale now.
                        match std::fs::remove_file(&p) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(e),
                        }
                        reallive_core::fs::write_secret_file(&p, secret.expose())
                    })
                    .await
                    .map_err(|e| AuthError::Internal(format!("password file task: {e}")))?
                    .map_err(io(format!("writing {}", path.display())))?;
                    Some((pw, path))
                }
                None => None,
            }
        } else {
            None
        };
        let (tls, new_fingerprint) = match &opts.tls {
            None => (None, None),
            Some(setting) => {
                let (setting, names, dir) = (
                    setting.clone(),
                    opts.certificate_names(),
                    opts.data_dir.join("tls"),
                );
                tokio::task::spawn_blocking(move || open_certificate(setting, &names, &dir))
                    .await
                    .map_err(|e| AuthError::Internal(format!("certificate task: {e}")))??
            }
        };
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(io(format!("listening on {}", opts.listen)))?;
        let stop = CancellationToken::new();
        let mut extra = reallive_http::ui::router();
        let live = match opts.relay {
            Some(cfg) => {
                let (relay, events) = Relay::start(cfg, stop.clone()).await?;
                let live = LiveState::start(state.clone(), relay, events, opts.live, stop.clone())
                    .await
                    .map_err(|e| AuthError::Internal(e.message))?;
                extra = extra.merge(crate::live::router(live.clone()));
                Some(live)
            }
            None => None,
        };
        Ok(Node {
            listener,
            state,
            extra,
            first_admin_password,
            live,
            serve: opts.serve,
            host_names: opts.host_names,
            tls,
            trusted_proxies: opts.trusted_proxies,
            new_fingerprint,
            stop,
        })
    }

    /// `https` with TLS on, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The served certificate's SHA-256 (what `--pin-sha256` takes), with
    /// TLS on.
    pub fn certificate_fingerprint(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|c| reallive_http::tls::fingerprint(&c.leaf()))
    }

    /// A self-signed certificate's fingerprint when it was made at this
    /// start (print it once).
    pub fn new_self_signed_fingerprint(&self) -> Option<&str> {
        self.new_fingerprint.as_deref()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, NodeError> {
        self.listener
            .local_addr()
            .map_err(io("reading the bound address"))
    }

    /// The live path, when the relay runs.
    pub fn live(&self) -> Option<&LiveState> {
        self.live.as_ref()
    }

    /// The shared API state, for routers added with [`merge`](Self::merge).
    pub fn state(&self) -> &ApiState {
        &self.state
    }

    /// The first admin's password, when it was generated at this start.
    /// It is never logged; [`first_admin_password_file`](Self::first_admin_password_file)
    /// holds it for the operator.
    pub fn first_admin_password(&self) -> Option<&Secret> {
        self.first_admin_password.as_ref().map(|(pw, _)| pw)
    }

    /// The file (mode 0600, [`ADMIN_PASSWORD_FILE`] in the data directory)
    /// that holds the generated first-admin password: tell the operator
    /// where it is, not what it says.
    pub fn first_admin_password_file(&self) -> Option<&Path> {
        self.first_admin_password.as_ref().map(|(_, p)| p.as_path())
    }

    /// Adds routes (signaling, media) beside the API.
    pub fn merge(mut self, router: Router) -> Self {
        self.extra = self.extra.merge(router);
        self
    }

    /// Serves until `shutdown` fires, then lets in-flight requests finish
    /// and closes the database.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NodeError> {
        let addr = self.local_addr()?;
        let mut app = reallive_http::with_layers(
            reallive_http::api_routes()
                .with_state(self.state.clone())
                .merge(self.extra),
            &self.state,
        );
        if addr.ip().is_loopback() || !self.host_names.is_empty() {
            app = reallive_http::host::check_host(app, self.host_names);
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, "listening");
        let acceptor = self.tls.as_ref().map(|cert| {
            cert.watch(reallive_http::tls::RELOAD_EVERY, self.stop.clone());
            cert.acceptor()
        });
        let options = reallive_http::ServeOptions {
            limits: self.serve,
            tls: acceptor,
            trusted_proxies: reallive_http::TrustedProxies::new(self.trusted_proxies),
        };
        let served =
            reallive_http::serve_with(self.listener, app, options, shutdown.cancelled_owned())
                .await
                .map_err(io("serving"));
        self.stop.cancel();
        self.state.accounts().close().await;
        tracing::info!("stopped");
        served
    }
}

/// The certificate for `setting`, and a new self-signed one's fingerprint.
fn open_certificate(
    setting: TlsSetting,
    names: &[String],
    dir: &Path,
) -> Result<
    (
        Option<Arc<reallive_http::tls::ReloadingCert>>,
        Option<String>,
    ),
    NodeError,
> {
    let tls_err = |e: reallive_http::tls::TlsError| NodeError::Invalid(format!("TLS: {e}"));
    let (files, made) = match setting {
        TlsSetting::Files(f) => (f, false),
        TlsSetting::SelfSigned => reallive_http::tls::self_signed(dir, names).map_err(tls_err)?,
    };
    let cert = reallive_http::tls::ReloadingCert::open(files).map_err(tls_err)?;
    let fingerprint = made.then(|| reallive_http::tls::fingerprint(&cert.leaf()));
    Ok((Some(cert), fingerprint))
}

async fn create_first_admin(
    state: &ApiState,
    password: Option<Secret>,
) -> Result<Option<Secret>, NodeError> {
    let (password, generated) = match password {
        Some(p) => {
            reallive_auth::validate::password(p.expose())?;
            (p, false)
        }
        None => (random_token::<12>(), true),
    };
    let password_hash = state
        .hash_password(password.expose().to_string())
        .await
        .map_err(|e| AuthError::Internal(e.message))?;
    let created = state
        .accounts()
        .create_user(NewUser {
            username: FIRST_ADMIN.into(),
            email: "admin@reallive.local".into(),
            password_hash,
            role: Role::Admin,
        })
        .await;
    match created {
        Ok(_) => {
            tracing::info!("first start: created user '{FIRST_ADMIN}'");
            Ok(generated.then_some(password))
        }
        // Another process made it first.
        Err(AuthError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads `DATA_DIR/jwt.secret`, or creates it (mode 0600, fsynced) with 256
/// random bits.
fn load_or_create_secret(dir: &Path) -> Result<Secret, NodeError> {
    let path = dir.join(JWT_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the token secret is readable by others; chmod 600 it");
            }
            let s = s.trim().to_string();
            if s.len() < MIN_SECRET_BYTES {
                return Err(AuthError::Invalid(format!(
                    "{} holds fewer than {MIN_SECRET_BYTES} bytes",
                    path.display()
                ))
                .into());
            }
            Ok(Secret::new(s))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_token::<32>();
            let tmp = dir.join(format!("{JWT_SECRET_FILE}.tmp"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(format!("creating {}", tmp.display())))?;
            f.write_all(secret.expose().as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io(format!("writing {}", tmp.display())))?;
            // No clobbering: if another process made one meanwhile, use it.
            match std::fs::hard_link(&tmp, &path) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&tmp);
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                    tracing::info!(path = %path.display(), "generated the token secret");
                    Ok(secret)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let _ = std::fs::remove_file(&tmp);
                    load_or_create_secret(dir)
                }
                Err(e) => Err(io(format!("creating {}", path.display()))(e)),
            }
        }
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}
