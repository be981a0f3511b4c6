//! Moving encoded frames between machines: the pusher's publishing and the
//! puller's subscribing, as WebRTC clients (the `webrtc` crate) of a
//! RealLive server's relay.
//!
//! # Main types
//!
//! - [`Streamer`] publishes a camera's frames; [`Receiver`] subscribes to
//!   one. Both sit where data crosses into Rust as encoded access units,
//!   both are dyn-compatible, and both start a [`Session`] that reports its
//!   [`SessionState`] and ends when dropped. Apps hold a `Box<dyn Streamer>`
//!   or `Box<dyn Receiver>`, so another transport plugs in without touching
//!   them.
//! - [`WebRtcPublisher`] (a [`Streamer`]): publishes over `/ws/signaling`
//!   or WHIP, forwards the relay's keyframe requests to the capture (at most
//!   one per 500 ms), and reconnects with backoff from 1 s to 60 s (±20 %).
//! - [`WebRtcSubscriber`] (a [`Receiver`]): joins as a viewer over
//!   `/ws/signaling` or WHEP, turns RTP back into access units, drops to
//!   the next keyframe on loss and asks for one with PLI (at most every
//!   500 ms), and reconnects with backoff from 1 s to 30 s.
//! - [`ReconnectingSession`]: what both start. One reconnect driver serves
//!   both: it connects, waits with [`reallive_core::Backoff`] after a
//!   failure, retries at the ceiling while the server refuses the
//!   credential, and starts the backoff over after a healthy connection.
//! - [`Network`]: whom a client trusts over `https://` and `wss://` (the
//!   system's roots, a private CA, or one pinned certificate) and the ICE
//!   servers it adds to the server's. A certificate it does not trust ends
//!   a session for good ([`SessionState::Failed`]); nothing falls back to
//!   clear text.
//! - [`login`] and [`Credential`]: a viewer's token, replaceable while
//!   sessions run. [`Login::sign_in`] fills a credential from a password
//!   (or a given token) and keeps it fresh, retrying slowly while the
//!   password is refused.
//! - With feature `cli`, `PublishFlags` and `LoginFlags`: the flags that
//!   say where to publish and how to sign in, as clap `Args` groups.
//!
//! # Threading
//!
//! `start` spawns onto the caller's tokio runtime (outside one it fails
//! with [`StreamError::Unavailable`]) and returns at once. Frames move
//! through bounded channels: a subscriber drops to the next keyframe when
//! its reader falls behind, and a publisher's capture does the same when
//! the network does. State changes arrive on a `tokio::sync::watch`
//! channel.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use reallive_stream::{PublishConfig, SessionState, Streamer, WebRtcPublisher};
//!
//! # async fn example(frames: reallive_core::FrameReceiver) -> Result<(), reallive_stream::StreamError> {
//! let streamer: Box<dyn Streamer> = Box::new(WebRtcPublisher::new(PublishConfig {
//!     server: "http://127.0.0.1:8080".into(),
//!     camera: 1,
//!     key: "the camera's stream key".into(),
//!     whip: None,
//!     network: reallive_stream::Network::default(),
//!     // Ask the capture for a keyframe here.
//!     keyframe: Arc::new(|| {}),
//! }));
//! let session = streamer.start(frames)?;
//! let mut state = session.state();
//! while state.changed().await.is_ok() {
//!     if *state.borrow() == SessionState::Live {
//!         break;
//!     }
//! }
//! // Dropping the session leaves the room and stops.
//! drop(session);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod align;
mod assemble;
#[cfg(feature = "cli")]
mod cli;
mod http1;
mod login;
mod net;
mod peer;
mod publish;
mod reconnect;
mod signal;
mod subscribe;

use std::fmt::Debug;

#[cfg(feature = "cli")]
pub use cli::{LoginFlags, NetworkFlags, PublishFlags, SECRET_FLAGS};
pub use login::{Credential, Login, SignedIn, Token, login};
pub use net::Network;
pub use publish::{MIN_FORCED_KEYFRAME_INTERVAL, PublishConfig, WebRtcPublisher};
pub use reconnect::{ReconnectingSession, SessionState};
pub use subscribe::{SubscribeConfig, WebRtcSubscriber};

use reallive_core::{ErrorKind, FrameReceiver, FrameSender};
use tokio::sync::watch;

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
    /// The server's certificate is not trusted, TLS failed, or a
    /// clear-text URL was redirected to `https://`: retrying cannot help,
    /// and the client never falls back to clear text.
    #[error("{0}")]
    Untrusted(String),
}

