//! Reading back a recording file box by box: what recovery trusts.
//!
//! The scanner reads box headers and `moof` bodies, skips `mdat` payloads
//! by seeking, and stops at the first box that is truncated, malformed or
//! inconsistent. Everything before that point is a complete fragment. It
//! never allocates from a length field beyond what the file holds, and
//! never panics on any input (see the fuzz target in `fuzz/`).

use std::io::{self, Read, Seek, SeekFrom};

use bytes::Bytes;

use reallive_core::Codec;

use crate::fragment::FragmentEntry;

/// Largest `moov` or `moof` the scanner reads into memory.
const MAX_META_BOX: u64 = 16 << 20;

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFile {
    /// Bytes of the init segment (`ftyp` + `moov` and anything before the
    /// first `moof`).
    pub init_bytes: u64,
    /// Codec of the video sample entry, when recognised.
    pub codec: Option<Codec>,
    /// Width from the sample entry.
    pub width: u16,
    /// Height from the sample entry.
    pub height: u16,
    /// Complete fragments, in file order, with decode times relative to
    /// the first (as the index stores them).
    pub fragments: Vec<FragmentEntry>,
    /// `tfdt` of the first fragment: the file's timeline origin.
    pub base_decode_time_90k: u64,
    /// Length up to the end of the last complete fragment (or of the init
    /// segment): everything after it is a partial tail to truncate.
    pub valid_len: u64,
    /// The file's length.
    pub file_len: u64,
    /// The body of the sample entry's `avcC` or `hvcC` box: what a decoder
    /// needs to read the samples (empty when the entry has none).
    pub codec_config: Vec<u8>,
    /// Its tracks as an HLS `CODECS` value ([`crate::mp4::codecs`]).
    pub codecs: Option<String>,
}

/// Why a file is not a recording at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// It does not start with a complete `ftyp` + `moov`.
    #[error("no valid init segment: {0}")]
    NoInit(String),
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

struct Header {
    fourcc: [u8; 4],
    header_len: u64,
    size: u64,
}

