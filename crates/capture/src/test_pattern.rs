use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use reallive_core::{AudioSender, FrameSender};

use crate::audio::TICK_INTERVAL_NS;
use crate::pipeline::{self, internal, make, set_enum};
use crate::{AudioInput, CameraCapture, CaptureError, CaptureOptions, Running, sized_caps};

/// How long the picture stays white after each tick of `--audio test`:
/// three frames at 30 fps, one at 10 fps, so every rate shows it.
const FLASH_NS: u64 = 100_000_000;

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
        if self.opts.audio == AudioInput::Test {
            flash_on_ticks(&label, &caps, &self.opts)?;
        }
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

/// Whether a frame at `running_ns` of running time is part of a flash: the
/// first [`FLASH_NS`] after each of the test tone's ticks.
fn in_flash(running_ns: u64) -> bool {
    running_ns % TICK_INTERVAL_NS < FLASH_NS
}

/// Paints every raw frame inside a flash white (Y 235, chroma 128), so a
/// viewer can see the tick it hears and measure the two against each other
/// (`docs/design/audio.md`, "Sync, measured"). Both are placed by the
/// running time of one pipeline clock: the tick by audiotestsrc's sample
/// count from zero, the flash by the frame's pts in its segment.
fn flash_on_ticks(
    label: &str,
    caps: &gst::Element,
    opts: &CaptureOptions,
) -> Result<(), CaptureError> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, opts.width, opts.height)
        .build()
        .map_err(|e| internal(label, e))?;
    let pad = caps
        .static_pad("src")
        .ok_or_else(|| internal(label, "capsfilter has no src pad"))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let segment = pad.sticky_event::<gst::event::Segment>(0);
        let Some(buffer) = probe.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let running = buffer.pts().and_then(|pts| {
            match segment
                .as_ref()
                .map(|s| s.segment().downcast_ref::<gst::ClockTime>())
            {
                Some(Some(seg)) => seg.to_running_time(pts),
                _ => Some(pts),
            }
        });
        if running.is_some_and(|t| in_flash(t.nseconds())) {
            // videotestsrc's buffers are its own, but a probe must not
            // assume it: make_mut copies one that is shared.
            if let Ok(mut frame) =
                gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &info)
            {
                for (plane, value) in [(0, 235), (1, 128), (2, 128)] {
                    if let Ok(data) = frame.plane_data_mut(plane) {
                        data.fill(value);
                    }
                }
            }
        }
        gst::PadProbeReturn::Ok
    })
    .ok_or_else(|| internal(label, "cannot watch the test pattern's frames"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_for_the_first_100_ms_of_every_second() {
        const MS: u64 = 1_000_000;
        for (running_ns, white) in [
            (0, true),
            (33 * MS + 333_333, true),
            (66 * MS + 666_667, true),
            (100 * MS - 1, true),
            (100 * MS, false),
            (999 * MS, false),
            (1_000 * MS, true),
            (1_099 * MS, true),
            (1_100 * MS, false),
            (3_600_000 * MS + 50 * MS, true),
        ] {
            assert_eq!(in_flash(running_ns), white, "{running_ns} ns");
        }
    }
}
