//! The sans-IO room hub: who is in which camera's room, as what, and what
//! each message makes happen. The WebSocket shell feeds it parsed messages
//! and executes the [`Action`]s it returns; the relay reports media state.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::message::{ErrorCode, Message, Role, Status};
use crate::{PROTOCOL_VERSION, SignalingError};

/// A WebSocket connection, numbered by the shell.
pub type ConnId = u64;

/// Most rooms one connection may be in at once (a grid of cameras).
pub const MAX_ROOMS_PER_CONNECTION: usize = 64;

/// What the hub needs to know about accounts. The server implements it
/// over its accounts snapshot; tests use a table.
pub trait Directory {
    /// Whether `camera` exists.
    fn camera_exists(&self, camera: i64) -> bool;
    /// Whether `key` is `camera`'s current stream key (constant time).
    fn stream_key_matches(&self, camera: i64, key: &str) -> bool;
    /// The user `token` belongs to, if it is valid now.
    fn user_for_token(&self, token: &str) -> Option<i64>;
    /// Whether `user` holds `view` (or better) on `camera`.
    fn may_view(&self, user: i64, camera: i64) -> bool;
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to a connection.
    Send(ConnId, Message),
    /// Close a connection (after sending what precedes this).
    Close(ConnId),
    /// Hand an offer to the relay; the shell sends back its answer (or an
    /// `error` with [`ErrorCode::Relay`]).
    RelayOffer {
        /// Whose.
        conn: ConnId,
        /// Which camera.
        camera: i64,
        /// As what.
        role: Role,
        /// The SDP offer.
        sdp: String,
    },
    /// Hand a trickled candidate to the relay.
    RelayCandidate {
        /// Whose.
        conn: ConnId,
        /// Which camera.
        camera: i64,
        /// The `candidate:` attribute.
        candidate: String,
    },
    /// End a connection's relay session for a camera.
    RelayLeave {
        /// Whose.
        conn: ConnId,
        /// Which camera.
        camera: i64,
    },
    /// Record a camera's new state (database, sessions, metrics).
    SetStatus {
        /// Which camera.
        camera: i64,
        /// Its state.
        status: Status,
    },
}

#[derive(Debug, Default)]
struct Conn {
    /// The user a viewer token proved, once one has.
    user: Option<i64>,
    rooms: BTreeMap<i64, Role>,
    /// The credential each room was joined with, checked again by
    /// [`Hub::revalidate`].
    proofs: BTreeMap<i64, Held>,
}

/// A stream key or token held to check again; `Debug` never shows it.
#[derive(Clone, Default)]
struct Held(Option<String>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held(***)")
    }
}

#[derive(Debug, Default)]
struct Room {
    publisher: Option<ConnId>,
    viewers: BTreeSet<ConnId>,
    /// Publishers from outside signaling (WHIP).
    external_publishers: u32,
    media: bool,
    status: Option<Status>,
}

impl Room {
    fn status(&self) -> Status {
        if self.media {
            Status::Streaming
        } else if self.publisher.is_some() || self.external_publishers > 0 {
            Status::Online
        } else {
            Status::Offline
        }
    }

    fn is_empty(&self) -> bool {
        self.publisher.is_none()
            && self.viewers.is_empty()
            && self.external_publishers == 0
            && !self.media
    }
}

