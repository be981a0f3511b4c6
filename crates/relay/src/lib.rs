//! The WebRTC relay (SFU) at the heart of `reallive-server`.
//!
//! Each published camera enters once, over WebRTC or WHIP, and leaves to
//! every subscriber (browsers, pullers, WHEP clients) without decoding:
//! RTP is forwarded, subscriber PLI/FIR requests are merged so a publisher
//! sees at most one keyframe request per 500 ms, and a slow subscriber's
//! bounded queue drops and asks for a keyframe instead of stalling others.
//! It will run on `str0m`: one UDP socket for all peers, no task per
//! connection, and a sans-IO forwarding core driven with `now`.
//!
//! This crate is an empty shell until the live-video work lands; it exists
//! so the workspace has its final shape and dependents can be wired.
//!
//! # Threading
//!
//! One tokio task owns the socket and the `str0m` state machines.

use reallive_core::ErrorKind;

/// The UDP port the relay listens on unless told otherwise.
pub const DEFAULT_RTC_PORT: u16 = 8189;

/// Errors from the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the relay's UDP port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

impl RelayError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RelayError::Bind { .. } => ErrorKind::Unavailable,
        }
    }
}
