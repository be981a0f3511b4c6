use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::glib::translate::IntoGlib as _;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::gio;
use gstreamer_rtsp_server::prelude::*;
use tokio::sync::watch;

/// The codec the fake camera sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtspCodec {
    /// H.264 constrained baseline, like most cameras' main stream.
    #[default]
    H264,
    /// H.265, like newer cameras.
    H265,
}

/// The audio track a fake camera sends beside its video, when
/// [`RtspCameraConfig::audio`] is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtspAudio {
    /// G.711 µ-law (`PCMU/8000`, payload type 0), like many cameras.
    #[default]
    Pcmu,
    /// G.711 A-law (`PCMA/8000`, payload type 8).
    Pcma,
    /// AAC-LC in `mpeg4-generic` (RFC 3640), payload type 97; encoded by
    /// `avenc_aac` (gstreamer1.0-libav) or else `voaacenc`
    /// (gstreamer1.0-plugins-bad).
    Aac,
}

impl RtspAudio {
    /// The flag value of the fake camera binary: `pcmu`, `pcma` or `aac`.
    pub fn name(self) -> &'static str {
        match self {
            RtspAudio::Pcmu => "pcmu",
            RtspAudio::Pcma => "pcma",
            RtspAudio::Aac => "aac",
        }
    }
}

impl std::str::FromStr for RtspAudio {
    type Err = String;

    /// `pcmu`, `pcma` or `aac`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pcmu" => Ok(RtspAudio::Pcmu),
            "pcma" => Ok(RtspAudio::Pcma),
            "aac" => Ok(RtspAudio::Aac),
            _ => Err(format!("`{s}`: pcmu, pcma or aac")),
        }
    }
}

/// How a fake camera with [`RtspCameraConfig::credentials`] asks for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtspAuthScheme {
    /// `WWW-Authenticate: Basic`: the password travels base64-encoded.
    #[default]
    Basic,
    /// `WWW-Authenticate: Digest` only (RFC 2069/2617 MD5, as
    /// gst-rtsp-server offers it): the password never travels.
    Digest,
}

