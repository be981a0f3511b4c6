//! Who may do what in RealLive.
//!
//! The server, the NVR and the `user` admin commands all decide access the
//! same way, so the decisions live here, beside the accounts they read,
//! and the HTTP and signaling layers only ask. Nothing here knows about
//! HTTP or GStreamer.
//!
//! - [`Role`] and [`Permission`]: the vocabulary. Admins do everything;
//!   operators create cameras; viewers see what they are granted. Grants
//!   are levels: `control` includes `playback` includes `view`.
//! - [`PasswordHasher`]: argon2id in PHC strings.
//! - [`TokenKeys`] and [`Claims`]: HS256 session tokens; [`DenyList`]:
//!   the ids of tokens signed out one at a time, until they expire.
//! - [`generate_stream_key`] and friends: publisher keys, stored hashed,
//!   compared in constant time.
//! - [`RateLimiter`]: sans-IO GCRA, for logins.
//! - [`validate`]: the input rules for usernames, emails, passwords and
//!   camera names.
//! - [`Accounts`]: users, cameras, grants and sessions in SQLite, read from
//!   an in-memory [`Snapshot`]; and, read from the database alone, where a
//!   pulled camera's video comes from ([`CameraSource`], its settings
//!   secret). See `docs/design/auth.md`.
//! - [`Secret`]: anything that must never reach a log line.
//!
//! # Threading
//!
//! Hashing and verifying passwords take tens of milliseconds of CPU (that
//! is argon2id's point): call them on a blocking thread. [`Accounts`] reads
//! are lookups in an immutable snapshot, cheap enough for every request and
//! every signaling message; its writes are async (sqlx runs SQLite on its
//! own threads). Tokens, grants, stream keys and the rate limiter are pure
//! and take `now` as an argument, so their tests need no clock.
//!
//! # Example
//!
//! ```
//! use reallive_auth::{Claims, PasswordHasher, PasswordParams, Permission, Role, TokenKeys};
//!
//! let hasher = PasswordHasher::new(PasswordParams::cheap())?;
//! let phc = hasher.hash("correct horse battery")?;
//! assert!(hasher.verify(&phc, "correct horse battery"));
//!
//! let keys = TokenKeys::new(&[42u8; 32])?;
//! let claims = Claims { sub: 1, role: Role::Viewer, ver: 0, iat: 0, exp: 60, jti: None };
//! let token = keys.issue(&claims);
//! assert_eq!(keys.verify(&token, 30)?, claims);
//! assert!(keys.verify(&token, 61).is_err());
//!
//! // A grant of `playback` allows watching live, not changing settings.
//! assert!(Permission::Playback.includes(Permission::View));
//! assert!(!Permission::Playback.includes(Permission::Control));
//! # Ok::<(), reallive_auth::AuthError>(())
//! ```

#![warn(missing_docs)]

pub mod accounts;
mod deny;
mod password;
mod ratelimit;
mod roles;
mod secret;
mod stream_key;
mod token;
pub mod turn;
pub mod validate;

use reallive_core::ErrorKind;

pub use accounts::{
    Accounts, Camera, CameraOrigin, CameraSource, CameraStatus, CameraUpdate, Grant, NewUser,
    Snapshot, User, UserUpdate,
};
pub use deny::{DENY_LIST_CAPACITY, DenyList, TokenId};
pub use password::{PasswordHasher, PasswordParams};
pub use ratelimit::{LoginGuard, LoginLimits, RateLimit, RateLimiter, client_bucket};
pub use roles::{Permission, Role};
pub use secret::{Secret, random_bytes, random_token};
pub use stream_key::{STREAM_KEY_PREFIX, generate_stream_key, stream_key_hash, stream_key_matches};
pub use token::{AUDIENCE, Claims, ISSUER, MIN_SECRET_BYTES, TokenError, TokenKeys};
pub use turn::{TurnCredential, TurnRest};

/// Errors from auth decisions, the accounts database and parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// An unknown role, permission or status name.
    #[error("unknown {what} '{value}'")]
    Unknown {
        /// "role", "permission" or "camera status".
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// Input that breaks a rule; the message says which, safe to show.
    #[error("{0}")]
    Invalid(String),
    /// Would duplicate a unique name or break an invariant (the last admin).
    #[error("{0}")]
    Conflict(String),
    /// No such user, camera or grant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// At a limit for now (the deny-list is full); the message says so
    /// and is safe to show.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected state; the message is for the log only.
    #[error("{0}")]
    Internal(String),
    /// The accounts database failed.
    #[error("accounts database: {0}")]
    Database(#[from] sqlx::Error),
    /// The accounts database could not be migrated.
    #[error("accounts database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl AuthError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::Unknown { .. } | AuthError::Invalid(_) => ErrorKind::InvalidArgument,
            AuthError::Conflict(_) => ErrorKind::AlreadyExists,
            AuthError::NotFound(_) => ErrorKind::NotFound,
            AuthError::Token(_) => ErrorKind::Unauthenticated,
            AuthError::Unavailable(_) => ErrorKind::Unavailable,
            AuthError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                ErrorKind::Unavailable
            }
            AuthError::Internal(_) | AuthError::Database(_) | AuthError::Migrate(_) => {
                ErrorKind::Internal
            }
        }
    }
}
