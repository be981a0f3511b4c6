//! Session tokens: JWT (RFC 7519) signed with HS256, through the
//! `jsonwebtoken` crate.
//!
//! Only tokens this server issued are accepted: validation pins HS256 (so
//! `none`, or RS256 with the secret as a public key, cannot be smuggled
//! in) and requires `exp`, `iss` = [`ISSUER`] and `aud` = [`AUDIENCE`].
//! Expiry is checked against the caller's clock, so tests script time.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::{AuthError, Role};

/// Longest token we look at; real ones are about 250 bytes.
const MAX_TOKEN_BYTES: usize = 4096;

/// Shortest secret accepted: HS256 wants at least its output size.
pub const MIN_SECRET_BYTES: usize = 32;

/// The `iss` claim of every token: who signed it.
pub const ISSUER: &str = "reallive";

/// The `aud` claim of every token: what it is good for (this API).
pub const AUDIENCE: &str = "reallive-api";

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
    /// This token's own id (128 random bits, base64url): what signing out
    /// of one session puts in the [`DenyList`](crate::DenyList). Tokens
    /// issued before it existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl Claims {
    /// A fresh token id for [`Claims::jti`]: 128 random bits.
    pub fn new_jti() -> String {
        crate::random_token::<16>().expose().to_owned()
    }

    /// What identifies this token in the deny-list: its `jti`, or for a
    /// token without one, the token itself (`token` must be the string
    /// these claims were read from). Hashed, so the list holds no token.
    pub fn token_id(&self, token: &str) -> crate::TokenId {
        use sha2::Digest as _;
        let digest = match &self.jti {
            Some(jti) => sha2::Sha256::new()
                .chain_update(b"jti:")
                .chain_update(jti.as_bytes())
                .finalize(),
            None => sha2::Sha256::new()
                .chain_update(b"token:")
                .chain_update(token.as_bytes())
                .finalize(),
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        crate::TokenId(id)
    }
}

/// [`Claims`] as they travel, with the issuer and audience.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    iss: String,
    aud: String,
    #[serde(flatten)]
    claims: Claims,
}

