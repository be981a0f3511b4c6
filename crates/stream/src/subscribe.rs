//! [`WebRtcSubscriber`]: one camera from a RealLive server as
//! [`EncodedFrame`]s, over WebRTC (the `webrtc` crate) set up through
//! `/ws/signaling` or WHEP, reconnecting on its own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use reallive_core::{
    AudioFrame, AudioParameters, AudioSender, Codec, CodecParameters, EncodedFrame, FrameSender,
    nal,
};
use reallive_signaling::{IceServer, Role};
use rtc::interceptor::Slot;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

use crate::assemble::Assembler;
use crate::net::{NetError, Network, Target};
use crate::peer::{self, DeliverRtcp, PeerEvents, failed};
use crate::reconnect::{self, Connect, Link, Policy, ReconnectingSession};
use crate::signal::{Channel, Ended, signaling_url};
use crate::{Credential, Receiver, Session, StreamError};

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
    /// Subscribe with WHEP at this `http://` or `https://` URL
    /// (`…/whep/{id}`) instead of WS signaling.
    pub whep: Option<String>,
    /// Whom to trust over TLS, and ICE servers to use besides the ones the
    /// server hands out with each connection (fresh TURN credentials).
    pub network: Network,
}

impl std::fmt::Debug for SubscribeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeConfig")
            .field("server", &self.server)
            .field("camera", &self.camera)
            .field("whep", &self.whep)
            .field("network", &self.network)
            .finish()
    }
}

/// Receives over WS signaling with the `webrtc` crate.
#[derive(Debug, Clone)]
pub struct WebRtcSubscriber {
    config: SubscribeConfig,
}

impl Receiver for WebRtcSubscriber {
    fn start(&self, out: FrameSender) -> Result<Box<dyn Session>, StreamError> {
        Ok(Box::new(self.start_session(out)?))
    }

    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: AudioSender,
    ) -> Result<Box<dyn Session>, StreamError> {
        Ok(Box::new(self.start_session_with_audio(out, Some(audio))?))
    }
}

impl WebRtcSubscriber {
    /// A subscriber for `config`.
    pub fn new(config: SubscribeConfig) -> Self {
        WebRtcSubscriber { config }
    }

    /// Starts receiving on the current tokio runtime into `out`:
    /// reconnects with backoff from 1 s to 30 s, and every 30 s while the
    /// token or grant is refused.
    pub fn start_session(&self, out: FrameSender) -> Result<ReconnectingSession, StreamError> {
        self.start_session_with_audio(out, None)
    }

    /// [`start_session`](Self::start_session), asking for the camera's
    /// audio too: its Opus packets go to `audio`, on the frames' timeline.
    pub fn start_session_with_audio(
        &self,
        out: FrameSender,
        audio: Option<AudioSender>,
    ) -> Result<ReconnectingSession, StreamError> {
        let ws_url = signaling_url(&self.config.server)?;
        if let Some(w) = &self.config.whep {
            Target::parse(w).map_err(StreamError::InvalidConfig)?;
        }
        reconnect::spawn(
            Subscribe {
                config: self.config.clone(),
                ws_url,
                out,
                audio,
                timeline: Timeline::default(),
            },
            Policy::new(
                Duration::from_secs(1),
                Duration::from_secs(30),
                "receiving",
                "this viewer",
            ),
            tracing::info_span!("subscribe", camera = self.config.camera),
        )
    }
}

/// One receiving connection at a time, for the reconnect driver; the
/// timeline runs on across them.
struct Subscribe {
    config: SubscribeConfig,
    ws_url: String,
    out: FrameSender,
    audio: Option<AudioSender>,
    timeline: Timeline,
}

impl Connect for Subscribe {
    fn connect<'a>(&'a mut self, link: &'a Link) -> BoxFuture<'a, Ended> {
        self.timeline.discontinuity();
        Box::pin(connect_and_receive(
            &self.config,
            &self.ws_url,
            &mut self.timeline,
            &self.out,
            self.audio.as_ref(),
            link,
        ))
    }
}

