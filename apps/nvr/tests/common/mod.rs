//! What the NVR's process tests share: the NVR as a child process, its
//! status, and what it recorded.

// Each test binary uses its own share of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::http::Api;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub const PASSWORD: &str = "nvr-test-password-1";

/// A running NVR: its API address and everything it printed.
pub struct Nvr {
    pub child: Child,
    pub addr: SocketAddr,
    /// `(id, name)` per camera, as it printed them.
    pub cameras: Vec<(i64, String)>,
    pub log: Arc<Mutex<String>>,
}

impl Nvr {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

pub async fn start_nvr(config: &Path, data: &Path) -> Nvr {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reallive-nvr"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--rtc-port", "0"])
        .env("REALLIVE_ADMIN_PASSWORD", PASSWORD)
        .env(
            "RUST_LOG",
            std::env::var("NVR_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let mut cameras = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let l = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("the NVR exited: {}", log.lock().unwrap()));
            log.lock().unwrap().push_str(&format!("{l}\n"));
            if let Some(c) = l.strip_prefix("reallive-nvr: camera ") {
                let (id, name) = c.split_once(": ").unwrap();
                cameras.push((id.parse().unwrap(), name.to_string()));
            }
            if let Some(a) = l.strip_prefix("reallive-nvr: listening on http://") {
                break a.parse().unwrap();
            }
        }
    })
    .await
    .expect("the NVR listens within 30 s");
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            log2.lock().unwrap().push_str(&format!("{l}\n"));
        }
    });
    Nvr {
        child,
        addr,
        cameras,
        log,
    }
}

/// Polls `/api/status` until `done` holds for it, at most `secs`.
pub async fn wait_status(
    api: &Api,
    secs: u64,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_json(api, "/api/status", secs, what, done).await
}

/// Waits (at most 20 s) until every camera of `ids` records.
pub async fn wait_running(api: &Api, ids: &[i64]) -> serde_json::Value {
    let what = format!("cameras {ids:?} running");
    wait_status(api, 20, &what, |s| {
        ids.iter().all(|id| state_of(s, *id) == "running")
    })
    .await
}

/// Polls GET `path` until `done` holds for its JSON, at most `secs`.
pub async fn wait_json(
    api: &Api,
    path: &str,
    secs: u64,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = api.get(path).await.json();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn state_of(status: &serde_json::Value, id: i64) -> String {
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["state"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `(seconds in ffprobe, files, largest gap between files in ms)` of a
/// camera's recordings.
pub async fn recorded(data: &Path, id: i64) -> (f64, usize, i64) {
    let (store, _) = Store::open(StoreConfig::new(data)).await.unwrap();
    let recs = store
        .recordings(&reallive_core::CameraId(id).store_key(), TimeRange::all())
        .await
        .unwrap();
    let mut secs = 0.0;
    for r in &recs {
        let p = reallive_test_support::ffprobe::probe(&store.root().join(&r.path));
        secs += p.duration_secs.unwrap_or(0.0);
    }
    let gap = recs
        .windows(2)
        .map(|w| (w[1].start_utc_ns - w[0].end_utc_ns) / 1_000_000)
        .max()
        .unwrap_or(0);
    store.close().await;
    (secs, recs.len(), gap)
}

/// Reads a server-sent event stream until an `event: <name>` arrives, or
/// `within` passes; returns its `data`.
pub async fn next_sse(
    stream: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    name: &str,
    within: Duration,
) -> Option<serde_json::Value> {
    use tokio::io::AsyncBufReadExt as _;
    let deadline = tokio::time::Instant::now() + within;
    let mut current = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout_at(deadline, stream.read_line(&mut line))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        let line = line.trim_end();
        if let Some(ev) = line.strip_prefix("event: ") {
            current = ev.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ")
            && current == name
        {
            return serde_json::from_str(data).ok();
        }
    }
}

/// Opens the event stream at `path` with `token`; the stream after its
/// headers.
pub async fn open_sse(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
) -> (u16, tokio::io::BufReader<tokio::net::TcpStream>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut r = tokio::io::BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).await.unwrap();
    let code = status.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.unwrap();
        if h.trim().is_empty() {
            break;
        }
    }
    (code, r)
}

/// What a browser test needs, each checked with the way to get it.
pub struct BrowserSetup {
    /// The repository.
    pub root: PathBuf,
    /// `web-ui`, with `dist` built and playwright-core installed.
    pub web: PathBuf,
    /// Chromium (`CHROMIUM`, else Debian's `/usr/bin/chromium`).
    pub chromium: String,
}

/// Checks `web-ui/dist` (`make ui`), `web-ui/node_modules` (playwright-core)
/// and Chromium; panics saying which is missing.
pub fn browser_setup() -> BrowserSetup {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let web = root.join("web-ui");
    assert!(
        web.join("dist/index.html").is_file(),
        "web-ui/dist is not built: run `make ui` (or `cd web-ui && npm ci && npm run build`) first"
    );
    assert!(
        web.join("node_modules/playwright-core/package.json")
            .is_file(),
        "web-ui/node_modules has no playwright-core: run `cd web-ui && npm ci`"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: install Debian's chromium"
    );
    BrowserSetup {
        root,
        web,
        chromium,
    }
}

/// Runs `web-ui/e2e/<script>` in Node against the NVR at `base`, with
/// `env` beside `BASE_URL`, `CHROMIUM` and a `HARD_TIMEOUT_MS` 5 s inside
/// `timeout`, and returns the JSON line it ends with (its stderr goes to
/// the test's). Panics when it does not end in time or prints no JSON.
pub async fn run_e2e(
    browser: &BrowserSetup,
    script: &str,
    base: SocketAddr,
    env: &[(&str, &str)],
    timeout: Duration,
) -> serde_json::Value {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(browser.web.join("e2e").join(script))
        .current_dir(&browser.web)
        .env("BASE_URL", format!("http://{base}"))
        .env("CHROMIUM", &browser.chromium)
        .env(
            "HARD_TIMEOUT_MS",
            timeout
                .saturating_sub(Duration::from_secs(5))
                .as_millis()
                .to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("run node (Node.js 20+) on web-ui/e2e/{script}: {e}"));
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not end within {timeout:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    eprintln!(
        "{script} ({:.1} s): {line}",
        started.elapsed().as_secs_f64()
    );
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON line ({e}): {stdout}"))
}
