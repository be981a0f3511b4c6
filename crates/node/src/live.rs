//! The live path's HTTP surface: the `/ws/signaling` shell around the
//! sans-IO [`Hub`], WHIP and WHEP, and the pump that turns relay events
//! into camera status, session rows and `camera-status` pushes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reallive_auth::{CameraStatus, random_token};
use reallive_core::{
    AudioCodec, AudioFrame, AudioParameters, AudioTranscoder, CameraAudio, Codec, EncodedFrame,
    ErrorKind, StartOpusTranscoder, StartVideoTranscoder, VideoTranscoder, audio_channel,
    frame_channel,
};
use reallive_relay::{PeerRole, Relay, RelayEvent, SessionId, TranscodeWant};
use reallive_signaling::{Action, ConnId, Directory, Hub, Message, Proof, Refusal, Role, Status};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use reallive_http::{ApiError, ApiPath, ApiState, MediaSession, MediaUser};

/// Messages queued to one WebSocket; a client that does not read is closed.
const WS_QUEUE: usize = 64;

/// Limits on the live path, against clients that hold resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveLimits {
    /// A signaling socket must join a room within this, or it is closed.
    pub join_timeout: std::time::Duration,
    /// Signaling sockets open at once; the next upgrade is a 503.
    pub max_sockets: usize,
    /// Signaling sockets one client (an IPv4 address, an IPv6 /64) holds at
    /// once; its next upgrade is a 503, so one address cannot take them all.
    pub max_sockets_per_client: usize,
    /// WHEP viewer sessions one user holds at once; the next is a 429.
    pub sessions_per_user: usize,
    /// SDP offers being answered at once; another gets a `rate_limited`
    /// error instead of a task.
    pub offers_in_flight: usize,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            join_timeout: std::time::Duration::from_secs(10),
            max_sockets: 1024,
            max_sockets_per_client: 256,
            sessions_per_user: 16,
            offers_in_flight: 64,
        }
    }
}

/// The live path's shared state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    api: ApiState,
    relay: Relay,
    hub: Mutex<Hub>,
    next_conn: AtomicU64,
    conns: Mutex<HashMap<ConnId, mpsc::Sender<Outgoing>>>,
    /// Relay sessions made over signaling.
    ws_sessions: Mutex<HashMap<(ConnId, i64), SessionId>>,
    /// Relay sessions made over WHIP/WHEP, by their URL id.
    http_sessions: Mutex<HashMap<String, HttpSession>>,
    /// Session rows for publishers, by relay session.
    rows: Mutex<HashMap<SessionId, i64>>,
    limits: LiveLimits,
    /// Signaling sockets per client.
    socket_clients: reallive_http::ClientSlots,
    /// Permits for offers being answered.
    offers: Arc<tokio::sync::Semaphore>,
    /// Starts the Opus transcoder of a local camera's AAC, while a viewer
    /// listens (the NVR sets it; without it, only Opus sound goes live).
    opus: OnceLock<OpusStart>,
    /// Starts the live H.264 transcode of a local camera that some viewer
    /// cannot play (the NVR sets it).
    video: OnceLock<VideoStart>,
}

/// [`StartOpusTranscoder`], shown in `Debug` by name.
struct OpusStart(StartOpusTranscoder);

impl std::fmt::Debug for OpusStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartOpusTranscoder")
    }
}

/// [`StartVideoTranscoder`], shown in `Debug` by name.
struct VideoStart(StartVideoTranscoder);

impl std::fmt::Debug for VideoStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartVideoTranscoder")
    }
}

/// Frames queued from a live transcoder to the relay: 1 s at 30 fps.
const LIVE_TRANSCODE_QUEUE: usize = 30;

/// A kept GOP of at most this many frames goes into a new transcoder at
/// once, so its first viewer starts at the last keyframe; a longer one
/// would overflow the transcoder's queue (30 frames), and the transcode
/// starts at the camera's next keyframe instead.
const TRANSCODE_GOP_FRAMES: usize = 25;

/// A local camera's live transcode (`docs/design/live-transcode.md`): the
/// relay says what the camera sends; while it wants the transcode (a
/// viewer cannot play the camera's stream, or left less than 10 s ago),
/// one transcoder runs, whatever the number of such viewers, and its
/// H.264 goes back to the relay for them.
#[derive(Debug)]
struct LiveVideo {
    camera: i64,
    want: Arc<TranscodeWant>,
    /// What the relay was last told the camera sends, and whether the
    /// telling got through (else it is said again at the next keyframe).
    told: Option<((Codec, bool), bool)>,
    transcoder: Option<VideoTranscoding>,
    /// A transcoder failed to start or run: the next is tried at this
    /// frame's time, later after each failure in a row (1 s doubling to
    /// 30 s); reset when nobody wants the transcode.
    retry: Option<std::time::Instant>,
    backoff: reallive_core::Backoff,
}

/// The first retry of a failed live transcode, doubling to the second.
const TRANSCODE_RETRY: (std::time::Duration, std::time::Duration) = (
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(30),
);

struct VideoTranscoding {
    codec: Codec,
    transcoder: Box<dyn VideoTranscoder>,
    started: std::time::Instant,
}