/// The STUN and TURN servers the server hands this viewer for this
/// connection (`/api/cameras/{id}/stream`; TURN credentials are minted per
/// session and expire). Without an answer the connection still goes ahead
/// on host candidates; an untrusted certificate ends it for good.
async fn stream_ice_servers(
    config: &SubscribeConfig,
    token: &str,
) -> Result<Vec<IceServer>, Ended> {
    let target = Target::parse(&config.server).map_err(Ended::Fatal)?;
    let path = format!("/api/cameras/{}/stream", config.camera);
    let bearer = format!("Bearer {token}");
    let r = match crate::http1::request(
        &config.network,
        &target,
        "GET",
        &path,
        &[("Authorization", bearer.as_str())],
        b"",
    )
    .await
    {
        Ok(r) => r,
        Err(e @ NetError::Untrusted(_)) => return Err(e.into()),
        Err(e) => {
            tracing::debug!("{path}: {e}; no ICE servers from the server this time");
            return Ok(Vec::new());
        }
    };
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(default)]
        ice_servers: Vec<IceServer>,
    }
    match (r.status, serde_json::from_slice::<Info>(&r.body)) {
        (200, Ok(info)) => Ok(info.ice_servers),
        (status, _) => {
            tracing::debug!("{path} answered {status}; no ICE servers from the server this time");
            Ok(Vec::new())
        }
    }
}

async fn connect_and_receive(
    config: &SubscribeConfig,
    ws_url: &str,
    timeline: &mut Timeline,
    out: &FrameSender,
    audio: Option<&AudioSender>,
    link: &Link,
) -> Ended {
    let token = config.token.get();
    let ice_servers = match stream_ice_servers(config, &token).await {
        Ok(servers) => servers,
        Err(e) => return e,
    };
    let opened = peer::open(
        &config.network,
        config.whep.as_deref(),
        ws_url,
        config.camera,
        Role::Viewer,
        token,
        ice_servers,
        // The relay's sender reports place the sound on the picture's
        // timeline (AudioClock).
        |registry| registry.with(Slot::from(14_000), DeliverRtcp::new(is_sender_report)),
    )
    .await;
    let (mut chan, pc, mut events) = match opened {
        Ok(x) => x,
        Err(e) => return e,
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
        .map_err(failed("transceiver"))?;
        if audio.is_some() {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Audio,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .map_err(failed("audio transceiver"))?;
        }
        peer::negotiate(&pc, &mut events.gathered, &mut chan).await?;
        link.count_connection();
        Ok::<_, Ended>(receive(&mut chan, timeline, &mut events, out, audio, link).await)
    }
    .await;
    let _ = pc.close().await;
    chan.close().await;
    ended.unwrap_or_else(|e| e)
}

/// Turns RTP into access units until something ends the connection.
async fn receive(
    chan: &mut Channel,
    timeline: &mut Timeline,
    events: &mut PeerEvents,
    out: &FrameSender,
    audio: Option<&AudioSender>,
    link: &Link,
) -> Ended {
    let mut track: Option<Arc<dyn TrackRemote>> = None;
    let mut sound: Option<Arc<dyn TrackRemote>> = None;
    let mut audio_clock = AudioClock::default();
    let mut reports = Reports::default();
    let mut media_ssrc = 0u32;
    let mut sound_ssrc: Option<u32> = None;
    // Holes wait for NACK retransmissions this long, then are given up.
    let mut assembler = Assembler::new(HOLE_WAIT, MAX_HELD_PACKETS);
    let mut params: Option<Arc<CodecParameters>> = None;
    let mut need_keyframe = true;
    let mut last_pli: Option<Instant> = None;
    let mut live = false;
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
            () = link.stop().cancelled() => return Ended::Stopped,
            s = events.state.recv() => if let Some(lost) = peer::lost(s) {
                return lost;
            },
            e = &mut ended => return e,
            t = events.tracks.recv(), if track.is_none() || (audio.is_some() && sound.is_none()) => {
                let Some(t) = t else { continue };
                if t.kind().await == RtpCodecKind::Audio {
                    sound_ssrc = t.ssrcs().await.first().copied();
                    sound = Some(t);
                } else if track.is_none() {
                    media_ssrc = t.ssrcs().await.first().copied().unwrap_or(0);
                    track = Some(t);
                }
            }
            ev = next_sound(&sound) => match ev {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => if let Some(a) = audio {
                    let params = audio_clock.params(&p.payload);
                    for (pts, data) in audio_clock.place(p.header.timestamp, p.payload, timeline, &reports, Instant::now()) {
                        // A full queue loses 20 ms of sound, nothing else.
                        let _ = a.offer(AudioFrame { data, pts_90k: pts, duration_90k: OPUS_FRAME_90K, params: params.clone() });
                    }
                },
                Some(TrackRemoteEvent::OnRtcpPacket(ps)) => reports.take(&ps, media_ssrc, sound_ssrc),
                // Video carries the session; without audio it goes on.
                Some(TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError) | None => sound = None,
                Some(_) => {}
            },
            () = hole => {}
            ev = next_event => match ev {
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    assembler.push(p.header.sequence_number, p.header.timestamp, p.header.marker, p.payload);
                }
                Some(TrackRemoteEvent::OnRtcpPacket(ps)) => reports.take(&ps, media_ssrc, sound_ssrc),
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
            link.count_frame();
            // Live again on each connection's first frame, not only the
            // session's.
            if !live {
                live = true;
                tracing::info!("receiving: the first frame arrived");
                link.live();
                tracing::info!("receiving");
            }
            if out.offer(frame) == reallive_core::Offer::Closed {
                // Nobody reads the frames any more.
                return Ended::Stopped;
            }
        }
    }
}

