//! [`WebRtcSubscriber`]: one camera from a RealLive server as
//! [`EncodedFrame`]s, over WebRTC (the `webrtc` crate) set up through
//! `/ws/signaling` or WHEP, reconnecting on its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reallive_core::{Codec, CodecParameters, EncodedFrame, FrameSender, nal};
use reallive_signaling::{Message, PROTOCOL_VERSION, Role};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::runtime::TokioRuntime;

use crate::assemble::Assembler;
use crate::signal::{Channel, Ended, h264_engine, local_ip_towards, signaling_url};
use crate::{Credential, Receiver, Session, StreamError};
use reallive_core::Backoff;

/// What to watch, and as whom.
#[derive(Clone)]
pub struct SubscribeConfig {
    /// The server, `http://host:port`.
    pub server: String,
    /// The camera's id.
    pub camera: i64,
    /// A token whose user holds `view` on the camera; each connection
    /// reads its current value, so a refreshed token takes effect on the
    /// next reconnect.
    pub token: Credential,
    /// Subscribe with WHEP at this `http://` URL (`…/whep/{id}`) instead
    /// of WS signaling.
    pub whep: Option<String>,
}

impl std::fmt::Debug for SubscribeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeConfig")
            .field("server", &self.server)
            .field("camera", &self.camera)
            .field("whep", &self.whep)
            .finish()
    }
}

/// What the subscriber is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscribeState {
    /// Setting up.
    Connecting,
    /// Frames arrive.
    Receiving,
    /// Waiting before the next attempt; the reason is in the string.
    Retrying(String),
    /// The token or grant was refused; retrying slowly.
    Refused(String),
    /// Stopped.
    Stopped,
}

/// Receives over WS signaling with the `webrtc` crate.
#[derive(Debug, Clone)]
pub struct WebRtcSubscriber {
    config: SubscribeConfig,
}

/// A running subscription; dropping it ends it.
#[derive(Debug)]
pub struct SubscribeSession {
    stop: CancellationToken,
    state: watch::Receiver<SubscribeState>,
    /// Frames delivered.
    pub frames: Arc<AtomicU64>,
    /// Connections made (1 + reconnects).
    pub connections: Arc<AtomicU64>,
}

impl SubscribeSession {
    /// The current state, and changes to it.
    pub fn state(&self) -> watch::Receiver<SubscribeState> {
        self.state.clone()
    }

    /// Ends the subscription now.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for SubscribeSession {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Session for SubscribeSession {}

impl Receiver for WebRtcSubscriber {
    fn start(&self, out: FrameSender) -> Result<Box<dyn Session>, StreamError> {
        Ok(Box::new(self.start_session(out)?))
    }
}

impl WebRtcSubscriber {
    /// A subscriber for `config`.
    pub fn new(config: SubscribeConfig) -> Self {
        WebRtcSubscriber { config }
    }

    /// Starts receiving on the current tokio runtime into `out`.
    pub fn start_session(&self, out: FrameSender) -> Result<SubscribeSession, StreamError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| StreamError::Unavailable("no tokio runtime".into()))?;
        let ws_url = signaling_url(&self.config.server)?;
        if let Some(w) = &self.config.whep {
            crate::http1::split(w).map_err(StreamError::InvalidConfig)?;
        }
        let stop = CancellationToken::new();
        let (state_tx, state) = watch::channel(SubscribeState::Connecting);
        let frames = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let span = tracing::info_span!("subscribe", camera = self.config.camera);
        rt.spawn(
            run(
                self.config.clone(),
                ws_url,
                out,
                state_tx,
                frames.clone(),
                connections.clone(),
                stop.clone(),
            )
            .instrument(span),
        );
        Ok(SubscribeSession {
            stop,
            state,
            frames,
            connections,
        })
    }
}

