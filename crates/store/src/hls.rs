//! HLS playlists over recordings: VOD for any time range, and live.
//!
//! Segments are fragments addressed by `EXT-X-BYTERANGE` inside each file;
//! each file contributes an `EXT-X-MAP` for its init segment and an
//! `EXT-X-PROGRAM-DATE-TIME` for its first segment.
//!
//! Each file's own timeline starts at zero, so it plays standalone. A
//! playlist needs one increasing timeline across files (ffmpeg merges
//! samples with equal timestamps), so segment URIs carry `?t=<ticks>`: the
//! server adds it to the `tfdt` of the fragments it serves
//! ([`crate::mp4::shift_decode_times`]), which keeps byte ranges intact.
//! `EXT-X-DISCONTINUITY` then marks only gaps and format changes.
//!
//! Rendering is pure and allocation-light: a 24 h playlist (86,400
//! segments) is one `String` built with `fmt::Write`.

use std::fmt::Write;

use crate::fragment::FragmentEntry;
use crate::model::{Recording, TimeRange, rfc3339_ms};

fn secs(ticks: u32) -> f64 {
    f64::from(ticks) / 90_000.0
}

/// The fragments of `frags` (of `rec`) that overlap `range`, extended back
/// to the nearest keyframe fragment so playback can start decoding.
pub(crate) fn selected_in<'a>(
    rec: &Recording,
    frags: &'a [FragmentEntry],
    range: TimeRange,
) -> &'a [FragmentEntry] {
    let overlaps = |e: &FragmentEntry| {
        let s = rec.fragment_start_utc_ns(e);
        range.overlaps(s, s + crate::model::ticks_to_ns(i64::from(e.duration_90k)))
    };
    let Some(first) = frags.iter().position(overlaps) else {
        return &[];
    };
    let last = frags.iter().rposition(overlaps).unwrap_or(first);
    let first = frags[..=first]
        .iter()
        .rposition(|e| e.keyframe)
        .unwrap_or(first);
    &frags[first..=last]
}

/// [`selected_in`] over the recording's own fragments.
pub(crate) fn selected(rec: &Recording, range: TimeRange) -> &[FragmentEntry] {
    selected_in(rec, &rec.fragments, range)
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

/// The audio part of a file's `CODECS` (`opus`, `mp4a.40.2`), if it has
/// audio.
fn audio_codec(rec: &Recording) -> Option<&str> {
    rec.codecs.as_deref()?.split_once(',').map(|(_, a)| a)
}

/// Whether `next` continues `prev` on one timeline with the same format:
/// only a gap or a format change (the audio's too: a file with other
/// audio, or none, has another track layout) is a discontinuity.
fn continues(
    prev: &Recording,
    prev_last: &FragmentEntry,
    next: &Recording,
    next_first: &FragmentEntry,
) -> bool {
    let prev_end = prev.fragment_start_utc_ns(prev_last)
        + crate::model::ticks_to_ns(i64::from(prev_last.duration_90k));
    (next.fragment_start_utc_ns(next_first) - prev_end).abs() < 1_000_000
        && (prev.codec, prev.width, prev.height) == (next.codec, next.width, next.height)
        && audio_codec(prev) == audio_codec(next)
}

/// A multivariant playlist with one variant, `media_uri`: a VOD or live
/// playlist over `recordings`. Its `CODECS` lists every track those files
/// hold (`avc1.64001f,opus`; each codec once, in the order the files
/// bring them), its `BANDWIDTH` is their peak fragment bit rate and its
/// `RESOLUTION` their largest picture. A player that sets up its decoders
/// from `CODECS` (MSE in a browser) learns of the audio before the first
/// segment. Files indexed before the index kept their `CODECS` add
/// nothing to it; with none known the attribute is left out.
pub fn master_playlist(recordings: &[Recording], media_uri: &str) -> String {
    let mut codecs: Vec<&str> = Vec::new();
    for c in recordings
        .iter()
        .filter_map(|r| r.codecs.as_deref())
        .flat_map(|c| c.split(','))
    {
        if !codecs.contains(&c) {
            codecs.push(c);
        }
    }
    let bandwidth = recordings
        .iter()
        .flat_map(|r| r.fragments.iter())
        .filter(|f| f.duration_90k > 0)
        .map(|f| u64::from(f.size) * 8 * 90_000 / u64::from(f.duration_90k))
        .max()
        .unwrap_or(1);
    let (width, height) = recordings
        .iter()
        .map(|r| (r.width, r.height))
        .max_by_key(|(w, h)| u64::from(*w) * u64::from(*h))
        .unwrap_or((0, 0));
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth}");
    if !codecs.is_empty() {
        let _ = write!(out, ",CODECS=\"{}\"", codecs.join(","));
    }
    if width > 0 && height > 0 {
        let _ = write!(out, ",RESOLUTION={width}x{height}");
    }
    let _ = writeln!(out, "\n{media_uri}");
    out
}

