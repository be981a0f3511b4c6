//! Camera capture for RealLive: every supported camera in, encoded access
//! units out (H.264; H.265 too when an RTSP camera or a file sends it).
//!
//! Each backend is one GStreamer pipeline that ends in an appsink. Capture and
//! encode are fused into that pipeline, so raw frames never cross into Rust;
//! what does cross is one [`EncodedFrame`](reallive_core::EncodedFrame) per
//! access unit, pushed into a bounded [`FrameSender`].
//!
//! | `--source` | backend | pipeline |
//! |---|---|---|
//! | `test[:pattern]` | [`TestPattern`] | `videotestsrc ! [timeoverlay] ! encoder` |
//! | `v4l2:/dev/videoN` | [`V4l2Camera`] | `v4l2src !` H.264 passthrough, raw `! encoder`, or MJPEG `! jpegdec ! encoder` |
//! | `libcamera[:name]` | [`LibcameraCamera`] | `libcamerasrc ! encoder` |
//! | `rtsp://…` | [`RetinaCamera`] (default) | no pipeline: `reallive-rtsp`'s retina client on the tokio runtime, passthrough, TCP or UDP |
//! | `rtsp://…` with [`RtspBackend::Gstreamer`] | [`RtspCamera`] | `rtspsrc ! depay` (passthrough, TCP or UDP) |
//! | `file:<path>` | [`FileSource`] | `filesrc ! parsebin` (MP4, MKV) or a raw H.264 or H.265 parser, paced in real time, optionally looped |
//!
//! Every pipeline ends in `h264parse` (or `h265parse`) with
//! `config-interval=-1` and byte-stream AU caps, so whatever the camera
//! sends, keyframes carry their parameter sets in band and each frame is
//! exactly one access unit. Frames before the first keyframe
//! are dropped; timestamps are the pipeline's running time in 90 kHz.
//!
//! Every backend is also a
//! [`FrameSource`](reallive_core::source::FrameSource), the seam through
//! which GStreamer-free code runs it: `reallive-record`'s supervised worker
//! keeps a source running with restarts, backoff and stall detection.
//!
//! # Threading
//!
//! [`CameraCapture::start`] must be called inside a tokio runtime: a task per
//! pipeline reads its bus (`bus.stream()`), logs warnings and reports the end
//! or the first error through [`Running::wait`]. The appsink callback runs on
//! GStreamer's streaming thread and never blocks: when the reader falls
//! behind, [`FrameSender::offer`] drops frames until the next keyframe.
//! Dropping [`Running`] stops the pipeline; [`Running::stop`] also waits
//! until it is down, which a program should do before it exits.
//!
//! Credentials in RTSP URLs are passed to `rtspsrc` as properties, never in
//! its location, and redacted from every log line and error.
//!
//! With feature `cli`, `CaptureFlags` is the capture flags (`--width`,
//! `--encoder`, …) as a clap `Args` group that builds [`CaptureOptions`].
//!
//! # Example
//!
//! ```no_run
//! use reallive_capture::{open, CaptureOptions, Source};
//! use reallive_core::frame_channel;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! gstreamer::init()?;
//! let source: Source = "test:ball".parse()?;
//! let capture = open(&source, &CaptureOptions::default())?;
//! let (tx, mut rx) = frame_channel(64);
//! let running = capture.start(tx)?;
//! // The first frame is a keyframe with its parameter sets.
//! if let Some(frame) = rx.recv().await {
//!     assert!(frame.keyframe);
//! }
//! running.stop().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod audio;
#[cfg(feature = "cli")]
mod cli;
mod devices;
mod error;
mod file;
mod libcamera;
mod pipeline;
mod retina;
mod rtsp;
mod source;
mod test_pattern;
mod v4l2;

pub use audio::{AudioInput, OPUS_BITRATE};
#[cfg(feature = "cli")]
pub use cli::CaptureFlags;
pub use devices::{DeviceInfo, list_devices};
pub use error::CaptureError;
pub use file::FileSource;
pub use libcamera::LibcameraCamera;
pub use pipeline::{CaptureStats, Running};
pub use retina::RetinaCamera;
pub use rtsp::RtspCamera;
pub use source::Source;
pub use test_pattern::TestPattern;
pub use v4l2::{V4l2Camera, V4l2Format};

use std::fmt::Debug;

use reallive_core::{AudioSender, FrameSender};
use reallive_encode::{EncoderKind, EncoderSettings};

/// A camera that can be started to emit encoded access units.
///
/// Dyn-compatible; [`open`] returns the backend for a [`Source`].
pub trait CameraCapture: Send + Sync + Debug {
    /// The source, credentials redacted.
    fn describe(&self) -> String;

