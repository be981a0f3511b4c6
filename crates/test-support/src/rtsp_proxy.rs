//! A misbehaving middle box for RTSP over TCP: [`RtspProxy`] listens on
//! 127.0.0.1, forwards every connection to a camera (a fake one,
//! [`RtspCameraServer`](crate::RtspCameraServer)), and can be told to break
//! the camera's side of the stream in one [`Fault`]: cut the connection in
//! the middle of an interleaved frame, renumber the RTP packets (a camera
//! restarting its packetiser), stall, or inject garbage.
//!
//! It reads what the camera sends message by message: RTSP responses (head
//! up to the blank line, then `Content-Length` bytes of body) and
//! interleaved frames (`$`, channel, 16-bit length, payload). What the
//! client sends is forwarded as it comes. Every buffer is bounded; input
//! that does not parse closes that connection and never panics. Dropping
//! the proxy closes the listener and every connection.
//!
//! A fault's clock starts, per connection, at the first interleaved frame
//! the camera sends on it (just after `PLAY`), so that a client's
//! reachability check or a slow `DESCRIBE` does not move it.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use std::time::Duration;
//! use reallive_test_support::rtsp_proxy::{Fault, RtspProxy};
//!
//! let camera_addr = "127.0.0.1:8554".parse().unwrap();
//! let proxy = RtspProxy::start(camera_addr, Fault::Stall { after: Duration::from_secs(2) }).await?;
//! let url = proxy.url_for("rtsp://127.0.0.1:8554/stream");
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The longest RTSP message head (status line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// The longest RTSP message body (an SDP) accepted.
const MAX_BODY: usize = 256 * 1024;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What the proxy does to the camera's side of each connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything faithfully.
    #[default]
    None,
    /// `after` the first interleaved frame, forward the next interleaved
    /// frame's header and half its payload, then close both connections:
    /// the client sees the camera hang up in the middle of a frame.
    CloseMidFrame {
        /// From the first interleaved frame.
        after: Duration,
    },
    /// From `after` on, add `seq_offset` to every RTP packet's sequence
    /// number (even channels), as a camera that restarts its packetiser
    /// does; with `ssrc`, also give the RTP packets and the RTCP sender
    /// reports (odd channels) that SSRC. It starts at the first RTP
    /// packet from `after` on that begins an access unit (the one before
    /// it had the marker bit), or with `mid_frame` at the first that
    /// does not, inside an access unit.
    Renumber {
        /// From the first interleaved frame.
        after: Duration,
        /// Added (wrapping) to each sequence number.
        seq_offset: u16,
        /// The new SSRC, if it changes.
        ssrc: Option<u32>,
        /// Added (wrapping) to each RTP timestamp: a camera whose clock
        /// stepped (`0u32.wrapping_sub(5 * 90_000)` steps a 90 kHz video
        /// clock 5 s back).
        ts_offset: u32,
        /// Start inside an access unit rather than at its first packet.
        mid_frame: bool,
    },
    /// From `after` on, forward nothing from the camera to the client,
    /// while both connections stay open (the camera's bytes are read and
    /// dropped, so it is never blocked). The client's requests still reach
    /// the camera.
    Stall {
        /// From the first interleaved frame.
        after: Duration,
    },
    /// At the first interleaved frame from `after` on, inject one bad
    /// frame of `kind`, then go on forwarding.
    Garbage {
        /// From the first interleaved frame.
        after: Duration,
        /// What is wrong with it.
        kind: Garbage,
    },
}

impl Fault {
    fn after(self) -> Option<Duration> {
        match self {
            Fault::None => None,
            Fault::CloseMidFrame { after }
            | Fault::Renumber { after, .. }
            | Fault::Stall { after }
            | Fault::Garbage { after, .. } => Some(after),
        }
    }
}

