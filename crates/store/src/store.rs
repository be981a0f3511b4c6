//! The on-disk store: fragmented MP4 files under `recordings/`, indexed in
//! SQLite, with the write order, recovery and retention of
//! `docs/design/recording.md`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reallive_core::EncodedFrame;
use reallive_core::time::UtcNs;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio_util::sync::CancellationToken;

use crate::StoreError;
use crate::fragment::{self, FragmentEntry};
use crate::model::{
    Recording, RecordingState, TimeRange, codec_name, file_path, parse_codec, start_from_file_name,
    ticks_to_ns, validate_camera,
};
use crate::retention::{self, Candidate, DiskSpace, LockedRange, RetentionPolicy};
use crate::scan::{self, ScanError};
use crate::segmenter::{Output, Segmenter, SegmenterConfig};

/// How a store behaves.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Holds `index.sqlite` and `recordings/`.
    pub data_dir: PathBuf,
    /// Fragment and file lengths, gap thresholds.
    pub segmenter: SegmenterConfig,
    /// Fragments per `fdatasync` + index commit (default 1: every fragment).
    pub flush_interval: u32,
    /// What to delete, and when.
    pub retention: RetentionPolicy,
    /// Space to free ahead of a new file (default 30 MB: 60 s at 4 Mbit/s).
    pub expected_file_bytes: u64,
    /// Use these figures instead of asking the file system, for tests and
    /// simulations of a full disk.
    pub disk_override: Option<DiskSpace>,
}

impl StoreConfig {
    /// Defaults for a store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            segmenter: SegmenterConfig::default(),
            flush_interval: 1,
            retention: RetentionPolicy::default(),
            expected_file_bytes: 30_000_000,
            disk_override: None,
        }
    }
}

/// What recovery did when the store opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// `writing` recordings repaired and closed.
    pub repaired: u64,
    /// Fragments found in files but missing from the index, now indexed.
    pub fragments_recovered: u64,
    /// Fragments the index claimed but the files lacked.
    pub fragments_dropped: u64,
    /// Bytes of partial tails cut off.
    pub bytes_truncated: u64,
    /// Files on disk that had no row, now indexed.
    pub files_indexed: u64,
    /// Unreadable files moved to `.quarantine/`.
    pub files_quarantined: u64,
    /// Rows whose file was gone, removed.
    pub rows_removed: u64,
    /// Deletions left half-done by a crash, finished.
    pub garbage_finished: u64,
}

/// What one retention pass deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Recordings deleted.
    pub deleted: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

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
}

/// An event to record ([`Store::add_event`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The store's name of the camera.
    pub camera: String,
    /// `motion`, `trigger`, ...
    pub kind: String,
    /// When it began.
    pub start_utc_ns: i64,
    /// When it ended, if it has.
    pub end_utc_ns: Option<i64>,
    /// Its peak score (motion: percent of the zone that changed).
    pub score: Option<f32>,
    /// The zone of the peak.
    pub zone: Option<String>,
}

/// A recorded event ([`Store::events`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Its id.
    pub id: i64,
    /// The store's name of the camera.
    pub camera: String,
    /// `motion`, `trigger`, ...
    pub kind: String,
    /// When it began.
    pub start_utc_ns: i64,
    /// When it ended; `None` while open.
    pub end_utc_ns: Option<i64>,
    /// Its peak score.
    pub score: Option<f32>,
    /// The zone of the peak.
    pub zone: Option<String>,
}

/// What one camera's recordings take ([`Store::usage`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraUsage {
    /// The store's name of the camera.
    pub camera: String,
    /// Recordings kept.
    pub recordings: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The start of the oldest (UTC ns).
    pub oldest_utc_ns: Option<i64>,
    /// The end of the newest (UTC ns).
    pub newest_utc_ns: Option<i64>,
}

/// The recording store. Cheap to clone; all clones share one index.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    cfg: StoreConfig,
    pub(crate) root: PathBuf,
    pub(crate) pool: SqlitePool,
    /// Next camera-wide fragment number per camera (live HLS media sequence).
    next_seq: Mutex<HashMap<String, i64>>,
    /// Write figures per camera.
    write_stats: Mutex<HashMap<String, Arc<WriteStats>>>,
    /// One retention pass at a time.
    retention: tokio::sync::Mutex<()>,
    playlists: Mutex<PlaylistCache>,
}

