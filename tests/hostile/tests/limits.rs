//! One address tries to take a whole server's share of a bounded resource:
//! its HTTP connections, or its signaling sockets. Each client holds at
//! most a share (256), so another address is still served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reallive_hostile::{ADMIN_PASSWORD, Program, post_from};
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// The share of connections, and of signaling sockets, one client holds.
const SHARE: usize = 256;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .expect("connects within 5 s")
        .unwrap()
}

/// Whether the server closed `s` (it reads end-of-file or a reset soon).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Idle connections from one address: past its share they are closed at
/// once, and a login from another address is answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Program::server(dir.path(), &[]).await;
    let to = server.addr();
    let mut held = Vec::new();
    for _ in 0..SHARE + 20 {
        held.push(connect_from(loopback(2), to).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = 0;
    for s in held.iter_mut().rev().take(40) {
        if closed(s).await {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 20,
        "the 20 past the share are closed, the rest held"
    );
    let t = Instant::now();
    let (status, body) = post_from(
        loopback(3),
        to,
        "/api/auth/login",
        &json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// Anonymous signaling sockets from one address: past its share, a 503
/// that says why; another address still connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_signaling_socket() {
    let dir = tempfile::tempdir().unwrap();
    let server = Program::server(dir.path(), &[]).await;
    let to = server.addr();
    let url = format!("ws://{to}/ws/signaling");
    let open_from = |from: IpAddr| {
        let url = url.clone();
        async move {
            let s = connect_from(from, to).await;
            tokio::time::timeout(
                Duration::from_secs(5),
                tokio_tungstenite::client_async(url, s),
            )
            .await
            .expect("the handshake is answered within 5 s")
        }
    };
    let mut sockets = Vec::new();
    for i in 0..SHARE {
        let (ws, _) = open_from(loopback(2))
            .await
            .unwrap_or_else(|e| panic!("socket {i} of the share: {e}"));
        sockets.push(ws);
    }
    match open_from(loopback(2)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("from this address"), "says why: {body}");
        }
        other => panic!("one past the share: {:?}", other.map(|_| "connected")),
    }
    open_from(loopback(3))
        .await
        .expect("another address connects meanwhile");
}