/// How the fake camera behaves.
#[derive(Clone, Debug)]
pub struct RtspCameraConfig {
    /// Mount path, e.g. `/stream1`.
    pub path: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Frames between keyframes.
    pub keyframe_interval: u32,
    /// Codec.
    pub codec: RtspCodec,
    /// Require auth with this user and password, by
    /// [`auth_scheme`](Self::auth_scheme).
    pub credentials: Option<(String, String)>,
    /// How [`credentials`](Self::credentials) are asked for: Basic (the
    /// default) or Digest.
    pub auth_scheme: RtspAuthScheme,
    /// Also send an audio track, as many cameras do: a second stream in
    /// the SDP, of [`audio_codec`](Self::audio_codec).
    pub audio: bool,
    /// The audio track's encoding: G.711 µ-law (the default), A-law or
    /// AAC.
    pub audio_codec: RtspAudio,
    /// The `videotestsrc` pattern by its nick: `ball`, `smpte`, `snow`,
    /// `solid-color`, ... Distinct patterns tell cameras apart in a viewer.
    /// The default source is `videotestsrc name=scene is-live=true
    /// pattern=PATTERN`, so a [`script`](Self::script) can change it as
    /// element `scene`. Unused with a [`source`](Self::source).
    pub pattern: String,
    /// Target encoder bitrate in kbit/s (x264enc's and x265enc's default).
    pub bitrate_kbps: u32,
    /// Slices per H.264 picture (x264's sliced threads); default 1. Many
    /// real cameras send several; the capture must put them back together.
    pub slices: u32,
    /// H.264 B-frames between reference pictures (x264's `bframes`);
    /// default 0. Many IP cameras send some (main or high profile), which
    /// browsers cannot play over WebRTC: the NVR transcodes them live.
    /// Without zerolatency then (it forbids them), and not with slices.
    pub bframes: u32,
    /// Send H.264's SPS and PPS only in the SDP (`sprop-parameter-sets`),
    /// never in band, as some cameras do: x264 writes `avc` with
    /// `repeat-headers=0` (parameter sets in its `codec_data` alone) and
    /// the payloader has `config-interval=0`. A client must take them from the SDP. H.264
    /// only; ignored for H.265.
    pub sdp_only_parameters: bool,
    /// Put `videoscale ! capsfilter name=size` after the source, holding
    /// the picture size, so a [`script`](Self::script) can change the
    /// resolution mid-stream: `SceneChange::new(2.0, "size", "caps",
    /// "video/x-raw,width=320,height=180")`. The encoder then starts a new
    /// sequence: a keyframe with new parameter sets, in band.
    pub resizable: bool,
    /// TCP port on 127.0.0.1; `None` (or `Some(0)`) picks a free one. A
    /// fixed port lets a restarted camera come back where its clients
    /// expect it.
    pub port: Option<u16>,
    /// A scripted scene: a gst-launch fragment producing raw video, in
    /// place of the default `videotestsrc name=scene is-live=true
    /// pattern=PATTERN`. The launch line goes on with `! videoconvert !
    /// video/x-raw,width=W,height=H,framerate=F/1 !` and the encoder, so
    /// the fragment's last element must link to that; live sources
    /// (`is-live=true`) keep the pace. Name the elements a
    /// [`script`](Self::script) changes. For example a still 320x180
    /// picture with a small ball moving in its bottom-right corner (the
    /// compositor last, its pads placed with `sink_N::xpos`):
    ///
    /// ```text
    /// videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=180 ! mix.
    /// videotestsrc is-live=true pattern=ball ! video/x-raw,width=96,height=52 ! mix.
    /// compositor name=mix sink_1::xpos=224 sink_1::ypos=128
    /// ```
    ///
    /// (on one line), or a picture whose light a script turns up:
    /// `videotestsrc is-live=true pattern=smpte75 ! videobalance name=light`.
    /// (Not `smpte` for a still picture: its bottom-right patch is snow,
    /// new in every frame.)
    pub source: Option<String>,
    /// Timed property changes of the running picture, each applied
    /// [`at`](SceneChange::at) after the media pipeline starts playing
    /// (when its first client, say the NVR, connects; the media is shared,
    /// so later clients see the same picture). The time each was applied
    /// is reported: [`RtspCameraServer::scene_changes`], and the fake
    /// camera binary's `applied` lines. The element names and values are
    /// checked when the camera starts.
    pub script: Vec<SceneChange>,
}

impl Default for RtspCameraConfig {
    fn default() -> Self {
        RtspCameraConfig {
            path: "/stream".into(),
            width: 640,
            height: 360,
            fps: 30,
            keyframe_interval: 30,
            codec: RtspCodec::H264,
            credentials: None,
            auth_scheme: RtspAuthScheme::Basic,
            audio: false,
            audio_codec: RtspAudio::Pcmu,
            pattern: "ball".into(),
            bitrate_kbps: 2048,
            slices: 1,
            bframes: 0,
            sdp_only_parameters: false,
            resizable: false,
            port: None,
            source: None,
            script: Vec::new(),
        }
    }
}

/// One timed change of a scripted camera's picture: [`at`](Self::at) after
/// the camera's media pipeline starts playing, set `property` of the
/// element named `element` to `value`, parsed as `gst-launch-1.0` would
/// (`pattern=ball`, `brightness=0.4`, `foreground-color=0xff000000`). As in
/// a launch line, `CHILD::PROPERTY` is a child's property, such as a
/// compositor pad's: `sink_1::alpha`.
///
/// Its text form, the fake camera's `--at` flag, is
/// `SECS:ELEMENT:PROPERTY=VALUE`, e.g. `10:scene:pattern=ball`,
/// `12.5:light:brightness=0.4` or `8:mix:sink_1::alpha=1`.
#[derive(Clone, Debug, PartialEq)]
pub struct SceneChange {
    /// After the media starts playing.
    pub at: Duration,
    /// The element's name in the launch line (`name=scene`).
    pub element: String,
    /// Its property.
    pub property: String,
    /// The new value, as text.
    pub value: String,
}

impl SceneChange {
    /// A change `at_secs` after the media starts playing.
    pub fn new(at_secs: f64, element: &str, property: &str, value: &str) -> Self {
        SceneChange {
            at: Duration::from_secs_f64(at_secs),
            element: element.to_owned(),
            property: property.to_owned(),
            value: value.to_owned(),
        }
    }