impl std::fmt::Debug for VideoTranscoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoTranscoding")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl LiveVideo {
    /// `frame` is already the last of `gop`, the camera's current GOP.
    fn offer(
        &mut self,
        relay: &Relay,
        start: Option<&StartVideoTranscoder>,
        gop: &[EncodedFrame],
        frame: &EncodedFrame,
    ) {
        if frame.keyframe {
            self.tell(relay, frame);
        }
        if !self.want.wanted() {
            if self.transcoder.take().is_some() {
                tracing::info!(
                    camera = self.camera,
                    "live transcode stopped: no viewer needs it"
                );
            }
            self.retry = None;
            self.backoff.reset();
            return;
        }
        if self
            .transcoder
            .as_ref()
            .is_some_and(|t| t.codec != frame.params.codec)
        {
            // The camera changed codec: a transcoder for the new one.
            self.transcoder = None;
        }
        let Some(t) = self.transcoder.as_mut() else {
            self.start(relay, start, gop, frame);
            return;
        };
        if self.want.take_keyframe() {
            t.transcoder.request_keyframe();
        }
        if let Err(e) = t.transcoder.push(frame) {
            self.transcoder = None;
            self.failed(&format!("failed: {e}"));
        } else if self.backoff.is_raised() && t.started.elapsed() >= TRANSCODE_RETRY.1 {
            // It has run a while: the next failure is retried soon again.
            self.backoff.reset();
        }
    }

    /// A transcoder failed: the next one is tried after a delay.
    fn failed(&mut self, what: &str) {
        let delay = self.backoff.next_delay();
        tracing::warn!(
            camera = self.camera,
            "live transcode {what}; trying again in {:.0} s",
            delay.as_secs_f64()
        );
        self.retry = Some(std::time::Instant::now() + delay);
    }

    /// Tells the relay what the camera sends, when that changed or the
    /// last telling did not get through.
    fn tell(&mut self, relay: &Relay, frame: &EncodedFrame) {
        let codec = frame.params.codec;
        let reorders =
            codec == Codec::H264 && frame.params.stream_info().is_ok_and(|i| i.may_reorder);
        let video = (codec, reorders);
        if self.told != Some((video, true)) {
            let ok = relay.set_local_video(self.camera, Some(video));
            self.told = Some((video, ok));
        }
    }

    fn start(
        &mut self,
        relay: &Relay,
        start: Option<&StartVideoTranscoder>,
        gop: &[EncodedFrame],
        frame: &EncodedFrame,
    ) {
        if self.retry.is_some_and(|at| std::time::Instant::now() < at) {
            return;
        }
        self.retry = None;
        let Some(start) = start else {
            self.failed("cannot start: this program has no transcoder");
            return;
        };
        let (tx, mut rx) = frame_channel(LIVE_TRANSCODE_QUEUE);
        // Its first picture from the last keyframe, when the GOP so far is
        // short enough to go at once; else from the next keyframe.
        let first: &[EncodedFrame] = if gop.len() <= TRANSCODE_GOP_FRAMES {
            gop
        } else {
            std::slice::from_ref(frame)
        };
        // Building the pipeline, and its decoder and encoder at the first
        // keyframe, blocks for tens of ms.
        let started = blocking(|| {
            let mut transcoder =
                start(frame.params.codec, tx).map_err(|e| format!("did not start: {e}"))?;
            for f in first {
                transcoder.push(f).map_err(|e| format!("failed: {e}"))?;
            }
            Ok::<_, String>(transcoder)
        });
        let transcoder = match started {
            Ok(t) => t,
            Err(e) => {
                self.failed(&e);
                return;
            }
        };
        let relay_out = relay.clone();
        let camera = self.camera;
        // Ends when the transcoder is dropped (its sender with it).
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                let _ = relay_out.offer_transcoded(camera, f);
            }
        });
        tracing::info!(
            camera,
            codec = %frame.params.codec,
            "live transcode started: H.264 for viewers that cannot play the camera's stream"
        );
        let _ = self.want.take_keyframe();
        self.transcoder = Some(VideoTranscoding {
            codec: frame.params.codec,
            transcoder,
            started: std::time::Instant::now(),
        });
    }

    /// The source is gone: the relay forgets what it sent.
    fn forget(&self, relay: &Relay) {
        if self.told.is_some() {
            let _ = relay.set_local_video(self.camera, None);
        }
    }
}

/// Runs `f`, which blocks (it builds a GStreamer pipeline), on a camera's
/// task without stalling the other tasks of its worker thread: on a
/// multi-thread runtime they move to another worker meanwhile
/// (`block_in_place`); elsewhere (a current-thread runtime, no runtime) it
/// simply runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Opus packets queued from a live-sound transcoder to the relay: 200 ms.
const LIVE_SOUND_QUEUE: usize = 10;

/// A local camera's sound for its live viewers (`docs/design/audio.md`,
/// "Live sound from RTSP cameras"): Opus goes as it is; AAC goes through
/// an Opus transcoder, started when a viewer has taken audio and dropped
/// (stopping it) at the first packet after none has. One per camera,
/// whatever the number of viewers.
#[derive(Debug)]
struct LiveSound {
    camera: i64,
    /// Set by the relay while a viewer of the camera took audio.
    heard: Arc<AtomicBool>,
    transcoder: Option<Transcoding>,
    /// A transcoder failed to start or run: not tried again in this run
    /// of the camera (logged once).
    failed: bool,
}

struct Transcoding {
    params: Arc<AudioParameters>,
    transcoder: Box<dyn AudioTranscoder>,
}

