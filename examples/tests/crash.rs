//! kill -9 a recorder at pseudo-random moments, 20 times; after each
//! restart every committed fragment must play, the index must match the
//! files, and at most the fragment in flight may be lost: a killed
//! process's written fragments are in the page cache, and recovery rescans
//! the open file (a power cut may lose up to `flush_interval` segments).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reallive_store::{Store, StoreConfig, TimeRange};
use reallive_test_support::{ffprobe, require_elements};

const RUNS: usize = 20;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_at_most_the_fragment_in_flight() {
    require_elements(&["videotestsrc", "x264enc"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut checked_files = std::collections::HashSet::new();
    let mut worst = Duration::ZERO;
    for run in 0..RUNS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Between 1.5 s and 3.5 s: past startup, and across file rotations.
        let delay = Duration::from_millis(1500 + seed % 2000);
        let mut child = Command::new(env!("CARGO_BIN_EXE_record"))
            .args([
                "--data-dir",
                &data,
                "--seconds",
                "3600",
                "--camera",
                "crash",
            ])
            .args([
                "--fragment-ms",
                "500",
                "--file-secs",
                "2",
                "--flush-interval",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        tokio::time::sleep(delay).await;
        child.kill().unwrap(); // SIGKILL
        let killed_at = now_ns();
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(started.elapsed() >= delay);

        let (store, report) = Store::open(StoreConfig::new(dir.path())).await.unwrap();
        let recs = store.recordings("crash", TimeRange::all()).await.unwrap();
        assert!(!recs.is_empty(), "run {run}: nothing recorded ({report:?})");
        for r in &recs {
            let path = store.root().join(&r.path);
            // The index matches the file, byte for byte and fragment by fragment.
            let mut f = std::fs::File::open(&path).unwrap();
            let scanned = reallive_store::scan::scan(&mut f).unwrap();
            assert_eq!(scanned.valid_len, r.bytes, "run {run}: {}", r.path);
            assert_eq!(
                scanned.file_len, r.bytes,
                "run {run}: {} has a tail",
                r.path
            );
            assert_eq!(scanned.fragments, r.fragments, "run {run}: {}", r.path);
            // Every committed fragment plays (each file is checked once).
            if checked_files.insert(r.path.clone()) {
                let frames: u64 = r.fragments.iter().map(|f| u64::from(f.frames)).sum();
                assert_eq!(
                    ffprobe::probe(&path).frames,
                    frames,
                    "run {run}: {}",
                    r.path
                );
            }
        }
        // Loss bound: the newest footage ends no earlier than the kill minus
        // one fragment in flight (fragments close at keyframes, 1 s apart)
        // plus what sat in the capture pipeline.
        let newest = recs.iter().map(|r| r.end_utc_ns).max().unwrap();
        let lost = Duration::from_nanos((killed_at - newest).max(0) as u64);
        assert!(
            lost <= Duration::from_millis(1600),
            "run {run}: lost {lost:?} of video ({report:?})"
        );
        worst = worst.max(lost);
        store.close().await;
    }
    eprintln!(
        "{RUNS} kills: worst loss {worst:?}, {} files checked",
        checked_files.len()
    );
}