/// Rooms, roles and auth decisions.
#[derive(Debug, Default)]
pub struct Hub {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<i64, Room>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub::default()
    }

    /// Connections open.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Checks every membership's credential again, as a join would: a
    /// token that expired or was revoked (password changed, user deleted,
    /// signed out), a grant taken away, or a stream key regenerated ends
    /// that membership, with an `unauthorized` error to the peer and its
    /// relay session closed. The shell calls this often (every 500 ms).
    pub fn revalidate(&mut self, dir: &dyn Directory) -> Vec<Action> {
        let mut gone = Vec::new();
        for (conn, c) in &self.conns {
            for (camera, role) in &c.rooms {
                let held = c.proofs.get(camera).and_then(|h| h.0.as_deref());
                let proof = match role {
                    Role::Publisher => Proof::StreamKey(held),
                    Role::Viewer => Proof::Token(held),
                };
                if admit(*camera, *role, proof, dir).is_err() {
                    gone.push((*conn, *camera));
                }
            }
        }
        gone.sort_unstable();
        let mut out = Vec::new();
        for (conn, camera) in gone {
            out.push(Action::Send(
                conn,
                Message::error(ErrorCode::Unauthorized, "access revoked", Some(camera)),
            ));
            self.leave(conn, camera, dir, &mut out);
        }
        out
    }

    /// Whether `conn` has joined a room (a socket that never does is
    /// closed by the shell after its join timeout).
    pub fn in_a_room(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.rooms.is_empty())
    }

    /// A new connection.
    pub fn connect(&mut self, conn: ConnId) {
        self.conns.entry(conn).or_default();
    }

    /// One incoming frame, parsed (or not).
    pub fn handle(
        &mut self,
        conn: ConnId,
        parsed: Result<Message, SignalingError>,
        dir: &dyn Directory,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.conns.contains_key(&conn) {
            return out;
        }
        let msg = match parsed {
            Ok(m) => m,
            Err(e) => {
                refuse(&mut out, conn, ErrorCode::BadMessage, e.to_string(), None);
                return out;
            }
        };
        match msg {
            Message::JoinRoom {
                v,
                camera_id,
                role,
                stream_key,
                token,
            } => self.join(conn, v, camera_id, role, stream_key, token, dir, &mut out),
            Message::LeaveRoom { camera_id } => {
                if self.joined(conn, camera_id, &mut out).is_some() {
                    self.leave(conn, camera_id, dir, &mut out);
                }
            }
            Message::Offer { camera_id, sdp } => {
                if let Some(role) = self.joined(conn, camera_id, &mut out) {
                    out.push(Action::RelayOffer {
                        conn,
                        camera: camera_id,
                        role,
                        sdp,
                    });
                }
            }
            Message::IceCandidate {
                camera_id,
                candidate,
                ..
            } => {
                if self.joined(conn, camera_id, &mut out).is_some() && !candidate.is_empty() {
                    out.push(Action::RelayCandidate {
                        conn,
                        camera: camera_id,
                        candidate,
                    });
                }
            }
            Message::Answer { .. } | Message::CameraStatus { .. } | Message::Error { .. } => {
                refuse(
                    &mut out,
                    conn,
                    ErrorCode::BadMessage,
                    "clients do not send answer, camera-status or error",
                    None,
                );
            }
        }
        out
    }

    fn joined(&self, conn: ConnId, camera: i64, out: &mut Vec<Action>) -> Option<Role> {
        let role = self.conns.get(&conn)?.rooms.get(&camera).copied();
        if role.is_none() {
            out.push(Action::Send(
                conn,
                Message::error(
                    ErrorCode::NotJoined,
                    "join the camera's room first",
                    Some(camera),
                ),
            ));
        }
        role
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        conn: ConnId,
        v: u32,
        camera: i64,
        role: Role,
        stream_key: Option<String>,
        token: Option<String>,
        dir: &dyn Directory,
        out: &mut Vec<Action>,
    ) {
        if v != PROTOCOL_VERSION {
            refuse(
                out,
                conn,
                ErrorCode::UnsupportedVersion,
                format!("this server speaks signaling v{PROTOCOL_VERSION}"),
                Some(camera),
            );
            return;
        }
        let deny = |out: &mut Vec<Action>, code, msg: &str| {
            out.push(Action::Send(conn, Message::error(code, msg, Some(camera))));
        };
        let proof = match role {
            Role::Publisher => Proof::StreamKey(stream_key.as_deref()),
            Role::Viewer => Proof::Token(token.as_deref()),
        };
        match admit(camera, role, proof, dir) {
            Err(r) => {
                let code = match r {
                    Refusal::Unauthorized(_) => ErrorCode::Unauthorized,
                    _ => ErrorCode::NotFound,
                };
                return deny(out, code, r.message());
            }
            Ok(Some(user)) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.user = Some(user);
                }
            }
            Ok(None) => {}
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(previous) = c.rooms.get(&camera).copied() {
            if previous == role {
                // Joining twice is harmless: report the state again.
                let status = self
                    .rooms
                    .get(&camera)
                    .map_or(Status::Offline, Room::status);
                out.push(Action::Send(
                    conn,
                    Message::CameraStatus {
                        camera_id: camera,
                        status,
                    },
                ));
                return;
            }
            self.leave(conn, camera, dir, out);
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
            return deny(
                out,
                ErrorCode::RateLimited,
                "too many rooms on one connection",
            );
        }
        c.rooms.insert(camera, role);
        let held = match role {
            Role::Publisher => stream_key,
            Role::Viewer => token,
        };
        c.proofs.insert(camera, Held(held));
        let room = self.rooms.entry(camera).or_default();
        match role {
            Role::Publisher => {
                if let Some(old) = room.publisher.replace(conn) {
                    out.push(Action::Send(
                        old,
                        Message::error(
                            ErrorCode::Replaced,
                            "another publisher took over this camera",
                            Some(camera),
                        ),
                    ));
                    out.push(Action::RelayLeave { conn: old, camera });
                    if let Some(oc) = self.conns.get_mut(&old) {
                        oc.rooms.remove(&camera);
                        oc.proofs.remove(&camera);
                    }
                }
            }
            Role::Viewer => {
                room.viewers.insert(conn);
            }
        }
        let status = room.status();
        out.push(Action::Send(
            conn,
            Message::CameraStatus {
                camera_id: camera,
                status,
            },
        ));
        self.status_changed(camera, dir, out);
    }

    fn leave(&mut self, conn: ConnId, camera: i64, dir: &dyn Directory, out: &mut Vec<Action>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.remove(&camera);
            c.proofs.remove(&camera);
        }
        if let Some(room) = self.rooms.get_mut(&camera) {
            if room.publisher == Some(conn) {
                room.publisher = None;
                // Media stops with the publisher's session.
                room.media = false;
            }
            room.viewers.remove(&conn);
        }
        out.push(Action::RelayLeave { conn, camera });
        self.status_changed(camera, dir, out);
    }

    /// A connection closed: it leaves every room.
    pub fn disconnect(&mut self, conn: ConnId, dir: &dyn Directory) -> Vec<Action> {
        let mut out = Vec::new();
        let rooms: Vec<i64> = self
            .conns
            .get(&conn)
            .map(|c| c.rooms.keys().copied().collect())
            .unwrap_or_default();
        for camera in rooms {
            self.leave(conn, camera, dir, &mut out);
        }
        self.conns.remove(&conn);
        out
    }

    /// The relay reports whether a camera's media is flowing.
    pub fn media(&mut self, camera: i64, flowing: bool, dir: &dyn Directory) -> Vec<Action> {
        let mut out = Vec::new();
        self.rooms.entry(camera).or_default().media = flowing;
        self.status_changed(camera, dir, &mut out);
        out
    }

    /// A publisher outside signaling (WHIP) came or went.
    pub fn external_publisher(
        &mut self,
        camera: i64,
        present: bool,
        dir: &dyn Directory,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let room = self.rooms.entry(camera).or_default();
        if present {
            room.external_publishers += 1;
        } else {
            room.external_publishers = room.external_publishers.saturating_sub(1);
        }
        self.status_changed(camera, dir, &mut out);
        out
    }

    /// The state the hub holds for `camera`.
    pub fn status(&self, camera: i64) -> Status {
        self.rooms
            .get(&camera)
            .map_or(Status::Offline, Room::status)
    }

    /// Whether a session outside signaling may start: a WHIP publisher
    /// (with its stream key) or a WHEP viewer (with the user its token
    /// proved). The rules are the WebSocket join's, so the three ways in
    /// refuse the same requests the same way; a viewer is also refused
    /// while the camera has no publisher, since WHEP has no room to wait
    /// in. Returns the viewer's user id.
    pub fn admit_session(
        &self,
        camera: i64,
        role: Role,
        proof: Proof<'_>,
        dir: &dyn Directory,
    ) -> Result<Option<i64>, Refusal> {
        let user = admit(camera, role, proof, dir)?;
        if role == Role::Viewer && self.status(camera) == Status::Offline {
            return Err(Refusal::Offline);
        }
        Ok(user)
    }

    /// Pushes `camera-status` to every connection that may see the camera,
    /// and asks for it to be recorded, when it changed.
    fn status_changed(&mut self, camera: i64, dir: &dyn Directory, out: &mut Vec<Action>) {
        let Some(room) = self.rooms.get_mut(&camera) else {
            return;
        };
        let status = room.status();
        let previous = room.status.replace(status).unwrap_or(Status::Offline);
        let publisher = room.publisher;
        if room.is_empty() {
            self.rooms.remove(&camera);
        }
        if previous == status {
            return;
        }
        out.push(Action::SetStatus { camera, status });
        let msg = Message::CameraStatus {
            camera_id: camera,
            status,
        };
        let mut ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| {
                Some(**id) == publisher || c.user.is_some_and(|u| dir.may_view(u, camera))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        out.extend(ids.into_iter().map(|id| Action::Send(id, msg.clone())));
    }
}