impl std::fmt::Debug for Transcoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoding")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl LiveSound {
    fn offer(&mut self, relay: &Relay, start: Option<&StartOpusTranscoder>, frame: &AudioFrame) {
        if !self.heard.load(Ordering::Relaxed) {
            if self.transcoder.take().is_some() {
                tracing::info!(
                    camera = self.camera,
                    "live sound: nobody listens; transcoder stopped"
                );
            }
            return;
        }
        match frame.params.codec {
            AudioCodec::Opus => {
                let _ = relay.offer_local_audio(self.camera, frame.clone());
            }
            AudioCodec::Aac => self.transcode(relay, start, frame),
        }
    }

    fn transcode(
        &mut self,
        relay: &Relay,
        start: Option<&StartOpusTranscoder>,
        frame: &AudioFrame,
    ) {
        if self
            .transcoder
            .as_ref()
            .is_some_and(|t| *t.params != *frame.params)
        {
            // The camera's audio changed: a transcoder for the new one.
            self.transcoder = None;
        }
        if self.transcoder.is_none() {
            let Some(start) = start.filter(|_| !self.failed) else {
                return;
            };
            let (tx, mut rx) = audio_channel(LIVE_SOUND_QUEUE);
            // Building the pipeline blocks.
            match blocking(|| start(CameraAudio::Aac(frame.params.clone()), tx)) {
                Ok(transcoder) => {
                    let relay = relay.clone();
                    let camera = self.camera;
                    // Ends when the transcoder is dropped (its sender with it).
                    tokio::spawn(async move {
                        while let Some(a) = rx.recv().await {
                            let _ = relay.offer_local_audio(camera, a);
                        }
                    });
                    tracing::info!(
                        camera = self.camera,
                        "live sound: transcoding the camera's AAC to Opus"
                    );
                    self.transcoder = Some(Transcoding {
                        params: frame.params.clone(),
                        transcoder,
                    });
                }
                Err(e) => {
                    tracing::warn!(
                        camera = self.camera,
                        "live sound: the Opus transcoder did not start: {e}"
                    );
                    self.failed = true;
                    return;
                }
            }
        }
        if let Some(t) = self.transcoder.as_mut()
            && let Err(e) = t.transcoder.push(frame.data.clone(), frame.pts_90k)
        {
            tracing::warn!(
                camera = self.camera,
                "live sound: the Opus transcoder failed: {e}"
            );
            self.transcoder = None;
            self.failed = true;
        }
    }
}

#[derive(Debug, Clone)]
struct HttpSession {
    camera: i64,
    session: SessionId,
    role: PeerRole,
    /// The WHEP viewer, who alone may end it (WHIP: the key holder).
    user: Option<i64>,
    /// What admitted it, checked again every [`REVALIDATE_EVERY`].
    proof: SessionProof,
}

/// What admitted a WHIP or WHEP session.
#[derive(Clone)]
enum SessionProof {
    /// WHIP: the stream key (a regenerated key ends the session).
    Key(String),
    /// WHEP: the viewer, their token version then and the token's id (a
    /// password change, a sign-out of that token or everywhere, or a
    /// deletion ends it; so does a grant taken away).
    Viewer {
        user: i64,
        token_version: i64,
        token_id: reallive_auth::TokenId,
    },
}

impl std::fmt::Debug for SessionProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionProof::Key(_) => f.write_str("Key(***)"),
            SessionProof::Viewer { user, .. } => write!(f, "Viewer({user})"),
        }
    }
}

/// How often live sessions' credentials are checked again: a revoked
/// grant, token or key ends its sessions within this.
const REVALIDATE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug)]
enum Outgoing {
    Message(Message),
    Close,
}

/// A camera fed from this process; see [`LiveState::local_source`].
#[derive(Debug)]
pub struct LocalSource {
    live: LiveState,
    camera: i64,
    /// Deltas are held back until a keyframe: at the start, and after a
    /// frame the relay had no room for.
    waiting_keyframe: bool,
    dropped: u64,
    /// Set by the relay while the camera has a viewer: frames cross into
    /// the relay's task only then.
    watched: Arc<AtomicBool>,
    /// Whether the last frame went to the relay.
    sending: bool,
    /// The camera's current GOP (shared frames, no copies), for the first
    /// viewer's first frame; bounded as the relay's cache is.
    gop: Vec<EncodedFrame>,
    gop_bytes: usize,
    sound: LiveSound,
    video: LiveVideo,
}

impl LocalSource {
    /// Hands a packet of the camera's sound to its viewers that listen,
    /// as Opus (transcoded from AAC while one listens); never waits.
    pub fn offer_audio(&mut self, frame: &AudioFrame) {
        let inner = &self.live.inner;
        let start = inner.opus.get().map(|o| &o.0);
        self.sound.offer(&inner.relay, start, frame);
    }

    /// Hands a frame to the relay without waiting, while the camera has a
    /// viewer; otherwise only keeps the current GOP. When the first viewer
    /// comes, the kept GOP goes first, so it starts at once at its
    /// keyframe. A frame the relay has no room for is dropped, and so is
    /// every delta up to the next keyframe, so viewers never get a picture
    /// they cannot decode.
    pub fn offer(&mut self, frame: &EncodedFrame) {
        self.keep(frame);
        let inner = &self.live.inner;
        let start = inner.video.get().map(|v| &v.0);
        // After `keep`, a GOP kept ends with `frame`.
        let gop: &[EncodedFrame] = if self.gop.is_empty() {
            std::slice::from_ref(frame)
        } else {
            &self.gop
        };
        self.video.offer(&inner.relay, start, gop, frame);
        if !self.watched.load(Ordering::Relaxed) {
            self.sending = false;
            return;
        }
        let relay = &self.live.inner.relay;
        if !self.sending {
            self.sending = true;
            if !self.gop.is_empty() {
                self.waiting_keyframe = !relay.offer_local_gop(self.camera, self.gop.clone());
                if self.waiting_keyframe {
                    self.dropped += 1;
                }
                return;
            }
        }
        if self.waiting_keyframe && !frame.keyframe {
            self.dropped += 1;
            return;
        }
        self.waiting_keyframe = !relay.offer_local(self.camera, frame.clone());
        if self.waiting_keyframe {
            self.dropped += 1;
        }
    }

