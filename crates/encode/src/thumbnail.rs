//! Keyframe thumbnails: one stored keyframe in, a small baseline JPEG out.
//!
//! ```text
//! (avc/hvc1 + codec_data) ! avdec_h264|avdec_h265 (one thread)
//!   ! videoscale ! video/x-raw,width=W,height=H,pixel-aspect-ratio=1/1
//!   ! videoconvert ! jpegenc quality=75 ! appsink
//! ```
//!
//! [`ThumbnailMaker`] keeps this pipeline warm between pictures, one per
//! codec, and pushes each keyframe through it on the caller's thread.
//!
//! The size is chosen when the decoder announces its picture format: the
//! width is at most `max_width` (never upscaled), the display aspect (with
//! the stream's pixel aspect ratio) is kept, and both sides are even.
//!
//! Blocking: call it from a thread of its own (`spawn_blocking`), never an
//! async worker.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use reallive_core::{Codec, h264, h265};

use crate::EncodeError;

/// `jpegenc` quality of the thumbnails.
pub const THUMBNAIL_JPEG_QUALITY: i32 = 75;

/// The accepted range of `max_width`, in pixels.
pub const THUMBNAIL_WIDTH_RANGE: std::ops::RangeInclusive<u32> = 16..=3840;

/// Makes a baseline JPEG of one keyframe, on a pipeline of its own that
/// ends with the call. A caller making many (the thumbnail worker) keeps a
/// [`ThumbnailMaker`] instead, which keeps its decoder warm.
///
/// - `codec_config`: the body of the sample entry's `avcC` (H.264) or
///   `hvcC` (H.265) box, as `reallive_store::scan::ScannedFile::codec_config`
///   gives it; it must declare 4-byte NAL lengths.
/// - `access_unit`: the keyframe sample as stored in MP4, NAL units with
///   4-byte big-endian length prefixes. It must hold an IDR (H.264) or IRAP
///   (H.265) picture: nothing before it is needed to decode it.
/// - `max_width`: the widest the JPEG may be, in [`THUMBNAIL_WIDTH_RANGE`].
///
/// The JPEG keeps the picture's display aspect, has even sides, is never
/// wider than the picture, and has quality [`THUMBNAIL_JPEG_QUALITY`]; a
/// 1080p keyframe gives 320x180 at `max_width` 320.
///
/// Errors: [`EncodeError::InvalidArgument`] for a bad `max_width`, a
/// malformed `codec_config`, or an access unit that is malformed or not a
/// keyframe (checked before any decoding); [`EncodeError::MissingElement`]
/// when a decoder is not installed; [`EncodeError::Build`] when the
/// decoder gives no picture (corrupt data).
///
/// Blocks the calling thread while it decodes (tens of milliseconds for
/// 1080p).
pub fn jpeg_from_keyframe(
    codec: Codec,
    codec_config: &[u8],
    access_unit: &[u8],
    max_width: u32,
) -> Result<Vec<u8>, EncodeError> {
    ThumbnailMaker::new()?.make(codec, codec_config, access_unit, max_width)
}

/// A thumbnail maker for one worker thread: the
/// [`Thumbnailer`](reallive_core::decode::Thumbnailer) the recorder's
/// thumbnail worker drives.
///
/// It keeps one pipeline per codec between calls, so a thumbnail costs a
/// decode and a JPEG, not a pipeline's elements, threads and decoder
/// contexts (a new pipeline per picture was a quarter of an idle NVR's
/// CPU):
///
/// ```text
/// (our pad) ! avdec_h264|avdec_h265 (one thread) ! videoscale
///   ! video/x-raw,width=W,height=H,pixel-aspect-ratio=1/1
///   ! videoconvert ! jpegenc quality=75 ! appsink
/// ```
///
/// The keyframe is pushed on the caller's thread through every element,
/// so the JPEG is in the sink when the push returns: no thread between
/// and no time-out to guess. The segment asks for keyframes only
/// (`TRICKMODE_KEY_UNITS`), so the decoder drains after each one and a
/// stream that may reorder pictures still gives its picture at once. A
/// new `codec_config` is a new caps event (another camera). Each codec and
/// width has a pipeline of its own, up to four kept (the least recently
/// used goes). A pipeline that failed is dropped and built again at the
/// next call.
#[derive(Debug, Default)]
pub struct ThumbnailMaker {
    /// Warm pipelines by codec and width, the most recently used last; at
    /// most [`WARM_PIPELINES`].
    pipes: Vec<Pipe>,
}

