//! [`CameraRegistry`]: the NVR's cameras as its API sees them: status,
//! control, triggers, settings, adding, editing and removing, snapshots and
//! the live motion meter.

use reallive_core::EncodedFrame;
use reallive_core::supervise::WorkerStatus;
use tokio::sync::watch;

use crate::RecordError;
use crate::camera::MotionSample;
use crate::config::{CameraConfig, MotionConfig};

/// One source as the API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceView {
    /// The accounts camera's id.
    pub id: i64,
    /// Its settings in force.
    pub config: CameraConfig,
    /// From the config file (else added through the API).
    pub from_file: bool,
    /// For a config-file camera, the fields set through the API, which
    /// win over the file (`url`, `mode`, `motion`, ...).
    pub overridden: Vec<String>,
    /// A tag of `config`: it changes whenever any setting does.
    pub etag: String,
}

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
    /// Every source.
    fn sources(&self) -> Vec<SourceView>;
    /// Adds a camera and starts recording it; returns its id. The name
    /// must be new ([`RecordError::Conflict`] otherwise).
    fn add(&self, camera: CameraConfig) -> BoxFuture<'_, Result<i64, RecordError>>;
    /// Replaces camera `id`'s settings with `config` (already checked) if
    /// its [`SourceView::etag`] is still `if_match`
    /// ([`RecordError::Stale`] otherwise), and keeps them. A change of
    /// motion settings alone applies to the live run; any other change
    /// restarts this camera's run only.
    fn update(
        &self,
        id: i64,
        config: CameraConfig,
        if_match: &str,
    ) -> BoxFuture<'_, Result<(), RecordError>>;
    /// Replaces camera `id`'s motion settings (already checked), applies
    /// them to its live run, and keeps them ([`RecordError::NotFound`] for no such camera).
    fn set_motion(&self, id: i64, motion: MotionConfig) -> BoxFuture<'_, Result<(), RecordError>>;
    /// Drops what the API changed of a config-file camera: the file's
    /// settings apply again ([`RecordError::Conflict`] for a camera added
    /// through the API).
    fn clear_overrides(&self, id: i64) -> BoxFuture<'_, Result<(), RecordError>>;
    /// Stops recording a camera added through the API and forgets its
    /// source ([`RecordError::Conflict`] for one from the config file,
    /// [`RecordError::NotFound`] for none).
    fn remove(&self, id: i64) -> BoxFuture<'_, Result<(), RecordError>>;
    /// The latest keyframe camera `id` sent, with its parameter sets.
    fn latest_keyframe(&self, id: i64) -> Option<EncodedFrame>;
    /// The live motion meter of camera `id`: its detector publishes a
    /// [`MotionSample`] per analysed picture while a receiver exists.
    /// `None` without such a camera. The count is the receivers before
    /// this one, for a caller that bounds them.
    fn motion_meter(&self, id: i64) -> Option<(watch::Receiver<Option<MotionSample>>, usize)>;
}

/// A boxed future, for the dyn-compatible [`CameraRegistry`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
