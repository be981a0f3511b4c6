//! `/api/logs`: the process's last log lines, for admins.
//!
//! | method | path | needs |
//! |---|---|---|
//! | GET | `/api/logs?level=&camera=&since=` | admin |
//! | GET | `/api/logs/stream?level=&camera=&since=` (server-sent events) | admin |
//!
//! Both read [`LogRing::global`], which `reallive_core::app::LogArgs::init`
//! feeds in every program. The ring is process-wide because the
//! `tracing` subscriber that feeds it is: one per process, installed
//! before any state exists. A program that never sets up logging that way
//! answers an empty list.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reallive_auth::{Role, User};
use reallive_core::ErrorKind;
use reallive_core::logring::{LogFilter, LogLevel, LogLine, LogRing};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::extract::{AuthUser, PeerIp};
use crate::{ApiError, ApiJson, ApiQuery, ApiState, ClientSlots};

/// Log streams one client may hold open.
pub const MAX_STREAMS_PER_CLIENT: usize = 8;

/// Open log streams per client, process-wide like the ring they follow.
static STREAMS: LazyLock<ClientSlots> = LazyLock::new(ClientSlots::default);

/// The log routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/logs", get(list))
        .route("/api/logs/stream", get(stream))
}

/// A line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// An error.
    Error,
    /// A warning.
    Warn,
    /// Information.
    Info,
    /// Debugging detail (`-v`).
    Debug,
    /// Tracing detail (`-vv`).
    Trace,
}

impl From<LogLevel> for Level {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => Level::Error,
            LogLevel::Warn => Level::Warn,
            LogLevel::Info => Level::Info,
            LogLevel::Debug => Level::Debug,
            LogLevel::Trace => Level::Trace,
        }
    }
}

/// One log line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLineItem {
    /// Its place in the process's log, from 1, without gaps: pass the last
    /// one seen as `since`.
    pub seq: u64,
    /// When it was logged, Unix ms.
    pub at_ms: i64,
    /// Its level.
    pub level: Level,
    /// Where it was logged (a module path).
    pub target: String,
    /// The camera it is about, when it names one.
    pub camera: Option<i64>,
    /// The message and the event's fields as ` k=v`; at most 2 KiB, a
    /// longer one cut with `…`.
    pub message: String,
}

impl From<&LogLine> for LogLineItem {
    fn from(l: &LogLine) -> Self {
        LogLineItem {
            seq: l.seq,
            at_ms: l.at_ms,
            level: l.level.into(),
            target: l.target.clone(),
            camera: l.camera,
            message: l.message.clone(),
        }
    }
}

/// The query of both routes. Unknown parameters (such as `token`) are
/// ignored.
#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    /// The least severe level wanted (default `info`).
    #[serde(default)]
    pub level: Option<String>,
    /// Only lines about this camera.
    #[serde(default)]
    pub camera: Option<i64>,
    /// Only lines after this `seq`.
    #[serde(default)]
    pub since: Option<u64>,
}

impl LogsQuery {
    fn filter(&self) -> Result<LogFilter, ApiError> {
        let min_level = match &self.level {
            None => LogLevel::Info,
            Some(l) => l
                .parse()
                .map_err(|e| ApiError::new(ErrorKind::InvalidArgument, format!("level: {e}")))?,
        };
        Ok(LogFilter {
            min_level,
            camera: self.camera,
        })
    }
}

fn admin(user: &User) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins may read the logs"))
    }
}

