//! How a client reaches a server: plain TCP for `http://` and `ws://`, TLS
//! for `https://` and `wss://` (rustls, trusting the system's roots, a
//! private CA, or one pinned certificate), and the ICE servers it adds to
//! the ones the server hands out.
//!
//! A certificate the client does not trust, and a server that redirects a
//! clear-text URL to `https://`, end the session for good
//! ([`crate::SessionState::Failed`]): retrying cannot fix either, and a
//! client never falls back to clear text.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reallive_signaling::IceServer;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

use crate::StreamError;

/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whom a client trusts, and which ICE servers it adds: the TLS and ICE
/// settings every connection of a publisher, a subscriber or a login uses.
///
/// [`Network::default`] trusts the system's roots and adds no ICE servers.
#[derive(Clone)]
pub struct Network {
    tls: Arc<ClientConfig>,
    trust: Trust,
    ice_servers: Vec<IceServer>,
}

/// Which certificates a client accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Trust {
    /// The system's roots (`/etc/ssl/certs`, through rustls-native-certs).
    System,
    /// Only certificates issued by the CA in this file.
    Ca(String),
    /// Only the leaf certificate with this SHA-256 (lowercase hex); its
    /// chain, names and dates are not checked.
    Pin(String),
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("trust", &self.trust)
            .field("ice_servers", &self.ice_servers)
            .finish()
    }
}

impl Default for Network {
    fn default() -> Self {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                "no system CA certificates found; https:// servers need --ca-cert or --pin-sha256"
            );
        }
        Network::with_roots(roots, Trust::System)
    }
}

impl Network {
    /// Trusts only certificates issued by the CA certificates (PEM) in
    /// `path`: a private CA.
    pub fn with_ca_file(path: &Path) -> Result<Network, StreamError> {
        let bad = |why: String| {
            StreamError::InvalidConfig(format!("--ca-cert {}: {why}", path.display()))
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: CertificateDer<'static> = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        Ok(Network::with_roots(
            roots,
            Trust::Ca(path.display().to_string()),
        ))
    }

    /// Trusts only the server certificate whose SHA-256 (of its DER) is
    /// `hex` (64 hex digits, `:` separators allowed): a self-signed server,
    /// as `--tls-self-signed` prints it.
    pub fn pinned(hex: &str) -> Result<Network, StreamError> {
        let pin: String = hex
            .chars()
            .filter(|c| *c != ':')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StreamError::InvalidConfig(format!(
                "--pin-sha256 must be 64 hex digits (a SHA-256), not {hex:?}"
            )));
        }
        let provider = provider();
        let verifier = Arc::new(Pinned {
            pin: pin.clone(),
            provider: provider.clone(),
        });
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Network {
            tls: Arc::new(tls),
            trust: Trust::Pin(pin),
            ice_servers: Vec::new(),
        })
    }

    /// These ICE servers too (`--ice-server`), after the server's own.
    #[must_use]
    pub fn with_ice_servers(mut self, servers: Vec<IceServer>) -> Network {
        self.ice_servers = servers;
        self
    }

    /// The ICE servers added to the server's.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.ice_servers
    }

    fn with_roots(roots: RootCertStore, trust: Trust) -> Network {
        let tls = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Network {
            tls: Arc::new(tls),
            trust,
            ice_servers: Vec::new(),
        }
    }

    /// A TCP connection to `target`, through TLS when it is `https://` or
    /// `wss://`, within 10 s.
    pub(crate) async fn connect(
        &self,
        target: &Target,
    ) -> Result<MaybeTlsStream<TcpStream>, NetError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_now(target))
            .await
            .map_err(|_| NetError::Io(format!("{}: no answer within 10 s", target.origin())))?
    }

    async fn connect_now(&self, target: &Target) -> Result<MaybeTlsStream<TcpStream>, NetError> {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| NetError::Io(format!("{}: {e}", target.origin())))?;
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return Ok(MaybeTlsStream::Plain(tcp));
        }
        let name = ServerName::try_from(target.host.clone()).map_err(|_| {
            NetError::Untrusted(format!("{}: not a valid TLS server name", target.origin()))
        })?;
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map(MaybeTlsStream::Rustls)
            .map_err(|e| tls_error(target, &e))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A failed handshake, as one line: a certificate or TLS error is
