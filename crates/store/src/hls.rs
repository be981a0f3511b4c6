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
//! Segments are groups of fragments ([`segments`]): since the recorder
//! writes 200 ms fragments (LL-HLS parts), a segment is the byte range of
//! the parts from a keyframe, or from where the last one reached about a
//! second, to the next such start. The live playlist is LL-HLS: the newest
//! segments list their parts (`EXT-X-PART`), the open one only its parts,
//! and a request may block until a given part exists
//! ([`BlockingRequest`], [`blocking_state`]). See `docs/design/ll-hls.md`.
//!
//! Rendering is pure and allocation-light: a 24 h playlist (86,400
//! segments) is one `String` built with `fmt::Write`.

use std::fmt::Write;

use crate::StoreError;
use crate::fragment::FragmentEntry;
use crate::model::{Recording, RecordingState, TimeRange, rfc3339_ms};

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

/// Target length of a playlist segment: 1 s.
pub const SEGMENT_TARGET_90K: u64 = 90_000;

/// A segment closes once it holds this much (0.9 s), so 200 ms parts that
/// jitter a little still make 1 s segments, not 1.2 s ones.
pub(crate) const SEGMENT_CLOSE_90K: u64 = SEGMENT_TARGET_90K * 9 / 10;

/// Whether fragment `f` (after `prev`, in a segment of `open_90k` ticks so
/// far) starts a new segment: at a keyframe, once the open one is full, or
/// where the bytes are not contiguous.
pub(crate) fn starts_segment(
    prev: Option<&FragmentEntry>,
    open_90k: u64,
    f: &FragmentEntry,
) -> bool {
    match prev {
        None => true,
        Some(p) => f.keyframe || open_90k >= SEGMENT_CLOSE_90K || p.end() != f.offset,
    }
}

/// The segments of one file's fragments, grouped from `frags[0]`: index
/// ranges into `frags`, in order, covering all of it. Only the fragments
/// before a segment decide where it starts, so appending fragments never
/// moves an earlier boundary (the live media sequence relies on it).
pub fn segments(frags: &[FragmentEntry]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::with_capacity(frags.len() / 4 + 1);
    let mut start = 0;
    let mut open_90k = 0u64;
    for (i, f) in frags.iter().enumerate() {
        if i > 0 && starts_segment(frags.get(i - 1), open_90k, f) {
            out.push(start..i);
            start = i;
            open_90k = 0;
        }
        open_90k += u64::from(f.duration_90k);
    }
    if !frags.is_empty() {
        out.push(start..frags.len());
    }
    out
}

/// The number of segments of one file's fragments ([`segments`]): what the
/// camera-wide media sequence advances by.
pub fn segment_count(frags: &[FragmentEntry]) -> usize {
    let mut n = 0;
    let mut open_90k = 0u64;
    for (i, f) in frags.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| frags.get(p));
        if starts_segment(prev, open_90k, f) {
            n += 1;
            open_90k = 0;
        }
        open_90k += u64::from(f.duration_90k);
    }
    n
}

/// The byte range (`len@offset`) of contiguous fragments.
fn byte_range(frags: &[FragmentEntry]) -> (u64, u64) {
    match (frags.first(), frags.last()) {
        (Some(a), Some(b)) => (b.end() - a.offset, a.offset),
        _ => (0, 0),
    }
}

fn duration_90k(frags: &[FragmentEntry]) -> u64 {
    frags.iter().map(|f| u64::from(f.duration_90k)).sum()
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
    for seg in segments(frags) {
        let seg = &frags[seg];
        let (len, off) = byte_range(seg);
        let _ = write!(
            out,
            "#EXTINF:{:.5},\n#EXT-X-BYTERANGE:{len}@{off}\n{uri}\n",
            secs90(duration_90k(seg)),
        );
    }
}

