//! `/api/nvr/cameras*`: the NVR's RTSP sources: list, read with an `ETag`,
//! add, edit with `If-Match`, drop a config-file camera's overrides,
//! delete (keeping or deleting its recordings), and probe a URL before
//! anything is saved.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use reallive_core::{CameraId, ErrorKind, RtspUrl};
use reallive_record::SourceView;
use reallive_record::config::{Backend, MotionConfig, NvrConfigFile, RecordMode, Transport};
use reallive_rtsp::{ProbeError, ProbeTransport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{NvrState, admin};
use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiPath, ApiQuery, AuthUser};

/// How long a probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Probes one admin may run at once.
pub const MAX_PROBES_PER_USER: usize = 2;
/// Probes at once in all.
pub const MAX_PROBES: usize = 4;
/// A probe's snapshot is at most this wide.
const PROBE_SNAPSHOT_WIDTH: u32 = 640;

/// One RTSP source, as the API shows it: passwords redacted.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SourceItem {
    /// The camera.
    id: i64,
    /// Its name.
    name: String,
    /// The main stream, its password redacted.
    url: String,
    /// The sub-stream, its password redacted.
    sub_url: Option<String>,
    /// When it records.
    mode: RecordMode,
    /// How RTP travels.
    transport: Transport,
    /// The RTSP client that reads it.
    backend: Backend,
    /// Restarts before giving up; `null`: never give up.
    max_restarts: Option<u32>,
    /// Its retention; `null` fields: the default.
    retention: NewRetention,
    /// Seconds kept before an event (`mode = "motion"`).
    pre_roll_secs: u32,
    /// Seconds kept after an event.
    post_roll_secs: u32,
    /// `config` (the file) or `api`.
    from: &'static str,
    /// For a config-file camera: the fields changed through the API, which
    /// win over the file.
    overridden: Vec<String>,
    /// The settings' tag, also sent as `ETag`: `PATCH` needs it in
    /// `If-Match`.
    etag: String,
}

impl SourceItem {
    fn new(v: SourceView) -> Self {
        let c = v.config;
        SourceItem {
            id: v.id,
            name: c.name,
            url: c.url.to_string(),
            sub_url: c.sub_url.map(|u| u.to_string()),
            mode: c.mode,
            transport: c.transport,
            backend: c.backend,
            max_restarts: c.max_restarts,
            retention: NewRetention {
                max_age_days: c.retention.max_age_days,
                max_bytes: c.retention.max_bytes,
            },
            pre_roll_secs: c.pre_roll_secs,
            post_roll_secs: c.post_roll_secs,
            from: if v.from_file { "config" } else { "api" },
            overridden: v.overridden,
            etag: v.etag,
        }
    }

    /// This item as a response, with its `ETag`.
    fn respond(self, status: StatusCode) -> Response {
        let tag = HeaderValue::from_str(&format!("\"{}\"", self.etag)).ok();
        let mut r = (status, ApiJson(self)).into_response();
        if let Some(t) = tag {
            r.headers_mut().insert(header::ETAG, t);
        }
        r
    }
}

fn view(s: &NvrState, id: i64) -> Result<SourceView, ApiError> {
    s.workers
        .sources()
        .into_iter()
        .find(|v| v.id == id)
        .ok_or_else(|| ApiError::not_found("camera"))
}

/// Every RTSP source, URLs redacted. Needs: admin.
#[utoipa::path(get, path = "/api/nvr/cameras", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    responses(
        (status = 200, body = Vec<SourceItem>), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub(super) async fn list(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    admin(&user)?;
    let list: Vec<SourceItem> = s
        .workers
        .sources()
        .into_iter()
        .map(SourceItem::new)
        .collect();
    Ok(ApiJson(list))
}

/// One RTSP source, with its `ETag`. Needs: admin.
#[utoipa::path(get, path = "/api/nvr/cameras/{id}", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, body = SourceItem, headers(("ETag" = String, description = "the settings' tag, for `If-Match`"))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub(super) async fn get_one(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    admin(&user)?;
    Ok(SourceItem::new(view(&s, id)?).respond(StatusCode::OK))
}

