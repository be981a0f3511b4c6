//! Serving files from a root directory with HTTP Range support.
//!
//! Recordings are served by byte range (HLS `EXT-X-BYTERANGE`, video
//! seeking, resumable exports). A request path comes from a client, so it
//! is checked twice: lexically (no `..`, no absolute paths, no backslashes
//! or NULs) and after resolving symlinks (the real path must stay under
//! the real root).

use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use reallive_core::ErrorKind;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::ApiError;

/// Resolves `rel` under `root`, refusing anything that leaves it.
pub async fn resolve(root: &Path, rel: &str) -> Result<PathBuf, ApiError> {
    let refuse = || {
        ApiError::new(
            ErrorKind::PermissionDenied,
            "path outside the served directory",
        )
    };
    if rel.contains('\0') || rel.contains('\\') {
        return Err(refuse());
    }
    let rel_path = Path::new(rel.trim_start_matches('/'));
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(refuse());
    }
    let not_found = || ApiError::new(ErrorKind::NotFound, "no such file");
    let real_root = tokio::fs::canonicalize(root)
        .await
        .map_err(|_| not_found())?;
    let real = tokio::fs::canonicalize(root.join(rel_path))
        .await
        .map_err(|_| not_found())?;
    if !real.starts_with(&real_root) {
        return Err(refuse());
    }
    Ok(real)
}

/// A parsed `Range: bytes=…` request against a file of `len` bytes.
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    // Several ranges: serve the whole file instead (RFC 9110 allows it).
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.is_empty(), b.is_empty()) {
        (true, true) => return Some(Err(())),
        // Suffix: the last n bytes.
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse::<u64>().ok()?.min(len.saturating_sub(1))
            };
            if start >= len || end < start {
                return Some(Err(()));
            }
            (start, end)
        }
    };
    Some(Ok(range))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("mp4" | "m4s") => "video/mp4",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Serves `rel` under `root`, honouring a single-range `Range` header:
/// 200 for the whole file, 206 for a range, 416 for an unsatisfiable one,
/// 403 for a path that leaves `root`, 404 for a missing file.
pub async fn serve(root: &Path, rel: &str, headers: &HeaderMap) -> Response {
    match serve_inner(root, rel, None, headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The chunks a shifted recording streams in, and how many may wait for
/// the client: memory per request stays under 1 MiB (with the one `moof`
/// [`reallive_store::mp4::ShiftedRange`] holds), whatever the file size.
const SHIFT_CHUNK_BYTES: usize = 64 << 10;
const SHIFT_CHUNKS_QUEUED: usize = 4;

/// Like [`serve`], for recordings in HLS playlists: with `shift_90k`
/// (the playlist's `?t=`), every whole `moof` in the served bytes has it
/// added to its `tfdt`, so the files of a playlist share one timeline while
/// each file on disk starts at zero. Sizes and offsets do not change.
pub async fn serve_recording(
    root: &Path,
    rel: &str,
    shift_90k: Option<u64>,
    headers: &HeaderMap,
) -> Response {
    match serve_inner(root, rel, shift_90k.filter(|t| *t > 0), headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve_inner(
    root: &Path,
    rel: &str,
    shift_90k: Option<u64>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let path = resolve(root, rel).await?;
    let not_found = || ApiError::new(ErrorKind::NotFound, "no such file");
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let meta = file.metadata().await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let len = meta.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(Err(())) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let body = match shift_90k {
        Some(shift) => {
            let file = file.into_std().await;
            shifted_body(reallive_store::mp4::ShiftedRange::new(
                file,
                start,
                start + count,
                shift,
            ))
        }
        None => {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| ApiError::new(ErrorKind::Internal, format!("seek: {e}")))?;
            Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                file.take(count),
                SHIFT_CHUNK_BYTES,
            ))
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

/// Streams `range` from a blocking thread, a few chunks ahead of the
/// client at most; a client that goes away stops the reading.
fn shifted_body(mut range: reallive_store::mp4::ShiftedRange<std::fs::File>) -> Body {
    use std::io::Read as _;
    let (tx, rx) =
        tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(SHIFT_CHUNKS_QUEUED);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = vec![0u8; SHIFT_CHUNK_BYTES];
            match range.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.blocking_send(Ok(chunk.into())).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        let cases = [
            ("bytes=0-9", Some(Ok((0, 9)))),
            ("bytes=90-", Some(Ok((90, 99)))),
            ("bytes=-10", Some(Ok((90, 99)))),
            ("bytes=-500", Some(Ok((0, 99)))),
            ("bytes=50-5000", Some(Ok((50, 99)))),
            ("bytes=100-", Some(Err(()))),
            ("bytes=9-3", Some(Err(()))),
            ("bytes=-0", Some(Err(()))),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=x-1", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_range(v, 100), want, "{v}");
        }
    }
}
