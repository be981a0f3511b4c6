//! Exports as jobs (`docs/design/review.md`, "Exports as jobs"): a user
//! asks for an MP4 of a range, the NVR writes it in the background
//! ([`ExportJobs`]), and the file is kept until deleted.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/api/exports` | `{camera_id, start, end, name}` -> 202 `{id}` |
//! | GET | `/api/exports` | the caller's jobs (an admin's: all), newest first |
//! | GET | `/api/exports/{id}` | one job |
//! | GET | `/api/exports/{id}/file?token=` | the MP4, by HTTP Range; 409 until done |
//! | DELETE | `/api/exports/{id}` | stops a running job, deletes its file |
//!
//! Who may: a job belongs to the [`PlaybackAccess::principal`] that asked
//! for it; another user's job is a 404, an admin's view
//! ([`PlaybackAccess::is_admin`]) holds every job. `playback` on the job's
//! camera is checked again on every read, so a revoked grant stops its
//! downloads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reallive_auth::Permission;
use reallive_core::CameraId;
use reallive_store::{ExportJobs, ExportState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::recordings::{Mp4, PlaybackAccess, PlaybackRequest, export_range};
use crate::{ApiError, ApiJson, ApiPath};

/// The exports router's state.
#[derive(Clone)]
pub struct ExportsState {
    jobs: ExportJobs,
    access: Arc<dyn PlaybackAccess>,
}

impl std::fmt::Debug for ExportsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportsState")
            .field("dir", &self.jobs.dir())
            .finish_non_exhaustive()
    }
}

impl ExportsState {
    /// Jobs of `jobs`, asking `access` who may see what.
    pub fn new(jobs: ExportJobs, access: Arc<dyn PlaybackAccess>) -> Self {
        ExportsState { jobs, access }
    }
}

/// The export routes. Serve them with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: ExportsState) -> Router {
    Router::new()
        .route("/api/exports", get(list_exports).post(create_export))
        .route("/api/exports/{id}", get(get_export).delete(delete_export))
        .route("/api/exports/{id}/file", get(export_file))
        .with_state(state)
}

/// What to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExport {
    /// The camera.
    pub camera_id: i64,
    /// Unix ms.
    pub start: i64,
    /// Unix ms; after `start`, at most 6 h later.
    pub end: i64,
    /// A name for people, 1 to 100 characters; the download's file name
    /// comes from it.
    pub name: String,
}

/// The job that was started.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportCreated {
    /// The job.
    pub id: i64,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportJobState {
    /// Waiting for a free slot.
    Queued,
    /// Being written.
    Running,
    /// Whole: `/file` serves it.
    Done,
    /// Stopped; `error` says why.
    Failed,
}

impl From<ExportState> for ExportJobState {
    fn from(s: ExportState) -> Self {
        match s {
            ExportState::Queued => ExportJobState::Queued,
            ExportState::Running => ExportJobState::Running,
            ExportState::Done => ExportJobState::Done,
            ExportState::Failed => ExportJobState::Failed,
        }
    }
}

/// One export job.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJob {
    /// The job.
    pub id: i64,
    /// Its camera.
    pub camera_id: i64,
    /// Its name.
    pub name: String,
    /// The range asked for, Unix ms.
    pub start: i64,
    /// Unix ms.
    pub end: i64,
    /// Where it is.
    #[schema(inline)]
    pub state: ExportJobState,
    /// 0 to 1; 1 once done.
    pub progress: f64,
    /// Bytes written; the file's size once done.
    pub bytes: u64,
    /// Why it failed; `null` unless `failed`.
    #[schema(required = true)]
    pub error: Option<String>,
    /// When it was asked for, Unix ms.
    pub created_at: i64,
}

