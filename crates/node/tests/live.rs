#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The live path's doors, against a real server with its relay: every
//! refusal is the same at signaling, WHIP and WHEP; sessions and camera
//! status follow what happens.

use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use reallive_auth::{Claims, PasswordParams, Role, Secret, TokenKeys};
use reallive_node::NodeOptions;
use reallive_relay::RelayConfig;
use reallive_test_support::http::{Api, HttpResponse, request};
use serde_json::json;
use str0m::media::{Direction, MediaKind};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "live-test-secret-live-test-secret-live";

/// A node with its relay, on loopback, in its own data dir.
struct Live {
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), reallive_node::NodeError>>,
}

impl Live {
    /// Starts one with the admin `admin-password-1`, after `tune`.
    async fn start(tune: impl FnOnce(&mut NodeOptions)) -> Live {
        let dir = tempfile::tempdir().unwrap();
        let mut o = NodeOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap());
        o.admin_password = Some(Secret::new("admin-password-1"));
        o.jwt_secret = Some(Secret::new(SECRET));
        o.api.password_params = PasswordParams::cheap();
        o.relay = Some(RelayConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            public_ips: vec![],
            ice_tcp: Some("127.0.0.1:0".parse().unwrap()),
            gop_cache_bytes: reallive_relay::DEFAULT_GOP_CACHE_BYTES,
            max_transcodes: 1,
        });
        tune(&mut o);
        let server = reallive_node::start(o).await.unwrap();
        let addr = server.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(server.run(stop.clone()));
        Live {
            dir,
            addr,
            stop,
            task,
        }
    }

    /// Stops it cleanly; its data dir stays until the result drops.
    async fn stop(self) -> tempfile::TempDir {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        self.dir
    }
}

fn offer(dir: Direction) -> String {
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(
        str0m::Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap(),
    );
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, dir, None, None, None);
    change.apply().unwrap().0.to_sdp_string()
}

async fn sdp_post(addr: std::net::SocketAddr, path: &str, bearer: &str, sdp: &str) -> HttpResponse {
    let auth = format!("Bearer {bearer}");
    request(
        addr,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/sdp"),
        ],
        sdp.as_bytes(),
    )
    .await
    .unwrap()
}

