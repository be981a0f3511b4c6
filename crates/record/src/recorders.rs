//! [`Recorders`]: the NVR's cameras, each a supervised [`Worker`] whose
//! runs are [`camera::run`]s, and where their settings are kept.
//!
//! Cameras live in the accounts database (`camera_sources`), bound to
//! their accounts camera by its id, never by name:
//! - a camera of the config file is found by its name in the file
//!   (`file_name`); its `settings` hold motion settings changed through the
//!   API, if any;
//! - a camera added through the API keeps its whole entry in `settings`,
//!   in the config file's format.
//!
//! Before the database held them, the NVR kept them in `cameras.toml` and
//! `motion.toml` and matched cameras by name. [`bind_cameras`] imports
//! those files once, marks the import done in the same database, then
//! renames them `.imported`; a half-done import runs again at the next
//! start and skips what it already did.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use reallive_auth::{Accounts, AuthError, CameraOrigin, Role};
use reallive_core::decode::StartGrayDecoder;
use reallive_core::source::FrameSource;
use reallive_core::supervise::{RestartPolicy, WorkerState, WorkerStatus};
use reallive_core::{CameraId, Clock, EncodedFrame, ErrorKind, RtspUrl};
use reallive_store::Store;
use reallive_store::retention::{CameraRetention, RetentionPolicy};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::camera::MotionSample;
use crate::config::{Backend, CameraConfig, MotionConfig, NvrConfigFile, RecordMode, Transport};
use crate::live::LiveOutlet;
use crate::metrics::CameraMetrics;
use crate::worker::{Consumer, Worker};
use crate::{BoxFuture, CameraRegistry, RecordError, SourceView, camera};

/// The file the API's cameras were kept in before the database.
pub const LEGACY_CAMERAS_FILE: &str = "cameras.toml";
/// The file motion settings of the config file's cameras were kept in.
pub const LEGACY_MOTION_FILE: &str = "motion.toml";
/// The `meta` key that marks the legacy files imported.
const IMPORTED: &str = "nvr.legacy_files_imported";

/// Opens a camera's RTSP stream (`reallive-capture`'s `RetinaCamera`, or
/// its `RtspCamera` for `backend = "gstreamer"`).
pub type OpenSource =
    Arc<dyn Fn(&RtspUrl, Transport, Backend) -> Arc<dyn FrameSource> + Send + Sync>;

/// A camera to record, bound to its accounts camera.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundCamera {
    /// The accounts camera's id.
    pub id: i64,
    /// Its settings now (the file's, with what was changed through the
    /// API).
    pub config: CameraConfig,
    /// For a config-file camera, the file's own entry, which changes
    /// through the API are kept against; `None` for a camera added through
    /// the API.
    pub file: Option<CameraConfig>,
}

impl BoundCamera {
    /// From the config file (else added through the API).
    pub fn from_file(&self) -> bool {
        self.file.is_some()
    }
}

fn auth(e: AuthError) -> RecordError {
    match e.kind() {
        ErrorKind::AlreadyExists => RecordError::Conflict(e.to_string()),
        ErrorKind::InvalidArgument => RecordError::Invalid(e.to_string()),
        ErrorKind::NotFound => RecordError::NotFound("camera"),
        _ => RecordError::Internal(e.to_string()),
    }
}

/// The admin who owns the cameras the NVR creates.
fn owner(accounts: &Accounts) -> Result<i64, RecordError> {
    accounts
        .snapshot()
        .users()
        .find(|u| u.role == Role::Admin)
        .map(|u| u.id)
        .ok_or_else(|| RecordError::Internal("no admin user to own the cameras".into()))
}

/// One API camera's entry, as kept in `settings`.
fn api_settings(config: &CameraConfig) -> String {
    crate::config::cameras_to_toml(std::slice::from_ref(config))
}

/// A camera's entry as a TOML table, in the config file's format.
fn entry_table(config: &CameraConfig) -> toml::Table {
    let text = crate::config::cameras_to_toml(std::slice::from_ref(config));
    toml::from_str::<toml::Table>(&text)
        .ok()
        .and_then(|mut t| t.remove("cameras"))
        .and_then(|c| match c {
            toml::Value::Array(mut a) if !a.is_empty() => Some(a.remove(0)),
            _ => None,
        })
        .and_then(|v| match v {
            toml::Value::Table(t) => Some(t),
            _ => None,
        })
        .unwrap_or_default()
}

