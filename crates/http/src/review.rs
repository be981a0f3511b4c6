//! Review of recorded footage: the timeline, thumbnails, reviewed marks,
//! locks, and the live stream of events. `docs/design/review.md` holds
//! the invariants; the playback routes (playlists, files, the events list)
//! are in [`crate::recordings`], and exports in [`crate::exports`].
//!
//! | method | path | needs |
//! |---|---|---|
//! | GET | `/api/cameras/{id}/timeline?start=&end=&resolution_ms=` | `playback` |
//! | GET | `/api/cameras/{id}/thumbnail.jpg?at=` | `playback` |
//! | GET | `/api/events/{id}/thumbnail.jpg` | `playback` on its camera |
//! | POST | `/api/events/reviewed` `{ids, reviewed}` | `playback` on each event's camera |
//! | GET | `/api/events/stream` (server-sent events) | `view`, per event |
//! | GET, POST | `/api/cameras/{id}/locks` | `playback`, `control` |
//! | DELETE | `/api/cameras/{id}/locks/{lock_id}` | `control` |
//!
//! Access is asked of the same [`PlaybackAccess`] as the playback routes,
//! per request, and for the event stream per event: a revoked grant stops
//! the flow at the next event.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use reallive_auth::Permission;
use reallive_core::{CameraId, ErrorKind};
use reallive_record::thumbnails::{ThumbnailError, Thumbnails};
use reallive_store::{Event, EventChange, Store, TimeRange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::recordings::{PlaybackAccess, PlaybackRequest, ms_param};
use crate::{ApiError, ApiJson, ApiPath, ClientSlots};

/// Event streams one client may hold open.
pub const MAX_STREAMS_PER_CLIENT: usize = 64;

/// At most this many ids in one `POST /api/events/reviewed`.
pub const MAX_REVIEWED_IDS: usize = 500;

/// The router's state.
#[derive(Clone)]
pub struct ReviewState {
    store: Store,
    access: Arc<dyn PlaybackAccess>,
    thumbnails: Option<Thumbnails>,
    streams: ClientSlots,
}

impl std::fmt::Debug for ReviewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewState")
            .field("root", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl ReviewState {
    /// Review of `store`, asking `access`; thumbnails come from
    /// `thumbnails` (without one, thumbnail routes answer 404 for footage
    /// that has no kept picture).
    pub fn new(
        store: Store,
        access: Arc<dyn PlaybackAccess>,
        thumbnails: Option<Thumbnails>,
    ) -> Self {
        ReviewState {
            store,
            access,
            thumbnails,
            streams: ClientSlots::default(),
        }
    }

    fn authorize(&self, req: &Req<'_>, camera: i64, need: Permission) -> Result<String, ApiError> {
        self.access.authorize(
            &PlaybackRequest {
                headers: req.headers,
                query_token: req.query.get("token").map(String::as_str),
                peer: req.peer,
            },
            camera,
            need,
        )
    }
}

/// What every handler passes to the access check.
struct Req<'a> {
    headers: &'a HeaderMap,
    query: &'a HashMap<String, String>,
    peer: SocketAddr,
}

/// The review routes. Serve with `into_make_service_with_connect_info`.
pub fn router(state: ReviewState) -> Router {
    Router::new()
        .route("/api/cameras/{id}/timeline", get(timeline))
        .route("/api/cameras/{id}/thumbnail.jpg", get(thumbnail))
        .route("/api/events/{id}/thumbnail.jpg", get(event_thumbnail))
        .route("/api/events/reviewed", post(reviewed))
        .route("/api/events/stream", get(stream))
        .route("/api/cameras/{id}/locks", get(locks).post(add_lock))
        .route("/api/cameras/{id}/locks/{lock_id}", delete(remove_lock))
        .with_state(state)
}

fn required_ms(q: &HashMap<String, String>, name: &str) -> Result<i64, ApiError> {
    ms_param(q, name)?
        .ok_or_else(|| ApiError::new(ErrorKind::InvalidArgument, format!("{name} is required")))
}

/// Unix ms to UTC ns, refusing what does not fit.
fn ns(ms: i64, name: &str) -> Result<i64, ApiError> {
    ms.checked_mul(1_000_000).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("{name} is out of range"),
        )
    })
}