/// The next event of the audio track, or never without one.
async fn next_sound(sound: &Option<Arc<dyn TrackRemote>>) -> Option<TrackRemoteEvent> {
    match sound {
        Some(t) => t.poll().await,
        None => std::future::pending().await,
    }
}

/// One Opus frame as WebRTC sends it: 20 ms in 90 kHz ticks.
const OPUS_FRAME_90K: u32 = 1_800;

/// Sender reports: each track's RTP time at an instant of the sender's
/// clock (NTP, 32.32 fixed point), the last one received.
#[derive(Debug, Default, Clone, Copy)]
struct Reports {
    video: Option<Report>,
    audio: Option<Report>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Report {
    ntp: u64,
    rtp: u32,
}

fn is_sender_report(p: &dyn rtc::rtcp::Packet) -> bool {
    p.as_any().is::<SenderReport>()
}

impl Reports {
    /// Takes the sender reports among `packets`, each for the track whose
    /// SSRC it carries (`video`, `audio`), whichever track's event brought
    /// it: webrtc-rs hands a whole compound RTCP packet to the track of its
    /// first packet's SSRC, and the relay (str0m) sends the audio's and the
    /// video's reports in one compound when both are due.
    fn take(&mut self, packets: &[Box<dyn rtc::rtcp::Packet>], video: u32, audio: Option<u32>) {
        for sr in packets
            .iter()
            .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
        {
            let report = Some(Report {
                ntp: sr.ntp_time,
                rtp: sr.rtp_time,
            });
            if sr.ssrc == video {
                self.video = report;
            } else if Some(sr.ssrc) == audio {
                self.audio = report;
            }
        }
    }
}

/// Places Opus packets on the frames' timeline. With both tracks' sender
/// reports, by the sender's clock: a packet's RTP time is an instant there,
/// which is a video RTP time, which is a pts; each packet after that by
/// its RTP time from the one before, placed by the reports again only when
/// they differ by over [`RESYNC_90K`] (a packet they place back over
/// sound already handed on is dropped). Until both have come (the
/// relay sends them every second), the sound is held, at most
/// [`HOLD_SOUND`] and [`HOLD_SOUND_PACKETS`], and placed by them when they
/// come. Without them by then, by arrival: the first packet is placed where
/// the picture is at that moment, and each one after it by its RTP time
/// from the one before. Arrival is late by however far the picture is
/// behind live, as it is while the relay's GOP catch-up plays: measured at
/// −140 to +112 ms in recordings that kept the arrival anchor.
#[derive(Debug, Default)]
struct AudioClock {
    /// The last packet's RTP time and pts.
    anchor: Option<(u32, i64)>,
    /// Where the last packet handed on ends: one the reports place back
    /// over it is dropped, not sent out of order.
    end: Option<i64>,
    /// Whether the sender reports place the packets yet.
    by_reports: bool,
    /// Packets waiting for the sender reports: RTP time, payload, arrival.
    held: VecDeque<(u32, Bytes, Instant)>,
    /// The reports did not come in time: by arrival until they do.
    gave_up: bool,
    params: Option<Arc<AudioParameters>>,
}

/// The longest the sound waits for the sender reports that place it.
const HOLD_SOUND: Duration = Duration::from_secs(3);
/// The most packets held meanwhile (4 s of 20 ms packets).
const HOLD_SOUND_PACKETS: usize = 200;

impl AudioClock {
    /// The packets ready to go, with their pts, now that one with RTP
    /// time `ts` arrived at `now`: none while it is held for the sender
    /// reports, the ones held before it and it once they place it (or the
    /// wait is over).
    fn place(
        &mut self,
        ts: u32,
        data: Bytes,
        timeline: &Timeline,
        reports: &Reports,
        now: Instant,
    ) -> Vec<(i64, Bytes)> {
        if !self.by_reports && !self.gave_up && reports_pts(ts, timeline, reports).is_none() {
            let waited = self.held.front().map_or(Duration::ZERO, |(_, _, at)| {
                now.saturating_duration_since(*at)
            });
            if waited < HOLD_SOUND && self.held.len() < HOLD_SOUND_PACKETS {
                self.held.push_back((ts, data, now));
                return Vec::new();
            }
            self.gave_up = true;
            tracing::debug!(
                held = self.held.len(),
                "no sender reports for the sound in time: placed by its arrival until they come"
            );
        }
        let mut out = Vec::with_capacity(self.held.len() + 1);
        let held = std::mem::take(&mut self.held);
        for (t, d, at) in held.into_iter().chain(std::iter::once((ts, data, now))) {
            if let Some(pts) = self.pts(t, timeline, reports, at) {
                out.push((pts, d));
            }
        }
        out
    }

