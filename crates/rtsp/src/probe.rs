//! Probing an RTSP camera before it is saved: "Test connection".
//!
//! [`probe`] runs one `DESCRIBE`, `SETUP` and `PLAY` with `retina` on the
//! caller's tokio runtime, takes the first keyframe and a second of frames,
//! and answers what the camera sends ([`Probe`]) or why it could not
//! ([`ProbeError`], one variant per thing a user can fix). It never takes
//! longer than its timeout, and it is a plain future: dropping it (the
//! client went away) closes the connection, which ends the camera's
//! session, and leaves nothing running.
//!
//! The URL's password goes to retina as credentials, never in the URL it
//! sends, and every message from the camera is redacted before it is
//! returned.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use reallive_core::{Codec, RtspUrl};
use retina::client::{Credentials, PlayOptions, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};

/// How RTP travels from the camera (the same as [`crate::Transport`]).
pub type ProbeTransport = crate::ingest::Transport;

/// What a camera sends.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// H.264 or H.265.
    pub codec: Codec,
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Frames per second, from the stream's timing or measured over the
    /// first frames; `None` when neither told.
    pub fps: Option<f64>,
    /// The audio tracks the camera offers.
    pub audio: Vec<ProbeAudio>,
    /// The first keyframe, for a snapshot.
    pub keyframe: ProbeKeyframe,
}

/// An audio track of a camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeAudio {
    /// Its encoding as the SDP names it, lowercase: `mpeg4-generic` (AAC),
    /// `pcma`, `pcmu`, `opus`, ...
    pub codec: String,
    /// Samples per second, when given.
    pub sample_rate: Option<u32>,
    /// Channels, when given.
    pub channels: Option<u16>,
}

/// A keyframe as MP4 stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeKeyframe {
    /// The `avcC` / `hvcC` body.
    pub codec_config: Vec<u8>,
    /// The access unit: NAL units with 4-byte length prefixes.
    pub access_unit: Vec<u8>,
}

impl std::fmt::Debug for ProbeKeyframe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeKeyframe")
            .field("codec_config", &self.codec_config.len())
            .field("access_unit", &self.access_unit.len())
            .finish()
    }
}

/// Why a probe failed: each is something the user can fix. Messages never
/// hold the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Not an `rtsp://` URL this client can use.
    #[error("{0}")]
    BadUrl(String),
    /// The camera refused the user name or password (401).
    #[error("the camera refused the user name or password")]
    Auth,
    /// The camera answered, but has no stream at that path (404, 454).
    #[error("the camera has no stream at that path")]
    NotFound,
    /// Nothing answered: the name does not resolve, the port is closed, or
    /// there is no route.
    #[error("cannot reach the camera: {0}")]
    Unreachable(String),
    /// No keyframe within the time allowed.
    #[error("the camera did not send a picture within {0} s")]
    Timeout(u64),
    /// Neither H.264 nor H.265.
    #[error("the camera sends {0}; RealLive records H.264 and H.265")]
    UnsupportedCodec(String),
    /// The camera answered something else wrong.
    #[error("the camera failed: {0}")]
    Failed(String),
}

impl ProbeError {
    /// A stable lowercase code for the API: `bad_url`, `auth`,
    /// `not_found`, `unreachable`, `timeout`, `unsupported_codec`,
    /// `failed`.
    pub fn code(&self) -> &'static str {
        match self {
            ProbeError::BadUrl(_) => "bad_url",
            ProbeError::Auth => "auth",
            ProbeError::NotFound => "not_found",
            ProbeError::Unreachable(_) => "unreachable",
            ProbeError::Timeout(_) => "timeout",
            ProbeError::UnsupportedCodec(_) => "unsupported_codec",
            ProbeError::Failed(_) => "failed",
        }
    }
}

/// How long fps is measured after the first keyframe, at most.
const FPS_WINDOW: Duration = Duration::from_millis(1500);
/// Frames counted for fps.
const FPS_FRAMES: usize = 16;