/// The fields of `config` that differ from the file's entry `file`, as a
/// table of those fields (what a file camera keeps in `settings`).
fn overrides_of(file: &CameraConfig, config: &CameraConfig) -> toml::Table {
    let base = entry_table(file);
    let now = entry_table(config);
    let mut out = toml::Table::new();
    for (key, value) in &now {
        if base.get(key) != Some(value) {
            out.insert(key.clone(), value.clone());
        }
    }
    // A field the file has and the edit dropped (a cleared `sub_url`): no
    // entry field is a boolean, so `false` marks it unambiguously.
    for key in base.keys() {
        if !now.contains_key(key) {
            out.insert(key.clone(), toml::Value::Boolean(false));
        }
    }
    out
}

/// A file camera's overrides as kept in `settings`; `None` for none.
fn overrides_settings(overrides: &toml::Table) -> Option<String> {
    if overrides.is_empty() {
        return None;
    }
    let mut root = toml::Table::new();
    root.insert("overrides".into(), toml::Value::Table(overrides.clone()));
    Some(format!(
        "# Settings of a config-file camera changed through the API; they win over the file.\n{}",
        toml::to_string(&root).unwrap_or_default()
    ))
}

/// The file camera `file` with the overrides kept in `text` applied, and
/// the names of the fields overridden. Reads the older format too, which
/// held motion settings only.
fn apply_overrides(
    file: &CameraConfig,
    text: &str,
) -> Result<(CameraConfig, Vec<String>), RecordError> {
    let root: toml::Table =
        toml::from_str(text).map_err(|e| RecordError::Invalid(e.message().to_owned()))?;
    let overrides = match root.get("overrides") {
        Some(toml::Value::Table(t)) => t.clone(),
        _ => {
            let mut motion = crate::config::motion_overrides_from_toml(text)?;
            let mut t = toml::Table::new();
            if let Some(m) = motion.remove(&file.name) {
                let mut config = file.clone();
                config.motion = m;
                if let Some(v) = entry_table(&config).remove("motion") {
                    t.insert("motion".into(), v);
                }
            }
            t
        }
    };
    let mut entry = entry_table(file);
    for (key, value) in &overrides {
        // `false` marks a field the edit removed.
        if value == &toml::Value::Boolean(false) {
            entry.remove(key);
        } else {
            entry.insert(key.clone(), value.clone());
        }
    }
    let config = NvrConfigFile::check_camera(&entry)?;
    let mut names: Vec<String> = overrides.keys().cloned().collect();
    names.sort();
    Ok((config, names))
}

/// A tag of a camera's settings: equal settings, equal tags.
fn etag(config: &CameraConfig) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(crate::config::cameras_to_toml(std::slice::from_ref(config)));
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_api_settings(text: &str) -> Result<CameraConfig, RecordError> {
    NvrConfigFile::check(text)
        .map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            RecordError::Invalid(lines.join("; "))
        })?
        .cameras
        .pop()
        .ok_or_else(|| RecordError::Invalid("no camera in its settings".into()))
}

async fn read_optional(path: &Path) -> Result<Option<String>, RecordError> {
    match tokio::fs::read_to_string(path).await {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RecordError::io(format!("reading {}", path.display()))(e)),
    }
}

