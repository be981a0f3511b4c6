//! Playback of a [`Store`]: the recordings list, HLS VOD and live
//! playlists, the files they point at (by byte range), and MP4 export.
//!
//! Shared by every program that records (the puller, the NVR). Who may
//! play what back is theirs to say, through [`PlaybackAccess`]; this
//! router only asks it, per request, for the store's name of a camera.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/recordings?camera={id}&start={unix_ms}&end={unix_ms}` | `[{id, camera_id, start_ms, end_ms, bytes, state}]` |
//! | GET | `/api/events?camera={id}&start=&end=&kind=&zone=&reviewed=&before=&limit=` | `[{id, camera_id, kind, start_ms, end_ms, score, zone, reviewed, peak_ms}]`, newest first (needs `view`) |
//! | GET | `/api/cameras/{id}/vod.m3u8?start=&end=` | HLS VOD over the range |
//! | GET | `/api/cameras/{id}/live.m3u8` | HLS of the newest fragments |
//! | GET | `/api/cameras/{id}/files/{path}?t=` | a recording, by byte range |
//! | GET | `/api/cameras/{id}/export.mp4?start=&end=` | one MP4, with HTTP Range |
//!
//! Every handler carries its `#[utoipa::path]` (tag `recordings`), with
//! the camera permission it needs under [`ApiAccess`] in its description
//! and in `x-reallive-role`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reallive_auth::Permission;
use reallive_core::ErrorKind;
use reallive_store::{ExportJobs, Store, StoreError, TimeRange};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiPath};

/// The longest range one export may cover.
pub const MAX_EXPORT: Duration = Duration::from_secs(6 * 3600);
/// Exports are kept this long for resumed or repeated downloads.
const EXPORT_TTL: Duration = Duration::from_secs(3600);

/// What a playback request carries for the access check.
#[derive(Debug)]
pub struct PlaybackRequest<'a> {
    /// The request's headers (`Authorization`).
    pub headers: &'a HeaderMap,
    /// A `token` query parameter, for players that cannot set headers.
    pub query_token: Option<&'a str>,
    /// The peer's address.
    pub peer: SocketAddr,
}

impl PlaybackRequest<'_> {
    /// The `Authorization: Bearer` token, else the `token` query parameter.
    pub fn token(&self) -> Option<&str> {
        self.headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .or(self.query_token)
    }
}

/// Decides who may play back which camera.
pub trait PlaybackAccess: Send + Sync + 'static {
    /// The store's name for `camera` if `request` holds `need` on it
    /// (`view` for the live playlist, `playback` for the rest); otherwise
    /// the error to answer (401, 403 or 404).
    fn authorize(
        &self,
        request: &PlaybackRequest<'_>,
        camera: i64,
        need: Permission,
    ) -> Result<String, ApiError>;

    /// Who is asking, for per-user limits (exports at once): by default
    /// the peer's address.
    fn principal(&self, request: &PlaybackRequest<'_>) -> String {
        format!("peer {}", request.peer.ip())
    }

    /// Whether `request` may use playback at all, before any camera is
    /// named (the event stream, marking events): the 401 or 403 to
    /// answer if not.
    fn authenticate(&self, request: &PlaybackRequest<'_>) -> Result<(), ApiError>;

    /// Whether `request` comes from an admin, who sees every user's
    /// exports: by default nobody.
    fn is_admin(&self, _request: &PlaybackRequest<'_>) -> bool {
        false
    }
}

/// The accounts' rules, as on the server: a signed-in user (Bearer token,
/// or `?token=` for players that cannot set headers) with `need` on the
/// camera, by grant, ownership or the admin role. A camera the user may
/// not see is a 404, as in the cameras API. The store's name of camera
/// `id` is its [`CameraId::store_key`](reallive_core::CameraId::store_key).
#[derive(Clone)]
pub struct ApiAccess {
    state: crate::ApiState,
}

impl std::fmt::Debug for ApiAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiAccess").finish_non_exhaustive()
    }
}

impl ApiAccess {
    /// Checks against `state`'s accounts.
    pub fn new(state: crate::ApiState) -> Self {
        ApiAccess { state }
    }
}

impl PlaybackAccess for ApiAccess {
    fn authorize(
        &self,
        request: &PlaybackRequest<'_>,
        camera: i64,
        need: Permission,
    ) -> Result<String, ApiError> {
        let token = request
            .token()
            .ok_or_else(|| ApiError::unauthenticated("sign in: send a Bearer token"))?;
        let user = self.state.authenticate(token)?;
        self.state.camera_access(&user, camera, need)?;
        Ok(reallive_core::CameraId(camera).store_key())
    }