const QUARANTINE: &str = ".quarantine";

/// Fragment tables and rendered playlist lines of recordings, so a playlist
/// over a day of footage reads no BLOBs and renders only its two edge
/// files. Entries are valid while the recording's committed size matches.
#[derive(Debug, Default)]
struct PlaylistCache {
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

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Corrupt(format!("blocking task failed: {e}")))?
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing directory {}", dir.display()), e))
}

/// Free and total bytes of the file system holding `dir`.
pub fn disk_space(dir: &Path) -> Result<DiskSpace, StoreError> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| StoreError::io(format!("statvfs {}", dir.display()), e.into()))?;
    Ok(DiskSpace {
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
    })
}

pub(crate) fn row_to_recording(r: &sqlx::sqlite::SqliteRow) -> Result<Recording, StoreError> {
    let blob: Vec<u8> = r.try_get("fragments")?;
    Ok(Recording {
        id: r.try_get("id")?,
        camera: r.try_get("camera")?,
        path: r.try_get("path")?,
        start_utc_ns: r.try_get("start_utc_ns")?,
        end_utc_ns: r.try_get("end_utc_ns")?,
        bytes: r.try_get::<i64, _>("bytes")? as u64,
        init_bytes: r.try_get::<i64, _>("init_bytes")? as u64,
        codec: parse_codec(r.try_get::<&str, _>("codec")?),
        width: r.try_get::<i64, _>("width")? as u32,
        height: r.try_get::<i64, _>("height")? as u32,
        state: RecordingState::parse(r.try_get::<&str, _>("state")?),
        first_seq: r.try_get("first_seq")?,
        fragments: fragment::unpack(&blob)?,
    })
}

/// The columns `row_to_recording` reads, as a literal for `concat!`.
macro_rules! recording_columns {
    () => {
        "id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, width, height, state, first_seq, \
         fragments"
    };
}

impl Store {
    /// Opens (creating if needed) the store in `cfg.data_dir`, and runs
    /// recovery before returning.
    pub async fn open(cfg: StoreConfig) -> Result<(Store, RecoveryReport), StoreError> {
        let root = cfg.data_dir.join("recordings");
        let data_dir = cfg.data_dir.clone();
        let root2 = root.clone();
        blocking(move || {
            fs::create_dir_all(&root2)
                .map_err(|e| StoreError::io(format!("creating {}", root2.display()), e))?;
            fsync_dir(&data_dir)
        })
        .await?;
        let opts = SqliteConnectOptions::new()
            .filename(cfg.data_dir.join("index.sqlite"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit can be lost to power loss, never torn;
            // recovery re-reads what the files hold, so nothing committed to
            // a file is lost with it.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let store = Store {
            inner: Arc::new(Inner {
                cfg,
                root,
                pool,
                next_seq: Mutex::new(HashMap::new()),
                write_stats: Mutex::new(HashMap::new()),
                retention: tokio::sync::Mutex::new(()),
                playlists: Mutex::new(PlaylistCache::default()),
            }),
        };
        let report = store.recover().await?;
        store.load_sequences().await?;
        Ok((store, report))
    }

    /// The directory recordings live under; every recording path is relative to it.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Closes the index cleanly (checkpointing the WAL).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    async fn load_sequences(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT camera, MAX(first_seq + length(fragments) / 28) AS next FROM recordings GROUP BY camera",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let mut seqs = self
            .inner
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for r in rows {
            seqs.insert(r.try_get("camera")?, r.try_get::<i64, _>("next")?);
        }
        Ok(())
    }

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

