//! Playback: HLS VOD and live playlists, export of a range, and the cache
//! of fragment tables and rendered playlist lines that keeps a playlist
//! over a day of footage cheap.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError};

use super::{Store, blocking, row_to_recording};
use crate::StoreError;
use crate::fragment::{self, FragmentEntry};
use crate::model::{Recording, RecordingState, TimeRange};

/// Fragment tables and rendered playlist lines of recordings, so a playlist
/// over a day of footage reads no BLOBs and renders only its two edge
/// files. Entries are valid while the recording's committed size matches.
#[derive(Debug, Default)]
pub(super) struct PlaylistCache {
    entries: HashMap<i64, CacheEntry>,
    cost: usize,
    tick: u64,
    /// Every recording of a camera (metadata only, oldest first), loaded on
    /// the camera's first playlist and kept current by the writers.
    cameras: HashMap<String, Vec<Recording>>,
    /// Bumped on every change to a camera's rows, loaded or not, so a load
    /// that raced a change is not cached.
    generations: HashMap<String, u64>,
}

#[derive(Debug)]
struct CacheEntry {
    bytes: u64,
    fragments: Arc<Vec<FragmentEntry>>,
    /// (URI prefix, lines) of the whole file, once rendered.
    lines: Option<(String, Arc<str>)>,
    last_used: u64,
}

impl CacheEntry {
    fn cost(&self) -> usize {
        self.fragments.len() * fragment::PACKED_LEN
            + self.lines.as_ref().map_or(0, |(p, l)| p.len() + l.len())
    }
}

impl PlaylistCache {
    /// Bytes the cache may hold before it evicts the least recently used.
    const BUDGET: usize = 32 << 20;

    fn get(&mut self, id: i64, bytes: u64) -> Option<&mut CacheEntry> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(&id)?;
        if e.bytes != bytes {
            return None;
        }
        e.last_used = tick;
        Some(e)
    }

    fn insert(&mut self, id: i64, bytes: u64, fragments: Arc<Vec<FragmentEntry>>) {
        self.tick += 1;
        let entry = CacheEntry {
            bytes,
            fragments,
            lines: None,
            last_used: self.tick,
        };
        self.cost += entry.cost();
        if let Some(old) = self.entries.insert(id, entry) {
            self.cost -= old.cost();
        }
    }

    /// Applies a change to a camera's rows.
    fn change(&mut self, camera: &str, f: impl FnOnce(&mut Vec<Recording>)) {
        *self.generations.entry(camera.to_string()).or_default() += 1;
        if let Some(list) = self.cameras.get_mut(camera) {
            f(list);
        }
    }

    fn remove_entry(&mut self, id: i64) {
        if let Some(e) = self.entries.remove(&id) {
            self.cost -= e.cost();
        }
    }

    fn evict(&mut self) {
        if self.cost <= Self::BUDGET {
            return;
        }
        let mut by_age: Vec<(u64, i64)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.last_used, *id))
            .collect();
        by_age.sort_unstable();
        for (_, id) in by_age {
            if self.cost <= Self::BUDGET * 3 / 4 {
                break;
            }
            if let Some(e) = self.entries.remove(&id) {
                self.cost -= e.cost();
            }
        }
    }
}