/// Imports `cameras.toml` and `motion.toml` from `data_dir` once (see the
/// module docs). The config file's cameras that already had an accounts
/// camera of their name are adopted by it here, once; after the import,
/// names never bind.
async fn import_legacy(
    accounts: &Accounts,
    file: &[CameraConfig],
    data_dir: &Path,
) -> Result<(), RecordError> {
    let done = accounts.meta(IMPORTED).await.map_err(auth)?.is_some();
    if !done {
        let by_name = |name: &str| {
            accounts
                .snapshot()
                .cameras()
                .find(|c| c.name == name)
                .map(|c| c.id)
        };
        let bind = |id: i64, origin: CameraOrigin, settings: Option<String>| async move {
            match accounts
                .bind_camera_source(id, origin, settings.as_deref())
                .await
            {
                Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(auth(e)),
                _ => Ok(()),
            }
        };
        for cam in file {
            if let Some(id) = by_name(&cam.name) {
                let origin = CameraOrigin::File {
                    name: cam.name.clone(),
                };
                bind(id, origin, None).await?;
            }
        }
        let cameras_path = data_dir.join(LEGACY_CAMERAS_FILE);
        if let Some(text) = read_optional(&cameras_path).await? {
            let cameras = NvrConfigFile::check(&text)
                .map_err(|errors| {
                    let lines: Vec<String> = errors
                        .iter()
                        .map(|e| e.in_file(&cameras_path).to_string())
                        .collect();
                    RecordError::Invalid(lines.join("\n"))
                })?
                .cameras;
            for cam in cameras {
                let settings = Some(api_settings(&cam));
                match by_name(&cam.name) {
                    Some(id) => bind(id, CameraOrigin::Api, settings).await?,
                    None => {
                        let owner = owner(accounts)?;
                        accounts
                            .create_sourced_camera(
                                owner,
                                &cam.name,
                                CameraOrigin::Api,
                                settings.as_deref(),
                            )
                            .await
                            .map_err(auth)?;
                    }
                }
            }
        }
        let motion_path = data_dir.join(LEGACY_MOTION_FILE);
        if let Some(text) = read_optional(&motion_path).await? {
            let overrides = crate::config::motion_overrides_from_toml(&text)
                .map_err(|e| RecordError::Invalid(format!("{}: {e}", motion_path.display())))?;
            let bound = accounts.camera_sources().await.map_err(auth)?;
            for (name, motion) in overrides {
                let Some(source) = bound
                    .iter()
                    .find(|s| matches!(&s.origin, CameraOrigin::File { name: n } if *n == name))
                else {
                    tracing::warn!(%name, "{LEGACY_MOTION_FILE}: no such camera in the config file; skipped");
                    continue;
                };
                let Some(file_cam) = file.iter().find(|c| c.name == name) else {
                    continue;
                };
                let mut config = file_cam.clone();
                config.motion = motion;
                accounts
                    .set_camera_settings(
                        source.camera_id,
                        overrides_settings(&overrides_of(file_cam, &config)).as_deref(),
                    )
                    .await
                    .map_err(auth)?;
            }
        }
        accounts
            .set_meta(
                IMPORTED,
                &reallive_core::time::UtcNs::now().secs().to_string(),
            )
            .await
            .map_err(auth)?;
    }
    for name in [LEGACY_CAMERAS_FILE, LEGACY_MOTION_FILE] {
        let from = data_dir.join(name);
        if tokio::fs::try_exists(&from).await.unwrap_or(false) {
            let to = data_dir.join(format!("{name}.imported"));
            tokio::fs::rename(&from, &to)
                .await
                .map_err(RecordError::io(format!("renaming {}", from.display())))?;
            tracing::info!(file = %from.display(), "imported into the database; renamed {}", to.display());
        }
    }
    Ok(())
}