/// `POST /api/nvr/cameras`: the fields of a `[[cameras]]` entry, checked
/// as the config file's are.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSource {
    /// 1 to 64 of A-Z, a-z, 0-9, `_` and `-` (it names a directory);
    /// unique.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
    /// The main stream: `rtsp://[user:password@]host[:port]/path`.
    url: String,
    /// A smaller stream for motion detection.
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_url: Option<String>,
    /// Defaults to `continuous`.
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<RecordMode>,
    /// Defaults to `tcp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<Transport>,
    /// Defaults to `retina`; `gstreamer` for a camera retina cannot read.
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<Backend>,
    /// Restarts before giving up; absent: never give up.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_restarts: Option<u32>,
    /// This camera's retention; absent: the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: Option<NewRetention>,
    /// Seconds kept before an event (`mode = "motion"`); at most 60.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 60)]
    pre_roll_secs: Option<u32>,
    /// Seconds kept after an event.
    #[serde(skip_serializing_if = "Option::is_none")]
    post_roll_secs: Option<u32>,
    /// `[cameras.motion]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    motion: Option<MotionConfig>,
}

impl NewSource {
    /// The entry of `v`'s camera as it is now, password included (it is
    /// checked again, never shown).
    fn of(v: &SourceView) -> Self {
        let c = &v.config;
        NewSource {
            name: c.name.clone(),
            url: c.url.expose().to_owned(),
            sub_url: c.sub_url.as_ref().map(|u| u.expose().to_owned()),
            mode: Some(c.mode),
            transport: Some(c.transport),
            backend: Some(c.backend),
            max_restarts: c.max_restarts,
            retention: Some(NewRetention {
                max_age_days: c.retention.max_age_days,
                max_bytes: c.retention.max_bytes,
            }),
            pre_roll_secs: Some(c.pre_roll_secs),
            post_roll_secs: Some(c.post_roll_secs),
            motion: Some(c.motion.clone()),
        }
    }
}

/// A camera's retention.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewRetention {
    /// Recordings older than this go.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age_days: Option<u32>,
    /// The oldest recordings go beyond this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_bytes: Option<u64>,
}

/// A checked entry, or a 400 naming its field.
fn check(entry: &NewSource) -> Result<reallive_record::config::CameraConfig, ApiError> {
    NvrConfigFile::check_camera(entry).map_err(ApiError::from)
}

/// Adds an RTSP camera and starts recording it; it is kept across
/// restarts. Needs: admin.
#[utoipa::path(post, path = "/api/nvr/cameras", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    request_body = NewSource,
    responses(
        (status = 201, body = SourceItem),
        (status = 400, body = ErrorBody, description = "a field breaks a rule of `[[cameras]]`; `field` names it"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the name is taken"),
    ))]
pub(super) async fn add(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiJson(body): ApiJson<NewSource>,
) -> Result<Response, ApiError> {
    admin(&user)?;
    let camera = check(&body)?;
    let name = camera.name.clone();
    let id = s
        .workers
        .add(camera)
        .await
        .map_err(|e| with_name_field(e.into()))?;
    tracing::info!(camera = id, %name, by = %user.username, "RTSP camera added");
    Ok(SourceItem::new(view(&s, id)?).respond(StatusCode::CREATED))
}

/// A name conflict names the `name` field.
fn with_name_field(e: ApiError) -> ApiError {
    if e.kind == ErrorKind::AlreadyExists {
        e.with_field("name")
    } else {
        e
    }
}

/// `PATCH /api/nvr/cameras/{id}`: the fields to change; the others stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SourcePatch {
    /// A new name (the rules of `POST`).
    #[serde(default)]
    name: Option<String>,
    /// A new main stream URL (restarts the camera's run).
    #[serde(default)]
    url: Option<String>,
    /// A new sub-stream URL; `null` removes it.
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<String>)]
    sub_url: Option<Option<String>>,
    /// When it records.
    #[serde(default)]
    mode: Option<RecordMode>,
    /// How RTP travels.
    #[serde(default)]
    transport: Option<Transport>,
    /// The RTSP client that reads it (restarts the camera's run).
    #[serde(default)]
    backend: Option<Backend>,
    /// Restarts before giving up; `null`: never give up.
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<u32>)]
    max_restarts: Option<Option<u32>>,
    /// Its retention (both fields replace the old ones).
    #[serde(default)]
    retention: Option<NewRetention>,
    /// Seconds kept before an event.
    #[serde(default)]
    #[schema(maximum = 60)]
    pre_roll_secs: Option<u32>,
    /// Seconds kept after an event.
    #[serde(default)]
    post_roll_secs: Option<u32>,
    /// `[cameras.motion]` (as `PUT .../motion`).
    #[serde(default)]
    motion: Option<MotionConfig>,
}

