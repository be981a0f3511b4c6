//! Moving encoded frames between machines.
//!
//! [`Streamer`] publishes a camera's frames (the pusher); [`Receiver`]
//! subscribes to one (the puller). Both sit where data crosses into Rust as
//! encoded access units, and both are dyn-compatible. The WebRTC backends,
//! on the `webrtc` crate over WS signaling or WHIP/WHEP, and the RTSP-out
//! backend arrive with the live-video and puller work.
//!
//! # Threading
//!
//! `start` spawns onto the caller's tokio runtime and returns at once;
//! frames move through bounded channels.

use std::fmt::Debug;

use reallive_core::{ErrorKind, FrameReceiver, FrameSender};

/// Errors from publishing or subscribing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The server refused the credentials.
    #[error("the server refused the credentials")]
    Unauthorized,
    /// The server or network is unreachable.
    #[error("{0}")]
    Unavailable(String),
}

impl StreamError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StreamError::Unauthorized => ErrorKind::PermissionDenied,
            StreamError::Unavailable(_) => ErrorKind::Unavailable,
        }
    }
}

/// A running publish or subscribe session; dropping it ends the session.
pub trait Session: Send + Debug {}

/// Publishes encoded frames to a server.
pub trait Streamer: Send + Sync + Debug {
    /// Starts publishing what arrives on `frames`.
    fn start(&self, frames: FrameReceiver) -> Result<Box<dyn Session>, StreamError>;
}

/// Subscribes to a camera on a server.
pub trait Receiver: Send + Sync + Debug {
    /// Starts receiving, pushing access units into `out`.
    fn start(&self, out: FrameSender) -> Result<Box<dyn Session>, StreamError>;
}
