//! Attacks on accounts against a real `reallive-server` and `reallive-nvr`:
//! finding out who has an account, guessing one user's password from many
//! addresses, and reading a server's state without signing in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use reallive_hostile::{ADMIN_PASSWORD, Program, post_from};
use serde_json::json;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Registration is closed unless configured; when open, a taken username
/// or email gets exactly the answer a free one does, and takes nothing
/// over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_does_not_reveal_who_has_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let closed = Program::server(&dir.path().join("closed"), &[]).await;
    let r = closed
        .api()
        .post(
            "/api/auth/register",
            json!({"username": "newbie", "email": "n@example.com", "password": "password-123"}),
        )
        .await;
    assert_eq!(r.status, 403, "closed by default: {}", r.text());
    drop(closed);

    let cfg = dir.path().join("server.toml");
    std::fs::write(&cfg, "[server]\nallow_registration = true\n").unwrap();
    let open = Program::server(
        &dir.path().join("open"),
        &["--config", cfg.to_str().unwrap()],
    )
    .await;
    let api = open.api();
    let register = |name: &str, email: &str, pw: &str| {
        api.post(
            "/api/auth/register",
            json!({"username": name, "email": email, "password": pw}),
        )
    };
    let free = register("fresh", "fresh@example.com", "password-123").await;
    assert_eq!(free.status, 202, "{}", free.text());
    for (name, email) in [
        ("admin", "x@example.com"),
        ("FRESH", "y@example.com"),
        ("other", "Fresh@Example.com"),
    ] {
        let taken = register(name, email, "attacker-pw-1").await;
        assert_eq!(
            (taken.status, taken.text()),
            (free.status, free.text()),
            "{name} / {email}"
        );
        let r = api
            .post(
                "/api/auth/login",
                json!({"username": name, "password": "attacker-pw-1"}),
            )
            .await;
        assert_eq!(
            r.status, 401,
            "{name}: the attacker's password does not work"
        );
    }
    open.admin().await;
    api.login("fresh", "password-123").await;
}

/// Guessing the admin's password from ever-new addresses slows the
/// username down for everyone but the addresses the admin signed in from:
/// the real admin, at home, is never locked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_password_from_many_addresses_is_slowed_but_never_locks_out_home() {
    let dir = tempfile::tempdir().unwrap();
    let server = Program::server(dir.path(), &[]).await;
    let to = server.addr();
    let home = loopback(1);
    let right = json!({"username": "admin", "password": ADMIN_PASSWORD});
    let (status, _) = post_from(home, to, "/api/auth/login", &right).await;
    assert_eq!(status, 200, "the admin signs in from home");

    // Five wrong guesses, each from a new address (the per-username burst).
    for i in 0..5u8 {
        let (status, _) = post_from(
            loopback(10 + i),
            to,
            "/api/auth/login",
            &json!({"username": "Admin", "password": format!("guess-{i}-wrong")}),
        )
        .await;
        assert_eq!(status, 401, "guess {i}");
    }
    // The sixth, from yet another address, waits, even with the right password.
    let (status, body) = post_from(loopback(20), to, "/api/auth/login", &right).await;
    assert_eq!(status, 429, "{body}");
    // Home is not slowed.
    let (status, body) = post_from(home, to, "/api/auth/login", &right).await;
    assert_eq!(status, 200, "home signs in during the attack: {body}");
}

/// A stranger learns only whether a server is up: no version, no uptime,
/// no camera counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_learns_only_ok_or_degraded_from_health() {
    let dir = tempfile::tempdir().unwrap();
    for program in [
        Program::server(&dir.path().join("server"), &[]).await,
        Program::nvr(None, &dir.path().join("nvr")).await,
    ] {
        let anon = program.api().get("/api/health").await;
        assert_eq!(anon.status, 200);
        assert_eq!(anon.json(), json!({"status": "ok"}), "{}", anon.text());
        let forged = program
            .api()
            .with_token("eyJhbGciOiJub25lIn0.eyJzdWIiOjF9.")
            .get("/api/health")
            .await;
        assert_eq!(forged.json(), json!({"status": "ok"}));
        let signed_in = program.admin().await.get("/api/health").await.json();
        assert!(signed_in["version"].is_string(), "{signed_in}");
    }
}
