//! `reallive-nvr` as a library: [`run`] serves the server's API, relay and
//! UI, and records every configured RTSP camera under supervision, until
//! the shutdown token fires. It wires `reallive-http` (the routers, the
//! config file), `reallive-capture` (RTSP ingest and the supervised
//! worker), `reallive-core` (the supervisor) and `reallive-store`
//! (recording, retention); the logic lives there.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use reallive_auth::{Role, Secret};
use reallive_capture::worker::{Consumer, Worker};
use reallive_capture::{CaptureOptions, RtspCamera, RtspTransport};
use reallive_core::supervise::{RestartPolicy, WorkerState, WorkerStatus};
use reallive_http::config::{CameraConfig, NvrConfigFile, RecordMode, Transport};
use reallive_http::live::LiveState;
use reallive_http::nvr::{NvrState, Workers};
use reallive_http::recordings::{ApiAccess, RecordingsState};
use reallive_server::{LiveFlags, ServerConfig};
use reallive_store::retention::{CameraRetention, RetentionPolicy};
use reallive_store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;

/// The store's name for camera `id`: stable when the camera is renamed.
pub fn store_name(id: i64) -> String {
    format!("camera-{id}")
}

/// The NVR's settings: the file, with the command line over its
/// `[server]` section.
#[derive(Debug, Clone, Default)]
pub struct NvrConfig {
    /// The parsed config file (empty without one).
    pub file: NvrConfigFile,
    /// `--data-dir`.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--admin-password`.
    pub admin_password: Option<Secret>,
    /// `--rtc-port` and friends.
    pub live: LiveFlags,
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

/// One camera's recorder, or its absence (`mode = "off"`).
struct Recorder {
    worker: Option<Worker>,
}

/// The recorders, by camera id.
struct Recorders {
    by_id: HashMap<i64, (String, Recorder)>,
    store: Store,
    floor_warning: Arc<std::sync::Mutex<Option<String>>>,
}

impl Workers for Recorders {
    fn status(&self, id: i64) -> Option<WorkerStatus> {
        let (_, r) = self.by_id.get(&id)?;
        Some(match &r.worker {
            Some(w) => w.status(),
            None => off_status(),
        })
    }

    fn start(&self, id: i64) -> bool {
        match self.by_id.get(&id) {
            Some((_, Recorder { worker: Some(w) })) => {
                w.start();
                true
            }
            _ => false,
        }
    }

    fn stop(&self, id: i64) -> bool {
        match self.by_id.get(&id) {
            Some((_, Recorder { worker: Some(w) })) => {
                w.stop();
                true
            }
            _ => false,
        }
    }

    fn warnings(&self) -> Vec<String> {
        self.floor_warning
            .lock()
            .ok()
            .and_then(|w| w.clone())
            .into_iter()
            .collect()
    }
}

fn off_status() -> WorkerStatus {
    WorkerStatus {
        state: WorkerState::Stopped,
        fps: 0.0,
        bitrate_kbps: 0.0,
        last_frame_age_ms: None,
        restarts: 0,
        last_error: Some("mode = \"off\" in the config".into()),
        frames: 0,
        bytes: 0,
        stream: None,
        history: Vec::new(),
    }
}

/// Serves and records until `shutdown` fires, then closes every open
/// recording cleanly.
pub async fn run(
    config: NvrConfig,
    shutdown: CancellationToken,
    on_ready: impl FnOnce(Ready<'_>),
) -> anyhow::Result<()> {
    let NvrConfig {
        file,
        data_dir,
        listen,
        admin_password,
        live,
    } = config;
    let server_config = ServerConfig::resolve(file.server, data_dir, listen, admin_password, live)?;
    let data_dir = server_config.server.data_dir.clone();
    let server = reallive_http::Server::bind(server_config.server)
        .await
        .with_context(|| format!("starting in {}", data_dir.display()))?;
    let api = server.state().clone();

    // The configured cameras, created on first start, by name.
    let owner = api
        .accounts()
        .snapshot()
        .users()
        .find(|u| u.role == Role::Admin)
        .map(|u| u.id)
        .context("no admin user to own the cameras")?;
    let mut cameras = Vec::new();
    for cam in &file.cameras {
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
                tracing::info!(camera = c.id, name = %c.name, "camera created from the config");
                c.id
            }
        };
        cameras.push((id, cam.clone()));
    }

