//! The OpenAPI document, generated from the handlers. `proto/openapi.yaml`
//! is this, committed; a test fails when they differ.
//!
//! One document for both programs: `reallive-server` serves the
//! operations tagged `auth`, `cameras`, `grants`, `users`, `system` and
//! `live`; `reallive-nvr` serves those and the ones tagged `recordings`
//! and `nvr`. Each operation names the role it needs in
//! `x-reallive-role` (see [`ApiDoc`]); `tests/api-fuzz/run` checks both
//! programs against this document with schemathesis.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{auth, cameras, logs, system, users};
use crate::{exports, nvr, recordings, review};

/// The whole API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "RealLive API",
        description = "Accounts, cameras and grants, live view, playback and the NVR's \
            recorders, for reallive-server and reallive-nvr.\n\n\
            Errors are `{\"error\": {\"code\", \"message\"}}`. Every operation with a JSON \
            body may also answer 400 (malformed JSON), 413 (over 64 KiB), 415 (not JSON) \
            and 422 (JSON of the wrong shape); every one with a path parameter 400 for one \
            of the wrong type.\n\n\
            Who serves what: reallive-server serves the operations tagged `auth`, \
            `cameras`, `grants`, `users`, `system` and `live`; reallive-nvr serves those \
            and the ones tagged `recordings`, `review`, `exports` and `nvr` (reallive-puller's local playback \
            listener serves the `recordings` ones alone). The WebSocket signaling \
            endpoint, `GET /ws/signaling`, is not described here: it is a protocol of its \
            own (`proto/signaling.md`, `proto/signaling.schema.json`).\n\n\
            Who may do what: each operation's `x-reallive-role` is `public` (no sign-in), \
            `user` (any signed-in user; lists hold only what they may see), \
            `camera:view`, `camera:playback` or `camera:control` (that permission on the \
            camera, by grant, ownership or the admin role; a camera the caller may not \
            see is a 404), `camera:owner` (its owner or an admin), `operator` (admins \
            and operators), `admin`, `admin-or-loopback` (admins, and anyone from \
            loopback) or `stream-key` (the camera's stream key as the Bearer token).",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        auth::register, auth::login, auth::me, auth::change_password, auth::logout,
        auth::logout_all,
        cameras::list, cameras::create, cameras::get_one, cameras::update, cameras::delete,
        cameras::regenerate_key, cameras::stream_info,
        cameras::list_grants, cameras::add_grant, cameras::remove_grant_by_query,
        cameras::remove_grant,
        users::list, users::create, users::get_one, users::update, users::delete,
        system::health, system::metrics, system::openapi, system::system,
        logs::list, logs::stream,
        recordings::list, recordings::events, recordings::vod, recordings::live,
        recordings::file, recordings::export,
        exports::create_export, exports::list_exports, exports::get_export,
        exports::export_file, exports::delete_export,
        review::timeline, review::thumbnail, review::event_thumbnail, review::reviewed,
        review::stream, review::locks, review::add_lock, review::remove_lock,
        nvr::status, nvr::worker, nvr::start, nvr::stop, nvr::trigger,
        nvr::get_motion, nvr::put_motion, nvr::storage, nvr::transcoding,
        nvr::sources::list, nvr::sources::get_one, nvr::sources::add, nvr::sources::update,
        nvr::sources::remove, nvr::sources::clear_overrides, nvr::sources::probe,
        nvr::live::snapshot, nvr::live::motion_live,
        live::whip, live::whip_delete, live::whep, live::whep_delete,
    ),
    modifiers(&Security, &ExtractorErrors, &UniqueIds),
    tags(
        (name = "auth", description = "Sign in and manage your own account"),
        (name = "cameras", description = "Cameras and their stream keys"),
        (name = "grants", description = "Who may view, play back or control a camera"),
        (name = "users", description = "User management (admins)"),
        (name = "system", description = "Health, metrics, logs, this document"),
        (name = "live", description = "WHIP and WHEP (both programs)"),
        (name = "recordings", description = "Playback and export (reallive-nvr)"),
        (name = "exports", description = "Exports as jobs: an MP4 of a range, written in the background and kept until deleted (reallive-nvr)"),
        (name = "review", description = "Timeline, thumbnails, reviewed events, locks and the live event stream (reallive-nvr)"),
        (name = "nvr", description = "Recorders, motion and storage (reallive-nvr only)"),
    )
)]
pub struct ApiDoc;

/// The live routes, which `reallive-node` serves (`live.rs`) and this
/// crate cannot name: their documentation lives here, beside the API they
/// belong to. `openapi_is_served_and_matches_proto` (reallive-node) checks
/// that every path here is routed.
mod live {
    use crate::error::ErrorBody;

