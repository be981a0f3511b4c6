//! TLS for the servers (`docs/design/remote.md`): a certificate pair read
//! from PEM files and read again when they change, or a self-signed one
//! made once and kept; and the acceptor [`serve`](crate::serve) uses.
//!
//! A pair that does not parse, or whose key is not the certificate's, is
//! refused with a log line naming the file, and the pair in use stays:
//! a botched renewal never takes the server down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

/// How often the files are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Why a certificate pair cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the kind expected.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The key is not the certificate's.
    #[error("{key}: this key does not belong to the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// Making a self-signed certificate failed.
    #[error("making a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// A certificate chain and its key, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Reads and checks the pair in `files`.
pub fn load(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let pem_err = |path: &Path, what: String| TlsError::Pem {
        path: path.to_owned(),
        what,
    };
    let cert_pem = read(&files.cert)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&files.cert, format!("not a PEM certificate chain ({e})")))?;
    if certs.is_empty() {
        return Err(pem_err(&files.cert, "no CERTIFICATE in it".into()));
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| pem_err(&files.key, format!("no private key in it ({e})")))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| pem_err(&files.key, format!("an unusable key ({e})")))?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        // The key's public half cannot be compared (an unusual algorithm):
        // the handshake will tell.
        Err(_) => Ok(certified),
    }
}

/// The SHA-256 of `cert` (DER), as `--pin-sha256` takes it: lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a file looked like when last read.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The certificate in use, read again from its files when they change.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: Mutex<(Stamp, Stamp)>,
}

impl ReloadingCert {
    /// Reads `files`; an error here stops the server from starting.
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = load(&files)?;
        let stamps = (stamp(&files.cert), stamp(&files.key));
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(Arc::new(key)),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The leaf certificate in use.
    pub fn leaf(&self) -> CertificateDer<'static> {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        current.cert[0].clone()
    }

    /// Reads the files again if they changed since the last look. Returns
    /// whether a new pair is in use; a broken one is logged and skipped
    /// (and tried again when the files change again).
    pub fn reload_if_changed(&self) -> bool {
        let now = (stamp(&self.files.cert), stamp(&self.files.key));
        {
            let mut seen = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&self.files) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    sha256 = %fingerprint(&self.leaf()),
                    "TLS certificate reloaded"
                );
                true
            }
            Err(e) => {
                tracing::error!("TLS certificate not reloaded, the old one stays in use: {e}");
                false
            }
        }
    }

    /// Looks at the files every `every` until `stop`.
    pub fn watch(self: &Arc<Self>, every: Duration, stop: CancellationToken) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let m = me.clone();
                // File reads off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || m.reload_if_changed()).await;
            }
        });
    }

    /// The acceptor that serves this certificate.
    pub fn acceptor(self: &Arc<Self>) -> tokio_rustls::TlsAcceptor {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| rustls::ServerConfig::builder())
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// How long a self-signed certificate is valid (the most browsers accept).
const SELF_SIGNED_DAYS: u64 = 825;

/// The self-signed pair in `dir` (`self-signed.crt` and `.key`, the key
/// 0600, and `self-signed.names`: its expiry and names) for `names` (host
/// names and IP addresses): kept when it is there, valid for another day,
/// and names them all; made otherwise. Returns the files and whether they
/// were made now.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(TlsFiles, bool), TlsError> {
    let files = TlsFiles {
        cert: dir.join("self-signed.crt"),
        key: dir.join("self-signed.key"),
    };
    let about = dir.join("self-signed.names");
    if load(&files).is_ok() && std::fs::read_to_string(&about).is_ok_and(|t| covers(&t, names)) {
        return Ok((files, false));
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "RealLive (self-signed)");
    let now = SystemTime::now();
    let not_after = now + Duration::from_secs(SELF_SIGNED_DAYS * 86_400);
    params.not_before = now.into();
    params.not_after = not_after.into();
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Read { path, source }
    };
    reallive_core::fs::create_private_dir(dir).map_err(io(dir))?;
    for old in [&files.key, &files.cert, &about] {
        match std::fs::remove_file(old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(old)(e)),
            _ => {}
        }
    }
    reallive_core::fs::write_secret_file(&files.key, key.serialize_pem().trim_end())
        .map_err(io(&files.key))?;
    std::fs::write(&files.cert, cert.pem()).map_err(io(&files.cert))?;
    let expiry = not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    std::fs::write(&about, format!("{expiry}\n{}\n", names.join("\n"))).map_err(io(&about))?;
    Ok((files, true))
}

/// Whether the `self-signed.names` text says the certificate is valid a
/// day from now and names every one of `names`.
fn covers(about: &str, names: &[String]) -> bool {
    let mut lines = about.lines();
    let Some(expiry) = lines.next().and_then(|l| l.trim().parse::<u64>().ok()) else {
        return false;
    };
    let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
    if SystemTime::UNIX_EPOCH + Duration::from_secs(expiry) < tomorrow {
        return false;
    }
    let have: Vec<&str> = lines.map(str::trim).collect();
    names
        .iter()
        .all(|n| have.iter().any(|h| h.eq_ignore_ascii_case(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_pair_is_made_once_kept_and_remade_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let (files, made) = self_signed(&tls, &names).unwrap();
        assert!(made);
        let first = load(&files).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (_, again) = self_signed(&tls, &names).unwrap();
        assert!(!again, "kept");
        assert_eq!(load(&files).unwrap().cert[0], first.cert[0]);
        let more = vec!["localhost".to_owned(), "cam.example.org".to_owned()];
        let (_, remade) = self_signed(&tls, &more).unwrap();
        assert!(remade, "a new name makes a new certificate");
        assert_ne!(load(&files).unwrap().cert[0], first.cert[0]);
    }

    #[test]
    fn a_broken_or_mismatched_pair_is_refused_and_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = self_signed(&dir.path().join("a"), &["localhost".to_owned()]).unwrap();
        let (b, _) = self_signed(&dir.path().join("b"), &["localhost".to_owned()]).unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::copy(&a.cert, &files.cert).unwrap();
        std::fs::copy(&a.key, &files.key).unwrap();
        let cert = ReloadingCert::open(files.clone()).unwrap();
        let leaf_a = cert.leaf();
        assert!(!cert.reload_if_changed(), "nothing changed");

        // The renewal half done: b's certificate with a's key.
        std::fs::copy(&b.cert, &files.cert).unwrap();
        assert!(matches!(load(&files), Err(TlsError::Mismatch { .. })));
        assert!(!cert.reload_if_changed());
        assert_eq!(cert.leaf(), leaf_a, "the old pair stays");
        // Garbage in the key file.
        std::fs::write(&files.key, "not a key").unwrap();
        assert!(!cert.reload_if_changed());
        assert_eq!(cert.leaf(), leaf_a);
        // The renewal done.
        std::fs::copy(&b.key, &files.key).unwrap();
        assert!(cert.reload_if_changed());
        assert_ne!(cert.leaf(), leaf_a);
        assert_eq!(fingerprint(&cert.leaf()).len(), 64);
    }
}
