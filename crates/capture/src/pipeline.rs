//! What every capture backend shares: the parser tail, the appsink that turns
//! buffers into [`EncodedFrame`]s, and the [`Running`] handle with its bus task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::{
    Codec, CodecParameters, EncodedFrame, ErrorKind, FrameSender, LatencyHistogram, Offer,
    time::ns_to_90k,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::CaptureError;
use reallive_core::redact;

/// Creates an element or says which package provides it.
pub(crate) fn make(
    label: &str,
    factory: &'static str,
    package: &'static str,
) -> Result<gst::Element, CaptureError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| CaptureError::MissingElement {
            source_name: label.to_string(),
            element: factory,
            package,
        })
}

pub(crate) fn internal(label: &str, detail: impl ToString) -> CaptureError {
    CaptureError::Internal {
        source_name: label.to_string(),
        detail: detail.to_string(),
    }
}

/// Sets an enum property by its nick, refusing unknown nicks instead of
/// panicking as `set_property_from_str` would.
pub(crate) fn set_enum(el: &gst::Element, prop: &str, nick: &str) -> Result<(), String> {
    let pspec = el
        .find_property(prop)
        .ok_or_else(|| format!("{} has no property {prop}", el.name()))?;
    let class = gst::glib::EnumClass::with_type(pspec.value_type())
        .ok_or_else(|| format!("{prop} is not an enum"))?;
    let value = class.to_value_by_nick(nick).ok_or_else(|| {
        let known: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
        format!("unknown {prop} '{nick}'; one of: {}", known.join(", "))
    })?;
    el.set_property_from_value(prop, &value);
    Ok(())
}

/// Caps for the appsink: byte-stream, one access unit per buffer.
fn encoded_caps(codec: Codec) -> gst::Caps {
    let name = match codec {
        Codec::H264 => "video/x-h264",
        _ => "video/x-h265",
    };
    gst::Caps::builder(name)
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build()
}

/// `h264parse`/`h265parse` configured so every keyframe carries its
/// parameter sets in band, then a capsfilter forcing byte-stream AUs.
///
/// This runs after every encoder and every passthrough source, so the
/// guarantees hold whatever the camera sends.
pub(crate) fn parse_chain(label: &str, codec: Codec) -> Result<[gst::Element; 2], CaptureError> {
    let parse = match codec {
        Codec::H264 => make(label, "h264parse", "gstreamer1.0-plugins-bad")?,
        _ => make(label, "h265parse", "gstreamer1.0-plugins-bad")?,
    };
    // -1: insert SPS/PPS (and VPS) before every IDR, from the stream or caps.
    parse.set_property("config-interval", -1i32);
    let filter = make(label, "capsfilter", "libgstreamer1.0-0")?;
    filter.set_property("caps", encoded_caps(codec));
    Ok([parse, filter])
}

/// The appsink every pipeline ends in. `sync` paces output to the clock
/// (files); live sources are already paced and must not wait.
pub(crate) fn appsink(sync: bool) -> gst_app::AppSink {
    let mut caps = encoded_caps(Codec::H264);
    caps.make_mut().append(encoded_caps(Codec::H265));
    gst_app::AppSink::builder()
        .name("frames")
        .caps(&caps)
        .sync(sync)
        .max_buffers(4)
        .enable_last_sample(false)
        .build()
}

/// Counters and latency of a running capture.
#[derive(Debug, Default)]
pub struct CaptureStats {
    frames: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
    latency: LatencyHistogram,
}

impl CaptureStats {
    /// Access units handed to the frame channel.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Access units discarded before the first keyframe with complete
    /// parameter sets, or without any timestamp.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Access units the frame channel dropped because its reader fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Capture-to-appsink latency per frame, for live sources: the pipeline
    /// clock at the appsink minus the buffer's capture timestamp.
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }
}

/// Per-pipeline state of the appsink callbacks.
struct SinkState {
    out: Option<FrameSender>,
    caps: Option<gst::Caps>,
    codec: Option<Codec>,
    params: Option<Arc<CodecParameters>>,
    stats: Arc<CaptureStats>,
    label: String,
    warned_unstamped: bool,
    /// Decode time of the previous frame after correction, and its duration.
    last_dts: Option<gst::ClockTime>,
    last_duration: gst::ClockTime,
    /// Added to every timestamp since the source last jumped backwards.
    offset: gst::ClockTime,
}

