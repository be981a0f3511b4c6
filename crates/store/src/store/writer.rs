//! The write path: a [`RecordingSession`] turns frames into fragmented MP4
//! files and index rows, in the order of `docs/design/recording.md`:
//! append each fragment (a 200 ms part) and publish it to the live playlist
//! at once; once a segment's worth is written (`flush_interval`, about 1 s),
//! `fdatasync` and commit the index row; on close, `fsync` the file and its
//! directory.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use reallive_core::EncodedFrame;
use reallive_core::time::UtcNs;

use super::live::MAX_UNFLUSHED_PARTS;
use super::{Store, blocking};
use crate::StoreError;
use crate::durable::fsync_dir;
use crate::fragment::{self, FragmentEntry};
use crate::hls::{SEGMENT_CLOSE_90K, SEGMENT_TARGET_90K, starts_segment};
use crate::model::{
    Recording, RecordingState, codec_name, file_path, ticks_to_ns, validate_camera,
};
use crate::segmenter::{Output, Segmenter};

/// How one camera's writes go ([`Store::write_stats`]).
#[derive(Debug, Default)]
pub struct WriteStats {
    /// From a fragment leaving the segmenter to it being written (and,
    /// when it completes a flush, fdatasynced and indexed).
    pub latency: reallive_core::LatencyHistogram,
    /// Bytes of fragments written.
    pub bytes: std::sync::atomic::AtomicU64,
    /// Fragments written.
    pub fragments: std::sync::atomic::AtomicU64,
    /// `fdatasync`s and `fsync`s of recording files: one when a file
    /// starts, one per flush (about one a second, `flush_interval`), one
    /// when it closes.
    pub syncs: std::sync::atomic::AtomicU64,
    /// Index commits of fragments (one per flush).
    pub commits: std::sync::atomic::AtomicU64,
    /// Bytes of fragment table those commits wrote (each rewrites the open
    /// file's whole table).
    pub index_bytes: std::sync::atomic::AtomicU64,
}

/// Whether the fragments written since the last flush, with a new one,
/// are due a flush (`StoreConfig::flush_interval`): `unflushed` of them
/// holding `unflushed_90k` of media, the new one included, which leaves its
/// segment `segment_90k` long.
fn flush_due(flush_interval: u32, unflushed: usize, unflushed_90k: u64, segment_90k: u64) -> bool {
    let n = u64::from(flush_interval.max(1));
    unflushed >= MAX_UNFLUSHED_PARTS
        || unflushed_90k >= n * SEGMENT_TARGET_90K
        // The segment is full: the next part starts another. Jittery 200 ms
        // parts make full segments a little short of 1 s.
        || (segment_90k >= SEGMENT_CLOSE_90K && unflushed_90k >= n * SEGMENT_CLOSE_90K)
}

impl Store {
    /// Starts recording `camera`. Frames go in with
    /// [`RecordingSession::write`]; files rotate on their own.
    pub fn session(&self, camera: &str) -> Result<RecordingSession, StoreError> {
        validate_camera(camera)?;
        Ok(RecordingSession {
            store: self.clone(),
            camera: camera.to_string(),
            seg: Segmenter::new(self.inner.cfg.segmenter),
            file: None,
            finished: Vec::new(),
            stats: self.write_stats(camera),
        })
    }

    /// Write figures of `camera` since the store opened (created empty on
    /// first ask).
    pub fn write_stats(&self, camera: &str) -> Arc<WriteStats> {
        self.inner
            .write_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(camera.to_string())
            .or_default()
            .clone()
    }
}

/// The file a session is writing.
#[derive(Debug)]
struct OpenFile {
    file: Option<File>,
    id: i64,
    rel: String,
    abs: PathBuf,
    start_utc_ns: i64,
    /// Bytes written (init + fragments), committed or not.
    bytes: u64,
    committed_bytes: u64,
    fragments: Vec<FragmentEntry>,
    /// Segments of `fragments` counted into the camera's media sequence.
    segments: usize,
    /// Media in the newest segment of `fragments` ([`crate::hls::segments`]).
    segment_90k: u64,
    /// Fragments written since the last flush, and their media.
    unflushed: usize,
    unflushed_90k: u64,
    /// An `fdatasync` failed: whether what was written since the last one
    /// reached the disk is unknown (a second `fsync` may report success
    /// without it).
    sync_failed: bool,
    duration_90k: i64,
}