fn item(job: &reallive_store::ExportJob, camera_id: i64) -> ExportJob {
    let ms = |ns: i64| ns.div_euclid(1_000_000);
    ExportJob {
        id: job.id,
        camera_id,
        name: job.name.clone(),
        start: ms(job.range.start_utc_ns),
        end: ms(job.range.end_utc_ns),
        state: job.state.into(),
        progress: job.progress,
        bytes: job.bytes,
        error: job.error.clone(),
        created_at: ms(job.created_at_utc_ns),
    }
}

/// A request, as the access policy reads it.
struct Asker<'a> {
    s: &'a ExportsState,
    request: PlaybackRequest<'a>,
}

impl<'a> Asker<'a> {
    fn new(
        s: &'a ExportsState,
        headers: &'a HeaderMap,
        q: &'a HashMap<String, String>,
        peer: SocketAddr,
    ) -> Self {
        Asker {
            s,
            request: PlaybackRequest {
                headers,
                query_token: q.get("token").map(String::as_str),
                peer,
            },
        }
    }

    /// The store's name of `camera` if the caller holds `playback` on it.
    fn playback(&self, camera: i64) -> Result<String, ApiError> {
        self.s
            .access
            .authorize(&self.request, camera, Permission::Playback)
    }

    /// Job `id` if it is the caller's (or the caller is an admin) and the
    /// caller still holds `playback` on its camera; with its camera id.
    async fn job(&self, id: i64) -> Result<(reallive_store::ExportJob, i64), ApiError> {
        self.s.access.authenticate(&self.request)?;
        let not_found = || ApiError::not_found("export");
        let job = self.s.jobs.get(id).await?.ok_or_else(not_found)?;
        if !self.s.access.is_admin(&self.request)
            && job.owner != self.s.access.principal(&self.request)
        {
            return Err(not_found());
        }
        let camera = CameraId::from_store_key(&job.camera)
            .ok_or_else(not_found)?
            .0;
        self.playback(camera)?;
        Ok((job, camera))
    }
}

/// Starts exporting `start..end` (at most 6 h) of a camera as one MP4,
/// kept until deleted. At most 2 run at once per user, within the exports'
/// share of the disk. Needs: `playback` on the camera.
#[utoipa::path(post, path = "/api/exports", tag = "exports",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    request_body = NewExport,
    responses(
        (status = 202, body = ExportCreated, description = "started: poll `GET /api/exports/{id}`"),
        (status = 400, body = ErrorBody, description = "not a positive range of at most 6 h, or a bad name"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such camera, or nothing recorded in the range"),
        (status = 429, body = ErrorBody, description = "two of the user's exports are running already"),
        (status = 507, body = ErrorBody, description = "the export does not fit in the exports' share of the disk; the message says how much it needs"),
    ))]
async fn create_export(
    State(s): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ApiJson(body): ApiJson<NewExport>,
) -> Result<Response, ApiError> {
    let asker = Asker::new(&s, &headers, &q, peer);
    let camera = asker.playback(body.camera_id)?;
    let range = export_range(body.start, body.end)?;
    let owner = s.access.principal(&asker.request);
    let job = s.jobs.create(&owner, &camera, range, &body.name).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ExportCreated { id: job.id }),
    )
        .into_response())
}

/// The caller's export jobs (an admin's: everyone's), newest first; only
/// those of cameras the caller may still play back. Needs: a signed-in
/// user; the list holds only jobs with `playback` on their camera.
#[utoipa::path(get, path = "/api/exports", tag = "exports",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("user"))),
    responses(
        (status = 200, body = Vec<ExportJob>),
        (status = 401, body = ErrorBody),
    ))]
