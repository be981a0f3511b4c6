//! Who is asking: [`AuthUser`] (Bearer token) and [`MediaUser`] (Bearer or
//! `?token=`, for players that cannot set headers).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use reallive_auth::User;

use crate::state::Session;
use crate::{ApiError, ApiState};

/// A signed-in user, from `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct AuthUser(pub User);

/// A signed-in session, from `Authorization: Bearer <token>`: the user and
/// the token's id, for the routes that sign it out.
#[derive(Clone, Debug)]
pub struct AuthSession(pub Session);

/// [`MediaUser`] with the token's id: for the live sessions that end when
/// their token is signed out.
#[derive(Clone, Debug)]
pub struct MediaSession(pub Session);

/// The user a valid `Authorization: Bearer` token belongs to, or `None`
/// when there is no token or it is not valid now: for routes that answer
/// anyone, and tell a signed-in user more.
#[derive(Clone, Debug)]
pub struct OptionalUser(pub Option<User>);

/// A signed-in user, from the `Authorization` header or a `token` query
/// parameter. Only media routes take it; the request log never prints
/// query strings, so the token never reaches a log line.
#[derive(Clone, Debug)]
pub struct MediaUser(pub User);

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(v) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(t.trim())),
        _ => Err(ApiError::unauthenticated(
            "expected Authorization: Bearer <token>",
        )),
    }
}

fn query_token(parts: &Parts) -> Option<&str> {
    // Tokens are base64url and dots: nothing to percent-decode.
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(|| ApiError::unauthenticated("sign in first"))?;
        ApiState::from_ref(state).authenticate(token).map(AuthUser)
    }
}

impl<S> FromRequestParts<S> for AuthSession
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer(parts)?.ok_or_else(|| ApiError::unauthenticated("sign in first"))?;
        ApiState::from_ref(state).session(token).map(AuthSession)
    }
}

impl<S> FromRequestParts<S> for OptionalUser
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let user = match bearer(parts) {
            Ok(Some(token)) => ApiState::from_ref(state).authenticate(token).ok(),
            _ => None,
        };
        Ok(OptionalUser(user))
    }
}

impl<S> FromRequestParts<S> for MediaUser
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = match bearer(parts)? {
            Some(t) => t,
            None => query_token(parts).ok_or_else(|| ApiError::unauthenticated("sign in first"))?,
        };
        ApiState::from_ref(state).authenticate(token).map(MediaUser)
    }
}

impl<S> FromRequestParts<S> for MediaSession
where
    S: Send + Sync,
    ApiState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = match bearer(parts)? {
            Some(t) => t,
            None => query_token(parts).ok_or_else(|| ApiError::unauthenticated("sign in first"))?,
        };
        ApiState::from_ref(state).session(token).map(MediaSession)
    }
}

/// The TCP peer's address, when the server recorded it.
pub fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The TCP peer's address, as an extractor that never fails.
#[derive(Clone, Copy, Debug)]
pub struct PeerIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(peer_ip(parts)))
    }
}
