//! [`CameraRegistry`]: the NVR's cameras as its API sees them: status,
//! control, triggers, motion settings, adding and removing.

use reallive_core::supervise::WorkerStatus;

use crate::RecordError;
use crate::config::{CameraConfig, MotionConfig};

/// The recorders, as the NVR runs them.
pub trait CameraRegistry: Send + Sync + 'static {
    /// The status of camera `id`'s recorder, if it has one.
    fn status(&self, id: i64) -> Option<WorkerStatus>;
    /// Starts camera `id`'s recorder; false if it has none.
    fn start(&self, id: i64) -> bool;
    /// Stops camera `id`'s recorder until started; false if it has none.
    fn stop(&self, id: i64) -> bool;
    /// Records camera `id` for `seconds` as if motion had been seen (an
    /// external alarm); false if it has no live recorder.
    fn trigger(&self, id: i64, seconds: u32) -> bool;
    /// Storage warnings now (free space under the floor, failed writes).
    fn warnings(&self) -> Vec<String>;
    /// Every source: `(camera id, its config, true if from the config
    /// file)`.
    fn sources(&self) -> Vec<(i64, CameraConfig, bool)>;
    /// Adds a camera and starts recording it; returns its id. The name
    /// must be new ([`RecordError::Conflict`] otherwise).
    fn add(&self, camera: CameraConfig) -> BoxFuture<'_, Result<i64, RecordError>>;
    /// Replaces camera `id`'s motion settings (already checked), applies
    /// them to its live run, and keeps them ([`RecordError::NotFound`] for no such camera).
    fn set_motion(&self, id: i64, motion: MotionConfig) -> BoxFuture<'_, Result<(), RecordError>>;
    /// Stops recording a camera added through the API and forgets its
    /// source ([`RecordError::Conflict`] for one from the config file,
    /// [`RecordError::NotFound`] for none).
    fn remove(&self, id: i64) -> BoxFuture<'_, Result<(), RecordError>>;
}

/// A boxed future, for the dyn-compatible [`CameraRegistry`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