/// Probes the camera at `url` with `transport`, for at most `timeout`.
pub async fn probe(
    url: &RtspUrl,
    transport: ProbeTransport,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    let secrets = url.secrets();
    let redact = |text: String| reallive_core::redact(&text, &secrets);
    match tokio::time::timeout(timeout, run(url, transport, &redact)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout(timeout.as_secs().max(1))),
    }
}

async fn run(
    url: &RtspUrl,
    transport: ProbeTransport,
    redact: &(dyn Fn(String) -> String + Sync),
) -> Result<Probe, ProbeError> {
    let (location, creds) = location(url)?;
    reachable_url(&location).await?;
    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(format!("RealLive/{} probe", env!("CARGO_PKG_VERSION")));
    let mut session = retina::client::Session::describe(location, options)
        .await
        .map_err(|e| classify(&e, redact))?;
    let audio = session
        .streams()
        .iter()
        .filter(|s| s.media() == "audio")
        .map(|s| ProbeAudio {
            codec: s.encoding_name().to_ascii_lowercase(),
            sample_rate: Some(s.clock_rate_hz()).filter(|&r| r > 0),
            channels: s.channels().map(std::num::NonZeroU16::get),
        })
        .collect();
    let (video, codec) = pick_video(session.streams())?;
    let transport = transport.retina();
    session
        .setup(
            video,
            SetupOptions::default()
                .transport(transport)
                .frame_format(FrameFormat::MP4),
        )
        .await
        .map_err(|e| classify(&e, redact))?;
    let mut frames = session
        .play(PlayOptions::default())
        .await
        .map_err(|e| classify(&e, redact))?
        .demuxed()
        .map_err(|e| classify(&e, redact))?;
    let mut first: Option<(ProbeKeyframe, u32, u32, Option<f64>)> = None;
    // Timestamps (seconds) of the frames from the keyframe on.
    let mut times: Vec<f64> = Vec::new();
    let mut measuring_until = None;
    loop {
        let next = match measuring_until {
            Some(until) => match tokio::time::timeout_at(until, frames.next()).await {
                Ok(n) => n,
                Err(_) => break,
            },
            None => frames.next().await,
        };
        let item = match next {
            Some(Ok(item)) => item,
            Some(Err(e)) if first.is_some() => {
                tracing::debug!("probe: after the keyframe: {}", redact(e.to_string()));
                break;
            }
            Some(Err(e)) => return Err(classify(&e, redact)),
            None if first.is_some() => break,
            None => {
                return Err(ProbeError::Failed(
                    "the camera ended the stream before its first keyframe".into(),
                ));
            }
        };
        let CodecItem::VideoFrame(frame) = item else {
            continue;
        };
        if first.is_none() {
            if !frame.is_random_access_point() {
                continue;
            }
            let Some(ParametersRef::Video(params)) = frames.streams()[video].parameters() else {
                continue;
            };
            let (width, height) = params.pixel_dimensions();
            let stated = params
                .frame_rate()
                .filter(|&(num, den)| num > 0 && den > 0)
                // (ticks per frame, ticks per second)
                .map(|(num, den)| f64::from(den) / f64::from(num));
            let keyframe = ProbeKeyframe {
                codec_config: params.extra_data().to_vec(),
                access_unit: frame.data().to_vec(),
            };
            first = Some((keyframe, width, height, stated));
            measuring_until = Some(tokio::time::Instant::now() + FPS_WINDOW);
        }
        times.push(frame.timestamp().elapsed_secs());
        if times.len() >= FPS_FRAMES {
            break;
        }
    }
    let Some((keyframe, width, height, stated)) = first else {
        return Err(ProbeError::Failed("no keyframe".into()));
    };
    Ok(Probe {
        codec,
        width,
        height,
        fps: stated
            .filter(|f| f.is_finite() && *f > 0.0 && *f <= 240.0)
            .or_else(|| measured_fps(&times)),
        audio,
        keyframe,
    })
}

