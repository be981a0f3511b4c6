//! [`IceServer`]: a STUN or TURN server a WebRTC client is told to use.

/// A STUN or TURN server handed to clients: in the API's live answers, the
/// servers' config files, and (with credentials) to the pusher and puller.
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
