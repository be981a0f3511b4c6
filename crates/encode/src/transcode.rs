//! H.264 to H.265 re-encoding for stored recordings.
//!
//! Two pipelines, so a keyframe can be forced on exactly the picture that
//! needs one:
//!
//! ```text
//! appsrc (avc + codec_data) ! h264parse ! avdec_h264 ! appsink      (decode)
//! appsrc (raw) ! videoconvert ! x265enc ! h265parse ! appsink        (encode)
//! ```
//!
//! The caller pushes stored samples in decode order and gets back one
//! H.265 access unit per frame, tagged with the frame's presentation time.
//! Frames the caller marks as keyframes are encoded as IDR pictures (a
//! force-key-unit event at that frame's running time), and x265 makes no
//! others (`scenecut=0`, no B-frames), so the new stream has the old one's
//! GOP structure frame for frame.
//!
//! Blocking by design: it is meant for a background job (the NVR runs it in
//! a child process at the lowest priority). Memory is bounded: the decoder
//! takes at most 8 queued access units, the caller waits for it, and the
//! pictures it has decoded are handed straight to the encoder.

use std::collections::HashMap;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::Codec;
use reallive_core::reencode::{BoxError, Reencoded, Reencoder, SourceInfo};

use crate::EncodeError;

/// How to encode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H265Settings {
    /// x265's constant rate factor: 0 (lossless) to 51; 28 is x265's default
    /// and looks about like x264 at 23.
    pub crf: u8,
    /// x265's speed preset: `ultrafast` … `placebo`.
    pub preset: String,
    /// A ceiling on the bitrate (x265's VBV, over one second), so that
    /// busy footage, which the constant rate factor alone would let grow,
    /// still comes out smaller than its source.
    pub max_kbps: Option<u32>,
}

impl Default for H265Settings {
    fn default() -> Self {
        H265Settings {
            crf: 28,
            preset: "fast".into(),
            max_kbps: None,
        }
    }
}

/// The x265 speed presets, fastest first.
pub const H265_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

impl H265Settings {
    /// Rejects a `crf` above 51 or an unknown `preset`; the message names
    /// the bad value and the accepted ones.
    pub fn check(&self) -> Result<(), EncodeError> {
        if self.crf > 51 {
            return Err(EncodeError::InvalidArgument(format!(
                "crf {} is out of 0..=51",
                self.crf
            )));
        }
        if !H265_PRESETS.contains(&self.preset.as_str()) {
            return Err(EncodeError::InvalidArgument(format!(
                "preset '{}' is not one of {}",
                self.preset.escape_default(),
                H265_PRESETS.join(", ")
            )));
        }
        Ok(())
    }
}

/// A running H.264 to H.265 transcoder.
#[derive(Debug)]
pub struct H265Transcoder {
    settings: H265Settings,
    decode: gst::Pipeline,
    dec_src: gst_app::AppSrc,
    dec_sink: gst_app::AppSink,
    /// Built at the first decoded picture, when its format is known.
    encode: Option<(gst::Pipeline, gst_app::AppSrc, gst_app::AppSink)>,
    /// Pipeline time of each frame pushed: (pts in 90 kHz, keyframe wanted).
    pending: HashMap<u64, (i64, bool)>,
    origin_90k: Option<i64>,
    /// The first picture given to the encoder, and how far ahead of it
    /// the encoder's first output is stamped (x265enc may add a constant,
    /// 1000 hours, to keep its decode times positive).
    first_raw: Option<u64>,
    out_offset: Option<u64>,
}

fn error(detail: impl Into<String>) -> EncodeError {
    EncodeError::Build {
        encoder: "x265 transcoder",
        detail: detail.into(),
    }
}

fn make(name: &str) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|e| error(format!("{name}: {e}")))
}

/// The new file's bitrate is capped at this share of the source's: x265
/// needs about half the bits of x264 for the same picture, and a file
/// that did not shrink would be re-encoded for nothing.
pub const H265_MAX_PERCENT_OF_SOURCE: u32 = 60;

