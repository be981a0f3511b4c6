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

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Open ICE-TCP connections, at most; more are closed at once.
pub(crate) const MAX_CONNECTIONS: usize = 512;
/// Packets queued towards one connection; when full, packets are dropped as
/// a full UDP socket buffer would drop them (NACK and PLI recover).
const WRITE_QUEUE: usize = 256;
/// Packets from every connection queued for the relay task; a reader waits
/// (TCP pushes back on the peer) rather than drop.
pub(crate) const READ_QUEUE: usize = 1024;
/// A connection that sends nothing for this long is closed: ICE consent
/// checks arrive every few seconds on a live one.
const IDLE: Duration = Duration::from_secs(30);
/// The most a write may wait for a slow peer before the connection is
/// given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

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
/// task, reporting to `events`.
pub(crate) async fn serve(
    listener: TcpListener,
    events: mpsc::Sender<TcpEvent>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let events = events.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, remote, events, shutdown).await;
            drop(slot);
        });
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
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
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(IDLE, reader.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let len = usize::from(u16::from_be_bytes(len));
            let body = &mut buf[..len];
            match tokio::time::timeout(IDLE, reader.read_exact(body)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
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
        tokio::spawn(serve(listener, tx, stop.clone()));
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
}
