#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attacks on `reallive-nvr`, each against its own real process on
//! loopback, named for the attack. Playback attacks get their footage
//! written straight into the NVR's store while it is stopped (real H.264
//! in the store's own format), so they need not wait for a camera; the
//! camera attack records a real fake RTSP camera.

use std::path::Path;
use std::time::Duration;

use reallive_hostile::http::Api;
use reallive_hostile::{
    Program, add_camera, add_user, call_as, eventually, grant, login, now_ms, stalled_get,
    write_footage,
};
use reallive_test_support::RtspCameraConfig;
use reallive_test_support::camera_process::FakeCamera;
use serde_json::json;

/// An NVR whose camera `yard` has `seconds` of footage from an hour ago,
/// and users `pat` (playback on it), `vic` (view on it) and `eve` (nothing).
/// Its camera `shed` has 10 s from the same time, for the admin alone.
struct Footage {
    // Before the directory: the NVR stops first.
    nvr: Program,
    dir: tempfile::TempDir,
    camera: i64,
    shed: i64,
    start_ms: i64,
}

impl Footage {
    async fn new(seconds: u32) -> Footage {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut nvr = Program::nvr(None, &data).await;
        let admin = nvr.admin().await;
        let (camera, _) = add_camera(&admin, "yard").await;
        let (shed, _) = add_camera(&admin, "shed").await;
        let pat = add_user(&admin, "pat", "viewer").await;
        grant(&admin, camera, pat, "playback").await;
        let vic = add_user(&admin, "vic", "viewer").await;
        grant(&admin, camera, vic, "view").await;
        add_user(&admin, "eve", "viewer").await;
        let status = nvr.stop().await;
        assert!(status.success(), "{status}: {}", nvr.log());
        // Whole seconds, an hour ago.
        let start_ms = (now_ms() / 1000 - 3600) * 1000;
        write_footage(&data, camera, start_ms, seconds).await;
        write_footage(&data, shed, start_ms, 10).await;
        let nvr = Program::nvr(None, &data).await;
        Footage {
            nvr,
            dir,
            camera,
            shed,
            start_ms,
        }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// `export.mp4` of `[start, end)` (Unix ms, as given).
    fn export(&self, start: i64, end: i64) -> String {
        format!(
            "/api/cameras/{}/export.mp4?start={start}&end={end}",
            self.camera
        )
    }

    async fn user(&self, name: &str) -> Api {
        login(&self.nvr, name).await
    }
}

fn token(api: &Api) -> String {
    api.token.clone().unwrap()
}

/// Finding 2. A playback user asks for exports whose ranges overflow or
/// wrap (`start=i64::MIN` and friends) to get past the 6 h cap and make
/// the NVR build an export of everything: each is a 400 at once, and no
/// export file is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_range_overflow_is_refused() {
    let f = Footage::new(60).await;
    let pat = token(&f.user("pat").await);
    let addr = f.nvr.addr();
    let t0 = f.start_ms;

    // The control: a real range exports.
    let r = call_as(addr, "GET", &f.export(t0 + 10_000, t0 + 20_000), &pat).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert!(r.body.len() > 10_000, "{} bytes", r.body.len());

    const SIX_HOURS_MS: i64 = 6 * 3600 * 1000;
    for (start, end) in [
        (i64::MIN, t0 + 20_000),
        (i64::MIN, i64::MAX),
        (t0, i64::MAX),
        (i64::MAX - 1, i64::MAX),
        (i64::MIN, i64::MIN + 1),
        (i64::MAX / 1_000_000 + 1, i64::MAX / 1_000_000 + 2),
        (t0 + SIX_HOURS_MS, t0 - 1),
        (t0, t0 + SIX_HOURS_MS + 1),
        (t0 + 10_000, t0),
        (t0, t0),
    ] {
        let r = call_as(addr, "GET", &f.export(start, end), &pat).await;
        assert_eq!(r.status, 400, "{start}..{end}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_argument", "{start}..{end}");
    }
    for bad in ["start=x&end=1", "start=1", "start=1e3&end=2e3"] {
        let path = format!("/api/cameras/{}/export.mp4?{bad}", f.camera);
        let r = call_as(addr, "GET", &path, &pat).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    // Streamed exports write nothing to disk.
    let exports = f.data().join("exports");
    let files = std::fs::read_dir(&exports).map_or(0, |d| d.count());
    assert_eq!(files, 0, "export files written in {}", exports.display());
}

/// Finding 2. A playback user starting export after export, each held
/// open by a client that never reads, to pile up work and disk: two run
/// at once, the third is a 429. Another user is not held up, and a
/// finished export frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_concurrent_export_is_refused() {
    // 20 min of footage (about 22 MB): far more than socket buffers and
    // the export's queue hold, so an unread export stays running.
    let f = Footage::new(20 * 60).await;
    let pat = token(&f.user("pat").await);
    let addr = f.nvr.addr();
    let whole = f.export(f.start_ms, f.start_ms + 20 * 60 * 1000);

