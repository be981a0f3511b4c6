use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_core::FrameSender;
use reallive_encode::EncoderKind;

use crate::pipeline::{self, make};
use reallive_core::RtspUrl;

use crate::{CameraCapture, CaptureError, CaptureOptions, RtspTransport, Running};

/// An IP camera over RTSP. Its H.264 (or H.265) is passed through untouched.
#[derive(Debug, Clone)]
pub struct RtspCamera {
    url: RtspUrl,
    opts: CaptureOptions,
}

impl RtspCamera {
    /// The camera at `url`.
    pub fn new(url: RtspUrl, opts: CaptureOptions) -> Self {
        RtspCamera { url, opts }
    }

    pub(crate) fn plan(&self) -> Result<pipeline::Plan, CaptureError> {
        let label = self.describe();
        passthrough_only(&label, &self.opts)?;
        let src = make(&label, "rtspsrc", "gstreamer1.0-plugins-good")?;
        // The location carries no credentials: GStreamer puts it in errors and
        // debug logs, so they go in properties instead.
        src.set_property("location", self.url.location());
        if let Some(user) = self.url.user() {
            src.set_property("user-id", user);
        }
        if let Some(pw) = self.url.password() {
            src.set_property("user-pw", pw);
        }
        src.set_property_from_str(
            "protocols",
            match self.opts.rtsp_transport {
                RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            },
        );
        src.set_property("latency", self.opts.rtsp_latency_ms);
        // A camera that accepts TCP but never answers fails in 10 s, not 20.
        src.set_property("tcp-timeout", 10_000_000u64);
        let appsink = pipeline::appsink(false);
        let pipe = gst::Pipeline::builder().name("capture-rtsp").build();
        pipe.add_many([&src, appsink.upcast_ref()])
            .map_err(|e| pipeline::internal(&label, e))?;
        let weak_pipe = pipe.downgrade();
        let weak_sink = appsink.downgrade();
        let pad_label = label.clone();
        src.connect_pad_added(move |_, pad| {
            if let (Some(p), Some(s)) = (weak_pipe.upgrade(), weak_sink.upgrade()) {
                pipeline::link_encoded_pad(&p, pad, &s, &pad_label);
            }
        });
        Ok(pipeline::Plan {
            pipeline: pipe,
            appsink,
            label,
            secrets: self.url.secrets().into_iter().map(String::from).collect(),
            mode: pipeline::StartMode::Play,
            encoder: "passthrough",
        })
    }
}

/// RTSP cameras are recorded as they send, whichever backend reads them.
pub(crate) fn passthrough_only(label: &str, opts: &CaptureOptions) -> Result<(), CaptureError> {
    if matches!(opts.encoder, EncoderKind::Auto | EncoderKind::Passthrough) {
        return Ok(());
    }
    Err(CaptureError::Unsupported {
        source_name: label.to_owned(),
        detail: "RTSP cameras are passed through as they send; use --encoder auto or passthrough"
            .into(),
    })
}

impl CameraCapture for RtspCamera {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn start(&self, out: FrameSender) -> Result<Running, CaptureError> {
        pipeline::start(self.plan()?, out)
    }
}
