//! The hostile suite's harness: RealLive's programs as an attacker meets
//! them, over real TCP, HTTP and WebSocket on loopback.
//!
//! - [`Program`]: `reallive-server`, `reallive-nvr` or `reallive-puller`
//!   from the workspace's target directory, as a child process on
//!   `127.0.0.1` with OS-chosen ports, killed on drop. Its stderr is kept
//!   for failure messages ([`Program::log`]).
//! - [`add_user`], [`add_camera`], [`grant`]: what an admin sets up.
//! - [`sdp_offer`], [`sdp_post`]: WHIP and WHEP with real SDP offers
//!   (str0m's), for sessions that never need media.
//! - [`signaling`], [`ws_send`], [`ws_next`]: the signaling socket.
//! - [`stalled_get`]: a request whose response is never read, to hold a
//!   streamed response open.
//! - [`slowloris`]: a request head dripped a line at a time.
//! - [`post_from`]: a request from another loopback address (127.0.0.2, ...),
//!   a client elsewhere as per-address limits see it.
//! - [`write_footage`]: recordings written straight into a stopped
//!   program's store, for playback attacks that need footage at once.
//!
//! Every wait is bounded and panics with what it waited for.
//!
//! The binaries must be built: `cargo nextest run --workspace` builds
//! them; [`bin`] says so when one is missing.

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use reallive_test_support::http::{Api, HttpResponse, request};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

pub use reallive_test_support::http;

/// The first admin's password, in every program started here.
pub const ADMIN_PASSWORD: &str = "hostile-admin-password";
/// The password of every user [`add_user`] makes.
pub const USER_PASSWORD: &str = "hostile-user-password";

/// How long a program has to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one connection or exchange may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The workspace binary `name` (`reallive-server`, ...): beside the test
/// executable's directory (`target/<profile>/deps/..`). Panics, saying how
/// to build it, when it is not there.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("locating the test executable to find {name}: {e}"));
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|b| b.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not built beside {}: the hostile suite runs the real programs; \
                 run it with `cargo nextest run --workspace -E 'package(reallive-hostile)'` \
                 (or `cargo build --workspace` first)",
                exe.display()
            )
        })
}

/// One of RealLive's programs as a child process, killed when dropped.
pub struct Program {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    cameras: Vec<(i64, String)>,
    log: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// `reallive-server` on a fresh or existing `data_dir`, listening on
    /// 127.0.0.1 (HTTP and relay ports chosen by the OS), its first admin
    /// `admin` with [`ADMIN_PASSWORD`]; `extra` flags after those.
    pub async fn server(data_dir: &Path, extra: &[&str]) -> Program {
        let mut args = node_args(data_dir);
        args.extend(extra.iter().map(OsString::from));
        Program::spawn("reallive-server", args, &[]).await
    }

    /// `reallive-nvr`, as [`Program::server`], with `config` if given.
    /// [`Program::cameras`] are the cameras it said it records.
    pub async fn nvr(config: Option<&Path>, data_dir: &Path) -> Program {
        let mut args = node_args(data_dir);
        if let Some(c) = config {
            args.push("--config".into());
            args.push(c.into());
        }
        Program::spawn("reallive-nvr", args, &[]).await
    }

    /// `reallive-puller` recording `camera` from the server at `server`,
    /// signed in as the admin, its store in `data_dir`, its playback on
    /// 127.0.0.1 without a token.
    pub async fn puller(server: SocketAddr, camera: i64, data_dir: &Path) -> Program {
        let args: Vec<OsString> = vec![
            "--server".into(),
            format!("http://{server}").into(),
            "--username".into(),
            "admin".into(),
            "--camera".into(),
            camera.to_string().into(),
            "--data-dir".into(),
            data_dir.into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ];
        Program::spawn(
            "reallive-puller",
            args,
            &[("REALLIVE_PASSWORD", ADMIN_PASSWORD)],
        )
        .await
    }

