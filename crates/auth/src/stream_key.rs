//! Stream keys: what a publisher proves it may push a camera with.
//!
//! A key is 256 random bits, shown once. Only its SHA-256 is stored: the
//! key has full entropy, so a slow KDF would add nothing but latency to
//! every publish.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Secret;

/// Every stream key starts with this, so a leaked one is recognisable
/// (secret scanners, log filters).
pub const STREAM_KEY_PREFIX: &str = "rlk_";

/// A new key, and the hash to store for it.
pub fn generate_stream_key() -> (Secret, [u8; 32]) {
    let key = format!(
        "{STREAM_KEY_PREFIX}{}",
        crate::secret::random_token::<32>().expose()
    );
    let hash = stream_key_hash(&key);
    (Secret::new(key), hash)
}

/// The stored form of `key`.
pub fn stream_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `key` hashes to `stored`, compared in constant time.
pub fn stream_key_matches(key: &str, stored: &[u8]) -> bool {
    stream_key_hash(key).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_match_only_themselves() {
        let (k1, h1) = generate_stream_key();
        let (k2, h2) = generate_stream_key();
        assert!(k1.expose().starts_with(STREAM_KEY_PREFIX));
        assert_eq!(k1.expose().len(), 4 + 43);
        assert_ne!(k1, k2);
        assert!(stream_key_matches(k1.expose(), &h1));
        assert!(!stream_key_matches(k1.expose(), &h2));
        assert!(!stream_key_matches("", &h1));
        assert!(!stream_key_matches(k1.expose(), &h1[..31]));
    }
}
