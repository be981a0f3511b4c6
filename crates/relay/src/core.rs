//! The relay's core: every peer's `str0m::Rtc`, the rooms, and the
//! forwarding and keyframe decisions. Sans-IO: the shell hands it
//! datagrams and `now`, and sends what it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reallive_core::{AudioCodec, AudioFrame, EncodedFrame};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::{Codec as RtcCodec, PayloadParams};
use str0m::media::{
    Direction, Frequency, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid,
};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::RelayError;
use crate::gop::{CatchUp, DEFAULT_GOP_CACHE_BYTES, GopCache, Timed};
use crate::keyframe::{Gate, KeyframeMerger};

/// A relay session: one peer's WebRTC connection.
pub type SessionId = u64;

/// After this long without a frame, a camera's media is not flowing.
pub const MEDIA_IDLE: Duration = Duration::from_secs(3);

/// A peer that never completes ICE within this is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A camera's live transcode goes on this long after its last viewer that
/// needed it left: a page reloaded, or a phone switching networks, finds
/// it still running.
pub const TRANSCODE_LINGER: Duration = Duration::from_secs(10);

/// Live transcodes one node runs at once unless told otherwise: one per
/// core (`docs/design/live-transcode.md`: a 1080p30 H.265 camera takes most
/// of one).
pub fn default_max_transcodes() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// What a peer does in its camera's room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// Sends the camera's media.
    Publisher,
    /// Receives it.
    Subscriber,
}

/// What the relay tells the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// A camera's media started or stopped flowing.
    Media {
        /// The camera.
        camera: i64,
        /// Whether frames arrive.
        flowing: bool,
    },
    /// A session ended: its peer left, failed ICE, or was replaced.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Its camera.
        camera: i64,
        /// Its role.
        role: PeerRole,
    },
}

/// Counters for one peer, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerCounters {
    /// Media packets sent (subscribers) or received (publishers).
    pub packets: u64,
    /// Media bytes sent or received.
    pub bytes: u64,
    /// Fraction lost, 0..1, as last reported.
    pub loss: f32,
    /// Round-trip time, as last measured.
    pub rtt_ms: Option<f64>,
    /// Keyframe requests (PLI + FIR) this peer sent us (subscribers) or we
    /// sent it (publishers).
    pub keyframe_requests: u64,
    /// Frames dropped for this subscriber (gate closed or write refused).
    pub frames_dropped: u64,
    /// Times this viewer started at a cached keyframe (the GOP cache)
    /// rather than waiting for the next one.
    pub catch_ups: u64,
    /// What carries the peer's packets now: `"udp"`, or `"tcp"` (ICE-TCP);
    /// `None` before the first.
    pub transport: Option<&'static str>,
}

/// A snapshot of one camera's room for metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CameraCounters {
    /// Whether media flows.
    pub flowing: bool,
    /// The publisher's session and counters.
    pub publisher: Option<(SessionId, PeerCounters)>,
    /// Subscribers' sessions and counters.
    pub subscribers: Vec<(SessionId, PeerCounters)>,
    /// Keyframe requests asked for by subscribers and the relay, and sent.
    pub keyframes_asked: u64,
    /// Keyframe requests that reached the publisher.
    pub keyframes_sent: u64,
    /// Whether the camera's live transcode runs (or lingers).
    pub transcoding: bool,
    /// Of the subscribers, those that get the transcode.
    pub transcoded_subscribers: usize,
}

struct Peer {
    rtc: Rtc,
    camera: i64,
    role: PeerRole,
    created: Instant,
    connected: bool,
    /// The peer's m-lines by kind (the first of each).
    mids: HashMap<MediaKind, Mid>,
    kinds: HashMap<Mid, MediaKind>,
    gate: Gate,
    /// A viewer of a local camera it cannot play as it is (another codec,
    /// or B-frames): it gets the camera's transcoded variant.
    transcoded: bool,
    /// The video codecs its answer took; `None` without a video m-line.
    video_codecs: Option<Vec<RtcCodec>>,
    /// A new viewer's way from the cached keyframe to the live edge.
    catch_up: Option<CatchUp<Cached>>,
    /// Added to each video frame's source timestamp for this viewer: what
    /// its catch-up compressed.
    ts_offset: i64,
    next_timeout: Instant,
    counters: PeerCounters,
    /// Where its datagrams come from, for routing.
    addrs: BTreeSet<SocketAddr>,
}

impl Peer {
    /// Nothing more until the next keyframe (the stream has a hole, a new
    /// publisher came, a write was refused): any catch-up ends too. Its
    /// stamps so far are behind the source's, so the keyframe's own stamp
    /// follows them.
    fn wait_keyframe(&mut self) {
        self.gate = Gate::WaitKeyframe;
        self.catch_up = None;
    }
}

struct Camera {
    publisher: Option<SessionId>,
    subscribers: BTreeSet<SessionId>,
    merger: KeyframeMerger,
    last_frame: Option<Instant>,
    flowing: bool,
    /// The current GOP, for a new viewer's first frame.
    gop: GopCache<Cached>,
    /// A local source's pts on the relay's clock.
    clock: LocalClock,
    /// What a local source sends, once it said.
    local: Option<LocalVideo>,
    /// The local source's live transcode, while wanted.
    transcode: Option<Transcode>,
}

impl Camera {
    fn new(gop_bytes: usize) -> Self {
        Camera {
            publisher: None,
            subscribers: BTreeSet::new(),
            merger: KeyframeMerger::default(),
            last_frame: None,
            flowing: false,
            gop: GopCache::new(gop_bytes),
            clock: LocalClock::default(),
            local: None,
            transcode: None,
        }
    }

    /// Nobody is in the room and nothing keeps it.
    fn is_idle(&self) -> bool {
        self.publisher.is_none()
            && self.subscribers.is_empty()
            && self.local.is_none()
            && self.transcode.is_none()
    }
}

/// A local source's video, as the relay decides who can play it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LocalVideo {
    codec: RtcCodec,
    /// H.264 with B-frames: no browser plays it over WebRTC.
    reorders: bool,
}

