//! Session tokens: JWT with HS256 and a fixed header.
//!
//! Only tokens this server issued are accepted: the header must be exactly
//! the one [`TokenKeys::issue`] writes, so no other algorithm (`none`,
//! RS256 with the secret as a public key) can be smuggled in.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{AuthError, Role};

type HmacSha256 = Hmac<Sha256>;

/// `{"alg":"HS256","typ":"JWT"}`, base64url.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Longest token we look at; real ones are about 200 bytes.
const MAX_TOKEN_BYTES: usize = 4096;

/// Shortest secret accepted: HS256 wants at least its output size.
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: i64,
    /// The user's role when the token was issued (informational: requests
    /// are authorised against the current role).
    pub role: Role,
    /// The user's token version when issued; bumping it revokes the token.
    pub ver: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

/// Why a token was refused. Deliberately coarse: a client learns only
/// that it must sign in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts, a foreign header, or a bad payload.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not verify: tampered, or signed with another secret.
    #[error("invalid token signature")]
    BadSignature,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// The user is gone, or changed their password since.
    #[error("token revoked")]
    Revoked,
}

/// The HS256 key. `Debug` never shows it.
#[derive(Clone)]
pub struct TokenKeys {
    mac: HmacSha256,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(***)")
    }
}

impl TokenKeys {
    /// Keys from `secret`, which must be at least [`MIN_SECRET_BYTES`] long.
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthError::Invalid(format!(
                "the JWT secret must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        let mac = HmacSha256::new_from_slice(secret)
            .map_err(|e| AuthError::Internal(format!("HMAC key: {e}")))?;
        Ok(TokenKeys { mac })
    }

    /// A signed token carrying `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        // Serialising a struct of integers and a role cannot fail.
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(256);
        token.push_str(HEADER_B64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let sig = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut token);
        token
    }

    /// The claims of `token` if it is ours, intact and not expired at
    /// `now_unix`. Revocation (token version, deleted user) is the
    /// caller's check, against the accounts.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let (signed, sig_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload_b64) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if header != HEADER_B64 {
            return Err(TokenError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        // Constant time.
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if now_unix >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: 7,
            role: Role::Operator,
            ver: 2,
            iat: 1_000,
            exp: 2_000,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let keys = TokenKeys::new(&[7u8; 32]).unwrap();
        let t = keys.issue(&claims());
        assert_eq!(keys.verify(&t, 1_500), Ok(claims()));
        assert_eq!(keys.verify(&t, 2_000), Err(TokenError::Expired));

        let other = TokenKeys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&t, 1_500), Err(TokenError::BadSignature));

        // Every single-character change to the token is refused.
        let bytes = t.as_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(b).unwrap();
            if tampered == t {
                continue;
            }
            assert!(keys.verify(&tampered, 1_500).is_err(), "byte {i}");
        }

        // alg=none with the same payload.
        let payload = t.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(
            keys.verify(&format!("{none_header}.{payload}."), 1_500),
            Err(TokenError::Malformed)
        );
        for junk in ["", ".", "..", "a.b.c", &"x".repeat(5000)] {
            assert!(keys.verify(junk, 1_500).is_err());
        }
        assert!(TokenKeys::new(&[1u8; 31]).is_err());
    }

    /// A token from another JWT library verifies, so ours is standard HS256.
    #[test]
    fn interoperates_with_standard_hs256() {
        // Built independently with Python's hmac, hashlib and base64 over
        // {"sub":1,"role":"admin","ver":0,"iat":0,"exp":4102444800} and the
        // secret "0123456789abcdef0123456789abcdef" (as PyJWT would sign it).
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let ours = keys.issue(&Claims {
            sub: 1,
            role: Role::Admin,
            ver: 0,
            iat: 0,
            exp: 4_102_444_800,
        });
        assert_eq!(ours, PYJWT);
    }

    const PYJWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOjEsInJvbGUiOiJhZG1pbiIsInZlciI6MCwiaWF0IjowLCJleHAiOjQxMDI0NDQ4MDB9.9CgqM8dOEVxpNwKQIn2xk2NfjodUL9apNMsjufMWj5A";
}