    let (first, held_1) = stalled_get(addr, &whole, &pat).await;
    assert_eq!(first, 200);
    let (second, _held_2) = stalled_get(addr, &whole, &pat).await;
    assert_eq!(second, 200);
    let third = call_as(addr, "GET", &whole, &pat).await;
    assert_eq!(third.status, 429, "the third export: {}", third.status);
    assert_eq!(third.error_code(), "resource_exhausted");

    // The limit is per user: the admin exports meanwhile.
    let admin = token(&f.nvr.admin().await);
    let (other, _held_3) = stalled_get(addr, &whole, &admin).await;
    assert_eq!(other, 200, "another user was held up");

    // The first client goes away; its export ends and frees its place.
    drop(held_1);
    let _held = eventually(Duration::from_secs(10), "an export place freed", || async {
        let (status, held) = stalled_get(addr, &whole, &pat).await;
        (status == 200).then_some(held)
    })
    .await;
}

/// A user without a `playback` grant exports, lists and plays another's
/// camera by its id: a stranger gets 404 (the camera is invisible to
/// them), a viewer 403, a signed-out client 401. The control: the
/// playback user gets the footage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_cameras_export_is_refused() {
    let f = Footage::new(60).await;
    let addr = f.nvr.addr();
    let cam = f.camera;
    let range = format!("start={}&end={}", f.start_ms, f.start_ms + 30_000);
    let export = f.export(f.start_ms, f.start_ms + 30_000);

    let pat = token(&f.user("pat").await);
    let r = call_as(addr, "GET", &export, &pat).await;
    assert_eq!(r.status, 200, "the playback user: {}", r.text());
    assert!(r.body.len() > 10_000);

    let eve = token(&f.user("eve").await);
    let vic = token(&f.user("vic").await);
    for path in [
        export.clone(),
        format!("/api/cameras/{cam}/vod.m3u8?{range}"),
        format!("/api/recordings?camera={cam}&{range}"),
        format!("/api/cameras/{cam}/files/camera-{cam}/x.mp4"),
    ] {
        let r = call_as(addr, "GET", &path, &eve).await;
        assert_eq!(r.status, 404, "a stranger at {path}: {}", r.text());
        let r = call_as(addr, "GET", &path, &vic).await;
        assert_eq!(r.status, 403, "a viewer at {path}: {}", r.text());
        let r = f.nvr.api().get(&path).await;
        assert_eq!(r.status, 401, "signed out at {path}: {}", r.text());
    }
    // A token in the query is checked the same way.
    let r = f.nvr.api().get(&format!("{export}&token={eve}")).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Nor does a stranger learn of the camera from the NVR's own routes.
    let r = call_as(addr, "GET", &format!("/api/workers/{cam}"), &eve).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

/// The first file `camera`'s VOD playlist names, as `api` gets it: its
/// path under `/api/cameras/{camera}/files/`.
async fn first_file(api: &Api, camera: i64) -> String {
    let r = api.get(&format!("/api/cameras/{camera}/vod.m3u8")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let uri = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .unwrap_or_else(|| panic!("no file in {text}"));
    let prefix = format!("/api/cameras/{camera}/files/");
    uri.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{uri} is not under {prefix}"))
        .to_string()
}

/// A playback user of one camera walks the files route out of its
/// directory (`..`, encoded or not) to another camera's recordings or the
/// NVR's token secret: each is refused, and nothing of them comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playback_users_file_path_cannot_leave_their_camera() {
    let f = Footage::new(10).await;
    let addr = f.nvr.addr();
    let (yard, shed) = (f.camera, f.shed);
    let admin = f.nvr.admin().await;
    let pat = token(&f.user("pat").await);
    let mine = first_file(&admin, yard).await;
    let theirs = first_file(&admin, shed).await;
    let r = call_as(
        addr,
        "GET",
        &format!("/api/cameras/{shed}/files/{theirs}"),
        &token(&admin),
    )
    .await;
    assert_eq!(r.status, 200, "the admin reads shed's file: {}", r.text());
    let secret = std::fs::read(f.data().join("jwt.secret")).unwrap();
    assert!(secret.len() >= 32);
    // The control: pat reads their own camera's file.
    let r = call_as(
        addr,
        "GET",
        &format!("/api/cameras/{yard}/files/{mine}"),
        &pat,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let dir = format!("camera-{yard}");
    let after_dir = theirs.split_once('/').unwrap().1;
    for rel in [
        theirs.clone(),
        format!("{dir}/../{theirs}"),
        format!("{dir}/..%2f{theirs}"),
        format!("{dir}/%2e%2e/{theirs}"),
        format!("{dir}/%2E%2E%2F{theirs}"),
        format!("{dir}/..%5c{theirs}"),
        format!("{dir}/./../camera-{shed}/{after_dir}"),
        format!("{dir}/../../jwt.secret"),
        format!("{dir}/%2e%2e/%2e%2e/jwt.secret"),
        format!("{dir}%2f..%2f..%2fjwt.secret"),
        format!("{dir}/..%2f..%2fjwt.secret"),
        format!("{dir}/%252e%252e/%252e%252e/jwt.secret"),
        format!("{dir}/{}", f.data().join("jwt.secret").display()),
    ] {
        let path = format!("/api/cameras/{yard}/files/{rel}");
        let r = call_as(addr, "GET", &path, &pat).await;
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} ({} bytes)",
            r.status,
            r.body.len()
        );
        assert!(
            !r.body.windows(secret.len()).any(|w| w == secret.as_slice()),
            "{path} answered the token secret"
        );
    }
}