/// The bad frame a [`Fault::Garbage`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garbage {
    /// A real interleaved frame whose length field says 10 bytes more
    /// than it holds: the client reads into the next frame and loses the
    /// framing.
    WrongLength,
    /// An extra interleaved frame on the frame's channel holding only the
    /// first 6 bytes of an RTP header (12 are the least).
    TruncatedRtpHeader,
}

/// What a proxy has seen, over all its connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted (a client's reachability check is one).
    pub connections: u64,
    /// RTSP messages forwarded from the camera.
    pub rtsp_messages: u64,
    /// Interleaved frames forwarded from the camera, whole.
    pub frames: u64,
    /// Times the fault was applied: frames renumbered, frames dropped in a
    /// stall, garbage injected, or connections cut.
    pub faults: u64,
    /// The H.264 NAL unit types (1..=23, sorted) the camera sent in its RTP
    /// payloads on even channels, unpacking STAP-A and FU-A; meaningful for
    /// an H.264 video stream. 7 and 8 here are SPS and PPS in band.
    pub h264_nal_types: Vec<u8>,
    /// The last SDP the camera sent (the body of its latest
    /// `application/sdp` response, to `DESCRIBE`).
    pub sdp: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    rtsp_messages: AtomicU64,
    frames: AtomicU64,
    faults: AtomicU64,
    /// Bit `t` set: NAL unit type `t` seen.
    nal_types: AtomicU32,
    sdp: Mutex<Option<String>>,
}

/// A TCP proxy in front of an RTSP camera, applying a [`Fault`]; see the
/// module documentation. Stops, closing every connection, when dropped.
#[derive(Debug)]
pub struct RtspProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl RtspProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection
    /// to `upstream`, applying `fault`. Must be called within a tokio
    /// runtime.
    pub async fn start(upstream: SocketAddr, fault: Fault) -> io::Result<RtspProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task: aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else {
                            // Out of descriptors, say: try again shortly.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        c.connections.fetch_add(1, Ordering::Relaxed);
                        connections.spawn(connection(client, upstream, fault, c.clone()));
                    }
                    // Reap finished connections as they go.
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(RtspProxy {
            addr,
            counters,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `camera_url` (`rtsp://[user:pass@]host:port/path`) with the host
    /// and port replaced by the proxy's; credentials and path are kept.
    pub fn url_for(&self, camera_url: &str) -> String {
        let (scheme, rest) = camera_url.split_once("://").unwrap_or(("rtsp", camera_url));
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let userinfo = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{userinfo}{}{path}", self.addr)
    }

    /// What it has seen so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        let bits = c.nal_types.load(Ordering::Relaxed);
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            rtsp_messages: c.rtsp_messages.load(Ordering::Relaxed),
            frames: c.frames.load(Ordering::Relaxed),
            faults: c.faults.load(Ordering::Relaxed),
            h264_nal_types: (1..=23u8).filter(|t| bits & (1 << t) != 0).collect(),
            sdp: c.sdp.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

impl Drop for RtspProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client: connects to the camera and pumps both ways until either
/// side closes, fails, or the fault cuts it.
async fn connection(client: TcpStream, upstream: SocketAddr, fault: Fault, c: Arc<Counters>) {
    let Ok(camera) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = camera.set_nodelay(true);
    let (mut client_rx, client_tx) = client.into_split();
    let (camera_rx, mut camera_tx) = camera.into_split();
    let up = tokio::io::copy(&mut client_rx, &mut camera_tx);
    let down = camera_to_client(camera_rx, client_tx, fault, &c);
    // Either side ending ends both: the sockets close when dropped here.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// One message from the camera, by its length in the buffer.
#[derive(Debug, PartialEq, Eq)]
enum Message {
    /// An RTSP response (or request): head and body.
    Rtsp(usize),
    /// `$`, channel, length, payload: `4 + len` bytes.
    Interleaved { channel: u8, len: usize },
}

/// The message at the start of `buf`, `None` when more bytes are needed,
/// or an error for what is not RTSP.
fn next_message(buf: &[u8]) -> io::Result<Option<Message>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == b'$' {
        let [_, channel, hi, lo, ..] = *buf else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        return Ok((buf.len() >= 4 + len).then_some(Message::Interleaved { channel, len }));
    }
    let head_end = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => i + 4,
        None if buf.len() > MAX_HEAD => return Err(bad("an RTSP message head too long")),
        None => return Ok(None),
    };
    if head_end > MAX_HEAD {
        return Err(bad("an RTSP message head too long"));
    }
    let head =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("an RTSP head not in UTF-8"))?;
    let mut body = 0usize;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            body = value
                .trim()
                .parse()
                .map_err(|_| bad("a Content-Length that is not a number"))?;
        }
    }
    if body > MAX_BODY {
        return Err(bad("an RTSP body too long"));
    }
    Ok((buf.len() >= head_end + body).then_some(Message::Rtsp(head_end + body)))
}

