//! `signaling-hub` as a client sees it: join a room over a real WebSocket
//! and get the camera's status; a wrong stream key gets `unauthorized`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

async fn ask(
    ws: &mut (
             impl SinkExt<Message>
             + StreamExt<Item = tokio_tungstenite::tungstenite::Result<Message>>
             + Unpin
         ),
    text: &str,
) -> serde_json::Value {
    ws.send(Message::text(text)).await.ok().unwrap();
    let reply = ws.next().await.unwrap().unwrap();
    serde_json::from_str(reply.to_text().unwrap()).unwrap()
}

#[tokio::test]
async fn a_viewer_joins_and_a_wrong_key_is_refused() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signaling-hub"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let joined = ask(
        &mut ws,
        r#"{"type":"join-room","v":1,"camera_id":1,"role":"viewer","token":"demo-token"}"#,
    )
    .await;
    assert_eq!(
        joined,
        serde_json::json!({"type": "camera-status", "camera_id": 1, "status": "offline"})
    );
    let refused = ask(
        &mut ws,
        r#"{"type":"join-room","v":1,"camera_id":1,"role":"publisher","stream_key":"guess"}"#,
    )
    .await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "unauthorized");
    child.kill().unwrap();
    child.wait().unwrap();
}