impl SinkState {
    fn on_sample(&mut self, sink: &gst_app::AppSink) -> Result<gst::FlowSuccess, gst::FlowError> {
        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
        let Some(out) = self.out.as_ref() else {
            return Err(gst::FlowError::Eos);
        };
        if let Some(caps) = sample.caps()
            && self
                .caps
                .as_ref()
                .is_none_or(|c| c.as_ptr() != caps.as_ptr())
        {
            self.codec = caps.structure(0).and_then(|s| match s.name().as_str() {
                "video/x-h264" => Some(Codec::H264),
                "video/x-h265" => Some(Codec::H265),
                _ => None,
            });
            self.caps = Some(caps.to_owned());
        }
        let (Some(codec), Some(buffer)) = (self.codec, sample.buffer_owned()) else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let segment = sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::format::Time>());
        let running = |t: Option<gst::ClockTime>| match (t, segment) {
            (Some(t), Some(seg)) => seg.to_running_time(t).or(Some(t)),
            (t, _) => t,
        };
        let dts = running(buffer.dts());
        let Some(mut pts) = running(buffer.pts()).or(dts) else {
            // rtspsrc emits a few before its clock mapping settles; only a
            // source that keeps doing it is worth a warning.
            let skipped = self.stats.skipped.fetch_add(1, Ordering::Relaxed) + 1;
            if skipped >= 30 && !self.warned_unstamped {
                self.warned_unstamped = true;
                tracing::warn!(source = %self.label, "dropping access units without timestamps");
            }
            return Ok(gst::FlowSuccess::Ok);
        };
        let mut dts = dts.unwrap_or(pts);
        // Decode order must never go backwards, whatever the source does (a
        // looped file whose segment base lags a frame, a camera restarting
        // its clock): shift everything after a backward step to continue
        // one frame later.
        if let Some(last) = self.last_dts
            && dts + self.offset <= last
        {
            let shift = last + self.last_duration - (dts + self.offset);
            tracing::debug!(source = %self.label, ?shift, "timestamps went backwards; shifting");
            self.offset += shift;
        }
        pts += self.offset;
        dts += self.offset;
        let duration = buffer.duration();
        self.last_dts = Some(dts);
        if let Some(d) = duration.filter(|d| !d.is_zero()) {
            self.last_duration = d;
        }
        let flagged_key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let duration_90k = duration.and_then(|d| u32::try_from(ns_to_90k(d.nseconds())).ok());
        let data = match buffer.into_mapped_buffer_readable() {
            Ok(mapped) => Bytes::from_owner(mapped),
            Err(_) => return Err(gst::FlowError::Error),
        };
        // A keyframe is what the bitstream says, not the buffer flag alone:
        // a depayloader joining mid-stream can hand over its SPS/PPS with a
        // P picture in one unflagged-delta access unit, and a file must
        // never start on that.
        let keyframe = flagged_key && reallive_core::nal::is_keyframe(codec, &data);
        if keyframe
            && let Some(p) = CodecParameters::from_annex_b(codec, &data)
            && p.is_complete()
            && self.params.as_deref() != Some(&p)
        {
            if let Ok(info) = p.stream_info() {
                tracing::info!(
                    source = %self.label,
                    codec = %codec,
                    width = info.width,
                    height = info.height,
                    profile = info.profile_name(),
                    level = %info.level(),
                    "stream parameters"
                );
            }
            self.params = Some(Arc::new(p));
        }
        let Some(params) = self.params.clone().filter(|p| p.codec == codec) else {
            // Nothing before the first keyframe with SPS/PPS can be decoded.
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(gst::FlowSuccess::Ok);
        };
        if let (Some(clock), Some(base)) = (sink.clock(), sink.base_time()) {
            let now = clock.time().saturating_sub(base);
            self.stats
                .latency
                .record(Duration::from_nanos(now.saturating_sub(pts).nseconds()));
        }
        let frame = EncodedFrame {
            data,
            pts_90k: ns_to_90k(pts.nseconds()),
            dts_90k: ns_to_90k(dts.nseconds()),
            duration_90k,
            keyframe,
            params,
        };
        match out.offer(frame) {
            Offer::Sent => {
                self.stats.frames.fetch_add(1, Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            }
            Offer::Dropped => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(gst::FlowSuccess::Ok)
            }
            // Nobody is listening any more: stop the source.
            Offer::Closed => Err(gst::FlowError::Eos),
        }
    }
}

