//! [`IceServer`]: a STUN or TURN server a WebRTC client is told to use.

// Handed out in the API's live answers and read from the servers' config
// files; the pusher and puller will take the same.
/// A STUN or TURN server handed to clients.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:host:port` or `turn:host:port?transport=udp`.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential. Handed to signed-in clients, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
