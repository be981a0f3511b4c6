//! HLS playlists over recordings: VOD for any time range, and live.
//!
//! Segments are fragments addressed by `EXT-X-BYTERANGE` inside each file;
//! each file contributes an `EXT-X-MAP` for its init segment. Every file's
//! media timeline starts at zero, so files are separated by
//! `EXT-X-DISCONTINUITY`, and `EXT-X-PROGRAM-DATE-TIME` puts each one on the
//! wall clock (a gap shows as the jump between two of them).
//!
//! Rendering is pure and allocation-light: a 24 h playlist (86,400
//! segments) is one `String` built with `fmt::Write`.

use std::fmt::Write;

use crate::fragment::FragmentEntry;
use crate::model::{Recording, TimeRange, rfc3339_ms};

fn secs(ticks: u32) -> f64 {
    f64::from(ticks) / 90_000.0
}

/// The fragments of `rec` that overlap `range`, extended back to the
/// nearest keyframe fragment so playback can start decoding.
pub(crate) fn selected(rec: &Recording, range: TimeRange) -> &[FragmentEntry] {
    let f = &rec.fragments;
    let overlaps = |e: &FragmentEntry| {
        let s = rec.fragment_start_utc_ns(e);
        range.overlaps(s, s + crate::model::ticks_to_ns(i64::from(e.duration_90k)))
    };
    let Some(first) = f.iter().position(overlaps) else {
        return &[];
    };
    let last = f.iter().rposition(overlaps).unwrap_or(first);
    let first = f[..=first]
        .iter()
        .rposition(|e| e.keyframe)
        .unwrap_or(first);
    &f[first..=last]
}

fn header(out: &mut String, target: u32, media_sequence: Option<i64>, vod: bool) {
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    if let Some(seq) = media_sequence {
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{seq}");
    }
    if vod {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
}

fn write_file(
    out: &mut String,
    rec: &Recording,
    frags: &[FragmentEntry],
    uri_prefix: &str,
    first: bool,
) {
    if !first {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    let uri_len = uri_prefix.len() + rec.path.len();
    let mut uri = String::with_capacity(uri_len);
    uri.push_str(uri_prefix);
    uri.push_str(&rec.path);
    let _ = writeln!(
        out,
        "#EXT-X-MAP:URI=\"{uri}\",BYTERANGE=\"{}@0\"",
        rec.init_bytes
    );
    if let Some(f) = frags.first() {
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            rfc3339_ms(rec.fragment_start_utc_ns(f))
        );
    }
    for f in frags {
        let _ = write!(
            out,
            "#EXTINF:{:.5},\n#EXT-X-BYTERANGE:{}@{}\n{uri}\n",
            secs(f.duration_90k),
            f.size,
            f.offset
        );
    }
}

/// A VOD playlist for `range` over `recordings` (oldest first, one camera).
/// Segment URIs are `uri_prefix` + the recording's path.
pub fn vod_playlist(recordings: &[Recording], range: TimeRange, uri_prefix: &str) -> String {
    let picks: Vec<(&Recording, &[FragmentEntry])> = recordings
        .iter()
        .map(|r| (r, selected(r, range)))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let segments: usize = picks.iter().map(|(_, f)| f.len()).sum();
    let target = picks
        .iter()
        .flat_map(|(_, f)| f.iter())
        .map(|f| secs(f.duration_90k).ceil() as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::with_capacity(128 + segments * 72 + picks.len() * 200);
    header(&mut out, target, None, true);
    for (i, (rec, frags)) in picks.iter().enumerate() {
        write_file(&mut out, rec, frags, uri_prefix, i == 0);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A live playlist of the newest `window` fragments across `recordings`
/// (oldest first). The media sequence is the camera-wide fragment number,
/// so each fragment keeps its number across reloads.
pub fn live_playlist(recordings: &[Recording], window: usize, uri_prefix: &str) -> String {
    let mut picks: Vec<(&Recording, usize)> = Vec::new(); // (recording, first fragment index)
    let mut left = window.max(1);
    for rec in recordings.iter().rev() {
        if left == 0 {
            break;
        }
        let n = rec.fragments.len().min(left);
        if n > 0 {
            picks.push((rec, rec.fragments.len() - n));
            left -= n;
        }
    }
    picks.reverse();
    let target = picks
        .iter()
        .flat_map(|(r, from)| r.fragments[*from..].iter())
        .map(|f| secs(f.duration_90k).ceil() as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    let first_seq = picks
        .first()
        .map_or(0, |(r, from)| r.first_seq + *from as i64);
    let mut out = String::with_capacity(256 + window * 80);
    header(&mut out, target, Some(first_seq), false);
    for (i, (rec, from)) in picks.iter().enumerate() {
        write_file(&mut out, rec, &rec.fragments[*from..], uri_prefix, i == 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordingState;
    use reallive_core::Codec;

    const SEC: i64 = 1_000_000_000;

    fn rec(id: i64, start_s: i64, frags: usize, first_seq: i64) -> Recording {
        Recording {
            id,
            camera: "c".into(),
            path: format!("c/f{id}.mp4"),
            start_utc_ns: start_s * SEC,
            end_utc_ns: (start_s + frags as i64) * SEC,
            bytes: 0,
            init_bytes: 700,
            codec: Codec::H264,
            width: 640,
            height: 360,
            state: RecordingState::Complete,
            first_seq,
            fragments: (0..frags)
                .map(|i| FragmentEntry {
                    decode_time_90k: i as u64 * 90_000,
                    duration_90k: 90_000,
                    offset: 700 + i as u64 * 1000,
                    size: 1000,
                    frames: 30,
                    keyframe: i % 2 == 0,
                })
                .collect(),
        }
    }

    #[test]
    fn vod_spans_files_and_gaps() {
        // Two files back to back, then a 10 s gap, then a third.
        let recs = [rec(1, 0, 4, 0), rec(2, 4, 4, 4), rec(3, 18, 2, 8)];
        let p = vod_playlist(
            &recs,
            TimeRange::new(3 * SEC + 1, 19 * SEC).unwrap(),
            "/rec/",
        );
        let lines: Vec<&str> = p.lines().collect();
        // Range starts in fragment 3 of file 1 (not a keyframe): back to fragment 2.
        // File 3: only 18..19 s; the range ends (exclusive) at 19 s.
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("#EXTINF")).count(),
            2 + 4 + 1
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| **l == "#EXT-X-DISCONTINUITY")
                .count(),
            2
        );
        assert!(p.contains("#EXT-X-MAP:URI=\"/rec/c/f1.mp4\",BYTERANGE=\"700@0\""));
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02.000Z"));
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:18.000Z"));
        assert!(p.contains("#EXT-X-BYTERANGE:1000@2700\n/rec/c/f1.mp4\n"));
        assert!(p.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        ));
        assert!(p.ends_with("#EXT-X-ENDLIST\n"));
        // An empty range is an empty (but valid) playlist.
        let empty = vod_playlist(&recs, TimeRange::new(100 * SEC, 200 * SEC).unwrap(), "/");
        assert!(!empty.contains("#EXTINF") && empty.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn live_window_keeps_sequence_numbers() {
        let recs = [rec(1, 0, 4, 10), rec(2, 4, 3, 14)];
        let p = live_playlist(&recs, 5, "/");
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:12\n"), "{p}");
        assert_eq!(p.matches("#EXTINF").count(), 5);
        assert!(!p.contains("#EXT-X-ENDLIST"));
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY").count(), 1);
    }
}
