//! The relay's tokio shell: one UDP socket, one task, the [`Core`] inside.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use reallive_core::{AudioFrame, Codec, EncodedFrame, LatencyHistogram};

use crate::RelayError;
use crate::core::{CameraCounters, Core, PeerRole, RelayEvent, SessionId};
use crate::tcp::{self, TcpEvent};
use crate::udp::Socket;
use str0m::net::Protocol;

/// Commands queued to the relay task; more wait at the caller.
const COMMAND_QUEUE: usize = 256;
/// Events queued for the server; a server that stops reading loses the
/// oldest kind of news only (media up/down), never blocks the relay.
const EVENT_QUEUE: usize = 1024;
/// `recvmmsg` batches read per wakeup before timers and sends get a turn.
const RECV_ROUNDS: usize = 4;

/// How the relay listens and what it advertises.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The UDP address to bind; port 0 picks one.
    pub bind: SocketAddr,
    /// Extra addresses to advertise as host candidates on the same port
    /// (public IPs of a NATed box with the port forwarded).
    pub public_ips: Vec<IpAddr>,
    /// Also take ICE-TCP on this TCP address (port 0 picks one), offering
    /// passive TCP candidates there, on the same IPs as the UDP ones: for
    /// peers whose UDP is blocked. Its own port, not the UDP one: the
    /// `webrtc` crate (the pusher's and puller's stack) finds a remote
    /// candidate by address alone, so a UDP and a TCP candidate on one
    /// `ip:port` make its TCP checks fail.
    pub ice_tcp: Option<SocketAddr>,
    /// Each camera's current GOP kept for new viewers' first frame, at
    /// most this many bytes ([`DEFAULT_GOP_CACHE_BYTES`](crate::DEFAULT_GOP_CACHE_BYTES); 0 turns it off).
    pub gop_cache_bytes: usize,
    /// Local cameras transcoded live at once, for viewers that cannot play
    /// their stream ([`default_max_transcodes`](crate::default_max_transcodes):
    /// one per core; 0 turns live transcoding off).
    pub max_transcodes: usize,
}

/// An accepted offer.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The new session.
    pub session: SessionId,
    /// The SDP answer.
    pub answer: String,
    /// The viewer gets its camera's live transcode (H.264 made from what
    /// it could not play): a user interface says so.
    pub transcoded: bool,
}

/// A local camera's live transcode as the relay wants it, kept up to date
/// by the relay task: the camera's source runs a transcoder while
/// [`wanted`](Self::wanted), and asks it for a keyframe when
/// [`take_keyframe`](Self::take_keyframe) says so.
#[derive(Debug, Default)]
pub struct TranscodeWant {
    wanted: AtomicBool,
    keyframe: AtomicBool,
}

impl TranscodeWant {
    /// Whether a viewer needs the transcode, or left less than
    /// [`TRANSCODE_LINGER`](crate::TRANSCODE_LINGER) ago.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Whether a viewer asked for a keyframe since the last call.
    pub fn take_keyframe(&self) -> bool {
        self.keyframe.swap(false, Ordering::Relaxed)
    }
}

enum Command {
    Accept {
        camera: i64,
        role: PeerRole,
        sdp: String,
        reply: oneshot::Sender<Result<Accepted, RelayError>>,
    },
    Candidate {
        session: SessionId,
        candidate: String,
    },
    Close {
        session: SessionId,
    },
    LocalFrame {
        camera: i64,
        frame: EncodedFrame,
    },
    LocalGop {
        camera: i64,
        frames: Vec<EncodedFrame>,
    },
    LocalAudio {
        camera: i64,
        frame: AudioFrame,
    },
    LocalVideo {
        camera: i64,
        video: Option<(Codec, bool)>,
    },
    LocalTranscoded {
        camera: i64,
        frame: EncodedFrame,
    },
}

/// A handle on the running relay. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Relay {
    commands: mpsc::Sender<Command>,
    local: SocketAddr,
    shared: Arc<Shared>,
    gop_cache_bytes: usize,
}

/// What the relay task publishes for the server.
#[derive(Debug, Default)]
struct Shared {
    counters: Mutex<BTreeMap<i64, CameraCounters>>,
    /// From the kernel receiving a datagram to the relay handing what it
    /// caused (forwarded media, above all) to the kernel.
    latency: LatencyHistogram,
    /// Per local camera: whether it has a viewer, so that its source
    /// sends frames only then.
    watched: Mutex<HashMap<i64, Arc<AtomicBool>>>,
    /// Per local camera: whether a viewer took audio, so that its source
    /// sends (and transcodes) its sound only then.
    heard: Mutex<HashMap<i64, Arc<AtomicBool>>>,
    /// Per local camera: its live transcode.
    transcodes: Mutex<HashMap<i64, Arc<TranscodeWant>>>,
}

