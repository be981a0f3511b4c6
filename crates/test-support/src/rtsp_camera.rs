use std::sync::mpsc;
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::gio;
use gstreamer_rtsp_server::prelude::*;

/// The codec the fake camera sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtspCodec {
    /// H.264 constrained baseline, like most cameras' main stream.
    #[default]
    H264,
    /// H.265, like newer cameras.
    H265,
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
    /// Require Basic auth with this user and password.
    pub credentials: Option<(String, String)>,
    /// Also send an audio track, as many cameras do.
    pub audio: bool,
    /// The `videotestsrc` pattern by its nick: `ball`, `smpte`, `snow`,
    /// `solid-color`, ... Distinct patterns tell cameras apart in a viewer.
    pub pattern: String,
    /// Target encoder bitrate in kbit/s (x264enc's and x265enc's default).
    pub bitrate_kbps: u32,
    /// TCP port on 127.0.0.1; `None` (or `Some(0)`) picks a free one. A
    /// fixed port lets a restarted camera come back where its clients
    /// expect it.
    pub port: Option<u16>,
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
            audio: false,
            pattern: "ball".into(),
            bitrate_kbps: 2048,
            port: None,
        }
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
    /// not parse (say, an unknown pattern). Still panics when a GStreamer
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
        // The factory only parses its launch line when the first client
        // asks; parse it now so a bad pattern fails here, not in a client.
        let launch = launch_line(&config);
        gst::parse::launch(&launch).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("camera pipeline `{launch}`: {e}"),
            )
        })?;
        Self::serve(config, move |cfg| build_server(cfg, launch))
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

/// The media factory's launch line: test pattern, encoder, payloader.
fn launch_line(cfg: &RtspCameraConfig) -> String {
    let (enc, pay) = match cfg.codec {
        RtspCodec::H264 => (
            format!(
                "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={} \
                 bitrate={} ! video/x-h264,profile=constrained-baseline",
                cfg.keyframe_interval, cfg.bitrate_kbps
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
    let audio = if cfg.audio {
        " audiotestsrc is-live=true wave=ticks ! audioconvert ! mulawenc ! rtppcmupay name=pay1 pt=0"
    } else {
        ""
    };
    format!(
        "( videotestsrc is-live=true pattern={} ! video/x-raw,width={},height={},framerate={}/1 \
         ! {enc} ! {pay} name=pay0 pt=96 config-interval=-1{audio} )",
        cfg.pattern, cfg.width, cfg.height, cfg.fps
    )
}

fn build_server(cfg: &RtspCameraConfig, launch: String) -> rtsp::RTSPServer {
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&cfg.port.unwrap_or(0).to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch);
    factory.set_shared(true);
    if let Some((user, pass)) = &cfg.credentials {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder()
            .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera-user")
            .build();
        let basic = rtsp::RTSPAuth::make_basic(user, pass);
        auth.add_basic(&basic, &token);
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
