//! The sans-IO signaling hub in a plain axum app: `/ws` speaks RealLive's
//! signaling protocol for one demo camera (id 1, stream key `demo-key`),
//! which the viewer token `demo-token` may watch. There is no relay here,
//! so offers are answered with a `relay` error.
//!
//! `signaling-hub --listen 127.0.0.1:0` prints `listening on <addr>`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::ws::{Message as Ws, WebSocket, WebSocketUpgrade};
use axum::{Router, extract::State, routing::get};
use clap::Parser;
use reallive_signaling::{Action, ConnId, Directory, ErrorCode, Hub, Message};
use tokio::sync::mpsc;

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

/// The accounts, as the hub asks about them.
struct Demo;
impl Directory for Demo {
    fn camera_exists(&self, camera: i64) -> bool {
        camera == 1
    }
    fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
        camera == 1 && key == "demo-key"
    }
    fn user_for_token(&self, token: &str) -> Option<i64> {
        (token == "demo-token").then_some(7)
    }
    fn may_view(&self, user: i64, camera: i64) -> bool {
        (user, camera) == (7, 1)
    }
}

/// Behind one plain mutex: the hub never blocks or awaits, nor does `Demo`.
#[derive(Default)]
struct Shared {
    hub: Hub,
    outboxes: HashMap<ConnId, mpsc::Sender<Message>>,
    next: ConnId,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn carry_out(s: &mut Shared, actions: Vec<Action>) {
    for action in actions {
        let (conn, msg) = match action {
            Action::Send(conn, msg) => (conn, msg),
            Action::RelayOffer { conn, camera, .. } => {
                let msg = Message::error(ErrorCode::Relay, "no relay here", Some(camera));
                (conn, msg)
            }
            Action::Close(conn) => {
                // Its session loop ends once the queued messages are sent.
                s.outboxes.remove(&conn);
                continue;
            }
            _ => continue, // Candidates, leaves and statuses are for a relay and a database.
        };
        // A client that does not read loses messages; the hub never waits.
        let _ = s.outboxes.get(&conn).map(|outbox| outbox.try_send(msg));
    }
}

async fn session(shared: Arc<Mutex<Shared>>, mut socket: WebSocket) {
    let (tx, mut outbox) = mpsc::channel(32);
    let conn = {
        let mut s = lock(&shared);
        s.next += 1;
        let conn = s.next;
        s.outboxes.insert(conn, tx);
        s.hub.connect(conn);
        conn
    };
    loop {
        tokio::select! {
            msg = outbox.recv() => match msg {
                Some(msg) if socket.send(Ws::text(msg.to_json())).await.is_ok() => {}
                _ => break,
            },
            frame = socket.recv() => match frame {
                Some(Ok(Ws::Text(text))) => {
                    let mut s = lock(&shared);
                    let actions = s.hub.handle(conn, Message::parse(text.as_str()), &Demo);
                    carry_out(&mut s, actions);
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    let mut s = lock(&shared);
    s.outboxes.remove(&conn);
    let actions = s.hub.disconnect(conn, &Demo);
    carry_out(&mut s, actions);
}

#[allow(clippy::print_stdout)] // Tests read the address from here.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&Cli::parse().listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let ws =
        |State(s), ws: WebSocketUpgrade| async move { ws.on_upgrade(|socket| session(s, socket)) };
    let app = Router::new()
        .route("/ws", get(ws))
        .with_state(Arc::default());
    Ok(axum::serve(listener, app).await?)
}
