#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Live video end to end, as a user sees and hears it: the pusher publishes
//! the test pattern and a test tone to a real reallive-server, and headless
//! Chromium logs in through the web UI, decodes both over WebRTC through the
//! relay and unmutes the player
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
    // Its sound: Opus decoded (half a second of samples at 48 kHz), and the
    // player unmuted with one click.
    assert_eq!(v["audioCodec"], "audio/opus", "{line}");
    assert!(v["audioSamples"].as_u64().unwrap() > 24_000, "{line}");
    assert_eq!(v["unmuted"], true, "{line}");
    assert!(v["ms"].as_u64().unwrap() <= 10_000, "{line}");
    // After the restart: a new connection decoding again within 10 s of
    // the server's return.
    assert!(v["resumedFrames"].as_u64().unwrap() >= 30, "{line}");
    assert!(v["resumeMs"].as_u64().unwrap() <= 10_000, "{line}");
}

/// A second WebRTC stack (the `webrtc` crate's subscriber, not a browser)
/// watches the camera through the relay and gets at least 90% of the frames
/// the pusher sent, and its microphone (`--audio test`): Opus packets 20 ms
/// apart on the video's timeline. Both signal over `/ws/signaling`; the
/// viewer joins before the publisher and waits.
/// The issue's bound on live lip sync: the test pattern's flash and the
/// test tone's click, as headless Chromium shows and plays them, within
/// 60 ms of each other (median of 8 pairs; `scripts/e2e-sync`). Chromium
/// lines the tracks up gradually from its first sender reports, so the
/// timing starts 25 s in; the first seconds' figures are in
/// `docs/benchmarks.md`.
#[test]
fn chromium_plays_the_click_with_its_flash() {
    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/e2e-sync"))
        .arg(&server)
        .arg(pusher)
        .env("SETTLE_MS", "25000")
        .env("PAIRS", "8")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    println!("{line}");
    let median = v["medianMs"].as_f64().unwrap();
    assert!(
        median.abs() <= 60.0,
        "click - flash median {median} ms, over 60 ms: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_rs_subscriber_gets_the_frames_the_pusher_sent() {
    relay_round_trip(false).await;
}

/// The same over HTTP: the pusher publishes with WHIP and the subscriber
/// watches with WHEP. WHEP answers 503 while nobody publishes, so the
/// subscriber starts once the camera is online; every frame sent before
/// then still counts as one it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_reaches_a_whep_subscriber() {
    relay_round_trip(true).await;
}

