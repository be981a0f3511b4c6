use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const BUCKET_NS: u64 = 100_000; // 0.1 ms
const BUCKETS: usize = 2_000; // 0..200 ms, then one overflow bucket

/// A fixed-resolution latency histogram: 0.1 ms buckets up to 200 ms, and one
/// bucket beyond.
///
/// [`record`](Self::record) is a single relaxed atomic add, so it is safe on
/// a GStreamer streaming thread. Percentiles are exact to the bucket width.
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    max_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..=BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .finish()
    }
}

impl LatencyHistogram {
    /// Records one sample.
    pub fn record(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let idx = usize::try_from(ns / BUCKET_NS).map_or(BUCKETS, |i| i.min(BUCKETS));
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Forgets every sample, to measure a window from now on.
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.max_ns.store(0, Ordering::Relaxed);
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The largest sample recorded.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }

    /// The `p`th percentile (0..=100), as the upper edge of its bucket;
    /// `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * total as f64)
            .ceil()
            .max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                if i == BUCKETS {
                    return Some(self.max());
                }
                let upper = (i as u64 + 1) * BUCKET_NS;
                return Some(Duration::from_nanos(
                    upper.min(self.max_ns.load(Ordering::Relaxed).max(upper - BUCKET_NS)),
                ));
            }
        }
        Some(self.max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_within_a_bucket() {
        let h = LatencyHistogram::default();
        assert_eq!(h.percentile(50.0), None);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.count(), 100);
        let p50 = h.percentile(50.0).unwrap();
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_micros(50_100),
            "{p50:?}"
        );
        let p99 = h.percentile(99.0).unwrap();
        assert!(
            p99 >= Duration::from_millis(99) && p99 <= Duration::from_micros(99_100),
            "{p99:?}"
        );
        h.record(Duration::from_secs(5));
        assert_eq!(h.percentile(100.0), Some(Duration::from_secs(5)));
    }
}
