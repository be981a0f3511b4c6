//! H.264 bitstream facts RealLive needs: NAL types and the sequence parameter
//! set (size, frame rate, profile, level, reordering).

use crate::nal::{BitReader, unescape_rbsp};
use crate::{Codec, Error, Fps, StreamInfo};

/// Non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// IDR coded slice: a keyframe.
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Whether avcC carries the chroma/bit-depth extension for this profile
/// (ISO/IEC 14496-15 §5.3.3.1.2).
pub fn has_avcc_extension(profile_idc: u8) -> bool {
    matches!(profile_idc, 100 | 110 | 122 | 144)
}

/// The profile name as ffprobe prints it, from `profile_idc` and the
/// constraint flags byte.
pub fn profile_name(profile_idc: u8, constraint_flags: u8) -> &'static str {
    let cs1 = constraint_flags & 0x40 != 0;
    let cs3 = constraint_flags & 0x10 != 0;
    match profile_idc {
        66 if cs1 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 if cs3 => "High 10 Intra",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4",
        _ => "unknown",
    }
}

/// Profiles whose SPS carries chroma format and bit depth fields.
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// The fields of a sequence parameter set RealLive uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// `constraint_set0_flag`..`constraint_set5_flag` and the reserved bits.
    pub constraint_flags: u8,
    /// `level_idc` (level × 10).
    pub level_idc: u8,
    /// `chroma_format_idc` (1 = 4:2:0).
    pub chroma_format_idc: u32,
    /// `bit_depth_luma_minus8`.
    pub bit_depth_luma_minus8: u32,
    /// `bit_depth_chroma_minus8`.
    pub bit_depth_chroma_minus8: u32,
    /// Width in pixels after cropping.
    pub width: u32,
    /// Height in pixels after cropping.
    pub height: u32,
    /// Whether every picture is a frame (no interlaced fields).
    pub frame_mbs_only: bool,
    /// From VUI timing info: `time_scale / (2 * num_units_in_tick)`.
    pub fps: Option<Fps>,
    /// VUI `max_num_reorder_frames`, when the bitstream restriction is present.
    pub max_num_reorder_frames: Option<u32>,
}