    /// Builds and starts the pipeline, pushing frames into `out`.
    ///
    /// Fails at once for what can be checked up front (missing device, file
    /// or element, bad options); failures after start (a refused connection)
    /// come from [`Running::wait`].
    fn start(&self, out: FrameSender) -> Result<Running, CaptureError>;

    /// Like [`start`](Self::start), with the microphone of
    /// [`CaptureOptions::audio`] encoded to Opus into `audio`, in the same
    /// pipeline so both tracks share its clock. Sources with no audio of
    /// their own to offer (files, RTSP here) drop `audio`.
    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: AudioSender,
    ) -> Result<Running, CaptureError> {
        drop(audio);
        self.start(out)
    }
}

/// RTSP lower transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: works through NAT and loses
    /// nothing, at the cost of head-of-line blocking.
    #[default]
    Tcp,
    /// RTP over UDP.
    Udp,
}

impl std::str::FromStr for RtspTransport {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            _ => Err(CaptureError::InvalidOptions(format!(
                "RTSP transport '{s}': expected tcp or udp"
            ))),
        }
    }
}

/// Which client reads an RTSP camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RtspBackend {
    /// `reallive-rtsp`'s retina client on the tokio runtime: RTP
    /// timestamps, no jitter buffer, no GStreamer threads.
    #[default]
    Retina,
    /// GStreamer's `rtspsrc`: for cameras retina cannot handle.
    Gstreamer,
}

impl std::str::FromStr for RtspBackend {
    type Err = CaptureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "retina" => Ok(RtspBackend::Retina),
            "gstreamer" => Ok(RtspBackend::Gstreamer),
            _ => Err(CaptureError::InvalidOptions(format!(
                "RTSP backend '{s}': expected retina or gstreamer"
            ))),
        }
    }
}

/// How to capture: picture format, encoder and per-backend knobs.
///
/// Width, height and fps apply to sources RealLive encodes (test pattern,
/// V4L2, libcamera); encoded sources keep their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second; also the assumed rate of raw H.264 files.
    pub fps: u32,
    /// Encoder backend; `auto` means passthrough for encoded sources.
    pub encoder: EncoderKind,
    /// Bitrate, GOP and profile.
    pub encoder_settings: EncoderSettings,
    /// RTSP transport.
    pub rtsp_transport: RtspTransport,
    /// RTSP client: retina (the default) or GStreamer's.
    pub rtsp_backend: RtspBackend,
    /// RTSP jitter-buffer latency in milliseconds (GStreamer backend).
    pub rtsp_latency_ms: u32,
    /// Loop file sources forever.
    pub loop_file: bool,
    /// Test pattern: produce frames in real time (true) or as fast as
    /// possible (false, for tests).
    pub live: bool,
    /// Test pattern: stop after this many frames.
    pub num_buffers: Option<u32>,
    /// Test pattern: draw the running time on each frame, to measure
    /// glass-to-glass latency by eye or OCR.
    pub timestamp_overlay: bool,
    /// The microphone beside a camera RealLive encodes (test pattern,
    /// V4L2, libcamera), for [`CameraCapture::start_with_audio`].
    pub audio: AudioInput,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            width: 1280,
            height: 720,
            fps: 30,
            encoder: EncoderKind::Auto,
            encoder_settings: EncoderSettings::default(),
            rtsp_transport: RtspTransport::Tcp,
            rtsp_backend: RtspBackend::Retina,
            rtsp_latency_ms: 200,
            loop_file: false,
            live: true,
            num_buffers: None,
            timestamp_overlay: false,
            audio: AudioInput::None,
        }
    }
}

impl CaptureOptions {
    /// Rejects option values no backend accepts.
    pub fn validate(&self) -> Result<(), CaptureError> {
        let bad = CaptureError::InvalidOptions;
        if !(16..=7680).contains(&self.width) || !(16..=4320).contains(&self.height) {
            return Err(bad(format!(
                "{}x{} is outside 16x16..7680x4320",
                self.width, self.height
            )));
        }
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err(bad(format!(
                "{}x{}: 4:2:0 video needs even dimensions",
                self.width, self.height
            )));
        }
        if !(1..=240).contains(&self.fps) {
            return Err(bad(format!("{} fps is outside 1..=240", self.fps)));
        }
        self.encoder_settings
            .validate()
            .map_err(|e| bad(e.to_string()))
    }
}