/// Forwards the camera's messages to the client, applying `fault`.
async fn camera_to_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    fault: Fault,
    c: &Counters,
) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut first_frame: Option<Instant> = None;
    let mut injected = false;
    // Whether the last RTP packet ended an access unit (marker bit).
    let mut after_marker = true;
    let mut renumbering = false;
    loop {
        while let Some(message) = next_message(&buf)? {
            let (channel, len) = match message {
                Message::Rtsp(len) => {
                    let m = buf.split_to(len);
                    if let Some(sdp) = sdp_body(&m) {
                        *c.sdp.lock().unwrap_or_else(PoisonError::into_inner) = Some(sdp);
                    }
                    let stalled = matches!(fault, Fault::Stall { .. })
                        && first_frame
                            .is_some_and(|t| fault.after().is_some_and(|a| t.elapsed() >= a));
                    if stalled {
                        c.faults.fetch_add(1, Ordering::Relaxed);
                    } else {
                        to.write_all(&m).await?;
                        c.rtsp_messages.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                Message::Interleaved { channel, len } => (channel, len),
            };
            let mut frame = buf.split_to(4 + len);
            let started = *first_frame.get_or_insert_with(Instant::now);
            let due = fault.after().is_some_and(|a| started.elapsed() >= a);
            let rtp = channel.is_multiple_of(2) && len >= 12;
            if rtp {
                note_nal_types(&frame[4..], &c.nal_types);
            }
            if let Fault::Renumber { mid_frame, .. } = fault
                && due
                && rtp
                && after_marker != mid_frame
            {
                renumbering = true;
            }
            if rtp {
                after_marker = frame[5] & 0x80 != 0;
            }
            match fault {
                Fault::CloseMidFrame { .. } if due => {
                    let cut = 4 + len / 2;
                    to.write_all(&frame[..cut]).await?;
                    to.flush().await?;
                    c.faults.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Fault::Stall { .. } if due => {
                    c.faults.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Fault::Renumber {
                    seq_offset,
                    ssrc,
                    ts_offset,
                    ..
                } if renumbering
                    && renumber(channel, &mut frame[4..], seq_offset, ssrc, ts_offset) =>
                {
                    c.faults.fetch_add(1, Ordering::Relaxed);
                }
                Fault::Garbage { kind, .. } if due && !injected => {
                    injected = true;
                    c.faults.fetch_add(1, Ordering::Relaxed);
                    match kind {
                        Garbage::WrongLength => {
                            let wrong = u16::try_from(len + 10).unwrap_or(u16::MAX);
                            frame[2..4].copy_from_slice(&wrong.to_be_bytes());
                        }
                        Garbage::TruncatedRtpHeader => {
                            let mut short = vec![b'$', channel, 0, 6];
                            short.extend_from_slice(&frame[4..4 + len.min(6)]);
                            short.resize(10, 0);
                            to.write_all(&short).await?;
                        }
                    }
                }
                _ => {}
            }
            to.write_all(&frame).await?;
            c.frames.fetch_add(1, Ordering::Relaxed);
        }
        let n = from.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Bounded: a message is at most MAX_HEAD + MAX_BODY, or 4 + 65535.
        if buf.len() > MAX_HEAD + MAX_BODY + READ_CHUNK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the camera's message does not end",
            ));
        }
    }
}

