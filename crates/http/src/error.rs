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
    /// The request field at fault, when there is one (a form shows the
    /// message beside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
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
    /// A 5xx whose message is meant for the client (a limit, not a fault).
    public: bool,
    /// The request field at fault.
    field: Option<String>,
}

impl ApiError {
    /// An error of `kind` with a client-safe `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            status: None,
            retry_after_secs: None,
            public: false,
            field: None,
        }
    }

    /// This error, naming the request `field` at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 503 with `Retry-After` and `message` shown as it is: the server is
    /// at a limit (too many connections), not broken.
    pub fn busy(message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs.max(1)),
            public: true,
            ..ApiError::new(ErrorKind::Unavailable, message)
        }
    }

    /// The same error with its own `code` in the body, for a client to
    /// tell it from others of its status.
    #[must_use]
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.status = Some((self.status(), code));
        self
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

    /// 401: no valid sign-in (missing, expired or revoked token, or wrong
    /// credentials).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Unauthenticated, message)
    }

    /// 403: signed in but not allowed. For a camera the caller may not see
    /// at all, answer [`not_found`](Self::not_found) instead, so ids cannot
    /// be probed.
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

    /// 507: what was asked for does not fit in the space set aside for it
    /// (the exports' share of the disk). The message, which says how much
    /// it needs, is shown as it is: a limit, not a fault.
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        ApiError {
            status: Some((StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")),
            public: true,
            ..ApiError::new(ErrorKind::ResourceExhausted, message)
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
        if let reallive_auth::AuthError::Unavailable(message) = e {
            // A limit, not a fault: said as it is, with a retry.
            return ApiError::busy(message, 60);
        }
        ApiError::new(e.kind(), e.to_string())
    }
}

/// A store error tells the client what it asked wrong, never where the
/// files are or what SQLite said: disk, index and corruption errors get a
/// fixed sentence (and the log gets the detail, once), and paths in the
/// others are cut out.
impl From<reallive_store::StoreError> for ApiError {
    fn from(e: reallive_store::StoreError) -> Self {
        use reallive_store::StoreError as S;
        let kind = e.kind();
        if let S::NoRoom { .. } = e {
            return ApiError::insufficient_storage(e.to_string());
        }
        if let S::NotYet(_) = e {
            // A blocking playlist reload that timed out: expected, not a
            // fault; the client is told what did not come, and to ask again.
            return ApiError::busy(without_paths(&e.to_string()), 1);
        }
        let message = match &e {
            S::NotFound(_) | S::InvalidInput(_) | S::Bitstream(_) | S::Busy(_) | S::NotYet(_) => {
                without_paths(&e.to_string())
            }
            _ => {
                if status_for(kind).0 < 500 {
                    // A 5xx is logged by `into_response`; this is the
                    // only place a 4xx from the disk is.
                    tracing::warn!(error = %e, "recordings store");
                }
                match kind {
                    ErrorKind::NotFound => "that recording's file is missing".to_string(),
                    ErrorKind::ResourceExhausted => "the recordings disk is full".to_string(),
                    ErrorKind::PermissionDenied => {
                        "the server may not read its recordings".to_string()
                    }
                    ErrorKind::Unavailable => {
                        "the recordings are unavailable; try again".to_string()
                    }
                    _ => e.to_string(),
                }
            }
        };
        ApiError::new(kind, message)
    }
}

/// A recording-domain error: its own message for a request's mistake, the
/// store's rule for the store's.
impl From<reallive_record::RecordError> for ApiError {
    fn from(e: reallive_record::RecordError) -> Self {
        match e {
            reallive_record::RecordError::Store(e) => e.into(),
            reallive_record::RecordError::Stale(message) => ApiError::with_status(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                message,
            ),
            e => {
                let field = e.field().map(str::to_owned);
                let out = ApiError::new(e.kind(), e.to_string());
                match field {
                    Some(f) => out.with_field(f),
                    None => out,
                }
            }
        }
    }
}

/// `text` with every word that starts with `/` (an absolute path)
/// replaced by `<path>`.
fn without_paths(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let bare = w.trim_start_matches(['\'', '"', '(', '`']);
            if bare.starts_with('/') { "<path>" } else { w }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self
            .status
            .map_or_else(|| status_for(self.kind).1, |(_, c)| c);
        let message = if status.is_server_error() && !self.public {
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
                field: self.field,
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
    fn a_full_deny_list_is_a_503_said_as_it_is() {
        let e = ApiError::from(reallive_auth::AuthError::Unavailable(
            "too many sessions were signed out recently".into(),
        ));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = e.into_response();
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn store_errors_never_show_paths_or_sql() {
        use reallive_store::StoreError;
        let io = |kind| StoreError::Io {
            context: "opening /srv/data/recordings/camera-1/2026/x.mp4".into(),
            source: std::io::Error::from(kind),
        };
        let cases = [
            (
                StoreError::NotFound("recording 7".into()),
                404,
                "recording 7 not found",
            ),
            (
                StoreError::InvalidInput("'/etc/passwd' is not a recording".into()),
                400,
                "<path> is not a recording",
            ),
            (
                io(std::io::ErrorKind::NotFound),
                404,
                "that recording's file is missing",
            ),
            (
                io(std::io::ErrorKind::StorageFull),
                429,
                "the recordings disk is full",
            ),
            (
                StoreError::Index(sqlx_error()),
                503,
                "the recordings are unavailable; try again",
            ),
        ];
        for (e, status, message) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.status().as_u16(), status, "{message}");
            assert_eq!(api.message, message);
        }
    }

    #[test]
    fn export_limits_say_what_to_do() {
        use reallive_store::StoreError;
        let busy = ApiError::from(StoreError::Busy("at most 2 exports run at once".into()));
        assert_eq!(busy.status().as_u16(), 429);
        assert_eq!(busy.message, "at most 2 exports run at once");
        let e = ApiError::from(StoreError::NoRoom {
            needed_bytes: 12_000_000,
            free_bytes: 3_000_000,
            budget_bytes: 50_000_000,
        });
        assert!(e.message.contains("needs about 12 MB"), "{}", e.message);
        let r = e.into_response();
        assert_eq!(r.status(), 507);
    }

    fn sqlx_error() -> sqlx::Error {
        sqlx::Error::Protocol("SELECT path FROM recordings WHERE secret".into())
    }

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
