//! The `/ws/signaling` protocol.
//!
//! Clients (pushers, pullers, browsers) and the server exchange JSON
//! messages tagged by `type` (`join-room`, `leave-room`, `offer`, `answer`,
//! `ice-candidate`, `camera-status`, `error`) to set up WebRTC sessions in
//! which the server's relay is always the other peer. The contract lives in
//! `proto/signaling.schema.json` and `proto/signaling.md`; this crate will
//! hold its Rust types, the sans-IO room hub (rooms, roles, auth decisions)
//! and the thin WebSocket handler. Today it fixes the protocol version and
//! the message size limit both sides enforce.
//!
//! # Threading
//!
//! The hub is sans-IO: it takes `now` and inputs, and returns outputs.

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
}

impl SignalingError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SignalingError::TooLarge(_) => ErrorKind::ResourceExhausted,
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
