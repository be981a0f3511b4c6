//! Fragmented MP4 (ISO/IEC 14496-12) for one video track, H.264 or H.265,
//! and optionally an audio track beside it, Opus or AAC.
//!
//! Layout: `ftyp` + `moov` (with `mvex`, empty sample tables and `avcC` or
//! `hvcC` built from the stream's parameter sets), then `moof` + `mdat` per
//! fragment. Video media time is 90 kHz throughout, so RTP, capture and file
//! timestamps map one to one. Audio, track 2 after [`init_segment_with_audio`],
//! runs at its sample rate, so each packet's duration is a whole number of
//! samples.
//!
//! Everything here is sans-IO: functions return the bytes to append.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use reallive_core::{
    AudioCodec, AudioFrame, AudioParameters, Codec, CodecParameters, EncodedFrame, h264, h265, nal,
};

use crate::StoreError;

/// The video's media timescale: 90 kHz.
pub const TIMESCALE: u32 = 90_000;
const TRACK_ID: u32 = 1;
/// The audio track, when there is one; its timescale is its sample rate.
const AUDIO_TRACK_ID: u32 = 2;

/// `sample_depends_on = 2`: decodable on its own.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_depends_on = 1` and `sample_is_non_sync_sample`.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

fn mp4_box(buf: &mut BytesMut, fourcc: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_slice(fourcc);
    body(buf);
    let size = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full_box(
    buf: &mut BytesMut,
    fourcc: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    mp4_box(buf, fourcc, |b| {
        b.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(b);
    });
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// `ftyp` + `moov` for a stream with these parameter sets.
pub fn init_segment(params: &CodecParameters) -> Result<Bytes, StoreError> {
    Ok(init(&VideoTrack::new(params)?, None))
}

/// `ftyp` + `moov` for a video track and an audio track beside it.
///
/// Track 1 is the video, described as [`init_segment`] describes it;
/// track 2 is the audio, whose timescale is its sample rate: an `Opus`
/// sample entry with a `dOps` box ("Encapsulation of Opus in ISO Base Media
/// File Format"), or an `mp4a` one with an `esds` (ISO/IEC 14496-14).
/// Write the fragments with [`media_segment_with_audio`].
///
/// Fails as [`init_segment`] does, and for audio it cannot describe: Opus
/// not at 48 kHz, or with more than two channels and no `OpusHead` to give
/// their mapping; AAC without its AudioSpecificConfig or channel count.
pub fn init_segment_with_audio(
    video: &CodecParameters,
    audio: &AudioParameters,
) -> Result<Bytes, StoreError> {
    Ok(init(
        &VideoTrack::new(video)?,
        Some(&AudioTrack::new(audio)?),
    ))
}

/// A video track's description, checked and ready to write.
struct VideoTrack {
    codec: Codec,
    width: u16,
    height: u16,
    /// The `avcC` or `hvcC` box.
    config: Bytes,
}

impl VideoTrack {
    fn new(params: &CodecParameters) -> Result<Self, StoreError> {
        if !params.is_complete() {
            return Err(StoreError::InvalidInput(format!(
                "cannot describe a {} track without its parameter sets",
                params.codec
            )));
        }
        let info = params.stream_info()?;
        let (width, height) = (
            u16::try_from(info.width)
                .map_err(|_| StoreError::InvalidInput("width too large".into()))?,
            u16::try_from(info.height)
                .map_err(|_| StoreError::InvalidInput("height too large".into()))?,
        );
        let config = match params.codec {
            Codec::H264 => avcc(params)?,
            _ => hvcc(params)?,
        };
        Ok(VideoTrack {
            codec: params.codec,
            width,
            height,
            config,
        })
    }

    /// The sample entry's fourcc, which is also the file's brand.
    fn fourcc(&self) -> &'static [u8; 4] {
        match self.codec {
            Codec::H264 => b"avc1",
            _ => b"hvc1",
        }
    }
}

/// An audio track's description, checked and ready to write.
struct AudioTrack {
    /// The sample entry: `Opus` or `mp4a`.
    fourcc: &'static [u8; 4],
    sample_rate: u32,
    channels: u8,
    /// The `dOps` or `esds` box.
    config: Bytes,
}

impl AudioTrack {
    fn new(params: &AudioParameters) -> Result<Self, StoreError> {
        if params.sample_rate == 0 {
            return Err(StoreError::InvalidInput(
                "an audio track needs a sample rate".into(),
            ));
        }
        match params.codec {
            AudioCodec::Opus => {
                if params.sample_rate != 48_000 {
                    return Err(StoreError::InvalidInput(format!(
                        "an Opus track runs at 48000 Hz, not {}",
                        params.sample_rate
                    )));
                }
                let (config, channels) = dops(params)?;
                Ok(AudioTrack {
                    fourcc: b"Opus",
                    sample_rate: params.sample_rate,
                    channels,
                    config,
                })
            }
            AudioCodec::Aac => {
                if params.channels == 0 {
                    return Err(StoreError::InvalidInput(
                        "an AAC track needs its channel count".into(),
                    ));
                }
                Ok(AudioTrack {
                    fourcc: b"mp4a",
                    sample_rate: params.sample_rate,
                    channels: params.channels,
                    config: esds(&params.config)?,
                })
            }
        }
    }
}

fn init(video: &VideoTrack, audio: Option<&AudioTrack>) -> Bytes {
    let mut b = BytesMut::with_capacity(1024);
    mp4_box(&mut b, b"ftyp", |b| {
        b.put_slice(b"isom");
        b.put_u32(0x200);
        for brand in [b"isom", b"iso6", b"mp41"] {
            b.put_slice(brand);
        }
        b.put_slice(video.fourcc());
    });
    mp4_box(&mut b, b"moov", |b| {
        full_box(b, b"mvhd", 0, 0, |b| {
            b.put_u32(0); // creation_time
            b.put_u32(0); // modification_time
            b.put_u32(1000); // timescale
            b.put_u32(0); // duration: unknown, fragments follow
            b.put_u32(0x0001_0000); // rate 1.0
            b.put_u16(0x0100); // volume 1.0
            b.put_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| b.put_u32(*m));
            b.put_slice(&[0; 24]); // pre_defined
            let last = if audio.is_some() {
                AUDIO_TRACK_ID
            } else {
                TRACK_ID
            };
            b.put_u32(last + 1); // next_track_ID
        });
        video_trak(b, video);
        if let Some(audio) = audio {
            audio_trak(b, audio);
        }
        mp4_box(b, b"mvex", |b| {
            trex(b, TRACK_ID);
            if audio.is_some() {
                trex(b, AUDIO_TRACK_ID);
            }
        });
    });
    b.freeze()
}

fn video_trak(b: &mut BytesMut, video: &VideoTrack) {
    mp4_box(b, b"trak", |b| {
        tkhd(b, TRACK_ID, 0, video.width, video.height);
        mp4_box(b, b"mdia", |b| {
            mdhd(b, TIMESCALE);
            hdlr(b, b"vide", b"RealLive video\0");
            mp4_box(b, b"minf", |b| {
                full_box(b, b"vmhd", 0, 1, |b| b.put_slice(&[0; 8]));
                dinf(b);
                stbl(b, |b| {
                    mp4_box(b, video.fourcc(), |b| {
                        b.put_slice(&[0; 6]);
                        b.put_u16(1); // data_reference_index
                        b.put_slice(&[0; 16]);
                        b.put_u16(video.width);
                        b.put_u16(video.height);
                        b.put_u32(0x0048_0000); // 72 dpi
                        b.put_u32(0x0048_0000);
                        b.put_u32(0);
                        b.put_u16(1); // frame_count
                        b.put_slice(&[0; 32]); // compressorname
                        b.put_u16(0x0018); // depth
                        b.put_i16(-1);
                        b.put_slice(&video.config);
                    });
                });
            });
        });
    });
}

fn audio_trak(b: &mut BytesMut, audio: &AudioTrack) {
    mp4_box(b, b"trak", |b| {
        tkhd(b, AUDIO_TRACK_ID, 0x0100, 0, 0);
        mp4_box(b, b"mdia", |b| {
            mdhd(b, audio.sample_rate);
            hdlr(b, b"soun", b"RealLive audio\0");
            mp4_box(b, b"minf", |b| {
                full_box(b, b"smhd", 0, 0, |b| b.put_u32(0)); // balance, reserved
                dinf(b);
                stbl(b, |b| {
                    mp4_box(b, audio.fourcc, |b| {
                        b.put_slice(&[0; 6]);
                        b.put_u16(1); // data_reference_index
                        b.put_slice(&[0; 8]);
                        b.put_u16(u16::from(audio.channels));
                        b.put_u16(16); // samplesize
                        b.put_u32(0); // pre_defined, reserved
                        // 16.16 fixed point: rates above 65535 Hz do not
                        // fit, and the timescale says it anyway.
                        b.put_u32(if audio.sample_rate <= 0xffff {
                            audio.sample_rate << 16
                        } else {
                            0
                        });
                        b.put_slice(&audio.config);
                    });
                });
            });
        });
    });
}

/// `tkhd`; `volume` is 0 for video, 0x0100 (1.0) for audio.
fn tkhd(b: &mut BytesMut, track_id: u32, volume: u16, width: u16, height: u16) {
    full_box(b, b"tkhd", 0, 0x3, |b| {
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(track_id);
        b.put_u32(0);
        b.put_u32(0); // duration
        b.put_slice(&[0; 8]);
        b.put_u16(0); // layer
        b.put_u16(0); // alternate_group
        b.put_u16(volume);
        b.put_u16(0);
        MATRIX.iter().for_each(|m| b.put_u32(*m));
        b.put_u32(u32::from(width) << 16);
        b.put_u32(u32::from(height) << 16);
    });
}

fn mdhd(b: &mut BytesMut, timescale: u32) {
    full_box(b, b"mdhd", 0, 0, |b| {
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(timescale);
        b.put_u32(0);
        b.put_u16(0x55c4); // "und"
        b.put_u16(0);
    });
}