/// How to bring the pipeline up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartMode {
    /// Straight to PLAYING.
    Play,
    /// PAUSED, a flushing segment seek to the start, then PLAYING; each
    /// SEGMENT_DONE seeks back to the start without flushing, so running
    /// time, and with it every timestamp, keeps increasing across loops.
    Loop,
}

/// A built, not yet started pipeline.
pub(crate) struct Plan {
    pub pipeline: gst::Pipeline,
    pub appsink: gst_app::AppSink,
    pub label: String,
    pub secrets: Vec<String>,
    pub mode: StartMode,
    pub encoder: &'static str,
}

/// A pipeline that is one chain of elements ending in `appsink`.
pub(crate) fn linear_plan(
    label: String,
    name: &str,
    mut chain: Vec<gst::Element>,
    appsink: gst_app::AppSink,
    encoder: &'static str,
    mode: StartMode,
) -> Result<Plan, CaptureError> {
    let pipe = gst::Pipeline::builder().name(name).build();
    chain.push(appsink.clone().upcast());
    pipe.add_many(&chain).map_err(|e| internal(&label, e))?;
    gst::Element::link_many(&chain).map_err(|e| internal(&label, e))?;
    Ok(Plan {
        pipeline: pipe,
        appsink,
        label,
        secrets: Vec::new(),
        mode,
        encoder,
    })
}

type Outcome = Option<Result<(), CaptureError>>;

/// A running capture. Dropping it stops the source and sets the pipeline to
/// `Null`.
#[derive(Debug)]
pub struct Running {
    /// `None` for a backend that is a tokio task (retina).
    pipeline: Option<gst::Pipeline>,
    /// Ends a task backend gracefully.
    stop: Option<CancellationToken>,
    outcome: watch::Receiver<Outcome>,
    stats: Arc<CaptureStats>,
    label: String,
    encoder: &'static str,
    bus_task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The source, credentials redacted.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The encoder backend in use (`passthrough` for encoded sources).
    pub fn encoder(&self) -> &'static str {
        self.encoder
    }

    /// Counters and latency.
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }

    /// Waits until the source ends (`Ok`) or fails (`Err`).
    pub async fn wait(&mut self) -> Result<(), CaptureError> {
        let result = self
            .outcome
            .wait_for(Option::is_some)
            .await
            .map(|o| o.clone());
        match result {
            Ok(o) => o.unwrap_or(Ok(())),
            Err(_) => Err(internal(&self.label, "the pipeline's bus watcher stopped")),
        }
    }

    /// Asks the source to finish: the frames already captured drain, then
    /// [`wait`](Self::wait) returns `Ok`.
    pub fn send_eos(&self) {
        match (&self.pipeline, &self.stop) {
            (Some(p), _) => {
                p.send_event(gst::event::Eos::new());
            }
            (None, Some(stop)) => stop.cancel(),
            (None, None) => {}
        }
    }

    /// Asks the encoder for a keyframe now (a viewer joined, or a relay
    /// saw loss). Sources that arrive encoded (RTSP, files) ignore it and
    /// keep their own keyframe interval.
    pub fn force_keyframe(&self) {
        (self.keyframe_requester())();
    }

    /// [`force_keyframe`](Self::force_keyframe) as a function other tasks
    /// can hold (the publisher calls it when the relay asks). It holds the
    /// pipeline weakly: after the capture stops it does nothing.
    pub fn keyframe_requester(&self) -> Arc<dyn Fn() + Send + Sync> {
        let Some(pipeline) = &self.pipeline else {
            return Arc::new(|| {});
        };
        let weak = pipeline.downgrade();
        Arc::new(move || {
            if let Some(p) = weak.upgrade() {
                let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build();
                p.send_event(event);
            }
        })
    }

    /// The underlying pipeline, for inspection in tests and tools;
    /// `None` for the retina RTSP backend, which has none.
    pub fn pipeline(&self) -> Option<&gst::Pipeline> {
        self.pipeline.as_ref()
    }
}

