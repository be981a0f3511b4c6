use gstreamer::prelude::*;
use reallive_core::FrameSender;

use crate::pipeline::{self, make};
use crate::{CameraCapture, CaptureError, CaptureOptions, Running, sized_caps};

/// A Raspberry Pi CSI camera (or any libcamera camera) through `libcamerasrc`.
#[derive(Debug, Clone)]
pub struct LibcameraCamera {
    name: Option<String>,
    opts: CaptureOptions,
}

impl LibcameraCamera {
    /// The camera called `name` (libcamera's id), or the first one.
    pub fn new(name: Option<String>, opts: CaptureOptions) -> Self {
        LibcameraCamera { name, opts }
    }

    /// Builds the pipeline without starting it.
    pub fn build(&self) -> Result<gstreamer::Pipeline, CaptureError> {
        Ok(self.plan()?.pipeline)
    }

    pub(crate) fn plan(&self) -> Result<pipeline::Plan, CaptureError> {
        let label = self.describe();
        let src = make(&label, "libcamerasrc", "gstreamer1.0-libcamera")?;
        if let Some(name) = &self.name {
            src.set_property("camera-name", name);
        }
        let caps = make(&label, "capsfilter", "libgstreamer1.0-0")?;
        // NV12 straight from the ISP: the encoders take it without conversion.
        caps.set_property("caps", sized_caps("video/x-raw", Some("NV12"), &self.opts));
        crate::raw_plan(label, vec![src, caps], &self.opts)
    }
}

impl CameraCapture for LibcameraCamera {
    fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("libcamera:{n}"),
            None => "libcamera".into(),
        }
    }

    fn start(&self, out: FrameSender) -> Result<Running, CaptureError> {
        pipeline::start(self.plan()?, out)
    }

    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: reallive_core::AudioSender,
    ) -> Result<Running, CaptureError> {
        pipeline::start_with_audio(self.plan()?, out, &self.opts.audio, audio)
    }
}