/// What proves a peer may publish or watch.
#[derive(Clone, Copy, Debug)]
pub enum Proof<'a> {
    /// A publisher's stream key, if it sent one.
    StreamKey(Option<&'a str>),
    /// A viewer's token, if it sent one.
    Token(Option<&'a str>),
    /// A viewer already signed in (the HTTP layer checked the token).
    User(i64),
}

/// Why the hub refused a session. [`Refusal::message`] is safe to show
/// the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// A wrong or missing stream key or token; the message says which.
    Unauthorized(&'static str),
    /// No such camera, or not one this user may see.
    NotFound,
    /// The camera has no publisher now (WHEP only: a WebSocket viewer
    /// waits in the room).
    Offline,
}

impl Refusal {
    /// What the peer is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unauthorized(m) => m,
            Refusal::NotFound => "camera not found",
            Refusal::Offline => "the camera has no publisher now",
        }
    }
}

/// The one admission rule: a publisher needs the camera's stream key
/// (checked before existence, so a wrong key on a missing camera reveals
/// nothing); a viewer needs a user who may view an existing camera (and a
/// camera it may not see is indistinguishable from none).
fn admit(
    camera: i64,
    role: Role,
    proof: Proof<'_>,
    dir: &dyn Directory,
) -> Result<Option<i64>, Refusal> {
    match (role, proof) {
        (Role::Publisher, Proof::StreamKey(Some(key))) => {
            if dir.stream_key_matches(camera, key) {
                Ok(None)
            } else {
                Err(Refusal::Unauthorized("wrong stream key"))
            }
        }
        (Role::Publisher, _) => Err(Refusal::Unauthorized("a publisher needs stream_key")),
        (Role::Viewer, proof) => {
            let user = match proof {
                Proof::User(u) => Some(u),
                Proof::Token(t) => t.and_then(|t| dir.user_for_token(t)),
                Proof::StreamKey(_) => None,
            };
            let Some(user) = user else {
                return Err(Refusal::Unauthorized("a viewer needs a valid token"));
            };
            if !dir.camera_exists(camera) || !dir.may_view(user, camera) {
                return Err(Refusal::NotFound);
            }
            Ok(Some(user))
        }
    }
}

