//! `/api/health`, `/metrics`, `/api/openapi.json` and `/api/system`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use reallive_auth::Role;
use serde::Serialize;
use utoipa::{OpenApi as _, ToSchema};

use crate::error::ErrorBody;
use crate::extract::{AuthUser, OptionalUser, PeerIp};
use crate::sysinfo::CameraSeriesReport;
use crate::{ApiError, ApiJson, ApiState};

/// The system routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/api/system", get(system))
}

/// Liveness. A stranger learns only `status`; a signed-in user also
/// gets the version, uptime, database state and what the program adds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer or the
    /// program reports a warning (the NVR: free space under the floor).
    pub status: &'static str,
    /// The details, for a signed-in user only.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<HealthDetails>,
}

/// What `/api/health` tells a signed-in user.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDetails {
    /// The server's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// `ok` or `error`.
    pub db: &'static str,
    /// What the programs add: the NVR's `cameras_total`,
    /// `cameras_running` and storage `warnings`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Health: `ok` or `degraded` for anyone; details with a valid token.
#[utoipa::path(get, path = "/api/health", tag = "system", security((), ("bearer" = [])),
    extensions(("x-reallive-role" = json!("public"))),
    responses((status = 200, body = Health), (status = 503, body = Health, description = "the database does not answer")))]
pub async fn health(
    State(state): State<ApiState>,
    OptionalUser(user): OptionalUser,
) -> impl IntoResponse {
    let db_ok = state.accounts().ping().await;
    let extra = state.health_extra();
    let warned = extra
        .get("warnings")
        .and_then(|w| w.as_array())
        .is_some_and(|w| !w.is_empty());
    let body = Health {
        status: if db_ok && !warned { "ok" } else { "degraded" },
        details: user.map(|_| HealthDetails {
            version: env!("CARGO_PKG_VERSION"),
            uptime_secs: state.uptime().as_secs(),
            db: if db_ok { "ok" } else { "error" },
            extra,
        }),
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, ApiJson(body))
}

/// Prometheus metrics: open on loopback, admins only from elsewhere.
#[utoipa::path(get, path = "/metrics", tag = "system", security((), ("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin-or-loopback"))),
    responses(
        (status = 200, content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn metrics(
    State(state): State<ApiState>,
    PeerIp(ip): PeerIp,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    // A loopback peer that forwards for someone is a proxy the server was
    // not told to trust: what comes through it is from outside.
    let proxied =
        headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED);
    if proxied || !ip.is_some_and(|ip| ip.is_loopback()) {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthenticated("sign in as an admin"))?;
        let user = state.authenticate(token.trim())?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden("metrics are for admins"));
        }
    }
    let body = state.render_metrics();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system",
    extensions(("x-reallive-role" = json!("public"))),
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    axum::Json(crate::openapi::ApiDoc::openapi())
}

/// The process and its cameras, for the system page.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemReport {
    /// The server's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The process id.
    pub pid: u32,
    /// CPU use of the process over about the last 10 s, in percent of one
    /// core (above 100 on several).
    pub cpu_percent: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Threads.
    pub threads: u64,
    /// The accounts database and (reallive-nvr) the recordings index,
    /// each with its `-wal` and `-shm`, bytes.
    pub db_bytes: u64,
    /// Per camera (reallive-nvr; empty on reallive-server): fps, bitrate
    /// and state every 10 s for the last hour.
    pub cameras: Vec<CameraSeriesReport>,
}

/// The process (CPU, memory, threads, uptime, version, database size)
/// and each camera's recent fps, bitrate and state. Needs: admin.
#[utoipa::path(get, path = "/api/system", tag = "system", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    responses(
        (status = 200, body = SystemReport),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn system(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
) -> Result<ApiJson<SystemReport>, ApiError> {
    if user.role != Role::Admin {
        return Err(ApiError::forbidden("the system page is for admins"));
    }
    let extra = state.system_extra();
    let files = extra.db_files;
    let (db_bytes, memory) = tokio::task::spawn_blocking(move || {
        (
            crate::sysinfo::db_bytes(&files),
            crate::sysinfo::process_memory(),
        )
    })
    .await
    .map_err(|e| {
        ApiError::new(
            reallive_core::ErrorKind::Internal,
            format!("system task: {e}"),
        )
    })?;
    Ok(ApiJson(SystemReport {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.uptime().as_secs(),
        pid: std::process::id(),
        cpu_percent: state.cpu_percent(),
        rss_bytes: memory.rss_bytes,
        threads: memory.threads,
        db_bytes,
        cameras: extra.cameras,
    }))
}