fn ms(ns: i64) -> i64 {
    ns.div_euclid(1_000_000)
}

/// A span of recorded footage, Unix ms.
#[derive(Debug, Serialize, ToSchema)]
struct TimelineSpan {
    /// Its first frame.
    start: i64,
    /// Just past its last frame.
    end: i64,
}

/// An event on the timeline.
#[derive(Debug, Serialize, ToSchema)]
struct TimelineEvent {
    /// The event.
    id: i64,
    /// Its camera.
    camera_id: i64,
    /// `motion` or `trigger`.
    kind: String,
    /// The zone of its peak.
    zone: Option<String>,
    /// When it began, Unix ms.
    start: i64,
    /// When it ended; `null` while it lasts.
    end: Option<i64>,
    /// Its peak score, percent of the zone.
    score: Option<f32>,
    /// The frame of its peak, Unix ms.
    peak: Option<i64>,
    /// Someone marked it reviewed.
    reviewed: bool,
}

/// More than two events in one bucket, drawn as a count.
#[derive(Debug, Serialize, ToSchema)]
struct TimelineCluster {
    /// The bucket's start, Unix ms.
    start: i64,
    /// Its end.
    end: i64,
    /// Events starting in it.
    count: u32,
}

/// One camera's footage and events over a range.
#[derive(Debug, Serialize, ToSchema)]
struct TimelineAnswer {
    /// The range, Unix ms.
    start: i64,
    /// Its end.
    end: i64,
    /// The resolution used: at least the one asked, and at least a
    /// thousandth of the range.
    resolution_ms: i64,
    /// Recorded footage, oldest first; the holes between are gaps.
    spans: Vec<TimelineSpan>,
    /// Events one by one, oldest first.
    events: Vec<TimelineEvent>,
    /// Buckets where more than two events start.
    clusters: Vec<TimelineCluster>,
}

fn timeline_event(e: Event, camera_id: i64) -> TimelineEvent {
    TimelineEvent {
        id: e.id,
        camera_id,
        kind: e.kind,
        zone: e.zone,
        start: ms(e.start_utc_ns),
        end: e.end_utc_ns.map(ms),
        score: e.score,
        peak: e.peak_utc_ns.map(ms),
        reviewed: e.reviewed,
    }
}

/// The camera's recorded spans (merged where they touch at the
/// resolution) and events between `start` and `end`, at most 8 days.
/// Needs: `playback` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/timeline", tag = "review",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("start" = i64, Query, description = "Unix ms"),
        ("end" = i64, Query, description = "Unix ms, after `start`, at most 8 days later"),
        ("resolution_ms" = Option<i64>, Query, description = "one pixel's worth of time; default and minimum: a thousandth of the range"),
    ),
    responses(
        (status = 200, body = TimelineAnswer),
        (status = 400, body = ErrorBody, description = "a missing or inverted range, or one over 8 days"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "no `playback` on the camera"),
        (status = 404, body = ErrorBody),
    ))]
async fn timeline(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let name = s.authorize(&req, camera, Permission::Playback)?;
    let start = ns(required_ms(&q, "start")?, "start")?;
    let end = ns(required_ms(&q, "end")?, "end")?;
    let resolution = ns(
        ms_param(&q, "resolution_ms")?.unwrap_or(1).max(1),
        "resolution_ms",
    )?;
    let t = s
        .store
        .timeline(&name, TimeRange::new(start, end)?, resolution)
        .await?;
    let answer = TimelineAnswer {
        start: ms(t.range.start_utc_ns),
        end: ms(t.range.end_utc_ns),
        resolution_ms: ms(t.resolution_ns).max(1),
        spans: t
            .spans
            .iter()
            .map(|sp| TimelineSpan {
                start: ms(sp.start_utc_ns),
                end: ms(sp.end_utc_ns),
            })
            .collect(),
        events: t
            .events
            .into_iter()
            .map(|e| timeline_event(e, camera))
            .collect(),
        clusters: t
            .clusters
            .iter()
            .map(|c| TimelineCluster {
                start: ms(c.start_utc_ns),
                end: ms(c.end_utc_ns),
                count: c.count,
            })
            .collect(),
    };
    Ok(axum::Json(answer).into_response())
}

