//! `reallive-nvr` as a library: [`run`] serves the server's API, relay and
//! UI, and records every configured RTSP camera under supervision, until
//! the shutdown token fires. It wires `reallive-http` (the routers, the
//! config file), `reallive-capture` (RTSP ingest and the supervised
//! worker), `reallive-core` (the supervisor) and `reallive-store`
//! (recording, retention); the logic lives there.

mod camera;
pub mod transcode;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reallive_auth::{Role, Secret};
use reallive_capture::{CaptureOptions, RtspCamera, RtspTransport};
use reallive_core::supervise::{RestartPolicy, WorkerState, WorkerStatus};
use reallive_core::{CameraId, ErrorKind};
use reallive_encode::transcode::H265Settings;
use reallive_http::nvr::NvrState;
use reallive_http::recordings::{ApiAccess, RecordingsState};
use reallive_node::live::LiveState;
use reallive_node::{NodeFlags, NodeOptions};
use reallive_record::config::{CameraConfig, MotionConfig, NvrConfigFile, RecordMode, Transport};
use reallive_record::worker::{Consumer, Worker};
use reallive_record::{BoxFuture, CameraRegistry, RecordError};
use reallive_store::retention::{CameraRetention, RetentionPolicy};
use reallive_store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;

/// The NVR's settings: the file, with the command line over its
/// `[server]` section.
#[derive(Debug, Clone, Default)]
pub struct NvrConfig {
    /// The parsed config file (empty without one).
    pub file: NvrConfigFile,
    /// The command line's values over the file's `[server]` section.
    pub node: NodeFlags,
}

/// What `on_ready` is told.
#[derive(Debug)]
pub struct Ready<'a> {
    /// The API's address.
    pub addr: SocketAddr,
    /// The relay's UDP address.
    pub rtc: Option<SocketAddr>,
    /// The first admin's generated password, on first start only.
    pub admin_password: Option<&'a Secret>,
    /// `(camera id, name)` of every configured camera.
    pub cameras: Vec<(i64, String)>,
}

/// Cameras added through the API live here, in the config's format.
pub const API_CAMERAS_FILE: &str = "cameras.toml";

/// `text` into `dir/name` on a blocking thread, durably and atomically
/// (mode 0600: it holds camera passwords).
async fn save(dir: &std::path::Path, name: &'static str, text: String) -> Result<(), RecordError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        reallive_store::write_atomically(&dir, name, text.as_bytes(), 0o600)
    })
    .await
    .map_err(|e| RecordError::Internal(format!("saving {name}: {e}")))?
    .map_err(RecordError::io(format!("saving {name}")))
}

/// Motion settings changed through the API for cameras from the config
/// file (`reallive_record::config::motion_overrides_to_toml`).
pub const MOTION_OVERRIDES_FILE: &str = "motion.toml";

/// One camera's recorder.
struct Recorder {
    config: CameraConfig,
    /// From the config file (else added through the API).
    from_config: bool,
    /// `None` with `mode = "off"`.
    worker: Option<Arc<Worker>>,
    /// Manual triggers to its live run.
    trigger: Option<tokio::sync::mpsc::Sender<u32>>,
    /// Its motion settings, to every run as they change.
    motion: tokio::sync::watch::Sender<MotionConfig>,
    /// Ends this recorder alone.
    stop: CancellationToken,
}

/// The recorders, by camera id, and what it takes to add one.
struct Recorders {
    by_id: std::sync::RwLock<HashMap<i64, Recorder>>,
    store: Store,
    floor_warning: Arc<std::sync::Mutex<Option<String>>>,
    api: reallive_http::ApiState,
    live: Option<LiveState>,
    stop: CancellationToken,
    data_dir: std::path::PathBuf,
    /// One change to the camera set (and its file) at a time.
    changing: tokio::sync::Mutex<()>,
    /// The motion settings the config file gives its cameras, by name.
    file_motion: HashMap<String, MotionConfig>,
}

