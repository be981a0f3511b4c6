//! The `[server]` section of a config file, shared by `reallive-server`
//! and `reallive-nvr`. Apps read the file; this only describes it.

use std::net::SocketAddr;
use std::path::PathBuf;

use reallive_auth::Secret;
use serde::Deserialize;

use crate::IceServer;

/// `[server]`: every field optional; the CLI and environment override it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on; default `127.0.0.1:8080`.
    pub listen: Option<SocketAddr>,
    /// Where the databases and secrets live; default `./data`.
    pub data_dir: Option<PathBuf>,
    /// The first admin's password, used only on first start.
    pub admin_password: Option<Secret>,
    /// The token signing secret, at least 32 bytes. Default: generated
    /// once into `DATA_DIR/jwt.secret`.
    pub jwt_secret: Option<Secret>,
    /// Token lifetime; default one day.
    pub token_ttl_secs: Option<u64>,
    /// Whether anyone may create a viewer account; default true.
    pub allow_registration: Option<bool>,
    /// Origins allowed cross-origin requests; default none (CORS off).
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// STUN/TURN servers handed to clients.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// The relay's UDP port; default 8189.
    pub rtc_port: Option<u16>,
    /// Public addresses to advertise as relay candidates (a NATed box
    /// with the port forwarded).
    #[serde(default)]
    pub public_ips: Vec<std::net::IpAddr>,
}

/// A `reallive-server` config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfigFile {
    /// The only section.
    #[serde(default)]
    pub server: ServerSection,
}

impl ServerConfigFile {
    /// Parses TOML; the error names the line, column and key.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_unknown_keys() {
        let c = ServerConfigFile::from_toml(
            "[server]\nlisten = \"0.0.0.0:9000\"\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n\
             [[server.ice_servers]]\nurls = [\"stun:127.0.0.1:3478\"]\n",
        )
        .unwrap();
        assert_eq!(c.server.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(format!("{:?}", c.server.jwt_secret), "Some(Secret(***))");
        assert_eq!(c.server.ice_servers.len(), 1);
        let e = ServerConfigFile::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n")
            .unwrap_err();
        assert!(e.contains("line 3") && e.contains("listne"), "{e}");
        assert!(ServerConfigFile::from_toml("").is_ok());
    }
}
