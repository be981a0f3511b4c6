//! Recording a camera over RTSP without GStreamer: [`RtspSource`], a
//! [`FrameSource`] on retina and the caller's tokio runtime. See
//! `docs/design/ingest.md`.
//!
//! One task per camera reads the interleaved TCP stream (or the UDP
//! sockets), and retina hands it whole access units; [`AccessUnits`] turns
//! each into an [`EncodedFrame`] and offers it to the camera's bounded
//! frame channel in the same task. There is no jitter buffer (TCP is
//! ordered; over UDP a late packet is a lost one) and no thread hop per
//! packet.
//!
//! - **Timestamps come from RTP**: a frame's `pts_90k` is its RTP
//!   timestamp, unwrapped and rebased to the session's first packet.
//!   Arrival times never space frames, so a file's frame intervals are the
//!   camera's own. A timestamp that goes backwards or jumps more than
//!   [`MAX_JUMP_SECS`] ends the session, as does a new SSRC: the worker
//!   restarts it, and the store starts a new run.
//! - **Nothing is lost silently**: a hole in the RTP sequence numbers drops
//!   the frames up to the next keyframe (H.264's only safe recovery),
//!   counted in [`IngestStats`] and logged once per hole.
//! - **Parameter sets** come from the SDP, in band, or both: retina puts
//!   the current ones in front of every keyframe, and a change starts a
//!   new `Arc<CodecParameters>`, which the store takes as a new file.
//! - **Failures are statuses**: a camera that stalls for
//!   [`IngestOptions::stall_timeout`], refuses the password, or sends what
//!   retina cannot parse ends the session with an [`IngestError`]; the
//!   latter says to try `backend = "gstreamer"`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reallive_core::reencode::BoxError;
use reallive_core::source::{BoxFuture, FrameSource, FrameSourceRun};
use reallive_core::{Codec, CodecParameters, EncodedFrame, FrameSender, Offer, RtspUrl, nal};
use retina::client::{
    PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, VideoFrame};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::probe::{self, ProbeError};

/// A timestamp jump larger than this (or any step back) ends the session.
pub const MAX_JUMP_SECS: u32 = 10;

/// How RTP travels from the camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection: ordered, lossless, NAT-proof.
    #[default]
    Tcp,
    /// RTP and RTCP over UDP.
    Udp,
}

impl Transport {
    pub(crate) fn retina(self) -> retina::client::Transport {
        match self {
            Transport::Tcp => retina::client::Transport::Tcp(TcpTransportOptions::default()),
            Transport::Udp => retina::client::Transport::Udp(UdpTransportOptions::default()),
        }
    }
}

/// How an [`RtspSource`] connects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngestOptions {
    /// TCP (the default) or UDP.
    pub transport: Transport,
    /// With no video for this long, the session ends as stalled
    /// (default 10 s). retina's keepalives run meanwhile.
    pub stall_timeout: Duration,
    /// `DESCRIBE` to `PLAY` must finish within this (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            transport: Transport::Tcp,
            stall_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a session ended. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The URL, the network, the credentials or the codec (see
    /// [`ProbeError`]).
    #[error(transparent)]
    Connect(ProbeError),
    /// No video for this many seconds.
    #[error("the camera sent no video for {0} s")]
    Stalled(u64),
    /// The connection ended in the middle of a message.
    #[error("the camera closed the connection mid-stream: {0}")]
    Disconnected(String),
    /// The camera restarted its stream inside the session (a new SSRC,
    /// or its RTP clock or sequence numbers jumped): a new run starts.
    #[error("the camera restarted its stream: {0}")]
    Restarted(String),
    /// The camera broke the protocol, or sent what the client cannot
    /// parse.
    #[error("{0} (if other players can show this camera, try backend = \"gstreamer\" for it)")]
    Protocol(String),
}

impl From<ProbeError> for IngestError {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Failed(m) => IngestError::Protocol(m),
            other => IngestError::Connect(other),
        }
    }
}

