//! The NVR's routes beside the server's: each camera's recorder status
//! and control, and the storage it uses.
//!
//! | method | path | what | needs |
//! |---|---|---|---|
//! | GET | `/api/status` | every visible camera: `{id, name, state, fps, bitrate_kbps, last_frame_age_ms, restarts, last_error}` | sign-in |
//! | GET | `/api/workers/{id}` | one camera's status, with its recent state changes | `view` |
//! | POST | `/api/cameras/{id}/start`, `/api/cameras/{id}/stop` | start or stop its recorder | `control` |
//! | POST | `/api/cameras/{id}/trigger` | `{seconds}` (1 to 3600): record as if motion were seen | `control` |
//! | GET | `/api/cameras/{id}/motion` | its motion settings, as `[cameras.motion]` | `view` |
//! | PUT | `/api/cameras/{id}/motion` | new motion settings, applied at once and kept across restarts | admin |
//! | GET | `/api/storage` | bytes per camera, free space, retention | sign-in |
//! | GET | `/api/nvr/cameras` | every RTSP source, URLs redacted | admin |
//! | POST | `/api/nvr/cameras` | add one: `{name, url, sub_url?, mode?, transport?, max_restarts?, retention?, pre_roll_secs?, post_roll_secs?, motion?}` → 201 `{id, ...}` | admin |
//! | DELETE | `/api/nvr/cameras/{id}` | stop recording one added through the API; its recordings and its camera stay | admin |
//! | GET | `/api/transcoding/status` | the H.265 transcoder: state, window, jobs running, completed, failed, bytes saved | admin |
//!
//! The recorders themselves are the program's: this asks them through
//! [`CameraRegistry`]. A camera the user may not see is a 404.
//!
//! Every handler carries its `#[utoipa::path]` (tag `nvr`: only
//! `reallive-nvr` serves these), with the role it needs in its
//! description and in `x-reallive-role`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use reallive_auth::{Permission, Role, User};
use reallive_core::CameraId;
use reallive_core::supervise::WorkerStatus;
use reallive_record::CameraRegistry;
use reallive_record::transcode::Transcoder;
use reallive_store::Store;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiPath, ApiState, AuthUser};
use reallive_record::config::{MotionConfig, RecordMode};
use reallive_record::thumbnails::Thumbnails;

pub(crate) mod live;
pub(crate) mod sources;

/// The routes' state.
#[derive(Clone)]
pub struct NvrState {
    api: ApiState,
    workers: Arc<dyn CameraRegistry>,
    store: Store,
    transcoder: Option<Transcoder>,
    thumbnails: Option<Thumbnails>,
    /// Probes running, per admin and in all.
    probes: Arc<sources::ProbeSlots>,
    /// Live motion meters open, per client.
    meters: crate::clients::ClientSlots,
}

impl std::fmt::Debug for NvrState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvrState").finish_non_exhaustive()
    }
}

impl FromRef<NvrState> for ApiState {
    fn from_ref(s: &NvrState) -> ApiState {
        s.api.clone()
    }
}

impl NvrState {
    /// Routes over `workers` and `store`; camera `id`'s recordings are
    /// under its [`CameraId::store_key`] in the store.
    pub fn new(api: ApiState, workers: Arc<dyn CameraRegistry>, store: Store) -> Self {
        NvrState {
            api,
            workers,
            store,
            transcoder: None,
            thumbnails: None,
            probes: Arc::default(),
            meters: crate::clients::ClientSlots::default(),
        }
    }

    /// Makes snapshots and probe pictures with `thumbnails`.
    pub fn with_thumbnails(mut self, thumbnails: Thumbnails) -> Self {
        self.thumbnails = Some(thumbnails);
        self
    }

    /// Reports this transcoder on `/api/transcoding/status`.
    pub fn with_transcoder(mut self, transcoder: Transcoder) -> Self {
        self.transcoder = Some(transcoder);
        self
    }
}

/// The NVR routes.
pub fn router(state: NvrState) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/workers/{id}", get(worker))
        .route("/api/cameras/{id}/start", post(start))
        .route("/api/cameras/{id}/stop", post(stop))
        .route("/api/cameras/{id}/trigger", post(trigger))
        .route("/api/cameras/{id}/motion", get(get_motion).put(put_motion))
        .route("/api/storage", get(storage))
        .route("/api/transcoding/status", get(transcoding))
        .route("/api/nvr/cameras", get(sources::list).post(sources::add))
        .route("/api/nvr/cameras/probe", post(sources::probe))
        .route(
            "/api/nvr/cameras/{id}",
            get(sources::get_one)
                .patch(sources::update)
                .delete(sources::remove),
        )
        .route(
            "/api/nvr/cameras/{id}/overrides",
            axum::routing::delete(sources::clear_overrides),
        )
        .route("/api/cameras/{id}/snapshot.jpg", get(live::snapshot))
        .route("/api/cameras/{id}/motion/live", get(live::motion_live))
        .with_state(state)
}