    // The store, with each camera's retention.
    let mut retention = RetentionPolicy::default();
    if let Some(b) = file.storage.min_free_bytes {
        retention.min_free_bytes = b;
    }
    if let Some(p) = file.storage.min_free_percent {
        retention.min_free_percent = p;
    }
    for (id, cam) in &cameras {
        retention.cameras.insert(
            store_name(*id),
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

    // One supervised recorder per camera, shown live through the relay.
    let live = server.live().cloned();
    let mut by_id = HashMap::new();
    for (id, cam) in &cameras {
        let worker = match cam.mode {
            RecordMode::Off => None,
            mode => {
                if mode == RecordMode::Motion {
                    tracing::warn!(
                        camera = %cam.name,
                        "mode = \"motion\" is not built yet; recording continuously"
                    );
                }
                Some(spawn_recorder(
                    *id,
                    cam,
                    &store,
                    live.clone(),
                    stop_recording.clone(),
                )?)
            }
        };
        by_id.insert(*id, (cam.name.clone(), Recorder { worker }));
    }
    let floor_warning: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let recorders = Arc::new(Recorders {
        by_id,
        store: store.clone(),
        floor_warning: floor_warning.clone(),
    });
    let space_task = tokio::spawn(watch_space(
        store.clone(),
        retention.clone(),
        file.storage.critical_free_bytes,
        floor_warning,
        stop_recording.clone(),
    ));

    // Health and metrics.
    let r = recorders.clone();
    api.add_health_source(Box::new(move |out| {
        let statuses: Vec<WorkerState> = r
            .by_id
            .keys()
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
    api.add_metrics_source(Box::new(move |out| render_metrics(&r, out)));

    let server = server
        .merge(reallive_http::recordings::router(RecordingsState::new(
            store.clone(),
            Arc::new(ApiAccess::new(api.clone(), store_name)),
            data_dir.join("exports"),
        )))
        .merge(reallive_http::nvr::router(NvrState::new(
            api.clone(),
            recorders.clone(),
            store.clone(),
            store_name,
            retention,
        )));
    on_ready(Ready {
        addr: server.local_addr()?,
        rtc: server.live().map(|l| l.relay().local_addr()),
        admin_password: server.first_admin_password(),
        cameras: cameras
            .iter()
            .map(|(id, c)| (*id, c.name.clone()))
            .collect(),
    });
    let served = server.run(shutdown).await;

    // Close every recording, then the index.
    stop_recording.cancel();
    for (_, r) in recorders.by_id.values() {
        if let Some(w) = &r.worker {
            w.join().await;
        }
    }
    let _ = retention_task.await;
    let _ = space_task.await;
    store.close().await;
    served?;
    Ok(())
}

/// Starts camera `id`'s supervised recorder; with `live`, its H.264 also
/// goes to the relay's viewers, as it is.
fn spawn_recorder(
    id: i64,
    cam: &CameraConfig,
    store: &Store,
    live: Option<LiveState>,
    stop: CancellationToken,
) -> anyhow::Result<Worker> {
    let url: reallive_capture::RtspUrl = cam
        .url
        .expose()
        .parse()
        .map_err(|e| anyhow::anyhow!("camera '{}': {e}", cam.name))?;
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
    let name = store_name(id);
    let store = store.clone();
    let record_stop = stop.clone();
    let consumer: Consumer = Arc::new(move |frames| {
        let (store, name, stop) = (store.clone(), name.clone(), record_stop.clone());
        let live = live.clone();
        Box::pin(async move {
            let (to_store, rx) = reallive_core::frame_channel(256);
            let recording = tokio::spawn(async move {
                let stats = reallive_store::record(&store, &name, rx, &stop).await;
                tracing::debug!(camera = %name, frames = stats.frames, "recording run ended");
            });
            show_and_record(id, frames, live, to_store).await;
            let _ = recording.await;
        })
    });
    Ok(Worker::spawn(
        &cam.name,
        Arc::new(RtspCamera::new(url, options)),
        policy,
        consumer,
        stop,
    ))
}

/// Passes one run's frames to the recorder, and each H.264 frame to the
/// relay's viewers on the way (announced online from the first one).
async fn show_and_record(
    id: i64,
    mut frames: reallive_core::FrameReceiver,
    live: Option<LiveState>,
    to_store: reallive_core::FrameSender,
) {
    let mut source = None;
    while let Some(f) = frames.recv().await {
        if let Some(live) = &live {
            if source.is_none() && f.params.codec == reallive_core::Codec::H264 {
                source = Some(live.local_source(id).await);
            }
            if let Some(s) = source.as_mut() {
                s.offer(&f);
            }
        }
        if to_store.offer(f) == reallive_core::Offer::Closed {
            break;
        }
    }
    if let Some(s) = source {
        s.close().await;
    }
}

/// Checks free space every few seconds. Under the floor, retention runs
/// at once (past-retention first, then the oldest footage, never locked
/// ranges); under the critical level it says so in `/api/health`.
async fn watch_space(
    store: Store,
    retention: RetentionPolicy,
    critical_free: Option<u64>,
    warning: Arc<std::sync::Mutex<Option<String>>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(disk) = store.disk_space().await else {
            continue;
        };
        let floor = retention.free_floor(disk.total_bytes);
        let critical = critical_free.unwrap_or(floor / 2);
        let now = if disk.free_bytes < floor {
            if let Err(e) = store.run_retention(0).await {
                tracing::warn!("emergency retention failed: {e}");
            }
            Some(format!(
                "free space {} MiB is under the floor of {} MiB{}",
                disk.free_bytes >> 20,
                floor >> 20,
                if disk.free_bytes < critical {
                    " (critical): deleting the oldest footage"
                } else {
                    ""
                }
            ))
        } else {
            None
        };
        if let Ok(mut w) = warning.lock() {
            if now != *w {
                match &now {
                    Some(m) => tracing::warn!("{m}"),
                    None => tracing::info!("free space is back above the floor"),
                }
            }
            *w = now;
        }
    }
}

fn render_metrics(r: &Recorders, out: &mut String) {
    use std::fmt::Write as _;
    let mut rows: Vec<(&i64, &String, WorkerStatus)> = r
        .by_id
        .iter()
        .filter_map(|(id, (name, _))| r.status(*id).map(|s| (id, name, s)))
        .collect();
    rows.sort_by_key(|(id, _, _)| **id);
    let metric = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Value = fn(&WorkerStatus) -> f64;
    let series: [(&str, &str, &str, Value); 7] = [
        (
            "reallive_nvr_camera_state",
            "gauge",
            "0 stopped, 1 starting, 2 running, 3 unhealthy, 4 backoff",
            |s| f64::from(s.state.as_gauge()),
        ),
        (
            "reallive_nvr_camera_fps",
            "gauge",
            "frames per second",
            |s| s.fps,
        ),
        (
            "reallive_nvr_camera_bitrate_kbps",
            "gauge",
            "received kbit/s",
            |s| s.bitrate_kbps,
        ),
        (
            "reallive_nvr_camera_last_frame_age_seconds",
            "gauge",
            "seconds since the last frame",
            |s| {
                s.last_frame_age_ms
                    .map_or(f64::NAN, |ms| ms as f64 / 1000.0)
            },
        ),
        (
            "reallive_nvr_camera_restarts_total",
            "counter",
            "restarts after failures and stalls",
            |s| f64::from(s.restarts),
        ),
        (
            "reallive_nvr_camera_frames_total",
            "counter",
            "frames received",
            |s| s.frames as f64,
        ),
        (
            "reallive_nvr_camera_bytes_total",
            "counter",
            "bytes received from the camera",
            |s| s.bytes as f64,
        ),
    ];
    let label = |id: &i64, cam: &str| {
        format!(
            "camera_id=\"{id}\",camera=\"{}\"",
            cam.replace('\\', "\\\\").replace('"', "\\\"")
        )
    };
    for (name, kind, help, value) in series {
        metric(out, name, kind, help);
        for (id, cam, s) in &rows {
            let _ = writeln!(out, "{name}{{{}}} {}", label(id, cam), value(s));
        }
    }
    // What the store wrote, and how long a fragment took to be durable.
    let stats: Vec<_> = rows
        .iter()
        .map(|(id, cam, _)| (label(id, cam), r.store.write_stats(&store_name(**id))))
        .collect();
    metric(
        out,
        "reallive_nvr_camera_bytes_written_total",
        "counter",
        "bytes of fragments written to disk",
    );
    for (l, st) in &stats {
        let _ = writeln!(
            out,
            "reallive_nvr_camera_bytes_written_total{{{l}}} {}",
            st.bytes.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    metric(
        out,
        "reallive_nvr_segment_write_seconds",
        "summary",
        "from a fragment ready to it written, fdatasynced and indexed",
    );
    for (l, st) in &stats {
        for (q, pct) in [(0.5, 50.0), (0.99, 99.0)] {
            let v = st
                .latency
                .percentile(pct)
                .map_or(f64::NAN, |d| d.as_secs_f64());
            let _ = writeln!(
                out,
                "reallive_nvr_segment_write_seconds{{{l},quantile=\"{q}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "reallive_nvr_segment_write_seconds_count{{{l}}} {}",
            st.latency.count()
        );
    }
}