    /// Sets the property on `element` of `bin` (searched recursively); a
    /// `CHILD::PROPERTY` is a child's, as in a launch line.
    fn apply(&self, bin: &gst::Element) -> Result<(), String> {
        let found = bin
            .downcast_ref::<gst::Bin>()
            .and_then(|b| b.by_name(&self.element))
            .ok_or_else(|| format!("no element named `{}`", self.element))?;
        let missing = || {
            format!(
                "`{}` ({}) has no writable property `{}`",
                self.element,
                found.type_(),
                self.property
            )
        };
        let (target, pspec) = if self.property.contains("::") {
            found
                .dynamic_cast_ref::<gst::ChildProxy>()
                .and_then(|c| c.lookup(&self.property).ok())
                .ok_or_else(missing)?
        } else {
            let pspec = found.find_property(&self.property).ok_or_else(missing)?;
            (found.clone().upcast::<glib::Object>(), pspec)
        };
        if !pspec.flags().contains(glib::ParamFlags::WRITABLE) {
            return Err(missing());
        }
        let value =
            <glib::Value as gst::prelude::GstValueExt>::deserialize_with_pspec(&self.value, &pspec)
                .map_err(|e| {
                    format!(
                        "`{}` for {}.{}: {e}",
                        self.value, self.element, self.property
                    )
                })?;
        target.set_property_from_value(pspec.name(), &value);
        Ok(())
    }
}

impl std::fmt::Display for SceneChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}={}",
            self.at.as_secs_f64(),
            self.element,
            self.property,
            self.value
        )
    }
}

impl std::str::FromStr for SceneChange {
    type Err = String;

    /// `SECS:ELEMENT:PROPERTY=VALUE`; the value may hold `:` and `=`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}`: expected SECS:ELEMENT:PROPERTY=VALUE, e.g. 10:scene:pattern=ball");
        let (secs, rest) = s.split_once(':').ok_or_else(bad)?;
        let (element, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (property, value) = rest.split_once('=').ok_or_else(bad)?;
        let secs: f64 = secs.trim().parse().map_err(|_| bad())?;
        if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
            return Err(format!("`{s}`: the time is 0 to 86400 seconds"));
        }
        if element.is_empty() || property.is_empty() {
            return Err(bad());
        }
        Ok(SceneChange::new(secs, element, property, value))
    }
}

/// A [`SceneChange`] as the camera applied it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedChange {
    /// Its position in [`RtspCameraConfig::script`].
    pub index: usize,
    /// The wall-clock time it was applied: Unix nanoseconds (UTC).
    pub utc_ns: i64,
    /// The change.
    pub change: SceneChange,
}

impl std::fmt::Display for AppliedChange {
    /// The fake camera's stdout line: `applied INDEX UTC_NS CHANGE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "applied {} {} {}", self.index, self.utc_ns, self.change)
    }
}

impl std::str::FromStr for AppliedChange {
    type Err = String;

    /// A line as [`Display`](std::fmt::Display) writes it.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected `applied INDEX UTC_NS SECS:ELEMENT:PROPERTY=VALUE`");
        let rest = s.strip_prefix("applied ").ok_or_else(bad)?;
        let (index, rest) = rest.split_once(' ').ok_or_else(bad)?;
        let (utc_ns, change) = rest.split_once(' ').ok_or_else(bad)?;
        Ok(AppliedChange {
            index: index.parse().map_err(|_| bad())?,
            utc_ns: utc_ns.parse().map_err(|_| bad())?,
            change: change.parse()?,
        })
    }
}

/// A real RTSP server on 127.0.0.1 playing a live test pattern.
///
/// Stops when dropped.
#[derive(Debug)]
pub struct RtspCameraServer {
    port: u16,
    config: RtspCameraConfig,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    /// Every mount's path: `config.path`, or a
    /// [`try_start_clip`](Self::try_start_clip) server's mounts.
    mount_paths: Vec<String>,
    /// The script's changes as they are applied.
    applied: watch::Receiver<Vec<AppliedChange>>,
}

impl RtspCameraServer {
    /// Starts the server on 127.0.0.1, on `config.port` or a free port.
    /// Panics if it cannot.
    pub fn start(config: RtspCameraConfig) -> Self {
        Self::try_start(config).unwrap_or_else(|e| panic!("RTSP camera server: {e}"))
    }