    fn authenticate(&self, request: &PlaybackRequest<'_>) -> Result<(), ApiError> {
        let token = request
            .token()
            .ok_or_else(|| ApiError::unauthenticated("sign in: send a Bearer token"))?;
        self.state.authenticate(token).map(|_| ())
    }

    fn is_admin(&self, request: &PlaybackRequest<'_>) -> bool {
        request
            .token()
            .and_then(|t| self.state.authenticate(t).ok())
            .is_some_and(|u| u.role == reallive_auth::Role::Admin)
    }

    fn principal(&self, request: &PlaybackRequest<'_>) -> String {
        match request.token().map(|t| self.state.authenticate(t)) {
            Some(Ok(user)) => format!("user {}", user.id),
            _ => format!("peer {}", request.peer.ip()),
        }
    }
}

/// A fixed set of cameras, open on loopback, and behind one bearer token
/// when one is set (it must be, to listen beyond loopback).
#[derive(Clone)]
pub struct LocalAccess {
    cameras: HashMap<i64, String>,
    token: Option<String>,
}

impl std::fmt::Debug for LocalAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAccess")
            .field("cameras", &self.cameras)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl LocalAccess {
    /// `cameras` maps an id to the store's name. With `token`, every
    /// request needs it, from loopback too; without, only loopback peers
    /// are served.
    pub fn new(cameras: HashMap<i64, String>, token: Option<String>) -> Self {
        LocalAccess { cameras, token }
    }
}

impl PlaybackAccess for LocalAccess {
    fn authorize(
        &self,
        request: &PlaybackRequest<'_>,
        camera: i64,
        _need: Permission,
    ) -> Result<String, ApiError> {
        self.authenticate(request)?;
        self.cameras
            .get(&camera)
            .cloned()
            .ok_or_else(|| ApiError::not_found("camera"))
    }

    fn authenticate(&self, request: &PlaybackRequest<'_>) -> Result<(), ApiError> {
        match &self.token {
            Some(want) => {
                use subtle::ConstantTimeEq as _;
                let given = request
                    .token()
                    .ok_or_else(|| ApiError::unauthenticated("send the token as a Bearer token"))?;
                let ok: bool = given.as_bytes().ct_eq(want.as_bytes()).into();
                if !ok {
                    return Err(ApiError::unauthenticated("wrong token"));
                }
            }
            None if !request.peer.ip().is_loopback() => {
                return Err(ApiError::forbidden("playback is served to loopback only"));
            }
            None => {}
        }
        Ok(())
    }
}

/// The router's state.
#[derive(Clone)]
pub struct RecordingsState {
    store: Store,
    access: Arc<dyn PlaybackAccess>,
    exports: PathBuf,
    running: Arc<ExportSlots>,
    budget_percent: u8,
    /// The export jobs sharing the exports directory and its budget.
    jobs: Option<ExportJobs>,
}

impl std::fmt::Debug for RecordingsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingsState")
            .field("root", &self.store.root())
            .finish()
    }
}

impl RecordingsState {
    /// Playback of `store`, asking `access`; exports are written under
    /// `exports` (created if missing).
    pub fn new(store: Store, access: Arc<dyn PlaybackAccess>, exports: PathBuf) -> Self {
        RecordingsState {
            store,
            access,
            exports,
            running: Arc::default(),
            budget_percent: EXPORT_BUDGET_PERCENT,
            jobs: None,
        }
    }

    /// Files kept for resumed downloads share the exports directory's
    /// budget with `jobs` (the NVR's export jobs): they count what the
    /// jobs hold and are still to write, and make way for them.
    pub fn with_export_jobs(mut self, jobs: ExportJobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Export files kept for resumed downloads may use this share of the
    /// volume they are on (default [`EXPORT_BUDGET_PERCENT`]); the rest is
    /// the recordings'.
    pub fn with_export_budget_percent(mut self, percent: u8) -> Self {
        self.budget_percent = percent.min(100);
        self
    }
}

/// At most this many exports run at once for one user.
pub const MAX_EXPORTS_PER_USER: usize = reallive_store::MAX_EXPORTS_PER_OWNER;

/// Export files kept on disk (for resumed downloads) may use this share of
/// their volume by default.
pub const EXPORT_BUDGET_PERCENT: u8 = reallive_store::EXPORT_BUDGET_PERCENT;

/// Exports running, by principal; an entry goes when its count does, so
/// the map holds at most the exports running.
#[derive(Debug, Default)]
struct ExportSlots(std::sync::Mutex<HashMap<String, usize>>);

/// One running export; its slot frees on drop.
#[derive(Debug)]
struct ExportSlot {
    slots: Arc<ExportSlots>,
    who: String,
}

impl ExportSlots {
    fn take(self: &Arc<Self>, who: String) -> Result<ExportSlot, ApiError> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(who.clone()).or_default();
        if *n >= MAX_EXPORTS_PER_USER {
            return Err(ApiError::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "at most {MAX_EXPORTS_PER_USER} exports run at once; wait for one to finish"
                ),
            ));
        }
        *n += 1;
        Ok(ExportSlot {
            slots: self.clone(),
            who,
        })
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut map = self
            .slots
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.who);
            }
        }
    }
}