impl StreamError {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StreamError::Unauthorized => ErrorKind::PermissionDenied,
            StreamError::Unavailable(_) => ErrorKind::Unavailable,
            StreamError::InvalidConfig(_) | StreamError::Untrusted(_) => ErrorKind::InvalidArgument,
        }
    }
}

/// A running publish or subscribe session; dropping it ends the session.
pub trait Session: Send + Sync + Debug {
    /// The current state, and changes to it; [`SessionState::Stopped`] or
    /// [`SessionState::Failed`] is the last. An app waits on it for `Live`, reports `Refused`, and after
    /// [`stop`](Session::stop) waits for `Stopped` to let the session say
    /// goodbye to the server (`close` on a `dyn Session` does both).
    fn state(&self) -> watch::Receiver<SessionState>;

    /// Ends the session now (dropping it does too).
    fn stop(&self);

    /// Frames moved over all connections so far: sent by a publisher,
    /// delivered by a subscriber.
    fn frames(&self) -> u64;
}

impl dyn Session {
    /// Stops the session and waits, at most `grace`, for it to say goodbye
    /// to the server (leave the room, end the WHIP or WHEP resource) and
    /// reach [`SessionState::Stopped`].
    pub async fn close(&self, grace: std::time::Duration) {
        self.stop();
        let mut state = self.state();
        let _ = tokio::time::timeout(grace, state.wait_for(SessionState::is_final)).await;
    }
}

/// The reason the first of `sessions` ended for good
/// ([`SessionState::Failed`]: an untrusted certificate, say); pending while
/// none has, and for ever with none. An app selects on it beside its own
/// shutdown, to stop with that reason.
pub async fn first_failure(sessions: &[Box<dyn Session>]) -> String {
    let waits: Vec<_> = sessions
        .iter()
        .map(|s| {
            let mut state = s.state();
            Box::pin(async move {
                loop {
                    if let SessionState::Failed(why) = &*state.borrow_and_update() {
                        return why.clone();
                    }
                    if state.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            })
        })
        .collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(waits).await.0
}

/// Publishes encoded frames to a server.
pub trait Streamer: Send + Sync + Debug {
    /// Starts publishing what arrives on `frames`, on the current tokio
    /// runtime, and returns at once. The session reconnects on its own
    /// until it is stopped or dropped, or `frames` closes.
    fn start(&self, frames: FrameReceiver) -> Result<Box<dyn Session>, StreamError>;

    /// Like [`start`](Self::start), with the source's audio as a second
    /// track. A streamer that carries no audio drops `audio`.
    fn start_with_audio(
        &self,
        frames: FrameReceiver,
        audio: reallive_core::AudioReceiver,
    ) -> Result<Box<dyn Session>, StreamError> {
        drop(audio);
        self.start(frames)
    }
}

/// Subscribes to a camera on a server.
pub trait Receiver: Send + Sync + Debug {
    /// Starts receiving on the current tokio runtime, pushing access units
    /// into `out` (each connection's first is a keyframe), and returns at
    /// once. The session reconnects on its own until it is stopped or
    /// dropped, or `out`'s reader goes away.
    fn start(&self, out: FrameSender) -> Result<Box<dyn Session>, StreamError>;

    /// Like [`start`](Self::start), asking for the camera's audio too,
    /// pushed into `audio` on the frames' timeline. A receiver that carries
    /// no audio drops `audio`.
    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: reallive_core::AudioSender,
    ) -> Result<Box<dyn Session>, StreamError> {
        drop(audio);
        self.start(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Debug)]
    struct Fake(watch::Sender<SessionState>);

    impl Session for Fake {
        fn state(&self) -> watch::Receiver<SessionState> {
            self.0.subscribe()
        }
        fn stop(&self) {}
        fn frames(&self) -> u64 {
            0
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_failure_names_the_session_that_failed_and_waits_otherwise() {
        let (a, b) = (
            watch::channel(SessionState::Live).0,
            watch::channel(SessionState::Connecting).0,
        );
        let sessions: Vec<Box<dyn Session>> =
            vec![Box::new(Fake(a.clone())), Box::new(Fake(b.clone()))];
        let pending = tokio::time::timeout(Duration::from_secs(5), first_failure(&sessions)).await;
        assert!(pending.is_err(), "nothing failed: it waits");
        let (why, ()) = tokio::join!(first_failure(&sessions), async {
            a.send_replace(SessionState::Stopped);
            b.send_replace(SessionState::Failed("certificate not trusted".into()));
        });
        assert_eq!(why, "certificate not trusted");
        assert!(
            tokio::time::timeout(Duration::from_secs(5), first_failure(&[]))
                .await
                .is_err(),
            "no sessions: for ever"
        );
    }
}