    /// The pts of an Opus packet with RTP time `ts` arriving at `now`;
    /// `None` before the connection's first video frame (no timeline yet)
    /// or for a packet from before the anchor.
    fn pts(
        &mut self,
        ts: u32,
        timeline: &Timeline,
        reports: &Reports,
        now: Instant,
    ) -> Option<i64> {
        let by_rtp = self.anchor.and_then(|(a_ts, a_pts)| {
            let d = ts.wrapping_sub(a_ts) as i32;
            // A new publisher's random RTP base: anchor again.
            (0..=MAX_RTP_STEP_48K)
                .contains(&d)
                .then(|| a_pts + i64::from(d) * 90_000 / 48_000)
        });
        let pts = match (reports_pts(ts, timeline, reports), by_rtp) {
            // Placed by the reports once, then by the RTP time from the
            // packet before, so the sound runs on in even 20 ms steps: the
            // relay's reports are as good as its forwarding times (a few
            // ms apart from one to the next). Placed again when they say
            // it is a packet or more off.
            (Some(r), Some(c)) if self.by_reports && (r - c).abs() <= RESYNC_90K => c,
            (Some(r), c) => {
                tracing::debug!(
                    moved_ms = c.map(|c| (r - c) / 90),
                    "the sound is placed by the sender reports"
                );
                self.by_reports = true;
                r
            }
            (None, Some(c)) => c,
            (None, None) => {
                // Where the picture was when it arrived: a packet held
                // while frames went on arrived before the last.
                let (p, at) = timeline.last.filter(|_| timeline.last_ts.is_some())?;
                let after = now.saturating_duration_since(at).as_micros() as i64;
                let before = at.saturating_duration_since(now).as_micros() as i64;
                p + (after - before) * 9 / 100
            }
        };
        self.anchor = Some((ts, pts));
        // Placed back over sound already handed on (by more than half a
        // packet): dropped, and the ones after it go on from here. A
        // recording plays its packets in pts order, back to back.
        if self
            .end
            .is_some_and(|end| pts < end - i64::from(OPUS_FRAME_90K) / 2)
        {
            return None;
        }
        self.end = Some(pts + i64::from(OPUS_FRAME_90K));
        Some(pts)
    }

