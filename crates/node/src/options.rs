//! [`NodeOptions::resolve`]: a config file's `[server]` section under the
//! command line's values.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use reallive_auth::{Secret, TurnRest};
use reallive_http::ApiOptions;
use reallive_record::config::ServerSection;
use reallive_relay::RelayConfig;
use reallive_signaling::IceServer;

use crate::{NodeError, NodeOptions};

/// Where data lives when neither the CLI, the environment nor the file says.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Loopback only, unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The command line's values, each over the file's: the flags
/// `reallive-server` and `reallive-nvr` share (flatten them into a clap
/// parser).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeFlags {
    /// Databases, secrets (and the NVR's recordings) [default: ./data].
    #[arg(long, env = "REALLIVE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "REALLIVE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Password for the first admin, used only on first start [default:
    /// random, written to DATA_DIR/admin-password]. On the command line
    /// every local user can read it: prefer --admin-password-file.
    #[arg(
        long,
        env = "REALLIVE_ADMIN_PASSWORD",
        value_name = "PW",
        hide_env_values = true,
        value_parser = secret
    )]
    pub admin_password: Option<Secret>,

    /// A file (mode 0600) whose first line is the first admin's password.
    #[arg(
        long,
        env = "REALLIVE_ADMIN_PASSWORD_FILE",
        value_name = "FILE",
        conflicts_with = "admin_password"
    )]
    pub admin_password_file: Option<PathBuf>,

    /// UDP port of the WebRTC relay, shared by every peer [default: 8189].
    #[arg(long, env = "REALLIVE_RTC_PORT", value_name = "PORT")]
    pub rtc_port: Option<u16>,

    /// TCP port of the relay's ICE-TCP, for peers whose UDP is blocked
    /// [default: the RTC port + 1, 8190].
    #[arg(long, env = "REALLIVE_RTC_TCP_PORT", value_name = "PORT")]
    pub rtc_tcp_port: Option<u16>,

    /// A public address to advertise for the relay (repeatable), when the
    /// server sits behind NAT with the RTC port forwarded.
    #[arg(long = "public-ip", value_name = "IP")]
    pub public_ips: Vec<IpAddr>,

    /// A STUN or TURN URL handed to clients (repeatable), e.g.
    /// stun:stun.example.org:3478.
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_servers: Vec<String>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); read
    /// again when it changes. Plain HTTP on the same port is redirected.
    #[arg(
        long,
        env = "REALLIVE_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        env = "REALLIVE_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate, made once in DATA_DIR/tls
    /// for localhost, the host names and the listen and public addresses;
    /// its SHA-256 is printed when it is made (for --pin-sha256).
    #[arg(long, env = "REALLIVE_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// A TURN URL (repeatable, e.g. turn:turn.example.org:3478?transport=udp)
    /// whose short-lived credentials this server mints for each viewer
    /// session, with the secret in --turn-secret-file.
    #[arg(long = "turn-url", value_name = "URL", requires = "turn_secret_file")]
    pub turn_urls: Vec<String>,

    /// A file (mode 0600) whose first line is the secret shared with the
    /// TURN server (coturn's static-auth-secret, with use-auth-secret).
    #[arg(long, env = "REALLIVE_TURN_SECRET_FILE", value_name = "FILE")]
    pub turn_secret_file: Option<PathBuf>,

    /// A reverse proxy's address or network (repeatable, e.g. 127.0.0.1/32):
    /// only from these are X-Forwarded-For and X-Forwarded-Proto believed.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = cidr)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// A CIDR, or a single address as its /32 or /128.
/// The GOP cache's largest bound per camera, in MiB: a 4K camera's 4 s GOP
/// at 50 Mbit/s is 25 MiB.
const MAX_GOP_CACHE_MIB: u32 = 256;

fn cidr(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a CIDR like 10.0.0.0/8"))
}