fn secs90(ticks: u64) -> f64 {
    ticks as f64 / 90_000.0
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
    let groups: Vec<Vec<std::ops::Range<usize>>> =
        picks.iter().map(|(_, f, _)| segments(f)).collect();
    let segments: usize = groups.iter().map(Vec::len).sum();
    let target = picks
        .iter()
        .zip(&groups)
        .flat_map(|((_, f, _), g)| g.iter().map(|r| duration_90k(&f[r.clone()])))
        .max()
        .map_or(1, |d| secs90(d).ceil() as u32)
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

/// The newest segment of a live playlist: what a blocking reload waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveEdge {
    /// Its media sequence number.
    pub msn: i64,
    /// Parts listed for it.
    pub parts: usize,
    /// Whether it is complete (has its `EXTINF`); an open segment lists
    /// only its parts so far.
    pub complete: bool,
    /// The playlist's `EXT-X-TARGETDURATION`, in seconds.
    pub target_secs: u32,
}

/// A rendered live playlist and its newest segment (none: nothing
/// recorded).
#[derive(Clone, Debug)]
pub struct LivePlaylist {
    /// The playlist.
    pub text: String,
    /// Its newest segment.
    pub edge: Option<LiveEdge>,
}

/// The LL-HLS part target (200 ms), in milliseconds: `PART-TARGET` is this
/// or the longest part listed, if longer.
pub const PART_TARGET_MS: u64 = 200;

/// One live segment: its file, its fragments (parts), its number.
struct LiveSegment<'a> {
    rec: &'a Recording,
    parts: &'a [FragmentEntry],
    msn: i64,
    complete: bool,
}

/// An LL-HLS live playlist of the newest `window` segments across
/// `recordings` (oldest first, one camera).
///
/// Segments are [`segments`] of each file; their media sequence numbers
/// are camera-wide: a file's first segment is its `first_seq`. The
/// segments ending within three target durations of the live edge list
/// their parts (`EXT-X-PART`, one per fragment, `INDEPENDENT=YES` on a
/// keyframe); the newest segment of a file still being written is open,
/// even when full, until the next part exists: it lists only its parts.
pub fn live_playlist(recordings: &[Recording], window: usize, uri_prefix: &str) -> LivePlaylist {
    let window = window.max(1);
    let mut segs: Vec<LiveSegment<'_>> = Vec::new();
    for rec in recordings.iter().rev() {
        if segs.len() >= window {
            break;
        }
        let groups = segments(&rec.fragments);
        let n = groups.len();
        for (k, g) in groups.into_iter().enumerate().rev() {
            if segs.len() >= window {
                break;
            }
            let parts = &rec.fragments[g];
            // The newest segment of a file being written stays open until
            // the next part exists, even when full: a playlist that ends
            // on a complete segment makes hls.js take that segment for the
            // next one (it turns the trailing segment into its "hint") and
            // misplace every later segment by one.
            let newest = segs.is_empty() && k + 1 == n;
            let complete = !(newest && rec.state == RecordingState::Writing);
            segs.push(LiveSegment {
                rec,
                parts,
                msn: rec.first_seq + k as i64,
                complete,
            });
        }
    }
    segs.reverse();
    let target = segs
        .iter()
        .map(|s| secs90(duration_90k(s.parts)).round() as u32)
        .max()
        .unwrap_or(1)
        .max(1);
    // Parts of the segments that end within three target durations of the edge.
    let mut with_parts = 0;
    let mut tail_90k = 0u64;
    for s in segs.iter().rev() {
        if tail_90k >= 3 * u64::from(target) * 90_000 {
            break;
        }
        tail_90k += duration_90k(s.parts);
        with_parts += 1;
    }
    let first_with_parts = segs.len() - with_parts;
    let longest_part_ms = segs[first_with_parts..]
        .iter()
        .flat_map(|s| s.parts.iter())
        .map(|f| u64::from(f.duration_90k).div_ceil(90))
        .max()
        .unwrap_or(0);
    let part_target_ms = longest_part_ms.max(PART_TARGET_MS);
    let mut out = String::with_capacity(512 + segs.len() * 200 + with_parts * 5 * 160);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}",
        (3 * part_target_ms) as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "#EXT-X-PART-INF:PART-TARGET={:.3}",
        part_target_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{}",
        segs.first().map_or(0, |s| s.msn)
    );
    let mut prev: Option<(&Recording, &FragmentEntry)> = None;
    let mut uri = String::new();
    for (i, s) in segs.iter().enumerate() {
        let (Some(first), Some(last)) = (s.parts.first(), s.parts.last()) else {
            continue;
        };
        let new_file = prev.is_none_or(|(p, _)| p.id != s.rec.id);
        if new_file {
            if prev.is_some_and(|(p, l)| !continues(p, l, s.rec, first)) {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"{uri_prefix}{}\",BYTERANGE=\"{}@0\"",
                s.rec.path, s.rec.init_bytes
            );
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                rfc3339_ms(s.rec.fragment_start_utc_ns(first))
            );
            uri = format!("{uri_prefix}{}?t={}", s.rec.path, timeline_offset(s.rec));
        }
        if i >= first_with_parts {
            for p in s.parts {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{uri}\",BYTERANGE=\"{}@{}\"",
                    secs(p.duration_90k),
                    p.size,
                    p.offset
                );
                out.push_str(if p.keyframe {
                    ",INDEPENDENT=YES\n"
                } else {
                    "\n"
                });
            }
        }
        if s.complete {
            let (len, off) = byte_range(s.parts);
            let _ = write!(
                out,
                "#EXTINF:{:.5},\n#EXT-X-BYTERANGE:{len}@{off}\n{uri}\n",
                secs90(duration_90k(s.parts))
            );
        }
        prev = Some((s.rec, last));
    }
    let edge = segs.last().map(|s| LiveEdge {
        msn: s.msn,
        parts: if segs.len() > first_with_parts {
            s.parts.len()
        } else {
            0
        },
        complete: s.complete,
        target_secs: target,
    });
    LivePlaylist { text: out, edge }
}

