//! The on-disk store: fragmented MP4 files under `recordings/`, indexed in
//! SQLite, with the write order, recovery and retention of
//! `docs/design/recording.md`.
//!
//! [`Store`] is the one handle. Each of its jobs is an `impl Store` block
//! (or the type that does the job) in a file named after it, under `store/`:
//!
//! - `index.rs`: the SQLite queries that list recordings and usage, and the
//!   camera-wide fragment sequence numbers;
//! - `writer.rs`: [`RecordingSession`], how frames become files and rows;
//! - `live.rs`: the parts written to open files but not yet committed,
//!   which the live playlist lists from memory;
//! - `recovery.rs`: what opening the store repairs after a crash;
//! - `retention.rs`: running the planner of [`crate::retention`], and the
//!   disk figures it needs;
//! - `deletion.rs`: deleting a recording through the `garbage` table;
//! - `playback.rs`: HLS playlists (with their cache) and export of a range;
//! - `export_jobs.rs`: the rows of export jobs ([`crate::ExportJobs`] runs
//!   them);
//! - `events.rs` and `locks.rs`: events, and ranges kept from retention;
//! - `timeline.rs`: footage and events of a range, at a resolution;
//! - `thumbnails.rs`: keyframes read back, and the JPEGs kept of them.
//!
//! This file opens the store; `crate::durable` holds the `fsync`s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;
use crate::retention::{DiskSpace, RetentionPolicy};
use crate::segmenter::SegmenterConfig;

#[macro_use]
mod index;
mod deletion;
mod events;
mod export_jobs;
mod live;
mod locks;
mod playback;
mod recovery;
mod retention;
mod thumbnails;
mod timeline;
mod writer;

#[cfg(test)]
pub(crate) mod testutil;

pub use deletion::CameraDeletion;
pub use events::{EVENT_CHANGES_QUEUE, Event, EventChange, EventQuery, MAX_EVENTS_PAGE, NewEvent};
pub use export_jobs::{ExportJob, ExportState, MAX_EXPORT_NAME_CHARS};
pub use index::CameraUsage;
pub(crate) use index::row_to_recording; // also `transcode`'s
pub use locks::Lock;
pub use recovery::RecoveryReport;
pub use retention::{RetentionReport, disk_space};
pub(crate) use thumbnails::sidecar;
pub use thumbnails::{Keyframe, MAX_THUMBNAIL_BYTES};
pub use timeline::{
    MAX_TIMELINE_BUCKETS, MAX_TIMELINE_ITEMS, MAX_TIMELINE_RANGE_NS, Timeline, TimelineCluster,
    TimelineSpan,
};
pub use writer::{RecordingSession, WriteStats};

// `transcode` reaches this through `crate::store`, as before the split.
pub(crate) use crate::durable::fsync_dir;

use playback::PlaylistCache;

/// How a store behaves.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Holds `index.sqlite` and `recordings/`.
    pub data_dir: PathBuf,
    /// Fragment and file lengths, gap thresholds.
    pub segmenter: SegmenterConfig,
    /// How often the open file is made durable (`fdatasync`, then an index
    /// commit), in segments of about a second (default 1). Every fragment
    /// (200 ms part) is written to the file at once, readable by playback
    /// and listed in the live playlist from memory; the flush comes once
    /// the fragments written since the last one hold `flush_interval` × 1 s
    /// of media, or `flush_interval` × 0.9 s when the newest one fills its
    /// segment (`hls::segments` closes a segment at 0.9 s), or when 32
    /// fragments wait (the live list's bound); and always when the file
    /// closes. With 1 s fragments (`SegmenterConfig::part_90k` 0) and the
    /// default, that is every fragment, as before parts. A power cut loses
    /// at most what waits for the flush (`docs/design/recording.md`, "Loss
    /// bound").
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
    /// Next camera-wide segment number per camera (live HLS media
    /// sequence; [`crate::hls::segments`]).
    next_seq: Mutex<HashMap<String, i64>>,
    /// Per camera, bumped whenever its live playlist may have changed
    /// (a part written, a file closed): blocking reloads wait on it.
    live_changes: Mutex<HashMap<String, tokio::sync::watch::Sender<u64>>>,
    /// Parts written to open files but not committed yet (`live.rs`).
    live_parts: Mutex<live::LiveParts>,
    /// Write figures per camera.
    write_stats: Mutex<HashMap<String, Arc<WriteStats>>>,
    /// One retention pass at a time.
    retention: tokio::sync::Mutex<()>,
    /// Per-camera retention set while running; wins over `cfg.retention`.
    camera_retention: Mutex<HashMap<String, crate::retention::CameraRetention>>,
    playlists: Mutex<PlaylistCache>,
    /// One thumbnail append at a time.
    thumbnail_writer: tokio::sync::Mutex<()>,
    /// Events starting and ending, for live review.
    event_changes: tokio::sync::broadcast::Sender<EventChange>,
}

/// Runs file work on tokio's blocking pool, so async callers never wait on a disk.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Corrupt(format!("blocking task failed: {e}")))?
}

impl Store {
    /// Opens (creating if needed) the store in `cfg.data_dir`, and runs
    /// recovery before returning.
    pub async fn open(cfg: StoreConfig) -> Result<(Store, RecoveryReport), StoreError> {
        let root = cfg.data_dir.join("recordings");
        let data_dir = cfg.data_dir.clone();
        let root2 = root.clone();
        blocking(move || {
            reallive_core::fs::create_private_dir(&root2)
                .map_err(|e| StoreError::io(format!("creating {}", root2.display()), e))?;
            fsync_dir(&data_dir)
        })
        .await?;
        let opts = SqliteConnectOptions::new()
            .filename(Store::index_path(&cfg.data_dir))
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
                live_changes: Mutex::new(HashMap::new()),
                live_parts: Mutex::new(live::LiveParts::default()),
                write_stats: Mutex::new(HashMap::new()),
                retention: tokio::sync::Mutex::new(()),
                camera_retention: Mutex::new(HashMap::new()),
                playlists: Mutex::new(PlaylistCache::default()),
                thumbnail_writer: tokio::sync::Mutex::new(()),
                event_changes: tokio::sync::broadcast::channel(events::EVENT_CHANGES_QUEUE).0,
            }),
        };
        let report = store.recover().await?;
        store.load_sequences().await?;
        Ok((store, report))
    }

    /// The index database of a store in `data_dir` (with its `-wal` and
    /// `-shm` beside it).
    pub fn index_path(data_dir: &Path) -> PathBuf {
        data_dir.join("index.sqlite")
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
}