/// The kept log lines (the last 2,000) at or above `level`, of `camera`
/// if given, after `since` if given; oldest first.
#[utoipa::path(get, path = "/api/logs", tag = "system", security(("bearer" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(
        ("level" = Option<String>, Query, description = "`error`, `warn`, `info` (default), `debug` or `trace`: that level and above"),
        ("camera" = Option<i64>, Query, description = "only lines about this camera"),
        ("since" = Option<u64>, Query, description = "only lines with a greater `seq`"),
    ),
    responses(
        (status = 200, body = Vec<LogLineItem>),
        (status = 400, body = ErrorBody, description = "an unknown level, or a parameter of the wrong type"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<ApiJson<Vec<LogLineItem>>, ApiError> {
    admin(&user)?;
    let filter = q.filter()?;
    Ok(ApiJson(
        LogRing::global()
            .lines(&filter, q.since)
            .iter()
            .map(|l| LogLineItem::from(l.as_ref()))
            .collect(),
    ))
}

/// Server-sent events, `event: line` with a `/api/logs` item as each new
/// line at or above `level` (of `camera` if given) is logged; with
/// `since`, the kept lines after it come first, so that a client that
/// read the list misses nothing. `event: resync` when this client fell
/// more than 256 lines behind (read the list again). The stream ends when
/// the token stops being valid or its user an admin.
#[utoipa::path(get, path = "/api/logs/stream", tag = "system",
    security(("bearer" = []), ("token" = [])),
    extensions(("x-reallive-role" = json!("admin"))),
    params(
        ("level" = Option<String>, Query, description = "`error`, `warn`, `info` (default), `debug` or `trace`: that level and above"),
        ("camera" = Option<i64>, Query, description = "only lines about this camera"),
        ("since" = Option<u64>, Query, description = "first send the kept lines with a greater `seq`"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody, description = "an unknown level, or a parameter of the wrong type"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "this client has 8 log streams open"),
    ))]