/// A blocking playlist reload: `_HLS_msn` and `_HLS_part` (RFC 8216bis
/// 6.2.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockingRequest {
    /// The media sequence number waited for.
    pub msn: i64,
    /// The part of it waited for; none: the whole segment.
    pub part: Option<u32>,
}

impl BlockingRequest {
    /// Parses the query parameters. Neither: no blocking. A value that is
    /// not a non-negative decimal number, or `_HLS_part` without
    /// `_HLS_msn`, is refused.
    pub fn parse(msn: Option<&str>, part: Option<&str>) -> Result<Option<Self>, StoreError> {
        fn number(name: &str, v: &str) -> Result<u64, StoreError> {
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(StoreError::InvalidInput(format!(
                    "{name} must be a non-negative integer"
                )));
            }
            v.parse()
                .map_err(|_| StoreError::InvalidInput(format!("{name} is out of range")))
        }
        let Some(msn) = msn else {
            return match part {
                Some(_) => Err(StoreError::InvalidInput("_HLS_part needs _HLS_msn".into())),
                None => Ok(None),
            };
        };
        let msn = i64::try_from(number("_HLS_msn", msn)?)
            .map_err(|_| StoreError::InvalidInput("_HLS_msn is out of range".into()))?;
        let part = part
            .map(|p| number("_HLS_part", p))
            .transpose()?
            .map(|p| {
                u32::try_from(p)
                    .map_err(|_| StoreError::InvalidInput("_HLS_part is out of range".into()))
            })
            .transpose()?;
        Ok(Some(BlockingRequest { msn, part }))
    }
}

/// Whether a live playlist answers a blocking request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// It holds what was asked for, or later.
    Ready,
    /// Not yet: wait for the next change.
    Wait,
    /// Asked for a segment more than two past the newest: refuse (400).
    TooFar,
}