impl Sps {
    /// Parses an SPS NAL unit (header byte included, no start code).
    pub fn parse(nal: &[u8]) -> Result<Sps, Error> {
        const WHAT: &str = "H.264 SPS";
        if nal.len() < 4 || nal[0] & 0x1f != NAL_SPS {
            return Err(Error::bitstream(WHAT, "not an SPS NAL unit"));
        }
        let rbsp = unescape_rbsp(&nal[1..]);
        let mut r = BitReader::new(&rbsp, WHAT);
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue_max(31, "seq_parameter_set_id")?;

        let mut chroma_format_idc = 1;
        let (mut bit_depth_luma_minus8, mut bit_depth_chroma_minus8) = (0, 0);
        let mut separate_colour_plane = false;
        if has_chroma_info(profile_idc) {
            chroma_format_idc = r.ue_max(3, "chroma_format_idc")?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            bit_depth_luma_minus8 = r.ue_max(6, "bit_depth_luma_minus8")?;
            bit_depth_chroma_minus8 = r.ue_max(6, "bit_depth_chroma_minus8")?;
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                // seq_scaling_matrix_present_flag
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue_max(12, "log2_max_frame_num_minus4")?;
        match r.ue_max(2, "pic_order_cnt_type")? {
            0 => {
                r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
            }
            1 => {
                r.bit()?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let n = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
                for _ in 0..n {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue_max(1023, "pic_width_in_mbs_minus1")? + 1;
        let height_map_units = r.ue_max(1023, "pic_height_in_map_units_minus1")? + 1;
        let frame_mbs_only = r.bit()?;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let mut width = width_mbs * 16;
        let mut height = height_map_units * 16 * field_factor;
        if r.bit()? {
            // frame_cropping_flag
            let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            let chroma_array_type = if separate_colour_plane {
                0
            } else {
                chroma_format_idc
            };
            let (crop_x, crop_y) = match chroma_array_type {
                0 => (1, field_factor),
                1 => (2, 2 * field_factor),
                2 => (2, field_factor),
                _ => (1, field_factor),
            };
            let dx = left.saturating_add(right).saturating_mul(crop_x);
            let dy = top.saturating_add(bottom).saturating_mul(crop_y);
            if dx >= width || dy >= height {
                return Err(Error::bitstream(WHAT, "cropping larger than the picture"));
            }
            width -= dx;
            height -= dy;
        }
        let mut sps = Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            chroma_format_idc,
            bit_depth_luma_minus8,
            bit_depth_chroma_minus8,
            width,
            height,
            frame_mbs_only,
            fps: None,
            max_num_reorder_frames: None,
        };
        // A truncated VUI is common enough in cheap cameras that it must not
        // cost us the picture size: keep what parsed.
        if r.bit().unwrap_or(false) {
            let _ = parse_vui(&mut r, &mut sps);
        }
        Ok(sps)
    }

    /// This SPS as a codec-neutral [`StreamInfo`].
    pub fn stream_info(&self) -> StreamInfo {
        // Baseline and constrained profiles have no B-slices at all.
        let no_b_profile = self.profile_idc == 66 || self.constraint_flags & 0x40 != 0;
        StreamInfo {
            codec: Codec::H264,
            width: self.width,
            height: self.height,
            fps: self.fps,
            profile_idc: self.profile_idc,
            constraint_flags: self.constraint_flags,
            level_idc: self.level_idc,
            may_reorder: match self.max_num_reorder_frames {
                Some(n) => n > 0,
                None => !no_b_profile,
            },
        }
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), Error> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(Error::bitstream("H.264 SPS", "delta_scale out of range"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn parse_vui(r: &mut BitReader<'_>, sps: &mut Sps) -> Result<(), Error> {
    if r.bit()? {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 255 {
            r.skip(32)?; // sar_width, sar_height
        }
    }
    if r.bit()? {
        r.bit()?; // overscan_appropriate_flag
    }
    if r.bit()? {
        // video_signal_type_present_flag
        r.skip(4)?; // video_format, video_full_range_flag
        if r.bit()? {
            r.skip(24)?; // colour_primaries, transfer, matrix
        }
    }
    if r.bit()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // chroma_sample_loc_type_bottom_field
    }
    if r.bit()? {
        // timing_info_present_flag
        let num_units_in_tick = r.bits(32)?;
        let time_scale = r.bits(32)?;
        r.bit()?; // fixed_frame_rate_flag
        if num_units_in_tick > 0 && time_scale > 0 {
            let (num, den) = reduce(time_scale, num_units_in_tick.saturating_mul(2));
            sps.fps = Some(Fps { num, den });
        }
    }
    let nal_hrd = r.bit()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.bit()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.bit()?; // low_delay_hrd_flag
    }
    r.bit()?; // pic_struct_present_flag
    if r.bit()? {
        // bitstream_restriction_flag
        r.bit()?; // motion_vectors_over_pic_boundaries_flag
        r.ue()?; // max_bytes_per_pic_denom
        r.ue()?; // max_bits_per_mb_denom
        r.ue()?; // log2_max_mv_length_horizontal
        r.ue()?; // log2_max_mv_length_vertical
        sps.max_num_reorder_frames = Some(r.ue()?);
        r.ue()?; // max_dec_frame_buffering
    }
    Ok(())
}

fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), Error> {
    let cpb_cnt = r.ue_max(31, "cpb_cnt_minus1")? + 1;
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?; // bit_rate_value_minus1
        r.ue()?; // cpb_size_value_minus1
        r.bit()?; // cbr_flag
    }
    r.skip(20)?; // four 5-bit delay/length fields
    Ok(())
}

fn reduce(a: u32, b: u32) -> (u32, u32) {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    match (a.checked_div(x), b.checked_div(x)) {
        (Some(n), Some(d)) => (n, d),
        _ => (a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nal::split_annex_b;
    use bytes::Bytes;

    fn first_sps(file: &str) -> Bytes {
        let path = format!("{}/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let data = Bytes::from(std::fs::read(path).unwrap());
        split_annex_b(&data)
            .find(|u| u[0] & 0x1f == NAL_SPS)
            .expect("fixture has an SPS")
    }

    #[test]
    fn parses_real_encoder_sps() {
        // (fixture, width, height, fps, profile, level_idc, may_reorder)
        let cases = [
            (
                "x264-cb-1280x720-30.h264",
                1280,
                720,
                Some((30, 1)),
                "Constrained Baseline",
                31,
                false,
            ),
            (
                "x264-high-1920x1080-30.h264",
                1920,
                1080,
                Some((30, 1)),
                "High",
                40,
                true,
            ),
            (
                "openh264-640x360-25.h264",
                640,
                360,
                None,
                "Constrained Baseline",
                30,
                false,
            ),
        ];
        for (file, w, h, fps, profile, level, reorder) in cases {
            let info = Sps::parse(&first_sps(file)).unwrap().stream_info();
            assert_eq!((info.width, info.height), (w, h), "{file}");
            assert_eq!(info.fps.map(|f| (f.num, f.den)), fps, "{file}");
            assert_eq!(info.profile_name(), profile, "{file}");
            assert_eq!(info.level_idc, level, "{file}");
            assert_eq!(info.may_reorder, reorder, "{file}");
        }
    }

    #[test]
    fn constrained_baseline_profile_level_id() {
        let info = Sps::parse(&first_sps("x264-cb-1280x720-30.h264"))
            .unwrap()
            .stream_info();
        assert_eq!(info.profile_level_id().as_deref(), Some("42c01f"));
        assert_eq!(info.level(), "3.1");
    }

    /// Found by `fuzz/fuzz_targets/h26x_params.rs`: crop offsets whose
    /// sum overflows `u32` (each up to 2^32 - 2 as Exp-Golomb) panicked in
    /// debug builds and wrapped to a bogus size in release builds.
    #[test]
    fn fuzz_crop_offsets_that_overflow_are_refused() {
        let nal = [
            0x67, 0xff, 0xff, 0xff, 0xff, 0x77, 0x08, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
        ];
        let err = Sps::parse(&nal).unwrap_err();
        assert!(err.to_string().contains("cropping"), "{err}");
    }

    /// Found by `fuzz/fuzz_targets/h26x_params.rs`: a scaling list
    /// `delta_scale` far outside its -128..=127 range overflowed `i32`
    /// (a panic in debug builds). A High profile SPS with a scaling matrix.
    #[test]
    fn fuzz_scaling_list_delta_out_of_range_is_refused() {
        let nal = [
            0x67, 0x64, 0xff, 0xff, 0xff, 0xa0, 0x00, 0x00, 0x00, 0x1f, 0xff, 0xff, 0xe3, 0x06,
        ];
        let err = Sps::parse(&nal).unwrap_err();
        assert!(err.to_string().contains("delta_scale"), "{err}");
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Sps::parse(&[]).is_err());
        assert!(Sps::parse(&[0x67]).is_err());
        assert!(Sps::parse(&[0x68, 1, 2, 3, 4]).is_err());
        // Every prefix of a real SPS either parses or errors; none panics.
        let sps = first_sps("x264-high-1920x1080-30.h264");
        for n in 0..sps.len() {
            let _ = Sps::parse(&sps[..n]);
        }
        // Arbitrary bytes with an SPS header.
        for seed in 0u32..2000 {
            let bytes: Vec<u8> = std::iter::once(0x67)
                .chain((0..24).map(|i| (seed.wrapping_mul(2654435761).rotate_left(i) & 0xff) as u8))
                .collect();
            let _ = Sps::parse(&bytes);
        }
    }
}
