//! Input rules for what users type.

use crate::AuthError;

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted: bounds the work one login can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// `^[A-Za-z0-9_.-]{3,32}$`.
pub fn username(name: &str) -> Result<(), AuthError> {
    let ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "username must be 3-32 characters of A-Z a-z 0-9 _ . -".into(),
        ))
    }
}

/// A plausible address: one `@`, a local part of 1-64 characters, a domain
/// of dot-separated labels with at least one dot, no spaces or controls,
/// at most 254 characters. Deliverability is not our business.
pub fn email(addr: &str) -> Result<(), AuthError> {
    let bad = || AuthError::Invalid("email is not a valid address".into());
    if addr.len() > 254 || addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = addr.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad());
    }
    Ok(())
}

/// At least [`MIN_PASSWORD_CHARS`] characters, at most
/// [`MAX_PASSWORD_BYTES`] bytes.
pub fn password(pw: &str) -> Result<(), AuthError> {
    if pw.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::Invalid(format!(
            "password must have at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if pw.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::Invalid(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// 1 to 64 characters, no control characters. Anything else is stored and
/// returned exactly as sent.
pub fn camera_name(name: &str) -> Result<(), AuthError> {
    let n = name.chars().count();
    if (1..=64).contains(&n) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "camera name must be 1-64 characters with no control characters".into(),
        ))
    }
}

/// Free text such as a resolution: at most 32 characters, no controls.
pub fn resolution(r: &str) -> Result<(), AuthError> {
    if r.chars().count() <= 32 && !r.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "resolution must be at most 32 characters, like 1280x720".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for ok in ["abc", "a.b-c_d", &"x".repeat(32)] {
            assert!(username(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", &"x".repeat(33), "a b", "名前です", "ab@c", "", "a/b"] {
            assert!(username(bad).is_err(), "{bad}");
        }
        for ok in ["a@b.co", "first.last+tag@mail.example.org", "ü@bücher.de"] {
            assert!(email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.de", "a@-b.co", "a@b..co", "a@b.co\n",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(password("0123456789").is_ok());
        assert!(password("ünïcødé!!!").is_ok());
        assert!(password("012345678").is_err());
        assert!(password(&"x".repeat(1025)).is_err());
        for ok in [
            "a",
            "'; DROP TABLE users; --",
            "<script>alert(1)</script>",
            &"é".repeat(64),
        ] {
            assert!(camera_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", &"x".repeat(65), "a\nb", "\u{0}"] {
            assert!(camera_name(bad).is_err(), "{bad:?}");
        }
    }
}