/// One camera's recorder. (In the document `RecorderStatus`: the accounts'
/// `CameraStatus` is a camera's online status.)
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RecorderStatus)]
struct CameraStatus {
    /// The camera.
    id: i64,
    /// Its name.
    name: String,
    /// `starting`, `running`, `unhealthy`, `backoff` or `stopped`.
    state: &'static str,
    /// Frames per second, lately.
    fps: f64,
    /// Kilobits per second, lately.
    bitrate_kbps: f64,
    /// Since the last frame; `null` before the first.
    last_frame_age_ms: Option<u64>,
    /// Restarts so far.
    restarts: u32,
    /// Why it last failed.
    last_error: Option<String>,
    /// `h264` or `h265`, once the stream is known.
    codec: Option<&'static str>,
    /// Picture width, once known.
    width: Option<u32>,
    /// Picture height, once known.
    height: Option<u32>,
    /// The stream may carry B-frames: browsers cannot play it live as is.
    b_frames: bool,
    /// H.264 without B-frames: what every WebRTC viewer can play as it is.
    /// Other streams go live as they are to viewers that can play them
    /// (H.265 in some browsers) and through the NVR's live transcode to
    /// the others.
    browser_playable: bool,
    /// Frames recorded since the start.
    frames: u64,
    /// Bytes recorded since the start.
    bytes: u64,
}

impl CameraStatus {
    fn new(id: i64, name: String, s: WorkerStatus) -> Self {
        CameraStatus {
            id,
            name,
            state: s.state.as_str(),
            fps: s.fps,
            bitrate_kbps: s.bitrate_kbps,
            last_frame_age_ms: s.last_frame_age_ms,
            restarts: s.restarts,
            last_error: s.last_error,
            codec: s.stream.as_ref().map(|i| i.codec.name()),
            width: s.stream.as_ref().map(|i| i.width),
            height: s.stream.as_ref().map(|i| i.height),
            b_frames: s.stream.as_ref().is_some_and(|i| i.may_reorder),
            browser_playable: s
                .stream
                .as_ref()
                .is_some_and(|i| i.codec == reallive_core::Codec::H264 && !i.may_reorder),
            frames: s.frames,
            bytes: s.bytes,
        }
    }
}

/// The cameras `user` holds `need` on, with their names.
fn visible(s: &NvrState, user: &User, need: Permission) -> Vec<(i64, String)> {
    let snap = s.api.accounts().snapshot();
    snap.cameras()
        .filter(|c| snap.access(user, c).is_some_and(|p| p.includes(need)))
        .map(|c| (c.id, c.name.clone()))
        .collect()
}

/// Camera `id`'s name if `user` holds `need` on it.
fn camera(s: &NvrState, user: &User, id: i64, need: Permission) -> Result<String, ApiError> {
    s.api.camera_access(user, id, need)
}

/// Every camera the caller may see, with its recorder's state. Needs: any
/// signed-in user (each camera: `view`).
#[utoipa::path(get, path = "/api/status", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses((status = 200, body = Vec<CameraStatus>), (status = 401, body = ErrorBody)))]
async fn status(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let list: Vec<CameraStatus> = visible(&s, &user, Permission::View)
        .into_iter()
        .filter_map(|(id, name)| {
            s.workers
                .status(id)
                .map(|st| CameraStatus::new(id, name, st))
        })
        .collect();
    Ok(ApiJson(list))
}

/// One recorder's status and its recent state changes.
#[derive(Debug, Serialize, ToSchema)]
struct WorkerDetail {
    #[serde(flatten)]
    status: CameraStatus,
    /// Oldest first.
    history: Vec<ChangeItem>,
}

/// A state change.
#[derive(Debug, Serialize, ToSchema)]
struct ChangeItem {
    /// When, in Unix ms.
    at_ms: i64,
    /// The new state.
    state: &'static str,
    /// Why.
    reason: String,
}

/// One camera's recorder, with its recent state changes. Needs: `view` on
/// the camera.
#[utoipa::path(get, path = "/api/workers/{id}", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, body = WorkerDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or it has no recorder"),
    ))]
async fn worker(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let name = camera(&s, &user, id, Permission::View)?;
    let st = s
        .workers
        .status(id)
        .ok_or_else(|| ApiError::not_found("recorder"))?;
    let history = st
        .history
        .iter()
        .map(|c| ChangeItem {
            at_ms: c.at_unix_ms,
            state: c.state.as_str(),
            reason: c.reason.clone(),
        })
        .collect();
    Ok(ApiJson(WorkerDetail {
        status: CameraStatus::new(id, name, st),
        history,
    }))
}