async fn relay_round_trip(http: bool) {
    use reallive_stream::{SubscribeConfig, WebRtcSubscriber};
    use reallive_test_support::http::Api;
    use reallive_test_support::process::spawn_server;

    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    let dir = tempfile::tempdir().unwrap();
    let (mut srv, addr) = spawn_server(&server, dir.path(), "live-admin-password").await;
    let admin = Api::new(addr).login("admin", "live-admin-password").await;
    let created = admin
        .post("/api/cameras", serde_json::json!({"name": "cam"}))
        .await
        .json();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();

    let mut args: Vec<String> = [
        "--source",
        "test",
        "--width",
        "640",
        "--height",
        "360",
        "--key",
        &key,
        "--audio",
        "test",
        "--seconds",
        // Over WHEP the viewer can only start once the publisher is online,
        // and every frame before its first keyframe counts as missed: a
        // longer run keeps that start-up from deciding the ratio.
        if http { "20" } else { "8" },
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if http {
        args.extend(["--whip".into(), format!("http://{addr}/whip/{cam}")]);
    } else {
        args.extend([
            "--server".into(),
            format!("http://{addr}"),
            "--camera".into(),
            cam.to_string(),
        ]);
    }
    let start_viewer = || {
        let (tx, mut rx) = reallive_core::frame_channel(1024);
        let (atx, mut arx) = reallive_core::audio_channel(1024);
        let sub = WebRtcSubscriber::new(SubscribeConfig {
            server: format!("http://{addr}"),
            camera: cam,
            token: reallive_stream::Credential::new(admin.token.clone().unwrap()),
            whep: http.then(|| format!("http://{addr}/whep/{cam}")),
            network: reallive_stream::Network::default(),
        })
        .start_session_with_audio(tx, Some(atx))
        .unwrap();
        let counter = tokio::spawn(async move {
            let mut n = 0u64;
            let mut first_keyframe = None;
            let mut video_pts = (i64::MAX, i64::MIN);
            while let Some(f) = rx.recv().await {
                first_keyframe.get_or_insert(f.keyframe);
                n += 1;
                video_pts = (video_pts.0.min(f.pts_90k), video_pts.1.max(f.pts_90k));
            }
            (n, first_keyframe, video_pts)
        });
        let audio = tokio::spawn(async move {
            let mut pts = Vec::new();
            let mut codec = None;
            while let Some(a) = arx.recv().await {
                codec.get_or_insert(a.params.codec);
                pts.push(a.pts_90k);
            }
            (pts, codec)
        });
        (sub, counter, audio)
    };
    let mut viewer = None;
    if !http {
        // The viewer joins first: its video starts with the publisher's
        // first keyframe, no renegotiation.
        viewer = Some(start_viewer());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let pushing = tokio::process::Command::new(pusher)
        .args(&args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if http {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let status = admin.get(&format!("/api/cameras/{cam}")).await.json()["status"].clone();
            if status != "offline" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the WHIP publisher never came online"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        viewer = Some(start_viewer());
    }
    let (sub, counter, audio) = viewer.unwrap();
    let out = pushing.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let sent: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("reallive-pusher: published "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    // Let the last frames arrive, then stop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sub.stop();
    drop(sub);
    let (received, first_keyframe, video_pts) =
        tokio::time::timeout(std::time::Duration::from_secs(10), counter)
            .await
            .unwrap()
            .unwrap();
    let (audio_pts, codec) = tokio::time::timeout(std::time::Duration::from_secs(10), audio)
        .await
        .unwrap()
        .unwrap();
    assert!(sent >= 200, "8 s at 30 fps: {sent}");
    assert_eq!(first_keyframe, Some(true), "the first frame is a keyframe");
    assert!(
        received * 100 >= sent * 90,
        "received {received} of {sent} frames"
    );
    eprintln!("received {received} of {sent} frames");
    // The microphone: Opus, 50 packets a second for as long as the video
    // came but its first second (at least 90 % of them), 20 ms apart, on
    // the video's timeline.
    assert_eq!(codec, Some(reallive_core::AudioCodec::Opus));
    let video_span = video_pts.1 - video_pts.0;
    let expected = (video_span - 90_000) / 1800;
    let n = audio_pts.len() as i64;
    assert!(
        n * 100 >= expected * 90,
        "{n} audio packets for {} s of video",
        video_span / 90_000
    );
    let steady = audio_pts.windows(2).filter(|w| w[1] - w[0] == 1800).count() as i64;
    assert!(
        steady * 100 >= (n - 1) * 95,
        "{steady} of {n} audio packets 20 ms after the one before; the others (index, step): {:?}",
        audio_pts
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1] - w[0] != 1800)
            .map(|(i, w)| (i, w[1] - w[0]))
            .collect::<Vec<_>>()
    );
    let (first, last) = (audio_pts[0], audio_pts[audio_pts.len() - 1]);
    // The first second of sound may be lost while the session starts
    // (a publisher's first Opus packets race its DTLS handshake); sound
    // captured just before the first frame is placed there by the sender
    // reports, before the picture's start.
    assert!(
        (-45_000..=135_000).contains(&(first - video_pts.0)) && (last - video_pts.1).abs() < 45_000,
        "audio {first}..{last} and video {}..{} (90 kHz) are not one timeline",
        video_pts.0,
        video_pts.1
    );
    eprintln!("received {n} audio packets for {expected} expected");
    srv.kill().await.unwrap();
}

/// Over TLS (`docs/design/remote.md`): against a server with a self-signed
/// certificate, the pusher publishes over `wss://` trusting it by
/// `--pin-sha256`, and a viewer pinned the same way watches over `https://`
/// WHEP. A wrong pin, and an `http://` URL the server redirects to
/// `https://`, each end the pusher at once with one clear line and exit
/// code 1, never a retry in clear text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pusher_publishes_over_wss_to_a_pinned_self_signed_server() {
    use reallive_stream::{Credential, Network, SubscribeConfig, WebRtcSubscriber};
    use reallive_test_support::process::spawn_server_with;
    use reallive_test_support::tls;

    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let server = Path::new(pusher).with_file_name("reallive-server");
    let dir = tempfile::tempdir().unwrap();
    let srv = spawn_server_with(
        &server,
        dir.path(),
        "tls-admin-password",
        "127.0.0.1:0".parse().unwrap(),
        &["--tls-self-signed"],
    )
    .await;
    assert_eq!(srv.scheme, "https");
    let pin = srv.fingerprint.clone().expect("the fingerprint is printed");
    let port = srv.addr.port();
    let base = format!("https://localhost:{port}");
    let net = Network::pinned(&pin).unwrap();
    let admin = reallive_stream::login(&net, &base, "admin", "tls-admin-password")
        .await
        .unwrap();
    let bearer = format!("Bearer {}", admin.token);
    let (status, body, _) = tls::request(
        srv.addr,
        "localhost",
        "POST",
        "/api/cameras",
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ],
        br#"{"name":"porch"}"#,
        &pin,
    )
    .await
    .unwrap();
    assert!(status.contains(" 201 "), "{status} {body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_owned();
    let key_file = dir.path().join("key");
    reallive_core::fs::write_secret_file(&key_file, &key).unwrap();

    let push = |server_url: String, pin: String| {
        let mut c = tokio::process::Command::new(pusher);
        c.args(["--source", "test", "--width", "320", "--height", "180"])
            .args(["--server", &server_url, "--camera", &cam.to_string()])
            .arg("--key-file")
            .arg(&key_file)
            .args(["--pin-sha256", &pin, "--seconds", "6"])
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    };
    let (tx, mut rx) = reallive_core::frame_channel(1024);
    let viewer = WebRtcSubscriber::new(SubscribeConfig {
        server: base.clone(),
        camera: cam,
        token: Credential::new(admin.token.clone()),
        whep: None,
        network: net.clone(),
    })
    .start_session(tx)
    .unwrap();
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let out = push(base.clone(), pin.clone()).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    viewer.stop();
    drop(viewer);
    let received = tokio::time::timeout(std::time::Duration::from_secs(10), counter)
        .await
        .unwrap()
        .unwrap();
    assert!(
        received >= 120,
        "6 s at 30 fps over wss and https: {received}"
    );

    // A wrong pin: one line naming the server and why, exit code 1, fast.
    let started = std::time::Instant::now();
    let out = push(base.clone(), "ab".repeat(32)).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].contains(&format!(
            "https://localhost:{port}: certificate not trusted"
        )),
        "{err}"
    );

    // http:// to the TLS port: the redirect is refused, not followed.
    let out = push(format!("http://localhost:{port}"), pin.clone())
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("redirects to https://"), "{err}");
}

