//! Encoding and decoding video inside GStreamer, for RealLive's capture
//! pipelines, motion detection, local preview and stored-recording
//! transcoding. Raw pictures never leave GStreamer except as the small
//! GRAY8 frames motion detection needs.
//!
//! An [`Encoder`] builds a GStreamer bin that takes raw video on its `sink`
//! pad and produces browser-decodable H.264 on its `src` pad: byte-stream, one
//! access unit per buffer, no B-frames, baseline or constrained-baseline.
//! Capture pipelines splice the bin between the camera and the appsink, so
//! raw frames never leave GStreamer.
//!
//! Backends:
//!
//! | kind | element | where |
//! |---|---|---|
//! | `x264` | `x264enc`, `tune=zerolatency` | anywhere; the Raspberry Pi 5 path (no hardware H.264 encoder) |
//! | `openh264` | `openh264enc` | anywhere, lighter than x264 at low resolutions |
//! | `v4l2m2m` | `v4l2h264enc` | Pi 4 and earlier; used only when the element exists and its device opens |
//! | `passthrough` | none | the source is already H.264 (RTSP, UVC H.264, files) |
//!
//! [`select`] resolves [`EncoderKind::Auto`] to the first usable of v4l2m2m,
//! x264, openh264, and logs the choice. Hardware is probed, never guessed from
//! the board name.
//!
//! [`Preview`] goes the other way for a local display: H.264 in, decoded
//! onto `autovideosink` or `kmssink` ([`preview_sink`] picks from the
//! environment, and says clearly when there is no display).
//!
//! Parameter sets on every keyframe and one AU per buffer are enforced by the
//! capture pipeline's `h264parse` after the bin, not here, so passthrough
//! sources get the same guarantees.
//!
//! Two more pipelines take encoded frames back in:
//!
//! - [`motion::GrayDecoder`]: H.264 in, small GRAY8 pictures out at a low
//!   rate, for `reallive-motion`'s detector;
//! - [`motion::KeyframeDecoder`]: many cameras' H.264 keyframes on one
//!   decoder, each small GRAY8 picture handed back to its own camera: motion
//!   on main streams decoded at their keyframes only, at a memory cost that
//!   does not grow with cameras;
//! - [`transcode::H265Transcoder`]: stored H.264 samples in, H.265 out with
//!   the same GOP structure. It implements
//!   [`Reencoder`](reallive_core::reencode::Reencoder), so
//!   `reallive-store` can rewrite recordings without linking GStreamer.
//!
//! And one works on sound: [`audio::G711Transcoder`] turns an RTSP
//! camera's G.711 into AAC at ingest. It implements
//! [`AudioTranscoder`](reallive_core::AudioTranscoder), so
//! `reallive-rtsp` transcodes without linking GStreamer.
//!
//! Two transcode live, for viewers, while they watch
//! (`docs/design/live-transcode.md`):
//!
//! - [`live::LiveH264Transcoder`]: a camera's H.265, or H.264 with
//!   B-frames, to constrained-baseline H.264 capped at 1080p, with
//!   keyframes on request. It implements
//!   [`VideoTranscoder`](reallive_core::VideoTranscoder);
//! - [`audio::OpusTranscoder`]: a camera's AAC or G.711 to 20 ms mono Opus.
//!   It implements [`AudioTranscoder`](reallive_core::AudioTranscoder).
//!
//! Their `push` never blocks (a bounded queue, then drops, counted for
//! video) and their output is offered to a channel from the appsink's
//! streaming thread, so the relay can call them from its frame loop.
//!
//! And one turns a stored keyframe into a picture:
//! [`thumbnail::jpeg_from_keyframe`] makes a small baseline JPEG of one
//! H.264 or H.265 keyframe sample (blocking, bounded by a timeout).
//!
//! Every type that owns a pipeline sets it to `Null` when dropped.
//!
//! # Threading
//!
//! Building and probing touch GStreamer state changes and may open devices:
//! call them at setup time, not on a streaming thread. `push` on a
//! [`Preview`] or a [`GrayDecoder`](motion::GrayDecoder) never blocks, so a
//! frame loop may call it; [`GrayDecoder::pull`](motion::GrayDecoder::pull)
//! waits up to its timeout, and [`H265Transcoder`](transcode::H265Transcoder)
//! blocks while it works: give them a thread of their own, never an async
//! worker.
//!
//! # Example
//!
//! ```no_run
//! use reallive_encode::{select, EncoderKind, EncoderSettings};
//!
//! gstreamer::init()?;
//! let encoder = select(EncoderKind::Auto)?;
//! let bin = encoder.build(&EncoderSettings::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod audio;
mod backends;
mod error;
pub mod live;
pub mod motion;
mod preview;
mod settings;
pub mod thumbnail;
pub mod transcode;

pub use backends::{OpenH264, Passthrough, V4l2M2m, X264, select};
pub use error::EncodeError;
pub use preview::{DisplayEnv, Preview, preview_sink};
pub use settings::{EncoderKind, EncoderSettings, H264Profile, X264Preset};