/// A JPEG's bytes, in the document: `type: string, format: binary`.
struct Jpeg;

impl utoipa::PartialSchema for Jpeg {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Jpeg {}

/// The picture of `camera` (the store's name) at `at_ns`, as a response:
/// a kept one within half the interval, or (`exact`) only one of the
/// keyframe at or before `at_ns` itself.
async fn picture(
    s: &ReviewState,
    camera: &str,
    at_ns: i64,
    exact: bool,
) -> Result<Response, ApiError> {
    let jpeg = match &s.thumbnails {
        Some(t) if exact => t.of_keyframe(camera, at_ns).await,
        Some(t) => t.at(camera, at_ns).await,
        None => Ok(None),
    };
    let jpeg = match (&s.thumbnails, jpeg) {
        (Some(_), j) => j.map_err(|e| match e {
            ThumbnailError::Busy => ApiError::busy("thumbnails are being made; try again", 1),
            ThumbnailError::Store(e) => e.into(),
            other => ApiError::new(ErrorKind::Internal, other.to_string()),
        })?,
        (None, _) => {
            let half = if exact { 0 } else { 5_000_000_000 };
            s.store
                .thumbnail_near(camera, at_ns, half)
                .await?
                .map(|(_, j)| j)
        }
    };
    let jpeg = jpeg.ok_or_else(|| ApiError::not_found("footage at that time"))?;
    let mut r = jpeg.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    // A thumbnail of recorded footage never changes.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(r)
}

/// A JPEG (at most 320 px wide) of the keyframe at or before `at`: a kept
/// one when there is one close by, else made now and kept. Needs:
/// `playback` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/thumbnail.jpg", tag = "review",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("at" = i64, Query, description = "Unix ms"),
    ),
    responses(
        (status = 200, content_type = "image/jpeg", body = inline(Jpeg)),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or nothing recorded at that time"),
        (status = 503, body = ErrorBody, description = "the thumbnail worker is busy", headers(("Retry-After" = u64))),
    ))]
async fn thumbnail(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let name = s.authorize(&req, camera, Permission::Playback)?;
    let at = ns(required_ms(&q, "at")?, "at")?;
    picture(&s, &name, at, false).await
}

/// The event's camera id, and the event; an event of a camera the caller
/// may not see is a 404 like a missing one.
async fn event_for(
    s: &ReviewState,
    req: &Req<'_>,
    id: i64,
    need: Permission,
) -> Result<(i64, Event), ApiError> {
    let e = s
        .store
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let camera = CameraId::from_store_key(&e.camera)
        .ok_or_else(|| ApiError::not_found("event"))?
        .0;
    s.authorize(req, camera, need)?;
    Ok((camera, e))
}

/// The keyframe that shows event `e` best: of the keyframes inside it
/// (its start to its end, or a minute for an open one), the nearest to
/// its peak; when none falls inside, the one at or before the peak. The
/// keyframe before a short event's peak is often from before it began,
/// and shows an empty scene.
async fn best_keyframe(store: &Store, e: &Event) -> Result<i64, ApiError> {
    let peak = e.peak_utc_ns.unwrap_or(e.start_utc_ns).max(e.start_utc_ns);
    let end = e
        .end_utc_ns
        .unwrap_or(e.start_utc_ns.saturating_add(60_000_000_000))
        .max(e.start_utc_ns + 1);
    let inside = store
        .keyframe_times(&e.camera, TimeRange::new(e.start_utc_ns, end)?)
        .await?;
    Ok(inside
        .into_iter()
        .min_by_key(|k| (k - peak).unsigned_abs())
        .unwrap_or(peak))
}

