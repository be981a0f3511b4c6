//! The wire messages of `/ws/signaling` (contract: `proto/signaling.schema.json`).

use serde::{Deserialize, Serialize};

use crate::{MAX_MESSAGE_BYTES, SignalingError};

/// What a client joins a camera's room as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends the camera's media; proves itself with the stream key.
    Publisher,
    /// Receives it; proves itself with a token that grants `view`.
    Viewer,
}

/// A camera's streaming state, as pushed in `camera-status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No publisher.
    Offline,
    /// A publisher is connected; no media yet.
    Online,
    /// Media is flowing.
    Streaming,
}

/// Everything either side sends. Tagged by `type`, kebab-case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Message {
    /// Client: enter a camera's room.
    JoinRoom {
        /// Protocol version; must be [`crate::PROTOCOL_VERSION`].
        v: u32,
        /// The camera.
        camera_id: i64,
        /// Publisher or viewer.
        role: Role,
        /// A publisher's credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_key: Option<String>,
        /// A viewer's credential (a JWT).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Client: leave a room.
    LeaveRoom {
        /// The camera.
        camera_id: i64,
    },
    /// Client: an SDP offer for the room it joined.
    Offer {
        /// The camera.
        camera_id: i64,
        /// The SDP.
        sdp: String,
    },
    /// Server: the relay's SDP answer.
    Answer {
        /// The camera.
        camera_id: i64,
        /// The SDP.
        sdp: String,
    },
    /// Either side: a trickled ICE candidate, as in `RTCIceCandidateInit`.
    IceCandidate {
        /// The camera.
        camera_id: i64,
        /// The `candidate:...` attribute, without `a=`; empty means the end
        /// of candidates.
        candidate: String,
        /// The m-line's mid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// The m-line's index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mline_index: Option<u32>,
    },
    /// Server: a camera's state changed (or, right after a join, what it is).
    CameraStatus {
        /// The camera.
        camera_id: i64,
        /// Its state.
        status: Status,
    },
    /// Server: something was refused or failed.
    Error {
        /// Stable code: see [`ErrorCode`].
        code: ErrorCode,
        /// For people.
        message: String,
        /// The camera it concerns, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        camera_id: Option<i64>,
    },
}

/// Error codes in `error` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed, oversized or unknown message; the connection closes.
    BadMessage,
    /// The client speaks another protocol version; the connection closes.
    UnsupportedVersion,
    /// Wrong stream key, or a missing, expired or revoked token.
    Unauthorized,
    /// No such camera, or not one this user may see.
    NotFound,
    /// A message about a room the client has not joined.
    NotJoined,
    /// Another publisher took over the camera.
    Replaced,
    /// The relay refused the SDP, or is unavailable.
    Relay,
    /// Too many rooms or messages.
    RateLimited,
}

impl ErrorCode {
    /// Whether the server closes the connection after this error.
    pub fn closes(self) -> bool {
        matches!(self, ErrorCode::BadMessage | ErrorCode::UnsupportedVersion)
    }
}

impl Message {
    /// Parses one text frame, refusing oversized input before parsing.
    pub fn parse(text: &str) -> Result<Message, SignalingError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(SignalingError::TooLarge(text.len()));
        }
        serde_json::from_str(text).map_err(|e| SignalingError::Malformed(e.to_string()))
    }

    /// The JSON text of this message.
    pub fn to_json(&self) -> String {
        // Enums of strings and integers: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>, camera_id: Option<i64>) -> Message {
        Message::Error {
            code,
            message: message.into(),
            camera_id,
        }
    }
}