    /// Recordings of `camera` overlapping `range`, oldest first, with their fragments.
    pub async fn recordings(
        &self,
        camera: &str,
        range: TimeRange,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE camera = ? AND start_utc_ns < ? AND end_utc_ns > ? ORDER BY start_utc_ns, id"
        ))
        .bind(camera)
        .bind(range.end_utc_ns)
        .bind(range.start_utc_ns)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(row_to_recording).collect()
    }

    /// One recording by id.
    pub async fn recording(&self, id: i64) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.as_ref().map(row_to_recording).transpose()
    }

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

    /// An HLS live playlist of the newest `window` fragments of `camera`.
    pub async fn live_playlist(
        &self,
        camera: &str,
        window: usize,
        uri_prefix: &str,
    ) -> Result<String, StoreError> {
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
        Ok(crate::hls::live_playlist(&recs, window, uri_prefix))
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

    /// Recordings, bytes and the time span held, per camera.
    pub async fn usage(&self) -> Result<Vec<CameraUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT camera, COUNT(*) AS n, SUM(bytes) AS bytes, MIN(start_utc_ns) AS oldest, \
             MAX(end_utc_ns) AS newest FROM recordings GROUP BY camera ORDER BY camera",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CameraUsage {
                    camera: r.try_get("camera")?,
                    recordings: r.try_get::<i64, _>("n")? as u64,
                    bytes: r.try_get::<Option<i64>, _>("bytes")?.unwrap_or(0) as u64,
                    oldest_utc_ns: r.try_get("oldest")?,
                    newest_utc_ns: r.try_get("newest")?,
                })
            })
            .collect()
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

    /// Free and total bytes where the recordings are.
    pub async fn disk_space(&self) -> Result<DiskSpace, StoreError> {
        self.disk().await
    }

    /// Every camera with recordings.
    pub async fn cameras(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT camera FROM recordings ORDER BY camera")
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("camera")?)).collect()
    }

    /// Records an event (`kind` such as `motion` or `trigger`) that began at
    /// `start_utc_ns`; `end_utc_ns` may follow with [`end_event`](Self::end_event).
    pub async fn add_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        validate_camera(&event.camera)?;
        let r = sqlx::query(
            "INSERT INTO events (camera, kind, start_utc_ns, end_utc_ns, score, zone) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&event.camera)
        .bind(&event.kind)
        .bind(event.start_utc_ns)
        .bind(event.end_utc_ns)
        .bind(event.score.map(f64::from))
        .bind(&event.zone)
        .execute(&self.inner.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    /// Closes event `id` at `end_utc_ns`, with its peak score and zone.
    pub async fn end_event(
        &self,
        id: i64,
        end_utc_ns: i64,
        score: f32,
        zone: &str,
    ) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE events SET end_utc_ns = ?, score = ?, zone = ? WHERE id = ?")
            .bind(end_utc_ns)
            .bind(f64::from(score))
            .bind(zone)
            .bind(id)
            .execute(&self.inner.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("event {id}")));
        }
        Ok(())
    }

    /// Events of `camera` overlapping `range`, oldest first (an open event
    /// overlaps everything after its start).
    pub async fn events(&self, camera: &str, range: TimeRange) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, camera, kind, start_utc_ns, end_utc_ns, score, zone FROM events \
             WHERE camera = ? AND start_utc_ns < ? AND (end_utc_ns IS NULL OR end_utc_ns > ?) \
             ORDER BY start_utc_ns, id",
        )
        .bind(camera)
        .bind(range.end_utc_ns)
        .bind(range.start_utc_ns)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    id: r.try_get("id")?,
                    camera: r.try_get("camera")?,
                    kind: r.try_get("kind")?,
                    start_utc_ns: r.try_get("start_utc_ns")?,
                    end_utc_ns: r.try_get("end_utc_ns")?,
                    score: r.try_get::<Option<f64>, _>("score")?.map(|s| s as f32),
                    zone: r.try_get("zone")?,
                })
            })
            .collect()
    }

    /// Protects `range` of `camera` from retention; returns the lock's id.
    pub async fn lock(
        &self,
        camera: &str,
        range: TimeRange,
        reason: &str,
    ) -> Result<i64, StoreError> {
        validate_camera(camera)?;
        let r = sqlx::query(
            "INSERT INTO locks (camera, start_utc_ns, end_utc_ns, reason) VALUES (?, ?, ?, ?)",
        )
        .bind(camera)
        .bind(range.start_utc_ns)
        .bind(range.end_utc_ns)
        .bind(reason)
        .execute(&self.inner.pool)
        .await?;
        Ok(r.last_insert_rowid())
    }

    /// Removes a lock. Unknown ids are an error.
    pub async fn unlock(&self, lock_id: i64) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM locks WHERE id = ?")
            .bind(lock_id)
            .execute(&self.inner.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("lock {lock_id}")));
        }
        Ok(())
    }

    /// Deletes a complete recording: its row goes to `garbage`, then the file,
    /// then the garbage row.
    pub async fn delete(&self, recording_id: i64) -> Result<u64, StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        let row = sqlx::query("SELECT camera, path, bytes, state FROM recordings WHERE id = ?")
            .bind(recording_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("recording {recording_id}")))?;
        let camera: String = row.try_get("camera")?;
        let path: String = row.try_get("path")?;
        let bytes: i64 = row.try_get("bytes")?;
        if row.try_get::<&str, _>("state")? == "writing" {
            return Err(StoreError::InvalidInput(format!(
                "recording {recording_id} is still being written"
            )));
        }
        sqlx::query("INSERT OR REPLACE INTO garbage (path, marked_at_utc_ns) VALUES (?, ?)")
            .bind(&path)
            .bind(UtcNs::now().0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recordings WHERE id = ?")
            .bind(recording_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Forget what was cached under the id (ids are never reused).
        self.cache_change(&camera, |list| list.retain(|r| r.id != recording_id));
        self.inner
            .playlists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove_entry(recording_id);
        self.unlink_garbage(&path).await?;
        Ok(bytes as u64)
    }

    pub(crate) async fn unlink_garbage(&self, rel: &str) -> Result<(), StoreError> {
        let abs = self.inner.root.join(rel);
        blocking(move || match fs::remove_file(&abs) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(format!("deleting {}", abs.display()), e)),
        })
        .await?;
        sqlx::query("DELETE FROM garbage WHERE path = ?")
            .bind(rel)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
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
            "SELECT id, camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, width, height, state, \
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

    /// Runs one retention pass, freeing `headroom_bytes` beyond the floor.
    pub async fn run_retention(&self, headroom_bytes: u64) -> Result<RetentionReport, StoreError> {
        let _one = self.inner.retention.lock().await;
        let rows = sqlx::query(
            "SELECT id, camera, start_utc_ns, end_utc_ns, bytes, state FROM recordings",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let candidates = rows
            .iter()
            .map(|r| {
                Ok(Candidate {
                    id: r.try_get("id")?,
                    camera: r.try_get("camera")?,
                    start_utc_ns: r.try_get("start_utc_ns")?,
                    end_utc_ns: r.try_get("end_utc_ns")?,
                    bytes: r.try_get::<i64, _>("bytes")? as u64,
                    writing: r.try_get::<&str, _>("state")? == "writing",
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let locks = sqlx::query("SELECT camera, start_utc_ns, end_utc_ns FROM locks")
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(LockedRange {
                    camera: r.try_get("camera")?,
                    start_utc_ns: r.try_get("start_utc_ns")?,
                    end_utc_ns: r.try_get("end_utc_ns")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let disk = self.disk().await?;
        let plan = retention::plan(
            &candidates,
            &locks,
            &self.inner.cfg.retention,
            UtcNs::now().0,
            disk,
            headroom_bytes,
        );
        let mut report = RetentionReport::default();
        for (id, reason) in plan {
            match self.delete(id).await {
                Ok(bytes) => {
                    report.deleted += 1;
                    report.bytes_freed += bytes;
                    tracing::debug!(recording = id, ?reason, bytes, "retention deleted");
                }
                // Deleted meanwhile, or became locked: not an error.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if report.deleted > 0 {
            tracing::info!(
                deleted = report.deleted,
                bytes = report.bytes_freed,
                "retention"
            );
        }
        Ok(report)
    }

    /// Runs retention every `interval` until `cancel` fires.
    pub fn spawn_retention(
        &self,
        interval: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = store.run_retention(0).await {
                            tracing::warn!(error = %e, "retention pass failed");
                        }
                    }
                }
            }
        })
    }

    async fn disk(&self) -> Result<DiskSpace, StoreError> {
        if let Some(d) = self.inner.cfg.disk_override {
            return Ok(d);
        }
        let root = self.inner.root.clone();
        blocking(move || disk_space(&root)).await
    }

    /// Frees space ahead of a new file when the disk is getting short.
    async fn ensure_space(&self) -> Result<(), StoreError> {
        let disk = self.disk().await?;
        let cfg = &self.inner.cfg;
        let floor = cfg.retention.free_floor(disk.total_bytes);
        if floor > 0
            && disk.free_bytes
                < floor
                    .saturating_mul(2)
                    .saturating_add(cfg.expected_file_bytes)
        {
            self.run_retention(cfg.expected_file_bytes).await?;
        }
        Ok(())
    }

    fn take_seq(&self, camera: &str, n: i64) -> i64 {
        let mut seqs = self
            .inner
            .next_seq
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = seqs.entry(camera.to_string()).or_insert(0);
        let first = *next;
        *next += n;
        first
    }

    // ---- recovery ----

    async fn recover(&self) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        let pool = &self.inner.pool;

        // 1. Finish deletions a crash interrupted.
        let garbage: Vec<String> = sqlx::query("SELECT path FROM garbage")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get("path"))
            .collect::<Result<_, _>>()?;
        for path in garbage {
            self.unlink_garbage(&path).await?;
            report.garbage_finished += 1;
        }

        // 2. Repair recordings that were being written.
        let writing = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state = 'writing'"
        ))
        .fetch_all(pool)
        .await?;
        for row in &writing {
            let rec = row_to_recording(row)?;
            self.repair(rec, &mut report).await?;
        }

        // 2b. A closed file whose size no longer matches its row was cut
        // short (a disk that lost writes): rescan it like an open one.
        // Only sizes are compared, in one trip to the blocking pool; the
        // fragment tables are read just for the files that need repair.
        let sizes: Vec<(i64, String, u64)> = sqlx::query("SELECT id, path, bytes FROM recordings")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("path")?,
                    r.try_get::<i64, _>("bytes")? as u64,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let root = self.inner.root.clone();
        let changed: Vec<i64> = blocking(move || {
            Ok(sizes
                .into_iter()
                .filter(|(_, path, bytes)| {
                    fs::metadata(root.join(path)).is_ok_and(|m| m.len() != *bytes)
                })
                .map(|(id, _, _)| id)
                .collect())
        })
        .await?;
        for id in changed {
            if let Some(rec) = self.recording(id).await? {
                self.repair(rec, &mut report).await?;
            }
        }

        // 3. Index files nobody knows, and 4. drop rows whose file is gone.
        let known: HashSet<String> = sqlx::query("SELECT path FROM recordings")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get("path"))
            .collect::<Result<_, _>>()?;
        let root = self.inner.root.clone();
        let on_disk = blocking(move || list_mp4(&root)).await?;
        for rel in on_disk.difference(&known) {
            self.index_orphan(rel, &mut report).await?;
        }
        for rel in known.difference(&on_disk) {
            sqlx::query("DELETE FROM recordings WHERE path = ?")
                .bind(rel)
                .execute(pool)
                .await?;
            report.rows_removed += 1;
        }
        if report != RecoveryReport::default() {
            tracing::warn!(?report, "recovered the recording store");
        } else {
            tracing::info!("recording store is consistent");
        }
        Ok(report)
    }

    async fn repair(&self, rec: Recording, report: &mut RecoveryReport) -> Result<(), StoreError> {
        let abs = self.inner.root.join(&rec.path);
        let abs2 = abs.clone();
        let scanned = blocking(move || {
            let mut f = match OpenOptions::new().read(true).write(true).open(&abs2) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io(format!("opening {}", abs2.display()), e)),
            };
            let s = match scan::scan(&mut f) {
                Ok(s) => s,
                Err(ScanError::NoInit(_)) => return Ok(Some(Err(()))),
                Err(ScanError::Io(e)) => {
                    return Err(StoreError::io(format!("reading {}", abs2.display()), e));
                }
            };
            if s.file_len > s.valid_len && !s.fragments.is_empty() {
                f.set_len(s.valid_len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| StoreError::io(format!("truncating {}", abs2.display()), e))?;
            }
            Ok(Some(Ok(s)))
        })
        .await?;
        let s = match scanned {
            None => return Ok(()), // file gone: step 4 removes the row
            Some(Ok(s)) if !s.fragments.is_empty() => s,
            Some(_) => {
                self.quarantine(&rec.path).await?;
                sqlx::query("DELETE FROM recordings WHERE id = ?")
                    .bind(rec.id)
                    .execute(&self.inner.pool)
                    .await?;
                report.files_quarantined += 1;
                return Ok(());
            }
        };
        report.repaired += 1;
        report.bytes_truncated += s.file_len - s.valid_len;
        let kept = rec
            .fragments
            .iter()
            .zip(&s.fragments)
            .take_while(|(a, b)| a == b)
            .count();
        report.fragments_dropped += (rec.fragments.len() - kept) as u64;
        report.fragments_recovered += (s.fragments.len() - kept) as u64;
        let duration: i64 = s.fragments.iter().map(|f| i64::from(f.duration_90k)).sum();
        sqlx::query(
            "UPDATE recordings SET state = 'complete', bytes = ?, end_utc_ns = ?, fragments = ? WHERE id = ?",
        )
        .bind(s.valid_len as i64)
        .bind(rec.start_utc_ns + ticks_to_ns(duration))
        .bind(fragment::pack(&s.fragments))
        .bind(rec.id)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    async fn index_orphan(&self, rel: &str, report: &mut RecoveryReport) -> Result<(), StoreError> {
        let abs = self.inner.root.join(rel);
        let camera = rel.split('/').next().unwrap_or_default().to_string();
        let scanned = blocking(move || {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&abs)
                .map_err(|e| StoreError::io(format!("opening {}", abs.display()), e))?;
            let s = match scan::scan(&mut f) {
                Ok(s) if !s.fragments.is_empty() => s,
                Ok(_) | Err(ScanError::NoInit(_)) => return Ok(None),
                Err(ScanError::Io(e)) => {
                    return Err(StoreError::io(format!("reading {}", abs.display()), e));
                }
            };
            if s.file_len > s.valid_len {
                f.set_len(s.valid_len)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| StoreError::io(format!("truncating {}", abs.display()), e))?;
            }
            let mtime = f
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| UtcNs::from(t).0)
                .ok();
            Ok(Some((s, mtime)))
        })
        .await?;
        let name = rel.rsplit('/').next().unwrap_or_default();
        let Some((s, mtime)) = scanned.filter(|_| validate_camera(&camera).is_ok()) else {
            self.quarantine(rel).await?;
            report.files_quarantined += 1;
            return Ok(());
        };
        let duration = ticks_to_ns(s.fragments.iter().map(|f| i64::from(f.duration_90k)).sum());
        let start = start_from_file_name(name)
            .or_else(|| mtime.map(|m| m - duration))
            .unwrap_or(0);
        let first_seq = self.take_seq(&camera, s.fragments.len() as i64);
        sqlx::query(
            "INSERT INTO recordings (camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, width, height, \
             state, first_seq, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'complete', ?, ?)",
        )
        .bind(&camera)
        .bind(rel)
        .bind(start)
        .bind(start + duration)
        .bind(s.valid_len as i64)
        .bind(s.init_bytes as i64)
        .bind(s.codec.map_or("h264", |c| c.name()))
        .bind(i64::from(s.width))
        .bind(i64::from(s.height))
        .bind(first_seq)
        .bind(fragment::pack(&s.fragments))
        .execute(&self.inner.pool)
        .await?;
        report.files_indexed += 1;
        Ok(())
    }

    async fn quarantine(&self, rel: &str) -> Result<(), StoreError> {
        let from = self.inner.root.join(rel);
        let to = self.inner.root.join(QUARANTINE).join(rel);
        blocking(move || {
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| StoreError::io(format!("creating {}", parent.display()), e))?;
            }
            match fs::rename(&from, &to) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StoreError::io(
                    format!("moving {} aside", from.display()),
                    e,
                )),
            }
        })
        .await?;
        tracing::warn!(path = rel, "moved an unreadable recording to .quarantine");
        Ok(())
    }
}

