//! NAL unit plumbing shared by H.264 and H.265: Annex-B splitting, RBSP
//! unescaping and an Exp-Golomb bit reader.

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Codec, Error, h264, h265};

/// Iterates over the NAL units of an Annex-B buffer, without start codes.
///
/// Accepts 3- and 4-byte start codes, ignores leading garbage before the first
/// start code and trailing zero bytes, and never copies: each unit is a slice
/// of `buf`.
pub fn split_annex_b(buf: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    annex_b_ranges(buf).map(|r| buf.slice(r))
}

/// Where [`split_annex_b`]'s units lie in `data`: one scan, for a caller
/// that needs them more than once (the MP4 muxer sizes every sample, then
/// writes it) or without `Bytes` handles.
pub fn annex_b_ranges(data: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut pos = find_start_code(data, 0).map(|(_, end)| end);
    std::iter::from_fn(move || {
        let start = pos?;
        let (unit_end, next) = match find_start_code(data, start) {
            Some((sc, after)) => (sc, Some(after)),
            None => (data.len(), None),
        };
        pos = next;
        // Trailing zeros belong to the next start code (zero_byte) or padding.
        let mut end = unit_end;
        while end > start && data[end - 1] == 0 {
            end -= 1;
        }
        Some(start..end)
    })
    .filter(|r| !r.is_empty())
}

/// Finds the next `00 00 01` at or after `from`; returns (its index, the
/// index just past it).
///
/// Runs over every byte of every frame recorded, so it searches with SIMD
/// (`memchr`) for the `01` and only then checks the two zeros before it.
fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from + 2;
    while i < data.len() {
        let one = i + memchr::memchr(1, &data[i..])?;
        if data[one - 1] == 0 && data[one - 2] == 0 {
            return Some((one - 2, one + 1));
        }
        i = one + 1;
    }
    None
}

/// The NAL unit type of `unit` (no start code), or `None` if it is empty.
pub fn nal_type(codec: Codec, unit: &[u8]) -> Option<u8> {
    let first = *unit.first()?;
    Some(match codec {
        Codec::H264 => first & 0x1f,
        Codec::H265 => (first >> 1) & 0x3f,
    })
}

/// Whether the Annex-B access unit contains a picture decoding can start at
/// (IDR for H.264, IRAP for H.265).
pub fn is_keyframe(codec: Codec, au: &Bytes) -> bool {
    split_annex_b(au).any(|u| match (codec, nal_type(codec, &u)) {
        (Codec::H264, Some(t)) => t == h264::NAL_IDR,
        (Codec::H265, Some(t)) => h265::is_irap(t),
        _ => false,
    })
}

/// Splits an Annex-B elementary stream into access units, each re-emitted
/// with 4-byte start codes.
///
/// A new access unit starts at an AUD or parameter set/SEI that follows a
/// picture, or at a slice that begins a new picture (`first_mb_in_slice ==
/// 0`, H.265 `first_slice_segment_in_pic_flag`). Good enough for encoder
/// output and camera streams; it does not track `frame_num`/POC changes in
/// streams whose pictures lack those markers.
pub fn access_units(codec: Codec, stream: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut current = BytesMut::new();
    let mut has_picture = false;
    for unit in split_annex_b(stream) {
        let Some(ty) = nal_type(codec, &unit) else {
            continue;
        };
        let (is_vcl, starts_picture, is_prefix) = match codec {
            Codec::H264 => (
                matches!(ty, 1..=5),
                matches!(ty, 1..=5) && unit.get(1).is_some_and(|b| b & 0x80 != 0),
                matches!(ty, 6..=9 | 14 | 15),
            ),
            Codec::H265 => (
                ty < 32,
                ty < 32 && unit.get(2).is_some_and(|b| b & 0x80 != 0),
                matches!(ty, 32..=35 | 39),
            ),
        };
        if has_picture && (starts_picture || is_prefix) {
            out.push(std::mem::take(&mut current).freeze());
            has_picture = false;
        }
        current.put_slice(&[0, 0, 0, 1]);
        current.put_slice(&unit);
        has_picture |= is_vcl;
    }
    if has_picture {
        out.push(current.freeze());
    }
    out
}

/// Size of `au` once rewritten with 4-byte length prefixes.
pub fn length_prefixed_len(au: &Bytes) -> usize {
    annex_b_ranges(au).map(|u| 4 + u.len()).sum()
}

/// Appends `au` to `out` with 4-byte length prefixes instead of start codes,
/// without an intermediate buffer.
pub fn put_length_prefixed(au: &Bytes, out: &mut BytesMut) {
    put_ranges_length_prefixed(au, annex_b_ranges(au), out);
}

/// Appends the units of `data` at `ranges` (from [`annex_b_ranges`]) to
/// `out`, each with a 4-byte length prefix.
pub fn put_ranges_length_prefixed(
    data: &[u8],
    ranges: impl IntoIterator<Item = std::ops::Range<usize>>,
    out: &mut BytesMut,
) {
    for r in ranges {
        out.put_u32(u32::try_from(r.len()).unwrap_or(u32::MAX));
        out.put_slice(&data[r]);
    }
}

