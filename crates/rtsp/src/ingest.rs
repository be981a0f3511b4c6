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
//!   camera's own. A timestamp that goes back more than 1 s (further than
//!   any B-frame) or jumps more than [`MAX_JUMP_SECS`] ends the session, as
//!   does a new SSRC: the worker restarts it, and the store starts a new
//!   run. A stream with B-frames (its SPS says it may reorder, or a frame
//!   comes before one already shown) gets decode times (`DecodeClock`):
//!   one frame interval apart, each keyframe two intervals before its pts.
//! - **Nothing is lost silently**: a hole in the RTP sequence numbers drops
//!   the frames up to the next keyframe (H.264's only safe recovery),
//!   counted in [`IngestStats`] and logged once per hole.
//! - **Parameter sets** come from the SDP, in band, or both: retina puts
//!   the current ones in front of every IDR, [`AccessUnits`] in front of
//!   every other keyframe (an H.265 CRA), and a change starts a new
//!   `Arc<CodecParameters>`, which the store takes as a new file.
//! - **Audio rides along, never in the way** (`docs/design/audio.md`):
//!   with [`start_with_audio`](FrameSource::start_with_audio) the first
//!   AAC or G.711 track is set up too, and each packet goes out as an
//!   [`AudioFrame`] on the video's clock ([`AudioSync`]: the two tracks'
//!   first RTCP sender reports, or their first packets' arrival until
//!   then). G.711 goes through an [`AudioTranscoder`] to AAC. An audio
//!   track that cannot be set up or decoded is logged once and the video
//!   records alone; [`start_frames`](FrameSource::start_frames) sets up
//!   no audio at all.
//! - **Failures are statuses**: a camera that stalls for
//!   [`IngestOptions::stall_timeout`], refuses the password, or sends what
//!   retina cannot parse ends the session with an [`IngestError`]; the
//!   latter says to try `backend = "gstreamer"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reallive_core::reencode::BoxError;
use reallive_core::source::{BoxFuture, FrameSource, FrameSourceRun};
use reallive_core::{
    AudioFrame, AudioParameters, AudioSender, AudioTranscoder, Codec, CodecParameters,
    EncodedFrame, FrameSender, G711, Offer, RtspUrl, StartAudioTranscoder, nal,
};
use retina::client::{
    PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoFrame};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

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
    audio_frames: AtomicU64,
    audio_dropped: AtomicU64,
    audio_sender_reports: AtomicU64,
    audio_offset_90k: AtomicI64,
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

    /// Audio packets handed on (to the audio channel, or to the G.711
    /// transcoder).
    pub fn audio_frames(&self) -> u64 {
        self.audio_frames.load(Ordering::Relaxed)
    }

    /// Audio packets dropped: before the first video frame, or behind the
    /// audio already sent after the clock mapping moved back.
    pub fn audio_dropped(&self) -> u64 {
        self.audio_dropped.load(Ordering::Relaxed)
    }

    /// Sessions whose audio was put on the video's clock by RTCP sender
    /// reports (the others: by the first packets' arrival).
    pub fn audio_synced_by_sender_reports(&self) -> u64 {
        self.audio_sender_reports.load(Ordering::Relaxed)
    }

    /// The last session's audio mapping, in ms: how far its audio was put
    /// from where the two tracks' `RTP-Info` starts (which PLAY answers
    /// for the same instant) would put it. A camera whose sender reports
    /// and `RTP-Info` agree shows about 0.
    pub fn audio_offset_ms(&self) -> i64 {
        self.audio_offset_90k.load(Ordering::Relaxed) / 90
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
    /// The latest pts so far: frames before it in time but after it in
    /// decode order are B-frames (reordered).
    max_pts: Option<i64>,
    /// Decode times, once the stream reorders: see [`DecodeClock`].
    decode: Option<DecodeClock>,
    /// The last frame's decode time: they only ever increase.
    last_dts: Option<i64>,
    /// Why the camera's stream must restart (its clock stepped back past
    /// any reordering, or jumped forward), for [`take_restart`](Self::take_restart).
    restart: Option<String>,
    stats: Arc<IngestStats>,
}

