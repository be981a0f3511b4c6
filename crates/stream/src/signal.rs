//! Shared by the publisher and the subscriber: the signaling socket, how a
//! session ends, and the H.264 codec both negotiate.

use std::net::{SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use reallive_signaling::{ErrorCode, Message};
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::StreamError;
use crate::net::{NetError, Network, Target, refuse_redirect};

pub(crate) fn signaling_url(server: &str) -> Result<String, StreamError> {
    let rest = server
        .strip_prefix("http://")
        .map(|r| ("ws://", r))
        .or_else(|| server.strip_prefix("https://").map(|r| ("wss://", r)))
        .ok_or_else(|| {
            StreamError::InvalidConfig(format!(
                "the server URL must start with http:// or https://: {server}"
            ))
        })?;
    let host = rest.1.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(StreamError::InvalidConfig(format!(
            "the server URL must be http://host[:port]: {server}"
        )));
    }
    Ok(format!("{}{host}/ws/signaling", rest.0))
}

/// The local address the OS would use to reach `server`: the host
/// candidate to offer. Binding every interface would offer addresses the
/// relay cannot reach back, and skip loopback, which it can.
pub(crate) fn local_ip_towards(ws_url: &str) -> Option<SocketAddr> {
    let hostport = ws_url.split("://").nth(1)?.split('/').next()?;
    let target = hostport.to_socket_addrs().ok()?.next()?;
    let probe = UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .ok()?;
    probe.connect(target).ok()?;
    let mut local = probe.local_addr().ok()?;
    local.set_port(0);
    Some(local)
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn next_message(ws: &mut Ws, within: Duration) -> Result<Message, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "signaling: no answer".to_string())?;
        match m {
            Some(Ok(WsMessage::Text(t))) => {
                return Message::parse(t.as_str()).map_err(|e| format!("signaling: {e}"));
            }
            Some(Ok(WsMessage::Close(_))) | None => return Err("signaling closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("signaling: {e}")),
        }
    }
}

/// Why one connection ended.
pub(crate) enum Ended {
    /// Asked to stop.
    Stopped,
    /// The server refused the credentials; retry slowly.
    Refused(String),
    /// Anything else; retry with backoff.
    Failed(String),
    /// Retrying cannot help (an untrusted certificate, a redirect to
    /// `https://`): the session ends for good.
    Fatal(String),
}

impl From<NetError> for Ended {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Untrusted(s) => Ended::Fatal(s),
            NetError::Io(s) => Ended::Failed(s),
        }
    }
}

impl Ended {
    /// An `error` message from the server, as a reason to end.
    fn from_error(code: ErrorCode, message: String) -> Ended {
        match code {
            ErrorCode::Unauthorized | ErrorCode::NotFound => Ended::Refused(message),
            _ => Ended::Failed(format!("server: {message}")),
        }
    }
}

/// Connects to `ws_url` over `net` and sends `join`; the room's first
/// `camera-status` means we are in.
pub(crate) async fn join(net: &Network, ws_url: &str, join: &Message) -> Result<Ws, Ended> {
    let target = Target::parse(ws_url).map_err(Ended::Fatal)?;
    let stream = net.connect(&target).await?;
    let upgrade = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(ws_url, stream),
    );
    let mut ws = match upgrade.await {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r)))
            if !target.tls && r.status().is_redirection() =>
        {
            let location = r.headers().get("location").and_then(|l| l.to_str().ok());
            return Err(refuse_redirect(&target.origin(), location).into());
        }
        Ok(Err(e)) => return Err(Ended::Failed(format!("signaling {ws_url}: {e}"))),
        Err(_) => return Err(Ended::Failed(format!("signaling {ws_url}: timed out"))),
    };
    if let Err(e) = ws.send(WsMessage::Text(join.to_json().into())).await {
        return Err(Ended::Failed(format!("signaling: {e}")));
    }
    match next_message(&mut ws, Duration::from_secs(10)).await {
        Ok(Message::CameraStatus { .. }) => Ok(ws),
        Ok(Message::Error { code, message, .. }) => Err(Ended::from_error(code, message)),
        Ok(other) => Err(Ended::Failed(format!(
            "unexpected answer to join: {}",
            other.to_json()
        ))),
        Err(e) => Err(Ended::Failed(e)),
    }
}

/// Waits until the server ends the session: an `error`, or the socket
/// closing. Cancel-safe: nothing is lost when another branch wins.
pub(crate) async fn until_server_ends(ws: &mut Ws) -> Ended {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(t))) => {
                if let Ok(Message::Error { code, message, .. }) = Message::parse(t.as_str()) {
                    return Ended::from_error(code, message);
                }
            }
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                return Ended::Failed("signaling closed".into());
            }
            Some(Ok(_)) => {}
        }
    }
}

/// H.264 constrained baseline, packetization mode 1, with NACK, PLI and
/// FIR (and RTX beside it, see [`media_engine`]): what the pusher sends and the relay forwards.
pub(crate) fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .to_owned(),
        rtcp_feedback: ["nack", "nack pli", "ccm fir"]
            .iter()
            .map(|f| {
                let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
                RTCPFeedback {
                    typ: typ.to_owned(),
                    parameter: parameter.to_owned(),
                }
            })
            .collect(),
    }
}

/// Opus as WebRTC names it (48 kHz, "2 channels" whatever is coded), with
/// in-band FEC: the pusher's microphone, and what the relay forwards.
pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: Vec::new(),
    }
}

