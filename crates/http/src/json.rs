//! [`ApiJson`]: `axum::Json` whose rejections are [`ApiError`]s.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest request body accepted anywhere in the API.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body in, or a JSON response out. Rejections answer in the API's
/// error shape: 413 too large, 415 not JSON, 400 malformed JSON, 422 JSON of
/// the wrong shape (unknown fields included, where the type denies them).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(rejection(&r)),
        }
    }
}

fn rejection(r: &JsonRejection) -> ApiError {
    let status = r.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        _ => "invalid_argument",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body is larger than {} KiB", MAX_BODY_BYTES / 1024)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "expected Content-Type: application/json".into(),
        // serde's message names the field and what was expected; it never
        // holds more of the body than a field name or a type.
        _ => r.body_text(),
    };
    ApiError::with_status(status, code, message)
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejection is a 400 [`ApiError`].
#[derive(Debug, Clone, Copy)]
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| {
                ApiError::with_status(StatusCode::BAD_REQUEST, "invalid_argument", r.body_text())
            })
    }
}

/// `axum::extract::Query` whose rejection is a 400 [`ApiError`].
#[derive(Debug, Clone, Copy)]
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| {
                ApiError::with_status(StatusCode::BAD_REQUEST, "invalid_argument", r.body_text())
            })
    }
}

/// For `#[serde(default, deserialize_with = "present")]` on an
/// `Option<Option<T>>`: tells a field sent as `null` (`Some(None)`) from one
/// left out (`None`).
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}