/// Reads the box header at `pos`, or `None` if it is truncated or malformed.
fn header<R: Read + Seek>(r: &mut R, pos: u64, len: u64) -> io::Result<Option<Header>> {
    if pos + 8 > len {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let fourcc = [h[4], h[5], h[6], h[7]];
    let (size, header_len) = match size32 {
        0 => (len - pos, 8),
        1 => {
            if pos + 16 > len {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            (u64::from_be_bytes(b), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < header_len || pos.checked_add(size).is_none_or(|end| end > len) {
        return Ok(None);
    }
    Ok(Some(Header {
        fourcc,
        header_len,
        size,
    }))
}

fn read_body<R: Read + Seek>(r: &mut R, pos: u64, h: &Header) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(pos + h.header_len))?;
    let mut body = vec![0u8; (h.size - h.header_len) as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Scans a recording from the start of `r`.
pub fn scan<R: Read + Seek>(r: &mut R) -> Result<ScannedFile, ScanError> {
    let len = r.seek(SeekFrom::End(0))?;
    let ftyp = header(r, 0, len)?
        .filter(|h| &h.fourcc == b"ftyp" && h.size <= 4096)
        .ok_or_else(|| ScanError::NoInit("missing ftyp".into()))?;
    let moov_pos = ftyp.size;
    let moov = header(r, moov_pos, len)?
        .filter(|h| &h.fourcc == b"moov" && h.size <= MAX_META_BOX)
        .ok_or_else(|| ScanError::NoInit("missing or truncated moov".into()))?;
    let moov_body = read_body(r, moov_pos, &moov)?;
    let (codec, width, height, codec_config) = sample_entry(&moov_body)
        .ok_or_else(|| ScanError::NoInit("moov has no video sample entry".into()))?;
    let mut out = ScannedFile {
        init_bytes: moov_pos + moov.size,
        codec,
        width,
        height,
        fragments: Vec::new(),
        base_decode_time_90k: 0,
        valid_len: moov_pos + moov.size,
        file_len: len,
        codec_config,
        codecs: crate::mp4::moov_codecs(&moov_body),
    };
    let mut pos = out.valid_len;
    while let Some(h) = header(r, pos, len)? {
        match &h.fourcc {
            b"moof" if h.size <= MAX_META_BOX => {
                let body = read_body(r, pos, &h)?;
                let mdat_pos = pos + h.size;
                let Some(mdat) = header(r, mdat_pos, len)?.filter(|m| &m.fourcc == b"mdat") else {
                    break;
                };
                let Some(m) = parse_moof(&body, None, mdat.size - mdat.header_len) else {
                    break;
                };
                // The samples must fill this moof's mdat exactly, as the
                // writer lays them out; anything else is damage.
                let data_start = m.data_offset.unwrap_or(h.size + mdat.header_len);
                let pair = h.size + mdat.size;
                if data_start != h.size + mdat.header_len
                    || data_start.checked_add(m.bytes) != Some(pair)
                {
                    break;
                }
                let (Ok(size), Ok(duration)) = (u32::try_from(pair), u32::try_from(m.duration))
                else {
                    break;
                };
                if out.fragments.is_empty() {
                    out.base_decode_time_90k = m.decode_time;
                }
                // A fragment before the file's origin cannot be ours.
                let Some(decode_time) = m.decode_time.checked_sub(out.base_decode_time_90k) else {
                    break;
                };
                out.fragments.push(FragmentEntry {
                    decode_time_90k: decode_time,
                    duration_90k: duration,
                    offset: pos,
                    size,
                    frames: m.samples,
                    keyframe: m.first_sync,
                });
                pos = mdat_pos + mdat.size;
                out.valid_len = pos;
            }
            // Padding or metadata between fragments: skip when complete.
            b"free" | b"skip" | b"sidx" | b"styp" | b"prft" | b"emsg" => {
                pos += h.size;
                if out.fragments.is_empty() {
                    out.init_bytes = pos;
                }
                out.valid_len = pos;
            }
            _ => break,
        }
    }
    Ok(out)
}

/// Iterates over the child boxes of `data`: (fourcc, body).
fn children(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let h = data.get(pos..pos + 8)?;
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let fourcc = [h[4], h[5], h[6], h[7]];
        if size < 8 {
            return None;
        }
        let body = data.get(pos + 8..pos.checked_add(size)?)?;
        pos += size;
        Some((fourcc, body))
    })
}

fn child<'a>(data: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    children(data).find(|(f, _)| f == fourcc).map(|(_, b)| b)
}

fn be_u32(d: &[u8], at: usize) -> Option<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be_u64(d: &[u8], at: usize) -> Option<u64> {
    let b = d.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_be_bytes(a))
}

/// Codec, width, height and codec configuration (`avcC`/`hvcC` body) of
/// the first video sample entry in `moov`.
fn sample_entry(moov: &[u8]) -> Option<(Option<Codec>, u16, u16, Vec<u8>)> {
    let trak = child(moov, b"trak")?;
    let stbl = child(child(child(trak, b"mdia")?, b"minf")?, b"stbl")?;
    let stsd = child(stbl, b"stsd")?;
    // full box header (4) + entry_count (4), then the first entry.
    let (fourcc, entry) = children(stsd.get(8..)?).next()?;
    let codec = match &fourcc {
        b"avc1" | b"avc3" => Some(Codec::H264),
        b"hvc1" | b"hev1" => Some(Codec::H265),
        _ => None,
    };
    let w = u16::from_be_bytes([*entry.get(24)?, *entry.get(25)?]);
    let h = u16::from_be_bytes([*entry.get(26)?, *entry.get(27)?]);
    // A visual sample entry's fixed fields are 78 bytes; boxes follow.
    let config = entry
        .get(78..)
        .and_then(|boxes| {
            children(boxes)
                .find(|(f, _)| f == b"avcC" || f == b"hvcC")
                .map(|(_, body)| body.to_vec())
        })
        .unwrap_or_default();
    Some((codec, w, h, config))
}

struct Moof {
    decode_time: u64,
    duration: u64,
    bytes: u64,
    samples: u32,
    first_sync: bool,
    /// Where sample data starts, relative to the moof (default-base-is-moof).
    data_offset: Option<u64>,
}

const NON_SYNC: u32 = 0x0001_0000;

/// One sample's entry in a `trun`.
#[derive(Clone, Copy, Debug)]
struct TrunSample {
    duration: u32,
    size: u32,
    flags: u32,
    composition_offset: i32,
}

/// Parses a `moof` body whose `mdat` holds `mdat_bytes` of samples: the
/// video's `traf` (the first), whose samples `samples` gets, and the audio
/// `traf`s after it, whose samples must follow the video's in the `mdat`,
/// each track's right after the one before, as the writer lays them out.
/// The times, counts and flags are the video's; `bytes` counts every track.
fn parse_moof(moof: &[u8], samples: Option<&mut Vec<TrunSample>>, mdat_bytes: u64) -> Option<Moof> {
    let mut trafs = children(moof).filter(|(f, _)| f == b"traf").map(|(_, b)| b);
    let mut m = parse_traf(trafs.next()?, samples, mdat_bytes)?;
    for traf in trafs {
        let t = parse_traf(traf, None, mdat_bytes)?;
        let prev_end = m.data_offset?.checked_add(m.bytes)?;
        if t.data_offset != Some(prev_end) {
            return None;
        }
        m.bytes = m.bytes.checked_add(t.bytes)?;
    }
    Some(m)
}

/// Parses one `traf` of a `moof` whose `mdat` holds `mdat_bytes`.
fn parse_traf(
    traf: &[u8],
    mut samples: Option<&mut Vec<TrunSample>>,
    mdat_bytes: u64,
) -> Option<Moof> {
    let tfhd = child(traf, b"tfhd")?;
    let tf_flags = be_u32(tfhd, 0)? & 0x00ff_ffff;
    // Only moof-relative offsets: an absolute base-data-offset is not ours.
    if tf_flags & 0x01 != 0 {
        return None;
    }
    let mut at = 8; // version/flags + track_ID
    if tf_flags & 0x02 != 0 {
        at += 4;
    }
    let mut default_duration = None;
    let mut default_size = None;
    let mut default_flags = None;
    if tf_flags & 0x08 != 0 {
        default_duration = Some(be_u32(tfhd, at)?);
        at += 4;
    }
    if tf_flags & 0x10 != 0 {
        default_size = Some(be_u32(tfhd, at)?);
        at += 4;
    }
    if tf_flags & 0x20 != 0 {
        default_flags = Some(be_u32(tfhd, at)?);
    }
    let tfdt = child(traf, b"tfdt")?;
    let decode_time = match tfdt.first()? {
        1 => be_u64(tfdt, 4)?,
        0 => u64::from(be_u32(tfdt, 4)?),
        _ => return None,
    };
    let mut m = Moof {
        decode_time,
        duration: 0,
        bytes: 0,
        samples: 0,
        first_sync: false,
        data_offset: None,
    };
    for (fourcc, trun) in children(traf) {
        if &fourcc != b"trun" {
            continue;
        }
        let flags = be_u32(trun, 0)? & 0x00ff_ffff;
        let count = be_u32(trun, 4)?;
        let mut at = 8;
        if flags & 0x001 != 0 {
            let off = i64::from(be_u32(trun, at)? as i32);
            if m.data_offset.is_none() {
                m.data_offset = Some(u64::try_from(off).ok()?);
            }
            at += 4;
        }
        let mut first_flags = None;
        if flags & 0x004 != 0 {
            first_flags = Some(be_u32(trun, at)?);
            at += 4;
        }
        let per_sample = [0x100, 0x200, 0x400, 0x800]
            .iter()
            .filter(|f| flags & **f != 0)
            .count()
            * 4;
        // A count the box cannot hold is corrupt; checked before looping.
        if (count as usize).checked_mul(per_sample)? > trun.len().saturating_sub(at) {
            return None;
        }
        // Nor can more samples than the mdat has bytes: a trun of default
        // sizes names its count in 4 bytes, and 2^32 empty samples would
        // loop for seconds (and fill memory in `read_fragment`).
        if u64::from(m.samples) + u64::from(count) > mdat_bytes {
            return None;
        }
        for i in 0..count {
            let duration = if flags & 0x100 != 0 {
                let v = be_u32(trun, at)?;
                at += 4;
                v
            } else {
                default_duration?
            };
            let size = if flags & 0x200 != 0 {
                let v = be_u32(trun, at)?;
                at += 4;
                v
            } else {
                default_size?
            };
            let sample_flags = if flags & 0x400 != 0 {
                let v = be_u32(trun, at)?;
                at += 4;
                Some(v)
            } else {
                default_flags
            };
            let mut composition_offset = 0;
            if flags & 0x800 != 0 {
                composition_offset = be_u32(trun, at)? as i32;
                at += 4;
            }
            let f = if i == 0 {
                first_flags.or(sample_flags)
            } else {
                sample_flags
            }
            .unwrap_or(NON_SYNC);
            if m.samples == 0 && i == 0 {
                m.first_sync = f & NON_SYNC == 0;
            }
            if let Some(list) = samples.as_deref_mut() {
                list.push(TrunSample {
                    duration,
                    size,
                    flags: f,
                    composition_offset,
                });
            }
            m.duration += u64::from(duration);
            m.bytes += u64::from(size);
        }
        m.samples = m.samples.checked_add(count)?;
    }
    (m.samples > 0).then_some(m)
}

/// One sample read back from a fragment ([`read_fragment`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentSample {
    /// The access unit as stored: NAL units with 4-byte length prefixes.
    pub data: Bytes,
    /// Until the next sample's decode time, 90 kHz.
    pub duration_90k: u32,
    /// `pts - dts`, 90 kHz.
    pub composition_offset_90k: i32,
    /// A sync sample.
    pub keyframe: bool,
}

