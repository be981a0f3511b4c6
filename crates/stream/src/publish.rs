//! [`WebRtcPublisher`]: a camera's frames to a RealLive server over WebRTC
//! (the `webrtc` crate), set up through `/ws/signaling`, reconnecting on
//! its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reallive_core::{AudioReceiver, EncodedFrame, FrameReceiver};
use reallive_signaling::Role;
use rtc::interceptor::Slot;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use crate::align::SendAlign;
use crate::net::{Network, Target};
use crate::peer::{self, DeliverRtcp, failed};
use crate::reconnect::{self, Connect, Link, Policy, ReconnectingSession};
use crate::signal::{Channel, Ended, h264_codec, opus_codec, signaling_url};
use crate::{Session, StreamError, Streamer};

/// At most one forced keyframe per this interval, however often the relay
/// asks.
pub const MIN_FORCED_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Where and as what to publish.
#[derive(Clone)]
pub struct PublishConfig {
    /// The server, `http://host:port`.
    pub server: String,
    /// The camera's id on the server.
    pub camera: i64,
    /// The camera's stream key.
    pub key: String,
    /// Publish with WHIP at this `http://` or `https://` URL instead of WS
    /// signaling.
    pub whip: Option<String>,
    /// Whom to trust over TLS, and the ICE servers to use (WHIP and the
    /// signaling socket hand out none to a publisher).
    pub network: Network,
    /// Called (at most every 500 ms) when the relay wants a keyframe: the
    /// capture should force one.
    pub keyframe: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for PublishConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishConfig")
            .field("server", &self.server)
            .field("camera", &self.camera)
            .field("key", &"***")
            .field("whip", &self.whip)
            .field("network", &self.network)
            .finish()
    }
}

/// Publishes over WS signaling with the `webrtc` crate.
#[derive(Debug, Clone)]
pub struct WebRtcPublisher {
    config: PublishConfig,
}

impl WebRtcPublisher {
    /// A publisher for `config`.
    pub fn new(config: PublishConfig) -> Self {
        WebRtcPublisher { config }
    }

    /// Starts publishing on the current tokio runtime: reconnects with
    /// backoff from 1 s to 60 s, and every 60 s while the key is refused.
    pub fn start_session(&self, frames: FrameReceiver) -> Result<ReconnectingSession, StreamError> {
        self.start_session_with_audio(frames, None)
    }

    /// [`start_session`](Self::start_session) with a second track: the
    /// Opus packets from `audio`, on the same clock as the frames.
    pub fn start_session_with_audio(
        &self,
        frames: FrameReceiver,
        audio: Option<AudioReceiver>,
    ) -> Result<ReconnectingSession, StreamError> {
        let ws_url = match &self.config.whip {
            Some(w) => {
                Target::parse(w).map_err(StreamError::InvalidConfig)?;
                String::new()
            }
            None => signaling_url(&self.config.server)?,
        };
        reconnect::spawn(
            Publish {
                config: self.config.clone(),
                ws_url,
                frames,
                audio,
            },
            Policy::new(
                Duration::from_secs(1),
                Duration::from_secs(60),
                "publishing",
                "this camera's stream key",
            ),
            tracing::info_span!("publish", camera = self.config.camera),
        )
    }
}

impl Streamer for WebRtcPublisher {
    fn start(&self, frames: FrameReceiver) -> Result<Box<dyn Session>, StreamError> {
        Ok(Box::new(self.start_session(frames)?))
    }

    fn start_with_audio(
        &self,
        frames: FrameReceiver,
        audio: AudioReceiver,
    ) -> Result<Box<dyn Session>, StreamError> {
        Ok(Box::new(
            self.start_session_with_audio(frames, Some(audio))?,
        ))
    }
}

/// One publishing connection at a time, for the reconnect driver.
struct Publish {
    config: PublishConfig,
    ws_url: String,
    frames: FrameReceiver,
    audio: Option<AudioReceiver>,
}

impl Connect for Publish {
    fn connect<'a>(&'a mut self, link: &'a Link) -> BoxFuture<'a, Ended> {
        Box::pin(connect_and_publish(
            &self.config,
            &self.ws_url,
            &mut self.frames,
            self.audio.as_mut(),
            link,
        ))
    }

    /// Keeps the capture's queue from filling while we wait: frames from
    /// before the reconnect are stale anyway. A capture that ends ends the
    /// session.
    fn idle(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            loop {
                tokio::select! {
                    f = self.frames.recv() => if f.is_none() { return },
                    Some(_) = AudioReceiver::recv_from(self.audio.as_mut()) => {}
                }
            }
        })
    }
}