/// Every `*.mp4` under `root` (relative, `/`-separated), quarantine excluded.
fn list_mp4(root: &Path) -> Result<HashSet<String>, StoreError> {
    let mut out = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir)
            .map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
            let path = entry.path();
            let ty = entry
                .file_type()
                .map_err(|e| StoreError::io(format!("inspecting {}", path.display()), e))?;
            if ty.is_dir() {
                if path != root.join(QUARANTINE) {
                    stack.push(path);
                }
            } else if ty.is_file()
                && path.extension().is_some_and(|e| e == "mp4")
                && let Ok(rel) = path.strip_prefix(root)
                && let Some(rel) = rel.to_str()
            {
                out.insert(rel.replace('\\', "/"));
            }
        }
    }
    Ok(out)
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
    unflushed: u32,
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

    /// Closes the open file cleanly; returns the ids of the recordings
    /// closed since the last [`drain_finished`](Self::drain_finished).
    pub async fn finish(mut self) -> Result<Vec<i64>, StoreError> {
        for out in self.seg.finish() {
            self.apply(out).await?;
        }
        Ok(self.finished)
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
                // When this fragment completes a flush, write and fdatasync in
                // one trip to the blocking pool.
                let sync = f.unflushed + 1 >= self.store.inner.cfg.flush_interval.max(1);
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
                f.fragments.push(FragmentEntry {
                    decode_time_90k: frag.decode_time_90k,
                    duration_90k: u32::try_from(frag.duration_90k).unwrap_or(u32::MAX),
                    offset: f.bytes,
                    size: frag.data.len() as u32,
                    frames: frag.frames,
                    keyframe: frag.keyframe,
                });
                f.bytes += frag.data.len() as u64;
                f.duration_90k += frag.duration_90k as i64;
                f.unflushed += 1;
                if sync {
                    self.commit().await?;
                }
                let stats = &self.stats;
                stats.latency.record(started.elapsed());
                stats
                    .bytes
                    .fetch_add(frag.data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                stats
                    .fragments
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        let (file, result) = blocking(move || {
            let r = file
                .write_all(&data)
                .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
            if r.is_err() {
                use std::io::Seek;
                let _ = file
                    .set_len(offset)
                    .and_then(|()| file.seek(std::io::SeekFrom::Start(offset)));
            }
            Ok((
                file,
                r.map_err(|e| StoreError::io(format!("writing {}", abs.display()), e)),
            ))
        })
        .await?;
        f.file = Some(file);
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
        let (file, rel, abs) = blocking(move || {
            for suffix in 0..1000 {
                let rel = file_path(&camera, start_utc_ns, suffix);
                let abs = root.join(&rel);
                let dir = abs
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.clone());
                let fresh_dir = !dir.exists();
                fs::create_dir_all(&dir)
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
        let first_seq = self.store.take_seq(&self.camera, 0);
        let r = sqlx::query(
            "INSERT INTO recordings (camera, path, start_utc_ns, end_utc_ns, bytes, init_bytes, codec, width, height, \
             state, first_seq, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'writing', ?, ?)",
        )
        .bind(&self.camera)
        .bind(&rel)
        .bind(start_utc_ns)
        .bind(start_utc_ns)
        .bind(init_len as i64)
        .bind(init_len as i64)
        .bind(codec_name(info.codec))
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
            unflushed: 0,
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
        synced?;
        self.commit().await
    }

    /// Commits the synced fragments to the index (their bytes are on disk).
    async fn commit(&mut self) -> Result<(), StoreError> {
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let new = i64::from(f.unflushed);
        sqlx::query("UPDATE recordings SET end_utc_ns = ?, bytes = ?, fragments = ? WHERE id = ?")
            .bind(f.start_utc_ns + ticks_to_ns(f.duration_90k))
            .bind(f.bytes as i64)
            .bind(fragment::pack(&f.fragments))
            .bind(f.id)
            .execute(&self.store.inner.pool)
            .await?;
        f.committed_bytes = f.bytes;
        f.unflushed = 0;
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
        tracing::debug!(camera = %self.camera, path = %f.rel, fragments = f.fragments.len(), "recording closed");
        self.finished.push(f.id);
        Ok(())
    }

    /// After a failed write: cut the file back to what the index holds and
    /// close it, so the index and the file agree; the segmenter starts over
    /// at the next keyframe.
    async fn abandon_file(&mut self) {
        self.seg.abort();
        let Some(mut f) = self.file.take() else {
            return;
        };
        let committed = f.committed_bytes;
        let n = f.fragments.len() - f.unflushed as usize;
        f.fragments.truncate(n);
        if let Some(file) = f.file.take() {
            let _ = blocking(move || {
                let _ = file.set_len(committed).and_then(|()| file.sync_all());
                Ok(())
            })
            .await;
        }
        let duration: i64 = f.fragments.iter().map(|x| i64::from(x.duration_90k)).sum();
        let done = sqlx::query(
            "UPDATE recordings SET state = 'complete', bytes = ?, end_utc_ns = ?, fragments = ? WHERE id = ?",
        )
        .bind(committed as i64)
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
                        r.bytes = committed;
                        r.state = RecordingState::Complete;
                    }
                });
            }
            // Left as 'writing': recovery will close it at next open.
            Err(e) => {
                tracing::warn!(camera = %self.camera, error = %e, "could not close a failed recording")
            }
        }
    }
}