/// The event's best picture: of the keyframes inside the event, the one
/// nearest its peak score (the one at or before the peak when none is
/// inside). Needs: `playback` on its camera.
#[utoipa::path(get, path = "/api/events/{id}/thumbnail.jpg", tag = "review",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(("id" = i64, Path, description = "event id")),
    responses(
        (status = 200, content_type = "image/jpeg", body = inline(Jpeg)),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such event, or its footage is gone"),
        (status = 503, body = ErrorBody, description = "the thumbnail worker is busy", headers(("Retry-After" = u64))),
    ))]
async fn event_thumbnail(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let (_, e) = event_for(&s, &req, id, Permission::Playback).await?;
    let at = best_keyframe(&s.store, &e).await?;
    picture(&s, &e.camera, at, true).await
}

/// Which events to mark.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReviewedRequest {
    /// Event ids, at most 500.
    ids: Vec<i64>,
    /// Reviewed (`true`, the default) or not.
    #[serde(default = "yes")]
    reviewed: bool,
}

fn yes() -> bool {
    true
}

/// What was marked.
#[derive(Debug, Serialize, ToSchema)]
struct ReviewedAnswer {
    /// Events changed.
    updated: u64,
}

/// Marks events reviewed (or not). Ids of events on cameras without the
/// caller's `playback`, and unknown ids, are skipped alike. Needs: a
/// signed-in user; only events with `playback` on their camera change.
#[utoipa::path(post, path = "/api/events/reviewed", tag = "review",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    request_body = ReviewedRequest,
    responses(
        (status = 200, body = ReviewedAnswer),
        (status = 400, body = ErrorBody, description = "not JSON, or more than 500 ids"),
        (status = 401, body = ErrorBody),
    ))]
async fn reviewed(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReviewedRequest>,
) -> Result<Response, ApiError> {
    if body.ids.len() > MAX_REVIEWED_IDS {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!("at most {MAX_REVIEWED_IDS} ids at once"),
        ));
    }
    s.access.authenticate(&PlaybackRequest {
        headers: &headers,
        query_token: None,
        peer,
    })?;
    let q = HashMap::new();
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let mut allowed = Vec::with_capacity(body.ids.len());
    for id in body.ids {
        if event_for(&s, &req, id, Permission::Playback).await.is_ok() {
            allowed.push(id);
        }
    }
    let updated = s.store.set_reviewed(&allowed, body.reviewed).await?;
    Ok(axum::Json(ReviewedAnswer { updated }).into_response())
}

/// Server-sent events as events start (`event: started`) and end
/// (`event: ended`), each `data` an `/api/events` item; `event: resync`
/// when this client fell more than 256 behind (read the list again).
/// Only events of cameras the caller may `view`, checked per event.
/// Needs: a signed-in user; `view` per camera.
#[utoipa::path(get, path = "/api/events/stream", tag = "review",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    responses(
        (status = 200, content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "this client has 64 streams open"),
    ))]