async fn connect_and_publish(
    config: &PublishConfig,
    ws_url: &str,
    frames: &mut FrameReceiver,
    mut audio: Option<&mut AudioReceiver>,
    link: &Link,
) -> Ended {
    // Signaling (with WHIP, nothing until the offer), and WebRTC with one
    // sendonly H.264 track, constrained baseline.
    let whip = config.whip.as_deref();
    let opened = peer::open(
        &config.network,
        whip,
        ws_url,
        config.camera,
        Role::Publisher,
        config.key.clone(),
        Vec::new(),
        |registry| registry.with(Slot::from(14_000), DeliverRtcp::new(is_keyframe_request)),
    )
    .await;
    let (mut chan, pc, mut events) = match opened {
        Ok(x) => x,
        Err(e) => return e,
    };
    let ssrc: u32 = rand_ssrc();
    let track = match TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            // The camera's one key, as the store names its recordings.
            reallive_core::CameraId(config.camera).store_key(),
            "video".to_owned(),
            "video".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: h264_codec(),
                ..Default::default()
            }],
        ),
    ) {
        Ok(t) => Arc::new(t),
        Err(e) => return Ended::Failed(format!("track: {e}")),
    };
    // The microphone, as a second track of the same stream.
    let mic = match audio
        .is_some()
        .then(|| audio_track(config.camera))
        .transpose()
    {
        Ok(m) => m,
        Err(e) => return Ended::Failed(format!("audio track: {e}")),
    };
    let ended = async {
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(failed("add track"))?;
        let mic_sender = match &mic {
            Some((t, _)) => Some(
                pc.add_track(Arc::clone(t) as Arc<dyn TrackLocal>)
                    .await
                    .map_err(failed("add audio track"))?,
            ),
            None => None,
        };
        peer::negotiate(&pc, &mut events.gathered, &mut chan).await?;
        let pt = sender
            .get_parameters()
            .await
            .map_err(failed("parameters"))?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| Ended::Failed("no codec negotiated".into()))?;
        // A relay that answered without audio gets video alone.
        let mic = match (&mic, mic_sender) {
            (Some((t, ssrc)), Some(s)) => s
                .get_parameters()
                .await
                .map_err(failed("audio parameters"))?
                .rtp_parameters
                .codecs
                .first()
                .map(|c| Mic {
                    track: Arc::clone(t),
                    ssrc: *ssrc,
                    pt: c.payload_type,
                }),
            _ => None,
        };
        if audio.is_some() && mic.is_none() {
            tracing::warn!("the server took no audio track; publishing video only");
        }
        // Connected within 10 s, or try again.
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(s) = events.state.recv().await {
                match s {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        return Err(Ended::Failed(format!("connection {s}")));
                    }
                    _ => {}
                }
            }
            Err(Ended::Failed("connection ended".into()))
        })
        .await
        .map_err(|_| Ended::Failed("ICE did not connect within 10 s".into()))?;
        connected?;
        link.count_connection();
        link.live();
        tracing::info!("publishing");
        Ok::<_, Ended>(
            stream_frames(
                config,
                &mut chan,
                &track,
                ssrc,
                pt,
                &mut events.state,
                frames,
                audio.take().filter(|_| mic.is_some()).zip(mic),
                link,
            )
            .await,
        )
    }
    .await;
    let _ = pc.close().await;
    chan.close().await;
    ended.unwrap_or_else(|e| e)
}

/// The Opus track beside the video, and its SSRC.
fn audio_track(
    camera: i64,
) -> Result<(Arc<TrackLocalStaticSample>, u32), Box<dyn std::error::Error + Send + Sync>> {
    let ssrc = rand_ssrc();
    let track = TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            // One stream id for both tracks: the browser syncs their playout.
            reallive_core::CameraId(camera).store_key(),
            "audio".to_owned(),
            "audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(),
                ..Default::default()
            }],
        ),
    )?;
    Ok((Arc::new(track), ssrc))
}

/// The audio track once negotiated.
struct Mic {
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
}

fn rand_ssrc() -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b) | 1
}

