#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One publisher, 2,000 viewer join/leave cycles against the real binary:
//! its memory settles and no file descriptor leaks.

use std::time::{Duration, Instant};

use reallive_test_support::http::{Api, request};
use reallive_test_support::process::{rss_kib, spawn_server};
use serde_json::json;
use str0m::media::{Direction, MediaKind};

const BIN: &str = env!("CARGO_BIN_EXE_reallive-server");

fn offer(dir: Direction) -> String {
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(
        str0m::Candidate::host("127.0.0.1:40000".parse().unwrap(), "udp").unwrap(),
    );
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, dir, None, None, None);
    change.apply().unwrap().0.to_sdp_string()
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_viewer_cycles_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) =
        spawn_server(std::path::Path::new(BIN), dir.path(), "soak-admin-password").await;
    let pid = child.id().unwrap();

    let admin = Api::new(addr).login("admin", "soak-admin-password").await;
    let created = admin
        .post("/api/cameras", json!({"name": "soak"}))
        .await
        .json();
    let cam = created["camera"]["id"].as_i64().unwrap();
    let key = created["stream_key"].as_str().unwrap().to_string();
    let token = admin.token.clone().unwrap();
    let post = |path: String, bearer: String, sdp: String| async move {
        let auth = format!("Bearer {bearer}");
        request(
            addr,
            "POST",
            &path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/sdp"),
            ],
            sdp.as_bytes(),
        )
        .await
        .unwrap()
    };
    // The publisher (WHIP; its ICE never completes in this test, which
    // keeps the camera online for the relay's 30 s connect window).
    let r = post(
        format!("/whip/{cam}"),
        key.clone(),
        offer(Direction::SendOnly),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());

    let viewer_offer = offer(Direction::RecvOnly);
    let cycle = |i: usize| {
        let (token, sdp) = (token.clone(), viewer_offer.clone());
        async move {
            let r = post(format!("/whep/{cam}"), token.clone(), sdp).await;
            assert_eq!(r.status, 201, "cycle {i}: {}", r.text());
            let loc = r.header("location").unwrap().to_string();
            let auth = format!("Bearer {token}");
            let d = request(addr, "DELETE", &loc, &[("Authorization", &auth)], b"")
                .await
                .unwrap();
            assert_eq!(d.status, 204, "cycle {i}");
        }
    };
    let started = Instant::now();
    for i in 0..100 {
        cycle(i).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (rss_100, fds_100) = (rss_kib(Some(pid)), fds(pid));
    for i in 100..2000 {
        cycle(i).await;
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "the soak must finish inside the publisher's window"
        );
    }
    // A connection or two may still be closing, or SQLite have a journal
    // open: wait a little for the count to settle. A leak per cycle would
    // be hundreds of descriptors by now.
    let mut fds_end = fds(pid);
    for _ in 0..20 {
        if fds_end <= fds_100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds_end = fds(pid);
    }
    let rss_end = rss_kib(Some(pid));
    eprintln!(
        "2000 cycles in {:.1} s; RSS {rss_100} -> {rss_end} KiB; fds {fds_100} -> {fds_end}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        rss_end as f64 <= rss_100 as f64 * 1.10,
        "RSS grew from {rss_100} KiB to {rss_end} KiB"
    );
    assert!(
        fds_end <= fds_100 + 4,
        "fds grew from {fds_100} to {fds_end} over 1,900 cycles: {:?}",
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .collect::<Vec<_>>())
            .unwrap_or_default()
    );
    let m = Api::new(addr).get("/metrics").await.text();
    assert!(
        m.contains(&format!("reallive_relay_subscribers{{camera=\"{cam}\"}} 0")),
        "{m}"
    );
    child.kill().await.unwrap();
}