fn hdlr(b: &mut BytesMut, handler: &[u8; 4], name: &[u8]) {
    full_box(b, b"hdlr", 0, 0, |b| {
        b.put_u32(0);
        b.put_slice(handler);
        b.put_slice(&[0; 12]);
        b.put_slice(name);
    });
}

/// `dinf`: the samples are in this file.
fn dinf(b: &mut BytesMut) {
    mp4_box(b, b"dinf", |b| {
        full_box(b, b"dref", 0, 0, |b| {
            b.put_u32(1);
            full_box(b, b"url ", 0, 1, |_| {});
        });
    });
}

/// `stbl` with one sample entry and empty tables: the samples are in the
/// fragments.
fn stbl(b: &mut BytesMut, entry: impl FnOnce(&mut BytesMut)) {
    mp4_box(b, b"stbl", |b| {
        full_box(b, b"stsd", 0, 0, |b| {
            b.put_u32(1);
            entry(b);
        });
        full_box(b, b"stts", 0, 0, |b| b.put_u32(0));
        full_box(b, b"stsc", 0, 0, |b| b.put_u32(0));
        full_box(b, b"stsz", 0, 0, |b| {
            b.put_u32(0);
            b.put_u32(0);
        });
        full_box(b, b"stco", 0, 0, |b| b.put_u32(0));
    });
}

fn trex(b: &mut BytesMut, track_id: u32) {
    full_box(b, b"trex", 0, 0, |b| {
        b.put_u32(track_id);
        b.put_u32(1); // default_sample_description_index
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(0);
    });
}

fn put_u16_len(b: &mut BytesMut, data: &[u8]) -> Result<(), StoreError> {
    let len = u16::try_from(data.len())
        .map_err(|_| StoreError::InvalidInput("parameter set longer than 64 KiB".into()))?;
    b.put_u16(len);
    b.put_slice(data);
    Ok(())
}

/// The body of the `avcC` / `hvcC` box for `params`: what a decoder takes
/// as its codec data (and [`crate::Keyframe::codec_config`] holds).
pub fn codec_config(params: &CodecParameters) -> Result<Bytes, StoreError> {
    if params.sps.is_empty() || params.pps.is_empty() {
        return Err(StoreError::InvalidInput("no SPS or PPS yet".into()));
    }
    let boxed = match params.codec {
        reallive_core::Codec::H264 => avcc(params)?,
        reallive_core::Codec::H265 if !params.vps.is_empty() => hvcc(params)?,
        other => {
            return Err(StoreError::InvalidInput(format!(
                "no decoder configuration for {other}"
            )));
        }
    };
    // size (4) and type (4) of the box
    Ok(boxed.slice(8..))
}

/// `avcC`: AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3).
fn avcc(params: &CodecParameters) -> Result<Bytes, StoreError> {
    let sps = &params.sps[0];
    let parsed = h264::Sps::parse(sps)?;
    let mut out = BytesMut::new();
    let mut err = None;
    mp4_box(&mut out, b"avcC", |b| {
        b.put_u8(1);
        b.put_slice(&sps[1..4]); // profile, compatibility, level
        b.put_u8(0xfc | 3); // 4-byte NAL lengths
        b.put_u8(0xe0 | (params.sps.len().min(31) as u8));
        for s in params.sps.iter().take(31) {
            if let Err(e) = put_u16_len(b, s) {
                err = Some(e);
            }
        }
        b.put_u8(params.pps.len().min(255) as u8);
        for p in params.pps.iter().take(255) {
            if let Err(e) = put_u16_len(b, p) {
                err = Some(e);
            }
        }
        if h264::has_avcc_extension(parsed.profile_idc) {
            b.put_u8(0xfc | (parsed.chroma_format_idc as u8 & 3));
            b.put_u8(0xf8 | (parsed.bit_depth_luma_minus8 as u8 & 7));
            b.put_u8(0xf8 | (parsed.bit_depth_chroma_minus8 as u8 & 7));
            b.put_u8(0); // numOfSequenceParameterSetExt
        }
    });
    err.map_or(Ok(out.freeze()), Err)
}

/// `hvcC`: HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3).
fn hvcc(params: &CodecParameters) -> Result<Bytes, StoreError> {
    let sps = &params.sps[0];
    let parsed = h265::Sps::parse(sps)?;
    // general_profile_tier_level: 12 bytes after the NAL header and the
    // vps_id/max_sub_layers/nesting byte.
    let rbsp = nal::unescape_rbsp(&sps[2..]);
    let ptl = rbsp
        .get(1..13)
        .ok_or_else(|| StoreError::InvalidInput("H.265 SPS too short".into()))?;
    let mut out = BytesMut::new();
    let mut err = None;
    mp4_box(&mut out, b"hvcC", |b| {
        b.put_u8(1);
        b.put_slice(ptl);
        b.put_u16(0xf000); // min_spatial_segmentation_idc
        b.put_u8(0xfc); // parallelismType
        b.put_u8(0xfc | (parsed.chroma_format_idc as u8 & 3));
        b.put_u8(0xf8 | (parsed.bit_depth_luma_minus8 as u8 & 7));
        b.put_u8(0xf8 | (parsed.bit_depth_chroma_minus8 as u8 & 7));
        b.put_u16(0); // avgFrameRate
        // constantFrameRate 0, numTemporalLayers, temporalIdNested 1, 4-byte lengths
        b.put_u8((((parsed.max_sub_layers_minus1 + 1) & 7) << 3) | 0x04 | 3);
        b.put_u8(3);
        for (ty, units) in [
            (h265::NAL_VPS, &params.vps),
            (h265::NAL_SPS, &params.sps),
            (h265::NAL_PPS, &params.pps),
        ] {
            b.put_u8(0x80 | ty); // array_completeness
            b.put_u16(units.len().min(0xffff) as u16);
            for u in units {
                if let Err(e) = put_u16_len(b, u) {
                    err = Some(e);
                }
            }
        }
    });
    err.map_or(Ok(out.freeze()), Err)
}

/// `dOps`: the OpusSpecificBox, and the channels it declares. Built from
/// the OpusHead in `params.config` when there is one, or else from the
/// channel count and pre-skip (mapping family 0: mono or stereo).
fn dops(params: &AudioParameters) -> Result<(Bytes, u8), StoreError> {
    let bad = |why: &str| StoreError::InvalidInput(format!("Opus configuration: {why}"));
    let mut out = BytesMut::new();
    let head = &params.config[..];
    if head.is_empty() {
        if !(1..=2).contains(&params.channels) {
            return Err(bad(
                "more than two channels need the encoder's OpusHead for their mapping",
            ));
        }
        mp4_box(&mut out, b"dOps", |b| {
            b.put_u8(0); // Version
            b.put_u8(params.channels);
            b.put_u16(params.pre_skip);
            b.put_u32(params.sample_rate); // InputSampleRate
            b.put_i16(0); // OutputGain
            b.put_u8(0); // ChannelMappingFamily
        });
        return Ok((out.freeze(), params.channels));
    }
    // OpusHead (RFC 7845 §5.1): the same fields, little-endian, after a
    // magic signature and version 1.
    if head.len() < 19 || &head[..8] != b"OpusHead" {
        return Err(bad("not an OpusHead"));
    }
    if head[8] >> 4 != 0 {
        return Err(bad("unknown OpusHead version"));
    }
    let channels = head[9];
    let family = head[18];
    let mapping = if family == 0 {
        &[][..]
    } else {
        head.get(19..21 + usize::from(channels))
            .ok_or_else(|| bad("OpusHead too short for its channel mapping"))?
    };
    if channels == 0 || (family == 0 && channels > 2) {
        return Err(bad("channel count does not fit the mapping family"));
    }
    mp4_box(&mut out, b"dOps", |b| {
        b.put_u8(0);
        b.put_u8(channels);
        b.put_u16(u16::from_le_bytes([head[10], head[11]]));
        b.put_u32(u32::from_le_bytes([head[12], head[13], head[14], head[15]]));
        b.put_i16(i16::from_le_bytes([head[16], head[17]]));
        b.put_u8(family);
        b.put_slice(mapping);
    });
    Ok((out.freeze(), channels))
}

/// `esds` (ISO/IEC 14496-14 §5.6) for AAC with this AudioSpecificConfig.
fn esds(audio_specific_config: &[u8]) -> Result<Bytes, StoreError> {
    if audio_specific_config.len() < 2 {
        return Err(StoreError::InvalidInput(
            "an AAC track needs its AudioSpecificConfig".into(),
        ));
    }
    let mut decoder_config = BytesMut::new();
    decoder_config.put_u8(0x40); // objectTypeIndication: MPEG-4 audio
    decoder_config.put_u8((5 << 2) | 1); // streamType audio, reserved 1
    decoder_config.put_slice(&[0; 3]); // bufferSizeDB
    decoder_config.put_u32(0); // maxBitrate
    decoder_config.put_u32(0); // avgBitrate
    put_descriptor(&mut decoder_config, 5, audio_specific_config)?;
    let mut es = BytesMut::new();
    es.put_u16(0); // ES_ID: 0 in a file
    es.put_u8(0); // no dependency, URL or OCR stream
    put_descriptor(&mut es, 4, &decoder_config)?;
    put_descriptor(&mut es, 6, &[2])?; // SLConfigDescriptor: predefined MP4
    let mut body = BytesMut::new();
    put_descriptor(&mut body, 3, &es)?;
    let mut out = BytesMut::new();
    full_box(&mut out, b"esds", 0, 0, |b| b.put_slice(&body));
    Ok(out.freeze())
}

/// An MPEG-4 descriptor: tag, size in 7-bit groups, body.
fn put_descriptor(b: &mut BytesMut, tag: u8, body: &[u8]) -> Result<(), StoreError> {
    let len = body.len();
    if len >= 1 << 28 {
        return Err(StoreError::InvalidInput(
            "audio configuration too large".into(),
        ));
    }
    b.put_u8(tag);
    let groups = (1..4).take_while(|i| len >> (7 * i) != 0).count() + 1;
    for i in (0..groups).rev() {
        let more = if i > 0 { 0x80 } else { 0 };
        b.put_u8(more | ((len >> (7 * i)) & 0x7f) as u8);
    }
    b.put_slice(body);
    Ok(())
}