#[allow(clippy::too_many_arguments)]
async fn stream_frames(
    config: &PublishConfig,
    chan: &mut Channel,
    track: &Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
    pc_state: &mut tokio::sync::mpsc::Receiver<RTCPeerConnectionState>,
    frames: &mut FrameReceiver,
    mut audio: Option<(&mut AudioReceiver, Mic)>,
    link: &Link,
) -> Ended {
    // The viewer's decoder starts at a keyframe: ask for one now, and send
    // nothing before it.
    (config.keyframe)();
    let mut last_forced = Some(Instant::now());
    let mut started = false;
    let mut prev_pts: Option<i64> = None;
    // With sound, each picture waits until it is as old as the sound is
    // when it leaves (crate::align), so viewers line the two up.
    let mut align = audio.as_ref().map(|_| SendAlign::new(Instant::now()));
    let mut held: VecDeque<(Instant, EncodedFrame)> = VecDeque::new();
    let mut logged_align = false;
    // One future for the whole session: making a new one per packet would
    // re-arm the socket's read (tungstenite zeroes a 128 KiB buffer each
    // time), a few per cent of the CPU.
    let ended = chan.ended();
    tokio::pin!(ended);
    loop {
        tokio::select! {
            () = link.stop().cancelled() => return Ended::Stopped,
            s = pc_state.recv() => if let Some(lost) = peer::lost(s) {
                return lost;
            },
            e = &mut ended => return e,
            ev = track.poll() => match ev {
                Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                    // Only keyframe requests reach us (DeliverRtcp).
                    if last_forced.is_none_or(|t| t.elapsed() >= MIN_FORCED_KEYFRAME_INTERVAL) {
                        last_forced = Some(Instant::now());
                        tracing::debug!("the relay asked for a keyframe");
                        (config.keyframe)();
                    }
                }
                Some(_) => {}
                None => return Ended::Failed("the track ended".into()),
            },
            () = sleep_until_first(&held), if !held.is_empty() => {
                let now = Instant::now();
                while let Some((_, f)) = held.pop_front_if(|(due, _)| *due <= now) {
                    if let Err(e) = send_frame(track, ssrc, pt, &f, &mut prev_pts, link).await {
                        return e;
                    }
                }
            }
            f = frames.recv() => {
                let Some(f) = f else { return Ended::Stopped };
                if !started && !f.keyframe {
                    continue;
                }
                started = true;
                let now = Instant::now();
                let due = align.as_mut().map_or(now, |a| a.video(now, f.pts_90k));
                if due > now || !held.is_empty() {
                    held.push_back((due, f));
                    if held.len() <= MAX_HELD_FRAMES {
                        continue;
                    }
                    // Never more than a few frames: the oldest goes now.
                    let Some((_, f)) = held.pop_front() else { continue };
                    if let Err(e) = send_frame(track, ssrc, pt, &f, &mut prev_pts, link).await {
                        return e;
                    }
                } else if let Err(e) = send_frame(track, ssrc, pt, &f, &mut prev_pts, link).await {
                    return e;
                }
                if !logged_align && let Some((v, a)) = align.as_ref().and_then(SendAlign::delays_ms)
                    && prev_pts.is_some_and(|p| p >= 90_000 * 5)
                {
                    logged_align = true;
                    let hold = (a - v).clamp(0.0, crate::align::MAX_HOLD.as_secs_f64() * 1e3);
                    tracing::info!("each picture waits {hold:.1} ms for the sound of its instant");
                }
            }
            Some(a) = AudioReceiver::recv_from(audio.as_mut().map(|(rx, _)| &mut **rx)) => {
                let Some((_, mic)) = &audio else { continue };
                if let Some(al) = align.as_mut() {
                    al.audio(Instant::now(), a.pts_90k);
                }
                let sample = Sample {
                    data: a.data,
                    duration: Duration::from_micros(u64::from(a.duration_90k) * 100 / 9),
                    ..Sample::new(Instant::now())
                };
                // A lost audio packet is a 20 ms gap, never the session's end.
                if let Err(e) = mic.track.sample_writer(mic.ssrc, mic.pt).write_sample(&sample).await {
                    tracing::debug!("sending audio: {e}");
                }
            }
        }
    }
}

/// At most this many pictures wait for the sound (crate::align): about
/// 100 ms at 60 fps.
const MAX_HELD_FRAMES: usize = 6;

/// Until the first held picture is due.
async fn sleep_until_first(held: &VecDeque<(Instant, EncodedFrame)>) {
    match held.front() {
        Some((due, _)) => tokio::time::sleep_until((*due).into()).await,
        None => std::future::pending().await,
    }
}

/// Sends one picture, its duration the step from the one before.
async fn send_frame(
    track: &Arc<TrackLocalStaticSample>,
    ssrc: u32,
    pt: u8,
    f: &EncodedFrame,
    prev_pts: &mut Option<i64>,
    link: &Link,
) -> Result<(), Ended> {
    let duration = frame_duration(f, *prev_pts);
    *prev_pts = Some(f.pts_90k);
    let sample = Sample {
        data: f.data.clone(),
        duration,
        ..Sample::new(Instant::now())
    };
    if let Err(e) = track.sample_writer(ssrc, pt).write_sample(&sample).await {
        return Err(Ended::Failed(format!("sending a frame: {e}")));
    }
    link.count_frame();
    Ok(())
}

/// The frame's duration: its own, or the step from the previous one, or a
/// frame at 30 fps.
fn frame_duration(f: &EncodedFrame, prev_pts: Option<i64>) -> Duration {
    let ticks = f
        .duration_90k
        .map(i64::from)
        .or_else(|| prev_pts.map(|p| f.pts_90k - p))
        .filter(|t| (1..=90_000).contains(t))
        .unwrap_or(3000);
    Duration::from_micros(ticks as u64 * 100 / 9)
}

/// PLI and FIR: the requests for a keyframe.
fn is_keyframe_request(p: &dyn rtc::rtcp::Packet) -> bool {
    let any = p.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}