/// Frames per second over `times` (seconds, in arrival order), rounded to
/// two decimals; `None` for fewer than three frames.
fn measured_fps(times: &[f64]) -> Option<f64> {
    let (first, last) = (times.first()?, times.last()?);
    let span = last - first;
    if times.len() < 3 || span <= 0.0 {
        return None;
    }
    let fps = (times.len() - 1) as f64 / span;
    Some((fps * 100.0).round() / 100.0)
}

/// The first video stream that is H.264 or H.265.
pub(crate) fn pick_video(streams: &[retina::client::Stream]) -> Result<(usize, Codec), ProbeError> {
    let mut other = None;
    for (i, s) in streams.iter().enumerate() {
        if s.media() != "video" {
            continue;
        }
        match s.encoding_name().to_ascii_lowercase().as_str() {
            "h264" => return Ok((i, Codec::H264)),
            "h265" => return Ok((i, Codec::H265)),
            name => other = other.or_else(|| Some(name.to_owned())),
        }
    }
    Err(ProbeError::UnsupportedCodec(
        other.unwrap_or_else(|| "no video".into()),
    ))
}

/// The URL retina connects to (no credentials in it) and the credentials
/// apart.
pub(crate) fn location(url: &RtspUrl) -> Result<(url::Url, Option<Credentials>), ProbeError> {
    let location = url::Url::parse(url.location())
        .map_err(|e| ProbeError::BadUrl(format!("not a URL: {e}")))?;
    if location.scheme() != "rtsp" {
        return Err(ProbeError::BadUrl(
            "only rtsp:// URLs are supported (rtsps:// is not supported yet)".into(),
        ));
    }
    let creds = url.user().map(|u| Credentials {
        username: u.to_owned(),
        password: url.password().unwrap_or_default().to_owned(),
    });
    Ok((location, creds))
}

/// [`reachable`] for the host and port of `location`.
pub(crate) async fn reachable_url(location: &url::Url) -> Result<(), ProbeError> {
    let host = location
        .host_str()
        .ok_or_else(|| ProbeError::BadUrl("the URL has no host".into()))?;
    reachable(host, location.port().unwrap_or(554)).await
}

/// Resolves `host` and opens a TCP connection to it, so that "no such
/// host", "connection refused" and "no route" are told apart from a
/// camera that answers wrongly. The connection is closed at once.
async fn reachable(host: &str, port: u16) -> Result<(), ProbeError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| ProbeError::Unreachable(format!("the name {host} does not resolve")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some((addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => ProbeError::Unreachable(match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("nothing listens on {addr} (connection refused)")
            }
            _ => format!("{addr}: {e}"),
        }),
        None => ProbeError::Unreachable(format!("the name {host} has no address")),
    })
}

/// A retina error as a [`ProbeError`].
pub(crate) fn classify(
    e: &retina::Error,
    redact: &(dyn Fn(String) -> String + Sync),
) -> ProbeError {
    match e.status_code() {
        Some(401) => ProbeError::Auth,
        Some(404 | 454) => ProbeError::NotFound,
        _ => {
            let text = redact(e.to_string());
            // retina's messages carry a blank line and context below it.
            let first = text.lines().next().unwrap_or_default().trim().to_owned();
            ProbeError::Failed(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_is_measured_over_the_frames() {
        let t: Vec<f64> = (0..16).map(|i| f64::from(i) / 15.0).collect();
        assert_eq!(measured_fps(&t), Some(15.0));
        assert_eq!(measured_fps(&[0.0, 0.1]), None);
        assert_eq!(measured_fps(&[1.0, 1.0, 1.0]), None);
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(ProbeError::Auth.code(), "auth");
        assert_eq!(ProbeError::Timeout(10).code(), "timeout");
        assert_eq!(
            ProbeError::UnsupportedCodec("mjpeg".into()).code(),
            "unsupported_codec"
        );
    }
}
