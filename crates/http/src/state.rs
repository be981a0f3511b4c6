//! [`ApiState`]: what every handler shares.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_auth::{
    Accounts, Claims, LoginGuard, LoginLimits, PasswordHasher, PasswordParams, RateLimit,
    TokenKeys, User,
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

pub(crate) fn now_unix() -> i64 {
    reallive_core::time::UtcNs::now().secs()
}

impl ApiState {
    /// State over `accounts`, signing tokens with `keys`.
    pub fn new(accounts: Accounts, keys: TokenKeys, options: ApiOptions) -> Result<Self, ApiError> {
        let hasher = PasswordHasher::new(options.password_params)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
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
        });
        (token, exp)
    }

    /// The user `token` belongs to, if it is valid now: signed by us, not
    /// expired, and not revoked by a password change or deletion.
    pub fn authenticate(&self, token: &str) -> Result<User, ApiError> {
        let refused = |_| ApiError::unauthenticated("invalid or expired token");
        let claims = self.inner.keys.verify(token, now_unix()).map_err(refused)?;
        let snap = self.inner.accounts.snapshot();
        match snap.user(claims.sub) {
            Some(u) if u.token_version == claims.ver => Ok(u.clone()),
            _ => Err(ApiError::unauthenticated("invalid or expired token")),
        }
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
