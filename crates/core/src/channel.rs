use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{AudioFrame, EncodedFrame};

/// Creates a bounded frame channel holding at most `capacity` frames (at
/// least one).
///
/// The sending side never blocks: see [`FrameSender::offer`] for what happens
/// when the receiver falls behind.
pub fn frame_channel(capacity: usize) -> (FrameSender, FrameReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared::default());
    (
        FrameSender {
            tx,
            shared: shared.clone(),
        },
        FrameReceiver { rx, shared },
    )
}

#[derive(Debug, Default)]
struct Shared {
    /// Set when a frame was dropped; cleared when a keyframe gets through.
    dropping: AtomicBool,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// What [`FrameSender::offer`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Offer {
    /// Queued for the receiver.
    Sent,
    /// Dropped: the queue was full, or an earlier frame was dropped and this
    /// one is not a keyframe.
    Dropped,
    /// The receiver is gone; the producer should stop.
    Closed,
}

/// Counters shared by both ends of a frame channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Frames queued for the receiver.
    pub sent: u64,
    /// Frames dropped because the receiver fell behind.
    pub dropped: u64,
}

/// The producing end of a frame channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FrameSender {
    tx: mpsc::Sender<EncodedFrame>,
    shared: Arc<Shared>,
}

impl FrameSender {
    /// Queues `frame` without ever blocking.
    ///
    /// When the queue is full the frame is dropped, and so is every later
    /// frame until a keyframe fits: a decoder fed a P-frame whose reference
    /// was dropped would show corruption until the next keyframe anyway, so
    /// forwarding those frames only wastes the receiver's time. Safe to call
    /// from a GStreamer streaming thread.
    pub fn offer(&self, frame: EncodedFrame) -> Offer {
        let s = &self.shared;
        if s.dropping.load(Ordering::Acquire) && !frame.keyframe {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return Offer::Dropped;
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                s.dropping.store(false, Ordering::Release);
                s.sent.fetch_add(1, Ordering::Relaxed);
                Offer::Sent
            }
            Err(TrySendError::Full(_)) => {
                s.dropping.store(true, Ordering::Release);
                s.dropped.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped
            }
            Err(TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Whether the receiver has been dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Frames sent and dropped so far.
    pub fn stats(&self) -> ChannelStats {
        self.shared.stats()
    }
}

impl Shared {
    fn stats(&self) -> ChannelStats {
        ChannelStats {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The consuming end of a frame channel.
#[derive(Debug)]
pub struct FrameReceiver {
    rx: mpsc::Receiver<EncodedFrame>,
    shared: Arc<Shared>,
}

impl FrameReceiver {
    /// The next frame, or `None` once every sender is gone and the queue is
    /// empty. Cancel-safe: a frame is never lost when this loses a `select!`.
    pub async fn recv(&mut self) -> Option<EncodedFrame> {
        self.rx.recv().await
    }

    /// Like [`recv`](Self::recv), for a dedicated (non-async) thread.
    ///
    /// # Panics
    ///
    /// When called from inside an async runtime.
    pub fn blocking_recv(&mut self) -> Option<EncodedFrame> {
        self.rx.blocking_recv()
    }

    /// A frame if one is queued now.
    pub fn try_recv(&mut self) -> Option<EncodedFrame> {
        self.rx.try_recv().ok()
    }

    /// Frames sent and dropped so far.
    pub fn stats(&self) -> ChannelStats {
        self.shared.stats()
    }
}

/// Creates a bounded audio channel beside a [`frame_channel`]: at most
/// `capacity` packets (at least one).
///
/// Audio has no keyframes, so [`AudioSender::offer`] drops only the packet
/// that does not fit (a 20 ms gap, counted) and never blocks: audio can
/// never hold up its video.
pub fn audio_channel(capacity: usize) -> (AudioSender, AudioReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared::default());
    (
        AudioSender {
            tx,
            shared: shared.clone(),
        },
        AudioReceiver { rx, shared },
    )
}

/// The producing end of an audio channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AudioSender {
    tx: mpsc::Sender<AudioFrame>,
    shared: Arc<Shared>,
}

impl AudioSender {
    /// Queues `frame` without ever blocking; a full queue drops it.
    pub fn offer(&self, frame: AudioFrame) -> Offer {
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
                Offer::Sent
            }
            Err(TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped
            }
            Err(TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Whether the receiver has been dropped.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Packets sent and dropped so far.
    pub fn stats(&self) -> ChannelStats {
        self.shared.stats()
    }
}

/// The consuming end of an audio channel.
#[derive(Debug)]
pub struct AudioReceiver {
    rx: mpsc::Receiver<AudioFrame>,
    shared: Arc<Shared>,
}

impl AudioReceiver {
    /// The next packet, or `None` once every sender is gone and the queue
    /// is empty. Cancel-safe.
    pub async fn recv(&mut self) -> Option<AudioFrame> {
        self.rx.recv().await
    }

    /// [`recv`](Self::recv) on `audio` if there is one, and never
    /// otherwise: for a `select!` arm over an optional audio track.
    /// Cancel-safe.
    pub async fn recv_from(audio: Option<&mut Self>) -> Option<AudioFrame> {
        match audio {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    /// A packet if one is queued now.
    pub fn try_recv(&mut self) -> Option<AudioFrame> {
        self.rx.try_recv().ok()
    }

    /// Packets sent and dropped so far.
    pub fn stats(&self) -> ChannelStats {
        self.shared.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, CodecParameters};
    use bytes::Bytes;

    fn frame(n: i64, keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            data: Bytes::from(vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }]),
            pts_90k: n * 3000,
            dts_90k: n * 3000,
            duration_90k: Some(3000),
            keyframe,
            params: Arc::new(CodecParameters::new(Codec::H264)),
        }
    }

    /// The overflow policy, frame by frame: with room for 2, a GOP of
    /// K P P P K P, where the receiver reads nothing until the end.
    #[test]
    fn overflow_drops_until_next_keyframe() {
        let (tx, mut rx) = frame_channel(2);
        let script = [
            (0, true, Offer::Sent),     // K fits
            (1, false, Offer::Sent),    // P fits: queue full now
            (2, false, Offer::Dropped), // overflow
            (3, false, Offer::Dropped), // still dropping, though...
        ];
        for (n, key, want) in script {
            assert_eq!(tx.offer(frame(n, key)), want, "frame {n}");
        }
        // ...the receiver catches up: P frames are still refused because
        // their reference (frame 2) is gone.
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(0));
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(3000));
        assert_eq!(tx.offer(frame(4, false)), Offer::Dropped);
        // The next keyframe gets through and ends the dropping.
        assert_eq!(tx.offer(frame(5, true)), Offer::Sent);
        assert_eq!(tx.offer(frame(6, false)), Offer::Sent);
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(15000));
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(18000));
        assert_eq!(
            rx.stats(),
            ChannelStats {
                sent: 4,
                dropped: 3
            }
        );
    }

    #[test]
    fn keyframe_that_does_not_fit_keeps_dropping() {
        let (tx, mut rx) = frame_channel(1);
        assert_eq!(tx.offer(frame(0, true)), Offer::Sent);
        assert_eq!(tx.offer(frame(1, true)), Offer::Dropped);
        assert_eq!(tx.offer(frame(2, false)), Offer::Dropped);
        assert!(rx.try_recv().is_some());
        assert_eq!(tx.offer(frame(3, false)), Offer::Dropped);
        assert_eq!(tx.offer(frame(4, true)), Offer::Sent);
        assert_eq!(tx.stats().dropped, 3);
    }

    #[test]
    fn closed_receiver_is_reported() {
        let (tx, rx) = frame_channel(4);
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.offer(frame(0, true)), Offer::Closed);
    }

    #[test]
    fn audio_overflow_drops_only_what_does_not_fit() {
        let (tx, mut rx) = audio_channel(2);
        let params = Arc::new(crate::AudioParameters::opus(2));
        let pkt = |n: i64| AudioFrame {
            data: Bytes::from_static(&[0xfc]),
            pts_90k: n * 1800,
            duration_90k: 1800,
            params: params.clone(),
        };
        assert_eq!(tx.offer(pkt(0)), Offer::Sent);
        assert_eq!(tx.offer(pkt(1)), Offer::Sent);
        assert_eq!(tx.offer(pkt(2)), Offer::Dropped);
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(0));
        // No keyframe to wait for: the next packet that fits goes through.
        assert_eq!(tx.offer(pkt(3)), Offer::Sent);
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(1800));
        assert_eq!(rx.try_recv().map(|f| f.pts_90k), Some(5400));
        assert_eq!(
            rx.stats(),
            ChannelStats {
                sent: 3,
                dropped: 1
            }
        );
        drop(rx);
        assert_eq!(tx.offer(pkt(4)), Offer::Closed);
    }

    #[tokio::test]
    async fn async_receiver_sees_end_of_stream() {
        let (tx, mut rx) = frame_channel(4);
        std::thread::spawn(move || {
            for n in 0..3 {
                assert_eq!(tx.offer(frame(n, n == 0)), Offer::Sent);
            }
        });
        let mut got = Vec::new();
        while let Some(f) = rx.recv().await {
            got.push(f.pts_90k);
        }
        assert_eq!(got, vec![0, 3000, 6000]);
    }
}