    /// [`start`](Self::start), returning why it cannot serve instead of
    /// panicking: [`ErrorKind::AddrInUse`](std::io::ErrorKind::AddrInUse)
    /// when the fixed port is taken, `InvalidInput` for a pipeline that does
    /// not parse (say, an unknown pattern) or a [`script`](RtspCameraConfig::script)
    /// that cannot apply to it. Still panics when a GStreamer
    /// element is missing, as [`require_elements`](crate::require_elements)
    /// does.
    pub fn try_start(config: RtspCameraConfig) -> std::io::Result<Self> {
        crate::require_elements(&[
            "videotestsrc",
            match config.codec {
                RtspCodec::H264 => "x264enc",
                RtspCodec::H265 => "x265enc",
            },
            match config.codec {
                RtspCodec::H264 => "rtph264pay",
                RtspCodec::H265 => "rtph265pay",
            },
        ]);
        if config.audio {
            crate::require_elements(&audio_elements(config.audio_codec));
        }
        if config.resizable {
            crate::require_elements(&["videoscale"]);
        }
        // The factory only parses its launch line when the first client
        // asks; parse it now so a bad pattern fails here, not in a client.
        let launch = launch_line(&config);
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let parsed = gst::parse::launch(&launch)
            .map_err(|e| invalid(format!("camera pipeline `{launch}`: {e}")))?;
        // And the script on that unused copy: names, properties, values.
        for change in &config.script {
            change
                .apply(&parsed)
                .map_err(|e| invalid(format!("scene change `{change}`: {e}")))?;
        }
        drop(parsed);
        let (applied_tx, applied) = watch::channel(Vec::new());
        let mut server = Self::serve(config, move |cfg| build_server(cfg, launch, applied_tx))?;
        server.applied = applied;
        Ok(server)
    }