/// The TURN credential minter: the flags' URLs and secret file over the
/// file's `[server.turn]`.
fn turn(
    file: Option<reallive_record::config::TurnSection>,
    urls: Vec<String>,
    secret_file: Option<PathBuf>,
) -> Result<Option<TurnRest>, NodeError> {
    let ttl = file
        .as_ref()
        .and_then(|t| t.ttl_secs)
        .map_or(reallive_auth::turn::DEFAULT_TTL, Duration::from_secs);
    let (urls, secret_file) = match (file, secret_file) {
        (_, Some(path)) if !urls.is_empty() => (urls, path),
        (Some(t), path) => (
            if urls.is_empty() { t.urls } else { urls },
            path.unwrap_or(t.secret_file),
        ),
        (None, Some(_)) => {
            return Err(NodeError::Invalid(
                "--turn-secret-file needs at least one --turn-url".into(),
            ));
        }
        (None, None) => return Ok(None),
    };
    TurnRest::from_file(urls, &secret_file, ttl)
        .map(Some)
        .map_err(|e| NodeError::Invalid(e.to_string()))
}

fn secret(s: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(s.to_owned()))
}

impl NodeOptions {
    /// Merges the file's `[server]` section under `flags`, over the
    /// defaults. The relay always runs, on `rtc_port` of the listen
    /// address.
    pub fn resolve(file: ServerSection, flags: NodeFlags) -> Result<NodeOptions, NodeError> {
        let data_dir = flags
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let listen = match flags.listen.or(file.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| NodeError::Invalid("default listen address".into()))?,
        };
        let mut api = ApiOptions::default();
        if let Some(ttl) = file.token_ttl_secs {
            if ttl < 60 {
                return Err(NodeError::Invalid(
                    "token_ttl_secs must be at least 60".into(),
                ));
            }
            api.token_ttl = Duration::from_secs(ttl);
        }
        if let Some(r) = file.allow_registration {
            api.allow_registration = r;
        }
        api.cors_origins = file.cors_origins;
        api.ice_servers = file.ice_servers;
        api.ice_servers
            .extend(flags.ice_servers.into_iter().map(|url| IceServer {
                urls: vec![url],
                username: None,
                credential: None,
            }));
        api.turn = turn(file.turn, flags.turn_urls, flags.turn_secret_file)?;
        let rtc_port = flags
            .rtc_port
            .or(file.rtc_port)
            .unwrap_or(reallive_relay::DEFAULT_RTC_PORT);
        let mut public_ips = file.public_ips;
        public_ips.extend(flags.public_ips);
        let mut node = NodeOptions::new(data_dir, listen);
        node.relay = Some(RelayConfig {
            bind: SocketAddr::new(listen.ip(), rtc_port),
            public_ips,
            ice_tcp: file.ice_tcp.unwrap_or(true).then(|| {
                // Port 0 (tests) picks one for both.
                let port = flags
                    .rtc_tcp_port
                    .or(file.rtc_tcp_port)
                    .unwrap_or(match rtc_port {
                        0 => 0,
                        p => p.saturating_add(1),
                    });
                SocketAddr::new(listen.ip(), port)
            }),
            gop_cache_bytes: match file.gop_cache_mib {
                None => reallive_relay::DEFAULT_GOP_CACHE_BYTES,
                Some(mib) if mib <= MAX_GOP_CACHE_MIB => mib as usize * (1 << 20),
                Some(mib) => {
                    return Err(NodeError::Invalid(format!(
                        "gop_cache_mib {mib} is over {MAX_GOP_CACHE_MIB} (MiB per camera)"
                    )));
                }
            },
            max_transcodes: file
                .max_live_transcodes
                .map_or_else(reallive_relay::default_max_transcodes, |n| n as usize),
        });
        let from_file = match &flags.admin_password_file {
            Some(path) => Some(Secret::new(
                reallive_core::fs::read_secret_file(path).map_err(|e| {
                    NodeError::Invalid(format!("--admin-password-file {}: {e}", path.display()))
                })?,
            )),
            None => None,
        };
        node.admin_password = flags.admin_password.or(from_file).or(file.admin_password);
        node.jwt_secret = file.jwt_secret;
        node.host_names = file.host_names;
        node.trusted_proxies = file.trusted_proxies;
        node.trusted_proxies.extend(flags.trusted_proxies);
        node.tls = match (flags.tls_cert, flags.tls_key, flags.tls_self_signed) {
            (Some(cert), Some(key), _) => {
                Some(crate::TlsSetting::Files(reallive_http::tls::TlsFiles {
                    cert,
                    key,
                }))
            }
            (None, None, true) => Some(crate::TlsSetting::SelfSigned),
            (None, None, false) => None,
            _ => {
                return Err(NodeError::Invalid(
                    "--tls-cert and --tls-key go together".into(),
                ));
            }
        };
        node.api = api;
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = ServerSection {
            listen: Some("0.0.0.0:9000".parse().unwrap()),
            rtc_port: Some(9100),
            token_ttl_secs: Some(3600),
            ice_servers: vec![IceServer {
                urls: vec!["stun:192.0.2.1:3478".into()],
                username: None,
                credential: None,
            }],
            ..ServerSection::default()
        };
        let o = NodeOptions::resolve(file.clone(), NodeFlags::default()).unwrap();
        assert_eq!(o.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(o.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(
            o.relay.as_ref().unwrap().bind,
            "0.0.0.0:9100".parse().unwrap()
        );
        assert_eq!(o.api.token_ttl, Duration::from_secs(3600));

        let flags = NodeFlags {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            rtc_port: Some(2),
            ice_servers: vec!["stun:192.0.2.2:3478".into()],
            ..NodeFlags::default()
        };
        let o = NodeOptions::resolve(file, flags).unwrap();
        assert_eq!(o.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(
            o.relay.as_ref().unwrap().bind,
            "127.0.0.1:2".parse().unwrap()
        );
        assert_eq!(o.api.ice_servers.len(), 2);

        let o = NodeOptions::resolve(ServerSection::default(), NodeFlags::default()).unwrap();
        assert_eq!(o.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(
            o.relay.unwrap().bind.port(),
            reallive_relay::DEFAULT_RTC_PORT
        );
    }

    #[test]
    fn the_admin_password_comes_from_a_private_file() {
        let dir = std::env::temp_dir().join(format!("reallive-node-opts-{}", std::process::id()));
        reallive_core::fs::create_private_dir(&dir).unwrap();
        let file = dir.join("pw");
        let _ = std::fs::remove_file(&file);
        reallive_core::fs::write_secret_file(&file, "from the file 1").unwrap();
        let flags = NodeFlags {
            admin_password_file: Some(file.clone()),
            ..NodeFlags::default()
        };
        let o = NodeOptions::resolve(ServerSection::default(), flags.clone()).unwrap();
        assert_eq!(o.admin_password.unwrap().expose(), "from the file 1");
        // A file others may read is refused, not used.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = NodeOptions::resolve(ServerSection::default(), flags).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_short_token_lifetime_is_refused() {
        let file = ServerSection {
            token_ttl_secs: Some(59),
            ..ServerSection::default()
        };
        let e = NodeOptions::resolve(file, NodeFlags::default()).unwrap_err();
        assert!(e.to_string().contains("at least 60"), "{e}");
    }

    #[test]
    fn the_gop_cache_is_8_mib_by_default_off_at_0_and_bounded() {
        let with = |mib| {
            NodeOptions::resolve(
                ServerSection {
                    gop_cache_mib: mib,
                    ..ServerSection::default()
                },
                NodeFlags::default(),
            )
        };
        let bytes = |mib| with(mib).unwrap().relay.unwrap().gop_cache_bytes;
        assert_eq!(bytes(None), 8 << 20);
        assert_eq!(bytes(Some(0)), 0);
        assert_eq!(bytes(Some(32)), 32 << 20);
        let e = with(Some(257)).unwrap_err();
        assert!(
            e.to_string().contains("gop_cache_mib 257 is over 256"),
            "{e}"
        );
    }
}