async fn run(
    config: SubscribeConfig,
    ws_url: String,
    out: FrameSender,
    state: watch::Sender<SubscribeState>,
    frames: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut timeline = Timeline::default();
    loop {
        state.send_replace(SubscribeState::Connecting);
        timeline.discontinuity();
        let started = Instant::now();
        let ended = Box::pin(connect_and_receive(
            &config,
            &ws_url,
            &mut timeline,
            &out,
            &state,
            &frames,
            &connections,
            &stop,
        ))
        .await;
        if started.elapsed() >= Duration::from_secs(30) {
            backoff.reset();
        }
        let wait = match ended {
            Ended::Stopped => break,
            Ended::Refused(why) => {
                tracing::error!("the server refused this viewer ({why}); retrying every 30 s");
                state.send_replace(SubscribeState::Refused(why));
                backoff.max()
            }
            Ended::Failed(why) => {
                let wait = backoff.next_delay();
                tracing::warn!(
                    "receiving stopped: {why}; retrying in {:.1} s",
                    wait.as_secs_f64()
                );
                state.send_replace(SubscribeState::Retrying(why));
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    state.send_replace(SubscribeState::Stopped);
}

#[derive(Clone)]
struct Events {
    gathered: mpsc::Sender<()>,
    state: mpsc::Sender<RTCPeerConnectionState>,
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
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

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.try_send(track);
    }
}

#[allow(clippy::too_many_arguments)]
async fn connect_and_receive(
    config: &SubscribeConfig,
    ws_url: &str,
    timeline: &mut Timeline,
    out: &FrameSender,
    state: &watch::Sender<SubscribeState>,
    frames: &AtomicU64,
    connections: &AtomicU64,
    stop: &CancellationToken,
) -> Ended {
    let opened = match &config.whep {
        Some(url) => Channel::http(url, &config.token.get()),
        None => {
            let join = Message::JoinRoom {
                v: PROTOCOL_VERSION,
                camera_id: config.camera,
                role: Role::Viewer,
                stream_key: None,
                token: Some(config.token.get()),
            };
            Channel::ws(ws_url, &join).await
        }
    };
    let mut chan = match opened {
        Ok(c) => c,
        Err(e) => return e,
    };
    let (media, registry) = match h264_engine() {
        Ok(x) => x,
        Err(e) => return e,
    };
    let (gtx, mut gathered) = mpsc::channel(1);
    let (stx, mut pc_state) = mpsc::channel(16);
    let (ttx, mut tracks) = mpsc::channel(4);
    let local = local_ip_towards(config.whep.as_deref().unwrap_or(ws_url))
        .map_or_else(|| "0.0.0.0:0".to_string(), |a| a.to_string());
    let built = Box::pin(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events {
                gathered: gtx,
                state: stx,
                tracks: ttx,
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
    let ended = async {
        pc.add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| format!("transceiver: {e}"))?;
        let offer = pc
            .create_offer(None)
            .await
            .map_err(|e| format!("offer: {e}"))?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| format!("local description: {e}"))?;
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
        connections.fetch_add(1, Ordering::Relaxed);
        Ok::<_, String>(
            receive(
                &mut chan,
                timeline,
                &mut pc_state,
                &mut tracks,
                out,
                state,
                frames,
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

/// Turns RTP into access units until something ends the connection.
#[allow(clippy::too_many_arguments)]
async fn receive(
    chan: &mut Channel,
    timeline: &mut Timeline,
    pc_state: &mut mpsc::Receiver<RTCPeerConnectionState>,
    tracks: &mut mpsc::Receiver<Arc<dyn TrackRemote>>,
    out: &FrameSender,
    state: &watch::Sender<SubscribeState>,
    frames: &AtomicU64,
    stop: &CancellationToken,
) -> Ended {
    let mut track: Option<Arc<dyn TrackRemote>> = None;
    let mut media_ssrc = 0u32;
    // Holes wait for NACK retransmissions this long, then are given up.
    let mut assembler = Assembler::new(HOLE_WAIT, MAX_HELD_PACKETS);
    let mut params: Option<Arc<CodecParameters>> = None;
    let mut need_keyframe = true;
    let mut last_pli: Option<Instant> = None;
    // One future for the whole session: making a new one per packet would
    // re-arm the socket's read (tungstenite zeroes a 128 KiB buffer each
    // time), a few per cent of the CPU.
    let ended = chan.ended();
    tokio::pin!(ended);
    loop {
        let next_event = async {
            match &track {
                Some(t) => t.poll().await,
                None => std::future::pending().await,
            }
        };
        let hole = async {
            match assembler.deadline() {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return Ended::Stopped,
            s = pc_state.recv() => match s {
                Some(RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed | RTCPeerConnectionState::Disconnected) | None => {
                    return Ended::Failed("the WebRTC connection was lost".into());
                }
                _ => {}
            },
            e = &mut ended => return e,
            t = tracks.recv(), if track.is_none() => {
                let Some(t) = t else { continue };
                media_ssrc = t.ssrcs().await.first().copied().unwrap_or(0);
                track = Some(t);
            }
            () = hole => {}
            ev = next_event => match ev {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    assembler.push(p.header.sequence_number, p.header.timestamp, p.header.marker, p.payload);
                }
                Some(TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError) | None => {
                    return Ended::Failed("the track ended".into());
                }
                Some(_) => {}
            },
        }
        let now = Instant::now();
        while let Some(unit) = assembler.pop(now) {
            if !unit.intact {
                need_keyframe = true;
            }
            let keyframe = unit.intact && nal::is_keyframe(Codec::H264, &unit.data);
            if keyframe && let Some(p) = CodecParameters::from_annex_b(Codec::H264, &unit.data) {
                params = Some(Arc::new(p));
            }
            if need_keyframe && !(keyframe && params.is_some()) {
                // Ask for one, at most every 500 ms.
                if last_pli.is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
                    && let Some(t) = &track
                {
                    last_pli = Some(Instant::now());
                    tracing::debug!(lost = assembler.lost, "dropping to the next keyframe; PLI");
                    let _ = t
                        .write_rtcp(vec![Box::new(PictureLossIndication {
                            sender_ssrc: 0,
                            media_ssrc,
                        })])
                        .await;
                }
                continue;
            }
            need_keyframe = false;
            let Some(p) = params.clone() else { continue };
            let pts = timeline.pts(unit.rtp_ts, now);
            let frame = EncodedFrame {
                data: unit.data,
                pts_90k: pts,
                dts_90k: pts,
                // The store takes it from the next frame.
                duration_90k: None,
                keyframe,
                params: p,
            };
            if frames.fetch_add(1, Ordering::Relaxed) == 0 {
                state.send_replace(SubscribeState::Receiving);
                tracing::info!("receiving");
            }
            if out.offer(frame) == reallive_core::Offer::Closed {
                // Nobody reads the frames any more.
                return Ended::Stopped;
            }
        }
    }
}

/// How long a hole in the RTP sequence waits for its retransmission.
const HOLE_WAIT: Duration = Duration::from_millis(300);
/// The most packets held behind a hole (about 1.7 MB; 3 s at 4 Mbit/s).
const MAX_HELD_PACKETS: usize = 1500;

/// Largest step between two frames' RTP times still taken as media time;
/// anything else (a new publisher's random base, a reconnect) is a
/// discontinuity, bridged with the wall-clock time that passed.
const MAX_RTP_STEP_90K: i32 = 5 * 90_000;

/// One 90 kHz timeline for everything a subscription receives, across
/// reconnects and publisher restarts: RTP time within a stream, and the
/// wall-clock gap between them, so a gap in the stream is a gap in time.
#[derive(Debug, Default)]
struct Timeline {
    /// The last frame's pts and when it arrived.
    last: Option<(i64, Instant)>,
    /// The last frame's RTP time in the current stream.
    last_ts: Option<u32>,
}

impl Timeline {
    /// The next frame starts a new stream (a new connection).
    fn discontinuity(&mut self) {
        self.last_ts = None;
    }

    /// The pts of a frame with RTP time `ts` arriving at `now`.
    fn pts(&mut self, ts: u32, now: Instant) -> i64 {
        let step = self
            .last_ts
            .map(|prev| ts.wrapping_sub(prev) as i32)
            .filter(|d| (0..=MAX_RTP_STEP_90K).contains(d));
        let pts = match (self.last, step) {
            (None, _) => 0,
            (Some((p, _)), Some(d)) => p + i64::from(d),
            (Some((p, at)), None) => {
                let gap = now.saturating_duration_since(at).as_micros() as i64 * 9 / 100;
                p + gap.max(1)
            }
        };
        self.last = Some((pts, now));
        self.last_ts = Some(ts);
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_runs_on_across_reconnects_and_new_publishers() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut tl = Timeline::default();
        assert_eq!(tl.pts(1_000_000, ms(0)), 0);
        assert_eq!(tl.pts(1_003_000, ms(33)), 3000);
        // RTP wraps around: still one step.
        let mut w = Timeline::default();
        w.pts(u32::MAX - 1000, ms(0));
        assert_eq!(w.pts(1999, ms(33)), 3000);
        // A reconnect 4 s later: the gap is wall-clock time.
        tl.discontinuity();
        assert_eq!(tl.pts(77, ms(4033)), 3000 + 4 * 90_000);
        assert_eq!(tl.pts(77 + 3000, ms(4066)), 3000 + 4 * 90_000 + 3000);
        // A new publisher on the same connection (a random RTP base, or a
        // step backwards): bridged by the wall clock too.
        assert_eq!(tl.pts(5, ms(4166)), 3000 + 4 * 90_000 + 3000 + 9000);
        // Never two frames at one time.
        tl.discontinuity();
        let p = tl.pts(9, ms(4166));
        assert_eq!(p, 3000 + 4 * 90_000 + 3000 + 9000 + 1);
    }
}