impl Running {
    /// Stops the pipeline and waits until it has reached `Null`: streaming
    /// threads joined, RTSP torn down. Prefer this to dropping at the end of
    /// a program, so nothing is left for the runtime's shutdown.
    pub async fn stop(mut self) {
        if let Some(stop) = &self.stop {
            // A task backend: let it close its connection, and wait.
            stop.cancel();
            let task = std::mem::replace(&mut self.bus_task, tokio::spawn(async {}));
            let _ = task.await;
            return;
        }
        self.bus_task.abort();
        let guard = NullOnDrop(self.pipeline.clone());
        let _ = tokio::task::spawn_blocking(move || drop(guard)).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            // The task sees this, closes its connection and ends.
            stop.cancel();
            return;
        }
        self.bus_task.abort();
        let guard = NullOnDrop(self.pipeline.clone());
        // Going to NULL joins the streaming threads and, for RTSP, sends a
        // TEARDOWN: keep that off the async workers when there are some. If
        // the runtime shuts down before the blocking task runs, the closure
        // is dropped instead, and the guard still stops the pipeline there.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || drop(guard));
            }
            Err(_) => drop(guard),
        }
    }
}

/// Sets the pipeline to `Null` when dropped, wherever that happens. A
/// pipeline must never be disposed of while it is playing: GStreamer aborts
/// the process.
struct NullOnDrop(Option<gst::Pipeline>);

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}

/// [`start`], with `input`'s audio branch added to the pipeline first, its
/// Opus packets going to `audio`.
pub(crate) fn start_with_audio(
    plan: Plan,
    out: FrameSender,
    input: &crate::AudioInput,
    audio: reallive_core::AudioSender,
) -> Result<Running, CaptureError> {
    crate::audio::add_branch(&plan.pipeline, &plan.label, input, audio)?;
    start(plan, out)
}

/// Wires the appsink to `out`, starts the bus watcher and sets the pipeline
/// going.
pub(crate) fn start(plan: Plan, out: FrameSender) -> Result<Running, CaptureError> {
    let Plan {
        pipeline,
        appsink,
        label,
        secrets,
        mode,
        encoder,
    } = plan;
    let rt = tokio::runtime::Handle::try_current().map_err(|_| CaptureError::NoRuntime)?;
    let stats = Arc::new(CaptureStats::default());
    let state = Arc::new(Mutex::new(SinkState {
        out: Some(out),
        caps: None,
        codec: None,
        params: None,
        stats: stats.clone(),
        label: label.clone(),
        warned_unstamped: false,
        last_dts: None,
        // One frame at 30 fps until the stream says otherwise.
        last_duration: gst::ClockTime::from_nseconds(33_333_333),
        offset: gst::ClockTime::ZERO,
    }));
    let eos_state = state.clone();
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .on_sample(sink)
            })
            .eos(move |_| {
                // Closing the channel tells the reader the stream ended.
                eos_state.lock().unwrap_or_else(PoisonError::into_inner).out = None;
            })
            .build(),
    );

    let bus = pipeline
        .bus()
        .ok_or_else(|| internal(&label, "pipeline has no bus"))?;
    let (tx, outcome) = watch::channel(None);
    let span = tracing::info_span!("capture", source = %label);
    let bus_task = rt.spawn(
        watch_bus(
            bus.stream(),
            pipeline.downgrade(),
            label.clone(),
            secrets,
            mode,
            tx,
        )
        .instrument(span),
    );

    let target = match mode {
        StartMode::Play => gst::State::Playing,
        StartMode::Loop => gst::State::Paused,
    };
    if pipeline.set_state(target).is_err() {
        // The reason is on the bus; the watcher turns it into the outcome.
        tracing::debug!(source = %label, "state change to {target:?} failed");
    }
    Ok(Running {
        pipeline: Some(pipeline),
        stop: None,
        outcome,
        stats,
        label,
        encoder,
        bus_task,
    })
}

/// A [`Running`] for a backend that is a tokio task rather than a
/// pipeline: `run` gets a token that [`Running::stop`] (and drop) cancels,
/// and its result is the outcome [`Running::wait`] reports.
pub(crate) fn start_task<F, Fut>(label: String, run: F) -> Result<Running, CaptureError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), CaptureError>> + Send + 'static,
{
    let rt = tokio::runtime::Handle::try_current().map_err(|_| CaptureError::NoRuntime)?;
    let stop = CancellationToken::new();
    let (tx, outcome) = watch::channel(None);
    let span = tracing::info_span!("capture", source = %label);
    let fut = run(stop.clone());
    let task = rt.spawn(
        async move {
            let r = fut.await;
            let _ = tx.send(Some(r));
        }
        .instrument(span),
    );
    Ok(Running {
        pipeline: None,
        stop: Some(stop),
        outcome,
        stats: Arc::new(CaptureStats::default()),
        label,
        encoder: "passthrough",
        bus_task: task,
    })
}

