//! The HTTP API of RealLive's servers: one axum router per domain, and the
//! pieces every route shares.
//!
//! This crate holds routes only. It never binds a socket, reads a config
//! file or keeps a live session: `reallive-node` bootstraps the data dir
//! (token secret, first admin), adds the live routes (WS signaling, WHIP,
//! WHEP) and serves; `reallive-record` owns the NVR's config schema and the
//! camera registry these routes ask.
//!
//! - [`ApiState`] (built from [`ApiOptions`]): the accounts, the token keys,
//!   the login rate limits and the counters every handler shares.
//! - [`router`]: the API, one router per domain under [`routes`] (auth,
//!   cameras and grants, users, health and metrics, logs), with the 64 KiB body
//!   limit, optional CORS and the request log. A program that merges its
//!   own routers uses [`api_routes`] and wraps the whole app in
//!   [`with_layers`] last.
//! - [`ApiError`]: the one error type handlers return. It maps an
//!   [`ErrorKind`](reallive_core::ErrorKind) to a status in one `match`,
//!   logs a 5xx once, and answers `{"error": {"code", "message"}}` without
//!   echoing paths or internals. [`ApiJson`], [`ApiPath`] and [`ApiQuery`]
//!   reject in that shape too.
//! - [`AuthUser`] and [`MediaUser`]: extractors for a signed-in user;
//!   [`PeerIp`] for the rate limits.
//! - [`recordings`]: playback of a store (list, HLS VOD and live, files by
//!   range, MP4 export), behind a [`recordings::PlaybackAccess`] policy;
//!   shared by the puller and the NVR.
//! - [`exports`]: exports as jobs (start, list, download by range,
//!   delete), over a `reallive_store::ExportJobs`, behind the same
//!   [`recordings::PlaybackAccess`].
//! - [`nvr`]: the NVR's recorder status and control, over a
//!   `reallive_record::CameraRegistry`.
//! - [`files::serve`]: byte-range file serving for recordings, HLS segments
//!   and exports, refusing any path that resolves outside its root.
//! - [`ui`]: the web UI; [`openapi`]: the generated OpenAPI document
//!   (`proto/openapi.yaml`); [`metrics`]: the `/metrics` counters.
//!
//! # Threading
//!
//! Handlers are async and never block: password hashing runs on blocking
//! threads (one per core at a time), account reads are in-memory
//! snapshots, SQLite runs on sqlx's own threads, and file reads go through
//! `tokio::fs`.
//!
//! Serve with `into_make_service_with_connect_info::<SocketAddr>()`: without
//! the peer's address the per-IP login limit is skipped, and the
//! [`recordings`] routes fail.
//!
//! # Example
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::path::Path;
//!
//! use reallive_auth::{Accounts, TokenKeys};
//! use reallive_http::{ApiOptions, ApiState};
//!
//! # async fn demo(secret: [u8; 32]) -> Result<(), Box<dyn std::error::Error>> {
//! let accounts = Accounts::open(Path::new("./data")).await?;
//! let state = ApiState::new(accounts, TokenKeys::new(&secret)?, ApiOptions::default())
//!     .map_err(|e| e.message)?;
//! let app = reallive_http::router(state);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! reallive_http::serve(listener, app, reallive_http::ServeLimits::default(), std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod clients;
mod error;
pub mod exports;
pub mod extract;
pub mod files;
pub mod host;
mod json;
pub mod metrics;
pub mod nvr;
pub mod openapi;
pub mod recordings;
pub mod review;
pub mod routes;
mod serve;
mod state;
pub mod sysinfo;
pub mod tls;
pub mod ui;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;

pub use clients::{ClientSlot, ClientSlots};
pub use error::{ApiError, ErrorBody, ErrorDetail, status_for};
pub use extract::{AuthSession, AuthUser, MediaSession, MediaUser, OptionalUser, PeerIp};
pub use json::{ApiJson, ApiPath, ApiQuery, MAX_BODY_BYTES};
pub use serve::{OverTls, ServeLimits, ServeOptions, TrustedProxies, serve, serve_with};
pub use state::{ApiOptions, ApiState, HealthSource, MetricsSource, Session, SystemSource};

/// The whole API over `state`: every domain router, the body limit, CORS
/// when configured, JSON 404/405, and the request log.
pub fn router(state: ApiState) -> Router {
    with_layers(api_routes().with_state(state.clone()), &state)
}

/// Every API route, before state and layers.
pub fn api_routes() -> Router<ApiState> {
    Router::new()
        .merge(routes::auth::router())
        .merge(routes::cameras::router())
        .merge(routes::users::router())
        .merge(routes::system::router())
        .merge(routes::logs::router())
}

/// Wraps a complete app (API plus any merged routers) in what every route
/// gets: JSON 404/405, the 64 KiB body limit, the request log and
/// counters, and CORS when configured. Apply it last: layers only cover
/// routes present when they are added.
pub fn with_layers(app: Router, state: &ApiState) -> Router {
    let mut app = app
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::with_status(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    if let Some(cors) = cors(&state.options().cors_origins) {
        app = app.layer(cors);
    }
    app
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    // `*` is any origin: tower-http refuses it inside a list (a panic at
    // start), and with bearer tokens (never cookies) it is safe.
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if list.is_empty() {
            return None;
        }
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    )
}

/// Counts every response and logs it at debug: method and path only. The
/// query string is never logged, because media URLs carry `?token=`.
/// Each request gets an id, in a `request` span around its handler (so
/// every line it logs carries `request`, `method` and `path`) and in the
/// `x-request-id` response header, so an operator can find the lines of
/// the request a user saw fail.
async fn observe(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let started = Instant::now();
    let id = format!(
        "{:x}",
        NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let span = tracing::info_span!(
        "request",
        request = %id,
        method = %req.method(),
        path = req.uri().path()
    );
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    state.metrics().request(status);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    span.in_scope(|| {
        tracing::debug!(status, us = started.elapsed().as_micros() as u64, "request");
    });
    resp
}
