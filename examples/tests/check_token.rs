//! `check-token` as a user runs it: the verdict line and the exit status.

#![allow(clippy::unwrap_used)]

use std::process::Command;

fn check(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_check-token"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (out.status.success(), stdout.trim().to_string())
}

#[test]
fn a_strong_enough_grant_is_allowed() {
    let (ok, line) = check(&["--grant", "playback", "--need", "view"]);
    assert!(ok, "{line}");
    assert!(
        line.starts_with("allowed: user 7 (viewer) holds playback"),
        "{line}"
    );
}

#[test]
fn a_weaker_grant_is_refused() {
    let (ok, line) = check(&["--grant", "view", "--need", "control"]);
    assert!(!ok, "{line}");
    assert_eq!(line, "refused: user 7 holds view, but control is needed");
}

#[test]
fn a_tampered_token_is_refused_whatever_the_grant() {
    let (ok, line) = check(&["--grant", "control", "--need", "view", "--tamper"]);
    assert!(!ok, "{line}");
    assert_eq!(line, "refused: token: invalid token signature");
}

#[test]
fn an_unknown_permission_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_check-token"))
        .args(["--grant", "admin", "--need", "view"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown permission 'admin'"), "{stderr}");
}
