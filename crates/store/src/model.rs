//! The store's vocabulary: recordings, time ranges, camera names and file names.

use std::path::PathBuf;

use reallive_core::Codec;
pub use reallive_core::time::rfc3339_ms;
use reallive_core::time::{civil, unix_from_civil};

use crate::StoreError;
use crate::fragment::FragmentEntry;

/// A half-open wall-clock interval `[start, end)`, UTC nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeRange {
    /// Inclusive start.
    pub start_utc_ns: i64,
    /// Exclusive end.
    pub end_utc_ns: i64,
}

impl TimeRange {
    /// `[start, end)`; refuses an empty or inverted range.
    pub fn new(start_utc_ns: i64, end_utc_ns: i64) -> Result<Self, StoreError> {
        if end_utc_ns <= start_utc_ns {
            return Err(StoreError::InvalidInput(format!(
                "time range ends ({end_utc_ns}) before it starts ({start_utc_ns})"
            )));
        }
        Ok(TimeRange {
            start_utc_ns,
            end_utc_ns,
        })
    }

    /// Everything.
    pub fn all() -> Self {
        TimeRange {
            start_utc_ns: i64::MIN,
            end_utc_ns: i64::MAX,
        }
    }

    /// Whether `[start, end)` overlaps this range.
    pub fn overlaps(&self, start_utc_ns: i64, end_utc_ns: i64) -> bool {
        start_utc_ns < self.end_utc_ns && end_utc_ns > self.start_utc_ns
    }
}

/// Whether a recording file is still being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingState {
    /// Open: fragments are still being appended.
    Writing,
    /// Closed, or repaired by recovery.
    Complete,
}

impl RecordingState {
    pub(crate) fn parse(s: &str) -> Self {
        if s == "writing" {
            RecordingState::Writing
        } else {
            RecordingState::Complete
        }
    }
}

/// One recording file, as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Index id.
    pub id: i64,
    /// The store's name of the camera: its directory under the recordings
    /// root ([`validate_camera`]).
    pub camera: String,
    /// Path relative to the recordings root.
    pub path: String,
    /// Wall clock of its first frame.
    pub start_utc_ns: i64,
    /// Wall clock just past its last committed frame.
    pub end_utc_ns: i64,
    /// Committed file size.
    pub bytes: u64,
    /// Size of `ftyp` + `moov`.
    pub init_bytes: u64,
    /// Video codec.
    pub codec: Codec,
    /// Its tracks as an HLS `CODECS` value (RFC 6381), from its init
    /// segment: the video's, then the audio's if it has one
    /// (`avc1.64001f,opus`). `None` for a file indexed before the index
    /// kept it (those have no audio).
    pub codecs: Option<String>,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Writing or complete.
    pub state: RecordingState,
    /// Camera-wide number of its first segment ([`crate::hls::segments`]):
    /// the live playlist's media sequence. Files indexed before segments
    /// grouped fragments counted fragments; numbers only ever grow.
    pub first_seq: i64,
    /// Its committed fragments.
    pub fragments: Vec<FragmentEntry>,
}

impl Recording {
    /// Wall clock of the start of fragment `f`, one of this recording's.
    pub fn fragment_start_utc_ns(&self, f: &FragmentEntry) -> i64 {
        self.start_utc_ns + ticks_to_ns(f.decode_time_90k as i64)
    }
}

pub(crate) fn ticks_to_ns(ticks: i64) -> i64 {
    (i128::from(ticks) * 1_000_000_000 / 90_000) as i64
}

pub(crate) fn codec_name(c: Codec) -> &'static str {
    c.name()
}

pub(crate) fn parse_codec(s: &str) -> Codec {
    if s == "h265" {
        Codec::H265
    } else {
        Codec::H264
    }
}

/// Checks a camera name can be a directory under the recordings root:
/// 1–64 of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_camera(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "camera name '{}' must be 1-64 characters of A-Z a-z 0-9 _ . - and not start with '.'",
            name.escape_default()
        )))
    }
}

/// `<camera>/<YYYY>/<MM>/<DD>/<YYYYMMDD>T<HHMMSS>.<mmm>Z` plus `suffix`, `.mp4`.
pub(crate) fn file_path(camera: &str, start_utc_ns: i64, suffix: u32) -> PathBuf {
    let secs = start_utc_ns.div_euclid(1_000_000_000);
    let ms = start_utc_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (y, mo, d, h, mi, s) = civil(secs);
    let dup = if suffix == 0 {
        String::new()
    } else {
        format!("-{suffix}")
    };
    PathBuf::from(camera)
        .join(format!("{y:04}"))
        .join(format!("{mo:02}"))
        .join(format!("{d:02}"))
        .join(format!(
            "{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{ms:03}Z{dup}.mp4"
        ))
}

/// The start time encoded in a recording's file name, if it is one of ours.
pub(crate) fn start_from_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".mp4")?;
    let stem = stem.split_once('-').map_or(stem, |(s, _)| s);
    let b = stem.as_bytes();
    if b.len() != 20 || b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| stem.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s, ms) = (num(9..11)?, num(11..13)?, num(13..15)?, num(16..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = unix_from_civil(y, mo, d, h, mi, s);
    Some((secs * 1000 + ms) * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        for t in [
            0i64,
            1_763_742_692_123_000_000,
            951_782_400_000_000_000,
            4_102_444_799_999_000_000,
        ] {
            let p = file_path("front", t, 0);
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(start_from_file_name(name), Some(t), "{name}");
            let p2 = file_path("front", t, 3);
            assert_eq!(
                start_from_file_name(p2.file_name().unwrap().to_str().unwrap()),
                Some(t)
            );
        }
        assert_eq!(
            file_path("cam", 1_763_742_692_123_000_000, 0),
            PathBuf::from("cam/2025/11/21/20251121T163132.123Z.mp4")
        );
        assert_eq!(
            rfc3339_ms(1_763_742_692_123_000_000),
            "2025-11-21T16:31:32.123Z"
        );
        assert_eq!(start_from_file_name("notes.txt"), None);
        assert_eq!(start_from_file_name("20251321T163132.123Z.mp4"), None);
    }

    #[test]
    fn camera_names_cannot_escape() {
        for ok in ["front", "cam-1", "Garage_2", "a.b"] {
            assert!(validate_camera(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            ".hidden",
            "x\0",
            "é",
            &"x".repeat(65),
        ] {
            assert!(validate_camera(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ranges() {
        assert!(TimeRange::new(5, 5).is_err());
        let r = TimeRange::new(10, 20).unwrap();
        assert!(
            r.overlaps(19, 30) && r.overlaps(0, 11) && !r.overlaps(20, 30) && !r.overlaps(0, 10)
        );
    }
}
