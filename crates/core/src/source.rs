//! [`FrameSource`]: a camera as code that must not link GStreamer sees it.
//!
//! `reallive-capture` implements it for each of its backends; the NVR's
//! supervised worker (`reallive-record`) starts, watches and stops sources
//! through it, so the recording domain builds and tests without GStreamer.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use crate::reencode::BoxError;
use crate::{AudioSender, FrameSender};

/// A boxed, sendable future, for the dyn-compatible traits here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A camera that can be started to push access units into a channel.
pub trait FrameSource: Send + Sync + Debug {
    /// The source, credentials redacted: for logs and status pages.
    fn describe(&self) -> String;

    /// Starts the source, pushing frames into `out` until it ends, fails
    /// or is stopped. Fails at once for what can be checked up front (a
    /// missing element or device, bad options); a failure after the start
    /// (a refused connection) comes from [`FrameSourceRun::wait`]. Error
    /// messages never hold a password.
    fn start_frames(&self, out: FrameSender) -> Result<Box<dyn FrameSourceRun>, BoxError>;

    /// Like [`start_frames`](Self::start_frames), and the source's audio
    /// (if it has any and can deliver it) into `audio`, stamped on the same
    /// clock as its video (`docs/design/audio.md`). A source without audio
    /// drops `audio`, which its receiver sees as the end of the audio.
    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: AudioSender,
    ) -> Result<Box<dyn FrameSourceRun>, BoxError> {
        drop(audio);
        self.start_frames(out)
    }
}

/// One start of a [`FrameSource`].
pub trait FrameSourceRun: Send {
    /// Resolves when the source ends (`Ok`) or fails (`Err`).
    /// Cancel-safe: it may be dropped and called again.
    fn wait(&mut self) -> BoxFuture<'_, Result<(), BoxError>>;

    /// Stops the source and releases it.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}
