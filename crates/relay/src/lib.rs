//! The WebRTC relay (SFU) at the heart of `reallive-server`.
//!
//! Each published camera enters once (signaling or WHIP) and leaves to
//! every subscriber (browsers, pullers, WHEP clients) without decoding:
//! str0m depacketizes each frame, and the relay writes it into every
//! subscriber's session. A Pi publishing over a home uplink can afford one
//! upload, not one per viewer, and a server that never decodes scales with
//! bandwidth rather than CPU. See `docs/design/live.md`.
//!
//! Three rules keep one slow or new viewer from hurting the others:
//! subscriber PLI/FIR requests are merged so a publisher sees at most one
//! keyframe request per [`MIN_KEYFRAME_REQUEST_INTERVAL`] (an encoder
//! flooded with requests sends nothing but keyframes); a subscriber only
//! ever starts at a keyframe (anything before it would not decode); and a
//! subscriber that cannot keep up drops to the next keyframe instead of
//! stalling the fan-out.
//!
//! - [`Relay`]: the running relay, started with a [`RelayConfig`]. One UDP
//!   socket serves every peer, so a firewall needs one port opened.
//! - [`Core`]: the sans-IO state: every peer's `str0m::Rtc`, the rooms and
//!   the forwarding decisions, with [`Transmit`]s and [`RelayEvent`]s to
//!   drain. Tests drive it directly, with scripted times.
//! - [`KeyframeMerger`] and [`Gate`]: the keyframe policy, table-tested.
//! - [`gop`]: each camera's current GOP, and a new viewer's catch-up
//!   from its keyframe to the live edge (an instant first frame).
//! - [`CameraCounters`] and [`PeerCounters`]: what the metrics page shows.
//!
//! # Threading
//!
//! One tokio task owns the socket and every `str0m` state machine: no task,
//! socket or unbounded queue per peer, so the relay's memory is bounded by
//! its peers and its queues, whatever the network does. Callers talk to it
//! through a bounded command queue ([`Relay::accept`] waits for room in it;
//! [`Relay::offer_local`] never waits and drops instead) and get events on
//! a bounded queue. The task stops when the shutdown token fires.
//!
//! # Example
//!
//! ```no_run
//! use reallive_relay::{PeerRole, Relay, RelayConfig, RelayEvent};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo(offer: String) -> Result<(), reallive_relay::RelayError> {
//! let config = RelayConfig { bind: "127.0.0.1:8189".parse().unwrap(), public_ips: vec![], ice_tcp: Some("127.0.0.1:8190".parse().unwrap()), gop_cache_bytes: reallive_relay::DEFAULT_GOP_CACHE_BYTES, max_transcodes: 1 };
//! let (relay, mut events) = Relay::start(config, CancellationToken::new()).await?;
//! // The SDP answer goes back to the publisher over signaling or WHIP.
//! let accepted = relay.accept(1, PeerRole::Publisher, offer).await?;
//! let _answer = accepted.answer;
//! while let Some(event) = events.recv().await {
//!     if let RelayEvent::Media { camera, flowing } = event {
//!         // The server tells the signaling hub, which tells the viewers.
//!         let _ = (camera, flowing);
//!     }
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod core;
pub mod gop;
pub mod keyframe;
mod shell;
mod tcp;
mod udp;

use std::net::SocketAddr;

use reallive_core::ErrorKind;

pub use crate::core::{
    CameraCounters, Core, PeerCounters, PeerRole, RelayEvent, SessionId, TRANSCODE_LINGER,
    Transmit, default_max_transcodes,
};
pub use gop::DEFAULT_GOP_CACHE_BYTES;
pub use keyframe::{Gate, KeyframeMerger, MIN_KEYFRAME_REQUEST_INTERVAL};
pub use shell::{Accepted, Relay, RelayConfig, TranscodeWant};

/// The UDP port the relay listens on unless told otherwise.
pub const DEFAULT_RTC_PORT: u16 = 8189;

/// Errors from the relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the relay's UDP socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SDP offer or a candidate was refused; the message says why.
    #[error("{0}")]
    BadSdp(String),
    /// The viewer cannot play the camera's stream, and the node already
    /// runs as many live transcodes as it may.
    #[error(
        "this browser cannot play this camera's video as it is, and the server is already \
         converting {limit} camera(s) for browsers, its limit"
    )]
    TranscodeLimit {
        /// The node's limit.
        limit: usize,
    },
    /// No such session (closed, or never existed).
    #[error("no such relay session")]
    NoSession,
    /// The relay task has stopped.
    #[error("the relay has stopped")]
    Stopped,
    /// A bug or an unexpected state.
    #[error("{0}")]
    Internal(String),
}

impl RelayError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RelayError::Bind { .. } | RelayError::Stopped | RelayError::TranscodeLimit { .. } => {
                ErrorKind::Unavailable
            }
            RelayError::BadSdp(_) => ErrorKind::InvalidArgument,
            RelayError::NoSession => ErrorKind::NotFound,
            RelayError::Internal(_) => ErrorKind::Internal,
        }
    }
}