/// What the NVR's transcoding makes of a recording: an H.264 source gets
/// an [`H265Transcoder`] with `settings`, its bitrate capped (unless
/// `settings` caps it) at [`H265_MAX_PERCENT_OF_SOURCE`] of the source's;
/// any other codec is refused. Pass it to
/// `reallive_store::transcode::rewrite`.
pub fn h264_to_h265(
    settings: &H265Settings,
) -> impl FnOnce(&SourceInfo) -> Result<Box<dyn Reencoder>, BoxError> + '_ {
    move |info: &SourceInfo| {
        if info.codec != Codec::H264 {
            return Err(format!("it is {}, not H.264", info.codec).into());
        }
        let settings = H265Settings {
            max_kbps: settings.max_kbps.or(Some(
                info.bitrate_kbps.saturating_mul(H265_MAX_PERCENT_OF_SOURCE) / 100,
            )),
            ..settings.clone()
        };
        H265Transcoder::new(&info.config, &settings)
            .map(|t| Box::new(t) as Box<dyn Reencoder>)
            .map_err(Into::into)
    }
}

impl H265Transcoder {
    /// Starts a transcoder for H.264 samples described by `avcc` (the body
    /// of the recording's `avcC` box).
    pub fn new(avcc: &[u8], settings: &H265Settings) -> Result<Self, EncodeError> {
        settings.check()?;
        if avcc.is_empty() {
            return Err(EncodeError::InvalidArgument(
                "the recording has no avcC: nothing to configure the decoder with".into(),
            ));
        }
        gst::init().map_err(|e| error(e.to_string()))?;
        for (element, package) in [
            ("x265enc", "gstreamer1.0-plugins-bad"),
            ("h265parse", "gstreamer1.0-plugins-bad"),
        ] {
            if !crate::element_exists(element) {
                return Err(EncodeError::MissingElement { element, package });
            }
        }
        let dec_src = gst_app::AppSrc::builder()
            .caps(
                &gst::Caps::builder("video/x-h264")
                    .field("stream-format", "avc")
                    .field("alignment", "au")
                    .field("codec_data", gst::Buffer::from_slice(avcc.to_vec()))
                    .build(),
            )
            .format(gst::Format::Time)
            .block(true)
            .max_buffers(8)
            .build();
        // Unbounded, but fed only as fast as the caller drains it.
        let dec_sink = gst_app::AppSink::builder().sync(false).build();
        let decode = gst::Pipeline::new();
        let elements = [
            dec_src.upcast_ref(),
            &make("h264parse")?,
            &make(crate::h264_decoder()?)?,
            dec_sink.upcast_ref(),
        ];
        crate::add_linked(&decode, &elements).map_err(error)?;
        decode
            .set_state(gst::State::Playing)
            .map_err(|_| error("the decoder would not start"))?;
        Ok(H265Transcoder {
            settings: settings.clone(),
            decode,
            dec_src,
            dec_sink,
            encode: None,
            pending: HashMap::new(),
            origin_90k: None,
            first_raw: None,
            out_offset: None,
        })
    }

