//! `/api/cameras/*`: cameras, their stream keys, grants and connection info.
//!
//! A camera the caller may not see answers 404, exactly like a missing one,
//! so ids cannot be enumerated. One they may see but not change answers 403.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use reallive_auth::{Camera, CameraUpdate, Grant, Permission, Secret, Snapshot, User};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::extract::AuthUser;
use crate::json::{ApiPath, ApiQuery};
use crate::{ApiError, ApiJson, ApiState};
use reallive_signaling::IceServer;

/// The camera routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/cameras", get(list).post(create))
        .route("/api/cameras/{id}", get(get_one).put(update).delete(delete))
        .route("/api/cameras/{id}/stream-key", post(regenerate_key))
        .route("/api/cameras/{id}/stream", get(stream_info))
        .route(
            "/api/cameras/{id}/grants",
            get(list_grants)
                .post(add_grant)
                .delete(remove_grant_by_query),
        )
        .route(
            "/api/cameras/{id}/grants/{user_id}",
            axum::routing::delete(remove_grant),
        )
}

/// A camera, with what the caller may do with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CameraView {
    /// The camera.
    #[serde(flatten)]
    pub camera: Camera,
    /// The caller's level: `control` for owners and admins.
    pub permission: Permission,
}

/// A new camera.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCameraRequest {
    /// 1-64 characters; unique.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Free text, such as `1280x720`; at most 32 characters.
    #[serde(default)]
    #[schema(max_length = 32)]
    pub resolution: Option<String>,
}

/// A created camera and its stream key, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCamera {
    /// The camera.
    pub camera: Camera,
    /// The publisher's key. Store it now: only its hash is kept.
    #[schema(value_type = String)]
    pub stream_key: SecretOut,
}

/// A secret in the one response that reveals it.
#[derive(Debug)]
pub struct SecretOut(pub Secret);

impl Serialize for SecretOut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose())
    }
}

/// Changes to a camera; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCameraRequest {
    /// New name, 1-64 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    /// New resolution, at most 32 characters; `null` clears it.
    #[serde(default, deserialize_with = "crate::json::present")]
    #[schema(value_type = Option<String>, max_length = 32)]
    pub resolution: Option<Option<String>>,
}

/// A new stream key.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamKeyResponse {
    /// The publisher's new key; the old one no longer works.
    #[schema(value_type = String)]
    pub stream_key: SecretOut,
}

/// How to watch a camera.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamInfo {
    /// The camera.
    pub camera_id: i64,
    /// WebSocket signaling endpoint.
    pub signaling_url: String,
    /// WHEP endpoint (POST an SDP offer).
    pub whep_url: String,
    /// STUN/TURN servers to use: the configured ones, then, with
    /// `[server.turn]`, a TURN server with a credential minted for this
    /// user and this answer (`<expiry>:<user>-<session>`, valid
    /// `ttl_secs`): ask again for each new session.
    pub ice_servers: Vec<IceServer>,
}

/// A grant to add or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The user, by id...
    #[serde(default)]
    pub user_id: Option<i64>,
    /// ...or by username.
    #[serde(default)]
    pub username: Option<String>,
    /// The level.
    pub permission: Permission,
}

/// Which grant to remove.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    /// The user whose grant goes.
    pub user_id: i64,
}

/// The camera `id` if `user` may see it, with their level; 404 otherwise.
fn visible(snap: &Snapshot, user: &User, id: i64) -> Result<(Camera, Permission), ApiError> {
    snap.camera(id)
        .and_then(|c| snap.access(user, c).map(|p| (c.clone(), p)))
        .ok_or_else(|| ApiError::not_found("camera"))
}

/// As [`visible`], and 403 unless `user` owns it or is an admin.
fn managed(snap: &Snapshot, user: &User, id: i64) -> Result<Camera, ApiError> {
    let (cam, _) = visible(snap, user, id)?;
    if snap.may_manage(user, &cam) {
        Ok(cam)
    } else {
        Err(ApiError::forbidden(
            "only the camera's owner or an admin may do this",
        ))
    }
}

fn snapshot(state: &ApiState) -> Arc<Snapshot> {
    state.accounts().snapshot()
}

/// The cameras the caller may see.
#[utoipa::path(get, path = "/api/cameras", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses((status = 200, body = Vec<CameraView>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
) -> ApiJson<Vec<CameraView>> {
    let snap = snapshot(&state);
    let cams = snap
        .visible_cameras(&user)
        .filter_map(|c| {
            Some(CameraView {
                permission: snap.access(&user, c)?,
                camera: c.clone(),
            })
        })
        .collect();
    ApiJson(cams)
}

/// Creates a camera owned by the caller (admins and operators).
#[utoipa::path(post, path = "/api/cameras", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("operator"))),
    request_body = CreateCameraRequest,
    responses(
        (status = 201, body = CreatedCamera),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "viewers may not create cameras"),
        (status = 409, body = ErrorBody, description = "the name is taken"),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<CreateCameraRequest>,
) -> Result<(StatusCode, ApiJson<CreatedCamera>), ApiError> {
    if !user.role.can_manage_cameras() {
        return Err(ApiError::forbidden(
            "only admins and operators may create cameras",
        ));
    }
    let (camera, key) = state
        .accounts()
        .create_camera(user.id, &req.name, req.resolution.as_deref())
        .await?;
    tracing::info!(camera = camera.id, user = user.id, "camera created");
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedCamera {
            camera,
            stream_key: SecretOut(key),
        }),
    ))
}