/// The body of an RTSP message whose `Content-Type` is `application/sdp`.
fn sdp_body(message: &[u8]) -> Option<String> {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&message[..end]).ok()?;
    let is_sdp = head.split("\r\n").any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("content-type")
                && value.trim().eq_ignore_ascii_case("application/sdp")
        })
    });
    is_sdp.then(|| String::from_utf8_lossy(&message[end + 4..]).into_owned())
}

/// Renumbers an RTP packet (even channel) or an RTCP sender report (odd
/// channel) in place; whether it changed anything.
fn renumber(
    channel: u8,
    packet: &mut [u8],
    seq_offset: u16,
    ssrc: Option<u32>,
    ts_offset: u32,
) -> bool {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return false;
    }
    if channel.is_multiple_of(2) {
        let seq = u16::from_be_bytes([packet[2], packet[3]]).wrapping_add(seq_offset);
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]])
            .wrapping_add(ts_offset);
        packet[4..8].copy_from_slice(&ts.to_be_bytes());
        if let Some(ssrc) = ssrc {
            packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
        }
        true
    } else if let Some(ssrc) = ssrc
        && packet[1] == 200
    {
        // A compound RTCP packet starts with the sender report: its
        // sender's SSRC follows the 4-byte header.
        packet[4..8].copy_from_slice(&ssrc.to_be_bytes());
        true
    } else {
        false
    }
}

/// Sets the bits of the H.264 NAL unit types in an RTP packet's payload.
fn note_nal_types(packet: &[u8], seen: &AtomicU32) {
    let Some(payload) = rtp_payload(packet) else {
        return;
    };
    let mut bits = 0u32;
    let Some(&header) = payload.first() else {
        return;
    };
    match header & 0x1f {
        // STAP-A: 16-bit sizes, each followed by a NAL unit.
        24 => {
            let mut rest = &payload[1..];
            while rest.len() >= 3 {
                let size = usize::from(rest.get_u16());
                let Some(nal) = rest.get(..size) else {
                    break;
                };
                if let Some(&h) = nal.first() {
                    bits |= 1 << (h & 0x1f);
                }
                rest = &rest[size..];
            }
        }
        // FU-A, FU-B: the type is in the FU header of the first fragment.
        28 | 29 => {
            if let Some(&fu) = payload.get(1)
                && fu & 0x80 != 0
            {
                bits |= 1 << (fu & 0x1f);
            }
        }
        t => bits |= 1 << t,
    }
    seen.fetch_or(bits, Ordering::Relaxed);
}