fn refuse(
    out: &mut Vec<Action>,
    conn: ConnId,
    code: ErrorCode,
    message: impl Into<String>,
    camera: Option<i64>,
) {
    out.push(Action::Send(conn, Message::error(code, message, camera)));
    if code.closes() {
        out.push(Action::Close(conn));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ErrorCode as E;

    struct Dir;

    impl Directory for Dir {
        fn camera_exists(&self, camera: i64) -> bool {
            matches!(camera, 1 | 2)
        }
        fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
            matches!((camera, key), (1, "key-1") | (2, "key-2"))
        }
        fn user_for_token(&self, token: &str) -> Option<i64> {
            match token {
                "alice" => Some(10),
                "bob" => Some(11),
                _ => None,
            }
        }
        fn may_view(&self, user: i64, camera: i64) -> bool {
            matches!((user, camera), (10, 1) | (10, 2) | (11, 2))
        }
    }

    fn join(camera: i64, role: Role, key: Option<&str>, token: Option<&str>) -> Message {
        Message::JoinRoom {
            v: 1,
            camera_id: camera,
            role,
            stream_key: key.map(str::to_string),
            token: token.map(str::to_string),
        }
    }

    fn status(conn: ConnId, camera: i64, status: Status) -> Action {
        Action::Send(
            conn,
            Message::CameraStatus {
                camera_id: camera,
                status,
            },
        )
    }

    fn err(conn: ConnId, code: E, camera: Option<i64>) -> impl Fn(&Action) -> bool {
        move |a| matches!(a, Action::Send(c, Message::Error { code: k, camera_id, .. }) if *c == conn && *k == code && *camera_id == camera)
    }

    #[test]
    fn auth_decisions() {
        let mut hub = Hub::new();
        for c in 1..=6 {
            hub.connect(c);
        }
        let d = &Dir;
        // (conn, message, predicate on the single action expected)
        let refusals: Vec<(ConnId, Message, E)> = vec![
            (1, join(1, Role::Viewer, None, None), E::Unauthorized),
            (
                1,
                join(1, Role::Viewer, None, Some("mallory")),
                E::Unauthorized,
            ),
            (2, join(1, Role::Viewer, None, Some("bob")), E::NotFound),
            (2, join(99, Role::Viewer, None, Some("bob")), E::NotFound),
            (
                3,
                join(1, Role::Publisher, Some("key-2"), None),
                E::Unauthorized,
            ),
            (
                3,
                join(1, Role::Publisher, None, Some("alice")),
                E::Unauthorized,
            ),
            (
                3,
                join(99, Role::Publisher, Some("key-1"), None),
                E::Unauthorized,
            ),
        ];
        for (conn, msg, code) in refusals {
            let out = hub.handle(conn, Ok(msg.clone()), d);
            assert_eq!(out.len(), 1, "{msg:?}: {out:?}");
            let camera = match msg {
                Message::JoinRoom { camera_id, .. } => camera_id,
                _ => unreachable!(),
            };
            assert!(err(conn, code, Some(camera))(&out[0]), "{msg:?}: {out:?}");
        }
        // "Not found" reads the same for a missing camera and a hidden one.
        let a = hub.handle(2, Ok(join(1, Role::Viewer, None, Some("bob"))), d);
        let b = hub.handle(2, Ok(join(99, Role::Viewer, None, Some("bob"))), d);
        let text = |o: &[Action]| match &o[0] {
            Action::Send(_, Message::Error { message, .. }) => message.clone(),
            _ => String::new(),
        };
        assert_eq!(text(&a), text(&b));

        // Nothing joined, nothing changed.
        assert_eq!(hub.status(1), Status::Offline);
        assert!(hub.rooms.is_empty());
    }

    /// WHIP and WHEP are admitted by the WebSocket join's rules: every
    /// request below gets the same answer both ways in, and a WHEP viewer
    /// is also refused while the camera has no publisher.
    #[test]
    fn http_sessions_are_admitted_by_the_join_rules() {
        use Refusal::{NotFound, Offline, Unauthorized};
        let mut hub = Hub::new();
        // Camera 2 has a publisher; camera 1 has none.
        hub.connect(9);
        hub.handle(9, Ok(join(2, Role::Publisher, Some("key-2"), None)), &Dir);
        type Case<'a> = (i64, Role, Proof<'a>, Result<Option<i64>, Refusal>);
        let cases: [Case<'_>; 10] = [
            (
                2,
                Role::Publisher,
                Proof::StreamKey(Some("key-2")),
                Ok(None),
            ),
            (
                2,
                Role::Publisher,
                Proof::StreamKey(Some("key-1")),
                Err(Unauthorized("wrong stream key")),
            ),
            (
                3,
                Role::Publisher,
                Proof::StreamKey(Some("key-3")),
                Err(Unauthorized("wrong stream key")),
            ),
            (
                2,
                Role::Publisher,
                Proof::StreamKey(None),
                Err(Unauthorized("a publisher needs stream_key")),
            ),
            (2, Role::Viewer, Proof::Token(Some("bob")), Ok(Some(11))),
            (2, Role::Viewer, Proof::User(10), Ok(Some(10))),
            (
                2,
                Role::Viewer,
                Proof::Token(Some("mallory")),
                Err(Unauthorized("a viewer needs a valid token")),
            ),
            (1, Role::Viewer, Proof::User(11), Err(NotFound)),
            (3, Role::Viewer, Proof::User(10), Err(NotFound)),
            (1, Role::Viewer, Proof::User(10), Err(Offline)),
        ];
        for (i, (camera, role, proof, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                hub.admit_session(camera, role, proof, &Dir),
                want,
                "case {i}"
            );
            // The WebSocket join refuses the same requests with the same
            // words (it lets a viewer wait for an offline camera).
            let (key, token) = match proof {
                Proof::StreamKey(k) => (k, None),
                Proof::Token(t) => (None, t),
                Proof::User(_) => continue,
            };
            let conn = 100 + i as ConnId;
            hub.connect(conn);
            let out = hub.handle(conn, Ok(join(camera, role, key, token)), &Dir);
            let refused = out.iter().find_map(|a| match a {
                Action::Send(c, Message::Error { message, .. }) if *c == conn => {
                    Some(message.clone())
                }
                _ => None,
            });
            match want {
                Ok(_) => assert_eq!(refused, None, "case {i}"),
                Err(r) => assert_eq!(refused.as_deref(), Some(r.message()), "case {i}"),
            }
        }
    }

    #[test]
    fn a_session_from_join_to_leave() {
        let mut hub = Hub::new();
        let d = &Dir;
        let (alice, bob, publ) = (1, 2, 3);
        for c in [alice, bob, publ] {
            hub.connect(c);
        }
        // Alice watches camera 1 before anyone publishes it.
        assert_eq!(
            hub.handle(alice, Ok(join(1, Role::Viewer, None, Some("alice"))), d),
            vec![status(alice, 1, Status::Offline)]
        );
        // Bob watches camera 2: he is told about camera 2 only.
        assert_eq!(
            hub.handle(bob, Ok(join(2, Role::Viewer, None, Some("bob"))), d),
            vec![status(bob, 2, Status::Offline)]
        );
        // An offer before joining is refused; after, it goes to the relay.
        let out = hub.handle(
            publ,
            Ok(Message::Offer {
                camera_id: 1,
                sdp: "v=0".into(),
            }),
            d,
        );
        assert!(err(publ, E::NotJoined, Some(1))(&out[0]));
        // The publisher joins: it learns the state, the change is recorded,
        // and everyone who may see camera 1 hears of it (bob may not).
        assert_eq!(
            hub.handle(publ, Ok(join(1, Role::Publisher, Some("key-1"), None)), d),
            vec![
                status(publ, 1, Status::Online),
                Action::SetStatus {
                    camera: 1,
                    status: Status::Online
                },
                status(alice, 1, Status::Online),
                status(publ, 1, Status::Online),
            ]
        );
        assert_eq!(
            hub.handle(
                publ,
                Ok(Message::Offer {
                    camera_id: 1,
                    sdp: "v=0".into()
                }),
                d
            ),
            vec![Action::RelayOffer {
                conn: publ,
                camera: 1,
                role: Role::Publisher,
                sdp: "v=0".into()
            }]
        );
        let cand = Message::IceCandidate {
            camera_id: 1,
            candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        };
        assert_eq!(
            hub.handle(publ, Ok(cand), d),
            vec![Action::RelayCandidate {
                conn: publ,
                camera: 1,
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into()
            }]
        );
        // Media flows.
        assert_eq!(
            hub.media(1, true, d),
            vec![
                Action::SetStatus {
                    camera: 1,
                    status: Status::Streaming
                },
                status(alice, 1, Status::Streaming),
                status(publ, 1, Status::Streaming),
            ]
        );
        assert_eq!(hub.media(1, true, d), vec![], "no change, no noise");
        // The publisher's connection drops: its session ends, the camera goes offline.
        assert_eq!(
            hub.disconnect(publ, d),
            vec![
                Action::RelayLeave {
                    conn: publ,
                    camera: 1
                },
                Action::SetStatus {
                    camera: 1,
                    status: Status::Offline
                },
                status(alice, 1, Status::Offline),
            ]
        );
        // Alice leaves explicitly, then again (not joined any more).
        assert_eq!(
            hub.handle(alice, Ok(Message::LeaveRoom { camera_id: 1 }), d),
            vec![Action::RelayLeave {
                conn: alice,
                camera: 1
            }]
        );
        let out = hub.handle(alice, Ok(Message::LeaveRoom { camera_id: 1 }), d);
        assert!(err(alice, E::NotJoined, Some(1))(&out[0]));
    }

    #[test]
    fn a_second_publisher_replaces_the_first() {
        let mut hub = Hub::new();
        let d = &Dir;
        hub.connect(1);
        hub.connect(2);
        hub.handle(1, Ok(join(2, Role::Publisher, Some("key-2"), None)), d);
        let out = hub.handle(2, Ok(join(2, Role::Publisher, Some("key-2"), None)), d);
        assert!(err(1, E::Replaced, Some(2))(&out[0]), "{out:?}");
        assert_eq!(out[1], Action::RelayLeave { conn: 1, camera: 2 });
        assert_eq!(out[2], status(2, 2, Status::Online));
        // The old one is out of the room: its offers are refused.
        let out = hub.handle(
            1,
            Ok(Message::Offer {
                camera_id: 2,
                sdp: "x".into(),
            }),
            d,
        );
        assert!(err(1, E::NotJoined, Some(2))(&out[0]));
        // WHIP publishers count too.
        assert!(
            hub.external_publisher(1, true, d)
                .contains(&Action::SetStatus {
                    camera: 1,
                    status: Status::Online
                })
        );
        assert!(
            hub.external_publisher(1, false, d)
                .contains(&Action::SetStatus {
                    camera: 1,
                    status: Status::Offline
                })
        );
    }

    #[test]
    fn hostile_and_wrong_messages() {
        let mut hub = Hub::new();
        let d = &Dir;
        hub.connect(1);
        for text in [
            "",
            "{",
            "null",
            "[]",
            r#"{"type":"join-room"}"#,
            r#"{"type":"nope","camera_id":1}"#,
            r#"{"type":"offer","camera_id":"1","sdp":"x"}"#,
            r#"{"type":"offer","camera_id":1,"sdp":"x","extra":true}"#,
            r#"{"type":"join-room","v":1,"camera_id":1e400,"role":"viewer"}"#,
        ] {
            let out = hub.handle(1, Message::parse(text), d);
            assert_eq!(out.len(), 2, "{text}: {out:?}");
            assert!(err(1, E::BadMessage, None)(&out[0]), "{text}");
            assert_eq!(out[1], Action::Close(1));
        }
        let huge = format!(
            r#"{{"type":"offer","camera_id":1,"sdp":"{}"}}"#,
            "a".repeat(70_000)
        );
        let out = hub.handle(1, Message::parse(&huge), d);
        assert_eq!(out[1], Action::Close(1));
        // Server-only messages from a client.
        let out = hub.handle(
            1,
            Ok(Message::CameraStatus {
                camera_id: 1,
                status: Status::Online,
            }),
            d,
        );
        assert_eq!(out[1], Action::Close(1));
        // Another protocol version.
        let mut j = join(1, Role::Viewer, None, Some("alice"));
        if let Message::JoinRoom { v, .. } = &mut j {
            *v = 2;
        }
        let out = hub.handle(1, Ok(j), d);
        assert!(err(1, E::UnsupportedVersion, Some(1))(&out[0]));
        assert_eq!(out[1], Action::Close(1));
        // An unknown connection is ignored.
        assert!(
            hub.handle(42, Ok(Message::LeaveRoom { camera_id: 1 }), d)
                .is_empty()
        );
    }

    #[test]
    fn every_message_round_trips() {
        let all = vec![
            join(1, Role::Publisher, Some("rlk_x"), None),
            join(1, Role::Viewer, None, Some("tok")),
            Message::LeaveRoom { camera_id: 1 },
            Message::Offer {
                camera_id: 1,
                sdp: "v=0\r\n".into(),
            },
            Message::Answer {
                camera_id: 1,
                sdp: "v=0\r\n".into(),
            },
            Message::IceCandidate {
                camera_id: 1,
                candidate: "candidate:x".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
            },
            Message::IceCandidate {
                camera_id: 1,
                candidate: String::new(),
                sdp_mid: None,
                sdp_mline_index: None,
            },
            Message::CameraStatus {
                camera_id: 1,
                status: Status::Streaming,
            },
            Message::error(E::NotFound, "camera not found", Some(1)),
            Message::error(E::BadMessage, "bad", None),
        ];
        for m in all {
            let text = m.to_json();
            assert_eq!(Message::parse(&text).unwrap(), m, "{text}");
        }
    }

    /// A directory whose answers a test changes: revocations.
    struct Revoking {
        bob_grant: bool,
        key: &'static str,
        alice_token_valid: bool,
    }

    impl Directory for Revoking {
        fn camera_exists(&self, camera: i64) -> bool {
            camera == 2
        }
        fn stream_key_matches(&self, camera: i64, key: &str) -> bool {
            camera == 2 && key == self.key
        }
        fn user_for_token(&self, token: &str) -> Option<i64> {
            match token {
                "alice" if self.alice_token_valid => Some(10),
                "bob" => Some(11),
                _ => None,
            }
        }
        fn may_view(&self, user: i64, _camera: i64) -> bool {
            user == 10 || (user == 11 && self.bob_grant)
        }
    }

    #[test]
    fn revalidation_ends_memberships_whose_credential_no_longer_holds() {
        let mut d = Revoking {
            bob_grant: true,
            key: "key-2",
            alice_token_valid: true,
        };
        let mut hub = Hub::new();
        for c in 1..=3 {
            hub.connect(c);
        }
        hub.handle(1, Ok(join(2, Role::Publisher, Some("key-2"), None)), &d);
        hub.handle(2, Ok(join(2, Role::Viewer, None, Some("alice"))), &d);
        hub.handle(3, Ok(join(2, Role::Viewer, None, Some("bob"))), &d);
        assert!(hub.revalidate(&d).is_empty(), "nothing changed");
        // (what changes, the connection that loses the room)
        type Change = fn(&mut Revoking);
        let steps: [(Change, ConnId); 3] = [
            (|d| d.bob_grant = false, 3),
            (|d| d.alice_token_valid = false, 2),
            (|d| d.key = "key-2-regenerated", 1),
        ];
        for (change, conn) in steps {
            change(&mut d);
            let out = hub.revalidate(&d);
            assert!(
                out.iter().any(err(conn, E::Unauthorized, Some(2))),
                "{out:?}"
            );
            assert!(
                out.iter()
                    .any(|a| matches!(a, Action::RelayLeave { conn: c, camera: 2 } if *c == conn)),
                "{out:?}"
            );
            assert!(!hub.in_a_room(conn));
            assert!(hub.revalidate(&d).is_empty(), "once");
        }
        // The last publisher gone: the camera is offline again.
        assert_eq!(hub.status(2), Status::Offline);
    }
}
