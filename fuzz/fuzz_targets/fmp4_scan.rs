//! Recording files as recovery, export and playback read them back: the
//! fMP4 box scanner (`scan::scan`), the fragment reader
//! (`scan::read_fragment`) and the `moof` rewriters
//! (`mp4::rewrite_moof`, `mp4::shift_decode_times`), on arbitrary bytes.
//!
//! Invariants:
//! - `scan` never claims more than the input holds: its fragments lie in
//!   order after the init segment, inside `valid_len`, inside the file;
//! - every fragment `scan` accepts with 32-bit box sizes reads back with
//!   `read_fragment` to the same sample count, duration, keyframe flag and
//!   bytes;
//! - the rewriters change nothing when they refuse, change only the
//!   `tfdt` and `mfhd` fields they own when they accept, and undo exactly.
#![no_main]

use std::io::Cursor;
use std::ops::Range;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use reallive_store::mp4::{rewrite_moof, shift_decode_times};
use reallive_store::scan::{read_fragment, scan};

fn be_u32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The body of the first child box `fourcc` among the boxes of
/// `data[range]`, as an absolute range: an independent reading of
/// ISO/IEC 14496-12 box headers (32-bit sizes only).
fn child(data: &[u8], range: Range<usize>, fourcc: &[u8; 4]) -> Option<Range<usize>> {
    let mut pos = range.start;
    while pos + 8 <= range.end {
        let size = be_u32(data, pos)? as usize;
        if size < 8 || pos + size > range.end {
            return None;
        }
        if &data[pos + 4..pos + 8] == fourcc {
            return Some(pos + 8..pos + size);
        }
        pos += size;
    }
    None
}

/// Where a `moof` at the start of `data` keeps its sequence number and its
/// `tfdt`: the only bytes a rewrite may touch.
fn owned_fields(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let Some(size) = be_u32(data, 0).map(|s| s as usize) else {
        return out;
    };
    if size < 8 || size > data.len() || data.get(4..8) != Some(b"moof") {
        return out;
    }
    let body = 8..size;
    if let Some(mfhd) = child(data, body.clone(), b"mfhd") {
        out.push(mfhd.start + 4..(mfhd.start + 8).min(mfhd.end));
    }
    if let Some(traf) = child(data, body, b"traf")
        && let Some(tfdt) = child(data, traf, b"tfdt")
    {
        out.push(tfdt.start + 4..tfdt.end);
    }
    out
}

fn changed_only_in(before: &[u8], after: &[u8], allowed: &[Range<usize>]) {
    assert_eq!(before.len(), after.len());
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        if a != b {
            assert!(
                allowed.iter().any(|r| r.contains(&i)),
                "byte {i} changed outside the moof's own fields {allowed:?}"
            );
        }
    }
}

/// The rewriters on `data` taken as one `moof` (and what follows it).
fn rewrite(data: &[u8], sequence: u32) {
    let allowed = owned_fields(data);

    let mut same = data.to_vec();
    let ok = rewrite_moof(&mut same, None, |t| t);
    assert_eq!(same, data, "an identity rewrite changed bytes (ok: {ok})");

    let mut once = data.to_vec();
    let ok = rewrite_moof(&mut once, Some(sequence), |t| t ^ 0x5a5a);
    if !ok {
        assert_eq!(once, data, "a refused rewrite changed bytes");
        return;
    }
    changed_only_in(data, &once, &allowed);
    // XOR is its own inverse, and the sequence number is already set.
    let mut twice = once.clone();
    assert!(rewrite_moof(&mut twice, Some(sequence), |t| t ^ 0x5a5a));
    let mut expected = data.to_vec();
    assert!(rewrite_moof(&mut expected, Some(sequence), |t| t));
    assert_eq!(twice, expected, "a rewrite did not undo");
}

fn shift(data: &[u8]) {
    let mut same = data.to_vec();
    shift_decode_times(&mut same, 0);
    assert_eq!(same, data, "a zero shift changed bytes");
    let mut shifted = data.to_vec();
    let n = shift_decode_times(&mut shifted, 90_000);
    assert!(n <= data.len() / 8, "{n} moofs in {} bytes", data.len());
}

fuzz_target!(|data: &[u8]| {
    let sequence = data.len() as u32;
    rewrite(data, sequence);
    shift(data);
    let Ok(s) = scan(&mut Cursor::new(data)) else {
        return;
    };
    let len = data.len() as u64;
    assert_eq!(s.file_len, len);
    assert!(s.valid_len <= len);
    assert!(s.init_bytes <= s.valid_len);
    let mut at = s.init_bytes;
    for (i, f) in s.fragments.iter().enumerate() {
        assert!(f.offset >= at, "fragment {i} overlaps what precedes it");
        assert!(f.end() <= s.valid_len, "fragment {i} ends past valid_len");
        assert!(f.frames > 0, "fragment {i} has no samples");
        at = f.end();
        if i == 0 {
            assert_eq!(f.decode_time_90k, 0);
        }
        let pair = &data[f.offset as usize..f.end() as usize];
        rewrite(pair, i as u32);
        let compact = |at: usize| be_u32(pair, at).is_some_and(|n| n >= 8);
        let moof_size = be_u32(pair, 0).unwrap_or(0) as usize;
        let read = read_fragment(&Bytes::copy_from_slice(pair));
        if compact(0) && compact(moof_size) {
            let r = read.unwrap_or_else(|| panic!("fragment {i} scanned but does not read"));
            assert_eq!(r.samples.len(), f.frames as usize);
            assert_eq!(
                r.base_decode_time_90k,
                s.base_decode_time_90k + f.decode_time_90k
            );
            let duration: u64 = r.samples.iter().map(|x| u64::from(x.duration_90k)).sum();
            assert_eq!(duration, u64::from(f.duration_90k));
            assert_eq!(r.samples[0].keyframe, f.keyframe);
            let bytes: usize = r.samples.iter().map(|x| x.data.len()).sum();
            assert_eq!(moof_size + 8 + bytes, pair.len());
        }
    }
    assert!(at <= s.valid_len);
    shift(&data[s.init_bytes as usize..]);
});