/// One fragment read back ([`read_fragment`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFragment {
    /// Its `tfdt`: the decode time of its first sample on the file's
    /// timeline (not relative to the first fragment).
    pub base_decode_time_90k: u64,
    /// Its samples in decode order.
    pub samples: Vec<FragmentSample>,
}

/// Reads the samples of one `moof` + `mdat` pair, as [`scan`] found it
/// (`FragmentEntry::offset` and `size`). `None` when the bytes are not a
/// complete fragment laid out as this crate writes them.
pub fn read_fragment(pair: &Bytes) -> Option<ReadFragment> {
    let moof_size = be_u32(pair, 0)? as usize;
    if pair.get(4..8)? != b"moof" || moof_size < 8 {
        return None;
    }
    let moof = pair.get(8..moof_size)?;
    let mdat_size = be_u32(pair, moof_size)? as usize;
    if pair.get(moof_size + 4..moof_size + 8)? != b"mdat"
        || moof_size.checked_add(mdat_size)? != pair.len()
        || mdat_size < 8
    {
        return None;
    }
    let mut trun = Vec::new();
    let m = parse_moof(moof, Some(&mut trun), (mdat_size - 8) as u64)?;
    let mut at = usize::try_from(m.data_offset.unwrap_or(moof_size as u64 + 8)).ok()?;
    let mut samples = Vec::with_capacity(trun.len());
    for t in trun {
        let end = at.checked_add(t.size as usize)?;
        if end > pair.len() {
            return None;
        }
        samples.push(FragmentSample {
            data: pair.slice(at..end),
            duration_90k: t.duration,
            composition_offset_90k: t.composition_offset,
            keyframe: t.flags & NON_SYNC == 0,
        });
        at = end;
    }
    Some(ReadFragment {
        base_decode_time_90k: m.decode_time,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::Fmp4Muxer;
    use reallive_core::Codec;
    use std::io::Cursor;

    fn file() -> (Vec<u8>, Vec<FragmentEntry>) {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/ball-160x120-30f.h264");
        let frames = reallive_test_support::clip::annex_b_frames(&path, Codec::H264, 0, 3000);
        let mut m = Fmp4Muxer::new(9000);
        let mut out = Vec::new();
        let mut expected = Vec::new();
        let mut push = |out: &mut Vec<u8>, f: crate::mp4::MuxedFragment| {
            expected.push(FragmentEntry {
                decode_time_90k: f.decode_time_90k,
                duration_90k: f.duration_90k as u32,
                offset: out.len() as u64,
                size: f.data.len() as u32,
                frames: f.frames,
                keyframe: f.keyframe,
            });
            out.extend_from_slice(&f.data);
        };
        for f in frames {
            let o = m.push(f).unwrap();
            out.extend(o.init.iter().flatten());
            if let Some(f) = o.fragment {
                push(&mut out, f);
            }
        }
        if let Some(f) = m.finish(None) {
            push(&mut out, f);
        }
        (out, expected)
    }

    #[test]
    fn scans_what_the_muxer_wrote() {
        let (data, expected) = file();
        let s = scan(&mut Cursor::new(&data)).unwrap();
        assert_eq!(s.fragments, expected);
        assert_eq!((s.codec, s.width, s.height), (Some(Codec::H264), 160, 120));
        assert_eq!(s.valid_len, data.len() as u64);
        assert_eq!(s.fragments[0].offset, s.init_bytes);
    }

    #[test]
    fn every_truncation_keeps_exactly_the_complete_fragments() {
        let (data, expected) = file();
        for cut in 0..data.len() {
            match scan(&mut Cursor::new(&data[..cut])) {
                Ok(s) => {
                    let complete = expected.iter().filter(|f| f.end() <= cut as u64).count();
                    assert_eq!(s.fragments, expected[..complete], "cut at {cut}");
                    assert!(s.valid_len <= cut as u64);
                }
                Err(ScanError::NoInit(_)) => {
                    assert!(cut < expected[0].offset as usize, "cut at {cut}")
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// A `moof` + `mdat` whose one trun has `count` samples of the
    /// tfhd's default duration (3000) and size, `payload` bytes of mdat.
    fn default_sized_pair(count: u32, size: u32, payload: usize) -> Vec<u8> {
        fn mp4_box(fourcc: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            b.extend_from_slice(fourcc);
            b.extend_from_slice(body);
            b
        }
        let mut tfhd = vec![0, 0, 0, 0x18, 0, 0, 0, 1];
        tfhd.extend_from_slice(&3000u32.to_be_bytes());
        tfhd.extend_from_slice(&size.to_be_bytes());
        let mut trun = vec![0u8; 4];
        trun.extend_from_slice(&count.to_be_bytes());
        let traf = [
            mp4_box(b"tfhd", &tfhd),
            mp4_box(b"tfdt", &[0; 8]),
            mp4_box(b"trun", &trun),
        ]
        .concat();
        let moof = [
            mp4_box(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]),
            mp4_box(b"traf", &traf),
        ]
        .concat();
        [mp4_box(b"moof", &moof), mp4_box(b"mdat", &vec![0; payload])].concat()
    }

    /// Found with `fuzz/fuzz_targets/fmp4_scan.rs`: a trun of default-sized
    /// samples whose count (2^32 - 1) its box does not bound looped for
    /// seconds per fragment (over libFuzzer's timeout), and `read_fragment`
    /// would have allocated for every sample.
    #[test]
    fn fuzz_trun_count_beyond_the_mdat_is_refused() {
        let (data, expected) = file();
        let init = &data[..expected[0].offset as usize];
        let bad = default_sized_pair(u32::MAX, 0, 0);
        let file = [init, &bad].concat();
        let started = std::time::Instant::now();
        let s = scan(&mut Cursor::new(&file)).unwrap();
        assert!(s.fragments.is_empty());
        assert_eq!(s.valid_len, init.len() as u64);
        assert!(read_fragment(&Bytes::from(bad)).is_none());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Default-sized samples that fit their mdat still read.
        let good = default_sized_pair(3, 4, 12);
        let s = scan(&mut Cursor::new([init, &good].concat())).unwrap();
        assert_eq!((s.fragments.len(), s.fragments[0].frames), (1, 3));
        let f = read_fragment(&Bytes::from(good)).unwrap();
        assert_eq!(f.samples.len(), 3);
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let (data, expected) = file();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut d = data.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % d.len();
                d[i] = (seed >> 32) as u8;
            }
            if let Ok(s) = scan(&mut Cursor::new(&d)) {
                assert!(s.valid_len <= d.len() as u64);
                assert!(s.fragments.len() <= expected.len() + 1);
            }
        }
    }
}