/// The cameras to record: the config file's `file` cameras, each bound to
/// its accounts camera (created on its first start), with motion settings
/// changed through the API; then the cameras added through the API. The
/// legacy files in `data_dir` are imported first, once.
pub async fn bind_cameras(
    accounts: &Accounts,
    file: &[CameraConfig],
    data_dir: &Path,
) -> Result<Vec<BoundCamera>, RecordError> {
    import_legacy(accounts, file, data_dir).await?;
    let sources = accounts.camera_sources().await.map_err(auth)?;
    let mut out: Vec<BoundCamera> = Vec::new();
    for cam in file {
        let source = sources
            .iter()
            .find(|s| matches!(&s.origin, CameraOrigin::File { name } if *name == cam.name));
        let (id, settings) = match source {
            Some(s) => (s.camera_id, s.settings.clone()),
            None => {
                let origin = CameraOrigin::File {
                    name: cam.name.clone(),
                };
                match accounts
                    .create_sourced_camera(owner(accounts)?, &cam.name, origin, None)
                    .await
                {
                    Ok(c) => {
                        tracing::info!(camera = c.id, name = %c.name, "camera created");
                        (c.id, None)
                    }
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        tracing::error!(name = %cam.name, "a camera of this name exists and is not the config file's; \
                            rename one of them. Not recording it.");
                        continue;
                    }
                    Err(e) => return Err(auth(e)),
                }
            }
        };
        let config = match settings.as_deref().map(|t| apply_overrides(cam, t)) {
            Some(Ok((config, fields))) => {
                tracing::info!(name = %cam.name, ?fields, "settings changed through the API win over the config file's");
                config
            }
            Some(Err(e)) => {
                tracing::error!(name = %cam.name, "settings in the database: {e}; the file's apply");
                cam.clone()
            }
            None => cam.clone(),
        };
        out.push(BoundCamera {
            id,
            config,
            file: Some(cam.clone()),
        });
    }
    for s in sources {
        if s.origin != CameraOrigin::Api {
            continue;
        }
        let config = match s.settings.as_deref().map(parse_api_settings) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::error!(
                    camera = s.camera_id,
                    "its settings in the database: {e}; not recording it"
                );
                continue;
            }
            None => continue,
        };
        if out
            .iter()
            .any(|b| b.config.name.eq_ignore_ascii_case(&config.name))
        {
            tracing::error!(name = %config.name, "a camera added through the API has a name from the config file; skipped");
            continue;
        }
        out.push(BoundCamera {
            id: s.camera_id,
            config,
            file: None,
        });
    }
    Ok(out)
}

/// What the store keeps: the file's `[storage]` floor, and each camera's
/// retention, by its store key.
pub fn retention_policy(
    storage: &crate::config::StorageSection,
    cameras: &[BoundCamera],
) -> RetentionPolicy {
    let mut policy = RetentionPolicy::default();
    if let Some(b) = storage.min_free_bytes {
        policy.min_free_bytes = b;
    }
    if let Some(p) = storage.min_free_percent {
        policy.min_free_percent = p;
    }
    for b in cameras {
        policy
            .cameras
            .insert(CameraId(b.id).store_key(), camera_retention(&b.config));
    }
    policy
}

/// What the store keeps of `config`'s camera.
fn camera_retention(config: &CameraConfig) -> CameraRetention {
    let r = &config.retention;
    CameraRetention {
        max_age_ns: r
            .max_age_days
            .map(|d| i64::from(d) * 86_400 * 1_000_000_000),
        max_bytes: r.max_bytes,
    }
}

/// One camera's recorder.
struct Recorder {
    config: CameraConfig,
    /// The config file's entry (a file camera).
    file: Option<CameraConfig>,
    /// `None` with `mode = "off"`.
    worker: Option<Arc<Worker>>,
    /// Manual triggers to its live run.
    trigger: Option<mpsc::Sender<u32>>,
    /// Its motion settings, to every run as they change.
    motion: watch::Sender<MotionConfig>,
    /// Ends this recorder alone.
    stop: CancellationToken,
    /// Its live motion meter.
    meter: camera::MotionMeter,
    /// Its latest keyframe.
    latest_keyframe: camera::LatestKeyframe,
}

impl Recorder {
    fn view(&self, id: i64) -> SourceView {
        SourceView {
            id,
            config: self.config.clone(),
            from_file: self.file.is_some(),
            overridden: self
                .file
                .as_ref()
                .map(|f| overrides_of(f, &self.config).keys().cloned().collect())
                .unwrap_or_default(),
            etag: etag(&self.config),
        }
    }

    /// What its `settings` row holds for `config`.
    fn settings_for(&self, config: &CameraConfig) -> Option<String> {
        match &self.file {
            None => Some(api_settings(config)),
            Some(file) => overrides_settings(&overrides_of(file, config)),
        }
    }
}

/// What it takes to run the recorders.
pub struct RecordersConfig {
    /// Cameras and their settings.
    pub accounts: Accounts,
    /// Recordings and events.
    pub store: Store,
    /// Live viewers, when the node runs a relay.
    pub live: Option<Arc<dyn LiveOutlet>>,
    /// Opens an RTSP stream.
    pub open_source: OpenSource,
    /// Starts a motion decoder.
    pub decoder: Option<StartGrayDecoder>,
    /// Where `now` comes from.
    pub clock: Arc<dyn Clock>,
    /// The free-space warning the space watcher sets.
    pub floor_warning: Arc<std::sync::Mutex<Option<String>>>,
    /// Ends every recorder.
    pub stop: CancellationToken,
}

