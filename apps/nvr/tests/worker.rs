//! The NVR's supervised worker over real capture sources: running with fps
//! and bitrate, stop and start by request, and a dead camera in backoff
//! with growing waits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reallive_capture::{CaptureOptions, RtspCamera, TestPattern};
use reallive_core::supervise::{RestartPolicy, WorkerState, WorkerStatus};
use reallive_record::worker::{Consumer, Worker};
use tokio_util::sync::CancellationToken;

fn counting(frames: Arc<AtomicU64>, runs: Arc<AtomicU64>) -> Consumer {
    Arc::new(move |mut rx, _audio| {
        let frames = frames.clone();
        runs.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            while rx.recv().await.is_some() {
                frames.fetch_add(1, Ordering::Relaxed);
            }
        })
    })
}

async fn wait_for(w: &Worker, secs: u64, what: impl Fn(&WorkerStatus) -> bool) -> WorkerStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let s = w.status();
        if what(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out; status {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_pattern_runs_stops_and_starts_on_request() {
    let opts = CaptureOptions {
        width: 320,
        height: 240,
        ..CaptureOptions::default()
    };
    let (frames, runs) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = CancellationToken::new();
    let w = Worker::spawn(
        "pattern",
        Arc::new(TestPattern::new("ball".into(), opts)),
        RestartPolicy::default(),
        counting(frames.clone(), runs.clone()),
        false,
        stop.clone(),
    );
    let s = wait_for(&w, 20, |s| s.state == WorkerState::Running && s.fps > 20.0).await;
    assert!(s.bitrate_kbps > 0.0, "{s:#?}");
    assert_eq!(
        s.stream.as_ref().map(|i| (i.width, i.height)),
        Some((320, 240))
    );
    assert!(s.last_frame_age_ms.unwrap() < 2000);

    w.stop();
    wait_for(&w, 10, |s| s.state == WorkerState::Stopped).await;
    let after_stop = frames.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(w.status().state, WorkerState::Stopped, "a stop holds");
    assert_eq!(
        frames.load(Ordering::Relaxed),
        after_stop,
        "the run's consumer ended"
    );

    w.start();
    wait_for(&w, 20, |s| s.state == WorkerState::Running).await;
    assert_eq!(runs.load(Ordering::Relaxed), 2, "one consumer per run");
    let s = w.status();
    let states: Vec<_> = s.history.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            WorkerState::Starting,
            WorkerState::Running,
            WorkerState::Stopped,
            WorkerState::Starting,
            WorkerState::Running
        ]
    );
    assert_eq!(s.restarts, 0, "manual starts are no restarts");
    stop.cancel();
    w.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_camera_backs_off_with_growing_waits() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("rtsp://user:hunter2@127.0.0.1:{port}/stream")
        .parse()
        .unwrap();
    let stop = CancellationToken::new();
    let (frames, runs) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let w = Worker::spawn(
        "dead",
        Arc::new(RtspCamera::new(url, CaptureOptions::default())),
        RestartPolicy::default(),
        counting(frames, runs),
        false,
        stop.clone(),
    );
    let s = wait_for(&w, 20, |s| {
        s.restarts >= 3 && s.state == WorkerState::Backoff
    })
    .await;
    let err = s.last_error.clone().unwrap();
    assert!(!err.contains("hunter2"), "{err}");
    // Backoff entries say 1, 2, 4 s.
    let waits: Vec<&str> = s
        .history
        .iter()
        .filter(|c| c.state == WorkerState::Backoff)
        .filter_map(|c| c.reason.rsplit("retrying in ").next())
        .collect();
    assert_eq!(&waits[..3], ["1 s", "2 s", "4 s"], "{s:#?}");
    // Starts happen 1, 2 and 4 s after each failure.
    let at: Vec<i64> = s.history.iter().map(|c| c.at_unix_ms).collect();
    let gaps: Vec<i64> = s
        .history
        .windows(2)
        .zip(at.windows(2))
        .filter(|(c, _)| c[0].state == WorkerState::Backoff)
        .map(|(_, t)| t[1] - t[0])
        .collect();
    for (gap, want) in gaps.iter().zip([1000, 2000, 4000]) {
        assert!(
            (want - 100..=want + 1100).contains(gap),
            "waited {gap} ms, not {want}: {s:#?}"
        );
    }
    stop.cancel();
    w.join().await;
}