impl Store {
    /// An HLS VOD playlist for `range` of `camera`; segment URIs are
    /// `uri_prefix` followed by the recording's path.
    ///
    /// Closed recordings' fragment tables and lines are cached, so a
    /// repeated or overlapping request reads only metadata rows.
    pub async fn vod_playlist(
        &self,
        camera: &str,
        range: TimeRange,
        uri_prefix: &str,
    ) -> Result<String, StoreError> {
        let metas = self.recordings_meta(camera, range).await?;
        let missing: Vec<i64> = {
            let mut cache = self
                .inner
                .playlists
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            metas
                .iter()
                .filter(|m| cache.get(m.id, m.bytes).is_none())
                .map(|m| m.id)
                .collect()
        };
        // Usually only the open file (its size changes every fragment):
        // fetch just those rows. A cold start reads the range in one query.
        let fetched = if missing.len() <= 4 {
            let mut rows = Vec::with_capacity(missing.len());
            for id in &missing {
                rows.extend(self.recording(*id).await?);
            }
            rows
        } else {
            self.recordings(camera, range).await?
        };
        if !fetched.is_empty() {
            let mut cache = self
                .inner
                .playlists
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for r in fetched {
                if cache.get(r.id, r.bytes).is_none() {
                    cache.insert(r.id, r.bytes, Arc::new(r.fragments));
                }
            }
        }
        let mut cache = self
            .inner
            .playlists
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let tables: Vec<Arc<Vec<FragmentEntry>>> = metas
            .iter()
            .map(|m| {
                cache
                    .get(m.id, m.bytes)
                    .map(|e| e.fragments.clone())
                    .unwrap_or_default()
            })
            .collect();
        let files: Vec<crate::hls::FileRef<'_>> = metas
            .iter()
            .zip(&tables)
            .map(|(m, t)| (m, t.as_slice()))
            .collect();
        let playlist = crate::hls::render_vod(&files, range, uri_prefix, &mut |rec, frags| {
            if rec.state != RecordingState::Complete {
                return None;
            }
            let e = cache.get(rec.id, rec.bytes)?;
            if let Some((prefix, lines)) = &e.lines
                && prefix == uri_prefix
            {
                return Some(lines.clone());
            }
            let mut text = String::with_capacity(frags.len() * 112 + 200);
            crate::hls::write_file_lines(&mut text, rec, frags, uri_prefix);
            let lines: Arc<str> = text.into();
            let old = e.cost();
            e.lines = Some((uri_prefix.to_string(), lines.clone()));
            let new = e.cost();
            cache.cost = cache.cost + new - old;
            Some(lines)
        });
        cache.evict();
        Ok(playlist)
    }