    async fn spawn(name: &'static str, args: Vec<OsString>, env: &[(&str, &str)]) -> Program {
        let path = bin(name);
        let mut cmd = Command::new(&path);
        // Only what is given here: nothing from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("REALLIVE_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(&args)
            .env("REALLIVE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
        let Some(stderr) = child.stderr.take() else {
            panic!("{name}: no stderr pipe");
        };
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let push = |log: &Arc<Mutex<String>>, line: &str| {
            let mut l = log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            l.push_str(line);
            l.push('\n');
        };
        let ready = match name {
            "reallive-puller" => "reallive-puller: playback on http://".to_string(),
            _ => format!("{name}: listening on http://"),
        };
        let camera_line = format!("{name}: camera ");
        let mut cameras = Vec::new();
        let started = timeout(READY_TIMEOUT, async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        push(&log, &line);
                        if let Some(a) = line.strip_prefix(&ready) {
                            return a.parse::<SocketAddr>().ok();
                        }
                        if let Some((id, cam)) = line
                            .strip_prefix(&camera_line)
                            .and_then(|c| c.split_once(": "))
                            && let Ok(id) = id.parse()
                        {
                            cameras.push((id, cam.to_string()));
                        }
                    }
                    _ => return None,
                }
            }
        })
        .await;
        let addr = match started {
            Ok(Some(a)) => a,
            Ok(None) => panic!(
                "{name} exited (or printed a bad address) before serving:\n{}",
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            ),
            Err(_) => panic!(
                "{name} did not serve within {READY_TIMEOUT:?}:\n{}",
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            ),
        };
        // Keep reading, so it never blocks on a full pipe.
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                push(&kept, &line);
            }
        });
        Program {
            name,
            child,
            addr,
            cameras,
            log,
        }
    }

    /// Where it serves HTTP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A signed-out client of it.
    pub fn api(&self) -> Api {
        Api::new(self.addr)
    }

    /// A client signed in as its first admin.
    pub async fn admin(&self) -> Api {
        self.api().login("admin", ADMIN_PASSWORD).await
    }

    /// `(id, name)` of the cameras it printed at start (the NVR's).
    pub fn cameras(&self) -> &[(i64, String)] {
        &self.cameras
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// SIGTERM, and its exit status (at most 20 s later).
    pub async fn stop(&mut self) -> ExitStatus {
        reallive_test_support::process::signal(&mut self.child, "-TERM").await
    }
}

fn node_args(data_dir: &Path) -> Vec<OsString> {
    vec![
        "--data-dir".into(),
        data_dir.into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--rtc-port".into(),
        "0".into(),
    ]
}

/// Makes user `name` with `role` (`viewer`, `operator`, `admin`) and
/// [`USER_PASSWORD`]; returns their id.
pub async fn add_user(admin: &Api, name: &str, role: &str) -> i64 {
    let r = admin
        .post(
            "/api/users",
            json!({
                "username": name,
                "email": format!("{name}@example.com"),
                "password": USER_PASSWORD,
                "role": role,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "creating user {name}: {}", r.text());
    r.json()["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id: {}", r.text()))
}

/// Signs in as a user [`add_user`] made.
pub async fn login(program: &Program, name: &str) -> Api {
    program.api().login(name, USER_PASSWORD).await
}

/// Makes camera `name` as `api`'s user; returns its id and stream key.
pub async fn add_camera(api: &Api, name: &str) -> (i64, String) {
    let r = api.post("/api/cameras", json!({ "name": name })).await;
    assert_eq!(r.status, 201, "creating camera {name}: {}", r.text());
    let v = r.json();
    match (v["camera"]["id"].as_i64(), v["stream_key"].as_str()) {
        (Some(id), Some(key)) => (id, key.to_string()),
        _ => panic!("no id or key: {v}"),
    }
}

/// Grants `user` `permission` (`view`, `playback`, `control`) on `camera`.
pub async fn grant(admin: &Api, camera: i64, user: i64, permission: &str) {
    let r = admin
        .post(
            &format!("/api/cameras/{camera}/grants"),
            json!({ "user_id": user, "permission": permission }),
        )
        .await;
    assert!(
        r.status == 200 || r.status == 201,
        "granting {permission} on {camera} to {user}: {} {}",
        r.status,
        r.text()
    );
}

/// A camera's `status` as `api` sees it (`online`, `offline`).
pub async fn camera_status(api: &Api, camera: i64) -> String {
    let r = api.get(&format!("/api/cameras/{camera}")).await;
    assert_eq!(r.status, 200, "camera {camera}: {}", r.text());
    r.json()["status"].as_str().unwrap_or_default().to_string()
}

/// A real SDP offer of one video track, from str0m: sending (a WHIP
/// publisher) or receiving (a WHEP viewer). Its one candidate leads
/// nowhere, so no media ever flows; the session lives until the relay
/// gives up on ICE (30 s) or is told to end it.
pub fn sdp_offer(send: bool) -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(std::time::Instant::now());
    let candidate = str0m::Candidate::host(SocketAddr::from(([127, 0, 0, 1], 9)), "udp")
        .unwrap_or_else(|e| panic!("a host candidate: {e}"));
    rtc.add_local_candidate(candidate);
    let mut change = rtc.sdp_api();
    let dir = if send {
        Direction::SendOnly
    } else {
        Direction::RecvOnly
    };
    change.add_media(MediaKind::Video, dir, None, None, None);
    match change.apply() {
        Some((offer, _)) => offer.to_sdp_string(),
        None => panic!("str0m made no offer"),
    }
}