/// A media engine knowing [`h264_codec`] (with RTX) and [`opus_codec`],
/// and the default interceptors for them.
pub(crate) fn media_engine() -> Result<(MediaEngine, Registry), Ended> {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: h264_codec(),
                payload_type: 102,
            },
            RtpCodecKind::Video,
        )
        .map_err(|e| Ended::Failed(format!("registering H.264: {e}")))?;
    // RFC 4588 retransmission for it: the relay (str0m) resends lost
    // packets only on an RTX stream, so without it a NACK goes unanswered
    // and every loss costs the rest of a GOP.
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_RTX.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: "apt=102".to_owned(),
                    rtcp_feedback: Vec::new(),
                },
                payload_type: 103,
            },
            RtpCodecKind::Video,
        )
        .map_err(|e| Ended::Failed(format!("registering RTX: {e}")))?;
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(|e| Ended::Failed(format!("registering Opus: {e}")))?;
    let registry = register_default_interceptors(Registry::new(), &mut media)
        .map_err(|e| Ended::Failed(format!("interceptors: {e}")))?;
    Ok((media, registry))
}

/// How an offer reaches the relay and a session ends: the signaling
/// socket, or WHIP/WHEP (an HTTP POST with a Bearer credential, and a
/// DELETE on the `Location` it returns).
pub(crate) enum Channel {
    /// Joined to the camera's room on `/ws/signaling`.
    Ws { ws: Box<Ws>, camera: i64 },
    /// WHIP (`/whip/{id}`, the stream key) or WHEP (`/whep/{id}`, a token).
    Http {
        net: Network,
        target: Target,
        bearer: String,
        location: Option<String>,
    },
}

impl Channel {
    /// Joins the room with `join` (which names the camera, role and
    /// credential).
    pub(crate) async fn ws(net: &Network, ws_url: &str, join: &Message) -> Result<Channel, Ended> {
        let camera = match join {
            Message::JoinRoom { camera_id, .. } => *camera_id,
            _ => return Err(Ended::Failed("not a join-room message".into())),
        };
        Ok(Channel::Ws {
            ws: Box::new(self::join(net, ws_url, join).await?),
            camera,
        })
    }

    /// WHIP or WHEP at `url`; nothing is sent until the offer.
    pub(crate) fn http(net: &Network, url: &str, bearer: &str) -> Result<Channel, Ended> {
        Ok(Channel::Http {
            net: net.clone(),
            target: Target::parse(url).map_err(Ended::Fatal)?,
            bearer: format!("Bearer {bearer}"),
            location: None,
        })
    }

    /// Sends the offer and returns the answer SDP.
    pub(crate) async fn exchange(&mut self, sdp: String) -> Result<String, Ended> {
        match self {
            Channel::Ws { ws, camera } => {
                let msg = Message::Offer {
                    camera_id: *camera,
                    sdp,
                };
                ws.send(WsMessage::Text(msg.to_json().into()))
                    .await
                    .map_err(|e| Ended::Failed(format!("signaling: {e}")))?;
                loop {
                    match next_message(ws, Duration::from_secs(10))
                        .await
                        .map_err(Ended::Failed)?
                    {
                        Message::Answer { sdp, .. } => return Ok(sdp),
                        Message::Error { code, message, .. } => {
                            return Err(Ended::from_error(code, message));
                        }
                        _ => continue,
                    }
                }
            }
            Channel::Http {
                net,
                target,
                bearer,
                location,
            } => {
                let path = &target.path;
                let r = crate::http1::request(
                    net,
                    target,
                    "POST",
                    path,
                    &[
                        ("Authorization", bearer.as_str()),
                        ("Content-Type", "application/sdp"),
                    ],
                    sdp.as_bytes(),
                )
                .await?;
                let body = || {
                    String::from_utf8_lossy(&r.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                };
                match r.status {
                    201 => {
                        *location = r.header("location").map(str::to_string);
                        String::from_utf8(r.body.clone())
                            .map_err(|_| Ended::Failed(format!("{path}: the answer is not UTF-8")))
                    }
                    401 | 403 | 404 => Err(Ended::Refused(format!(
                        "{path} answered {}: {}",
                        r.status,
                        body()
                    ))),
                    s => Err(Ended::Failed(format!("{path} answered {s}: {}", body()))),
                }
            }
        }
    }

    /// The next thing the server says that ends the session. Cancel-safe.
    pub(crate) async fn ended(&mut self) -> Ended {
        match self {
            Channel::Ws { ws, .. } => until_server_ends(ws).await,
            // WHIP/WHEP have no channel back: the peer connection tells.
            Channel::Http { .. } => std::future::pending().await,
        }
    }

    /// Says goodbye: leave-room, or DELETE the WHIP/WHEP session.
    pub(crate) async fn close(&mut self) {
        match self {
            Channel::Ws { ws, camera } => {
                let leave = Message::LeaveRoom { camera_id: *camera };
                let _ = ws.send(WsMessage::Text(leave.to_json().into())).await;
                let _ = (**ws).close(None).await;
            }
            Channel::Http {
                net,
                target,
                location,
                bearer,
            } => {
                if let Some(loc) = location.take() {
                    let _ = crate::http1::request(
                        net,
                        target,
                        "DELETE",
                        &loc,
                        &[("Authorization", bearer.as_str())],
                        b"",
                    )
                    .await;
                }
            }
        }
    }
}