impl Relay {
    /// Binds the socket and starts the relay task; it stops when
    /// `shutdown` fires. Events (media up/down, sessions ended) arrive on
    /// the returned receiver.
    pub async fn start(
        config: RelayConfig,
        shutdown: CancellationToken,
    ) -> Result<(Relay, mpsc::Receiver<RelayEvent>), RelayError> {
        str0m::crypto::from_feature_flags().install_process_default();
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|source| RelayError::Bind {
                addr: config.bind,
                source,
            })?;
        let local = socket.local_addr().map_err(|source| RelayError::Bind {
            addr: config.bind,
            source,
        })?;
        let socket = Socket::new(socket).map_err(|source| RelayError::Bind {
            addr: config.bind,
            source,
        })?;
        let candidates = candidates(local, &config.public_ips);
        let mut core = Core::new(candidates.clone())?
            .with_gop_cache(config.gop_cache_bytes)
            .with_transcode_limit(config.max_transcodes);
        let span = tracing::info_span!("relay", %local);
        let tcp = if let Some(bind) = config.ice_tcp {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|source| RelayError::Bind { addr: bind, source })?;
            let port = listener
                .local_addr()
                .map_err(|source| RelayError::Bind { addr: bind, source })?
                .port();
            core = core.with_tcp(
                candidates
                    .iter()
                    .map(|c| SocketAddr::new(c.ip(), port))
                    .collect(),
            );
            let (ttx, trx) = mpsc::channel(tcp::READ_QUEUE);
            tokio::spawn(
                tcp::serve(listener, tcp::Limits::default(), ttx, shutdown.clone())
                    .instrument(span.clone()),
            );
            Some(trx)
        } else {
            None
        };
        tracing::info!(%local, ?candidates, ice_tcp = tcp.is_some(), "relay listening");
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (etx, erx) = mpsc::channel(EVENT_QUEUE);
        let shared = Arc::new(Shared::default());
        let io = Io {
            socket,
            local,
            tcp,
            tcp_writers: HashMap::new(),
        };
        tokio::spawn(run(core, io, rx, etx, shared.clone(), shutdown).instrument(span));
        Ok((
            Relay {
                commands: tx,
                local,
                shared,
                gop_cache_bytes: config.gop_cache_bytes,
            },
            erx,
        ))
    }

    /// The GOP cache's bound per camera.
    pub fn gop_cache_bytes(&self) -> usize {
        self.gop_cache_bytes
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts an offer for `camera` as `role`: the session and the answer.
    pub async fn accept(
        &self,
        camera: i64,
        role: PeerRole,
        sdp: String,
    ) -> Result<Accepted, RelayError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Accept {
                camera,
                role,
                sdp,
                reply,
            })
            .await
            .map_err(|_| RelayError::Stopped)?;
        rx.await.map_err(|_| RelayError::Stopped)?
    }

    /// Adds a trickled candidate; an unknown session is ignored.
    pub async fn add_candidate(&self, session: SessionId, candidate: String) {
        let _ = self
            .commands
            .send(Command::Candidate { session, candidate })
            .await;
    }

    /// Ends a session.
    pub async fn close(&self, session: SessionId) {
        let _ = self.commands.send(Command::Close { session }).await;
    }

    /// Forwards a frame from a source in this process (an NVR's RTSP
    /// camera) to `camera`'s subscribers. Never waits: when the relay is
    /// behind, the frame is dropped and false returned (subscribers then
    /// wait for the next keyframe, as after any loss).
    pub fn offer_local(&self, camera: i64, frame: EncodedFrame) -> bool {
        self.commands
            .try_send(Command::LocalFrame { camera, frame })
            .is_ok()
    }

    /// Hands over a local camera's current GOP (keyframe first), kept
    /// while nobody watched: the first viewer starts at its keyframe. Never
    /// waits; false when the relay is behind.
    pub fn offer_local_gop(&self, camera: i64, frames: Vec<EncodedFrame>) -> bool {
        self.commands
            .try_send(Command::LocalGop { camera, frames })
            .is_ok()
    }

    /// Whether local camera `camera` has a viewer, kept up to date by the
    /// relay: a source offers frames only while it is set (see
    /// `docs/design/live.md`, "An instant first frame").
    pub fn watched(&self, camera: i64) -> Arc<AtomicBool> {
        self.shared
            .watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(camera)
            .or_default()
            .clone()
    }

    /// Forwards a local camera's Opus packet to its viewers that took
    /// audio. Never waits; false when the relay is behind (the packet is
    /// lost: 20 ms of sound).
    pub fn offer_local_audio(&self, camera: i64, frame: AudioFrame) -> bool {
        self.commands
            .try_send(Command::LocalAudio { camera, frame })
            .is_ok()
    }

    /// Tells the relay what local camera `camera` sends, from its first
    /// keyframe and whenever it changes (`None` when the source goes):
    /// `codec`, and whether it may carry B-frames. Viewers that cannot play
    /// it get its live transcode. Never waits; false when the relay is
    /// behind (say it again with the next frame).
    pub fn set_local_video(&self, camera: i64, video: Option<(Codec, bool)>) -> bool {
        self.commands
            .try_send(Command::LocalVideo { camera, video })
            .is_ok()
    }

    /// Forwards a frame of local camera `camera`'s live transcode to the
    /// viewers that need it. Never waits; false when the relay is behind
    /// (those viewers then wait for the transcode's next keyframe).
    pub fn offer_transcoded(&self, camera: i64, frame: EncodedFrame) -> bool {
        self.commands
            .try_send(Command::LocalTranscoded { camera, frame })
            .is_ok()
    }

    /// Local camera `camera`'s live transcode, as the relay wants it.
    pub fn transcode(&self, camera: i64) -> Arc<TranscodeWant> {
        self.shared
            .transcodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(camera)
            .or_default()
            .clone()
    }

    /// Whether a viewer of local camera `camera` took audio, kept up to
    /// date by the relay as [`Relay::watched`] is: a source sends its sound
    /// only while it is set.
    pub fn heard(&self, camera: i64) -> Arc<AtomicBool> {
        self.shared
            .heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(camera)
            .or_default()
            .clone()
    }

    /// Counters per camera, as of the last second.
    pub fn counters(&self) -> BTreeMap<i64, CameraCounters> {
        self.shared
            .counters
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Time from the kernel receiving a datagram to the relay handing what
    /// it caused to the kernel: the relay's added latency, per send (one
    /// send carries one frame's packets for one subscriber).
    pub fn forward_latency(&self) -> &LatencyHistogram {
        &self.shared.latency
    }
}