impl Recorders {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<i64, Recorder>> {
        self.by_id
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i64, Recorder>> {
        self.by_id
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every camera's figures for `/metrics`.
    fn metrics(&self) -> Vec<reallive_record::metrics::CameraMetrics> {
        self.read()
            .iter()
            .map(|(id, r)| reallive_record::metrics::CameraMetrics {
                id: *id,
                name: r.config.name.clone(),
                status: r.worker.as_ref().map_or_else(off_status, |w| w.status()),
                writes: self.store.write_stats(&CameraId(*id).store_key()),
            })
            .collect()
    }

    fn worker(&self, id: i64) -> Option<Arc<Worker>> {
        self.read().get(&id).and_then(|r| r.worker.clone())
    }

    /// Starts recording `config` as camera `id`.
    fn insert(&self, id: i64, config: CameraConfig, from_config: bool) -> anyhow::Result<()> {
        let stop = self.stop.child_token();
        let (motion, motion_rx) = tokio::sync::watch::channel(config.motion.clone());
        let (worker, trigger) = match config.mode {
            RecordMode::Off => (None, None),
            _ => {
                let (w, t) = spawn_recorder(
                    id,
                    &config,
                    motion_rx,
                    &self.store,
                    self.live.clone(),
                    stop.clone(),
                )?;
                (Some(Arc::new(w)), Some(t))
            }
        };
        self.write().insert(
            id,
            Recorder {
                config,
                from_config,
                worker,
                trigger,
                motion,
                stop,
            },
        );
        Ok(())
    }

    /// The motion settings of the config file's cameras that differ from
    /// the file's, to keep in [`MOTION_OVERRIDES_FILE`].
    fn motion_overrides(&self) -> std::collections::BTreeMap<String, MotionConfig> {
        self.read()
            .values()
            .filter(|r| r.from_config)
            .filter(|r| Some(&r.config.motion) != self.file_motion.get(&r.config.name))
            .map(|r| (r.config.name.clone(), r.config.motion.clone()))
            .collect()
    }

    /// Writes the API's cameras to their file: a new file, synced, then
    /// renamed over the old one, so a crash leaves one or the other.
    async fn persist(&self, cameras: Vec<CameraConfig>) -> Result<(), RecordError> {
        let text = format!(
            "# Cameras added through the API; reallive-nvr rewrites this file.\n{}",
            reallive_record::config::cameras_to_toml(&cameras)
        );
        save(&self.data_dir, API_CAMERAS_FILE, text).await
    }

    fn api_cameras(&self) -> Vec<CameraConfig> {
        let map = self.read();
        let mut list: Vec<(&i64, &Recorder)> = map.iter().filter(|(_, r)| !r.from_config).collect();
        list.sort_by_key(|(id, _)| **id);
        list.into_iter().map(|(_, r)| r.config.clone()).collect()
    }

    /// Every recorder, ended and its last file closed.
    async fn join_all(&self) {
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
        self.floor_warning
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .into_iter()
            .collect()
    }

    fn sources(&self) -> Vec<(i64, CameraConfig, bool)> {
        self.read()
            .iter()
            .map(|(id, r)| (*id, r.config.clone(), r.from_config))
            .collect()
    }

    fn add(&self, camera: CameraConfig) -> BoxFuture<'_, Result<i64, RecordError>> {
        Box::pin(async move {
            let _one = self.changing.lock().await;
            let taken = |n: &str| n.eq_ignore_ascii_case(&camera.name);
            if self.read().values().any(|r| taken(&r.config.name))
                || self
                    .api
                    .accounts()
                    .snapshot()
                    .cameras()
                    .any(|c| taken(&c.name))
            {
                return Err(RecordError::Conflict(format!(
                    "a camera named '{}' exists",
                    camera.name
                )));
            }
            let owner = admin_id(&self.api).map_err(|e| RecordError::Internal(e.to_string()))?;
            let (created, _key) = self
                .api
                .accounts()
                .create_camera(owner, &camera.name, None)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::AlreadyExists => RecordError::Conflict(e.to_string()),
                    ErrorKind::InvalidArgument => RecordError::Invalid(e.to_string()),
                    _ => RecordError::Internal(e.to_string()),
                })?;
            let mut list = self.api_cameras();
            list.push(camera.clone());
            self.persist(list).await?;
            self.insert(created.id, camera, false)
                .map_err(|e| RecordError::Invalid(format!("{e:#}")))?;
            Ok(created.id)
        })
    }

    fn set_motion(&self, id: i64, motion: MotionConfig) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            let _one = self.changing.lock().await;
            let from_config = {
                let mut map = self.write();
                let r = map.get_mut(&id).ok_or(RecordError::NotFound("camera"))?;
                r.config.motion = motion.clone();
                r.from_config
            };
            // Kept first: what the API answers is what a restart brings back.
            if from_config {
                let text =
                    reallive_record::config::motion_overrides_to_toml(&self.motion_overrides());
                save(&self.data_dir, MOTION_OVERRIDES_FILE, text).await?;
            } else {
                self.persist(self.api_cameras()).await?;
            }
            if let Some(r) = self.read().get(&id) {
                r.motion.send_replace(motion);
            }
            tracing::info!(camera = id, "motion settings changed through the API");
            Ok(())
        })
    }

    fn remove(&self, id: i64) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async move {
            let _one = self.changing.lock().await;
            let name = match self.read().get(&id) {
                None => return Err(RecordError::NotFound("camera")),
                Some(r) if r.from_config => {
                    return Err(RecordError::Conflict(
                        "this camera comes from the config file: remove it there, or set mode = \"off\"".into(),
                    ));
                }
                Some(r) => r.config.name.clone(),
            };
            let list: Vec<CameraConfig> = self
                .api_cameras()
                .into_iter()
                .filter(|c| c.name != name)
                .collect();
            self.persist(list).await?;
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

fn admin_id(api: &reallive_http::ApiState) -> anyhow::Result<i64> {
    api.accounts()
        .snapshot()
        .users()
        .find(|u| u.role == Role::Admin)
        .map(|u| u.id)
        .context("no admin user to own the cameras")
}

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

/// Motion settings set through the API for the config file's cameras.
fn load_motion_overrides(
    data_dir: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeMap<String, MotionConfig>> {
    let path = data_dir.join(MOTION_OVERRIDES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => reallive_record::config::motion_overrides_from_toml(&t)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The cameras added through the API earlier, from their file.
fn load_api_cameras(data_dir: &std::path::Path) -> anyhow::Result<Vec<CameraConfig>> {
    let path = data_dir.join(API_CAMERAS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    NvrConfigFile::check(&text)
        .map(|f| f.cameras)
        .map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| e.in_file(&path).to_string())
                .collect();
            anyhow::anyhow!("{}", lines.join("\n"))
        })
}

/// Serves and records until `shutdown` fires, then closes every open
/// recording cleanly.
pub async fn run(
    config: NvrConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Ready<'_>),
) -> anyhow::Result<()> {
    let NvrConfig { file, node } = config;
    let options = NodeOptions::resolve(file.server.clone(), node)?;
    let data_dir = options.data_dir.clone();
    let server = reallive_node::start(options)
        .await
        .with_context(|| format!("starting in {}", data_dir.display()))?;
    let api = server.state().clone();

    // The configured cameras, created on first start, by name; then the
    // ones added through the API before.
    let owner = admin_id(&api)?;
    let mut cameras = Vec::new();
    let from_api = load_api_cameras(&data_dir)?;
    let sources = file
        .cameras
        .iter()
        .map(|c| (c, true))
        .chain(from_api.iter().map(|c| (c, false)));
    for (cam, from_config) in sources {
        if cameras
            .iter()
            .any(|(_, c, _): &(i64, CameraConfig, bool)| c.name.eq_ignore_ascii_case(&cam.name))
        {
            tracing::error!(name = %cam.name, "a camera added through the API has a name from the config file; skipped");
            continue;
        }
        let existing = api
            .accounts()
            .snapshot()
            .cameras()
            .find(|c| c.name == cam.name)
            .map(|c| c.id);
        let id = match existing {
            Some(id) => id,
            None => {
                let (c, _key) = api
                    .accounts()
                    .create_camera(owner, &cam.name, None)
                    .await
                    .with_context(|| format!("creating camera '{}'", cam.name))?;
                tracing::info!(camera = c.id, name = %c.name, "camera created");
                c.id
            }
        };
        cameras.push((id, cam.clone(), from_config));
    }

    // Motion settings changed through the API for the file's cameras.
    let file_motion: HashMap<String, MotionConfig> = cameras
        .iter()
        .filter(|(_, _, from_config)| *from_config)
        .map(|(_, c, _)| (c.name.clone(), c.motion.clone()))
        .collect();
    let overrides = load_motion_overrides(&data_dir)?;
    for (_, cam, from_config) in cameras.iter_mut() {
        if *from_config && let Some(m) = overrides.get(&cam.name) {
            tracing::info!(name = %cam.name, "motion settings from {MOTION_OVERRIDES_FILE} (set through the API) replace the config file's");
            cam.motion = m.clone();
        }
    }

    // The store, with each camera's retention.
    let mut retention = RetentionPolicy::default();
    if let Some(b) = file.storage.min_free_bytes {
        retention.min_free_bytes = b;
    }
    if let Some(p) = file.storage.min_free_percent {
        retention.min_free_percent = p;
    }
    for (id, cam, _) in &cameras {
        retention.cameras.insert(
            CameraId(*id).store_key(),
            CameraRetention {
                max_age_ns: cam
                    .retention
                    .max_age_days
                    .map(|d| i64::from(d) * 86_400 * 1_000_000_000),
                max_bytes: cam.retention.max_bytes,
            },
        );
    }
    let mut store_config = StoreConfig::new(&data_dir);
    store_config.retention = retention.clone();
    let (store, recovery) = Store::open(store_config)
        .await
        .with_context(|| format!("opening the recordings in {}", data_dir.display()))?;
    tracing::info!(?recovery, "recordings open");
    let stop_recording = CancellationToken::new();
    let retention_task = store.spawn_retention(Duration::from_secs(30), stop_recording.clone());
    let transcoding = if file.transcoding.enabled {
        H265Settings {
            crf: file.transcoding.crf,
            preset: file.transcoding.preset.clone(),
            max_kbps: None,
        }
        .check()
        .map_err(|e| anyhow::anyhow!("transcoding.{e}"))?;
        let program = std::env::current_exe().context("transcoding: finding this program")?;
        reallive_record::transcode::start(
            &file.transcoding,
            &store,
            program,
            stop_recording.clone(),
        )
    } else {
        None
    };

    // One supervised recorder per camera, shown live through the relay.
    let floor_warning: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let recorders = Arc::new(Recorders {
        by_id: std::sync::RwLock::new(HashMap::new()),
        store: store.clone(),
        floor_warning: floor_warning.clone(),
        api: api.clone(),
        live: server.live().cloned(),
        stop: stop_recording.clone(),
        data_dir: data_dir.clone(),
        changing: tokio::sync::Mutex::new(()),
        file_motion,
    });
    for (id, cam, from_config) in &cameras {
        recorders.insert(*id, cam.clone(), *from_config)?;
    }
    let space_task = tokio::spawn(reallive_record::space::watch(
        store.clone(),
        retention.clone(),
        file.storage.critical_free_bytes,
        floor_warning,
        stop_recording.clone(),
    ));

    // Health and metrics.
    let r = recorders.clone();
    api.add_health_source(Box::new(move |out| {
        let ids: Vec<i64> = r.read().keys().copied().collect();
        let statuses: Vec<WorkerState> = ids
            .iter()
            .filter_map(|id| r.status(*id))
            .map(|s| s.state)
            .collect();
        out.insert("cameras_total".into(), statuses.len().into());
        out.insert(
            "cameras_running".into(),
            statuses
                .iter()
                .filter(|s| **s == WorkerState::Running)
                .count()
                .into(),
        );
        out.insert("warnings".into(), r.warnings().into());
    }));
    let r = recorders.clone();
    api.add_metrics_source(Box::new(move |out| {
        reallive_record::metrics::render(&r.metrics(), out)
    }));

    let mut nvr_state = NvrState::new(api.clone(), recorders.clone(), store.clone(), retention);
    let mut transcode_task = None;
    if let Some((transcoder, task)) = transcoding {
        nvr_state = nvr_state.with_transcoder(transcoder);
        transcode_task = Some(task);
    }
    let server = server
        .merge(reallive_http::recordings::router(RecordingsState::new(
            store.clone(),
            Arc::new(ApiAccess::new(api.clone())),
            data_dir.join("exports"),
        )))
        .merge(reallive_http::nvr::router(nvr_state));
    on_ready(Ready {
        addr: server.local_addr()?,
        rtc: server.live().map(|l| l.relay().local_addr()),
        admin_password: server.first_admin_password(),
        cameras: cameras
            .iter()
            .map(|(id, c, _)| (*id, c.name.clone()))
            .collect(),
    });
    let served = server.run(shutdown).await;

    // Close every recording, then the index.
    stop_recording.cancel();
    recorders.join_all().await;
    let _ = retention_task.await;
    let _ = space_task.await;
    if let Some(task) = transcode_task {
        let _ = task.await;
    }
    store.close().await;
    served?;
    Ok(())
}

/// Starts camera `id`'s supervised recorder; with `live`, its H.264 also
/// goes to the relay's viewers, as it is.
fn spawn_recorder(
    id: i64,
    cam: &CameraConfig,
    motion: tokio::sync::watch::Receiver<MotionConfig>,
    store: &Store,
    live: Option<LiveState>,
    stop: CancellationToken,
) -> anyhow::Result<(Worker, tokio::sync::mpsc::Sender<u32>)> {
    let url = cam.url.clone();
    let options = CaptureOptions {
        rtsp_transport: match cam.transport {
            Transport::Tcp => RtspTransport::Tcp,
            Transport::Udp => RtspTransport::Udp,
        },
        ..CaptureOptions::default()
    };
    let policy = RestartPolicy {
        max_restarts: cam.max_restarts,
        ..RestartPolicy::default()
    };
    let sub = cam.sub_url.as_ref().map(|u| {
        Arc::new(RtspCamera::new(u.clone(), options.clone()))
            as Arc<dyn reallive_core::source::FrameSource>
    });
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::channel(4);
    let camera = Arc::new(camera::Camera {
        id,
        name: CameraId(id).store_key(),
        mode: cam.mode,
        pre_roll: Duration::from_secs(u64::from(cam.pre_roll_secs)),
        post_roll: Duration::from_secs(u64::from(cam.post_roll_secs)),
        motion,
        sub,
        storage: Arc::new(store.clone()),
        store: store.clone(),
        live,
        stop: stop.clone(),
        triggers: tokio::sync::Mutex::new(trigger_rx),
    });
    let consumer: Consumer = Arc::new(move |frames| Box::pin(camera::run(camera.clone(), frames)));
    let worker = Worker::spawn(
        &cam.name,
        Arc::new(RtspCamera::new(url, options)),
        policy,
        consumer,
        stop,
    );
    Ok((worker, trigger_tx))
}
