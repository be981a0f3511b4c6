//! What the API fuzzing (`tests/api-fuzz/run`, schemathesis against
//! proto/openapi.yaml) found, each kept as a test of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use reallive_auth::{Accounts, NewUser, Role, TokenKeys};
use reallive_core::supervise::WorkerStatus;
use reallive_http::nvr::NvrState;
use reallive_http::recordings::{LocalAccess, RecordingsState};
use reallive_http::{ApiOptions, ApiState};
use reallive_record::config::{CameraConfig, MotionConfig};
use reallive_record::{BoxFuture, CameraRegistry, RecordError, SourceView};
use reallive_store::{Store, StoreConfig};
use tower::ServiceExt as _;

/// Sends `req` from loopback; the status, the content type and the JSON.
async fn call(app: &Router, mut req: Request<Body>) -> (StatusCode, String, serde_json::Value) {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let ct = r
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        ct,
        serde_json::from_slice(&body).unwrap_or_default(),
    )
}

async fn store(dir: &Path) -> Store {
    Store::open(StoreConfig::new(dir.join("recordings")))
        .await
        .unwrap()
        .0
}

/// A camera id that is not an `i64` (`x`, or 2^63) was axum's plain-text
/// 400 on the playback routes, not the API's JSON error: they took the
/// path with axum's `Path` instead of `ApiPath`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_routes_refuse_a_bad_camera_id_in_the_api_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let access = Arc::new(LocalAccess::new(
        HashMap::from([(1, "camera-1".to_string())]),
        None,
    ));
    let app = reallive_http::recordings::router(RecordingsState::new(
        store.clone(),
        access,
        dir.path().join("exports"),
    ));
    for uri in [
        "/api/cameras/x/vod.m3u8",
        "/api/cameras/9223372036854775808/live.m3u8",
        "/api/cameras/x/files/camera-1/a.mp4",
        "/api/cameras/9223372036854775808/files/0?t=0",
        "/api/cameras/1.5/export.mp4?start=0&end=1000",
    ] {
        let (status, ct, body) = call(&app, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(ct, "application/json", "{uri}");
        assert_eq!(body["error"]["code"], "invalid_argument", "{uri}: {body}");
    }
    store.close().await;
}

/// Recorders that are all stopped.
struct Stopped;

impl CameraRegistry for Stopped {
    fn status(&self, _: i64) -> Option<WorkerStatus> {
        None
    }
    fn start(&self, _: i64) -> bool {
        false
    }
    fn stop(&self, _: i64) -> bool {
        false
    }
    fn trigger(&self, _: i64, _: u32) -> bool {
        false
    }
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    fn sources(&self) -> Vec<SourceView> {
        Vec::new()
    }
    fn add(&self, _: CameraConfig) -> BoxFuture<'_, Result<i64, RecordError>> {
        Box::pin(async { Err(RecordError::Invalid("not here".into())) })
    }
    fn set_motion(&self, _: i64, _: MotionConfig) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async { Err(RecordError::NotFound("camera")) })
    }
    fn remove(&self, _: i64) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async { Err(RecordError::NotFound("camera")) })
    }
    fn update(&self, _: i64, _: CameraConfig, _: &str) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async { Err(RecordError::NotFound("camera")) })
    }
    fn clear_overrides(&self, _: i64) -> BoxFuture<'_, Result<(), RecordError>> {
        Box::pin(async { Err(RecordError::NotFound("camera")) })
    }
    fn latest_keyframe(&self, _: i64) -> Option<reallive_core::EncodedFrame> {
        None
    }
    fn motion_meter(
        &self,
        _: i64,
    ) -> Option<(
        tokio::sync::watch::Receiver<Option<reallive_record::camera::MotionSample>>,
        usize,
    )> {
        None
    }
}

/// A trigger for a camera whose recorder is not running was a 503
/// ("internal error", as every 5xx reads): the camera's state, not the
/// server's. It is a 409 that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_for_a_camera_not_recording_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Accounts::open(dir.path()).await.unwrap();
    let api = ApiState::new(
        accounts.clone(),
        TokenKeys::new(b"fuzz-findings-secret-fuzz-findings").unwrap(),
        ApiOptions::default(),
    )
    .unwrap();
    let admin = accounts
        .create_user(NewUser {
            username: "admin".into(),
            email: "admin@example.org".into(),
            password_hash: "unused".into(),
            role: Role::Admin,
        })
        .await
        .unwrap();
    let (camera, _) = accounts
        .create_camera(admin.id, "front", None)
        .await
        .unwrap();
    let (token, _) = api.issue_token(&admin);
    let store = store(dir.path()).await;
    let app = reallive_http::nvr::router(NvrState::new(api, Arc::new(Stopped), store.clone()));
    let req = Request::post(format!("/api/cameras/{}/trigger", camera.id))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"seconds": 320}"#))
        .unwrap();
    let (status, ct, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(ct, "application/json");
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    assert_eq!(
        body["error"]["message"], "the camera is not recording now",
        "{body}"
    );
    store.close().await;
    accounts.close().await;
}
