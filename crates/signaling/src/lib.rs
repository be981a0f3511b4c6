//! The `/ws/signaling` protocol.
//!
//! Clients (pushers, pullers, browsers) and the server exchange JSON
//! messages tagged by `type` (`join-room`, `leave-room`, `offer`, `answer`,
//! `ice-candidate`, `camera-status`, `error`) to set up WebRTC sessions in
//! which the server's relay is always the other peer. The contract lives in
//! `proto/signaling.schema.json` and `proto/signaling.md`.
//!
//! - [`Message`]: the wire types, with [`Message::parse`] refusing oversized
//!   or malformed frames.
//! - [`Hub`]: the sans-IO room hub: rooms, roles and auth decisions (through
//!   a [`Directory`]), returning [`Action`]s for the shell to carry out. The
//!   WebSocket shell lives in `reallive-http`.
//!
//! # Threading
//!
//! The hub is sans-IO: it takes inputs and returns outputs, and never
//! touches a socket or a clock.
//!
//! # Example
//!
//! ```
//! use reallive_signaling::{Message, Role};
//!
//! let m = Message::parse(r#"{"type":"join-room","v":1,"camera_id":3,"role":"viewer","token":"t"}"#)?;
//! assert!(matches!(m, Message::JoinRoom { role: Role::Viewer, camera_id: 3, .. }));
//! # Ok::<(), reallive_signaling::SignalingError>(())
//! ```

pub mod hub;
mod ice;
pub mod message;

pub use hub::{Action, ConnId, Directory, Hub};
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
