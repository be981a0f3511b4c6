//! The stream flags, for a program's clap parser (feature `cli`): where to
//! publish ([`PublishFlags`]) and how to sign in ([`LoginFlags`]).

use std::path::PathBuf;
use std::sync::Arc;

use reallive_signaling::IceServer;

use crate::{Login, Network, PublishConfig, StreamError};

/// How to reach the server, as command-line flags (`--ca-cert`,
/// `--pin-sha256`, `--ice-server`): `#[command(flatten)]` it into a
/// program's parser and call [`NetworkFlags::network`].
#[derive(Clone, Debug, Default, clap::Args)]
pub struct NetworkFlags {
    /// Trust only certificates issued by this CA (PEM) for https://.
    #[arg(
        long,
        env = "REALLIVE_CA_CERT",
        value_name = "FILE",
        conflicts_with = "pin_sha256"
    )]
    pub ca_cert: Option<PathBuf>,

    /// Trust only the server certificate with this SHA-256 (64 hex digits,
    /// as `--tls-self-signed` prints it), for a self-signed server.
    #[arg(long, env = "REALLIVE_PIN_SHA256", value_name = "HEX")]
    pub pin_sha256: Option<String>,

    /// Add this STUN or TURN server (stun:host:port,
    /// turn:host:port?transport=udp) to the ones the server hands out.
    /// Repeatable.
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_servers: Vec<String>,
}

impl NetworkFlags {
    /// The trust and ICE servers the flags ask for; without `--ca-cert` or
    /// `--pin-sha256`, the system's roots.
    pub fn network(&self) -> Result<Network, StreamError> {
        for url in &self.ice_servers {
            if !["stun:", "stuns:", "turn:", "turns:"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(StreamError::InvalidConfig(format!(
                    "--ice-server must be a stun: or turn: URL, not {url:?}"
                )));
            }
        }
        let network = match (&self.ca_cert, &self.pin_sha256) {
            (Some(ca), _) => Network::with_ca_file(ca)?,
            (None, Some(pin)) => Network::pinned(pin)?,
            (None, None) => Network::default(),
        };
        Ok(network.with_ice_servers(
            self.ice_servers
                .iter()
                .map(|url| IceServer {
                    urls: vec![url.clone()],
                    username: None,
                    credential: None,
                })
                .collect(),
        ))
    }
}

/// Where to publish, as command-line flags (`--server`, `--whip`,
/// `--camera`, `--key`): `#[command(flatten)]` it into a program's parser
/// and call [`PublishFlags::config`]. Its `Debug` never shows the key.
#[derive(Clone, clap::Args)]
pub struct PublishFlags {
    /// Publish to this RealLive server (http://host:port or
    /// https://host:port) over WebRTC.
    #[arg(long, env = "REALLIVE_SERVER", value_name = "URL", requires = "camera")]
    pub server: Option<String>,

    /// Publish with WHIP to this URL (http://host:port/whip/ID, or
    /// https://) instead of WS signaling; needs --key.
    #[arg(long, value_name = "URL", conflicts_with = "server")]
    pub whip: Option<String>,

    /// The camera's id on the server.
    #[arg(long, env = "REALLIVE_CAMERA", value_name = "ID")]
    pub camera: Option<i64>,

    /// The camera's stream key. On the command line every local user can
    /// read it: prefer --key-file or the environment.
    #[arg(
        long,
        env = "REALLIVE_STREAM_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,

    /// A file (mode 0600) whose first line is the stream key.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub key_file: Option<PathBuf>,
}

/// The flags that put a secret on the command line, and what to use
/// instead: for [`reallive_core::app::warn_secret_flags`].
pub const SECRET_FLAGS: [(&str, &str); 3] = [
    ("--key", "--key-file"),
    ("--password", "--password-file"),
    ("--token", "--token-file"),
];

/// `flag`'s value, or the first line of the file `file_flag` names.
fn secret(
    value: Option<String>,
    file: Option<PathBuf>,
    file_flag: &str,
) -> Result<Option<String>, StreamError> {
    match file {
        Some(path) => reallive_core::fs::read_secret_file(&path)
            .map(Some)
            .map_err(|e| {
                StreamError::InvalidConfig(format!("{file_flag} {}: {e}", path.display()))
            }),
        None => Ok(value),
    }
}