    /// Publishes a camera with WHIP: an SDP offer in, the answer out.
    /// Needs: the camera's stream key as the Bearer token.
    #[utoipa::path(post, path = "/whip/{camera}", tag = "live", security(("stream_key" = [])),
        extensions(("x-reallive-role" = json!("stream-key"))),
        params(("camera" = i64, Path, description = "camera id")),
        request_body(content = String, content_type = "application/sdp", description = "the SDP offer"),
        responses(
            (status = 201, content_type = "application/sdp", body = String, description = "the SDP answer",
                headers(("Location" = String, description = "the session: DELETE it to stop"))),
            (status = 400, body = ErrorBody, description = "an SDP the relay refuses"),
            (status = 401, body = ErrorBody, description = "no or a wrong stream key"),
            (status = 404, body = ErrorBody),
            (status = 415, body = ErrorBody, description = "not `application/sdp`"),
        ))]
    #[allow(dead_code)]
    fn whip() {}

    /// Ends a WHIP session. Needs: the camera's stream key as the Bearer
    /// token.
    #[utoipa::path(delete, path = "/whip/{camera}/sessions/{id}", tag = "live",
        security(("stream_key" = [])),
        extensions(("x-reallive-role" = json!("stream-key"))),
        params(("camera" = i64, Path, description = "camera id"), ("id" = String, Path, description = "the session, from `Location`")),
        responses(
            (status = 204, description = "ended"),
            (status = 401, body = ErrorBody, description = "no or a wrong stream key"),
            (status = 404, body = ErrorBody, description = "no such camera or session"),
        ))]
    #[allow(dead_code)]
    fn whip_delete() {}

    /// Watches a camera with WHEP: an SDP offer in, the answer out. Needs:
    /// `view` on the camera.
    #[utoipa::path(post, path = "/whep/{camera}", tag = "live",
        security(("bearer" = []), ("token" = [])),
        extensions(("x-reallive-role" = json!("camera:view"))),
        params(("camera" = i64, Path, description = "camera id")),
        request_body(content = String, content_type = "application/sdp", description = "the SDP offer"),
        responses(
            (status = 201, content_type = "application/sdp", body = String, description = "the SDP answer",
                headers(("Location" = String, description = "the session: DELETE it to stop"),
                    ("X-Reallive-Transcoded" = String, description = "present (`h264`) when the viewer gets the camera's live transcode: its offer lacked the camera's codec, or the camera sends B-frames"))),
            (status = 400, body = ErrorBody, description = "an SDP the relay refuses"),
            (status = 401, body = ErrorBody),
            (status = 404, body = ErrorBody),
            (status = 415, body = ErrorBody, description = "not `application/sdp`"),
            (status = 429, body = ErrorBody, description = "the user holds as many live sessions as allowed"),
            (status = 503, body = ErrorBody, description = "the camera has no publisher now: try again when it is online; or (code `transcode_limit`, with `Retry-After`) the viewer needs the camera transcoded and the server already runs as many live transcodes as it may"),
        ))]
    #[allow(dead_code)]
    fn whep() {}

    /// Ends a WHEP session. Needs: the viewer who started it.
    #[utoipa::path(delete, path = "/whep/{camera}/sessions/{id}", tag = "live",
        security(("bearer" = []), ("token" = [])),
        extensions(("x-reallive-role" = json!("user"))),
        params(("camera" = i64, Path, description = "camera id"), ("id" = String, Path, description = "the session, from `Location`")),
        responses(
            (status = 204, description = "ended"),
            (status = 401, body = ErrorBody),
            (status = 404, body = ErrorBody, description = "no such session of this user's"),
        ))]
    #[allow(dead_code)]
    fn whep_delete() {}
}

/// The security schemes: user tokens as a Bearer header or, on media
/// routes, a `token` query parameter; stream keys for WHIP.
struct Security;

impl Modify for Security {
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
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "A user token, for players that cannot set headers (media routes only)",
            ))),
        );
        components.add_security_scheme(
            "stream_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The camera's stream key"))
                    .build(),
            ),
        );
    }
}

/// What the shared extractors answer, on every operation that uses them:
/// `ApiJson` (400, 413, 415, 422), `ApiPath` (400) and the token
/// extractors (401). Added where a handler's own list lacks them, so each
/// handler lists only what it decides itself.
struct ExtractorErrors;

impl Modify for ExtractorErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for_each_operation(openapi, add_implied);
    }
}

fn add_implied(op: &mut Operation) {
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let path_params = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path))
    });
    // Sign-in required: a security requirement, and no empty one (which
    // makes it optional, as on `/api/health`).
    let signed_in = op.security.as_ref().is_some_and(|reqs| {
        !reqs.is_empty() && !reqs.iter().any(|r| *r == SecurityRequirement::default())
    });
    let mut add = |status: &str, description: &str| {
        if !op.responses.responses.contains_key(status) {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            op.responses
                .responses
                .insert(status.to_string(), response.into());
        }
    };
    if json_body {
        add("400", "malformed JSON");
        add("413", "a body over 64 KiB");
        add("415", "not `Content-Type: application/json`");
        add("422", "JSON of the wrong shape");
    }
    if path_params {
        add("400", "a path parameter of the wrong type");
    }
    if signed_in {
        add("401", "no valid sign-in");
    }
}

/// Operation ids are the handlers' names, and several modules have a
/// `list` or a `delete`: those get their tag in front (`users_list`), so
/// each id is unique, as OpenAPI requires.
struct UniqueIds;

impl Modify for UniqueIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for_each_operation(openapi, |op| {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        });
        for_each_operation(openapi, |op| {
            let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
            if let (Some(id), Some(tag)) = (&op.operation_id, tag)
                && seen.get(id).is_some_and(|n| *n > 1)
            {
                op.operation_id = Some(format!("{tag}_{id}"));
            }
        });
    }
}

fn for_each_operation(openapi: &mut utoipa::openapi::OpenApi, mut f: impl FnMut(&mut Operation)) {
    for item in openapi.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            f(op);
        }
    }
}

/// The document as YAML, as committed in `proto/openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().unwrap_or_default()
}
