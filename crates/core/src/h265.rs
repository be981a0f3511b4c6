//! H.265 bitstream facts RealLive needs: NAL types, IRAP detection, and the
//! SPS fields that give picture size, profile and level.
//!
//! H.265 is recorded from IP cameras as-is; RealLive never encodes it live.

use crate::nal::{BitReader, unescape_rbsp};
use crate::{Codec, Error, StreamInfo};

/// Video parameter set.
pub const NAL_VPS: u8 = 32;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// Picture parameter set.
pub const NAL_PPS: u8 = 34;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 35;

/// Whether a NAL type is an intra random access point (BLA, IDR or CRA).
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// The profile name as ffprobe prints it.
pub fn profile_name(profile_idc: u8) -> &'static str {
    match profile_idc {
        1 => "Main",
        2 => "Main 10",
        3 => "Main Still Picture",
        4 => "Rext",
        _ => "unknown",
    }
}

/// The fields of an H.265 SPS RealLive uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// `general_profile_idc`.
    pub profile_idc: u8,
    /// `general_level_idc` (level × 30).
    pub level_idc: u8,
    /// `sps_max_sub_layers_minus1`.
    pub max_sub_layers_minus1: u8,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u32,
    /// `bit_depth_luma_minus8`.
    pub bit_depth_luma_minus8: u32,
    /// `bit_depth_chroma_minus8`.
    pub bit_depth_chroma_minus8: u32,
    /// Width after the conformance window.
    pub width: u32,
    /// Height after the conformance window.
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (2-byte header included, no start code).
    pub fn parse(nal: &[u8]) -> Result<Sps, Error> {
        const WHAT: &str = "H.265 SPS";
        if nal.len() < 4 || (nal[0] >> 1) & 0x3f != NAL_SPS {
            return Err(Error::bitstream(WHAT, "not an SPS NAL unit"));
        }
        let rbsp = unescape_rbsp(&nal[2..]);
        let mut r = BitReader::new(&rbsp, WHAT);
        r.skip(4)?; // sps_video_parameter_set_id
        let max_sub_layers_minus1 = r.bits(3)? as usize;
        r.skip(1)?; // sps_temporal_id_nesting_flag
        // profile_tier_level(1, max_sub_layers_minus1)
        r.skip(3)?; // general_profile_space, general_tier_flag
        let profile_idc = r.bits(5)? as u8;
        r.skip(32 + 48)?; // compatibility flags; progressive..reserved bits
        let level_idc = r.bits(8)? as u8;
        let mut sub_profile = [false; 8];
        let mut sub_level = [false; 8];
        for i in 0..max_sub_layers_minus1 {
            sub_profile[i] = r.bit()?;
            sub_level[i] = r.bit()?;
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(2 * (8 - max_sub_layers_minus1))?;
        }
        for i in 0..max_sub_layers_minus1 {
            if sub_profile[i] {
                r.skip(88)?;
            }
            if sub_level[i] {
                r.skip(8)?;
            }
        }
        r.ue_max(15, "sps_seq_parameter_set_id")?;
        let chroma_format_idc = r.ue_max(3, "chroma_format_idc")?;
        let mut separate_colour_plane = false;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        let mut width = r.ue_max(16888, "pic_width_in_luma_samples")?;
        let mut height = r.ue_max(16888, "pic_height_in_luma_samples")?;
        if r.bit()? {
            // conformance_window_flag
            let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            let (sub_w, sub_h) = match (chroma_format_idc, separate_colour_plane) {
                (1, _) => (2, 2),
                (2, _) => (2, 1),
                _ => (1, 1),
            };
            let dx = left.saturating_add(right).saturating_mul(sub_w);
            let dy = top.saturating_add(bottom).saturating_mul(sub_h);
            if dx >= width || dy >= height {
                return Err(Error::bitstream(
                    WHAT,
                    "conformance window larger than the picture",
                ));
            }
            width -= dx;
            height -= dy;
        }
        if width == 0 || height == 0 {
            return Err(Error::bitstream(WHAT, "zero picture size"));
        }
        let bit_depth_luma_minus8 = r.ue_max(8, "bit_depth_luma_minus8")?;
        let bit_depth_chroma_minus8 = r.ue_max(8, "bit_depth_chroma_minus8")?;
        Ok(Sps {
            profile_idc,
            level_idc,
            max_sub_layers_minus1: max_sub_layers_minus1 as u8,
            chroma_format_idc,
            bit_depth_luma_minus8,
            bit_depth_chroma_minus8,
            width,
            height,
        })
    }

    /// This SPS as a codec-neutral [`StreamInfo`].
    pub fn stream_info(&self) -> StreamInfo {
        StreamInfo {
            codec: Codec::H265,
            width: self.width,
            height: self.height,
            fps: None,
            profile_idc: self.profile_idc,
            constraint_flags: 0,
            level_idc: self.level_idc,
            // Cameras rarely use B-frames in H.265 either, but the SPS fields
            // that say so sit past what we parse; assume the worst.
            may_reorder: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CodecParameters;
    use bytes::Bytes;

    #[test]
    fn parses_x265_parameter_sets() {
        let path = format!(
            "{}/testdata/x265-1920x1080-30.h265",
            env!("CARGO_MANIFEST_DIR")
        );
        let data = Bytes::from(std::fs::read(path).unwrap());
        let params = CodecParameters::from_annex_b(Codec::H265, &data).unwrap();
        assert!(params.is_complete());
        let info = params.stream_info().unwrap();
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(info.profile_name(), "Rext");
        assert_eq!(info.level(), "4.0");
        assert!(crate::nal::is_keyframe(Codec::H265, &data));
    }

    /// Found by `fuzz/fuzz_targets/h26x_params.rs`: conformance window
    /// offsets whose sum overflows `u32` panicked in debug builds and
    /// wrapped to a bogus size in release builds. A 64x64 Main SPS whose
    /// left offset is 2^32 - 2 and right offset 2.
    #[test]
    fn fuzz_window_offsets_that_overflow_are_refused() {
        let nal = [
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x03, 0x00, 0x5a, 0xa0, 0x20, 0x81, 0x06, 0x00, 0x00, 0x03, 0x00, 0x03, 0xff,
            0xff, 0xff, 0xfd, 0xfc,
        ];
        let err = Sps::parse(&nal).unwrap_err();
        assert!(err.to_string().contains("conformance window"), "{err}");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Sps::parse(&[0x42, 0x01]).is_err());
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = [0x42, 0x01]
                .into_iter()
                .chain((0..30).map(|i| (seed.wrapping_mul(2246822519).rotate_left(i) & 0xff) as u8))
                .collect();
            let _ = Sps::parse(&bytes);
        }
    }
}
