//! A live camera's picture and its motion meter: what the motion-zone
//! editor draws on and tunes with.
//!
//! Both take the token from `Authorization: Bearer` or, for `<img>` and
//! `EventSource` which cannot send headers, `?token=`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use reallive_auth::{Permission, User};
use reallive_core::ErrorKind;
use reallive_record::thumbnails::ThumbnailError;

use super::NvrState;
use crate::error::ErrorBody;
use crate::extract::PeerIp;
use crate::{ApiError, ApiPath};

/// A snapshot is at most this wide.
pub const SNAPSHOT_MAX_WIDTH: u32 = 1280;
/// Live motion meters per camera at once.
pub const MAX_METERS_PER_CAMERA: usize = 8;
/// Live motion meters per client at once.
pub const MAX_METERS_PER_CLIENT: usize = 64;
/// How often a meter's stream checks that its token is still good.
const RECHECK: Duration = Duration::from_secs(5);

/// The caller, from the header or `?token=`.
fn caller(
    s: &NvrState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(User, String), ApiError> {
    let token = crate::routes::logs::token(headers, query)?;
    Ok((s.api.authenticate(&token)?, token))
}

/// The latest keyframe of the live camera as a JPEG, at most 1280 px
/// wide. Needs: `view` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/snapshot.jpg", tag = "nvr",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, content_type = "image/jpeg", body = Vec<u8>),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or it is not recorded here"),
        (status = 409, body = ErrorBody, description = "no picture from the camera yet: it is starting, stopped or down"),
        (status = 503, body = ErrorBody, description = "the picture worker is busy: see `Retry-After`"),
    ))]
pub(super) async fn snapshot(
    State(s): State<NvrState>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let (user, _) = caller(&s, &headers, raw.as_deref())?;
    s.api.camera_access(&user, id, Permission::View)?;
    if s.workers.status(id).is_none() {
        return Err(ApiError::not_found("camera"));
    }
    let Some(frame) = s.workers.latest_keyframe(id) else {
        // The camera's state, not the server's: a 409, never a 5xx.
        return Err(ApiError::with_status(
            StatusCode::CONFLICT,
            "conflict",
            "no picture from the camera yet: it is starting, stopped or down",
        ));
    };
    let thumbnails = s
        .thumbnails
        .as_ref()
        .ok_or_else(|| ApiError::busy("snapshots are not available", 60))?;
    let jpeg = thumbnails
        .of_frame(id, &frame, SNAPSHOT_MAX_WIDTH)
        .await
        .map_err(|e| match e {
            ThumbnailError::Busy => ApiError::busy("pictures are being made; try again", 1),
            ThumbnailError::Store(e) => e.into(),
            other => ApiError::new(ErrorKind::Internal, other.to_string()),
        })?;
    let mut r = (StatusCode::OK, jpeg).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The motion detector's results, live: one `sample` event
/// ([`MotionSample`](reallive_record::camera::MotionSample)) per analysed
/// picture, while the stream is open. Nothing is sent while motion
/// detection is off. At most 8 per camera and 64 per client. Needs:
/// `view` on the camera.
#[utoipa::path(get, path = "/api/cameras/{id}/motion/live", tag = "nvr",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(("id" = i64, Path, description = "camera id")),
    responses(
        (status = 200, content_type = "text/event-stream", body = reallive_record::camera::MotionSample,
            description = "`sample` events, each a MotionSample"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "8 meters of this camera, or 64 of this client, are open"),
    ))]
pub(super) async fn motion_live(
    State(s): State<NvrState>,
    ApiPath(id): ApiPath<i64>,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let (user, token) = caller(&s, &headers, raw.as_deref())?;
    s.api.camera_access(&user, id, Permission::View)?;
    let (mut rx, before) = s
        .workers
        .motion_meter(id)
        .ok_or_else(|| ApiError::not_found("camera"))?;
    if before >= MAX_METERS_PER_CAMERA {
        return Err(ApiError::new(
            ErrorKind::ResourceExhausted,
            format!("at most {MAX_METERS_PER_CAMERA} motion meters per camera"),
        ));
    }
    let ip = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let slot = s.meters.take(ip, MAX_METERS_PER_CLIENT).ok_or_else(|| {
        ApiError::new(
            ErrorKind::ResourceExhausted,
            format!("at most {MAX_METERS_PER_CLIENT} motion meters per client"),
        )
    })?;
    let (tx, out) = tokio::sync::mpsc::channel::<SseEvent>(4);
    let api = s.api.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let mut checked = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tx.closed() => return,
                changed = rx.changed() => if changed.is_err() {
                    // The camera's recorder was replaced or removed.
                    return;
                },
            }
            if checked.elapsed() >= RECHECK {
                let still = api
                    .authenticate(&token)
                    .and_then(|u| api.camera_access(&u, id, Permission::View));
                if still.is_err() {
                    return;
                }
                checked = tokio::time::Instant::now();
            }
            let sample = rx.borrow_and_update().clone();
            let Some(sample) = sample else { continue };
            let Ok(ev) = SseEvent::default().event("sample").json_data(&sample) else {
                continue;
            };
            // A slow client misses samples rather than queueing them.
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(ev) {
                return;
            }
        }
    });
    let body = futures::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|e| (Ok::<_, Infallible>(e), out))
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