/// Why a token was refused. Deliberately coarse: a client learns only
/// that it must sign in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT, a foreign algorithm, a bad payload, or another issuer or
    /// audience.
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
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
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
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        // `verify` checks `exp` against the caller's clock, exactly.
        validation.validate_exp = false;
        validation.leeway = 0;
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// A signed token carrying `claims`.
    pub fn issue(&self, claims: &Claims) -> String {
        let wire = Wire {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            claims: claims.clone(),
        };
        // HS256 over a struct of integers and strings cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &wire, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims of `token` if it is ours, intact and not expired at
    /// `now_unix`. Revocation (token version, deleted user) is the
    /// caller's check, against the accounts.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let data =
            jsonwebtoken::decode::<Wire>(token, &self.decoding, &self.validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    _ => TokenError::Malformed,
                }
            })?;
        let claims = data.claims.claims;
        if now_unix >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: 7,
            role: Role::Operator,
            ver: 2,
            iat: 1_000,
            exp: 2_000,
            jti: None,
        }
    }

    const SECRET: [u8; 32] = [7u8; 32];

    #[test]
    fn round_trip_and_refusals() {
        let keys = TokenKeys::new(&SECRET).unwrap();
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

        // alg=none with the same payload, with and without a signature.
        let payload = t.split('.').nth(1).unwrap();
        let sig = t.split('.').nth(2).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        for forged in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.{sig}"),
        ] {
            assert_eq!(keys.verify(&forged, 1_500), Err(TokenError::Malformed));
        }
        for junk in ["", ".", "..", "a.b.c", &"x".repeat(5000)] {
            assert!(keys.verify(junk, 1_500).is_err());
        }
        // An oversize token is not even parsed.
        let oversize = format!("{t}{}", "A".repeat(MAX_TOKEN_BYTES));
        assert_eq!(keys.verify(&oversize, 1_500), Err(TokenError::Malformed));
        assert!(TokenKeys::new(&[1u8; 31]).is_err());
    }

    /// Signed with our secret, but not a token we would issue: another
    /// algorithm, issuer or audience, or a claim missing.
    #[test]
    fn only_our_algorithm_issuer_and_audience_verify() {
        let keys = TokenKeys::new(&SECRET).unwrap();
        let sign = |alg: Algorithm, body: serde_json::Value| {
            jsonwebtoken::encode(&Header::new(alg), &body, &EncodingKey::from_secret(&SECRET))
                .unwrap()
        };
        let body = |iss: Option<&str>, aud: Option<&str>| {
            let mut v = serde_json::json!({"sub": 7, "role": "operator", "ver": 2, "iat": 1000, "exp": 2000});
            if let Some(iss) = iss {
                v["iss"] = iss.into();
            }
            if let Some(aud) = aud {
                v["aud"] = aud.into();
            }
            v
        };
        // The control: our own shape verifies.
        assert_eq!(
            keys.verify(
                &sign(Algorithm::HS256, body(Some(ISSUER), Some(AUDIENCE))),
                1_500
            ),
            Ok(claims())
        );
        for (why, token) in [
            (
                "HS512",
                sign(Algorithm::HS512, body(Some(ISSUER), Some(AUDIENCE))),
            ),
            (
                "HS384",
                sign(Algorithm::HS384, body(Some(ISSUER), Some(AUDIENCE))),
            ),
            (
                "other issuer",
                sign(Algorithm::HS256, body(Some("evil"), Some(AUDIENCE))),
            ),
            (
                "other audience",
                sign(Algorithm::HS256, body(Some(ISSUER), Some("other-app"))),
            ),
            (
                "no issuer",
                sign(Algorithm::HS256, body(None, Some(AUDIENCE))),
            ),
            (
                "no audience",
                sign(Algorithm::HS256, body(Some(ISSUER), None)),
            ),
        ] {
            assert_eq!(
                keys.verify(&token, 1_500),
                Err(TokenError::Malformed),
                "{why}"
            );
        }
        let mut no_exp = body(Some(ISSUER), Some(AUDIENCE));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(
            keys.verify(&sign(Algorithm::HS256, no_exp), 1_500).is_err(),
            "no exp"
        );
    }

    /// A token from another JWT library verifies, and ours is byte for byte
    /// what it signs: standard HS256.
    #[test]
    fn interoperates_with_standard_hs256() {
        // Built independently with Python's hmac, hashlib and base64 over
        // {"typ":"JWT","alg":"HS256"} and {"iss":"reallive","aud":"reallive-api",
        // "sub":1,"role":"admin","ver":0,"iat":0,"exp":4102444800} with the
        // secret "0123456789abcdef0123456789abcdef" (as PyJWT would sign it).
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let claims = Claims {
            sub: 1,
            role: Role::Admin,
            ver: 0,
            iat: 0,
            exp: 4_102_444_800,
            jti: None,
        };
        assert_eq!(keys.verify(PYJWT, 1_500), Ok(claims.clone()));
        assert_eq!(keys.issue(&claims), PYJWT);
    }

    #[test]
    fn jti_round_trips_and_identifies_the_token() {
        let keys = TokenKeys::new(&SECRET).unwrap();
        let a = Claims {
            jti: Some(Claims::new_jti()),
            ..claims()
        };
        let b = Claims {
            jti: Some(Claims::new_jti()),
            ..claims()
        };
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.jti.as_ref().unwrap().len(), 22, "128 bits in base64url");
        let (ta, tb) = (keys.issue(&a), keys.issue(&b));
        assert_eq!(keys.verify(&ta, 1_500), Ok(a.clone()));
        assert_ne!(a.token_id(&ta), b.token_id(&tb));
        // Without a jti, two tokens differ by the token itself.
        let old = claims();
        let t1 = keys.issue(&old);
        let t2 = keys.issue(&Claims {
            iat: 1_001,
            ..old.clone()
        });
        assert_ne!(old.token_id(&t1), old.token_id(&t2));
    }

    const PYJWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJyZWFsbGl2ZSIsImF1ZCI6InJlYWxsaXZlLWFwaSIsInN1YiI6MSwicm9sZSI6ImFkbWluIiwidmVyIjowLCJpYXQiOjAsImV4cCI6NDEwMjQ0NDgwMH0.0y-9eJrts801V0js6DI5KU-PI1zk8u3bVR9z7gScjqg";
}