/// The range an export asks for, in Unix ms: positive, at most
/// [`MAX_EXPORT`], and representable in nanoseconds. Checked arithmetic:
/// no input wraps around the cap.
pub(crate) fn export_range(start_ms: i64, end_ms: i64) -> Result<TimeRange, ApiError> {
    let max_ms = i64::try_from(MAX_EXPORT.as_millis()).unwrap_or(i64::MAX);
    let span_ok = end_ms
        .checked_sub(start_ms)
        .is_some_and(|span| span > 0 && span <= max_ms);
    if !span_ok {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "the range must be positive and at most {} h",
                MAX_EXPORT.as_secs() / 3600
            ),
        ));
    }
    match (
        start_ms.checked_mul(1_000_000),
        end_ms.checked_mul(1_000_000),
    ) {
        (Some(start), Some(end)) => Ok(TimeRange::new(start, end)?),
        _ => Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "start and end must be Unix milliseconds",
        )),
    }
}

/// The playback routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`, so the access
/// check sees the peer.
pub fn router(state: RecordingsState) -> Router {
    Router::new()
        .route("/api/recordings", get(list))
        .route("/api/events", get(events))
        .route("/api/cameras/{id}/vod.m3u8", get(vod))
        .route("/api/cameras/{id}/live.m3u8", get(live))
        .route("/api/cameras/{id}/files/{*path}", get(file))
        .route("/api/cameras/{id}/export.mp4", get(export))
        .with_state(state)
}

/// A recorder's own playback listener (the puller's `--listen`): the
/// playback routes for a fixed set of cameras, behind [`LocalAccess`].
#[derive(Debug)]
pub struct LocalPlayback {
    listener: tokio::net::TcpListener,
    app: Router,
}