/// Recording one camera: frames in, files out. Dropping it without
/// [`finish`](Self::finish) leaves the open file to recovery, exactly as a
/// crash would.
#[derive(Debug)]
pub struct RecordingSession {
    store: Store,
    camera: String,
    seg: Segmenter,
    file: Option<OpenFile>,
    finished: Vec<i64>,
    /// The camera's write figures, looked up once.
    stats: Arc<WriteStats>,
}

impl RecordingSession {
    /// The camera being recorded.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// Ids of the recordings closed since the last call, oldest first.
    pub fn drain_finished(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.finished)
    }

    /// Records a frame that arrived now.
    pub async fn write(&mut self, frame: EncodedFrame) -> Result<(), StoreError> {
        self.write_at(frame, UtcNs::now().0).await
    }

    /// Records a frame that arrived at `now_utc_ns`.
    pub async fn write_at(
        &mut self,
        frame: EncodedFrame,
        now_utc_ns: i64,
    ) -> Result<(), StoreError> {
        let outputs = self.seg.push(frame, now_utc_ns)?;
        for out in outputs {
            if let Err(e) = self.apply(out).await {
                // Keep what is committed; the next keyframe starts a new file.
                self.abandon_file().await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Records an audio packet timed on the video's clock; it is written
    /// with the video fragment it plays in.
    pub fn write_audio(&mut self, frame: reallive_core::AudioFrame) {
        self.seg.push_audio(frame);
    }

    /// Closes the open file cleanly; returns the ids of the recordings
    /// closed since the last [`drain_finished`](Self::drain_finished).
    pub async fn finish(mut self) -> Result<Vec<i64>, StoreError> {
        for out in self.seg.finish() {
            self.apply(out).await?;
        }
        Ok(std::mem::take(&mut self.finished))
    }

    async fn apply(&mut self, out: Output) -> Result<(), StoreError> {
        match out {
            Output::StartFile {
                start_utc_ns,
                init,
                params,
            } => self.start_file(start_utc_ns, init, &params).await,
            Output::Fragment(frag) => {
                let started = std::time::Instant::now();
                let f = self
                    .file
                    .as_mut()
                    .ok_or_else(|| StoreError::Corrupt("fragment without an open file".into()))?;
                let entry = FragmentEntry {
                    decode_time_90k: frag.decode_time_90k,
                    duration_90k: u32::try_from(frag.duration_90k).unwrap_or(u32::MAX),
                    offset: f.bytes,
                    size: frag.data.len() as u32,
                    frames: frag.frames,
                    keyframe: frag.keyframe,
                };
                let segment_90k = if starts_segment(f.fragments.last(), f.segment_90k, &entry) {
                    0
                } else {
                    f.segment_90k
                } + u64::from(entry.duration_90k);
                // When this fragment completes a flush, write and fdatasync in
                // one trip to the blocking pool.
                let sync = flush_due(
                    self.store.inner.cfg.flush_interval,
                    f.unflushed + 1,
                    f.unflushed_90k + u64::from(entry.duration_90k),
                    segment_90k,
                );
                let mut written = self.append(&frag.data, sync).await;
                if written.as_ref().is_err_and(StoreError::is_disk_full) {
                    // Recording does not stop for a full disk: free the
                    // oldest footage and try once more.
                    tracing::warn!(camera = %self.camera, "disk full; running emergency retention");
                    let headroom = self.store.inner.cfg.expected_file_bytes;
                    self.store.run_retention(headroom).await?;
                    written = self.append(&frag.data, sync).await;
                }
                written?;
                let f = self
                    .file
                    .as_mut()
                    .ok_or_else(|| StoreError::Corrupt("fragment without an open file".into()))?;
                f.fragments.push(entry);
                f.bytes += frag.data.len() as u64;
                f.duration_90k += frag.duration_90k as i64;
                f.segment_90k = segment_90k;
                f.unflushed += 1;
                f.unflushed_90k += u64::from(entry.duration_90k);
                // Listed in the live playlist now, synced or not: its bytes
                // are in the file for every reader.
                self.store.part_written(&self.camera, f.id, entry);
                if sync {
                    self.commit().await?;
                }
                let stats = &self.stats;
                stats.latency.record(started.elapsed());
                stats
                    .bytes
                    .fetch_add(frag.data.len() as u64, Ordering::Relaxed);
                stats.fragments.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Output::EndFile { end_utc_ns, .. } => self.end_file(end_utc_ns).await,
            Output::Clamped { step_90k } => {
                tracing::warn!(
                    camera = %self.camera,
                    step_ms = step_90k / 90,
                    "camera timestamps went backwards; clamping (logged once per session)"
                );
                Ok(())
            }
        }
    }

    /// Appends `data` to the open file (and `fdatasync`s it when `sync`).
    /// A failed write is undone: the file is cut back to where it was, so
    /// a retry or recovery sees no partial fragment.
    async fn append(&mut self, data: &bytes::Bytes, sync: bool) -> Result<(), StoreError> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("fragment without an open file".into()))?;
        let mut file = f
            .file
            .take()
            .ok_or_else(|| StoreError::Corrupt("file handle lost".into()))?;
        let (data, abs, offset) = (data.clone(), f.abs.clone(), f.bytes);
        let (file, result, sync_failed) = blocking(move || {
            let mut sync_failed = false;
            let r = file.write_all(&data).and_then(|()| {
                if !sync {
                    return Ok(());
                }
                let r = file.sync_data();
                sync_failed = r.is_err();
                r
            });
            if r.is_err() {
                use std::io::Seek;
                let _ = file
                    .set_len(offset)
                    .and_then(|()| file.seek(std::io::SeekFrom::Start(offset)));
            }
            Ok((
                file,
                r.map_err(|e| StoreError::io(format!("writing {}", abs.display()), e)),
                sync_failed,
            ))
        })
        .await?;
        f.file = Some(file);
        f.sync_failed |= sync_failed;
        if sync && !sync_failed {
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn start_file(
        &mut self,
        start_utc_ns: i64,
        init: bytes::Bytes,
        params: &reallive_core::CodecParameters,
    ) -> Result<(), StoreError> {
        self.store.ensure_space().await?;
        let info = params.stream_info()?;
        let root = self.store.inner.root.clone();
        let camera = self.camera.clone();
        let init_len = init.len() as u64;
        let codecs = crate::mp4::codecs(&init);
        let (file, rel, abs) = blocking(move || {
            for suffix in 0..1000 {
                let rel = file_path(&camera, start_utc_ns, suffix);
                let abs = root.join(&rel);
                let dir = abs
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.clone());
                let fresh_dir = !dir.exists();
                reallive_core::fs::create_private_dir(&dir)
                    .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
                let mut file = match OpenOptions::new().write(true).create_new(true).open(&abs) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(StoreError::io(format!("creating {}", abs.display()), e)),
                };
                file.write_all(&init)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| StoreError::io(format!("writing {}", abs.display()), e))?;
                // Make the new directory entries durable, up to the root.
                let mut d = dir.as_path();
                loop {
                    fsync_dir(d)?;
                    if !fresh_dir || d == root {
                        break;
                    }
                    match d.parent() {
                        Some(p) if p.starts_with(&root) => d = p,
                        _ => break,
                    }
                }
                let rel = rel.to_string_lossy().replace('\\', "/");
                return Ok((file, rel, abs));
            }
            Err(StoreError::InvalidInput(
                "too many recordings start in the same millisecond".into(),
            ))
        })
        .await?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        let first_seq = self.store.take_seq(&self.camera, 0);
        let r = sqlx::query(
            "INSERT INTO recordings (camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, codecs, width, \
             height, state, first_seq, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'writing', ?, ?)",
        )
        .bind(&self.camera)
        .bind(&rel)
        .bind(start_utc_ns)
        .bind(start_utc_ns)
        .bind(init_len as i64)
        .bind(init_len as i64)
        .bind(codec_name(info.codec))
        .bind(&codecs)
        .bind(i64::from(info.width))
        .bind(i64::from(info.height))
        .bind(first_seq)
        .bind(Vec::<u8>::new())
        .execute(&self.store.inner.pool)
        .await?;
        let id = r.last_insert_rowid();
        let meta = Recording {
            id,
            camera: self.camera.clone(),
            path: rel.clone(),
            start_utc_ns,
            end_utc_ns: start_utc_ns,
            bytes: init_len,
            init_bytes: init_len,
            codec: info.codec,
            codecs,
            width: info.width,
            height: info.height,
            state: RecordingState::Writing,
            first_seq,
            fragments: Vec::new(),
        };
        self.store.cache_change(&self.camera, |list| {
            let at = list.partition_point(|r| (r.start_utc_ns, r.id) < (start_utc_ns, id));
            list.insert(at, meta);
        });
        self.file = Some(OpenFile {
            file: Some(file),
            id,
            rel,
            abs,
            start_utc_ns,
            bytes: init_len,
            committed_bytes: init_len,
            fragments: Vec::new(),
            segments: 0,
            segment_90k: 0,
            unflushed: 0,
            unflushed_90k: 0,
            sync_failed: false,
            duration_90k: 0,
        });
        Ok(())
    }

    /// `fdatasync`, then commit the fragments written since the last flush.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if f.unflushed == 0 {
            return Ok(());
        }
        let file = f
            .file
            .take()
            .ok_or_else(|| StoreError::Corrupt("file handle lost".into()))?;
        let abs = f.abs.clone();
        let (file, synced) = blocking(move || {
            let r = file.sync_data();
            Ok((
                file,
                r.map_err(|e| StoreError::io(format!("syncing {}", abs.display()), e)),
            ))
        })
        .await?;
        f.file = Some(file);
        f.sync_failed |= synced.is_err();
        synced?;
        self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        self.commit().await
    }

    /// Commits the synced fragments to the index (their bytes are on disk).
    /// The live playlist already lists them (`live.rs`): nothing to wake.
    async fn commit(&mut self) -> Result<(), StoreError> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let segments = crate::hls::segment_count(&f.fragments);
        let new = (segments - f.segments.min(segments)) as i64;
        let table = fragment::pack(&f.fragments);
        let table_len = table.len() as u64;
        sqlx::query("UPDATE recordings SET end_utc_ns = ?, bytes = ?, fragments = ? WHERE id = ?")
            .bind(f.start_utc_ns + ticks_to_ns(f.duration_90k))
            .bind(f.bytes as i64)
            .bind(table)
            .bind(f.id)
            .execute(&self.store.inner.pool)
            .await?;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .index_bytes
            .fetch_add(table_len, Ordering::Relaxed);
        self.store.parts_committed(&self.camera, f.id);
        f.committed_bytes = f.bytes;
        f.unflushed = 0;
        f.unflushed_90k = 0;
        f.segments = segments;
        let (id, end, bytes) = (f.id, f.start_utc_ns + ticks_to_ns(f.duration_90k), f.bytes);
        self.store.cache_change(&self.camera, |list| {
            if let Some(r) = list.iter_mut().rev().find(|r| r.id == id) {
                r.end_utc_ns = end;
                r.bytes = bytes;
            }
        });
        self.store.take_seq(&self.camera, new);
        Ok(())
    }

    async fn end_file(&mut self, end_utc_ns: i64) -> Result<(), StoreError> {
        self.flush().await?;
        let Some(mut f) = self.file.take() else {
            return Ok(());
        };
        if let Some(file) = f.file.take() {
            let abs = f.abs.clone();
            blocking(move || {
                file.sync_all()
                    .map_err(|e| StoreError::io(format!("syncing {}", abs.display()), e))?;
                match abs.parent() {
                    Some(dir) => fsync_dir(dir),
                    None => Ok(()),
                }
            })
            .await?;
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        sqlx::query("UPDATE recordings SET state = 'complete', end_utc_ns = ? WHERE id = ?")
            .bind(end_utc_ns)
            .bind(f.id)
            .execute(&self.store.inner.pool)
            .await?;
        let id = f.id;
        self.store.cache_change(&self.camera, |list| {
            if let Some(r) = list.iter_mut().rev().find(|r| r.id == id) {
                r.end_utc_ns = end_utc_ns;
                r.state = RecordingState::Complete;
            }
        });
        self.store.parts_closed(&self.camera, id);
        self.store.live_changed(&self.camera);
        tracing::debug!(camera = %self.camera, path = %f.rel, fragments = f.fragments.len(), "recording closed");
        self.finished.push(f.id);
        Ok(())
    }

    /// After a failed write: close the file at its last fragment known to
    /// be whole on disk, so the index and the file agree; the segmenter
    /// starts over at the next keyframe. The fragments written since the
    /// last flush are kept if they sync now, unless an `fdatasync` already
    /// failed: whether they reached the disk is then unknown (a later
    /// `fsync` may succeed without them), so the file is cut back to what
    /// the index holds.
    async fn abandon_file(&mut self) {
        self.seg.abort();
        let Some(mut f) = self.file.take() else {
            return;
        };
        // Off the live playlist before the file may be cut back.
        self.store.parts_closed(&self.camera, f.id);
        let (committed, written) = (f.committed_bytes, f.bytes);
        let try_written = !f.sync_failed && written > committed;
        let kept = match f.file.take() {
            Some(file) => blocking(move || {
                if try_written && file.set_len(written).and_then(|()| file.sync_all()).is_ok() {
                    return Ok(written);
                }
                let _ = file.set_len(committed).and_then(|()| file.sync_all());
                Ok(committed)
            })
            .await
            .unwrap_or(committed),
            None => committed,
        };
        f.fragments.retain(|x| x.end() <= kept);
        // The kept parts' segments count into the camera's media sequence,
        // as a commit's would: the next file's numbers follow them.
        let segments = crate::hls::segment_count(&f.fragments);
        self.store
            .take_seq(&self.camera, segments.saturating_sub(f.segments) as i64);
        let duration: i64 = f.fragments.iter().map(|x| i64::from(x.duration_90k)).sum();
        let done = sqlx::query(
            "UPDATE recordings SET state = 'complete', bytes = ?, end_utc_ns = ?, fragments = ? WHERE id = ?",
        )
        .bind(kept as i64)
        .bind(f.start_utc_ns + ticks_to_ns(duration))
        .bind(fragment::pack(&f.fragments))
        .bind(f.id)
        .execute(&self.store.inner.pool)
        .await;
        match done {
            Ok(_) => {
                let (id, end) = (f.id, f.start_utc_ns + ticks_to_ns(duration));
                self.store.cache_change(&self.camera, |list| {
                    if let Some(r) = list.iter_mut().rev().find(|r| r.id == id) {
                        r.end_utc_ns = end;
                        r.bytes = kept;
                        r.state = RecordingState::Complete;
                    }
                });
                self.store.live_changed(&self.camera);
            }
            // Left as 'writing': recovery will close it at next open.
            Err(e) => {
                tracing::warn!(camera = %self.camera, error = %e, "could not close a failed recording")
            }
        }
    }
}