/// A local camera's transcoded variant (constrained-baseline H.264 made by
/// the node's transcoder), for the viewers that cannot play the camera's
/// own stream: its own GOP cache and keyframe requests.
struct Transcode {
    gop: GopCache<Cached>,
    merger: KeyframeMerger,
    /// A keyframe request for the transcoder, not yet taken by the shell.
    keyframe: bool,
    /// When it stops: set when its last viewer leaves.
    stop_at: Option<Instant>,
}

impl Transcode {
    fn new(gop_bytes: usize) -> Self {
        Transcode {
            gop: GopCache::new(gop_bytes),
            merger: KeyframeMerger::default(),
            keyframe: false,
            stop_at: None,
        }
    }
}

/// Which of a camera's streams a frame or a viewer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The camera's own frames.
    Source,
    /// The local camera's transcode.
    Transcoded,
}

impl Variant {
    fn of(peer: &Peer) -> Variant {
        if peer.transcoded {
            Variant::Transcoded
        } else {
            Variant::Source
        }
    }
}

/// The instant a local source's pts stands for, given to str0m as the
/// wall clock of the frames and sound written with it: viewers sync the
/// two tracks by the sender reports str0m makes from it, so both must come
/// from the source's one clock, not from when each reached the relay (the
/// sound comes later, through its Opus transcoder). Anchored at the first
/// frame, and again after a jump of more than [`LocalClock::MAX_DRIFT`]
/// from the relay's clock (a restarted source).
#[derive(Debug, Default, Clone, Copy)]
struct LocalClock {
    anchor: Option<(Instant, i64)>,
}

impl LocalClock {
    const MAX_DRIFT: Duration = Duration::from_secs(2);

    fn at(&mut self, pts_90k: i64, now: Instant) -> Instant {
        if let Some((at, pts)) = self.anchor {
            let d = pts_90k.saturating_sub(pts);
            let t = if d >= 0 {
                at.checked_add(Duration::from_micros(d.unsigned_abs() * 100 / 9))
            } else {
                at.checked_sub(Duration::from_micros(d.unsigned_abs() * 100 / 9))
            };
            if let Some(t) = t
                && t.max(now) - t.min(now) <= Self::MAX_DRIFT
            {
                return t;
            }
        }
        self.anchor = Some((now, pts_90k));
        now
    }
}

/// A video frame as the GOP cache keeps it: shared, never copied.
#[derive(Clone, Debug)]
struct Cached {
    data: Arc<[u8]>,
    /// The publisher's payload parameters; `None` for a local source,
    /// whose frames go in whichever payload type of `codec` the viewer
    /// took.
    params: Option<PayloadParams>,
    codec: RtcCodec,
    frequency: Frequency,
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// UDP, or TCP on an ICE-TCP connection (framed by the shell).
    pub proto: Protocol,
    /// From which local address (the relay's socket).
    pub source: SocketAddr,
    /// To whom.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

/// A frame to forward: from a WebRTC publisher, or from a source inside
/// this process.
enum Frame<'a> {
    Remote(&'a MediaData),
    Local {
        data: Arc<[u8]>,
        time: MediaTime,
        keyframe: bool,
        codec: RtcCodec,
    },
}

impl Frame<'_> {
    fn cached(&self) -> Cached {
        match self {
            Frame::Remote(d) => Cached {
                data: d.data.clone(),
                params: Some(d.params),
                codec: d.params.spec().codec,
                frequency: d.time.frequency(),
            },
            Frame::Local {
                data, time, codec, ..
            } => Cached {
                data: data.clone(),
                params: None,
                codec: *codec,
                frequency: time.frequency(),
            },
        }
    }

    fn time(&self) -> MediaTime {
        match self {
            Frame::Remote(d) => d.time,
            Frame::Local { time, .. } => *time,
        }
    }
}

/// The relay's state.
pub struct Core {
    candidates: Vec<SocketAddr>,
    tcp_candidates: Vec<SocketAddr>,
    cert: Option<str0m::config::DtlsCert>,
    peers: HashMap<SessionId, Peer>,
    by_addr: HashMap<SocketAddr, SessionId>,
    cameras: BTreeMap<i64, Camera>,
    next_id: SessionId,
    events: VecDeque<RelayEvent>,
    transmits: Vec<Transmit>,
    gop_cache_bytes: usize,
    max_transcodes: usize,
    /// A camera's transcode started, stopped or wants a keyframe since
    /// the shell last looked.
    transcode_changed: bool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("candidates", &self.candidates)
            .field("peers", &self.peers.len())
            .field("cameras", &self.cameras.len())
            .finish()
    }
}