/// How far a B-frame's pts may lie before the latest pts so far (1 s):
/// further back is a camera that restarted its clock.
const MAX_REORDER_90K: i64 = 90_000;

/// Decode timestamps for a stream with B-frames, whose RTP timestamps are
/// presentation times and come out of order. Every frame decodes one
/// frame interval after the one before, and a keyframe (whose pts is the
/// earliest of what follows it) decodes `depth` intervals before it is
/// shown: for a constant frame rate that puts every frame's decode time at
/// or before its presentation time, increasing, and the same distance
/// behind the pts of the frames shown in order. After a gap it starts again
/// from the next pts. A frame it would put after its pts (a camera that
/// varies its rate) gets a negative composition offset, which MP4 allows.
#[derive(Debug, Clone, Copy)]
struct DecodeClock {
    last: i64,
    depth: i64,
}

impl DecodeClock {
    fn next(&mut self, pts: i64, keyframe: bool, step: i64) -> i64 {
        let step = step.max(1);
        let lead = self.depth * step;
        let by_step = self.last + step;
        let dts = if keyframe || pts - lead > by_step + 2 * step {
            // A keyframe, or the stream ran ahead (lost frames): from its pts.
            (pts - lead).max(self.last + 1)
        } else {
            by_step
        };
        self.last = dts;
        dts
    }
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
            max_pts: None,
            decode: None,
            last_dts: None,
            restart: None,
            stats,
        }
    }

    /// Why the stream must restart, once: its RTP clock stepped back
    /// further than any reordering (1 s), or jumped more than
    /// [`MAX_JUMP_SECS`] ahead. The frame that showed it was dropped.
    pub fn take_restart(&mut self) -> Option<String> {
        self.restart.take()
    }

    /// The frame to record, or `None` when it must be dropped. `frame` must
    /// be Annex-B with the parameter sets before each IDR
    /// ([`FrameFormat::SIMPLE`]); the frame returned has them before every
    /// keyframe, as [`EncodedFrame`] promises.
    pub fn frame(&mut self, frame: VideoFrame) -> Option<EncodedFrame> {
        let ts = frame.timestamp();
        let rate = i64::from(ts.clock_rate().get());
        let elapsed = ts.elapsed();
        let pts_90k = if rate == 90_000 {
            elapsed
        } else {
            elapsed.saturating_mul(90_000) / rate
        };
        if let Some(max) = self.max_pts {
            let back = max.saturating_sub(pts_90k);
            let ahead = pts_90k.saturating_sub(max);
            if back > MAX_REORDER_90K || ahead > i64::from(MAX_JUMP_SECS) * 90_000 {
                self.restart = Some(format!(
                    "its RTP clock stepped back or jumped over {MAX_JUMP_SECS} s"
                ));
                self.drop_frame();
                return None;
            }
        }
        let reordered = self.max_pts.is_some_and(|max| pts_90k < max);
        self.max_pts = Some(self.max_pts.map_or(pts_90k, |m| m.max(pts_90k)));
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
            // The frame interval: the smallest forward step lately (a
            // reordered stream's steps are several intervals).
            self.step = Some(match self.step {
                Some(s) if reordered || self.decode.is_some() => s.min(gap),
                _ => gap,
            });
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
        // retina puts the parameter sets before an IDR only: an H.265 CRA
        // comes without them, and a viewer that joins at it (the relay
        // forwards keyframes as they are) could never start decoding.
        let data = if keyframe {
            params.put_in_band(&data)
        } else {
            data
        };
        // B-frames: the stream says it may reorder (an H.264 SPS), or a
        // frame came before one already shown. Decode times from then on.
        if self.decode.is_none()
            && (reordered
                || (self.codec == Codec::H264 && params.stream_info().is_ok_and(|i| i.may_reorder)))
        {
            tracing::info!("the stream has B-frames: decode times are made for it");
            // The frame interval from the SPS when it says; else the
            // smallest step seen (not the first: I to P spans several).
            if let Some(fps) = params
                .stream_info()
                .ok()
                .and_then(|i| i.fps)
                .filter(|f| f.num > 0 && f.den > 0)
            {
                self.step = Some((90_000 * i64::from(fps.den) / i64::from(fps.num)).max(1));
            }
            let start = pts_90k - 2 * self.step.unwrap_or(3000) - 1;
            self.decode = Some(DecodeClock {
                last: self.last_dts.map_or(start, |d| d.max(start)),
                depth: 2,
            });
        }
        let dts_90k = match self.decode.as_mut() {
            Some(d) => d.next(pts_90k, keyframe, self.step.unwrap_or(3000)),
            None => pts_90k,
        };
        self.last_dts = Some(dts_90k);
        Some(EncodedFrame {
            data,
            pts_90k,
            dts_90k,
            duration_90k: None,
            keyframe,
            params,
        })
    }

    fn drop_frame(&self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Puts a session's audio on its video's clock: `pts_90k` of an audio
/// sample at `elapsed` ticks of the audio's RTP clock (retina's
/// [`Timestamp::elapsed`](retina::Timestamp::elapsed)) is
/// `elapsed * 90000 / rate + offset`. Sans-IO: arrival times come in as
/// values.
///
/// The offset comes from the first RTCP sender report of each track,
/// which ties both RTP clocks to the camera's one wall clock. Until both
/// have come (cameras send them every few seconds, some never), it is
/// estimated from arrival: the first audio packet's end arrived as far
/// after the first video frame as it plays after it. Sender reports then
/// replace the estimate once, and are never re-read: a camera's RTP and
/// NTP clocks may drift apart, and a mid-session step would be worse.
#[derive(Debug, Default)]
pub struct AudioSync {
    /// The first video frame: its first packet's arrival and its pts.
    video_arrival: Option<(std::time::Instant, i64)>,
    /// The first sender report of each track: NTP time (32.32) and RTP
    /// elapsed ticks, with the video's clock rate.
    video_sr: Option<(u64, i64, u32)>,
    audio_sr: Option<(u64, i64)>,
    offset_90k: Option<i64>,
    by_sender_reports: bool,
}

/// How [`AudioSync`] has mapped the audio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncSource {
    /// Not yet: no video frame and no pair of sender reports.
    None,
    /// By the first packets' arrival.
    Arrival,
    /// By the tracks' RTCP sender reports.
    SenderReports,
}

