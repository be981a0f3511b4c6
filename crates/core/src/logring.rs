//! [`LogRing`]: the last log lines of this process, kept in memory for
//! `/api/logs`.
//!
//! The ring is fed by a `tracing` layer beside the stderr one (feature
//! `app`, `app::LogArgs::init`), so it holds exactly what the program
//! logs, no more: secrets stay out because they never reach `tracing`
//! (URLs are logged through [`RtspUrl`](crate::RtspUrl)'s redacting
//! `Display`/`Debug`, and other text through [`redact`](crate::redact)).
//! The type itself needs no `tracing`, so the HTTP crate can read it
//! without the feature.
//!
//! Bounded three ways: [`RING_LINES`] lines, each message cut at
//! [`MAX_LINE_BYTES`], and a broadcast of [`BROADCAST_LINES`] for live
//! followers (a follower that falls further behind is told it lagged, and
//! reads the ring again).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::broadcast;

use crate::CameraId;

/// Lines the process-wide ring keeps.
pub const RING_LINES: usize = 2_000;

/// A line's message is cut to at most this many bytes (the cut ends
/// with `…`, which counts).
pub const MAX_LINE_BYTES: usize = 2 * 1024;

/// New lines a live follower may fall behind before it is told to resync.
pub const BROADCAST_LINES: usize = 256;

/// A log line's level, ordered by severity (`Trace` < `Error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl LogLevel {
    /// `"ERROR"`, `"WARN"`, `"INFO"`, `"DEBUG"` or `"TRACE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is none of `error`, `warn`, `info`, `debug`, `trace`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level (expected error, warn, info, debug or trace)")]
pub struct UnknownLevel;

impl FromStr for LogLevel {
    type Err = UnknownLevel;

    /// A level by name, in any case.
    fn from_str(s: &str) -> Result<Self, UnknownLevel> {
        [
            LogLevel::Trace,
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ]
        .into_iter()
        .find(|l| l.as_str().eq_ignore_ascii_case(s))
        .ok_or(UnknownLevel)
    }
}

/// One formatted log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Its place in this process's log, from 1, without gaps.
    pub seq: u64,
    /// When it was logged, Unix ms.
    pub at_ms: i64,
    /// Its level.
    pub level: LogLevel,
    /// Where it was logged (a module path, or an explicit target).
    pub target: String,
    /// The camera it is about: a `camera` field of the event or one of its
    /// spans, when that is `camera-<id>` or a number.
    pub camera: Option<i64>,
    /// The message, then the event's other fields as ` k=v`; at most
    /// [`MAX_LINE_BYTES`].
    pub message: String,
}

/// Which lines to read: at or above `min_level`, and of `camera` if set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogFilter {
    /// The least severe level wanted.
    pub min_level: LogLevel,
    /// Only lines about this camera.
    pub camera: Option<i64>,
}

impl Default for LogFilter {
    /// `INFO` and above, every camera.
    fn default() -> Self {
        LogFilter {
            min_level: LogLevel::Info,
            camera: None,
        }
    }
}

impl LogFilter {
    /// Whether `line` passes.
    pub fn matches(&self, line: &LogLine) -> bool {
        line.level >= self.min_level && self.camera.is_none_or(|c| line.camera == Some(c))
    }
}

/// The last lines of a log, oldest first, and a broadcast of new ones.
/// Every method is short and never waits on I/O: a logging thread may
/// push from anywhere.
#[derive(Debug)]
pub struct LogRing {
    inner: Mutex<Inner>,
    capacity: usize,
    tx: broadcast::Sender<Arc<LogLine>>,
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<Arc<LogLine>>,
    next_seq: u64,
}

