//! Roles and per-camera permission levels.

use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// One table per enum defines it and gives its stored name, its wire name
/// and what the CLI parses, so SQLite rows, JSON and `--role` cannot drift
/// apart. The order is the order of power: `Ord` follows it. The serde
/// `rename_all` must agree; the tests check that it does.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $name:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
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
        pub enum $ty {
            $($(#[$vmeta])* $variant),+
        }

        impl $ty {
            /// Every value, lowest first.
            const ALL: &[$ty] = &[$($ty::$variant),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = AuthError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| AuthError::Unknown {
                        what: $what,
                        value: s.to_string(),
                    })
            }
        }
    };
}

wire_enum! {
    /// A user's role.
    pub enum Role("role") {
        /// Sees only cameras granted to them.
        Viewer => "viewer",
        /// Creates and runs cameras.
        Operator => "operator",
        /// Everything, including users.
        Admin => "admin",
    }
}

impl Role {
    /// Whether this role may create cameras.
    pub fn can_manage_cameras(self) -> bool {
        self >= Role::Operator
    }
}

wire_enum! {
    /// What a grant lets a user do with one camera. Each level includes the
    /// ones below it.
    pub enum Permission("permission") {
        /// Watch live.
        View => "view",
        /// Watch recordings and export clips.
        Playback => "playback",
        /// Change settings, trigger recording.
        Control => "control",
    }
}

impl Permission {
    /// Whether holding `self` allows `needed`.
    pub fn includes(self, needed: Permission) -> bool {
        self >= needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reallive_core::ErrorKind;

    #[test]
    fn every_role_by_name_and_power() {
        // role, wire name, may create cameras
        let table = [
            (Role::Viewer, "viewer", false),
            (Role::Operator, "operator", true),
            (Role::Admin, "admin", true),
        ];
        assert_eq!(Role::ALL.len(), table.len());
        for (role, name, manages) in table {
            assert_eq!(role.as_str(), name);
            assert_eq!(role.to_string(), name);
            assert_eq!(name.parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{name}\""));
            assert_eq!(role.can_manage_cameras(), manages, "{role}");
        }
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn every_grant_against_every_need() {
        use Permission::{Control, Playback, View};
        let names = [(View, "view"), (Playback, "playback"), (Control, "control")];
        assert_eq!(Permission::ALL.len(), names.len());
        for (p, name) in names {
            assert_eq!(p.as_str(), name);
            assert_eq!(p.to_string(), name);
            assert_eq!(name.parse::<Permission>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{name}\""));
        }
        // held, needed, allowed
        let table = [
            (View, View, true),
            (View, Playback, false),
            (View, Control, false),
            (Playback, View, true),
            (Playback, Playback, true),
            (Playback, Control, false),
            (Control, View, true),
            (Control, Playback, true),
            (Control, Control, true),
        ];
        assert_eq!(table.len(), Permission::ALL.len() * Permission::ALL.len());
        for (held, needed, allowed) in table {
            assert_eq!(held.includes(needed), allowed, "{held} includes {needed}");
        }
    }

    #[test]
    fn unknown_names_are_invalid_arguments() {
        for bad in ["root", "Admin", " admin", ""] {
            let err = bad.parse::<Role>().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert_eq!(err.to_string(), format!("unknown role '{bad}'"));
        }
        let err = "edit".parse::<Permission>().unwrap_err();
        assert_eq!(err.to_string(), "unknown permission 'edit'");
    }
}
