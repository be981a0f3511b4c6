use std::path::PathBuf;

use gstreamer as gst;
use gstreamer::prelude::*;
use reallive_core::{Codec, FrameSender};
use reallive_encode::EncoderKind;

use crate::pipeline::{self, StartMode, make};
use crate::{CameraCapture, CaptureError, CaptureOptions, Running};

/// A media file played as if it were a camera: paced in real time and
/// optionally looped.
///
/// MP4 and MKV go through `parsebin`; raw `.h264`/`.264` and `.h265`/`.hevc`
/// elementary streams through their parser, timed at `fps` when the stream
/// carries no timing. With `auto` or `passthrough` the video is not
/// re-encoded; an explicit encoder decodes and re-encodes it (for files with
/// B-frames, which WebRTC browsers reject).
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    opts: CaptureOptions,
}

impl FileSource {
    /// The file at `path`.
    pub fn new(path: PathBuf, opts: CaptureOptions) -> Self {
        FileSource { path, opts }
    }

    fn mode(&self) -> StartMode {
        if self.opts.loop_file {
            StartMode::Loop
        } else {
            StartMode::Play
        }
    }

    fn raw_codec(&self) -> Option<Codec> {
        let ext = self.path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "h264" | "264" | "avc" => Some(Codec::H264),
            "h265" | "265" | "hevc" => Some(Codec::H265),
            _ => None,
        }
    }

    pub(crate) fn plan(&self) -> Result<pipeline::Plan, CaptureError> {
        let label = self.describe();
        if !self.path.is_file() {
            return Err(CaptureError::NotFound {
                source_name: label,
                detail: "no such file".into(),
            });
        }
        let src = make(&label, "filesrc", "libgstreamer1.0-0")?;
        src.set_property("location", self.path.to_string_lossy().as_ref());
        let appsink = pipeline::appsink(true);
        let passthrough = matches!(
            self.opts.encoder,
            EncoderKind::Auto | EncoderKind::Passthrough
        );
        if let (Some(codec), true) = (self.raw_codec(), passthrough) {
            // An elementary stream has no container timing: the caps tell
            // the parser what it is, and stamp_by_count() times it.
            let filter = make(&label, "capsfilter", "libgstreamer1.0-0")?;
            let media = if codec == Codec::H264 {
                "video/x-h264"
            } else {
                "video/x-h265"
            };
            filter.set_property(
                "caps",
                gst::Caps::builder(media)
                    .field("stream-format", "byte-stream")
                    .field("framerate", gst::Fraction::new(self.opts.fps as i32, 1))
                    .build(),
            );
            let [parse, out] = pipeline::parse_chain(&label, codec)?;
            stamp_by_count(&out, self.opts.fps);
            return pipeline::linear_plan(
                label,
                "capture-file",
                vec![src, filter, parse, out],
                appsink,
                "passthrough",
                self.mode(),
            );
        }
        let pipe = gst::Pipeline::builder().name("capture-file").build();
        let mut encoder = "passthrough";
        if passthrough {
            let parsebin = make(&label, "parsebin", "gstreamer1.0-plugins-base")?;
            pipe.add_many([&src, &parsebin, appsink.upcast_ref()])
                .map_err(|e| pipeline::internal(&label, e))?;
            src.link(&parsebin)
                .map_err(|e| pipeline::internal(&label, e))?;
            let (weak_pipe, weak_sink, pad_label) =
                (pipe.downgrade(), appsink.downgrade(), label.clone());
            parsebin.connect_pad_added(move |_, pad| {
                if let (Some(p), Some(s)) = (weak_pipe.upgrade(), weak_sink.upgrade()) {
                    pipeline::link_encoded_pad(&p, pad, &s, &pad_label);
                }
            });
        } else {
            let enc = crate::raw_encoder(&label, &self.opts)?;
            encoder = enc.name();
            let bin =
                enc.build(&self.opts.encoder_settings)
                    .map_err(|error| CaptureError::Encoder {
                        source_name: label.clone(),
                        error,
                    })?;
            let decodebin = make(&label, "decodebin", "gstreamer1.0-plugins-base")?;
            let [parse, out] = pipeline::parse_chain(&label, Codec::H264)?;
            let tail = [bin.clone().upcast(), parse, out, appsink.clone().upcast()];
            pipe.add_many([&src, &decodebin])
                .map_err(|e| pipeline::internal(&label, e))?;
            pipe.add_many(&tail)
                .map_err(|e| pipeline::internal(&label, e))?;
            src.link(&decodebin)
                .map_err(|e| pipeline::internal(&label, e))?;
            gst::Element::link_many(&tail).map_err(|e| pipeline::internal(&label, e))?;
            let weak_bin = bin.downgrade();
            decodebin.connect_pad_added(move |_, pad| {
                let is_raw_video = pad
                    .current_caps()
                    .and_then(|c| c.structure(0).map(|s| s.name() == "video/x-raw"))
                    .unwrap_or(false);
                if let (true, Some(bin)) = (is_raw_video, weak_bin.upgrade())
                    && let Some(sink) = bin.static_pad("sink")
                    && !sink.is_linked()
                {
                    let _ = pad.link(&sink);
                }
            });
        }
        Ok(pipeline::Plan {
            pipeline: pipe,
            appsink,
            label,
            secrets: Vec::new(),
            mode: self.mode(),
            encoder,
        })
    }
}

/// Gives unstamped access units leaving `el` a timestamp from their index at
/// `fps`, restarting at each new segment (each loop).
///
/// `h264parse` only stamps an elementary stream when its SPS carries VUI
/// timing; openh264 and many cameras write none, and it ignores the
/// frame rate in upstream caps. Streams that do carry timing keep their own.
fn stamp_by_count(el: &gst::Element, fps: u32) {
    let Some(pad) = el.static_pad("src") else {
        return;
    };
    let frame = gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(fps.max(1)));
    // The probe is Fn and runs on the streaming thread only.
    let index = std::sync::atomic::AtomicU64::new(0);
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            match &mut info.data {
                Some(gst::PadProbeData::Event(ev)) if ev.type_() == gst::EventType::Segment => {
                    index.store(0, std::sync::atomic::Ordering::Relaxed);
                }
                Some(gst::PadProbeData::Buffer(buffer)) => {
                    let i = index.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if buffer.pts().is_none() && buffer.dts().is_none() {
                        let b = buffer.make_mut();
                        let t = frame * i;
                        b.set_pts(t);
                        b.set_dts(t);
                        b.set_duration(frame);
                    }
                }
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

impl CameraCapture for FileSource {
    fn describe(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn start(&self, out: FrameSender) -> Result<Running, CaptureError> {
        pipeline::start(self.plan()?, out)
    }
}
