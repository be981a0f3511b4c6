use gstreamer as gst;
use gstreamer::prelude::*;

use crate::{EncodeError, Encoder, EncoderKind, EncoderSettings, H264Profile};

/// Creates an element, or says which package provides it.
fn make(factory: &'static str, package: &'static str) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| EncodeError::MissingElement {
            element: factory,
            package,
        })
}

fn require(factory: &'static str, package: &'static str) -> Result<(), EncodeError> {
    if crate::element_exists(factory) {
        Ok(())
    } else {
        Err(EncodeError::MissingElement {
            element: factory,
            package,
        })
    }
}

fn h264_caps(profile: Option<H264Profile>) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au");
    if let Some(p) = profile {
        caps = caps.field("profile", p.caps_name());
    }
    caps.build()
}

fn capsfilter(caps: gst::Caps) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", caps)
        .build()
        .map_err(|_| EncodeError::MissingElement {
            element: "capsfilter",
            package: "libgstreamer1.0-0",
        })
}

/// Links `elements` in order inside a new bin with `sink` and `src` ghost pads.
fn chain_bin(name: &'static str, elements: &[gst::Element]) -> Result<gst::Bin, EncodeError> {
    let build = |detail: String| EncodeError::Build {
        encoder: name,
        detail,
    };
    let bin = gst::Bin::builder().name(format!("{name}-encoder")).build();
    crate::add_linked(&bin, elements).map_err(build)?;
    let (Some(first), Some(last)) = (elements.first(), elements.last()) else {
        return Err(build("empty element chain".into()));
    };
    let ghost = |el: &gst::Element, pad: &str| -> Result<gst::GhostPad, EncodeError> {
        let target = el
            .static_pad(pad)
            .ok_or_else(|| build(format!("{} has no {pad} pad", el.name())))?;
        gst::GhostPad::builder_with_target(&target)
            .map(|b| b.name(pad).build())
            .map_err(|e| build(e.to_string()))
    };
    bin.add_pad(&ghost(first, "sink")?)
        .map_err(|e| build(e.to_string()))?;
    bin.add_pad(&ghost(last, "src")?)
        .map_err(|e| build(e.to_string()))?;
    Ok(bin)
}

/// Software H.264 with x264, tuned for latency: no lookahead, no B-frames,
/// sliced threads, constrained baseline.
#[derive(Clone, Copy, Debug, Default)]
pub struct X264;

impl Encoder for X264 {
    fn name(&self) -> &'static str {
        "x264"
    }

    fn probe(&self) -> Result<(), EncodeError> {
        require("x264enc", "gstreamer1.0-plugins-ugly")
    }

    fn build(&self, s: &EncoderSettings) -> Result<gst::Bin, EncodeError> {
        s.validate()?;
        let convert = make("videoconvert", "gstreamer1.0-plugins-base")?;
        let enc = make("x264enc", "gstreamer1.0-plugins-ugly")?;
        enc.set_property_from_str("tune", "zerolatency");
        enc.set_property_from_str("speed-preset", s.x264_preset.name());
        enc.set_property("bitrate", s.bitrate_kbps);
        enc.set_property("key-int-max", s.keyframe_interval);
        enc.set_property("bframes", 0u32);
        enc.set_property("byte-stream", true);
        // An AUD per frame costs 6 bytes and nothing downstream needs it.
        enc.set_property("aud", false);
        // Without this x264 drifts to ~2 s VBV, which shows up as bursts
        // that overflow WebRTC pacers; one frame period keeps output even.
        enc.set_property("vbv-buf-capacity", 1000u32);
        // x264 picks the profile from the downstream caps.
        let caps = capsfilter(h264_caps(Some(s.profile)))?;
        chain_bin("x264", &[convert, enc, caps])
    }
}

/// Software H.264 with Cisco's openh264: constrained baseline only.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenH264;

impl Encoder for OpenH264 {
    fn name(&self) -> &'static str {
        "openh264"
    }

    fn probe(&self) -> Result<(), EncodeError> {
        require("openh264enc", "gstreamer1.0-plugins-bad")
    }

    fn build(&self, s: &EncoderSettings) -> Result<gst::Bin, EncodeError> {
        s.validate()?;
        let convert = make("videoconvert", "gstreamer1.0-plugins-base")?;
        let enc = make("openh264enc", "gstreamer1.0-plugins-bad")?;
        enc.set_property("bitrate", s.bitrate_kbps.saturating_mul(1000));
        enc.set_property("gop-size", s.keyframe_interval);
        enc.set_property_from_str("rate-control", "bitrate");
        enc.set_property_from_str("usage-type", "camera");
        enc.set_property_from_str("complexity", "low");
        // Skipped frames would break the one-AU-per-input-frame contract.
        enc.set_property("enable-frame-skip", false);
        let caps = capsfilter(h264_caps(Some(H264Profile::ConstrainedBaseline)))?;
        chain_bin("openh264", &[convert, enc, caps])
    }
}

