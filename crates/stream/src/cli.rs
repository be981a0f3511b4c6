//! The stream flags, for a program's clap parser (feature `cli`): where to
//! publish ([`PublishFlags`]) and how to sign in ([`LoginFlags`]).

use std::sync::Arc;

use crate::{Login, PublishConfig, StreamError};

/// Where to publish, as command-line flags (`--server`, `--whip`,
/// `--camera`, `--key`): `#[command(flatten)]` it into a program's parser
/// and call [`PublishFlags::config`]. Its `Debug` never shows the key.
#[derive(Clone, clap::Args)]
pub struct PublishFlags {
    /// Publish to this RealLive server (http://host:port) over WebRTC.
    #[arg(long, env = "REALLIVE_SERVER", value_name = "URL", requires_all = ["camera", "key"])]
    pub server: Option<String>,

    /// Publish with WHIP to this URL (http://host:port/whip/ID) instead of
    /// WS signaling; needs --key.
    #[arg(long, value_name = "URL", requires = "key", conflicts_with = "server")]
    pub whip: Option<String>,

    /// The camera's id on the server.
    #[arg(long, env = "REALLIVE_CAMERA", value_name = "ID")]
    pub camera: Option<i64>,

    /// The camera's stream key.
    #[arg(
        long,
        env = "REALLIVE_STREAM_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

impl std::fmt::Debug for PublishFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishFlags")
            .field("server", &self.server)
            .field("whip", &self.whip)
            .field("camera", &self.camera)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl PublishFlags {
    /// What the flags ask for: publishing to `--server` over WS signaling,
    /// or with WHIP at `--whip` (whose last path segment is taken as the
    /// camera id, for logs); `None` if neither is given. The config's
    /// `keyframe` does nothing: set it to the capture's keyframe requester.
    pub fn config(self) -> Result<Option<PublishConfig>, StreamError> {
        let missing = |what: &str| StreamError::InvalidConfig(what.to_owned());
        let (server, camera, key, whip) = match (self.server, self.whip) {
            (Some(server), _) => (
                server,
                self.camera
                    .ok_or_else(|| missing("--camera is required with --server"))?,
                self.key
                    .ok_or_else(|| missing("--key is required with --server"))?,
                None,
            ),
            (None, Some(whip)) => (
                String::new(),
                whip.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                self.key
                    .ok_or_else(|| missing("--key is required with --whip"))?,
                Some(whip),
            ),
            (None, None) => return Ok(None),
        };
        Ok(Some(PublishConfig {
            server,
            camera,
            key,
            whip,
            keyframe: Arc::new(|| {}),
        }))
    }
}

/// How to sign in, as command-line flags (`--username` and `--password`,
/// or `--token`): `#[command(flatten)]` it into a program's parser and call
/// [`LoginFlags::login`]. Its `Debug` never shows the password or token.
#[derive(Clone, clap::Args)]
pub struct LoginFlags {
    /// Sign in as this user (with --password).
    #[arg(
        long,
        env = "REALLIVE_USERNAME",
        requires = "password",
        conflicts_with = "token"
    )]
    pub username: Option<String>,

    /// The user's password.
    #[arg(
        long,
        env = "REALLIVE_PASSWORD",
        hide_env_values = true,
        requires = "username"
    )]
    pub password: Option<String>,

    /// A token that grants `view` on the cameras, instead of a password.
    #[arg(
        long,
        env = "REALLIVE_TOKEN",
        hide_env_values = true,
        required_unless_present = "username"
    )]
    pub token: Option<String>,
}

impl std::fmt::Debug for LoginFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFlags")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl LoginFlags {
    /// The sign-in the flags ask for.
    pub fn login(self) -> Result<Login, StreamError> {
        match (self.username, self.password, self.token) {
            (Some(username), Some(password), None) => Ok(Login::Password { username, password }),
            (None, None, Some(t)) => Ok(Login::Token(t)),
            _ => Err(StreamError::InvalidConfig(
                "give --username and --password, or --token".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        publish: PublishFlags,
    }

    fn publish(args: &[&str]) -> Result<Option<PublishConfig>, String> {
        let cli = Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
            .map_err(|e| e.kind().to_string())?;
        cli.publish.config().map_err(|e| e.to_string())
    }

    #[test]
    fn publish_flags_pick_ws_signaling_or_whip() {
        let ws = publish(&["--server", "http://h:1", "--camera", "3", "--key", "k"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (ws.server.as_str(), ws.camera, ws.whip),
            ("http://h:1", 3, None)
        );
        let whip = publish(&["--whip", "http://h:1/whip/7/", "--key", "k"])
            .unwrap()
            .unwrap();
        assert_eq!(whip.camera, 7);
        assert_eq!(whip.whip.as_deref(), Some("http://h:1/whip/7/"));
        assert_eq!(publish(&[]).unwrap().map(|c| c.camera), None);
        assert!(publish(&["--server", "http://h:1", "--key", "k"]).is_err());
        assert!(publish(&["--whip", "http://h:1/whip/7"]).is_err());
        let debug = format!("{:?}", Cli::parse_from(["prog", "--key", "secret-key"]));
        assert!(!debug.contains("secret-key"), "{debug}");
    }
}