/// Rewrites an Annex-B access unit as 4-byte length-prefixed NAL units, the
/// form MP4 (`avc1`/`hvc1`) and RTP aggregation expect.
pub fn annex_b_to_length_prefixed(au: &Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(au.len() + 16);
    for unit in split_annex_b(au) {
        // A NAL unit larger than 4 GiB cannot exist in a frame we hold in memory.
        out.put_u32(u32::try_from(unit.len()).unwrap_or(u32::MAX));
        out.put_slice(&unit);
    }
    out.freeze()
}

/// Removes emulation-prevention bytes (`00 00 03` → `00 00`) from a NAL unit
/// payload, giving the RBSP.
pub fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Reads bits MSB-first from an RBSP, with Exp-Golomb codes.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader over `data`; `what` names the structure in errors.
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, bit: 0, what }
    }

    fn eof(&self) -> Error {
        Error::bitstream(self.what, format!("truncated at bit {}", self.bit))
    }

    /// One bit.
    pub fn bit(&mut self) -> Result<bool, Error> {
        let byte = *self.data.get(self.bit / 8).ok_or_else(|| self.eof())?;
        let v = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(v == 1)
    }

    /// `n` bits (at most 32) as an unsigned integer.
    pub fn bits(&mut self, n: u32) -> Result<u32, Error> {
        debug_assert!(n <= 32);
        let mut v: u32 = 0;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), Error> {
        if self.bit + n > self.data.len() * 8 {
            return Err(self.eof());
        }
        self.bit += n;
        Ok(())
    }

    /// An unsigned Exp-Golomb code, `ue(v)`.
    pub fn ue(&mut self) -> Result<u32, Error> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(Error::bitstream(self.what, "Exp-Golomb code too long"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// A signed Exp-Golomb code, `se(v)`.
    pub fn se(&mut self) -> Result<i32, Error> {
        let k = self.ue()?;
        let mag = k.div_ceil(2) as i32;
        Ok(if k % 2 == 1 { mag } else { -mag })
    }

    /// `ue(v)` checked against an inclusive maximum.
    pub fn ue_max(&mut self, max: u32, field: &'static str) -> Result<u32, Error> {
        let v = self.ue()?;
        if v > max {
            return Err(Error::bitstream(
                self.what,
                format!("{field} = {v} exceeds {max}"),
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_mixed_start_codes_without_copying() {
        let buf = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0, 0,
        ]);
        let units: Vec<Bytes> = split_annex_b(&buf).collect();
        assert_eq!(
            units,
            vec![
                Bytes::from_static(&[0x67, 1, 2]),
                Bytes::from_static(&[0x68, 3]),
                Bytes::from_static(&[0x65, 4, 5]),
            ]
        );
        assert!(is_keyframe(Codec::H264, &buf));
    }

    #[test]
    fn garbage_without_start_code_has_no_units() {
        let buf = Bytes::from_static(&[1, 2, 3, 4, 5]);
        assert_eq!(split_annex_b(&buf).count(), 0);
        assert_eq!(split_annex_b(&Bytes::new()).count(), 0);
    }

    #[test]
    fn length_prefixed_round_trip() {
        let buf = Bytes::from_static(&[0, 0, 1, 0x41, 9, 9, 0, 0, 1, 0x41, 7]);
        let lp = annex_b_to_length_prefixed(&buf);
        assert_eq!(
            lp.as_ref(),
            &[0, 0, 0, 3, 0x41, 9, 9, 0, 0, 0, 2, 0x41, 7][..]
        );
    }

    #[test]
    fn unescapes_emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0]),
            vec![0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue: 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data, "test");
        let got: Vec<u32> = (0..5).map(|_| r.ue().unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        let mut r = BitReader::new(&data, "test");
        let got: Vec<i32> = (0..5).map(|_| r.se().unwrap()).collect();
        assert_eq!(got, vec![0, 1, -1, 2, -2]);
    }

    #[test]
    fn truncated_reads_error() {
        let mut r = BitReader::new(&[0], "test");
        assert!(r.ue().is_err());
    }
}

#[cfg(test)]
mod au_tests {
    use super::*;

    #[test]
    fn groups_nal_units_into_pictures() {
        // AUD SPS PPS IDR(first) IDR(second slice) | P(first) | AUD P(first)
        let stream = Bytes::from_static(&[
            0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1,
            0x65, 0x88, 0, 0, 0, 1, 0x65, 0x40, 0, 0, 0, 1, 0x41, 0x9a, 0, 0, 0, 1, 0x09, 0x30, 0,
            0, 0, 1, 0x41, 0x9b,
        ]);
        let aus = access_units(Codec::H264, &stream);
        let types: Vec<Vec<u8>> = aus
            .iter()
            .map(|au| split_annex_b(au).map(|u| u[0] & 0x1f).collect())
            .collect();
        assert_eq!(types, vec![vec![9, 7, 8, 5, 5], vec![1], vec![9, 1]]);
    }
}
