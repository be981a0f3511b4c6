//! The low-resolution decoder for motion detection: H.264 access units in,
//! small GRAY8 pictures out, at a low, steady rate.
//!
//! [`GrayDecoder`], a stream's own: `appsrc ! h264parse ! decoder (one
//! thread) ! videorate ! videoscale ! videoconvert !
//! video/x-raw,format=GRAY8,width=W,height=H,framerate=F/1 ! appsink`. The
//! height keeps the picture's aspect (even, at least 2). Feed it the
//! camera's sub-stream when there is one; the main stream works too, at
//! the cost of decoding every frame.
//!
//! Never blocks the caller: the source drops when full, and so does the
//! sink, whose newest pictures wait for [`GrayDecoder::pull`].
//!
//! A stream that is decoded at its keyframes only (a main stream above
//! 720p, when the camera has no sub-stream) needs no decoder of its own:
//! each keyframe decodes alone. [`KeyframeDecoder`] decodes many cameras'
//! keyframes in turn on one decoder (one thread, one small picture pool),
//! and hands each picture back to its camera's [`KeyframeHandle`], so
//! memory does not grow with cameras. See [`start_gray_decoder`].

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video::prelude::*;
use reallive_core::decode::{DecodeKind, GrayDecode};
use reallive_core::{Codec, EncodedFrame, h264, nal};

use crate::EncodeError;

pub use reallive_core::decode::GrayPicture;

/// A running decoder.
#[derive(Debug)]
pub struct GrayDecoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    sink: gst_app::AppSink,
}

impl GrayDecoder {
    /// Starts a decoder giving `width`-pixel-wide GRAY8 pictures at `fps`.
    pub fn start(width: u32, fps: u32) -> Result<Self, EncodeError> {
        if !(16..=1920).contains(&width) || !(1..=30).contains(&fps) {
            return Err(EncodeError::InvalidArgument(format!(
                "motion decoding at {width} px and {fps} fps: expected 16..=1920 px and 1..=30 fps"
            )));
        }
        gst::init().map_err(|e| build_error(e.to_string()))?;
        let decoder = crate::h264_decoder()?;
        let src = crate::h264_appsrc();
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", "GRAY8")
                    .build(),
            )
            .max_buffers(8)
            .drop(true)
            .sync(false)
            .build();
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| build_error(format!("{name}: {e}")))
        };
        let parse = make("h264parse")?;
        let decode = make(decoder)?;
        crate::one_decoder_thread(&decode);
        // The rate first, so frames it drops are never scaled; then scale
        // the decoder's planes and keep the luma of what is left.
        let rate = make("videorate")?;
        let scale = make("videoscale")?;
        let convert = make("videoconvert")?;
        // The height follows the stream's aspect once it is known; the
        // caps filter pins the width, the format and the rate.
        let filter = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("format", "GRAY8")
                    .field("width", i32::try_from(width).unwrap_or(320))
                    // Square pixels: videoscale then picks the height that
                    // keeps the picture's shape.
                    .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                    .field(
                        "framerate",
                        gst::Fraction::new(i32::try_from(fps).unwrap_or(5), 1),
                    )
                    .build(),
            )
            .build()
            .map_err(|e| build_error(format!("capsfilter: {e}")))?;
        let pipeline = gst::Pipeline::new();
        let elements = [
            src.upcast_ref(),
            &parse,
            &decode,
            &rate,
            &scale,
            &convert,
            &filter,
            sink.upcast_ref(),
        ];
        crate::add_linked(&pipeline, &elements).map_err(build_error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| build_error("the motion decoder would not start".into()))?;
        Ok(GrayDecoder {
            pipeline,
            src,
            sink,
        })
    }

    /// Hands over one access unit, timed by its own pts. Never blocks.
    pub fn push(&self, frame: &EncodedFrame) {
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        if let Some(b) = buffer.get_mut() {
            let t = gst::ClockTime::from_nseconds(
                u64::try_from(frame.pts_90k.max(0)).unwrap_or(0) * 100_000 / 9,
            );
            b.set_pts(t);
            if !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        let _ = self.src.push_buffer(buffer);
    }

    /// The next decoded picture, waiting at most `timeout`; `None` when
    /// none came in time. Blocks the calling thread: not for an async
    /// worker.
    pub fn pull(&self, timeout: Duration) -> Option<GrayPicture> {
        let sample = self
            .sink
            .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))?;
        let caps = sample.caps()?;
        let s = caps.structure(0)?;
        let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
        let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
        let buffer = sample.buffer()?;
        let map = buffer.map_readable().ok()?;
        // GRAY8 rows are padded to 4 bytes.
        let stride = width.div_ceil(4) * 4;
        Some(GrayPicture {
            data: map.to_vec(),
            width,
            height,
            stride,
            pts_ms: buffer
                .pts()
                .map_or(0, |t| (t.nseconds() / 1_000_000) as i64),
        })
    }
}