/// 90 kHz ticks from the Unix epoch to the start of `rec`: what the server
/// adds to the file's `tfdt` (`?t=`) so all files of a camera share one
/// increasing timeline. Absolute, so a file's lines are the same in every
/// playlist and can be cached.
fn timeline_offset(rec: &Recording) -> u64 {
    u64::try_from(i128::from(rec.start_utc_ns) * 90_000 / 1_000_000_000).unwrap_or(0)
}

/// One file's lines: `EXT-X-MAP`, `EXT-X-PROGRAM-DATE-TIME`, then a segment
/// per fragment. No discontinuity line: that depends on the neighbour.
pub(crate) fn write_file_lines(
    out: &mut String,
    rec: &Recording,
    frags: &[FragmentEntry],
    uri_prefix: &str,
) {
    let _ = writeln!(
        out,
        "#EXT-X-MAP:URI=\"{uri_prefix}{}\",BYTERANGE=\"{}@0\"",
        rec.path, rec.init_bytes
    );
    if let Some(f) = frags.first() {
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            rfc3339_ms(rec.fragment_start_utc_ns(f))
        );
    }
    let uri = format!("{uri_prefix}{}?t={}", rec.path, timeline_offset(rec));
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

/// A file in a playlist: its recording and all its committed fragments.
pub(crate) type FileRef<'a> = (&'a Recording, &'a [FragmentEntry]);

/// Supplies the cached lines of a whole file, if any.
pub(crate) type WholeFileLines<'a> =
    dyn FnMut(&Recording, &[FragmentEntry]) -> Option<std::sync::Arc<str>> + 'a;

