use std::fmt;
use std::str::FromStr;

use crate::EncodeError;

/// Which encoder backend to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncoderKind {
    /// v4l2m2m where usable, else x264, else openh264.
    #[default]
    Auto,
    /// Software, `x264enc`.
    X264,
    /// Software, `openh264enc`.
    OpenH264,
    /// Hardware, `v4l2h264enc` (Pi 4 and earlier).
    V4l2M2m,
    /// No encoding: the source already delivers H.264.
    Passthrough,
}

impl EncoderKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [EncoderKind; 5] = [
        EncoderKind::Auto,
        EncoderKind::X264,
        EncoderKind::OpenH264,
        EncoderKind::V4l2M2m,
        EncoderKind::Passthrough,
    ];

    /// The name `--encoder` accepts.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Auto => "auto",
            EncoderKind::X264 => "x264",
            EncoderKind::OpenH264 => "openh264",
            EncoderKind::V4l2M2m => "v4l2m2m",
            EncoderKind::Passthrough => "passthrough",
        }
    }
}

impl fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncoderKind {
    type Err = EncodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EncoderKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                EncodeError::InvalidArgument(format!(
                    "unknown encoder '{s}'; expected one of: {}",
                    EncoderKind::ALL.map(EncoderKind::name).join(", ")
                ))
            })
    }
}

/// The H.264 profile to produce. Both have no B-frames and no CABAC, which is
/// what every WebRTC browser decoder accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum H264Profile {
    /// `profile-level-id 42e0xx`: the profile browsers negotiate first.
    #[default]
    ConstrainedBaseline,
    /// Baseline (`42`): allows FMO/ASO, which no encoder here uses.
    Baseline,
}

impl H264Profile {
    /// The GStreamer caps name.
    pub fn caps_name(self) -> &'static str {
        match self {
            H264Profile::ConstrainedBaseline => "constrained-baseline",
            H264Profile::Baseline => "baseline",
        }
    }
}

impl FromStr for H264Profile {
    type Err = EncodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "constrained-baseline" => Ok(H264Profile::ConstrainedBaseline),
            "baseline" => Ok(H264Profile::Baseline),
            _ => Err(EncodeError::InvalidArgument(format!(
                "unknown H.264 profile '{s}'; expected constrained-baseline or baseline"
            ))),
        }
    }
}

/// x264's speed/quality trade-off, fastest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum X264Preset {
    #[default]
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
}

impl X264Preset {
    /// The `speed-preset` value x264enc takes.
    pub fn name(self) -> &'static str {
        match self {
            X264Preset::Ultrafast => "ultrafast",
            X264Preset::Superfast => "superfast",
            X264Preset::Veryfast => "veryfast",
            X264Preset::Faster => "faster",
            X264Preset::Fast => "fast",
            X264Preset::Medium => "medium",
        }
    }
}

impl FromStr for X264Preset {
    type Err = EncodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use X264Preset::*;
        [Ultrafast, Superfast, Veryfast, Faster, Fast, Medium]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| EncodeError::InvalidArgument(format!("unknown x264 preset '{s}'")))
    }
}

/// Rate control and GOP settings common to every encoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncoderSettings {
    /// Target bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Frames between keyframes. One second at 30 fps by default: short
    /// enough that a new viewer or a recording starts quickly.
    pub keyframe_interval: u32,
    /// Output profile.
    pub profile: H264Profile,
    /// x264 only.
    pub x264_preset: X264Preset,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            bitrate_kbps: 2_000,
            keyframe_interval: 30,
            profile: H264Profile::ConstrainedBaseline,
            x264_preset: X264Preset::Ultrafast,
        }
    }
}

impl EncoderSettings {
    /// Rejects settings no encoder can honour.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if !(16..=100_000).contains(&self.bitrate_kbps) {
            return Err(EncodeError::InvalidArgument(format!(
                "bitrate {} kbit/s is outside 16..=100000",
                self.bitrate_kbps
            )));
        }
        if !(1..=3_600).contains(&self.keyframe_interval) {
            return Err(EncodeError::InvalidArgument(format!(
                "keyframe interval {} frames is outside 1..=3600",
                self.keyframe_interval
            )));
        }
        Ok(())
    }
}
