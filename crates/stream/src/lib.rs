//! Moving encoded frames between machines.
//!
//! [`Streamer`] publishes a camera's frames (the pusher); [`Receiver`]
//! subscribes to one (the puller). Both sit where data crosses into Rust as
//! encoded access units, and both are dyn-compatible.
//!
//! - [`WebRtcPublisher`]: publishes over `/ws/signaling` or WHIP with the
//!   `webrtc` crate, forwards the relay's keyframe requests to the capture (at most
//!   one per 500 ms), and reconnects with [`Backoff`] (1 s to 60 s, ±20 %).
//! - [`WebRtcSubscriber`]: the other way: joins as a viewer over
//!   `/ws/signaling` or WHEP, turns RTP back
//!   into access units, drops to the next keyframe on loss and asks for one
//!   with PLI (at most every 500 ms), and reconnects.
//!
//! # Threading
//!
//! `start` spawns onto the caller's tokio runtime and returns at once;
//! frames move through bounded channels.

mod assemble;
mod http1;
mod login;
mod publish;
mod signal;
mod subscribe;

use std::fmt::Debug;

pub use login::{Credential, Token, login};
pub use publish::{
    MIN_FORCED_KEYFRAME_INTERVAL, PublishConfig, PublishSession, PublishState, WebRtcPublisher,
};
pub use subscribe::{SubscribeConfig, SubscribeSession, SubscribeState, WebRtcSubscriber};

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
    /// A setting is malformed (a URL, an id).
    #[error("{0}")]
    InvalidConfig(String),
}

impl StreamError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StreamError::Unauthorized => ErrorKind::PermissionDenied,
            StreamError::Unavailable(_) => ErrorKind::Unavailable,
            StreamError::InvalidConfig(_) => ErrorKind::InvalidArgument,
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
