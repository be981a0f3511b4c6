//! [`IceServer`]: a STUN or TURN server a WebRTC client is told to use.

// Handed out in the API's live answers and read from the servers' config
// files; the pusher and puller will take the same.
/// A STUN or TURN server handed to clients.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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

/// Never shows the TURN credential.
impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential.as_ref().map(|_| "***"))
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::IceServer;

    #[test]
    fn debug_hides_the_turn_credential() {
        let s = IceServer {
            urls: vec!["turn:192.0.2.1:3478".into()],
            username: Some("cam".into()),
            credential: Some("turn-secret".into()),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("turn-secret"), "{shown}");
        assert!(shown.contains("turn:192.0.2.1"), "{shown}");
    }
}
