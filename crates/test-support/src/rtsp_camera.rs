use std::sync::mpsc;
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
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
}

impl RtspCameraServer {
    /// Starts the server on a free loopback port. Panics if it cannot.
    pub fn start(config: RtspCameraConfig) -> Self {
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
        let ctx = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&ctx), false);
        let (tx, rx) = mpsc::sync_channel(1);
        let cfg = config.clone();
        let ml = main_loop.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp-camera".into())
            .spawn(move || {
                ctx.with_thread_default(|| {
                    let server = build_server(&cfg);
                    let source = server.attach(Some(&ctx));
                    let _ = tx.send(
                        source
                            .map(|_| server.bound_port())
                            .map_err(|e| e.to_string()),
                    );
                    ml.run();
                })
                .expect("acquire the RTSP server's main context");
            })
            .expect("spawn the RTSP server thread");
        let port = rx
            .recv()
            .expect("RTSP server thread reports its port")
            .expect("RTSP server attaches");
        RtspCameraServer {
            port: u16::try_from(port).expect("a TCP port"),
            config,
            main_loop,
            thread: Some(thread),
        }
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
}

impl Drop for RtspCameraServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn build_server(cfg: &RtspCameraConfig) -> rtsp::RTSPServer {
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service("0");
    let factory = rtsp::RTSPMediaFactory::new();
    let (enc, pay) = match cfg.codec {
        RtspCodec::H264 => (
            format!(
                "x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max={} \
                 ! video/x-h264,profile=constrained-baseline",
                cfg.keyframe_interval
            ),
            "rtph264pay",
        ),
        RtspCodec::H265 => (
            format!(
                "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={}",
                cfg.keyframe_interval
            ),
            "rtph265pay",
        ),
    };
    let audio = if cfg.audio {
        " audiotestsrc is-live=true wave=ticks ! audioconvert ! mulawenc ! rtppcmupay name=pay1 pt=0"
    } else {
        ""
    };
    factory.set_launch(&format!(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width={},height={},framerate={}/1 \
         ! {enc} ! {pay} name=pay0 pt=96 config-interval=-1{audio} )",
        cfg.width, cfg.height, cfg.fps
    ));
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
