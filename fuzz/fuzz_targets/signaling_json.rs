//! Signaling frames from hostile clients (`/ws/signaling`): `Message::parse`
//! and the hub behind it.
//!
//! The input is a session: one text frame per line, sent in turn by three
//! connections. Invariants:
//! - whatever parses re-serialises to JSON that parses to the same message;
//! - the hub never panics, closes a connection only right after telling it
//!   why with an error whose code closes, hands the relay an offer or a
//!   candidate only from a connection in a room, and the last status it
//!   asks to record for a camera is the one it holds;
//! - once every connection has gone, no camera is left online.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reallive_signaling::{Action, Directory, Hub, Message, Status};

/// Camera 1 exists, with stream key "k"; token "t" is user 1, who may view
/// camera 1. Camera 2 exists but nobody may see it.
struct Table;

impl Directory for Table {
    fn camera_exists(&self, camera: i64) -> bool {
        camera == 1 || camera == 2
    }
    fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
        (camera == 1 || camera == 2) && key == "k"
    }
    fn user_for_token(&self, token: &str) -> Option<i64> {
        (token == "t").then_some(1)
    }
    fn may_view(&self, user: i64, camera: i64) -> bool {
        user == 1 && camera == 1
    }
}

const CONNS: u64 = 3;

fn check(hub: &Hub, actions: &[Action], cameras: &mut Vec<i64>) {
    let mut last_error = None;
    let mut last_status = std::collections::BTreeMap::new();
    for a in actions {
        match a {
            Action::Send(conn, Message::Error { code, .. }) => last_error = Some((*conn, *code)),
            Action::Close(conn) => {
                let why = last_error.filter(|(c, _)| c == conn).map(|(_, code)| code);
                assert!(
                    why.is_some_and(|code| code.closes()),
                    "closed {conn} without a closing error: {actions:?}"
                );
            }
            Action::RelayOffer { conn, camera, .. }
            | Action::RelayCandidate { conn, camera, .. } => {
                assert!(hub.in_a_room(*conn), "{conn} is in no room: {actions:?}");
                cameras.push(*camera);
            }
            Action::SetStatus { camera, status } => {
                last_status.insert(*camera, *status);
                cameras.push(*camera);
            }
            _ => {}
        }
    }
    for (camera, status) in last_status {
        assert_eq!(hub.status(camera), status, "camera {camera}: {actions:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut hub = Hub::new();
    for conn in 1..=CONNS {
        hub.connect(conn);
    }
    let mut cameras = vec![1, 2];
    for (i, frame) in text.split('\n').enumerate() {
        let conn = i as u64 % CONNS + 1;
        let parsed = Message::parse(frame);
        if let Ok(m) = &parsed {
            let json = m.to_json();
            let again = Message::parse(&json);
            assert_eq!(again.as_ref().ok(), Some(m), "{json}");
            if let Message::JoinRoom { camera_id, .. } = m {
                cameras.push(*camera_id);
            }
        }
        let actions = hub.handle(conn, parsed, &Table);
        check(&hub, &actions, &mut cameras);
        if actions.contains(&Action::Close(conn)) {
            let actions = hub.disconnect(conn, &Table);
            check(&hub, &actions, &mut cameras);
            hub.connect(conn);
        }
        let actions = hub.revalidate(&Table);
        check(&hub, &actions, &mut cameras);
    }
    for conn in 1..=CONNS {
        let actions = hub.disconnect(conn, &Table);
        check(&hub, &actions, &mut cameras);
    }
    assert_eq!(hub.connections(), 0);
    for camera in cameras {
        assert_eq!(hub.status(camera), Status::Offline, "camera {camera}");
    }
});