    /// A camera that costs almost nothing to run, for load tests: it
    /// serves the H.264 Annex-B elementary stream in `clip` (no B-frames,
    /// starting with its parameter sets) in a loop, paced in real time at
    /// `fps`, without decoding or encoding it. There are `mounts` mounts:
    /// `path` alone when `mounts` is 1, else `path` followed by 0, 1, ...
    /// (`/cam0`, `/cam1`, ...). Each mount has one shared pipeline (file,
    /// `h264parse`, payloader) that all its clients receive; each client is
    /// its own RTSP session. [`url`](Self::url) is the first mount's,
    /// [`mount_urls`](Self::mount_urls) lists them all.
    ///
    /// Errors as [`try_start`](Self::try_start) does; `NotFound` when the
    /// clip is not a file.
    pub fn try_start_clip(
        clip: &std::path::Path,
        fps: u32,
        path: &str,
        mounts: u32,
        port: Option<u16>,
    ) -> std::io::Result<Self> {
        crate::require_elements(&["multifilesrc", "h264parse", "identity", "rtph264pay"]);
        if !clip.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("clip {} is not a file", clip.display()),
            ));
        }
        let clip = clip.to_path_buf();
        let paths = clip_mount_paths(path, mounts);
        let config = RtspCameraConfig {
            path: paths.first().cloned().unwrap_or_else(|| path.to_owned()),
            fps,
            port,
            ..RtspCameraConfig::default()
        };
        let mount_paths = paths.clone();
        let mut server = Self::serve(config, move |cfg| {
            let server = rtsp::RTSPServer::new();
            server.set_address("127.0.0.1");
            server.set_service(&cfg.port.unwrap_or(0).to_string());
            if let Some(mount_points) = server.mount_points() {
                for p in &paths {
                    mount_points.add_factory(p, clip_factory(&clip, cfg.fps));
                }
            }
            server
        })?;
        server.mount_paths = mount_paths;
        Ok(server)
    }

    /// Runs the server that `build` makes on its own thread and main loop;
    /// returns once it listens.
    fn serve(
        config: RtspCameraConfig,
        build: impl FnOnce(&RtspCameraConfig) -> rtsp::RTSPServer + Send + 'static,
    ) -> std::io::Result<Self> {
        let ctx = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        let (tx, rx) = mpsc::sync_channel(1);
        let cfg = config.clone();
        let ml = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp-camera".into())
            .spawn(move || {
                ctx.with_thread_default(|| {
                    let server = build(&cfg);
                    // Not `attach`: its error drops the reason (say, the port
                    // is taken); `create_source` keeps it.
                    match server.create_source(None::<&gio::Cancellable>) {
                        Ok(source) => {
                            source.attach(Some(&ctx));
                            // Report from inside the loop: a `quit` that
                            // comes before `run` is lost, and `Drop` would
                            // then wait forever.
                            let port = server.bound_port();
                            let mut tx = Some(tx);
                            glib::idle_source_new(None, glib::Priority::DEFAULT, move || {
                                if let Some(tx) = tx.take() {
                                    let _ = tx.send(Ok(port));
                                }
                                glib::ControlFlow::Break
                            })
                            .attach(Some(&ctx));
                            ml.run();
                            source.destroy();
                        }
                        Err(e) => {
                            let _ = tx.send(Err(bind_error(&e)));
                        }
                    }
                })
                .expect("acquire the RTSP server's main context");
            })
            .expect("spawn the RTSP server thread");
        let port = match rx.recv().expect("RTSP server thread reports its port") {
            Ok(port) => port,
            Err(e) => {
                let _ = thread.join();
                return Err(e);
            }
        };
        Ok(RtspCameraServer {
            port: u16::try_from(port).expect("a TCP port"),
            mount_paths: vec![config.path.clone()],
            config,
            main_loop,
            thread: Some(thread),
            applied: watch::channel(Vec::new()).1,
        })
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The stream URL, without credentials.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, self.config.path)
    }

    /// The stream URL with `user:password@` when the camera requires auth.
    pub fn url_with_credentials(&self) -> String {
        match &self.config.credentials {
            Some((u, p)) => format!("rtsp://{u}:{p}@127.0.0.1:{}{}", self.port, self.config.path),
            None => self.url(),
        }
    }

    /// The [`script`](RtspCameraConfig::script)'s changes applied so far,
    /// in the order they were applied; watch it for the next. Each media
    /// pipeline plays the script from its start: a camera whose clients
    /// all left and came back reports the changes again.
    pub fn scene_changes(&self) -> watch::Receiver<Vec<AppliedChange>> {
        self.applied.clone()
    }

    /// Every mount's URL: [`url`](Self::url) alone, except for a
    /// [`try_start_clip`](Self::try_start_clip) server with several mounts.
    pub fn mount_urls(&self) -> Vec<String> {
        self.mount_paths
            .iter()
            .map(|p| format!("rtsp://127.0.0.1:{}{p}", self.port))
            .collect()
    }
}

impl Drop for RtspCameraServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `io::Error` for a server socket GLib could not create; keeps
/// "address in use" recognisable to callers that retry.
fn bind_error(e: &glib::Error) -> std::io::Error {
    let kind = if e.matches(gio::IOErrorEnum::AddressInUse) {
        std::io::ErrorKind::AddrInUse
    } else {
        std::io::ErrorKind::Other
    };
    // GLib's message names the address: "Error binding to address
    // 127.0.0.1:8554: Address already in use".
    std::io::Error::new(kind, format!("RTSP server socket: {}", e.message()))
}

