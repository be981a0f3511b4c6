//! The capture flags, for a program's clap parser (feature `cli`).

use std::str::FromStr as _;

use reallive_encode::{EncoderKind, EncoderSettings, X264Preset};

use crate::{AudioInput, CaptureOptions, RtspBackend, RtspTransport};

/// How to capture and encode, as command-line flags (`--width`,
/// `--encoder`, `--rtsp-transport`, …): `#[command(flatten)]` it into a
/// program's parser and call [`CaptureFlags::options`]. The source itself
/// (`--source`) stays with the program, which parses it into a
/// [`Source`](crate::Source).
#[derive(Clone, Debug, clap::Args)]
pub struct CaptureFlags {
    /// H.264 encoder: auto, x264, openh264, v4l2m2m or passthrough.
    #[arg(long, default_value = "auto", value_parser = EncoderKind::from_str)]
    pub encoder: EncoderKind,

    /// Picture width (sources that are encoded here).
    #[arg(long, default_value_t = 1280)]
    pub width: u32,

    /// Picture height.
    #[arg(long, default_value_t = 720)]
    pub height: u32,

    /// Frames per second.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,

    /// Target bitrate in kbit/s.
    #[arg(long, default_value_t = 2000)]
    pub bitrate_kbps: u32,

    /// Frames between keyframes [default: one second's worth].
    #[arg(long, value_name = "FRAMES")]
    pub keyframe_interval: Option<u32>,

    /// x264 speed preset: ultrafast, superfast, veryfast, faster, fast, medium.
    #[arg(long, default_value = "ultrafast", value_parser = X264Preset::from_str)]
    pub x264_preset: X264Preset,

    /// RTSP transport: tcp or udp.
    #[arg(long, default_value = "tcp", value_parser = parse_transport)]
    pub rtsp_transport: RtspTransport,

    /// RTSP client: retina (no GStreamer; the default) or gstreamer
    /// (rtspsrc, for cameras retina cannot read).
    #[arg(long, default_value = "retina", value_parser = parse_backend)]
    pub rtsp_backend: RtspBackend,

    /// Loop file sources forever.
    #[arg(long = "loop")]
    pub loop_file: bool,

    /// Draw the running time on the test pattern.
    #[arg(long)]
    pub timestamp_overlay: bool,

    /// Sound beside the video, encoded to Opus: none, test (a tick every
    /// second), alsa, alsa:DEVICE, pulse or pulse:DEVICE [default: alsa for
    /// a camera when the machine has a capture device, else none].
    #[arg(long, value_name = "INPUT", value_parser = AudioInput::from_str)]
    pub audio: Option<AudioInput>,
}

impl CaptureFlags {
    /// The options these flags ask for, the rest at their defaults, for
    /// `source` (which decides the default `--audio`); not yet checked
    /// (see [`CaptureOptions::validate`]).
    pub fn options_for(&self, source: &crate::Source) -> CaptureOptions {
        CaptureOptions {
            audio: self
                .audio
                .clone()
                .unwrap_or_else(|| AudioInput::default_for(source)),
            ..self.options()
        }
    }

    /// The options these flags ask for, the rest at their defaults (no
    /// audio unless `--audio` asks); not yet checked (see
    /// [`CaptureOptions::validate`]).
    pub fn options(&self) -> CaptureOptions {
        CaptureOptions {
            width: self.width,
            height: self.height,
            fps: self.fps,
            encoder: self.encoder,
            encoder_settings: EncoderSettings {
                bitrate_kbps: self.bitrate_kbps,
                keyframe_interval: self.keyframe_interval.unwrap_or(self.fps),
                x264_preset: self.x264_preset,
                ..EncoderSettings::default()
            },
            rtsp_transport: self.rtsp_transport,
            rtsp_backend: self.rtsp_backend,
            loop_file: self.loop_file,
            timestamp_overlay: self.timestamp_overlay,
            audio: self.audio.clone().unwrap_or_default(),
            ..CaptureOptions::default()
        }
    }
}

/// clap already names the flag and the value; this says what would do.
fn parse_transport(s: &str) -> Result<RtspTransport, &'static str> {
    s.parse().map_err(|_| "expected tcp or udp")
}

fn parse_backend(s: &str) -> Result<RtspBackend, &'static str> {
    s.parse().map_err(|_| "expected retina or gstreamer")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        capture: CaptureFlags,
    }

    fn options(args: &[&str]) -> CaptureOptions {
        Cli::try_parse_from(std::iter::once("prog").chain(args.iter().copied()))
            .unwrap()
            .capture
            .options()
    }

    #[test]
    fn no_flags_are_the_default_options() {
        assert_eq!(options(&[]), CaptureOptions::default());
    }

    #[test]
    fn flags_set_options_and_a_keyframe_a_second_by_default() {
        let o = options(&[
            "--fps",
            "25",
            "--width",
            "640",
            "--height",
            "480",
            "--encoder",
            "x264",
            "--rtsp-transport",
            "udp",
            "--loop",
        ]);
        assert_eq!((o.width, o.height, o.fps), (640, 480, 25));
        assert_eq!(o.encoder, EncoderKind::X264);
        assert_eq!(o.encoder_settings.keyframe_interval, 25);
        assert_eq!(o.rtsp_transport, RtspTransport::Udp);
        assert!(o.loop_file && !o.timestamp_overlay);
        let o = options(&["--keyframe-interval", "60", "--bitrate-kbps", "500"]);
        assert_eq!(o.encoder_settings.keyframe_interval, 60);
        assert_eq!(o.encoder_settings.bitrate_kbps, 500);
    }

    #[test]
    fn a_bad_value_names_the_flag_and_what_would_do() {
        let err = Cli::try_parse_from(["prog", "--rtsp-transport", "quic"]).unwrap_err();
        assert!(
            err.to_string().contains(
                "invalid value 'quic' for '--rtsp-transport <RTSP_TRANSPORT>': expected tcp or udp"
            ),
            "{err}"
        );
    }
}
