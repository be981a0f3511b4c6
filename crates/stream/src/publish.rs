//! [`WebRtcPublisher`]: a camera's frames to a RealLive server over WebRTC
//! (the `webrtc` crate), set up through `/ws/signaling`, reconnecting on
//! its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reallive_core::{EncodedFrame, FrameReceiver};
use reallive_signaling::{Message, PROTOCOL_VERSION, Role};
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceServer;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::runtime::TokioRuntime;

use crate::signal::{Channel, Ended, h264_codec, h264_engine, local_ip_towards, signaling_url};
use crate::{Session, StreamError, Streamer};
use reallive_core::Backoff;

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
    /// Publish with WHIP at this `http://` URL instead of WS signaling.
    pub whip: Option<String>,
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
            .finish()
    }
}

/// What the publisher is doing, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublishState {
    /// Setting up signaling and WebRTC.
    Connecting,
    /// Media flows.
    Publishing,
    /// Waiting before the next attempt; the reason is in the string.
    Retrying(String),
    /// The server refused the key; retrying slowly.
    Refused,
    /// Stopped.
    Stopped,
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
}

/// A running publisher; dropping it ends the session.
#[derive(Debug)]
pub struct PublishSession {
    stop: CancellationToken,
    state: watch::Receiver<PublishState>,
    /// Frames sent over all connections.
    pub frames_sent: Arc<AtomicU64>,
}

impl PublishSession {
    /// The current state, and changes to it.
    pub fn state(&self) -> watch::Receiver<PublishState> {
        self.state.clone()
    }

    /// Ends the session now.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for PublishSession {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Session for PublishSession {}

impl Streamer for WebRtcPublisher {
    fn start(&self, frames: FrameReceiver) -> Result<Box<dyn Session>, StreamError> {
        Ok(Box::new(self.start_session(frames)?))
    }
}

impl WebRtcPublisher {
    /// Starts publishing on the current tokio runtime.
    pub fn start_session(&self, frames: FrameReceiver) -> Result<PublishSession, StreamError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| StreamError::Unavailable("no tokio runtime".into()))?;
        let ws_url = match &self.config.whip {
            Some(w) => {
                crate::http1::split(w).map_err(StreamError::InvalidConfig)?;
                String::new()
            }
            None => signaling_url(&self.config.server)?,
        };
        let stop = CancellationToken::new();
        let (state_tx, state) = watch::channel(PublishState::Connecting);
        let frames_sent = Arc::new(AtomicU64::new(0));
        let span = tracing::info_span!("publish", camera = self.config.camera);
        rt.spawn(
            run(
                self.config.clone(),
                ws_url,
                frames,
                state_tx,
                frames_sent.clone(),
                stop.clone(),
            )
            .instrument(span),
        );
        Ok(PublishSession {
            stop,
            state,
            frames_sent,
        })
    }
}

async fn run(
    config: PublishConfig,
    ws_url: String,
    mut frames: FrameReceiver,
    state: watch::Sender<PublishState>,
    sent: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        state.send_replace(PublishState::Connecting);
        let started = Instant::now();
        let ended = Box::pin(connect_and_publish(
            &config,
            &ws_url,
            &mut frames,
            &state,
            &sent,
            &stop,
        ))
        .await;
        // A session that streamed for a minute was healthy: start over.
        if started.elapsed() >= Duration::from_secs(60) {
            backoff.reset();
        }
        let wait = match ended {
            Ended::Stopped => break,
            Ended::Refused(why) => {
                tracing::error!(
                    "the server refused this camera's stream key ({why}); retrying every 60 s"
                );
                state.send_replace(PublishState::Refused);
                backoff.max()
            }
            Ended::Failed(why) => {
                let wait = backoff.next_delay();
                tracing::warn!(
                    "publishing stopped: {why}; retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                state.send_replace(PublishState::Retrying(why));
                wait
            }
        };
        // Keep the capture's queue from filling while we wait: frames from
        // before the reconnect are stale anyway.
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    state.send_replace(PublishState::Stopped);
                    return;
                }
                () = tokio::time::sleep_until(until) => break,
                f = frames.recv() => if f.is_none() { state.send_replace(PublishState::Stopped); return; },
            }
        }
    }
    state.send_replace(PublishState::Stopped);
}

#[derive(Clone)]
struct Events {
    gathered: tokio::sync::mpsc::Sender<()>,
    state: tokio::sync::mpsc::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.try_send(state);
    }
}