/// The media factory's launch line: test pattern (or the configured
/// source), encoder, payloader, and the audio branch.
fn launch_line(cfg: &RtspCameraConfig) -> String {
    let sdp_only = cfg.sdp_only_parameters && cfg.codec == RtspCodec::H264;
    // With zerolatency's sliced threads, x264 cuts each picture into a
    // slice per thread: `threads` is the slice count. Parameter sets only
    // in the SDP: x264 writes them before every IDR even in `avc` form
    // unless `repeat-headers=0`; then they are in the caps' codec_data
    // alone, which the payloader turns into sprop-parameter-sets.
    let (enc, pay) = match cfg.codec {
        RtspCodec::H264 => (
            format!(
                "x264enc {} key-int-max={} \
                 bitrate={}{} ! video/x-h264,profile={}{}",
                if cfg.bframes == 0 {
                    format!(
                        "tune=zerolatency speed-preset=ultrafast threads={} bframes=0",
                        cfg.slices.max(1)
                    )
                } else {
                    format!(
                        "speed-preset=ultrafast threads=1 bframes={} b-adapt=false rc-lookahead=4",
                        cfg.bframes
                    )
                },
                cfg.keyframe_interval,
                cfg.bitrate_kbps,
                if sdp_only {
                    " option-string=\"repeat-headers=0\""
                } else {
                    ""
                },
                if cfg.bframes == 0 {
                    "constrained-baseline"
                } else {
                    "main"
                },
                if sdp_only { ",stream-format=avc" } else { "" }
            ),
            "rtph264pay",
        ),
        RtspCodec::H265 => (
            format!(
                "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={} bitrate={}",
                cfg.keyframe_interval, cfg.bitrate_kbps
            ),
            "rtph265pay",
        ),
    };
    // -1: the parameter sets before every keyframe; 0: never in band.
    let config_interval = if sdp_only { 0 } else { -1 };
    let audio = if cfg.audio {
        audio_branch(cfg.audio_codec)
    } else {
        String::new()
    };
    // A scripted source may end in any raw format (a compositor's AYUV,
    // say); the encoder wants 4:2:0.
    let source = match &cfg.source {
        Some(s) => format!("{s} ! videoconvert"),
        None => format!(
            "videotestsrc name=scene is-live=true pattern={}",
            cfg.pattern
        ),
    };
    // A resizable picture has its size in a capsfilter of its own, which
    // a script may change; the rate stays in the caps after it.
    let caps = if cfg.resizable {
        format!(
            "videoscale ! capsfilter name=size caps=\"video/x-raw,width={},height={}\" \
             ! video/x-raw,framerate={}/1",
            cfg.width, cfg.height, cfg.fps
        )
    } else {
        format!(
            "video/x-raw,width={},height={},framerate={}/1",
            cfg.width, cfg.height, cfg.fps
        )
    };
    format!(
        "( {source} ! {caps} ! {enc} ! {pay} name=pay0 pt=96 config-interval={config_interval}{audio} )"
    )
}

/// The AAC encoder at hand: `avenc_aac` (gstreamer1.0-libav), else
/// `voaacenc` (gstreamer1.0-plugins-bad).
fn aac_encoder() -> &'static str {
    crate::init_gst();
    if gst::ElementFactory::find("avenc_aac").is_some() {
        "avenc_aac"
    } else {
        "voaacenc"
    }
}

/// The elements the audio branch of `codec` needs.
fn audio_elements(codec: RtspAudio) -> Vec<&'static str> {
    let mut v = vec!["audiotestsrc", "audioconvert"];
    v.extend_from_slice(&match codec {
        RtspAudio::Pcmu => ["mulawenc", "rtppcmupay"],
        RtspAudio::Pcma => ["alawenc", "rtppcmapay"],
        RtspAudio::Aac => [aac_encoder(), "rtpmp4gpay"],
    });
    if codec == RtspAudio::Aac {
        v.push("audioresample");
    }
    v
}

/// The launch line's audio stream, `pay1`: a ticking test tone.
fn audio_branch(codec: RtspAudio) -> String {
    let src = " audiotestsrc is-live=true wave=ticks ! audioconvert";
    match codec {
        RtspAudio::Pcmu => format!("{src} ! mulawenc ! rtppcmupay name=pay1 pt=0"),
        RtspAudio::Pcma => format!("{src} ! alawenc ! rtppcmapay name=pay1 pt=8"),
        RtspAudio::Aac => format!(
            "{src} ! audioresample ! audio/x-raw,rate=16000,channels=1 ! {} \
             ! rtpmp4gpay name=pay1 pt=97",
            aac_encoder()
        ),
    }
}

fn utc_now_ns() -> i64 {
    reallive_core::time::UtcNs::now().0
}

