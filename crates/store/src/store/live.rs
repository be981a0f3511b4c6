//! The parts of files being written that the index does not hold yet.
//!
//! The writer appends every 200 ms part to its file at once (readers get
//! the bytes from the page cache) but `fdatasync`s and commits the index
//! only once a segment (`docs/design/ll-hls.md`). Between two commits the
//! parts it wrote are published here, in memory, and the live playlist
//! lists them from here: a part is listed (and a blocking reload answered)
//! as soon as it is written, not a second later.
//!
//! Bounded: per camera one entry per open file (one per session), and each
//! entry holds only the parts written since that file's last commit, at
//! most [`MAX_UNFLUSHED_PARTS`] (the writer flushes before it would hold
//! more; a push beyond it drops the oldest, which only hides parts from
//! the playlist until the next commit, see [`merge`]).

use std::collections::HashMap;
use std::sync::PoisonError;

use super::Store;
use crate::fragment::FragmentEntry;
use crate::model::{Recording, RecordingState, ticks_to_ns};

/// The most parts a file may hold written but not committed: the writer
/// flushes when it would hold more (a camera with a keyframe every frame
/// makes one-frame parts), so the live list stays a few dozen entries.
pub(crate) const MAX_UNFLUSHED_PARTS: usize = 32;

/// One open file's parts that the index does not hold yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenParts {
    /// The recording's id.
    pub(crate) id: i64,
    /// Contiguous parts, oldest first, from the end of what is committed.
    pub(crate) parts: Vec<FragmentEntry>,
}

/// Per camera, the open files' uncommitted parts.
#[derive(Debug, Default)]
pub(super) struct LiveParts {
    by_camera: HashMap<String, Vec<OpenParts>>,
}

impl LiveParts {
    fn push(&mut self, camera: &str, id: i64, part: FragmentEntry) {
        let files = self.by_camera.entry(camera.to_string()).or_default();
        let at = match files.iter().position(|o| o.id == id) {
            Some(at) => at,
            None => {
                files.push(OpenParts {
                    id,
                    parts: Vec::with_capacity(8),
                });
                files.len() - 1
            }
        };
        let parts = &mut files[at].parts;
        if parts.len() >= MAX_UNFLUSHED_PARTS {
            parts.remove(0);
        }
        parts.push(part);
    }

    fn committed(&mut self, camera: &str, id: i64) {
        if let Some(o) = self
            .by_camera
            .get_mut(camera)
            .and_then(|files| files.iter_mut().find(|o| o.id == id))
        {
            o.parts.clear();
        }
    }

    fn closed(&mut self, camera: &str, id: i64) {
        if let Some(files) = self.by_camera.get_mut(camera) {
            files.retain(|o| o.id != id);
            if files.is_empty() {
                self.by_camera.remove(camera);
            }
        }
    }

    fn snapshot(&self, camera: &str) -> Vec<OpenParts> {
        self.by_camera.get(camera).cloned().unwrap_or_default()
    }
}

/// Adds to each recording still being written the parts of `open` that
/// its row does not hold: those from its committed end (`bytes`) on.
///
/// `open` must be read *before* the rows: the writer clears a file's parts
/// only after their commit is visible, so rows read later hold at least
/// everything `open` lacks, and parts they hold too are skipped by offset.
/// Parts that do not start exactly at the committed end (some were dropped,
/// or the file was cut back) are left out: the playlist then lists only
/// what is committed, never bytes out of order.
pub(crate) fn merge(recs: &mut [Recording], open: &[OpenParts]) {
    for rec in recs
        .iter_mut()
        .filter(|r| r.state == RecordingState::Writing)
    {
        let Some(o) = open.iter().find(|o| o.id == rec.id) else {
            continue;
        };
        let committed_end = rec.fragments.last().map_or(rec.init_bytes, |f| f.end());
        let new = o
            .parts
            .iter()
            .position(|p| p.offset >= committed_end)
            .map_or(&[][..], |i| &o.parts[i..]);
        let contiguous = new.first().is_some_and(|p| p.offset == committed_end)
            && new.windows(2).all(|w| w[0].end() == w[1].offset);
        if !contiguous {
            continue;
        }
        rec.fragments.extend_from_slice(new);
        if let Some(last) = new.last() {
            rec.bytes = last.end();
            rec.end_utc_ns = rec.start_utc_ns
                + ticks_to_ns((last.decode_time_90k + u64::from(last.duration_90k)) as i64);
        }
    }
}

impl Store {
    /// Publishes a part the writer appended to open file `id` of `camera`
    /// and wakes the camera's blocking reloads.
    pub(crate) fn part_written(&self, camera: &str, id: i64, part: FragmentEntry) {
        self.inner
            .live_parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(camera, id, part);
        self.live_changed(camera);
    }

