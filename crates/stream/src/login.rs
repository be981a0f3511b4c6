//! Signing in to a RealLive server for a token, holding the current token
//! where a long-running subscriber can find it after a refresh, and keeping
//! it fresh.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reallive_core::Backoff;
use reallive_core::time::UtcNs;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::StreamError;
use crate::net::{Network, Target};

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

/// Signs in at `server` (`http://host:port` or `https://host:port`) with a
/// username and password, over `net`. A wrong password is
/// [`StreamError::Unauthorized`]; a server that cannot be reached is
/// [`StreamError::Unavailable`]; an untrusted certificate, or a redirect to
/// `https://`, is [`StreamError::Untrusted`].
pub async fn login(
    net: &Network,
    server: &str,
    username: &str,
    password: &str,
) -> Result<Token, StreamError> {
    let target = Target::parse(server).map_err(StreamError::InvalidConfig)?;
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    let r = crate::http1::request(
        net,
        &target,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await?;
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

/// How a client signs in.
#[derive(Clone)]
pub enum Login {
    /// A username and password: the token is fetched, and fetched again
    /// before it expires.
    Password {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
    /// A token given as is; when it expires the server refuses it.
    Token(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::Password { username, .. } => write!(f, "Password({username}, ***)"),
            Login::Token(_) => f.write_str("Token(***)"),
        }
    }
}

/// A credential kept signed in by [`Login::sign_in`]: for a password
/// login, the task that logs in again before the token expires. Dropping
/// it stops that task.
#[derive(Debug)]
#[must_use = "dropping it stops refreshing the token"]
pub struct SignedIn {
    refresh: Option<JoinHandle<()>>,
}

impl Drop for SignedIn {
    fn drop(&mut self) {
        if let Some(r) = &self.refresh {
            r.abort();
        }
    }
}

impl Login {
    /// Puts a token for `server` (`http://host:port`) in `credential`: the
    /// given one, or a login's. A login is retried until it works or
    /// `stop` fires: every 60 s (±20 %) while the server refuses the
    /// password, with backoff from 1 s to 60 s otherwise. A password login
    /// then logs in again when half the token's life is left (at most
    /// hourly, at least every minute), until `stop` fires or the returned
    /// [`SignedIn`] is dropped.
    ///
    /// Returns `None` if `stop` fired before there was a token, and
    /// [`StreamError::Untrusted`] at once for a certificate `net` does not
    /// trust (retrying cannot fix it). Call it inside a tokio runtime: the
    /// refresh is a task on it.
    pub async fn sign_in(
        &self,
        net: &Network,
        server: &str,
        credential: &Credential,
        stop: &CancellationToken,
    ) -> Result<Option<SignedIn>, StreamError> {
        let (username, password) = match self {
            Login::Token(t) => {
                credential.set(t.clone());
                return Ok(Some(SignedIn { refresh: None }));
            }
            Login::Password { username, password } => (username.clone(), password.clone()),
        };
        let server = server.to_owned();
        let net = net.clone();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let Some(mut expires_unix) = login_until_ok(
            &net,
            &server,
            &username,
            &password,
            credential,
            &mut backoff,
            stop,
        )
        .await?
        else {
            return Ok(None);
        };
        let credential = credential.clone();
        let stop = stop.clone();
        let refresh = tokio::spawn(async move {
            loop {
                let wait = refresh_after(expires_unix, UtcNs::now().secs());
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                backoff.reset();
                match login_until_ok(
                    &net,
                    &server,
                    &username,
                    &password,
                    &credential,
                    &mut backoff,
                    &stop,
                )
                .await
                {
                    Ok(Some(e)) => expires_unix = e,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::error!("signing in again: {e}; the token is no longer refreshed");
                        return;
                    }
                }
            }
        });
        Ok(Some(SignedIn {
            refresh: Some(refresh),
        }))
    }
}

/// How long to keep a token that expires at `expires_unix` before logging
/// in again: half its remaining life, at least a minute (also for a token
/// without an expiry) and at most an hour.
fn refresh_after(expires_unix: i64, now_unix: i64) -> Duration {
    let left_secs = u64::try_from(expires_unix - now_unix).unwrap_or(0);
    Duration::from_secs((left_secs / 2).clamp(60, 3600))
}

/// Logs in until it works (setting `credential`; returns the expiry, Unix
/// seconds), `stop` fires (`None`), or the server is not trusted (the
/// error).
async fn login_until_ok(
    net: &Network,
    server: &str,
    username: &str,
    password: &str,
    credential: &Credential,
    backoff: &mut Backoff,
    stop: &CancellationToken,
) -> Result<Option<i64>, StreamError> {
    loop {
        match login(net, server, username, password).await {
            Ok(t) => {
                credential.set(t.token);
                return Ok(Some(t.expires_unix));
            }
            Err(e @ (StreamError::Untrusted(_) | StreamError::InvalidConfig(_))) => return Err(e),
            Err(e) => {
                let wait = retry_delay(&e, backoff);
                tokio::select! {
                    () = stop.cancelled() => return Ok(None),
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// The wait after a failed login, logged: the ceiling while the server
/// refuses the password (a user has to fix it; hammering helps nobody),
/// the next backoff step otherwise.
fn retry_delay(e: &StreamError, backoff: &mut Backoff) -> Duration {
    match e {
        StreamError::Unauthorized => {
            tracing::error!("the server refused the username or password; retrying every 60 s");
            backoff.max()
        }
        other => {
            let wait = backoff.next_delay();
            tracing::warn!(
                "signing in: {other}; retrying in {:.1} s",
                wait.as_secs_f64()
            );
            wait
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    #[test]
    fn a_token_is_refreshed_at_half_its_life_within_a_minute_and_an_hour() {
        let now = 1_000_000;
        for (expires_unix, want_secs) in [
            (now + 3600, 1800),
            (now + 24 * 3600, 3600),
            (now + 90, 60),
            (now, 60),
            (now - 10, 60),
            (0, 60),
        ] {
            assert_eq!(
                refresh_after(expires_unix, now),
                Duration::from_secs(want_secs),
                "expires {expires_unix}"
            );
        }
    }

    #[test]
    fn a_refused_password_retries_slowly_other_failures_back_off() {
        let s = Duration::from_secs;
        let mut backoff = Backoff::exact(s(1), s(60));
        let down = || StreamError::Unavailable("connection refused".into());
        let waits: Vec<Duration> = [
            down(),
            down(),
            StreamError::Unauthorized,
            down(),
            StreamError::Unauthorized,
        ]
        .iter()
        .map(|e| retry_delay(e, &mut backoff))
        .collect();
        assert_eq!(waits, [s(1), s(2), s(60), s(4), s(60)]);
    }

    #[tokio::test]
    async fn a_given_token_is_used_as_is() {
        let credential = Credential::default();
        let signed_in = Login::Token("t0".into())
            .sign_in(
                &Network::default(),
                "http://127.0.0.1:9",
                &credential,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert!(signed_in.is_some_and(|s| s.refresh.is_none()));
        assert_eq!(credential.get(), "t0");
    }

    /// A server answering each login with the next of `answers`
    /// (`(status, body)`), then no more; the receiver hears of each answer.
    async fn login_server(answers: Vec<(u16, &'static str)>) -> (String, mpsc::Receiver<u16>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (answered, rx) = mpsc::channel(answers.len().max(1));
        tokio::spawn(async move {
            for (status, body) in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut raw = Vec::new();
                let mut buf = [0u8; 1024];
                // The request: head, then a JSON body of Content-Length.
                while !raw.ends_with(b"}") {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the request ended early");
                    raw.extend_from_slice(&buf[..n]);
                }
                let request = String::from_utf8_lossy(&raw);
                assert!(request.starts_with("POST /api/auth/login "), "{request}");
                assert!(request.contains(r#""password":"pw""#), "{request}");
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(answer.as_bytes()).await.unwrap();
                drop(s);
                let _ = answered.send(status).await;
            }
        });
        (format!("http://{addr}"), rx)
    }

    fn password() -> Login {
        Login::Password {
            username: "viewer".into(),
            password: "pw".into(),
        }
    }

    #[tokio::test]
    async fn a_password_login_fills_the_credential_and_keeps_refreshing() {
        let (server, _answered) = login_server(vec![(
            200,
            r#"{"token":"t1","expires_at":"2099-01-01T00:00:00Z"}"#,
        )])
        .await;
        let credential = Credential::default();
        let stop = CancellationToken::new();
        let signed_in = password()
            .sign_in(&Network::default(), &server, &credential, &stop)
            .await
            .unwrap();
        assert_eq!(credential.get(), "t1");
        let refresh = signed_in.and_then(|mut s| s.refresh.take()).unwrap();
        assert!(!refresh.is_finished());
        stop.cancel();
        refresh.await.unwrap();
    }

    #[tokio::test]
    async fn stop_ends_the_retries_of_a_refused_password() {
        let (server, mut answered) = login_server(vec![(401, "{}")]).await;
        let credential = Credential::default();
        let stop = CancellationToken::new();
        let cancel = stop.clone();
        let login = password();
        let net = Network::default();
        let (signed_in, ()) =
            tokio::join!(login.sign_in(&net, &server, &credential, &stop), async {
                // Refused: the login now waits a minute, unless stopped.
                assert_eq!(answered.recv().await, Some(401));
                cancel.cancel();
            });
        assert!(signed_in.unwrap().is_none());
        assert_eq!(credential.get(), "");
    }
}
