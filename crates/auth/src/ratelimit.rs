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

    /// Whether `key` would be allowed at `now`, taking nothing.
    pub fn peek(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let tolerance = self.limit.period * (self.limit.burst - 1);
        let tat = self.tat.get(key).map_or(now, |t| (*t).max(now));
        let ahead = tat - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
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

/// The limits a [`LoginGuard`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Every attempt, per client (by [`client_bucket`]).
    pub per_client: RateLimit,
    /// Failed attempts per username, from addresses the user has not
    /// signed in from before.
    pub failures_per_user: RateLimit,
}

/// Sign-in limits, sans IO: every attempt counts against its client's
/// address; a failed one also slows its username down, everywhere except
/// at the addresses that user has signed in from before. So guessing one
/// user's password from many addresses is slowed, and the real user, at
/// home, is never locked out by it. Every table is bounded.
#[derive(Debug)]
pub struct LoginGuard {
    per_client: RateLimiter<std::net::IpAddr>,
    failures: RateLimiter<String>,
    /// (lowercased username, client bucket) that signed in, and when last.
    known: HashMap<(String, std::net::IpAddr), Instant>,
    max_keys: usize,
}

impl LoginGuard {
    /// A guard with `limits`, each table holding at most `max_keys` keys.
    pub fn new(limits: LoginLimits, max_keys: usize) -> Self {
        LoginGuard {
            per_client: RateLimiter::new(limits.per_client, max_keys),
            failures: RateLimiter::new(limits.failures_per_user, max_keys),
            known: HashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    /// Takes one attempt by `client` (if known) for `username` (if any) at
    /// `now`: `Ok`, or `Err(retry_after)`. Call before checking the
    /// password, and report the outcome with [`LoginGuard::failed`] or
    /// [`LoginGuard::succeeded`].
    pub fn admit(
        &mut self,
        client: Option<std::net::IpAddr>,
        username: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        let bucket = client.map(client_bucket);
        if let Some(b) = bucket {
            self.per_client.check(&b, now)?;
        }
        if let Some(name) = username
            && !self.is_known(name, bucket)
        {
            self.failures.peek(&name.to_ascii_lowercase(), now)?;
        }
        Ok(())
    }

    /// `username`'s password was wrong (or the user does not exist).
    pub fn failed(&mut self, client: Option<std::net::IpAddr>, username: &str, now: Instant) {
        if !self.is_known(username, client.map(client_bucket)) {
            let _ = self.failures.check(&username.to_ascii_lowercase(), now);
        }
    }

    /// `username` signed in from `client`: that address is theirs from now on.
    pub fn succeeded(&mut self, client: Option<std::net::IpAddr>, username: &str, now: Instant) {
        let Some(bucket) = client.map(client_bucket) else {
            return;
        };
        let key = (username.to_ascii_lowercase(), bucket);
        if !self.known.contains_key(&key)
            && self.known.len() >= self.max_keys
            && let Some(oldest) = self
                .known
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
        {
            self.known.remove(&oldest);
        }
        self.known.insert(key, now);
    }

    fn is_known(&self, username: &str, bucket: Option<std::net::IpAddr>) -> bool {
        bucket.is_some_and(|b| self.known.contains_key(&(username.to_ascii_lowercase(), b)))
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    /// A password-guessing run against one user from many addresses is
    /// slowed; the real user signs in from home all the while.
    #[test]
    fn failures_slow_a_username_but_not_its_known_addresses() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut g = LoginGuard::new(
            LoginLimits {
                per_client: RateLimit {
                    burst: 10,
                    period: s(6),
                },
                failures_per_user: RateLimit {
                    burst: 3,
                    period: s(12),
                },
            },
            100,
        );
        let home = Some("192.0.2.1".parse().unwrap());
        let attacker = |i: u8| Some(std::net::IpAddr::from([198, 51, 100, i]));
        // The user signs in once from home.
        assert_eq!(g.admit(home, Some("alice"), t0), Ok(()));
        g.succeeded(home, "alice", t0);
        // Three wrong guesses from three addresses...
        for i in 0..3 {
            assert_eq!(g.admit(attacker(i), Some("ALICE"), t0), Ok(()), "guess {i}");
            g.failed(attacker(i), "ALICE", t0);
        }
        // ...and the fourth, from a fresh address, waits.
        assert_eq!(g.admit(attacker(9), Some("alice"), t0), Err(s(12)));
        // Home is not slowed, even right now.
        assert_eq!(g.admit(home, Some("alice"), t0), Ok(()));
        // Home's own typos do not feed the attacker's slowdown either way.
        g.failed(home, "alice", t0);
        assert_eq!(g.admit(attacker(9), Some("alice"), t0 + s(12)), Ok(()));
        // Another user is not slowed by alice's failures.
        assert_eq!(g.admit(attacker(9), Some("bob"), t0), Ok(()));
        // Successes elsewhere never count as failures.
        let mut fresh = LoginGuard::new(
            LoginLimits {
                per_client: RateLimit {
                    burst: 100,
                    period: s(1),
                },
                failures_per_user: RateLimit {
                    burst: 1,
                    period: s(60),
                },
            },
            100,
        );
        for i in 0..10 {
            assert_eq!(fresh.admit(attacker(i), Some("carol"), t0), Ok(()));
            fresh.succeeded(attacker(i), "carol", t0);
        }
    }

    #[test]
    fn every_attempt_counts_against_its_client_and_tables_are_bounded() {
        let t0 = Instant::now();
        let limit = RateLimit {
            burst: 2,
            period: Duration::from_secs(60),
        };
        let mut g = LoginGuard::new(
            LoginLimits {
                per_client: limit,
                failures_per_user: limit,
            },
            10,
        );
        let ip = Some("2001:db8::1".parse().unwrap());
        let same_64 = Some("2001:db8::ffff".parse().unwrap());
        assert!(g.admit(ip, Some("a"), t0).is_ok());
        g.succeeded(ip, "a", t0);
        assert!(g.admit(same_64, Some("b"), t0).is_ok());
        assert!(g.admit(ip, Some("a"), t0).is_err(), "third from the /64");
        for i in 0..1000u32 {
            g.succeeded(Some(std::net::IpAddr::from(i.to_be_bytes())), "x", t0);
            assert!(g.known.len() <= 10);
        }
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
