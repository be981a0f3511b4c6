#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Attacks on `reallive-server`, each against its own real process on
//! loopback, named for the attack; each asserts what the attacker sees
//! refused. See docs/design/security.md for the findings and their fixes.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reallive_hostile::http::request;
use reallive_hostile::{
    ADMIN_PASSWORD, Program, WsEvent, add_camera, add_user, call_as, camera_status, grant,
    join_as_viewer, login, post_from, publish, sdp_offer, sdp_post, signaling, slowloris, ws_next,
};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::{Instant, sleep, timeout};

async fn server() -> (tempfile::TempDir, Program) {
    let dir = tempfile::tempdir().unwrap();
    let srv = Program::server(&dir.path().join("data"), &[]).await;
    (dir, srv)
}

/// Finding 1. Mallory signs in, is deleted, and an admin is created next:
/// her token must not answer as the new admin (ids used to be reused, and
/// every account's token version started at 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_users_token_does_not_come_back_as_the_next_admin() {
    let (_dir, srv) = server().await;
    let admin = srv.admin().await;
    let mallory_id = add_user(&admin, "mallory", "viewer").await;
    let mallory = login(&srv, "mallory").await;
    assert_eq!(mallory.get("/api/auth/me").await.status, 200);
    let r = admin.delete(&format!("/api/users/{mallory_id}")).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let root2 = add_user(&admin, "root2", "admin").await;
    assert_ne!(
        root2, mallory_id,
        "the deleted user's id was handed out again"
    );

    let me = mallory.get("/api/auth/me").await;
    assert_eq!(me.status, 401, "the dead token answers as: {}", me.text());
    let users = mallory.get("/api/users").await;
    assert_eq!(
        users.status,
        401,
        "the dead token lists users: {}",
        users.text()
    );
    // The new admin is who they should be.
    let root = login(&srv, "root2").await;
    assert_eq!(root.get("/api/auth/me").await.json()["user"]["id"], root2);
}

/// Finding 4. Slowloris: a request head dripped a header at a time never
/// completes; the server cuts the connection at 10 s instead of holding it
/// for as long as the client keeps dripping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_request_head_is_cut_off_after_10s() {
    let (_dir, srv) = server().await;
    let cut = slowloris(srv.addr(), "/api/openapi.json", Duration::from_secs(15)).await;
    assert!(
        !cut.answer.starts_with("HTTP/1.1 2"),
        "the incomplete request was served: {cut:?}"
    );
    // The head timeout, not some other refusal.
    assert!(cut.after >= Duration::from_secs(8), "{cut:?}");
    eprintln!("{cut:?}");
    // And the server serves others.
    assert_eq!(srv.api().get("/api/openapi.json").await.status, 200);
}

/// Finding 4. A signaling socket that never joins a room is told
/// `not_joined` and closed at 10 s, so idle sockets cannot pile up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unjoined_signaling_socket_is_closed() {
    let (_dir, srv) = server().await;
    let started = Instant::now();
    let mut ws = signaling(srv.addr()).await;
    let mut told = Vec::new();
    let closed_after = loop {
        match ws_next(
            &mut ws,
            Duration::from_secs(15).saturating_sub(started.elapsed()),
        )
        .await
        {
            Some(WsEvent::Text(t)) => told.push(t),
            Some(WsEvent::Closed) => break started.elapsed(),
            None => panic!("an idle signaling socket is still open after 15 s; told {told:?}"),
        }
    };
    assert!(
        told.iter().any(|t| t.contains("not_joined")),
        "closed without being told why: {told:?}"
    );
    assert!(
        closed_after >= Duration::from_secs(8),
        "closed after {closed_after:?}, before the join timeout: {told:?}"
    );
    eprintln!("closed after {closed_after:?}");
}

