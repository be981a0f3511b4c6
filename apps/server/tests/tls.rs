#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `reallive-server` over HTTPS, as a program (`docs/design/remote.md`):
//! a self-signed certificate is made once, its SHA-256 printed once and
//! served; plain HTTP on the port is redirected; a certificate pair
//! renewed on disk is served without a restart, and a broken one is
//! refused with a log line while the old one stays.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reallive_test_support::http::request;
use reallive_test_support::process::signal;
use reallive_test_support::tls;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

struct Server {
    child: Child,
    addr: std::net::SocketAddr,
    scheme: String,
    fingerprint: Option<String>,
    log: Arc<Mutex<String>>,
}

async fn start(data: &Path, tls_args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reallive-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--rtc-port", "0"])
        .args(tls_args)
        .env("REALLIVE_ADMIN_PASSWORD", "tls-test-password-1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let mut fingerprint = None;
    let (scheme, addr) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let l = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("the server exited: {}", log.lock().unwrap()));
            log.lock().unwrap().push_str(&format!("{l}\n"));
            if let Some(rest) =
                l.strip_prefix("reallive-server: made a self-signed TLS certificate, SHA-256 ")
            {
                fingerprint = Some(rest.trim().to_owned());
            }
            if let Some(a) = l.strip_prefix("reallive-server: listening on ") {
                let (scheme, addr) = a.split_once("://").unwrap();
                break (scheme.to_owned(), addr.parse().unwrap());
            }
        }
    })
    .await
    .expect("the server listens within 30 s");
    let log2 = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            log2.lock().unwrap().push_str(&format!("{l}\n"));
        }
    });
    Server {
        child,
        addr,
        scheme,
        fingerprint,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_server_serves_https_and_redirects_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = start(&data, &["--tls-self-signed"]).await;
    assert_eq!(s.scheme, "https");
    let pin = s
        .fingerprint
        .clone()
        .expect("the fingerprint is printed when made");
    assert_eq!(pin.len(), 64);
    let (status, body, shown) = tls::get(s.addr, "localhost", "/api/health", &pin)
        .await
        .unwrap();
    assert!(status.contains(" 200 "), "{status} {body}");
    assert_eq!(
        shown.as_deref(),
        Some(pin.as_str()),
        "the printed fingerprint is the served one"
    );
    let wrong = tls::get(s.addr, "localhost", "/api/health", &"ab".repeat(32)).await;
    assert!(wrong.is_err(), "a wrong pin is refused");

    // Over TLS, the URLs the API hands out are wss:// and https://.
    let call =
        |method: &'static str, path: String, token: Option<String>, body: serde_json::Value| {
            let pin = pin.clone();
            async move {
                let auth = token.map(|t| format!("Bearer {t}"));
                let mut headers = vec![("Content-Type", "application/json")];
                if let Some(a) = &auth {
                    headers.push(("Authorization", a.as_str()));
                }
                let body = if body.is_null() {
                    Vec::new()
                } else {
                    serde_json::to_vec(&body).unwrap()
                };
                let (status, text, _) =
                    tls::request(s.addr, "localhost", method, &path, &headers, &body, &pin)
                        .await
                        .unwrap();
                (
                    status,
                    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default(),
                )
            }
        };
    let (status, login) = call(
        "POST",
        "/api/auth/login".into(),
        None,
        serde_json::json!({"username": "admin", "password": "tls-test-password-1"}),
    )
    .await;
    assert!(status.contains(" 200 "), "{status} {login}");
    let token = login["token"].as_str().unwrap().to_owned();
    let (status, cam) = call(
        "POST",
        "/api/cameras".into(),
        Some(token.clone()),
        serde_json::json!({"name": "porch"}),
    )
    .await;
    assert!(status.contains(" 201 "), "{status} {cam}");
    let id = cam["camera"]["id"].as_i64().unwrap();
    let (_, info) = call(
        "GET",
        format!("/api/cameras/{id}/stream"),
        Some(token),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(
        info["signaling_url"], "wss://localhost/ws/signaling",
        "{info}"
    );
    assert_eq!(
        info["whep_url"],
        format!("https://localhost/whep/{id}"),
        "{info}"
    );

    let plain = request(s.addr, "GET", "/api/health", &[("Host", "localhost")], b"")
        .await
        .unwrap();
    assert_eq!(plain.status, 308);
    let location = plain.header("location").unwrap().to_owned();
    assert_eq!(location, "https://localhost/api/health");
    assert!(
        !plain.text().contains("status"),
        "nothing but the redirect: {}",
        plain.text()
    );
    assert!(
        signal(&mut s.child, "-TERM").await.success(),
        "{}",
        s.log.lock().unwrap()
    );

    // A restart keeps the certificate: nothing printed, the same one served.
    let mut s = start(&data, &["--tls-self-signed"]).await;
    assert_eq!(s.fingerprint, None, "printed once, when made");
    let (_, _, shown) = tls::get(s.addr, "localhost", "/api/health", &pin)
        .await
        .unwrap();
    assert_eq!(shown.as_deref(), Some(pin.as_str()));
    assert!(signal(&mut s.child, "-TERM").await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) =
        reallive_http::tls::self_signed(&dir.path().join("a"), &["localhost".into()]).unwrap();
    let (b, _) =
        reallive_http::tls::self_signed(&dir.path().join("b"), &["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let mut s = start(&dir.path().join("data"), &args).await;
    let served = || async {
        tls::get(s.addr, "localhost", "/api/health", "")
            .await
            .unwrap()
            .2
            .unwrap()
    };
    let pin_a = served().await;
    assert_eq!(pin_a, tls::sha256_hex(&der(&a.cert)));

    // A broken renewal (b's certificate, a's key): refused, a kept.
    std::fs::copy(&b.cert, &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    while !s.log.lock().unwrap().contains("not reloaded") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged: {}",
            s.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(served().await, pin_a, "the old certificate stays in use");

    // The renewal finished: b is served within the reload period.
    std::fs::copy(&b.key, &key).unwrap();
    let pin_b = tls::sha256_hex(&der(&b.cert));
    let deadline = Instant::now() + Duration::from_secs(25);
    while served().await != pin_b {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate is not served: {}",
            s.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(signal(&mut s.child, "-TERM").await.success());
}

/// The first certificate of a PEM file, DER.
fn der(pem: &Path) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(pem).unwrap();
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