    /// An LL-HLS live playlist of the newest `window` segments of `camera`
    /// ([`crate::hls::live_playlist`]): the index's rows, and the parts the
    /// writer has appended to the open file since its last commit, from
    /// memory (`live.rs`), so a part is listed as soon as it is written.
    pub async fn live_playlist(
        &self,
        camera: &str,
        window: usize,
        uri_prefix: &str,
    ) -> Result<crate::hls::LivePlaylist, StoreError> {
        // Before the rows: see `live::merge`.
        let open = self.open_parts(camera);
        // Every file holds at least one segment: `window` files suffice.
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE camera = ? ORDER BY start_utc_ns DESC, id DESC LIMIT ?"
        ))
        .bind(camera)
        .bind(i64::try_from(window.clamp(1, 1000)).unwrap_or(1000))
        .fetch_all(&self.inner.pool)
        .await?;
        let mut recs = rows
            .iter()
            .map(row_to_recording)
            .collect::<Result<Vec<_>, _>>()?;
        recs.reverse();
        super::live::merge(&mut recs, &open);
        Ok(crate::hls::live_playlist(&recs, window, uri_prefix))
    }

    /// [`live_playlist`](Self::live_playlist), held until it answers a
    /// blocking reload `block` (RFC 8216bis 6.2.5.2): at most three target
    /// durations (`max_wait` caps it), then [`StoreError::NotYet`]. A
    /// request more than two segments past the newest is refused at once
    /// ([`StoreError::InvalidInput`]). Without `block`, no wait.
    pub async fn live_playlist_blocking(
        &self,
        camera: &str,
        window: usize,
        uri_prefix: &str,
        block: Option<crate::hls::BlockingRequest>,
        max_wait: std::time::Duration,
    ) -> Result<String, StoreError> {
        use crate::hls::Blocking;
        // Subscribe before reading, so a part written in between is not missed.
        let mut changes = self.live_changes(camera);
        let started = tokio::time::Instant::now();
        loop {
            changes.borrow_and_update();
            let p = self.live_playlist(camera, window, uri_prefix).await?;
            let Some(req) = block else {
                return Ok(p.text);
            };
            match crate::hls::blocking_state(p.edge, req) {
                Blocking::Ready => return Ok(p.text),
                Blocking::TooFar => {
                    return Err(StoreError::InvalidInput(format!(
                        "_HLS_msn {} is more than two segments past the newest ({})",
                        req.msn,
                        p.edge.map_or(-1, |e| e.msn)
                    )));
                }
                Blocking::Wait => {}
            }
            let target = p.edge.map_or(1, |e| e.target_secs.max(1));
            let wait = std::time::Duration::from_secs(3 * u64::from(target)).min(max_wait);
            let deadline = started + wait;
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // Timed out (or the store is going away).
                _ => {
                    return Err(StoreError::NotYet(format!(
                        "segment {} part {} did not appear within {} ms",
                        req.msn,
                        req.part.map_or_else(|| "-".to_string(), |p| p.to_string()),
                        wait.as_millis()
                    )));
                }
            }
        }
    }

    /// A receiver that sees every change to `camera`'s live playlist.
    pub(crate) fn live_changes(&self, camera: &str) -> tokio::sync::watch::Receiver<u64> {
        self.inner
            .live_changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(camera.to_string())
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the blocking reloads of `camera`.
    pub(crate) fn live_changed(&self, camera: &str) {
        if let Some(tx) = self
            .inner
            .live_changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(camera)
        {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// A multivariant playlist whose one variant is `media_uri` (this
    /// camera's VOD playlist over `range`, or its live one), with the
    /// `CODECS` of the files there ([`crate::hls::master_playlist`]).
    pub async fn master_playlist(
        &self,
        camera: &str,
        range: TimeRange,
        media_uri: &str,
    ) -> Result<String, StoreError> {
        let recs = self.recordings(camera, range).await?;
        Ok(crate::hls::master_playlist(&recs, media_uri))
    }

    /// Writes `range` of `camera` to `dest` as one standalone MP4, starting
    /// at the keyframe at or before the range start.
    pub async fn export(
        &self,
        camera: &str,
        range: TimeRange,
        dest: &Path,
    ) -> Result<crate::ExportSummary, StoreError> {
        let recs = self.recordings(camera, range).await?;
        let root = self.inner.root.clone();
        let dest = dest.to_path_buf();
        blocking(move || crate::export::export(&root, &recs, range, &dest)).await
    }

    /// Writes `[range]` of `camera` to `out` as one MP4, fragment by
    /// fragment, on a blocking thread (a response body, a pipe): no file,
    /// and memory stays at one fragment whatever the range. Ends with the
    /// first failed write (the reader went away).
    pub async fn export_to<W: std::io::Write + Send + 'static>(
        &self,
        camera: &str,
        range: TimeRange,
        mut out: W,
    ) -> Result<crate::ExportSummary, StoreError> {
        let recs = self.recordings(camera, range).await?;
        let root = self.inner.root.clone();
        blocking(move || {
            crate::export::export_to(&root, &recs, range, &mut out, "the export stream")
        })
        .await
    }

    /// Recordings of `camera` overlapping `range`, metadata only, from
    /// memory once the camera is loaded.
    async fn recordings_meta(
        &self,
        camera: &str,
        range: TimeRange,
    ) -> Result<Vec<Recording>, StoreError> {
        let in_range = |all: &[Recording]| -> Vec<Recording> {
            // Files of one camera do not overlap: ends are sorted like starts.
            let first = all.partition_point(|r| r.end_utc_ns <= range.start_utc_ns);
            all[first..]
                .iter()
                .take_while(|r| r.start_utc_ns < range.end_utc_ns)
                .filter(|r| range.overlaps(r.start_utc_ns, r.end_utc_ns))
                .cloned()
                .collect()
        };
        let generation = {
            let cache = self
                .inner
                .playlists
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(list) = cache.cameras.get(camera) {
                return Ok(in_range(list));
            }
            cache.generations.get(camera).copied().unwrap_or(0)
        };
        let list = sqlx::query(
            "SELECT id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, codecs, width, height, state, \
             first_seq, x'' AS fragments FROM recordings WHERE camera = ? ORDER BY start_utc_ns, id",
        )
        .bind(camera)
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(row_to_recording)
        .collect::<Result<Vec<_>, _>>()?;
        let found = in_range(&list);
        let mut cache = self
            .inner
            .playlists
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.generations.get(camera).copied().unwrap_or(0) == generation {
            cache.cameras.insert(camera.to_string(), list);
        }
        Ok(found)
    }

    /// Forgets the fragment table cached for recording `id`.
    pub(crate) fn forget_cached(&self, id: i64) {
        self.inner
            .playlists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove_entry(id);
    }

    pub(crate) fn cache_change(&self, camera: &str, f: impl FnOnce(&mut Vec<Recording>)) {
        self.inner
            .playlists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .change(camera, f);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testutil::{SEC, T0, frames, open, record, secs};
    use super::PlaylistCache;
    use crate::TimeRange;
    use crate::fragment::{FragmentEntry, PACKED_LEN};

    fn table(n: usize) -> Arc<Vec<FragmentEntry>> {
        let f = FragmentEntry {
            decode_time_90k: 0,
            duration_90k: 90_000,
            offset: 0,
            size: 1,
            frames: 30,
            keyframe: true,
        };
        Arc::new(vec![f; n])
    }

    #[test]
    fn a_cached_table_is_valid_while_the_recording_keeps_its_size() {
        let mut cache = PlaylistCache::default();
        cache.insert(1, 1000, table(3));
        assert_eq!(cache.get(1, 1000).map(|e| e.fragments.len()), Some(3));
        assert!(cache.get(1, 1200).is_none(), "the open file grew");
        assert!(cache.get(2, 1000).is_none());
        cache.insert(1, 1200, table(4));
        assert_eq!(cache.get(1, 1200).map(|e| e.fragments.len()), Some(4));
        assert_eq!(cache.cost, 4 * PACKED_LEN, "the old entry's cost went");
        cache.remove_entry(1);
        assert_eq!(cache.cost, 0);
    }

    #[test]
    fn over_budget_the_least_recently_used_go_first() {
        // Five entries of a quarter of the budget each (one shared table).
        let big = table(PlaylistCache::BUDGET / 4 / PACKED_LEN + 1);
        let mut cache = PlaylistCache::default();
        for id in 1..=5 {
            cache.insert(id, 0, big.clone());
        }
        assert!(cache.get(1, 0).is_some(), "used again: now the newest");
        cache.evict();
        let mut kept: Vec<i64> = cache.entries.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [1, 5]);
        assert!(cache.cost <= PlaylistCache::BUDGET * 3 / 4);
    }

    #[test]
    fn a_change_to_a_camera_not_loaded_still_counts() {
        let mut cache = PlaylistCache::default();
        cache.change("cam", |list| list.clear());
        assert_eq!(cache.generations.get("cam"), Some(&1));
        assert!(
            !cache.cameras.contains_key("cam"),
            "nothing loaded by a change"
        );
    }

    #[tokio::test]
    async fn a_vod_playlist_covers_the_files_of_its_range() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(180), T0).await; // files at 0, 2 and 4 s
        record(&store, "other", frames(60), T0).await;
        let all = store.recordings("cam", TimeRange::all()).await.unwrap();
        // 2.5 s .. 3.5 s: the middle file only.
        let range = TimeRange::new(T0 + 5 * SEC / 2, T0 + 7 * SEC / 2).unwrap();
        for _cold_then_cached in 0..2 {
            let p = store.vod_playlist("cam", range, "/r/").await.unwrap();
            assert!(p.contains(&all[1].path));
            assert!(!p.contains(&all[0].path) && !p.contains(&all[2].path));
            assert!(!p.contains("other/"));
            let fresh = crate::hls::vod_playlist(
                &store.recordings("cam", range).await.unwrap(),
                range,
                "/r/",
            );
            assert_eq!(p, fresh);
        }
        let none = store
            .vod_playlist("cam", secs(100, 200), "/r/")
            .await
            .unwrap();
        assert_eq!(none.matches("#EXTINF").count(), 0);
    }

    #[tokio::test]
    async fn a_live_playlist_holds_the_newest_fragments_by_their_numbers() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(120), T0).await; // 12 fragments in two files
        let p = store.live_playlist("cam", 3, "/r/").await.unwrap().text;
        assert_eq!(p.matches("#EXTINF").count(), 3);
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:9\n"), "{p}");
        let newest = &store.recordings("cam", TimeRange::all()).await.unwrap()[1];
        assert!(p.contains(&newest.path));
        assert!(!p.contains("#EXT-X-ENDLIST"), "live has no end");
        record(&store, "cam", frames(30), T0 + 4 * SEC).await;
        let p = store.live_playlist("cam", 3, "/r/").await.unwrap().text;
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:12\n"), "{p}");
    }
}