/// Finding 4. One user opening WHEP viewer sessions without end gets 16,
/// then 429; the cap is theirs alone, and ending one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoarding_whep_sessions_is_refused_at_16() {
    let (_dir, srv) = server().await;
    let addr = srv.addr();
    let admin = srv.admin().await;
    let (cam, key) = add_camera(&admin, "yard").await;
    publish(addr, cam, &key).await;
    let hoarder_id = add_user(&admin, "hoarder", "viewer").await;
    grant(&admin, cam, hoarder_id, "view").await;
    let hoarder = login(&srv, "hoarder").await.token.unwrap();

    let whep = format!("/whep/{cam}");
    let offer = sdp_offer(false);
    let mut sessions = Vec::new();
    for i in 0..16 {
        let r = sdp_post(addr, &whep, &hoarder, &offer).await;
        assert_eq!(r.status, 201, "session {}: {}", i + 1, r.text());
        sessions.push(r.header("location").unwrap().to_string());
    }
    let r = sdp_post(addr, &whep, &hoarder, &offer).await;
    assert_eq!(r.status, 429, "the 17th session: {}", r.text());
    assert_eq!(r.error_code(), "resource_exhausted", "{}", r.text());

    // Someone else still watches.
    let admin_token = admin.token.clone().unwrap();
    let r = sdp_post(addr, &whep, &admin_token, &offer).await;
    assert_eq!(r.status, 201, "another user was refused: {}", r.text());
    // Ending one of the sixteen frees its place.
    let r = call_as(addr, "DELETE", &sessions[0], &hoarder).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let r = sdp_post(addr, &whep, &hoarder, &offer).await;
    assert_eq!(r.status, 201, "after one ended: {}", r.text());
}

/// Finding 6. DNS rebinding: a page on evil.example that re-points its name
/// at 127.0.0.1 reaches the loopback server with `Host: evil.example` and
/// would read its answers as same-origin; it gets a 421. The names a user
/// really reaches it by still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_host_header_is_refused() {
    let (_dir, srv) = server().await;
    let addr = srv.addr();
    let port = addr.port();
    let admin = srv.admin().await;
    let auth = format!("Bearer {}", admin.token.clone().unwrap());
    for (host, want) in [
        (format!("evil.example:{port}"), 421),
        ("evil.example".to_string(), 421),
        (format!("localhost.evil.example:{port}"), 421),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        ("localhost".to_string(), 200),
    ] {
        for (path, headers) in [
            ("/api/openapi.json", vec![("Host", host.as_str())]),
            (
                "/api/auth/me",
                vec![("Host", host.as_str()), ("Authorization", auth.as_str())],
            ),
            ("/", vec![("Host", host.as_str())]),
        ] {
            let r = request(addr, "GET", path, &headers, b"").await.unwrap();
            if want == 421 {
                assert_eq!(r.status, 421, "Host: {host} {path}: {}", r.text());
                assert_eq!(r.error_code(), "misdirected_request");
            } else {
                assert_ne!(r.status, 421, "Host: {host} {path}: {}", r.text());
                assert!(r.status < 500, "Host: {host} {path}: {}", r.status);
            }
        }
    }
}