/// Starts the camera's recorder. Needs: `control` on the camera.
#[utoipa::path(post, path = "/api/cameras/{id}/start", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:control"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 202, description = "starting"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn start(
    state: State<NvrState>,
    user: AuthUser,
    id: ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    control(state, user, id, true).await
}

/// Stops the camera's recorder until it is started. Needs: `control` on the
/// camera.
#[utoipa::path(post, path = "/api/cameras/{id}/stop", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:control"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 202, description = "stopping"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn stop(
    state: State<NvrState>,
    user: AuthUser,
    id: ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    control(state, user, id, false).await
}

/// `POST /api/cameras/{id}/trigger`.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    /// How long to record.
    #[schema(minimum = 1, maximum = 3600)]
    seconds: u32,
}

/// Records the camera for `seconds` as if motion were seen (an external
/// alarm). Needs: `control` on the camera.
#[utoipa::path(post, path = "/api/cameras/{id}/trigger", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:control"))),
    params(("id" = i64, Path, description = "camera id")), request_body = TriggerBody,
    responses(
        (status = 202, description = "recording"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the camera is not recording now"),
    ))]
async fn trigger(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> Result<StatusCode, ApiError> {
    camera(&s, &user, id, Permission::Control)?;
    if !(1..=3600).contains(&body.seconds) {
        return Err(ApiError::new(
            reallive_core::ErrorKind::InvalidArgument,
            "seconds must be 1 to 3600",
        ));
    }
    if !s.workers.trigger(id, body.seconds) {
        // The camera's state, not the server's: a 409, never a 5xx.
        return Err(ApiError::with_status(
            StatusCode::CONFLICT,
            "conflict",
            "the camera is not recording now",
        ));
    }
    tracing::info!(camera = id, seconds = body.seconds, by = %user.username, "triggered");
    Ok(StatusCode::ACCEPTED)
}

/// Starts or stops camera `id`'s recorder; needs `control`.
async fn control(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    run: bool,
) -> Result<StatusCode, ApiError> {
    camera(&s, &user, id, Permission::Control)?;
    let done = if run {
        s.workers.start(id)
    } else {
        s.workers.stop(id)
    };
    if !done {
        return Err(ApiError::not_found("recorder"));
    }
    let what = if run { "started" } else { "stopped" };
    tracing::info!(camera = id, by = %user.username, "recorder {what} by request");
    Ok(StatusCode::ACCEPTED)
}

/// The recordings' volume and each visible camera's share of it.
#[derive(Debug, Serialize, ToSchema)]
struct StorageReport {
    /// Free on the recordings' volume.
    free_bytes: u64,
    /// The volume's size.
    total_bytes: u64,
    /// Retention keeps at least this much free.
    floor_bytes: u64,
    /// The cameras the caller may see.
    cameras: Vec<CameraStorage>,
    /// Storage warnings now (free space under the floor, failed writes).
    warnings: Vec<String>,
}

/// One camera's recordings.
#[derive(Debug, Serialize, ToSchema)]
struct CameraStorage {
    /// The camera.
    id: i64,
    /// Its name.
    name: String,
    /// Recordings kept.
    recordings: u64,
    /// Their bytes.
    bytes: u64,
    /// The oldest recording's start, Unix ms.
    oldest_ms: Option<i64>,
    /// The newest recording's start, Unix ms.
    newest_ms: Option<i64>,
    /// Retention by age; `null`: none.
    max_age_days: Option<f64>,
    /// Retention by size; `null`: none.
    max_bytes: Option<u64>,
}

/// Bytes per camera, free space and retention. Needs: any signed-in user
/// (each camera: `view`).
#[utoipa::path(get, path = "/api/storage", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses((status = 200, body = StorageReport), (status = 401, body = ErrorBody)))]
async fn storage(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let disk = s.store.disk_space().await?;
    let usage = s.store.usage().await?;
    let policy = s.store.retention_policy();
    let cameras = visible(&s, &user, Permission::View)
        .into_iter()
        .map(|(id, name)| {
            let store_name = CameraId(id).store_key();
            let u = usage.iter().find(|u| u.camera == store_name);
            let keep = policy
                .cameras
                .get(&store_name)
                .copied()
                .unwrap_or(policy.default);
            CameraStorage {
                id,
                name,
                recordings: u.map_or(0, |u| u.recordings),
                bytes: u.map_or(0, |u| u.bytes),
                oldest_ms: u
                    .and_then(|u| u.oldest_utc_ns)
                    .map(|n| n.div_euclid(1_000_000)),
                newest_ms: u
                    .and_then(|u| u.newest_utc_ns)
                    .map(|n| n.div_euclid(1_000_000)),
                max_age_days: keep.max_age_ns.map(|n| n as f64 / 86_400e9),
                max_bytes: keep.max_bytes,
            }
        })
        .collect();
    Ok(ApiJson(StorageReport {
        free_bytes: disk.free_bytes,
        total_bytes: disk.total_bytes,
        floor_bytes: policy.free_floor(disk.total_bytes),
        cameras,
        warnings: s.workers.warnings(),
    }))
}

/// `/api/transcoding/status`.
#[derive(Debug, Serialize, ToSchema)]
struct TranscodingReport {
    /// `[transcoding]` is on.
    enabled: bool,
    /// `off`, `waiting` (outside the window), `idle` or `running`.
    state: &'static str,
    /// When jobs may run, as configured.
    window: Option<String>,
    /// Recordings older than this are transcoded.
    older_than_days: Option<f64>,
    /// Jobs at once.
    max_jobs: usize,
    /// Jobs running now.
    running: Vec<TranscodingJob>,
    /// Jobs done since the start.
    completed: u64,
    /// Jobs failed since the start.
    failed: u64,
    /// Bytes of the recordings transcoded, before.
    bytes_before: u64,
    /// Their bytes after.
    bytes_after: u64,
    /// The difference.
    bytes_saved: u64,
    /// The last failure.
    last_error: Option<String>,
}

/// A transcode job.
#[derive(Debug, Serialize, ToSchema)]
struct TranscodingJob {
    /// The recording.
    recording_id: i64,
    /// Its camera, by the store's name.
    camera: String,
    /// Its file, under the store.
    path: String,
    /// Its bytes.
    bytes: u64,
    /// When the job started, Unix ms.
    started_ms: i64,
}

/// The H.265 transcoder: state, window, jobs running, completed, failed,
/// bytes saved. Needs: admin.
#[utoipa::path(get, path = "/api/transcoding/status", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    responses(
        (status = 200, body = TranscodingReport), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
async fn transcoding(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin sees the transcoder's status",
        ));
    }
    let Some(t) = &s.transcoder else {
        return Ok(ApiJson(TranscodingReport {
            enabled: false,
            state: "off",
            window: None,
            older_than_days: None,
            max_jobs: 0,
            running: Vec::new(),
            completed: 0,
            failed: 0,
            bytes_before: 0,
            bytes_after: 0,
            bytes_saved: 0,
            last_error: None,
        }));
    };
    let st = t.status();
    Ok(ApiJson(TranscodingReport {
        enabled: true,
        state: st.state,
        window: Some(st.window.clone()),
        older_than_days: Some(st.older_than_secs as f64 / 86_400.0),
        max_jobs: st.max_jobs,
        bytes_saved: st.bytes_saved(),
        running: st
            .running
            .into_iter()
            .map(|j| TranscodingJob {
                recording_id: j.recording_id,
                camera: j.camera,
                path: j.path,
                bytes: j.bytes,
                started_ms: j.started_utc_ns.div_euclid(1_000_000),
            })
            .collect(),
        completed: st.completed,
        failed: st.failed,
        bytes_before: st.bytes_before,
        bytes_after: st.bytes_after,
        last_error: st.last_error,
    }))
}

