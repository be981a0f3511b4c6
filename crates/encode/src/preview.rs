//! Showing H.264 access units on a local display: `appsrc ! h264parse !
//! decoder ! videoconvert ! queue ! sink`, where the sink is
//! `autovideosink` under X11 or Wayland and `kmssink` on a bare console
//! (a Pi without a desktop).
//!
//! Pushing never blocks: the source holds at most a few frames and drops
//! the oldest when the display falls behind. A preview that fails (the
//! window closed, the display went away) reports it on the next push and
//! never disturbs the caller's other work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::EncodedFrame;

use crate::{EncodeError, element_exists};

/// What the environment offers to show video on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisplayEnv {
    /// `DISPLAY` is set (X11).
    pub x11: bool,
    /// `WAYLAND_DISPLAY` is set.
    pub wayland: bool,
    /// A DRM device exists (`/dev/dri/card*`), for `kmssink` on a console.
    pub drm: bool,
}

impl DisplayEnv {
    /// This process's environment.
    pub fn current() -> Self {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let drm = std::fs::read_dir("/dev/dri").is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("card"))
        });
        DisplayEnv {
            x11: set("DISPLAY"),
            wayland: set("WAYLAND_DISPLAY"),
            drm,
        }
    }
}

/// The sink for `env`: a desktop session's window, else the console's
/// DRM device, else a clear error.
pub fn preview_sink(env: DisplayEnv) -> Result<&'static str, EncodeError> {
    if env.x11 || env.wayland {
        Ok("autovideosink")
    } else if env.drm {
        Ok("kmssink")
    } else {
        Err(EncodeError::NoDisplay(
            "there is no display to preview on: DISPLAY and WAYLAND_DISPLAY are unset and there \
             is no /dev/dri/card* for kmssink; run from a desktop session, or on the console of \
             a machine with a GPU, or leave --preview off"
                .into(),
        ))
    }
}

/// A running preview window (or console output).
#[derive(Debug)]
pub struct Preview {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    decoded: Arc<AtomicU64>,
    failed: Arc<Mutex<Option<String>>>,
}

impl Preview {
    /// Starts a preview showing on `sink` (a GStreamer element name, such
    /// as the one [`preview_sink`] picks; `fakesink` shows nothing).
    pub fn start(sink: &str) -> Result<Preview, EncodeError> {
        let decoder = Preview::check(sink)?;
        let make = |name: &str| {
            gst::ElementFactory::make(name)
                .build()
                .map_err(|e| build_error(format!("{name}: {e}")))
        };
        let src = crate::h264_appsrc();
        // Shown as it arrives: timed by arrival.
        src.set_is_live(true);
        src.set_do_timestamp(true);
        let parse = make("h264parse")?;
        let decode = make(decoder)?;
        let convert = make("videoconvert")?;
        let queue = gst::ElementFactory::make("queue")
            .property_from_str("leaky", "downstream")
            .property("max-size-buffers", 2u32)
            .property("max-size-bytes", 0u32)
            .property("max-size-time", 0u64)
            .build()
            .map_err(|e| build_error(format!("queue: {e}")))?;
        let out = make(sink)?;
        let pipeline = gst::Pipeline::new();
        let elements = [src.upcast_ref(), &parse, &decode, &convert, &queue, &out];
        crate::add_linked(&pipeline, &elements).map_err(build_error)?;

        let decoded = Arc::new(AtomicU64::new(0));
        let counter = decoded.clone();
        if let Some(pad) = convert.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        let failed: Arc<Mutex<Option<String>>> = Arc::default();
        let slot = failed.clone();
        if let Some(bus) = pipeline.bus() {
            bus.set_sync_handler(move |_, msg| {
                if let gst::MessageView::Error(e) = msg.view() {
                    let why = e.error().to_string();
                    tracing::warn!("preview: {why}");
                    if let Ok(mut s) = slot.lock() {
                        s.get_or_insert(why);
                    }
                }
                gst::BusSyncReply::Drop
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| build_error(format!("{sink} would not start")))?;
        Ok(Preview {
            pipeline,
            src,
            decoded,
            failed,
        })
    }

    /// Checks that a preview on `sink` can be built here (the sink and an
    /// H.264 decoder are installed), without opening the display; returns
    /// the decoder it would use.
    pub fn check(sink: &str) -> Result<&'static str, EncodeError> {
        gst::init().map_err(|e| build_error(e.to_string()))?;
        if !element_exists(sink) {
            return Err(EncodeError::InvalidArgument(format!(
                "GStreamer element '{sink}' is not installed (for autovideosink and kmssink: \
                 gstreamer1.0-plugins-good and gstreamer1.0-plugins-bad)"
            )));
        }
        crate::h264_decoder()
    }

    /// Shows one access unit. Never blocks; an error means the preview has
    /// stopped (and says why), not that this frame was bad.
    pub fn push(&self, frame: &EncodedFrame) -> Result<(), EncodeError> {
        if let Some(why) = self.failed.lock().ok().and_then(|s| s.clone()) {
            return Err(EncodeError::NoDisplay(format!(
                "the preview stopped: {why}"
            )));
        }
        let mut buffer = gst::Buffer::from_slice(frame.data.clone());
        if !frame.keyframe
            && let Some(b) = buffer.get_mut()
        {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        self.src
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| EncodeError::NoDisplay(format!("the preview stopped: {e:?}")))
    }

    /// Frames decoded so far.
    pub fn decoded_frames(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }
}

impl Drop for Preview {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn build_error(detail: String) -> EncodeError {
    EncodeError::Build {
        encoder: "preview",
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sink_follows_the_display() {
        let env = |x11, wayland, drm| DisplayEnv { x11, wayland, drm };
        for (e, want) in [
            (env(true, false, false), Some("autovideosink")),
            (env(false, true, true), Some("autovideosink")),
            (env(false, false, true), Some("kmssink")),
            (env(false, false, false), None),
        ] {
            assert_eq!(preview_sink(e).ok(), want, "{e:?}");
        }
        let err = preview_sink(env(false, false, false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no display") && err.contains("--preview"),
            "{err}"
        );
    }
}
