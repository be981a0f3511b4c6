//! The HTTP surface shared by `reallive-server` and `reallive-nvr`.
//!
//! One axum router per domain (auth, cameras, recordings and HLS,
//! signaling, WHIP/WHEP, health and metrics, static UI) will live here, with
//! one `ApiError` that answers `{"error": {"code", "message"}}`. Today it
//! holds the single mapping from [`ErrorKind`] to HTTP status and error
//! code, which every router will use.
//!
//! # Threading
//!
//! Handlers are async and never block: disk and SQLite work goes to
//! `spawn_blocking` inside the crates that own it.

use reallive_core::ErrorKind;

/// The HTTP status and JSON error code for an error of `kind`.
pub fn status_for(kind: ErrorKind) -> (u16, &'static str) {
    let status = match kind {
        ErrorKind::NotFound => 404,
        ErrorKind::InvalidArgument => 400,
        ErrorKind::PermissionDenied => 403,
        ErrorKind::ResourceExhausted => 429,
        ErrorKind::Unavailable => 503,
        _ => 500,
    };
    (status, kind.code())
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
