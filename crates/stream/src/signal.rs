//! Shared by the publisher and the subscriber: the signaling socket.

use std::net::{SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::time::Duration;

use futures::StreamExt as _;
use reallive_signaling::Message;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::StreamError;

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