    fn start_encoder(
        &self,
        caps: &gst::CapsRef,
    ) -> Result<(gst::Pipeline, gst_app::AppSrc, gst_app::AppSink), EncodeError> {
        let src = gst_app::AppSrc::builder()
            .caps(&caps.to_owned())
            .format(gst::Format::Time)
            .block(true)
            .max_buffers(4)
            .build();
        let sink = gst_app::AppSink::builder()
            .caps(
                &gst::Caps::builder("video/x-h265")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )
            .sync(false)
            .build();
        let x265 = make("x265enc")?;
        x265.set_property_from_str("speed-preset", &self.settings.preset);
        x265.set_property_from_str("log-level", "error");
        // Keyframes only where the caller asks (far beyond any real GOP
        // otherwise), no B-frames, closed GOPs.
        x265.set_property("key-int-max", 1_000_000i32);
        let mut options = format!(
            "crf={}:bframes=0:scenecut=0:open-gop=0:repeat-headers=1",
            self.settings.crf
        );
        if let Some(k) = self.settings.max_kbps {
            options.push_str(&format!(":vbv-maxrate={k}:vbv-bufsize={k}"));
        }
        x265.set_property("option-string", options);
        let parse = make("h265parse")?;
        parse.set_property("config-interval", -1i32);
        let pipeline = gst::Pipeline::new();
        let elements = [
            src.upcast_ref(),
            &make("videoconvert")?,
            &x265,
            &parse,
            sink.upcast_ref(),
        ];
        crate::add_linked(&pipeline, &elements).map_err(error)?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| error("the encoder would not start"))?;
        Ok((pipeline, src, sink))
    }

    /// Pipeline time of `t_90k`: from the first decode time, plus 1000
    /// hours. x265enc asks its base class to keep timestamps above 1000
    /// hours (so decode times never go negative), and GStreamer 1.22
    /// shifts the first frame's running time but not the later ones' when
    /// they start lower, which makes it drop every forced keyframe after
    /// the first.
    fn ns(&mut self, t_90k: i64) -> Result<u64, EncodeError> {
        const BASE_NS: u64 = 1000 * 3600 * 1_000_000_000;
        let origin = *self.origin_90k.get_or_insert(t_90k);
        u64::try_from(t_90k - origin)
            .map(|t| t * 100_000 / 9 + BASE_NS)
            .map_err(|_| {
                EncodeError::InvalidArgument(format!("time {t_90k} precedes the first frame's"))
            })
    }

    /// Hands over one stored sample (NAL units with 4-byte length
    /// prefixes) and returns whatever pictures are ready. Blocks while the
    /// decoder is full.
    pub fn push(
        &mut self,
        sample: &Bytes,
        pts_90k: i64,
        dts_90k: i64,
        keyframe: bool,
    ) -> Result<Vec<Reencoded>, EncodeError> {
        // The origin is the first decode time: presentation is never before it.
        let dts = self.ns(dts_90k)?;
        let pts = self.ns(pts_90k)?;
        if self.pending.insert(pts, (pts_90k, keyframe)).is_some() {
            return Err(EncodeError::InvalidArgument(format!(
                "two frames with pts {pts_90k}"
            )));
        }
        let mut buffer = gst::Buffer::from_slice(sample.clone());
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_dts(gst::ClockTime::from_nseconds(dts));
            if !keyframe {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.dec_src
            .push_buffer(buffer)
            .map_err(|e| self.failure(format!("the decoder refused a frame: {e:?}")))?;
        self.pump(false)
    }

    /// Ends the stream and returns every picture still inside.
    pub fn finish(&mut self) -> Result<Vec<Reencoded>, EncodeError> {
        let _ = self.dec_src.end_of_stream();
        self.pump(true)
    }

    /// Moves decoded pictures to the encoder and collects what it made.
    /// With `to_end`, waits for both pipelines to finish.
    fn pump(&mut self, to_end: bool) -> Result<Vec<Reencoded>, EncodeError> {
        let mut out = Vec::new();
        loop {
            let raw = if to_end {
                self.dec_sink
                    .try_pull_sample(gst::ClockTime::from_seconds(30))
            } else {
                self.dec_sink.try_pull_sample(gst::ClockTime::ZERO)
            };
            let Some(raw) = raw else {
                if to_end && !self.dec_sink.is_eos() {
                    return Err(self.failure("the decoder stalled".into()));
                }
                break;
            };
            self.encode_picture(&raw)?;
            self.collect(&mut out, false)?;
        }
        if to_end {
            if let Some((_, src, _)) = &self.encode {
                let _ = src.end_of_stream();
            }
            self.collect(&mut out, true)?;
        }
        Ok(out)
    }

    fn encode_picture(&mut self, raw: &gst::Sample) -> Result<(), EncodeError> {
        let Some(buffer) = raw.buffer_owned() else {
            return Ok(());
        };
        let Some(pts) = buffer.pts() else {
            return Err(self.failure("a decoded picture has no timestamp".into()));
        };
        if self.encode.is_none() {
            let caps = raw
                .caps()
                .ok_or_else(|| error("the decoder gave no caps"))?;
            self.encode = Some(self.start_encoder(caps)?);
        }
        let force = self
            .pending
            .get(&pts.nseconds())
            .is_some_and(|(_, key)| *key);
        self.first_raw.get_or_insert(pts.nseconds());
        let Some((_, src, _)) = &self.encode else {
            return Ok(());
        };
        if force {
            let event = gstreamer_video::DownstreamForceKeyUnitEvent::builder()
                .running_time(pts)
                .all_headers(true)
                .build();
            src.send_event(event);
        }
        src.push_buffer(buffer)
            .map_err(|e| self.failure(format!("the encoder refused a picture: {e:?}")))?;
        Ok(())
    }

    fn collect(&mut self, out: &mut Vec<Reencoded>, to_end: bool) -> Result<(), EncodeError> {
        let Some((_, _, sink)) = &self.encode else {
            return Ok(());
        };
        loop {
            let timeout = if to_end {
                gst::ClockTime::from_seconds(60)
            } else {
                gst::ClockTime::ZERO
            };
            let Some(sample) = sink.try_pull_sample(timeout) else {
                if to_end && !sink.is_eos() {
                    return Err(self.failure("the encoder stalled".into()));
                }
                return Ok(());
            };
            let Some(buffer) = sample.buffer() else {
                continue;
            };
            let mut ns = buffer.pts().map(gst::ClockTime::nseconds);
            // Pictures come out in input order (no B-frames): the first
            // is the first pushed, which sets the offset.
            if let (Some(t), Some(first)) = (ns, self.first_raw) {
                let offset = *self.out_offset.get_or_insert(t.saturating_sub(first));
                ns = t.checked_sub(offset);
            }
            let Some((pts_90k, _)) = ns.and_then(|t| self.pending.remove(&t)) else {
                return Err(self.failure(format!(
                    "the encoder returned a picture at {ns:?} that was not pushed"
                )));
            };
            let map = buffer
                .map_readable()
                .map_err(|e| error(format!("reading an encoded picture: {e}")))?;
            out.push(Reencoded {
                pts_90k,
                data: Bytes::copy_from_slice(&map),
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            });
        }
    }

    /// An error, with the first error message on either bus if there is one.
    fn failure(&self, what: String) -> EncodeError {
        let mut pipelines = vec![&self.decode];
        if let Some((p, _, _)) = &self.encode {
            pipelines.push(p);
        }
        for p in pipelines {
            if let Some(bus) = p.bus()
                && let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error])
                && let gst::MessageView::Error(e) = msg.view()
            {
                return error(format!("{what}: {}", e.error()));
            }
        }
        error(what)
    }
}

impl Drop for H265Transcoder {
    fn drop(&mut self) {
        if let Some((p, _, _)) = &self.encode {
            let _ = p.set_state(gst::State::Null);
        }
        let _ = self.decode.set_state(gst::State::Null);
    }
}

/// The store's rewrite drives the transcoder through this trait.
impl Reencoder for H265Transcoder {
    fn push(
        &mut self,
        data: &Bytes,
        pts_90k: i64,
        dts_90k: i64,
        keyframe: bool,
    ) -> Result<Vec<Reencoded>, BoxError> {
        Ok(H265Transcoder::push(
            self, data, pts_90k, dts_90k, keyframe,
        )?)
    }

    fn finish(&mut self) -> Result<Vec<Reencoded>, BoxError> {
        Ok(H265Transcoder::finish(self)?)
    }
}