/// Pipelines a [`ThumbnailMaker`] keeps warm: timeline thumbnails and
/// full-size snapshots of both codecs.
const WARM_PIPELINES: usize = 4;

impl ThumbnailMaker {
    /// Initialises GStreamer and checks that the JPEG side of the pipeline
    /// is installed (decoders are checked per codec, when first needed).
    pub fn new() -> Result<Self, EncodeError> {
        gst::init().map_err(|e| error(e.to_string()))?;
        for (element, package) in [
            ("jpegenc", "gstreamer1.0-plugins-good"),
            ("videoscale", "gstreamer1.0-plugins-base"),
            ("videoconvert", "gstreamer1.0-plugins-base"),
        ] {
            if !crate::element_exists(element) {
                return Err(EncodeError::MissingElement { element, package });
            }
        }
        Ok(ThumbnailMaker::default())
    }

    /// [`jpeg_from_keyframe`], with the same contract.
    pub fn make(
        &mut self,
        codec: Codec,
        codec_config: &[u8],
        access_unit: &[u8],
        max_width: u32,
    ) -> Result<Vec<u8>, EncodeError> {
        if !THUMBNAIL_WIDTH_RANGE.contains(&max_width) {
            return Err(EncodeError::InvalidArgument(format!(
                "thumbnail width {max_width} px is out of {}..={}",
                THUMBNAIL_WIDTH_RANGE.start(),
                THUMBNAIL_WIDTH_RANGE.end()
            )));
        }
        check_codec_config(codec, codec_config)?;
        check_keyframe(codec, access_unit)?;
        if !matches!(codec, Codec::H264 | Codec::H265) {
            return Err(EncodeError::InvalidArgument(format!(
                "no thumbnails for {codec}"
            )));
        }
        let mut pipe = match self
            .pipes
            .iter()
            .position(|p| p.codec == codec && p.max_width == max_width)
        {
            Some(at) => self.pipes.remove(at),
            None => Pipe::build(codec, max_width)?,
        };
        let made = pipe.jpeg(codec_config, access_unit);
        // Corrupt data leaves a decoder in a state nobody can vouch for:
        // the next picture gets a fresh one.
        if made.is_ok() {
            if self.pipes.len() >= WARM_PIPELINES {
                self.pipes.remove(0);
            }
            self.pipes.push(pipe);
        }
        made
    }
}

impl reallive_core::decode::Thumbnailer for ThumbnailMaker {
    fn jpeg(
        &mut self,
        codec: Codec,
        codec_config: &[u8],
        access_unit: &[u8],
        max_width: u32,
    ) -> Result<Vec<u8>, reallive_core::reencode::BoxError> {
        Ok(self.make(codec, codec_config, access_unit, max_width)?)
    }
}

/// One codec's warm pipeline (see [`ThumbnailMaker`]).
struct Pipe {
    codec: Codec,
    pipeline: gst::Pipeline,
    src: gst::Pad,
    sink: gst_app::AppSink,
    decoder: &'static str,
    media_type: &'static str,
    stream_format: &'static str,
    max_width: u32,
    /// The `codec_config` of the caps the decoder was last given.
    config: Vec<u8>,
    /// Each keyframe's timestamp, in milliseconds, so each is new.
    next: u64,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("decoder", &self.decoder)
            .field("max_width", &self.max_width)
            .finish_non_exhaustive()
    }
}

