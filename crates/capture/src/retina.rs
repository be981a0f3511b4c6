//! The default RTSP backend: `reallive-rtsp`'s retina client, no GStreamer.

use reallive_core::{ErrorKind, FrameSender, RtspUrl};
use reallive_rtsp::{IngestError, IngestOptions, ProbeError, RtspSource};

use crate::pipeline;
use crate::{CameraCapture, CaptureError, CaptureOptions, RtspTransport, Running};

/// An IP camera over RTSP, read by retina on the tokio runtime: its H.264
/// or H.265 is passed through untouched, timed by its RTP clock. See
/// `docs/design/ingest.md`; [`RtspCamera`](crate::RtspCamera) is the
/// GStreamer fallback (`backend = "gstreamer"`).
#[derive(Debug, Clone)]
pub struct RetinaCamera {
    url: RtspUrl,
    opts: CaptureOptions,
    source: RtspSource,
}

impl RetinaCamera {
    /// The camera at `url`.
    pub fn new(url: RtspUrl, opts: CaptureOptions) -> Self {
        let options = IngestOptions {
            transport: match opts.rtsp_transport {
                RtspTransport::Tcp => reallive_rtsp::Transport::Tcp,
                RtspTransport::Udp => reallive_rtsp::Transport::Udp,
            },
            ..IngestOptions::default()
        };
        RetinaCamera {
            source: RtspSource::new(url.clone(), options),
            url,
            opts,
        }
    }

    /// Transcodes a G.711 audio track to AAC with `start` when audio is
    /// asked for ([`RtspSource::with_audio_transcoder`]).
    pub fn with_audio_transcoder(mut self, start: reallive_core::StartAudioTranscoder) -> Self {
        self.source = self.source.with_audio_transcoder(start);
        self
    }

    /// Frames, losses and sessions so far.
    pub fn stats(&self) -> std::sync::Arc<reallive_rtsp::IngestStats> {
        self.source.stats()
    }
}

impl CameraCapture for RetinaCamera {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn start(&self, out: FrameSender) -> Result<Running, CaptureError> {
        let label = self.describe();
        crate::rtsp::passthrough_only(&label, &self.opts)?;
        let source = self.source.clone();
        let name = label.clone();
        pipeline::start_task(label, move |stop| async move {
            source
                .run(out, stop)
                .await
                .map_err(|e| stream_error(&name, e))
        })
    }
}

impl reallive_core::source::FrameSource for RetinaCamera {
    fn describe(&self) -> String {
        CameraCapture::describe(self)
    }

    fn start_frames(
        &self,
        out: FrameSender,
    ) -> Result<Box<dyn reallive_core::source::FrameSourceRun>, reallive_core::reencode::BoxError>
    {
        self.source.start_frames(out)
    }

    fn start_with_audio(
        &self,
        out: FrameSender,
        audio: reallive_core::AudioSender,
    ) -> Result<Box<dyn reallive_core::source::FrameSourceRun>, reallive_core::reencode::BoxError>
    {
        self.source.start_with_audio(out, audio)
    }
}

fn stream_error(source_name: &str, e: IngestError) -> CaptureError {
    let kind = match &e {
        IngestError::Connect(ProbeError::Auth) => ErrorKind::PermissionDenied,
        IngestError::Connect(ProbeError::NotFound) => ErrorKind::NotFound,
        IngestError::Connect(ProbeError::BadUrl(_) | ProbeError::UnsupportedCodec(_)) => {
            ErrorKind::InvalidArgument
        }
        _ => ErrorKind::Unavailable,
    };
    CaptureError::Stream {
        source_name: source_name.to_owned(),
        message: e.to_string(),
        kind,
    }
}
