//! [`CameraId`]: the one name of a camera across the accounts, the NVR and
//! the store.

use std::fmt;

/// A camera's id in the accounts database. Ids are never reused, so an id
/// names the same camera, and its recordings, for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CameraId(pub i64);

impl CameraId {
    /// The camera's name in the store (its recordings directory and index
    /// rows): `camera-<id>`, stable when the camera is renamed.
    pub fn store_key(self) -> String {
        format!("camera-{}", self.0)
    }

    /// The id a [`store_key`](Self::store_key) names, if it is one.
    pub fn from_store_key(key: &str) -> Option<CameraId> {
        let digits = key.strip_prefix("camera-")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(CameraId)
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<i64> for CameraId {
    fn from(id: i64) -> Self {
        CameraId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_round_trip() {
        assert_eq!(CameraId(7).store_key(), "camera-7");
        assert_eq!(CameraId::from_store_key("camera-7"), Some(CameraId(7)));
        for bad in ["camera-", "camera-x", "cam-7", "camera--1", "camera-7 "] {
            assert_eq!(CameraId::from_store_key(bad), None, "{bad}");
        }
    }
}