impl LocalPlayback {
    /// Binds `addr` for `cameras` (by id) of `store`. Beyond loopback a
    /// `token` is required, and its absence is `InvalidInput`.
    pub async fn bind(
        addr: SocketAddr,
        store: Store,
        cameras: &[i64],
        token: Option<String>,
        exports: PathBuf,
    ) -> std::io::Result<Self> {
        if !addr.ip().is_loopback() && token.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{addr} is beyond loopback: playback there needs a token"),
            ));
        }
        let cameras = cameras
            .iter()
            .map(|c| (*c, reallive_core::CameraId(*c).store_key()))
            .collect();
        let open = token.is_none();
        let access = Arc::new(LocalAccess::new(cameras, token));
        let mut app = router(RecordingsState::new(store, access, exports));
        if open {
            // No token: a loopback listener anyone's browser can reach
            // through DNS rebinding, unless `Host` is checked.
            app = crate::host::check_host(app, Vec::new());
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(LocalPlayback { listener, app })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` fires.
    pub fn spawn(self, stop: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            // The same listener limits as the servers': a head timeout,
            // a connection cap and a share per client.
            let served = crate::serve(
                self.listener,
                self.app,
                crate::ServeLimits::default(),
                stop.cancelled_owned(),
            );
            if let Err(e) = served.await {
                tracing::error!("playback server: {e}");
            }
        })
    }
}

/// An MP4 file's bytes, in the document: `type: string, format: binary`.
pub(crate) struct Mp4;

impl utoipa::PartialSchema for Mp4 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Mp4 {}

/// One recording in the list.
#[derive(Debug, Serialize, ToSchema)]
struct RecordingItem {
    /// The recording.
    id: i64,
    /// Its camera.
    camera_id: i64,
    /// Its first frame, Unix ms.
    start_ms: i64,
    /// Its end, Unix ms.
    end_ms: i64,
    /// Its file's size.
    bytes: u64,
    /// `h264` or `h265` (after transcoding).
    codec: &'static str,
    /// `writing` while it is written, then `complete`.
    state: String,
}

fn authorize(
    s: &RecordingsState,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    peer: SocketAddr,
    camera: i64,
    need: Permission,
) -> Result<String, ApiError> {
    s.access.authorize(
        &PlaybackRequest {
            headers,
            query_token: q.get("token").map(String::as_str),
            peer,
        },
        camera,
        need,
    )
}

/// Query parameter `name` as Unix ms, if present (the review routes use it too).
pub(crate) fn ms_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::new(
                    ErrorKind::InvalidArgument,
                    format!("{name} must be Unix milliseconds"),
                )
            })
        })
        .transpose()
}

/// `start`/`end` in Unix ms; either may be missing (open-ended).
fn range(q: &HashMap<String, String>) -> Result<TimeRange, ApiError> {
    let start = ms_param(q, "start")?.map_or(i64::MIN, |ms| ms.saturating_mul(1_000_000));
    let end = ms_param(q, "end")?.map_or(i64::MAX, |ms| ms.saturating_mul(1_000_000));
    Ok(TimeRange::new(start, end)?)
}

fn camera_param(q: &HashMap<String, String>) -> Result<i64, ApiError> {
    q.get("camera")
        .ok_or_else(|| ApiError::new(ErrorKind::InvalidArgument, "camera is required"))?
        .parse()
        .map_err(|_| ApiError::new(ErrorKind::InvalidArgument, "camera must be an id"))
}

/// The camera's recordings overlapping `start..end`. Needs: `playback` on
/// the camera.
#[utoipa::path(get, path = "/api/recordings", tag = "recordings",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("camera" = i64, Query, description = "camera id"),
        ("start" = Option<i64>, Query, description = "Unix ms; absent: from the first"),
        ("end" = Option<i64>, Query, description = "Unix ms; absent: to the last"),
    ),
    responses(
        (status = 200, body = Vec<RecordingItem>),
        (status = 400, body = ErrorBody, description = "no camera, or a time that is not Unix ms"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn list(
    State(s): State<RecordingsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let camera = camera_param(&q)?;
    let name = authorize(&s, &headers, &q, peer, camera, Permission::Playback)?;
    let recs = s.store.recordings(&name, range(&q)?).await?;
    let items: Vec<RecordingItem> = recs
        .into_iter()
        .map(|r| RecordingItem {
            id: r.id,
            camera_id: camera,
            start_ms: r.start_utc_ns.div_euclid(1_000_000),
            end_ms: r.end_utc_ns.div_euclid(1_000_000),
            bytes: r.bytes,
            codec: r.codec.name(),
            state: format!("{:?}", r.state).to_lowercase(),
        })
        .collect();
    Ok(axum::Json(items).into_response())
}

/// One event in the list (and in the event stream, `crate::review`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventItem {
    /// The event.
    id: i64,
    /// Its camera.
    camera_id: i64,
    /// `motion` or `trigger`.
    kind: String,
    /// When it began, Unix ms.
    start_ms: i64,
    /// `null` while it lasts.
    end_ms: Option<i64>,
    /// The peak share of the zone that changed, in percent.
    score: Option<f32>,
    /// The zone of the peak.
    zone: Option<String>,
    /// Someone marked it reviewed.
    reviewed: bool,
    /// The frame of its peak (its best picture), Unix ms.
    peak_ms: Option<i64>,
}

impl EventItem {
    /// `e`, of camera `camera_id`, as the API shows it.
    pub(crate) fn new(e: reallive_store::Event, camera_id: i64) -> Self {
        EventItem {
            id: e.id,
            camera_id,
            kind: e.kind,
            start_ms: e.start_utc_ns.div_euclid(1_000_000),
            end_ms: e.end_utc_ns.map(|n| n.div_euclid(1_000_000)),
            score: e.score,
            zone: e.zone,
            reviewed: e.reviewed,
            peak_ms: e.peak_utc_ns.map(|n| n.div_euclid(1_000_000)),
        }
    }
}

/// The camera's events (motion, triggers) overlapping `start..end`,
/// newest first, filtered and paged. Needs: `view` on the camera.
#[utoipa::path(get, path = "/api/events", tag = "recordings",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(
        ("camera" = i64, Query, description = "camera id"),
        ("start" = Option<i64>, Query, description = "Unix ms; absent: from the first"),
        ("end" = Option<i64>, Query, description = "Unix ms; absent: to the last"),
        ("kind" = Option<String>, Query, description = "only `motion` or `trigger` events"),
        ("zone" = Option<String>, Query, description = "only events of this zone"),
        ("reviewed" = Option<bool>, Query, description = "only reviewed (`true`) or unreviewed (`false`) events"),
        ("before" = Option<i64>, Query, description = "Unix ms: only events that began before (the next page)"),
        ("limit" = Option<u32>, Query, description = "at most this many, 1 to 500 (default 100)"),
    ),
    responses(
        (status = 200, body = Vec<EventItem>),
        (status = 400, body = ErrorBody, description = "no camera, or a time that is not Unix ms"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn events(
    State(s): State<RecordingsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let camera = camera_param(&q)?;
    let name = authorize(&s, &headers, &q, peer, camera, Permission::View)?;
    let reviewed = match q.get("reviewed").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "reviewed must be true or false",
            ));
        }
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=reallive_store::MAX_EVENTS_PAGE).contains(n))
            .ok_or_else(|| ApiError::new(ErrorKind::InvalidArgument, "limit must be 1 to 500"))?,
    };
    let query = reallive_store::EventQuery {
        camera: name,
        range: range(&q)?,
        kind: q.get("kind").cloned(),
        zone: q.get("zone").cloned(),
        reviewed,
        before_utc_ns: ms_param(&q, "before")?.map(|ms| ms.saturating_mul(1_000_000)),
        limit,
    };
    let list: Vec<EventItem> = s
        .store
        .find_events(&query)
        .await?
        .into_iter()
        .map(|e| EventItem::new(e, camera))
        .collect();
    Ok(axum::Json(list).into_response())
}

/// `body` with `token` on every URI it names, for players that fetched
/// it with `?token=` and cannot set headers on the requests it makes
/// (Safari's native HLS): segment lines and the `URI="…"` of every tag
/// (`EXT-X-MAP`, `EXT-X-PART`) get `?token=` or `&token=`. The token is
/// percent-encoded; every other line is kept.
fn with_token(body: &str, token: &str) -> String {
    let token: String = token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    for line in body.lines() {
        if line.starts_with('#')
            && let Some(at) = line.find("URI=\"")
            && let Some(len) = line[at + 5..].find('"')
        {
            let end = at + 5 + len;
            let sep = if line[at + 5..end].contains('?') {
                '&'
            } else {
                '?'
            };
            out.push_str(&line[..end]);
            out.push(sep);
            out.push_str("token=");
            out.push_str(&token);
            out.push_str(&line[end..]);
        } else if !line.is_empty() && !line.starts_with('#') {
            let sep = if line.contains('?') { '&' } else { '?' };
            out.push_str(line);
            out.push(sep);
            out.push_str("token=");
            out.push_str(&token);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn playlist(body: String) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An HLS VOD playlist over `start..end`, its segments byte ranges of the
/// recordings. Needs: `playback` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/vod.m3u8", tag = "recordings",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("start" = Option<i64>, Query, description = "Unix ms; absent: from the first"),
        ("end" = Option<i64>, Query, description = "Unix ms; absent: to the last"),
    ),
    responses(
        (status = 200, content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or no recordings in the range"),
    ))]
async fn vod(
    State(s): State<RecordingsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let name = authorize(&s, &headers, &q, peer, camera, Permission::Playback)?;
    let prefix = format!("/api/cameras/{camera}/files/");
    let body = s.store.vod_playlist(&name, range(&q)?, &prefix).await?;
    Ok(playlist(match q.get("token") {
        Some(t) => with_token(&body, t),
        None => body,
    }))
}

/// Segments in the live playlist (about 1 s each).
const LIVE_WINDOW_SEGMENTS: usize = 6;

/// The longest a blocking live playlist request is held (RFC 8216bis: three
/// target durations; the store takes the smaller).
const LIVE_MAX_BLOCK: std::time::Duration = std::time::Duration::from_secs(3);

/// An LL-HLS live playlist of the newest segments, with 200 ms parts at the
/// edge (`docs/design/ll-hls.md`). With `_HLS_msn` (and `_HLS_part`) it is
/// a blocking reload: held until that segment (part) is listed, at most
/// three target durations (then 503); one more than two segments ahead is
/// a 400. Needs: `view` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/live.m3u8", tag = "recordings",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("_HLS_msn" = Option<u64>, Query, description = "blocking reload: hold the response until the playlist holds this media sequence number (complete), or with `_HLS_part` that part of it"),
        ("_HLS_part" = Option<u32>, Query, description = "blocking reload: the part (0-based) of segment `_HLS_msn` to wait for; needs `_HLS_msn`"),
    ),
    responses(
        (status = 200, content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 400, body = ErrorBody, description = "a bad camera id, `_HLS_msn`/`_HLS_part` not non-negative integers, `_HLS_part` alone, or `_HLS_msn` more than two segments past the newest"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or nothing recorded yet"),
        (status = 503, body = ErrorBody, description = "a blocking reload whose segment or part did not appear within three target durations"),
    ))]
async fn live(
    State(s): State<RecordingsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let name = authorize(&s, &headers, &q, peer, camera, Permission::View)?;
    let block = reallive_store::hls::BlockingRequest::parse(
        q.get("_HLS_msn").map(String::as_str),
        q.get("_HLS_part").map(String::as_str),
    )?;
    let prefix = format!("/api/cameras/{camera}/files/");
    let body = s
        .store
        .live_playlist_blocking(&name, LIVE_WINDOW_SEGMENTS, &prefix, block, LIVE_MAX_BLOCK)
        .await?;
    Ok(playlist(match q.get("token") {
        Some(t) => with_token(&body, t),
        None => body,
    }))
}

/// A recording file, as the playlists name it, by HTTP Range. Needs:
/// `playback` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/files/{path}", tag = "recordings",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("path" = String, Path, description = "the file under the store: `camera-{id}/...`; may hold `/`"),
        ("t" = Option<u64>, Query, description = "90 kHz ticks added to every fragment's decode time (the playlists set it)"),
        ("Range" = Option<String>, Header, description = "one `bytes=` range"),
    ),
    responses(
        (status = 200, content_type = "video/mp4", body = inline(Mp4)),
        (status = 206, content_type = "video/mp4", body = inline(Mp4), description = "the range asked for",
            headers(("Content-Range" = String))),
        (status = 400, body = ErrorBody, description = "a range too large to shift by `t`"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "no `playback`, or a path that leaves the store"),
        (status = 404, body = ErrorBody, description = "no such camera or file"),
        (status = 416, description = "the range is beyond the file", headers(("Content-Range" = String))),
    ))]
async fn file(
    State(s): State<RecordingsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath((camera, path)): ApiPath<(i64, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let name = authorize(&s, &headers, &q, peer, camera, Permission::Playback)?;
    // Only this camera's files: its directory is its name.
    if !path.starts_with(&format!("{name}/")) {
        return Err(ApiError::not_found("file"));
    }
    let shift = q.get("t").and_then(|t| t.parse::<u64>().ok());
    Ok(crate::files::serve_recording(s.store.root(), &path, shift, &headers).await)
}

/// One MP4 of `start..end` (at most 6 h), streamed; with `Range`, from a
/// file kept an hour for resumed downloads. Needs: `playback` on the
/// camera.
#[utoipa::path(get, path = "/api/cameras/{id}/export.mp4", tag = "recordings",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("start" = i64, Query, description = "Unix ms"),
        ("end" = i64, Query, description = "Unix ms; after `start`, at most 6 h later"),
        ("Range" = Option<String>, Header, description = "one `bytes=` range: resume a download"),
    ),
    responses(
        (status = 200, content_type = "video/mp4", body = inline(Mp4),
            headers(("Content-Disposition" = String))),
        (status = 206, content_type = "video/mp4", body = inline(Mp4), description = "the range asked for",
            headers(("Content-Range" = String), ("Content-Disposition" = String))),
        (status = 400, body = ErrorBody, description = "no range, or not a positive one of at most 6 h"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or no recordings in the range"),
        (status = 416, description = "the range is beyond the export", headers(("Content-Range" = String))),
        (status = 429, body = ErrorBody, description = "two exports running already, or no room left for kept exports"),
    ))]
async fn export(
    State(s): State<RecordingsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let name = authorize(&s, &headers, &q, peer, camera, Permission::Playback)?;
    let (Some(start), Some(end)) = (ms_param(&q, "start")?, ms_param(&q, "end")?) else {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "start and end (Unix ms) are required",
        ));
    };
    let range = export_range(start, end)?;
    let request = PlaybackRequest {
        headers: &headers,
        query_token: q.get("token").map(String::as_str),
        peer,
    };
    let slot = s.running.take(s.access.principal(&request))?;
    let recordings = s.store.recordings(&name, range).await?;
    if recordings.is_empty() {
        return Err(ApiError::not_found("recordings in that range"));
    }
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{name}-{start}.mp4\"")).ok();
    let mut r = if headers.contains_key(header::RANGE) {
        // A resumed download: from a file kept for an hour.
        let estimate: u64 = recordings.iter().map(|r| r.bytes).sum();
        let file = export_file(&s, &name, camera, range, (start, end), estimate).await?;
        drop(slot);
        crate::files::serve(&s.exports, &file, &headers).await
    } else {
        // Streamed as it is read: no file, and one fragment in memory.
        streamed_export(&s.store, name, range, slot)
    };
    if let Some(v) = disposition {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Chunks in flight between the export thread and the response: with
/// fragments of about a second, a few MB at most.
const EXPORT_CHUNKS: usize = 4;

/// A `Write` that hands each write to the response body; it fails once the
/// client has gone, which ends the export.
struct BodyWriter(tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>);

impl std::io::Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(axum::body::Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn streamed_export(store: &Store, name: String, range: TimeRange, slot: ExportSlot) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_CHUNKS);
    let store = store.clone();
    let errors = tx.clone();
    tokio::spawn(async move {
        let _slot = slot;
        if let Err(e) = store.export_to(&name, range, BodyWriter(tx)).await {
            tracing::debug!(camera = %name, "export ended early: {e}");
            let _ = errors
                .send(Err(std::io::Error::other("the export failed")))
                .await;
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut r = axum::body::Body::from_stream(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    r
}

/// The export of `range` as a file in the exports directory (made once,
/// reused for an hour), within the exports' disk budget: the oldest
/// exports go first, and an export that still does not fit is refused.
async fn export_file(
    s: &RecordingsState,
    name: &str,
    camera: i64,
    range: TimeRange,
    (start, end): (i64, i64),
    estimate: u64,
) -> Result<String, ApiError> {
    let unavailable =
        |e: std::io::Error| ApiError::new(ErrorKind::Unavailable, format!("exports: {e}"));
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(reallive_core::fs::PRIVATE_DIR_MODE)
        .create(&s.exports)
        .await
        .map_err(unavailable)?;
    sweep_exports(&s.exports).await;
    // One file per camera and range: a resumed download or a repeat
    // reuses it. Written under a temporary name, then renamed.
    let file = format!("{camera}-{start}-{end}.mp4");
    let dest = s.exports.join(&file);
    if tokio::fs::metadata(&dest).await.is_ok() {
        return Ok(file);
    }
    let (budget, reserved) = match &s.jobs {
        Some(jobs) => (jobs.budget_bytes().await?, jobs.reserved_bytes()),
        None => {
            let total = reallive_store::disk_space(&s.exports)?.total_bytes;
            (reallive_store::budget_bytes(total, s.budget_percent), 0)
        }
    };
    let dir = s.exports.clone();
    let room = tokio::task::spawn_blocking(move || {
        reallive_store::make_room(&dir, budget, reserved, estimate)
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Internal, format!("exports: {e}")))?;
    match room {
        Ok(()) => {}
        Err(StoreError::NoRoom { budget_bytes, .. }) => {
            return Err(ApiError::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "exports kept for resuming are limited to {} MB on this disk; download without resuming, or a shorter range",
                    budget_bytes / 1_000_000
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let tmp = s.exports.join(format!(
        ".{file}.{}.tmp",
        reallive_auth::random_token::<8>().expose()
    ));
    if let Err(e) = s.store.export(name, range, &tmp).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e.into());
    }
    tokio::fs::rename(&tmp, &dest).await.map_err(unavailable)?;
    Ok(file)
}

/// Deletes files kept for resumed downloads older than [`EXPORT_TTL`];
/// export jobs' files are kept until their job is deleted.
async fn sweep_exports(dir: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        if reallive_store::is_job_file(&e.file_name().to_string_lossy()) {
            continue;
        }
        let old = e
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > EXPORT_TTL);
        if old {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A playlist fetched with `?token=` names every file with it, so a
    /// player that cannot set headers (Safari) fetches them too.
    #[test]
    fn a_token_in_the_playlist_url_goes_on_every_uri_in_it() {
        let body = "#EXTM3U\n#EXT-X-MAP:URI=\"/f/a.mp4\",BYTERANGE=\"700@0\"\n\
                    #EXT-X-BYTERANGE:1000@700\n/f/a.mp4?t=0\n#EXT-X-ENDLIST\n";
        let got = with_token(body, "ab.c d");
        assert_eq!(
            got,
            "#EXTM3U\n#EXT-X-MAP:URI=\"/f/a.mp4?token=ab.c%20d\",BYTERANGE=\"700@0\"\n\
             #EXT-X-BYTERANGE:1000@700\n/f/a.mp4?t=0&token=ab.c%20d\n#EXT-X-ENDLIST\n"
        );
        // LL-HLS parts name their file in an attribute.
        let live = "#EXT-X-PART:DURATION=0.20000,URI=\"/f/a.mp4?t=0\",BYTERANGE=\"1000@700\",INDEPENDENT=YES\n";
        assert_eq!(
            with_token(live, "k"),
            "#EXT-X-PART:DURATION=0.20000,URI=\"/f/a.mp4?t=0&token=k\",BYTERANGE=\"1000@700\",INDEPENDENT=YES\n"
        );
    }

    trait AuthorizeAny {
        fn authorize_any(&self, r: &PlaybackRequest<'_>, camera: i64) -> Result<String, ApiError>;
    }

    impl AuthorizeAny for LocalAccess {
        fn authorize_any(&self, r: &PlaybackRequest<'_>, camera: i64) -> Result<String, ApiError> {
            self.authorize(r, camera, Permission::Playback)
        }
    }

    #[test]
    fn local_access_is_loopback_only_unless_a_token_guards_it() {
        let cams = HashMap::from([(3, "camera-3".to_string())]);
        let open = LocalAccess::new(cams.clone(), None);
        let guarded = LocalAccess::new(cams, Some("s3cret-token".into()));
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let lan: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let none = HeaderMap::new();
        let mut good = HeaderMap::new();
        good.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token"),
        );
        let mut bad = HeaderMap::new();
        bad.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-tokeN"),
        );
        let req = |headers, query_token, peer| PlaybackRequest {
            headers,
            query_token,
            peer,
        };
        let status = |r: Result<String, ApiError>| r.map_err(|e| e.status().as_u16());
        assert_eq!(
            status(open.authorize_any(&req(&none, None, lo), 3)),
            Ok("camera-3".into())
        );
        assert_eq!(
            status(open.authorize_any(&req(&none, None, lan), 3)),
            Err(403)
        );
        assert_eq!(
            status(open.authorize_any(&req(&none, None, lo), 4)),
            Err(404)
        );
        assert_eq!(
            status(guarded.authorize_any(&req(&none, None, lo), 3)),
            Err(401)
        );
        assert_eq!(
            status(guarded.authorize_any(&req(&bad, None, lan), 3)),
            Err(401)
        );
        assert_eq!(
            status(guarded.authorize_any(&req(&good, None, lan), 3)),
            Ok("camera-3".into())
        );
        assert_eq!(
            status(guarded.authorize_any(&req(&none, Some("s3cret-token"), lan), 3)),
            Ok("camera-3".into())
        );
        assert_eq!(
            status(guarded.authorize_any(&req(&good, None, lan), 4)),
            Err(404)
        );
    }

    #[test]
    fn at_most_two_exports_run_at_once_per_user() {
        let slots = Arc::new(ExportSlots::default());
        let a = slots.take("user 1".into()).unwrap();
        let b = slots.take("user 1".into()).unwrap();
        let e = slots.take("user 1".into()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ResourceExhausted);
        // Another user is not held up; a finished export frees its slot.
        let _other = slots.take("user 2".into()).unwrap();
        drop(a);
        let _c = slots.take("user 1".into()).unwrap();
        drop(b);
        drop(_c);
        assert!(
            !slots.0.lock().unwrap().contains_key("user 1"),
            "no entry left behind"
        );
    }

    #[test]
    fn export_ranges_never_wrap() {
        let ok = export_range(1_000, 2_000).unwrap();
        assert_eq!(
            (ok.start_utc_ns, ok.end_utc_ns),
            (1_000_000_000, 2_000_000_000)
        );
        for (a, b) in [
            (i64::MIN, 0),
            (0, i64::MAX),
            (i64::MAX / 1_000_000 + 1, i64::MAX / 1_000_000 + 2),
            (5, 5),
            (0, 6 * 3600 * 1000 + 1),
        ] {
            assert_eq!(
                export_range(a, b).unwrap_err().kind,
                ErrorKind::InvalidArgument,
                "{a}..{b}"
            );
        }
    }

    #[tokio::test]
    async fn kept_exports_go_after_an_hour_but_export_jobs_stay() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - EXPORT_TTL - Duration::from_secs(60);
        for name in ["7-0-1000.mp4", "3.mp4", "4.mp4.part", "7-1000-2000.mp4"] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").unwrap();
            if name != "7-1000-2000.mp4" {
                std::fs::File::options()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
            }
        }
        sweep_exports(dir.path()).await;
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["3.mp4", "4.mp4.part", "7-1000-2000.mp4"]);
    }
}
