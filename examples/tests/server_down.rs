//! The two programs that talk to a RealLive server, run against a closed
//! port: each must say what failed in one line and exit non-zero, rather
//! than hang retrying.
//!
//! Against a live server they need `reallive-server`, an app this crate
//! may not depend on; `apps/pusher/tests/live.rs` and
//! `apps/puller/tests/record.rs` cover publishing and subscribing end to
//! end.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use reallive_test_support::free_port;

fn run_against_closed_port(bin: &str, args: &[&str]) -> String {
    let server = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["--server", &server, "--camera", "1"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&server), "{stderr}");
    stderr
}

#[test]
fn publishing_to_a_closed_port_fails_in_one_line() {
    let bin = env!("CARGO_BIN_EXE_publish-test-pattern");
    let line = run_against_closed_port(bin, &["--key", "rl_secret-key"]);
    assert!(
        line.starts_with("publish-test-pattern: cannot reach the server at http://127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("refused"), "{line}");
    assert!(!line.contains("rl_secret-key"), "the key leaked: {line}");
}

#[test]
fn recording_from_a_closed_port_fails_in_one_line() {
    let bin = env!("CARGO_BIN_EXE_record-custom-storage");
    let args = ["--user", "u", "--password", "hunter2-pass"];
    let line = run_against_closed_port(bin, &args);
    assert!(
        line.starts_with("record-custom-storage: cannot sign in at http://127.0.0.1:"),
        "{line}"
    );
    assert!(!line.contains("hunter2"), "the password leaked: {line}");
}
