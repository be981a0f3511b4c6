#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The API against a real server on 127.0.0.1:0 with a real SQLite file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reallive_auth::{Accounts, Claims, PasswordParams, RateLimit, Role, Secret, TokenKeys};
use reallive_node::NodeOptions;
use reallive_test_support::http::{Api, request};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const ADMIN_PW: &str = "admin-password-1";
const SECRET: &str = "test-secret-test-secret-test-secret!";

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
    first_admin_password: Option<Secret>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .unwrap();
    }
    fn api(&self) -> Api {
        Api::new(self.addr)
    }
}

fn options(dir: &Path) -> NodeOptions {
    let mut o = NodeOptions::new(dir, "127.0.0.1:0".parse().unwrap());
    o.admin_password = Some(Secret::new(ADMIN_PW));
    o.jwt_secret = Some(Secret::new(SECRET));
    o.api.password_params = PasswordParams::cheap();
    // These tests register users; a real server starts with it off.
    o.api.allow_registration = true;
    o
}

async fn start(opts: NodeOptions) -> Running {
    let server = reallive_node::start(opts).await.unwrap();
    let addr = server.local_addr().unwrap();
    let first_admin_password = server.first_admin_password().cloned();
    let stop = CancellationToken::new();
    let s = stop.clone();
    let task = tokio::spawn(async move { server.run(s).await.unwrap() });
    Running {
        addr,
        stop,
        task,
        first_admin_password,
    }
}