impl std::fmt::Debug for RecordersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordersConfig")
            .field("store", &self.store)
            .field("live", &self.live.is_some())
            .field("decoder", &self.decoder.is_some())
            .finish_non_exhaustive()
    }
}

/// The recorders, by camera id. See the [module docs](self).
pub struct Recorders {
    by_id: RwLock<HashMap<i64, Recorder>>,
    config: RecordersConfig,
    /// One change to the camera set (and the database) at a time.
    changing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Recorders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorders")
            .field("cameras", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl Recorders {
    /// No cameras yet; [`insert`](Self::insert) starts them.
    pub fn new(config: RecordersConfig) -> Self {
        Recorders {
            by_id: RwLock::new(HashMap::new()),
            config,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<i64, Recorder>> {
        self.by_id
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<i64, Recorder>> {
        self.by_id
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every camera's figures for `/metrics`.
    pub fn metrics(&self) -> Vec<CameraMetrics> {
        self.read()
            .iter()
            .map(|(id, r)| CameraMetrics {
                id: *id,
                name: r.config.name.clone(),
                status: r.worker.as_ref().map_or_else(off_status, |w| w.status()),
                writes: self.config.store.write_stats(&CameraId(*id).store_key()),
            })
            .collect()
    }

    /// `/api/health`'s camera fields: how many, how many running, and
    /// the storage warnings.
    pub fn health(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
        let states: Vec<WorkerState> = self
            .read()
            .values()
            .map(|r| {
                r.worker
                    .as_ref()
                    .map_or(WorkerState::Stopped, |w| w.status().state)
            })
            .collect();
        let running = states
            .iter()
            .filter(|s| **s == WorkerState::Running)
            .count();
        out.insert("cameras_total".into(), states.len().into());
        out.insert("cameras_running".into(), running.into());
        out.insert("warnings".into(), self.warnings().into());
    }

    fn worker(&self, id: i64) -> Option<Arc<Worker>> {
        self.read().get(&id).and_then(|r| r.worker.clone())
    }

    /// Starts recording `camera`.
    pub fn insert(&self, camera: BoundCamera) {
        let BoundCamera { id, config, file } = camera;
        let recorder = self.start_recorder(id, config, file);
        self.write().insert(id, recorder);
    }

    /// A recorder for camera `id`, its run started unless `mode = "off"`.
    fn start_recorder(
        &self,
        id: i64,
        config: CameraConfig,
        file: Option<CameraConfig>,
    ) -> Recorder {
        let stop = self.config.stop.child_token();
        let (motion, motion_rx) = watch::channel(config.motion.clone());
        let meter = Arc::new(watch::channel(None).0);
        let latest_keyframe = Arc::new(Mutex::new(None));
        let (worker, trigger) = match config.mode {
            RecordMode::Off => (None, None),
            _ => {
                let shared = (meter.clone(), latest_keyframe.clone());
                let (w, t) = self.spawn(id, &config, motion_rx, shared, stop.clone());
                (Some(Arc::new(w)), Some(t))
            }
        };
        self.config
            .store
            .set_camera_retention(&CameraId(id).store_key(), camera_retention(&config));
        Recorder {
            config,
            file,
            worker,
            trigger,
            motion,
            stop,
            meter,
            latest_keyframe,
        }
    }

    /// Camera `id`'s supervised recorder; with a relay, its H.264 also
    /// goes to the viewers as it is.
    fn spawn(
        &self,
        id: i64,
        cam: &CameraConfig,
        motion: watch::Receiver<MotionConfig>,
        (meter, latest_keyframe): (camera::MotionMeter, camera::LatestKeyframe),
        stop: CancellationToken,
    ) -> (Worker, mpsc::Sender<u32>) {
        let c = &self.config;
        let (trigger_tx, trigger_rx) = mpsc::channel(4);
        let camera = Arc::new(camera::Camera {
            id,
            mode: cam.mode,
            pre_roll: Duration::from_secs(u64::from(cam.pre_roll_secs)),
            post_roll: Duration::from_secs(u64::from(cam.post_roll_secs)),
            motion,
            sub: cam
                .sub_url
                .as_ref()
                .map(|u| (c.open_source)(u, cam.transport, cam.backend)),
            decoder: c.decoder.clone(),
            storage: Arc::new(c.store.clone()),
            store: c.store.clone(),
            live: c.live.clone(),
            stop: stop.clone(),
            triggers: tokio::sync::Mutex::new(trigger_rx),
            clock: c.clock.clone(),
            meter,
            latest_keyframe,
        });
        let consumer: Consumer =
            Arc::new(move |frames, audio| Box::pin(camera::run(camera.clone(), frames, audio)));
        let policy = RestartPolicy {
            max_restarts: cam.max_restarts,
            ..RestartPolicy::default()
        };
        let worker = Worker::spawn(
            &cam.name,
            (c.open_source)(&cam.url, cam.transport, cam.backend),
            policy,
            consumer,
            cam.audio,
            stop,
        );
        (worker, trigger_tx)
    }

    /// Every recorder, ended and its last file closed.
    pub async fn join_all(&self) {
        let workers: Vec<Arc<Worker>> = self
            .read()
            .values()
            .filter_map(|r| r.worker.clone())
            .collect();
        for w in workers {
            w.join().await;
        }
    }
}

impl CameraRegistry for Recorders {
    fn status(&self, id: i64) -> Option<WorkerStatus> {
        let map = self.read();
        let r = map.get(&id)?;
        Some(match &r.worker {
            Some(w) => w.status(),
            None => off_status(),
        })
    }

    fn start(&self, id: i64) -> bool {
        self.worker(id).map(|w| w.start()).is_some()
    }

    fn stop(&self, id: i64) -> bool {
        self.worker(id).map(|w| w.stop()).is_some()
    }

    fn trigger(&self, id: i64, seconds: u32) -> bool {
        let tx = self.read().get(&id).and_then(|r| r.trigger.clone());
        tx.is_some_and(|t| t.try_send(seconds).is_ok())
    }

    fn warnings(&self) -> Vec<String> {
        self.config
            .floor_warning
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .into_iter()
            .collect()
    }

    fn sources(&self) -> Vec<SourceView> {
        let mut list: Vec<SourceView> = self.read().iter().map(|(id, r)| r.view(*id)).collect();
        list.sort_by_key(|v| v.id);
        list
    }

    fn add(&self, camera: CameraConfig) -> BoxFuture<'_, Result<i64, RecordError>> {
        Box::pin(async move {
            let _one = self.changing.lock().await;
            let accounts = &self.config.accounts;
            let taken = |n: &str| n.eq_ignore_ascii_case(&camera.name);
            if self.read().values().any(|r| taken(&r.config.name))
                || accounts.snapshot().cameras().any(|c| taken(&c.name))
            {
                return Err(RecordError::Conflict(format!(
                    "a camera named '{}' exists",
                    camera.name
                )));
            }
            // The camera and its settings in one transaction.
            let created = accounts
                .create_sourced_camera(
                    owner(accounts)?,
                    &camera.name,
                    CameraOrigin::Api,
                    Some(&api_settings(&camera)),
                )
                .await
                .map_err(auth)?;
            self.insert(BoundCamera {
                id: created.id,
                config: camera,
                file: None,
            });
            Ok(created.id)
        })
    }

    fn update(
        &self,
        id: i64,
        config: CameraConfig,
        if_match: &str,
    ) -> BoxFuture<'_, Result<(), RecordError>> {
        let if_match = if_match.to_owned();
        Box::pin(async move {
            let _one = self.changing.lock().await;
            let (settings, old) = {
                let map = self.read();
                let r = map.get(&id).ok_or(RecordError::NotFound("camera"))?;
                if etag(&r.config) != if_match {
                    return Err(RecordError::Stale(
                        "the camera was changed since you read it; read it again".into(),
                    ));
                }
                (r.settings_for(&config), r.config.clone())
            };
            if config == old {
                return Ok(());
            }
            let renamed = config.name != old.name;
            if renamed {
                let taken = |n: &str| n.eq_ignore_ascii_case(&config.name);
                if self
                    .read()
                    .iter()
                    .any(|(i, r)| *i != id && taken(&r.config.name))
                    || self
                        .config
                        .accounts
                        .snapshot()
                        .cameras()
                        .any(|c| c.id != id && taken(&c.name))
                {
                    return Err(RecordError::Conflict(format!(
                        "name: a camera named '{}' exists",
                        config.name
                    )));
                }
            }
            // Kept first: what the API answers is what a restart brings back.
            self.config
                .accounts
                .set_camera_settings(id, settings.as_deref())
                .await
                .map_err(auth)?;
            if renamed {
                self.config
                    .accounts
                    .update_camera(
                        id,
                        reallive_auth::CameraUpdate {
                            name: Some(config.name.clone()),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(auth)?;
            }
            let mut only_motion = old.clone();
            only_motion.motion = config.motion.clone();
            if only_motion == config {
                if let Some(r) = self.write().get_mut(&id) {
                    r.config = config.clone();
                    r.motion.send_replace(config.motion);
                }
                tracing::info!(camera = id, "motion settings changed through the API");
                return Ok(());
            }
            // Anything else: this camera's run restarts with the new settings.
            let gone = self.write().remove(&id);
            let file = match gone {
                Some(r) => {
                    r.stop.cancel();
                    if let Some(w) = &r.worker {
                        w.join().await;
                    }
                    r.file
                }
                None => return Err(RecordError::NotFound("camera")),
            };
            let recorder = self.start_recorder(id, config, file);
            self.write().insert(id, recorder);
            tracing::info!(
                camera = id,
                "settings changed through the API; its recorder restarted"
            );
            Ok(())
        })
    }

    fn set_motion(&self, id: i64, motion: MotionConfig) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            let (config, tag) = {
                let map = self.read();
                let r = map.get(&id).ok_or(RecordError::NotFound("camera"))?;
                let mut config = r.config.clone();
                config.motion = motion;
                (config, etag(&r.config))
            };
            self.update(id, config, &tag).await
        })
    }

    fn clear_overrides(&self, id: i64) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            let (file, tag) = {
                let map = self.read();
                let r = map.get(&id).ok_or(RecordError::NotFound("camera"))?;
                let file = r.file.clone().ok_or_else(|| {
                    RecordError::Conflict(
                        "this camera was added through the API: it has no config-file settings to go back to".into(),
                    )
                })?;
                (file, etag(&r.config))
            };
            self.update(id, file, &tag).await
        })
    }

