//! RTP H.264 (RFC 6184) back into Annex-B access units, sans-IO.
//!
//! Packets are taken in sequence order through a small reorder buffer. A
//! hole in the sequence is held open for [`Assembler::new`]'s `max_wait`
//! (the time a NACK and its retransmission need) or until the buffer holds
//! `max_packets`; then it is given up, and every frame it may have touched
//! (the one it interrupted and the one after it) comes out marked
//! `intact: false`, so the caller can drop to the next keyframe. A hole
//! never stalls the stream for longer than `max_wait`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};

/// One access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// Annex-B NAL units with 4-byte start codes.
    pub data: Bytes,
    /// The RTP timestamp shared by its packets.
    pub rtp_ts: u32,
    /// False when a packet of it may be missing or could not be parsed.
    pub intact: bool,
}

/// The frame being put together.
#[derive(Debug, Default)]
struct Partial {
    ts: Option<u32>,
    data: BytesMut,
    /// A fragmented NAL unit is open (FU-A start seen, end not yet).
    in_fu: bool,
    damaged: bool,
}

/// Reorders, reassembles and gives up on holes after a bounded wait.
#[derive(Debug)]
pub(crate) struct Assembler {
    max_wait: Duration,
    max_packets: usize,
    /// Waiting packets by extended sequence number: (timestamp, marker, payload).
    waiting: BTreeMap<u64, (u32, bool, Bytes)>,
    /// The extended sequence number taken next.
    next: Option<u64>,
    /// The highest extended sequence number seen (for unwrapping).
    highest: u64,
    /// When the hole at `next` was first seen.
    hole_since: Option<Instant>,
    /// A hole was given up and not yet charged to a frame.
    hole_pending: bool,
    frame: Partial,
    /// Finished frames not yet handed out (at most two).
    ready: VecDeque<Assembled>,
    /// Packets given up on, in total.
    pub lost: u64,
}

impl Assembler {
    /// An assembler that waits at most `max_wait` for a missing packet and
    /// holds at most `max_packets`.
    pub(crate) fn new(max_wait: Duration, max_packets: usize) -> Self {
        Assembler {
            max_wait,
            max_packets: max_packets.max(1),
            waiting: BTreeMap::new(),
            next: None,
            highest: 0,
            hole_since: None,
            hole_pending: false,
            frame: Partial::default(),
            ready: VecDeque::new(),
            lost: 0,
        }
    }

    /// Takes one packet. Duplicates and packets behind what was already
    /// given up on are ignored.
    pub(crate) fn push(&mut self, seq: u16, ts: u32, marker: bool, payload: Bytes) {
        let ext = self.extend(seq);
        if self.next.is_some_and(|n| ext < n) {
            return;
        }
        if self.next.is_none() {
            self.next = Some(ext);
        }
        self.waiting.entry(ext).or_insert((ts, marker, payload));
    }

    /// When the current hole will be given up, if there is one.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.hole_since.map(|t| t + self.max_wait)
    }

    /// The next complete access unit, if one is ready at `now`.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<Assembled> {
        loop {
            if let Some(done) = self.ready.pop_front() {
                return Some(done);
            }
            let next = self.next?;
            if let Some((ts, marker, payload)) = self.waiting.remove(&next) {
                self.next = Some(next + 1);
                self.hole_since = None;
                self.take(ts, marker, &payload);
                continue;
            }
            let first = *self.waiting.keys().next()?;
            let since = *self.hole_since.get_or_insert(now);
            if now.saturating_duration_since(since) < self.max_wait
                && self.waiting.len() <= self.max_packets
            {
                return None;
            }
            self.lost += first - next;
            self.next = Some(first);
            self.hole_since = None;
            self.hole_pending = true;
        }
    }

    /// Sequence number to a 64-bit one that does not wrap.
    fn extend(&mut self, seq: u16) -> u64 {
        let base = if self.next.is_none() {
            // Far from zero, so a few packets of reordering never go negative.
            1 << 32
        } else {
            self.highest
        };
        let delta = i64::from(seq.wrapping_sub(base as u16) as i16);
        let ext = (base as i64 + delta) as u64;
        if self.next.is_none() || ext > self.highest {
            self.highest = ext;
        }
        ext
    }

    /// Adds a packet, in order, to the frame; queues what it completes
    /// (the previous frame, when a new timestamp begins without a marker,
    /// and this one, on its marker).
    fn take(&mut self, ts: u32, marker: bool, payload: &[u8]) {
        if self.frame.ts.is_some_and(|t| t != ts) {
            // The last frame's marker went missing, or its sender sets none.
            if self.hole_pending {
                self.frame.damaged = true;
            }
            self.finish();
        }
        if self.hole_pending {
            self.frame.damaged = true;
            self.hole_pending = false;
        }
        self.frame.ts = Some(ts);
        if !depacketize(payload, &mut self.frame) {
            self.frame.damaged = true;
        }
        if marker {
            self.finish();
        }
    }

    fn finish(&mut self) {
        let f = std::mem::take(&mut self.frame);
        let Some(ts) = f.ts else { return };
        if f.data.is_empty() && !f.damaged {
            return;
        }
        self.ready.push_back(Assembled {
            data: f.data.freeze(),
            rtp_ts: ts,
            intact: !f.damaged && !f.in_fu,
        });
    }
}