/// `Untrusted` (retrying will not help), anything else is `Io`.
fn tls_error(target: &Target, e: &io::Error) -> NetError {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(why))) => {
            NetError::Untrusted(format!(
                "{}: certificate not trusted ({})",
                target.origin(),
                why.0
            ))
        }
        Some(rustls::Error::InvalidCertificate(why)) => NetError::Untrusted(format!(
            "{}: certificate not trusted ({why})",
            target.origin()
        )),
        Some(other) => NetError::Untrusted(format!(
            "{}: TLS failed ({other}); is it an https:// server?",
            target.origin()
        )),
        None => NetError::Io(format!("{}: {e}", target.origin())),
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(crate) enum NetError {
    /// The certificate is not trusted, TLS failed, or a clear-text URL was
    /// redirected to `https://`: the session ends for good.
    Untrusted(String),
    /// Anything else (refused, unreachable, timed out): retry.
    Io(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Untrusted(s) | NetError::Io(s) => f.write_str(s),
        }
    }
}

impl From<NetError> for StreamError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Untrusted(s) => StreamError::Untrusted(s),
            NetError::Io(s) => StreamError::Unavailable(s),
        }
    }
}

/// The refusal of a redirect from a clear-text URL to `https://`.
pub(crate) fn refuse_redirect(origin: &str, location: Option<&str>) -> NetError {
    NetError::Untrusted(format!(
        "{origin}: the server redirects to {}; use its https:// URL (credentials are never sent again in clear)",
        location.unwrap_or("https://")
    ))
}

/// Where a URL points: `http://`, `https://`, `ws://` or `wss://`, a host
/// (a name, an IPv4 address or a bracketed IPv6 one), a port, and a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `https://` or `wss://`.
    pub(crate) tls: bool,
    /// Without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// From the first `/`, `"/"` when the URL has none.
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = [
            ("http://", false),
            ("ws://", false),
            ("https://", true),
            ("wss://", true),
        ]
        .iter()
        .find_map(|(p, tls)| url.strip_prefix(p).map(|r| (*tls, r)))
        .ok_or_else(|| format!("the URL must start with http:// or https://: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let bad = || format!("no host or a bad port in {url}");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains('@') {
            return Err(bad());
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if tls => 443,
            None => 80,
        };
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// `host:port` as a `Host` header says it.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://host:port`, for messages.
    pub(crate) fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority()
        )
    }
}

/// Accepts exactly one leaf certificate, by its SHA-256; the handshake's
/// signatures are still verified against it.
#[derive(Debug)]
struct Pinned {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = sha256_hex(end_entity);
        if got == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch(got)))),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct PinMismatch(String);

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "its SHA-256 is {}, not the --pin-sha256 given", self.0)
    }
}

impl std::error::Error for PinMismatch {}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("https://cam.example:8443/whip/3").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "cam.example", 8443, "/whip/3")
        );
        assert_eq!(t.origin(), "https://cam.example:8443");
        let t = Target::parse("wss://[::1]/ws/signaling").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.authority(), "[::1]:443");
        assert_eq!(Target::parse("http://h").unwrap().port, 80);
        assert_eq!(Target::parse("http://h").unwrap().path, "/");
        for bad in [
            "ftp://h/",
            "http://",
            "http://:80/",
            "http://h:x/",
            "http://u:p@h/",
            "h:80",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pins_are_64_hex_digits_with_optional_colons() {
        let hex = "AB".repeat(32);
        assert!(Network::pinned(&hex).is_ok());
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(
            Network::pinned(&colons).unwrap().trust,
            Trust::Pin("ab".repeat(32))
        );
        assert!(Network::pinned("abc").is_err());
        assert!(Network::pinned(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(Network::with_ca_file(&empty).is_err());
        assert!(Network::with_ca_file(&dir.path().join("missing.pem")).is_err());
    }
}