async fn list_exports(
    State(s): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let asker = Asker::new(&s, &headers, &q, peer);
    s.access.authenticate(&asker.request)?;
    let owner = (!s.access.is_admin(&asker.request)).then(|| s.access.principal(&asker.request));
    let jobs = s.jobs.list(owner.as_deref()).await?;
    let list: Vec<ExportJob> = jobs
        .iter()
        .filter_map(|j| {
            let camera = CameraId::from_store_key(&j.camera)?.0;
            asker.playback(camera).ok()?;
            Some(item(j, camera))
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

/// One export job. Needs: `playback` on its camera, and to be its owner
/// or an admin.
#[utoipa::path(get, path = "/api/exports/{id}", tag = "exports",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(("id" = i64, Path, description = "export id")),
    responses(
        (status = 200, body = ExportJob),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such export of this user's"),
    ))]
async fn get_export(
    State(s): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (job, camera) = Asker::new(&s, &headers, &q, peer).job(id).await?;
    Ok(axum::Json(item(&job, camera)).into_response())
}

/// The finished export's MP4, as an attachment, by HTTP Range. Needs:
/// `playback` on its camera, and to be its owner or an admin.
#[utoipa::path(get, path = "/api/exports/{id}/file", tag = "exports",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(
        ("id" = i64, Path, description = "export id"),
        ("Range" = Option<String>, Header, description = "one `bytes=` range"),
    ),
    responses(
        (status = 200, content_type = "video/mp4", body = inline(Mp4),
            headers(("Content-Disposition" = String))),
        (status = 206, content_type = "video/mp4", body = inline(Mp4), description = "the range asked for",
            headers(("Content-Range" = String), ("Content-Disposition" = String))),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such export of this user's"),
        (status = 409, body = ErrorBody, description = "not done yet (or failed)"),
        (status = 416, description = "the range is beyond the file", headers(("Content-Range" = String))),
    ))]
async fn export_file(
    State(s): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (job, _) = Asker::new(&s, &headers, &q, peer).job(id).await?;
    // Only a `done` job has a file; a `.part` is never served.
    let Some(file) = ExportJobs::file_name(&job) else {
        return Err(ApiError::with_status(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "the export is {}; its file is served once it is done",
                job.state.as_str()
            ),
        ));
    };
    let mut r = crate::files::serve(s.jobs.dir(), &file, &headers).await;
    if r.status().is_success()
        && let Ok(v) = HeaderValue::from_str(&content_disposition(&job.name, id))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Deletes an export job: stops it if it runs, and deletes its file.
/// Needs: `playback` on its camera, and to be its owner or an admin.
#[utoipa::path(delete, path = "/api/exports/{id}", tag = "exports",
    security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("camera:playback"))),
    params(("id" = i64, Path, description = "export id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such export of this user's"),
    ))]
async fn delete_export(
    State(s): State<ExportsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    Asker::new(&s, &headers, &q, peer).job(id).await?;
    s.jobs.delete(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `attachment` with the job's name as the file name: an ASCII fallback
/// (anything else becomes `_`, so no quote, slash or control character
/// gets through) and the exact name percent-encoded (RFC 6266).
fn content_disposition(name: &str, id: i64) -> String {
    let stem = name.trim().trim_end_matches(".mp4");
    let ascii: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ascii = ascii.trim_matches(['.', ' ']);
    let ascii = if ascii.is_empty() {
        format!("export-{id}")
    } else {
        ascii.to_string()
    };
    let mut encoded = String::new();
    for b in format!("{stem}.mp4").bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}.mp4\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn download_names_are_safe() {
        for (name, want) in [
            (
                "front door",
                "attachment; filename=\"front door.mp4\"; filename*=UTF-8''front%20door.mp4",
            ),
            (
                "a\"b/../c.mp4",
                "attachment; filename=\"a_b_.._c.mp4\"; filename*=UTF-8''a%22b%2F..%2Fc.mp4",
            ),
            (
                "été",
                "attachment; filename=\"_t_.mp4\"; filename*=UTF-8''%C3%A9t%C3%A9.mp4",
            ),
            (
                "..",
                "attachment; filename=\"export-7.mp4\"; filename*=UTF-8''...mp4",
            ),
        ] {
            assert_eq!(content_disposition(name, 7), want, "{name}");
        }
    }
}
