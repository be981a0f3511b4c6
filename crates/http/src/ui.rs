//! The web UI (`web-ui/`, built into `web-ui/dist`): served at `/`. Debug
//! builds read the files from disk at run time; release builds embed them.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

use crate::ApiError;
use crate::json::ApiPath;

#[derive(RustEmbed)]
#[folder = "../../web-ui/dist"]
#[allow_missing = true]
struct Assets;

/// The web UI's own pages (vue-router's history mode): each answers
/// with the index, and the app shows the page. Listed, not a catch-all,
/// so an unknown path stays a 404.
pub const PAGES: &[&str] = &[
    "/",
    "/login",
    "/review",
    "/exports",
    "/timeline",
    "/cameras",
    "/cameras/{id}",
    "/cameras/{id}/timeline",
    "/cameras/{id}/motion",
    "/setup",
    "/users",
    "/account",
    "/system",
    "/logs",
];

/// The pages ([`PAGES`]) and `/assets/*`.
pub fn router() -> Router {
    PAGES
        .iter()
        .fold(Router::new(), |r, page| r.route(page, get(index)))
        .route("/assets/{*path}", get(asset))
}

async fn index() -> Response {
    match Assets::get("index.html") {
        Some(f) => {
            let mut r = Html(f.data.into_owned()).into_response();
            // The page names hashed assets; it must be revalidated.
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (
            StatusCode::NOT_FOUND,
            Html(
                "<!doctype html><title>RealLive</title><p>The web UI is not built into this \
                 binary. Run <code>make ui</code> (or <code>npm ci &amp;&amp; npm run build</code> \
                 in <code>web-ui/</code>) and rebuild. The API is at <code>/api</code>.</p>",
            ),
        )
            .into_response(),
    }
}

async fn asset(ApiPath(path): ApiPath<String>) -> Result<Response, ApiError> {
    // rust-embed serves only the files it knows: a path cannot escape dist/.
    let f = Assets::get(&format!("assets/{path}")).ok_or_else(|| ApiError::not_found("file"))?;
    let mime = f.metadata.mimetype().to_string();
    let mut r = f.data.into_owned().into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Vite puts a content hash in every asset name.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}
