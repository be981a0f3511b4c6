//! `/api/users/*`: user management, for admins.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use reallive_auth::{NewUser, Role, User, UserUpdate, validate};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::AuthUser;
use crate::json::ApiPath;
use crate::{ApiError, ApiJson, ApiState};

/// The user routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/users", get(list).post(create))
        .route("/api/users/{id}", get(get_one).put(update).delete(delete))
}

/// A new user, made by an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// `^[A-Za-z0-9_.-]{3,32}$`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// An email address.
    pub email: String,
    /// At least 10 characters.
    #[schema(format = Password, min_length = 10)]
    pub password: String,
    /// Defaults to `viewer`.
    #[serde(default)]
    pub role: Option<Role>,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// New email.
    #[serde(default)]
    pub email: Option<String>,
    /// New role; the last admin cannot be demoted.
    #[serde(default)]
    pub role: Option<Role>,
    /// New password, at least 10 characters; revokes the user's tokens.
    #[serde(default)]
    #[schema(format = Password, min_length = 10)]
    pub password: Option<String>,
}

fn admin(user: &User) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins may manage users"))
    }
}

/// Every user.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    responses((status = 200, body = Vec<User>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
) -> Result<ApiJson<Vec<User>>, ApiError> {
    admin(&user)?;
    Ok(ApiJson(
        state.accounts().snapshot().users().cloned().collect(),
    ))
}

/// Creates a user with any role.
#[utoipa::path(post, path = "/api/users", tag = "users", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = User), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, ApiJson<User>), ApiError> {
    admin(&user)?;
    validate::username(&req.username)?;
    validate::email(&req.email)?;
    validate::password(&req.password)?;
    let password_hash = state.hash_password(req.password).await?;
    let created = state
        .accounts()
        .create_user(NewUser {
            username: req.username,
            email: req.email,
            password_hash,
            role: req.role.unwrap_or(Role::Viewer),
        })
        .await?;
    tracing::info!(user = created.id, by = user.id, role = %created.role, "user created");
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// One user.
#[utoipa::path(get, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<User>, ApiError> {
    admin(&user)?;
    state
        .accounts()
        .snapshot()
        .user(id)
        .cloned()
        .map(ApiJson)
        .ok_or_else(|| ApiError::not_found("user"))
}

/// Changes a user's email, role or password.
#[utoipa::path(put, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "user id")), request_body = UpdateUserRequest,
    responses(
        (status = 200, body = User), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "email taken, or the last admin"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<ApiJson<User>, ApiError> {
    admin(&user)?;
    if let Some(e) = &req.email {
        validate::email(e)?;
    }
    let password_hash = match req.password {
        Some(pw) => {
            validate::password(&pw)?;
            Some(state.hash_password(pw).await?)
        }
        None => None,
    };
    let updated = state
        .accounts()
        .update_user(
            id,
            UserUpdate {
                email: req.email,
                role: req.role,
                password_hash,
            },
        )
        .await?;
    tracing::info!(user = id, by = user.id, "user updated");
    Ok(ApiJson(updated))
}

/// Deletes a user and their grants. Refused for the last admin and for
/// owners of cameras.
#[utoipa::path(delete, path = "/api/users/{id}", tag = "users", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(("id" = i64, Path, description = "user id")),
    responses(
        (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the last admin, or an owner of cameras"),
    ))]
pub async fn delete(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    admin(&user)?;
    state.accounts().delete_user(id).await?;
    tracing::info!(user = id, by = user.id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}
