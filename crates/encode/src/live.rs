//! [`LiveH264Transcoder`]: a camera's H.265, or H.264 with B-frames, to
//! H.264 that browsers play over WebRTC, live, while it has viewers
//! (`docs/design/live-transcode.md`).
//!
//! ```text
//! appsrc ! h265parse|h264parse ! avdec_h265|avdec_h264 ! queue ! videoscale
//!   ! video/x-raw,width=W,height=H            (capped at 1920x1080, aspect kept)
//!   ! videoconvert ! x264enc ! video/x-h264,profile=constrained-baseline
//!   ! h264parse config-interval=-1 ! appsink
//! ```
//!
//! The queue (three pictures at most) lets decoding and encoding run on
//! two threads. The x264 part is the capture pipelines' own [`X264`] bin (ultrafast,
//! zerolatency, no B-frames), with a keyframe every two seconds and a
//! bitrate for the output size ([`live_bitrate_kbps`]). The pipeline is
//! built at the first keyframe, whose parameter sets give the size and
//! frame rate; frames before it are dropped.
//!
//! It implements [`VideoTranscoder`]: `push` never blocks (at most
//! [`QUEUE_FRAMES`] frames wait for the decoder; past that a frame is
//! dropped, and so is every later one until a keyframe, all counted), and
//! the H.264 access units are offered to the [`FrameSender`] from the
//! appsink's streaming thread with the pts of the frames they encode.
//! [`request_keyframe`](VideoTranscoder::request_keyframe) sends
//! x264 a force-key-unit event: the next picture out is an IDR.
//!
//! Failure: the decoder never gives up on bad data (`max-errors=-1`); a
//! frame it cannot decode is skipped or concealed, and pictures come out
//! again from the next keyframe at the latest. What the pipeline reports
//! as a warning is logged (the first at `warn`, the rest at `debug`);
//! libav conceals most damaged slices without a word. An error that stops the pipeline (one its bus
//! reports) is returned by the next `push`, and the transcoder is then
//! dead: the caller drops it and starts another.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::reencode::BoxError;
use reallive_core::time::{ns_to_90k, ticks_90k_to_ns};
use reallive_core::{
    Codec, CodecParameters, EncodedFrame, FrameSender, Offer, StartVideoTranscoder, StreamInfo,
    VideoTranscoder,
};

use crate::{EncodeError, Encoder, EncoderSettings, H264Profile, X264, X264Preset};

/// At most this many access units wait in front of the decoder (a second
/// at 30 fps).
pub const QUEUE_FRAMES: u64 = 30;

/// And at most this many bytes.
const QUEUE_BYTES: u64 = 8 << 20;

/// The largest output picture, landscape; a portrait camera's is capped at
/// the same size turned.
pub const MAX_OUTPUT: (u32, u32) = (1920, 1080);

/// Decoded pictures waiting for the encoder, at most.
const HANDOFF_PICTURES: u32 = 3;

/// Seconds between keyframes when nobody asks for one.
const KEYFRAME_SECS: u32 = 2;

/// Frames per second assumed when the stream does not say.
const DEFAULT_FPS: f64 = 30.0;

/// Pipeline time of the first frame: far above zero, so that x264enc's
/// base class never shifts its output times (it keeps them above 1000
/// hours when they start lower; see `transcode.rs`).
const BASE_NS: u64 = 1000 * 3600 * 1_000_000_000;

/// A running live transcoder to browser H.264.
#[derive(Debug)]
pub struct LiveH264Transcoder {
    codec: Codec,
    /// Until the pipeline is built at the first keyframe.
    out: Option<FrameSender>,
    running: Option<Running>,
    /// Input frames dropped.
    dropped: Arc<AtomicU64>,
    /// A frame was dropped: drop until the next keyframe.
    dropping: bool,
    /// Warnings from the pipeline (frames it could not decode).
    warnings: u64,
}

#[derive(Debug)]
struct Running {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// The x264 bin's source pad, where force-key-unit events go in.
    encoder_src: gst::Pad,
    /// The pts (90 kHz) of the pipeline's time [`BASE_NS`].
    base_90k: i64,
    /// What the output is.
    size: (u32, u32),
    bitrate_kbps: u32,
}

/// The output size for a `width`x`height` input: within [`MAX_OUTPUT`]
/// (turned for a portrait picture), aspect ratio kept, never upscaled, even.
pub fn output_size(width: u32, height: u32) -> (u32, u32) {
    let (max_w, max_h) = if height > width {
        (MAX_OUTPUT.1, MAX_OUTPUT.0)
    } else {
        MAX_OUTPUT
    };
    let (w, h) = (u64::from(width.max(2)), u64::from(height.max(2)));
    // Scale by the tighter of the two bounds, in integers.
    let (w, h) = if w * u64::from(max_h) > h * u64::from(max_w) {
        let w2 = w.min(u64::from(max_w));
        (w2, (h * w2 + w / 2) / w)
    } else {
        let h2 = h.min(u64::from(max_h));
        ((w * h2 + h / 2) / h, h2)
    };
    let even = |v: u64| u32::try_from(v & !1).unwrap_or(2).max(2);
    (even(w), even(h))
}