/// Host candidates: the bound address unless it is a wildcard, and each
/// public IP, all on the bound port. A wildcard bind with no public IP
/// advertises loopback, which only local peers can use.
fn candidates(local: SocketAddr, public: &[IpAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    if !local.ip().is_unspecified() {
        out.push(local);
    }
    for ip in public {
        let a = SocketAddr::new(*ip, local.port());
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.is_empty() {
        out.push(SocketAddr::new(
            if local.is_ipv4() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
            },
            local.port(),
        ));
    }
    out
}

/// The relay task's sockets: the UDP one, and the ICE-TCP connections.
struct Io {
    socket: Socket,
    local: SocketAddr,
    /// Packets and connection news from the ICE-TCP tasks.
    tcp: Option<mpsc::Receiver<TcpEvent>>,
    /// Each open ICE-TCP connection's writer queue, by the peer's address.
    tcp_writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl Io {
    /// What the ICE-TCP tasks said: a packet goes to the core; a
    /// connection's writer is kept while it is open.
    fn tcp_event(&mut self, core: &mut Core, event: TcpEvent, now: Instant) {
        match event {
            TcpEvent::Opened { remote, writer, .. } => {
                self.tcp_writers.insert(remote, writer);
            }
            TcpEvent::Packet {
                remote,
                local,
                data,
            } => core.receive_tcp(now, remote, local, &data),
            TcpEvent::Closed { remote } => {
                self.tcp_writers.remove(&remote);
            }
        }
    }

    /// Sends what the core produced: UDP in batches, TCP to each
    /// connection's queue. Neither waits; a full queue drops.
    fn send(&mut self, core: &mut Core, received: Option<Duration>, latency: &LatencyHistogram) {
        // One pass, no second list: TCP packets go to their queues on the
        // way, UDP ones on to the batcher.
        let writers = &self.tcp_writers;
        let udp = core.drain_transmits().filter_map(|t| {
            if t.proto != Protocol::Tcp {
                return Some(t);
            }
            if let Some(w) = writers.get(&t.destination) {
                let _ = w.try_send(t.contents);
            }
            None
        });
        self.socket.send_all(udp, received, latency);
    }
}

/// The next ICE-TCP event, or never without ICE-TCP.
async fn next_tcp(rx: &mut Option<mpsc::Receiver<TcpEvent>>) -> Option<TcpEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut core: Core,
    mut io: Io,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<RelayEvent>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let mut next_counters = Instant::now();
    loop {
        // The kernel's receive time of the longest-waiting datagram this
        // round: what this round sends is timed from it.
        let mut received: Option<Duration> = None;
        let now = Instant::now();
        let deadline = core.next_timeout(now);
        let mut membership_changed = false;
        tokio::select! {
            () = shutdown.cancelled() => break,
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                let now = Instant::now();
                match cmd {
                    Command::Accept { camera, role, sdp, reply } => {
                        let accepted = core.accept(camera, role, &sdp, now).map(|(session, answer)| {
                            Accepted { session, answer, transcoded: core.transcoded(session) }
                        });
                        let _ = reply.send(accepted);
                        membership_changed = true;
                    }
                    Command::Candidate { session, candidate } => {
                        if let Err(e) = core.add_candidate(session, &candidate) {
                            tracing::debug!(peer = session, "candidate refused: {e}");
                        }
                    }
                    Command::Close { session } => {
                        core.close(session, now);
                        membership_changed = true;
                    }
                    Command::LocalFrame { camera, frame } => {
                        core.forward_local(camera, &frame, now);
                    }
                    Command::LocalGop { camera, frames } => {
                        core.local_gop(camera, &frames, now);
                    }
                    Command::LocalAudio { camera, frame } => {
                        core.forward_local_audio(camera, &frame, now);
                    }
                    Command::LocalVideo { camera, video } => {
                        core.set_local_video(camera, video, now);
                        membership_changed = true;
                    }
                    Command::LocalTranscoded { camera, frame } => {
                        core.forward_local_transcoded(camera, &frame, now);
                    }
                }
            }
            r = io.socket.readable() => {
                if let Err(e) = r {
                    tracing::warn!("relay socket: {e}");
                    break;
                }
                let now = Instant::now();
                let local = io.local;
                io.socket.recv_ready(RECV_ROUNDS, |from, d, at| {
                    core.receive(now, from, local, d);
                    if let Some(at) = at {
                        received = Some(received.map_or(at, |r| r.min(at)));
                    }
                });
            }
            Some(e) = next_tcp(&mut io.tcp) => io.tcp_event(&mut core, e, Instant::now()),
            () = tokio::time::sleep_until(deadline.into()) => {}
        }
        let now = Instant::now();
        // A datagram or a command already polled the peers it touched;
        // sweeping every peer's timers is needed only when one is due, not
        // once per packet.
        if now >= deadline {
            core.tick(now);
        }
        // Never wait on one peer: a full socket buffer drops, like the
        // network would, and NACK or a keyframe request recovers.
        io.send(&mut core, received, &shared.latency);
        for e in core.drain_events() {
            if events.try_send(e).is_err() {
                tracing::warn!("relay event queue full; an event was dropped");
            }
        }
        // A transcode to start or stop, or a keyframe to ask its
        // transcoder for, is told at once.
        if core.take_transcode_changed() || membership_changed || now >= next_counters {
            for (camera, want) in shared
                .transcodes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
            {
                want.wanted
                    .store(core.transcoding(*camera), Ordering::Relaxed);
                if core.take_transcode_keyframe(*camera) {
                    want.keyframe.store(true, Ordering::Relaxed);
                }
            }
        }
        // Who is in which room shows at once; traffic counters each second.
        if membership_changed || now >= next_counters {
            // Sessions also end inside the core (ICE failures, timeouts):
            // the flags are checked every second as well.
            for (camera, flag) in shared
                .watched
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
            {
                flag.store(core.watched(*camera), Ordering::Relaxed);
            }
            for (camera, flag) in shared
                .heard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
            {
                flag.store(core.heard(*camera), Ordering::Relaxed);
            }
            next_counters = now + Duration::from_secs(1);
            if let Ok(mut c) = shared.counters.lock() {
                *c = core.counters();
            }
        }
    }
    tracing::info!(peers = core.peers(), "relay stopped");
}
