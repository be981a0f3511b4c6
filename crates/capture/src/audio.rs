//! A capture's microphone: [`AudioInput`], encoded to Opus in the same
//! pipeline as the video, so both are stamped from its one clock
//! (`docs/design/audio.md`).
//!
//! `src ! queue ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1
//! ! opusenc (32 kbit/s, 20 ms frames, in-band FEC) ! appsink`, whose packets
//! become [`AudioFrame`]s with their running time in 90 kHz ticks, offered
//! to a bounded [`AudioSender`] from the streaming thread without blocking.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::time::ns_to_90k;
use reallive_core::{AudioFrame, AudioParameters, AudioSender, Offer};

use crate::pipeline::{internal, make, set_enum};
use crate::{CaptureError, Source};

pub use reallive_encode::audio::OPUS_BITRATE;

/// One Opus frame: 20 ms, in 90 kHz ticks.
const FRAME_90K: u32 = 1_800;

/// `--audio test` ticks once per this much running time, starting at zero;
/// the test pattern flashes on the same beat (`test_pattern.rs`).
pub(crate) const TICK_INTERVAL_NS: u64 = 1_000_000_000;

/// Where a capture's sound comes from (`--audio`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum AudioInput {
    /// No audio track.
    #[default]
    None,
    /// A test signal: a short tick at the start of every second of running
    /// time, for sync measurements.
    Test,
    /// An ALSA capture device (`hw:1`, `plughw:CARD=Device`), or ALSA's
    /// default.
    Alsa(Option<String>),
    /// A PulseAudio (or PipeWire-Pulse) source, or the default one.
    Pulse(Option<String>),
}

impl AudioInput {
    /// What `--audio` means when not given: a camera on this machine gets
    /// the default ALSA microphone if the kernel lists a capture device;
    /// the test pattern, files and RTSP cameras get none.
    pub fn default_for(source: &Source) -> Self {
        match source {
            Source::V4l2 { .. } | Source::Libcamera { .. } if alsa_capture_exists() => {
                AudioInput::Alsa(None)
            }
            _ => AudioInput::None,
        }
    }

    /// Whether there is audio to capture.
    pub fn is_some(&self) -> bool {
        *self != AudioInput::None
    }
}

/// `/proc/asound/pcm` lists `NN-NN: id : name : playback 1 : capture 1`.
fn alsa_capture_exists() -> bool {
    std::fs::read_to_string("/proc/asound/pcm")
        .is_ok_and(|s| s.lines().any(|l| l.contains("capture")))
}

impl fmt::Display for AudioInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioInput::None => f.write_str("none"),
            AudioInput::Test => f.write_str("test"),
            AudioInput::Alsa(None) => f.write_str("alsa"),
            AudioInput::Alsa(Some(d)) => write!(f, "alsa:{d}"),
            AudioInput::Pulse(None) => f.write_str("pulse"),
            AudioInput::Pulse(Some(d)) => write!(f, "pulse:{d}"),
        }
    }
}

impl FromStr for AudioInput {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, device) = match s.split_once(':') {
            Some((k, d)) => (k, Some(d)),
            None => (s, None),
        };
        let device = match device {
            Some("") => return Err(format!("'{s}': the device after ':' is empty")),
            Some(d) if d.chars().any(char::is_control) => {
                return Err(format!(
                    "'{}': a control character in the device",
                    s.escape_debug()
                ));
            }
            d => d.map(str::to_owned),
        };
        match (kind, device) {
            ("none", None) => Ok(AudioInput::None),
            ("test", None) => Ok(AudioInput::Test),
            ("alsa", d) => Ok(AudioInput::Alsa(d)),
            ("pulse", d) => Ok(AudioInput::Pulse(d)),
            ("none" | "test", Some(_)) => Err(format!("'{s}': {kind} takes no device")),
            _ => Err(format!(
                "'{s}': expected none, test, alsa[:device] or pulse[:device]"
            )),
        }
    }
}