impl Pipe {
    fn build(codec: Codec, max_width: u32) -> Result<Pipe, EncodeError> {
        let (media_type, stream_format, decoder) = match codec {
            Codec::H264 => ("video/x-h264", "avc", crate::h264_decoder()?),
            _ => ("video/x-h265", "hvc1", h265_decoder()?),
        };
        let sink = gst_app::AppSink::builder()
            .max_buffers(2)
            .drop(true)
            .sync(false)
            .build();
        // Renders without waiting for a preroll: the pushing thread is ours.
        sink.set_property("async", false);
        let filter = make("capsfilter")?;
        let decode = make(decoder)?;
        crate::one_decoder_thread(&decode);
        let jpeg = make("jpegenc")?;
        jpeg.set_property("quality", THUMBNAIL_JPEG_QUALITY);
        let decoded = decode
            .static_pad("src")
            .ok_or_else(|| error(format!("{decoder} has no src pad")))?;
        let sized = filter.clone();
        // The probe runs before the caps event reaches videoscale, so the
        // filter is set by the time videoscale negotiates.
        decoded.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && let gst::EventView::Caps(caps) = event.view()
                && let Some((width, height)) = target_size(caps.caps(), max_width)
            {
                sized.set_property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("width", width)
                        .field("height", height)
                        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                        .build(),
                );
            }
            gst::PadProbeReturn::Ok
        });
        let pipeline = gst::Pipeline::new();
        let elements = [
            &decode,
            &make("videoscale")?,
            &filter,
            &make("videoconvert")?,
            &jpeg,
            sink.upcast_ref(),
        ];
        crate::add_linked(&pipeline, &elements).map_err(error)?;
        let src = crate::pad_into(&decode, "keyframes").map_err(error)?;
        let pipe = Pipe {
            codec,
            pipeline,
            src,
            sink,
            decoder,
            media_type,
            stream_format,
            max_width,
            config: Vec::new(),
            next: 0,
        };
        pipe.pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| error("the thumbnail pipeline would not start".into()))?;
        pipe.src
            .set_active(true)
            .map_err(|e| error(format!("activating its source: {e}")))?;
        if !pipe
            .src
            .push_event(gst::event::StreamStart::new("thumbnails"))
        {
            return Err(error("the decoder refused its stream".into()));
        }
        Ok(pipe)
    }

    /// Decodes one checked keyframe into a JPEG, on this thread.
    fn jpeg(&mut self, codec_config: &[u8], access_unit: &[u8]) -> Result<Vec<u8>, EncodeError> {
        if self.config != codec_config {
            let caps = gst::Caps::builder(self.media_type)
                .field("stream-format", self.stream_format)
                .field("alignment", "au")
                .field("codec_data", gst::Buffer::from_slice(codec_config.to_vec()))
                .build();
            // The segment follows the first caps (sticky events keep
            // their order), and stays.
            let first = self.config.is_empty();
            let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
            segment.set_flags(gst::SegmentFlags::TRICKMODE_KEY_UNITS);
            if !self.src.push_event(gst::event::Caps::new(&caps))
                || (first && !self.src.push_event(gst::event::Segment::new(&segment)))
            {
                return Err(error(format!(
                    "{} refused the decoder configuration",
                    self.decoder
                )));
            }
            self.config = codec_config.to_vec();
        }
        // A picture left over from a call that failed half way is not
        // this keyframe's.
        while self.sink.try_pull_sample(gst::ClockTime::ZERO).is_some() {}
        let mut buffer = gst::Buffer::from_slice(access_unit.to_vec());
        if let Some(b) = buffer.get_mut() {
            let at = gst::ClockTime::from_mseconds(self.next);
            b.set_pts(at);
            b.set_dts(at);
        }
        self.next += 1;
        self.src
            .push(buffer)
            .map_err(|e| error(format!("decoding the keyframe failed: {e:?}")))?;
        let sample = self
            .sink
            .try_pull_sample(gst::ClockTime::ZERO)
            .ok_or_else(|| {
                error(format!(
                    "{} made no picture of the keyframe: the data is corrupt",
                    self.decoder
                ))
            })?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| error("the encoder gave an empty sample".into()))?;
        let map = buffer
            .map_readable()
            .map_err(|e| error(format!("reading the JPEG: {e}")))?;
        Ok(map.to_vec())
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.src.set_active(false);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// [`ThumbnailMaker::new`] as the factory the recorder's thumbnail worker
/// takes.
pub fn start_thumbnailer() -> reallive_core::decode::StartThumbnailer {
    std::sync::Arc::new(|| {
        ThumbnailMaker::new()
            .map(|m| Box::new(m) as Box<dyn reallive_core::decode::Thumbnailer>)
            .map_err(Into::into)
    })
}

/// The first installed H.265 decoder.
fn h265_decoder() -> Result<&'static str, EncodeError> {
    ["avdec_h265", "libde265dec"]
        .into_iter()
        .find(|d| crate::element_exists(d))
        .ok_or(EncodeError::MissingElement {
            element: "avdec_h265",
            package: "gstreamer1.0-libav",
        })
}

/// The thumbnail size for decoded `caps`: at most `max_width` wide and no
/// wider than the picture shows, the display aspect kept, both sides even.
fn target_size(caps: &gst::CapsRef, max_width: u32) -> Option<(i32, i32)> {
    let s = caps.structure(0)?;
    let width = u64::try_from(s.get::<i32>("width").ok()?).ok()?;
    let height = u64::try_from(s.get::<i32>("height").ok()?).ok()?;
    let par = s
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .unwrap_or_else(|_| gst::Fraction::new(1, 1));
    let (par_n, par_d) = (
        u64::try_from(par.numer()).ok().filter(|n| *n > 0)?,
        u64::try_from(par.denom()).ok().filter(|d| *d > 0)?,
    );
    let (w, h) = scaled_size(width * par_n / par_d, height, u64::from(max_width))?;
    Some((i32::try_from(w).ok()?, i32::try_from(h).ok()?))
}