/// Plays `script` on every media the factory makes: timers on the server's
/// main context, started when the media's pipeline first reaches PLAYING,
/// each setting its property and reporting when to `applied`.
fn run_script(
    factory: &rtsp::RTSPMediaFactory,
    script: &[SceneChange],
    applied: watch::Sender<Vec<AppliedChange>>,
) {
    let script: Arc<[SceneChange]> = script.into();
    let ctx = glib::MainContext::ref_thread_default();
    factory.connect_media_configure(move |_, media| {
        let started = Arc::new(AtomicBool::new(false));
        let (script, ctx, applied) = (script.clone(), ctx.clone(), applied.clone());
        media.connect_new_state(move |media, state| {
            if state != gst::State::Playing.into_glib() || started.swap(true, Ordering::SeqCst) {
                return;
            }
            let bin = media.element();
            for (index, change) in script.iter().enumerate() {
                let (bin, change, applied) = (bin.clone(), change.clone(), applied.clone());
                glib::timeout_source_new(change.at, None, glib::Priority::DEFAULT, move || {
                    match change.apply(&bin) {
                        Ok(()) => {
                            let utc_ns = utc_now_ns();
                            applied.send_modify(|v| {
                                v.push(AppliedChange {
                                    index,
                                    utc_ns,
                                    change: change.clone(),
                                });
                            });
                        }
                        // Checked at start; a launch line that changed
                        // since cannot happen, but say so if it does.
                        Err(e) => eprintln!("fake camera: scene change `{change}`: {e}"),
                    }
                    glib::ControlFlow::Break
                })
                .attach(Some(&ctx));
            }
        });
    });
}