/// Whether a playlist whose newest segment is `edge` answers `req`:
/// segment `msn` complete, or (with a part) its part `part` listed, or
/// anything later. Part `part` of a segment that ended with fewer parts
/// is the next segment's first: that is what is waited for.
pub fn blocking_state(edge: Option<LiveEdge>, req: BlockingRequest) -> Blocking {
    let newest = edge.map_or(-1, |e| e.msn);
    if req.msn > newest.saturating_add(2) {
        return Blocking::TooFar;
    }
    let Some(e) = edge else {
        return Blocking::Wait;
    };
    let ready = match req.part {
        // Segment `msn` complete, or a later one listed.
        None => e.msn > req.msn || (e.msn == req.msn && e.complete),
        // Part `part` of `msn` listed, or a later part: one of a later
        // segment (a segment's parts past its last are the next's).
        Some(p) => e.msn > req.msn || (e.msn == req.msn && e.parts > p as usize),
    };
    if ready {
        Blocking::Ready
    } else {
        Blocking::Wait
    }
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
        let p = live_playlist(&recs, 5, "/").text;
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:12\n"), "{p}");
        assert_eq!(p.matches("#EXTINF").count(), 5);
        assert!(!p.contains("#EXT-X-ENDLIST"));
        assert_eq!(
            p.matches("#EXT-X-DISCONTINUITY").count(),
            0,
            "contiguous files"
        );
    }

    /// A file of `n` 200 ms parts at 1000 bytes each, a keyframe every
    /// `gop` parts, still being written.
    fn parts_rec(id: i64, start_ns: i64, n: usize, gop: usize, first_seq: i64) -> Recording {
        let mut r = rec(id, 0, 0, first_seq);
        r.start_utc_ns = start_ns;
        r.state = RecordingState::Writing;
        r.fragments = (0..n)
            .map(|i| FragmentEntry {
                decode_time_90k: i as u64 * 18_000,
                duration_90k: 18_000,
                offset: 700 + i as u64 * 1000,
                size: 1000,
                frames: 6,
                keyframe: i % gop == 0,
            })
            .collect();
        r.end_utc_ns = r.start_utc_ns + n as i64 * SEC / 5;
        r
    }

    fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        let rest = &line[at..];
        Some(match rest.strip_prefix('"') {
            Some(q) => &q[..q.find('"')?],
            None => rest.split(',').next()?,
        })
    }

    fn range(br: &str) -> (u64, u64) {
        let (len, off) = br.split_once('@').unwrap();
        (len.parse().unwrap(), off.parse().unwrap())
    }

    /// Checks the rules of RFC 8216bis a live LL-HLS playlist must keep;
    /// returns (segments, parts).
    fn check_ll_rules(p: &str) -> (usize, usize) {
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        let version: u32 = lines[1]
            .strip_prefix("#EXT-X-VERSION:")
            .unwrap()
            .parse()
            .unwrap();
        assert!(version >= 9, "{p}");
        let tag = |t: &str| lines.iter().find_map(|l| l.strip_prefix(t)).unwrap();
        let target: f64 = tag("#EXT-X-TARGETDURATION:").parse().unwrap();
        let part_target: f64 = attr(tag("#EXT-X-PART-INF:"), "PART-TARGET")
            .unwrap()
            .parse()
            .unwrap();
        let control = tag("#EXT-X-SERVER-CONTROL:");
        assert_eq!(attr(control, "CAN-BLOCK-RELOAD"), Some("YES"));
        let hold: f64 = attr(control, "PART-HOLD-BACK").unwrap().parse().unwrap();
        assert!(
            hold >= 2.0 * part_target,
            "PART-HOLD-BACK at least twice PART-TARGET"
        );
        assert!(!p.contains("#EXT-X-ENDLIST"));
        // Parts since the last segment: each within PART-TARGET, contiguous,
        // and together exactly their segment's range and duration.
        let (mut segs, mut parts) = (0, 0);
        let mut pending: Vec<(f64, u64, u64)> = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            if let Some(a) = l.strip_prefix("#EXT-X-PART:") {
                let d: f64 = attr(a, "DURATION").unwrap().parse().unwrap();
                assert!(d <= part_target + 1e-9, "a part over PART-TARGET: {l}");
                let (len, off) = range(attr(a, "BYTERANGE").unwrap());
                if let Some((_, plen, poff)) = pending.last() {
                    assert_eq!(poff + plen, off, "parts are contiguous");
                }
                pending.push((d, len, off));
                parts += 1;
            } else if let Some(a) = l.strip_prefix("#EXTINF:") {
                let d: f64 = a.trim_end_matches(',').parse().unwrap();
                assert!(d.round() <= target, "EXTINF over TARGETDURATION");
                let (len, off) = range(lines[i + 1].strip_prefix("#EXT-X-BYTERANGE:").unwrap());
                assert!(!lines[i + 2].starts_with('#'));
                if !pending.is_empty() {
                    assert_eq!(pending[0].2, off, "the segment starts at its first part");
                    assert_eq!(pending.iter().map(|x| x.1).sum::<u64>(), len);
                    let sum: f64 = pending.iter().map(|x| x.0).sum();
                    assert!((sum - d).abs() < 1e-3, "parts add up to the segment");
                }
                pending.clear();
                segs += 1;
                i += 2;
            }
            i += 1;
        }
        (segs, parts)
    }

    #[test]
    fn segments_group_parts_from_keyframes_to_a_second() {
        // 2 s GOPs of 200 ms parts: 1 s segments.
        let r = parts_rec(1, 0, 23, 10, 0);
        let g = segments(&r.fragments);
        assert_eq!(g, vec![0..5, 5..10, 10..15, 15..20, 20..23]);
        assert_eq!(segment_count(&r.fragments), 5);
        // A 0.6 s GOP: every keyframe starts one.
        let r = parts_rec(1, 0, 7, 3, 0);
        assert_eq!(segments(&r.fragments), vec![0..3, 3..6, 6..7]);
        // 1 s fragments written before parts: one segment each.
        let old = rec(1, 0, 4, 0);
        assert_eq!(segments(&old.fragments).len(), 4);
        assert_eq!(segment_count(&old.fragments), 4);
        assert!(segments(&[]).is_empty() && segment_count(&[]) == 0);
        // Appending never moves an earlier boundary.
        let long = parts_rec(1, 0, 40, 7, 0);
        for n in 1..40 {
            let short = segments(&long.fragments[..n]);
            let full = segments(&long.fragments);
            assert_eq!(short[..short.len() - 1], full[..short.len() - 1]);
            assert_eq!(segment_count(&long.fragments[..n]), short.len());
        }
    }

    #[test]
    fn the_live_playlist_lists_parts_at_the_edge_and_keeps_the_rules() {
        let r = parts_rec(1, 0, 23, 10, 100);
        let live = live_playlist(std::slice::from_ref(&r), 6, "/r/");
        let p = &live.text;
        assert!(
            p.starts_with(
                "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
                 #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n\
                 #EXT-X-PART-INF:PART-TARGET=0.200\n#EXT-X-MEDIA-SEQUENCE:100\n\
                 #EXT-X-MAP:URI=\"/r/c/f1.mp4\",BYTERANGE=\"700@0\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:00.000Z\n"
            ),
            "{p}"
        );
        // Five segments; the newest (3 parts, file still open) has no EXTINF.
        // Parts for those ending within 3 s of the edge: segments 1 to 4.
        let (segs, parts) = check_ll_rules(p);
        assert_eq!((segs, parts), (4, 3 * 5 + 3), "{p}");
        assert_eq!(p.matches(",INDEPENDENT=YES").count(), 2);
        assert!(p.contains(
            "#EXT-X-PART:DURATION=0.20000,URI=\"/r/c/f1.mp4?t=0\",BYTERANGE=\"1000@10700\",INDEPENDENT=YES\n"
        ));
        assert!(p.contains("#EXTINF:1.00000,\n#EXT-X-BYTERANGE:5000@700\n/r/c/f1.mp4?t=0\n"));
        assert!(p.lines().last().unwrap().starts_with("#EXT-X-PART:"));
        assert_eq!(
            live.edge,
            Some(LiveEdge {
                msn: 104,
                parts: 3,
                complete: false,
                target_secs: 1
            })
        );
        // Two parts later the open segment is full, but stays open until
        // the next part exists; one more, and it is complete.
        let r2 = parts_rec(1, 0, 25, 10, 100);
        let live2 = live_playlist(std::slice::from_ref(&r2), 6, "/r/");
        assert_eq!(check_ll_rules(&live2.text).0, 4);
        assert_eq!(
            live2.edge.map(|e| (e.msn, e.parts, e.complete)),
            Some((104, 5, false))
        );
        let r2 = parts_rec(1, 0, 26, 10, 100);
        let live2 = live_playlist(std::slice::from_ref(&r2), 6, "/r/");
        assert_eq!(check_ll_rules(&live2.text).0, 5);
        assert_eq!(
            live2.edge.map(|e| (e.msn, e.parts, e.complete)),
            Some((105, 1, false))
        );
        assert!(
            live2
                .text
                .contains("#EXTINF:1.00000,\n#EXT-X-BYTERANGE:5000@20700\n")
        );
        // A live playlist never ends on a complete segment while the file
        // is written (hls.js would misplace the next one).
        assert!(
            live2
                .text
                .lines()
                .last()
                .unwrap()
                .starts_with("#EXT-X-PART:")
        );
        // A window of 2: the media sequence follows.
        let small = live_playlist(std::slice::from_ref(&r2), 2, "/r/");
        assert!(small.text.contains("#EXT-X-MEDIA-SEQUENCE:104\n"));
        // A closed file's last segment is complete, however short.
        let mut closed = r.clone();
        closed.state = RecordingState::Complete;
        let live3 = live_playlist(std::slice::from_ref(&closed), 6, "/r/");
        assert_eq!(check_ll_rules(&live3.text).0, 5);
        // The next file continues the numbers and the timeline.
        let next = parts_rec(2, 23 * SEC / 5, 4, 10, 105);
        let both = live_playlist(&[closed, next], 6, "/r/");
        check_ll_rules(&both.text);
        assert!(!both.text.contains("#EXT-X-DISCONTINUITY"), "{}", both.text);
        assert!(both.text.contains("#EXT-X-MEDIA-SEQUENCE:100\n"));
        assert_eq!(both.edge.map(|e| (e.msn, e.parts)), Some((105, 4)));
        // Nothing recorded: a valid playlist with no segments.
        let none = live_playlist(&[], 6, "/r/");
        assert!(none.edge.is_none() && !none.text.contains("#EXTINF"));
    }

    #[test]
    fn blocking_requests_wait_for_their_part_and_refuse_the_far_future() {
        let open = Some(LiveEdge {
            msn: 10,
            parts: 2,
            complete: false,
            target_secs: 1,
        });
        let full = open.map(|e| LiveEdge {
            complete: true,
            ..e
        });
        let req = |msn, part| BlockingRequest { msn, part };
        use Blocking::*;
        for (edge, r, want) in [
            (open, req(10, Some(1)), Ready),
            (open, req(10, Some(2)), Wait),
            (open, req(10, None), Wait),
            (open, req(9, None), Ready),
            (open, req(9, Some(7)), Ready),
            (open, req(11, Some(0)), Wait),
            (open, req(12, None), Wait),
            (open, req(13, None), TooFar),
            (open, req(i64::MAX, None), TooFar),
            (full, req(10, None), Ready),
            (full, req(10, Some(1)), Ready),
            // Past segment 10's last part: that is segment 11's first.
            (full, req(10, Some(2)), Wait),
            (full, req(10, Some(5)), Wait),
            (full, req(11, Some(0)), Wait),
            (full, req(9, Some(9)), Ready),
            (None, req(0, Some(0)), Wait),
            (None, req(2, None), TooFar),
        ] {
            assert_eq!(blocking_state(edge, r), want, "{edge:?} {r:?}");
        }
    }

    #[test]
    fn hostile_blocking_parameters_are_refused() {
        let ok = |m: Option<&str>, p: Option<&str>| BlockingRequest::parse(m, p).unwrap();
        assert_eq!(ok(None, None), None);
        assert_eq!(
            ok(Some("12"), Some("3")),
            Some(BlockingRequest {
                msn: 12,
                part: Some(3)
            })
        );
        assert_eq!(ok(Some("0"), None).map(|r| r.part), Some(None));
        for (m, p) in [
            (Some("-1"), None),
            (Some("abc"), None),
            (Some(""), None),
            (Some("+5"), None),
            (Some("1e3"), None),
            (Some("99999999999999999999"), None),
            (Some("9223372036854775808"), None),
            (Some("1"), Some("-1")),
            (Some("1"), Some("4294967296")),
            (None, Some("1")),
        ] {
            let e = BlockingRequest::parse(m, p).unwrap_err();
            assert_eq!(
                e.kind(),
                reallive_core::ErrorKind::InvalidArgument,
                "{m:?} {p:?}"
            );
        }
    }
}