/// `display_width` x `height` scaled to at most `max_width` wide, both
/// sides even and at least 2; `None` for an empty picture.
fn scaled_size(display_width: u64, height: u64, max_width: u64) -> Option<(u64, u64)> {
    if display_width == 0 || height == 0 {
        return None;
    }
    let w = (display_width.min(max_width) & !1).max(2);
    // Nearest even height: round(height * w / display_width / 2) * 2.
    let h = ((height * w + display_width) / (2 * display_width) * 2).max(2);
    Some((w, h))
}

/// Checks that `config` is a whole `avcC`/`hvcC` body with 4-byte NAL
/// lengths and at least one SPS and PPS.
fn check_codec_config(codec: Codec, config: &[u8]) -> Result<(), EncodeError> {
    let bad = |why: &str| {
        EncodeError::InvalidArgument(format!("the {codec} decoder configuration is {why}"))
    };
    let mut r = Reader(config);
    let (mut sps, mut pps) = (0, 0);
    match codec {
        Codec::H264 => {
            if config.is_empty() {
                return Err(bad("missing"));
            }
            let header = r.take(5).ok_or_else(|| bad("truncated"))?;
            if header[0] != 1 {
                return Err(bad("of an unknown version"));
            }
            if header[4] & 3 != 3 {
                return Err(bad("not for 4-byte NAL lengths"));
            }
            for (count_mask, counter) in [(0x1f, &mut sps), (0xff, &mut pps)] {
                let n = r.u8().ok_or_else(|| bad("truncated"))? & count_mask;
                for _ in 0..n {
                    let len = r.u16().ok_or_else(|| bad("truncated"))?;
                    r.take(usize::from(len)).ok_or_else(|| bad("truncated"))?;
                }
                *counter += n;
            }
            // Anything after is the high-profile extension, which the
            // decoder does not need.
        }
        Codec::H265 => {
            if config.is_empty() {
                return Err(bad("missing"));
            }
            let header = r.take(23).ok_or_else(|| bad("truncated"))?;
            if header[0] != 1 {
                return Err(bad("of an unknown version"));
            }
            if header[21] & 3 != 3 {
                return Err(bad("not for 4-byte NAL lengths"));
            }
            for _ in 0..header[22] {
                let ty = r.u8().ok_or_else(|| bad("truncated"))? & 0x3f;
                let n = r.u16().ok_or_else(|| bad("truncated"))?;
                for _ in 0..n {
                    let len = r.u16().ok_or_else(|| bad("truncated"))?;
                    r.take(usize::from(len)).ok_or_else(|| bad("truncated"))?;
                }
                match ty {
                    h265::NAL_SPS => sps += u8::from(n > 0),
                    h265::NAL_PPS => pps += u8::from(n > 0),
                    _ => {}
                }
            }
        }
        other => {
            return Err(EncodeError::InvalidArgument(format!(
                "no thumbnails for {other}"
            )));
        }
    }
    if sps == 0 || pps == 0 {
        return Err(bad("without an SPS and a PPS"));
    }
    Ok(())
}

/// Checks that `au` is a whole run of 4-byte length-prefixed NAL units
/// holding a picture decoding can start at.
fn check_keyframe(codec: Codec, au: &[u8]) -> Result<(), EncodeError> {
    let bad = |why: &str| EncodeError::InvalidArgument(format!("the {codec} keyframe {why}"));
    if au.is_empty() {
        return Err(bad("is empty"));
    }
    let mut r = Reader(au);
    let mut keyframe = false;
    while !r.0.is_empty() {
        let len = r.u32().ok_or_else(|| bad("ends inside a NAL length"))?;
        let unit = usize::try_from(len)
            .ok()
            .and_then(|len| r.take(len))
            .ok_or_else(|| bad("has a NAL unit longer than the sample"))?;
        let Some(&first) = unit.first() else {
            return Err(bad("has an empty NAL unit"));
        };
        if first & 0x80 != 0 {
            return Err(bad("is not length-prefixed NAL units"));
        }
        keyframe |= match (codec, reallive_core::nal::nal_type(codec, unit)) {
            (Codec::H264, Some(t)) => t == h264::NAL_IDR,
            (Codec::H265, Some(t)) => h265::is_irap(t),
            _ => false,
        };
    }
    if !keyframe {
        return Err(bad(
            "is not a keyframe: it has no IDR/IRAP picture to decode on its own",
        ));
    }
    Ok(())
}

