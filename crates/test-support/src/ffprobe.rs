//! Reading a media file the way a user would check it: with ffprobe.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

/// What ffprobe reports about the first video stream of a file.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoProbe {
    /// `h264`, `hevc`, ...
    pub codec_name: String,
    /// e.g. `Constrained Baseline`.
    pub profile: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames ffprobe decoded (`-count_frames`).
    pub frames: u64,
    /// Whether the stream declares reordering (B-frames).
    pub has_b_frames: u32,
    /// Container duration in seconds, when it has one.
    pub duration_secs: Option<f64>,
    /// Presentation timestamps of every frame, in seconds, in decode order.
    pub frame_pts: Vec<f64>,
    /// Which frames ffprobe marks as keyframes, in decode order.
    pub keyframes: Vec<bool>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    #[serde(default)]
    packets: Vec<Packet>,
    format: Option<Format>,
}

#[derive(Deserialize)]
struct Stream {
    codec_name: String,
    #[serde(default)]
    profile: String,
    width: u32,
    height: u32,
    nb_read_frames: Option<String>,
    has_b_frames: Option<u32>,
}

#[derive(Deserialize)]
struct Packet {
    pts_time: Option<String>,
    flags: Option<String>,
}

#[derive(Deserialize)]
struct Format {
    duration: Option<String>,
}

/// Runs ffprobe on `path`, decoding every frame, and panics with ffprobe's
/// stderr when the file does not read as video.
pub fn probe(path: &Path) -> VideoProbe {
    try_probe(path).unwrap_or_else(|e| panic!("ffprobe {}: {e}", path.display()))
}

/// Why a file did not probe.
#[derive(Debug)]
pub enum ProbeError {
    /// ffprobe could not be run (install ffmpeg).
    Run(std::io::Error),
    /// ffprobe refused the file; its stderr.
    Rejected(String),
    /// ffprobe's JSON did not parse.
    Parse(serde_json::Error),
    /// The file has no video stream.
    NoVideo,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Run(e) => write!(f, "cannot run ffprobe (install ffmpeg): {e}"),
            ProbeError::Rejected(stderr) => f.write_str(stderr),
            ProbeError::Parse(e) => write!(f, "ffprobe's output: {e}"),
            ProbeError::NoVideo => f.write_str("no video stream"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Like [`probe`], returning ffprobe's complaint instead of panicking.
pub fn try_probe(path: &Path) -> Result<VideoProbe, ProbeError> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,profile,width,height,nb_read_frames,has_b_frames:format=duration:packet=pts_time,flags",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .map_err(ProbeError::Run)?;
    if !out.status.success() {
        return Err(ProbeError::Rejected(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let parsed: Output = serde_json::from_slice(&out.stdout).map_err(ProbeError::Parse)?;
    let s = parsed
        .streams
        .into_iter()
        .next()
        .ok_or(ProbeError::NoVideo)?;
    Ok(VideoProbe {
        codec_name: s.codec_name,
        profile: s.profile,
        width: s.width,
        height: s.height,
        frames: s.nb_read_frames.and_then(|n| n.parse().ok()).unwrap_or(0),
        has_b_frames: s.has_b_frames.unwrap_or(0),
        duration_secs: parsed
            .format
            .and_then(|f| f.duration)
            .and_then(|d| d.parse().ok()),
        frame_pts: parsed
            .packets
            .iter()
            .filter_map(|p| p.pts_time.as_deref()?.parse().ok())
            .collect(),
        keyframes: parsed
            .packets
            .iter()
            .map(|p| p.flags.as_deref().is_some_and(|f| f.starts_with('K')))
            .collect(),
    })
}