impl Drop for RecordingSession {
    /// A session dropped with its file open (a crash, as far as the file
    /// goes: recovery closes it) takes the file's uncommitted parts off
    /// the live playlist; they are in the file, and recovery indexes them.
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            self.store.parts_closed(&self.camera, f.id);
            self.store.live_changed(&self.camera);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::testutil::{T0, arrival, frames, open, record};
    use crate::{RecordingState, TimeRange};

    fn file_len(store: &crate::Store, rel: &str) -> u64 {
        std::fs::metadata(store.root().join(rel)).unwrap().len()
    }

    #[tokio::test]
    async fn closed_files_are_reported_as_they_close() {
        let (_dir, store) = open(|c| c).await;
        let mut s = store.session("cam").unwrap();
        let all = frames(130);
        for f in all[..70].iter().cloned() {
            let now = arrival(&f, T0);
            s.write_at(f, now).await.unwrap();
        }
        // Frame 60 was a keyframe 2 s in: the first file closed there.
        let first = s.drain_finished();
        assert_eq!(first.len(), 1);
        assert!(s.drain_finished().is_empty(), "drained once");
        let open_now = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert_eq!(
            open_now.iter().map(|r| r.state).collect::<Vec<_>>(),
            [RecordingState::Complete, RecordingState::Writing]
        );
        // What the index holds of the open file is in it; the file may hold
        // more (parts written since the last flush, about a second).
        assert!(open_now[1].bytes <= file_len(&store, &open_now[1].path));
        for f in all[70..].iter().cloned() {
            let now = arrival(&f, T0);
            s.write_at(f, now).await.unwrap();
        }
        let rest = s.finish().await.unwrap();
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        let ids: Vec<i64> = first.iter().chain(&rest).copied().collect();
        assert_eq!(ids, recs.iter().map(|r| r.id).collect::<Vec<_>>());
        assert!(recs.iter().all(|r| r.state == RecordingState::Complete));
    }

