//! The NVR's recording domain: everything `reallive-nvr` does with its
//! cameras that is not HTTP and not media plumbing.
//!
//! - [`config`]: the config files' schema and checker. [`config::NvrConfigFile::check`]
//!   reports every problem in a file in one pass, each with its line and
//!   key, so `reallive-nvr --config nvr.toml --check` prints them all;
//!   [`config::ServerSection`] is the `[server]` section both servers read.
//! - [`CameraRegistry`]: the NVR's cameras as its API sees them;
//!   [`recorders::Recorders`] implements it, each camera a supervised
//!   [`worker`] whose runs are [`camera::run`]s, its settings in the
//!   accounts database.
//! - [`run::CameraRun`]: one run of one camera, sans-IO: which frames
//!   go live, to the motion decoder and to disk, continuously or around
//!   events, with one retry rule for failed writes; the camera's audio
//!   goes to disk with its video (`docs/design/audio.md`).
//! - [`space`]: the emergency space watcher; [`metrics`]: the NVR's
//!   Prometheus series.
//! - [`worker`]: a camera kept running by the supervisor (restart backoff,
//!   stall detection, start and stop on request), each run's frames (and
//!   audio, unless `audio = false`) to a consumer.
//! - [`transcode`]: when old recordings are re-encoded to H.265, which, and
//!   how many at once; each job runs in a child process.
//! - [`RecordError`]: the one error type, with its
//!   [`ErrorKind`](reallive_core::ErrorKind).
//!
//! # Boundaries
//!
//! This crate never depends on axum, and touches GStreamer only through
//! traits that `reallive-capture` and `reallive-encode` implement, so
//! `cargo test -p reallive-record` needs no system libraries.
//!
//! # Example
//!
//! ```
//! use reallive_record::config::NvrConfigFile;
//!
//! let file = NvrConfigFile::check(
//!     "[[cameras]]\nname = \"gate\"\nurl = \"rtsp://user:pw@192.0.2.10/stream1\"\n",
//! )
//! .expect("a valid file");
//! assert_eq!(file.cameras[0].name, "gate");
//! assert_eq!(file.cameras[0].url.to_string(), "rtsp://user:***@192.0.2.10/stream1");
//! ```

#![warn(missing_docs)]

pub mod camera;
pub mod config;
mod error;
pub mod live;
pub mod metrics;
pub mod recorders;
mod registry;
pub mod run;
pub mod space;
pub mod thumbnails;
pub mod transcode;
pub mod worker;

pub use error::RecordError;
pub use registry::{BoxFuture, CameraRegistry, SourceView};
