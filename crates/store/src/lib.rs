//! RealLive's recording store.
//!
//! The store is where a user's footage lives. Its format is fragmented MP4:
//! an init segment (`ftyp` + `moov` with `mvex`) followed by one `moof` +
//! `mdat` per fragment of about a second, so a file is playable up to its
//! last complete fragment even after a crash, and HLS can address each
//! fragment by byte range.
//!
//! This crate has no GStreamer dependency: it takes
//! [`EncodedFrame`](reallive_core::EncodedFrame)s from any source.
//!
//! Today it holds the muxer, [`mp4::Fmp4Muxer`], and [`FileSink`], which
//! `reallive-pusher --output x.mp4` uses. The `Storage` trait with its SQLite index, crash
//! recovery, retention and HLS playback builds on it (see
//! `docs/design/recording.md` once written).
//!
//! # Threading
//!
//! The muxer is sans-IO: it returns bytes for the caller to write, so it
//! can run on whatever thread owns the file.
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

mod durable;
mod error;
mod export;
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
pub mod triggered;

pub use durable::write_atomically;
pub use error::StoreError;
pub use export::ExportSummary;
pub use file_sink::{FileFormat, FileSink, FileSummary};
pub use model::{Recording, RecordingState, TimeRange, rfc3339_ms, validate_camera};
#[cfg(feature = "test-util")]
pub use storage::MemoryStorage;
pub use storage::{RecordStats, RecordingWriter, Storage, record};
pub use store::{
    CameraUsage, Event, NewEvent, RecordingSession, RecoveryReport, RetentionReport, Store,
    StoreConfig, WriteStats, disk_space,
};