impl AudioSync {
    /// Nothing seen yet.
    pub fn new() -> Self {
        AudioSync::default()
    }

    /// A video frame whose first packet arrived at `arrived`.
    pub fn video(&mut self, arrived: std::time::Instant, pts_90k: i64) {
        self.video_arrival.get_or_insert((arrived, pts_90k));
    }

    /// The video track's sender report: `ntp` for `elapsed` ticks of its
    /// RTP clock at `rate` Hz.
    pub fn video_sender_report(&mut self, ntp: u64, elapsed: i64, rate: u32) {
        self.video_sr.get_or_insert((ntp, elapsed, rate.max(1)));
    }

    /// The audio track's sender report, as [`video_sender_report`](Self::video_sender_report).
    pub fn audio_sender_report(&mut self, ntp: u64, elapsed: i64) {
        self.audio_sr.get_or_insert((ntp, elapsed));
    }

    /// The offset: audio `pts_90k` minus its RTP elapsed time in 90 kHz
    /// ticks; `None` until there is a mapping.
    pub fn offset_90k(&self) -> Option<i64> {
        self.offset_90k
    }

    /// How the audio is mapped now.
    pub fn source(&self) -> SyncSource {
        match (self.offset_90k, self.by_sender_reports) {
            (_, true) => SyncSource::SenderReports,
            (Some(_), false) => SyncSource::Arrival,
            (None, false) => SyncSource::None,
        }
    }