impl Core {
    /// A relay answering with host candidates at `candidates` (all on the
    /// relay's one UDP port).
    pub fn new(candidates: Vec<SocketAddr>) -> Result<Core, RelayError> {
        // One certificate for every peer: generating a key per connection
        // would make joins slow and CPU-bound.
        let provider = str0m::crypto::from_feature_flags();
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| RelayError::Internal("cannot generate a DTLS certificate".into()))?;
        Ok(Core {
            candidates,
            tcp_candidates: Vec::new(),
            cert: Some(cert),
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            cameras: BTreeMap::new(),
            next_id: 1,
            events: VecDeque::new(),
            transmits: Vec::new(),
            gop_cache_bytes: DEFAULT_GOP_CACHE_BYTES,
            max_transcodes: default_max_transcodes(),
            transcode_changed: false,
        })
    }

    /// Runs at most `n` live transcodes at once (cameras, whatever their
    /// viewers); a viewer that would need one more is refused with
    /// [`RelayError::TranscodeLimit`]. 0 turns live transcoding off.
    #[must_use]
    pub fn with_transcode_limit(mut self, n: usize) -> Core {
        self.max_transcodes = n;
        self
    }

    /// Keeps at most `bytes` of each camera's current GOP for new viewers'
    /// first frame (0 turns the cache off: viewers wait for a keyframe).
    #[must_use]
    pub fn with_gop_cache(mut self, bytes: usize) -> Core {
        self.gop_cache_bytes = bytes;
        self
    }

    /// Whether `camera` has a viewer (connected or connecting) of its own
    /// stream, not of its transcode: a local source sends its frames only
    /// then.
    pub fn watched(&self, camera: i64) -> bool {
        self.cameras.get(&camera).is_some_and(|c| {
            c.subscribers
                .iter()
                .any(|s| self.peers.get(s).is_some_and(|p| !p.transcoded))
        })
    }

    /// Whether local camera `camera`'s live transcode should run: a viewer
    /// needs it, or its last one left less than [`TRANSCODE_LINGER`] ago.
    pub fn transcoding(&self, camera: i64) -> bool {
        self.cameras
            .get(&camera)
            .is_some_and(|c| c.transcode.is_some())
    }

    /// Cameras whose live transcode runs.
    pub fn transcodes(&self) -> usize {
        self.cameras
            .values()
            .filter(|c| c.transcode.is_some())
            .count()
    }

    /// Takes `camera`'s waiting keyframe request for its transcoder (a
    /// viewer joined with nothing cached, or lost packets).
    pub fn take_transcode_keyframe(&mut self, camera: i64) -> bool {
        self.cameras
            .get_mut(&camera)
            .and_then(|c| c.transcode.as_mut())
            .is_some_and(|t| std::mem::take(&mut t.keyframe))
    }

    /// Whether a transcode started, stopped or wants a keyframe since the
    /// last call: the shell then tells the sources.
    pub fn take_transcode_changed(&mut self) -> bool {
        std::mem::take(&mut self.transcode_changed)
    }

    /// Offers passive ICE-TCP host candidates at `addrs` too, after the
    /// UDP ones (their priority is lower, so a peer that can use UDP does).
    #[must_use]
    pub fn with_tcp(mut self, addrs: Vec<SocketAddr>) -> Core {
        self.tcp_candidates = addrs;
        self
    }

    /// Peers open.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Accepts an SDP offer for `camera` as `role`, returning the new
    /// session and the SDP answer. A new publisher replaces the old one.
    pub fn accept(
        &mut self,
        camera: i64,
        role: PeerRole,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<(SessionId, String), RelayError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| RelayError::BadSdp(e.to_string()))?;
        check_direction(offer_sdp, role)?;
        // str0m keeps an m-line of a kind it does not know, and answers
        // without it: an offer with no audio or video would get an answer
        // with no media, and a session that carries nothing.
        if !offer.media_lines.iter().any(|m| m.typ.is_media()) {
            return Err(RelayError::BadSdp("the offer has no audio or video".into()));
        }
        let mut config = Rtc::builder()
            .set_ice_lite(true)
            // Resend history per subscriber: str0m keeps this many packets
            // (~1.5 KiB each in memory) for NACKs. The default 1000 cost
            // 1.85 MB per subscriber; 128 is ~0.3 s at 4 Mbit/s, two keyframe
            // bursts, which covers the round trips of a LAN or a continent.
            // A loss older than that is healed by a keyframe request.
            .set_send_buffer_video(128)
            .set_stats_interval(Some(Duration::from_secs(1)))
            // Sender reports place a subscriber's sound on its picture;
            // str0m's default for audio is every 5 s.
            .set_rtcp_report_interval_audio(Duration::from_secs(1))
            .clear_codecs()
            .enable_h264(true)
            // H.265 cameras pass through to viewers that offer it (Chrome
            // 136+ and Safari 18 where the hardware decodes it).
            .enable_h265(role == PeerRole::Subscriber)
            .enable_opus(true, false);
        if role == PeerRole::Subscriber {
            // No transport-wide congestion control towards viewers: the
            // relay forwards the publisher's bitrate and runs no bandwidth
            // estimator, and TWCC would cost every viewer a 1,000-entry
            // send register (~90 KB) and a feedback packet every few
            // tens of milliseconds. Loss is still repaired by NACK and PLI.
            config = config
                .clear_extension_map()
                .set_extension(1, Extension::AudioLevel)
                .set_extension(4, Extension::RtpMid)
                .set_extension(13, Extension::VideoOrientation);
        }
        if let Some(cert) = &self.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let mut rtc = config.build(now);
        for addr in &self.candidates {
            let c = Candidate::host(*addr, "udp")
                .map_err(|e| RelayError::Internal(format!("candidate {addr}: {e}")))?;
            rtc.add_local_candidate(c);
        }
        for addr in &self.tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(*addr)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|e| RelayError::Internal(format!("TCP candidate {addr}: {e}")))?;
            rtc.add_local_candidate(c);
        }
        // str0m asserts on some offers it parsed (a payload type mapped in
        // two m-lines): a peer's SDP must not take the relay task down.
        // Nothing of `self` has changed yet, and `rtc` is dropped.
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rtc.sdp_api().accept_offer(offer)
        }))
        .map_err(|_| RelayError::BadSdp("the offer could not be answered".into()))?
        .map_err(|e| RelayError::BadSdp(e.to_string()))?;
        let id = self.next_id;
        self.next_id += 1;
        let peer = Peer {
            rtc,
            camera,
            role,
            created: now,
            connected: false,
            mids: HashMap::new(),
            kinds: HashMap::new(),
            gate: Gate::WaitKeyframe,
            transcoded: false,
            video_codecs: video_codecs(&answer),
            catch_up: None,
            ts_offset: 0,
            next_timeout: now,
            counters: PeerCounters::default(),
            addrs: BTreeSet::new(),
        };
        self.peers.insert(id, peer);
        let cam = self.camera(camera);
        match role {
            PeerRole::Publisher => {
                cam.last_frame = None;
                // The old publisher's GOP does not lead into the new one's.
                cam.gop.clear();
                if let Some(old) = cam.publisher.replace(id) {
                    self.remove(old, now);
                }
                // Everyone waits for the new publisher's first keyframe.
                let subs: Vec<SessionId> = self
                    .cameras
                    .get(&camera)
                    .map(|c| c.subscribers.iter().copied().collect())
                    .unwrap_or_default();
                for s in subs {
                    if let Some(p) = self.peers.get_mut(&s) {
                        p.wait_keyframe();
                    }
                }
            }
            PeerRole::Subscriber => {
                cam.subscribers.insert(id);
            }
        }
        self.poll_peer(id, now);
        if role == PeerRole::Subscriber
            && let Err(e) = self.place(id, now)
        {
            // Refused before anyone heard of it: no event.
            self.peers.remove(&id);
            if let Some(cam) = self.cameras.get_mut(&camera) {
                cam.subscribers.remove(&id);
            }
            return Err(e);
        }
        let answer = answer.to_sdp_string();
        Ok(match role {
            PeerRole::Subscriber => {
                let stream = reallive_core::CameraId(camera).store_key();
                (id, one_media_stream(&answer, &stream))
            }
            PeerRole::Publisher => (id, answer),
        })
    }

    /// Adds a trickled remote candidate to a session.
    pub fn add_candidate(&mut self, session: SessionId, candidate: &str) -> Result<(), RelayError> {
        let peer = self.peers.get_mut(&session).ok_or(RelayError::NoSession)?;
        let line = candidate.trim().trim_start_matches("a=");
        let c = Candidate::from_sdp_string(line)
            .map_err(|e| RelayError::BadSdp(format!("candidate: {e}")))?;
        peer.rtc.add_remote_candidate(c);
        Ok(())
    }

    /// Ends a session.
    pub fn close(&mut self, session: SessionId, now: Instant) {
        self.remove(session, now);
        self.tick(now);
    }

    fn remove(&mut self, session: SessionId, now: Instant) {
        let Some(mut peer) = self.peers.remove(&session) else {
            return;
        };
        peer.rtc.disconnect();
        for a in &peer.addrs {
            self.by_addr.remove(a);
        }
        if let Some(cam) = self.cameras.get_mut(&peer.camera) {
            match peer.role {
                PeerRole::Publisher => {
                    if cam.publisher == Some(session) {
                        cam.publisher = None;
                        cam.last_frame = None;
                        if cam.flowing {
                            cam.flowing = false;
                            self.events.push_back(RelayEvent::Media {
                                camera: peer.camera,
                                flowing: false,
                            });
                        }
                    }
                }
                PeerRole::Subscriber => {
                    cam.subscribers.remove(&session);
                }
            }
            if cam.publisher.is_none() && cam.subscribers.is_empty() {
                // A local source sends its GOP again to the next viewer.
                cam.gop.clear();
            }
        }
        if peer.transcoded {
            self.release_transcode(peer.camera, now);
        }
        if self.cameras.get(&peer.camera).is_some_and(Camera::is_idle) {
            self.cameras.remove(&peer.camera);
        }
        self.events.push_back(RelayEvent::SessionEnded {
            session,
            camera: peer.camera,
            role: peer.role,
        });
    }

    /// A datagram arrived on the relay's socket.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        self.receive_on(Protocol::Udp, now, source, destination, bytes);
    }

    /// A packet arrived on an ICE-TCP connection from `source`.
    pub fn receive_tcp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        self.receive_on(Protocol::Tcp, now, source, destination, bytes);
    }

    fn receive_on(
        &mut self,
        proto: Protocol,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(contents) = bytes.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let id = match self.by_addr.get(&source) {
            Some(id) if self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)) => *id,
            _ => {
                // A new address: whoever's ICE credentials it carries.
                let Some(id) = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id)
                else {
                    return;
                };
                self.by_addr.insert(source, id);
                if let Some(p) = self.peers.get_mut(&id) {
                    p.addrs.insert(source);
                }
                id
            }
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!(peer = id, "input refused: {e}");
            self.remove(id, now);
            return;
        }
        peer.counters.transport = Some(match proto {
            Protocol::Tcp => "tcp",
            _ => "udp",
        });
        self.poll_peer(id, now);
    }

    /// Drives time: timeouts, keyframe windows, idle detection.
    pub fn tick(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.next_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(p) = self.peers.get_mut(&id) {
                if !p.connected && now.duration_since(p.created) > CONNECT_TIMEOUT {
                    tracing::debug!(peer = id, "ICE never completed");
                    self.remove(id, now);
                    continue;
                }
                if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                    tracing::debug!(peer = id, "timeout refused: {e}");
                    self.remove(id, now);
                    continue;
                }
            }
            self.poll_peer(id, now);
        }
        let catching_up: Vec<SessionId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.catch_up
                    .as_ref()
                    .and_then(CatchUp::next_due)
                    .is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in catching_up {
            self.pump_catch_up(id, now);
            self.poll_peer(id, now);
        }
        let cams: Vec<i64> = self.cameras.keys().copied().collect();
        for camera in cams {
            let Some(cam) = self.cameras.get_mut(&camera) else {
                continue;
            };
            if cam.flowing
                && cam
                    .last_frame
                    .is_some_and(|t| now.duration_since(t) > MEDIA_IDLE)
            {
                cam.flowing = false;
                self.events.push_back(RelayEvent::Media {
                    camera,
                    flowing: false,
                });
            }
            let retry = cam.merger.poll(now);
            if let Some(t) = cam.transcode.as_mut() {
                if t.stop_at.is_some_and(|at| at <= now) {
                    tracing::debug!(camera, "nobody needs the live transcode; it stops");
                    cam.transcode = None;
                    self.transcode_changed = true;
                    if cam.is_idle() {
                        self.cameras.remove(&camera);
                    }
                } else if t.merger.poll(now) {
                    t.keyframe = true;
                    self.transcode_changed = true;
                }
            }
            if retry {
                self.send_keyframe_request(camera, now);
            }
        }
    }

    /// When [`tick`](Self::tick) next has work.
    pub fn next_timeout(&self, now: Instant) -> Instant {
        let mut t = now + Duration::from_millis(100);
        for p in self.peers.values() {
            t = t.min(p.next_timeout);
            if let Some(d) = p.catch_up.as_ref().and_then(CatchUp::next_due) {
                t = t.min(d);
            }
        }
        for c in self.cameras.values() {
            if let Some(d) = c.merger.next_due() {
                t = t.min(d);
            }
            if let Some(tc) = &c.transcode {
                for d in [tc.stop_at, tc.merger.next_due()].into_iter().flatten() {
                    t = t.min(d);
                }
            }
        }
        t.max(now)
    }

    /// Datagrams waiting in [`drain_transmits`](Self::drain_transmits).
    pub fn pending_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// Datagrams to send, in order.
    pub fn drain_transmits(&mut self) -> std::vec::Drain<'_, Transmit> {
        self.transmits.drain(..)
    }

    /// Events for the server, in order.
    pub fn drain_events(&mut self) -> std::collections::vec_deque::Drain<'_, RelayEvent> {
        self.events.drain(..)
    }

    /// Counters per camera.
    pub fn counters(&self) -> BTreeMap<i64, CameraCounters> {
        self.cameras
            .iter()
            .map(|(id, c)| {
                let peer = |s: &SessionId| self.peers.get(s).map(|p| (*s, p.counters.clone()));
                let (asked, sent) = c.merger.counts();
                (
                    *id,
                    CameraCounters {
                        flowing: c.flowing,
                        publisher: c.publisher.as_ref().and_then(peer),
                        subscribers: c.subscribers.iter().filter_map(peer).collect(),
                        keyframes_asked: asked,
                        keyframes_sent: sent,
                        transcoding: c.transcode.is_some(),
                        transcoded_subscribers: c
                            .subscribers
                            .iter()
                            .filter(|s| self.peers.get(s).is_some_and(|p| p.transcoded))
                            .count(),
                    },
                )
            })
            .collect()
    }

    /// Polls one peer until it has nothing more, handling its events.
    fn poll_peer(&mut self, id: SessionId, now: Instant) {
        loop {
            let Some(peer) = self.peers.get_mut(&id) else {
                return;
            };
            if !peer.rtc.is_alive() {
                self.remove(id, now);
                return;
            }
            let out = match peer.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(peer = id, "poll failed: {e}");
                    self.remove(id, now);
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    peer.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    self.transmits.push(Transmit {
                        proto: t.proto,
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Output::Event(e) => self.handle_event(id, e, now),
            }
        }
    }

    fn handle_event(&mut self, id: SessionId, event: Event, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match event {
            Event::Connected => {
                peer.connected = true;
                if peer.role == PeerRole::Subscriber {
                    // Video starts at the cached keyframe, else at the
                    // next one: ask for one now.
                    let (camera, variant) = (peer.camera, Variant::of(peer));
                    if !self.start_catch_up(id, now) {
                        self.ask_keyframe(camera, variant, now);
                    }
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.remove(id, now);
            }
            Event::MediaAdded(m) => {
                peer.mids.entry(m.kind).or_insert(m.mid);
                peer.kinds.insert(m.mid, m.kind);
            }
            Event::MediaData(data) if peer.role == PeerRole::Publisher => {
                let kind = peer.kinds.get(&data.mid).copied();
                peer.counters.packets +=
                    1 + (**data.seq_range.end()).saturating_sub(**data.seq_range.start());
                peer.counters.bytes += data.data.len() as u64;
                let camera = peer.camera;
                if let Some(kind) = kind {
                    self.forward(camera, kind, Frame::Remote(&data), Variant::Source, now);
                }
            }
            Event::KeyframeRequest(_) => {
                peer.counters.keyframe_requests += 1;
                let (camera, variant) = (peer.camera, Variant::of(peer));
                if peer.role == PeerRole::Subscriber {
                    self.ask_keyframe(camera, variant, now);
                }
            }
            Event::PeerStats(s) => {
                peer.counters.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1e3);
                let loss = match peer.role {
                    PeerRole::Publisher => s.ingress_loss_fraction,
                    PeerRole::Subscriber => s.egress_loss_fraction,
                };
                if let Some(l) = loss {
                    peer.counters.loss = l;
                }
            }
            Event::MediaEgressStats(s)
                if peer.role == PeerRole::Subscriber
                    && peer.kinds.get(&s.mid) == Some(&MediaKind::Video) =>
            {
                peer.counters.packets = s.packets;
                peer.counters.bytes = s.bytes;
                if let Some(l) = s.loss {
                    peer.counters.loss = l;
                }
            }
            _ => {}
        }
    }

    /// A frame from a source inside this process (an NVR's RTSP camera),
    /// to every subscriber of `camera`, as it came: no decoding, no
    /// re-encoding. H.264 goes to every viewer; H.265 to the viewers whose
    /// offer had it (a viewer without it has the frame counted as dropped).
    /// Nobody can ask such a source for a keyframe, so a subscriber starts
    /// at the cached one, or at the next.
    pub fn forward_local(&mut self, camera: i64, frame: &EncodedFrame, now: Instant) {
        self.camera(camera);
        if let Some(local) = local_frame(frame) {
            self.forward(camera, MediaKind::Video, local, Variant::Source, now);
        }
    }

    /// A frame of local camera `camera`'s live transcode, to its viewers
    /// that cannot play the camera's own stream. Ignored when no transcode
    /// is wanted (it stopped).
    pub fn forward_local_transcoded(&mut self, camera: i64, frame: &EncodedFrame, now: Instant) {
        if !self.transcoding(camera) {
            return;
        }
        if let Some(local) = local_frame(frame) {
            self.forward(camera, MediaKind::Video, local, Variant::Transcoded, now);
        }
    }

    /// What local camera `camera` sends (`None`: the source is gone), from
    /// its first keyframe and whenever it changes: a viewer that cannot
    /// play it gets its transcode. Viewers already in are placed again; one
    /// that would need a transcode beyond the limit is dropped (its next
    /// try is refused with the reason).
    pub fn set_local_video(
        &mut self,
        camera: i64,
        video: Option<(reallive_core::Codec, bool)>,
        now: Instant,
    ) {
        let local = video.and_then(|(codec, reorders)| {
            Some(LocalVideo {
                codec: match codec {
                    reallive_core::Codec::H264 => RtcCodec::H264,
                    reallive_core::Codec::H265 => RtcCodec::H265,
                    _ => return None,
                },
                reorders: reorders && codec == reallive_core::Codec::H264,
            })
        });
        let cam = self.camera(camera);
        if cam.local == local {
            return;
        }
        cam.local = local;
        let subs: Vec<SessionId> = cam.subscribers.iter().copied().collect();
        for s in subs {
            if let Err(e) = self.place(s, now) {
                tracing::info!(peer = s, camera, "viewer dropped: {e}");
                self.remove(s, now);
            }
        }
        if self.cameras.get(&camera).is_some_and(Camera::is_idle) {
            self.cameras.remove(&camera);
        }
    }

    /// Whether viewer `session` gets its camera's transcode.
    pub fn transcoded(&self, session: SessionId) -> bool {
        self.peers.get(&session).is_some_and(|p| p.transcoded)
    }

    /// Puts viewer `id` on the variant of its camera it can play: the
    /// transcode when the camera is local and sends what the viewer's
    /// answer lacks, or B-frames; the camera's own stream otherwise
    /// (and while a local camera has not said what it sends).
    fn place(&mut self, id: SessionId, now: Instant) -> Result<(), RelayError> {
        let running = self.transcodes();
        let (max, gop_bytes) = (self.max_transcodes, self.gop_cache_bytes);
        let Some(peer) = self.peers.get_mut(&id) else {
            return Ok(());
        };
        let camera = peer.camera;
        let local = self.cameras.get(&camera).and_then(|c| c.local);
        let need = local.is_some_and(|l| needs_transcode(peer, l));
        if need == peer.transcoded {
            return Ok(());
        }
        if need {
            let Some(cam) = self.cameras.get_mut(&camera) else {
                return Ok(());
            };
            if cam.transcode.is_none() {
                if running >= max {
                    return Err(RelayError::TranscodeLimit { limit: max });
                }
                tracing::debug!(camera, "a viewer needs the live transcode; it starts");
                cam.transcode = Some(Transcode::new(gop_bytes));
                self.transcode_changed = true;
            }
            if let Some(t) = cam.transcode.as_mut() {
                t.stop_at = None;
            }
        }
        peer.transcoded = need;
        // Its frames so far were of the other variant.
        peer.wait_keyframe();
        let connected = peer.connected;
        if !need {
            self.release_transcode(camera, now);
        }
        if connected && !self.start_catch_up(id, now) {
            let variant = if need {
                Variant::Transcoded
            } else {
                Variant::Source
            };
            self.ask_keyframe(camera, variant, now);
        }
        Ok(())
    }

    /// The transcode of `camera` stops [`TRANSCODE_LINGER`] from `now`
    /// if none of its viewers needs it.
    fn release_transcode(&mut self, camera: i64, now: Instant) {
        let Some(cam) = self.cameras.get(&camera) else {
            return;
        };
        let needed = cam
            .subscribers
            .iter()
            .any(|s| self.peers.get(s).is_some_and(|p| p.transcoded));
        if let Some(t) = self
            .cameras
            .get_mut(&camera)
            .and_then(|c| c.transcode.as_mut())
            && !needed
            && t.stop_at.is_none()
        {
            t.stop_at = Some(now + TRANSCODE_LINGER);
        }
    }

    /// Forwards a local source's Opus packet to `camera`'s connected
    /// viewers that took audio, stamped on the source's clock as its
    /// frames are (so viewers play the two in sync). Other codecs are
    /// ignored: WebRTC carries Opus only.
    pub fn forward_local_audio(&mut self, camera: i64, frame: &AudioFrame, now: Instant) {
        if frame.params.codec != AudioCodec::Opus {
            return;
        }
        let Some(cam) = self.cameras.get_mut(&camera) else {
            return;
        };
        let wallclock = cam.clock.at(frame.pts_90k, now);
        let time = MediaTime::new(
            frame.pts_90k.max(0) as u64 * 48_000 / 90_000,
            Frequency::FORTY_EIGHT_KHZ,
        );
        let data: Arc<[u8]> = Arc::from(&frame.data[..]);
        let subs: Vec<SessionId> = cam.subscribers.iter().copied().collect();
        for s in subs {
            let Some(p) = self.peers.get_mut(&s) else {
                continue;
            };
            let Some(mid) = p.mids.get(&MediaKind::Audio).copied() else {
                continue;
            };
            if !p.connected {
                continue;
            }
            let Some(w) = p.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = w
                .payload_params()
                .find(|pp| pp.spec().codec == RtcCodec::Opus)
                .map(PayloadParams::pt)
            else {
                continue;
            };
            if w.write(pt, wallclock, time, data.clone()).is_ok() {
                self.poll_peer(s, now);
            }
        }
    }

    /// Whether a viewer of `camera` took audio: a local source then sends
    /// its sound (and transcodes it to Opus for that).
    pub fn heard(&self, camera: i64) -> bool {
        self.cameras.get(&camera).is_some_and(|c| {
            c.subscribers.iter().any(|s| {
                self.peers
                    .get(s)
                    .is_some_and(|p| p.mids.contains_key(&MediaKind::Audio))
            })
        })
    }

    /// A local source's current GOP, kept while nobody watched, sent when
    /// its first viewer joined: it becomes the camera's GOP cache, and
    /// viewers waiting for a keyframe start their catch-up from it.
    pub fn local_gop(&mut self, camera: i64, frames: &[EncodedFrame], now: Instant) {
        let cam = self.camera(camera);
        cam.gop.clear();
        for local in frames.iter().filter_map(local_frame) {
            let keyframe = matches!(local, Frame::Local { keyframe: true, .. });
            cam.gop.push(timed(&local, keyframe));
        }
        if cam.gop.frames().is_empty() {
            return;
        }
        cam.last_frame = Some(now);
        let subscribers: Vec<SessionId> = cam.subscribers.iter().copied().collect();
        let waiting: Vec<SessionId> = subscribers
            .into_iter()
            .filter(|s| {
                self.peers.get(s).is_some_and(|p| {
                    p.connected
                        && !p.transcoded
                        && p.gate == Gate::WaitKeyframe
                        && p.catch_up.is_none()
                })
            })
            .collect();
        for s in waiting {
            self.start_catch_up(s, now);
            self.poll_peer(s, now);
        }
    }

    /// Camera `camera`'s room, made on first use.
    fn camera(&mut self, camera: i64) -> &mut Camera {
        let gop_bytes = self.gop_cache_bytes;
        self.cameras
            .entry(camera)
            .or_insert_with(|| Camera::new(gop_bytes))
    }

    /// Starts viewer `id` at its camera's cached keyframe, if there is
    /// one; false when there is none (it waits for the next keyframe).
    fn start_catch_up(&mut self, id: SessionId, now: Instant) -> bool {
        let Some(peer) = self.peers.get_mut(&id) else {
            return false;
        };
        let Some(cam) = self.cameras.get(&peer.camera) else {
            return false;
        };
        let gop = if peer.transcoded {
            match &cam.transcode {
                Some(t) => &t.gop,
                None => return false,
            }
        } else {
            &cam.gop
        };
        let frames = gop.frames();
        let rate = frames.first().map_or(90_000, |f| f.item.frequency.get());
        let Some(up) = CatchUp::start(frames, rate, 2 * gop.max_bytes(), now) else {
            return false;
        };
        tracing::debug!(
            peer = id,
            frames = frames.len(),
            speed = up.speed(),
            "a new viewer starts at the cached keyframe"
        );
        peer.catch_up = Some(up);
        peer.gate = Gate::Open;
        peer.counters.catch_ups += 1;
        self.pump_catch_up(id, now);
        true
    }

    /// Sends what viewer `id`'s catch-up has due. A write refused ends it:
    /// the viewer waits for the next keyframe.
    fn pump_catch_up(&mut self, id: SessionId, now: Instant) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(mid) = p.mids.get(&MediaKind::Video).copied() else {
            return;
        };
        let mut failed = false;
        while let Some(up) = p.catch_up.as_mut() {
            let Some((c, stamp)) = up.pop_due(now) else {
                break;
            };
            let done = up.is_done();
            let offset = up.offset();
            let time = MediaTime::new(stamp, c.frequency);
            if !write_video(&mut p.rtc, mid, &c, now, time) {
                failed = true;
                break;
            }
            if done {
                p.ts_offset = offset;
                p.catch_up = None;
            }
        }
        if failed {
            p.wait_keyframe();
            p.counters.frames_dropped += 1;
            let (camera, variant) = (p.camera, Variant::of(p));
            self.ask_keyframe(camera, variant, now);
        }
    }

    /// A publisher's frame to every subscriber of its camera; a video
    /// frame of `variant` to the viewers of that variant only.
    fn forward(
        &mut self,
        camera: i64,
        kind: MediaKind,
        frame: Frame<'_>,
        variant: Variant,
        now: Instant,
    ) {
        let Some(cam) = self.cameras.get_mut(&camera) else {
            return;
        };
        let (keyframe, contiguous) = match &frame {
            Frame::Remote(data) => (
                kind == MediaKind::Video && data.is_keyframe(),
                data.contiguous,
            ),
            Frame::Local { keyframe, .. } => (*keyframe, true),
        };
        cam.last_frame = Some(now);
        let local_wallclock = match &frame {
            Frame::Local { time, .. } => cam.clock.at(time.numer() as i64, now),
            Frame::Remote(_) => now,
        };
        if !cam.flowing {
            cam.flowing = true;
            self.events.push_back(RelayEvent::Media {
                camera,
                flowing: true,
            });
        }
        let (merger, gop) = match variant {
            Variant::Source => (&mut cam.merger, &mut cam.gop),
            Variant::Transcoded => match cam.transcode.as_mut() {
                Some(t) => (&mut t.merger, &mut t.gop),
                None => return,
            },
        };
        if keyframe {
            merger.keyframe_seen();
        }
        if kind == MediaKind::Video {
            if !contiguous && !keyframe {
                gop.clear();
            }
            gop.push(timed(&frame, keyframe));
        }
        let retry = variant == Variant::Source && cam.merger.poll(now);
        let subs: Vec<SessionId> = cam
            .subscribers
            .iter()
            .copied()
            .filter(|s| {
                kind != MediaKind::Video
                    || self.peers.get(s).is_some_and(|p| Variant::of(p) == variant)
            })
            .collect();
        let mut want_keyframe = false;
        if kind == MediaKind::Video && !contiguous && !keyframe {
            // The publisher's stream has a hole: nobody can decode on
            // until the next keyframe, not even a viewer catching up.
            want_keyframe = true;
            for s in &subs {
                if let Some(p) = self.peers.get_mut(s) {
                    p.wait_keyframe();
                }
            }
        }
        for s in subs {
            let Some(p) = self.peers.get_mut(&s) else {
                continue;
            };
            if !p.connected {
                continue;
            }
            if kind == MediaKind::Video
                && let Some(up) = p.catch_up.as_mut()
            {
                // Behind its backlog: the frame queues, and goes when due.
                if up.push(timed(&frame, keyframe)) {
                    self.pump_catch_up(s, now);
                } else {
                    p.wait_keyframe();
                    p.counters.frames_dropped += 1;
                    want_keyframe = true;
                }
                self.poll_peer(s, now);
                continue;
            }
            if kind == MediaKind::Video && !p.gate.pass(keyframe) {
                p.counters.frames_dropped += 1;
                want_keyframe = true;
                continue;
            }
            let Some(mid) = p.mids.get(&kind).copied() else {
                continue;
            };
            let written = if kind == MediaKind::Video {
                let t = frame.time();
                let time =
                    MediaTime::new(t.numer().saturating_add_signed(p.ts_offset), t.frequency());
                let wallclock = match &frame {
                    Frame::Remote(d) => d.network_time,
                    Frame::Local { .. } => local_wallclock,
                };
                write_video(&mut p.rtc, mid, &frame.cached(), wallclock, time)
            } else {
                match (p.rtc.writer(mid), &frame) {
                    (Some(w), Frame::Remote(data)) => match w.match_params(data.params) {
                        Some(pt) => w
                            .write(pt, data.network_time, data.time, data.data.clone())
                            .is_ok(),
                        None => false,
                    },
                    _ => false,
                }
            };
            if !written && kind == MediaKind::Video {
                // Refused (codec mismatch or a full send buffer): drop to the
                // next keyframe rather than send undecodable deltas.
                p.wait_keyframe();
                p.counters.frames_dropped += 1;
                want_keyframe = true;
            }
            self.poll_peer(s, now);
        }
        if retry {
            self.send_keyframe_request(camera, now);
        }
        if want_keyframe {
            self.ask_keyframe(camera, variant, now);
        }
    }

    /// A viewer of `variant` needs a keyframe: from the publisher (merged),
    /// or from the camera's transcoder. A local camera's own stream cannot
    /// be asked.
    fn ask_keyframe(&mut self, camera: i64, variant: Variant, now: Instant) {
        let Some(cam) = self.cameras.get_mut(&camera) else {
            return;
        };
        if variant == Variant::Transcoded {
            if let Some(t) = cam.transcode.as_mut()
                && t.merger.request(now)
            {
                t.keyframe = true;
                self.transcode_changed = true;
            }
            return;
        }
        if cam.publisher.is_none() {
            return;
        }
        if cam.merger.request(now) {
            self.send_keyframe_request(camera, now);
        }
    }

    fn send_keyframe_request(&mut self, camera: i64, now: Instant) {
        let Some(cam) = self.cameras.get_mut(&camera) else {
            return;
        };
        let Some(pubid) = cam.publisher else {
            return;
        };
        if cam.last_frame.is_none() {
            // Until the publisher's media arrives, its SRTP keys may not be
            // up (the relay finishes DTLS first), and a request it cannot
            // decrypt is lost. Ask again at its first frame.
            cam.merger.unsent();
            return;
        }
        let Some(p) = self.peers.get_mut(&pubid) else {
            return;
        };
        let Some(mid) = p.mids.get(&MediaKind::Video).copied() else {
            return;
        };
        let sent = match p.rtc.writer(mid) {
            Some(mut w) => w.request_keyframe(None, KeyframeRequestKind::Pli).is_ok(),
            None => false,
        };
        if sent {
            p.counters.keyframe_requests += 1;
            self.poll_peer(pubid, now);
        } else if let Some(cam) = self.cameras.get_mut(&camera) {
            // No packets from the publisher yet: retry at its first frame.
            cam.merger.unsent();
        }
    }
}

