#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `reallive-server` binary as an operator runs it.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reallive_test_support::http::Api;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_reallive-server");

struct Proc {
    child: Child,
    addr: SocketAddr,
    stderr: Vec<String>,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
}

async fn spawn(args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("REALLIVE_ADMIN_PASSWORD")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stderr.push(line.clone());
            if let Some(a) = line.strip_prefix("reallive-server: listening on http://") {
                return a.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("exited before listening:\n{}", stderr.join("\n"));
    })
    .await
    .expect("listening within 30 s");
    Proc {
        child,
        addr,
        stderr,
        lines,
    }
}

impl Proc {
    /// SIGTERM, then the exit status and the rest of stderr.
    async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().unwrap();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        while let Some(line) = self.lines.next_line().await.unwrap() {
            self.stderr.push(line);
        }
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits within 10 s of SIGTERM")
            .unwrap();
        (status, self.stderr)
    }
}

async fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("REALLIVE_ADMIN_PASSWORD")
        .env_remove("REALLIVE_USER_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}

fn data_args(dir: &Path) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.to_str().unwrap().into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--rtc-port".into(),
        "0".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_shows_the_password_once_and_restarts_keep_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let args = data_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = spawn(&args, &[]).await;
    let addr = p.addr;
    // The password goes to a file only its owner reads, never to stderr.
    let file = dir.path().join(reallive_node::ADMIN_PASSWORD_FILE);
    assert!(
        p.stderr
            .iter()
            .any(|l| l.contains("created user 'admin'") && l.contains(file.to_str().unwrap())),
        "{:#?}",
        p.stderr
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pw = reallive_core::fs::read_secret_file(&file).unwrap();
    let admin = Api::new(addr).login("admin", &pw).await;
    let cam = admin
        .post("/api/cameras", serde_json::json!({"name": "yard"}))
        .await;
    assert_eq!(cam.status, 201);
    let (status, stderr) = p.terminate().await;
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    let showing: Vec<_> = stderr.iter().filter(|l| l.contains(&pw)).collect();
    assert!(showing.is_empty(), "never shown or logged: {showing:#?}");
    assert!(stderr.iter().any(|l| l.contains("stopped")), "{stderr:#?}");

    // Second start: no new password, the old token works.
    let p = spawn(&args, &[]).await;
    assert!(!p.stderr.iter().any(|l| l.contains("created user")));
    let same = Api::new(p.addr).with_token(admin.token.as_deref().unwrap());
    let me = same.get("/api/auth/me").await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(same.get("/api/cameras").await.json()[0]["name"], "yard");
    let (status, _) = p.terminate().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_subcommands_work_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = data_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = spawn(&args, &[("REALLIVE_ADMIN_PASSWORD", "env-admin-password")]).await;
    let admin = Api::new(p.addr).login("admin", "env-admin-password").await;

    let out = run(&[
        "user",
        "add",
        "--data-dir",
        d,
        "--username",
        "bob",
        "--email",
        "bob@example.com",
        "--role",
        "operator",
        "--password",
        "bob-password-1",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running server picks it up within its one-second poll.
    let mut ok = false;
    for _ in 0..40 {
        let users = admin.get("/api/users").await.json();
        if users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == "bob")
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the server never saw the new user");
    let bob = Api::new(p.addr).login("bob", "bob-password-1").await;
    assert_eq!(
        bob.get("/api/auth/me").await.json()["user"]["role"],
        "operator"
    );

    let out = run(&[
        "user",
        "add",
        "--data-dir",
        d,
        "--username",
        "BOB",
        "--email",
        "b2@example.com",
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("username is taken"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = run(&["user", "passwd", "--data-dir", d, "--username", "bob"]).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let new_pw = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password")
        .to_string();

    let out = run(&["user", "list", "--data-dir", d]).await;
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.contains("admin") && list.contains("bob") && list.contains("operator"),
        "{list}"
    );
    assert!(!list.contains("argon2"), "no hashes in the list");

    let out = run(&["user", "passwd", "--data-dir", d, "--username", "nobody"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named 'nobody'"));

    // The password change reaches the server too, and signs bob out.
    let mut signed_out = false;
    for _ in 0..40 {
        if bob.get("/api/auth/me").await.status == 401 {
            signed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed_out, "bob's old token still works");
    Api::new(p.addr).login("bob", &new_pw).await;
    let (status, _) = p.terminate().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nrtc_port = 0\ndata_dir = \"{}\"\nadmin_password = \"file-admin-password\"\nallow_registration = true\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let p = spawn(&["--config", cfg.to_str().unwrap()], &[]).await;
    let api = Api::new(p.addr);
    api.login("admin", "file-admin-password").await;
    let r = api
        .post(
            "/api/auth/register",
            serde_json::json!({"username": "zed", "email": "z@example.com", "password": "password-123"}),
        )
        .await;
    assert_eq!(
        r.status, 202,
        "the file opened registration (off by default)"
    );
    api.login("zed", "password-123").await;
    assert!(dir.path().join("data/accounts.sqlite").exists());
    let (status, _) = p.terminate().await;
    assert!(status.success());

    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\nlisen = 1\n").unwrap();
    let out = run(&["--config", cfg.to_str().unwrap()]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("lisen"), "{err}");

    let out = run(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-password",
        "short",
    ])
    .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 10"), "{err}");
    assert!(
        !err.contains("short\n") || err.matches("short").count() == 0,
        "{err}"
    );
}

/// The datagrams a program has sent to `NOTIFY_SOCKET` so far, as text
/// (the socket is non-blocking: this drains what is queued and returns,
/// however often the watchdog pings).
fn notifications(sock: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_systemd_it_says_ready_pings_the_watchdog_and_logs_json_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nrtc_port = 0\nrtc_tcp_port = 0\ndata_dir = \"{}\"\nadmin_password = \"file-admin-password\"\nlog_format = \"json\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let env = [
        ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
        // 400 ms: a ping every 200 ms.
        ("WATCHDOG_USEC", "400000"),
        ("RUST_LOG", "info,reallive_http=debug"),
    ];
    let p = spawn(&["--config", cfg.to_str().unwrap()], &env).await;
    let addr = p.addr;
    let r = Api::new(addr).get("/api/health?token=not-logged").await;
    let request_id = r
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
        .map(|(_, v)| v.clone())
        .expect("x-request-id");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = notifications(&sock);
    assert!(
        got.iter()
            .any(|m| m.contains("READY=1")
                && m.contains(&format!("STATUS=listening on http://{addr}"))),
        "{got:?}"
    );
    let pings = got.iter().filter(|m| m.trim() == "WATCHDOG=1").count();
    assert!(pings >= 3, "pings every 200 ms for 1.5 s: {got:?}");
    let (status, stderr) = p.terminate().await;
    assert!(status.success());
    assert!(
        notifications(&sock)
            .iter()
            .any(|m| m.contains("STOPPING=1")),
        "stopping is announced"
    );
    // The config said json: every log line is one JSON object (the
    // program's own `reallive-server: …` lines are not logs).
    let logs: Vec<serde_json::Value> = stderr
        .iter()
        .filter(|l| !l.starts_with("reallive-server: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["level"] == "INFO" && l["message"] == "shutting down"),
        "{stderr:?}"
    );
    assert!(stderr.iter().all(|l| !l.contains('\x1b')), "{stderr:?}");
    // A request's line carries its id (the header's), method and path,
    // and never the query.
    let line = logs
        .iter()
        .find(|l| l["message"] == "request" && l["request"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line for request {request_id}: {stderr:?}"));
    assert_eq!(line["path"], "/api/health", "{line}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert!(!stderr.iter().any(|l| l.contains("not-logged")));

    // --log-format beats the file; text to a pipe has no colour codes.
    let p = spawn(
        &["--config", cfg.to_str().unwrap(), "--log-format", "text"],
        &[("RUST_LOG", "info")],
    )
    .await;
    let (status, stderr) = p.terminate().await;
    assert!(status.success());
    let shutting = stderr
        .iter()
        .find(|l| l.contains("shutting down"))
        .unwrap_or_else(|| panic!("{stderr:?}"));
    assert!(shutting.contains(" INFO "), "{shutting}");
    assert!(serde_json::from_str::<serde_json::Value>(shutting).is_err());
    assert!(stderr.iter().all(|l| !l.contains('\x1b')), "{stderr:?}");
}