    /// When the parts written since the last flush are due one: a second
    /// of them, or 0.9 s when the newest fills its segment, or too many to
    /// keep in the live list.
    #[test]
    fn a_flush_comes_once_a_segment_s_worth_is_written() {
        use super::{MAX_UNFLUSHED_PARTS, flush_due};
        let ms = |n: u64| n * 90;
        // (flush_interval, parts waiting, their media, newest segment's media, due)
        let cases = [
            // 200 ms parts, GOP of 1 s: the fifth fills the segment.
            (1, 4, ms(800), ms(800), false),
            (1, 5, ms(1000), ms(1000), true),
            // Jittery parts fill it a little short of 1 s.
            (1, 5, ms(950), ms(950), true),
            (1, 5, ms(899), ms(899), false),
            // GOPs of 1/3 s: segments never fill; a second of them is due.
            (1, 5, ms(867), ms(200), false),
            (1, 6, ms(1000), ms(333), true),
            // A keyframe cut the segment short after a flush: 0.9 s of
            // parts across two segments wait for the whole second.
            (1, 5, ms(950), ms(400), false),
            // Two segments a flush.
            (2, 5, ms(1000), ms(1000), false),
            (2, 10, ms(2000), ms(1000), true),
            // 0 is taken as 1.
            (0, 5, ms(1000), ms(1000), true),
            // One-frame parts (a keyframe every frame): the list's bound.
            (1, MAX_UNFLUSHED_PARTS - 1, ms(516), ms(16), false),
            (1, MAX_UNFLUSHED_PARTS, ms(533), ms(16), true),
        ];
        for (i, (interval, n, media, segment, due)) in cases.into_iter().enumerate() {
            assert_eq!(flush_due(interval, n, media, segment), due, "case {i}");
        }
    }

