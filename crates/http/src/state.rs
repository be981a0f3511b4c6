//! [`ApiState`]: what every handler shares.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_auth::{
    Accounts, Claims, DenyList, LoginGuard, LoginLimits, PasswordHasher, PasswordParams, RateLimit,
    TokenId, TokenKeys, User,
};
use reallive_core::ErrorKind;
use reallive_signaling::IceServer;
use tokio::sync::Semaphore;

use crate::ApiError;
use crate::metrics::Metrics;

/// How the API behaves. The defaults are the documented ones.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Whether anyone may create a viewer account (off by default).
    pub allow_registration: bool,
    /// Logins (and registrations) per client IP (an IPv6 client by its /64).
    pub login_per_ip: RateLimit,
    /// Failed logins per username, not counting (nor applied to) the
    /// addresses that user has signed in from before.
    pub login_per_user: RateLimit,
    /// argon2id cost for new hashes.
    pub password_params: PasswordParams,
    /// STUN/TURN servers for clients.
    pub ice_servers: Vec<IceServer>,
    /// A TURN server whose short-lived credentials are minted for each
    /// `/api/cameras/{id}/stream` answer.
    pub turn: Option<reallive_auth::TurnRest>,
    /// Origins allowed cross-origin requests; empty turns CORS off.
    pub cors_origins: Vec<String>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            token_ttl: Duration::from_secs(24 * 3600),
            allow_registration: false,
            login_per_ip: RateLimit {
                burst: 10,
                period: Duration::from_secs(6),
            },
            login_per_user: RateLimit {
                burst: 5,
                period: Duration::from_secs(12),
            },
            password_params: PasswordParams::default(),
            ice_servers: Vec::new(),
            turn: None,
            cors_origins: Vec::new(),
        }
    }
}

/// Rate-limiter tables are bounded to this many keys each.
const LIMITER_KEYS: usize = 10_000;

/// Shared by every handler. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: Accounts,
    keys: TokenKeys,
    hasher: PasswordHasher,
    options: ApiOptions,
    /// One password hash per core at a time: logins cannot starve the box.
    hash_slots: Semaphore,
    logins: Mutex<LoginGuard>,
    metrics: Metrics,
    /// More `/metrics` text, from the relay and the recorder.
    metrics_sources: Mutex<Vec<MetricsSource>>,
    /// More `/api/health` fields, from the recorder.
    health_sources: Mutex<Vec<HealthSource>>,
    /// More `/api/system` figures, from the recorder.
    system_sources: Mutex<Vec<SystemSource>>,
    /// Tokens signed out one at a time.
    denied: DenyList,
    /// The process's CPU time, sampled for `/api/system`.
    cpu: Arc<Mutex<crate::sysinfo::CpuWindow>>,
    started: Instant,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Appends Prometheus text to `/metrics`.
pub type MetricsSource = Box<dyn Fn(&mut String) + Send + Sync>;

/// Adds fields to `/api/health`'s details, which signed-in users see
/// (anyone sees only `status`).
/// A non-empty `warnings` array makes the status `degraded`.
pub type HealthSource = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>) + Send + Sync>;

/// Adds to `/api/system`: more database files to size, and per-camera
/// series (the NVR's recorders).
pub type SystemSource = Box<dyn Fn(&mut crate::sysinfo::SystemExtra) + Send + Sync>;

/// A signed-in session: the user, and the token's id and expiry (what
/// signing out of it needs).
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub user: User,
    /// The token's id in the deny-list.
    pub token_id: TokenId,
    /// The token's expiry, Unix seconds.
    pub exp: i64,
}

pub(crate) fn now_unix() -> i64 {
    reallive_core::time::UtcNs::now().secs()
}

impl ApiState {
    /// State over `accounts`, signing tokens with `keys`.
    pub fn new(accounts: Accounts, keys: TokenKeys, options: ApiOptions) -> Result<Self, ApiError> {
        let hasher = PasswordHasher::new(options.password_params)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = Arc::new(Mutex::new(crate::sysinfo::CpuWindow::default()));
        crate::sysinfo::spawn_cpu_sampler(&cpu);
        Ok(ApiState {
            inner: Arc::new(Inner {
                accounts,
                keys,
                hasher,
                hash_slots: Semaphore::new(cores),
                logins: Mutex::new(LoginGuard::new(
                    LoginLimits {
                        per_client: options.login_per_ip,
                        failures_per_user: options.login_per_user,
                    },
                    LIMITER_KEYS,
                )),
                options,
                metrics: Metrics::default(),
                metrics_sources: Mutex::new(Vec::new()),
                health_sources: Mutex::new(Vec::new()),
                system_sources: Mutex::new(Vec::new()),
                denied: DenyList::default(),
                cpu,
                started: Instant::now(),
            }),
        })
    }

    /// The accounts database.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The options this state was built with.
    pub fn options(&self) -> &ApiOptions {
        &self.inner.options
    }

    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Adds a source of `/metrics` text.
    pub fn add_metrics_source(&self, source: MetricsSource) {
        self.inner
            .metrics_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Adds fields to `/api/health`.
    pub fn add_health_source(&self, source: HealthSource) {
        self.inner
            .health_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// The extra `/api/health` fields.
    pub fn health_extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for s in self
            .inner
            .health_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s(&mut out);
        }
        out
    }

    /// Adds to `/api/system`.
    pub fn add_system_source(&self, source: SystemSource) {
        self.inner
            .system_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// What the sources add to `/api/system`, with the accounts database
    /// first among the files.
    pub fn system_extra(&self) -> crate::sysinfo::SystemExtra {
        let mut out = crate::sysinfo::SystemExtra {
            db_files: vec![self.inner.accounts.path().to_path_buf()],
            cameras: Vec::new(),
        };
        for s in self
            .inner
            .system_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s(&mut out);
        }
        out
    }

