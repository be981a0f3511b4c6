use std::fmt;
use std::sync::Arc;

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::{Error, h264, h265, nal};

/// A video codec RealLive knows about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC: captured, encoded, relayed, recorded and played in browsers.
    H264,
    /// H.265 / HEVC: recognised and recorded (from IP cameras), but browsers
    /// cannot be relied on to decode it over WebRTC.
    H265,
}

impl Codec {
    /// Short lowercase name: `h264` or `h265`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
        }
    }

    /// Whether browsers can be expected to play this codec.
    pub fn browser_playable(self) -> bool {
        matches!(self, Codec::H264)
    }

    /// The NAL header length in bytes.
    pub fn nal_header_len(self) -> usize {
        match self {
            Codec::H264 => 1,
            Codec::H265 => 2,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The out-of-band parameter sets an access unit depends on, each NAL unit
/// without its start code.
///
/// Frames share one `Arc<CodecParameters>` until the stream changes its
/// parameters, so comparing with [`Arc::ptr_eq`] or `==` detects a change.
#[derive(Clone, PartialEq, Eq)]
pub struct CodecParameters {
    /// The codec these parameters belong to.
    pub codec: Codec,
    /// Video parameter sets (H.265 only).
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets.
    pub pps: Vec<Bytes>,
}

impl fmt::Debug for CodecParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lens = |v: &[Bytes]| v.iter().map(Bytes::len).collect::<Vec<_>>();
        f.debug_struct("CodecParameters")
            .field("codec", &self.codec)
            .field("vps_len", &lens(&self.vps))
            .field("sps_len", &lens(&self.sps))
            .field("pps_len", &lens(&self.pps))
            .finish()
    }
}

impl CodecParameters {
    /// Empty parameters for `codec`; [`is_complete`](Self::is_complete) is false.
    pub fn new(codec: Codec) -> Self {
        CodecParameters {
            codec,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
        }
    }

    /// Collects the distinct parameter sets found in an Annex-B access unit.
    ///
    /// RTSP cameras often repeat them: the payloader resends the SDP's copy
    /// and the encoder its own, so identical copies are kept once. Returns
    /// `None` when the access unit carries none.
    pub fn from_annex_b(codec: Codec, au: &Bytes) -> Option<Self> {
        let mut p = CodecParameters::new(codec);
        for unit in nal::split_annex_b(au) {
            let Some(ty) = nal::nal_type(codec, &unit) else {
                continue;
            };
            let list = match (codec, ty) {
                (Codec::H264, h264::NAL_SPS) | (Codec::H265, h265::NAL_SPS) => &mut p.sps,
                (Codec::H264, h264::NAL_PPS) | (Codec::H265, h265::NAL_PPS) => &mut p.pps,
                (Codec::H265, h265::NAL_VPS) => &mut p.vps,
                _ => continue,
            };
            if !list.contains(&unit) {
                list.push(unit);
            }
        }
        (!p.sps.is_empty() || !p.pps.is_empty() || !p.vps.is_empty()).then_some(p)
    }

    /// Whether every parameter set a decoder needs is present.
    pub fn is_complete(&self) -> bool {
        let base = !self.sps.is_empty() && !self.pps.is_empty();
        match self.codec {
            Codec::H264 => base,
            Codec::H265 => base && !self.vps.is_empty(),
        }
    }

    /// Parses the first SPS into a [`StreamInfo`].
    pub fn stream_info(&self) -> Result<StreamInfo, Error> {
        let sps = self
            .sps
            .first()
            .ok_or_else(|| Error::bitstream("parameter sets", "no SPS"))?;
        match self.codec {
            Codec::H264 => h264::Sps::parse(sps).map(|s| s.stream_info()),
            Codec::H265 => h265::Sps::parse(sps).map(|s| s.stream_info()),
        }
    }

    /// The Annex-B access unit `au` with these parameter sets in band
    /// (VPS, SPS, then PPS, after a leading access unit delimiter), for a
    /// keyframe that came without them, so that a decoder can start at it.
    /// `au` as it is when it already carries every set a decoder needs.
    pub fn put_in_band(&self, au: &Bytes) -> Bytes {
        if CodecParameters::from_annex_b(self.codec, au).is_some_and(|p| p.is_complete()) {
            return au.clone();
        }
        let aud = match self.codec {
            Codec::H264 => h264::NAL_AUD,
            Codec::H265 => h265::NAL_AUD,
        };
        // Split after the delimiter, if the access unit opens with one.
        let split = nal::annex_b_ranges(au)
            .next()
            .filter(|r| nal::nal_type(self.codec, &au[r.clone()]) == Some(aud))
            .map_or(0, |r| r.end);
        let sets = self.vps.iter().chain(&self.sps).chain(&self.pps);
        let len = au.len() + sets.clone().map(|u| u.len() + 4).sum::<usize>();
        let mut out = BytesMut::with_capacity(len);
        out.put_slice(&au[..split]);
        for unit in sets {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(unit);
        }
        out.put_slice(&au[split..]);
        out.freeze()
    }
}

/// One encoded access unit: everything needed to decode one picture.
///
/// `data` is Annex-B (start-code delimited NAL units). Keyframes produced by
/// RealLive's capture pipelines carry their SPS/PPS in band as well, so a
/// decoder can join at any keyframe; `params` holds the same parameter sets
/// out of band for muxers (avcC/hvcC) and SDP.
#[derive(Clone)]
pub struct EncodedFrame {
    /// The access unit, Annex-B.
    pub data: Bytes,
    /// Presentation time, 90 kHz ticks on the source's running clock.
    pub pts_90k: i64,
    /// Decode time, 90 kHz. Equal to `pts_90k` for streams without B-frames.
    pub dts_90k: i64,
    /// How long this frame is shown, 90 kHz, when the source knows.
    pub duration_90k: Option<u32>,
    /// An IDR (H.264) or IRAP (H.265) picture: decoding can start here.
    pub keyframe: bool,
    /// The parameter sets this frame depends on.
    pub params: Arc<CodecParameters>,
}