/// Whether `peer` cannot play `local` as it is: B-frames, or a codec its
/// answer lacks. A peer without video needs nothing.
fn needs_transcode(peer: &Peer, local: LocalVideo) -> bool {
    peer.video_codecs
        .as_ref()
        .is_some_and(|codecs| local.reorders || !codecs.contains(&local.codec))
}

/// The codecs of the first video m-line of `answer`; `None` without one.
fn video_codecs(answer: &SdpAnswer) -> Option<Vec<RtcCodec>> {
    let line = answer
        .media_lines
        .iter()
        .find(|m| m.typ.is_media() && MediaKind::from(m.typ.clone()) == MediaKind::Video)?;
    Some(line.rtp_params().iter().map(|p| p.spec().codec).collect())
}

/// A local source's frame as the relay forwards it (H.264, 90 kHz).
/// `None` for a codec WebRTC does not carry.
fn local_frame(frame: &EncodedFrame) -> Option<Frame<'static>> {
    let codec = match frame.params.codec {
        reallive_core::Codec::H264 => RtcCodec::H264,
        reallive_core::Codec::H265 => RtcCodec::H265,
        _ => return None,
    };
    Some(Frame::Local {
        data: Arc::from(&frame.data[..]),
        time: MediaTime::new(frame.pts_90k.max(0) as u64, Frequency::NINETY_KHZ),
        keyframe: frame.keyframe,
        codec,
    })
}