    /// The index now holds every part of `id` written so far. Call only
    /// once the commit is visible to readers.
    pub(crate) fn parts_committed(&self, camera: &str, id: i64) {
        self.inner
            .live_parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .committed(camera, id);
    }

    /// File `id` is closed (or abandoned): forget its parts.
    pub(crate) fn parts_closed(&self, camera: &str, id: i64) {
        self.inner
            .live_parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed(camera, id);
    }

    /// The uncommitted parts of `camera`'s open files.
    pub(crate) fn open_parts(&self, camera: &str) -> Vec<OpenParts> {
        self.inner
            .live_parts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot(camera)
    }
}

#[cfg(test)]
mod tests {
    use super::{LiveParts, MAX_UNFLUSHED_PARTS, OpenParts, merge};
    use crate::fragment::FragmentEntry;
    use crate::model::{Recording, RecordingState};

    /// Part `k` of a file with a 100-byte init: 1000 bytes and 200 ms each.
    fn part(k: u64) -> FragmentEntry {
        FragmentEntry {
            decode_time_90k: k * 18_000,
            duration_90k: 18_000,
            offset: 100 + k * 1000,
            size: 1000,
            frames: 6,
            keyframe: k.is_multiple_of(5),
        }
    }

    fn rec(id: i64, committed: u64, state: RecordingState) -> Recording {
        let fragments: Vec<FragmentEntry> = (0..committed).map(part).collect();
        Recording {
            id,
            camera: "cam".into(),
            path: format!("cam/{id}.mp4"),
            start_utc_ns: 0,
            end_utc_ns: committed as i64 * 200_000_000,
            bytes: fragments.last().map_or(100, FragmentEntry::end),
            init_bytes: 100,
            codec: reallive_core::Codec::H264,
            codecs: None,
            width: 640,
            height: 360,
            state,
            first_seq: 0,
            fragments,
        }
    }

    fn open(id: i64, parts: std::ops::Range<u64>) -> OpenParts {
        OpenParts {
            id,
            parts: parts.map(part).collect(),
        }
    }

    #[test]
    fn the_open_files_parts_extend_its_row_from_its_committed_end() {
        use RecordingState::{Complete, Writing};
        // (row: committed parts and state, open parts, parts listed after)
        let cases = [
            // Nothing committed yet: all of them.
            ((0, Writing), vec![open(1, 0..3)], 3),
            // Committed 5, written 5..8.
            ((5, Writing), vec![open(1, 5..8)], 8),
            // A commit landed between the snapshot and the row read: the
            // row holds 5..7 already, only 7 is new.
            ((7, Writing), vec![open(1, 5..8)], 8),
            // ... or all of them.
            ((8, Writing), vec![open(1, 5..8)], 8),
            // Another file's parts (a second session of the camera).
            ((5, Writing), vec![open(2, 5..8)], 5),
            // Nothing open.
            ((5, Writing), vec![], 5),
            // The file closed (or was cut back): its row is the truth.
            ((5, Complete), vec![open(1, 5..8)], 5),
            // A hole between the committed end and the parts: left out.
            ((4, Writing), vec![open(1, 5..8)], 4),
        ];
        for (i, ((committed, state), parts, want)) in cases.into_iter().enumerate() {
            let mut recs = vec![rec(1, committed, state)];
            merge(&mut recs, &parts);
            let r = &recs[0];
            assert_eq!(r.fragments.len() as u64, want, "case {i}");
            assert_eq!(
                r.fragments,
                (0..want).map(part).collect::<Vec<_>>(),
                "case {i}"
            );
            assert_eq!(r.bytes, r.fragments.last().map_or(100, FragmentEntry::end));
            assert_eq!(r.end_utc_ns, want as i64 * 200_000_000, "case {i}");
        }
    }

    #[test]
    fn the_list_is_bounded_and_follows_commits_and_closes() {
        let mut live = LiveParts::default();
        for k in 0..MAX_UNFLUSHED_PARTS as u64 + 3 {
            live.push("cam", 1, part(k));
        }
        let snap = live.snapshot("cam");
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].parts.len(), MAX_UNFLUSHED_PARTS, "the oldest went");
        assert_eq!(snap[0].parts[0], part(3));
        // Dropped parts leave a hole: the row is listed alone.
        let mut recs = vec![rec(1, 0, RecordingState::Writing)];
        merge(&mut recs, &snap);
        assert!(recs[0].fragments.is_empty());

        live.push("cam", 2, part(0));
        live.committed("cam", 1);
        let snap = live.snapshot("cam");
        assert_eq!(
            snap.iter()
                .map(|o| (o.id, o.parts.len()))
                .collect::<Vec<_>>(),
            [(1, 0), (2, 1)]
        );
        live.closed("cam", 1);
        live.closed("cam", 2);
        assert!(live.snapshot("cam").is_empty());
        assert!(live.by_camera.is_empty(), "no entry left behind");
    }
}