async fn connect_and_publish(
    config: &PublishConfig,
    ws_url: &str,
    frames: &mut FrameReceiver,
    state: &watch::Sender<PublishState>,
    sent: &AtomicU64,
    stop: &CancellationToken,
) -> Ended {
    // 1. Signaling: join as the camera's publisher (or, with WHIP, nothing
    // until the offer).
    let opened = match &config.whip {
        Some(url) => Channel::http(url, &config.key),
        None => {
            let join = Message::JoinRoom {
                v: PROTOCOL_VERSION,
                camera_id: config.camera,
                role: Role::Publisher,
                stream_key: Some(config.key.clone()),
                token: None,
            };
            Channel::ws(ws_url, &join).await
        }
    };
    let mut chan = match opened {
        Ok(c) => c,
        Err(e) => return e,
    };

    // 2. WebRTC: one sendonly H.264 track, constrained baseline.
    let video_codec = h264_codec();
    let (media, registry) = match h264_engine() {
        Ok(x) => x,
        Err(e) => return e,
    };
    let registry = registry.with(Slot::from(14_000), KeyframeRequests::default());
    let (gtx, mut gathered) = tokio::sync::mpsc::channel(1);
    let (stx, mut pc_state) = tokio::sync::mpsc::channel(16);
    let local = local_ip_towards(config.whip.as_deref().unwrap_or(ws_url))
        .map_or_else(|| "0.0.0.0:0".to_string(), |a| a.to_string());
    let built = Box::pin(
        PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(Vec::<RTCIceServer>::new())
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events {
                gathered: gtx,
                state: stx,
            }))
            .with_runtime(Arc::new(TokioRuntime))
            .with_udp_addrs(vec![local])
            .build(),
    )
    .await;
    let pc = match built {
        Ok(pc) => pc,
        Err(e) => return Ended::Failed(format!("peer connection: {e}")),
    };
    let ssrc: u32 = rand_ssrc();
    let track = match TrackLocalStaticSample::new(
        Instant::now(),
        MediaStreamTrack::new(
            format!("camera-{}", config.camera),
            "video".to_owned(),
            "video".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: video_codec.clone(),
                ..Default::default()
            }],
        ),
    ) {
        Ok(t) => Arc::new(t),
        Err(e) => return Ended::Failed(format!("track: {e}")),
    };
    let ended = async {
        let sender = pc
            .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| format!("add track: {e}"))?;
        let offer = pc
            .create_offer(None)
            .await
            .map_err(|e| format!("offer: {e}"))?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| format!("local description: {e}"))?;
        // Host candidates only: gathering takes milliseconds. Send the
        // whole offer rather than trickle.
        let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
        let offer = pc
            .local_description()
            .await
            .ok_or_else(|| "no local description".to_string())?;
        let answer = match chan.exchange(offer.sdp.clone()).await {
            Ok(a) => a,
            Err(Ended::Failed(why)) => return Err(why),
            Err(e) => return Ok(e),
        };
        let answer = RTCSessionDescription::answer(answer).map_err(|e| format!("answer: {e}"))?;
        pc.set_remote_description(answer)
            .await
            .map_err(|e| format!("remote description: {e}"))?;
        let pt = sender
            .get_parameters()
            .await
            .map_err(|e| format!("parameters: {e}"))?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| "no codec negotiated".to_string())?;
        // Connected within 10 s, or try again.
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(s) = pc_state.recv().await {
                match s {
                    RTCPeerConnectionState::Connected => return Ok(()),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        return Err(format!("connection {s}"));
                    }
                    _ => {}
                }
            }
            Err("connection ended".to_string())
        })
        .await
        .map_err(|_| "ICE did not connect within 10 s".to_string())?;
        connected?;
        state.send_replace(PublishState::Publishing);
        tracing::info!("publishing");
        Ok::<_, String>(
            stream_frames(
                config,
                &mut chan,
                &track,
                ssrc,
                pt,
                &mut pc_state,
                frames,
                sent,
                stop,
            )
            .await,
        )
    }
    .await;
    let _ = pc.close().await;
    chan.close().await;
    match ended {
        Ok(e) => e,
        Err(e) => Ended::Failed(e),
    }
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
    sent: &AtomicU64,
    stop: &CancellationToken,
) -> Ended {
    // The viewer's decoder starts at a keyframe: ask for one now, and send
    // nothing before it.
    (config.keyframe)();
    let mut last_forced = Some(Instant::now());
    let mut started = false;
    let mut prev_pts: Option<i64> = None;
    // One future for the whole session: making a new one per packet would
    // re-arm the socket's read (tungstenite zeroes a 128 KiB buffer each
    // time), a few per cent of the CPU.
    let ended = chan.ended();
    tokio::pin!(ended);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ended::Stopped,
            s = pc_state.recv() => match s {
                Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected) | None => {
                    return Ended::Failed("the WebRTC connection was lost".into());
                }
                _ => {}
            },
            e = &mut ended => return e,
            ev = track.poll() => match ev {
                Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                    // Only keyframe requests reach us (KeyframeRequests).
                    if last_forced.is_none_or(|t| t.elapsed() >= MIN_FORCED_KEYFRAME_INTERVAL) {
                        last_forced = Some(Instant::now());
                        tracing::debug!("the relay asked for a keyframe");
                        (config.keyframe)();
                    }
                }
                Some(_) => {}
                None => return Ended::Failed("the track ended".into()),
            },
            f = frames.recv() => {
                let Some(f) = f else { return Ended::Stopped };
                if !started && !f.keyframe {
                    continue;
                }
                started = true;
                let duration = frame_duration(&f, prev_pts);
                prev_pts = Some(f.pts_90k);
                let sample = Sample {
                    data: f.data.clone(),
                    duration,
                    ..Sample::new(Instant::now())
                };
                if let Err(e) = track.sample_writer(ssrc, pt).write_sample(&sample).await {
                    return Ended::Failed(format!("sending a frame: {e}"));
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
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

/// Lets PLI and FIR through to the application (the track's events);
/// everything else ends in the interceptor chain as usual.
#[derive(Default)]
struct KeyframeRequests {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(wanted);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
