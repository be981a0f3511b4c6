//! Exports as jobs over loopback HTTP, against real accounts and a real
//! store: a user starts one, polls it, downloads it by range and deletes
//! it; other users, users without `playback` and a revoked grant are
//! refused; a third job at once is a 429.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reallive_auth::{Accounts, NewUser, Permission, Role, TokenKeys, User};
use reallive_http::exports::ExportsState;
use reallive_http::recordings::ApiAccess;
use reallive_http::{ApiOptions, ApiState, ServeLimits};
use reallive_store::segmenter::SegmenterConfig;
use reallive_store::{ExportJobs, ExportJobsConfig, Store, StoreConfig};
use reallive_test_support::ffprobe;
use reallive_test_support::http::{HttpResponse, request};
use tokio_util::sync::CancellationToken;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_763_700_000 * SEC;
const T0_MS: i64 = T0 / 1_000_000;

struct Nvr {
    addr: SocketAddr,
    api: ApiState,
    accounts: Accounts,
    store: Store,
    jobs: ExportJobs,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Nvr {
    async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&User>,
        extra: &[(&str, &str)],
        body: &str,
    ) -> HttpResponse {
        let auth = user.map(|u| format!("Bearer {}", self.api.issue_token(u).0));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        request(self.addr, method, path, &headers, body.as_bytes())
            .await
            .unwrap()
    }

    async fn post(&self, user: &User, camera: i64, start_s: i64, end_s: i64) -> HttpResponse {
        let body = serde_json::json!({
            "camera_id": camera,
            "start": T0_MS + start_s * 1000,
            "end": T0_MS + end_s * 1000,
            "name": "front door",
        });
        self.call("POST", "/api/exports", Some(user), &[], &body.to_string())
            .await
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
        self.store.close().await;
        self.accounts.close().await;
    }
}

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