async fn watch_bus(
    mut messages: gst::bus::BusStream,
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    label: String,
    secrets: Vec<String>,
    mode: StartMode,
    outcome: watch::Sender<Outcome>,
) {
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let clean = |s: &str| redact(s, &secret_refs);
    let looping = AtomicBool::new(false);
    // Seeking with an explicit stop makes each loop's segment end at the
    // file's duration, so the next loop's running time starts one frame
    // after the last, not on top of it.
    let mut loop_stop = gst::ClockTime::NONE;
    while let Some(msg) = messages.next().await {
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => {
                outcome.send_replace(Some(Ok(())));
                return;
            }
            MessageView::Error(err) => {
                let e = err.error();
                let detail = err
                    .debug()
                    .map(|d| {
                        // GStreamer's debug string is "file.c(123): func (): /Pipeline/Element:\nreason".
                        let reason = d.rsplit_once(":\n").map_or(d.as_str(), |(_, r)| r);
                        format!(" ({})", reason.replace('\n', " "))
                    })
                    .unwrap_or_default();
                let message = clean(&format!("{}{detail}", e.message().trim_end_matches('.')));
                outcome.send_replace(Some(Err(CaptureError::Stream {
                    source_name: label.clone(),
                    message,
                    kind: error_kind(&e),
                })));
                return;
            }
            MessageView::Warning(w) => {
                tracing::warn!(source = %label, "{}", clean(&w.error().to_string()));
            }
            MessageView::Latency(_) => {
                if let Some(p) = pipeline.upgrade() {
                    let _ = p.recalculate_latency();
                }
            }
            MessageView::AsyncDone(_) if mode == StartMode::Loop => {
                if let Some(p) = pipeline.upgrade()
                    && !looping.swap(true, Ordering::Relaxed)
                {
                    loop_stop = p.query_duration::<gst::ClockTime>();
                    let seek = p.seek(
                        1.0,
                        gst::SeekFlags::FLUSH | gst::SeekFlags::SEGMENT,
                        gst::SeekType::Set,
                        gst::ClockTime::ZERO,
                        stop_type(loop_stop),
                        loop_stop,
                    );
                    if seek.is_err() {
                        tracing::warn!(source = %label, "file is not seekable; playing it once");
                    }
                    let _ = p.set_state(gst::State::Playing);
                }
            }
            MessageView::SegmentDone(_) => {
                if let Some(p) = pipeline.upgrade() {
                    let seek = p.seek(
                        1.0,
                        gst::SeekFlags::SEGMENT,
                        gst::SeekType::Set,
                        gst::ClockTime::ZERO,
                        stop_type(loop_stop),
                        loop_stop,
                    );
                    if seek.is_err() {
                        // Cannot loop: finish as if the file ended.
                        p.send_event(gst::event::Eos::new());
                    }
                }
            }
            _ => {}
        }
    }
}

fn stop_type(stop: Option<gst::ClockTime>) -> gst::SeekType {
    if stop.is_some() {
        gst::SeekType::Set
    } else {
        gst::SeekType::None
    }
}

fn error_kind(e: &gst::glib::Error) -> ErrorKind {
    use gst::{CoreError, ResourceError, StreamError};
    if let Some(r) = e.kind::<ResourceError>() {
        return match r {
            ResourceError::NotFound => ErrorKind::NotFound,
            ResourceError::NotAuthorized => ErrorKind::PermissionDenied,
            ResourceError::NoSpaceLeft => ErrorKind::ResourceExhausted,
            ResourceError::Settings => ErrorKind::InvalidArgument,
            _ => ErrorKind::Unavailable,
        };
    }
    if let Some(s) = e.kind::<StreamError>() {
        return match s {
            StreamError::Failed => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        };
    }
    if e.kind::<CoreError>() == Some(CoreError::MissingPlugin) {
        return ErrorKind::Unavailable;
    }
    ErrorKind::Internal
}

