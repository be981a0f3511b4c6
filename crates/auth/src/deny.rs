//! Tokens signed out one at a time: a bounded deny-list of token ids, each
//! kept until its token would have expired anyway.
//!
//! Signing out everywhere needs no list (the user's token version moves
//! on); signing out of one session does, because a JWT stays valid until
//! its `exp`. The list is pure: every call takes `now` (Unix seconds).

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use crate::AuthError;

/// The most token ids a [`DenyList`] holds by default.
pub const DENY_LIST_CAPACITY: usize = 100_000;

/// What identifies a token in the [`DenyList`]: 128 bits of a hash of its
/// `jti` (see [`Claims::token_id`](crate::Claims::token_id)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub(crate) [u8; 16]);

/// Signed-out tokens, until their expiry. Bounded: when it is full of
/// tokens that have not expired, [`deny`](Self::deny) refuses rather than
/// grow. Cheap to query (one hash lookup under a mutex).
#[derive(Debug)]
pub struct DenyList {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    ids: HashSet<TokenId>,
    /// The same ids by expiry, soonest first, to drop them in order.
    by_exp: BTreeSet<(i64, TokenId)>,
}

impl Inner {
    fn prune(&mut self, now: i64) {
        while let Some(&(exp, id)) = self.by_exp.first() {
            if exp > now {
                break;
            }
            self.by_exp.pop_first();
            self.ids.remove(&id);
        }
    }
}

impl Default for DenyList {
    fn default() -> Self {
        DenyList::new(DENY_LIST_CAPACITY)
    }
}

impl DenyList {
    /// An empty list holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        DenyList {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses token `id` from now until `exp` (its expiry, Unix seconds).
    /// [`AuthError::Unavailable`] when the list is full of tokens that have
    /// not expired yet.
    pub fn deny(&self, id: TokenId, exp: i64, now: i64) -> Result<(), AuthError> {
        if exp <= now {
            return Ok(()); // Expired already: refused without the list.
        }
        let mut g = self.lock();
        g.prune(now);
        if g.ids.contains(&id) {
            return Ok(());
        }
        if g.ids.len() >= self.capacity {
            return Err(AuthError::Unavailable(
                "too many sessions were signed out recently; try again later, or sign out everywhere"
                    .into(),
            ));
        }
        g.ids.insert(id);
        g.by_exp.insert((exp, id));
        Ok(())
    }

    /// Whether token `id` was signed out. (An id past its expiry may still
    /// answer `true`; its token is refused as expired anyway.)
    pub fn is_denied(&self, id: &TokenId) -> bool {
        self.lock().ids.contains(id)
    }

    /// How many ids are held now.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> TokenId {
        TokenId([n; 16])
    }

    #[test]
    fn denies_until_expiry_then_forgets() {
        let list = DenyList::new(10);
        list.deny(id(1), 100, 10).unwrap();
        list.deny(id(2), 200, 10).unwrap();
        assert!(list.is_denied(&id(1)) && list.is_denied(&id(2)));
        assert!(!list.is_denied(&id(3)));
        // Twice is once.
        list.deny(id(1), 100, 20).unwrap();
        assert_eq!(list.len(), 2);
        // An expired token is not kept.
        list.deny(id(3), 50, 60).unwrap();
        assert!(!list.is_denied(&id(3)));
        // Past 100, the first is dropped at the next write.
        list.deny(id(4), 300, 100).unwrap();
        assert!(!list.is_denied(&id(1)));
        assert!(list.is_denied(&id(2)) && list.is_denied(&id(4)));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn full_refuses_rather_than_grows_until_entries_expire() {
        let list = DenyList::new(3);
        for n in 0..3 {
            list.deny(id(n), 100 + i64::from(n), 0).unwrap();
        }
        let e = list.deny(id(9), 500, 50).unwrap_err();
        assert_eq!(e.kind(), reallive_core::ErrorKind::Unavailable);
        assert_eq!(list.len(), 3);
        assert!(!list.is_denied(&id(9)));
        // One expires: room for one more.
        list.deny(id(9), 500, 100).unwrap();
        assert!(list.is_denied(&id(9)) && !list.is_denied(&id(0)));
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn the_default_holds_a_hundred_thousand() {
        let list = DenyList::default();
        for n in 0..DENY_LIST_CAPACITY as u32 {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&n.to_le_bytes());
            list.deny(TokenId(b), 1_000, 0).unwrap();
        }
        assert!(list.deny(id(255), 1_000, 0).is_err());
        assert_eq!(list.len(), DENY_LIST_CAPACITY);
    }
}