    /// Keeps `frame` in the current GOP: a keyframe starts it; a GOP over
    /// the relay's bound is dropped until the next keyframe.
    fn keep(&mut self, frame: &EncodedFrame) {
        let max = self.live.inner.relay.gop_cache_bytes();
        if frame.keyframe {
            self.gop.clear();
            self.gop_bytes = 0;
        } else if self.gop.is_empty() {
            return;
        }
        if self.gop_bytes + frame.data.len() > max {
            self.gop.clear();
            self.gop_bytes = 0;
            return;
        }
        self.gop_bytes += frame.data.len();
        self.gop.push(frame.clone());
    }

    /// Frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The camera is offline again.
    pub async fn close(self) {
        self.video.forget(&self.live.inner.relay);
        let actions = lock(&self.live.inner.hub).external_publisher(
            self.camera,
            false,
            &Dir(&self.live.inner.api),
        );
        self.live.execute(actions).await;
    }
}

impl reallive_record::live::LiveFeed for LocalSource {
    fn offer(&mut self, frame: &EncodedFrame) {
        LocalSource::offer(self, frame);
    }

    fn offer_audio(&mut self, frame: &AudioFrame) {
        LocalSource::offer_audio(self, frame);
    }

    fn close(self: Box<Self>) -> reallive_record::BoxFuture<'static, ()> {
        Box::pin(LocalSource::close(*self))
    }
}

impl reallive_record::live::LiveOutlet for LiveState {
    fn open(
        &self,
        camera: i64,
    ) -> reallive_record::BoxFuture<'_, Box<dyn reallive_record::live::LiveFeed>> {
        Box::pin(async move {
            Box::new(self.local_source(camera).await) as Box<dyn reallive_record::live::LiveFeed>
        })
    }
}

impl axum::extract::FromRef<LiveState> for ApiState {
    fn from_ref(live: &LiveState) -> ApiState {
        live.inner.api.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Auth decisions for the hub, over the accounts snapshot.
struct Dir<'a>(&'a ApiState);

impl Directory for Dir<'_> {
    fn camera_exists(&self, camera: i64) -> bool {
        self.0.accounts().snapshot().camera(camera).is_some()
    }
    fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
        self.0.accounts().snapshot().stream_key_matches(camera, key)
    }
    fn user_for_token(&self, token: &str) -> Option<i64> {
        self.0.authenticate(token).ok().map(|u| u.id)
    }
    fn may_view(&self, user: i64, camera: i64) -> bool {
        let snap = self.0.accounts().snapshot();
        match (snap.user(user), snap.camera(camera)) {
            (Some(u), Some(c)) => snap.access(u, c).is_some(),
            _ => false,
        }
    }
}

fn status_of(s: Status) -> CameraStatus {
    match s {
        Status::Offline => CameraStatus::Offline,
        Status::Online => CameraStatus::Online,
        Status::Streaming => CameraStatus::Streaming,
    }
}

