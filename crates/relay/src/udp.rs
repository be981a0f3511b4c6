//! The relay's socket I/O: datagrams in by `recvmmsg`, out by UDP GSO.
//!
//! A frame of 1080p at 4 Mbit/s is about 14 RTP packets, and the relay
//! sends each of them to every subscriber. One `sendto` per packet made the
//! kernel's UDP send path a third of the relay's CPU. The packets of one
//! frame for one subscriber go to one address and (but for the last) have
//! one size, so they leave as one GSO send: one syscall and one route
//! lookup for the lot. Where GSO is missing, `quinn-udp` falls back to one
//! datagram per send.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::time::Duration;

use quinn_udp::{RecvMeta, UdpSocketState};
use reallive_core::LatencyHistogram;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::core::Transmit;

/// Datagrams read per `recvmmsg`.
const RECV_BATCH: usize = 16;
/// Room for one read: with GRO, several datagrams of a peer in one buffer.
const RECV_BUFFER: usize = 64 * 1024;
/// The most one GSO send may carry (the UDP length field's limit, less
/// headers).
const GSO_MAX_BYTES: usize = 60 * 1024;

/// One GSO send planned from consecutive transmits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    /// Where all of it goes.
    pub destination: SocketAddr,
    /// Transmits `start..end` of the slice it was planned from.
    pub start: usize,
    /// End, exclusive.
    pub end: usize,
    /// The size of every segment but the last, which may be shorter.
    pub segment: usize,
}

/// Groups consecutive transmits to one destination into GSO sends: every
/// segment but the last has the first one's size, the last is no larger,
/// at most `max_segments` each and [`GSO_MAX_BYTES`] in all. Order is kept.
pub(crate) fn plan(transmits: &[Transmit], max_segments: usize) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    let max_segments = max_segments.max(1);
    let mut open: Option<(Batch, usize, bool)> = None; // batch, bytes, closed by a short segment
    for (i, t) in transmits.iter().enumerate() {
        let len = t.contents.len();
        if let Some((b, bytes, short)) = &mut open {
            let fits = b.destination == t.destination
                && !*short
                && len <= b.segment
                && b.end - b.start < max_segments
                && *bytes + len <= GSO_MAX_BYTES;
            if fits {
                b.end = i + 1;
                *bytes += len;
                *short = len < b.segment;
                continue;
            }
            out.push(*b);
        }
        open = Some((
            Batch {
                destination: t.destination,
                start: i,
                end: i + 1,
                segment: len,
            },
            len,
            false,
        ));
    }
    if let Some((b, _, _)) = open {
        out.push(b);
    }
    out
}

/// The relay's UDP socket with batched I/O.
pub(crate) struct Socket {
    socket: UdpSocket,
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    scratch: Vec<u8>,
    /// Datagrams the kernel refused (a full buffer): dropped, like the
    /// network would, and recovered by NACK or a keyframe request.
    pub dropped: u64,
}