impl reallive_core::decode::GrayDecode for GrayDecoder {
    fn push(&self, frame: &EncodedFrame) {
        GrayDecoder::push(self, frame);
    }

    fn pull(&self, timeout: Duration) -> Option<GrayPicture> {
        GrayDecoder::pull(self, timeout)
    }
}

/// A running shared decoder of one picture width.
type SharedSlot = (u32, Weak<Service>);

/// The factory the recorder takes: a [`GrayDecoder`] of its own for a
/// [`DecodeKind::Stream`], and a [`KeyframeHandle`] on one
/// [`KeyframeDecoder`] shared by every camera for
/// [`DecodeKind::Keyframes`]. The shared decoder starts with the first
/// handle and stops when the last one is dropped.
pub fn start_gray_decoder() -> reallive_core::decode::StartGrayDecoder {
    // One shared decoder per picture width, while any handle holds it.
    let shared: Arc<Mutex<Vec<SharedSlot>>> = Arc::default();
    Arc::new(move |width, fps, kind| match kind {
        DecodeKind::Stream => GrayDecoder::start(width, fps)
            .map(|d| Box::new(d) as Box<dyn GrayDecode>)
            .map_err(Into::into),
        DecodeKind::Keyframes => {
            let mut slots = shared.lock().unwrap_or_else(PoisonError::into_inner);
            slots.retain(|(_, s)| s.strong_count() > 0);
            let running = slots
                .iter()
                .find(|(w, _)| *w == width)
                .and_then(|(_, s)| s.upgrade())
                .map(|service| KeyframeDecoder { service });
            let decoder = match running {
                Some(d) => d,
                None => {
                    let d = KeyframeDecoder::start(width)?;
                    slots.push((width, Arc::downgrade(&d.service)));
                    d
                }
            };
            decoder
                .handle(fps)
                .map(|h| Box::new(h) as Box<dyn GrayDecode>)
                .map_err(Into::into)
        }
    })
}

impl Drop for GrayDecoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn build_error(detail: String) -> EncodeError {
    EncodeError::Build {
        encoder: "motion decoder",
        detail,
    }
}

/// Keyframes waiting for the shared decoder at most, over all cameras; a
/// camera has one waiting at most (a newer one takes its place).
pub const MAX_QUEUED_KEYFRAMES: usize = 16;

/// Pictures waiting for one camera's [`KeyframeHandle::pull`] at most; the
/// oldest goes first.
const MAX_WAITING_PICTURES: usize = 2;

/// After its pipeline failed, the shared decoder builds a new one no
/// sooner than this.
const REBUILD_WAIT: Duration = Duration::from_secs(1);

/// Keyframes decoded since one whose picture has not come out; older ones
/// are given up on. A decoder that reorders outputs a picture one or two
/// keyframes late, but drained at each keyframe it should not.
const MAX_PENDING: usize = 4;

