//! The WebRTC side the publisher and the subscriber share: opening the way
//! to the relay, building the peer connection, and the offer/answer.

use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reallive_signaling::{IceServer, Message, PROTOCOL_VERSION, Role};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::interceptor_registry::Registry;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceServer};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};

use webrtc::runtime::TokioRuntime;

use crate::net::Network;
use crate::signal::{Channel, Ended, local_ip_towards, media_engine};

/// A setup step that failed, as a reason to retry: `"{what}: {error}"`.
pub(crate) fn failed<E: Display>(what: &'static str) -> impl FnOnce(E) -> Ended {
    move |e| Ended::Failed(format!("{what}: {e}"))
}

/// What one connection starts from: the way to the relay, and an H.264
/// peer connection (with the default interceptors, plus what `interceptors`
/// adds) not yet negotiated.
///
/// The way is WHIP or WHEP at `http` with `credential` as the bearer, or
/// else the camera's room at `ws_url`, joined as `role` (a publisher with
/// its stream key, a viewer with a token), over `net`. The peer connection
/// uses `ice_servers` (the server's) and then `net`'s own.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open(
    net: &Network,
    http: Option<&str>,
    ws_url: &str,
    camera: i64,
    role: Role,
    credential: String,
    ice_servers: Vec<IceServer>,
    interceptors: fn(Registry) -> Registry,
) -> Result<(Channel, impl PeerConnection + use<>, PeerEvents), Ended> {
    let chan = open_channel(net, http, ws_url, camera, role, credential).await?;
    let (media, registry) = media_engine()?;
    let ice: Vec<RTCIceServer> = ice_servers
        .iter()
        .chain(net.ice_servers())
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let (pc, events) = build(media, interceptors(registry), ice, http.unwrap_or(ws_url)).await?;
    Ok((chan, pc, events))
}

async fn open_channel(
    net: &Network,
    http: Option<&str>,
    ws_url: &str,
    camera: i64,
    role: Role,
    credential: String,
) -> Result<Channel, Ended> {
    if let Some(url) = http {
        return Channel::http(net, url, &credential);
    }
    let (stream_key, token) = match role {
        Role::Publisher => (Some(credential), None),
        _ => (None, Some(credential)),
    };
    let join = Message::JoinRoom {
        v: PROTOCOL_VERSION,
        camera_id: camera,
        role,
        stream_key,
        token,
    };
    Channel::ws(net, ws_url, &join).await
}

/// A peer connection's events, as channels a session selects on.
pub(crate) struct PeerEvents {
    /// ICE gathering completed.
    pub(crate) gathered: mpsc::Receiver<()>,
    /// Connection state changes.
    pub(crate) state: mpsc::Receiver<RTCPeerConnectionState>,
    /// Remote tracks (a subscriber's video).
    pub(crate) tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
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

/// A peer connection for `media` and its interceptors, with `ice` (STUN
/// and TURN servers), offering the one host address the OS routes towards
/// `server` (a URL) over UDP, and ICE-TCP from the same address: an active
/// candidate, so a relay whose UDP is blocked is still reached through its
/// passive TCP candidate.
async fn build(
    media: MediaEngine,
    registry: Registry,
    ice: Vec<RTCIceServer>,
    server: &str,
) -> Result<(impl PeerConnection + use<>, PeerEvents), Ended> {
    let (gathered, gathered_rx) = mpsc::channel(1);
    let (state, state_rx) = mpsc::channel(16);
    let (tracks, tracks_rx) = mpsc::channel(4);
    let local = local_ip_towards(server).map_or_else(|| "0.0.0.0:0".to_string(), |a| a.to_string());
    let pc = Box::pin(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_ice_servers(ice).build())
            // No mDNS: the relay never offers `.local` candidates, and the
            // multicast socket fails (ENODEV) on a host with no multicast
            // route, taking the whole peer connection down.
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_multicast_dns_mode(MulticastDnsMode::Disabled)
                    .build(),
            )
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Events {
                gathered,
                state,
                tracks,
            }))
            .with_runtime(Arc::new(TokioRuntime))
            .with_udp_addrs(vec![local.clone()])
            .with_tcp_addrs(vec![local])
            .build(),
    )
    .await
    .map_err(failed("peer connection"))?;
    Ok((
        pc,
        PeerEvents {
            gathered: gathered_rx,
            state: state_rx,
            tracks: tracks_rx,
        },
    ))
}

