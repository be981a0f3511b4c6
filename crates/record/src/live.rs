//! Where a camera run's frames go live: [`LiveOutlet`] and [`LiveFeed`],
//! which `reallive-node` implements over its relay, so this crate knows no
//! relay and no signaling tables.

use std::fmt::Debug;

use reallive_core::{AudioFrame, EncodedFrame};

use crate::BoxFuture;

/// Opens a camera's live feed.
pub trait LiveOutlet: Send + Sync + Debug {
    /// Camera `camera` is live from now on: viewers see it online until
    /// the feed is closed.
    fn open(&self, camera: i64) -> BoxFuture<'_, Box<dyn LiveFeed>>;
}

/// One camera's frames to its live viewers.
pub trait LiveFeed: Send + Debug {
    /// Offers a frame; never blocks. A frame the viewers have no room for
    /// is dropped, with every delta up to the next keyframe.
    fn offer(&mut self, frame: &EncodedFrame);

    /// Offers a packet of the camera's sound (on its frames' clock); never
    /// blocks. A feed without live sound ignores it.
    fn offer_audio(&mut self, _frame: &AudioFrame) {}

    /// The camera is offline again.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}
