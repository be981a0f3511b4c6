//! Deciding what footage to delete, without I/O.
//!
//! See `docs/design/recording.md`, "Retention". The planner is given the
//! index as it is and returns recordings to delete, oldest first; the store
//! carries the plan out through the `garbage` table.

use std::collections::HashMap;

use crate::StoreError;

#[cfg(feature = "cli")]
mod flags;
#[cfg(feature = "cli")]
pub use flags::RetentionFlags;

/// A size such as `200GiB`, `500MB`, `1.5 TiB` or `1048576` (bytes).
/// Binary (KiB, MiB, GiB, TiB) and decimal (kB, MB, GB, TB) units. A bad
/// size is [`StoreError::InvalidInput`], whose message says what is wrong.
pub fn parse_bytes(s: &str) -> Result<u64, StoreError> {
    let bad = |message: String| StoreError::InvalidInput(message);
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| bad(format!("'{s}' is not a size (like 200GiB or 500MB)")))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(bad(format!(
                "'{s}': unknown unit (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)"
            )));
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad(format!("'{s}' is out of range")));
    }
    Ok(v.round() as u64)
}

/// Limits for one camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CameraRetention {
    /// Delete recordings that ended longer ago than this.
    pub max_age_ns: Option<i64>,
    /// Keep the camera's total under this.
    pub max_bytes: Option<u64>,
}

/// Limits for the whole store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RetentionPolicy {
    /// Applies to cameras not in `cameras`.
    pub default: CameraRetention,
    /// Per-camera limits.
    pub cameras: HashMap<String, CameraRetention>,
    /// Keep at least this many bytes free on the recordings file system.
    pub min_free_bytes: u64,
    /// Keep at least this share of the file system free (0–100).
    pub min_free_percent: f64,
}

impl RetentionPolicy {
    fn for_camera(&self, camera: &str) -> CameraRetention {
        self.cameras.get(camera).copied().unwrap_or(self.default)
    }

    /// The free-space floor for a file system of `total_bytes`.
    pub fn free_floor(&self, total_bytes: u64) -> u64 {
        let pct = (total_bytes as f64 * self.min_free_percent.clamp(0.0, 100.0) / 100.0) as u64;
        self.min_free_bytes.max(pct)
    }
}

/// What the planner needs to know about a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Index id.
    pub id: i64,
    /// The store's name of the camera.
    pub camera: String,
    /// Wall-clock start.
    pub start_utc_ns: i64,
    /// Wall-clock end.
    pub end_utc_ns: i64,
    /// Bytes on disk.
    pub bytes: u64,
    /// Still being written: never deleted.
    pub writing: bool,
}

/// A range kept from retention ([`Store::lock`](crate::Store::lock)): any
/// recording overlapping it is never deleted, not even to free disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockedRange {
    /// The store's name of the camera.
    pub camera: String,
    /// Start, inclusive.
    pub start_utc_ns: i64,
    /// End, exclusive.
    pub end_utc_ns: i64,
}

/// The disk as seen now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes available to the recorder.
    pub free_bytes: u64,
    /// File-system size.
    pub total_bytes: u64,
}

/// Why a recording is to be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Older than the camera's `max_age`.
    Age,
    /// The camera is over `max_bytes`.
    CameraBytes,
    /// The disk is under its free-space floor.
    FreeSpace,
}