/// Finding 7. A viewer watching a camera loses the live view within a
/// second of their grant being revoked: the signaling room says
/// `unauthorized`, and their WHEP session ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_ends_the_live_view_within_a_second() {
    let (_dir, srv) = server().await;
    let addr = srv.addr();
    let admin = srv.admin().await;
    let (cam, key) = add_camera(&admin, "yard").await;
    publish(addr, cam, &key).await;
    let vic_id = add_user(&admin, "vic", "viewer").await;
    grant(&admin, cam, vic_id, "view").await;
    let vic = login(&srv, "vic").await.token.unwrap();

    // Vic watches over signaling and over WHEP. A WHEP session of theirs
    // can be ended by them while it lives (the control for the end).
    let mut ws = signaling(addr).await;
    let first = join_as_viewer(&mut ws, cam, &vic).await;
    assert!(first.contains("camera-status"), "{first}");
    let whep = format!("/whep/{cam}");
    let r = sdp_post(addr, &whep, &vic, &sdp_offer(false)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let control = r.header("location").unwrap().to_string();
    assert_eq!(call_as(addr, "DELETE", &control, &vic).await.status, 204);
    let r = sdp_post(addr, &whep, &vic, &sdp_offer(false)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.header("location").unwrap().to_string();

    let r = admin
        .delete(&format!("/api/cameras/{cam}/grants/{vic_id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let revoked = Instant::now();
    let told = loop {
        match ws_next(&mut ws, Duration::from_secs(3)).await {
            Some(WsEvent::Text(t)) if t.contains("unauthorized") => break revoked.elapsed(),
            Some(WsEvent::Text(_)) => {}
            other => panic!("the viewer was not told of the revocation: {other:?}"),
        }
    };
    assert!(told < Duration::from_millis(1500), "told after {told:?}");
    eprintln!("told after {told:?}");

    // The WHEP session is gone too: with the grant back, vic finds no
    // session to end.
    sleep(Duration::from_millis(1200).saturating_sub(revoked.elapsed())).await;
    grant(&admin, cam, vic_id, "view").await;
    let r = call_as(addr, "DELETE", &session, &vic).await;
    assert_eq!(r.status, 404, "the WHEP session outlived the revocation");
}

/// Finding 7. Signing out revokes the token on the server; signing out
/// everywhere revokes every device's, and ends the user's live sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_token() {
    let (_dir, srv) = server().await;
    let addr = srv.addr();
    let admin = srv.admin().await;
    let (cam, _) = add_camera(&admin, "yard").await;
    let lou_id = add_user(&admin, "lou", "viewer").await;
    grant(&admin, cam, lou_id, "view").await;
    let phone = login(&srv, "lou").await;
    let laptop = login(&srv, "lou").await;
    assert_eq!(phone.get("/api/auth/me").await.status, 200);
    let mut ws = signaling(addr).await;
    let first = join_as_viewer(&mut ws, cam, laptop.token.as_deref().unwrap()).await;
    assert!(first.contains("camera-status"), "{first}");

    // Signing out on the phone ends the phone's token only.
    let r = phone.post("/api/auth/logout", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(phone.get("/api/auth/me").await.status, 401);
    assert_eq!(laptop.get("/api/auth/me").await.status, 200);
    let r = laptop.post("/api/auth/logout-all", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let out = Instant::now();
    // Its live view ends within a second.
    loop {
        match ws_next(&mut ws, Duration::from_secs(3)).await {
            Some(WsEvent::Text(t)) if t.contains("unauthorized") => break,
            Some(WsEvent::Text(_)) => {}
            other => panic!("the live view outlived the sign-out: {other:?}"),
        }
    }
    let ended = out.elapsed();
    assert!(ended < Duration::from_millis(1500), "ended after {ended:?}");
    let me = phone.get("/api/auth/me").await;
    assert_eq!(
        me.status,
        401,
        "the signed-out token still works: {}",
        me.text()
    );
    let me = laptop.get("/api/auth/me").await;
    assert_eq!(me.status, 401, "the other device's token still works");
    assert_eq!(phone.post("/api/auth/logout", json!({})).await.status, 401);
    // Signing in again works: the account is not locked.
    let again = login(&srv, "lou").await;
    assert_eq!(again.get("/api/auth/me").await.status, 200);
}

/// Finding 7. Whoever holds a leaked stream key publishes until the owner
/// regenerates it: then the publisher is dropped within a second and the
/// old key opens nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regenerated_stream_key_drops_the_publisher() {
    let (_dir, srv) = server().await;
    let addr = srv.addr();
    let admin = srv.admin().await;
    let (cam, leaked) = add_camera(&admin, "yard").await;
    let session = publish(addr, cam, &leaked).await;
    assert_eq!(camera_status(&admin, cam).await, "online");
    // The control: left alone, the session lives on.
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(camera_status(&admin, cam).await, "online");

    let r = admin
        .post(&format!("/api/cameras/{cam}/stream-key"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let regenerated = Instant::now();
    let dropped =
        reallive_hostile::eventually(Duration::from_secs(3), "the publisher dropped", || async {
            (camera_status(&admin, cam).await == "offline").then(|| regenerated.elapsed())
        })
        .await;
    assert!(
        dropped < Duration::from_millis(1500),
        "dropped after {dropped:?}"
    );
    eprintln!("dropped after {dropped:?}");

    // The old key opens nothing.
    let r = sdp_post(addr, &format!("/whip/{cam}"), &leaked, &sdp_offer(true)).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = call_as(addr, "DELETE", &session, &leaked).await;
    assert!(matches!(r.status, 401 | 404), "{} {}", r.status, r.text());
    let mut ws = signaling(addr).await;
    reallive_hostile::ws_send(
        &mut ws,
        json!({"type": "join-room", "v": 1, "camera_id": cam, "role": "publisher", "stream_key": leaked}),
    )
    .await;
    match ws_next(&mut ws, Duration::from_secs(5)).await {
        Some(WsEvent::Text(t)) => assert!(t.contains("unauthorized"), "{t}"),
        other => panic!("{other:?}"),
    }
}

/// Low. Forged tokens: `alg: none`, one signature byte changed, a viewer's
/// claims raised to admin, and a 64 KiB token. Each is a 401, never a
/// 5xx and never the admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_forgeries_are_refused() {
    let (_dir, srv) = server().await;
    let admin = srv.admin().await;
    add_user(&admin, "vera", "viewer").await;
    let vera = login(&srv, "vera").await;
    let token = admin.token.clone().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let (header, payload, sig) = (parts[0], parts[1], parts[2]);
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());

    let none_header = b64(json!({"alg": "none", "typ": "JWT"}));
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let vera_token = vera.token.clone().unwrap();
    let vera_parts: Vec<&str> = vera_token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(vera_parts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    let raised = format!("{}.{}.{}", vera_parts[0], b64(claims), vera_parts[2]);
    let long = format!("{header}.{}.{sig}", "A".repeat(64 * 1024));

    let forgeries = [
        (
            "alg none, no signature",
            format!("{none_header}.{payload}."),
        ),
        (
            "alg none, the signature kept",
            format!("{none_header}.{payload}.{sig}"),
        ),
        (
            "a signature byte changed",
            format!("{header}.{payload}.{flipped}"),
        ),
        ("a viewer's claims raised to admin", raised),
        ("no signature", format!("{header}.{payload}.")),
        ("64 KiB", long),
        ("empty", String::new()),
    ];
    // The control: the real token works.
    assert_eq!(
        call_as(srv.addr(), "GET", "/api/users", &token)
            .await
            .status,
        200
    );
    for (what, forged) in &forgeries {
        for path in ["/api/auth/me", "/api/users"] {
            let r = call_as(srv.addr(), "GET", path, forged).await;
            assert_eq!(r.status, 401, "{what} at {path}: {} {}", r.status, r.text());
        }
    }
    // Nor do they open a live view.
    let (cam, _) = add_camera(&admin, "yard").await;
    for (what, forged) in &forgeries[..4] {
        let r = sdp_post(
            srv.addr(),
            &format!("/whep/{cam}"),
            forged,
            &sdp_offer(false),
        )
        .await;
        assert_eq!(r.status, 401, "{what} at WHEP: {}", r.text());
    }
}

/// Low. `cors_origins = ["*"]` in the config file starts the server (it
/// used to panic at start) and answers a preflight from any origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_star_config_starts_and_answers_any_origin() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[server]\ncors_origins = [\"*\"]\n").unwrap();
    let srv = Program::server(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    for origin in ["http://ui.example", "https://anyone.example:8443"] {
        let r = request(
            srv.addr(),
            "OPTIONS",
            "/api/cameras",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            b"",
        )
        .await
        .unwrap();
        assert!(
            r.status < 300,
            "preflight from {origin}: {} {:?}",
            r.status,
            r.headers
        );
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "preflight from {origin}: {:?}",
            r.headers
        );
    }
    let admin = srv.admin().await;
    let auth = format!("Bearer {}", admin.token.clone().unwrap());
    let r = request(
        srv.addr(),
        "GET",
        "/api/cameras",
        &[("Origin", "http://ui.example"), ("Authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

/// Low. An operator who owns a camera and is demoted to viewer keeps only
/// what they were granted: their own camera is no longer theirs to see,
/// rename, re-key, grant or delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_owner_loses_control_of_their_camera() {
    let (_dir, srv) = server().await;
    let admin = srv.admin().await;
    let otto_id = add_user(&admin, "otto", "operator").await;
    let otto = login(&srv, "otto").await;
    let (porch, _) = add_camera(&otto, "porch").await;
    let (gate, _) = add_camera(&admin, "gate").await;
    grant(&admin, gate, otto_id, "view").await;
    let r = otto.get(&format!("/api/cameras/{porch}")).await;
    assert_eq!(r.json()["permission"], "control", "{}", r.text());

    let r = admin
        .put(&format!("/api/users/{otto_id}"), json!({"role": "viewer"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A fresh sign-in, so no old token decides.
    let otto = login(&srv, "otto").await;
    assert_eq!(
        otto.get("/api/auth/me").await.json()["user"]["role"],
        "viewer"
    );
    let r = otto.get(&format!("/api/cameras/{porch}")).await;
    assert_eq!(r.status, 404, "still sees the camera: {}", r.text());
    let list = otto.get("/api/cameras").await.json();
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![gate], "{list}");
    // Their own camera is as invisible to them as any stranger's.
    let refused = |r: reallive_hostile::http::HttpResponse, what: &str| {
        assert_eq!(r.status, 404, "{what}: {}", r.text());
    };
    refused(
        otto.put(&format!("/api/cameras/{porch}"), json!({"name": "mine"}))
            .await,
        "rename",
    );
    refused(
        otto.post(&format!("/api/cameras/{porch}/stream-key"), json!({}))
            .await,
        "new stream key",
    );
    refused(
        otto.post(
            &format!("/api/cameras/{porch}/grants"),
            json!({"user_id": otto_id, "permission": "control"}),
        )
        .await,
        "grant themselves control",
    );
    refused(
        otto.get(&format!("/api/cameras/{porch}/stream")).await,
        "watch",
    );
    refused(
        otto.delete(&format!("/api/cameras/{porch}")).await,
        "delete",
    );
    let whep = sdp_post(
        srv.addr(),
        &format!("/whep/{porch}"),
        otto.token.as_deref().unwrap(),
        &sdp_offer(false),
    )
    .await;
    refused(whep, "WHEP");
    // What was granted stays, as granted: view, not control.
    let r = otto.get(&format!("/api/cameras/{gate}")).await;
    assert_eq!(r.json()["permission"], "view", "{}", r.text());
    let r = otto
        .put(&format!("/api/cameras/{gate}"), json!({"name": "mine"}))
        .await;
    assert_eq!(
        r.status,
        403,
        "renamed a camera they may only view: {}",
        r.text()
    );
    // The camera is untouched.
    let r = admin.get(&format!("/api/cameras/{porch}")).await;
    assert_eq!(r.json()["name"], "porch", "{}", r.text());
}

/// Low. Guessing passwords from one address: after the per-address burst
/// (10), the address gets 429 with `Retry-After`, for every username,
/// the right password included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flood_from_one_address_is_limited() {
    let (_dir, srv) = server().await;
    let api = srv.api();
    // Twenty guesses at once, each at a different username, so only the
    // address ties them together.
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post(
                    "/api/auth/login",
                    json!({"username": format!("guess{i}"), "password": "wrong-password-1"}),
                )
                .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut right_password = None;
    for g in guesses {
        let r = timeout(Duration::from_secs(60), g)
            .await
            .expect("a guess answered within 60 s")
            .unwrap();
        if r.status == 429 {
            let retry: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers));
            assert!((1..=60).contains(&retry), "Retry-After: {retry}");
            // The address is spent: the right password is refused as well.
            if right_password.is_none() {
                right_password = Some(
                    api.post(
                        "/api/auth/login",
                        json!({"username": "admin", "password": ADMIN_PASSWORD}),
                    )
                    .await,
                );
            }
        }
        statuses.push(r.status);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429)),
        "{statuses:?}"
    );
    assert!(
        limited >= 5,
        "only {limited} of 20 guesses limited: {statuses:?}"
    );
    let r = right_password.expect("at least one guess was limited");
    assert_eq!(
        r.status,
        429,
        "the flooding address signed in: {}",
        r.text()
    );
    assert_eq!(r.error_code(), "resource_exhausted");
    // The limit is the address's, not everyone's: another signs in.
    let (status, body) = post_from(
        std::net::IpAddr::from([127, 0, 0, 2]),
        srv.addr(),
        "/api/auth/login",
        &json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "another address was refused: {body}");
}

/// The limits table: a request body over 64 KiB is a 413, whether it says
/// its length or streams it chunked, before the server takes it all in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_body_is_refused() {
    let (_dir, srv) = server().await;
    let admin = srv.admin().await;
    let auth = format!("Bearer {}", admin.token.clone().unwrap());
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024));
    let r = timeout(
        Duration::from_secs(10),
        request(
            srv.addr(),
            "POST",
            "/api/cameras",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            big.as_bytes(),
        ),
    )
    .await
    .expect("answered within 10 s")
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error_code(), "payload_too_large");

    // Chunked, with no length to refuse up front.
    let mut s = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let head = format!(
        "POST /api/cameras HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        srv.addr()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut sent = 0usize;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no answer after {sent} bytes"
        );
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            },
            w = wr.write_all(chunk.as_bytes()), if sent < 8 * 1024 * 1024 => {
                if w.is_err() {
                    break;
                }
                sent += 16 * 1024;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    // The server answers 413 and closes with the rest unread; the kernel
    // may then reset the connection before the client reads the answer
    // (hyper has no lingering close), so an empty answer on a closed
    // connection is a refusal too, if it came long before the 8 MiB.
    assert!(
        answer.starts_with("HTTP/1.1 413") || answer.is_empty(),
        "after {sent} bytes: {answer}"
    );
    assert!(sent < 8 * 1024 * 1024, "the server read all {sent} bytes");
    // Nothing was made of it.
    assert_eq!(admin.get("/api/cameras").await.json(), json!([]));
}