/// One H.264 decoder shared by many cameras' keyframes.
///
/// One decoding thread and its small picture pool, on a thread of its own
/// that scales each picture's luma down to `width` pixels (see
/// [`KeyframeDecoder::start`]). Each camera holds a [`KeyframeHandle`]. A handle's
/// [`push`](KeyframeHandle::push) queues a keyframe and returns at once.
/// The decoder's thread decodes the queue in order, one keyframe at a time,
/// and hands each picture to the handle that pushed it.
///
/// - Bounded: a camera has one keyframe queued at most (a newer one takes
///   the older one's place in the queue), and the queue holds
///   [`MAX_QUEUED_KEYFRAMES`] at most (then the oldest is dropped).
///   Nothing blocks the pusher.
/// - Any size: every keyframe goes in with its own parameter sets (from
///   `params` when it has none in band). The decoder re-reads them and
///   pictures keep their stream's aspect, so cameras of different sizes
///   share it.
/// - No mix-ups: one keyframe is decoded at a time, each tagged with a
///   sequence number. A picture goes to the handle whose keyframe carried
///   that number, or nowhere.
/// - H.264 only: other frames are ignored.
///
/// Cloning gives another reference to the same decoder. Its thread stops
/// when the decoder and every handle are dropped.
#[derive(Clone, Debug)]
pub struct KeyframeDecoder {
    service: Arc<Service>,
}

/// Stops the worker when the last reference goes.
#[derive(Debug)]
struct Service {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    width: u32,
    queue: Mutex<Queue>,
    work: Condvar,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    stop: bool,
    dropped: u64,
    decoded: u64,
    failed: u64,
}

#[derive(Debug)]
struct Job {
    outlet: Weak<Outlet>,
    frame: EncodedFrame,
}

/// Where one camera's pictures wait.
#[derive(Debug, Default)]
struct Outlet {
    pictures: Mutex<VecDeque<GrayPicture>>,
    ready: Condvar,
}

/// What a [`KeyframeDecoder`] has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyframeStats {
    /// Keyframes decoded into pictures.
    pub decoded: u64,
    /// Keyframes dropped unread: a newer one of the same camera took their
    /// place, or the queue was full.
    pub dropped: u64,
    /// Keyframes that gave no picture (undecodable, or the pipeline
    /// failed).
    pub failed: u64,
}