/// POSTs `sdp` to WHIP or WHEP `path` with `bearer` (a stream key or a
/// token).
pub async fn sdp_post(addr: SocketAddr, path: &str, bearer: &str, sdp: &str) -> HttpResponse {
    let auth = format!("Bearer {bearer}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/sdp"),
    ];
    match timeout(
        IO_TIMEOUT,
        request(addr, "POST", path, &headers, sdp.as_bytes()),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("POST {path}: {e}"),
        Err(_) => panic!("POST {path}: no answer within {IO_TIMEOUT:?}"),
    }
}

/// Publishes `camera` over WHIP with `key`, media never flowing: the
/// camera is online until the session ends. Returns the session's URL.
pub async fn publish(addr: SocketAddr, camera: i64, key: &str) -> String {
    let r = sdp_post(addr, &format!("/whip/{camera}"), key, &sdp_offer(true)).await;
    assert_eq!(r.status, 201, "WHIP: {}", r.text());
    r.header("location")
        .unwrap_or_else(|| panic!("WHIP answered without a Location: {:?}", r.headers))
        .to_string()
}

/// A request with `bearer` (any method).
pub async fn call_as(addr: SocketAddr, method: &str, path: &str, bearer: &str) -> HttpResponse {
    let auth = format!("Bearer {bearer}");
    match timeout(
        IO_TIMEOUT,
        request(addr, method, path, &[("Authorization", &auth)], b""),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("{method} {path}: {e}"),
        Err(_) => panic!("{method} {path}: no answer within {IO_TIMEOUT:?}"),
    }
}

/// POSTs `body` as JSON to `path` from source address `from` (any
/// 127.0.0.0/8 address is this machine): a client at another address, as
/// the server's per-address limits see it. Returns the status and body.
pub async fn post_from(
    from: std::net::IpAddr,
    to: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> (u16, String) {
    let go = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let mut s = socket.connect(to).await?;
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = match timeout(IO_TIMEOUT, go).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => panic!("POST {path} from {from}: {e}"),
        Err(_) => panic!("POST {path} from {from}: no answer within {IO_TIMEOUT:?}"),
    };
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("POST {path} from {from}: not HTTP: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// How a [`slowloris`] client's connection ended.
#[derive(Debug)]
pub struct CutOff {
    /// From the first byte sent to the connection's end.
    pub after: Duration,
    /// Header lines dripped meanwhile.
    pub lines: u32,
    /// What the server sent before closing, if anything.
    pub answer: String,
}

/// Slowloris: opens a connection to `addr`, sends the start of a GET of
/// `path` and then drips one more header line every 500 ms, never ending
/// the head, until the server closes the connection. Panics if it is
/// still open after `give_up`.
pub async fn slowloris(addr: SocketAddr, path: &str, give_up: Duration) -> CutOff {
    let mut s = match timeout(IO_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        other => panic!("connecting to {addr}: {other:?}"),
    };
    let started = Instant::now();
    let first = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    s.write_all(first.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("sending to {addr}: {e}"));
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut lines = 0;
    let after = loop {
        assert!(
            started.elapsed() < give_up,
            "a client dripping its request head still holds its connection to {addr} \
             after {give_up:?} ({lines} header lines)"
        );
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break started.elapsed(),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            () = sleep(Duration::from_millis(500)) => {
                lines += 1;
                let line = format!("X-Drip-{lines}: a\r\n");
                if s.write_all(line.as_bytes()).await.is_err() {
                    break started.elapsed();
                }
            }
        }
    };
    CutOff {
        after,
        lines,
        answer: String::from_utf8_lossy(&answer).into_owned(),
    }
}

/// A WebSocket client connection.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws/signaling`.
pub async fn signaling(addr: SocketAddr) -> Ws {
    match timeout(
        IO_TIMEOUT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/signaling")),
    )
    .await
    {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => panic!("opening the signaling socket: {e}"),
        Err(_) => panic!("the signaling socket did not open within {IO_TIMEOUT:?}"),
    }
}

/// Sends one JSON message.
pub async fn ws_send(ws: &mut Ws, msg: serde_json::Value) {
    ws.send(Message::Text(msg.to_string().into()))
        .await
        .unwrap_or_else(|e| panic!("sending {msg}: {e}"));
}

/// What the socket did next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A text message.
    Text(String),
    /// Closed (a close frame, the end of the stream, or an error).
    Closed,
}

