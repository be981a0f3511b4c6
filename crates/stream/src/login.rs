//! Signing in to a RealLive server for a token, and holding the current
//! token where a long-running subscriber can find it after a refresh.

use std::sync::{Arc, Mutex, PoisonError};

use crate::StreamError;

/// A bearer credential that can be replaced while sessions use it: each
/// new connection reads the current value. Its `Debug` never shows it.
#[derive(Clone, Default)]
pub struct Credential(Arc<Mutex<String>>);

impl Credential {
    /// A credential holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Credential(Arc::new(Mutex::new(value.into())))
    }

    /// The current value.
    pub fn get(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value for connections made from now on.
    pub fn set(&self, value: impl Into<String>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = value.into();
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(***)")
    }
}

/// A token from [`login`].
#[derive(Clone)]
pub struct Token {
    /// The bearer token.
    pub token: String,
    /// When it expires, Unix seconds (0 if the server did not say).
    pub expires_unix: i64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("token", &"***")
            .field("expires_unix", &self.expires_unix)
            .finish()
    }
}

/// Signs in at `server` (`http://host:port`) with a username and password.
/// A wrong password is [`StreamError::Unauthorized`]; a server that cannot
/// be reached is [`StreamError::Unavailable`].
pub async fn login(server: &str, username: &str, password: &str) -> Result<Token, StreamError> {
    let base = server.trim_end_matches('/');
    let (hostport, _) =
        crate::http1::split(&format!("{base}/")).map_err(StreamError::InvalidConfig)?;
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let r = crate::http1::request(
        &hostport,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
    .map_err(StreamError::Unavailable)?;
    match r.status {
        200 => {}
        401 | 403 => return Err(StreamError::Unauthorized),
        s => {
            return Err(StreamError::Unavailable(format!(
                "{server} answered {s} to the login"
            )));
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| StreamError::Unavailable(format!("a malformed login answer: {e}")))?;
    let token = v["token"]
        .as_str()
        .ok_or_else(|| StreamError::Unavailable("the login answer has no token".into()))?
        .to_string();
    let expires_unix = v["expires_at"]
        .as_str()
        .and_then(reallive_core::time::parse_rfc3339_secs)
        .unwrap_or(0);
    Ok(Token {
        token,
        expires_unix,
    })
}
