//! The low-resolution decoder for motion detection: H.264 access units in,
//! small GRAY8 pictures out, at a low, steady rate.
//!
//! `appsrc ! h264parse ! decoder ! videoconvert ! videoscale ! videorate !
//! video/x-raw,format=GRAY8,width=W,height=H,framerate=F/1 ! appsink`. The
//! height keeps the picture's aspect (even, at least 2). Feed it the
//! camera's sub-stream when there is one; the main stream works too, at
//! the cost of decoding every frame.
//!
//! Never blocks the caller: the source drops when full, and so does the
//! sink, whose newest pictures wait for [`GrayDecoder::pull`].

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::EncodedFrame;

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
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let rate = make("videorate")?;
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
            &convert,
            &scale,
            &rate,
            &filter,
            sink.upcast_ref(),
        ];
        pipeline
            .add_many(elements)
            .map_err(|e| build_error(e.to_string()))?;
        gst::Element::link_many(elements).map_err(|e| build_error(e.to_string()))?;
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

/// [`GrayDecoder::start`] as the factory the recorder takes.
pub fn start_gray_decoder() -> reallive_core::decode::StartGrayDecoder {
    std::sync::Arc::new(|width, fps| {
        GrayDecoder::start(width, fps)
            .map(|d| Box::new(d) as Box<dyn reallive_core::decode::GrayDecode>)
            .map_err(Into::into)
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
