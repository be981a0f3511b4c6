//! `reallive_server::run` in-process on 127.0.0.1:0: it serves, answers
//! as the binary does, and stops when its token fires.

use std::time::Duration;

use reallive_node::{NodeFlags, NodeOptions};
use reallive_record::config::ServerSection;
use reallive_test_support::http::Api;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_on_an_ephemeral_port_and_stops_on_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let options = NodeOptions::resolve(
        ServerSection::default(),
        NodeFlags {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            rtc_port: Some(0),
            admin_password: Some(reallive_auth::Secret::new("correct horse battery")),
            ..NodeFlags::default()
        },
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(reallive_server::run(
        options,
        shutdown.clone(),
        move |node| {
            assert!(
                node.first_admin_password_file().is_none(),
                "the password was given"
            );
            let rtc = node.live().map(|l| l.relay().local_addr());
            let _ = ready_tx.send((node.local_addr().unwrap(), rtc));
        },
    ));
    let (addr, rtc) = ready_rx.await.unwrap();
    assert_ne!(addr.port(), 0);
    assert_ne!(rtc.expect("the relay runs").port(), 0);

    let api = Api::new(addr);
    assert_eq!(api.get("/api/health").await.status, 200);
    let admin = api.login("admin", "correct horse battery").await;
    assert_eq!(admin.get("/api/auth/me").await.status, 200);
    let wrong = api
        .post(
            "/api/auth/login",
            json!({"username": "admin", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status, 401);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returns after its token fires")
        .unwrap()
        .unwrap();
    assert!(dir.path().join("jwt.secret").exists());
}
