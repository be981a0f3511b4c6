#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Live video end to end, as a user sees it: the pusher publishes the test
//! pattern to a real reallive-server, and headless Chromium logs in through
//! the web UI and decodes it over WebRTC through the relay
//! (`scripts/e2e-live`, in a private network namespace). Then the server
//! restarts under them, and both must come back on their own.

use std::path::Path;
use std::process::Command;

#[test]
fn a_browser_decodes_the_pusher_through_the_relay_and_survives_a_server_restart() {
    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    assert!(
        server.exists(),
        "{} is missing: run the tests with --workspace so it is built",
        server.display()
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/e2e-live"))
        .arg(&server)
        .arg(pusher)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["ok"], true, "{line}");
    assert!(v["framesDecoded"].as_u64().unwrap() > 60, "{line}");
    assert!(v["ms"].as_u64().unwrap() <= 10_000, "{line}");
    // After the restart: a new connection decoding again within 10 s of
    // the server's return.
    assert!(v["resumedFrames"].as_u64().unwrap() >= 30, "{line}");
    assert!(v["resumeMs"].as_u64().unwrap() <= 10_000, "{line}");
}
