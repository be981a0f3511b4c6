use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_core::{Codec, FrameSender};
use reallive_encode::EncoderKind;

use crate::pipeline::{self, make};
use crate::{CameraCapture, CaptureError, CaptureOptions, Running, sized_caps};

/// What a V4L2 camera is asked to deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4l2Format {
    /// The camera encodes H.264 itself: passed through.
    H264,
    /// Raw frames, encoded in the same pipeline.
    Raw,
    /// Motion JPEG, decoded then encoded: UVC cameras often give 30 fps at
    /// 720p and above only in MJPEG, because USB 2 cannot carry raw YUY2.
    Mjpeg,
}

/// A USB/UVC camera through `v4l2src`.
#[derive(Debug, Clone)]
pub struct V4l2Camera {
    device: PathBuf,
    opts: CaptureOptions,
}

impl V4l2Camera {
    /// The camera at `device`, e.g. `/dev/video0`.
    pub fn new(device: PathBuf, opts: CaptureOptions) -> Self {
        V4l2Camera { device, opts }
    }

    /// Opens the device and asks what it can deliver.
    pub fn probe_caps(&self) -> Result<gst::Caps, CaptureError> {
        let label = self.describe();
        if !Path::new(&self.device).exists() {
            return Err(CaptureError::NotFound {
                source_name: label,
                detail: "no such device (is the camera plugged in? see --list-devices)".into(),
            });
        }
        let src = make(&label, "v4l2src", "gstreamer1.0-plugins-good")?;
        src.set_property("device", self.device.to_string_lossy().as_ref());
        if src.set_state(gst::State::Ready).is_err() {
            let _ = src.set_state(gst::State::Null);
            return Err(CaptureError::Stream {
                source_name: label,
                message: "cannot open the device (busy, no permission, or not a capture device)"
                    .into(),
                kind: reallive_core::ErrorKind::Unavailable,
            });
        }
        let caps = src
            .static_pad("src")
            .map(|p| p.query_caps(None))
            .unwrap_or_else(gst::Caps::new_empty);
        let _ = src.set_state(gst::State::Null);
        Ok(caps)
    }

    /// Chooses what to ask the camera for, given what it offers.
    ///
    /// With `auto`, H.264 from the camera wins (nothing to encode), then raw,
    /// then MJPEG. An explicit encoder skips camera H.264; `passthrough`
    /// requires it.
    pub fn choose_format(&self, device_caps: &gst::Caps) -> Result<V4l2Format, CaptureError> {
        let offers = |media: &str| device_caps.can_intersect(&sized_caps(media, None, &self.opts));
        let (h264, raw, jpeg) = (
            offers("video/x-h264"),
            offers("video/x-raw"),
            offers("image/jpeg"),
        );
        let format = match self.opts.encoder {
            EncoderKind::Passthrough if h264 => Some(V4l2Format::H264),
            EncoderKind::Passthrough => None,
            EncoderKind::Auto if h264 => Some(V4l2Format::H264),
            _ if raw => Some(V4l2Format::Raw),
            _ if jpeg => Some(V4l2Format::Mjpeg),
            _ => None,
        };
        format.ok_or_else(|| {
            let wanted = if self.opts.encoder == EncoderKind::Passthrough {
                "H.264"
            } else {
                "raw, MJPEG or H.264"
            };
            CaptureError::Unsupported {
                source_name: self.describe(),
                detail: format!(
                    "the camera offers no {wanted} at {}x{}@{}; it offers: {}",
                    self.opts.width,
                    self.opts.height,
                    self.opts.fps,
                    summarize_caps(device_caps)
                ),
            }
        })
    }

    /// Builds the pipeline for `format` without opening the device.
    pub fn build(&self, format: V4l2Format) -> Result<gst::Pipeline, CaptureError> {
        Ok(self.plan_for(format)?.pipeline)
    }

    fn plan_for(&self, format: V4l2Format) -> Result<pipeline::Plan, CaptureError> {
        let label = self.describe();
        let src = make(&label, "v4l2src", "gstreamer1.0-plugins-good")?;
        src.set_property("device", self.device.to_string_lossy().as_ref());
        // Camera timestamps, not arrival times: UVC frames can arrive in bursts.
        src.set_property("do-timestamp", false);
        let filter = make(&label, "capsfilter", "libgstreamer1.0-0")?;
        match format {
            V4l2Format::H264 => {
                filter.set_property("caps", sized_caps("video/x-h264", None, &self.opts));
                let [parse, out_caps] = pipeline::parse_chain(&label, Codec::H264)?;
                pipeline::linear_plan(
                    label,
                    "capture-v4l2",
                    vec![src, filter, parse, out_caps],
                    pipeline::appsink(false),
                    "passthrough",
                    pipeline::StartMode::Play,
                )
            }
            V4l2Format::Raw => {
                filter.set_property("caps", sized_caps("video/x-raw", None, &self.opts));
                crate::raw_plan(label, vec![src, filter], &self.opts)
            }
            V4l2Format::Mjpeg => {
                filter.set_property("caps", sized_caps("image/jpeg", None, &self.opts));
                let dec = make(&label, "jpegdec", "gstreamer1.0-plugins-good")?;
                crate::raw_plan(label, vec![src, filter, dec], &self.opts)
            }
        }
    }
}

impl CameraCapture for V4l2Camera {
    fn describe(&self) -> String {
        format!("v4l2:{}", self.device.display())
    }

    fn start(&self, out: FrameSender) -> Result<Running, CaptureError> {
        let caps = self.probe_caps()?;
        let format = self.choose_format(&caps)?;
        tracing::info!(source = %self.describe(), ?format, "v4l2 format");
        pipeline::start(self.plan_for(format)?, out)
    }

    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: reallive_core::AudioSender,
    ) -> Result<Running, CaptureError> {
        let caps = self.probe_caps()?;
        let format = self.choose_format(&caps)?;
        tracing::info!(source = %self.describe(), ?format, audio = %self.opts.audio, "v4l2 format");
        pipeline::start_with_audio(self.plan_for(format)?, out, &self.opts.audio, audio)
    }
}

/// One line per distinct media type/format, e.g. `image/jpeg, video/x-raw YUY2`.
pub(crate) fn summarize_caps(caps: &gst::Caps) -> String {
    let mut seen: Vec<String> = Vec::new();
    for s in caps.iter() {
        let entry = match s.get::<String>("format") {
            Ok(f) => format!("{} {f}", s.name()),
            Err(_) => s.name().to_string(),
        };
        if !seen.contains(&entry) {
            seen.push(entry);
        }
    }
    if seen.is_empty() {
        "nothing".into()
    } else {
        seen.join(", ")
    }
}
