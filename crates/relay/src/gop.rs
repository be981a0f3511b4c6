//! An instant first frame, sans-IO: each camera's current GOP
//! ([`GopCache`]) and a new viewer's faster-than-real-time way through it
//! to the live edge ([`CatchUp`]). See `docs/design/live.md`, "An instant
//! first frame".

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The GOP cache's bound per camera, by default.
pub const DEFAULT_GOP_CACHE_BYTES: usize = 8 << 20;

/// A catch-up reaches the live edge within this.
pub const CATCH_UP_WITHIN: Duration = Duration::from_secs(1);

/// A frame as the cache and a catch-up hold it: what to send (`item`),
/// its source timestamp in `rate` ticks, and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timed<T> {
    /// What is sent.
    pub item: T,
    /// The source's timestamp, in the stream's clock rate.
    pub ticks: u64,
    /// Bytes it holds.
    pub bytes: usize,
    /// Decodable on its own.
    pub keyframe: bool,
}

/// A camera's frames since its last keyframe, byte-bounded.
#[derive(Debug)]
pub struct GopCache<T> {
    frames: Vec<Timed<T>>,
    bytes: usize,
    max_bytes: usize,
}

impl<T: Clone> GopCache<T> {
    /// An empty cache holding at most `max_bytes` (0 turns it off).
    pub fn new(max_bytes: usize) -> Self {
        GopCache {
            frames: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Adds the camera's next frame. A keyframe starts the cache afresh; a
    /// delta with no keyframe before it is ignored; a GOP that outgrows
    /// the bound empties the cache until the next keyframe.
    pub fn push(&mut self, frame: Timed<T>) {
        if frame.keyframe {
            self.clear();
        } else if self.frames.is_empty() {
            return;
        }
        if self.bytes + frame.bytes > self.max_bytes {
            self.clear();
            return;
        }
        self.bytes += frame.bytes;
        self.frames.push(frame);
    }

    /// Forgets the GOP: the publisher's stream has a hole, or a new
    /// publisher took over.
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// The GOP, keyframe first; empty when there is none.
    pub fn frames(&self) -> &[Timed<T>] {
        &self.frames
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The bound.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// One viewer's way from a cached keyframe to the live edge.
///
/// Frame `t` (source ticks) is due at `started + (t - first) / speed`
/// and is stamped `first + (t - first) / speed`: sent as it is stamped,
/// so the viewer's jitter buffer sees frames on time and holds no
/// backlog. `speed` is `1 + age / CATCH_UP_WITHIN` (at least 2), where
/// `age` is how far the newest frame was ahead of the keyframe at the
/// start, so the backlog is gone within [`CATCH_UP_WITHIN`]. Once it is
/// (the queue runs dry), [`offset`](Self::offset) maps live frames.
#[derive(Debug)]
pub struct CatchUp<T> {
    queue: VecDeque<Timed<T>>,
    bytes: usize,
    max_bytes: usize,
    started: Instant,
    first: u64,
    rate: u32,
    speed: f64,
    /// `stamp - ticks` of the last frame sent.
    offset: i64,
}

impl<T: Clone> CatchUp<T> {
    /// Starts a catch-up through `gop` (keyframe first), whose clock runs
    /// at `rate` ticks a second; its queue may hold `max_bytes`. `None`
    /// when there is no GOP to start from.
    pub fn start(gop: &[Timed<T>], rate: u32, max_bytes: usize, now: Instant) -> Option<Self> {
        let first = gop.first().filter(|f| f.keyframe)?.ticks;
        let newest = gop.last().map_or(first, |f| f.ticks);
        let age = newest.saturating_sub(first) as f64 / f64::from(rate.max(1));
        let speed = (1.0 + age / CATCH_UP_WITHIN.as_secs_f64()).max(2.0);
        Some(CatchUp {
            bytes: gop.iter().map(|f| f.bytes).sum(),
            queue: gop.iter().cloned().collect(),
            max_bytes,
            started: now,
            first,
            rate: rate.max(1),
            speed,
            offset: 0,
        })
    }

    /// How much faster than real time the backlog goes.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// A live frame that arrived during the catch-up: it queues behind
    /// the backlog. False when the queue would pass its bound: give up
    /// the catch-up.
    pub fn push(&mut self, frame: Timed<T>) -> bool {
        if self.bytes + frame.bytes > self.max_bytes {
            return false;
        }
        self.bytes += frame.bytes;
        self.queue.push_back(frame);
        true
    }

    /// When the next queued frame is due; `None` when the queue is empty.
    pub fn next_due(&self) -> Option<Instant> {
        let f = self.queue.front()?;
        let secs = self.scaled(f.ticks) as f64 / f64::from(self.rate);
        Some(self.started + Duration::from_secs_f64(secs.max(0.0)))
    }

    /// The next frame if it is due by `now`, with the timestamp to send
    /// it with.
    pub fn pop_due(&mut self, now: Instant) -> Option<(T, u64)> {
        if self.next_due()? > now {
            return None;
        }
        let f = self.queue.pop_front()?;
        self.bytes -= f.bytes;
        let stamp = self.first + self.scaled(f.ticks);
        self.offset = stamp as i64 - f.ticks as i64;
        Some((f.item, stamp))
    }

    /// Whether the backlog is gone: every frame received has been sent.
    pub fn is_done(&self) -> bool {
        self.queue.is_empty()
    }

    /// What to add to a live frame's timestamp once the catch-up is done,
    /// so the viewer's timestamps run on without a step.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// `(ticks - first) / speed`, in ticks.
    fn scaled(&self, ticks: u64) -> u64 {
        (ticks.saturating_sub(self.first) as f64 / self.speed).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 90_000;
    /// 30 fps in 90 kHz ticks.
    const STEP: u64 = 3_000;

    fn frame(n: u64, keyframe: bool) -> Timed<u64> {
        Timed {
            item: n,
            ticks: 1_000_000 + n * STEP,
            bytes: if keyframe { 100 } else { 10 },
            keyframe,
        }
    }

    #[test]
    fn the_cache_holds_one_gop_from_its_keyframe_within_its_bound() {
        let mut c = GopCache::new(200);
        // Deltas before any keyframe are useless to a new viewer.
        c.push(frame(0, false));
        assert!(c.frames().is_empty());
        c.push(frame(1, true));
        for n in 2..5 {
            c.push(frame(n, false));
        }
        assert_eq!(c.frames().len(), 4);
        assert_eq!(c.bytes(), 130);
        // The next keyframe starts afresh.
        c.push(frame(5, true));
        assert_eq!(c.frames().iter().map(|f| f.item).collect::<Vec<_>>(), [5]);
        // A GOP over the bound empties the cache until the next keyframe.
        for n in 6..20 {
            c.push(frame(n, false));
        }
        assert!(c.frames().is_empty(), "over 200 bytes: {}", c.bytes());
        c.push(frame(20, false));
        assert!(c.frames().is_empty());
        c.push(frame(21, true));
        assert_eq!(c.frames().len(), 1);
        // A hole empties it too.
        c.clear();
        assert!(c.frames().is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_catch_up_sends_the_keyframe_at_once_and_reaches_live_within_a_second() {
        // A 4 s GOP: 120 frames cached when the viewer connects.
        let mut cache = GopCache::new(DEFAULT_GOP_CACHE_BYTES);
        for n in 0..120 {
            cache.push(frame(n, n == 0));
        }
        let t0 = Instant::now();
        let mut up = CatchUp::start(cache.frames(), RATE, 1 << 20, t0).unwrap();
        // 119 frames ahead of the keyframe: 3.97 s, so about 5x.
        assert!((up.speed() - (1.0 + 119.0 / 30.0)).abs() < 1e-9);
        // The keyframe goes at once, with its own timestamp.
        assert_eq!(up.pop_due(t0), Some((0, 1_000_000)));
        assert_eq!(up.pop_due(t0), None, "the next is due later");
        // Simulate: live frames arrive every 33.3 ms; the relay sends what
        // is due at each arrival and at each due time.
        let mut sent: Vec<(u64, u64, Duration)> = vec![(0, 1_000_000, Duration::ZERO)];
        let mut next_live = 120;
        let mut now = t0;
        let mut done_at = None;
        while now < t0 + Duration::from_secs(3) {
            let live_at = t0 + Duration::from_nanos((next_live - 119) * 33_333_333);
            let due = up.next_due().unwrap_or(live_at);
            now = due.min(live_at);
            if now == live_at {
                if up.is_done() {
                    done_at.get_or_insert(now);
                    break;
                }
                assert!(up.push(frame(next_live, false)));
                next_live += 1;
            }
            while let Some((n, stamp)) = up.pop_due(now) {
                sent.push((n, stamp, now - t0));
            }
        }
        let done_at = done_at.expect("the catch-up ends") - t0;
        assert!(
            done_at <= CATCH_UP_WITHIN + Duration::from_millis(100),
            "live after {done_at:?}"
        );
        // Every frame once, in order, with rising stamps, each sent when
        // its stamp says (to the nearest millisecond).
        let items: Vec<u64> = sent.iter().map(|s| s.0).collect();
        assert_eq!(items, (0..next_live).collect::<Vec<_>>());
        for w in sent.windows(2) {
            assert!(w[1].1 > w[0].1, "stamps rise: {w:?}");
        }
        for (n, stamp, at) in &sent {
            let stamped = Duration::from_secs_f64((stamp - 1_000_000) as f64 / 90_000.0);
            let off = stamped.abs_diff(*at);
            assert!(
                off < Duration::from_millis(2),
                "frame {n} stamped {stamped:?}, sent at {at:?}"
            );
        }
        // Live frames after it: source spacing, and no step.
        let (last_n, last_stamp, _) = *sent.last().unwrap();
        let next = frame(last_n + 1, false);
        let mapped = next.ticks as i64 + up.offset();
        assert_eq!(mapped - last_stamp as i64, STEP as i64);
    }

    #[test]
    fn a_fresh_gop_still_goes_at_twice_real_time_and_a_flood_gives_up() {
        let t0 = Instant::now();
        // Just a keyframe: sent, and done at once.
        let mut one = CatchUp::start(&[frame(0, true)], RATE, 1000, t0).unwrap();
        assert_eq!(one.speed(), 2.0);
        assert_eq!(one.pop_due(t0), Some((0, 1_000_000)));
        assert!(one.is_done());
        assert_eq!(one.offset(), 0);
        // No GOP, or one that does not start at a keyframe: no catch-up.
        assert!(CatchUp::<u64>::start(&[], RATE, 1000, t0).is_none());
        assert!(CatchUp::start(&[frame(1, false)], RATE, 1000, t0).is_none());
        // A queue past its bound gives up.
        let mut up = CatchUp::start(&[frame(0, true)], RATE, 120, t0).unwrap();
        assert!(up.push(frame(1, false)), "110 bytes");
        assert!(up.push(frame(2, false)), "120 bytes");
        assert!(!up.push(frame(3, false)), "130 bytes is over");
    }
}