async fn stream(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    // Signed in at all: a stranger gets a 401, not an empty stream.
    s.access.authenticate(&PlaybackRequest {
        headers: &headers,
        query_token: q.get("token").map(String::as_str),
        peer,
    })?;
    let slot = s
        .streams
        .take(peer.ip(), MAX_STREAMS_PER_CLIENT)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::ResourceExhausted,
                format!("at most {MAX_STREAMS_PER_CLIENT} event streams per client"),
            )
        })?;
    let mut rx = s.store.subscribe_events();
    let token = q.get("token").cloned();
    let auth = headers.get(header::AUTHORIZATION).cloned();
    let body = async_stream(move |tx| async move {
        let _slot = slot;
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(header::AUTHORIZATION, a);
        }
        let mut query = HashMap::new();
        if let Some(t) = token {
            query.insert("token".to_owned(), t);
        }
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if tx
                        .send(SseEvent::default().event("resync").data("{}"))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let (name, e) = match change {
                EventChange::Started(e) => ("started", e),
                EventChange::Ended(e) => ("ended", e),
            };
            let Some(camera) = CameraId::from_store_key(&e.camera).map(|c| c.0) else {
                continue;
            };
            let req = Req {
                headers: &headers,
                query: &query,
                peer,
            };
            match s.authorize(&req, camera, Permission::View) {
                Ok(_) => {}
                // Signed out (token revoked or expired): the stream ends.
                Err(err) if err.kind == ErrorKind::Unauthenticated => return,
                Err(_) => continue,
            }
            let item = crate::recordings::EventItem::new(e, camera);
            let Ok(ev) = SseEvent::default().event(name).json_data(&item) else {
                continue;
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// A stream fed by `f` through a channel of 16: the producer waits for a
/// slow client, and ends when the client goes.
fn async_stream<F, Fut>(
    f: F,
) -> impl futures::Stream<Item = Result<SseEvent, Infallible>> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// A range kept from retention.
#[derive(Debug, Serialize, ToSchema)]
struct LockItem {
    /// The lock.
    id: i64,
    /// Its camera.
    camera_id: i64,
    /// Its start, Unix ms.
    start: i64,
    /// Its end, Unix ms.
    end: i64,
    /// Why it was made.
    note: String,
    /// Who made it (`user <id>`), when known.
    created_by: Option<String>,
    /// When, Unix ms, when known.
    created_at: Option<i64>,
}

fn lock_item(l: reallive_store::Lock, camera_id: i64) -> LockItem {
    LockItem {
        id: l.id,
        camera_id,
        start: ms(l.range.start_utc_ns),
        end: ms(l.range.end_utc_ns),
        note: l.note,
        created_by: l.created_by,
        created_at: l.created_at_utc_ns.map(ms),
    }
}

/// A range to keep.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLock {
    /// Unix ms.
    start: i64,
    /// Unix ms, after `start`.
    end: i64,
    /// Why (at most 200 characters).
    #[serde(default)]
    note: String,
}

/// The camera's locked ranges. Needs: `playback` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/locks", tag = "review",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, body = Vec<LockItem>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn locks(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let name = s.authorize(&req, camera, Permission::Playback)?;
    let list: Vec<LockItem> = s
        .store
        .locks(&name)
        .await?
        .into_iter()
        .map(|l| lock_item(l, camera))
        .collect();
    Ok(axum::Json(list).into_response())
}

/// Keeps a range of the camera from retention, even when the disk is
/// full; it covers footage recorded into it later too. Needs: `control`
/// on the camera.
#[utoipa::path(post, path = "/api/cameras/{id}/locks", tag = "review",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:control"))),
    params(("id" = i64, Path, description = "camera id")),
    request_body = NewLock,
    responses(
        (status = 201, body = LockItem),
        (status = 400, body = ErrorBody, description = "not a positive range, or a note over 200 characters"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "no `control` on the camera"),
        (status = 404, body = ErrorBody),
    ))]
async fn add_lock(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(camera): ApiPath<i64>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewLock>,
) -> Result<Response, ApiError> {
    let q = HashMap::new();
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let name = s.authorize(&req, camera, Permission::Control)?;
    if body.note.chars().count() > 200 {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "a note is at most 200 characters",
        ));
    }
    let range = TimeRange::new(ns(body.start, "start")?, ns(body.end, "end")?)?;
    let who = s.access.principal(&PlaybackRequest {
        headers: &headers,
        query_token: None,
        peer,
    });
    let lock = s.store.lock_by(&name, range, &body.note, &who).await?;
    Ok((StatusCode::CREATED, axum::Json(lock_item(lock, camera))).into_response())
}

/// Lets retention delete the range again. Needs: `control` on the camera.
#[utoipa::path(delete, path = "/api/cameras/{id}/locks/{lock_id}", tag = "review",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:control"))),
    params(
        ("id" = i64, Path, description = "camera id"),
        ("lock_id" = i64, Path, description = "lock id"),
    ),
    responses(
        (status = 204, description = "unlocked"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or no such lock on it"),
    ))]
async fn remove_lock(
    State(s): State<ReviewState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath((camera, lock_id)): ApiPath<(i64, i64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = HashMap::new();
    let req = Req {
        headers: &headers,
        query: &q,
        peer,
    };
    let name = s.authorize(&req, camera, Permission::Control)?;
    match s.store.lock_row(lock_id).await? {
        Some(l) if l.camera == name => {}
        _ => return Err(ApiError::not_found("lock")),
    }
    s.store.unlock(lock_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