/// The tag in `If-Match` (quotes and a weak `W/` dropped).
fn if_match(headers: &HeaderMap) -> Result<String, ApiError> {
    let v = headers
        .get(header::IF_MATCH)
        .ok_or_else(|| {
            ApiError::with_status(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the ETag of GET /api/nvr/cameras/{id}, so that no one's edit is lost",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::new(ErrorKind::InvalidArgument, "If-Match: not text"))?;
    Ok(v.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned())
}

/// Changes any field of a camera, a config-file camera included (its
/// changes are kept in the database and win over the file). A change of
/// motion settings alone applies at once; any other restarts that
/// camera's run only. Needs: admin, and `If-Match` with the camera's
/// `ETag`.
#[utoipa::path(patch, path = "/api/nvr/cameras/{id}", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("If-Match" = String, Header, description = "the camera's `ETag`"),
    ),
    request_body = SourcePatch,
    responses(
        (status = 200, body = SourceItem, headers(("ETag" = String, description = "the new tag"))),
        (status = 400, body = ErrorBody, description = "a field breaks a rule of `[[cameras]]`; `field` names it"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the new name is taken"),
        (status = 412, body = ErrorBody, description = "someone changed the camera since that `ETag`: read it again"),
        (status = 428, body = ErrorBody, description = "no `If-Match`"),
    ))]
pub(super) async fn update(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<SourcePatch>,
) -> Result<Response, ApiError> {
    admin(&user)?;
    let tag = if_match(&headers)?;
    let current = view(&s, id)?;
    let mut entry = NewSource::of(&current);
    let SourcePatch {
        name,
        url,
        sub_url,
        mode,
        transport,
        backend,
        max_restarts,
        retention,
        pre_roll_secs,
        post_roll_secs,
        motion,
    } = patch;
    if let Some(v) = name {
        entry.name = v;
    }
    if let Some(v) = url {
        entry.url = v;
    }
    if let Some(v) = sub_url {
        entry.sub_url = v;
    }
    if let Some(v) = mode {
        entry.mode = Some(v);
    }
    if let Some(v) = transport {
        entry.transport = Some(v);
    }
    if let Some(v) = backend {
        entry.backend = Some(v);
    }
    if let Some(v) = max_restarts {
        entry.max_restarts = v;
    }
    if let Some(v) = retention {
        entry.retention = Some(v);
    }
    if let Some(v) = pre_roll_secs {
        entry.pre_roll_secs = Some(v);
    }
    if let Some(v) = post_roll_secs {
        entry.post_roll_secs = Some(v);
    }
    if let Some(v) = motion {
        entry.motion = Some(v);
    }
    let config = check(&entry)?;
    if let Err(e) = config.motion.check() {
        return Err(ApiError::from(e).with_field("motion"));
    }
    if config.mode == RecordMode::Motion && !config.motion.enabled {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "mode: a camera in mode = \"motion\" needs motion.enabled",
        )
        .with_field("mode"));
    }
    s.workers
        .update(id, config, &tag)
        .await
        .map_err(|e| with_name_field(e.into()))?;
    tracing::info!(camera = id, by = %user.username, "RTSP camera edited");
    Ok(SourceItem::new(view(&s, id)?).respond(StatusCode::OK))
}

/// Drops what the API changed of a config-file camera: the file applies
/// again (its run restarts if anything but motion changes). Needs: admin.
#[utoipa::path(delete, path = "/api/nvr/cameras/{id}/overrides", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, body = SourceItem), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the camera was added through the API: it has no file settings"),
    ))]
pub(super) async fn clear_overrides(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    admin(&user)?;
    s.workers.clear_overrides(id).await?;
    tracing::info!(camera = id, by = %user.username, "config-file settings restored");
    Ok(SourceItem::new(view(&s, id)?).respond(StatusCode::OK))
}

/// What to do with a deleted camera's footage.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RemoveQuery {
    /// `keep` (the default): its recordings stay, playable by admins;
    /// `delete`: they are deleted too, except what a lock keeps.
    #[serde(default)]
    #[param(inline)]
    recordings: Option<Recordings>,
}

/// `keep` or `delete`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Recordings {
    /// Keep them.
    #[default]
    Keep,
    /// Delete them.
    Delete,
}

/// What a delete did.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeleteSourceResult {
    /// Recordings deleted.
    recordings_deleted: u64,
    /// Their bytes.
    bytes_deleted: u64,
    /// Recordings kept because a lock covers them.
    locked_kept: u64,
}