impl LiveState {
    /// Wires the relay to the API: starts the event pump, which stops with
    /// `shutdown`. Call once at start; it also closes sessions a crash left
    /// open.
    pub async fn start(
        api: ApiState,
        relay: Relay,
        mut events: mpsc::Receiver<RelayEvent>,
        limits: LiveLimits,
        shutdown: CancellationToken,
    ) -> Result<LiveState, ApiError> {
        let stale = api.accounts().reset_live_state().await?;
        if stale > 0 {
            tracing::warn!(
                sessions = stale,
                "closed streaming sessions left open by an unclean stop"
            );
        }
        let live = LiveState {
            inner: Arc::new(Inner {
                api,
                relay,
                hub: Mutex::new(Hub::new()),
                next_conn: AtomicU64::new(1),
                conns: Mutex::new(HashMap::new()),
                ws_sessions: Mutex::new(HashMap::new()),
                http_sessions: Mutex::new(HashMap::new()),
                rows: Mutex::new(HashMap::new()),
                limits,
                socket_clients: reallive_http::ClientSlots::default(),
                offers: Arc::new(tokio::sync::Semaphore::new(limits.offers_in_flight.max(1))),
                opus: OnceLock::new(),
                video: OnceLock::new(),
            }),
        };
        let pump = live.clone();
        let stop = shutdown.clone();
        tokio::spawn(
            async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        e = events.recv() => match e {
                            Some(e) => pump.relay_event(e).await,
                            None => break,
                        },
                    }
                }
            }
            .instrument(tracing::info_span!("live-events")),
        );
        let checker = live.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(REVALIDATE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => checker.revalidate().await,
                }
            }
        });
        let metrics = live.clone();
        live.inner
            .api
            .add_metrics_source(Box::new(move |out: &mut String| {
                metrics.render_metrics(out)
            }));
        Ok(live)
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.inner.relay
    }

    async fn relay_event(&self, e: RelayEvent) {
        match e {
            RelayEvent::Media { camera, flowing } => {
                let actions = {
                    let mut hub = lock(&self.inner.hub);
                    hub.media(camera, flowing, &Dir(&self.inner.api))
                };
                self.execute(actions).await;
            }
            RelayEvent::SessionEnded {
                session,
                camera,
                role,
            } => {
                let row = lock(&self.inner.rows).remove(&session);
                if let Some(row) = row
                    && let Err(e) = self.inner.api.accounts().end_session(row, false).await
                {
                    tracing::warn!(camera, "recording a session's end: {e}");
                }
                lock(&self.inner.ws_sessions).retain(|_, s| *s != session);
                let http = {
                    let mut m = lock(&self.inner.http_sessions);
                    let key = m
                        .iter()
                        .find(|(_, s)| s.session == session)
                        .map(|(k, _)| k.clone());
                    key.and_then(|k| m.remove(&k))
                };
                if http.is_some() && role == PeerRole::Publisher {
                    let actions = lock(&self.inner.hub).external_publisher(
                        camera,
                        false,
                        &Dir(&self.inner.api),
                    );
                    self.execute(actions).await;
                }
            }
        }
    }

    /// A camera fed from inside this process (the NVR's recorder of an
    /// RTSP camera): viewers see it online until [`LocalSource::close`],
    /// and its frames reach them through the relay as they are.
    pub async fn local_source(&self, camera: i64) -> LocalSource {
        let actions = lock(&self.inner.hub).external_publisher(camera, true, &Dir(&self.inner.api));
        self.execute(actions).await;
        LocalSource {
            watched: self.inner.relay.watched(camera),
            live: self.clone(),
            camera,
            waiting_keyframe: true,
            dropped: 0,
            sending: false,
            gop: Vec::new(),
            gop_bytes: 0,
            sound: LiveSound {
                camera,
                heard: self.inner.relay.heard(camera),
                transcoder: None,
                failed: false,
            },
            video: LiveVideo {
                camera,
                want: self.inner.relay.transcode(camera),
                told: None,
                transcoder: None,
                retry: None,
                backoff: reallive_core::Backoff::exact(TRANSCODE_RETRY.0, TRANSCODE_RETRY.1),
            },
        }
    }

    /// Lets local cameras that a viewer cannot play (H.265, B-frames) go
    /// live through an H.264 transcode `start` makes (one per camera while
    /// needed, within the relay's limit). Set once; later calls are
    /// ignored.
    pub fn set_video_transcoder(&self, start: StartVideoTranscoder) {
        let _ = self.inner.video.set(VideoStart(start));
    }

    /// Lets local cameras' AAC sound go live, through Opus transcoders
    /// `start` makes (one per camera while a viewer listens). Set once;
    /// later calls are ignored.
    pub fn set_opus_transcoder(&self, start: StartOpusTranscoder) {
        let _ = self.inner.opus.set(OpusStart(start));
    }

    /// Carries out the hub's actions.
    async fn execute(&self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(conn, msg) => self.send(conn, Outgoing::Message(msg)),
                Action::Close(conn) => self.send(conn, Outgoing::Close),
                Action::RelayOffer {
                    conn,
                    camera,
                    role,
                    sdp,
                } => {
                    // The relay answers in microseconds, but never make the
                    // connection's reader wait on it; at most
                    // `offers_in_flight` at once.
                    match self.inner.offers.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let live = self.clone();
                            tokio::spawn(async move {
                                live.offer(conn, camera, role, sdp).await;
                                drop(permit);
                            });
                        }
                        Err(_) => self.send(
                            conn,
                            Outgoing::Message(Message::error(
                                reallive_signaling::ErrorCode::RateLimited,
                                "too many offers at once; try again",
                                Some(camera),
                            )),
                        ),
                    }
                }
                Action::RelayCandidate {
                    conn,
                    camera,
                    candidate,
                } => {
                    let session = lock(&self.inner.ws_sessions).get(&(conn, camera)).copied();
                    if let Some(s) = session {
                        self.inner.relay.add_candidate(s, candidate).await;
                    }
                }
                Action::RelayLeave { conn, camera } => {
                    let session = lock(&self.inner.ws_sessions).remove(&(conn, camera));
                    if let Some(s) = session {
                        self.inner.relay.close(s).await;
                    }
                }
                Action::SetStatus { camera, status } => {
                    if let Err(e) = self
                        .inner
                        .api
                        .accounts()
                        .set_camera_status(camera, status_of(status))
                        .await
                        && e.kind() != ErrorKind::NotFound
                    {
                        tracing::warn!(camera, "recording camera status: {e}");
                    }
                }
            }
        }
    }

    /// Ends every live session whose credential no longer holds: WS
    /// memberships through the hub, WHIP and WHEP sessions here.
    async fn revalidate(&self) {
        let actions = lock(&self.inner.hub).revalidate(&Dir(&self.inner.api));
        self.execute(actions).await;
        let gone: Vec<(String, HttpSession)> = {
            let snapshot = self.inner.api.accounts().snapshot();
            let hub = lock(&self.inner.hub);
            let dir = Dir(&self.inner.api);
            let mut sessions = lock(&self.inner.http_sessions);
            let ids: Vec<String> = sessions
                .iter()
                .filter(|(_, s)| {
                    let ok = match &s.proof {
                        SessionProof::Key(key) => hub
                            .admit_session(
                                s.camera,
                                Role::Publisher,
                                Proof::StreamKey(Some(key)),
                                &dir,
                            )
                            .is_ok(),
                        SessionProof::Viewer {
                            user,
                            token_version,
                            token_id,
                        } => {
                            snapshot
                                .user(*user)
                                .is_some_and(|u| u.token_version == *token_version)
                                && !self.inner.api.is_signed_out(token_id)
                                && !matches!(
                                    hub.admit_session(
                                        s.camera,
                                        Role::Viewer,
                                        Proof::User(*user),
                                        &dir
                                    ),
                                    Err(Refusal::Unauthorized(_) | Refusal::NotFound)
                                )
                        }
                    };
                    !ok
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (_, s) in gone {
            tracing::info!(
                camera = s.camera,
                session = s.session,
                "live session ended: its access was revoked"
            );
            self.inner.relay.close(s.session).await;
            if s.role == PeerRole::Publisher {
                let actions = lock(&self.inner.hub).external_publisher(
                    s.camera,
                    false,
                    &Dir(&self.inner.api),
                );
                self.execute(actions).await;
            }
        }
    }

    /// A WHIP or WHEP session may start only if the hub admits it, by the
    /// rules a WebSocket join follows.
    fn admit(&self, camera: i64, role: Role, proof: Proof<'_>) -> Result<(), ApiError> {
        let admitted =
            lock(&self.inner.hub).admit_session(camera, role, proof, &Dir(&self.inner.api));
        admitted.map(|_| ()).map_err(|r| match r {
            Refusal::Unauthorized(_) => ApiError::new(ErrorKind::Unauthenticated, r.message()),
            Refusal::NotFound => ApiError::new(ErrorKind::NotFound, r.message()),
            // Not a fault: said as it is, not logged as an error.
            _ => ApiError::busy(r.message(), 2),
        })
    }

    fn send(&self, conn: ConnId, out: Outgoing) {
        let tx = lock(&self.inner.conns).get(&conn).cloned();
        if let Some(tx) = tx
            && tx.try_send(out).is_err()
        {
            // Not reading: close it rather than buffer without bound.
            tracing::debug!(conn, "signaling client too slow; closing");
            lock(&self.inner.conns).remove(&conn);
        }
    }

    async fn offer(&self, conn: ConnId, camera: i64, role: Role, sdp: String) {
        let peer_role = match role {
            Role::Publisher => PeerRole::Publisher,
            Role::Viewer => PeerRole::Subscriber,
        };
        match self.inner.relay.accept(camera, peer_role, sdp).await {
            Ok(reallive_relay::Accepted {
                session, answer, ..
            }) => {
                let old = lock(&self.inner.ws_sessions).insert((conn, camera), session);
                if let Some(old) = old {
                    self.inner.relay.close(old).await;
                }
                if peer_role == PeerRole::Publisher {
                    self.record_start(camera, session).await;
                }
                self.send(
                    conn,
                    Outgoing::Message(Message::Answer {
                        camera_id: camera,
                        sdp: answer,
                    }),
                );
            }
            Err(e) => self.send(
                conn,
                Outgoing::Message(Message::error(
                    reallive_signaling::ErrorCode::Relay,
                    e.to_string(),
                    Some(camera),
                )),
            ),
        }
    }

    async fn record_start(&self, camera: i64, session: SessionId) {
        match self.inner.api.accounts().start_session(camera).await {
            Ok(row) => {
                lock(&self.inner.rows).insert(session, row);
            }
            Err(e) => tracing::warn!(camera, "recording a session's start: {e}"),
        }
    }

    fn render_metrics(&self, out: &mut String) {
        let counters = self.inner.relay.counters();
        out.push_str(
            "# HELP reallive_relay_subscribers Subscribers per camera.\n# TYPE reallive_relay_subscribers gauge\n",
        );
        for (cam, c) in &counters {
            let _ = writeln!(
                out,
                "reallive_relay_subscribers{{camera=\"{cam}\"}} {}",
                c.subscribers.len()
            );
        }
        out.push_str(
            "# HELP reallive_relay_transcoding Whether a local camera's live transcode runs, for viewers that cannot play its stream.\n# TYPE reallive_relay_transcoding gauge\n\
             # HELP reallive_relay_transcoded_subscribers Viewers that get a camera's live transcode.\n# TYPE reallive_relay_transcoded_subscribers gauge\n",
        );
        for (cam, c) in counters.iter().filter(|(_, c)| c.transcoding) {
            let _ = writeln!(
                out,
                "reallive_relay_transcoding{{camera=\"{cam}\"}} 1\nreallive_relay_transcoded_subscribers{{camera=\"{cam}\"}} {}",
                c.transcoded_subscribers
            );
        }
        out.push_str(
            "# HELP reallive_relay_keyframe_requests_total Keyframe requests per camera: asked by subscribers and the relay, and sent to the publisher.\n# TYPE reallive_relay_keyframe_requests_total counter\n",
        );
        for (cam, c) in &counters {
            let _ = writeln!(
                out,
                "reallive_relay_keyframe_requests_total{{camera=\"{cam}\",stage=\"asked\"}} {}\nreallive_relay_keyframe_requests_total{{camera=\"{cam}\",stage=\"sent\"}} {}",
                c.keyframes_asked, c.keyframes_sent
            );
        }
        out.push_str(
            "# HELP reallive_relay_packets_total Media packets: received from the publisher, sent to each subscriber.\n# TYPE reallive_relay_packets_total counter\n\
             # HELP reallive_relay_bytes_total Media bytes, likewise.\n# TYPE reallive_relay_bytes_total counter\n\
             # HELP reallive_relay_loss_ratio Fraction of packets lost, as last reported.\n# TYPE reallive_relay_loss_ratio gauge\n\
             # HELP reallive_relay_rtt_seconds Round-trip time, as last measured.\n# TYPE reallive_relay_rtt_seconds gauge\n\
             # HELP reallive_relay_peer_keyframe_requests_total Keyframe requests sent to a publisher or received from a subscriber.\n# TYPE reallive_relay_peer_keyframe_requests_total counter\n\
             # HELP reallive_relay_peer_transport What carries each peer's packets: udp, or tcp (ICE-TCP).\n# TYPE reallive_relay_peer_transport gauge\n",
        );
        for (cam, c) in &counters {
            let peers = c
                .publisher
                .iter()
                .map(|(s, p)| ("publisher", s, p))
                .chain(c.subscribers.iter().map(|(s, p)| ("subscriber", s, p)));
            for (role, s, p) in peers {
                let l = format!("camera=\"{cam}\",role=\"{role}\",session=\"{s}\"");
                let _ = writeln!(out, "reallive_relay_packets_total{{{l}}} {}", p.packets);
                let _ = writeln!(out, "reallive_relay_bytes_total{{{l}}} {}", p.bytes);
                let _ = writeln!(out, "reallive_relay_loss_ratio{{{l}}} {}", p.loss);
                if let Some(rtt) = p.rtt_ms {
                    let _ = writeln!(out, "reallive_relay_rtt_seconds{{{l}}} {}", rtt / 1e3);
                }
                let _ = writeln!(
                    out,
                    "reallive_relay_peer_keyframe_requests_total{{{l}}} {}",
                    p.keyframe_requests
                );
                if let Some(t) = p.transport {
                    let _ = writeln!(
                        out,
                        "reallive_relay_peer_transport{{{l},transport=\"{t}\"}} 1"
                    );
                }
            }
        }
    }
}

/// The live routes: `/ws/signaling`, `/whip/{camera}`, `/whep/{camera}`.
pub fn router(live: LiveState) -> Router {
    Router::new()
        .route("/ws/signaling", get(ws_upgrade))
        .route("/whip/{camera}", post(whip))
        .route(
            "/whip/{camera}/sessions/{id}",
            axum::routing::delete(whip_delete),
        )
        .route("/whep/{camera}", post(whep))
        .route(
            "/whep/{camera}/sessions/{id}",
            axum::routing::delete(whep_delete),
        )
        .with_state(live)
}

async fn ws_upgrade(
    State(live): State<LiveState>,
    reallive_http::PeerIp(ip): reallive_http::PeerIp,
    ws: WebSocketUpgrade,
) -> Response {
    if lock(&live.inner.conns).len() >= live.inner.limits.max_sockets {
        return ApiError::busy("too many signaling connections; try again", 5).into_response();
    }
    let slot = match ip {
        Some(ip) => match live
            .inner
            .socket_clients
            .take(ip, live.inner.limits.max_sockets_per_client)
        {
            Some(slot) => Some(slot),
            None => {
                return ApiError::busy(
                    "too many signaling connections from this address; try again",
                    5,
                )
                .into_response();
            }
        },
        None => None,
    };
    // Frames up to 1 MiB are read so an oversized one (over 64 KiB) can be
    // answered with an error; beyond that the connection is simply dropped.
    ws.max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        .on_upgrade(move |socket| async move {
            connection(live, socket).await;
            drop(slot);
        })
}

async fn connection(live: LiveState, mut socket: WebSocket) {
    let conn = live.inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(WS_QUEUE);
    lock(&live.inner.conns).insert(conn, tx);
    lock(&live.inner.hub).connect(conn);
    let span = tracing::debug_span!("signaling", conn);
    let join_deadline = tokio::time::sleep(live.inner.limits.join_timeout);
    async {
        tracing::debug!("connected");
        let mut join_deadline = std::pin::pin!(join_deadline);
        let mut join_checked = false;
        loop {
            tokio::select! {
                () = &mut join_deadline, if !join_checked => {
                    join_checked = true;
                    if !lock(&live.inner.hub).in_a_room(conn) {
                        tracing::debug!("no join in time; closing");
                        let m = Message::error(
                            reallive_signaling::ErrorCode::NotJoined,
                            "join a room within the time allowed",
                            None,
                        );
                        let _ = socket.send(WsMessage::Text(m.to_json().into())).await;
                        let _ = socket
                            .send(WsMessage::Close(Some(CloseFrame {
                                code: 1008,
                                reason: "no join".into(),
                            })))
                            .await;
                        break;
                    }
                }
                incoming = socket.recv() => {
                    let text = match incoming {
                        Some(Ok(WsMessage::Text(t))) => t,
                        Some(Ok(WsMessage::Binary(_))) => {
                            let actions = lock(&live.inner.hub).handle(
                                conn,
                                Err(reallive_signaling::SignalingError::Malformed("binary frames are not part of the protocol".into())),
                                &Dir(&live.inner.api),
                            );
                            live.execute(actions).await;
                            continue;
                        }
                        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue, // ping/pong: answered by axum
                    };
                    let parsed = Message::parse(text.as_str());
                    let actions = lock(&live.inner.hub).handle(conn, parsed, &Dir(&live.inner.api));
                    live.execute(actions).await;
                }
                out = rx.recv() => match out {
                    Some(Outgoing::Message(m)) => {
                        if socket.send(WsMessage::Text(m.to_json().into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Outgoing::Close) | None => {
                        let _ = socket
                            .send(WsMessage::Close(Some(CloseFrame {
                                code: 1008,
                                reason: "policy violation".into(),
                            })))
                            .await;
                        break;
                    }
                },
            }
        }
        lock(&live.inner.conns).remove(&conn);
        let actions = lock(&live.inner.hub).disconnect(conn, &Dir(&live.inner.api));
        live.execute(actions).await;
        tracing::debug!("closed");
    }
    .instrument(span)
    .await;
}

fn sdp_body(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/sdp") {
        return Err(ApiError::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/sdp",
        ));
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::new(ErrorKind::InvalidArgument, "the SDP is not UTF-8"))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn created(location: String, answer: String) -> Response {
    let mut r = (StatusCode::CREATED, answer).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    r
}

fn relay_error(e: reallive_relay::RelayError) -> ApiError {
    if let reallive_relay::RelayError::TranscodeLimit { .. } = e {
        // A limit, not a fault: said as it is, with its own code, so a
        // page tells it from an offline camera.
        return ApiError::busy(e.to_string(), 10).with_code("transcode_limit");
    }
    ApiError::new(e.kind(), e.to_string())
}

/// Hands an admitted WHIP or WHEP offer to the relay and keeps the
/// session under a random id (its URL). Returns the id and what the relay
/// accepted.
async fn open_http_session(
    live: &LiveState,
    camera: i64,
    role: PeerRole,
    user: Option<i64>,
    proof: SessionProof,
    sdp: String,
) -> Result<(String, reallive_relay::Accepted), ApiError> {
    let accepted = live
        .inner
        .relay
        .accept(camera, role, sdp)
        .await
        .map_err(relay_error)?;
    let id = random_token::<16>().expose().to_string();
    let s = HttpSession {
        camera,
        session: accepted.session,
        role,
        user,
        proof,
    };
    lock(&live.inner.http_sessions).insert(id.clone(), s);
    Ok((id, accepted))
}

/// WHIP: publish with the camera's stream key.
async fn whip(
    State(live): State<LiveState>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = bearer(&headers)
        .ok_or_else(|| ApiError::unauthenticated("send the stream key as a Bearer token"))?;
    live.admit(camera, Role::Publisher, Proof::StreamKey(Some(key)))?;
    let sdp = sdp_body(&headers, &body)?;
    let (id, accepted) = open_http_session(
        &live,
        camera,
        PeerRole::Publisher,
        None,
        SessionProof::Key(key.to_string()),
        sdp,
    )
    .await?;
    let session = accepted.session;
    live.record_start(camera, session).await;
    let actions = lock(&live.inner.hub).external_publisher(camera, true, &Dir(&live.inner.api));
    live.execute(actions).await;
    tracing::info!(camera, session, "WHIP publisher connected");
    Ok(created(
        format!("/whip/{camera}/sessions/{id}"),
        accepted.answer,
    ))
}

async fn whip_delete(
    State(live): State<LiveState>,
    ApiPath((camera, id)): ApiPath<(i64, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let key = bearer(&headers)
        .ok_or_else(|| ApiError::unauthenticated("send the stream key as a Bearer token"))?;
    live.admit(camera, Role::Publisher, Proof::StreamKey(Some(key)))?;
    end_http_session(&live, camera, &id, PeerRole::Publisher, None).await
}

/// WHEP: watch with a token that grants `view`.
async fn whep(
    State(live): State<LiveState>,
    MediaSession(session): MediaSession,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = &session.user;
    // Checked before the body, so an unseen camera is a 404 whatever was
    // sent.
    live.admit(camera, Role::Viewer, Proof::User(user.id))?;
    let held = lock(&live.inner.http_sessions)
        .values()
        .filter(|s| s.user == Some(user.id) && s.role == PeerRole::Subscriber)
        .count();
    if held >= live.inner.limits.sessions_per_user {
        return Err(ApiError::new(
            ErrorKind::ResourceExhausted,
            format!(
                "at most {} live sessions per user; end one first",
                live.inner.limits.sessions_per_user
            ),
        ));
    }
    let sdp = sdp_body(&headers, &body)?;
    let (id, accepted) = open_http_session(
        &live,
        camera,
        PeerRole::Subscriber,
        Some(user.id),
        SessionProof::Viewer {
            user: user.id,
            token_version: user.token_version,
            token_id: session.token_id,
        },
        sdp,
    )
    .await?;
    let mut r = created(format!("/whep/{camera}/sessions/{id}"), accepted.answer);
    if accepted.transcoded {
        // The page marks the picture as transcoded (lower quality, later).
        r.headers_mut()
            .insert(TRANSCODED_HEADER, HeaderValue::from_static("h264"));
    }
    Ok(r)
}

/// On a WHEP answer: the viewer gets the camera's live transcode, in the
/// codec named (the browser could not play the camera's own stream).
pub const TRANSCODED_HEADER: &str = "x-reallive-transcoded";

async fn whep_delete(
    State(live): State<LiveState>,
    MediaUser(user): MediaUser,
    ApiPath((camera, id)): ApiPath<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    end_http_session(&live, camera, &id, PeerRole::Subscriber, Some(user.id)).await
}

async fn end_http_session(
    live: &LiveState,
    camera: i64,
    id: &str,
    role: PeerRole,
    user: Option<i64>,
) -> Result<StatusCode, ApiError> {
    let found = {
        let mut m = lock(&live.inner.http_sessions);
        match m.get(id) {
            Some(s)
                if s.camera == camera && s.role == role && (user.is_none() || s.user == user) =>
            {
                m.remove(id)
            }
            _ => None,
        }
    };
    let s = found.ok_or_else(|| ApiError::not_found("session"))?;
    live.inner.relay.close(s.session).await;
    if role == PeerRole::Publisher {
        let actions =
            lock(&live.inner.hub).external_publisher(camera, false, &Dir(&live.inner.api));
        live.execute(actions).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
