#![allow(clippy::unwrap_used, clippy::expect_used)]
//! No password, token, stream key or secret reaches a log line, even at
//! the most verbose level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use reallive_auth::{PasswordParams, Secret};
use reallive_http::MediaUser;
use reallive_node::NodeOptions;
use reallive_test_support::http::{Api, request};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn whoami(MediaUser(u): MediaUser) -> String {
    u.username
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_a_log_line() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let admin_pw = "first-admin-secret-pw";
    let jwt = "jwt-secret-never-logged-jwt-secret-never-logged";
    let mut opts = NodeOptions::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    opts.admin_password = Some(Secret::new(admin_pw));
    opts.jwt_secret = Some(Secret::new(jwt));
    opts.api.password_params = PasswordParams::cheap();
    let server = reallive_node::start(opts).await.unwrap();
    let media: Router = Router::new()
        .route("/media/whoami", get(whoami))
        .with_state(server.state().clone());
    let server = server.merge(media);
    let addr = server.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));

    let anon = Api::new(addr);
    let mut secrets: Vec<String> = vec![admin_pw.into(), jwt.into()];
    let admin = anon.login("admin", admin_pw).await;
    secrets.push(admin.token.clone().unwrap());
    let r = admin
        .post(
            "/api/users",
            json!({"username": "dora", "email": "d@example.com", "password": "dora-secret-pw", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, 201);
    secrets.push("dora-secret-pw".into());
    let dora = anon.login("dora", "dora-secret-pw").await;
    let r = anon
        .post(
            "/api/auth/login",
            json!({"username": "dora", "password": "wrong-secret-pw"}),
        )
        .await;
    assert_eq!(r.status, 401);
    secrets.push("wrong-secret-pw".into());
    let r = dora
        .post(
            "/api/auth/password",
            json!({"current_password": "dora-secret-pw", "new_password": "dora-new-secret"}),
        )
        .await;
    assert_eq!(r.status, 200);
    secrets.push("dora-new-secret".into());
    let dora_token = r.json()["token"].as_str().unwrap().to_string();
    secrets.push(dora_token.clone());

    let r = admin.post("/api/cameras", json!({"name": "cam"})).await;
    let cam = r.json()["camera"]["id"].as_i64().unwrap();
    secrets.push(r.json()["stream_key"].as_str().unwrap().into());
    let r = admin
        .post(&format!("/api/cameras/{cam}/stream-key"), json!({}))
        .await;
    secrets.push(r.json()["stream_key"].as_str().unwrap().into());
    let r = admin
        .post(
            "/api/users",
            json!({"username": "eve", "email": "e@example.com", "password": "eve-secret-pw1"}),
        )
        .await;
    assert_eq!(r.status, 201);
    secrets.push("eve-secret-pw1".into());

    // A media URL with the token in the query.
    let r = request(
        addr,
        "GET",
        &format!("/media/whoami?token={dora_token}"),
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "dora"));
    let r = request(
        addr,
        "GET",
        "/media/whoami?token=forged.token.value",
        &[],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 401);

    stop.cancel();
    task.await.unwrap().unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/media/whoami"),
        "the request log ran:\n{logs}"
    );
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "{s} leaked into the logs");
    }
    // Nor any part of a token long enough to matter.
    for t in [&dora_token, admin.token.as_ref().unwrap()] {
        let sig = t.rsplit('.').next().unwrap();
        assert!(!logs.contains(sig));
    }
}
