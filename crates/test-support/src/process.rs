//! Real RealLive programs as test peers.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Starts `reallive-server` at `bin` on a fresh `data_dir`, listening on
/// 127.0.0.1 with an OS-chosen HTTP and relay port, with `admin_password`
/// for the first admin. Returns the child (killed on drop) and its HTTP
/// address, read from its "listening on" line; its further stderr is
/// drained so it never blocks.
pub async fn spawn_server(
    bin: &Path,
    data_dir: &Path,
    admin_password: &str,
) -> (Child, SocketAddr) {
    spawn_server_at(
        bin,
        data_dir,
        admin_password,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
}

/// [`spawn_server`] on a given HTTP address: to restart a server where its
/// clients expect it.
pub async fn spawn_server_at(
    bin: &Path,
    data_dir: &Path,
    admin_password: &str,
    listen: SocketAddr,
) -> (Child, SocketAddr) {
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &listen.to_string(), "--rtc-port", "0"])
        .env("REALLIVE_ADMIN_PASSWORD", admin_password)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let Some(stderr) = child.stderr.take() else {
        panic!("no stderr pipe");
    };
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        match lines.next_line().await {
            Ok(Some(l)) => {
                if let Some(a) = l.strip_prefix("reallive-server: listening on http://") {
                    break a.parse().unwrap_or_else(|e| panic!("{a}: {e}"));
                }
            }
            _ => panic!("{} exited before listening", bin.display()),
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Resident memory of process `pid` (this process if `None`), in KiB.
pub fn rss_kib(pid: Option<u32>) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_string(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
