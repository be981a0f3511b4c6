//! Retry delays: doubling from a floor to a ceiling, optionally with ±20 %
//! jitter so a fleet of pushers does not reconnect in lockstep after a
//! restart.
//!
//! This is the one backoff in RealLive: the supervisor's restart delays,
//! the clients' reconnects, the NVR's sub-stream and failed-write retries
//! all count with it.

use std::time::Duration;

/// Exponential backoff, with or without jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    floor: Duration,
    ceiling: Duration,
    next: Duration,
    /// xorshift state; 0 means no jitter.
    seed: u64,
}

impl Backoff {
    /// Starts at `floor`, doubles up to `ceiling`, each delay jittered by
    /// ±20 %.
    pub fn new(floor: Duration, ceiling: Duration) -> Self {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        Backoff {
            floor,
            ceiling,
            next: floor,
            seed: u64::from_le_bytes(b) | 1,
        }
    }

    /// Starts at `floor`, doubles up to `ceiling`, without jitter: for
    /// delays a user reads in a status page or a test asserts.
    pub fn exact(floor: Duration, ceiling: Duration) -> Self {
        Backoff {
            floor,
            ceiling,
            next: floor,
            seed: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.ceiling);
        self.jitter(base)
    }

    /// Whether the delay has grown past its floor.
    pub fn is_raised(&self) -> bool {
        self.next > self.floor
    }

    /// The ceiling, jittered: for slow retries.
    pub fn max(&mut self) -> Duration {
        let c = self.ceiling;
        self.jitter(c)
    }

    /// Back to the floor after a healthy session.
    pub fn reset(&mut self) {
        self.next = self.floor;
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        if self.seed == 0 {
            return d;
        }
        // xorshift: no need for a CSPRNG to spread reconnects.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed % 10_000) as f64 / 10_000.0; // 0..1
        d.mul_f64(0.8 + 0.4 * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_ceiling_with_bounded_jitter() {
        let s = Duration::from_secs;
        let mut b = Backoff::new(s(1), s(60));
        let bases = [1, 2, 4, 8, 16, 32, 60, 60];
        for base in bases {
            let d = b.next_delay().as_secs_f64();
            let base = base as f64;
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{d} around {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
        let m = b.max().as_secs_f64();
        assert!((48.0..=72.0).contains(&m));
    }

    #[test]
    fn exact_doubles_without_jitter() {
        let s = Duration::from_secs;
        let mut b = Backoff::exact(s(1), s(30));
        assert!(!b.is_raised());
        let got: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30]);
        assert!(b.is_raised());
        assert_eq!(b.next_delay(), s(30));
        b.reset();
        assert_eq!(b.next_delay(), s(1));
    }
}