impl Socket {
    pub(crate) fn new(socket: UdpSocket) -> io::Result<Socket> {
        let state = UdpSocketState::new((&socket).into())?;
        Ok(Socket {
            socket,
            state,
            bufs: (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUFFER]).collect(),
            meta: vec![RecvMeta::default(); RECV_BATCH],
            scratch: Vec::with_capacity(GSO_MAX_BYTES),
            dropped: 0,
        })
    }

    /// Waits until datagrams may be read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what is waiting, without blocking, handing each datagram to
    /// `each(from, bytes, kernel receive time)`. Stops after `rounds`
    /// batches, so one flood cannot starve timers and commands.
    pub(crate) fn recv_ready(
        &mut self,
        rounds: usize,
        mut each: impl FnMut(SocketAddr, &[u8], Option<Duration>),
    ) {
        for _ in 0..rounds {
            let n = {
                let mut iovs: Vec<IoSliceMut<'_>> =
                    self.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                let (socket, state, meta) = (&self.socket, &self.state, &mut self.meta);
                socket.try_io(Interest::READABLE, || {
                    state.recv(socket.into(), &mut iovs, meta)
                })
            };
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors surface here on Linux; they concern one peer.
                Err(e) => {
                    tracing::trace!("recv: {e}");
                    continue;
                }
            };
            for (meta, buf) in self.meta.iter().zip(&self.bufs).take(n) {
                let stride = meta.stride.max(1);
                for d in buf[..meta.len.min(buf.len())].chunks(stride) {
                    each(meta.addr, d, meta.timestamp);
                }
            }
            if n < RECV_BATCH {
                return;
            }
        }
    }

    /// Sends `transmits` in order, batched by [`plan`]; never waits.
    ///
    /// `received` is when the kernel received (Unix time) the datagrams
    /// that caused these transmits, the earliest of them; each send then
    /// records `now - received` in `latency`: the time a packet spent in
    /// the relay, socket queue included.
    pub(crate) fn send_all(
        &mut self,
        transmits: impl Iterator<Item = Transmit>,
        received: Option<Duration>,
        latency: &LatencyHistogram,
    ) {
        let transmits: Vec<Transmit> = transmits.collect();
        if transmits.is_empty() {
            return;
        }
        for b in plan(&transmits, self.state.max_gso_segments()) {
            self.scratch.clear();
            for t in &transmits[b.start..b.end] {
                self.scratch.extend_from_slice(&t.contents);
            }
            let t = quinn_udp::Transmit {
                destination: b.destination,
                ecn: None,
                contents: &self.scratch,
                segment_size: (b.end - b.start > 1).then_some(b.segment),
                src_ip: None,
            };
            let (socket, state) = (&self.socket, &self.state);
            let r = socket.try_io(Interest::WRITABLE, || state.try_send(socket.into(), &t));
            match r {
                Ok(()) => {
                    if let Some(t) = received {
                        let now = reallive_core::time::UtcNs::now().since_epoch();
                        latency.record(now.saturating_sub(t));
                    }
                }
                Err(e) => {
                    self.dropped += (b.end - b.start) as u64;
                    tracing::trace!(to = %b.destination, "send: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(to: u16, len: usize) -> Transmit {
        let a: SocketAddr = ([127, 0, 0, 1], 1000).into();
        Transmit {
            proto: str0m::net::Protocol::Udp,
            source: a,
            destination: ([127, 0, 0, 1], to).into(),
            contents: vec![0; len],
        }
    }

    fn shape(ts: &[Transmit], max: usize) -> Vec<(u16, usize, usize, usize)> {
        plan(ts, max)
            .iter()
            .map(|b| (b.destination.port(), b.start, b.end, b.segment))
            .collect()
    }

    #[test]
    fn planning_table() {
        // (transmits as (port, len), max segments, batches as (port, start, end, segment))
        type Case = (
            &'static [(u16, usize)],
            usize,
            &'static [(u16, usize, usize, usize)],
        );
        let cases: &[Case] = &[
            (&[], 64, &[]),
            (&[(1, 1200)], 64, &[(1, 0, 1, 1200)]),
            // One frame to one subscriber: one send, the short tail included.
            (
                &[(1, 1200), (1, 1200), (1, 1200), (1, 700)],
                64,
                &[(1, 0, 4, 1200)],
            ),
            // Frames to two subscribers, one after the other.
            (
                &[(1, 1200), (1, 900), (2, 1200), (2, 900)],
                64,
                &[(1, 0, 2, 1200), (2, 2, 4, 1200)],
            ),
            // A short segment ends the batch: what follows starts a new one.
            (
                &[(1, 1200), (1, 900), (1, 1200)],
                64,
                &[(1, 0, 2, 1200), (1, 2, 3, 1200)],
            ),
            // A longer segment cannot join.
            (
                &[(1, 100), (1, 1200)],
                64,
                &[(1, 0, 1, 100), (1, 1, 2, 1200)],
            ),
            // No GSO: one datagram per send.
            (
                &[(1, 1200), (1, 1200)],
                1,
                &[(1, 0, 1, 1200), (1, 1, 2, 1200)],
            ),
            // The segment count limit.
            (
                &[(1, 10), (1, 10), (1, 10)],
                2,
                &[(1, 0, 2, 10), (1, 2, 3, 10)],
            ),
            // The byte limit: 51 segments of 1200 pass 60 KiB.
            (&[(1, 1200); 52], 64, &[(1, 0, 51, 1200), (1, 51, 52, 1200)]),
            // Order is kept: back to the first destination is a new batch.
            (
                &[(1, 50), (2, 50), (1, 50)],
                64,
                &[(1, 0, 1, 50), (2, 1, 2, 50), (1, 2, 3, 50)],
            ),
        ];
        for (input, max, want) in cases {
            let ts: Vec<Transmit> = input.iter().map(|(p, l)| t(*p, *l)).collect();
            assert_eq!(&shape(&ts, *max), want, "input {input:?} max {max}");
        }
    }
}