async fn ws_exchange(addr: std::net::SocketAddr, msg: serde_json::Value) -> serde_json::Value {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/signaling"))
        .await
        .unwrap();
    ws.send(WsMessage::Text(msg.to_string().into()))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("no answer: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_match_at_signaling_whip_and_whep_and_status_follows() {
    let srv = Live::start(|_| {}).await;
    let addr = srv.addr;

    let anon = Api::new(addr);
    let admin = anon.login("admin", "admin-password-1").await;
    let created = admin
        .post("/api/cameras", json!({"name": "yard"}))
        .await
        .json();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();
    admin
        .post(
            "/api/users",
            json!({"username": "nogrant", "email": "n@example.com", "password": "password-123", "role": "viewer"}),
        )
        .await;
    let nogrant = anon.login("nogrant", "password-123").await;
    let nogrant_token = nogrant.token.clone().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = TokenKeys::new(SECRET.as_bytes()).unwrap().issue(&Claims {
        sub: 1,
        role: Role::Admin,
        ver: 0,
        iat: now - 7200,
        exp: now - 3600,
        jti: None,
    });
    let admin_token = admin.token.clone().unwrap();

    // Signaling.
    let join = |role: &str, cred: (&str, &str)| {
        let mut m = json!({"type": "join-room", "v": 1, "camera_id": cam, "role": role});
        m[cred.0] = json!(cred.1);
        m
    };
    let e = ws_exchange(addr, join("publisher", ("stream_key", "rlk_wrong"))).await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    let e = ws_exchange(addr, join("viewer", ("token", &nogrant_token))).await;
    assert_eq!(e["code"], "not_found");
    let e = ws_exchange(addr, join("viewer", ("token", &expired))).await;
    assert_eq!(e["code"], "unauthorized");
    let e = ws_exchange(addr, join("viewer", ("token", &admin_token))).await;
    assert_eq!(
        (e["type"].as_str(), e["status"].as_str()),
        (Some("camera-status"), Some("offline"))
    );
    let e = ws_exchange(
        addr,
        json!({"type": "join-room", "v": 9, "camera_id": cam, "role": "viewer"}),
    )
    .await;
    assert_eq!(e["code"], "unsupported_version");
    let e = ws_exchange(
        addr,
        json!({"type": "offer", "camera_id": cam, "sdp": "x".repeat(70_000)}),
    )
    .await;
    assert_eq!(e["code"], "bad_message");

    // WHEP before anyone publishes: 503; refusals as above.
    let recv = offer(Direction::RecvOnly);
    let r = sdp_post(addr, &format!("/whep/{cam}"), &admin_token, &recv).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("no publisher") && r.header("retry-after").is_some(),
        "says why, not \"internal error\": {}",
        r.text()
    );
    assert_eq!(
        sdp_post(addr, &format!("/whep/{cam}"), &nogrant_token, &recv)
            .await
            .status,
        404
    );
    assert_eq!(
        sdp_post(addr, &format!("/whep/{cam}"), &expired, &recv)
            .await
            .status,
        401
    );
    assert_eq!(
        sdp_post(addr, "/whep/999", &admin_token, &recv)
            .await
            .status,
        404
    );

    // WHIP.
    let send = offer(Direction::SendOnly);
    assert_eq!(
        sdp_post(addr, &format!("/whip/{cam}"), "rlk_wrong", &send)
            .await
            .status,
        401
    );
    assert_eq!(
        sdp_post(addr, "/whip/999", &key, &send).await.status,
        401,
        "same as a wrong key"
    );
    let r = request(
        addr,
        "POST",
        &format!("/whip/{cam}"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "text/plain"),
        ],
        send.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 415);
    let r = sdp_post(addr, &format!("/whip/{cam}"), &key, &recv).await;
    assert_eq!(
        r.status,
        400,
        "a publisher must offer to send: {}",
        r.text()
    );
    let r = sdp_post(addr, &format!("/whip/{cam}"), &key, &send).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    assert!(r.text().contains("a=ice-lite"));
    let whip_location = r.header("location").unwrap().to_string();
    assert!(whip_location.starts_with(&format!("/whip/{cam}/sessions/")));

    // The camera is online now, in the API and to signaling viewers.
    let status = |api: Api| async move {
        api.get(&format!("/api/cameras/{cam}")).await.json()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(admin.clone()).await, "online");
    let e = ws_exchange(addr, join("viewer", ("token", &admin_token))).await;
    assert_eq!(e["status"], "online");

    // WHEP works now; deleting needs the same viewer.
    let r = sdp_post(addr, &format!("/whep/{cam}"), &admin_token, &recv).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let whep_location = r.header("location").unwrap().to_string();
    let del = |loc: String, bearer: String| async move {
        request(
            addr,
            "DELETE",
            &loc,
            &[("Authorization", &format!("Bearer {bearer}"))],
            b"",
        )
        .await
        .unwrap()
        .status
    };
    assert_eq!(del(whep_location.clone(), nogrant_token.clone()).await, 404);
    assert_eq!(del(whep_location.clone(), admin_token.clone()).await, 204);
    assert_eq!(del(whep_location, admin_token.clone()).await, 404);

    // The metrics know the relay.
    let m = anon.get("/metrics").await.text();
    assert!(
        m.contains(&format!("reallive_relay_subscribers{{camera=\"{cam}\"}}")),
        "{m}"
    );

    // Ending the WHIP session takes the camera offline and closes its row.
    assert_eq!(del(whip_location.clone(), "rlk_wrong".into()).await, 401);
    assert_eq!(del(whip_location, key.clone()).await, 204);
    assert_eq!(status(admin.clone()).await, "offline");

    let dir = srv.stop().await;
    let accounts = reallive_auth::Accounts::open(dir.path()).await.unwrap();
    let sessions = accounts.sessions(cam).await.unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].3, "ended");
    accounts.close().await;
}

