#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every message the Rust types produce is valid against
//! `proto/signaling.schema.json`, and what the schema refuses, the parser
//! refuses too.

use reallive_signaling::{ErrorCode, Message, Role, Status};

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/signaling.schema.json"),
    )
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn every_message() -> Vec<Message> {
    let codes = [
        ErrorCode::BadMessage,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::NotJoined,
        ErrorCode::Replaced,
        ErrorCode::Relay,
        ErrorCode::RateLimited,
    ];
    let mut all = vec![
        Message::JoinRoom {
            v: 1,
            camera_id: 7,
            role: Role::Publisher,
            stream_key: Some("rlk_x".into()),
            token: None,
        },
        Message::JoinRoom {
            v: 1,
            camera_id: 7,
            role: Role::Viewer,
            stream_key: None,
            token: Some("ey.x.y".into()),
        },
        Message::LeaveRoom { camera_id: 7 },
        Message::Offer {
            camera_id: 7,
            sdp: "v=0\r\n".into(),
        },
        Message::Answer {
            camera_id: 7,
            sdp: "v=0\r\n".into(),
        },
        Message::IceCandidate {
            camera_id: 7,
            candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
        Message::IceCandidate {
            camera_id: 7,
            candidate: String::new(),
            sdp_mid: None,
            sdp_mline_index: None,
        },
    ];
    for s in [Status::Offline, Status::Online, Status::Streaming] {
        all.push(Message::CameraStatus {
            camera_id: 7,
            status: s,
        });
    }
    for c in codes {
        all.push(Message::error(c, "because", Some(7)));
        all.push(Message::error(c, "because", None));
    }
    all
}

#[test]
fn every_message_round_trips_through_the_schema() {
    let v = schema();
    for m in every_message() {
        let text = m.to_json();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{text}: {errors:?}");
        assert_eq!(Message::parse(&text).unwrap(), m);
    }
}

#[test]
fn the_schema_and_the_parser_refuse_the_same_things() {
    let v = schema();
    for bad in [
        r#"{"type":"join-room","v":1,"camera_id":1}"#,
        r#"{"type":"join-room","v":1,"camera_id":1,"role":"admin"}"#,
        r#"{"type":"offer","camera_id":"1","sdp":"x"}"#,
        r#"{"type":"offer","camera_id":1,"sdp":"x","extra":1}"#,
        r#"{"type":"camera-status","camera_id":1,"status":"dead"}"#,
        r#"{"type":"error","code":"oops","message":"m"}"#,
        r#"{"type":"nope"}"#,
        r#"{"camera_id":1}"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!v.is_valid(&value), "the schema accepts {bad}");
        assert!(Message::parse(bad).is_err(), "the parser accepts {bad}");
    }
}