/// A video frame as the GOP cache and a catch-up hold it.
fn timed(frame: &Frame<'_>, keyframe: bool) -> Timed<Cached> {
    let item = frame.cached();
    Timed {
        ticks: frame.time().numer(),
        bytes: item.data.len(),
        keyframe,
        item,
    }
}

/// Writes a video frame into a viewer's m-line `mid`, stamped `time`: in
/// the publisher's payload type as the viewer maps it, or, for a local
/// source, the viewer's type for the frame's codec (for H.264,
/// packetization mode 1 preferred). False when the viewer has no such type.
fn write_video(
    rtc: &mut Rtc,
    mid: Mid,
    frame: &Cached,
    wallclock: Instant,
    time: MediaTime,
) -> bool {
    let Some(w) = rtc.writer(mid) else {
        return false;
    };
    let pt = match frame.params {
        Some(params) => w.match_params(params),
        None => {
            let same = |p: &&PayloadParams| p.spec().codec == frame.codec;
            w.payload_params()
                .filter(same)
                .find(|p| p.spec().format.packetization_mode == Some(1))
                .or_else(|| w.payload_params().find(same))
                .map(PayloadParams::pt)
        }
    };
    match pt {
        Some(pt) => w.write(pt, wallclock, time, frame.data.clone()).is_ok(),
        None => false,
    }
}