/// A big-endian cursor over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn make(name: &str) -> Result<gst::Element, EncodeError> {
    gst::ElementFactory::make(name)
        .build()
        .map_err(|e| error(format!("{name}: {e}")))
}

fn error(detail: String) -> EncodeError {
    EncodeError::Build {
        encoder: "thumbnail",
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An avcC body with one SPS and one PPS.
    fn avcc() -> Vec<u8> {
        let mut c = vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1];
        c.extend_from_slice(&[0, 4, 0x67, 0x42, 0xc0, 0x1e]);
        c.extend_from_slice(&[1, 0, 2, 0x68, 0xce]);
        c
    }

    /// An hvcC body with one VPS, SPS and PPS.
    fn hvcc() -> Vec<u8> {
        let mut c = vec![1];
        c.extend_from_slice(&[0; 20]);
        c.extend_from_slice(&[0x0f, 3]);
        for ty in [32u8, 33, 34] {
            c.extend_from_slice(&[0x80 | ty, 0, 1, 0, 2, ty << 1, 1]);
        }
        c
    }

    #[test]
    fn thumbnail_sizes_keep_the_aspect_and_are_even() {
        let table = [
            // display width, height, max width -> size
            ((1920, 1080, 320), Some((320, 180))),
            ((1280, 720, 320), Some((320, 180))),
            ((640, 480, 320), Some((320, 240))),
            ((720, 480, 320), Some((320, 214))), // 213.3 -> nearest even
            ((2560, 1080, 320), Some((320, 136))), // 135 -> 136
            ((160, 120, 320), Some((160, 120))), // never upscaled
            ((161, 121, 320), Some((160, 120))),
            ((1080, 1920, 320), Some((320, 568))), // portrait: 568.9
            ((4000, 10, 320), Some((320, 2))),
            ((0, 1080, 320), None),
        ];
        for ((w, h, max), want) in table {
            assert_eq!(scaled_size(w, h, max), want, "{w}x{h} at {max}");
        }
    }

    #[test]
    fn thumbnail_codec_configs_are_checked_whole() {
        assert!(check_codec_config(Codec::H264, &avcc()).is_ok());
        assert!(check_codec_config(Codec::H265, &hvcc()).is_ok());
        for (codec, config) in [(Codec::H264, avcc()), (Codec::H265, hvcc())] {
            for cut in 0..config.len() {
                let e = check_codec_config(codec, &config[..cut]).unwrap_err();
                assert!(
                    matches!(e, EncodeError::InvalidArgument(_)),
                    "{codec} cut at {cut}: {e}"
                );
            }
        }
        let mut two_byte_lengths = avcc();
        two_byte_lengths[4] = 0xfd;
        assert!(check_codec_config(Codec::H264, &two_byte_lengths).is_err());
        // An hvcC given as avcC and the other way round.
        assert!(check_codec_config(Codec::H265, &avcc()).is_err());
    }

    #[test]
    fn thumbnail_access_units_must_be_whole_keyframes() {
        let idr = [0, 0, 0, 2, 0x65, 0x88];
        let p = [0, 0, 0, 2, 0x41, 0x9a];
        let irap = [0, 0, 0, 3, 19 << 1, 1, 0xaf];
        assert!(check_keyframe(Codec::H264, &idr).is_ok());
        assert!(check_keyframe(Codec::H264, &[&p[..], &idr[..]].concat()).is_ok());
        assert!(check_keyframe(Codec::H265, &irap).is_ok());
        for (codec, au) in [
            (Codec::H264, &p[..]),               // not a keyframe
            (Codec::H264, &[][..]),              // empty
            (Codec::H264, &idr[..5]),            // cut inside the unit
            (Codec::H264, &[0, 0, 0][..]),       // cut inside the length
            (Codec::H264, &[0, 0, 0, 0][..]),    // empty unit
            (Codec::H264, &[0, 0, 1, 0x65][..]), // Annex-B, not length-prefixed
            (Codec::H265, &idr[..]),             // H.264 data as H.265
        ] {
            assert!(
                matches!(
                    check_keyframe(codec, au),
                    Err(EncodeError::InvalidArgument(_))
                ),
                "{codec} {au:02x?}"
            );
        }
    }

    #[test]
    fn thumbnail_width_out_of_range_is_refused() {
        for w in [0, 15, 3841] {
            assert!(matches!(
                jpeg_from_keyframe(Codec::H264, &avcc(), &[0, 0, 0, 2, 0x65, 0x88], w),
                Err(EncodeError::InvalidArgument(_))
            ));
        }
    }
}