/// Stops recording a camera added through the API and forgets its
/// source. With `recordings=delete` its recordings, events and the camera
/// itself go too (locked footage stays); with `keep` they stay. Needs:
/// admin.
#[utoipa::path(delete, path = "/api/nvr/cameras/{id}", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "camera id"), RemoveQuery),
    responses(
        (status = 200, body = DeleteSourceResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the camera is in the config file: remove it there, or set mode = \"off\""),
    ))]
pub(super) async fn remove(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RemoveQuery>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&user)?;
    s.workers.remove(id).await?;
    let mut out = DeleteSourceResult {
        recordings_deleted: 0,
        bytes_deleted: 0,
        locked_kept: 0,
    };
    if q.recordings.unwrap_or_default() == Recordings::Delete {
        let d = s
            .store
            .delete_camera_recordings(&CameraId(id).store_key())
            .await?;
        out = DeleteSourceResult {
            recordings_deleted: d.deleted,
            bytes_deleted: d.bytes,
            locked_kept: d.locked_kept,
        };
        if d.locked_kept == 0 {
            s.api.accounts().delete_camera(id).await?;
        }
    }
    tracing::info!(camera = id, by = %user.username, deleted = out.recordings_deleted, "RTSP camera removed");
    Ok(ApiJson(out))
}

/// `POST /api/nvr/cameras/probe`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbeRequest {
    /// The main stream: `rtsp://[user:password@]host[:port]/path`.
    url: String,
    /// A sub-stream to probe too.
    #[serde(default)]
    sub_url: Option<String>,
    /// Defaults to `tcp`.
    #[serde(default)]
    transport: Option<Transport>,
}

/// What a stream is.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProbeStream {
    /// `h264` or `h265`.
    codec: &'static str,
    /// Picture width.
    width: u32,
    /// Picture height.
    height: u32,
    /// Frames per second, when known.
    fps: Option<f64>,
}

/// An audio track.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProbeAudio {
    /// As the camera names it: `mpeg4-generic` (AAC), `pcma`, `pcmu`, `opus`, ...
    codec: String,
    /// Samples per second.
    sample_rate: Option<u32>,
    /// Channels.
    channels: Option<u16>,
}

/// What the camera sends.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProbeResult {
    /// `h264` or `h265`.
    codec: &'static str,
    /// Picture width.
    width: u32,
    /// Picture height.
    height: u32,
    /// Frames per second, when known.
    fps: Option<f64>,
    /// Its audio tracks.
    audio: Vec<ProbeAudio>,
    /// A JPEG of its first keyframe, at most 640 px wide; `null` when it
    /// could not be made.
    snapshot_jpeg_base64: Option<String>,
    /// The sub-stream, when one was given.
    sub: Option<ProbeStream>,
}

/// Probes running, per admin and in all.
#[derive(Debug, Default)]
pub(crate) struct ProbeSlots(Mutex<HashMap<i64, usize>>);

/// A probe's place; dropping it gives the place back.
struct ProbeSlot<'a> {
    slots: &'a ProbeSlots,
    user: i64,
}

impl ProbeSlots {
    fn take(&self, user: i64) -> Option<ProbeSlot<'_>> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let all: usize = m.values().sum();
        let mine = m.entry(user).or_insert(0);
        if *mine >= MAX_PROBES_PER_USER || all >= MAX_PROBES {
            return None;
        }
        *mine += 1;
        Some(ProbeSlot { slots: self, user })
    }
}

impl Drop for ProbeSlot<'_> {
    fn drop(&mut self) {
        let mut m = self
            .slots
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.user);
            }
        }
    }
}

/// A probe failure as the API answers it, naming its field.
fn probe_error(e: ProbeError, field: &str) -> ApiError {
    let message = match &e {
        ProbeError::Auth => "the camera refused the user name or password in the URL".to_owned(),
        ProbeError::NotFound => "the camera answered, but has no stream at that path".to_owned(),
        other => other.to_string(),
    };
    let err = match e {
        ProbeError::BadUrl(_) => ApiError::with_status(StatusCode::BAD_REQUEST, "bad_url", message),
        e => ApiError::with_status(StatusCode::UNPROCESSABLE_ENTITY, e.code(), message),
    };
    err.with_field(field)
}