/// Hardware H.264 through a V4L2 memory-to-memory encoder (`v4l2h264enc`),
/// as on the Raspberry Pi 4 and earlier. The Pi 5 has none.
#[derive(Clone, Copy, Debug, Default)]
pub struct V4l2M2m;

impl Encoder for V4l2M2m {
    fn name(&self) -> &'static str {
        "v4l2m2m"
    }

    fn probe(&self) -> Result<(), EncodeError> {
        // The element is registered only when the plugin scan found an M2M
        // encoder device; opening it (READY) proves the device still works.
        // With the plugin there and no element, there is no device: not a
        // package to install.
        let enc =
            make("v4l2h264enc", "gstreamer1.0-plugins-good").map_err(
                |e| match gst::Registry::get().find_plugin("video4linux2") {
                    Some(_) => EncodeError::NoDevice {
                        element: "v4l2h264enc",
                    },
                    None => e,
                },
            )?;
        let ready = enc.set_state(gst::State::Ready);
        let _ = enc.set_state(gst::State::Null);
        ready.map(|_| ()).map_err(|_| EncodeError::DeviceUnusable {
            element: "v4l2h264enc",
        })
    }

    fn build(&self, s: &EncoderSettings) -> Result<gst::Bin, EncodeError> {
        s.validate()?;
        let convert = make("videoconvert", "gstreamer1.0-plugins-base")?;
        let enc = make("v4l2h264enc", "gstreamer1.0-plugins-good")?;
        let controls = gst::Structure::builder("controls")
            .field("video_bitrate", s.bitrate_kbps.saturating_mul(1000) as i32)
            .field("h264_i_frame_period", s.keyframe_interval as i32)
            // SPS/PPS with every IDR, from the encoder itself.
            .field("repeat_sequence_header", 1i32)
            .build();
        enc.set_property("extra-controls", controls);
        // The bcm2835 encoder needs profile and level fixed in caps to negotiate.
        let caps = gst::Caps::builder("video/x-h264")
            .field("profile", s.profile.caps_name())
            .field("level", "4")
            .build();
        let caps = capsfilter(caps)?;
        chain_bin("v4l2m2m", &[convert, enc, caps])
    }
}

/// No encoding: for sources that already deliver H.264.
#[derive(Clone, Copy, Debug, Default)]
pub struct Passthrough;

impl Encoder for Passthrough {
    fn name(&self) -> &'static str {
        "passthrough"
    }

    fn is_passthrough(&self) -> bool {
        true
    }

    fn probe(&self) -> Result<(), EncodeError> {
        Ok(())
    }

    fn build(&self, _: &EncoderSettings) -> Result<gst::Bin, EncodeError> {
        let identity = make("identity", "libgstreamer1.0-0")?;
        chain_bin("passthrough", &[identity])
    }
}

/// Resolves `kind` to a usable encoder, probing hardware at runtime.
///
/// `Auto` tries v4l2m2m, x264 and openh264 in that order and logs which it
/// took and why the others were passed over. An explicit kind is probed too,
/// so a missing element fails here with the package to install rather than
/// later inside a pipeline.
pub fn select(kind: EncoderKind) -> Result<Box<dyn Encoder>, EncodeError> {
    let chosen: Box<dyn Encoder> = match kind {
        EncoderKind::X264 => Box::new(X264),
        EncoderKind::OpenH264 => Box::new(OpenH264),
        EncoderKind::V4l2M2m => Box::new(V4l2M2m),
        EncoderKind::Passthrough => Box::new(Passthrough),
        EncoderKind::Auto => {
            let candidates: [Box<dyn Encoder>; 3] =
                [Box::new(V4l2M2m), Box::new(X264), Box::new(OpenH264)];
            let mut tried = Vec::new();
            for enc in candidates {
                match enc.probe() {
                    Ok(()) => {
                        tracing::info!(
                            encoder = enc.name(),
                            passed_over = %tried.join("; "),
                            "auto-selected H.264 encoder"
                        );
                        return Ok(enc);
                    }
                    Err(e) => tried.push(format!("{}: {e}", enc.name())),
                }
            }
            return Err(EncodeError::NoneAvailable {
                tried: tried.join("; "),
            });
        }
    };
    chosen.probe()?;
    Ok(chosen)
}