    /// The pts of an audio packet of `len` samples starting at `elapsed`
    /// ticks of its clock at `rate` Hz, whose last packet arrived at
    /// `arrived`; `None` while there is nothing to map it by (no video
    /// yet). The second value is the offset's change in 90 kHz ticks when
    /// sender reports just replaced the arrival estimate.
    pub fn audio(
        &mut self,
        arrived: std::time::Instant,
        elapsed: i64,
        len: u32,
        rate: u32,
    ) -> (Option<i64>, Option<i64>) {
        let rate = i64::from(rate.max(1));
        let to_90k = |t: i64, r: i64| (i128::from(t) * 90_000 / i128::from(r)) as i64;
        let mut moved = None;
        if !self.by_sender_reports
            && let (Some((ntp_v, ev, rv)), Some((ntp_a, ea))) = (self.video_sr, self.audio_sr)
        {
            // Both tracks' wall clock at elapsed 0, on the video's pts:
            // video pts p plays at ntp_v + (p - ev) / rv.
            let ntp_diff = ntp_a.wrapping_sub(ntp_v) as i64;
            let ntp_diff_90k = ((i128::from(ntp_diff) * 90_000 + (1 << 31)) >> 32) as i64;
            let offset = ntp_diff_90k - to_90k(ea, rate) + to_90k(ev, i64::from(rv));
            moved = self.offset_90k.map(|old| offset - old);
            self.offset_90k = Some(offset);
            self.by_sender_reports = true;
        }
        if self.offset_90k.is_none()
            && let Some((video_at, video_pts)) = self.video_arrival
        {
            // A packet arrives when its last sample has been taken, so its
            // end is what lines up with the video's arrival.
            let after = arrived.saturating_duration_since(video_at).as_micros() as i64 * 9 / 100;
            let before = video_at.saturating_duration_since(arrived).as_micros() as i64 * 9 / 100;
            let end_90k = to_90k(elapsed + i64::from(len), rate);
            self.offset_90k = Some(video_pts + after - before - end_90k);
        }
        (self.offset_90k.map(|o| to_90k(elapsed, rate) + o), moved)
    }
}

/// The camera's first audio track, if one can be recorded: how to set it
/// up and what its packets become.
enum AudioPlan {
    /// AAC, recorded as it is.
    Aac,
    /// G.711, transcoded to AAC.
    G711(G711),
}

/// Picks the first audio stream and how to record it; logs (once a
/// session) why none can be.
fn pick_audio(
    streams: &[retina::client::Stream],
    transcoder: Option<&StartAudioTranscoder>,
) -> Option<(usize, AudioPlan)> {
    let (i, s) = streams
        .iter()
        .enumerate()
        .find(|(_, s)| s.media() == "audio")?;
    let name = s.encoding_name().to_ascii_lowercase();
    let plan = match name.as_str() {
        "mpeg4-generic" => AudioPlan::Aac,
        "pcma" => AudioPlan::G711(G711::ALaw),
        "pcmu" => AudioPlan::G711(G711::MuLaw),
        _ => {
            tracing::info!(codec = %name, "the camera's audio codec is not supported; recording video only");
            return None;
        }
    };
    if matches!(plan, AudioPlan::G711(_)) && transcoder.is_none() {
        tracing::info!(codec = %name, "no G.711 transcoder here; recording video only");
        return None;
    }
    Some((i, plan))
}

/// Where a session's audio packets go.
enum AudioOut {
    /// AAC straight to the channel.
    Aac {
        out: AudioSender,
        params: Arc<AudioParameters>,
    },
    /// G.711 through the transcoder (which holds the channel).
    Transcode(Box<dyn AudioTranscoder>),
}

/// A session's audio track, set up and playing.
struct AudioTrack {
    stream: usize,
    out: AudioOut,
    sync: AudioSync,
    /// The end of the last packet handed on, 90 kHz.
    end_90k: Option<i64>,
    /// When the first packet was mapped by arrival (for the log line).
    first_at: Option<tokio::time::Instant>,
    said_arrival: bool,
    counted_sender_reports: bool,
    stats: Arc<IngestStats>,
}

/// How long audio is timed by arrival before that is logged as all the
/// sync there will be.
const SENDER_REPORT_WAIT: Duration = Duration::from_secs(15);

