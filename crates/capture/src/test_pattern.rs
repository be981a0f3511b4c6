use gstreamer::prelude::*;
use reallive_core::{AudioSender, FrameSender};

use crate::pipeline::{self, make, set_enum};
use crate::{CameraCapture, CaptureError, CaptureOptions, Running, sized_caps};

/// GStreamer's `videotestsrc`, encoded like a camera.
#[derive(Debug, Clone)]
pub struct TestPattern {
    pattern: String,
    opts: CaptureOptions,
}

impl TestPattern {
    /// A test pattern source; `pattern` is a `videotestsrc` pattern nick.
    pub fn new(pattern: String, opts: CaptureOptions) -> Self {
        TestPattern { pattern, opts }
    }

    pub(crate) fn plan(&self) -> Result<pipeline::Plan, CaptureError> {
        let label = self.describe();
        let src = make(&label, "videotestsrc", "gstreamer1.0-plugins-base")?;
        set_enum(&src, "pattern", &self.pattern).map_err(|reason| CaptureError::InvalidSource {
            input: label.clone(),
            reason,
        })?;
        src.set_property("is-live", self.opts.live);
        if let Some(n) = self.opts.num_buffers {
            src.set_property("num-buffers", i32::try_from(n).unwrap_or(i32::MAX));
        }
        let caps = make(&label, "capsfilter", "libgstreamer1.0-0")?;
        caps.set_property("caps", sized_caps("video/x-raw", Some("I420"), &self.opts));
        let mut chain = vec![src, caps];
        if self.opts.timestamp_overlay {
            let overlay = make(&label, "timeoverlay", "gstreamer1.0-x")?;
            overlay.set_property("font-desc", "Sans 36");
            chain.push(overlay);
        }
        crate::raw_plan(label, chain, &self.opts)
    }
}

impl CameraCapture for TestPattern {
    fn describe(&self) -> String {
        format!("test:{}", self.pattern)
    }

    fn start(&self, out: FrameSender) -> Result<Running, CaptureError> {
        pipeline::start(self.plan()?, out)
    }

    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: AudioSender,
    ) -> Result<Running, CaptureError> {
        pipeline::start_with_audio(self.plan()?, out, &self.opts.audio, audio)
    }
}