    /// The track's parameters, the channel count read from the first
    /// packet's TOC byte (RFC 6716 §3.1: the `s` bit).
    fn params(&mut self, packet: &[u8]) -> Arc<AudioParameters> {
        self.params
            .get_or_insert_with(|| {
                let stereo = packet.first().is_some_and(|toc| toc & 0x04 != 0);
                Arc::new(AudioParameters::opus(if stereo { 2 } else { 1 }))
            })
            .clone()
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
/// The same for the sound's 48 kHz RTP clock.
const MAX_RTP_STEP_48K: i32 = 5 * 48_000;

/// How far the sender reports may put the sound from where its RTP time
/// runs on before it is placed again: one packet, 20 ms. The relay's
/// reports wander by a few ms from one to the next (it stamps them by its
/// forwarding times), which must not break the even 20 ms steps; a sound
/// card's clock drifts from the picture's (the pusher's test tone ran 0.33
/// ms a second behind), which the reports must correct.
const RESYNC_90K: i64 = 1_800;

/// The pts of the Opus packet with RTP time `ts` by both tracks' sender
/// reports and the video's place on the timeline; `None` without them, or
/// when they put it more than [`MAX_RTP_STEP_90K`] from the last frame.
fn reports_pts(ts: u32, timeline: &Timeline, reports: &Reports) -> Option<i64> {
    let (Some(v), Some(a)) = (reports.video, reports.audio) else {
        return None;
    };
    let (last_pts, _) = timeline.last?;
    let last_ts = timeline.last_ts?;
    // Seconds from the video's report to this packet, on the sender's clock.
    let ntp_gap = (i128::from(a.ntp) - i128::from(v.ntp)) as f64 / 4_294_967_296.0;
    let secs = f64::from(ts.wrapping_sub(a.rtp) as i32) / 48_000.0 + ntp_gap;
    let ts_v = v.rtp.wrapping_add((secs * 90_000.0).round() as i64 as u32);
    let d = ts_v.wrapping_sub(last_ts) as i32;
    (-MAX_RTP_STEP_90K..=MAX_RTP_STEP_90K)
        .contains(&d)
        .then(|| last_pts + i64::from(d))
}

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

    const NTP_SEC: u64 = 1 << 32;

    /// Two frames a second apart (RTP 1000 at pts 0, then 91000), and
    /// reports that say the video's RTP time 1000 - 9000 was at 100 s on
    /// the sender's clock, and the sound's 50000 at 100.5 s.
    fn two_frames_and_reports() -> (Instant, Timeline, Reports) {
        let t0 = Instant::now();
        let mut timeline = Timeline::default();
        timeline.pts(1_000, t0);
        timeline.pts(1_000 + 90_000, t0 + Duration::from_secs(1));
        let reports = Reports {
            video: Some(Report {
                ntp: 100 * NTP_SEC,
                rtp: 1_000u32.wrapping_sub(9_000),
            }),
            audio: Some(Report {
                ntp: 100 * NTP_SEC + NTP_SEC / 2,
                rtp: 50_000,
            }),
        };
        (t0, timeline, reports)
    }

    #[test]
    fn sender_reports_place_the_sound_by_the_senders_clock() {
        let (t0, timeline, reports) = two_frames_and_reports();
        let mut clock = AudioClock::default();
        // 0.1 s after the sound's report: 100.6 s, the video's RTP time
        // 1000 - 9000 + 54000 = 46000, half way from the first frame (RTP
        // 1000, pts 0) to the second (RTP 91000, pts 90000).
        let late_arrival = t0 + Duration::from_secs(3);
        assert_eq!(
            clock.pts(54_800, &timeline, &reports, late_arrival),
            Some(45_000)
        );
        // Without the audio's report, by arrival: where the picture is now.
        let mut clock = AudioClock::default();
        let half = Reports {
            audio: None,
            ..reports
        };
        assert_eq!(
            clock.pts(54_800, &timeline, &half, late_arrival),
            Some(90_000 + 2 * 90_000)
        );
    }

    #[test]
    fn the_sound_waits_for_the_sender_reports_and_is_placed_by_them() {
        let (t0, timeline, reports) = two_frames_and_reports();
        let early = Reports {
            audio: None,
            ..reports
        };
        let data = Bytes::from_static(&[0xf8]);
        let mut clock = AudioClock::default();
        // Before the sound's report: held, whenever it arrives.
        for i in 0..10u32 {
            let at = t0 + Duration::from_millis(1_000 + u64::from(i) * 20);
            let got = clock.place(54_800 + i * 960, data.clone(), &timeline, &early, at);
            assert!(got.is_empty(), "packet {i} went before the reports");
        }
        // The report comes: the held packets go first, each placed by it
        // (as `sender_reports_place_the_sound_by_the_senders_clock`), 20 ms
        // apart, then the one that arrived.
        let got = clock.place(
            54_800 + 10 * 960,
            data.clone(),
            &timeline,
            &reports,
            t0 + Duration::from_millis(1_200),
        );
        let pts: Vec<i64> = got.iter().map(|p| p.0).collect();
        let want: Vec<i64> = (0..=10).map(|i| 45_000 + i * 1_800).collect();
        assert_eq!(pts, want);

        // No reports within 3 s: by arrival, the held packets and the rest.
        // The first arrived half a second before the last frame (pts
        // 90000 at 1 s): it is placed where the picture was then.
        let mut clock = AudioClock::default();
        let mut placed = Vec::new();
        for i in 0..200u32 {
            let at = t0 + Duration::from_millis(500 + u64::from(i) * 20);
            placed.extend(clock.place(7 + i * 960, data.clone(), &timeline, &early, at));
        }
        assert_eq!(placed.len(), 200, "all, none lost");
        assert_eq!(placed[0].0, 45_000);
        assert!(placed.windows(2).all(|w| w[1].0 - w[0].0 == 1_800));
    }

    #[test]
    fn the_sound_runs_on_by_its_rtp_time_through_wandering_reports() {
        let (t0, timeline, reports) = two_frames_and_reports();
        let mut clock = AudioClock::default();
        let at = t0 + Duration::from_secs(3);
        assert_eq!(clock.pts(54_800, &timeline, &reports, at), Some(45_000));
        // Reports that put the sound 2 ms later: 20 ms steps on.
        let wandered = |by_48k: u32| Reports {
            audio: reports.audio.map(|a| Report {
                rtp: a.rtp.wrapping_sub(by_48k),
                ..a
            }),
            ..reports
        };
        let pts: Vec<i64> = (1..=5)
            .map(|i| {
                clock
                    .pts(54_800 + i * 960, &timeline, &wandered(96), at)
                    .unwrap()
            })
            .collect();
        assert_eq!(pts, [46_800, 48_600, 50_400, 52_200, 54_000]);
        // 50 ms later: placed again, by them.
        assert_eq!(
            clock.pts(54_800 + 6 * 960, &timeline, &wandered(2_400), at),
            Some(45_000 + 6 * 1_800 + 4_500)
        );
        // 30 ms earlier than that: over the packet already handed on, so
        // dropped; the next goes on from the new place, 20 ms after it.
        let back = wandered(2_400 - 1_440);
        assert_eq!(clock.pts(54_800 + 7 * 960, &timeline, &back, at), None);
        assert_eq!(
            clock.pts(54_800 + 8 * 960, &timeline, &back, at),
            Some(45_000 + 8 * 1_800 + 4_500 - 2_700)
        );
    }

    #[test]
    fn each_sender_report_goes_to_the_track_of_its_ssrc() {
        let sr = |ssrc, rtp| -> Box<dyn rtc::rtcp::Packet> {
            Box::new(SenderReport {
                ssrc,
                ntp_time: 100 * NTP_SEC,
                rtp_time: rtp,
                ..SenderReport::default()
            })
        };
        let mut reports = Reports::default();
        // One compound with the sound's report first, as webrtc-rs hands
        // it to the sound track; the video's last, as str0m sends both.
        reports.take(&[sr(22, 48_000), sr(11, 90_000)], 11, Some(22));
        assert_eq!(reports.video.map(|r| r.rtp), Some(90_000));
        assert_eq!(reports.audio.map(|r| r.rtp), Some(48_000));
        // The video's first: the sound's report is still the sound's.
        reports.take(&[sr(11, 180_000), sr(22, 96_000)], 11, Some(22));
        assert_eq!(reports.video.map(|r| r.rtp), Some(180_000));
        assert_eq!(reports.audio.map(|r| r.rtp), Some(96_000));
        // Another stream's report, or the sound's before its track came,
        // changes nothing.
        reports.take(&[sr(33, 1), sr(22, 2)], 11, None);
        assert_eq!(reports.video.map(|r| r.rtp), Some(180_000));
        assert_eq!(reports.audio.map(|r| r.rtp), Some(96_000));
    }

    #[test]
    fn the_arrival_anchor_rolls_on_past_ten_seconds() {
        let t0 = Instant::now();
        let mut timeline = Timeline::default();
        timeline.pts(0, t0);
        let mut clock = AudioClock::default();
        let none = Reports::default();
        let first = clock.pts(7, &timeline, &none, t0).unwrap();
        // 30 s of 20 ms packets, arriving with 50 ms of jitter: each is
        // placed by its RTP time alone.
        for i in 1..=1_500u32 {
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + u64::from(i % 3) * 25);
            let pts = clock.pts(7 + i * 960, &timeline, &none, at).unwrap();
            assert_eq!(pts - first, i64::from(i) * 1_800);
        }
    }

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
