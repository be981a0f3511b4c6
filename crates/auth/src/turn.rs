//! [`TurnRest`]: short-lived TURN credentials, in the REST scheme coturn
//! implements as `use-auth-secret` (draft-uberti-behave-turn-rest): the
//! username is `<expiry-unix>:<who>` and the password is
//! `base64(HMAC-SHA1(shared secret, username))`. The TURN server checks
//! both with the same secret, and refuses the username after its expiry,
//! so no long-lived TURN password is ever handed out.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;

use crate::{AuthError, Secret};

/// The longest a minted credential may live.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a minted credential lives unless configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Mints TURN credentials for `urls` from a shared secret. `Debug` never
/// shows the secret.
#[derive(Clone)]
pub struct TurnRest {
    urls: Vec<String>,
    secret: Secret,
    ttl: Duration,
}

impl std::fmt::Debug for TurnRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnRest")
            .field("urls", &self.urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// One minted credential.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnCredential {
    /// `turn:` and `turns:` URLs it is good for.
    pub urls: Vec<String>,
    /// `<expiry-unix>:<who>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

impl std::fmt::Debug for TurnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredential")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl TurnRest {
    /// Credentials for `urls` (each `turn:` or `turns:`), signed with the
    /// secret in the first line of `secret_file` (which only its owner may
    /// read: see [`reallive_core::fs::read_secret_file`]), living `ttl` (at
    /// most [`MAX_TTL`]).
    pub fn from_file(
        urls: Vec<String>,
        secret_file: &Path,
        ttl: Duration,
    ) -> Result<Self, AuthError> {
        let secret = reallive_core::fs::read_secret_file(secret_file).map_err(|e| {
            AuthError::Invalid(format!("TURN secret_file {}: {e}", secret_file.display()))
        })?;
        Self::new(urls, Secret::new(secret), ttl)
    }

    /// As [`TurnRest::from_file`], with the secret itself.
    pub fn new(urls: Vec<String>, secret: Secret, ttl: Duration) -> Result<Self, AuthError> {
        if urls.is_empty() {
            return Err(AuthError::Invalid(
                "TURN needs at least one turn: URL".into(),
            ));
        }
        if let Some(bad) = urls
            .iter()
            .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
        {
            return Err(AuthError::Invalid(format!(
                "a TURN URL must start with turn: or turns:, not {bad:?}"
            )));
        }
        if secret.expose().len() < 16 {
            return Err(AuthError::Invalid(
                "the TURN secret must be at least 16 characters".into(),
            ));
        }
        if ttl < Duration::from_secs(60) || ttl > MAX_TTL {
            return Err(AuthError::Invalid(format!(
                "the TURN credential lifetime must be 60 s to 24 h, not {} s",
                ttl.as_secs()
            )));
        }
        Ok(TurnRest { urls, secret, ttl })
    }

    /// A credential for `who` (a user and session, free text without `:`)
    /// valid from `now_unix` for the configured lifetime.
    pub fn mint(&self, who: &str, now_unix: i64) -> TurnCredential {
        let expiry = now_unix.saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX));
        let username = format!("{expiry}:{}", who.replace(':', "_"));
        TurnCredential {
            urls: self.urls.clone(),
            credential: sign(self.secret.expose(), &username),
            username,
        }
    }

    /// How long each credential lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn sign(secret: &str, username: &str) -> String {
    // HMAC takes a key of any length; this cannot fail.
    let mut mac = <Hmac<Sha1>>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn() -> TurnRest {
        TurnRest::new(
            vec!["turn:127.0.0.1:3478?transport=udp".into()],
            Secret::new("north-gate-shared-secret"),
            Duration::from_secs(3600),
        )
        .unwrap()
    }

    /// The password is what coturn computes for the username: checked
    /// against `openssl dgst -sha1 -hmac <secret> -binary | base64`.
    #[test]
    fn credentials_are_the_rest_scheme() {
        let c = turn().mint("7-a1b2", 1_800_000_000);
        assert_eq!(c.username, "1800003600:7-a1b2");
        assert_eq!(c.credential, "M3bYt/CsWD7zBz08nsv6TmsMl+4=");
        assert!(!format!("{:?} {c:?}", turn()).contains("north-gate"));
        assert!(!format!("{c:?}").contains(&c.credential));
    }

    #[test]
    fn each_mint_is_its_own_and_a_colon_cannot_forge_the_expiry() {
        let t = turn();
        assert_ne!(t.mint("a", 0).credential, t.mint("b", 0).credential);
        assert_eq!(t.mint("9999999999:x", 0).username, "3600:9999999999_x");
    }

    #[test]
    fn bad_settings_are_refused() {
        let s = || Secret::new("north-gate-shared-secret");
        let h = Duration::from_secs(3600);
        assert!(TurnRest::new(vec![], s(), h).is_err());
        assert!(TurnRest::new(vec!["stun:x".into()], s(), h).is_err());
        assert!(TurnRest::new(vec!["turn:x".into()], Secret::new("short"), h).is_err());
        assert!(TurnRest::new(vec!["turn:x".into()], s(), Duration::from_secs(59)).is_err());
        assert!(TurnRest::new(vec!["turn:x".into()], s(), MAX_TTL + h).is_err());
        assert!(TurnRest::new(vec!["turns:x".into()], s(), MAX_TTL).is_ok());
    }
}
