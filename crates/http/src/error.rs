//! [`ApiError`]: the one error every handler and extractor returns.

use axum::http::{HeaderValue, StatusCode, header};
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

/// The body of every error response.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A stable code and a human message.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, lowercase: `not_found`, `unauthenticated`, `unprocessable`...
    pub code: String,
    /// For people; never holds a path, SQL or a credential.
    pub message: String,
}

/// An error as the API answers it: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Category, which decides the status unless [`status`](Self::status)
    /// overrides it.
    pub kind: ErrorKind,
    /// A message safe to show a client: no paths, SQL or credentials. For a
    /// 5xx it is logged and the client sees "internal error".
    pub message: String,
    /// A protocol-level status with its own code (413, 415, 422).
    status: Option<(StatusCode, &'static str)>,
    /// Seconds, for 429 and 503.
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error of `kind` with a client-safe `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            status: None,
            retry_after_secs: None,
        }
    }

    /// An error with an explicit status and code, for the HTTP-level
    /// failures that have no domain kind (413, 415, 422).
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let kind = if status.is_server_error() {
            ErrorKind::Internal
        } else {
            ErrorKind::InvalidArgument
        };
        ApiError {
            status: Some((status, code)),
            ..ApiError::new(kind, message)
        }
    }

    /// 404 for `what`, worded the same whether it is missing or hidden.
    pub fn not_found(what: &str) -> Self {
        ApiError::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Unauthenticated, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::PermissionDenied, message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            ..ApiError::new(
                ErrorKind::ResourceExhausted,
                "too many attempts; try again later",
            )
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self.status {
            Some((s, _)) => s,
            None => StatusCode::from_u16(status_for(self.kind).0)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl From<reallive_auth::AuthError> for ApiError {
    fn from(e: reallive_auth::AuthError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl From<reallive_store::StoreError> for ApiError {
    fn from(e: reallive_store::StoreError) -> Self {
        ApiError::new(e.kind(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self
            .status
            .map_or_else(|| status_for(self.kind).1, |(_, c)| c);
        let message = if status.is_server_error() {
            // Logged here, once; the client gets no internals.
            tracing::error!(code, message = %self.message, "request failed");
            "internal error".to_string()
        } else {
            self.message
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_status() {
        assert_eq!(status_for(ErrorKind::NotFound), (404, "not_found"));
        assert_eq!(status_for(ErrorKind::Internal), (500, "internal"));
        assert_eq!(
            status_for(ErrorKind::Unauthenticated),
            (401, "unauthenticated")
        );
        assert_eq!(
            status_for(ErrorKind::AlreadyExists),
            (409, "already_exists")
        );
        let r = ApiError::rate_limited(7).into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        let r = ApiError::with_status(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "x");
        assert_eq!(r.status(), 413);
    }
}