/// The ICE ladder over networks the test builds (`scripts/e2e-remote`, in
/// namespaces with nftables routers and coturn): a pusher behind a NAT
/// that drops its UDP publishes over ICE-TCP; a viewer whose UDP to the
/// server is dropped plays through TURN with credentials the server
/// minted; a server behind 1:1 NAT with `--public-ip` is reached directly;
/// and headless Chromium plays through the web UI on every rung (UDP,
/// https:// with a self-signed certificate, ICE-TCP, TURN over UDP and
/// over TCP). Each scenario reads which path carried the media.
#[test]
fn the_ice_ladder_reaches_through_nat_firewalls_and_turn() {
    let pusher = env!("CARGO_BIN_EXE_reallive-pusher");
    let bins = |name: &str| {
        let p = Path::new(pusher).with_file_name(name);
        assert!(
            p.exists(),
            "{} is missing: run the tests with --workspace so it is built",
            p.display()
        );
        p
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/e2e-remote"))
        .arg(bins("reallive-server"))
        .arg(pusher)
        .arg(bins("reallive-puller"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let scenarios: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let find = |name: &str| {
        scenarios
            .iter()
            .find(|s| s["scenario"] == name)
            .unwrap_or_else(|| panic!("no {name} scenario: {stdout}\n{stderr}"))
    };
    let nat = find("nat-ice-tcp");
    assert_eq!(nat["publisher_transport"], "tcp", "{nat}\n{stderr}");
    let turn = find("turn");
    assert_eq!(turn["turn_allocated"], true, "{turn}\n{stderr}");
    assert_eq!(turn["secret_in_logs"], false, "{turn}");
    assert_eq!(
        turn["turn_permission_to_server"], true,
        "the video went through coturn: {turn}"
    );
    // The credential lives 60 s; the viewer plays 75 s: the session is not
    // dropped, and coturn takes its refreshes signed with the expired one.
    assert!(turn["frames"].as_u64().unwrap_or(0) > 1800, "{turn}");
    assert!(
        turn["refreshed_after_expiry"].as_u64().unwrap_or(0) > 0,
        "{turn}"
    );
    assert_eq!(find("no-secrets-in-logs")["ok"], true, "{stdout}");
    let public = find("public-ip");
    assert_eq!(public["subscriber_transport"], "udp", "{public}\n{stderr}");
    // Chromium through the web UI, on each rung: the selected pair's local
    // end says what carried the video.
    let rung = |name: &str| {
        let s = find(name);
        (
            s["candidate_type"].as_str().unwrap_or_default().to_owned(),
            s["protocol"].as_str().unwrap_or_default().to_owned(),
            s["relay_protocol"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(rung("browser-ice-tcp").1, "tcp", "{stdout}");
    assert_eq!(rung("browser-tls").1, "udp", "{stdout}");
    assert_eq!(
        rung("browser-turn-udp"),
        ("relay".into(), "udp".into(), "udp".into()),
        "{stdout}"
    );
    assert_eq!(
        rung("browser-turn-tcp"),
        ("relay".into(), "udp".into(), "tcp".into()),
        "{stdout}"
    );
    // Behind Caddy and nginx: one client's failed logins do not lock out
    // another, and /metrics stays closed to the outside.
    for proxy in ["proxy-caddy", "proxy-nginx"] {
        let p = find(proxy);
        assert_eq!(p["client_b_login"], 200, "{p}");
        assert_eq!(p["outside_metrics"], 401, "{p}");
        assert_eq!(p["pusher_streaming"], true, "{p}\n{stderr}");
    }
    for s in &scenarios {
        assert_eq!(s["ok"], true, "{s}\n{stdout}\n{stderr}");
        eprintln!("{s}");
    }
    assert!(out.status.success(), "{stdout}\n{stderr}");
}
