//! Fixtures for RealLive's tests. Not published.
//!
//! - `RtspCameraServer` (feature `gst`, default): a real RTSP server (gstreamer-rtsp-server) on
//!   loopback that plays a live test pattern as H.264 or H.265, optionally
//!   behind Basic or Digest auth, with G.711 or AAC audio, parameter sets
//!   only in the SDP, or a resolution change mid-stream: the fake IP camera
//!   for capture, NVR and restream tests.
//!   Its picture can be scripted (`source`, `script`: `SceneChange`), e.g. a
//!   still scene that starts moving at a known time, for motion tests.
//! - [`clip`]: real encoder output from a fixture file as `EncodedFrame`s,
//!   for tests that need frames without a pipeline.
//! - [`ffprobe`]: what a user would check about a recorded file: codec,
//!   profile, size, frame count, duration, B-frames.
//! - [`process`]: `reallive-server` as a child process, and a process's
//!   memory and CPU time.
//! - [`rtsp_proxy`]: a misbehaving middle box in front of a fake camera:
//!   it cuts the connection mid-frame, renumbers RTP, stalls, or injects
//!   garbage, for the RTSP client's quirk tests.
//! - [`http`]: a minimal HTTP/1.1 client for API tests, with raw control
//!   over headers and bodies.
//! - [`webrtcbin`] (feature `gst`): a WHEP viewer on GStreamer's
//!   `webrtcbin`, a second WebRTC stack that decodes H.265 (which headless
//!   Chromium cannot) and reports the codec negotiated and the frames
//!   decoded.
//! - `require_elements` (feature `gst`): fails the test, naming the package to install,
//!   when a GStreamer element is missing. Tests never skip silently.
//!
//! # Threading
//!
//! The RTSP server runs its own GLib main loop on a dedicated thread, so it
//! works under any test harness and any tokio runtime flavour.
//!
//! # Example
//!
//! ```no_run
//! use reallive_test_support::{RtspCameraServer, RtspCameraConfig};
//!
//! let camera = RtspCameraServer::start(RtspCameraConfig::default());
//! println!("camera at {}", camera.url());
//! ```

pub mod bench;
pub mod camera_process;
pub mod clip;
pub mod ffprobe;
pub mod http;
pub mod process;
#[cfg(feature = "gst")]
mod rtsp_camera;
pub mod rtsp_proxy;
pub mod tls;
pub mod webrtcbin;

#[cfg(feature = "gst")]
pub use rtsp_camera::{
    AppliedChange, RtspAudio, RtspAuthScheme, RtspCameraConfig, RtspCameraServer, RtspCodec,
    SceneChange,
};

#[cfg(feature = "gst")]
use gstreamer as gst;

/// Initialises GStreamer, panicking with the reason if it cannot.
#[cfg(feature = "gst")]
pub fn init_gst() {
    gst::init().expect("GStreamer must initialise; run scripts/setup");
}

#[cfg(feature = "gst")]
/// Panics, naming the Debian package, if any of `elements` is not installed.
///
/// A test that needs a plugin fails when it is missing; it never passes by
/// skipping. `scripts/setup` installs everything listed here.
pub fn require_elements(elements: &[&str]) {
    init_gst();
    let missing: Vec<String> = elements
        .iter()
        .filter(|e| gst::ElementFactory::find(e).is_none())
        .map(|e| format!("{e} ({})", package_for(e)))
        .collect();
    assert!(
        missing.is_empty(),
        "missing GStreamer elements: {}; run scripts/setup (and delete ~/.cache/gstreamer-1.0 if it is stale)",
        missing.join(", ")
    );
}

#[cfg(feature = "gst")]
fn package_for(element: &str) -> &'static str {
    match element {
        "x264enc" => "gstreamer1.0-plugins-ugly",
        "openh264enc" | "h264parse" | "h265parse" | "x265enc" => "gstreamer1.0-plugins-bad",
        "rtspsrc" | "rtph264depay" | "rtph265depay" | "rtph264pay" | "rtph265pay" | "v4l2src"
        | "jpegdec" | "qtdemux" | "matroskademux" | "mp4mux" => "gstreamer1.0-plugins-good",
        "videotestsrc" | "videoconvert" | "parsebin" | "decodebin" | "appsink" => {
            "gstreamer1.0-plugins-base"
        }
        "timeoverlay" => "gstreamer1.0-x",
        "libcamerasrc" => "gstreamer1.0-libcamera",
        "avdec_h264" | "avdec_h265" | "avenc_aac" => "gstreamer1.0-libav",
        "webrtcbin" | "dtlssrtpenc" | "dtlssrtpdec" | "dtlsdec" | "srtpenc" | "srtpdec" => {
            "gstreamer1.0-plugins-bad"
        }
        "nicesrc" | "nicesink" => "gstreamer1.0-nice",
        "fakesink" => "libgstreamer1.0-0",
        "voaacenc" => "gstreamer1.0-plugins-bad",
        "alawenc" | "mulawenc" | "rtppcmapay" | "rtppcmupay" | "rtpmp4gpay" => {
            "gstreamer1.0-plugins-good"
        }
        "audiotestsrc" | "audioconvert" | "audioresample" | "videoscale" => {
            "gstreamer1.0-plugins-base"
        }
        _ => "the GStreamer plugin that provides it",
    }
}

/// CPU time this process has used (user + system, all threads), from
/// `/proc/self/stat`, for benchmarks that report cores used.
pub fn process_cpu_time() -> std::time::Duration {
    process::cpu_time(None)
}

/// A free TCP port on loopback, for servers that cannot bind port 0.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