/// Renders a VOD playlist. For a file wholly inside the range, `whole`
/// may supply its lines (from a cache); otherwise they are rendered here.
pub(crate) fn render_vod(
    files: &[FileRef<'_>],
    range: TimeRange,
    uri_prefix: &str,
    whole: &mut WholeFileLines<'_>,
) -> String {
    let picks: Vec<(&Recording, &[FragmentEntry], bool)> = files
        .iter()
        .map(|(r, all)| {
            let sel = selected_in(r, all, range);
            (*r, sel, sel.len() == all.len())
        })
        .filter(|(_, f, _)| !f.is_empty())
        .collect();
    let segments: usize = picks.iter().map(|(_, f, _)| f.len()).sum();
    let target = picks
        .iter()
        .flat_map(|(_, f, _)| f.iter())
        .map(|f| f.duration_90k)
        .max()
        .map_or(1, |d| secs(d).ceil() as u32)
        .max(1);
    // ~116 bytes a segment with a typical path; a realloc of ~10 MB costs more than slack.
    let mut out = String::with_capacity(256 + segments * 128 + picks.len() * 256);
    header(&mut out, target, None, true);
    let mut prev: Option<(&Recording, &FragmentEntry)> = None;
    for (rec, frags, is_whole) in &picks {
        let (Some(first), Some(last)) = (frags.first(), frags.last()) else {
            continue;
        };
        if prev.is_some_and(|(p, l)| !continues(p, l, rec, first)) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        match is_whole.then(|| whole(rec, frags)).flatten() {
            Some(lines) => out.push_str(&lines),
            None => write_file_lines(&mut out, rec, frags, uri_prefix),
        }
        prev = Some((rec, last));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A VOD playlist for `range` over `recordings` (oldest first, one camera).
/// Segment URIs are `uri_prefix` + the recording's path + `?t=`.
pub fn vod_playlist(recordings: &[Recording], range: TimeRange, uri_prefix: &str) -> String {
    let files: Vec<FileRef<'_>> = recordings
        .iter()
        .map(|r| (r, r.fragments.as_slice()))
        .collect();
    render_vod(&files, range, uri_prefix, &mut |_, _| None)
}

/// A live playlist of the newest `window` fragments across `recordings`
/// (oldest first). The media sequence is the camera-wide fragment number,
/// so each fragment keeps its number across reloads.
pub fn live_playlist(recordings: &[Recording], window: usize, uri_prefix: &str) -> String {
    let mut picks: Vec<(&Recording, &[FragmentEntry])> = Vec::new();
    let mut left = window.max(1);
    for rec in recordings.iter().rev() {
        if left == 0 {
            break;
        }
        let n = rec.fragments.len().min(left);
        if n > 0 {
            picks.push((rec, &rec.fragments[rec.fragments.len() - n..]));
            left -= n;
        }
    }
    picks.reverse();
    let target = picks
        .iter()
        .flat_map(|(_, f)| f.iter())
        .map(|f| secs(f.duration_90k).ceil() as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    let first_seq = picks.first().map_or(0, |(r, f)| {
        r.first_seq + (r.fragments.len() - f.len()) as i64
    });
    let mut out = String::with_capacity(256 + window * 112);
    header(&mut out, target, Some(first_seq), false);
    let mut prev: Option<(&Recording, &FragmentEntry)> = None;
    for (rec, frags) in &picks {
        let (Some(first), Some(last)) = (frags.first(), frags.last()) else {
            continue;
        };
        if prev.is_some_and(|(p, l)| !continues(p, l, rec, first)) {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        write_file_lines(&mut out, rec, frags, uri_prefix);
        prev = Some((rec, last));
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
            codecs: Some("avc1.64001e".into()),
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
            1
        );
        assert!(p.contains("#EXT-X-MAP:URI=\"/rec/c/f1.mp4\",BYTERANGE=\"700@0\""));
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:02.000Z"));
        assert!(p.contains("#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:18.000Z"));
        // Offsets are from the epoch: file 1 starts at 0 s, file 2 at 4 s.
        assert!(p.contains("#EXT-X-BYTERANGE:1000@2700\n/rec/c/f1.mp4?t=0\n"));
        assert!(p.contains("#EXT-X-BYTERANGE:1000@700\n/rec/c/f2.mp4?t=360000\n"));
        assert!(p.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        ));
        assert!(p.ends_with("#EXT-X-ENDLIST\n"));
        // Files 1 and 2 are back to back: one timeline, no discontinuity.
        // File 3 comes after a 10 s gap: one discontinuity.
        let disc = p.find("#EXT-X-DISCONTINUITY").unwrap();
        assert!(p[disc..].starts_with("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"/rec/c/f3.mp4\""));
        // An empty range is an empty (but valid) playlist.
        let empty = vod_playlist(&recs, TimeRange::new(100 * SEC, 200 * SEC).unwrap(), "/");
        assert!(!empty.contains("#EXTINF") && empty.ends_with("#EXT-X-ENDLIST\n"));
    }

    /// A file with other audio, or none, has another track layout: the
    /// playlist says so, and the master playlist lists every codec once.
    #[test]
    fn an_audio_change_is_a_discontinuity_and_codecs_list_every_track() {
        let mut recs = [
            rec(1, 0, 2, 0),
            rec(2, 2, 2, 2),
            rec(3, 4, 2, 4),
            rec(4, 6, 2, 6),
        ];
        recs[0].codecs = Some("avc1.64001e,opus".into());
        recs[1].codecs = Some("avc1.64001e,opus".into());
        recs[2].codecs = Some("avc1.64001e".into());
        recs[3].codecs = Some("avc1.64001e,mp4a.40.2".into());
        let p = vod_playlist(&recs, TimeRange::all(), "/");
        // Back to back; the layout changes before files 3 and 4.
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY").count(), 2, "{p}");
        let disc = p.find("#EXT-X-DISCONTINUITY").unwrap();
        assert!(p[disc..].starts_with("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"/c/f3.mp4\""));
        let m = master_playlist(&recs, "vod.m3u8?start=0");
        assert_eq!(
            m,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=8000,\
             CODECS=\"avc1.64001e,opus,mp4a.40.2\",RESOLUTION=640x360\nvod.m3u8?start=0\n"
        );
        // Nothing known: no CODECS rather than a wrong one.
        recs.iter_mut().for_each(|r| r.codecs = None);
        assert!(!master_playlist(&recs, "v").contains("CODECS"));
    }

    #[test]
    fn live_window_keeps_sequence_numbers() {
        let recs = [rec(1, 0, 4, 10), rec(2, 4, 3, 14)];
        let p = live_playlist(&recs, 5, "/");
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:12\n"), "{p}");
        assert_eq!(p.matches("#EXTINF").count(), 5);
        assert!(!p.contains("#EXT-X-ENDLIST"));
        assert_eq!(
            p.matches("#EXT-X-DISCONTINUITY").count(),
            0,
            "contiguous files"
        );
    }
}
