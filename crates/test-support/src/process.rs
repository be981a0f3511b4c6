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

/// Sends `signal` (`-TERM`, `-KILL`, ...) to `child` and waits, at most
/// 20 s, for it to exit; panics if it does not.
pub async fn signal(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().expect("the child is still running");
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
        .expect("running kill");
    assert!(sent.success(), "kill {signal} {pid} failed");
    tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .unwrap_or_else(|_| panic!("process {pid} still runs 20 s after {signal}"))
        .expect("waiting for the child")
}

/// [`spawn_server`] on a given HTTP address: to restart a server where its
/// clients expect it.
pub async fn spawn_server_at(
    bin: &Path,
    data_dir: &Path,
    admin_password: &str,
    listen: SocketAddr,
) -> (Child, SocketAddr) {
    let s = spawn_server_with(bin, data_dir, admin_password, listen, &[]).await;
    (s.child, s.addr)
}

/// A server started by [`spawn_server_with`].
#[derive(Debug)]
pub struct Spawned {
    /// Killed on drop.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: String,
    /// The SHA-256 of a self-signed certificate it made on this start
    /// (`--tls-self-signed`), as `--pin-sha256` takes it.
    pub fingerprint: Option<String>,
}

/// [`spawn_server_at`] with more arguments (`--tls-self-signed`, ...).
pub async fn spawn_server_with(
    bin: &Path,
    data_dir: &Path,
    admin_password: &str,
    listen: SocketAddr,
    args: &[&str],
) -> Spawned {
    let mut child = Command::new(bin)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &listen.to_string(), "--rtc-port", "0"])
        .args(args)
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
    let mut fingerprint = None;
    let (scheme, addr) = loop {
        match lines.next_line().await {
            Ok(Some(l)) => {
                if let Some(f) =
                    l.strip_prefix("reallive-server: made a self-signed TLS certificate, SHA-256 ")
                {
                    fingerprint = Some(f.trim().to_owned());
                }
                if let Some(a) = l.strip_prefix("reallive-server: listening on ") {
                    let (scheme, addr) = a.split_once("://").unwrap_or_else(|| panic!("{l}"));
                    break (
                        scheme.to_owned(),
                        addr.parse().unwrap_or_else(|e| panic!("{a}: {e}")),
                    );
                }
            }
            _ => panic!("{} exited before listening", bin.display()),
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Spawned {
        child,
        addr,
        scheme,
        fingerprint,
    }
}

/// `/proc/{pid}/{file}`, or `/proc/self/{file}` for `None`.
fn proc_path(pid: Option<u32>, file: &str) -> String {
    pid.map_or_else(
        || format!("/proc/self/{file}"),
        |p| format!("/proc/{p}/{file}"),
    )
}

/// A `kB` field of `/proc/PID/status`; 0 if the process is gone.
fn status_kib(pid: Option<u32>, field: &str) -> u64 {
    std::fs::read_to_string(proc_path(pid, "status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of process `pid` (this process if `None`), in KiB.
pub fn rss_kib(pid: Option<u32>) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Peak resident memory of process `pid` since it started (`VmHWM`), in
/// KiB.
pub fn peak_rss_kib(pid: Option<u32>) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// CPU time process `pid` (this process if `None`) has used, user +
/// system over all its threads, from `/proc/PID/stat`; zero if the
/// process is gone. Children's time is not included. For benchmarks that
/// report cores used: divide a difference by the wall time between reads.
pub fn cpu_time(pid: Option<u32>) -> std::time::Duration {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).unwrap_or_default();
    // utime and stime are fields 14 and 15; count after the command name,
    // which may itself hold spaces and parentheses.
    let ticks: u64 = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..))
        .map(|rest| {
            rest.split(' ')
                .skip(11)
                .take(2)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on every Linux this runs on.
    std::time::Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_and_memory_of_a_pid_match_self() {
        // Burn a few ticks so the counters are not zero.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(x, 1);
        let me = Some(std::process::id());
        let (by_pid, by_self) = (cpu_time(me), cpu_time(None));
        assert!(by_pid >= std::time::Duration::from_millis(50), "{by_pid:?}");
        assert!(by_self >= by_pid && by_self - by_pid < std::time::Duration::from_millis(100));
        // The peak, read later, is at least the earlier current figure.
        let rss = rss_kib(me);
        assert!(rss > 0 && peak_rss_kib(me) >= rss);
        // A process that is gone reads as zero.
        assert_eq!(cpu_time(Some(u32::MAX)), std::time::Duration::ZERO);
        assert_eq!(rss_kib(Some(u32::MAX)), 0);
    }
}