/// One camera.
#[utoipa::path(get, path = "/api/cameras/{id}", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(("id" = i64, Path, description = "camera id")),
    responses((status = 200, body = CameraView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<CameraView>, ApiError> {
    let (camera, permission) = visible(&snapshot(&state), &user, id)?;
    Ok(ApiJson(CameraView { camera, permission }))
}

/// Renames a camera or changes its resolution (owner or admin).
#[utoipa::path(put, path = "/api/cameras/{id}", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id")), request_body = UpdateCameraRequest,
    responses(
        (status = 200, body = Camera), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UpdateCameraRequest>,
) -> Result<ApiJson<Camera>, ApiError> {
    managed(&snapshot(&state), &user, id)?;
    let cam = state
        .accounts()
        .update_camera(
            id,
            CameraUpdate {
                name: req.name,
                resolution: req.resolution,
            },
        )
        .await?;
    Ok(ApiJson(cam))
}

/// Deletes a camera with its grants (owner or admin). Recordings stay.
#[utoipa::path(delete, path = "/api/cameras/{id}", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    managed(&snapshot(&state), &user, id)?;
    state.accounts().delete_camera(id).await?;
    tracing::info!(camera = id, user = user.id, "camera deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the stream key (owner or admin); the old key stops working at
/// once.
#[utoipa::path(post, path = "/api/cameras/{id}/stream-key", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id")),
    responses((status = 200, body = StreamKeyResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn regenerate_key(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<StreamKeyResponse>, ApiError> {
    managed(&snapshot(&state), &user, id)?;
    let key = state.accounts().regenerate_stream_key(id).await?;
    tracing::info!(camera = id, user = user.id, "stream key regenerated");
    Ok(ApiJson(StreamKeyResponse {
        stream_key: SecretOut(key),
    }))
}

/// Where and how to watch a camera (`view` or better).
#[utoipa::path(get, path = "/api/cameras/{id}/stream", tag = "cameras", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:view"))),
    params(("id" = i64, Path, description = "camera id")),
    responses((status = 200, body = StreamInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stream_info(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    over_tls: Option<axum::Extension<crate::OverTls>>,
) -> Result<ApiJson<StreamInfo>, ApiError> {
    visible(&snapshot(&state), &user, id)?;
    // Over TLS, the URLs are too: a page on https:// may not open ws://.
    let tls = over_tls.is_some_and(|axum::Extension(t)| t.0);
    let (ws, http) = if tls {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    // URLs on the host the client reached us by, so they work behind NAT
    // and port forwards alike.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let mut ice_servers = state.options().ice_servers.clone();
    if let Some(turn) = &state.options().turn {
        // Per user and per answer (a session), never a standing password.
        let session = reallive_auth::random_token::<6>();
        let c = turn.mint(
            &format!("{}-{}", user.id, session.expose()),
            reallive_core::time::UtcNs::now().secs(),
        );
        ice_servers.push(IceServer {
            urls: c.urls,
            username: Some(c.username),
            credential: Some(c.credential),
        });
    }
    Ok(ApiJson(StreamInfo {
        camera_id: id,
        signaling_url: format!("{ws}://{host}/ws/signaling"),
        whep_url: format!("{http}://{host}/whep/{id}"),
        ice_servers,
    }))
}

/// Who holds what on a camera (owner or admin).
#[utoipa::path(get, path = "/api/cameras/{id}/grants", tag = "grants", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id")),
    responses((status = 200, body = Vec<Grant>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_grants(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<Vec<Grant>>, ApiError> {
    let snap = snapshot(&state);
    managed(&snap, &user, id)?;
    Ok(ApiJson(snap.grants(id)))
}

/// Grants a user a level on a camera, replacing their earlier grant
/// (owner or admin).
#[utoipa::path(post, path = "/api/cameras/{id}/grants", tag = "grants", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id")), request_body = GrantRequest,
    responses(
        (status = 201, body = Grant), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera or user"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn add_grant(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> Result<(StatusCode, ApiJson<Grant>), ApiError> {
    let snap = snapshot(&state);
    managed(&snap, &user, id)?;
    let target = match (req.user_id, req.username.as_deref()) {
        (Some(uid), None) => snap.user(uid),
        (None, Some(name)) => snap.user_by_name(name).map(|(u, _)| u),
        _ => {
            return Err(ApiError::new(
                reallive_core::ErrorKind::InvalidArgument,
                "give exactly one of user_id and username",
            ));
        }
    }
    .ok_or_else(|| ApiError::not_found("user"))?
    .id;
    drop(snap);
    let grant = state.accounts().grant(id, target, req.permission).await?;
    tracing::info!(camera = id, user = target, permission = %req.permission, "granted");
    Ok((StatusCode::CREATED, ApiJson(grant)))
}

/// Removes a user's grant (owner or admin): `?user_id=`.
#[utoipa::path(delete, path = "/api/cameras/{id}/grants", tag = "grants", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id"), GrantQuery),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_grant_by_query(
    state: State<ApiState>,
    user: AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<GrantQuery>,
) -> Result<StatusCode, ApiError> {
    remove_grant(state, user, ApiPath((id, q.user_id))).await
}

/// Removes a user's grant (owner or admin).
#[utoipa::path(delete, path = "/api/cameras/{id}/grants/{user_id}", tag = "grants", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:owner"))),
    params(("id" = i64, Path, description = "camera id"), ("user_id" = i64, Path, description = "user id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_grant(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath((id, user_id)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    managed(&snapshot(&state), &user, id)?;
    state.accounts().revoke(id, user_id).await?;
    tracing::info!(camera = id, user = user_id, "grant removed");
    Ok(StatusCode::NO_CONTENT)
}