/// One sample of a fragment.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The access unit in Annex-B; [`media_segment`] writes it with 4-byte
    /// length prefixes straight into the fragment, with no copy in between.
    pub data: Bytes,
    /// How long until the next sample's decode time, 90 kHz.
    pub duration_90k: u32,
    /// `pts - dts`, 90 kHz.
    pub composition_offset_90k: i32,
    /// A sync sample.
    pub keyframe: bool,
}

/// One audio packet of a fragment: every one is a sync sample.
#[derive(Clone, Debug)]
pub struct AudioSample {
    /// One Opus packet, or one raw AAC frame (no ADTS header).
    pub data: Bytes,
    /// How long it plays, in the audio timescale (the sample rate): 960 for
    /// 20 ms of Opus, 1024 for an AAC-LC frame.
    pub duration: u32,
}

/// Each video sample's NAL units, found once: they size the `trun` and
/// then are written.
struct VideoPayload {
    units: Vec<Range<usize>>,
    /// Each sample's range of `units`.
    bounds: Vec<Range<usize>>,
    /// Each sample's size, length-prefixed.
    sizes: Vec<usize>,
    len: usize,
}

impl VideoPayload {
    fn new(samples: &[Sample]) -> Self {
        let mut units: Vec<Range<usize>> = Vec::with_capacity(samples.len() * 3);
        let mut bounds = Vec::with_capacity(samples.len());
        let sizes: Vec<usize> = samples
            .iter()
            .map(|s| {
                let from = units.len();
                units.extend(nal::annex_b_ranges(&s.data));
                bounds.push(from..units.len());
                units[from..].iter().map(|u| 4 + u.len()).sum()
            })
            .collect();
        let len = sizes.iter().sum();
        VideoPayload {
            units,
            bounds,
            sizes,
            len,
        }
    }

    /// The video `traf`; returns where its `trun`'s data offset goes.
    fn put_traf(&self, b: &mut BytesMut, base_decode_time_90k: u64, samples: &[Sample]) -> usize {
        let mut data_offset_at = 0;
        mp4_box(b, b"traf", |b| {
            // default-base-is-moof: offsets count from this moof.
            full_box(b, b"tfhd", 0, 0x02_0000, |b| b.put_u32(TRACK_ID));
            full_box(b, b"tfdt", 1, 0, |b| b.put_u64(base_decode_time_90k));
            // data-offset, duration, size, flags, composition offset; v1: signed offsets.
            full_box(
                b,
                b"trun",
                1,
                0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800,
                |b| {
                    b.put_u32(samples.len() as u32);
                    data_offset_at = b.len();
                    b.put_i32(0);
                    for (s, size) in samples.iter().zip(&self.sizes) {
                        b.put_u32(s.duration_90k);
                        b.put_u32(*size as u32);
                        b.put_u32(if s.keyframe {
                            FLAGS_SYNC
                        } else {
                            FLAGS_NON_SYNC
                        });
                        b.put_i32(s.composition_offset_90k);
                    }
                },
            );
        });
        data_offset_at
    }

    /// The samples, length-prefixed, as the `mdat` holds them.
    fn put_data(&self, b: &mut BytesMut, samples: &[Sample]) {
        for (s, at) in samples.iter().zip(&self.bounds) {
            nal::put_ranges_length_prefixed(&s.data, self.units[at.clone()].iter().cloned(), b);
        }
    }
}

/// The audio `traf` (track 2); returns where its `trun`'s data offset goes.
fn put_audio_traf(b: &mut BytesMut, base_decode_time: u64, samples: &[AudioSample]) -> usize {
    let mut data_offset_at = 0;
    mp4_box(b, b"traf", |b| {
        // default-base-is-moof, and every sample a sync sample.
        full_box(b, b"tfhd", 0, 0x02_0000 | 0x20, |b| {
            b.put_u32(AUDIO_TRACK_ID);
            b.put_u32(FLAGS_SYNC);
        });
        full_box(b, b"tfdt", 1, 0, |b| b.put_u64(base_decode_time));
        // data-offset, duration, size.
        full_box(b, b"trun", 0, 0x0001 | 0x0100 | 0x0200, |b| {
            b.put_u32(samples.len() as u32);
            data_offset_at = b.len();
            b.put_i32(0);
            for s in samples {
                b.put_u32(s.duration);
                b.put_u32(s.data.len() as u32);
            }
        });
    });
    data_offset_at
}

/// Writes `offset` at `at`, a `trun`'s data offset.
fn set_data_offset(b: &mut BytesMut, at: usize, offset: usize) {
    b[at..at + 4].copy_from_slice(&(offset as i32).to_be_bytes());
}

/// `moof` + `mdat` for `samples`, whose first decode time is
/// `base_decode_time_90k` from the start of the file.
pub fn media_segment(sequence: u32, base_decode_time_90k: u64, samples: &[Sample]) -> Bytes {
    let video = VideoPayload::new(samples);
    let mut b = BytesMut::with_capacity(video.len + 64 + samples.len() * 16);
    let mut data_offset_at = 0;
    mp4_box(&mut b, b"moof", |b| {
        full_box(b, b"mfhd", 0, 0, |b| b.put_u32(sequence));
        data_offset_at = video.put_traf(b, base_decode_time_90k, samples);
    });
    let data_offset = b.len() + 8;
    set_data_offset(&mut b, data_offset_at, data_offset);
    b.put_u32((video.len + 8) as u32);
    b.put_slice(b"mdat");
    video.put_data(&mut b, samples);
    b.freeze()
}

/// `moof` + `mdat` for a file from [`init_segment_with_audio`]: the video
/// `samples` as [`media_segment`] writes them, from
/// `video_base_decode_time_90k`, and the `audio` packets from
/// `audio_base_decode_time` (in the audio timescale, the sample rate),
/// both counted from the start of the file.
///
/// The video's `traf` comes first, even with no video samples, so that
/// what reads one track ([`rewrite_moof`], the index [`crate::scan`]
/// builds) reads the video; [`rewrite_moof_with_audio`] and [`shift_moof`]
/// move the audio's times too. With no `audio` packets the
/// audio `traf` is left out: the audio has a gap there.
pub fn media_segment_with_audio(
    sequence: u32,
    video_base_decode_time_90k: u64,
    video: &[Sample],
    audio_base_decode_time: u64,
    audio: &[AudioSample],
) -> Bytes {
    let payload = VideoPayload::new(video);
    let audio_len: usize = audio.iter().map(|s| s.data.len()).sum();
    let mut b =
        BytesMut::with_capacity(payload.len + audio_len + 128 + video.len() * 16 + audio.len() * 8);
    let (mut video_offset_at, mut audio_offset_at) = (0, None);
    mp4_box(&mut b, b"moof", |b| {
        full_box(b, b"mfhd", 0, 0, |b| b.put_u32(sequence));
        video_offset_at = payload.put_traf(b, video_base_decode_time_90k, video);
        if !audio.is_empty() {
            audio_offset_at = Some(put_audio_traf(b, audio_base_decode_time, audio));
        }
    });
    let video_offset = b.len() + 8;
    set_data_offset(&mut b, video_offset_at, video_offset);
    if let Some(at) = audio_offset_at {
        set_data_offset(&mut b, at, video_offset + payload.len);
    }
    b.put_u32((payload.len + audio_len + 8) as u32);
    b.put_slice(b"mdat");
    payload.put_data(&mut b, video);
    for s in audio {
        b.put_slice(&s.data);
    }
    b.freeze()
}

/// The body range of the first child box `fourcc` of `data`.
fn child_range(data: &[u8], fourcc: &[u8; 4]) -> Option<Range<usize>> {
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        if size < 8 || pos + size > data.len() {
            return None;
        }
        if &data[pos + 4..pos + 8] == fourcc {
            return Some(pos + 8..pos + size);
        }
        pos += size;
    }
    None
}

/// Rewrites, in place, the `moof` box at the start of `moof` (anything after
/// it, such as its `mdat`, is left alone): its sequence number
/// when `sequence` is given, and its `tfdt` through `decode_time`. Returns
/// false, changing nothing, if the box is not a moof of the expected shape
/// or a 32-bit `tfdt` cannot hold the new time.
pub fn rewrite_moof(
    moof: &mut [u8],
    sequence: Option<u32>,
    decode_time: impl Fn(u64) -> u64,
) -> bool {
    if moof.len() < 8 || &moof[4..8] != b"moof" {
        return false;
    }
    let size = u32::from_be_bytes([moof[0], moof[1], moof[2], moof[3]]) as usize;
    if size < 8 || size > moof.len() {
        return false;
    }
    let body = &mut moof[8..size];
    let (Some(mfhd), Some(traf)) = (child_range(body, b"mfhd"), child_range(body, b"traf")) else {
        return false;
    };
    let Some(tfdt) =
        child_range(&body[traf.clone()], b"tfdt").map(|r| traf.start + r.start..traf.start + r.end)
    else {
        return false;
    };
    if !rewrite_tfdt(body, tfdt, decode_time) {
        return false;
    }
    if let Some(seq) = sequence
        && mfhd.end >= mfhd.start + 8
    {
        body[mfhd.start + 4..mfhd.start + 8].copy_from_slice(&seq.to_be_bytes());
    }
    true
}

/// Rewrites the `tfdt` whose body is `body[tfdt]` through `decode_time`;
/// false, changing nothing, if it is short or a 32-bit time overflows.
fn rewrite_tfdt(body: &mut [u8], tfdt: Range<usize>, decode_time: impl Fn(u64) -> u64) -> bool {
    // Writes stay inside the tfdt body: a short box must not let them
    // spill into the next one.
    let at = tfdt.start + 4;
    match body.get(tfdt.start) {
        Some(1) if tfdt.end >= at + 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[at..at + 8]);
            let t = decode_time(u64::from_be_bytes(b));
            body[at..at + 8].copy_from_slice(&t.to_be_bytes());
        }
        Some(0) if tfdt.end >= at + 4 => {
            let old = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
            let Ok(t) = u32::try_from(decode_time(u64::from(old))) else {
                return false;
            };
            body[at..at + 4].copy_from_slice(&t.to_be_bytes());
        }
        _ => return false,
    }
    true
}

