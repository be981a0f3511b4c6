//! `reallive_nvr::run` in-process on 127.0.0.1:0, with no config file: it
//! starts empty, serves the API and the NVR routes, and stops when its
//! token fires.

use std::time::Duration;

use reallive_node::NodeFlags;
use reallive_nvr::{NvrConfig, run};
use reallive_test_support::http::Api;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_empty_on_an_ephemeral_port_and_stops_on_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = NvrConfig {
        file: Default::default(),
        node: NodeFlags {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            rtc_port: Some(0),
            ..NodeFlags::default()
        },
    };
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run(config, shutdown.clone(), move |ready| {
        let password = ready
            .admin_password_file
            .map(|f| reallive_core::fs::read_secret_file(f).unwrap());
        let _ = ready_tx.send((ready.addr, ready.cameras.len(), password));
    }));
    let (addr, cameras, password) = ready_rx.await.unwrap();
    assert_eq!(cameras, 0);
    let password = password.expect("first start makes an admin");

    let api = Api::new(addr);
    let admin = api.login("admin", &password).await;
    let status = admin.get("/api/status").await;
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(admin.get("/api/nvr/cameras").await.status, 200);
    assert_eq!(api.get("/api/nvr/cameras").await.status, 401);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("run returns after its token fires")
        .unwrap()
        .unwrap();
}
