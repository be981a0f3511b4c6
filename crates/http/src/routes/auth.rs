//! `/api/auth/*`: register, login, who am I, change password, sign out
//! (of this session, or everywhere).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use reallive_auth::{NewUser, Role, User, UserUpdate, validate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{AuthSession, AuthUser, PeerIp};
use crate::metrics::LoginOutcome;
use crate::{ApiError, ApiJson, ApiState};

/// The auth routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/me", get(me))
        .route("/api/auth/password", post(change_password))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/logout-all", post(logout_all))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// `^[A-Za-z0-9_.-]{3,32}$`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$")]
    pub username: String,
    /// An email address.
    #[schema(format = Email)]
    pub email: String,
    /// At least 10 characters.
    #[schema(format = Password, min_length = 10)]
    pub password: String,
}

/// A user, wrapped.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// The user.
    pub user: User,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Case-insensitive.
    pub username: String,
    /// The password.
    #[schema(format = Password)]
    pub password: String,
}

/// A session token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`, or `?token=` on media URLs.
    pub token: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Who the token is for.
    pub user: User,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// The password now.
    #[schema(format = Password)]
    pub current_password: String,
    /// At least 10 characters.
    #[schema(format = Password, min_length = 10)]
    pub new_password: String,
}

fn token_response(state: &ApiState, user: User) -> TokenResponse {
    let (token, exp) = state.issue_token(&user);
    TokenResponse {
        token,
        expires_at: reallive_core::time::rfc3339_ms(exp.saturating_mul(1_000_000_000)),
        user,
    }
}

/// What registering answers, whether or not the name was free.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// Always the same text: sign in to find out.
    pub message: String,
}

/// The one answer to a well-formed registration, so it never tells a
/// stranger whether a username or email is taken.
pub const REGISTER_ANSWER: &str =
    "if the username and email were free, the account now exists: sign in with it";

/// Creates a viewer account with no grants, when registration is open
/// (`allow_registration`, off by default). A taken username or email gets
/// the same answer, after the same work, as a free one.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    extensions(("x-reallive-role" = json!("public"))),
    responses(
        (status = 202, body = RegisterResponse, description = "the same answer whether or not the name was free"),
        (status = 400, body = ErrorBody, description = "a rule broken"),
        (status = 403, body = ErrorBody, description = "registration is closed"),
        (status = 429, body = ErrorBody),
    ))]
pub async fn register(
    State(state): State<ApiState>,
    PeerIp(ip): PeerIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, ApiJson<RegisterResponse>), ApiError> {
    if !state.options().allow_registration {
        return Err(ApiError::forbidden("registration is closed"));
    }
    validate::username(&req.username)?;
    validate::email(&req.email)?;
    validate::password(&req.password)?;
    // Hashing is the expensive part: registering is limited like logging in.
    state.rate_limit(ip, None)?;
    let password_hash = state.hash_password(req.password).await?;
    match state
        .accounts()
        .create_user(NewUser {
            username: req.username,
            email: req.email,
            password_hash,
            role: Role::Viewer,
        })
        .await
    {
        Ok(user) => tracing::info!(user = user.id, username = %user.username, "registered"),
        Err(reallive_auth::AuthError::Conflict(_)) => {
            tracing::info!("a registration for a taken username or email was ignored")
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(RegisterResponse {
            message: REGISTER_ANSWER.to_owned(),
        }),
    ))
}

/// Exchanges a username and password for a token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    extensions(("x-reallive-role" = json!("public"))),
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = ErrorBody, description = "wrong username or password"),
        (status = 429, body = ErrorBody, description = "too many attempts; see Retry-After"),
    ))]
pub async fn login(
    State(state): State<ApiState>,
    PeerIp(ip): PeerIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    if req.password.len() > validate::MAX_PASSWORD_BYTES || req.username.len() > 256 {
        return Err(ApiError::unauthenticated("invalid username or password"));
    }
    if let Err(e) = state.rate_limit(ip, Some(&req.username)) {
        state.metrics().login(LoginOutcome::RateLimited);
        return Err(e);
    }
    let found = state
        .accounts()
        .snapshot()
        .user_by_name(&req.username)
        .map(|(u, h)| (u.clone(), h.to_string()));
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let ok = state.verify_password(phc, req.password).await?;
    state.login_outcome(ip, &req.username, ok && user.is_some());
    match user {
        Some(user) if ok => {
            state.metrics().login(LoginOutcome::Ok);
            tracing::info!(user = user.id, "signed in");
            Ok(ApiJson(token_response(&state, user)))
        }
        _ => {
            state.metrics().login(LoginOutcome::Failed);
            Err(ApiError::unauthenticated("invalid username or password"))
        }
    }
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses((status = 200, body = UserResponse), (status = 401, body = ErrorBody)))]
pub async fn me(AuthUser(user): AuthUser) -> ApiJson<UserResponse> {
    ApiJson(UserResponse { user })
}

/// Signs out of this session: the token presented stops working (and the
/// live sessions it opened end within a second); the user's other tokens
/// still work.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses(
        (status = 204, description = "signed out of this session"),
        (status = 401, body = ErrorBody, description = "not signed in"),
        (status = 503, body = ErrorBody, description = "too many sessions were signed out lately; see Retry-After, or sign out everywhere"),
    ))]
pub async fn logout(
    State(state): State<ApiState>,
    AuthSession(session): AuthSession,
) -> Result<StatusCode, ApiError> {
    state.end_session(&session)?;
    tracing::info!(user = session.user.id, "signed out of one session");
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out everywhere: revokes every token of the signed-in user, on
/// every device, and ends their live sessions within a second.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses(
        (status = 204, description = "signed out everywhere"),
        (status = 401, body = ErrorBody, description = "not signed in"),
    ))]
pub async fn logout_all(
    State(state): State<ApiState>,
    AuthUser(user): AuthUser,
) -> Result<StatusCode, ApiError> {
    state.accounts().revoke_tokens(user.id).await?;
    tracing::info!(user = user.id, "signed out everywhere");
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the signed-in user's password. Every token issued before stops
/// working; the response carries a new one.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    request_body = PasswordRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody, description = "the new password breaks a rule"),
        (status = 401, body = ErrorBody, description = "not signed in, or the current password is wrong"),
        (status = 429, body = ErrorBody),
    ))]
pub async fn change_password(
    State(state): State<ApiState>,
    PeerIp(ip): PeerIp,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    validate::password(&req.new_password)?;
    state.rate_limit(ip, Some(&user.username))?;
    let phc = state
        .accounts()
        .snapshot()
        .user_by_name(&user.username)
        .map(|(_, h)| h.to_string());
    let ok = state.verify_password(phc, req.current_password).await?;
    state.login_outcome(ip, &user.username, ok);
    if !ok {
        return Err(ApiError::unauthenticated("the current password is wrong"));
    }
    let password_hash = state.hash_password(req.new_password).await?;
    let user = state
        .accounts()
        .update_user(
            user.id,
            UserUpdate {
                password_hash: Some(password_hash),
                ..Default::default()
            },
        )
        .await?;
    tracing::info!(user = user.id, "password changed; older tokens revoked");
    Ok(ApiJson(token_response(&state, user)))
}