/// The body ranges of the child boxes `fourcc` of `data`, in order.
fn child_ranges(data: &[u8], fourcc: &[u8; 4]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        if size < 8 || pos + size > data.len() {
            break;
        }
        if &data[pos + 4..pos + 8] == fourcc {
            out.push(pos + 8..pos + size);
        }
        pos += size;
    }
    out
}

/// The `trak` boxes of the `moov` among the top-level boxes of `data` (an
/// init segment, or a whole file), each with its track ID: empty without a
/// `moov` there.
pub fn traks(data: &[u8]) -> Vec<(u32, &[u8])> {
    child_range(data, b"moov").map_or_else(Vec::new, |moov| moov_traks(&data[moov]))
}

/// The `trak` boxes in the body of a `moov`, each with its track ID.
fn moov_traks(moov: &[u8]) -> Vec<(u32, &[u8])> {
    child_ranges(moov, b"trak")
        .into_iter()
        .filter_map(|trak| {
            let trak = &moov[trak];
            let tkhd = &trak[child_range(trak, b"tkhd")?];
            // version, flags, then two times of 4 or 8 bytes before the ID.
            let id_at = if *tkhd.first()? == 1 { 20 } else { 12 };
            let id = u32::from_be_bytes(tkhd.get(id_at..id_at + 4)?.try_into().ok()?);
            Some((id, trak))
        })
        .collect()
}

/// The audio track's timescale (its sample rate) as the `moov` among the
/// top-level boxes of `data` describes it: `None` without a `moov` there,
/// or for a video-only file.
pub fn audio_timescale(data: &[u8]) -> Option<u32> {
    let (_, trak) = traks(data)
        .into_iter()
        .find(|(id, _)| *id == AUDIO_TRACK_ID)?;
    let mdia = &trak[child_range(trak, b"mdia")?];
    let mdhd = &mdia[child_range(mdia, b"mdhd")?];
    let ts_at = if *mdhd.first()? == 1 { 20 } else { 12 };
    let timescale = u32::from_be_bytes(mdhd.get(ts_at..ts_at + 4)?.try_into().ok()?);
    (timescale > 0).then_some(timescale)
}

/// The first sample entry of a `trak`: its fourcc and body.
fn sample_entry(trak: &[u8]) -> Option<([u8; 4], &[u8])> {
    let mut at = trak;
    for fourcc in [b"mdia", b"minf", b"stbl", b"stsd"] {
        at = &at[child_range(at, fourcc)?];
    }
    // full box header (4) + entry_count (4), then the first entry.
    let entries = at.get(8..)?;
    let r = child_range_any(entries)?;
    let fourcc = entries.get(r.start - 4..r.start)?.try_into().ok()?;
    Some((fourcc, &entries[r]))
}

/// The body range of the first box in `data`, whatever its type.
fn child_range_any(data: &[u8]) -> Option<Range<usize>> {
    let size = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    (size >= 8 && size <= data.len()).then_some(8..size)
}

/// The file's tracks as an HLS `CODECS` value (RFC 6381), from its init
/// segment (the `moov` among the top-level boxes of `data`): the video's,
/// then the audio's when it has one, e.g. `avc1.64001f,opus` or
/// `hvc1.1.6.L93.B0,mp4a.40.2`. `None` when the video's sample entry is
/// not one this module writes.
pub fn codecs(data: &[u8]) -> Option<String> {
    moov_codecs(&data[child_range(data, b"moov")?])
}

/// [`codecs`] of the body of a `moov`.
pub(crate) fn moov_codecs(moov: &[u8]) -> Option<String> {
    let traks = moov_traks(moov);
    let (_, video) = traks.iter().find(|(id, _)| *id == TRACK_ID)?;
    let (fourcc, entry) = sample_entry(video)?;
    // A visual sample entry's fixed fields are 78 bytes; boxes follow.
    let boxes = entry.get(78..)?;
    let mut out = match &fourcc {
        b"avc1" | b"avc3" => {
            let c = &boxes[child_range(boxes, b"avcC")?];
            format!(
                "{}.{:02x}{:02x}{:02x}",
                std::str::from_utf8(&fourcc).ok()?,
                c.get(1)?,
                c.get(2)?,
                c.get(3)?
            )
        }
        b"hvc1" | b"hev1" => {
            let c = &boxes[child_range(boxes, b"hvcC")?];
            let ptl = c.get(1..13)?;
            let space = ["", "A", "B", "C"][usize::from(ptl[0] >> 6)];
            let tier = if ptl[0] & 0x20 != 0 { 'H' } else { 'L' };
            let compat = u32::from_be_bytes(ptl[1..5].try_into().ok()?).reverse_bits();
            let mut v = format!(
                "{}.{space}{}.{compat:x}.{tier}{}",
                std::str::from_utf8(&fourcc).ok()?,
                ptl[0] & 0x1f,
                ptl[11]
            );
            let constraints = &ptl[5..11];
            let used = constraints
                .iter()
                .rposition(|b| *b != 0)
                .map_or(0, |i| i + 1);
            for b in &constraints[..used] {
                v.push_str(&format!(".{b:X}"));
            }
            v
        }
        _ => return None,
    };
    let audio = traks
        .iter()
        .find(|(id, _)| *id == AUDIO_TRACK_ID)
        .and_then(|(_, trak)| sample_entry(trak))
        .and_then(|(fourcc, entry)| match &fourcc {
            b"Opus" => Some("opus".to_string()),
            // An audio sample entry's fixed fields are 28 bytes.
            b"mp4a" => {
                let boxes = entry.get(28..)?;
                let esds = &boxes[child_range(boxes, b"esds")?];
                let object_type = aac_object_type(esds.get(4..)?)?;
                Some(format!("mp4a.40.{object_type}"))
            }
            _ => None,
        });
    if let Some(a) = audio {
        out.push(',');
        out.push_str(&a);
    }
    Some(out)
}

/// The audio object type of the AudioSpecificConfig in an `esds`'s
/// descriptors (ISO/IEC 14496-1 §7.2.6, 14496-3 §1.6.2.1).
fn aac_object_type(mut d: &[u8]) -> Option<u8> {
    // Tag, then a size of up to four 7-bit groups.
    fn descriptor(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *d.first()?;
        let (mut len, mut at) = (0usize, 1);
        loop {
            let b = *d.get(at)?;
            len = (len << 7) | usize::from(b & 0x7f);
            at += 1;
            if b & 0x80 == 0 || at == 5 {
                break;
            }
        }
        let body = d.get(at..at.checked_add(len)?)?;
        Some((tag, body, &d[at + len..]))
    }
    let (tag, es, _) = descriptor(d)?;
    if tag != 3 {
        return None;
    }
    // ES_ID, then flags saying which optional fields follow.
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    d = es.get(at..)?;
    while !d.is_empty() {
        let (tag, body, rest) = descriptor(d)?;
        if tag == 4 {
            // objectTypeIndication … avgBitrate: 13 bytes, then the
            // DecoderSpecificInfo.
            let (tag, asc, _) = descriptor(body.get(13..)?)?;
            if tag != 5 {
                return None;
            }
            let object_type = asc.first()? >> 3;
            return Some(if object_type == 31 {
                32 + (((asc.first()? & 7) << 3) | (asc.get(1)? >> 5))
            } else {
                object_type
            });
        }
        d = rest;
    }
    None
}

/// The track ID in the `tfhd` of the `traf` whose body is `body[traf]`.
fn traf_track(body: &[u8], traf: &Range<usize>) -> Option<u32> {
    let tfhd = child_range(&body[traf.clone()], b"tfhd")?;
    let id = body.get(traf.start + tfhd.start + 4..traf.start + tfhd.start + 8)?;
    Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]))
}

/// [`rewrite_moof`] for both tracks: the video's `tfdt` (the first `traf`)
/// through `decode_time`, and each audio `traf`'s through
/// `audio_decode_time`, in the audio's own timescale. False, changing
/// nothing, as for [`rewrite_moof`]; an audio `tfdt` that cannot take its
/// new time (a 32-bit one, which this module never writes) is left alone.
pub fn rewrite_moof_with_audio(
    moof: &mut [u8],
    sequence: Option<u32>,
    decode_time: impl Fn(u64) -> u64,
    audio_decode_time: impl Fn(u64) -> u64,
) -> bool {
    if !rewrite_moof(moof, sequence, decode_time) {
        return false;
    }
    let size = u32::from_be_bytes([moof[0], moof[1], moof[2], moof[3]]) as usize;
    let body = &mut moof[8..size];
    for traf in child_ranges(body, b"traf").into_iter().skip(1) {
        if traf_track(body, &traf) != Some(AUDIO_TRACK_ID) {
            continue;
        }
        if let Some(r) = child_range(&body[traf.clone()], b"tfdt") {
            rewrite_tfdt(
                body,
                traf.start + r.start..traf.start + r.end,
                &audio_decode_time,
            );
        }
    }
    true
}