impl KeyframeDecoder {
    /// Starts a shared decoder giving `width`-pixel-wide GRAY8 pictures.
    pub fn start(width: u32) -> Result<Self, EncodeError> {
        if !(16..=1920).contains(&width) {
            return Err(EncodeError::InvalidArgument(format!(
                "motion decoding at {width} px: expected 16..=1920 px"
            )));
        }
        // Built here, so a missing element is the caller's error.
        let pipe = KeyframePipe::build()?;
        let shared = Arc::new(Shared {
            width,
            queue: Mutex::default(),
            work: Condvar::new(),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("motion-keyframes".into())
            .spawn(move || run_keyframe_decoder(&worker, pipe))
            .map_err(|e| build_error(format!("starting its thread: {e}")))?;
        Ok(KeyframeDecoder {
            service: Arc::new(Service { shared }),
        })
    }

    /// A camera's handle, giving at most `fps` pictures a second: a
    /// keyframe closer than that to the last one taken is ignored.
    pub fn handle(&self, fps: u32) -> Result<KeyframeHandle, EncodeError> {
        if !(1..=30).contains(&fps) {
            return Err(EncodeError::InvalidArgument(format!(
                "motion decoding at {fps} fps: expected 1..=30 fps"
            )));
        }
        Ok(KeyframeHandle {
            service: self.service.clone(),
            outlet: Arc::default(),
            // A tenth of slack, for cameras whose keyframes come exactly
            // at the rate asked for, with a little jitter.
            min_step_90k: i64::from(90_000 / fps) * 9 / 10,
            last_pts: Mutex::new(None),
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> KeyframeStats {
        let q = self.service.shared.lock();
        KeyframeStats {
            decoded: q.decoded,
            dropped: q.dropped,
            failed: q.failed,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enqueue(&self, outlet: &Arc<Outlet>, frame: &EncodedFrame) {
        let mut q = self.lock();
        if q.stop {
            return;
        }
        let me = Arc::as_ptr(outlet);
        if let Some(job) = q.jobs.iter_mut().find(|j| j.outlet.as_ptr() == me) {
            // Behind: this camera's newer keyframe replaces its older one,
            // in the older one's place.
            job.frame = frame.clone();
            q.dropped += 1;
        } else {
            if q.jobs.len() >= MAX_QUEUED_KEYFRAMES {
                q.jobs.pop_front();
                q.dropped += 1;
            }
            q.jobs.push_back(Job {
                outlet: Arc::downgrade(outlet),
                frame: frame.clone(),
            });
        }
        drop(q);
        self.work.notify_one();
    }

    /// The next job, waiting for one; `None` once stopped.
    fn next(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if q.stop {
                return None;
            }
            if let Some(job) = q.jobs.pop_front() {
                return Some(job);
            }
            q = self.work.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// One camera's way into a [`KeyframeDecoder`]. Implements
/// [`GrayDecode`]; dropping it forgets its queued keyframe.
#[derive(Debug)]
pub struct KeyframeHandle {
    service: Arc<Service>,
    outlet: Arc<Outlet>,
    min_step_90k: i64,
    last_pts: Mutex<Option<i64>>,
}

impl KeyframeHandle {
    /// Queues a keyframe for decoding; frames that are not H.264
    /// keyframes, or that come sooner than the rate allows, are ignored.
    /// Never blocks.
    pub fn push(&self, frame: &EncodedFrame) {
        if !frame.keyframe || frame.codec() != Codec::H264 {
            return;
        }
        {
            let mut last = self.last_pts.lock().unwrap_or_else(PoisonError::into_inner);
            // A pts that went back is a new run of the stream: take it.
            if let Some(l) = *last
                && frame.pts_90k >= l
                && frame.pts_90k - l < self.min_step_90k
            {
                return;
            }
            *last = Some(frame.pts_90k);
        }
        self.service.shared.enqueue(&self.outlet, frame);
    }

    /// This camera's next picture, waiting at most `timeout`; `None` when
    /// none came in time. Blocks the calling thread.
    pub fn pull(&self, timeout: Duration) -> Option<GrayPicture> {
        let deadline = Instant::now() + timeout;
        let mut pictures = self
            .outlet
            .pictures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(p) = pictures.pop_front() {
                return Some(p);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            pictures = self
                .outlet
                .ready
                .wait_timeout(pictures, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The shared decoder this handle feeds.
    pub fn decoder(&self) -> KeyframeDecoder {
        KeyframeDecoder {
            service: self.service.clone(),
        }
    }
}

impl GrayDecode for KeyframeHandle {
    fn push(&self, frame: &EncodedFrame) {
        KeyframeHandle::push(self, frame);
    }

    fn pull(&self, timeout: Duration) -> Option<GrayPicture> {
        KeyframeHandle::pull(self, timeout)
    }
}

impl Outlet {
    fn deliver(&self, picture: GrayPicture) {
        let mut pictures = self.pictures.lock().unwrap_or_else(PoisonError::into_inner);
        if pictures.len() >= MAX_WAITING_PICTURES {
            pictures.pop_front();
        }
        pictures.push_back(picture);
        drop(pictures);
        self.ready.notify_one();
    }
}

/// A keyframe handed to the decoder whose picture has not come out yet.
struct Pending {
    tag: u64,
    outlet: Weak<Outlet>,
    pts_90k: i64,
}

/// The shared decoder's thread: one keyframe at a time, until stopped.
fn run_keyframe_decoder(shared: &Shared, first: KeyframePipe) {
    let mut pipe = Some(first);
    let mut failed_at: Option<Instant> = None;
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut tag: u64 = 0;
    while let Some(job) = shared.next() {
        if job.outlet.strong_count() == 0 {
            continue;
        }
        if pipe.is_none() && failed_at.is_none_or(|t| t.elapsed() >= REBUILD_WAIT) {
            match KeyframePipe::build() {
                Ok(p) => pipe = Some(p),
                Err(e) => {
                    tracing::warn!("motion: the shared keyframe decoder cannot restart: {e}");
                    failed_at = Some(Instant::now());
                }
            }
        }
        let Some(p) = pipe.as_mut() else {
            shared.lock().failed += 1;
            continue;
        };
        tag += 1;
        pending.push_back(Pending {
            tag,
            outlet: job.outlet,
            pts_90k: job.frame.pts_90k,
        });
        // Decodes on this thread: when it returns, the pictures are out.
        let pushed = p.push(&job.frame, tag);
        let mut given_up = 0;
        while let Some((t, sample)) = p.pull() {
            // Keyframes before this picture's gave none.
            while pending.front().is_some_and(|q| q.tag < t) {
                pending.pop_front();
                given_up += 1;
            }
            if pending.front().is_some_and(|q| q.tag == t)
                && let Some(q) = pending.pop_front()
            {
                let picture = gray_picture(&sample, shared.width, q.pts_90k);
                match (q.outlet.upgrade(), picture) {
                    (Some(outlet), Some(picture)) => {
                        shared.lock().decoded += 1;
                        outlet.deliver(picture);
                    }
                    // The camera is gone: nobody's.
                    (None, Some(_)) => {}
                    (_, None) => given_up += 1,
                }
            }
        }
        while pending.len() > MAX_PENDING {
            pending.pop_front();
            given_up += 1;
        }
        if given_up > 0 {
            shared.lock().failed += given_up;
        }
        if let Err(e) = pushed {
            shared.lock().failed += pending.len() as u64;
            pending.clear();
            tracing::warn!("motion: the shared keyframe decoder failed, restarting it: {e}");
            pipe = None;
            failed_at = Some(Instant::now());
        }
    }
}

/// Raw formats whose first plane is the picture's 8-bit luma, one byte a
/// pixel: what the shared decoder scales down itself.
const LUMA_FIRST: [&str; 8] = [
    "I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "Y41B", "GRAY8",
];

/// The shared decoder's pipeline: `decoder (one thread) ! videoconvert
/// (passthrough) ! appsink`, fed from a pad of its own on the caller's
/// thread, so a push returns once the keyframe is decoded (or refused),
/// with no thread between and no time-out to guess. The pictures are
/// scaled down in [`gray_picture`], from the luma plane only: GStreamer's
/// `videoscale` and `videoconvert` cost twice what that takes.
///
/// The segment asks for keyframes only (`TRICKMODE_KEY_UNITS`), so the
/// decoder drains after each one: a stream that may reorder pictures
/// (B-frames) still gives its picture at once.
struct KeyframePipe {
    pipeline: gst::Pipeline,
    src: gst::Pad,
    sink: gst_app::AppSink,
}

impl KeyframePipe {
    fn build() -> Result<Self, EncodeError> {
        gst::init().map_err(|e| build_error(e.to_string()))?;
        let decoder = crate::h264_decoder()?;
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-raw")
                    .field("format", gst::List::new(LUMA_FIRST))
                    .build(),
            )
            .max_buffers(MAX_PENDING as u32)
            .drop(true)
            .sync(false)
            .build();
        // Renders without waiting for a preroll: the pushing thread is ours.
        sink.set_property("async", false);
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| build_error(format!("{name}: {e}")))
        };
        // No parser: every buffer is one whole access unit with its
        // parameter sets, which the decoder reads itself. So a camera of
        // another size changes nothing upstream of the decoder.
        let decode = make(decoder)?;
        crate::one_decoder_thread(&decode);
        // Passes the decoder's pictures through untouched unless their
        // format is not in LUMA_FIRST.
        let convert = make("videoconvert")?;
        let pipeline = gst::Pipeline::new();
        let elements = [&decode, &convert, sink.upcast_ref()];
        crate::add_linked(&pipeline, &elements).map_err(build_error)?;
        let src = crate::pad_into(&decode, "keyframes").map_err(build_error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| build_error("the shared keyframe decoder would not start".into()))?;
        src.set_active(true)
            .map_err(|e| build_error(format!("activating its source: {e}")))?;
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        segment.set_flags(gst::SegmentFlags::TRICKMODE_KEY_UNITS);
        let caps = gst::Caps::builder("video/x-h264")
            .field("stream-format", "byte-stream")
            .field("alignment", "au")
            .build();
        for event in [
            gst::event::StreamStart::new("motion-keyframes"),
            gst::event::Caps::new(&caps),
            gst::event::Segment::new(&segment),
        ] {
            if !src.push_event(event) {
                return Err(build_error("the decoder refused its stream".into()));
            }
        }
        Ok(KeyframePipe {
            pipeline,
            src,
            sink,
        })
    }

    /// Decodes one keyframe, tagged `tag`, on this thread. An error means
    /// the pipeline failed; a keyframe it cannot decode is no error (it
    /// gives no picture).
    fn push(&mut self, frame: &EncodedFrame, tag: u64) -> Result<(), String> {
        let mut buffer = gst::Buffer::from_slice(with_parameter_sets(frame));
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_mseconds(tag));
        }
        self.src
            .push(buffer)
            .map(|_| ())
            .map_err(|e| format!("decoding a keyframe: {e:?}"))
    }

    /// A picture that came out, with its keyframe's tag.
    fn pull(&self) -> Option<(u64, gst::Sample)> {
        let sample = self.sink.try_pull_sample(gst::ClockTime::ZERO)?;
        let tag = sample.buffer()?.pts()?.mseconds();
        Some((tag, sample))
    }
}

impl Drop for KeyframePipe {
    fn drop(&mut self) {
        let _ = self.src.set_active(false);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The access unit, with the frame's parameter sets in front when it
/// carries no SPS of its own (a camera that sends them only in the SDP).
fn with_parameter_sets(frame: &EncodedFrame) -> Bytes {
    let has_sps = nal::split_annex_b(&frame.data)
        .any(|u| nal::nal_type(Codec::H264, &u) == Some(h264::NAL_SPS));
    if has_sps || frame.params.sps.is_empty() {
        return frame.data.clone();
    }
    let mut out = BytesMut::with_capacity(frame.data.len() + 64);
    for unit in frame.params.sps.iter().chain(&frame.params.pps) {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(unit);
    }
    out.extend_from_slice(&frame.data);
    out.freeze()
}

/// A decoded picture (a [`LUMA_FIRST`] format) as a `width`-pixel-wide
/// gray picture stamped `pts_90k`, its height keeping the picture's shape
/// (even, at least 2), as the per-stream decoder's `videoscale` makes it.
fn gray_picture(sample: &gst::Sample, width: u32, pts_90k: i64) -> Option<GrayPicture> {
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps()?).ok()?;
    let frame =
        gstreamer_video::VideoFrameRef::from_buffer_ref_readable(sample.buffer()?, &info).ok()?;
    let luma = frame.plane_data(0).ok()?;
    let stride = usize::try_from(*frame.plane_stride().first()?).ok()?;
    let (w, h) = (info.width(), info.height());
    let par = info.par();
    let (num, den) = (
        u64::try_from(par.numer()).ok().filter(|n| *n > 0)?,
        u64::try_from(par.denom()).ok().filter(|d| *d > 0)?,
    );
    // Square pixels out: the display aspect w * num / (h * den) kept.
    let exact = u64::from(width) * u64::from(h) * den / (u64::from(w) * num).max(1);
    let height = u32::try_from(exact.div_ceil(2) * 2).ok()?.max(2);
    let data = shrink(
        luma,
        stride,
        w as usize,
        h as usize,
        width as usize,
        height as usize,
    )?;
    Some(GrayPicture {
        data,
        width,
        height,
        stride: width,
        // As the per-stream decoder stamps its pictures.
        pts_ms: (u64::try_from(pts_90k.max(0)).unwrap_or(0) * 100_000 / 9 / 1_000_000) as i64,
    })
}

/// Rows of 8-bit pixels a `u16` sum holds.
const U16_ROWS: usize = (u16::MAX / u8::MAX as u16) as usize;

/// Scales the `w` x `h` plane `src` (rows `stride` bytes apart) to
/// `ow` x `oh`, each output pixel the mean of the input pixels it covers
/// (at least one): a box filter, which averages the coding noise away
/// rather than picking one noisy pixel. `None` if `src` is short.
///
/// Per output row, its input rows are summed per column (the loop the
/// compiler vectorises), then across by prefix sums; the mean divides by
/// a reciprocal, to the nearest level or one off.
fn shrink(src: &[u8], stride: usize, w: usize, h: usize, ow: usize, oh: usize) -> Option<Vec<u8>> {
    if w == 0 || h == 0 || ow == 0 || oh == 0 || stride < w || src.len() < stride * (h - 1) + w {
        return None;
    }
    let span = |i: usize, n: usize, of: usize| {
        let a = i * n / of;
        (a, ((i + 1) * n / of).max(a + 1).min(n))
    };
    let columns: Vec<(usize, usize)> = (0..ow).map(|x| span(x, w, ow)).collect();
    let mut out = vec![0u8; ow * oh];
    let mut part = vec![0u16; w];
    let mut prefix = vec![0u32; w + 1];
    let mut sums = vec![0u64; ow];
    // 2^32 / pixels per output pixel, for the row count it was made for.
    let mut scale = vec![0u64; ow];
    let mut scale_rows = 0;
    for (y, row_out) in out.chunks_exact_mut(ow).enumerate() {
        let (y0, y1) = span(y, h, oh);
        if y1 - y0 != scale_rows {
            scale_rows = y1 - y0;
            for (k, &(x0, x1)) in scale.iter_mut().zip(&columns) {
                *k = (1u64 << 32) / (scale_rows * (x1 - x0)) as u64;
            }
        }
        sums.fill(0);
        let mut at = y0;
        while at < y1 {
            let take = (y1 - at).min(U16_ROWS);
            part.fill(0);
            for row in src[at * stride..].chunks(stride).take(take) {
                for (s, &p) in part.iter_mut().zip(&row[..w]) {
                    *s += u16::from(p);
                }
            }
            // Differences of wrapped prefix sums are exact below 2^32.
            let mut acc = 0u32;
            for (p, &v) in prefix[1..].iter_mut().zip(&part) {
                acc = acc.wrapping_add(u32::from(v));
                *p = acc;
            }
            for (s, &(x0, x1)) in sums.iter_mut().zip(&columns) {
                *s += u64::from(prefix[x1].wrapping_sub(prefix[x0]));
            }
            at += take;
        }
        for ((o, &t), &k) in row_out.iter_mut().zip(&sums).zip(&scale) {
            *o = (t.saturating_mul(k).saturating_add(1 << 31) >> 32).min(255) as u8;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::shrink;

    #[test]
    fn shrinking_averages_each_block() {
        // 4x2 blocks of 6x4 pixels, each block one value, rows padded.
        let (w, h, stride) = (24, 8, 32);
        let mut src = vec![255u8; stride * h];
        for y in 0..h {
            for x in 0..w {
                src[y * stride + x] = ((y / 4) * 4 + x / 6) as u8 * 10;
            }
        }
        let out = shrink(&src, stride, w, h, 4, 2).unwrap();
        assert_eq!(out, vec![0, 10, 20, 30, 40, 50, 60, 70]);
        // A 2x2 checkerboard of 0 and 255 averages to mid-gray.
        let board = [0u8, 255, 255, 0];
        assert_eq!(shrink(&board, 2, 2, 2, 1, 1).unwrap(), vec![128]);
        // Any ratio: 7 columns into 3 (spans of 2, 2 and 3), one row.
        let ramp = [0u8, 10, 20, 30, 40, 50, 60];
        assert_eq!(shrink(&ramp, 7, 7, 1, 3, 1).unwrap(), vec![5, 25, 50]);
        // Too short a plane is refused, not read past.
        assert!(shrink(&src[..100], stride, w, h, 4, 2).is_none());
    }
}