/// Adds `input`'s branch to `pipeline`, its packets going to `out`. Call
/// before the pipeline starts. Fails if an element is missing (naming the
/// package), never later because of the device: a microphone that fails
/// once running is an error on the bus, like a camera's.
pub(crate) fn add_branch(
    pipeline: &gst::Pipeline,
    label: &str,
    input: &AudioInput,
    out: AudioSender,
) -> Result<(), CaptureError> {
    let src = match input {
        AudioInput::None => return Ok(()),
        AudioInput::Test => {
            let src = make(label, "audiotestsrc", "gstreamer1.0-plugins-base")?;
            src.set_property("is-live", true);
            set_enum(&src, "wave", "ticks").map_err(|e| internal(label, e))?;
            // A 1 kHz tick, 10 ms long, at every whole second of running
            // time: the click the sync measurement listens for.
            src.set_property("freq", 1000.0f64);
            src.set_property("sine-periods-per-tick", 10u32);
            src.set_property("tick-interval", TICK_INTERVAL_NS);
            src.set_property("volume", 0.5f64);
            src
        }
        AudioInput::Alsa(device) => {
            let src = make(label, "alsasrc", "gstreamer1.0-alsa")?;
            if let Some(d) = device {
                src.set_property("device", d);
            }
            src
        }
        AudioInput::Pulse(device) => {
            let src = make(label, "pulsesrc", "gstreamer1.0-pulseaudio")?;
            if let Some(d) = device {
                src.set_property("device", d);
            }
            src
        }
    };
    let queue = make(label, "queue", "libgstreamer1.0-0")?;
    // A few frames of slack between the microphone and the encoder, and
    // never a wait: an encoder that falls behind loses audio, not video.
    queue.set_property("max-size-time", 200_000_000u64);
    queue.set_property("max-size-buffers", 0u32);
    queue.set_property("max-size-bytes", 0u32);
    set_enum(&queue, "leaky", "downstream").map_err(|e| internal(label, e))?;
    let convert = make(label, "audioconvert", "gstreamer1.0-plugins-base")?;
    let resample = make(label, "audioresample", "gstreamer1.0-plugins-base")?;
    let caps = make(label, "capsfilter", "libgstreamer1.0-0")?;
    caps.set_property(
        "caps",
        gst::Caps::builder("audio/x-raw")
            .field("rate", 48_000i32)
            .field("channels", 1i32)
            .build(),
    );
    // The one Opus encoder: the same settings as a camera's sound
    // transcoded live.
    let enc = reallive_encode::audio::opus_encoder().map_err(|error| CaptureError::Encoder {
        source_name: label.to_string(),
        error,
    })?;
    let sink = gst_app::AppSink::builder()
        .name("audio")
        .sync(false)
        .max_buffers(16)
        .drop(true)
        .enable_last_sample(false)
        .build();
    let chain = [
        src,
        queue,
        convert,
        resample,
        caps,
        enc,
        sink.clone().upcast(),
    ];
    pipeline.add_many(&chain).map_err(|e| internal(label, e))?;
    gst::Element::link_many(&chain).map_err(|e| internal(label, e))?;
    let params = Arc::new(AudioParameters::opus(1));
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(frame) = to_frame(&sample, &params) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                match out.offer(frame) {
                    Offer::Sent | Offer::Dropped => Ok(gst::FlowSuccess::Ok),
                    // Nobody wants the audio any more; the video goes on.
                    Offer::Closed => Err(gst::FlowError::Eos),
                }
            })
            .build(),
    );
    Ok(())
}

/// An Opus packet with its running time; `None` for one without a
/// timestamp (nothing to place it by).
fn to_frame(sample: &gst::Sample, params: &Arc<AudioParameters>) -> Option<AudioFrame> {
    let buffer = sample.buffer_owned()?;
    let segment = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::format::Time>());
    let pts = buffer.pts()?;
    let running = segment.and_then(|s| s.to_running_time(pts)).unwrap_or(pts);
    let duration_90k = buffer
        .duration()
        .and_then(|d| u32::try_from(ns_to_90k(d.nseconds())).ok())
        .filter(|&d| d > 0)
        .unwrap_or(FRAME_90K);
    let data = Bytes::from_owner(buffer.into_mapped_buffer_readable().ok()?);
    Some(AudioFrame {
        data,
        pts_90k: ns_to_90k(running.nseconds()),
        duration_90k,
        params: params.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        assert_eq!("none".parse(), Ok(AudioInput::None));
        assert_eq!("test".parse(), Ok(AudioInput::Test));
        assert_eq!("alsa".parse(), Ok(AudioInput::Alsa(None)));
        assert_eq!(
            "alsa:plughw:CARD=Device".parse(),
            Ok(AudioInput::Alsa(Some("plughw:CARD=Device".into())))
        );
        assert_eq!("pulse".parse(), Ok(AudioInput::Pulse(None)));
        for s in ["alsa:hw:1", "pulse:mic", "test", "none"] {
            assert_eq!(s.parse::<AudioInput>().unwrap().to_string(), s);
        }
        for bad in ["", "mic", "alsa:", "test:x", "pulse:a\nb"] {
            assert!(bad.parse::<AudioInput>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_test_pattern_and_rtsp_default_to_no_audio() {
        assert_eq!(
            AudioInput::default_for(&"test".parse().unwrap()),
            AudioInput::None
        );
        assert_eq!(
            AudioInput::default_for(&"rtsp://cam/stream".parse().unwrap()),
            AudioInput::None
        );
    }
}