/// Removes the audio `traf`s from the `moof` + `mdat` in `pair` (a
/// fragment as a file holds it), leaving the video as it was: the `moof`
/// shrinks, so the other `trun`s' data offsets (counted from the `moof`)
/// shrink with it, and the audio samples stay in the `mdat`, unreferenced.
/// Returns how many `traf`s it removed: 0, changing nothing, when there
/// are none or `pair` does not start with a `moof`.
pub fn strip_audio(pair: &mut Vec<u8>) -> usize {
    if pair.len() < 8 || &pair[4..8] != b"moof" {
        return 0;
    }
    let size = u32::from_be_bytes([pair[0], pair[1], pair[2], pair[3]]) as usize;
    if size < 8 || size > pair.len() {
        return 0;
    }
    let body = &pair[8..size];
    let (audio, kept): (Vec<Range<usize>>, Vec<Range<usize>>) = child_ranges(body, b"traf")
        .into_iter()
        .enumerate()
        .map(|(i, t)| (i > 0 && traf_track(body, &t) == Some(AUDIO_TRACK_ID), t))
        .fold((Vec::new(), Vec::new()), |(mut a, mut k), (is_audio, t)| {
            if is_audio {
                a.push(t)
            } else {
                k.push(t)
            }
            (a, k)
        });
    if audio.is_empty() {
        return 0;
    }
    // Each audio traf's whole box, header included, in `pair`'s offsets.
    let removed: usize = audio.iter().map(|t| t.len() + 8).sum();
    let Ok(shrink) = i32::try_from(removed) else {
        return 0;
    };
    // The kept truns' data offsets, found before any byte moves; they are
    // before the first audio traf (the video's traf comes first).
    let mut offsets = Vec::new();
    for t in &kept {
        for trun in child_ranges(&body[t.clone()], b"trun") {
            let at = t.start + trun.start; // in `body`
            let has_offset = body.get(at + 3).is_some_and(|flags| flags & 1 != 0);
            if has_offset && trun.len() >= 12 {
                // version/flags (4), sample_count (4), then the offset.
                offsets.push(8 + at + 8);
            }
        }
    }
    for at in offsets {
        let old = i32::from_be_bytes([pair[at], pair[at + 1], pair[at + 2], pair[at + 3]]);
        pair[at..at + 4].copy_from_slice(&old.saturating_sub(shrink).to_be_bytes());
    }
    for t in audio.iter().rev() {
        // The body starts 8 bytes into `pair`, the box 8 bytes before it.
        pair.drain(t.start..8 + t.end);
    }
    let new_size = u32::try_from(size - removed).unwrap_or(u32::MAX);
    pair[0..4].copy_from_slice(&new_size.to_be_bytes());
    audio.len()
}

/// Adds `delta_90k` to the times of the `moof` at the start of `moof`: to
/// the video's `tfdt` (its first `traf`, as [`rewrite_moof`] does) and,
/// given the audio track's timescale, to each audio `traf`'s `tfdt`, the
/// delta converted to that timescale. Without `audio_timescale` the audio
/// is left alone. False, changing nothing, as for [`rewrite_moof`].
pub fn shift_moof(moof: &mut [u8], delta_90k: u64, audio_timescale: Option<u32>) -> bool {
    let Some(rate) = audio_timescale else {
        return rewrite_moof(moof, None, |t| t.saturating_add(delta_90k));
    };
    let delta = ((u128::from(delta_90k) * u128::from(rate) + 45_000) / 90_000)
        .try_into()
        .unwrap_or(u64::MAX);
    rewrite_moof_with_audio(
        moof,
        None,
        |t| t.saturating_add(delta_90k),
        |t| t.saturating_add(delta),
    )
}

/// Adds `delta_90k` to the `tfdt` of every complete `moof` in `data`, a run
/// of whole top-level boxes (a fragment as served by byte range). Stops at
/// the first box that is not complete. Returns how many were shifted.
///
/// The audio `traf`s are shifted too when `data` holds the file's `moov`
/// (see [`shift_decode_times_with_audio`] when it does not).
pub fn shift_decode_times(data: &mut [u8], delta_90k: u64) -> usize {
    let rate = audio_timescale(data);
    shift_decode_times_with_audio(data, delta_90k, rate)
}

/// [`shift_decode_times`] for fragments of a file whose audio track has
/// `audio_timescale` (from [`audio_timescale`] on its init segment), or
/// none.
pub fn shift_decode_times_with_audio(
    data: &mut [u8],
    delta_90k: u64,
    audio_timescale: Option<u32>,
) -> usize {
    let mut pos = 0usize;
    let mut shifted = 0;
    while pos + 8 <= data.len() {
        let size =
            u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        if size < 8 || pos + size > data.len() {
            break;
        }
        if &data[pos + 4..pos + 8] == b"moof"
            && shift_moof(&mut data[pos..pos + size], delta_90k, audio_timescale)
        {
            shifted += 1;
        }
        pos += size;
    }
    shifted
}

/// The largest `moof` [`ShiftedRange`] rewrites; one this big is far past
/// anything a muxer writes (16 bytes a sample), and passes unshifted.
pub const MAX_SHIFTED_MOOF_BYTES: u64 = 512 << 10;

/// Bytes `start..end` of a fragmented MP4 as read through `inner`, with
/// `delta_90k` added to the `tfdt` of every `moof`: the `?t=` timeline
/// shift of an HLS file, streamed. It walks the top-level box headers from
/// the start of the file (so a range may begin anywhere, even inside a
/// `moof`), holds at most one `moof` in memory, and reads everything else
/// straight through. Sizes and offsets do not change. A file that stops
/// parsing as boxes is passed through as it is from there on. The audio
/// track's `tfdt`s move by the same time, in its timescale, which it reads
/// from the file's `moov` on its way past ([`shift_moof`]).
#[derive(Debug)]
pub struct ShiftedRange<R> {
    inner: R,
    /// Where `inner` is positioned, when known.
    inner_pos: Option<u64>,
    /// The next file offset to hand out.
    pos: u64,
    end: u64,
    delta_90k: u64,
    /// The next top-level box header not yet looked at.
    next_box: u64,
    /// Bytes below this offset (and at or after `moof`'s end) pass through.
    passthrough_end: u64,
    /// The current `moof`, rewritten, and its file offset.
    moof: Option<(u64, Vec<u8>)>,
    /// The audio track's timescale, once the `moov` has been read.
    audio_timescale: Option<u32>,
}

impl<R: std::io::Read + std::io::Seek> ShiftedRange<R> {
    /// Bytes `start..end` (end exclusive) of the file `inner` reads.
    pub fn new(inner: R, start: u64, end: u64, delta_90k: u64) -> Self {
        ShiftedRange {
            inner,
            inner_pos: None,
            pos: start,
            end: end.max(start),
            delta_90k,
            next_box: 0,
            passthrough_end: 0,
            moof: None,
            audio_timescale: None,
        }
    }

    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner_pos != Some(at) {
            self.inner.seek(std::io::SeekFrom::Start(at))?;
        }
        self.inner_pos = None;
        let n = self.inner.read(buf)?;
        self.inner_pos = Some(at + n as u64);
        Ok(n)
    }

    fn read_exact_at(&mut self, at: u64, buf: &mut [u8]) -> std::io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.read_at(at + got as u64, &mut buf[got..])?;
            if n == 0 {
                return Ok(false);
            }
            got += n;
        }
        Ok(true)
    }

    /// Finds the box that covers `pos`, loading it if it is a `moof`.
    fn locate(&mut self) -> std::io::Result<()> {
        self.moof = None;
        while self.next_box <= self.pos {
            let at = self.next_box;
            let mut head = [0u8; 16];
            if !self.read_exact_at(at, &mut head[..8])? {
                self.passthrough_end = u64::MAX;
                return Ok(());
            }
            let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let size = match size32 {
                // To the end of the file.
                0 => u64::MAX - at,
                1 => {
                    if !self.read_exact_at(at + 8, &mut head[8..16])? {
                        self.passthrough_end = u64::MAX;
                        return Ok(());
                    }
                    u64::from_be_bytes([
                        head[8], head[9], head[10], head[11], head[12], head[13], head[14],
                        head[15],
                    ])
                }
                n => u64::from(n),
            };
            if size < 8 {
                // Not boxes any more: pass the rest through.
                self.passthrough_end = u64::MAX;
                return Ok(());
            }
            let box_end = at.saturating_add(size);
            self.next_box = box_end;
            if &head[4..8] == b"moov" && size <= MAX_SHIFTED_MOOF_BYTES {
                let mut moov = vec![0u8; size as usize];
                if self.read_exact_at(at, &mut moov)? {
                    self.audio_timescale = audio_timescale(&moov);
                }
            }
            if box_end <= self.pos {
                continue;
            }
            if &head[4..8] == b"moof" && size <= MAX_SHIFTED_MOOF_BYTES {
                let mut moof = vec![0u8; size as usize];
                if self.read_exact_at(at, &mut moof)? {
                    shift_moof(&mut moof, self.delta_90k, self.audio_timescale);
                    self.moof = Some((at, moof));
                    self.passthrough_end = at;
                    return Ok(());
                }
            }
            self.passthrough_end = box_end;
            return Ok(());
        }
        // Inside a box already walked past: it ends at `next_box`.
        self.passthrough_end = self.next_box;
        Ok(())
    }
}

impl<R: std::io::Read + std::io::Seek> std::io::Read for ShiftedRange<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos >= self.end || out.is_empty() {
                return Ok(0);
            }
            let want = (self.end - self.pos).min(out.len() as u64) as usize;
            if let Some((at, moof)) = &self.moof {
                let off = self.pos - at;
                if off < moof.len() as u64 {
                    let n = want.min(moof.len() - off as usize);
                    out[..n].copy_from_slice(&moof[off as usize..off as usize + n]);
                    self.pos += n as u64;
                    return Ok(n);
                }
            } else if self.pos < self.passthrough_end {
                let n = want.min((self.passthrough_end - self.pos).min(want as u64) as usize);
                let pos = self.pos;
                let n = self.read_at(pos, &mut out[..n])?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.locate()?;
        }
    }
}

/// A fragment the muxer finished.
#[derive(Clone, Debug)]
pub struct MuxedFragment {
    /// `moof` + `mdat`.
    pub data: Bytes,
    /// Decode time of its first sample from the start of the file (its `tfdt`).
    pub decode_time_90k: u64,
    /// Sum of its sample durations.
    pub duration_90k: u64,
    /// Number of samples (frames).
    pub frames: u32,
    /// Whether its first sample is a keyframe.
    pub keyframe: bool,
    /// Number of audio packets in it (0 in a video-only file).
    pub audio_frames: u32,
}

/// Audio packets a muxer holds while waiting for the video fragment that
/// covers them, at most: a stalled video source must not grow it forever.
pub const MAX_PENDING_AUDIO_FRAMES: usize = 500;
/// The longest span of audio, first to last pts, a muxer holds (5 s).
pub const MAX_PENDING_AUDIO_90K: i64 = 5 * 90_000;

/// Appends `frame`, then drops the oldest packets past the bounds above;
/// returns how many it dropped.
pub(crate) fn push_bounded(queue: &mut VecDeque<AudioFrame>, frame: AudioFrame) -> u64 {
    let newest = frame.pts_90k;
    queue.push_back(frame);
    let mut dropped = 0;
    while queue.len() > MAX_PENDING_AUDIO_FRAMES
        || queue
            .front()
            .is_some_and(|f| newest - f.pts_90k > MAX_PENDING_AUDIO_90K)
    {
        queue.pop_front();
        dropped += 1;
    }
    dropped
}