/// The x264 bitrate for live output of `width`x`height` at `fps`: about
/// 0.08 bit per pixel (ultrafast spends more bits than slower presets for
/// the same picture), between 300 kbit/s and 5 Mbit/s: 1080p30 gets
/// 4976, 720p30 2211, 640x360 at 30 fps 552.
pub fn live_bitrate_kbps(width: u32, height: u32, fps: f64) -> u32 {
    let kbps = f64::from(width) * f64::from(height) * fps * 0.08 / 1000.0;
    kbps.clamp(300.0, 5000.0) as u32
}

fn build_error(detail: impl Into<String>) -> EncodeError {
    EncodeError::Build {
        encoder: "live H.264 transcoder",
        detail: detail.into(),
    }
}

fn make(name: &'static str, package: &'static str) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|_| EncodeError::MissingElement {
            element: name,
            package,
        })
}

impl LiveH264Transcoder {
    /// A transcoder for input of `codec`; H.264 goes to `out`. Checks that
    /// every element is installed; the pipeline starts at the first
    /// keyframe pushed.
    pub fn new(codec: Codec, out: FrameSender) -> Result<Self, EncodeError> {
        gst::init().map_err(|e| build_error(e.to_string()))?;
        let (parse, decode) = elements_for(codec)?;
        for (element, package) in [
            (parse, "gstreamer1.0-plugins-bad"),
            (decode, "gstreamer1.0-libav"),
            ("h264parse", "gstreamer1.0-plugins-bad"),
            ("videoscale", "gstreamer1.0-plugins-base"),
        ] {
            if !crate::element_exists(element) {
                return Err(EncodeError::MissingElement { element, package });
            }
        }
        X264.probe()?;
        Ok(LiveH264Transcoder {
            codec,
            out: Some(out),
            running: None,
            dropped: Arc::default(),
            dropping: false,
            warnings: 0,
        })
    }

    /// The output picture size and bitrate (kbit/s), once the first
    /// keyframe has started the pipeline.
    pub fn output(&self) -> Option<((u32, u32), u32)> {
        self.running.as_ref().map(|r| (r.size, r.bitrate_kbps))
    }

