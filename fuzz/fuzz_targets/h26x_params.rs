//! H.264 and H.265 parameter sets as cameras and RTSP servers send them:
//! Annex-B splitting (`nal`), parameter-set collection
//! (`CodecParameters::from_annex_b`) and the SPS parsers
//! (`h264::Sps::parse`, `h265::Sps::parse`), on arbitrary bytes taken both
//! as an Annex-B stream and as one bare NAL unit, for both codecs.
//!
//! Invariants:
//! - NAL units are never empty, never hold a start code, never end in a
//!   zero byte, and come out the same through every framing (length
//!   prefixes, access units);
//! - collected parameter sets are distinct and of the right NAL type;
//! - a parsed SPS describes a picture that exists: non-zero, within the
//!   limits the parser enforces, with a usable frame rate if any.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use reallive_core::nal::{
    access_units, annex_b_to_length_prefixed, is_keyframe, length_prefixed_len, nal_type,
    put_length_prefixed, split_annex_b, unescape_rbsp,
};
use reallive_core::{Codec, CodecParameters, StreamInfo, h264, h265};

fn check_info(info: &StreamInfo, codec: Codec) {
    assert_eq!(info.codec, codec);
    assert!(info.width > 0 && info.height > 0, "{info:?}");
    let _ = info.profile_name();
    let level = info.level();
    assert!(level.contains('.'), "{level}");
    match codec {
        Codec::H264 => {
            assert_eq!(info.profile_level_id().map(|s| s.len()), Some(6));
        }
        _ => assert_eq!(info.profile_level_id(), None),
    }
    if let Some(fps) = info.fps {
        assert!(fps.num > 0 && fps.den > 0, "{fps:?}");
        assert!(fps.as_f64() > 0.0);
        let _ = fps.frame_duration_90k();
        let _ = fps.to_string();
    }
}

fn sps(codec: Codec, nal: &[u8]) {
    match codec {
        Codec::H264 => {
            if let Ok(s) = h264::Sps::parse(nal) {
                // 1..=1024 macroblocks across; map units doubled for fields.
                assert!(s.width >= 1 && s.width <= 1024 * 16, "{s:?}");
                assert!(s.height >= 1 && s.height <= 1024 * 16 * 2, "{s:?}");
                assert!(s.chroma_format_idc <= 3);
                assert!(s.bit_depth_luma_minus8 <= 6 && s.bit_depth_chroma_minus8 <= 6);
                check_info(&s.stream_info(), codec);
            }
        }
        _ => {
            if let Ok(s) = h265::Sps::parse(nal) {
                assert!(s.width >= 1 && s.width <= 16888, "{s:?}");
                assert!(s.height >= 1 && s.height <= 16888, "{s:?}");
                assert!(s.chroma_format_idc <= 3 && s.max_sub_layers_minus1 <= 7);
                check_info(&s.stream_info(), codec);
            }
        }
    }
}

fn annex_b(codec: Codec, stream: &Bytes) {
    let units: Vec<Bytes> = split_annex_b(stream).collect();
    for u in &units {
        assert!(!u.is_empty());
        assert_ne!(u.last(), Some(&0), "a unit ends in a zero byte");
        assert!(
            !u.windows(3).any(|w| w == [0, 0, 1]),
            "a unit holds a start code"
        );
        assert!(unescape_rbsp(u).len() <= u.len());
    }

    // Length-prefixed: the same units, by both writers.
    let lp = annex_b_to_length_prefixed(stream);
    assert_eq!(lp.len(), length_prefixed_len(stream));
    let mut put = BytesMut::new();
    put_length_prefixed(stream, &mut put);
    assert_eq!(put.as_ref(), lp.as_ref());
    let mut rest = lp.as_ref();
    for u in &units {
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert_eq!(&rest[4..4 + n], u.as_ref());
        rest = &rest[4 + n..];
    }
    assert!(rest.is_empty());

    // Access units: each holds a picture, and together they are the
    // stream's units in order (up to a trailing run without a picture).
    let aus = access_units(codec, stream);
    let mut regrouped = Vec::new();
    for au in &aus {
        let inner: Vec<Bytes> = split_annex_b(au).collect();
        assert!(!inner.is_empty());
        let _ = is_keyframe(codec, au);
        regrouped.extend(inner);
    }
    assert!(regrouped.len() <= units.len());
    assert_eq!(regrouped[..], units[..regrouped.len()]);
    let keyframe = is_keyframe(codec, stream);
    assert_eq!(
        keyframe,
        units.iter().any(|u| match nal_type(codec, u) {
            Some(t) if codec == Codec::H264 => t == h264::NAL_IDR,
            Some(t) => h265::is_irap(t),
            None => false,
        })
    );

    // Parameter sets.
    if let Some(p) = CodecParameters::from_annex_b(codec, stream) {
        let kinds: [(&[Bytes], u8); 3] = match codec {
            Codec::H264 => [(&p.sps, h264::NAL_SPS), (&p.pps, h264::NAL_PPS), (&[], 0)],
            _ => [
                (&p.sps, h265::NAL_SPS),
                (&p.pps, h265::NAL_PPS),
                (&p.vps, h265::NAL_VPS),
            ],
        };
        for (sets, ty) in kinds {
            for (i, s) in sets.iter().enumerate() {
                assert_eq!(nal_type(codec, s), Some(ty));
                assert!(!sets[..i].contains(s), "a repeated parameter set was kept");
                assert!(units.contains(s));
            }
        }
        let _ = p.is_complete();
        if let Ok(info) = p.stream_info() {
            check_info(&info, codec);
        }
        for s in &p.sps {
            sps(codec, s);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let stream = Bytes::copy_from_slice(data);
    for codec in [Codec::H264, Codec::H265] {
        sps(codec, data);
        annex_b(codec, &stream);
    }
});