/// What one [`Fmp4Muxer::push`] produced, in file order.
#[derive(Clone, Debug, Default)]
pub struct MuxOutput {
    /// The init segment (`ftyp` + `moov`), with the file's first frame.
    pub init: Option<Bytes>,
    /// A fragment completed by this frame's arrival.
    pub fragment: Option<MuxedFragment>,
}

/// Turns a stream of [`EncodedFrame`]s into one fragmented MP4 file.
///
/// Fragments are cut at the first keyframe after `fragment_target_90k`, or at
/// any frame once a fragment reaches four times that (cameras with long
/// GOPs). With a part target ([`with_parts`](Self::with_parts)) they are
/// LL-HLS parts instead: cut at every keyframe, and at any frame before a
/// fragment would grow past the part target (`docs/design/ll-hls.md`).
/// A frame's duration is known only when the next one arrives, so
/// the newest frame is held back until then or [`finish`](Self::finish).
///
/// Audio given with [`push_audio`](Self::push_audio) becomes track 2 when
/// it arrives before the file's first keyframe: each fragment holds the
/// audio packets whose pts falls before the next fragment's first decode
/// time, and audio that came too late for its fragment goes in a later one
/// (`docs/design/audio.md`, "Recording").
#[derive(Debug)]
pub struct Fmp4Muxer {
    fragment_target_90k: u64,
    /// LL-HLS part target; 0: fragments follow `fragment_target_90k`.
    part_target_90k: u64,
    params: Option<Arc<CodecParameters>>,
    first_dts: i64,
    pending: Option<EncodedFrame>,
    fragment: Vec<Sample>,
    fragment_start_dts: i64,
    sequence: u32,
    last_duration: u32,
    frames: u64,
    /// The file's audio track, once known; fixed when the file starts.
    audio_params: Option<Arc<AudioParameters>>,
    audio_pending: VecDeque<AudioFrame>,
    /// End of the last audio packet written, in the audio timescale.
    audio_end: Option<u64>,
    audio_written: u64,
    audio_dropped: u64,
}

impl Fmp4Muxer {
    /// A muxer cutting fragments of about `fragment_target_90k` ticks.
    pub fn new(fragment_target_90k: u64) -> Self {
        Fmp4Muxer {
            fragment_target_90k: fragment_target_90k.max(1),
            part_target_90k: 0,
            params: None,
            first_dts: 0,
            pending: None,
            fragment: Vec::new(),
            fragment_start_dts: 0,
            sequence: 0,
            last_duration: 3000,
            frames: 0,
            audio_params: None,
            audio_pending: VecDeque::new(),
            audio_end: None,
            audio_written: 0,
            audio_dropped: 0,
        }
    }

    /// A muxer cutting LL-HLS parts of at most about `part_target_90k`
    /// ticks: a fragment starts at every keyframe, and is cut before the
    /// next frame would take it past the target (judged by the last frame
    /// interval). `part_target_90k` 0 is [`new`](Self::new).
    pub fn with_parts(fragment_target_90k: u64, part_target_90k: u64) -> Self {
        let mut m = Self::new(fragment_target_90k);
        m.part_target_90k = part_target_90k;
        m
    }

    /// The file's audio track: the parameters of the first audio packet
    /// pushed before the file started, unless they could not be described.
    pub fn audio_params(&self) -> Option<&Arc<AudioParameters>> {
        self.audio_params.as_ref()
    }

    /// Audio packets written into fragments so far.
    pub fn audio_frames_written(&self) -> u64 {
        self.audio_written
    }

    /// Audio packets dropped so far: before the file's first frame, with
    /// other parameters than the file's (or arriving after a video-only
    /// file started), or past the pending bound.
    pub fn audio_frames_dropped(&self) -> u64 {
        self.audio_dropped
    }

    /// Adds an audio packet; it is written with the video fragment whose
    /// span covers its pts, or dropped (see
    /// [`audio_frames_dropped`](Self::audio_frames_dropped)).
    pub fn push_audio(&mut self, frame: AudioFrame) {
        let started = self.params.is_some();
        match &self.audio_params {
            None if !started => self.audio_params = Some(frame.params.clone()),
            Some(p) if Arc::ptr_eq(p, &frame.params) || **p == *frame.params => {}
            _ => {
                self.audio_dropped += 1;
                return;
            }
        }
        if started && frame.pts_90k < self.first_dts {
            self.audio_dropped += 1;
            return;
        }
        self.audio_dropped += push_bounded(&mut self.audio_pending, frame);
    }

    /// Takes the audio packets not yet written: after
    /// [`finish`](Self::finish) with a next decode time, those that belong
    /// to the next file.
    pub fn take_pending_audio(&mut self) -> Vec<AudioFrame> {
        self.audio_pending.drain(..).collect()
    }

    /// Fragments written so far.
    pub fn fragments(&self) -> u32 {
        self.sequence
    }

    /// Frames accepted so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The parameter sets of this file, once the first frame is in.
    pub fn params(&self) -> Option<&Arc<CodecParameters>> {
        self.params.as_ref()
    }

    /// Decode time of the newest frame accepted, in the caller's timeline.
    pub fn last_dts(&self) -> Option<i64> {
        self.pending.as_ref().map(|f| f.dts_90k)
    }

    /// Media time from the file's first frame to the newest frame's start.
    pub fn elapsed_90k(&self) -> i64 {
        self.last_dts().map_or(0, |d| d - self.first_dts)
    }

    /// Adds a frame.
    ///
    /// The first frame must be a keyframe. A frame whose parameter sets
    /// differ from the file's, or whose decode time does not increase, is
    /// refused: the caller starts a new file.
    pub fn push(&mut self, frame: EncodedFrame) -> Result<MuxOutput, StoreError> {
        let mut out = MuxOutput::default();
        match &self.params {
            None => {
                if !frame.keyframe {
                    return Err(StoreError::InvalidInput(
                        "a recording must start on a keyframe".into(),
                    ));
                }
                let video = VideoTrack::new(&frame.params)?;
                // Audio this file cannot describe is left out, not the video.
                let audio = self
                    .audio_params
                    .as_ref()
                    .and_then(|a| AudioTrack::new(a).ok());
                if audio.is_none() {
                    self.audio_params = None;
                }
                out.init = Some(init(&video, audio.as_ref()));
                self.params = Some(frame.params.clone());
                self.first_dts = frame.dts_90k;
                self.fragment_start_dts = frame.dts_90k;
                let before = self.audio_pending.len();
                let first_dts = self.first_dts;
                let keep = self.audio_params.is_some();
                self.audio_pending
                    .retain(|f| keep && f.pts_90k >= first_dts);
                self.audio_dropped += (before - self.audio_pending.len()) as u64;
            }
            Some(p) if !Arc::ptr_eq(p, &frame.params) && **p != *frame.params => {
                return Err(StoreError::InvalidInput(
                    "codec parameters changed; start a new file".into(),
                ));
            }
            Some(_) => {}
        }
        if let Some(prev) = &self.pending
            && frame.dts_90k <= prev.dts_90k
        {
            return Err(StoreError::InvalidInput(format!(
                "decode time {} does not follow {}",
                frame.dts_90k, prev.dts_90k
            )));
        }
        if let Some(prev) = self.pending.take() {
            let duration = u32::try_from(frame.dts_90k - prev.dts_90k).unwrap_or(u32::MAX);
            self.add_sample(prev, duration);
            let elapsed = (frame.dts_90k - self.fragment_start_dts) as u64;
            let cut = if self.part_target_90k > 0 {
                // Without a cut now, the part ends no earlier than one more
                // frame interval from here.
                frame.keyframe || elapsed + u64::from(duration) > self.part_target_90k
            } else {
                (frame.keyframe && elapsed >= self.fragment_target_90k)
                    || elapsed >= 4 * self.fragment_target_90k
            };
            if cut {
                out.fragment = self.flush(Some(frame.dts_90k));
                self.fragment_start_dts = frame.dts_90k;
            }
        }
        self.frames += 1;
        self.pending = Some(frame);
        Ok(out)
    }

    /// Writes out the held-back frame and the open fragment.
    ///
    /// `next_dts_90k` is the decode time of the frame that follows in the
    /// stream (the first of the next file), which gives the last frame its
    /// true duration; without it the frame's own duration, or the previous
    /// frame's, is used. The pending audio goes in the last fragment: all of
    /// it, or with `next_dts_90k` the packets before it; the rest is left
    /// for [`take_pending_audio`](Self::take_pending_audio).
    pub fn finish(&mut self, next_dts_90k: Option<i64>) -> Option<MuxedFragment> {
        if let Some(last) = self.pending.take() {
            let duration = next_dts_90k
                .filter(|n| *n > last.dts_90k)
                .and_then(|n| u32::try_from(n - last.dts_90k).ok())
                .or(last.duration_90k)
                .unwrap_or(self.last_duration);
            self.add_sample(last, duration);
        }
        self.flush(next_dts_90k)
    }

    fn add_sample(&mut self, frame: EncodedFrame, duration_90k: u32) {
        self.last_duration = duration_90k;
        self.fragment.push(Sample {
            data: frame.data,
            duration_90k,
            composition_offset_90k: i32::try_from(frame.pts_90k - frame.dts_90k).unwrap_or(0),
            keyframe: frame.keyframe,
        });
    }