/// The next text message or the close, skipping pings; `None` if neither
/// came within `within`.
pub async fn ws_next(ws: &mut Ws, within: Duration) -> Option<WsEvent> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(WsEvent::Text(t.to_string())),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                return Some(WsEvent::Closed);
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Joins `camera`'s room as a viewer with `token` and returns the first
/// answer (a `camera-status` when allowed).
pub async fn join_as_viewer(ws: &mut Ws, camera: i64, token: &str) -> String {
    ws_send(
        ws,
        json!({"type": "join-room", "v": 1, "camera_id": camera, "role": "viewer", "token": token}),
    )
    .await;
    match ws_next(ws, IO_TIMEOUT).await {
        Some(WsEvent::Text(t)) => t,
        other => panic!("no answer to joining camera {camera}: {other:?}"),
    }
}

/// Sends a GET with `bearer` and reads only the response's head, then
/// stops reading: a client that holds a streamed response (an export)
/// open without taking it. Its receive buffer is kept small, so the
/// response stalls after a few KiB. Returns the status and the
/// connection; dropping the connection ends the response.
pub async fn stalled_get(addr: SocketAddr, path: &str, bearer: &str) -> (u16, TcpStream) {
    let go = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let mut s = socket.connect(addr).await?;
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::other(format!(
                    "closed after {:?}",
                    String::from_utf8_lossy(&got)
                )));
            }
            got.extend_from_slice(&buf[..n]);
        }
        let status = String::from_utf8_lossy(&got)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("no status line"))?;
        Ok::<_, std::io::Error>((status, s))
    };
    match timeout(IO_TIMEOUT, go).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("GET {path}: {e}"),
        Err(_) => panic!("GET {path}: no response head within {IO_TIMEOUT:?}"),
    }
}

/// Writes `seconds` of real H.264 (test-support's ball clip, 160x120,
/// 30 fps) as `camera`'s recordings, from `start_ms` (Unix ms), into the
/// store in `data_dir`. The program that owns the store must be stopped.
pub async fn write_footage(data_dir: &Path, camera: i64, start_ms: i64, seconds: u32) {
    use reallive_store::{Store, StoreConfig};
    let (store, _) = Store::open(StoreConfig::new(data_dir))
        .await
        .unwrap_or_else(|e| panic!("opening the store in {}: {e}", data_dir.display()));
    let name = reallive_core::CameraId(camera).store_key();
    let mut session = store
        .session(&name)
        .unwrap_or_else(|e| panic!("recording {name}: {e}"));
    let start_ns = start_ms * 1_000_000;
    for f in reallive_test_support::clip::ball_frames(seconds as usize * 30) {
        let at = start_ns + f.pts_90k * 1_000_000_000 / 90_000;
        session
            .write_at(f, at)
            .await
            .unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }
    session
        .finish()
        .await
        .unwrap_or_else(|e| panic!("closing {name}'s recording: {e}"));
    store.close().await;
}

/// Unix time now, in ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Polls `check` every 100 ms until it gives a value, for at most
/// `within`; panics naming `what` otherwise.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        sleep(Duration::from_millis(100)).await;
    }
}

/// The permission bits of `path` (`0o700`, ...).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