fn gate_config(dir: &Path, camera: &FakeCamera) -> std::path::PathBuf {
    let path = dir.join("nvr.toml");
    std::fs::write(
        &path,
        format!("[[cameras]]\nname = \"gate\"\nurl = \"{}\"\n", camera.url()),
    )
    .unwrap();
    path
}

/// Finding 3. The admin deletes the NVR's camera `gate`; an operator
/// makes a camera named `gate`. It is a new camera: none of the old one's
/// recordings or events, and no hold on the old feed (start, stop,
/// trigger), neither now nor after the NVR restarts and binds its config
/// file's `gate` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_recreated_under_the_same_name_gets_no_old_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let camera = FakeCamera::spawn(
        RtspCameraConfig {
            path: "/gate".into(),
            width: 320,
            height: 180,
            fps: 15,
            keyframe_interval: 15,
            ..RtspCameraConfig::default()
        }
        .into(),
    )
    .await;
    let config = gate_config(dir.path(), &camera);
    let data = dir.path().join("data");
    let mut nvr = Program::nvr(Some(&config), &data).await;
    let old = match nvr.cameras() {
        [(id, name)] if name == "gate" => *id,
        other => panic!("{other:?}\n{}", nvr.log()),
    };
    let admin = nvr.admin().await;
    // The old camera records, and has an event.
    eventually(Duration::from_secs(20), "gate recording", || async {
        let r = admin.get(&format!("/api/recordings?camera={old}")).await;
        let recs = r.json();
        recs.as_array()
            .is_some_and(|a| a.iter().any(|x| x["bytes"].as_u64() > Some(0)))
            .then_some(())
    })
    .await;
    let r = admin
        .post(
            &format!("/api/cameras/{old}/trigger"),
            json!({"seconds": 1}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    eventually(Duration::from_secs(10), "gate's trigger event", || async {
        let r = admin.get(&format!("/api/events?camera={old}")).await;
        r.json()
            .as_array()
            .is_some_and(|a| !a.is_empty())
            .then_some(())
    })
    .await;

    // The admin deletes it; an operator takes the name.
    add_user(&admin, "otto", "operator").await;
    let r = admin.delete(&format!("/api/cameras/{old}")).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let otto = login(&nvr, "otto").await;
    let (new, _) = add_camera(&otto, "gate").await;
    assert_ne!(new, old, "the new 'gate' got the old camera's id");

    let no_hold = |api: Api, when: &'static str| async move {
        for id in [new, old] {
            let r = api.get(&format!("/api/recordings?camera={id}")).await;
            if id == new {
                assert_eq!(r.status, 200, "{when}: {}", r.text());
                assert_eq!(r.json(), json!([]), "{when}: old recordings under {id}");
                let r = api.get(&format!("/api/events?camera={id}")).await;
                assert_eq!(r.json(), json!([]), "{when}: old events under {id}");
            } else {
                assert_eq!(r.status, 404, "{when}: the old camera: {}", r.text());
            }
            for action in ["stop", "start"] {
                let r = api
                    .post(&format!("/api/cameras/{id}/{action}"), json!({}))
                    .await;
                assert_eq!(r.status, 404, "{when}: {action} camera {id}: {}", r.text());
            }
            let r = api
                .post(&format!("/api/cameras/{id}/trigger"), json!({"seconds": 5}))
                .await;
            assert_ne!(r.status, 202, "{when}: triggered camera {id}");
            assert!(
                (400..500).contains(&r.status) || r.status == 503,
                "{when}: trigger camera {id}: {}",
                r.status
            );
        }
        let status = api.get("/api/status").await.json();
        assert_eq!(status, json!([]), "{when}: the operator sees a recorder");
    };
    no_hold(otto.clone(), "at once").await;

    // The NVR restarts and binds its config file's cameras again: the
    // operator's `gate` is not adopted by its name.
    let status = nvr.stop().await;
    assert!(status.success(), "{status}: {}", nvr.log());
    let nvr = Program::nvr(Some(&config), &data).await;
    assert!(
        !nvr.cameras().iter().any(|(id, _)| *id == new),
        "the operator's camera records the old feed: {:?}\n{}",
        nvr.cameras(),
        nvr.log()
    );
    let otto = Api {
        addr: nvr.addr(),
        token: otto.token.clone(),
    };
    no_hold(otto, "after a restart").await;
    drop(camera);
}
