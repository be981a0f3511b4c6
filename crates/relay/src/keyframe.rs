//! The keyframe policy, sans-IO: when to ask a publisher for a keyframe,
//! and which frames a subscriber may receive.

use std::time::{Duration, Instant};

/// At most one keyframe request per this interval reaches a publisher.
pub const MIN_KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Merges keyframe requests for one publisher: the first goes out at once,
/// later ones inside the window are remembered and sent when it closes.
/// None is lost; none is sent twice within the window.
#[derive(Clone, Debug, Default)]
pub struct KeyframeMerger {
    last_sent: Option<Instant>,
    before_last: Option<Instant>,
    pending: bool,
    /// Requests asked for, and requests sent.
    asked: u64,
    sent: u64,
}

impl KeyframeMerger {
    /// Someone wants a keyframe. Returns whether to send a request now.
    pub fn request(&mut self, now: Instant) -> bool {
        self.asked += 1;
        self.pending = true;
        self.poll(now)
    }

    /// Whether a remembered request is due now.
    pub fn poll(&mut self, now: Instant) -> bool {
        if !self.pending {
            return false;
        }
        match self.last_sent {
            Some(t) if now.duration_since(t) < MIN_KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                self.pending = false;
                self.before_last = self.last_sent;
                self.last_sent = Some(now);
                self.sent += 1;
                true
            }
        }
    }

    /// When a remembered request falls due, if one is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.pending, self.last_sent) {
            (true, Some(t)) => Some(t + MIN_KEYFRAME_REQUEST_INTERVAL),
            _ => None,
        }
    }

    /// The request [`poll`](Self::poll) or [`request`](Self::request) said
    /// to send could not be (the publisher's stream has no packets yet): it
    /// stays pending, and does not use up the window.
    pub fn unsent(&mut self) {
        self.pending = true;
        self.last_sent = self.before_last;
        self.sent = self.sent.saturating_sub(1);
    }

    /// A keyframe arrived: a pending request is answered already.
    pub fn keyframe_seen(&mut self) {
        self.pending = false;
    }

    /// (asked, sent) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.asked, self.sent)
    }
}

/// Whether a subscriber may be sent the next frame: after joining, after a
/// publisher gap and after an overflow, only from a keyframe on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Waiting for a keyframe; delta frames are dropped.
    WaitKeyframe,
    /// Frames flow.
    Open,
}

impl Gate {
    /// Whether to forward a frame; opens on a keyframe.
    pub fn pass(&mut self, keyframe: bool) -> bool {
        if keyframe {
            *self = Gate::Open;
        }
        *self == Gate::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_merge_to_one_per_500_ms() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut m = KeyframeMerger::default();
        // (time, call, expected send-now)
        enum C {
            Req,
            Poll,
        }
        let script = [
            (0, C::Req, true),   // first: at once
            (10, C::Req, false), // merged
            (20, C::Req, false), // merged
            (499, C::Poll, false),
            (500, C::Poll, true), // the remembered one, when the window closes
            (501, C::Poll, false),
            (800, C::Req, false),
            (1000, C::Poll, true),
            (2000, C::Poll, false), // nothing pending
            (2000, C::Req, true),   // a quiet publisher gets it at once
        ];
        for (i, (at, call, want)) in script.into_iter().enumerate() {
            let got = match call {
                C::Req => m.request(ms(at)),
                C::Poll => m.poll(ms(at)),
            };
            assert_eq!(got, want, "step {i} at {at} ms");
        }
        assert_eq!(m.counts(), (5, 4));
        // A request that could not be sent stays pending and may go at once.
        let mut u = KeyframeMerger::default();
        assert!(u.request(ms(0)));
        u.unsent();
        assert!(
            u.poll(ms(1)),
            "retried at once: the failed one did not count"
        );
        assert!(!u.request(ms(2)));
        assert_eq!(u.counts(), (2, 1));
        // A keyframe answers a pending request.
        assert!(!m.request(ms(2100)));
        assert_eq!(m.next_due(), Some(ms(2500)));
        m.keyframe_seen();
        assert!(!m.poll(ms(2600)));
        assert_eq!(m.next_due(), None);
    }

    #[test]
    fn the_gate_opens_on_a_keyframe() {
        let mut g = Gate::WaitKeyframe;
        let frames = [false, false, true, false, false];
        let passed: Vec<bool> = frames.iter().map(|k| g.pass(*k)).collect();
        assert_eq!(passed, [false, false, true, true, true]);
    }
}