/// The backend for `source`, validated but not started.
pub fn open(
    source: &Source,
    options: &CaptureOptions,
) -> Result<Box<dyn CameraCapture>, CaptureError> {
    options.validate()?;
    let opts = options.clone();
    Ok(match source {
        Source::Test { pattern } => Box::new(TestPattern::new(pattern.clone(), opts)),
        Source::V4l2 { device } => Box::new(V4l2Camera::new(device.clone(), opts)),
        Source::Libcamera { name } => Box::new(LibcameraCamera::new(name.clone(), opts)),
        Source::Rtsp(url) => match opts.rtsp_backend {
            RtspBackend::Retina => Box::new(RetinaCamera::new(url.clone(), opts)),
            RtspBackend::Gstreamer => Box::new(RtspCamera::new(url.clone(), opts)),
        },
        Source::File { path } => Box::new(FileSource::new(path.clone(), opts)),
    })
}

/// Picks the encoder for a source that produces raw video.
pub(crate) fn raw_encoder(
    label: &str,
    opts: &CaptureOptions,
) -> Result<Box<dyn reallive_encode::Encoder>, CaptureError> {
    if opts.encoder == EncoderKind::Passthrough {
        return Err(CaptureError::Unsupported {
            source_name: label.to_string(),
            detail: "this source produces raw video, so it needs an encoder; \
                     --encoder passthrough only works with H.264 sources"
                .into(),
        });
    }
    reallive_encode::select(opts.encoder).map_err(|error| CaptureError::Encoder {
        source_name: label.to_string(),
        error,
    })
}

/// Builds `source elements ! encoder ! parser ! appsink` for raw sources.
pub(crate) fn raw_plan(
    label: String,
    source_chain: Vec<gstreamer::Element>,
    opts: &CaptureOptions,
) -> Result<pipeline::Plan, CaptureError> {
    use gstreamer::prelude::*;
    let encoder = raw_encoder(&label, opts)?;
    let bin = encoder
        .build(&opts.encoder_settings)
        .map_err(|error| CaptureError::Encoder {
            source_name: label.clone(),
            error,
        })?;
    let [parse, filter] = pipeline::parse_chain(&label, reallive_core::Codec::H264)?;
    let name = format!("capture-{}", label.split(':').next().unwrap_or("src"));
    let mut chain = source_chain;
    chain.extend([bin.upcast(), parse, filter]);
    pipeline::linear_plan(
        label,
        &name,
        chain,
        pipeline::appsink(false),
        encoder.name(),
        pipeline::StartMode::Play,
    )
}

/// `video/x-raw` (or another media type) at the requested size and rate.
pub(crate) fn sized_caps(
    media: &str,
    format: Option<&str>,
    opts: &CaptureOptions,
) -> gstreamer::Caps {
    gstreamer::Caps::builder(media)
        .field_if_some("format", format)
        .field("width", opts.width as i32)
        .field("height", opts.height as i32)
        .field("framerate", gstreamer::Fraction::new(opts.fps as i32, 1))
        .build()
}

/// Every backend is a [`FrameSource`](reallive_core::source::FrameSource)
/// too, so GStreamer-free code (the NVR's supervised worker) can run it.
macro_rules! frame_source {
    ($($backend:ty),+) => {$(
        impl reallive_core::source::FrameSource for $backend {
            fn describe(&self) -> String {
                CameraCapture::describe(self)
            }

            fn start_frames(
                &self,
                out: FrameSender,
            ) -> Result<Box<dyn reallive_core::source::FrameSourceRun>, reallive_core::reencode::BoxError>
            {
                gstreamer::init().map_err(|e| format!("GStreamer: {e}"))?;
                Ok(Box::new(CameraCapture::start(self, out)?))
            }

            fn start_with_audio(
                &self,
                out: FrameSender,
                audio: AudioSender,
            ) -> Result<Box<dyn reallive_core::source::FrameSourceRun>, reallive_core::reencode::BoxError>
            {
                gstreamer::init().map_err(|e| format!("GStreamer: {e}"))?;
                Ok(Box::new(CameraCapture::start_with_audio(self, out, audio)?))
            }
        }
    )+};
}

frame_source!(
    TestPattern,
    V4l2Camera,
    LibcameraCamera,
    RtspCamera,
    FileSource
);

impl reallive_core::source::FrameSourceRun for Running {
    fn wait(
        &mut self,
    ) -> reallive_core::source::BoxFuture<'_, Result<(), reallive_core::reencode::BoxError>> {
        Box::pin(async move { Ok(Running::wait(self).await?) })
    }

    fn stop(self: Box<Self>) -> reallive_core::source::BoxFuture<'static, ()> {
        Box::pin(Running::stop(*self))
    }
}