    /// The index learns of the parts once a second: what it holds is on
    /// disk, the parts after it are in the file (and the live playlist)
    /// already, and `finish` commits the rest.
    #[tokio::test]
    async fn the_index_follows_the_file_once_a_second() {
        let (_dir, store) = open(|c| c).await;
        let mut s = store.session("cam").unwrap();
        // Parts of 6 and 4 frames (keyframes every 10): frames 6, 10, ..,
        // 36 and 40 close eight parts; the sixth brings 1 s (30 frames),
        // so six are flushed and two wait.
        for f in frames(41) {
            let now = arrival(&f, T0);
            s.write_at(f, now).await.unwrap();
        }
        let r = &store.recordings("cam", TimeRange::all()).await.unwrap()[0];
        assert_eq!(r.fragments.len(), 6);
        assert_eq!(r.bytes, r.fragments[5].end());
        assert!(
            file_len(&store, &r.path) > r.bytes,
            "the seventh and eighth are written, not committed"
        );
        let live = store.live_playlist("cam", 6, "/r/").await.unwrap();
        assert_eq!(live.text.matches("#EXT-X-PART:").count(), 8);
        let stats = store.write_stats("cam");
        // The file's creation, and one flush.
        assert_eq!(stats.syncs.load(Ordering::Relaxed), 2);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
        s.finish().await.unwrap();
        let r = &store.recordings("cam", TimeRange::all()).await.unwrap()[0];
        assert_eq!(r.fragments.len(), 9, "and the one-frame tail");
        assert_eq!(r.bytes, file_len(&store, &r.path));
        assert_eq!(r.end_utc_ns, T0 + 41 * crate::store::testutil::SEC / 30);
        // The last flush, and the close.
        assert_eq!(stats.syncs.load(Ordering::Relaxed), 4);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 2);
        assert_eq!(
            stats.index_bytes.load(Ordering::Relaxed),
            (6 + 9) * crate::fragment::PACKED_LEN as u64
        );
    }

    /// A session dropped mid-file (a crash, for the file) leaves no parts
    /// in the live list: the playlist lists what the index holds.
    #[tokio::test]
    async fn a_dropped_session_takes_its_parts_off_the_live_list() {
        let (_dir, store) = open(|c| c).await;
        let mut s = store.session("cam").unwrap();
        for f in frames(41) {
            let now = arrival(&f, T0);
            s.write_at(f, now).await.unwrap();
        }
        assert_eq!(store.open_parts("cam")[0].parts.len(), 2);
        drop(s);
        assert!(store.open_parts("cam").is_empty());
        let live = store.live_playlist("cam", 6, "/r/").await.unwrap();
        assert_eq!(live.text.matches("#EXT-X-PART:").count(), 6);
    }

    /// A flush whose commit fails (here the index refuses it) closes the
    /// file at its last whole part: the parts written since the previous
    /// flush are kept (they sync), not cut back to what the index held.
    #[tokio::test]
    async fn a_failed_commit_keeps_the_parts_already_written() {
        let (_dir, store) = open(|c| c).await;
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE UPDATE OF fragments ON recordings \
             WHEN NEW.state = 'writing' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&store.inner.pool)
        .await
        .unwrap();
        let mut s = store.session("cam").unwrap();
        let mut failed = None;
        for (i, f) in frames(41).into_iter().enumerate() {
            let now = arrival(&f, T0);
            if s.write_at(f, now).await.is_err() {
                failed = Some(i);
                break;
            }
        }
        // Frame 30 closes the sixth part, 1 s: its flush is refused.
        assert_eq!(failed, Some(30));
        let r = &store.recordings("cam", TimeRange::all()).await.unwrap()[0];
        assert_eq!(r.state, RecordingState::Complete);
        assert_eq!(r.fragments.len(), 6, "every part written");
        assert_eq!(r.bytes, file_len(&store, &r.path));
        let scanned =
            crate::scan::scan(&mut std::fs::File::open(store.root().join(&r.path)).unwrap())
                .unwrap();
        assert_eq!(scanned.fragments, r.fragments);
        assert!(store.open_parts("cam").is_empty());
        // The index takes commits again: the next keyframe (frame 40)
        // starts a file whose segment numbers follow the kept ones.
        sqlx::query("DROP TRIGGER refuse")
            .execute(&store.inner.pool)
            .await
            .unwrap();
        for f in frames(70).into_iter().skip(31) {
            let now = arrival(&f, T0);
            s.write_at(f, now).await.unwrap();
        }
        s.finish().await.unwrap();
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[1].first_seq,
            recs[0].first_seq + crate::hls::segment_count(&recs[0].fragments) as i64
        );
    }

    #[tokio::test]
    async fn write_stats_count_what_reached_the_files() {
        let (_dir, store) = open(|c| c).await;
        record(&store, "cam", frames(90), T0).await;
        let recs = store.recordings("cam", TimeRange::all()).await.unwrap();
        let stats = store.write_stats("cam");
        let fragments: usize = recs.iter().map(|r| r.fragments.len()).sum();
        let bytes: u64 = recs.iter().map(|r| r.bytes - r.init_bytes).sum();
        assert_eq!(stats.fragments.load(Ordering::Relaxed), fragments as u64);
        assert_eq!(stats.bytes.load(Ordering::Relaxed), bytes);
        assert_eq!(
            store.write_stats("other").fragments.load(Ordering::Relaxed),
            0
        );
    }

    /// Two sessions of one camera starting in the same millisecond (a
    /// restart racing the old session) get a file each.
    #[tokio::test]
    async fn files_starting_in_the_same_millisecond_get_their_own_paths() {
        let (_dir, store) = open(|c| c).await;
        let mut a = store.session("cam").unwrap();
        let mut b = store.session("cam").unwrap();
        for f in frames(15) {
            let now = arrival(&f, T0);
            a.write_at(f.clone(), now).await.unwrap();
            b.write_at(f, now).await.unwrap();
        }
        a.finish().await.unwrap();
        b.finish().await.unwrap();
        let mut paths: Vec<String> = store
            .recordings("cam", TimeRange::all())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "cam/2025/11/21/20251121T044000.000Z-1.mp4",
                "cam/2025/11/21/20251121T044000.000Z.mp4"
            ]
        );
    }
}