/// What a source has done, over all its sessions.
#[derive(Debug, Default)]
pub struct IngestStats {
    frames: AtomicU64,
    lost_packets: AtomicU64,
    holes: AtomicU64,
    dropped: AtomicU64,
    parameter_changes: AtomicU64,
    sessions: AtomicU64,
}

impl IngestStats {
    /// Access units handed to the frame channel.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// RTP packets missing from the sequence numbers.
    pub fn lost_packets(&self) -> u64 {
        self.lost_packets.load(Ordering::Relaxed)
    }

    /// Holes in the sequence numbers (each may lose several packets).
    pub fn holes(&self) -> u64 {
        self.holes.load(Ordering::Relaxed)
    }

    /// Access units dropped because a hole came before them and no
    /// keyframe since, or because no parameter sets were known yet.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Times the parameter sets changed within a session.
    pub fn parameter_changes(&self) -> u64 {
        self.parameter_changes.load(Ordering::Relaxed)
    }

    /// Sessions that reached `PLAY`.
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }
}

/// Turns retina's access units into [`EncodedFrame`]s: the framing and
/// recovery rules of this module, with no I/O (the fuzz target drives it).
#[derive(Debug)]
pub struct AccessUnits {
    codec: Codec,
    params: Option<Arc<CodecParameters>>,
    /// After a hole, or at the start: drop until a keyframe.
    waiting_keyframe: bool,
    /// The pts of the last frame retina gave, and the step before it:
    /// what a hole's missing frames are counted from.
    last_pts: Option<i64>,
    step: Option<i64>,
    stats: Arc<IngestStats>,
}

impl AccessUnits {
    /// A converter for one session of a `codec` stream.
    pub fn new(codec: Codec, stats: Arc<IngestStats>) -> Self {
        AccessUnits {
            codec,
            params: None,
            waiting_keyframe: true,
            last_pts: None,
            step: None,
            stats,
        }
    }