impl std::fmt::Debug for PublishFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishFlags")
            .field("server", &self.server)
            .field("whip", &self.whip)
            .field("camera", &self.camera)
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl PublishFlags {
    /// What the flags ask for: publishing to `--server` over WS signaling,
    /// or with WHIP at `--whip` (whose last path segment is taken as the
    /// camera id, for logs), over `network`; `None` if neither is given.
    /// The config's `keyframe` does nothing: set it to the capture's
    /// keyframe requester.
    pub fn config(self, network: Network) -> Result<Option<PublishConfig>, StreamError> {
        let missing = |what: &str| StreamError::InvalidConfig(what.to_owned());
        let key = secret(self.key, self.key_file, "--key-file")?;
        let (server, camera, key, whip) = match (self.server, self.whip) {
            (Some(server), _) => (
                server,
                self.camera
                    .ok_or_else(|| missing("--camera is required with --server"))?,
                key.ok_or_else(|| missing("--key is required with --server"))?,
                None,
            ),
            (None, Some(whip)) => (
                String::new(),
                whip.trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                key.ok_or_else(|| missing("--key is required with --whip"))?,
                Some(whip),
            ),
            (None, None) => return Ok(None),
        };
        Ok(Some(PublishConfig {
            server,
            camera,
            key,
            whip,
            network,
            keyframe: Arc::new(|| {}),
        }))
    }
}

/// How to sign in, as command-line flags (`--username` and `--password`,
/// or `--token`): `#[command(flatten)]` it into a program's parser and call
/// [`LoginFlags::login`]. Its `Debug` never shows the password or token.
#[derive(Clone, clap::Args)]
pub struct LoginFlags {
    /// Sign in as this user (with --password-file or --password).
    #[arg(
        long,
        env = "REALLIVE_USERNAME",
        conflicts_with_all = ["token", "token_file"]
    )]
    pub username: Option<String>,

    /// The user's password. On the command line every local user can read
    /// it: prefer --password-file or the environment.
    #[arg(
        long,
        env = "REALLIVE_PASSWORD",
        hide_env_values = true,
        requires = "username"
    )]
    pub password: Option<String>,

    /// A file (mode 0600) whose first line is the user's password.
    #[arg(
        long,
        value_name = "FILE",
        requires = "username",
        conflicts_with = "password"
    )]
    pub password_file: Option<PathBuf>,

    /// A token that grants `view` on the cameras, instead of a password.
    /// Prefer --token-file or the environment.
    #[arg(long, env = "REALLIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A file (mode 0600) whose first line is the token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for LoginFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFlags")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl LoginFlags {
    /// The sign-in the flags ask for.
    pub fn login(self) -> Result<Login, StreamError> {
        let password = secret(self.password, self.password_file, "--password-file")?;
        let token = secret(self.token, self.token_file, "--token-file")?;
        match (self.username, password, token) {
            (Some(username), Some(password), None) => Ok(Login::Password { username, password }),
            (None, None, Some(t)) => Ok(Login::Token(t)),
            _ => Err(StreamError::InvalidConfig(
                "give --username and --password-file (or --password), or --token-file (or --token)"
                    .into(),
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
        cli.publish
            .config(Network::default())
            .map_err(|e| e.to_string())
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

    #[derive(Debug, Parser)]
    struct LoginCli {
        #[command(flatten)]
        login: LoginFlags,
    }

    fn login(args: &[&str]) -> Result<Login, String> {
        let cli = LoginCli::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
            .map_err(|e| e.kind().to_string())?;
        cli.login.login().map_err(|e| e.to_string())
    }

    /// Secrets come from files (mode 0600) instead of the command line;
    /// the old flags still work.
    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            reallive_core::fs::write_secret_file(&p, text).unwrap();
            p.to_str().unwrap().to_owned()
        };
        let (key, pw, token) = (
            file("key", "k-from-file"),
            file("pw", "pw from file"),
            file("t", "t.o.k"),
        );

        let c = publish(&[
            "--server",
            "http://h:1",
            "--camera",
            "3",
            "--key-file",
            &key,
        ])
        .unwrap()
        .unwrap();
        assert_eq!(c.key, "k-from-file");
        assert!(publish(&["--whip", "http://h:1/whip/7", "--key-file", "/nonexistent"]).is_err());
        assert!(
            publish(&[
                "--whip",
                "http://h:1/whip/7",
                "--key",
                "k",
                "--key-file",
                &key
            ])
            .is_err()
        );

        match login(&["--username", "u", "--password-file", &pw]).unwrap() {
            Login::Password { username, password } => {
                assert_eq!(
                    (username.as_str(), password.as_str()),
                    ("u", "pw from file")
                )
            }
            other => panic!("{other:?}"),
        }
        match login(&["--token-file", &token]).unwrap() {
            Login::Token(t) => assert_eq!(t, "t.o.k"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            login(&["--username", "u", "--password", "old-style"]).unwrap(),
            Login::Password { .. }
        ));
        for bad in [
            &[][..],
            &["--username", "u"][..],
            &["--password-file", &pw][..],
            &["--username", "u", "--token-file", &token][..],
            &["--username", "u", "--password", "p", "--password-file", &pw][..],
        ] {
            assert!(login(bad).is_err(), "{bad:?}");
        }
    }
}
