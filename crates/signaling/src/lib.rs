//! The `/ws/signaling` protocol and the hub that admits every live session.
//!
//! Clients (pushers, pullers, browsers) and the server exchange JSON
//! messages tagged by `type` (`join-room`, `leave-room`, `offer`, `answer`,
//! `ice-candidate`, `camera-status`, `error`) to set up WebRTC sessions in
//! which the server's relay is always the other peer. The contract lives in
//! `proto/signaling.schema.json` and `proto/signaling.md`; this crate is its
//! Rust side, shared by the server and by `reallive-stream`'s clients so
//! the two cannot disagree.
//!
//! - [`Message`]: the wire types. [`Message::parse`] refuses an oversized
//!   frame before parsing it, so a hostile client cannot make the server
//!   allocate for a huge JSON document.
//! - [`Hub`]: who is in which camera's room, as what, and what each message
//!   makes happen. Auth questions go to a [`Directory`] the server
//!   implements over its accounts; answers come back as [`Action`]s for the
//!   shell to carry out (send, close, hand an SDP to the relay, record a
//!   status). The WebSocket shell lives in `reallive-http`; WHIP and WHEP
//!   publishers report through [`Hub::external_publisher`], so one place
//!   decides what every camera's status is.
//!
//! # Threading
//!
//! The hub is sans-IO: it never touches a socket or a clock, and every call
//! returns at once. That is what lets its table tests script whole
//! sessions, and lets the server keep it behind one plain mutex shared by
//! all connections. [`Directory`] methods are called while that lock is
//! held, so they must answer from memory and never block.
//!
//! # Example
//!
//! ```
//! use reallive_signaling::{Action, Directory, Hub, Message, Status};
//!
//! /// One camera, 7, whose stream key is "k".
//! struct OneCamera;
//! impl Directory for OneCamera {
//!     fn camera_exists(&self, camera: i64) -> bool { camera == 7 }
//!     fn stream_key_matches(&self, camera: i64, key: &str) -> bool { camera == 7 && key == "k" }
//!     fn user_for_token(&self, _token: &str) -> Option<i64> { None }
//!     fn may_view(&self, _user: i64, _camera: i64) -> bool { false }
//! }
//!
//! let mut hub = Hub::new();
//! hub.connect(1);
//! let join = Message::parse(r#"{"type":"join-room","v":1,"camera_id":7,"role":"publisher","stream_key":"k"}"#);
//! let actions = hub.handle(1, join, &OneCamera);
//! assert!(actions.contains(&Action::Send(1, Message::CameraStatus { camera_id: 7, status: Status::Online })));
//! assert!(matches!(Message::parse("{}"), Err(_)));
//! ```

#![warn(missing_docs)]

pub mod hub;
mod ice;
pub mod message;

pub use hub::{Action, ConnId, Directory, Hub, Proof, Refusal};
pub use ice::IceServer;
pub use message::{ErrorCode, Message, Role, Status};

use reallive_core::ErrorKind;

/// The protocol version carried in every `join-room`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Messages larger than this are refused with an `error` and a close.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Errors from decoding and handling signaling messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalingError {
    /// The message exceeds [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not JSON, or not a message of this protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl SignalingError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SignalingError::TooLarge(_) => ErrorKind::ResourceExhausted,
            SignalingError::Malformed(_) => ErrorKind::InvalidArgument,
        }
    }
}

/// Refuses a message before parsing it if it is too large.
pub fn check_size(message: &[u8]) -> Result<(), SignalingError> {
    if message.len() > MAX_MESSAGE_BYTES {
        Err(SignalingError::TooLarge(message.len()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limit() {
        assert!(check_size(&vec![b' '; MAX_MESSAGE_BYTES]).is_ok());
        let err = check_size(&vec![b' '; MAX_MESSAGE_BYTES + 1]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
    }
}