    /// The frame to record, or `None` when it must be dropped. `frame` must
    /// be Annex-B with the parameter sets before each keyframe
    /// ([`FrameFormat::SIMPLE`]).
    pub fn frame(&mut self, frame: VideoFrame) -> Option<EncodedFrame> {
        let ts = frame.timestamp();
        let rate = i64::from(ts.clock_rate().get());
        let elapsed = ts.elapsed();
        let pts_90k = if rate == 90_000 {
            elapsed
        } else {
            elapsed.saturating_mul(90_000) / rate
        };
        let gap = self.last_pts.map(|last| pts_90k.saturating_sub(last));
        self.last_pts = Some(pts_90k);
        let loss = frame.loss();
        if loss > 0 {
            self.stats
                .lost_packets
                .fetch_add(u64::from(loss), Ordering::Relaxed);
            self.stats.holes.fetch_add(1, Ordering::Relaxed);
            // Frames that retina discarded whole or in part never reach
            // here: count them from the timestamp step they left.
            if let (Some(gap), Some(step)) = (gap, self.step) {
                let missing = ((gap + step / 2) / step - 1).clamp(0, 300);
                self.stats
                    .dropped
                    .fetch_add(missing as u64, Ordering::Relaxed);
            }
            if !self.waiting_keyframe {
                tracing::warn!(
                    lost_packets = loss,
                    "RTP packets lost; dropping frames until the next keyframe"
                );
            }
            self.waiting_keyframe = true;
        } else if let Some(gap) = gap.filter(|g| *g > 0) {
            self.step = Some(gap);
        }
        // retina calls an access unit with no non-IDR slice a random access
        // point (parameter sets alone qualify), and an H.265 CRA not one:
        // a keyframe is one with an IDR (H.264) or IRAP (H.265) picture.
        let maybe_key = self.codec == Codec::H265 || frame.is_random_access_point();
        let data = Bytes::from(frame.into_data());
        let keyframe = maybe_key && nal::is_keyframe(self.codec, &data);
        if self.waiting_keyframe && !keyframe {
            self.drop_frame();
            return None;
        }
        if keyframe {
            // Parameter sets the store cannot parse are as good as none.
            // (The SPS is parsed only when the sets differ from the current.)
            let current = self.params.as_deref();
            let usable = |p: &CodecParameters| {
                p.is_complete() && (current == Some(p) || p.stream_info().is_ok())
            };
            match CodecParameters::from_annex_b(self.codec, &data).filter(usable) {
                Some(p) => {
                    if self.params.as_deref().is_some_and(|old| *old != p) {
                        self.stats.parameter_changes.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            "the camera's parameter sets changed; a new recording starts"
                        );
                    }
                    if self.params.as_deref() != Some(&p) {
                        self.params = Some(Arc::new(p));
                    }
                }
                None if self.params.is_none() => {
                    // A keyframe that cannot be decoded: no SPS/PPS yet.
                    self.drop_frame();
                    return None;
                }
                None => {}
            }
        }
        let params = self.params.clone()?;
        self.waiting_keyframe = false;
        Some(EncodedFrame {
            data,
            pts_90k,
            dts_90k: pts_90k,
            duration_90k: None,
            keyframe,
            params,
        })
    }

    fn drop_frame(&self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a failure of a playing session means to a user: a camera that
/// restarted or hung up is not a protocol problem, so only the rest get
/// the `backend = "gstreamer"` hint.
fn session_error(e: &retina::Error, redact: &(dyn Fn(String) -> String + Sync)) -> IngestError {
    let text = match probe::classify(e, redact) {
        ProbeError::Failed(text) => text,
        other => return IngestError::Connect(other),
    };
    if text.contains("Incomplete RTSP message at EOF")
        || text.contains("Connection reset")
        || text.contains("Broken pipe")
    {
        return IngestError::Disconnected("a message was cut short".into());
    }
    if text.contains("wrong ssrc") {
        return IngestError::Restarted("a new RTP SSRC".into());
    }
    if text.contains("Timestamp jumped") {
        return IngestError::Restarted(format!(
            "its RTP clock stepped back or jumped over {MAX_JUMP_SECS} s"
        ));
    }
    if text.contains("Out-of-order packet or large loss") {
        return IngestError::Restarted("its RTP sequence numbers jumped".into());
    }
    // retina's detail after these markers is internal state, not news.
    let short = ["; buffered", " expecting ssrc=", "; expecting"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .map_or(text.as_str(), |at| &text[..at]);
    IngestError::Protocol(short.trim_end_matches([':', ';', ' ']).to_owned())
}

/// An RTSP camera recorded through retina: see the module documentation.
#[derive(Clone, Debug)]
pub struct RtspSource {
    url: RtspUrl,
    options: IngestOptions,
    stats: Arc<IngestStats>,
}

impl RtspSource {
    /// The camera at `url`. Nothing connects until
    /// [`start_frames`](FrameSource::start_frames).
    pub fn new(url: RtspUrl, options: IngestOptions) -> Self {
        RtspSource {
            url,
            options,
            stats: Arc::default(),
        }
    }

    /// What it has done so far, over every session.
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }

    /// Runs one session until the camera ends it, it fails, or `stop`
    /// fires (then `Ok`).
    pub async fn run(&self, out: FrameSender, stop: CancellationToken) -> Result<(), IngestError> {
        tokio::select! {
            r = self.session(&out) => r,
            () = stop.cancelled() => Ok(()),
        }
    }

    async fn session(&self, out: &FrameSender) -> Result<(), IngestError> {
        let secrets = self.url.secrets();
        let redact = |text: String| reallive_core::redact(&text, &secrets);
        let opts = self.options;
        let connect = async {
            let (location, creds) = probe::location(&self.url)?;
            probe::reachable_url(&location).await?;
            let options = SessionOptions::default()
                .creds(creds)
                .user_agent(format!("RealLive/{}", env!("CARGO_PKG_VERSION")));
            let mut session = retina::client::Session::describe(location, options)
                .await
                .map_err(|e| probe::classify(&e, &redact))?;
            let (video, codec) = probe::pick_video(session.streams())?;
            session
                .setup(
                    video,
                    SetupOptions::default()
                        .transport(opts.transport.retina())
                        .frame_format(FrameFormat::SIMPLE),
                )
                .await
                .map_err(|e| probe::classify(&e, &redact))?;
            let max_jump = NonZeroU32::new(MAX_JUMP_SECS).unwrap_or(NonZeroU32::MIN);
            let playing = session
                .play(PlayOptions::default().enforce_timestamps_with_max_jump_secs(max_jump))
                .await
                .map_err(|e| probe::classify(&e, &redact))?
                .demuxed()
                .map_err(|e| probe::classify(&e, &redact))?;
            Ok::<_, ProbeError>((playing, codec))
        };
        let (mut playing, codec) = tokio::time::timeout(opts.connect_timeout, connect)
            .await
            .map_err(|_| ProbeError::Timeout(opts.connect_timeout.as_secs().max(1)))??;
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let mut units = AccessUnits::new(codec, self.stats.clone());
        // One ticker checks for a stall, rather than a timer per frame.
        let mut check =
            tokio::time::interval((opts.stall_timeout / 4).max(Duration::from_millis(50)));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_video = tokio::time::Instant::now();
        loop {
            let item = tokio::select! {
                next = playing.next() => match next {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(session_error(&e, &redact)),
                    Some(Ok(item)) => item,
                },
                _ = check.tick() => {
                    if last_video.elapsed() >= opts.stall_timeout {
                        return Err(IngestError::Stalled(opts.stall_timeout.as_secs().max(1)));
                    }
                    continue;
                }
            };
            // Audio, ONVIF metadata and RTCP are not set up, so only video
            // arrives; anything else is ignored.
            let CodecItem::VideoFrame(frame) = item else {
                continue;
            };
            last_video = tokio::time::Instant::now();
            let Some(f) = units.frame(frame) else {
                continue;
            };
            match out.offer(f) {
                Offer::Sent => {
                    self.stats.frames.fetch_add(1, Ordering::Relaxed);
                }
                // Counted by the channel; it resumes at a keyframe.
                Offer::Dropped => {}
                // Nobody records any more: the run is over.
                Offer::Closed => return Ok(()),
            }
        }
    }
}

impl FrameSource for RtspSource {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn start_frames(&self, out: FrameSender) -> Result<Box<dyn FrameSourceRun>, BoxError> {
        let stop = CancellationToken::new();
        let source = self.clone();
        let s = stop.clone();
        let task = tokio::spawn(async move { source.run(out, s).await });
        Ok(Box::new(RtspRun {
            task: Some(task),
            result: None,
            stop,
        }))
    }
}

/// One started session of an [`RtspSource`].
#[derive(Debug)]
pub struct RtspRun {
    task: Option<JoinHandle<Result<(), IngestError>>>,
    result: Option<Result<(), IngestError>>,
    stop: CancellationToken,
}

impl RtspRun {
    /// Resolves when the session ends (`Ok`) or fails. Cancel-safe, and
    /// answers the same again once it has ended.
    pub async fn wait(&mut self) -> Result<(), IngestError> {
        if let Some(task) = self.task.as_mut() {
            let r = match task.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(IngestError::Protocol(
                    "the RTSP client failed unexpectedly".into(),
                )),
                Err(_) => Ok(()),
            };
            self.task = None;
            self.result = Some(r);
        }
        self.result.clone().unwrap_or(Ok(()))
    }

    /// Ends the session (the connection closes, which ends it at the
    /// camera) and waits until it is down.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RtspRun {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FrameSourceRun for RtspRun {
    fn wait(&mut self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { RtspRun::wait(self).await.map_err(BoxError::from) })
    }

    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(RtspRun::stop(*self))
    }
}