    /// The pending audio packets with pts before `until_90k` (all without
    /// it) as samples, and the first one's decode time, in the audio
    /// timescale from the file's first video decode time.
    fn take_audio(&mut self, until_90k: Option<i64>) -> (u64, Vec<AudioSample>) {
        let Some(params) = &self.audio_params else {
            return (0, Vec::new());
        };
        let rate = i128::from(params.sample_rate);
        let first_dts = self.first_dts;
        // Rounded from the file's start, not summed: no drift.
        let to_rate = |t_90k: i64| -> u64 {
            ((i128::from(t_90k - first_dts) * rate + 45_000).div_euclid(90_000)).max(0) as u64
        };
        let mut taken = Vec::new();
        let mut kept = VecDeque::with_capacity(self.audio_pending.len());
        for f in self.audio_pending.drain(..) {
            if until_90k.is_none_or(|u| f.pts_90k < u) {
                taken.push(f);
            } else {
                kept.push_back(f);
            }
        }
        self.audio_pending = kept;
        taken.sort_by_key(|f| f.pts_90k);
        let mut spans: Vec<(u64, u64)> = Vec::with_capacity(taken.len());
        for f in &taken {
            let mut start = to_rate(f.pts_90k);
            let own_end = to_rate(f.pts_90k + i64::from(f.duration_90k));
            let own = own_end.saturating_sub(start).max(1);
            // Clamp a packet that steps back, and close a gap smaller than
            // half a packet (pts rounding, capture jitter): the decoder
            // plays the packets back to back either way.
            if let Some(prev_end) = spans.last().map(|s| s.1).or(self.audio_end)
                && start < prev_end + own / 2
            {
                start = prev_end;
            }
            let end = if own_end > start {
                own_end
            } else {
                start + own
            };
            spans.push((start, end));
        }
        let Some(&(base, _)) = spans.first() else {
            return (0, Vec::new());
        };
        self.audio_end = spans.last().map(|s| s.1);
        self.audio_written += taken.len() as u64;
        let samples = taken
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let (start, end) = spans[i];
                // A real gap inside one fragment lengthens the packet
                // before it: a trun's samples are back to back.
                let end = spans.get(i + 1).map_or(end, |next| next.0);
                AudioSample {
                    data: f.data,
                    duration: u32::try_from(end - start).unwrap_or(u32::MAX),
                }
            })
            .collect();
        (base, samples)
    }

    fn flush(&mut self, audio_until_90k: Option<i64>) -> Option<MuxedFragment> {
        if self.fragment.is_empty() {
            return None;
        }
        self.sequence += 1;
        let base = (self.fragment_start_dts - self.first_dts).max(0) as u64;
        let (audio_base, audio) = self.take_audio(audio_until_90k);
        let data = if self.audio_params.is_some() {
            media_segment_with_audio(self.sequence, base, &self.fragment, audio_base, &audio)
        } else {
            media_segment(self.sequence, base, &self.fragment)
        };
        let fragment = MuxedFragment {
            data,
            decode_time_90k: base,
            duration_90k: self
                .fragment
                .iter()
                .map(|s| u64::from(s.duration_90k))
                .sum(),
            frames: self.fragment.len() as u32,
            keyframe: self.fragment[0].keyframe,
            audio_frames: audio.len() as u32,
        };
        self.fragment.clear();
        Some(fragment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(file: &str, codec: Codec) -> Vec<EncodedFrame> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(file);
        reallive_test_support::clip::annex_b_frames(&path, codec, 1_000_000, 3000)
    }

    fn mux(frames: Vec<EncodedFrame>, target: u64) -> (Bytes, u32) {
        let mut m = Fmp4Muxer::new(target);
        let mut out = BytesMut::new();
        for f in frames {
            let o = m.push(f).unwrap();
            out.extend(o.init);
            out.extend(o.fragment.map(|f| f.data));
        }
        out.extend(m.finish(None).map(|f| f.data));
        (out.freeze(), m.fragments())
    }

    /// FNV-1a, 64 bits: a stable fingerprint of bytes for golden tests.
    fn fnv1a(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// The video-only writers' bytes, fingerprinted before the audio track
    /// was added: adding audio must not change a video-only file by a byte.
    #[test]
    fn video_only_output_is_unchanged() {
        for (file, codec, init_hash, media_hash) in [
            (
                "ball-160x120-30f.h264",
                Codec::H264,
                0x732d_f232_22d5_554f,
                0xe758_aa35_3b86_aeab,
            ),
            (
                "ball-160x120-10f.h265",
                Codec::H265,
                0x9df9_c321_cd88_4067,
                0x3ae5_bd99_6840_10a0,
            ),
        ] {
            let f = frames(file, codec);
            let init = init_segment(&f[0].params).unwrap();
            let samples: Vec<Sample> = f
                .iter()
                .enumerate()
                .map(|(i, f)| Sample {
                    data: f.data.clone(),
                    duration_90k: 3000 + i as u32,
                    composition_offset_90k: i as i32 - 2,
                    keyframe: f.keyframe,
                })
                .collect();
            let media = media_segment(7, 123_456_789_012, &samples);
            assert_eq!(
                (fnv1a(&init), fnv1a(&media)),
                (init_hash, media_hash),
                "{file}"
            );
        }
    }

    /// The muxer's video-only files, fingerprinted before it took audio:
    /// a source without audio must still get the same bytes.
    #[test]
    fn muxer_video_only_output_is_unchanged() {
        let (file, fragments) = mux(frames("ball-160x120-30f.h264", Codec::H264), 9000);
        assert_eq!(fragments, 3);
        assert_eq!(fnv1a(&file), 0x9816_ac88_7c2b_f056);
    }

    /// Audio is placed by pts: a fragment takes the packets before the next
    /// fragment's first frame, one that came too late for its fragment goes
    /// in the next, after what was written, and a packet before the file's
    /// first frame or with other parameters is dropped.
    #[test]
    fn audio_goes_in_the_fragment_its_pts_falls_in() {
        let f = frames("ball-160x120-30f.h264", Codec::H264);
        let params = Arc::new(AudioParameters::opus(1));
        let audio = |pts_90k: i64| AudioFrame {
            data: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
            pts_90k,
            duration_90k: 1800,
            params: params.clone(),
        };
        let t0 = f[0].dts_90k;
        let mut m = Fmp4Muxer::new(30_000);
        m.push_audio(audio(t0 - 1800));
        m.push_audio(audio(t0));
        let init = m.push(f[0].clone()).unwrap().init.unwrap();
        assert!(init.windows(4).any(|w| w == b"dOps"));
        let mut other = audio(t0 + 1800);
        other.params = Arc::new(AudioParameters::opus(2));
        m.push_audio(other);
        // 20 ms packets up to the second fragment's start (frame 10), but
        // the one just before it (k = 16) arrives after the cut.
        for k in 1..=15 {
            m.push_audio(audio(t0 + k * 1800));
        }
        let mut cut = Vec::new();
        for frame in &f[1..=10] {
            cut.extend(m.push(frame.clone()).unwrap().fragment);
        }
        for k in 16..=25 {
            m.push_audio(audio(t0 + k * 1800));
        }
        for frame in &f[11..20] {
            cut.extend(m.push(frame.clone()).unwrap().fragment);
        }
        cut.extend(m.finish(None));
        let counts: Vec<u32> = cut.iter().map(|c| c.audio_frames).collect();
        // Fragment 1 is [t0, t0 + 30000): packets t0 .. t0 + 27000; the late
        // one joins fragment 2 with what follows.
        assert_eq!(counts, [16, 10]);
        assert_eq!(m.audio_frames_written(), 26);
        assert_eq!(m.audio_frames_dropped(), 2);
    }

    /// The OpusHead an encoder gives (RFC 7845 §5.1) becomes `dOps`: the
    /// same fields big-endian, its channel mapping included.
    #[test]
    fn opus_head_becomes_dops() {
        let mut head = b"OpusHead".to_vec();
        // Version 1, 5.1: pre-skip 312, 48 kHz input, gain -2, family 1
        // with 4 streams, 2 coupled, and the Vorbis channel order.
        head.extend_from_slice(&[
            1, 6, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0xfe, 0xff, 1, 4, 2, 0, 4, 1, 2, 3, 5,
        ]);
        let mut p = AudioParameters::opus(6);
        p.config = Bytes::from(head.clone());
        let (dops_box, channels) = dops(&p).unwrap();
        assert_eq!(channels, 6);
        assert_eq!(&dops_box[4..8], b"dOps");
        assert_eq!(
            dops_box[8..],
            [
                0, 6, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0xff, 0xfe, 1, 4, 2, 0, 4, 1, 2, 3, 5
            ]
        );
        // A head cut short of its mapping is refused.
        p.config = Bytes::from(head[..head.len() - 1].to_vec());
        assert!(dops(&p).is_err());
        // Without a head: from the parameters, mono or stereo only.
        let (dops_box, channels) = dops(&AudioParameters::opus(2)).unwrap();
        assert_eq!(channels, 2);
        assert_eq!(dops_box[8..], [0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
        assert!(dops(&AudioParameters::opus(3)).is_err());
        assert!(dops(&AudioParameters::opus(0)).is_err());
    }

    /// `esds` for AAC-LC 44.1 kHz stereo, byte by byte as ISO/IEC 14496-1
    /// lays the descriptors out.
    #[test]
    fn esds_nests_the_audio_specific_config() {
        let esds_box = esds(&[0x12, 0x10]).unwrap();
        let expected: &[u8] = &[
            0, 0, 0, 39, b'e', b's', b'd', b's', 0, 0, 0, 0, // full box
            3, 25, 0, 0, 0, // ES_Descriptor, ES_ID 0, no flags
            4, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
            5, 2, 0x12, 0x10, // DecoderSpecificInfo
            6, 1, 2, // SLConfig
        ];
        assert_eq!(&esds_box[..], expected);
        assert!(esds(&[0x12]).is_err());
        // Sizes of 128 bytes and more take 7 bits a byte.
        let mut b = BytesMut::new();
        put_descriptor(&mut b, 5, &[0; 200]).unwrap();
        assert_eq!(b[..3], [5, 0x81, 0x48]);
        assert_eq!(b.len(), 203);
    }

    #[test]
    fn fragments_start_on_keyframes() {
        let f = frames("ball-160x120-30f.h264", Codec::H264);
        assert_eq!(f.len(), 30);
        let (file, fragments) = mux(f, 9000);
        // Keyframes every 10 frames, target 0.1 s: one fragment per GOP.
        assert_eq!(fragments, 3);
        let scanned = crate::scan::scan(&mut std::io::Cursor::new(&file)).unwrap();
        let shape: Vec<(u64, u32, bool)> = scanned
            .fragments
            .iter()
            .map(|f| (f.decode_time_90k, f.frames, f.keyframe))
            .collect();
        assert_eq!(
            shape,
            vec![(0, 10, true), (30_000, 10, true), (60_000, 10, true)]
        );
        assert_eq!(scanned.valid_len, file.len() as u64);
    }

    #[test]
    fn parts_start_on_keyframes_and_stay_within_their_target() {
        let f = frames("ball-160x120-30f.h264", Codec::H264);
        let mut m = Fmp4Muxer::with_parts(90_000, 18_000);
        let mut file = BytesMut::new();
        for frame in f {
            let o = m.push(frame).unwrap();
            if let Some(i) = o.init {
                file.extend_from_slice(&i);
            }
            if let Some(frag) = o.fragment {
                file.extend_from_slice(&frag.data);
            }
        }
        if let Some(frag) = m.finish(None) {
            file.extend_from_slice(&frag.data);
        }
        let scanned = crate::scan::scan(&mut std::io::Cursor::new(&file)).unwrap();
        let shape: Vec<(u64, u32, bool)> = scanned
            .fragments
            .iter()
            .map(|f| (f.decode_time_90k, f.frames, f.keyframe))
            .collect();
        // 30 fps, keyframes every 10 frames, 200 ms parts: 6 frames, then
        // the 4 left before the next keyframe.
        assert_eq!(
            shape,
            vec![
                (0, 6, true),
                (18_000, 4, false),
                (30_000, 6, true),
                (48_000, 4, false),
                (60_000, 6, true),
                (78_000, 4, false)
            ]
        );
        assert!(scanned.fragments.iter().all(|f| f.duration_90k <= 18_000));
        assert_eq!(scanned.valid_len, file.len() as u64);
    }

    #[test]
    fn long_gops_are_split() {
        let (_, fragments) = mux(frames("ball-160x120-30f.h264", Codec::H264), 1500);
        // Keyframes every 10 frames but a 1/60 s target: cut at 4× target
        // (every 2 frames) when no keyframe comes.
        assert_eq!(fragments, 15);
    }

    #[test]
    fn three_byte_start_codes_are_sized_as_written() {
        // The same frames with 3-byte start codes: trun sizes must describe
        // the length-prefixed samples, which are longer than the input.
        let frames: Vec<EncodedFrame> = frames("ball-160x120-30f.h264", Codec::H264)
            .into_iter()
            .map(|mut f| {
                let mut short = BytesMut::new();
                for u in nal::split_annex_b(&f.data) {
                    short.extend_from_slice(&[0, 0, 1]);
                    short.extend_from_slice(&u);
                }
                f.data = short.freeze();
                f
            })
            .collect();
        let (file, _) = mux(frames, 9000);
        let scanned = crate::scan::scan(&mut std::io::Cursor::new(&file)).unwrap();
        assert_eq!(scanned.fragments.len(), 3);
        assert_eq!(scanned.valid_len, file.len() as u64);
    }

    /// Found with `fuzz/fuzz_targets/fmp4_scan.rs`: a version-1 `tfdt`
    /// with no room for its time, followed by a `trun`, had the rewrite
    /// write the new time over the trun's header.
    #[test]
    fn fuzz_a_short_tfdt_is_not_written_past() {
        fn mp4_box(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(fourcc);
            b.extend_from_slice(body);
            b
        }
        let trun = mp4_box(
            b"trun",
            &[0, 0, 3, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8],
        );
        let traf = [
            mp4_box(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]),
            mp4_box(b"tfdt", &[1, 0, 0, 0]),
            trun,
        ]
        .concat();
        let moof = mp4_box(
            b"moof",
            &[
                mp4_box(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]),
                mp4_box(b"traf", &traf),
            ]
            .concat(),
        );
        let mut m = moof.clone();
        assert!(!rewrite_moof(&mut m, Some(7), |t| t + 90_000));
        assert_eq!(m, moof);
        // A short mfhd is left alone (the sequence number went over the
        // traf's size), while a whole tfdt is still rewritten.
        let traf = mp4_box(
            b"traf",
            &mp4_box(b"tfdt", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
        );
        let moof = mp4_box(b"moof", &[mp4_box(b"mfhd", &[0, 0, 0, 0]), traf].concat());
        let mut m = moof.clone();
        assert!(rewrite_moof(&mut m, Some(7), |t| t + 1));
        let mut expected = moof;
        *expected.last_mut().unwrap() = 6;
        assert_eq!(m, expected);
    }

    #[test]
    fn refuses_bad_input() {
        let f = frames("ball-160x120-30f.h264", Codec::H264);
        let mut m = Fmp4Muxer::new(90_000);
        assert!(m.push(f[1].clone()).is_err(), "must start on a keyframe");
        m.push(f[0].clone()).unwrap();
        m.push(f[1].clone()).unwrap();
        assert!(m.push(f[1].clone()).is_err(), "repeated decode time");
        let mut other = f[2].clone();
        let mut p = (*other.params).clone();
        p.pps[0] = Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80]);
        other.params = Arc::new(p);
        assert!(m.push(other).is_err(), "parameter change");
    }

    /// Every range of a real muxed file, read through [`ShiftedRange`] in
    /// chunks of any size, is the same bytes as shifting the whole file in
    /// memory and slicing it: ranges may start and end anywhere.
    #[test]
    fn a_shifted_range_streams_what_shifting_in_memory_gives() {
        let (file, fragments) = mux(frames("ball-160x120-30f.h264", Codec::H264), 9000);
        assert_eq!(fragments, 3);
        let delta = 90_000 * 3600;
        let mut whole = file.to_vec();
        assert_eq!(shift_decode_times(&mut whole, delta), 3);
        let len = file.len() as u64;
        // Every box boundary, one byte either side, and a stride through
        // the middles.
        let mut cuts = vec![0, 1, 7, 8, 9, len - 1, len];
        let mut pos = 0usize;
        while pos + 8 <= file.len() {
            let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
            for c in [
                pos.saturating_sub(1),
                pos,
                pos + 1,
                pos + 12,
                pos + size / 2,
            ] {
                cuts.push(c as u64);
            }
            pos += size;
        }
        cuts.extend((0..len).step_by(97));
        cuts.sort_unstable();
        cuts.dedup();
        cuts.retain(|c| *c <= len);
        for (i, &start) in cuts.iter().enumerate() {
            for &end in cuts[i..].iter().step_by(3) {
                for chunk in [1usize, 13, 64 << 10] {
                    let mut r =
                        ShiftedRange::new(std::io::Cursor::new(&file[..]), start, end, delta);
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; chunk];
                    loop {
                        let n = std::io::Read::read(&mut r, &mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(
                        got == whole[start as usize..end as usize],
                        "{start}..{end} in chunks of {chunk}"
                    );
                }
            }
        }
    }

    /// A file of huge `mdat`s, made up as it is read: streaming it shifted
    /// holds one small `moof` at a time, never a fragment.
    #[test]
    fn a_shifted_range_holds_one_moof_not_the_file() {
        let frame = frames("ball-160x120-30f.h264", Codec::H264).remove(0);
        let sample = |t| Sample {
            data: frame.data.clone(),
            duration_90k: 3000,
            composition_offset_90k: 0,
            keyframe: t == 0,
        };
        let seg = media_segment(1, 0, &[sample(0)]);
        let moof_len = u32::from_be_bytes(seg[0..4].try_into().unwrap()) as usize;
        let moof = seg[..moof_len].to_vec();
        // Three fragments: the moof, then a 40 MiB mdat of zeros.
        const MDAT: u64 = 40 << 20;
        let frag = moof.len() as u64 + MDAT;
        struct Made {
            moof: Vec<u8>,
            pos: u64,
            len: u64,
        }
        impl std::io::Read for Made {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let frag = self.moof.len() as u64 + MDAT;
                if self.pos >= self.len {
                    return Ok(0);
                }
                let off = self.pos % frag;
                let n;
                if off < self.moof.len() as u64 {
                    n = out.len().min(self.moof.len() - off as usize);
                    out[..n].copy_from_slice(&self.moof[off as usize..off as usize + n]);
                } else {
                    let in_mdat = off - self.moof.len() as u64;
                    let mut head = [0u8; 8];
                    head[..4].copy_from_slice(&(MDAT as u32).to_be_bytes());
                    head[4..].copy_from_slice(b"mdat");
                    n = out.len().min((MDAT - in_mdat) as usize);
                    out[..n].fill(0);
                    for (i, b) in out[..n].iter_mut().enumerate() {
                        match head.get(in_mdat as usize + i) {
                            Some(h) => *b = *h,
                            None => break,
                        }
                    }
                }
                self.pos += n as u64;
                Ok(n)
            }
        }
        impl std::io::Seek for Made {
            fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
                let std::io::SeekFrom::Start(p) = to else {
                    unreachable!("ShiftedRange seeks from the start")
                };
                self.pos = p;
                Ok(p)
            }
        }
        let len = 3 * frag;
        let made = Made { moof, pos: 0, len };
        let delta = 123_456;
        // From the middle of the first mdat to the end.
        let start = frag / 2;
        let mut r = ShiftedRange::new(made, start, len, delta);
        let mut buf = vec![0u8; 64 << 10];
        let (mut total, mut held, mut tfdts) = (0u64, 0usize, Vec::new());
        let mut at = start;
        loop {
            let n = std::io::Read::read(&mut r, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            held = held.max(r.moof.as_ref().map_or(0, |(_, m)| m.capacity()));
            // A moof starts on a fragment boundary; check its tfdt.
            if at.is_multiple_of(frag) {
                let mut m = buf[..n.min(moof_len)].to_vec();
                let seen = std::cell::Cell::new(None);
                rewrite_moof(&mut m, None, |t| {
                    seen.set(Some(t));
                    t
                });
                tfdts.push(seen.get());
            }
            at += n as u64;
            total += n as u64;
        }
        assert_eq!(total, len - start);
        assert_eq!(
            tfdts,
            [Some(delta), Some(delta)],
            "both later moofs shifted"
        );
        assert!(held > 0 && held <= moof_len, "held {held} bytes at most");
        assert!((held as u64) < MAX_SHIFTED_MOOF_BYTES);
    }
}