/// The camera's motion settings, as `[cameras.motion]`. Needs: `view` on
/// the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/motion", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, body = MotionConfig), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or not an RTSP source"),
    ))]
async fn get_motion(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    camera(&s, &user, id, Permission::View)?;
    let motion = s
        .workers
        .sources()
        .into_iter()
        .find(|v| v.id == id)
        .map(|v| v.config.motion)
        .ok_or_else(|| ApiError::not_found("camera"))?;
    Ok(ApiJson(motion))
}

/// Replaces the camera's motion settings, applied at once and kept across
/// restarts. Needs: admin.
#[utoipa::path(put, path = "/api/cameras/{id}/motion", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "camera id")), request_body = MotionConfig,
    responses(
        (status = 200, body = MotionConfig),
        (status = 400, body = ErrorBody, description = "a setting out of range, or motion off for a camera in `mode = \"motion\"`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn put_motion(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(motion): ApiJson<MotionConfig>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&user)?;
    camera(&s, &user, id, Permission::View)?;
    let mode = s
        .workers
        .sources()
        .into_iter()
        .find(|v| v.id == id)
        .map(|v| v.config.mode)
        .ok_or_else(|| ApiError::not_found("camera"))?;
    if mode == RecordMode::Motion && !motion.enabled {
        return Err(ApiError::new(
            reallive_core::ErrorKind::InvalidArgument,
            "motion.enabled: a camera in mode = \"motion\" records only what it detects",
        ));
    }
    motion.check().map_err(|e| {
        ApiError::new(
            reallive_core::ErrorKind::InvalidArgument,
            format!("motion: {e}"),
        )
    })?;
    s.workers.set_motion(id, motion.clone()).await?;
    Ok(ApiJson(motion))
}

fn admin(user: &User) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only an admin manages the NVR's cameras",
        ))
    }
}
