//! Bad command lines fail at once with one clear line, before any
//! network or disk work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn puller(args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_reallive-puller"))
        .args(["--server", "http://127.0.0.1:9"])
        .env("REALLIVE_TOKEN", "t")
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert!(!data.exists(), "{args:?}: nothing may be written");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_command_lines_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--camera"),
        (&["--camera", "x"], "invalid value 'x'"),
        (
            &["--camera", "1", "--listen", "0.0.0.0:0"],
            "needs --listen-token",
        ),
        (
            &["--camera", "1", "--max-bytes", "12 parsecs"],
            "--max-bytes",
        ),
        (
            &[
                "--camera",
                "1",
                "--preview",
                "--preview-sink",
                "no-such-sink",
            ],
            "'no-such-sink' is not installed",
        ),
    ];
    for (args, want) in cases {
        let (ok, err) = puller(args);
        assert!(!ok, "{args:?} must fail");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn preview_without_a_display_says_so() {
    if std::path::Path::new("/dev/dri").exists() {
        // A console with a GPU: kmssink would be picked; nothing to refuse.
        return;
    }
    let (ok, err) = puller(&["--camera", "1", "--preview"]);
    assert!(!ok);
    assert!(
        err.contains("no display") && err.contains("DISPLAY"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// `Debug` of the puller's settings never shows its secrets.
#[test]
fn debug_hides_the_secrets() {
    let c = reallive_puller::PullerConfig {
        server: "http://127.0.0.1:8080".into(),
        network: reallive_stream::Network::default(),
        login: reallive_stream::Login::Password {
            username: "rec".into(),
            password: "login-secret".into(),
        },
        cameras: vec![1],
        data_dir: "./data".into(),
        listen: None,
        listen_token: Some("playback-secret".into()),
        whep: false,
        retention: reallive_store::retention::RetentionPolicy::default(),
        preview: None,
    };
    let shown = format!("{c:?}");
    assert!(!shown.contains("playback-secret"), "{shown}");
    assert!(!shown.contains("login-secret"), "{shown}");
}

/// A secret on the command line still works, with a warning that names
/// the file flag to use instead; from the environment, no warning.
#[test]
fn a_secret_on_the_command_line_is_warned_about() {
    if std::path::Path::new("/dev/dri").exists() {
        // --preview would start (see above); the warning is the same.
        return;
    }
    let (ok, err) = puller(&["--camera", "1", "--preview", "--token", "t2"]);
    assert!(!ok);
    assert!(
        err.contains("--token puts a secret on the command line") && err.contains("--token-file"),
        "{err}"
    );
    assert!(
        !err.contains("t2"),
        "the warning never shows the secret: {err}"
    );
    let (_, err) = puller(&["--camera", "1", "--preview"]);
    assert!(!err.contains("command line"), "{err}");
}