    /// The process's CPU use, in percent of one core, over about the last
    /// 10 s (since the start, before that).
    pub fn cpu_percent(&self) -> f64 {
        let now = Instant::now();
        let cpu_secs = crate::sysinfo::process_cpu_secs();
        let mut w = self.inner.cpu.lock().unwrap_or_else(|p| p.into_inner());
        w.push(now, cpu_secs);
        w.percent(now, cpu_secs, self.uptime())
    }

    /// Everything `/metrics` shows.
    pub fn render_metrics(&self) -> String {
        let mut out = self
            .inner
            .metrics
            .render(&self.inner.accounts.snapshot(), self.uptime().as_secs());
        for s in self
            .inner
            .metrics_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s(&mut out);
        }
        out
    }

    /// Camera `id`'s name if `user` holds `need` on it (by grant,
    /// ownership or the admin role). A camera they may not see is a 404, as
    /// if it did not exist; one they see without `need` is a 403.
    pub fn camera_access(
        &self,
        user: &reallive_auth::User,
        id: i64,
        need: reallive_auth::Permission,
    ) -> Result<String, ApiError> {
        let snap = self.accounts().snapshot();
        let cam = snap
            .camera(id)
            .ok_or_else(|| ApiError::not_found("camera"))?;
        let has = snap
            .access(user, cam)
            .ok_or_else(|| ApiError::not_found("camera"))?;
        if !has.includes(need) {
            return Err(ApiError::forbidden(format!(
                "this needs the {} permission on the camera",
                need.as_str()
            )));
        }
        Ok(cam.name.clone())
    }

    /// Time since the state was built.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// A token for `user`, and when it expires (Unix seconds).
    pub fn issue_token(&self, user: &User) -> (String, i64) {
        let iat = now_unix();
        let exp = iat + self.inner.options.token_ttl.as_secs() as i64;
        let token = self.inner.keys.issue(&Claims {
            sub: user.id,
            role: user.role,
            ver: user.token_version,
            iat,
            exp,
            jti: Some(Claims::new_jti()),
        });
        (token, exp)
    }

    /// The user `token` belongs to, if it is valid now: signed by us, not
    /// expired, not signed out, and not revoked by a password change or
    /// deletion.
    pub fn authenticate(&self, token: &str) -> Result<User, ApiError> {
        self.session(token).map(|s| s.user)
    }

    /// [`authenticate`](Self::authenticate), with the token's id and
    /// expiry.
    pub fn session(&self, token: &str) -> Result<Session, ApiError> {
        let refused = || ApiError::unauthenticated("invalid or expired token");
        let claims = self
            .inner
            .keys
            .verify(token, now_unix())
            .map_err(|_| refused())?;
        let token_id = claims.token_id(token);
        if self.inner.denied.is_denied(&token_id) {
            return Err(refused());
        }
        let snap = self.inner.accounts.snapshot();
        match snap.user(claims.sub) {
            Some(u) if u.token_version == claims.ver => Ok(Session {
                user: u.clone(),
                token_id,
                exp: claims.exp,
            }),
            _ => Err(refused()),
        }
    }

    /// Whether the token `id` was signed out (and has not expired since).
    pub fn is_signed_out(&self, id: &TokenId) -> bool {
        self.inner.denied.is_denied(id)
    }

    /// Signs `session`'s token out: it is refused from now on, and the
    /// user's other tokens still work. A 503 when too many tokens were
    /// signed out lately (the deny-list is full).
    pub fn end_session(&self, session: &Session) -> Result<(), ApiError> {
        self.inner
            .denied
            .deny(session.token_id, session.exp, now_unix())
            .map_err(ApiError::from)
    }

    /// Takes one attempt by `ip` for `username` (if any) from the sign-in
    /// limits; report how a password check went with
    /// [`ApiState::login_outcome`].
    pub fn rate_limit(&self, ip: Option<IpAddr>, username: Option<&str>) -> Result<(), ApiError> {
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        self.logins()
            .admit(ip, username, Instant::now())
            .map_err(|d| ApiError::rate_limited(secs(d)))
    }

    /// Reports a password check by `ip` for `username`: a failure slows
    /// the username down elsewhere; a success makes `ip` one of its known
    /// addresses.
    pub fn login_outcome(&self, ip: Option<IpAddr>, username: &str, ok: bool) {
        let now = Instant::now();
        let mut g = self.logins();
        if ok {
            g.succeeded(ip, username, now);
        } else {
            g.failed(ip, username, now);
        }
    }

    fn logins(&self) -> std::sync::MutexGuard<'_, LoginGuard> {
        self.inner.logins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hashes `password` on a blocking thread, one hash per core at a time.
    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let _slot = self.hash_slot().await?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.inner.hasher.hash(&password))
            .await
            .map_err(|e| ApiError::new(ErrorKind::Internal, format!("hash task: {e}")))?
            .map_err(ApiError::from)
    }

    /// Checks `password` against `phc` (or, for an unknown user, spends the
    /// same time and fails) on a blocking thread.
    pub async fn verify_password(
        &self,
        phc: Option<String>,
        password: String,
    ) -> Result<bool, ApiError> {
        let _slot = self.hash_slot().await?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => state.inner.hasher.verify(&phc, &password),
            None => state.inner.hasher.verify_nobody(&password),
        })
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("verify task: {e}")))
    }

    async fn hash_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        self.inner
            .hash_slots
            .acquire()
            .await
            .map_err(|_| ApiError::new(ErrorKind::Unavailable, "shutting down"))
    }
}
