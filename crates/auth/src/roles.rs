//! Roles and per-camera permission levels.

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// A user's role.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees only cameras granted to them.
    Viewer,
    /// Creates and runs cameras.
    Operator,
    /// Everything, including users.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may create cameras.
    pub fn can_manage_cameras(self) -> bool {
        self >= Role::Operator
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AuthError::Unknown {
                what: "role",
                value: s.to_string(),
            })
    }
}

/// What a grant lets a user do with one camera. Each level includes the
/// ones below it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Watch live.
    View,
    /// Watch recordings and export clips.
    Playback,
    /// Change settings, trigger recording.
    Control,
}

impl Permission {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Playback => "playback",
            Permission::Control => "control",
        }
    }

    /// Whether holding `self` allows `needed`.
    pub fn includes(self, needed: Permission) -> bool {
        self >= needed
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Permission::View, Permission::Playback, Permission::Control]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| AuthError::Unknown {
                what: "permission",
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reallive_core::ErrorKind;

    #[test]
    fn names_round_trip_and_order() {
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        for p in [Permission::View, Permission::Playback, Permission::Control] {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert!(!Role::Viewer.can_manage_cameras());
        assert!(Role::Admin.can_manage_cameras());
        assert!(Permission::Playback.includes(Permission::View));
        assert!(!Permission::View.includes(Permission::Playback));
        assert_eq!(
            "root".parse::<Role>().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
}