/// Plans deletions. `headroom_bytes` is space wanted beyond the floor (the
/// expected size of the next file). Returns (id, reason), oldest first
/// within each rule; a recording appears at most once.
pub fn plan(
    recordings: &[Candidate],
    locks: &[LockedRange],
    policy: &RetentionPolicy,
    now_utc_ns: i64,
    disk: DiskSpace,
    headroom_bytes: u64,
) -> Vec<(i64, Reason)> {
    let locked = |c: &Candidate| {
        locks.iter().any(|l| {
            l.camera == c.camera && c.start_utc_ns < l.end_utc_ns && c.end_utc_ns > l.start_utc_ns
        })
    };
    let mut deletable: Vec<&Candidate> = recordings
        .iter()
        .filter(|c| !c.writing && !locked(c))
        .collect();
    deletable.sort_by_key(|c| (c.start_utc_ns, c.id));
    let mut chosen: Vec<(i64, Reason)> = Vec::new();
    let mut gone = std::collections::HashSet::new();

    // 1. Age.
    for c in &deletable {
        if let Some(max_age) = policy.for_camera(&c.camera).max_age_ns
            && c.end_utc_ns < now_utc_ns.saturating_sub(max_age)
            && gone.insert(c.id)
        {
            chosen.push((c.id, Reason::Age));
        }
    }
    // 2. Per-camera bytes (all of a camera's footage counts, locked included).
    let mut totals: HashMap<&str, u64> = HashMap::new();
    for c in recordings {
        if !gone.contains(&c.id) {
            *totals.entry(&c.camera).or_default() += c.bytes;
        }
    }
    for c in &deletable {
        let Some(max) = policy.for_camera(&c.camera).max_bytes else {
            continue;
        };
        let total = totals.entry(&c.camera).or_default();
        if *total > max && gone.insert(c.id) {
            *total -= c.bytes;
            chosen.push((c.id, Reason::CameraBytes));
        }
    }
    // 3. Free space, globally oldest first.
    let want = policy
        .free_floor(disk.total_bytes)
        .saturating_add(headroom_bytes);
    let mut free = disk.free_bytes
        + chosen
            .iter()
            .filter_map(|(id, _)| recordings.iter().find(|c| c.id == *id))
            .map(|c| c.bytes)
            .sum::<u64>();
    for c in &deletable {
        if free >= want {
            break;
        }
        if gone.insert(c.id) {
            free += c.bytes;
            chosen.push((c.id, Reason::FreeSpace));
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (s, v) in [
            ("200GiB", 200u64 << 30),
            ("500MB", 500_000_000),
            ("1.5 TiB", 3u64 << 39),
            ("1048576", 1 << 20),
            ("10 kb", 10_000),
        ] {
            assert_eq!(parse_bytes(s).ok(), Some(v), "{s}");
        }
        for (bad, says) in [
            ("", "is not a size"),
            ("GiB", "is not a size"),
            ("12 parsecs", "unknown unit"),
            ("-1GB", "is not a size"),
            ("1e400GB", "unknown unit"),
        ] {
            let e = parse_bytes(bad).unwrap_err();
            assert_eq!(e.kind(), reallive_core::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    const MIN: i64 = 60 * 1_000_000_000;

    fn rec(id: i64, camera: &str, minute: i64, bytes: u64) -> Candidate {
        Candidate {
            id,
            camera: camera.into(),
            start_utc_ns: minute * MIN,
            end_utc_ns: (minute + 1) * MIN,
            bytes,
            writing: false,
        }
    }

    fn disk(free: u64) -> DiskSpace {
        DiskSpace {
            free_bytes: free,
            total_bytes: 1000,
        }
    }

    #[test]
    fn table() {
        let recs = vec![
            rec(1, "a", 0, 100),
            rec(2, "a", 1, 100),
            rec(3, "b", 2, 100),
            rec(4, "a", 3, 100),
            Candidate {
                writing: true,
                ..rec(5, "a", 4, 100)
            },
        ];
        let lock_2 = vec![LockedRange {
            camera: "a".into(),
            start_utc_ns: MIN + 1,
            end_utc_ns: MIN + 2,
        }];
        let age = |m| RetentionPolicy {
            default: CameraRetention {
                max_age_ns: Some(m * MIN),
                max_bytes: None,
            },
            ..Default::default()
        };
        let bytes = |b| RetentionPolicy {
            default: CameraRetention {
                max_age_ns: None,
                max_bytes: Some(b),
            },
            ..Default::default()
        };
        let floor = |b| RetentionPolicy {
            min_free_bytes: b,
            ..Default::default()
        };
        use Reason::*;
        // (policy, locks, now minute, free bytes, headroom, expected)
        type Case = (
            RetentionPolicy,
            Vec<LockedRange>,
            i64,
            u64,
            u64,
            Vec<(i64, Reason)>,
        );
        let cases: Vec<Case> = vec![
            (age(3), vec![], 5, 900, 0, vec![(1, Age)]),
            (age(3), vec![], 6, 900, 0, vec![(1, Age), (2, Age)]),
            (age(3), lock_2.clone(), 6, 900, 0, vec![(1, Age)]),
            (
                age(0),
                vec![],
                100,
                900,
                0,
                vec![(1, Age), (2, Age), (3, Age), (4, Age)],
            ),
            (
                bytes(250),
                vec![],
                5,
                900,
                0,
                vec![(1, CameraBytes), (2, CameraBytes)],
            ),
            (
                bytes(250),
                lock_2.clone(),
                5,
                900,
                0,
                vec![(1, CameraBytes), (4, CameraBytes)],
            ),
            (floor(150), vec![], 5, 100, 0, vec![(1, FreeSpace)]),
            (
                floor(150),
                vec![],
                5,
                100,
                100,
                vec![(1, FreeSpace), (2, FreeSpace)],
            ),
            (floor(150), vec![], 5, 500, 0, vec![]),
            (
                floor(10_000),
                vec![],
                5,
                0,
                0,
                vec![
                    (1, FreeSpace),
                    (2, FreeSpace),
                    (3, FreeSpace),
                    (4, FreeSpace),
                ],
            ),
        ];
        for (i, (policy, locks, now, free, headroom, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                plan(&recs, &locks, &policy, now * MIN, disk(free), headroom),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn percent_floor() {
        let p = RetentionPolicy {
            min_free_bytes: 10,
            min_free_percent: 5.0,
            ..Default::default()
        };
        assert_eq!(p.free_floor(1000), 50);
        assert_eq!(p.free_floor(100), 10);
    }
}
