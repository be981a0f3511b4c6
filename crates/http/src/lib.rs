//! The HTTP surface shared by `reallive-server` and `reallive-nvr`.
//!
//! One axum router per domain (auth, cameras, recordings and HLS,
//! signaling, WHIP/WHEP, health and metrics, static UI) will live here.
//! What exists now:
//!
//! - [`ApiError`]: the one error type handlers return. It maps an
//!   [`ErrorKind`] to a status in one `match`, logs a 5xx once, and answers
//!   `{"error": {"code", "message"}}` without echoing paths or internals.
//! - [`files::serve`]: byte-range file serving for recordings, HLS segments
//!   and exports, refusing any path that resolves outside its root.
//!
//! # Threading
//!
//! Handlers are async and never block: file reads go through `tokio::fs`,
//! and disk and SQLite work goes to `spawn_blocking` inside the crates
//! that own it.

pub mod files;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reallive_core::ErrorKind;

/// The HTTP status and JSON error code for an error of `kind`.
pub fn status_for(kind: ErrorKind) -> (u16, &'static str) {
    let status = match kind {
        ErrorKind::NotFound => 404,
        ErrorKind::InvalidArgument => 400,
        ErrorKind::PermissionDenied => 403,
        ErrorKind::Unauthenticated => 401,
        ErrorKind::AlreadyExists => 409,
        ErrorKind::ResourceExhausted => 429,
        ErrorKind::Unavailable => 503,
        _ => 500,
    };
    (status, kind.code())
}

/// An error as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Category, which decides the status.
    pub kind: ErrorKind,
    /// A message safe to show a client: no paths, SQL or credentials.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with a client-safe `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_for(self.kind);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if status.is_server_error() {
            // Logged here, once; the client gets no internals.
            tracing::error!(code, message = %self.message, "request failed");
            "internal error".to_string()
        } else {
            self.message
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_status() {
        assert_eq!(status_for(ErrorKind::NotFound), (404, "not_found"));
        assert_eq!(status_for(ErrorKind::Internal), (500, "internal"));
        assert_eq!(status_for(ErrorKind::ResourceExhausted).0, 429);
    }
}