impl LogRing {
    /// A ring of the last `capacity` lines (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        LogRing {
            inner: Mutex::new(Inner {
                lines: VecDeque::with_capacity(capacity.min(RING_LINES)),
                next_seq: 1,
            }),
            capacity,
            tx: broadcast::channel(BROADCAST_LINES).0,
        }
    }

    /// This process's ring ([`RING_LINES`] lines): what `app::LogArgs::init`
    /// feeds and `/api/logs` reads. Empty in a program that never set up
    /// logging that way.
    pub fn global() -> &'static Arc<LogRing> {
        static GLOBAL: OnceLock<Arc<LogRing>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(LogRing::new(RING_LINES)))
    }

    /// Adds a line (its message cut to [`MAX_LINE_BYTES`]), dropping the
    /// oldest when full, and sends it to followers. Returns its `seq`.
    pub fn push(
        &self,
        at_ms: i64,
        level: LogLevel,
        target: &str,
        camera: Option<i64>,
        mut message: String,
    ) -> u64 {
        cut(&mut message, MAX_LINE_BYTES);
        let mut g = self.lock();
        let seq = g.next_seq;
        g.next_seq += 1;
        let line = Arc::new(LogLine {
            seq,
            at_ms,
            level,
            target: target.to_owned(),
            camera,
            message,
        });
        if g.lines.len() >= self.capacity {
            g.lines.pop_front();
        }
        g.lines.push_back(Arc::clone(&line));
        // Sent under the lock, so followers see lines in `seq` order. No
        // follower is no error.
        let _ = self.tx.send(line);
        seq
    }

    /// The kept lines that pass `filter`, with `seq > since` if given,
    /// oldest first.
    pub fn lines(&self, filter: &LogFilter, since: Option<u64>) -> Vec<Arc<LogLine>> {
        let g = self.lock();
        let since = since.unwrap_or(0);
        // Seqs are consecutive: skip straight to the first one after `since`.
        let first = g.lines.front().map_or(0, |l| l.seq);
        let skip =
            usize::try_from(since.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        g.lines
            .iter()
            .skip(skip)
            .filter(|l| filter.matches(l))
            .cloned()
            .collect()
    }

    /// Lines kept now.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every line pushed from now on (unfiltered). A receiver more than
    /// [`BROADCAST_LINES`] behind gets `Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.tx.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The camera a `camera` field names: `camera-<id>` or a bare number.
pub fn camera_of(value: &str) -> Option<i64> {
    let value = value.trim();
    CameraId::from_store_key(value)
        .map(|c| c.0)
        .or_else(|| value.parse().ok())
}

/// Cuts `s` to at most `max_bytes`, on a character boundary, ending in
/// `…` when anything was cut.
fn cut(s: &mut String, max_bytes: usize) {
    if s.len() <= max_bytes {
        return;
    }
    const ELLIPSIS: &str = "…";
    let mut end = max_bytes.saturating_sub(ELLIPSIS.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(ELLIPSIS);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(ring: &LogRing, level: LogLevel, camera: Option<i64>, msg: &str) -> u64 {
        ring.push(1_000, level, "test", camera, msg.to_owned())
    }

    fn all() -> LogFilter {
        LogFilter {
            min_level: LogLevel::Trace,
            camera: None,
        }
    }

    #[test]
    fn keeps_the_newest_2000_of_2100() {
        let ring = LogRing::new(RING_LINES);
        for i in 1..=2_100 {
            push(&ring, LogLevel::Info, None, &format!("line {i}"));
        }
        let lines = ring.lines(&all(), None);
        assert_eq!(lines.len(), 2_000);
        assert_eq!(ring.len(), 2_000);
        assert_eq!(lines[0].seq, 101);
        assert_eq!(lines[0].message, "line 101");
        assert_eq!(lines[1_999].seq, 2_100);
        assert_eq!(lines[1_999].message, "line 2100");
        assert!(lines.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    }

    #[test]
    fn long_lines_are_cut_at_2_kib_with_an_ellipsis() {
        let ring = LogRing::new(4);
        push(&ring, LogLevel::Info, None, &"x".repeat(5_000));
        // A multi-byte character straddling the cut is not split.
        push(&ring, LogLevel::Info, None, &"é".repeat(2_000));
        push(&ring, LogLevel::Info, None, &"y".repeat(MAX_LINE_BYTES));
        let lines = ring.lines(&all(), None);
        assert_eq!(lines[0].message.len(), MAX_LINE_BYTES);
        assert!(lines[0].message.ends_with("x…"));
        assert!(lines[1].message.len() <= MAX_LINE_BYTES);
        assert!(lines[1].message.ends_with("é…"));
        assert_eq!(
            lines[2].message,
            "y".repeat(MAX_LINE_BYTES),
            "exactly 2 KiB is kept whole"
        );
    }

    #[test]
    fn filters_by_level_camera_and_since() {
        let ring = LogRing::new(100);
        let s1 = push(&ring, LogLevel::Error, Some(1), "e1");
        let _s2 = push(&ring, LogLevel::Debug, Some(1), "d1");
        let s3 = push(&ring, LogLevel::Warn, Some(2), "w2");
        let s4 = push(&ring, LogLevel::Info, None, "i");
        let _s5 = push(&ring, LogLevel::Trace, Some(2), "t2");
        let msgs = |f: LogFilter, since| -> Vec<String> {
            ring.lines(&f, since)
                .iter()
                .map(|l| l.message.clone())
                .collect()
        };
        assert_eq!(msgs(LogFilter::default(), None), ["e1", "w2", "i"]);
        let warn = LogFilter {
            min_level: LogLevel::Warn,
            camera: None,
        };
        assert_eq!(msgs(warn, None), ["e1", "w2"]);
        let cam2 = LogFilter {
            min_level: LogLevel::Trace,
            camera: Some(2),
        };
        assert_eq!(msgs(cam2, None), ["w2", "t2"]);
        assert_eq!(msgs(LogFilter::default(), Some(s1)), ["w2", "i"]);
        assert_eq!(msgs(LogFilter::default(), Some(s3)), ["i"]);
        assert!(msgs(all(), Some(s4 + 1)).is_empty());
        assert!(msgs(all(), Some(u64::MAX)).is_empty());
        assert_eq!(msgs(all(), Some(0)).len(), 5);
    }

    #[test]
    fn since_still_works_after_the_oldest_are_dropped() {
        let ring = LogRing::new(3);
        for i in 1..=10 {
            push(&ring, LogLevel::Info, None, &i.to_string());
        }
        let seqs =
            |since| -> Vec<u64> { ring.lines(&all(), since).iter().map(|l| l.seq).collect() };
        assert_eq!(seqs(None), [8, 9, 10]);
        assert_eq!(seqs(Some(2)), [8, 9, 10], "older than the ring: all kept");
        assert_eq!(seqs(Some(8)), [9, 10]);
    }

    #[test]
    fn followers_get_new_lines_and_a_lag_when_behind() {
        let ring = LogRing::new(10);
        let mut rx = ring.subscribe();
        push(&ring, LogLevel::Info, None, "a");
        assert_eq!(
            rx.try_recv().map(|l| l.message.clone()).ok(),
            Some("a".into())
        );
        for _ in 0..BROADCAST_LINES + 1 {
            push(&ring, LogLevel::Info, None, "b");
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    #[test]
    fn levels_and_cameras_parse() {
        assert_eq!("warn".parse(), Ok(LogLevel::Warn));
        assert_eq!("ERROR".parse(), Ok(LogLevel::Error));
        assert_eq!("Trace".parse(), Ok(LogLevel::Trace));
        assert_eq!("loud".parse::<LogLevel>(), Err(UnknownLevel));
        assert!(LogLevel::Error > LogLevel::Warn && LogLevel::Debug > LogLevel::Trace);
        assert_eq!(camera_of("camera-12"), Some(12));
        assert_eq!(camera_of("7"), Some(7));
        assert_eq!(camera_of("front door"), None);
        assert_eq!(camera_of("camera-"), None);
    }
}
