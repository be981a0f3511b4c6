//! argon2id password hashing in PHC strings.
//!
//! Both calls are CPU-bound for tens of milliseconds: run them on a
//! blocking thread, never on an async worker.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::AuthError;

/// argon2id cost parameters for new hashes. Existing hashes carry their
/// own parameters, so changing these never invalidates a password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// 64 MiB, 2 passes, 1 lane: RFC 9106's memory size with fewer passes,
    /// over three times OWASP's minimum (19 MiB, 2 passes). About 95 ms per
    /// hash on a 2-core x86 box (docs/benchmarks.md); at most one hash per
    /// core runs at once, so the memory is bounded too.
    fn default() -> Self {
        PasswordParams {
            memory_kib: 64 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// The smallest argon2id allows: for tests only.
    pub fn cheap() -> Self {
        PasswordParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Argon2<'static>,
    /// A hash of nothing anyone knows, verified against when the user does
    /// not exist, so a login's timing does not reveal which names exist.
    dummy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", self.argon.params())
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher making new hashes with `params`.
    pub fn new(params: PasswordParams) -> Result<Self, AuthError> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| AuthError::Invalid(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let mut h = PasswordHasher {
            argon,
            dummy: String::new(),
        };
        h.dummy = h.hash(crate::secret::random_token::<16>().expose())?;
        Ok(h)
    }

    /// The PHC string for `password`, with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, AuthError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AuthError::Internal(format!("hashing a password: {e}")))
    }

    /// Whether `password` matches `phc`. A malformed `phc` never matches.
    pub fn verify(&self, phc: &str, password: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(h) => self.argon.verify_password(password.as_bytes(), &h).is_ok(),
            Err(_) => false,
        }
    }

    /// Spends the time of one verification and fails: for unknown users.
    pub fn verify_nobody(&self, password: &str) -> bool {
        let _ = self.verify(&self.dummy, password);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_their_parameters() {
        let cheap = PasswordHasher::new(PasswordParams::cheap()).unwrap();
        let phc = cheap.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(cheap.verify(&phc, "correct horse battery"));
        assert!(!cheap.verify(&phc, "correct horse batterY"));
        assert!(!cheap.verify("not a phc string", "x"));
        assert!(!cheap.verify_nobody("anything"));
        // A hasher with other defaults still verifies old hashes.
        let other = PasswordHasher::new(PasswordParams {
            memory_kib: 16,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        assert!(other.verify(&phc, "correct horse battery"));
        // Same password, different salt.
        assert_ne!(phc, cheap.hash("correct horse battery").unwrap());
    }
}