/// Offers (the whole offer once gathering completes: host candidates take
/// milliseconds, so no trickle), sends it over `chan`, and applies the
/// answer.
pub(crate) async fn negotiate(
    pc: &impl PeerConnection,
    gathered: &mut mpsc::Receiver<()>,
    chan: &mut Channel,
) -> Result<(), Ended> {
    let offer = pc.create_offer(None).await.map_err(failed("offer"))?;
    pc.set_local_description(offer)
        .await
        .map_err(failed("local description"))?;
    let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
    let offer = pc
        .local_description()
        .await
        .ok_or_else(|| Ended::Failed("no local description".into()))?;
    let answer = chan.exchange(offer.sdp).await?;
    let passive = passive_tcp_candidates(&answer);
    let answer = RTCSessionDescription::answer(answer).map_err(failed("answer"))?;
    pc.set_remote_description(answer)
        .await
        .map_err(failed("remote description"))?;
    // The webrtc crate opens an active ICE-TCP connection only for a
    // passive candidate added on its own, not for one inside the answer:
    // add the relay's again, so a peer whose UDP is blocked still connects.
    for c in passive {
        if let Err(e) = pc.add_ice_candidate(c).await {
            tracing::debug!("the relay's ICE-TCP candidate: {e}");
        }
    }
    Ok(())
}

/// The passive ICE-TCP candidates in `sdp`, each with its m-line's index
/// and mid.
fn passive_tcp_candidates(sdp: &str) -> Vec<RTCIceCandidateInit> {
    let mut out = Vec::new();
    let (mut index, mut mid) = (None::<u16>, None::<String>);
    for line in sdp.lines() {
        if line.starts_with("m=") {
            index = Some(index.map_or(0, |i| i + 1));
            mid = None;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.trim().to_owned());
        } else if let Some(c) = line.strip_prefix("a=")
            && c.starts_with("candidate:")
            && c.split_whitespace()
                .nth(2)
                .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
            && c.contains(" tcptype passive")
        {
            out.push(RTCIceCandidateInit {
                candidate: c.trim().to_owned(),
                sdp_mid: mid.clone(),
                sdp_mline_index: index,
                ..Default::default()
            });
        }
    }
    out
}

/// Whether a connection state change (or the end of them) means the
/// connection is lost.
pub(crate) fn lost(state: Option<RTCPeerConnectionState>) -> Option<Ended> {
    match state {
        Some(
            RTCPeerConnectionState::Failed
            | RTCPeerConnectionState::Closed
            | RTCPeerConnectionState::Disconnected,
        )
        | None => Some(Ended::Failed("the WebRTC connection was lost".into())),
        Some(_) => None,
    }
}

/// Lets the RTCP packets `keep` picks through to the application (the
/// track's `OnRtcpPacket` events); everything else ends in the interceptor
/// chain as usual. The publisher keeps keyframe requests, the subscriber
/// sender reports.
pub(crate) struct DeliverRtcp {
    keep: fn(&dyn rtc::rtcp::Packet) -> bool,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl DeliverRtcp {
    pub(crate) fn new(keep: fn(&dyn rtc::rtcp::Packet) -> bool) -> Self {
        DeliverRtcp {
            keep,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| (self.keep)(p.as_ref()))
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

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passive_tcp_candidates_are_picked_with_their_m_line() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\n\
                   a=candidate:1 1 udp 2130706431 10.0.0.1 8189 typ host\r\n\
                   a=candidate:2 1 tcp 1518280447 10.0.0.1 8189 typ host tcptype passive\r\n\
                   a=candidate:3 1 tcp 1518280447 10.0.0.1 9 typ host tcptype active\r\n";
        let c = passive_tcp_candidates(sdp);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].candidate.starts_with("candidate:2 1 tcp"));
        assert_eq!(
            (c[0].sdp_mid.as_deref(), c[0].sdp_mline_index),
            (Some("0"), Some(0))
        );
    }
}