/// Links a pad that appeared at runtime (`rtspsrc`, `parsebin`) to the
/// appsink when it carries H.264 or H.265, as RTP or as elementary stream.
///
/// Other pads (audio, a second video stream) go to a `fakesink` so their
/// source does not fail with not-linked. A video stream in a codec RealLive
/// cannot pass through is reported as an error on the bus. Runs on a
/// streaming thread: it only creates and links elements.
pub(crate) fn link_encoded_pad(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    appsink: &gst_app::AppSink,
    label: &str,
) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let Some(s) = caps.structure(0) else { return };
    let (is_video, codec_name) = match s.name().as_str() {
        "application/x-rtp" => (
            s.get::<&str>("media").is_ok_and(|m| m == "video"),
            s.get::<&str>("encoding-name")
                .unwrap_or("")
                .to_ascii_uppercase(),
        ),
        "video/x-h264" => (true, "H264-ES".to_string()),
        "video/x-h265" => (true, "H265-ES".to_string()),
        n => (n.starts_with("video/"), n.to_string()),
    };
    let taken = appsink.static_pad("sink").is_some_and(|p| p.is_linked());
    let result = if !is_video || taken {
        discard(pipeline, pad)
    } else {
        let chain = match codec_name.as_str() {
            "H264" => Some(("rtph264depay", Codec::H264)),
            "H265" => Some(("rtph265depay", Codec::H265)),
            "H264-ES" => Some(("", Codec::H264)),
            "H265-ES" => Some(("", Codec::H265)),
            _ => None,
        };
        match chain {
            Some((depay, codec)) => link_chain(pipeline, pad, appsink, label, depay, codec),
            None => {
                let _ = discard(pipeline, pad);
                Err(format!(
                    "the video is {codec_name}, which cannot be passed through; \
                     RealLive takes H.264 or H.265"
                ))
            }
        }
    };
    if let Err(detail) = result {
        let msg = gst::message::Error::builder(gst::StreamError::CodecNotFound, &detail)
            .src(pipeline)
            .build();
        let _ = pipeline.post_message(msg);
    }
}

fn link_chain(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    appsink: &gst_app::AppSink,
    label: &str,
    depay: &'static str,
    codec: Codec,
) -> Result<(), String> {
    let mut chain = Vec::new();
    if !depay.is_empty() {
        chain.push(make(label, depay, "gstreamer1.0-plugins-good").map_err(|e| e.to_string())?);
        // Whole access units out of the depayloader: left to negotiate, a
        // picture sent as several slices can reach the parser as NAL
        // units that it emits as separate buffers, the later ones without
        // a timestamp, which would be dropped, and with them the lower
        // part of the picture.
        let filter = make(label, "capsfilter", "libgstreamer1.0-0").map_err(|e| e.to_string())?;
        let media = match codec {
            Codec::H264 => "video/x-h264",
            _ => "video/x-h265",
        };
        filter.set_property(
            "caps",
            gst::Caps::builder(media).field("alignment", "au").build(),
        );
        chain.push(filter);
    }
    chain.extend(parse_chain(label, codec).map_err(|e| e.to_string())?);
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    let mut linked = chain.clone();
    linked.push(appsink.clone().upcast());
    gst::Element::link_many(&linked).map_err(|e| e.to_string())?;
    for el in &chain {
        el.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let sink = chain[0]
        .static_pad("sink")
        .ok_or_else(|| "parser has no sink pad".to_string())?;
    pad.link(&sink)
        .map(|_| ())
        .map_err(|e| format!("linking {codec} stream: {e:?}"))
}

fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), String> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline.add(&sink).map_err(|e| e.to_string())?;
    sink.sync_state_with_parent().map_err(|e| e.to_string())?;
    let sinkpad = sink
        .static_pad("sink")
        .ok_or_else(|| "fakesink has no sink pad".to_string())?;
    pad.link(&sinkpad).map(|_| ()).map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_element_names_its_package() {
        gst::init().unwrap();
        let err = make("libcamera", "no-such-element-x", "gstreamer1.0-libcamera").unwrap_err();
        assert_eq!(
            err.to_string(),
            "libcamera: GStreamer element 'no-such-element-x' is missing; install gstreamer1.0-libcamera"
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn unknown_enum_nick_is_an_error_not_a_panic() {
        gst::init().unwrap();
        let src = gst::ElementFactory::make("videotestsrc").build().unwrap();
        assert!(set_enum(&src, "pattern", "ball").is_ok());
        let err = set_enum(&src, "pattern", "nope").unwrap_err();
        assert!(err.starts_with("unknown pattern 'nope'"), "{err}");
        assert!(set_enum(&src, "no-such-prop", "x").is_err());
    }
}