/// The answer with every m-line the relay sends in one media stream,
/// `stream`: a viewer plays the audio and video of one stream in sync
/// (lip sync groups tracks by their `msid` stream id), and str0m gives each
/// m-line a browser offered as `recvonly` a random stream id of its own.
fn one_media_stream(sdp: &str, stream: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let eol = &line[body.len()..];
        if let Some(rest) = body.strip_prefix("a=msid-semantic:") {
            // `WMS <ids>`: the ids are the streams of the session.
            let semantic = rest.split_whitespace().next().unwrap_or("WMS");
            out.push_str(&format!("a=msid-semantic: {semantic} {stream}"));
        } else if let Some(rest) = body.strip_prefix("a=msid:") {
            let track = rest.split_whitespace().nth(1).unwrap_or("-");
            out.push_str(&format!("a=msid:{stream} {track}"));
        } else if let Some((ssrc, rest)) = body
            .strip_prefix("a=ssrc:")
            .and_then(|r| r.split_once(" msid:"))
        {
            let track = rest.split_whitespace().nth(1).unwrap_or("-");
            out.push_str(&format!("a=ssrc:{ssrc} msid:{stream} {track}"));
        } else {
            out.push_str(body);
        }
        out.push_str(eol);
    }
    out
}

/// Publishers must offer to send, subscribers to receive: catches a client
/// that joined with the wrong role before any media is set up.
fn check_direction(sdp: &str, role: PeerRole) -> Result<(), RelayError> {
    let media_lines = sdp.lines().filter(|l| l.starts_with("m=")).count();
    if media_lines == 0 {
        return Err(RelayError::BadSdp("the offer has no media".into()));
    }
    let refused = match role {
        PeerRole::Publisher => Direction::RecvOnly,
        PeerRole::Subscriber => Direction::SendOnly,
    };
    let all_refused = sdp
        .lines()
        .filter(|l| {
            l.starts_with("a=sendonly")
                || l.starts_with("a=recvonly")
                || l.starts_with("a=sendrecv")
                || l.starts_with("a=inactive")
        })
        .all(|l| l.trim() == format!("a={refused}"));
    let has_direction = sdp.lines().any(|l| {
        l.starts_with("a=sendonly") || l.starts_with("a=recvonly") || l.starts_with("a=sendrecv")
    });
    if has_direction && all_refused {
        return Err(RelayError::BadSdp(match role {
            PeerRole::Publisher => "a publisher must offer to send".into(),
            PeerRole::Subscriber => "a viewer must offer to receive".into(),
        }));
    }
    Ok(())
}
