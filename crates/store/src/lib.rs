//! RealLive's recording store.
//!
//! The store is where a user's footage lives. Its format is fragmented MP4:
//! an init segment (`ftyp` + `moov` with `mvex`) followed by one `moof` +
//! `mdat` per fragment (200 ms parts for LL-HLS by default, about a second
//! without), so a file is playable up to its last complete fragment even
//! after a crash, and HLS can address each fragment by byte range.
//!
//! This crate has no GStreamer dependency: it takes
//! [`EncodedFrame`](reallive_core::EncodedFrame)s from any source.
//!
//! # Main types
//!
//! - [`Store`]: the one handle on a data directory: `recordings/` and its
//!   SQLite index (`index.sqlite`). [`Store::session`] gives a
//!   [`RecordingSession`] that turns frames into files; the rest lists,
//!   plays back, exports, locks and deletes. It implements [`Storage`], the
//!   trait the puller and the NVR record through.
//! - `MemoryStorage` (feature `test-util`) is a `Storage` for other
//!   crates' tests. What to write and when (continuously, around events,
//!   after a failed write) is `reallive-record`'s `CameraRun`.
//! - [`mp4::Fmp4Muxer`] and [`FileSink`] (`reallive-pusher --output x.mp4`);
//!   [`FileSink::write_from`] drains a frame channel into the file, up to a
//!   media duration.
//! - The sans-IO cores the store runs: [`segmenter`] (frames into files),
//!   [`retention`] (what
//!   to delete), [`scan`] (reading a file back, for recovery) and [`hls`]
//!   (playlists).
//!   With feature `cli`, `retention::RetentionFlags` is the retention
//!   flags as a clap `Args` group.
//! - [`transcode`]: re-encoding a file fragment for fragment, and swapping
//!   it in without risking the original.
//! - [`ExportJobs`]: exports as jobs, written in the background into an
//!   exports directory within a share of the disk, and recovered after a
//!   stop (a `.part` is never served).
//! - [`write_atomically`]: replace a small file so that a crash leaves the
//!   old one or the new one, never a torn one.
//!
//! The write order, recovery and retention follow `docs/design/recording.md`.
//! `Store` is split by job into `src/store/`: `index.rs` (queries),
//! `writer.rs` (the write path), `recovery.rs` (what opening repairs),
//! `retention.rs` (running the plan of [`retention`], the pure planner),
//! `deletion.rs`, `playback.rs` (HLS and its cache, export), `events.rs`
//! and `locks.rs`. `durable.rs` holds the `fsync`s.
//!
//! # Threading
//!
//! The muxer is sans-IO: it returns bytes for the caller to write, so it
//! can run on whatever thread owns the file. `Store` is async (tokio) and
//! cheap to clone; its file work runs on tokio's blocking pool, so callers
//! never wait on a disk on a runtime thread. [`FileSink`] and
//! [`transcode::rewrite`] block: run them on a thread of their own.
//!
//! Open one `Store` per data directory, in one process: opening runs
//! recovery, which closes every file still marked `writing` as a crash
//! would have left it.
//!
//! # Example
//!
//! ```no_run
//! use reallive_store::mp4::Fmp4Muxer;
//! # fn frames() -> Vec<reallive_core::EncodedFrame> { Vec::new() }
//!
//! let mut muxer = Fmp4Muxer::new(90_000); // ~1 s fragments
//! let mut file: Vec<u8> = Vec::new();
//! for frame in frames() {
//!     let out = muxer.push(frame)?;
//!     file.extend(out.init.iter().flatten());
//!     file.extend(out.fragment.iter().flat_map(|f| f.data.iter()));
//! }
//! file.extend(muxer.finish(None).iter().flat_map(|f| f.data.iter()));
//! # Ok::<(), reallive_store::StoreError>(())
//! ```
//!
//! Recording through the store, then playing it back:
//!
//! ```no_run
//! use reallive_store::{Store, StoreConfig, TimeRange};
//! # async fn run(frames: Vec<reallive_core::EncodedFrame>) -> Result<(), reallive_store::StoreError> {
//!
//! // Opening runs crash recovery first.
//! let (store, _recovered) = Store::open(StoreConfig::new("/var/lib/reallive")).await?;
//! let mut session = store.session("front")?;
//! for frame in frames {
//!     session.write(frame).await?;
//! }
//! session.finish().await?;
//! let playlist = store.vod_playlist("front", TimeRange::all(), "/recordings/").await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod durable;
mod error;
mod export;
mod export_runner;
mod file_sink;
pub mod fragment;
pub mod hls;
mod model;
pub mod mp4;
pub mod retention;
pub mod scan;
pub mod segmenter;
mod storage;
mod store;
pub mod transcode;

pub use durable::write_atomically;
pub use error::StoreError;
pub use export::ExportSummary;
pub use export_runner::{
    EXPORT_BUDGET_PERCENT, ExportJobs, ExportJobsConfig, ExportRecovery, MAX_EXPORTS_PER_OWNER,
    MAX_EXPORTS_RUNNING, budget_bytes, is_job_file, make_room,
};
pub use file_sink::{FileFormat, FileSink, FileSummary};
pub use model::{Recording, RecordingState, TimeRange, rfc3339_ms, validate_camera};
#[cfg(feature = "test-util")]
pub use storage::MemoryStorage;
pub use storage::{RecordingWriter, Storage};
pub use store::CameraDeletion;
pub use store::{
    CameraUsage, EVENT_CHANGES_QUEUE, Event, EventChange, EventQuery, Keyframe, Lock,
    MAX_EVENTS_PAGE, MAX_THUMBNAIL_BYTES, MAX_TIMELINE_BUCKETS, MAX_TIMELINE_ITEMS,
    MAX_TIMELINE_RANGE_NS, NewEvent, RecordingSession, RecoveryReport, RetentionReport, Store,
    StoreConfig, Timeline, TimelineCluster, TimelineSpan, WriteStats, disk_space,
};
pub use store::{ExportJob, ExportState, MAX_EXPORT_NAME_CHARS};
