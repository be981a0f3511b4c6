//! [`Clock`]: where time comes from, so the code that depends on it can be
//! driven by a test.
//!
//! Two readings: a monotonic [`Instant`] for timeouts and rates, and the
//! wall clock ([`UtcNs`]) for what a user reads and what the store indexes.
//! The wall clock may step (NTP, a Pi without an RTC booting in 1970);
//! [`SimulatedClock::step_utc`] makes such a step in a test.

use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::time::UtcNs;

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + Debug {
    /// Monotonic time, for timeouts and rates.
    fn now(&self) -> Instant;
    /// Wall-clock time.
    fn utc(&self) -> UtcNs;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc(&self) -> UtcNs {
        UtcNs::now()
    }
}

/// A clock that moves only when told: [`advance`](Self::advance) moves
/// both readings, [`step_utc`](Self::step_utc) only the wall clock.
#[derive(Debug)]
pub struct SimulatedClock {
    state: Mutex<(Instant, UtcNs)>,
}

impl SimulatedClock {
    /// A clock that reads `utc` now.
    pub fn new(utc: UtcNs) -> Self {
        SimulatedClock {
            state: Mutex::new((Instant::now(), utc)),
        }
    }

    /// Both readings move on by `d`.
    pub fn advance(&self, d: Duration) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.0 += d;
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        s.1 = UtcNs(s.1.0.saturating_add(ns));
    }

    /// The wall clock jumps by `delta_ns` (either way); monotonic time
    /// does not.
    pub fn step_utc(&self, delta_ns: i64) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.1 = UtcNs(s.1.0.saturating_add(delta_ns));
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> Instant {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0
    }

    fn utc(&self) -> UtcNs {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_time_moves_only_when_told() {
        let c = SimulatedClock::new(UtcNs(1_000));
        let t0 = c.now();
        assert_eq!(c.utc(), UtcNs(1_000));
        c.advance(Duration::from_millis(5));
        assert_eq!(c.now() - t0, Duration::from_millis(5));
        assert_eq!(c.utc(), UtcNs(5_001_000));
        c.step_utc(-5_000_000);
        assert_eq!(c.utc(), UtcNs(1_000));
        assert_eq!(c.now() - t0, Duration::from_millis(5));
    }
}