impl EncodedFrame {
    /// The codec of this frame.
    pub fn codec(&self) -> Codec {
        self.params.codec
    }
}

impl fmt::Debug for EncodedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedFrame")
            .field("codec", &self.params.codec)
            .field("len", &self.data.len())
            .field("pts_90k", &self.pts_90k)
            .field("dts_90k", &self.dts_90k)
            .field("keyframe", &self.keyframe)
            .finish()
    }
}

/// A frame rate as a fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fps {
    /// Frames...
    pub num: u32,
    /// ...per this many seconds.
    pub den: u32,
}

impl Fps {
    /// Frames per second as a float.
    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }

    /// The duration of one frame in 90 kHz ticks, rounded.
    pub fn frame_duration_90k(self) -> Option<u32> {
        if self.num == 0 {
            return None;
        }
        let d = (90_000u64 * u64::from(self.den) + u64::from(self.num) / 2) / u64::from(self.num);
        u32::try_from(d).ok()
    }
}

impl fmt::Display for Fps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{:.3}", self.as_f64())
        }
    }
}

/// What a stream is, as read from its parameter sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The codec.
    pub codec: Codec,
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
    /// Frame rate from the VUI timing info, when the encoder wrote it.
    pub fps: Option<Fps>,
    /// `profile_idc` (H.264) or `general_profile_idc` (H.265).
    pub profile_idc: u8,
    /// H.264 `constraint_set0..5` flags as one byte (as in avcC); 0 for H.265.
    pub constraint_flags: u8,
    /// `level_idc`: H.264 level × 10, H.265 level × 30.
    pub level_idc: u8,
    /// Whether the stream may reorder frames (B-frames): the SPS says
    /// `max_num_reorder_frames > 0`, or does not say and the profile allows it.
    pub may_reorder: bool,
}

impl StreamInfo {
    /// Human-readable profile name, as ffprobe prints it.
    pub fn profile_name(&self) -> &'static str {
        match self.codec {
            Codec::H264 => h264::profile_name(self.profile_idc, self.constraint_flags),
            Codec::H265 => h265::profile_name(self.profile_idc),
        }
    }

    /// Level as a decimal string, e.g. "3.1".
    pub fn level(&self) -> String {
        match self.codec {
            Codec::H264 => format!("{}.{}", self.level_idc / 10, self.level_idc % 10),
            Codec::H265 => {
                let tenths = u32::from(self.level_idc) * 10 / 30;
                format!("{}.{}", tenths / 10, tenths % 10)
            }
        }
    }

    /// The RFC 6184 `profile-level-id` (H.264 only), e.g. `42e01f`.
    pub fn profile_level_id(&self) -> Option<String> {
        (self.codec == Codec::H264).then(|| {
            format!(
                "{:02x}{:02x}{:02x}",
                self.profile_idc, self.constraint_flags, self.level_idc
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_sets_are_kept_once() {
        let au = Bytes::from_static(&[
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x09, 0x10, 0,
            0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
        ]);
        let p = CodecParameters::from_annex_b(Codec::H264, &au).unwrap();
        assert_eq!((p.sps.len(), p.pps.len()), (1, 1));
        assert!(p.is_complete());
    }

    /// An H.265 CRA keyframe as retina hands it (parameter sets stripped),
    /// with and without an access unit delimiter, gets the sets in band;
    /// one that has them already is left alone.
    #[test]
    fn a_keyframe_gets_its_parameter_sets_in_band() {
        let vps = [0x40, 0x01, 0x0c];
        let sps = [0x42, 0x01, 0x01];
        let pps = [0x44, 0x01, 0xc1];
        let aud = [0x46, 0x01, 0x50];
        let cra = [0x2a, 0x01, 0xaf, 0x80];
        let params = CodecParameters {
            codec: Codec::H265,
            vps: vec![Bytes::copy_from_slice(&vps)],
            sps: vec![Bytes::copy_from_slice(&sps)],
            pps: vec![Bytes::copy_from_slice(&pps)],
        };
        let annex_b = |units: &[&[u8]]| {
            let mut out = Vec::new();
            for u in units {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(u);
            }
            Bytes::from(out)
        };
        // (the access unit's NAL units, those wanted out)
        type Units<'a> = &'a [&'a [u8]];
        let cases: [(Units<'_>, Units<'_>); 3] = [
            (&[&cra], &[&vps, &sps, &pps, &cra]),
            (&[&aud, &cra], &[&aud, &vps, &sps, &pps, &cra]),
            (&[&vps, &sps, &pps, &cra], &[&vps, &sps, &pps, &cra]),
        ];
        for (au, want) in cases {
            let got = params.put_in_band(&annex_b(au));
            assert_eq!(got, annex_b(want), "{au:x?}");
            assert!(nal::is_keyframe(Codec::H265, &got));
        }
    }

    #[test]
    fn fps_frame_duration_rounds() {
        assert_eq!(Fps { num: 30, den: 1 }.frame_duration_90k(), Some(3000));
        assert_eq!(
            Fps {
                num: 30000,
                den: 1001
            }
            .frame_duration_90k(),
            Some(3003)
        );
        assert_eq!(Fps { num: 0, den: 1 }.frame_duration_90k(), None);
    }
}
