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

/// The test pattern's flash and the test tone's click, as a file carries
/// them (`reallive-pusher --source test --audio test`: a white picture and
/// a click on every whole second of running time), by the file's own
/// timestamps (ffmpeg's decoders and the container's edit lists).
///
/// A flash begins somewhere after the last dark frame's pts and at or
/// before the first bright one's: a frame is a sample, 33 ms apart at
/// 30 fps. For each flash, the nearest click within 500 ms, as
/// `(click − first bright frame, how far the click falls outside that
/// interval, the first bright frame's pts)`, in seconds: the second is 0
/// for a click inside it, negative before it, positive after. A flash is the first frame whose mean luma is
/// at least 200 after one below 180; a click is where ffmpeg's
/// `silencedetect` (−30 dB, 0.3 s) ends a silence.
///
/// Panics with ffmpeg's stderr when either track does not decode.
pub fn flash_click_offsets(path: &Path) -> Vec<(f64, f64, f64)> {
    let video = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-vf",
            "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    assert!(
        video.status.success(),
        "ffmpeg (video) {}: {}",
        path.display(),
        String::from_utf8_lossy(&video.stderr)
    );
    // (last dark frame's pts, first bright frame's pts) of each flash.
    let mut flashes = Vec::new();
    let mut pts = None;
    let mut last_dark: Option<f64> = None;
    for line in String::from_utf8_lossy(&video.stdout).lines() {
        if let Some(t) = line.split("pts_time:").nth(1) {
            pts = t
                .split_whitespace()
                .next()
                .and_then(|t| t.parse::<f64>().ok());
        } else if let Some(y) = line.strip_prefix("lavfi.signalstats.YAVG=") {
            let y: f64 = y.trim().parse().unwrap_or(0.0);
            if y >= 200.0 {
                if let (Some(dark), Some(bright)) = (last_dark.take(), pts) {
                    flashes.push((dark, bright));
                }
            } else if y < 180.0 {
                last_dark = pts;
            }
        }
    }
    let audio = Command::new("ffmpeg")
        .args(["-v", "info", "-nostats", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:a:0",
            "-af",
            "silencedetect=n=-30dB:d=0.3",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let err = String::from_utf8_lossy(&audio.stderr);
    assert!(
        audio.status.success(),
        "ffmpeg (audio) {}: {err}",
        path.display()
    );
    let clicks: Vec<f64> = err
        .lines()
        .filter_map(|l| l.split("silence_end: ").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    flashes
        .iter()
        .filter_map(|&(dark, bright)| {
            let click = clicks
                .iter()
                .copied()
                .filter(|c| (c - bright).abs() <= 0.5)
                .min_by(|a, b| (a - bright).abs().total_cmp(&(b - bright).abs()))?;
            let outside = if click <= dark {
                click - dark
            } else if click > bright {
                click - bright
            } else {
                0.0
            };
            Some((click - bright, outside, bright))
        })
        .collect()
}