/// The payload of an RTP packet, past CSRCs, extension and padding.
fn rtp_payload(packet: &[u8]) -> Option<&[u8]> {
    let &[b0, ..] = packet else {
        return None;
    };
    if b0 >> 6 != 2 {
        return None;
    }
    let mut start = 12 + 4 * usize::from(b0 & 0x0f);
    if b0 & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if b0 & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    packet.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_by_their_lengths() {
        assert_eq!(next_message(b"").unwrap(), None);
        assert_eq!(next_message(b"$\x00\x00").unwrap(), None);
        assert_eq!(next_message(b"$\x00\x00\x03ab").unwrap(), None);
        assert_eq!(
            next_message(b"$\x01\x00\x03abc$").unwrap(),
            Some(Message::Interleaved { channel: 1, len: 3 })
        );
        let r = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\ncontent-length: 4\r\n\r\nv=0\n";
        assert_eq!(next_message(r).unwrap(), Some(Message::Rtsp(r.len())));
        assert_eq!(next_message(&r[..r.len() - 1]).unwrap(), None);
        assert_eq!(sdp_body(r), None, "no Content-Type");
        let sdp = b"RTSP/1.0 200 OK\r\ncontent-type: application/sdp\r\n\r\nv=0\r\n";
        assert_eq!(sdp_body(sdp).as_deref(), Some("v=0\r\n"));
        let no_body = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\n\r\n$";
        assert_eq!(
            next_message(no_body).unwrap(),
            Some(Message::Rtsp(no_body.len() - 1))
        );
        // Garbage: no end of head within bounds, a bad length, not UTF-8.
        assert!(next_message(&vec![b'x'; MAX_HEAD + 1]).is_err());
        assert!(next_message(b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(next_message(b"RTSP/1.0 200 OK\r\nContent-Length: 999999999\r\n\r\n").is_err());
        assert!(next_message(b"\xff\xfe\r\n\r\n").is_err());
    }

    #[test]
    fn renumbering_changes_sequence_timestamp_and_ssrc_only() {
        let mut rtp = [0x80, 96, 0xff, 0xfe, 1, 2, 3, 4, 9, 9, 9, 9, 0x65];
        assert!(renumber(0, &mut rtp, 5, Some(0x0102_0304), 0));
        assert_eq!(rtp, [0x80, 96, 0, 3, 1, 2, 3, 4, 1, 2, 3, 4, 0x65]);
        assert!(renumber(0, &mut rtp, 0, None, 0x0100_0000));
        assert_eq!(rtp[4..8], [2, 2, 3, 4]);
        let mut sr = [0x80, 200, 0, 6, 9, 9, 9, 9, 0, 0, 0, 0];
        assert!(renumber(1, &mut sr, 5, Some(7), 0));
        assert_eq!(sr[4..8], [0, 0, 0, 7]);
        assert!(!renumber(1, &mut sr, 5, None, 0));
        assert!(!renumber(0, &mut [0x80, 96, 0], 5, None, 0), "too short");
    }

    #[test]
    fn nal_types_are_seen_through_aggregation_and_fragmentation() {
        let seen = AtomicU32::new(0);
        let header = [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        let with = |payload: &[u8]| [&header[..], payload].concat();
        // STAP-A holding an SPS and a PPS.
        note_nal_types(&with(&[24, 0, 2, 0x67, 0, 0, 2, 0x68, 0]), &seen);
        // FU-A: the start of an IDR; a middle fragment says nothing.
        note_nal_types(&with(&[0x7c, 0x85, 0]), &seen);
        note_nal_types(&with(&[0x7c, 0x01, 0]), &seen);
        // A single P slice, and nonsense.
        note_nal_types(&with(&[0x41, 0]), &seen);
        note_nal_types(&[0x80, 1], &seen);
        note_nal_types(&with(&[24, 0xff, 0xff, 1]), &seen);
        assert_eq!(
            seen.load(Ordering::Relaxed),
            1 << 7 | 1 << 8 | 1 << 5 | 1 << 1
        );
    }

    #[tokio::test]
    async fn a_broken_camera_closes_the_connection_and_nothing_panics() {
        // A "camera" that answers with bytes that are not RTSP.
        let camera = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let camera_addr = camera.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = camera.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(&vec![b'x'; MAX_HEAD + 100]).await;
                    let mut b = [0u8; 64];
                    while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
                });
            }
        });
        let proxy = RtspProxy::start(camera_addr, Fault::None).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut got = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got))
            .await
            .expect("the proxy closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "nothing forwarded");
        assert_eq!(proxy.stats().connections, 1);
        assert_eq!(
            proxy.url_for("rtsp://u:p@127.0.0.1:1/a/b"),
            format!("rtsp://u:p@127.0.0.1:{}/a/b", proxy.port())
        );
        // Dropped: the port no longer accepts.
        let addr = proxy.addr();
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
