//! [`ClientSlots`]: how many of a bounded resource (connections, sockets)
//! each client holds, so that one address cannot take them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Places held per client: an IPv4 address, or an IPv6 /64
/// (`reallive_auth::client_bucket`). An entry lives only while its client
/// holds a place, so the table is bounded by the resource's own cap.
/// Cheap to clone; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct ClientSlots(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One place a client holds; dropping it gives the place back.
#[derive(Debug)]
pub struct ClientSlot {
    slots: ClientSlots,
    bucket: IpAddr,
}

impl ClientSlots {
    /// A place for `ip`'s client, unless it already holds `max` (at least 1).
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let bucket = reallive_auth::client_bucket(ip);
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(bucket).or_insert(0);
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            slots: self.clone(),
            bucket,
        })
    }

    /// Clients holding at least one place.
    pub fn clients(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.slots.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.bucket) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.bucket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_holds_at_most_its_share_and_gets_it_back() {
        let slots = ClientSlots::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a1 = slots.take(ip("192.0.2.1"), 2).unwrap();
        let a2 = slots.take(ip("192.0.2.1"), 2).unwrap();
        assert!(slots.take(ip("192.0.2.1"), 2).is_none());
        // One IPv6 /64 is one client.
        let _v6 = slots.take(ip("2001:db8::1"), 1).unwrap();
        assert!(slots.take(ip("2001:db8::ffff"), 1).is_none());
        assert!(slots.take(ip("192.0.2.2"), 2).is_some());
        drop(a1);
        let _a3 = slots.take(ip("192.0.2.1"), 2).unwrap();
        drop(a2);
        assert_eq!(
            slots.clients(),
            2,
            "192.0.2.1 and the /64; .2's place was dropped"
        );
    }
}
