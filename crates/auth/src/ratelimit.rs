//! A sans-IO rate limiter (GCRA), keyed by anything hashable: client IPs,
//! usernames. The caller passes `now`; tests script it.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A burst of `burst` requests, then one more every `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Time to earn one more.
    pub period: Duration,
}

/// Per-key limits with a bounded table.
#[derive(Debug)]
pub struct RateLimiter<K> {
    limit: RateLimit,
    max_keys: usize,
    /// Theoretical arrival time of the next request, per key.
    tat: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter tracking at most `max_keys` keys; when full, keys whose
    /// allowance has fully recovered go first, then the closest to it.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        RateLimiter {
            limit: RateLimit {
                burst: limit.burst.max(1),
                period: limit.period,
            },
            max_keys: max_keys.max(1),
            tat: HashMap::new(),
        }
    }

    /// Takes one request for `key` at `now`: `Ok`, or `Err(retry_after)`.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let period = self.limit.period;
        let tolerance = period * (self.limit.burst - 1);
        let tat = self.tat.get(key).map_or(now, |t| (*t).max(now));
        let ahead = tat - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        if !self.tat.contains_key(key) && self.tat.len() >= self.max_keys {
            self.evict(now);
        }
        self.tat.insert(key.clone(), tat + period);
        Ok(())
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.tat.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.tat.is_empty()
    }

    fn evict(&mut self, now: Instant) {
        self.tat.retain(|_, t| *t > now);
        if self.tat.len() >= self.max_keys
            && let Some(oldest) = self
                .tat
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            self.tat.remove(&oldest);
        }
    }
}

/// The key one client's logins are counted under: an IPv4 address as it
/// is, an IPv6 address by its /64 (one subscriber's network: a host picks
/// any address in it at will), an IPv4-mapped IPv6 address as IPv4.
pub fn client_bucket(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod bucket_tests {
    use super::client_bucket;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let b = |s: &str| client_bucket(s.parse().unwrap());
        // (address, its bucket)
        for (ip, bucket) in [
            ("192.0.2.7", "192.0.2.7"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("::1", "::"),
        ] {
            assert_eq!(b(ip), b(bucket), "{ip}");
        }
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_paces() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut rl = RateLimiter::new(
            RateLimit {
                burst: 3,
                period: s(10),
            },
            100,
        );
        let k = "alice".to_string();
        // (offset, expected)
        let script: &[(u64, Result<(), Duration>)] = &[
            (0, Ok(())),
            (0, Ok(())),
            (0, Ok(())),
            (0, Err(s(10))),
            (4, Err(s(6))),
            (10, Ok(())),
            (10, Err(s(10))),
            (60, Ok(())),
            (60, Ok(())),
            (60, Ok(())),
            (60, Err(s(10))),
        ];
        for (i, (at, want)) in script.iter().enumerate() {
            assert_eq!(rl.check(&k, t0 + s(*at)), *want, "step {i}");
        }
        // Another key is independent.
        assert_eq!(rl.check(&"bob".to_string(), t0 + s(60)), Ok(()));
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let limit = RateLimit {
            burst: 1,
            period: Duration::from_secs(60),
        };
        let mut rl = RateLimiter::new(limit, 10);
        for i in 0..1000u32 {
            let _ = rl.check(&i, t0 + Duration::from_millis(u64::from(i)));
            assert!(rl.len() <= 10);
        }
        // The newest keys are still limited; the oldest were forgotten.
        assert!(rl.check(&999, t0 + Duration::from_secs(1)).is_err());
        assert!(rl.check(&0, t0 + Duration::from_secs(1)).is_ok());
    }
}