/// Appends one RTP payload's NAL units to `frame` in Annex-B; false if the
/// payload is malformed or of a kind this receiver does not take.
fn depacketize(payload: &[u8], frame: &mut Partial) -> bool {
    const START: [u8; 4] = [0, 0, 0, 1];
    let Some(&first) = payload.first() else {
        // Padding only.
        return true;
    };
    match first & 0x1f {
        0 => false,
        1..=23 => {
            if frame.in_fu {
                frame.in_fu = false;
                return false;
            }
            frame.data.put_slice(&START);
            frame.data.put_slice(payload);
            true
        }
        24 => {
            // STAP-A: [16-bit size][NAL unit]...
            let mut rest = &payload[1..];
            let ok = !frame.in_fu;
            frame.in_fu = false;
            while !rest.is_empty() {
                if rest.len() < 2 {
                    return false;
                }
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if n == 0 || rest.len() < 2 + n {
                    return false;
                }
                frame.data.put_slice(&START);
                frame.data.put_slice(&rest[2..2 + n]);
                rest = &rest[2 + n..];
            }
            ok
        }
        28 => {
            // FU-A: indicator, header (S E R type), fragment.
            let Some(&header) = payload.get(1) else {
                return false;
            };
            let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
            let body = &payload[2..];
            let mut ok = true;
            if start {
                if frame.in_fu {
                    ok = false;
                }
                frame.data.put_slice(&START);
                frame.data.put_u8((first & 0xe0) | (header & 0x1f));
                frame.in_fu = true;
            } else if !frame.in_fu {
                // The start of this NAL unit never arrived.
                return false;
            }
            frame.data.put_slice(body);
            if end {
                frame.in_fu = false;
            }
            ok
        }
        // STAP-B, MTAP16, MTAP24, FU-B: not in packetization-mode 1.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(300);

    /// One packet: (seq, ts, marker, payload).
    type Pkt = (u16, u32, bool, Vec<u8>);

    /// A frame at `ts` as packets from `seq`: an SPS+PPS STAP-A (when
    /// `key`), then one NAL unit of `len` bytes split into FU-A fragments
    /// of at most 100 bytes.
    fn frame(seq: u16, ts: u32, key: bool, len: usize) -> Vec<Pkt> {
        let mut out = Vec::new();
        let mut s = seq;
        if key {
            let (sps, pps) = ([0x67u8, 1, 2, 3], [0x68u8, 4]);
            let mut stap = vec![24u8];
            for n in [&sps[..], &pps[..]] {
                stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
                stap.extend_from_slice(n);
            }
            out.push((s, ts, false, stap));
            s = s.wrapping_add(1);
        }
        let nal_type = if key { 5u8 } else { 1 };
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
        let chunks: Vec<&[u8]> = body.chunks(100).collect();
        for (i, c) in chunks.iter().enumerate() {
            let (start, end) = (i == 0, i + 1 == chunks.len());
            let mut p = vec![
                0x60 | 28,
                nal_type | if start { 0x80 } else { 0 } | if end { 0x40 } else { 0 },
            ];
            p.extend_from_slice(c);
            out.push((s, ts, end, p));
            s = s.wrapping_add(1);
        }
        out
    }

    fn expected(key: bool, len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        if key {
            v.extend_from_slice(&[0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 0, 1, 0x68, 4]);
        }
        v.extend_from_slice(&[0, 0, 0, 1, 0x60 | if key { 5 } else { 1 }]);
        v.extend((0..len).map(|i| (i % 251) as u8 + 1));
        v
    }

    /// Feeds `pkts` at `now` and collects (ts, intact) of what comes out.
    fn feed(a: &mut Assembler, pkts: &[Pkt], now: Instant) -> Vec<(u32, bool)> {
        let mut out = Vec::new();
        for (s, t, m, p) in pkts {
            a.push(*s, *t, *m, Bytes::from(p.clone()));
            while let Some(f) = a.pop(now) {
                out.push((f.rtp_ts, f.intact));
            }
        }
        out
    }

    #[test]
    fn in_order_packets_give_the_frames_back_byte_for_byte() {
        let mut a = Assembler::new(WAIT, 1000);
        let now = Instant::now();
        let mut pkts = frame(65_530, 0, true, 450);
        pkts.extend(frame(65_530u16.wrapping_add(6), 3000, false, 250));
        let mut got = Vec::new();
        for (s, t, m, p) in &pkts {
            a.push(*s, *t, *m, Bytes::from(p.clone()));
            while let Some(f) = a.pop(now) {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2, "across the sequence-number wrap");
        assert_eq!(&got[0].data[..], &expected(true, 450)[..]);
        assert_eq!(&got[1].data[..], &expected(false, 250)[..]);
        assert!(got.iter().all(|f| f.intact));
        assert_eq!(a.lost, 0);
    }

    #[test]
    fn losses_and_reordering_table() {
        // Three frames: key (seq 100..=105), delta (106..=108), delta (109..=111).
        let mut all = frame(100, 0, true, 450);
        all.extend(frame(106, 3000, false, 250));
        all.extend(frame(109, 6000, false, 250));
        let without = |gone: &[u16]| -> Vec<Pkt> {
            all.iter()
                .filter(|p| !gone.contains(&p.0))
                .cloned()
                .collect()
        };
        struct Case {
            name: &'static str,
            pkts: Vec<Pkt>,
            /// What comes out before the hole times out, then after.
            before: Vec<(u32, bool)>,
            after: Vec<(u32, bool)>,
        }
        let mut swapped = all.clone();
        swapped.swap(3, 4);
        let mut late = without(&[107]);
        late.push(all.iter().find(|p| p.0 == 107).cloned().unwrap());
        let cases = [
            Case {
                name: "reordered within a frame",
                pkts: swapped,
                before: vec![(0, true), (3000, true), (6000, true)],
                after: vec![],
            },
            Case {
                name: "a retransmission in time fills the hole",
                pkts: late,
                before: vec![(0, true), (3000, true), (6000, true)],
                after: vec![],
            },
            Case {
                name: "a packet lost mid-frame damages that frame only",
                pkts: without(&[107]),
                before: vec![(0, true)],
                after: vec![(3000, false), (6000, true)],
            },
            Case {
                name: "a lost marker damages that frame and the next",
                pkts: without(&[108]),
                before: vec![(0, true)],
                after: vec![(3000, false), (6000, false)],
            },
            Case {
                name: "a lost first packet damages its frame",
                pkts: without(&[106]),
                before: vec![(0, true)],
                after: vec![(3000, false), (6000, true)],
            },
            Case {
                name: "a whole frame lost damages the one after",
                pkts: without(&[106, 107, 108]),
                before: vec![(0, true)],
                after: vec![(6000, false)],
            },
        ];
        for c in cases {
            let t0 = Instant::now();
            let mut a = Assembler::new(WAIT, 1000);
            let got = feed(&mut a, &c.pkts, t0);
            assert_eq!(got, c.before, "{}: before the wait", c.name);
            assert_eq!(a.pop(t0 + WAIT / 2), None, "{}: still waiting", c.name);
            let mut after = Vec::new();
            while let Some(f) = a.pop(t0 + WAIT) {
                after.push((f.rtp_ts, f.intact));
            }
            // The stream goes on whole after the hole.
            after.extend(feed(&mut a, &frame(112, 9000, false, 50), t0 + WAIT));
            let mut want = c.after.clone();
            want.push((9000, true));
            assert_eq!(after, want, "{}: after the wait", c.name);
        }
    }

    #[test]
    fn a_full_buffer_gives_a_hole_up_without_waiting() {
        let t0 = Instant::now();
        let mut a = Assembler::new(WAIT, 8);
        let mut pkts = frame(0, 0, true, 450);
        pkts.remove(2);
        for i in 1..5u32 {
            pkts.extend(frame(5 + (i as u16 - 1) * 3, i * 3000, false, 250));
        }
        let got = feed(&mut a, &pkts, t0);
        assert_eq!(got.first(), Some(&(0, false)));
        assert!(got.len() >= 3, "{got:?}");
        assert_eq!(a.lost, 1);
        // A late copy of what was given up on is ignored.
        a.push(2, 0, false, Bytes::from_static(&[0x7c, 0x05, 1]));
        assert_eq!(a.pop(t0), None);
    }

    #[test]
    fn malformed_payloads_damage_the_frame_and_never_panic() {
        let t0 = Instant::now();
        for bad in [
            vec![24u8, 0],          // STAP-A with a truncated size
            vec![24u8, 0, 9, 1, 2], // STAP-A size beyond the payload
            vec![28u8],             // FU-A without a header
            vec![0x1d, 0x85, 1],    // FU-B
            vec![0u8, 1, 2],        // type 0
        ] {
            let mut a = Assembler::new(WAIT, 100);
            a.push(1, 0, true, Bytes::from(bad.clone()));
            let f = a.pop(t0).unwrap();
            assert!(!f.intact, "{bad:?}");
        }
        // Padding alone makes no frame.
        let mut a = Assembler::new(WAIT, 100);
        a.push(1, 0, true, Bytes::new());
        assert_eq!(a.pop(t0), None);
    }
}
