//! ICE-TCP (RFC 6544) for the relay: passive candidates on a TCP port, so
//! a peer whose UDP is blocked (a strict firewall, some corporate and
//! mobile networks) still reaches the relay without TURN.
//!
//! Each accepted connection carries STUN, DTLS and SRTP packets framed as
//! RFC 4571 says: a 16-bit big-endian length, then the packet. A task per
//! connection reads frames and hands them to the relay task, which owns
//! every peer; the relay task hands packets back to a bounded writer queue
//! per connection. Nothing here knows about sessions: the ICE credentials
//! in the first STUN check decide whose the connection is, exactly as for
//! a new UDP address.
//!
//! Anyone can open a TCP connection, so each is bounded: [`Limits`] caps
//! them in all and per address, gives a connection a few seconds to send
//! its first packet (an ICE check), and closes one that falls silent.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Packets queued towards one connection; when full, packets are dropped as
/// a full UDP socket buffer would drop them (NACK and PLI recover).
const WRITE_QUEUE: usize = 256;
/// Packets from every connection queued for the relay task; a reader waits
/// (TCP pushes back on the peer) rather than drop.
pub(crate) const READ_QUEUE: usize = 1024;
/// The most a write may wait for a slow peer before the connection is
/// given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one ICE-TCP listener allows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Open connections in all; more are closed at once.
    pub(crate) connections: usize,
    /// Open connections from one address (a NAT hides a household, so not
    /// one).
    pub(crate) per_ip: usize,
    /// How long a new connection has to send its first packet.
    pub(crate) first_packet: Duration,
    /// A connection that sends nothing for this long is closed: ICE consent
    /// checks arrive every few seconds on a live one.
    pub(crate) idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 256,
            per_ip: 16,
            first_packet: Duration::from_secs(5),
            idle: Duration::from_secs(30),
        }
    }
}

/// Open connections per address; an entry leaves with its last one.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

impl PerIp {
    /// Counts one more from `ip`, unless it has `max` already.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            map: self.clone(),
            ip,
        })
    }
}

/// One connection's place in [`PerIp`], given back on drop.
struct IpSlot {
    map: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.map.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What the connection tasks tell the relay task.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A connection from `remote` was accepted; packets for it go to
    /// `writer`.
    Opened {
        remote: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// One framed packet arrived.
    Packet {
        remote: SocketAddr,
        local: SocketAddr,
        data: Vec<u8>,
    },
    /// The connection ended.
    Closed { remote: SocketAddr },
}

/// Accepts connections on `listener` until `shutdown`, each on its own
/// task within `limits`, reporting to `events`.
pub(crate) async fn serve(
    listener: TcpListener,
    limits: Limits,
    events: mpsc::Sender<TcpEvent>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let per_ip = Arc::new(PerIp::default());
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait instead of spinning.
                tracing::warn!("ICE-TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "ICE-TCP: too many connections; closed");
            continue;
        };
        let Some(ip_slot) = per_ip.enter(remote.ip(), limits.per_ip) else {
            tracing::debug!(%remote, "ICE-TCP: too many connections from this address; closed");
            continue;
        };
        let events = events.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, remote, limits, events, shutdown).await;
            drop((slot, ip_slot));
        });
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    limits: Limits,
    events: mpsc::Sender<TcpEvent>,
    shutdown: CancellationToken,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events
        .send(TcpEvent::Opened { remote, writer: tx })
        .await
        .is_err()
    {
        return;
    }
    let write = async {
        let mut framed = Vec::with_capacity(2048);
        while let Some(packet) = rx.recv().await {
            let Ok(len) = u16::try_from(packet.len()) else {
                continue;
            };
            framed.clear();
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&packet);
            match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    };
    let read = async {
        let mut buf = vec![0u8; usize::from(u16::MAX)];
        let mut wait = limits.first_packet;
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(wait, reader.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let len = usize::from(u16::from_be_bytes(len));
            let body = &mut buf[..len];
            match tokio::time::timeout(wait, reader.read_exact(body)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            wait = limits.idle;
            let packet = TcpEvent::Packet {
                remote,
                local,
                data: body.to_vec(),
            };
            if events.send(packet).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = write => {}
        () = read => {}
    }
    let _ = events.send(TcpEvent::Closed { remote }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames in both directions, RFC 4571: what the peer writes arrives
    /// whole (even split across writes), and what the relay queues is
    /// written with its length.
    #[tokio::test]
    async fn frames_cross_both_ways_and_a_close_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Limits::default(), tx, stop.clone()));
        let mut peer = TcpStream::connect(addr).await.unwrap();
        let Some(TcpEvent::Opened { remote, writer, .. }) = rx.recv().await else {
            panic!("no Opened");
        };
        assert_eq!(remote, peer.local_addr().unwrap());
        peer.write_all(&[0, 5, b'h', b'e']).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        peer.write_all(b"llo\x00\x01!").await.unwrap();
        for want in [&b"hello"[..], b"!"] {
            match rx.recv().await {
                Some(TcpEvent::Packet { data, .. }) => assert_eq!(data, want),
                other => panic!("{other:?}"),
            }
        }
        writer.send(b"back".to_vec()).await.unwrap();
        let mut got = [0u8; 6];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"\x00\x04back");
        drop(peer);
        assert!(matches!(rx.recv().await, Some(TcpEvent::Closed { .. })));
        stop.cancel();
    }

    /// Whether the relay closed `peer`: a read that ends (or fails) within
    /// `within`, where a live connection would keep waiting.
    async fn closed(peer: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(within, peer.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// A hostile client cannot hold the listener: one address gets
    /// `per_ip` connections, and a connection that sends nothing is closed
    /// after `first_packet`.
    #[tokio::test]
    async fn one_address_gets_its_share_and_a_silent_connection_is_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let limits = Limits {
            connections: 8,
            per_ip: 3,
            first_packet: Duration::from_millis(300),
            idle: Duration::from_secs(30),
        };
        tokio::spawn(serve(listener, limits, tx, stop.clone()));
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            // Each sends a packet in time: it stays.
            c.write_all(&[0, 1, b'x']).await.unwrap();
            held.push(c);
        }
        // A 4th is closed at once, though it speaks in time.
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let _ = fourth.write_all(&[0, 1, b'x']).await;
        let started = std::time::Instant::now();
        assert!(
            closed(&mut fourth, Duration::from_secs(2)).await,
            "a 4th from one address"
        );
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        for c in &mut held {
            assert!(
                !closed(c, Duration::from_millis(500)).await,
                "the three that spoke stay"
            );
        }
        // One leaves: its place is free again, but a silent one is closed
        // after the first-packet deadline.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        assert!(closed(&mut silent, Duration::from_secs(2)).await);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        while rx.try_recv().is_ok() {}
        stop.cancel();
    }
}