impl AudioTrack {
    /// A sender report of the video (`video`) or of this track.
    fn rtcp(&mut self, pkt: &retina::rtcp::ReceivedCompoundPacket, video: bool) {
        let (Some(ts), Some(Ok(Some(sr)))) = (
            pkt.rtp_timestamp(),
            pkt.pkts().next().map(|p| p.as_sender_report()),
        ) else {
            return;
        };
        let ntp = sr.ntp_timestamp().0;
        if video {
            self.sync
                .video_sender_report(ntp, ts.elapsed(), ts.clock_rate().get());
        } else {
            self.sync.audio_sender_report(ntp, ts.elapsed());
        }
    }

    /// One audio frame from retina; `false` once the audio is over for
    /// this session (the receiver left, or the transcoder failed).
    fn frame(&mut self, frame: &retina::codec::AudioFrame) -> bool {
        let ts = frame.timestamp();
        let rate = ts.clock_rate().get();
        let len = frame.frame_length().get();
        let (pts, moved) = self
            .sync
            .audio(frame.ctx().received(), ts.elapsed(), len, rate);
        if let Some(o) = self.sync.offset_90k() {
            self.stats.audio_offset_90k.store(o, Ordering::Relaxed);
        }
        let Some(pts_90k) = pts else {
            // Before the first video frame: no file could hold it anyway.
            self.stats.audio_dropped.fetch_add(1, Ordering::Relaxed);
            return true;
        };
        if self.sync.source() == SyncSource::Arrival {
            let first = *self.first_at.get_or_insert_with(tokio::time::Instant::now);
            if !self.said_arrival && first.elapsed() >= SENDER_REPORT_WAIT {
                self.said_arrival = true;
                tracing::info!(
                    "the camera sends no RTCP sender reports; its audio is synced to the video by arrival time only"
                );
            }
        } else if self.sync.source() == SyncSource::SenderReports && !self.counted_sender_reports {
            self.counted_sender_reports = true;
            self.stats
                .audio_sender_reports
                .fetch_add(1, Ordering::Relaxed);
            // How far the arrival estimate was off, when there was one.
            tracing::info!(
                moved_ms = moved.unwrap_or(0) / 90,
                "audio synced to the video by the camera's RTCP sender reports"
            );
        }
        let duration_90k = (u64::from(len) * 90_000 / u64::from(rate.max(1))) as u32;
        // After the mapping moved back, what was already sent wins.
        if let Some(end) = self.end_90k
            && pts_90k + i64::from(duration_90k / 2) < end
        {
            self.stats.audio_dropped.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.end_90k = Some(pts_90k + i64::from(duration_90k));
        let data = Bytes::copy_from_slice(frame.data());
        match &mut self.out {
            AudioOut::Aac { out, params } => match out.offer(AudioFrame {
                data,
                pts_90k,
                duration_90k,
                params: params.clone(),
            }) {
                Offer::Sent => {
                    self.stats.audio_frames.fetch_add(1, Ordering::Relaxed);
                }
                Offer::Dropped => {}
                Offer::Closed => return false,
            },
            AudioOut::Transcode(t) => {
                if let Err(e) = t.push(data, pts_90k) {
                    tracing::warn!("the audio transcoder failed: {e}; recording video only");
                    return false;
                }
                self.stats.audio_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
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
#[derive(Clone)]
pub struct RtspSource {
    url: RtspUrl,
    options: IngestOptions,
    stats: Arc<IngestStats>,
    transcoder: Option<StartAudioTranscoder>,
}

impl std::fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSource")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("g711_transcoder", &self.transcoder.is_some())
            .finish_non_exhaustive()
    }
}

impl RtspSource {
    /// The camera at `url`. Nothing connects until
    /// [`start_frames`](FrameSource::start_frames).
    pub fn new(url: RtspUrl, options: IngestOptions) -> Self {
        RtspSource {
            url,
            options,
            stats: Arc::default(),
            transcoder: None,
        }
    }

    /// Transcodes a G.711 audio track to AAC with `start` when audio is
    /// asked for; without one, a G.711 camera records video only.
    pub fn with_audio_transcoder(mut self, start: StartAudioTranscoder) -> Self {
        self.transcoder = Some(start);
        self
    }

    /// What it has done so far, over every session.
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }

    /// Runs one session until the camera ends it, it fails, or `stop`
    /// fires (then `Ok`).
    pub async fn run(&self, out: FrameSender, stop: CancellationToken) -> Result<(), IngestError> {
        self.run_with_audio(out, None, stop).await
    }

    /// [`run`](Self::run), and the camera's first audio track into
    /// `audio` (see the module documentation). `audio` is dropped when
    /// the camera has no audio that can be recorded.
    pub async fn run_with_audio(
        &self,
        out: FrameSender,
        audio: Option<AudioSender>,
        stop: CancellationToken,
    ) -> Result<(), IngestError> {
        tokio::select! {
            r = self.session(&out, audio) => r,
            () = stop.cancelled() => Ok(()),
        }
    }

    async fn session(
        &self,
        out: &FrameSender,
        audio: Option<AudioSender>,
    ) -> Result<(), IngestError> {
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
            // Only when asked: `start_frames` costs exactly what it did.
            let mut track = None;
            if let Some(sender) = audio
                && let Some((stream, plan)) =
                    pick_audio(session.streams(), self.transcoder.as_ref())
            {
                let setup = session
                    .setup(
                        stream,
                        SetupOptions::default()
                            .transport(opts.transport.retina())
                            .frame_format(FrameFormat::MP4),
                    )
                    .await;
                match setup {
                    Ok(()) => {
                        track = self
                            .audio_out(&session.streams()[stream], plan, sender)
                            .map(|out| (stream, out));
                    }
                    Err(e) => tracing::info!(
                        "the camera refused to set up its audio ({}); recording video only",
                        redact(e.to_string())
                    ),
                }
            }
            // Timestamps are checked by `AccessUnits`: B-frames step back.
            let playing = session
                .play(PlayOptions::default())
                .await
                .map_err(|e| probe::classify(&e, &redact))?
                .demuxed()
                .map_err(|e| probe::classify(&e, &redact))?;
            Ok::<_, ProbeError>((playing, codec, video, track))
        };
        let (mut playing, codec, video, track) =
            tokio::time::timeout(opts.connect_timeout, connect)
                .await
                .map_err(|_| ProbeError::Timeout(opts.connect_timeout.as_secs().max(1)))??;
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let mut audio = track.map(|(stream, out)| AudioTrack {
            stream,
            out,
            sync: AudioSync::new(),
            end_90k: None,
            first_at: None,
            said_arrival: false,
            counted_sender_reports: false,
            stats: self.stats.clone(),
        });
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
            // ONVIF metadata is not set up; anything else is ignored.
            let frame = match item {
                CodecItem::VideoFrame(frame) => frame,
                CodecItem::AudioFrame(a) => {
                    if let Some(t) = audio.as_mut()
                        && a.stream_id() == t.stream
                        && !t.frame(&a)
                    {
                        // Dropping the track ends the audio channel.
                        audio = None;
                    }
                    continue;
                }
                CodecItem::Rtcp(pkt) => {
                    if let Some(t) = audio.as_mut() {
                        if pkt.stream_id() == video {
                            t.rtcp(&pkt, true);
                        } else if pkt.stream_id() == t.stream {
                            t.rtcp(&pkt, false);
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            last_video = tokio::time::Instant::now();
            let arrived = frame.start_ctx().received();
            let Some(f) = units.frame(frame) else {
                if let Some(why) = units.take_restart() {
                    return Err(IngestError::Restarted(why));
                }
                continue;
            };
            if let Some(t) = audio.as_mut() {
                t.sync.video(arrived, f.pts_90k);
            }
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

    /// Where the set-up audio track's packets go; `None` (logged) when
    /// they cannot be recorded after all.
    fn audio_out(
        &self,
        stream: &retina::client::Stream,
        plan: AudioPlan,
        sender: AudioSender,
    ) -> Option<AudioOut> {
        match plan {
            AudioPlan::Aac => {
                let config = match stream.parameters() {
                    Some(ParametersRef::Audio(a)) => Bytes::copy_from_slice(a.extra_data()),
                    _ => Bytes::new(),
                };
                match AudioParameters::aac(config) {
                    Ok(p) => Some(AudioOut::Aac {
                        out: sender,
                        params: Arc::new(p),
                    }),
                    Err(e) => {
                        tracing::info!(
                            "the camera's AAC cannot be recorded ({e}); recording video only"
                        );
                        None
                    }
                }
            }
            AudioPlan::G711(law) => {
                let start = self.transcoder.as_ref()?;
                let rate = stream.clock_rate_hz();
                let channels = stream
                    .channels()
                    .map_or(1, |c| u8::try_from(c.get()).unwrap_or(u8::MAX));
                match start(law, rate, channels, sender) {
                    Ok(t) => Some(AudioOut::Transcode(t)),
                    Err(e) => {
                        tracing::warn!(
                            "cannot transcode the camera's G.711 ({e}); recording video only"
                        );
                        None
                    }
                }
            }
        }
    }
}

impl FrameSource for RtspSource {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn start_frames(&self, out: FrameSender) -> Result<Box<dyn FrameSourceRun>, BoxError> {
        Ok(Box::new(self.spawn(out, None)))
    }

    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: AudioSender,
    ) -> Result<Box<dyn FrameSourceRun>, BoxError> {
        Ok(Box::new(self.spawn(out, Some(audio))))
    }
}

impl RtspSource {
    fn spawn(&self, out: FrameSender, audio: Option<AudioSender>) -> RtspRun {
        let stop = CancellationToken::new();
        let source = self.clone();
        let s = stop.clone();
        // In the caller's span: the camera's name on every line it logs.
        let task = tokio::spawn(
            async move { source.run_with_audio(out, audio, s).await }.in_current_span(),
        );
        RtspRun {
            task: Some(task),
            result: None,
            stop,
        }
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{AudioSync, SyncSource};

    /// NTP 32.32 for `ms` milliseconds after some second.
    fn ntp(ms: u64) -> u64 {
        (1_000_000 << 32) + (ms << 32) / 1000
    }

    #[test]
    fn audio_is_estimated_by_arrival_then_set_by_sender_reports_once() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut s = AudioSync::new();
        // No video yet: nothing to map by.
        assert_eq!(s.audio(ms(0), 0, 1024, 16_000), (None, None));
        // The first video frame (pts 0) at 100 ms; a 64 ms audio packet at
        // elapsed 1600 (100 ms) ends at 164 ms and arrives at 264 ms:
        // it ends 164 ms after the video, so it starts at 100 ms.
        s.video(ms(100), 0);
        assert_eq!(s.audio(ms(264), 1600, 1024, 16_000), (Some(9_000), None));
        assert_eq!(s.source(), SyncSource::Arrival);
        // The sender reports: video elapsed 90000 (1 s) at NTP 5000 ms,
        // audio elapsed 16000 (1 s) at NTP 5040 ms: the audio's elapsed
        // time is 40 ms late against the video's, so its pts are 40 ms
        // on: elapsed 1600 is pts 140 ms (it was estimated at 100 ms).
        s.video_sender_report(ntp(5000), 90_000, 90_000);
        s.audio_sender_report(ntp(5040), 16_000);
        assert_eq!(
            s.audio(ms(328), 1600, 1024, 16_000),
            (Some(12_600), Some(3_600))
        );
        assert_eq!(s.source(), SyncSource::SenderReports);
        assert_eq!(s.offset_90k(), Some(3_600));
        // Later reports change nothing.
        s.video_sender_report(ntp(9000), 90_000 * 5, 90_000);
        s.audio_sender_report(ntp(9500), 16_000 * 5);
        assert_eq!(s.audio(ms(400), 3200, 1024, 16_000), (Some(21_600), None));
    }

    #[test]
    fn sender_reports_before_the_first_audio_need_no_estimate() {
        let t0 = Instant::now();
        let mut s = AudioSync::new();
        // An 8 kHz track whose report comes 10 ms of NTP before the
        // video's, at the same RTP elapsed time: it is 10 ms early.
        s.video_sender_report(ntp(2000), 45_000, 90_000);
        s.audio_sender_report(ntp(1990), 4_000);
        assert_eq!(s.audio(t0, 8_000, 160, 8_000), (Some(89_100), None));
        assert_eq!(s.source(), SyncSource::SenderReports);
    }
}