fn parse_url(url: &str, field: &str) -> Result<RtspUrl, ApiError> {
    RtspUrl::parse(url).map_err(|e| {
        ApiError::with_status(StatusCode::BAD_REQUEST, "bad_url", e.to_string()).with_field(field)
    })
}

/// Tries a camera URL before anything is saved: one `DESCRIBE`, `SETUP`
/// and `PLAY` until the first keyframe, at most 10 s. Answers the codec,
/// size, frame rate, audio tracks and a snapshot, or why not: `auth`,
/// `not_found`, `unreachable`, `timeout`, `unsupported_codec` (422) or
/// `bad_url` (400), with `field` naming `url` or `sub_url`. Closing the
/// request ends the probe. At most 2 per admin and 4 in all at once.
/// Needs: admin.
#[utoipa::path(post, path = "/api/nvr/cameras/probe", tag = "nvr", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    request_body = ProbeRequest,
    responses(
        (status = 200, body = ProbeResult),
        (status = 400, body = ErrorBody, description = "`bad_url`: not an rtsp:// URL"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`auth`, `not_found`, `unreachable`, `timeout`, `unsupported_codec` or `failed`"),
        (status = 429, body = ErrorBody, description = "too many probes at once"),
    ))]
pub(super) async fn probe(
    State(s): State<NvrState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<ProbeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    admin(&user)?;
    let url = parse_url(&req.url, "url")?;
    let sub = req
        .sub_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|u| parse_url(u, "sub_url"))
        .transpose()?;
    let Some(_slot) = s.probes.take(user.id) else {
        return Err(ApiError::new(
            ErrorKind::ResourceExhausted,
            format!(
                "at most {MAX_PROBES_PER_USER} probes per admin and {MAX_PROBES} in all at once"
            ),
        ));
    };
    let transport = match req.transport.unwrap_or_default() {
        Transport::Udp => ProbeTransport::Udp,
        _ => ProbeTransport::Tcp,
    };
    tracing::info!(url = %url, by = %user.username, "probing a camera");
    let main = reallive_rtsp::probe(&url, transport, PROBE_TIMEOUT);
    let sub_probe = async {
        match &sub {
            Some(u) => Some(reallive_rtsp::probe(u, transport, PROBE_TIMEOUT).await),
            None => None,
        }
    };
    let (main, sub) = tokio::join!(main, sub_probe);
    let main = main.map_err(|e| probe_error(e, "url"))?;
    let sub = sub
        .transpose()
        .map_err(|e| probe_error(e, "sub_url"))?
        .map(|p| ProbeStream {
            codec: p.codec.name(),
            width: p.width,
            height: p.height,
            fps: p.fps,
        });
    let snapshot = match &s.thumbnails {
        Some(t) => match t
            .of_access_unit(
                main.codec,
                &main.keyframe.codec_config,
                &main.keyframe.access_unit,
                PROBE_SNAPSHOT_WIDTH,
            )
            .await
        {
            Ok(jpeg) => Some(base64::engine::general_purpose::STANDARD.encode(jpeg)),
            Err(e) => {
                tracing::warn!(url = %url, "probe snapshot: {e}");
                None
            }
        },
        None => None,
    };
    Ok(ApiJson(ProbeResult {
        codec: main.codec.name(),
        width: main.width,
        height: main.height,
        fps: main.fps,
        audio: main
            .audio
            .into_iter()
            .map(|a| ProbeAudio {
                codec: a.codec,
                sample_rate: a.sample_rate,
                channels: a.channels,
            })
            .collect(),
        snapshot_jpeg_base64: snapshot,
        sub,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_bounded_per_admin_and_in_all() {
        let slots = ProbeSlots::default();
        let a1 = slots.take(1).unwrap();
        let _a2 = slots.take(1).unwrap();
        assert!(slots.take(1).is_none(), "a third for one admin");
        let _b1 = slots.take(2).unwrap();
        let _b2 = slots.take(2).unwrap();
        assert!(slots.take(3).is_none(), "a fifth in all");
        drop(a1);
        assert!(slots.take(3).is_some(), "a place given back is taken again");
    }

    #[test]
    fn if_match_takes_strong_and_weak_tags() {
        let mut h = HeaderMap::new();
        assert_eq!(
            if_match(&h).unwrap_err().status(),
            StatusCode::PRECONDITION_REQUIRED
        );
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert_eq!(if_match(&h).unwrap(), "abc");
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"abc\""));
        assert_eq!(if_match(&h).unwrap(), "abc");
    }
}