/// Hostile: sockets that never join, and a user hoarding WHEP sessions,
/// hold nothing for long. A socket must join within the join timeout; a
/// user gets at most `sessions_per_user` viewer sessions (429 beyond),
/// and signaling sockets are capped (503 beyond).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_and_hoarded_sessions_are_refused() {
    let srv = Live::start(|o| {
        o.live.join_timeout = Duration::from_millis(1500);
        o.live.sessions_per_user = 2;
        o.live.max_sockets = 3;
    })
    .await;
    let addr = srv.addr;
    let admin = Api::new(addr).login("admin", "admin-password-1").await;
    let token = admin.token.clone().unwrap();
    let created = admin
        .post("/api/cameras", json!({"name": "yard"}))
        .await
        .json();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();
    let r = sdp_post(
        addr,
        &format!("/whip/{cam}"),
        &key,
        &offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // A socket that says nothing is told why and closed at the timeout.
    let started = Instant::now();
    let (mut idle, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/signaling"))
        .await
        .unwrap();
    let mut told = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(8), idle.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => told = Some(t.to_string()),
            Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("an idle socket stayed open"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(told.unwrap_or_default().contains("not_joined"));

    // At most three sockets at once.
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws/signaling"))
                .await
                .unwrap()
                .0,
        );
    }
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/signaling"))
            .await
            .is_err(),
        "a fourth socket was upgraded"
    );
    drop(open);

    // Two WHEP sessions for one user; the third is a 429 until one ends.
    let recv = offer(Direction::RecvOnly);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let r = sdp_post(addr, &format!("/whep/{cam}"), &token, &recv).await;
        assert_eq!(r.status, 201, "{}", r.text());
        sessions.push(r.header("location").unwrap().to_string());
    }
    let r = sdp_post(addr, &format!("/whep/{cam}"), &token, &recv).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let auth = format!("Bearer {token}");
    let del = request(
        addr,
        "DELETE",
        &sessions[0],
        &[("Authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(del.status, 204);
    let r = sdp_post(addr, &format!("/whep/{cam}"), &token, &recv).await;
    assert_eq!(r.status, 201, "{}", r.text());

    srv.stop().await;
}

/// Hostile: revocation ends live sessions, within a second. A viewer whose
/// grant is taken away loses its signaling room; a user who signs out
/// loses their WHEP session; a regenerated stream key ends the WHIP
/// publisher. Signing out also kills the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_live_sessions_within_a_second() {
    let srv = Live::start(|_| {}).await;
    let addr = srv.addr;
    let anon = Api::new(addr);
    let admin = anon.login("admin", "admin-password-1").await;
    let created = admin
        .post("/api/cameras", json!({"name": "yard"}))
        .await
        .json();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();
    let r = sdp_post(
        addr,
        &format!("/whip/{cam}"),
        &key,
        &offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin
        .post(
            "/api/users",
            json!({"username": "vic", "email": "vic@example.com", "password": "password-123", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let vic_id = r.json()["id"].as_i64().unwrap();
    let r = admin
        .post(
            &format!("/api/cameras/{cam}/grants"),
            json!({"user_id": vic_id, "permission": "view"}),
        )
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let vic = anon.login("vic", "password-123").await;

    // Vic watches over signaling; the grant goes; vic is told at once.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/signaling"))
        .await
        .unwrap();
    let join = json!({"type": "join-room", "v": 1, "camera_id": cam, "role": "viewer", "token": vic.token.clone().unwrap()});
    ws.send(WsMessage::Text(join.to_string().into()))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(format!("{first:?}").contains("camera-status"), "{first:?}");
    let revoked = admin
        .delete(&format!("/api/cameras/{cam}/grants/{vic_id}"))
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.text());
    let at = Instant::now();
    let told = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) if t.contains("unauthorized") => break at.elapsed(),
            Ok(Some(Ok(_))) => {}
            other => panic!("not told of the revocation: {other:?}"),
        }
    };
    assert!(told < Duration::from_millis(1500), "{told:?}");

    // The admin watches over WHEP, then signs out: token and session end.
    let token = admin.token.clone().unwrap();
    let r = sdp_post(
        addr,
        &format!("/whep/{cam}"),
        &token,
        &offer(Direction::RecvOnly),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let whep = r.header("location").unwrap().to_string();
    assert_eq!(admin.post("/api/auth/logout", json!({})).await.status, 204);
    assert_eq!(
        admin.get("/api/auth/me").await.status,
        401,
        "the token still works"
    );
    assert_eq!(anon.post("/api/auth/logout", json!({})).await.status, 401);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let admin = anon.login("admin", "admin-password-1").await;
    let auth = format!("Bearer {}", admin.token.clone().unwrap());
    let del = request(addr, "DELETE", &whep, &[("Authorization", &auth)], b"")
        .await
        .unwrap();
    assert_eq!(del.status, 404, "the WHEP session outlived the sign-out");

    // A new stream key ends the WHIP publisher: the camera goes offline.
    let r = admin
        .post(&format!("/api/cameras/{cam}/stream-key"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status = admin.get(&format!("/api/cameras/{cam}")).await.json();
    assert_eq!(status["status"], "offline", "{status:#}");

    srv.stop().await;
}
