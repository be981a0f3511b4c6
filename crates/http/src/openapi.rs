//! The OpenAPI document, generated from the handlers. `proto/openapi.yaml`
//! is this, committed; a test fails when they differ.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{auth, cameras, system, users};

/// The whole API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "RealLive API",
        description = "Accounts, cameras and grants for reallive-server and reallive-nvr. \
            Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        auth::register, auth::login, auth::me, auth::change_password, auth::logout,
        cameras::list, cameras::create, cameras::get_one, cameras::update, cameras::delete,
        cameras::regenerate_key, cameras::stream_info,
        cameras::list_grants, cameras::add_grant, cameras::remove_grant_by_query,
        cameras::remove_grant,
        users::list, users::create, users::get_one, users::update, users::delete,
        system::health, system::metrics, system::openapi,
    ),
    modifiers(&Bearer),
    tags(
        (name = "auth", description = "Sign in and manage your own account"),
        (name = "cameras", description = "Cameras and their stream keys"),
        (name = "grants", description = "Who may view, play back or control a camera"),
        (name = "users", description = "User management (admins)"),
        (name = "system", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as YAML, as committed in `proto/openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().unwrap_or_default()
}