    /// Hands over one access unit. Never blocks; see [`VideoTranscoder::push`].
    pub fn push(&mut self, frame: &EncodedFrame) -> Result<(), EncodeError> {
        if frame.codec() != self.codec {
            return Err(EncodeError::InvalidArgument(format!(
                "a {} frame pushed into a transcoder for {}",
                frame.codec(),
                self.codec
            )));
        }
        if self.running.is_none() {
            if !frame.keyframe {
                self.drop_frame();
                return Ok(());
            }
            self.running = Some(self.start(frame)?);
        }
        let Some(r) = &self.running else {
            return Ok(());
        };
        crate::check_bus(&r.pipeline, "live H.264 transcoder", &mut self.warnings)
            .map_err(|e| build_error(format!("the pipeline stopped: {e}")))?;
        let (Ok(pts), Ok(dts)) = (
            u64::try_from(ticks_90k_to_ns(frame.pts_90k - r.base_90k)),
            u64::try_from(ticks_90k_to_ns(frame.dts_90k - r.base_90k)),
        ) else {
            // Before the first keyframe's decode time: nothing to decode it with.
            self.drop_frame();
            return Ok(());
        };
        let full = r.src.current_level_buffers() >= QUEUE_FRAMES
            || r.src.current_level_bytes() + frame.data.len() as u64 > QUEUE_BYTES;
        if full || (self.dropping && !frame.keyframe) {
            self.dropping = true;
            self.drop_frame();
            return Ok(());
        }
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(BASE_NS + pts));
            b.set_dts(gst::ClockTime::from_nseconds(BASE_NS + dts));
            if let Some(d) = frame.duration_90k {
                b.set_duration(gst::ClockTime::from_nseconds(
                    u64::try_from(ticks_90k_to_ns(i64::from(d))).unwrap_or(0),
                ));
            }
            if !frame.keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        match r.src.push_buffer(buffer) {
            Ok(_) => {
                self.dropping = false;
                Ok(())
            }
            Err(e) => Err(build_error(format!("the pipeline refused a frame: {e:?}"))),
        }
    }

    /// Asks x264 for a keyframe next. Before the pipeline has started
    /// there is nothing to do: its first picture is one.
    pub fn request_keyframe(&self) {
        if let Some(r) = &self.running {
            let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if !r.encoder_src.send_event(event) {
                tracing::debug!("x264 did not take the force-key-unit event");
            }
        }
    }

    /// Input frames dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn drop_frame(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Builds and starts the pipeline for the stream `keyframe` begins.
    fn start(&mut self, keyframe: &EncodedFrame) -> Result<Running, EncodeError> {
        let info = stream_info(keyframe);
        let (in_w, in_h) = info.as_ref().map_or((0, 0), |i| (i.width, i.height));
        let fps = info
            .as_ref()
            .and_then(|i| i.fps)
            .map(|f| f.as_f64())
            .filter(|f| (1.0..=240.0).contains(f))
            .unwrap_or(DEFAULT_FPS);
        let size = if in_w > 0 && in_h > 0 {
            output_size(in_w, in_h)
        } else {
            MAX_OUTPUT
        };
        let bitrate_kbps = live_bitrate_kbps(size.0, size.1, fps);
        let (parse_name, decode_name) = elements_for(self.codec)?;
        let caps = match self.codec {
            Codec::H265 => "video/x-h265",
            _ => "video/x-h264",
        };
        let src = gst_app::AppSrc::builder()
            .caps(
                &gst::Caps::builder(caps)
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .format(gst::Format::Time)
            .is_live(true)
            .block(false)
            .max_bytes(QUEUE_BYTES)
            .max_buffers(QUEUE_FRAMES)
            .leaky_type(gst_app::AppLeakyType::Upstream)
            .build();
        let parse = make(parse_name, "gstreamer1.0-plugins-bad")?;
        let decode = make(decode_name, "gstreamer1.0-libav")?;
        if decode.find_property("max-errors").is_some() {
            decode.set_property("max-errors", -1i32);
        }
        // Decoding and encoding on threads of their own (two cores: both
        // busy), with at most a few pictures between.
        let handoff = gst::ElementFactory::make("queue")
            .property("max-size-buffers", HANDOFF_PICTURES)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 0u64)
            .build()
            .map_err(|e| build_error(format!("queue: {e}")))?;
        let scale = make("videoscale", "gstreamer1.0-plugins-base")?;
        let mut raw = gst::Caps::builder("video/x-raw");
        if in_w > 0 && in_h > 0 {
            raw = raw
                .field("width", i32::try_from(size.0).unwrap_or(1920))
                .field("height", i32::try_from(size.1).unwrap_or(1080));
        } else {
            // The stream's size is unknown until decoded: let videoscale
            // fit it within the cap.
            raw = raw
                .field("width", gst::IntRange::new(2, MAX_OUTPUT.0 as i32))
                .field("height", gst::IntRange::new(2, MAX_OUTPUT.1 as i32));
        }
        let size_filter = gst::ElementFactory::make("capsfilter")
            .property("caps", raw.build())
            .build()
            .map_err(|e| build_error(format!("capsfilter: {e}")))?;
        let keyframe_interval = (fps * f64::from(KEYFRAME_SECS)).round().max(1.0) as u32;
        let x264 = X264.build(&EncoderSettings {
            bitrate_kbps,
            keyframe_interval,
            profile: H264Profile::ConstrainedBaseline,
            x264_preset: X264Preset::Ultrafast,
        })?;
        let encoder_src = x264
            .static_pad("src")
            .ok_or_else(|| build_error("the x264 bin has no src pad"))?;
        let h264parse = make("h264parse", "gstreamer1.0-plugins-bad")?;
        h264parse.set_property("config-interval", -1i32);
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .max_buffers(8)
            .drop(true)
            .sync(false)
            .build();
        let base_90k = keyframe.dts_90k.min(keyframe.pts_90k);
        let out = self
            .out
            .take()
            .ok_or_else(|| build_error("started twice"))?;
        let params: Mutex<Option<Arc<CodecParameters>>> = Mutex::new(None);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(frame) = h264_frame(&sample, &params, base_90k) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    match out.offer(frame) {
                        // Nobody listens any more: stop the pipeline's work.
                        Offer::Closed => Err(gst::FlowError::Eos),
                        _ => Ok(gst::FlowSuccess::Ok),
                    }
                })
                .build(),
        );
        let pipeline = gst::Pipeline::new();
        let elements: [&gst::Element; 9] = [
            src.upcast_ref(),
            &parse,
            &decode,
            &handoff,
            &scale,
            &size_filter,
            x264.upcast_ref(),
            &h264parse,
            sink.upcast_ref(),
        ];
        crate::add_linked(&pipeline, &elements).map_err(build_error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| build_error("the pipeline would not start"))?;
        tracing::debug!(
            codec = %self.codec,
            input = %format!("{in_w}x{in_h}"),
            output = %format!("{}x{}", size.0, size.1),
            bitrate_kbps,
            "live transcode started"
        );
        Ok(Running {
            pipeline,
            src,
            encoder_src,
            base_90k,
            size,
            bitrate_kbps,
        })
    }
}