fn build_server(
    cfg: &RtspCameraConfig,
    launch: String,
    applied: watch::Sender<Vec<AppliedChange>>,
) -> rtsp::RTSPServer {
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&cfg.port.unwrap_or(0).to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    factory.set_shared(true);
    if !cfg.script.is_empty() {
        run_script(&factory, &cfg.script, applied);
    }
    if let Some((user, pass)) = &cfg.credentials {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera-user")
            .build();
        match cfg.auth_scheme {
            RtspAuthScheme::Basic => {
                let basic = rtsp::RTSPAuth::make_basic(user, pass);
                auth.add_basic(&basic, &token);
            }
            RtspAuthScheme::Digest => {
                // Offered alone: a client that only knows Basic fails.
                auth.set_supported_methods(rtsp::gst_rtsp::RTSPAuthMethod::Digest);
                auth.add_digest(user, pass, &token);
            }
        }
        server.set_auth(Some(&auth));
        factory.add_role_from_structure(
            &gst::Structure::builder("camera-user")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    if let Some(mounts) = server.mount_points() {
        mounts.add_factory(&cfg.path, factory);
    }
    server
}

/// The mount paths of a clip server: `path`, or `path0`, `path1`, ...
fn clip_mount_paths(path: &str, mounts: u32) -> Vec<String> {
    if mounts <= 1 {
        vec![path.to_owned()]
    } else {
        (0..mounts).map(|i| format!("{path}{i}")).collect()
    }
}

/// One mount of a clip server: the file looped, parsed into access units
/// and paced by `identity sync=true`, nothing decoded.
fn clip_factory(clip: &std::path::Path, fps: u32) -> rtsp::RTSPMediaFactory {
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( multifilesrc name=src loop=true \
         caps=\"video/x-h264,stream-format=byte-stream,framerate={fps}/1\" \
         ! h264parse name=parse ! video/x-h264,alignment=au ! identity sync=true \
         ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    ));
    factory.set_shared(true);
    let clip = clip.to_path_buf();
    factory.connect_media_configure(move |_, media| {
        let Ok(bin) = media.element().downcast::<gst::Bin>() else {
            return;
        };
        // Set here, not in the launch line: a path needs no quoting then.
        if let Some(src) = bin.by_name("src") {
            src.set_property("location", clip.to_string_lossy().as_ref());
        }
        // h264parse stamps an elementary stream's access units with a DTS
        // only (it cannot rule out reordering); the payloader takes its RTP
        // timestamps from the PTS. Without B-frames the two are equal.
        if let Some(pad) = bin.by_name("parse").and_then(|p| p.static_pad("src")) {
            pad.add_probe(gst::PadProbeType::BUFFER, |_, info| {
                if let Some(gst::PadProbeData::Buffer(buf)) = info.data.as_mut()
                    && buf.pts().is_none()
                {
                    let dts = buf.dts();
                    buf.make_mut().set_pts(dts);
                }
                gst::PadProbeReturn::Ok
            });
        }
    });
    factory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_changes_read_and_print_the_same() {
        let c: SceneChange = "12.5:light:brightness=0.4".parse().unwrap();
        assert_eq!(c, SceneChange::new(12.5, "light", "brightness", "0.4"));
        assert_eq!(c.to_string(), "12.5:light:brightness=0.4");
        // The value keeps its own `:` and `=`.
        let c: SceneChange = "0:overlay:text=a=b:c".parse().unwrap();
        assert_eq!((c.property.as_str(), c.value.as_str()), ("text", "a=b:c"));
        for bad in [
            "",
            "10",
            "10:scene",
            "10:scene:pattern",
            "x:scene:pattern=ball",
            "-1:s:p=v",
        ] {
            assert!(bad.parse::<SceneChange>().is_err(), "{bad}");
        }
        let a = AppliedChange {
            index: 3,
            utc_ns: 1_700_000_000_123_456_789,
            change: SceneChange::new(10.0, "scene", "pattern", "ball"),
        };
        assert_eq!(
            a.to_string(),
            "applied 3 1700000000123456789 10:scene:pattern=ball"
        );
        assert_eq!(a.to_string().parse::<AppliedChange>().unwrap(), a);
        assert!("rtsp://127.0.0.1:1/x".parse::<AppliedChange>().is_err());
    }

    #[test]
    fn a_script_that_cannot_apply_is_refused_at_start() {
        for (change, want) in [
            (
                SceneChange::new(1.0, "nothing", "pattern", "ball"),
                "no element named `nothing`",
            ),
            (
                SceneChange::new(1.0, "scene", "colour", "red"),
                "no writable property `colour`",
            ),
            (
                SceneChange::new(1.0, "scene", "pattern", "plaid"),
                "`plaid`",
            ),
            (
                SceneChange::new(1.0, "mix", "sink_7::alpha", "0"),
                "no writable property `sink_7::alpha`",
            ),
        ] {
            let e = RtspCameraServer::try_start(RtspCameraConfig {
                source: Some(MIX.into()),
                script: vec![change],
                ..RtspCameraConfig::default()
            })
            .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains(want), "{e}");
        }
        // What does apply, a child's (a compositor pad's) property too.
        RtspCameraServer::try_start(RtspCameraConfig {
            source: Some(MIX.into()),
            script: vec![
                SceneChange::new(1.0, "scene", "pattern", "ball"),
                SceneChange::new(2.0, "mix", "sink_1::alpha", "0.5"),
            ],
            ..RtspCameraConfig::default()
        })
        .unwrap();
    }

    #[test]
    fn quirks_change_the_launch_line_and_defaults_do_not() {
        crate::init_gst();
        assert_eq!(
            launch_line(&RtspCameraConfig::default()),
            "( videotestsrc name=scene is-live=true pattern=ball \
             ! video/x-raw,width=640,height=360,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast threads=1 bframes=0 \
             key-int-max=30 bitrate=2048 ! video/x-h264,profile=constrained-baseline \
             ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        );
        let quirky = launch_line(&RtspCameraConfig {
            audio: true,
            audio_codec: RtspAudio::Pcma,
            sdp_only_parameters: true,
            resizable: true,
            ..RtspCameraConfig::default()
        });
        for part in [
            "repeat-headers=0",
            "stream-format=avc",
            "config-interval=0",
            "capsfilter name=size",
            "alawenc ! rtppcmapay name=pay1 pt=8",
        ] {
            assert!(quirky.contains(part), "{part} in {quirky}");
        }
        let aac = audio_branch(RtspAudio::Aac);
        assert!(aac.contains("rtpmp4gpay name=pay1 pt=97"), "{aac}");
        assert_eq!("aac".parse::<RtspAudio>(), Ok(RtspAudio::Aac));
        assert_eq!(
            RtspAudio::Pcma.name().parse::<RtspAudio>(),
            Ok(RtspAudio::Pcma)
        );
        assert!("mp3".parse::<RtspAudio>().is_err());
    }

    /// Two pictures, one over the other, as a scripted source.
    const MIX: &str = "videotestsrc name=scene is-live=true ! mix. \
         videotestsrc is-live=true pattern=ball ! video/x-raw,width=64,height=64 ! mix. \
         compositor name=mix";
}