pub async fn stream(
    State(state): State<ApiState>,
    PeerIp(peer): PeerIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LogsQuery>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let token = token(&headers, raw.as_deref())?;
    let signed_in = move || -> Result<(), ApiError> { admin(&state.authenticate(&token)?) };
    signed_in()?;
    let filter = q.filter()?;
    // Without the peer's address (a server not run with connect info), all
    // such clients share one allowance.
    let ip = peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let slot = STREAMS.take(ip, MAX_STREAMS_PER_CLIENT).ok_or_else(|| {
        ApiError::new(
            ErrorKind::ResourceExhausted,
            format!("at most {MAX_STREAMS_PER_CLIENT} log streams per client"),
        )
    })?;
    let ring = LogRing::global();
    // Subscribed before reading the backlog, so no line falls between.
    let mut rx = ring.subscribe();
    let backlog = q.since.map(|s| ring.lines(&filter, Some(s)));
    let (tx, out) = tokio::sync::mpsc::channel::<SseEvent>(16);
    tokio::spawn(async move {
        let _slot = slot;
        let mut last = 0;
        for l in backlog.into_iter().flatten() {
            last = l.seq;
            if tx.send(line_event(&l)).await.is_err() {
                return;
            }
        }
        loop {
            let line: Arc<LogLine> = tokio::select! {
                // The client went away: give the slot back now, not at
                // the next line.
                () = tx.closed() => return,
                r = rx.recv() => match r {
                    Ok(l) => l,
                    Err(RecvError::Lagged(_)) => {
                        if tx.send(SseEvent::default().event("resync").data("{}")).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            if line.seq <= last || !filter.matches(&line) {
                continue;
            }
            // Signed out, or no longer an admin: the stream ends.
            if signed_in().is_err() {
                return;
            }
            if tx.send(line_event(&line)).await.is_err() {
                return;
            }
        }
    });
    let body = futures::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), out))
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn line_event(l: &LogLine) -> SseEvent {
    let item = LogLineItem::from(l);
    SseEvent::default()
        .event("line")
        .json_data(&item)
        .unwrap_or_else(|_| SseEvent::default().event("resync").data("{}"))
}

/// The token from `Authorization: Bearer` or, for `EventSource`, which
/// cannot set headers, `?token=` (the request log never prints queries).
pub(crate) fn token(headers: &HeaderMap, query: Option<&str>) -> Result<String, ApiError> {
    if let Some(v) = headers.get(AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
        return match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => Ok(t.trim().to_owned()),
            _ => Err(ApiError::unauthenticated(
                "expected Authorization: Bearer <token>",
            )),
        };
    }
    // Tokens are base64url and dots: nothing to percent-decode.
    query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::unauthenticated("sign in first"))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use reallive_auth::{Accounts, NewUser, TokenKeys};
    use tower::ServiceExt;

    use super::*;
    use crate::ApiOptions;

    async fn user(accounts: &Accounts, name: &str, role: Role) -> User {
        accounts
            .create_user(NewUser {
                username: name.into(),
                email: format!("{name}@example.org"),
                password_hash: "unused".into(),
                role,
            })
            .await
            .unwrap()
    }

    struct Api {
        app: Router,
        admin: String,
        viewer: String,
        accounts: Accounts,
        _dir: tempfile::TempDir,
    }

    async fn api() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::open(dir.path()).await.unwrap();
        let state = ApiState::new(
            accounts.clone(),
            TokenKeys::new(b"log-routes-secret-log-routes-secret").unwrap(),
            ApiOptions::default(),
        )
        .unwrap();
        let admin = state
            .issue_token(&user(&accounts, "admin", Role::Admin).await)
            .0;
        let viewer = state
            .issue_token(&user(&accounts, "viewer", Role::Viewer).await)
            .0;
        Api {
            app: crate::router(state),
            admin,
            viewer,
            accounts,
            _dir: dir,
        }
    }

    async fn get(app: &Router, uri: &str, token: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        app.clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn json(resp: Response) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn admins_read_the_logs_and_others_are_refused() {
        let api = api().await;
        let ring = LogRing::global();
        let first = ring.push(1, LogLevel::Info, "t", Some(4), "cam four up".into());
        ring.push(2, LogLevel::Debug, "t", Some(4), "cam four detail".into());
        ring.push(3, LogLevel::Error, "t", Some(5), "cam five down".into());

        for uri in ["/api/logs", "/api/logs/stream"] {
            assert_eq!(
                get(&api.app, uri, None).await.status(),
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                get(&api.app, uri, Some(&api.viewer)).await.status(),
                StatusCode::FORBIDDEN
            );
        }
        let resp = get(&api.app, "/api/logs?camera=4", Some(&api.admin)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = json(resp).await;
        let msgs: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        assert_eq!(msgs, ["cam four up"], "INFO and above by default");
        let body =
            json(get(&api.app, "/api/logs?level=debug&camera=4", Some(&api.admin)).await).await;
        assert_eq!(body.as_array().unwrap().len(), 2);
        assert_eq!(body[1]["level"], "DEBUG");
        assert_eq!(body[1]["camera"], 4);
        let body = json(
            get(
                &api.app,
                &format!("/api/logs?level=error&since={first}"),
                Some(&api.admin),
            )
            .await,
        )
        .await;
        assert_eq!(body.as_array().unwrap().len(), 1);
        assert_eq!(body[0]["message"], "cam five down");
        assert_eq!(body[0]["seq"], first + 2);
        let resp = get(&api.app, "/api/logs?level=loud", Some(&api.admin)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        api.accounts.close().await;
    }

    #[tokio::test]
    async fn the_stream_follows_new_lines_and_caps_each_client() {
        let api = api().await;
        let ring = LogRing::global();
        let before = ring.push(1, LogLevel::Warn, "t", Some(8), "backlog".into());
        // By `?token=`, as EventSource sends it.
        let uri = format!(
            "/api/logs/stream?camera=8&since={}&token={}",
            before - 1,
            api.admin
        );
        let resp = get(&api.app, &uri, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        ring.push(2, LogLevel::Info, "t", Some(9), "other camera".into());
        ring.push(3, LogLevel::Info, "t", Some(8), "live line".into());
        let mut text = String::new();
        while !text.contains("live line") {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("a line within 5 s")
                .unwrap()
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
        assert!(text.starts_with("event: line\ndata: {"), "{text}");
        assert!(text.contains("backlog"));
        assert!(!text.contains("other camera"));

        // This one holds a slot; 7 more fill the client's allowance.
        let mut open = vec![body];
        for _ in 1..MAX_STREAMS_PER_CLIENT {
            let resp = get(&api.app, "/api/logs/stream", Some(&api.admin)).await;
            assert_eq!(resp.status(), StatusCode::OK);
            open.push(resp.into_body());
        }
        let resp = get(&api.app, "/api/logs/stream", Some(&api.admin)).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        // A client that goes away gives its slot back.
        drop(open.pop());
        let mut status = StatusCode::TOO_MANY_REQUESTS;
        for _ in 0..50 {
            status = get(&api.app, "/api/logs/stream", Some(&api.admin))
                .await
                .status();
            if status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, StatusCode::OK);
        api.accounts.close().await;
    }
}