/// An NVR's exports over `dir`, with 10 s of camera `camera` recorded;
/// with `disk_total_bytes`, on a disk that small.
async fn start(dir: &Path, max_running: usize, disk_total_bytes: Option<u64>) -> (Nvr, i64) {
    let accounts = Accounts::open(dir).await.unwrap();
    let api = ApiState::new(
        accounts.clone(),
        TokenKeys::new(b"export-jobs-secret-export-jobs-secret").unwrap(),
        ApiOptions::default(),
    )
    .unwrap();
    let admin = user(&accounts, "admin", Role::Admin).await;
    let (camera, _) = accounts
        .create_camera(admin.id, "front", None)
        .await
        .unwrap();
    let cfg = StoreConfig {
        segmenter: SegmenterConfig {
            fragment_90k: 30_000,
            file_90k: 4 * 90_000,
            ..SegmenterConfig::default()
        },
        disk_override: disk_total_bytes.map(|total_bytes| reallive_store::retention::DiskSpace {
            free_bytes: total_bytes,
            total_bytes,
        }),
        ..StoreConfig::new(dir.join("data"))
    };
    let (store, _) = Store::open(cfg).await.unwrap();
    let mut session = store
        .session(&reallive_core::CameraId(camera.id).store_key())
        .unwrap();
    for f in reallive_test_support::clip::ball_frames(300) {
        let at = T0 + f.pts_90k * SEC / 90_000;
        session.write_at(f, at).await.unwrap();
    }
    session.finish().await.unwrap();
    let jobs = ExportJobs::open(
        store.clone(),
        ExportJobsConfig {
            max_running,
            ..ExportJobsConfig::new(dir.join("exports"))
        },
    )
    .await
    .unwrap();
    jobs.recover().await.unwrap();
    let app = reallive_http::exports::router(ExportsState::new(
        jobs.clone(),
        Arc::new(ApiAccess::new(api.clone())),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move {
        reallive_http::serve(listener, app, ServeLimits::default(), s.cancelled_owned())
            .await
            .unwrap();
    });
    let nvr = Nvr {
        addr,
        api,
        accounts,
        store,
        jobs,
        stop,
        task,
    };
    (nvr, camera.id)
}

fn files(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_job_runs_downloads_by_range_and_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (nvr, camera) = start(dir.path(), reallive_store::MAX_EXPORTS_RUNNING, None).await;
    let acc = &nvr.accounts;
    let admin = acc.snapshot().user_by_name("admin").unwrap().0.clone();
    let alice = user(acc, "alice", Role::Viewer).await;
    let carol = user(acc, "carol", Role::Viewer).await;
    let bob = user(acc, "bob", Role::Viewer).await;
    acc.grant(camera, alice.id, Permission::Playback)
        .await
        .unwrap();
    acc.grant(camera, carol.id, Permission::Playback)
        .await
        .unwrap();
    acc.grant(camera, bob.id, Permission::View).await.unwrap();

    // Refused before anything starts.
    let r = nvr.post(&bob, camera, 2, 8).await;
    assert_eq!(r.status, 403, "view is not playback: {}", r.text());
    let r = nvr
        .call(
            "POST",
            "/api/exports",
            None,
            &[],
            r#"{"camera_id":1,"start":0,"end":1,"name":"x"}"#,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(nvr.post(&alice, camera + 100, 2, 8).await.status, 404);
    assert_eq!(nvr.post(&alice, camera, 2, 2).await.status, 400);
    assert_eq!(nvr.post(&alice, camera, 0, 6 * 3600 + 1).await.status, 400);
    let r = nvr.post(&alice, camera, 3600, 3700).await;
    assert_eq!(r.status, 404, "nothing recorded there: {}", r.text());
    assert_eq!(
        nvr.call("GET", "/api/exports", None, &[], "").await.status,
        401
    );

    // Started: 202 {id}; polled until done.
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = nvr.post(&alice, camera, 2, 8).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_i64().unwrap();
    let path = format!("/api/exports/{id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let r = nvr.call("GET", &path, Some(&alice), &[], "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        if j["state"] == "done" || j["state"] == "failed" {
            break j;
        }
        assert!(
            ["queued", "running"].contains(&j["state"].as_str().unwrap()),
            "{j}"
        );
        assert!(Instant::now() < deadline, "never done: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["camera_id"], camera);
    assert_eq!(job["name"], "front door");
    assert_eq!(job["start"], T0_MS + 2000);
    assert_eq!(job["end"], T0_MS + 8000);
    assert_eq!(job["progress"], 1.0);
    assert!(job["error"].is_null());
    let created = job["created_at"].as_i64().unwrap();
    assert!(
        (before_ms - 1000..=before_ms + 60_000).contains(&created),
        "{job}"
    );
    let bytes = job["bytes"].as_u64().unwrap();

    // Listed for its owner and an admin only.
    let ids = |r: HttpResponse| -> Vec<i64> {
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(
        ids(nvr.call("GET", "/api/exports", Some(&alice), &[], "").await),
        [id]
    );
    assert_eq!(
        ids(nvr.call("GET", "/api/exports", Some(&admin), &[], "").await),
        [id]
    );
    assert!(ids(nvr.call("GET", "/api/exports", Some(&carol), &[], "").await).is_empty());

    // Downloaded whole (token in the query, as a link would) and by range.
    let token = nvr.api.issue_token(&alice).0;
    let whole = nvr
        .call("GET", &format!("{path}/file?token={token}"), None, &[], "")
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.body.len() as u64, bytes);
    let cd = whole.header("content-disposition").unwrap();
    assert!(
        cd.starts_with("attachment; filename=\"front door.mp4\""),
        "{cd}"
    );
    let mp4 = dir.path().join("downloaded.mp4");
    std::fs::write(&mp4, &whole.body).unwrap();
    let probe = ffprobe::probe(&mp4);
    assert!((180..=200).contains(&probe.frames), "{probe:?}");
    let d = probe.duration_secs.unwrap();
    assert!((5.9..=6.7).contains(&d), "{d}");
    let tail = nvr
        .call(
            "GET",
            &format!("{path}/file"),
            Some(&alice),
            &[("Range", "bytes=1000-")],
            "",
        )
        .await;
    assert_eq!(tail.status, 206, "{}", tail.text());
    assert_eq!(tail.body, whole.body[1000..]);
    assert_eq!(
        tail.header("content-range"),
        Some(format!("bytes 1000-{}/{}", bytes - 1, bytes).as_str())
    );

    // Someone else's: as if it did not exist.
    for (method, p) in [
        ("GET", path.clone()),
        ("GET", format!("{path}/file")),
        ("DELETE", path.clone()),
    ] {
        let r = nvr.call(method, &p, Some(&carol), &[], "").await;
        assert_eq!(r.status, 404, "{method} {p}: {}", r.text());
        let r = nvr.call(method, &p, Some(&bob), &[], "").await;
        assert_eq!(r.status, 404, "{method} {p}: {}", r.text());
    }
    assert_eq!(
        nvr.call("GET", &path, Some(&admin), &[], "").await.status,
        200
    );

    // A revoked grant stops downloads of one's own export, and lists it no more.
    acc.revoke(camera, alice.id).await.unwrap();
    let r = nvr
        .call("GET", &format!("{path}/file"), Some(&alice), &[], "")
        .await;
    assert!(matches!(r.status, 403 | 404), "{}: {}", r.status, r.text());
    assert!(ids(nvr.call("GET", "/api/exports", Some(&alice), &[], "").await).is_empty());
    acc.grant(camera, alice.id, Permission::Playback)
        .await
        .unwrap();

    // Deleted: the file goes, then the job is a 404.
    assert_eq!(files(nvr.jobs.dir()), [format!("{id}.mp4")]);
    let r = nvr.call("DELETE", &path, Some(&alice), &[], "").await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(files(nvr.jobs.dir()).is_empty());
    assert_eq!(
        nvr.call("GET", &path, Some(&alice), &[], "").await.status,
        404
    );
    assert_eq!(
        nvr.call("DELETE", &path, Some(&alice), &[], "")
            .await
            .status,
        404
    );
    nvr.stop().await;
}

/// With every running slot taken, jobs wait `queued`: a user's third is a
/// 429 while another user is not held up; a queued job's file is a 409;
/// deleting a waiting job frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_job_at_once_is_refused_and_an_unfinished_one_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let (nvr, camera) = start(dir.path(), 0, None).await;
    let acc = &nvr.accounts;
    let alice = user(acc, "alice", Role::Viewer).await;
    let carol = user(acc, "carol", Role::Viewer).await;
    for u in [&alice, &carol] {
        acc.grant(camera, u.id, Permission::Playback).await.unwrap();
    }
    let a = nvr.post(&alice, camera, 0, 4).await;
    assert_eq!(a.status, 202, "{}", a.text());
    assert_eq!(nvr.post(&alice, camera, 4, 8).await.status, 202);
    let r = nvr.post(&alice, camera, 8, 10).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2"),
        "{}",
        r.text()
    );
    assert_eq!(
        nvr.post(&carol, camera, 0, 4).await.status,
        202,
        "not held up by alice"
    );

    let id = a.json()["id"].as_i64().unwrap();
    let j = nvr
        .call("GET", &format!("/api/exports/{id}"), Some(&alice), &[], "")
        .await
        .json();
    assert_eq!(j["state"], "queued", "{j}");
    let r = nvr
        .call(
            "GET",
            &format!("/api/exports/{id}/file"),
            Some(&alice),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    let r = nvr
        .call(
            "DELETE",
            &format!("/api/exports/{id}"),
            Some(&alice),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        nvr.post(&alice, camera, 8, 10).await.status,
        202,
        "its place is free"
    );
    nvr.stop().await;
}

/// On a disk whose 5 % cannot hold the export: 507, saying what it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_over_the_budget_is_a_507() {
    let dir = tempfile::tempdir().unwrap();
    let (nvr, camera) = start(
        dir.path(),
        reallive_store::MAX_EXPORTS_RUNNING,
        Some(1_000_000),
    )
    .await;
    let alice = user(&nvr.accounts, "alice", Role::Viewer).await;
    nvr.accounts
        .grant(camera, alice.id, Permission::Playback)
        .await
        .unwrap();
    let r = nvr.post(&alice, camera, 0, 10).await;
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.error_code(), "insufficient_storage");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("needs about") && message.contains("of the 1 MB"),
        "{message}"
    );
    assert!(files(nvr.jobs.dir()).is_empty());
    nvr.stop().await;
}