/// The parser and decoder for `codec`.
fn elements_for(codec: Codec) -> Result<(&'static str, &'static str), EncodeError> {
    match codec {
        Codec::H264 => Ok(("h264parse", "avdec_h264")),
        Codec::H265 => Ok(("h265parse", "avdec_h265")),
        other => Err(EncodeError::InvalidArgument(format!(
            "no live transcoder for {other}"
        ))),
    }
}

/// What the keyframe's parameter sets say, out of band or in band.
fn stream_info(keyframe: &EncodedFrame) -> Option<StreamInfo> {
    keyframe.params.stream_info().ok().or_else(|| {
        CodecParameters::from_annex_b(keyframe.codec(), &keyframe.data)?
            .stream_info()
            .ok()
    })
}

/// One H.264 access unit out of the pipeline, on the input's clock, with
/// its parameter sets (kept from the last keyframe that carried them).
fn h264_frame(
    sample: &gst::Sample,
    params: &Mutex<Option<Arc<CodecParameters>>>,
    base_90k: i64,
) -> Option<EncodedFrame> {
    let buffer = sample.buffer()?;
    let map = buffer.map_readable().ok()?;
    let data = Bytes::copy_from_slice(&map);
    let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    let params = {
        let mut p = params.lock().unwrap_or_else(PoisonError::into_inner);
        if keyframe
            && let Some(new) = CodecParameters::from_annex_b(Codec::H264, &data)
                .filter(CodecParameters::is_complete)
            && p.as_deref() != Some(&new)
        {
            *p = Some(Arc::new(new));
        }
        p.clone()?
    };
    let pts_ns = buffer.pts()?.nseconds().checked_sub(BASE_NS)?;
    let pts_90k = base_90k + ns_to_90k(pts_ns);
    Some(EncodedFrame {
        data,
        pts_90k,
        dts_90k: pts_90k,
        duration_90k: buffer
            .duration()
            .and_then(|d| u32::try_from(ns_to_90k(d.nseconds())).ok()),
        keyframe,
        params,
    })
}

impl VideoTranscoder for LiveH264Transcoder {
    fn push(&mut self, frame: &EncodedFrame) -> Result<(), BoxError> {
        LiveH264Transcoder::push(self, frame).map_err(Into::into)
    }

    fn request_keyframe(&self) {
        LiveH264Transcoder::request_keyframe(self);
    }

    fn dropped(&self) -> u64 {
        LiveH264Transcoder::dropped(self)
    }
}

impl Drop for LiveH264Transcoder {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            let _ = r.pipeline.set_state(gst::State::Null);
        }
    }
}

/// The factory the relay takes: one [`LiveH264Transcoder`] per camera that
/// browsers cannot play as it is.
pub fn start_video_transcoder() -> StartVideoTranscoder {
    Arc::new(|codec, out| {
        LiveH264Transcoder::new(codec, out)
            .map(|t| Box::new(t) as Box<dyn VideoTranscoder>)
            .map_err(Into::into)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_at_1080p_keeping_aspect_never_upscaled() {
        for ((w, h), want) in [
            ((2560, 1440), (1920, 1080)),
            ((3840, 2160), (1920, 1080)),
            ((1920, 1080), (1920, 1080)),
            ((1280, 720), (1280, 720)),
            ((640, 360), (640, 360)),
            // 4:3 at 2592x1944 (5 MP): the height binds.
            ((2592, 1944), (1440, 1080)),
            // Ultra-wide: the width binds.
            ((3840, 1080), (1920, 540)),
            // Portrait (a corridor camera): 1080 wide at most.
            ((1440, 2560), (1080, 1920)),
            // Odd sizes come out even.
            ((2561, 1441), (1918, 1080)),
            ((705, 481), (704, 480)),
        ] {
            assert_eq!(output_size(w, h), want, "{w}x{h}");
        }
    }

    #[test]
    fn bitrate_follows_size_within_bounds() {
        assert_eq!(live_bitrate_kbps(1920, 1080, 30.0), 4976);
        assert_eq!(live_bitrate_kbps(1280, 720, 30.0), 2211);
        assert_eq!(live_bitrate_kbps(320, 180, 15.0), 300);
        assert_eq!(live_bitrate_kbps(1920, 1080, 60.0), 5000);
    }
}