use std::fmt::Debug;

/// Turns raw video into H.264 inside a GStreamer pipeline.
///
/// Dyn-compatible: capture code holds a `Box<dyn Encoder>`.
pub trait Encoder: Send + Sync + Debug {
    /// The backend's name, as accepted by `--encoder`.
    fn name(&self) -> &'static str;

    /// True when the bin does not encode, so its input must already be H.264.
    fn is_passthrough(&self) -> bool {
        false
    }

    /// Checks that this backend can run here: its elements exist and, for
    /// hardware, its device opens.
    fn probe(&self) -> Result<(), EncodeError>;

    /// Builds a bin with ghost pads `sink` (raw video in any format
    /// `videoconvert` accepts, or H.264 for passthrough) and `src` (H.264).
    fn build(&self, settings: &EncoderSettings) -> Result<gstreamer::Bin, EncodeError>;
}

/// Whether a GStreamer element factory is installed.
pub fn element_exists(factory: &str) -> bool {
    gstreamer::ElementFactory::find(factory).is_some()
}

/// One decoder thread and no errors that stop it: `avdec_h264` defaults to
/// a thread per core, each with its own context and pictures (memory and
/// hand-offs that a 320x180 sub-stream or a keyframe a second does not
/// need), and to failing the pipeline after ten bad frames in a row
/// (which would end a camera's motion detection for good).
pub(crate) fn one_decoder_thread(decoder: &gstreamer::Element) {
    use gstreamer::prelude::*;
    if decoder.find_property("max-threads").is_some() {
        decoder.set_property("max-threads", 1i32);
    }
    if decoder.find_property("max-errors").is_some() {
        decoder.set_property("max-errors", -1i32);
    }
}

/// What a running pipeline's bus says, read without waiting: the first
/// error, which means it has stopped, as `Err`. Warnings (a decoder
/// skipping data it cannot read) are logged, the first at `warn` and
/// the rest at `debug`, and counted in `warnings`, so that a camera
/// sending garbage does not flood the log.
pub(crate) fn check_bus(
    pipeline: &gstreamer::Pipeline,
    what: &str,
    warnings: &mut u64,
) -> Result<(), String> {
    use gstreamer::prelude::*;
    let Some(bus) = pipeline.bus() else {
        return Ok(());
    };
    while let Some(msg) = bus.pop_filtered(&[
        gstreamer::MessageType::Error,
        gstreamer::MessageType::Warning,
    ]) {
        match msg.view() {
            gstreamer::MessageView::Error(e) => return Err(e.error().to_string()),
            gstreamer::MessageView::Warning(w) => {
                *warnings += 1;
                if *warnings == 1 {
                    tracing::warn!("{what}: {} (further warnings at debug level)", w.error());
                } else {
                    tracing::debug!(warnings = *warnings, "{what}: {}", w.error());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Adds `elements` to `bin` (a pipeline or a bin) and links them in
/// order: every pipeline this crate builds is one such chain.
pub(crate) fn add_linked<E: AsRef<gstreamer::Element>>(
    bin: &impl gstreamer::prelude::IsA<gstreamer::Bin>,
    elements: &[E],
) -> Result<(), String> {
    use gstreamer::prelude::*;
    bin.add_many(elements).map_err(|e| e.to_string())?;
    gstreamer::Element::link_many(elements).map_err(|e| e.to_string())
}

/// A source pad of the caller's own, linked to `element`'s sink pad: a
/// pipeline fed by pushing on the caller's thread, with no `appsrc` queue
/// or streaming thread between (the shared motion decoder, thumbnails).
/// Activate it once the pipeline plays.
pub(crate) fn pad_into(element: &gstreamer::Element, name: &str) -> Result<gstreamer::Pad, String> {
    use gstreamer::prelude::*;
    let src = gstreamer::Pad::builder(gstreamer::PadDirection::Src)
        .name(name)
        .build();
    let into = element
        .static_pad("sink")
        .ok_or_else(|| format!("{} has no sink pad", element.name()))?;
    src.link(&into)
        .map_err(|e| format!("linking to {}: {e:?}", element.name()))?;
    Ok(src)
}

/// The first installed software H.264 decoder, for the preview and the
/// motion decoder.
pub(crate) fn h264_decoder() -> Result<&'static str, EncodeError> {
    ["avdec_h264", "openh264dec"]
        .into_iter()
        .find(|d| element_exists(d))
        .ok_or(EncodeError::MissingElement {
            element: "avdec_h264",
            package: "gstreamer1.0-libav",
        })
}

/// An `appsrc` taking H.264 access units (byte-stream), timed in
/// nanoseconds, that never blocks its caller: past 4 MiB queued it drops
/// what arrives.
pub(crate) fn h264_appsrc() -> gstreamer_app::AppSrc {
    gstreamer_app::AppSrc::builder()
        .caps(
            &gstreamer::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        )
        .format(gstreamer::Format::Time)
        .block(false)
        .max_bytes(4 << 20)
        .leaky_type(gstreamer_app::AppLeakyType::Upstream)
        .build()
}