/// Registers `name` (password `password-123`) and signs in to read the
/// account back: registering itself never says whether it made one.
async fn register(api: &Api, name: &str) -> serde_json::Value {
    let r = api
        .post(
            "/api/auth/register",
            json!({"username": name, "email": format!("{name}@example.com"), "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let me = api
        .login(name, "password-123")
        .await
        .get("/api/auth/me")
        .await;
    me.json()["user"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_cameras_grants_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let anon = srv.api();
    assert!(srv.first_admin_password.is_none(), "the password was given");
    let admin = anon.login("admin", ADMIN_PW).await;

    // Register: a viewer with no grants.
    let viewer_user = register(&anon, "vera").await;
    assert_eq!(viewer_user["role"], "viewer");
    assert!(viewer_user.get("password_hash").is_none());
    // A taken username or email gets exactly the free name's answer, and
    // changes nothing.
    let fresh = anon
        .post(
            "/api/auth/register",
            json!({"username": "fresh", "email": "fresh@example.com", "password": "password-123"}),
        )
        .await;
    for (name, email) in [("VERA", "x@example.com"), ("vera2", "Vera@Example.com")] {
        let dup = anon
            .post(
                "/api/auth/register",
                json!({"username": name, "email": email, "password": "other-password-9"}),
            )
            .await;
        assert_eq!(
            (dup.status, dup.text()),
            (fresh.status, fresh.text()),
            "{name}"
        );
        let r = anon
            .post(
                "/api/auth/login",
                json!({"username": name, "password": "other-password-9"}),
            )
            .await;
        assert_eq!(r.status, 401, "{name} was not created or changed");
    }
    let viewer = anon.login("vera", "password-123").await;
    let me = viewer.get("/api/auth/me").await;
    assert_eq!(me.json()["user"]["username"], "vera");

    // An admin makes an operator.
    let r = admin
        .post(
            "/api/users",
            json!({"username": "otto", "email": "otto@example.com", "password": "password-123", "role": "operator"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let otto_id = r.json()["id"].as_i64().unwrap();
    let op = anon.login("otto", "password-123").await;

    // Viewers may not create cameras; operators may.
    let r = viewer.post("/api/cameras", json!({"name": "porch"})).await;
    assert_eq!(r.status, 403);
    let r = op
        .post(
            "/api/cameras",
            json!({"name": "porch", "resolution": "1280x720"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    let cam = body["camera"]["id"].as_i64().unwrap();
    let key1 = body["stream_key"].as_str().unwrap().to_string();
    assert!(key1.starts_with("rlk_") && key1.len() > 40);
    assert_eq!(body["camera"]["status"], "offline");
    assert_eq!(body["camera"]["owner_id"], otto_id);
    let r = op.post("/api/cameras", json!({"name": "porch"})).await;
    assert_eq!(r.status, 409, "names are unique");

    // The key is shown only at creation.
    let r = op.get(&format!("/api/cameras/{cam}")).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(&key1));
    assert_eq!(r.json()["permission"], "control");

    // A camera the viewer may not see is indistinguishable from none.
    let hidden = viewer.get(&format!("/api/cameras/{cam}")).await;
    let missing = viewer.get("/api/cameras/999999").await;
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(hidden.body, missing.body);
    assert_eq!(viewer.get("/api/cameras").await.json(), json!([]));
    for path in [
        format!("/api/cameras/{cam}/stream"),
        format!("/api/cameras/{cam}/grants"),
    ] {
        assert_eq!(viewer.get(&path).await.status, 404, "{path}");
    }

    // Grant view by username.
    let r = op
        .post(
            &format!("/api/cameras/{cam}/grants"),
            json!({"username": "vera", "permission": "view"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let list = viewer.get("/api/cameras").await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "porch");
    assert_eq!(list[0]["permission"], "view");
    let info = viewer.get(&format!("/api/cameras/{cam}/stream")).await;
    assert_eq!(info.status, 200);
    let info = info.json();
    assert!(
        info["signaling_url"]
            .as_str()
            .unwrap()
            .ends_with("/ws/signaling")
    );
    assert!(
        info["whep_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/whep/{cam}"))
    );
    // Seeing is not managing.
    let r = viewer
        .put(&format!("/api/cameras/{cam}"), json!({"name": "mine"}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        viewer.delete(&format!("/api/cameras/{cam}")).await.status,
        403
    );
    assert_eq!(
        viewer
            .post(&format!("/api/cameras/{cam}/stream-key"), json!({}))
            .await
            .status,
        403
    );
    assert_eq!(
        viewer
            .get(&format!("/api/cameras/{cam}/grants"))
            .await
            .status,
        403
    );

    // Upgrade to playback: one grant per user, replaced.
    let vera_id = viewer_user["id"].as_i64().unwrap();
    let r = op
        .post(
            &format!("/api/cameras/{cam}/grants"),
            json!({"user_id": vera_id, "permission": "playback"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let grants = op.get(&format!("/api/cameras/{cam}/grants")).await.json();
    assert_eq!(
        grants,
        json!([{"user_id": vera_id, "username": "vera", "permission": "playback"}])
    );
    let r = op
        .post(
            &format!("/api/cameras/{cam}/grants"),
            json!({"username": "nobody-here", "permission": "view"}),
        )
        .await;
    assert_eq!(r.status, 404);

    // Edit.
    let r = op
        .put(
            &format!("/api/cameras/{cam}"),
            json!({"name": "front porch", "resolution": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "front porch");
    assert_eq!(r.json()["resolution"], serde_json::Value::Null);

    // Regenerate: a new key, and only the new one matches.
    let r = op
        .post(&format!("/api/cameras/{cam}/stream-key"), json!({}))
        .await;
    assert_eq!(r.status, 200);
    let key2 = r.json()["stream_key"].as_str().unwrap().to_string();
    assert_ne!(key1, key2);
    {
        let acc = Accounts::open(dir.path()).await.unwrap();
        let snap = acc.snapshot();
        assert!(
            !snap.stream_key_matches(cam, &key1),
            "the old key still works"
        );
        assert!(snap.stream_key_matches(cam, &key2));
        drop(snap);
        acc.close().await;
    }

    // Admins see and manage every camera.
    assert_eq!(
        admin
            .get("/api/cameras")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Revoke, both spellings.
    let r = op
        .delete(&format!("/api/cameras/{cam}/grants?user_id={vera_id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(viewer.get("/api/cameras").await.json(), json!([]));
    op.post(
        &format!("/api/cameras/{cam}/grants"),
        json!({"user_id": vera_id, "permission": "control"}),
    )
    .await;
    let r = op
        .delete(&format!("/api/cameras/{cam}/grants/{vera_id}"))
        .await;
    assert_eq!(r.status, 204);
    let r = op
        .delete(&format!("/api/cameras/{cam}/grants/{vera_id}"))
        .await;
    assert_eq!(r.status, 404);

    // Users: admin only, and the last admin stays.
    assert_eq!(viewer.get("/api/users").await.status, 403);
    assert_eq!(op.get("/api/users").await.status, 403);
    assert_eq!(
        admin
            .get("/api/users")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        4,
        "admin, vera, fresh and otto"
    );
    let r = admin
        .put(
            &format!("/api/users/{vera_id}"),
            json!({"role": "operator"}),
        )
        .await;
    assert_eq!(r.json()["role"], "operator");
    let admin_id = admin.get("/api/auth/me").await.json()["user"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        admin.delete(&format!("/api/users/{admin_id}")).await.status,
        409
    );
    let r = admin
        .put(&format!("/api/users/{admin_id}"), json!({"role": "viewer"}))
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        admin.delete(&format!("/api/users/{otto_id}")).await.status,
        409,
        "owns a camera"
    );

    // Delete the camera, then its owner.
    assert_eq!(op.delete(&format!("/api/cameras/{cam}")).await.status, 204);
    assert_eq!(op.get(&format!("/api/cameras/{cam}")).await.status, 404);
    assert_eq!(
        admin.delete(&format!("/api/users/{otto_id}")).await.status,
        204
    );
    assert_eq!(
        op.get("/api/auth/me").await.status,
        401,
        "a deleted user's token dies"
    );
    assert_eq!(
        admin.get(&format!("/api/users/{otto_id}")).await.status,
        404
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.api.login_per_ip = RateLimit {
        burst: 4,
        period: Duration::from_secs(600),
    };
    let srv = start(opts).await;
    let anon = srv.api();
    let admin = anon.login("admin", ADMIN_PW).await; // 1 of 4 from this IP

    // 400: rules broken, malformed JSON, bad ids.
    let cases = [
        json!({"username": "ab", "email": "a@example.com", "password": "password-123"}),
        json!({"username": "has space", "email": "a@example.com", "password": "password-123"}),
        json!({"username": "abc", "email": "not-an-email", "password": "password-123"}),
        json!({"username": "abc", "email": "a@example.com", "password": "short"}),
    ];
    for c in &cases {
        let r = anon.post("/api/auth/register", c.clone()).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "invalid_argument"),
            "{c}: {}",
            r.text()
        );
    }
    for name in ["", &"x".repeat(65), "a\u{1}b"] {
        let r = admin.post("/api/cameras", json!({"name": name})).await;
        assert_eq!(r.status, 400, "{name:?}");
    }
    let r = request(
        srv.addr,
        "POST",
        "/api/cameras",
        &[
            (
                "Authorization",
                &format!("Bearer {}", admin.token.clone().unwrap()),
            ),
            ("Content-Type", "application/json"),
        ],
        b"{\"name\": ",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(admin.get("/api/cameras/abc").await.status, 400);
    assert_eq!(
        admin.get("/api/cameras/1/grants?user_id=x").await.status,
        404
    );

    // 401: no token, junk, tampered, foreign, expired, wrong password.
    assert_eq!(anon.get("/api/cameras").await.status, 401);
    assert_eq!(
        anon.with_token("junk").get("/api/cameras").await.status,
        401
    );
    let good = admin.token.clone().unwrap();
    let mut tampered = good.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        anon.with_token(&tampered).get("/api/auth/me").await.status,
        401
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // The admin's token version (random per account) from a real token.
    let ver = TokenKeys::new(SECRET.as_bytes())
        .unwrap()
        .verify(&good, now)
        .unwrap()
        .ver;
    let forge = |secret: &[u8], iat: i64, exp: i64| {
        TokenKeys::new(secret).unwrap().issue(&Claims {
            sub: 1,
            role: Role::Admin,
            ver,
            iat,
            exp,
            jti: None,
        })
    };
    let foreign = forge(b"another-secret-another-secret-another", now, now + 3600);
    assert_eq!(
        anon.with_token(&foreign).get("/api/auth/me").await.status,
        401
    );
    let expired = forge(SECRET.as_bytes(), now - 7200, now - 3600);
    let r = anon.with_token(&expired).get("/api/auth/me").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "unauthenticated")
    );
    let fresh = forge(SECRET.as_bytes(), now, now + 3600);
    assert_eq!(
        anon.with_token(&fresh).get("/api/auth/me").await.status,
        200,
        "control: same secret"
    );
    let r = request(
        srv.addr,
        "GET",
        "/api/auth/me",
        &[("Authorization", "Basic YWRtaW46eA==")],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "admin", "password": "wrong-password"}),
        )
        .await; // 2 of 4
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (401, "unauthenticated")
    );
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "nobody", "password": "wrong-password"}),
        )
        .await; // 3 of 4
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["message"], "invalid username or password");

    // 413: over 64 KiB.
    let big = json!({"name": "x".repeat(70 * 1024)});
    let r = admin.post("/api/cameras", big).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "payload_too_large"),
        "{}",
        r.text()
    );

    // 415: not JSON.
    let r = request(
        srv.addr,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "text/plain")],
        br#"{"username":"admin","password":"x"}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 415);
    assert!(r.json()["error"]["message"].is_string());

    // 422: unknown fields, wrong types, missing fields.
    for body in [
        json!({"name": "cam", "owner_id": 5}),
        json!({"name": 5}),
        json!({"resolution": "1x1"}),
    ] {
        let r = admin.post("/api/cameras", body.clone()).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (422, "unprocessable"),
            "{body}"
        );
    }
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "admin", "password": "x", "remember": true}),
        )
        .await;
    assert_eq!(r.status, 422);

    // 404 for routes, 405 for methods, both JSON.
    let r = anon.get("/api/nope").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = anon.call("PATCH", "/api/cameras", None).await;
    assert_eq!(r.status, 405);

    // 429: the fourth attempt from this IP is the last; the fifth waits.
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "admin", "password": "wrong-password"}),
        )
        .await; // 4 of 4
    assert_eq!(r.status, 401);
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "admin", "password": ADMIN_PW}),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "resource_exhausted"),
        "{}",
        r.text()
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    // Other requests are not limited.
    assert_eq!(admin.get("/api/auth/me").await.status, 200);
    srv.stop().await;

    // Per username, from fresh IP allowance: 5 then 429.
    let dir2 = tempfile::tempdir().unwrap();
    let mut opts = options(dir2.path());
    opts.api.allow_registration = reallive_http::ApiOptions::default().allow_registration;
    assert!(
        !opts.api.allow_registration,
        "registration is off by default"
    );
    let srv = start(opts).await;
    let anon = srv.api();
    for i in 0..5 {
        let r = anon
            .post(
                "/api/auth/login",
                json!({"username": "Admin", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "admin", "password": ADMIN_PW}),
        )
        .await;
    assert_eq!(r.status, 429, "the username is limited case-insensitively");
    assert!(r.header("retry-after").is_some());

    // 403: registration closed.
    let r = anon
        .post(
            "/api/auth/register",
            json!({"username": "newbie", "email": "n@example.com", "password": "password-123"}),
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (403, "permission_denied")
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_round_trip_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let admin = srv.api().login("admin", ADMIN_PW).await;
    let names = [
        "'; DROP TABLE users; --",
        "<script>alert(1)</script>",
        "Robert\"); DELETE FROM cameras; --",
        "../../etc/passwd",
        "%00%0d%0a",
        "カメラ 🎥",
        "\\'\\\"",
    ];
    let mut ids = Vec::new();
    for n in names {
        let r = admin
            .post(
                "/api/cameras",
                json!({"name": n, "resolution": "<b>1x1</b>"}),
            )
            .await;
        assert_eq!(r.status, 201, "{n}: {}", r.text());
        assert_eq!(r.json()["camera"]["name"], n);
        ids.push(r.json()["camera"]["id"].as_i64().unwrap());
    }
    for (id, n) in ids.iter().zip(names) {
        let r = admin.get(&format!("/api/cameras/{id}")).await;
        assert_eq!(r.json()["name"], n);
        assert_eq!(r.json()["resolution"], "<b>1x1</b>");
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
    // The tables are all still there.
    assert_eq!(
        admin
            .get("/api/cameras")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        names.len()
    );
    assert_eq!(
        admin
            .get("/api/users")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = srv
        .api()
        .post(
            "/api/auth/login",
            json!({"username": "admin' OR '1'='1", "password": "' OR '1'='1"}),
        )
        .await;
    assert_eq!(r.status, 401);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_users_cameras_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // No secret and no admin password: both generated on first start.
    let mut opts = options(dir.path());
    opts.jwt_secret = None;
    opts.admin_password = None;
    let srv = start(opts.clone()).await;
    let pw = srv
        .first_admin_password
        .clone()
        .expect("a generated password");
    assert!(pw.expose().len() >= 16);
    let admin = srv.api().login("admin", pw.expose()).await;
    let cam = admin
        .post("/api/cameras", json!({"name": "garage"}))
        .await
        .json();
    register(&srv.api(), "petra").await;
    let secret_file = dir.path().join("jwt.secret");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let db_mode = std::fs::metadata(dir.path().join("accounts.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(db_mode & 0o077, 0, "the accounts database is private");
    srv.stop().await;

    let srv = start(opts).await;
    assert!(srv.first_admin_password.is_none(), "no second admin");
    let same = srv.api().with_token(admin.token.as_deref().unwrap());
    let me = same.get("/api/auth/me").await;
    assert_eq!(
        me.status,
        200,
        "a token from before the restart: {}",
        me.text()
    );
    let list = same.get("/api/cameras").await.json();
    assert_eq!(list[0]["id"], cam["camera"]["id"]);
    srv.api().login("petra", "password-123").await;
    srv.api().login("admin", pw.expose()).await;
    assert_eq!(
        same.get("/api/users")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_revokes_older_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    // This test signs in as one user more often than the default allows.
    opts.api.login_per_user.burst = 20;
    let srv = start(opts).await;
    let anon = srv.api();
    register(&anon, "carol").await;
    let a = anon.login("carol", "password-123").await;
    let b = anon.login("carol", "password-123").await;
    let r = a
        .post(
            "/api/auth/password",
            json!({"current_password": "wrong-password", "new_password": "password-456"}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = a
        .post(
            "/api/auth/password",
            json!({"current_password": "password-123", "new_password": "short"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = a
        .post(
            "/api/auth/password",
            json!({"current_password": "password-123", "new_password": "password-456"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = anon.with_token(r.json()["token"].as_str().unwrap());
    assert_eq!(a.get("/api/auth/me").await.status, 401);
    assert_eq!(b.get("/api/auth/me").await.status, 401);
    assert_eq!(c.get("/api/auth/me").await.status, 200);
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "carol", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status, 401);
    anon.login("carol", "password-456").await;

    // An admin resetting a password revokes too.
    let admin = anon.login("admin", ADMIN_PW).await;
    let id = c.get("/api/auth/me").await.json()["user"]["id"]
        .as_i64()
        .unwrap();
    let r = admin
        .put(
            &format!("/api/users/{id}"),
            json!({"password": "password-789"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/api/auth/me").await.status, 401);
    srv.stop().await;
}

/// `logout` ends the token presented and no other; `logout-all` ends
/// every token of the user. Any signed-in user may do both, for themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_this_token_and_logout_all_every_token() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let anon = srv.api();
    register(&anon, "vera").await;
    let a = anon.login("vera", "password-123").await;
    let b = anon.login("vera", "password-123").await;
    assert_ne!(a.token, b.token);
    assert_eq!(a.get("/api/auth/me").await.json()["user"]["role"], "viewer");

    // Strangers and bad tokens are refused.
    for path in ["/api/auth/logout", "/api/auth/logout-all"] {
        assert_eq!(anon.post(path, json!({})).await.status, 401, "{path}");
        let forged = anon.with_token("not-a-token");
        assert_eq!(forged.post(path, json!({})).await.status, 401, "{path}");
    }

    // Signing out of A: A is refused everywhere, B still works.
    assert_eq!(a.post("/api/auth/logout", json!({})).await.status, 204);
    assert_eq!(a.get("/api/auth/me").await.status, 401);
    assert_eq!(a.post("/api/auth/logout", json!({})).await.status, 401);
    assert_eq!(a.post("/api/auth/logout-all", json!({})).await.status, 401);
    assert_eq!(b.get("/api/auth/me").await.status, 200);
    assert_eq!(b.get("/api/cameras").await.status, 200);

    // Everywhere: B and a new C both stop.
    let c = anon.login("vera", "password-123").await;
    assert_eq!(c.get("/api/auth/me").await.status, 200);
    assert_eq!(b.post("/api/auth/logout-all", json!({})).await.status, 204);
    assert_eq!(b.get("/api/auth/me").await.status, 401);
    assert_eq!(c.get("/api/auth/me").await.status, 401);
    // Signing in again works, and another user was never touched.
    let d = anon.login("vera", "password-123").await;
    assert_eq!(d.get("/api/auth/me").await.status, 200);
    let admin = anon.login("admin", ADMIN_PW).await;
    assert_eq!(admin.get("/api/auth/me").await.status, 200);
    srv.stop().await;
}

/// `/api/system`: admins only; the server, with no recorders, has no
/// cameras; the figures are the process's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_is_for_admins_and_has_the_process_figures() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let anon = srv.api();
    register(&anon, "sam").await;
    let viewer = anon.login("sam", "password-123").await;
    assert_eq!(anon.get("/api/system").await.status, 401);
    assert_eq!(anon.with_token("junk").get("/api/system").await.status, 401);
    let r = viewer.get("/api/system").await;
    assert_eq!(r.status, 403, "{}", r.text());
    let admin = anon.login("admin", ADMIN_PW).await;
    let admin_id = admin.get("/api/auth/me").await.json()["user"]["id"]
        .as_i64()
        .unwrap();
    // An operator is refused too.
    let sam_id = viewer.get("/api/auth/me").await.json()["user"]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(admin_id, sam_id);
    let r = admin
        .put(&format!("/api/users/{sam_id}"), json!({"role": "operator"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(viewer.get("/api/system").await.status, 403);

    let r = admin.get("/api/system").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cameras",
            "cpu_percent",
            "db_bytes",
            "pid",
            "rss_bytes",
            "threads",
            "uptime_secs",
            "version"
        ]
    );
    assert_eq!(v["cameras"], json!([]));
    assert_eq!(v["pid"].as_u64(), Some(u64::from(std::process::id())));
    assert_eq!(v["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));
    assert!(v["cpu_percent"].as_f64().unwrap() >= 0.0);
    assert!(v["uptime_secs"].as_u64().is_some());
    if cfg!(target_os = "linux") {
        assert!(v["rss_bytes"].as_u64().unwrap() > 1 << 20, "{v}");
        assert!(v["threads"].as_u64().unwrap() >= 2, "{v}");
    }
    // At least the accounts database itself.
    let on_disk = std::fs::metadata(dir.path().join("accounts.sqlite"))
        .unwrap()
        .len();
    assert!(v["db_bytes"].as_u64().unwrap() >= on_disk, "{v}");
    srv.stop().await;
}

/// Hostile: a deleted user's token must not come back as whoever is
/// created next (SQLite used to hand the deleted id out again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_token_never_answers_as_the_next_user() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let anon = srv.api();
    let admin = anon.login("admin", ADMIN_PW).await;
    let new_user = |name: &str, role: &str| json!({"username": name, "email": format!("{name}@example.com"), "password": "password-123", "role": role});
    let r = admin
        .post("/api/users", new_user("mallory", "viewer"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m_id = r.json()["id"].as_i64().unwrap();
    let mallory = anon.login("mallory", "password-123").await;
    assert_eq!(mallory.get("/api/auth/me").await.status, 200);
    assert_eq!(
        admin.delete(&format!("/api/users/{m_id}")).await.status,
        204
    );
    let r = admin.post("/api/users", new_user("root2", "admin")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_ne!(r.json()["id"].as_i64().unwrap(), m_id, "the id came back");
    let me = mallory.get("/api/auth/me").await;
    assert_eq!(me.status, 401, "the old token answers as: {}", me.text());
    assert_eq!(mallory.get("/api/users").await.status, 401);
    srv.stop().await;
}

/// Hostile: DNS rebinding. A page on evil.example that resolves its name
/// to 127.0.0.1 reaches a loopback server with `Host: evil.example`; the
/// server answers only its own names, `localhost` and IP literals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_server_refuses_a_rebound_host() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.host_names = vec!["nvr.example.org".into()];
    let srv = start(opts).await;
    let port = srv.addr.port();
    for (host, status) in [
        (format!("evil.example:{port}"), 421),
        ("evil.example".to_string(), 421),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        (format!("nvr.example.org:{port}"), 200),
    ] {
        let r = request(srv.addr, "GET", "/api/health", &[("Host", &host)], b"")
            .await
            .unwrap();
        assert_eq!(r.status, status, "Host: {host}: {}", r.text());
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let anon = srv.api();
    // A stranger learns only ok/degraded; a signed-in user the details.
    let r = anon.get("/api/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ok"}));
    let r = anon.with_token("not-a-token").get("/api/health").await;
    assert_eq!(
        r.json(),
        json!({"status": "ok"}),
        "a bad token is a stranger"
    );
    let admin = anon.login("admin", ADMIN_PW).await;
    let h = admin.get("/api/health").await.json();
    let mut keys: Vec<_> = h.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["db", "status", "uptime_secs", "version"]);
    assert_eq!(
        (h["status"].as_str(), h["db"].as_str()),
        (Some("ok"), Some("ok"))
    );

    // Loopback reads metrics without a token.
    anon.post(
        "/api/auth/login",
        json!({"username": "admin", "password": "wrong-password"}),
    )
    .await;
    let r = anon.get("/metrics").await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains("reallive_logins_total{result=\"failed\"} 1"),
        "{text}"
    );
    assert!(text.contains("reallive_users 1"));
    assert!(text.contains("reallive_http_requests_total{class=\"2xx\"}"));
    assert!(!text.contains(ADMIN_PW));
    srv.stop().await;
}

/// From another address, or forwarded by a proxy, /metrics wants an admin
/// token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_elsewhere_need_an_admin() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use axum::http::Request;
    use tower::ServiceExt as _;

    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let admin = srv.api().login("admin", ADMIN_PW).await;
    register(&srv.api(), "remote").await;
    let viewer = srv.api().login("remote", "password-123").await;
    srv.stop().await;

    let accounts = Accounts::open(dir.path()).await.unwrap();
    let state = reallive_http::ApiState::new(
        accounts.clone(),
        TokenKeys::new(SECRET.as_bytes()).unwrap(),
        reallive_http::ApiOptions::default(),
    )
    .unwrap();
    let app = reallive_http::router(state);
    let from: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let call = |token: Option<String>| {
        let mut req = Request::get("/metrics");
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut req = req.body(Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(from));
        app.clone().oneshot(req)
    };
    assert_eq!(call(None).await.unwrap().status(), 401);
    assert_eq!(call(viewer.token.clone()).await.unwrap().status(), 403);
    assert_eq!(call(admin.token.clone()).await.unwrap().status(), 200);

    // A proxy on loopback that the server was not told to trust: what it
    // forwards is from outside, so metrics are not open to it.
    let proxied = |header: &'static str| {
        let mut req = Request::get("/metrics")
            .header(header, "for=198.51.100.9")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50000))));
        app.clone().oneshot(req)
    };
    assert_eq!(proxied("X-Forwarded-For").await.unwrap().status(), 401);
    assert_eq!(proxied("Forwarded").await.unwrap().status(), 401);
    accounts.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_served_and_matches_proto() {
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/openapi.yaml");
    let generated = reallive_http::openapi::yaml();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&committed_path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "proto/openapi.yaml is out of date: run `UPDATE_OPENAPI=1 cargo nextest run -p reallive-node openapi` and commit it"
    );

    let dir = tempfile::tempdir().unwrap();
    // With the relay, as the programs run: the live routes are served too.
    let mut opts = options(dir.path());
    opts.relay = Some(reallive_relay::RelayConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        public_ips: Vec::new(),
        ice_tcp: Some("127.0.0.1:0".parse().unwrap()),
        gop_cache_bytes: reallive_relay::DEFAULT_GOP_CACHE_BYTES,
        max_transcodes: 1,
    });
    let srv = start(opts).await;
    let doc = srv.api().get("/api/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // Every route is documented: the server's, the NVR's and the live ones
    // (`/ws/signaling` is a protocol of its own, in proto/signaling.md).
    for path in [
        "/api/auth/register",
        "/api/auth/login",
        "/api/auth/me",
        "/api/auth/password",
        "/api/auth/logout",
        "/api/auth/logout-all",
        "/api/system",
        "/api/cameras",
        "/api/cameras/{id}",
        "/api/cameras/{id}/stream-key",
        "/api/cameras/{id}/stream",
        "/api/cameras/{id}/grants",
        "/api/cameras/{id}/grants/{user_id}",
        "/api/users",
        "/api/users/{id}",
        "/api/health",
        "/metrics",
        "/api/openapi.json",
        "/whip/{camera}",
        "/whip/{camera}/sessions/{id}",
        "/whep/{camera}",
        "/whep/{camera}/sessions/{id}",
        // reallive-nvr
        "/api/recordings",
        "/api/events",
        "/api/cameras/{id}/vod.m3u8",
        "/api/cameras/{id}/live.m3u8",
        "/api/cameras/{id}/files/{path}",
        "/api/cameras/{id}/export.mp4",
        "/api/status",
        "/api/workers/{id}",
        "/api/cameras/{id}/start",
        "/api/cameras/{id}/stop",
        "/api/cameras/{id}/trigger",
        "/api/cameras/{id}/motion",
        "/api/storage",
        "/api/transcoding/status",
        "/api/nvr/cameras",
        "/api/nvr/cameras/{id}",
        "/api/cameras/{id}/timeline",
        "/api/cameras/{id}/thumbnail.jpg",
        "/api/events/{id}/thumbnail.jpg",
        "/api/events/reviewed",
        "/api/events/stream",
        "/api/cameras/{id}/locks",
        "/api/cameras/{id}/locks/{lock_id}",
        "/api/exports",
        "/api/exports/{id}",
        "/api/exports/{id}/file",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    // ...and every operation the server serves (all but the NVR's) is
    // routed.
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let tags: Vec<&str> = op["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            if tags
                .iter()
                .any(|t| ["nvr", "recordings", "review", "exports"].contains(t))
            {
                continue;
            }
            let url = path
                .replace("{id}", "1")
                .replace("{camera}", "1")
                .replace("{user_id}", "1");
            let r = request(srv.addr, &method.to_uppercase(), &url, &[], b"")
                .await
                .unwrap();
            let routed =
                r.status != 405 && !(r.status == 404 && r.text().contains("route not found"));
            assert!(
                routed,
                "{method} {path} is documented but not served: {}",
                r.status
            );
            checked += 1;
        }
    }
    assert!(checked >= 28, "{checked} operations");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_origins_are_configured() {
    let preflight = |addr| async move {
        request(
            addr,
            "OPTIONS",
            "/api/cameras",
            &[
                ("Origin", "http://ui.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            b"",
        )
        .await
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let srv = start(options(dir.path())).await;
    let r = preflight(srv.addr).await;
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers
    );
    srv.stop().await;

    let mut opts = options(dir.path());
    opts.api.cors_origins = vec!["http://ui.example".into()];
    let srv = start(opts).await;
    let r = preflight(srv.addr).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://ui.example")
    );
    let r = request(
        srv.addr,
        "OPTIONS",
        "/api/cameras",
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
        b"",
    )
    .await
    .unwrap();
    assert!(r.header("access-control-allow-origin").is_none());
    srv.stop().await;

    // `*` (tokens are bearer headers, not cookies) is any origin, not a
    // panic at start.
    let mut opts = options(dir.path());
    opts.api.cors_origins = vec!["*".into()];
    let srv = start(opts).await;
    let r = preflight(srv.addr).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    srv.stop().await;
}

/// With `[server.turn]`, every stream answer carries a TURN credential of
/// its own: `<expiry>:<user>-<session>`, signed with the shared secret
/// (coturn's `use-auth-secret`), living the configured time. A user without
/// the camera gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_are_minted_per_user_and_session() {
    use reallive_auth::TurnRest;

    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    let turn = TurnRest::new(
        vec!["turn:127.0.0.1:3478?transport=udp".into()],
        Secret::new("a-shared-turn-secret-123"),
        Duration::from_secs(600),
    )
    .unwrap();
    opts.api.turn = Some(turn.clone());
    let srv = start(opts).await;
    let admin = srv.api().login("admin", ADMIN_PW).await;
    let cam = admin
        .post("/api/cameras", json!({"name": "gate"}))
        .await
        .json()["camera"]["id"]
        .as_i64()
        .unwrap();
    let me = register(&srv.api(), "tina").await;
    let tina = srv.api().login("tina", "password-123").await;
    let path = format!("/api/cameras/{cam}/stream");
    assert_eq!(tina.get(&path).await.status, 404, "no grant, no credential");
    admin
        .post(
            &format!("/api/cameras/{cam}/grants"),
            json!({"username": "tina", "permission": "view"}),
        )
        .await;

    let now = reallive_core::time::UtcNs::now().secs();
    let answer = tina.get(&path).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains("a-shared-turn-secret-123"));
    let info = answer.json();
    let server = &info["ice_servers"].as_array().unwrap()[0];
    assert_eq!(server["urls"], json!(["turn:127.0.0.1:3478?transport=udp"]));
    let username = server["username"].as_str().unwrap();
    let (expiry, who) = username.split_once(':').unwrap();
    let expiry: i64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "{username}");
    let (user, session) = who.split_once('-').unwrap();
    assert_eq!(user, me["id"].to_string(), "{username}");
    assert!(session.len() >= 8, "{username}");
    // The password is HMAC-SHA1(secret, username), as coturn checks it.
    let check = turn.mint(who, expiry - 600);
    assert_eq!(check.username, username);
    assert_eq!(server["credential"], check.credential);

    let again = tina.get(&path).await.json();
    assert_ne!(
        again["ice_servers"][0]["username"], server["username"],
        "a new answer, a new credential"
    );
    srv.stop().await;
}