    fn latest_keyframe(&self, id: i64) -> Option<EncodedFrame> {
        let map = self.read();
        let r = map.get(&id)?;
        r.latest_keyframe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn motion_meter(&self, id: i64) -> Option<(watch::Receiver<Option<MotionSample>>, usize)> {
        let map = self.read();
        let r = map.get(&id)?;
        let before = r.meter.receiver_count();
        Some((r.meter.subscribe(), before))
    }

    fn remove(&self, id: i64) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            let _one = self.changing.lock().await;
            match self.read().get(&id) {
                None => return Err(RecordError::NotFound("camera")),
                Some(r) if r.file.is_some() => {
                    return Err(RecordError::Conflict(
                        "this camera comes from the config file: remove it there, or set mode = \"off\"".into(),
                    ));
                }
                Some(_) => {}
            }
            self.config
                .accounts
                .delete_camera_source(id)
                .await
                .map_err(auth)?;
            let gone = self.write().remove(&id);
            if let Some(r) = gone {
                r.stop.cancel();
                if let Some(w) = r.worker {
                    w.join().await;
                }
            }
            Ok(())
        })
    }
}

/// What an off camera's status reads.
fn off_status() -> WorkerStatus {
    WorkerStatus {
        state: WorkerState::Stopped,
        fps: 0.0,
        bitrate_kbps: 0.0,
        last_frame_age_ms: None,
        restarts: 0,
        last_error: Some("mode = \"off\"".into()),
        frames: 0,
        bytes: 0,
        stream: None,
        history: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
