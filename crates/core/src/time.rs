//! Media time (90 kHz) and wall-clock time (UTC nanoseconds).
//!
//! Media timestamps come from a source's clock and only mean something
//! relative to each other; wall-clock time says when something happened and
//! may jump (NTP, a Pi without an RTC booting in 1970). Keep the two apart:
//! recordings map one onto the other once per file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Ticks per second of the RTP/MPEG video clock.
pub const CLOCK_90K: u32 = 90_000;

/// Nanoseconds to 90 kHz ticks, rounded to nearest, without overflow.
///
/// Rounding matters: GStreamer stamps frame n at 30 fps as
/// `floor(n × 10⁹ / 30)` ns, so flooring again would make steps of 2999
/// and 3001 ticks instead of exactly 3000.
pub fn ns_to_90k(ns: u64) -> i64 {
    let ticks = (u128::from(ns) * u128::from(CLOCK_90K) + 500_000_000) / 1_000_000_000;
    i64::try_from(ticks).unwrap_or(i64::MAX)
}

/// 90 kHz ticks to nanoseconds.
pub fn ticks_90k_to_ns(ticks: i64) -> i128 {
    i128::from(ticks) * 1_000_000_000 / i128::from(CLOCK_90K)
}

/// 90 kHz ticks to a [`Duration`]; negative values give zero.
pub fn ticks_90k_to_duration(ticks: i64) -> Duration {
    Duration::from_nanos(u64::try_from(ticks_90k_to_ns(ticks.max(0))).unwrap_or(u64::MAX))
}

/// A wall-clock instant: nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcNs(pub i64);

impl UtcNs {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Whole seconds since the epoch (floored).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Whole milliseconds since the epoch (floored).
    pub fn millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Time since the epoch; zero before it.
    pub fn since_epoch(self) -> Duration {
        Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// This instant plus `ticks` of 90 kHz media time.
    pub fn add_90k(self, ticks: i64) -> Self {
        let ns = ticks_90k_to_ns(ticks);
        UtcNs(self.0.saturating_add(i64::try_from(ns).unwrap_or(i64::MAX)))
    }
}

impl From<SystemTime> for UtcNs {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UtcNs(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            Err(e) => UtcNs(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}

/// Civil date and time of day from Unix seconds (UTC), as `(year, month
/// 1..=12, day 1..=31, hour, minute, second)`.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (tod / 3600) as u32,
        (tod / 60 % 60) as u32,
        (tod % 60) as u32,
    )
}

/// `2026-11-21T16:38:12.123Z`, for playlists and logs.
pub fn rfc3339_ms(utc_ns: i64) -> String {
    let secs = utc_ns.div_euclid(1_000_000_000);
    let ms = utc_ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Unix seconds from a civil date and time of day (UTC); the inverse of
/// [`civil`]. Fields are not range-checked.
pub fn unix_from_civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + s
}

/// Unix seconds of a UTC RFC 3339 time as [`rfc3339_ms`] writes it
/// (`YYYY-MM-DDTHH:MM:SS`, optional fraction, `Z`); `None` otherwise.
pub fn parse_rfc3339_secs(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let time = time.split('.').next()?;
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, mo, dd) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut t = time.split(':');
    let (h, mi, sec) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&dd)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    Some(unix_from_civil(y, mo, dd, h, mi, sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let ns = 1_763_743_092_123_000_000i64;
        assert_eq!(
            parse_rfc3339_secs(&rfc3339_ms(ns)),
            Some(ns / 1_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_secs("2026-11-21T16:38:12Z"),
            Some(1_795_279_092)
        );
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T16:38:12",
            "x-11-21T16:38:12Z",
        ] {
            assert_eq!(parse_rfc3339_secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(ns_to_90k(1_000_000_000), 90_000);
        assert_eq!(ns_to_90k(33_333_333), 3000);
        assert_eq!(ns_to_90k(33_333_332), 3000);
        assert_eq!(ns_to_90k(5_555), 0);
        assert_eq!(ns_to_90k(5_556), 1);
        assert_eq!(ns_to_90k(u64::MAX), 1_660_206_966_633_860);
        // Frame n at 30 fps, as GStreamer computes it, lands on n × 3000.
        for n in 0..10_000u64 {
            assert_eq!(ns_to_90k(n * 1_000_000_000 / 30), (n * 3000) as i64);
        }
        assert_eq!(ticks_90k_to_ns(3000), 33_333_333);
        assert_eq!(ticks_90k_to_duration(-5), Duration::ZERO);
        assert_eq!(UtcNs(0).add_90k(90_000), UtcNs(1_000_000_000));
    }
}
